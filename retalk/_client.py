"""The synchronous VideoRetalk client on httpx: upload, submit, get, wait, cancel, list,
download.

Two httpx clients are kept apart on purpose: one talks to the API base URL and carries the
key; the other talks to the temporary storage and the result URLs and never has it.
"""

from __future__ import annotations

import email.utils
import errno
import ipaddress
import json
import logging
import os
import random
import re
import ssl
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote, urlsplit

import httpx

from preflight import lock_exclusive, remove_orphan_parts

from ._exceptions import (
    AuthError,
    ConfigError,
    DownloadError,
    InputError,
    ProtocolError,
    ResultExpired,
    ServerError,
    ServiceError,
    SubmitUncertain,
    TaskTimeout,
    ThrottledError,
    TransportError,
    UploadError,
    redact,
)
from ._models import Task, UploadPolicy
from ._quotas import RateLimiter, kind_of

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
MODEL = "videoretalk"
SUBMIT_PATH = "/services/aigc/image2video/video-synthesis/"
#: A service clock further off ours than this (by its Date header) is not believed.
MAX_CLOCK_OFFSET_S = 86400.0
#: Progress callback: (bytes done, bytes in all or None when unknown).
Progress = Callable[[int, int | None], None]
#: API answers are a few KB (a page of 50 tasks about 25 KB): one past this is not an answer.
MAX_ANSWER_BYTES = 1 << 20
#: The storage host answers an upload with nothing, or an error of a few hundred bytes.
MAX_STORAGE_ANSWER_BYTES = 64 << 10
#: The service's task ids are UUIDs (``a8532587-fa8c-4ef8-82be-0c46b17950d1``); a little
#: leniency (letters, ``_``), but never a character that means something in a path, a URL,
#: a command line or a terminal ('/', '.', '%', spaces, controls, a leading '-').
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)

log = logging.getLogger("retalk")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, honouring ``Retry-After``."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    #: A ``Retry-After`` longer than this is taken as this (a day-long pause helps nobody).
    max_retry_after_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random, floor: float = 0.0) -> float:
        """Full jitter; after a ``Retry-After``, or with a ``floor`` (a throttled call's
        quota window: sooner is refused again), the jitter comes on top of the longer of
        the two, so that clients told the same moment do not all come back at that moment."""
        backoff = rng.uniform(0, min(self.cap_s, self.base_s * 2**attempt))
        told = 0.0 if retry_after is None else min(retry_after, self.max_retry_after_s)
        return max(told, floor) + backoff


@dataclass(frozen=True)
class PollPolicy:
    """How ``wait`` polls: the SDK's 1, 1, 2, 2, 2, 4... s steps up to ``cap_s``, each
    jittered by a fifth so that many waiters do not query in step."""

    steps: tuple[float, ...] = (1, 1, 2, 2, 2, 4, 4, 4)
    cap_s: float = 5.0
    jitter: float = 0.2
    #: How long ``wait`` goes on polling a service it cannot reach (or that answers 5xx
    #: or 429 after every retry): the task runs on regardless, so an outage or a restart
    #: of the service is waited out, not taken for the task's failure.
    outage_s: float = 300.0

    def delays(self, rng: random.Random) -> Iterator[float]:
        index = 0
        while True:
            base = self.steps[index] if index < len(self.steps) else self.cap_s
            index += 1
            yield base * rng.uniform(1 - self.jitter, 1 + self.jitter)


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


def task_path(task_id: str, suffix: str = "") -> str:
    """The API path of a task: the id checked, and quoted anyway (defence in depth)."""
    return f"/tasks/{quote(check_task_id(task_id, 'the caller'), safe='')}{suffix}"


