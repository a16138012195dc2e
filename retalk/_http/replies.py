"""What the service (or anything between it and us) answers, judged: read within a bound,
mapped to the documented exceptions, and checked before anything in it is used (task ids
become file names and URL paths). Nothing here sends or waits."""

from __future__ import annotations

import email.utils
import json
import re
import ssl
import time
import zlib
from typing import Any

import httpx

from .._exceptions import (
    AuthError,
    InputError,
    ProtocolError,
    ServerError,
    ServiceError,
    SubmitUncertain,
    ThrottledError,
    TransportError,
    redact,
)
from .._models import Task

#: The service's task ids are UUIDs (``a8532587-fa8c-4ef8-82be-0c46b17950d1``); a little
#: leniency (letters, ``_``), but never a character that means something in a path, a URL,
#: a command line or a terminal ('/', '.', '%', spaces, controls, a leading '-').
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)


def is_task_id(value: object) -> bool:
    """``value`` has the shape of a task id (and so is safe in a file name and a URL path)."""
    return isinstance(value, str) and _TASK_ID.fullmatch(value) is not None


def shown(value: object, limit: int = 200, bare: bool = False) -> str:
    """Something the service sent, for a message: escaped (ASCII, no control characters)
    and bounded; quoted unless ``bare``."""
    text = value if isinstance(value, str) else repr(value)
    cut = ascii(text[:limit])[1:-1] if bare else ascii(text[:limit])
    return cut + (f"... ({len(text)} characters)" if len(text) > limit else "")


def check_task_id(value: object, source: str) -> str:
    """``value`` when it is a task id; otherwise a ``ProtocolError`` saying where it came from."""
    if is_task_id(value):
        assert isinstance(value, str)
        return value
    raise ProtocolError(
        f"{source} gave {shown(value)} as a task id, which is not one (letters, digits and dashes, "
        "at most 64): not used in any file name or URL"
    )


def error_from(response: httpx.Response, secret: str | None = None) -> ServiceError:
    """An error answer as the documented exception for its status."""
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: nesting built to crash a parser
        body = {}
    body = body if isinstance(body, dict) else {}
    code = str(body.get("code") or f"HTTP{response.status_code}")
    # An answer that echoes the key (a proxy's error page) must not carry it into messages.
    message = redact(str(body.get("message") or body.get("msg") or response.reason_phrase or ""), secret)
    request_id = body.get("request_id")
    status = response.status_code
    kind: type[ServiceError]
    if status in (401, 403):
        kind = AuthError
    elif status == 429:
        kind = ThrottledError
    elif status >= 500:
        kind = ServerError
    else:
        kind = InputError
    return kind(status, code, message, request_id)


def json_answer(response: httpx.Response, what: str, idempotent: bool) -> dict[str, Any]:
    """A successful answer's JSON object (anything but an object counts as empty)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        if not idempotent:  # it was accepted: a task may well exist
            raise SubmitUncertain(f"{what}: the answer was not JSON") from None
        raise ServerError(response.status_code, "BadResponse", "the answer was not JSON") from None
    return body if isinstance(body, dict) else {}


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from this service; the backoff decides


def server_clock_offset(response: httpx.Response) -> float | None:
    """The service's clock minus ours, from the answer's ``Date`` (to a second or so)."""
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        stated = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return stated.timestamp() - time.time() if stated.tzinfo is not None else None


def transport_error(message: str, exc: httpx.TransportError) -> TransportError:
    """A ``TransportError`` for ``exc``, marked when the TLS handshake was what failed."""
    error = TransportError(message)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):  # SSLCertVerificationError among them
            error.tls = True
            break
        cause = cause.__cause__ or cause.__context__
    return error


def surely_unsent(exc: httpx.TransportError) -> bool:
    """The request never reached the server: safe to send again, even a submit."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def submitted_task(answer: dict[str, Any]) -> Task:
    """A submit's answer as its task, the id checked before anyone stores or uses it."""
    task = Task.parse(answer)
    if not task.task_id:
        raise SubmitUncertain("the submit answer named no task; `retalk resume` settles it")
    if not is_task_id(task.task_id):
        request = f" (request {shown(task.request_id, 100)})" if task.request_id else ""
        raise ProtocolError(
            f"the submit answer{request} named task {shown(task.task_id)}, which is not a task id: "
            "not used in any file name or URL. The submit reached the service and may be billed; "
            f"check `retalk list`. The answer: {shown(_answer_text(answer), 500)}"
        )
    return task


