"""The limits the emulated service holds requests to, and the checks that read them.

Each check turns a request's raw parts into a typed value, or raises the ``ErrorReply`` the
service would answer. The VideoRetalk page's own limits come from ``preflight.limits`` (a
limit is named once); the ones named here are the platform's, not on that page: the
temporary storage's upload policy and the task list's paging.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from preflight import limits

from ._errors import ErrorReply

#: The one model the endpoint serves.
MODEL = "videoretalk"
#: ``max_file_size_mb`` of the temporary storage's upload policy (MiB, like the policy's
#: ``content-length-range``); not the service's per-kind file limits, which tasks judge.
UPLOAD_MAX_MB = 100
UPLOAD_MAX_BYTES = UPLOAD_MAX_MB * limits.MIB
#: A request body larger than this is refused unread: an upload and its form fields.
REQUEST_MAX_BYTES = (UPLOAD_MAX_MB + 1) * limits.MIB
#: The task list's ``page_size`` is 1 to this.
LIST_PAGE_SIZE_MAX = 100
#: How the task list's ``start_time`` and ``end_time`` are written.
LIST_TIME_FORMAT = "%Y%m%d%H%M%S"
#: The form fields a storage POST must carry besides the file.
UPLOAD_FIELDS = ("OSSAccessKeyId", "Signature", "policy", "key")


@dataclass(frozen=True)
class Submission:
    """A submit request that passed every check."""

    video_url: str
    audio_url: str
    ref_image_url: str | None
    video_extension: bool


@dataclass(frozen=True)
class ListQuery:
    """The task list's query: a page, a window of submit times, and optional filters."""

    page_no: int
    page_size: int
    start: datetime
    end: datetime | None
    status: str | None
    model: str | None


@dataclass(frozen=True)
class UploadForm:
    """A storage POST's form: its fields (the file last, as the storage requires) and the file."""

    fields: dict[str, bytes]
    data: bytes

    def text(self, name: str, encoding: str = "ascii") -> str:
        return self.fields[name].decode(encoding, "replace")

    @property
    def wants_200(self) -> bool:
        """``success_action_status`` asked for 200 (the storage answers 204 otherwise)."""
        return self.fields.get("success_action_status", b"") == b"200"


def read_submission(headers: dict[str, str], body: bytes) -> Submission:
    """The submit request (lower-case ``headers``, the JSON ``body``), checked in the order the
    service reports problems: headers, body, model, inputs, parameters, storage URLs."""
    if headers.get("x-dashscope-async", "").lower() != "enable":
        raise _invalid("current user api does not support synchronous calls; send X-DashScope-Async: enable")
    try:
        request = json.loads(body or b"null")
    except ValueError:
        raise _invalid("The request body is not valid JSON.") from None
    if not isinstance(request, dict):
        raise _invalid("The request body must be a JSON object.")
    model = request.get("model")
    if model is None:
        raise _invalid("Field required: model")
    if model != MODEL:
        raise _invalid(f"Model not supported by this endpoint: {model!r}.")
    inputs = request.get("input")
    if not isinstance(inputs, dict):
        raise _invalid("Field required: input")
    urls = _read_urls(inputs)
    extension = _read_parameters(request.get("parameters") or {})
    if any(url.startswith("oss://") for url in urls.values()) and (
        headers.get("x-dashscope-ossresourceresolve", "").lower() != "enable"
    ):
        raise _invalid("oss:// URLs need X-DashScope-OssResourceResolve: enable")
    return Submission(
        video_url=urls["video_url"],
        audio_url=urls["audio_url"],
        ref_image_url=urls.get("ref_image_url"),
        video_extension=extension,
    )