@dataclass(frozen=True)
class DownloadPolicy:
    """Bounds on fetching a result, whoever serves it."""

    #: The largest result taken (bytes). The largest input the service takes is 300 MiB for
    #: at most 120 s (20 Mbit/s), and a result is at most 120 s, re-encoded by the service:
    #: 2 GiB (143 Mbit/s for 120 s) is far above any real result, and bounds a disk filled
    #: by an endless body.
    max_bytes: int = 2 << 30
    #: The whole download, its retries and redirects included (s): a 2 GiB result at
    #: 5 Mbit/s still fits in an hour.
    deadline_s: float = 3600.0
    #: A download that gets fewer than ``stall_bytes`` in any ``stall_s`` (no byte at all,
    #: or a trickle) is stalled: tried again from where it was, within the deadline.
    stall_s: float = 30.0
    stall_bytes: int = 16 << 10
    #: Redirects followed to the result; their bodies are never read.
    max_redirects: int = 5


def resolve_key(api_key: str | None) -> str:
    key = (api_key if api_key is not None else os.environ.get("DASHSCOPE_API_KEY", "")).strip()
    if not key:
        raise ConfigError(
            "no API key: set DASHSCOPE_API_KEY to your DashScope key (or, to try it all offline "
            "without one, `prep-and-retalk --emulator`, or `retalk emulator`)"
        )
    # A header cannot carry anything else, and an HTTP library's complaint would quote it.
    if not all(33 <= ord(c) <= 126 for c in key):
        raise ConfigError("the API key has characters no key has (spaces, control or non-ASCII); check it")
    return key


