"""The shapes of the requests the protocol sends, as the API page documents them: the
submit body and headers, the list query, a task's path, the storage form and the names
files get there. Pure: nothing here sends anything."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from .._models import UploadPolicy
from .policies import MODEL, TransferProgress
from .replies import check_task_id

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def task_path(task_id: str, suffix: str = "") -> str:
    """The API path of a task: the id checked, and quoted anyway (defence in depth)."""
    return f"/tasks/{quote(check_task_id(task_id, 'the caller'), safe='')}{suffix}"


def submit_request(
    video_url: str,
    audio_url: str,
    ref_image_url: str | None,
    video_extension: bool | None,
    query_face_threshold: int | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The submit body and headers, as the API page documents them."""
    body: dict[str, Any] = {"model": MODEL, "input": {"video_url": video_url, "audio_url": audio_url}}
    if ref_image_url:
        body["input"]["ref_image_url"] = ref_image_url
    parameters: dict[str, Any] = {}
    if video_extension is not None:
        parameters["video_extension"] = video_extension
    if query_face_threshold is not None:
        parameters["query_face_threshold"] = query_face_threshold
    if parameters:
        body["parameters"] = parameters
    headers = {"X-DashScope-Async": "enable"}
    if any(str(url).startswith("oss://") for url in (video_url, audio_url, ref_image_url or "")):
        headers["X-DashScope-OssResourceResolve"] = "enable"
    return body, headers


def list_params(
    page_no: int, page_size: int, status: str | None, start_time: str | None, end_time: str | None
) -> dict[str, Any]:
    """The task list's query: a page, and optionally a status and a time window."""
    params: dict[str, Any] = {"page_no": page_no, "page_size": page_size, "model_name": MODEL}
    for name, value in (("status", status), ("start_time", start_time), ("end_time", end_time)):
        if value:
            params[name] = value
    return params


def upload_fields(policy: UploadPolicy, key: str) -> dict[str, str]:
    """The storage form's fields, in order (the file goes after them)."""
    return {
        "OSSAccessKeyId": policy.oss_access_key_id,
        "Signature": policy.signature,
        "policy": policy.policy,
        "key": key,
        "x-oss-object-acl": policy.x_oss_object_acl,
        "x-oss-forbid-overwrite": policy.x_oss_forbid_overwrite,
        "success_action_status": "200",
    }


def object_name(path: str | os.PathLike[str]) -> str:
    """A unique, URL-safe storage name that keeps the file's extension (the service reads
    the format from it). Overwriting is forbidden in the upload folder, so names never repeat."""
    name = Path(path)
    suffix = _SAFE_NAME.sub("", name.suffix.lower())
    stem = _SAFE_NAME.sub("_", name.stem).strip("._") or "file"
    return f"{uuid.uuid4().hex[:16]}-{stem[-60:]}{suffix}"


class ProgressReader:
    """A file that reports how much of it has been read (for upload progress). Read in
    chunks as it is sent: never the whole file in memory."""

    def __init__(self, handle: IO[bytes], total: int, progress: TransferProgress | None) -> None:
        self._handle, self._total, self._progress, self._done = handle, total, progress, 0

    # httpx sizes the multipart body from these (a Content-Length, not chunked encoding,
    # which the storage host does not take).
    def fileno(self) -> int:
        return self._handle.fileno()

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._done += len(chunk)
        if self._progress is not None:
            self._progress(self._done, self._total)
        return chunk