def _read_urls(inputs: dict[str, Any]) -> dict[str, str]:
    urls: dict[str, str] = {}
    for name in ("video_url", "audio_url", "ref_image_url"):
        value = inputs.get(name)
        if value in (None, "") and name == "ref_image_url":
            continue  # optional; the documented sample sends ""
        if not isinstance(value, str) or not value:
            raise _invalid(f"Field required: input.{name}")
        if not value.startswith(("http://", "https://", "oss://")):
            raise _invalid(f"input.{name} must be an http(s):// or oss:// URL.")
        urls[name] = value
    return urls


def _read_parameters(parameters: Any) -> bool:
    """The checked ``parameters``; returns ``video_extension`` (the threshold is only checked)."""
    if not isinstance(parameters, dict):
        raise _invalid("parameters must be a JSON object.")
    extension = parameters.get("video_extension", limits.VIDEO_EXTENSION_DEFAULT)
    if not isinstance(extension, bool):
        raise _invalid("parameters.video_extension must be a boolean.")
    low, high = limits.QUERY_FACE_THRESHOLD_MIN, limits.QUERY_FACE_THRESHOLD_MAX
    threshold = parameters.get("query_face_threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int) or not low <= threshold <= high
    ):
        raise _invalid(f"parameters.query_face_threshold must be an integer {low}-{high}.")
    return extension


def read_list_query(query: dict[str, list[str]]) -> ListQuery:
    """The task list's query string (each name's last value counts)."""

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    try:
        page_no = int(one("page_no") or 1)
        page_size = int(one("page_size") or 10)
        start = datetime.strptime(one("start_time") or "19700101000000", LIST_TIME_FORMAT)
        end_text = one("end_time")
        end = datetime.strptime(end_text, LIST_TIME_FORMAT) if end_text else None
    except ValueError:
        raise _invalid(
            "page_no and page_size must be integers; start_time and end_time YYYYMMDDhhmmss."
        ) from None
    if page_no < 1 or not 1 <= page_size <= LIST_PAGE_SIZE_MAX:
        raise _invalid(f"page_no must be >= 1 and page_size 1-{LIST_PAGE_SIZE_MAX}.")
    return ListQuery(page_no, page_size, start, end, one("status"), one("model_name"))


def check_policy_query(query: dict[str, list[str]]) -> None:
    """The upload policy request asks for ``getPolicy`` of ``MODEL``."""
    if query.get("action") != ["getPolicy"]:
        raise _invalid("action must be getPolicy.")
    if query.get("model") != [MODEL]:
        raise _invalid(f"model must be {MODEL}.")


def read_upload_form(fields: list[tuple[str, bytes]]) -> UploadForm:
    """A storage POST's (name, value) form fields: a file, last, and every ``UPLOAD_FIELDS``."""
    names = [name for name, _ in fields]
    if "file" not in names:
        raise ErrorReply(400, "InvalidArgument", "The form has no file field.")
    if names[-1] != "file":
        raise ErrorReply(400, "InvalidArgument", "The file field must be the last field of the form.")
    form = UploadForm(fields={name: value for name, value in fields[:-1]}, data=fields[-1][1])
    for required in UPLOAD_FIELDS:
        if required not in form.fields:
            raise ErrorReply(400, "InvalidArgument", f"The form has no {required} field.")
    return form


def upload_key_parts(key: str, upload_dir: str) -> list[str]:
    """The folders and name of an upload's ``key``, which must lie under the policy's
    ``upload_dir`` and name no empty, ``.`` or ``..`` part (it becomes a path)."""
    parts = key.split("/")
    if not key.startswith(upload_dir + "/") or any(p in ("", ".", "..") for p in parts):
        raise ErrorReply(403, "AccessDenied", "Invalid according to Policy: the key is outside upload_dir.")
    return parts


def check_upload_size(data: bytes) -> None:
    if len(data) > UPLOAD_MAX_BYTES:
        raise ErrorReply(400, "EntityTooLarge", f"The file is larger than {UPLOAD_MAX_MB} MB.")


def _invalid(message: str) -> ErrorReply:
    return ErrorReply(400, "InvalidParameter", message)