def resolve_base_url(base_url: str | None) -> str:
    """The API base URL: https, or plain http only to this machine (the emulator)."""
    url = (base_url or os.environ.get("DASHSCOPE_HTTP_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url
    raise ConfigError(f"base URL {url!r}: must be https (plain http only to localhost)")


def is_local(url: str) -> bool:
    """``url`` is on this machine (an emulator), not a service."""
    host = urlsplit(url).hostname
    return host is not None and _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error_from(response: httpx.Response, secret: str | None = None) -> ServiceError:
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


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from this service; the backoff decides


def _server_clock_offset(response: httpx.Response) -> float | None:
    """The service's clock minus ours, from the answer's ``Date`` (to a second or so)."""
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        stated = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return stated.timestamp() - time.time() if stated.tzinfo is not None else None


def _write_problem(target: Path, exc: OSError) -> DownloadError:
    """A result that could not be written here (a full disk, no permission) as a
    ``DownloadError`` naming the file and the cause."""
    name = errno.errorcode.get(exc.errno or 0)
    return DownloadError(
        f"cannot write the result to {target}: {exc.strerror or exc}" + (f" [{name}]" if name else "")
    )


class _Body:
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


def _chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body as it arrives, undecoded (a response already in memory, as it is)."""
    if response.is_stream_consumed:
        yield response.content
    else:
        yield from response.iter_raw()


async def _achunks(response: httpx.Response) -> AsyncIterator[bytes]:
    if response.is_stream_consumed:
        yield response.content
    else:
        async for chunk in response.aiter_raw():
            yield chunk


def _transport_error(message: str, exc: httpx.TransportError) -> TransportError:
    """A ``TransportError`` for ``exc``, marked when the TLS handshake was what failed."""
    error = TransportError(message)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):  # SSLCertVerificationError among them
            error.tls = True
            break
        cause = cause.__cause__ or cause.__context__
    return error


def _outage_or_raise(
    exc: ServiceError | TransportError,
    task_id: str,
    poll: PollPolicy,
    timeout: float | None,
    started: float,
    answered: float | None,
    now: float,
    pause: float,
    told: float | None,
) -> float | None:
    """``wait``'s query failed after its own retries: raise, or ride it out (the task runs on
    while the service is down or restarting). Ridden out only when the service answered
    earlier in this wait (one never reached is a wrong URL, a closed port, a failed DNS
    look-up: said at once, not after minutes) and never for a failed TLS handshake; with a
    ``timeout``, an outage that reaches it is a ``TaskTimeout``. Returns when the outage
    was last reported (a warning every ``OUTAGE_REPORT_S``)."""
    if answered is None or (isinstance(exc, TransportError) and exc.tls):
        raise exc
    if timeout is not None and now - started + pause > timeout:
        raise TaskTimeout(
            f"task {task_id}: no answer from the service for {now - answered:.0f} s, "
            f"given up after {now - started:.0f} s ({exc})"
        ) from None
    if now - answered + pause > poll.outage_s:
        raise exc
    if told is None or now - told >= OUTAGE_REPORT_S:
        since = time.strftime("%H:%M:%S", time.localtime(time.time() - (now - answered)))
        log.warning("no answer from the service since %s; still trying (up to %.0f s)", since, poll.outage_s)
        return now
    return told


#: While ``wait`` rides out an outage, it says so this often (a log warning: on stderr
#: when logging is not set up).
OUTAGE_REPORT_S = 30.0


def _surely_unsent(exc: httpx.TransportError) -> bool:
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


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def object_name(path: str | os.PathLike[str]) -> str:
    """A unique, URL-safe storage name that keeps the file's extension (the service reads
    the format from it). Overwriting is forbidden in the upload folder, so names never repeat."""
    name = Path(path)
    suffix = _SAFE_NAME.sub("", name.suffix.lower())
    stem = _SAFE_NAME.sub("_", name.stem).strip("._") or "file"
    return f"{uuid.uuid4().hex[:16]}-{stem[-60:]}{suffix}"


class _Reader:
    """A file that reports how much of it has been read (for upload progress)."""

    def __init__(self, handle: IO[bytes], total: int, progress: Progress | None) -> None:
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


class Client:
    """A VideoRetalk client. Use as a context manager, or call ``close()``.

    >>> with Client() as client:  # DASHSCOPE_API_KEY from the environment
    ...     task = client.submit(client.upload("talk.mp4"), client.upload("voice.wav"))
    ...     done = client.wait(task.task_id)
    ...     client.download(done.video_url, "out.mp4")
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        download_policy: DownloadPolicy | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._key = resolve_key(api_key)
        self.base_url = resolve_base_url(base_url)
        #: Keeps every request of this client inside the service's quotas; give clients
        #: of one account the same one (``RateLimiter(Quotas(...))``) to pace them together.
        self.limiter = limiter or RateLimiter()
        self._retry = retry or RetryPolicy()
        self._poll = poll or PollPolicy()
        self._downloads = download_policy or DownloadPolicy()
        self._max_answer = max_answer_bytes
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._policy: UploadPolicy | None = None
        #: Task ids this client's submits returned (never adopted for another submit).
        self._issued: set[str] = set()
        #: The service's clock minus this machine's (s), from its last answer's ``Date``;
        #: None until it answered. Its task times are on its clock, not ours.
        self.clock_offset: float | None = None
        # trust_env=False: no proxy from the environment ever sees the key.
        self._api = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=timeout,
            transport=transport,
            trust_env=False,
        )
        # Storage and result hosts: never the key. Redirects are followed by hand (httpx
        # reads a redirect's body whole), never more than the policy's.
        self._plain = httpx.Client(timeout=timeout, transport=transport)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._api.close()
        self._plain.close()

    def _answer(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One API request, its answer read within ``max_answer_bytes``."""
        wanted = {"Accept-Encoding": "identity"} | (headers or {})
        request = self._api.build_request(method, path, json=json, params=params, headers=wanted)
        response = self._api.send(request, stream=True)
        try:
            body = _Body(response, self._max_answer, f"{method} {path}")
            for chunk in _chunks(response):
                body.feed(chunk)
        finally:
            response.close()
        return body.response()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One API call with retries on 429, 5xx and network errors. A call that is not
        idempotent (a submit) is never re-sent once it may have reached the service."""
        kind = kind_of(method, path, SUBMIT_PATH)
        for attempt in range(self._retry.attempts):
            last = attempt == self._retry.attempts - 1
            pause = self.limiter.reserve(kind)  # every try counts against the quota
            if pause > 0:
                self._sleep(pause)
            try:
                response = self._answer(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                reason = redact(f"{type(exc).__name__}: {exc}", self._key)
                if not idempotent and not _surely_unsent(exc):
                    raise SubmitUncertain(f"{method} {path}: {reason}") from None
                if last:
                    raise _transport_error(f"{method} {path}: {reason}", exc) from None
                log.debug("%s %s: %s; retrying", method, path, reason)
                self._sleep(self._retry.delay(attempt, None, self._rng))
                continue
            log.debug("%s %s -> %s", method, path, response.status_code)
            offset = _server_clock_offset(response)
            # Only a 2xx answer's Date (a proxy's error page has its own clock), and only a
            # plausible one: a Date days off is a broken header, not a clock to move task times by.
            if offset is not None and response.is_success and abs(offset) <= MAX_CLOCK_OFFSET_S:
                self.clock_offset = offset
            if response.status_code == 429 or response.status_code >= 500:
                error = _error_from(response, self._key)
                if not idempotent and response.status_code >= 500:
                    raise SubmitUncertain(f"{method} {path}: {error}")
                if last:
                    raise error
                floor = self.limiter.throttled_floor(kind) if response.status_code == 429 else 0.0
                self._sleep(self._retry.delay(attempt, _retry_after(response), self._rng, floor))
                continue
            if response.status_code >= 400:
                raise _error_from(response, self._key)
            try:
                body = response.json()
            except (ValueError, RecursionError):
                if not idempotent:  # it was accepted: a task may well exist
                    raise SubmitUncertain(f"{method} {path}: the answer was not JSON") from None
                raise ServerError(response.status_code, "BadResponse", "the answer was not JSON") from None
            return body if isinstance(body, dict) else {}
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ tasks
    def submit(
        self,
        video_url: str,
        audio_url: str,
        ref_image_url: str | None = None,
        *,
        video_extension: bool | None = None,
        query_face_threshold: int | None = None,
        known_ids: set[str] | None = None,
    ) -> Task:
        """Create a task. Local files must be uploaded first (``upload``). ``known_ids``:
        the tasks listed just before (``recent_task_ids``), when the caller listed them
        already; a submit whose answer is lost adopts the one task that is not among them."""
        body, headers = submit_request(
            video_url, audio_url, ref_image_url, video_extension, query_face_threshold
        )
        known = known_ids if known_ids is not None else self.recent_task_ids()
        try:
            answer = self._request("POST", SUBMIT_PATH, json=body, headers=headers, idempotent=False)
        except SubmitUncertain as exc:
            # It may have gone through. Never sent again from here: adopt the task if exactly
            # one new one appeared, else leave it to `retalk resume` to settle.
            adopted = self._single_new_task(known)
            if adopted is not None:
                log.info("submit answered badly but task %s was created: adopted", adopted.task_id)
                return adopted
            raise SubmitUncertain(
                f"{exc}; the task list shows no single new task, so it was not sent again "
                "(`retalk resume` settles it)"
            ) from None
        task = submitted_task(answer)
        self._issued.add(task.task_id)
        return task

    def recent_task_ids(self) -> set[str] | None:
        """The ids of the latest 50 tasks; None when the list cannot be had."""
        try:
            return {t.task_id for t in self.list(page_size=50)}
        except (ServiceError, TransportError, ProtocolError):
            return None  # no list: an uncertain submit will then be reported, not adopted

    def _single_new_task(self, known: set[str] | None, checks: int = 3) -> Task | None:
        """The one task that appeared since ``known`` and that this client has not
        handed out already; None when there is none, several, or no list to read."""
        if known is None:
            return None
        try:
            for _ in range(checks):
                self._sleep(1.0)
                fresh = [
                    t
                    for t in self.list(page_size=50)
                    if t.task_id not in known and t.task_id not in self._issued
                ]
                if len(fresh) == 1:
                    self._issued.add(fresh[0].task_id)
                    return self.get(fresh[0].task_id)
                if len(fresh) > 1:
                    return None
        except (ServiceError, TransportError, ProtocolError):
            return None
        return None

    def get(self, task_id: str) -> Task:
        return queried_task(self._request("GET", task_path(task_id)), task_id)

    def cancel(self, task_id: str) -> Task:
        """Cancel a PENDING task (the service cancels nothing that runs)."""
        try:
            self._request("POST", task_path(task_id, "/cancel"))
        except InputError:
            task = self.get(task_id)
            if task.status == "CANCELED":
                return task  # an earlier try did it; its answer was lost
            raise
        return self.get(task_id)

    def list(
        self,
        *,
        page_no: int = 1,
        page_size: int = 10,
        status: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
    ) -> list[Task]:
        """Recent tasks, newest first (times as ``YYYYMMDDhhmmss``)."""
        params: dict[str, Any] = {"page_no": page_no, "page_size": page_size, "model_name": MODEL}
        for name, value in (("status", status), ("start_time", start_time), ("end_time", end_time)):
            if value:
                params[name] = value
        return listed_tasks(self._request("GET", "/tasks", params=params))

    def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        on_status: Callable[[Task, float], None] | None = None,
    ) -> Task:
        """Poll until the task is final (SUCCEEDED, FAILED, CANCELED) or the service answers
        UNKNOWN (not an end: see ``Task.unknown``), and return it; statuses this client does
        not know count as running. ``on_status`` gets each
        answer and the seconds waited. Raises ``TaskTimeout`` after ``timeout`` seconds."""
        started = time.monotonic()
        answered: float | None = None  # the last answer in this wait (none yet)
        told: float | None = None
        delays = self._poll.delays(self._rng)
        while True:
            try:
                task = self.get(task_id)
            except (TransportError, ServerError, ThrottledError) as exc:
                # After its own retries. The service is down or restarting; the task is not
                # lost with it: keep polling, and give up only after a long outage.
                now = time.monotonic()
                pause = next(delays)
                told = _outage_or_raise(
                    exc, task_id, self._poll, timeout, started, answered, now, pause, told
                )
                log.info("task %s: no answer (%s); asking again in %.0f s", task_id, exc, pause)
                self._sleep(pause)
                continue
            answered, told = time.monotonic(), None
            waited = answered - started
            if on_status is not None:
                on_status(task, waited)
            if task.finished or task.unknown:  # UNKNOWN: polling will not settle it
                return task
            pause = next(delays)
            if timeout is not None and waited + pause > timeout:
                raise TaskTimeout(f"task {task_id} is still {task.status} after {waited:.0f} s")
            self._sleep(pause)

    # ------------------------------------------------------------------ files
    def _upload_policy(self, refresh: bool = False) -> UploadPolicy:
        if refresh or self._policy is None or self._policy.expired(time.monotonic()):
            body = self._request("GET", "/uploads", params={"action": "getPolicy", "model": MODEL})
            try:
                self._policy = UploadPolicy.parse(body, time.monotonic())
            except (KeyError, TypeError) as exc:
                raise ServerError(200, "BadResponse", f"the upload policy lacks {exc}") from None
        return self._policy

    def upload(self, path: str | os.PathLike[str], on_progress: Progress | None = None) -> str:
        """Put a local file in the temporary storage (48 h) and return its ``oss://`` URL.
        URLs (``http(s)://``, ``oss://``) are returned as they are."""
        text = os.fspath(path)
        if re.match(r"^(https?|oss)://", text):
            return text
        size = os.path.getsize(text)
        policy = self._upload_policy()
        if size > policy.max_file_size_mb * 1024 * 1024:
            raise UploadError(
                f"{text}: {size / 2**20:.1f} MiB, over the storage limit of {policy.max_file_size_mb:g} MB"
            )
        name = object_name(text)
        for attempt in range(self._retry.attempts):
            key = f"{policy.upload_dir}/{name}"
            fields = upload_fields(policy, key)
            try:
                with open(text, "rb") as handle:
                    # httpx writes the form fields first and the file last, as the storage needs.
                    files = {"file": (name, _Reader(handle, size, on_progress), "application/octet-stream")}
                    request = self._plain.build_request(
                        "POST",
                        policy.upload_host,
                        data=fields,
                        files=files,  # type: ignore[arg-type]
                    )
                    # A redirect is no stored file; the answer is read within a bound.
                    sent = self._plain.send(request, stream=True, follow_redirects=False)
                    try:
                        body = _Body(sent, MAX_STORAGE_ANSWER_BYTES, f"upload of {text}")
                        for chunk in _chunks(sent):
                            body.feed(chunk)
                    finally:
                        sent.close()
                    response = body.response()
            except httpx.InvalidURL:
                raise UploadError(
                    f"{text}: the upload policy names the storage host {shown(policy.upload_host)}, "
                    "which is not a URL"
                ) from None
            except httpx.TransportError as exc:
                if attempt == self._retry.attempts - 1:
                    raise TransportError(f"upload of {text}: {type(exc).__name__}: {exc}") from None
                self._sleep(self._retry.delay(attempt, None, self._rng))
                continue
            if response.status_code in (200, 204):
                return f"oss://{key}"
            if response.status_code == 409 and attempt > 0:
                return f"oss://{key}"  # our own earlier try arrived; overwriting is forbidden
            text_body = response.text[:300]
            if response.status_code == 403 and "expired" in text_body.lower():
                policy = self._upload_policy(refresh=True)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                self._sleep(self._retry.delay(attempt, _retry_after(response), self._rng))
                continue
            raise UploadError(f"{text}: the storage refused it: {response.status_code} {text_body}")
        raise UploadError(f"{text}: the storage kept failing after {self._retry.attempts} tries")

    def download(
        self,
        url: str,
        path: str | os.PathLike[str],
        on_progress: Progress | None = None,
        *,
        policy: DownloadPolicy | None = None,
        before_publish: Callable[[Path], None] | None = None,
    ) -> Path:
        """Stream the result to ``path``: written under a temporary name, resumed with
        ``Range`` when the connection drops, checked against ``Content-Length``, then renamed.
        Bounded by ``policy`` (the client's ``download_policy`` by default): its size, a
        deadline, a stall timeout and the redirects followed. ``before_publish(path)`` is
        called with the whole file under its temporary name just before the rename."""
        bounds = policy or self._downloads
        target = _download_target(url, path)
        try:
            partial, out = _partial_for(target)
        except OSError as exc:
            raise _write_problem(target, exc) from None
        meter = _Meter(bounds)
        have = 0
        total: int | None = None
        reason = ""
        try:
            with out:
                for attempt in range(self._retry.attempts):
                    # Identity: byte counts and Range offsets are about the bytes on disk.
                    headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={have}-"} if have else {})
                    try:
                        with self._result(url, headers, meter) as response:
                            if have and (response.status_code != 206 or _range_start(response) != have):
                                out.seek(0)
                                out.truncate()
                                have = 0  # the server sent it all again
                            total = meter.total(_total_size(response, have, total))
                            meter.begin(have)
                            for chunk in _chunks(response):  # as it arrives: a drop loses nothing
                                meter.feed(len(chunk), have, total)
                                out.write(chunk)
                                have += len(chunk)
                                if on_progress is not None:
                                    on_progress(have, total)
                        if total is None or have == total:
                            break
                        reason = f"the connection ended at {have} of {total} bytes"
                    except (httpx.TransportError, _Retryable) as exc:
                        reason = _why(exc, bounds)
                        if attempt == self._retry.attempts - 1:
                            raise DownloadError(
                                f"the download kept failing at {have} bytes ({reason})"
                            ) from None
                    self._sleep(meter.pause(self._retry.delay(attempt, None, self._rng), have, total))
                if total is not None and have != total:
                    raise DownloadError(f"got {have} of {total} bytes ({reason})")
                out.flush()
                os.fsync(out.fileno())
                if before_publish is not None:
                    before_publish(partial)  # the whole file, before it takes its name
                # Named while still open (and locked): no other run takes it for an orphan.
                _publish(partial, target)
        except OSError as exc:
            # Our side failed (a full disk): not the download. Said as such, and nothing
            # half-written is left, under the final name or the temporary one.
            partial.unlink(missing_ok=True)
            raise _write_problem(target, exc) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target

    @contextmanager
    def _result(self, url: str, headers: dict[str, str], meter: _Meter) -> Iterator[httpx.Response]:
        """The result host's answer, open to stream, after at most ``max_redirects``
        redirects (whose bodies are never read), judged by ``_judge_result``."""
        try:
            request = self._plain.build_request(
                "GET", url, headers=headers, timeout=meter.timeout(self._plain.timeout)
            )
            for _ in range(meter.policy.max_redirects + 1):
                response = self._plain.send(request, stream=True, follow_redirects=False)
                if response.next_request is None:
                    break
                response.close()
                request = response.next_request
            else:
                raise DownloadError(_too_many_redirects(url, meter.policy))
        except httpx.TransportError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DownloadError(f"the result URL {shown(url)}: {_why(exc)}") from None
        try:
            _judge_result(response)
            yield response
        finally:
            response.close()


class _Retryable(Exception):
    """A result host's 429 or 5xx, or a stalled download: worth another try."""


class _Meter:
    """A download's bounds as it goes: its size, its deadline, its pace."""

    def __init__(self, policy: DownloadPolicy) -> None:
        self.policy = policy
        self._started = time.monotonic()
        self._window = self._started
        self._window_bytes = 0

    def _left(self) -> float:
        return self.policy.deadline_s - (time.monotonic() - self._started)

    def _check_deadline(self, have: int, total: int | None) -> None:
        if self._left() <= 0:
            of = f" of {total}" if total is not None else ""
            raise DownloadError(
                f"the download took longer than its {self.policy.deadline_s:g} s (--download-timeout) "
                f"and was given up at {have}{of} bytes"
            )

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """The request's timeouts: no read waits longer than the stall time, and nothing
        past the deadline."""
        left = max(0.001, self._left())

        def bounded(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx.Timeout(
            connect=bounded(base.connect),
            read=bounded(self.policy.stall_s),
            write=bounded(base.write),
            pool=bounded(base.pool),
        )

    def total(self, total: int | None) -> int | None:
        """The size the host states, refused before a byte when over the cap."""
        if total is not None and total > self.policy.max_bytes:
            raise DownloadError(_too_large(total, self.policy, "stated by the result host"))
        return total

    def begin(self, have: int) -> None:
        self._window, self._window_bytes = time.monotonic(), 0
        self._check_deadline(have, None)

    def feed(self, size: int, have: int, total: int | None) -> None:
        if have + size > self.policy.max_bytes:
            raise DownloadError(_too_large(have + size, self.policy, "received"))
        now = time.monotonic()
        self._window_bytes += size
        if now - self._window >= self.policy.stall_s:
            if self._window_bytes < self.policy.stall_bytes:
                raise _Retryable(
                    f"stalled: {self._window_bytes} bytes in {now - self._window:.1f} s, under "
                    f"{self.policy.stall_bytes} bytes per {self.policy.stall_s:g} s (--stall-timeout)"
                )
            self._window, self._window_bytes = now, 0
        self._check_deadline(have + size, total)

    def pause(self, delay: float, have: int, total: int | None) -> float:
        """A retry's pause, never past the deadline (which ends the download instead)."""
        self._check_deadline(have, total)
        return min(delay, max(0.0, self._left()))


def _too_large(size: int, policy: DownloadPolicy, how: str) -> str:
    return (
        f"the result is larger than the {policy.max_bytes / 2**20:.4g} MiB a result can be ({size} bytes "
        f"{how}); not downloaded further (--max-result-size raises the cap)"
    )


def _too_many_redirects(url: str, policy: DownloadPolicy) -> str:
    return f"the result URL {shown(url)} redirected more than {policy.max_redirects} times (a loop?)"


def _why(exc: BaseException, policy: DownloadPolicy | None = None) -> str:
    """Why a try failed, in a few words."""
    if isinstance(exc, _Retryable):
        return str(exc)
    if isinstance(exc, httpx.ReadTimeout) and policy is not None:
        return f"stalled: no byte for {policy.stall_s:g} s (--stall-timeout)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _download_target(url: object, path: str | os.PathLike[str]) -> Path:
    """Where the result goes (a file name, not a folder), once its URL is one to fetch."""
    target = Path(path)
    if target.is_dir() or not target.name or target.name in (".", ".."):
        raise DownloadError(f"{path}: is a folder; give a file name for the result")
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise DownloadError(f"the result URL {shown(url)} is not an http(s) URL; nothing downloaded")
    return target


def _judge_result(response: httpx.Response) -> None:
    """The result host's status and encoding, before a byte of the body is read."""
    status = response.status_code
    if status in (403, 404, 410):
        raise ResultExpired(
            f"the result URL answered {status}: it has expired (results are kept 24 h) or is wrong"
        )
    if status == 429 or status >= 500:
        raise _Retryable(f"the result host answered {status}")
    if status >= 300:  # a redirect without a usable Location is no result either
        raise DownloadError(f"the result URL answered {status}")
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for the bytes as they are: a packed body can unpack to any size.
        raise DownloadError(
            f"the result host sent the result {shown(encoding, 40, bare=True)}-encoded although asked for it "
            "as it is; refused (a packed body can unpack to any size)"
        )


def _partial_for(target: Path) -> tuple[Path, IO[bytes]]:
    """A fresh hidden temporary file beside ``target``, open and locked while this process
    writes it (two downloads never share one). Parts that earlier runs for the same
    target left (killed mid-download) and no live process holds are removed first."""
    _remove_orphans(target)
    while True:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:100]}.", suffix=".part")
        lock_exclusive(fd, wait=True)
        try:
            ours = os.path.samestat(os.fstat(fd), os.lstat(name))
        except FileNotFoundError:
            ours = False
        if ours:
            return Path(name), os.fdopen(fd, "wb")
        os.close(fd)  # another run swept it in the instant before the lock: take another


def _remove_orphans(target: Path) -> None:
    """Remove ``target``'s temporary parts that no process holds: a run killed during its
    download left them. They are not resumed: the result URL they came from may be gone or
    another, and a result takes seconds to fetch again."""
    for path in remove_orphan_parts(target.parent, f".{target.name[:100]}."):
        log.info("removed %s, left by a download that was killed", path)


def _publish(partial: Path, target: Path) -> None:
    """Give the whole download its name, with the usual permissions (mkstemp's are private)."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(partial, 0o666 & ~mask)
    os.replace(partial, target)


def _range_start(response: httpx.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _total_size(response: httpx.Response, have: int, known: int | None) -> int | None:
    """The full size: from Content-Range on a resumed answer, else Content-Length."""
    content_range = response.headers.get("Content-Range", "")
    match = re.match(r"bytes \d+-\d+/(\d+)", content_range)
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit():
        return int(length) + (have if response.status_code == 206 else 0)
    return known