def queried_task(answer: dict[str, Any], task_id: str) -> Task:
    """A task query's answer: about the task asked for, or a ``ProtocolError``."""
    task = Task.parse(answer, task_id)
    if task.task_id != task_id:
        raise ProtocolError(
            f"asked about task {task_id}, the service answered about {shown(task.task_id)}; not used"
        )
    return task


def listed_tasks(answer: dict[str, Any]) -> list[Task]:
    """A task list's answer; one id that is not a task id makes the whole list untrusted
    (a lost submit's task is never adopted from it, nor sent again because of it)."""
    data = answer.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise ProtocolError(f"the task list answer's data is {shown(data, 100)}, not a list")
    tasks = [Task.parse({"output": item}) for item in data if isinstance(item, dict)]
    for task in tasks:
        check_task_id(task.task_id, "the task list")
    return tasks


def _answer_text(answer: dict[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=True, default=str)


class BoundedBody:
    """An answer's body read as it arrives, refused once past ``limit`` bytes (before a
    byte is read when its Content-Length says so): an answer is never read whole blindly."""

    def __init__(self, response: httpx.Response, limit: int, what: str) -> None:
        self._response, self._limit, self._what = response, limit, what
        self._parts: list[bytes] = []
        self._size = 0
        # A response made whole in memory (a mock transport's) is decoded already.
        self._decoded = response.is_stream_consumed
        stated = response.headers.get("Content-Length", "")
        if stated.isdigit() and int(stated) > limit:
            raise self._too_large(f"{int(stated)} bytes stated")

    def _too_large(self, seen: str) -> ProtocolError:
        return ProtocolError(
            f"{self._what}: the answer is larger than {self._limit} bytes ({seen}); the answers of "
            "this API are a few KB, so it was not read further"
        )

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise self._too_large(f"over {self._size} bytes so far")
        self._parts.append(chunk)

    def response(self) -> httpx.Response:
        """The answer with its body in memory, decoded (within the same bound)."""
        raw = b"".join(self._parts)
        encoding = self._response.headers.get("Content-Encoding", "").strip().lower()
        body = raw if self._decoded or encoding in ("", "identity") else self._unpack(raw, encoding)
        dropped = ("content-encoding", "content-length", "transfer-encoding")
        headers = [(k, v) for k, v in self._response.headers.multi_items() if k.lower() not in dropped]
        return httpx.Response(
            self._response.status_code,
            headers=headers,
            content=body,
            request=self._response.request,
            extensions={k: v for k, v in self._response.extensions.items() if k == "reason_phrase"},
        )

    def _unpack(self, raw: bytes, encoding: str) -> bytes:
        # Asked for identity; a gzip or deflate answer is unpacked, never past the limit
        # (a few KB can unpack to gigabytes).
        if encoding not in ("gzip", "x-gzip", "deflate"):
            how = shown(encoding, 40, bare=True)
            raise ProtocolError(f"{self._what}: the answer came {how}-encoded; not read")
        unpacker = zlib.decompressobj(32 + zlib.MAX_WBITS)  # a gzip or zlib header
        try:
            body = unpacker.decompress(raw, self._limit + 1)
        except zlib.error as exc:
            raise ProtocolError(f"{self._what}: the {encoding} answer does not unpack ({exc})") from None
        if len(body) > self._limit or unpacker.unconsumed_tail:
            raise self._too_large(f"once unpacked, from {len(raw)} bytes {encoding}")
        return body
