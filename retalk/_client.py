"""The synchronous VideoRetalk client on httpx: upload, submit, get, wait, cancel, list,
download.

Two httpx clients are kept apart on purpose: one talks to the API base URL and carries the
key; the other talks to the temporary storage and the result URLs and never has it.
"""

from __future__ import annotations

import email.utils
import errno
import ipaddress
import logging
import os
import random
import re
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from ._exceptions import (
    AuthError,
    ConfigError,
    DownloadError,
    InputError,
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


def resolve_key(api_key: str | None) -> str:
    key = (api_key if api_key is not None else os.environ.get("DASHSCOPE_API_KEY", "")).strip()
    if not key:
        raise ConfigError("no API key: set DASHSCOPE_API_KEY or pass one")
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
    except ValueError:
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
        limiter: RateLimiter | None = None,
    ) -> None:
        self._key = resolve_key(api_key)
        self.base_url = resolve_base_url(base_url)
        #: Keeps every request of this client inside the service's quotas; give clients
        #: of one account the same one (``RateLimiter(Quotas(...))``) to pace them together.
        self.limiter = limiter or RateLimiter()
        self._retry = retry or RetryPolicy()
        self._poll = poll or PollPolicy()
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
        # Storage and result hosts: never the key.
        self._plain = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._api.close()
        self._plain.close()

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
                response = self._api.request(method, path, json=json, params=params, headers=headers)
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
            except ValueError:
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
        task = Task.parse(answer)
        if not task.task_id:
            raise SubmitUncertain("the submit answer named no task; `retalk resume` settles it")
        self._issued.add(task.task_id)
        return task

    def recent_task_ids(self) -> set[str] | None:
        """The ids of the latest 50 tasks; None when the list cannot be had."""
        try:
            return {t.task_id for t in self.list(page_size=50)}
        except (ServiceError, TransportError):
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
        except (ServiceError, TransportError):
            return None
        return None

    def get(self, task_id: str) -> Task:
        return Task.parse(self._request("GET", f"/tasks/{task_id}"), task_id)

    def cancel(self, task_id: str) -> Task:
        """Cancel a PENDING task (the service cancels nothing that runs)."""
        try:
            self._request("POST", f"/tasks/{task_id}/cancel")
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
        body = self._request("GET", "/tasks", params=params)
        return [Task.parse({"output": item}) for item in body.get("data") or [] if isinstance(item, dict)]

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
                    response = self._plain.post(
                        policy.upload_host,
                        data=fields,
                        files=files,  # type: ignore[arg-type]
                        follow_redirects=False,  # a redirect is no stored file
                    )
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

    def download(self, url: str, path: str | os.PathLike[str], on_progress: Progress | None = None) -> Path:
        """Stream the result to ``path``: written under a temporary name, resumed with
        ``Range`` when the connection drops, checked against ``Content-Length``, then renamed."""
        target = Path(path)
        if target.is_dir() or not target.name or target.name in (".", ".."):
            raise DownloadError(f"{path}: is a folder; give a file name for the result")
        try:
            partial = _partial_for(target)
        except OSError as exc:
            raise _write_problem(target, exc) from None
        have = 0
        total: int | None = None
        try:
            with open(partial, "wb") as out:
                for attempt in range(self._retry.attempts):
                    # Identity: byte counts and Range offsets are about the bytes on disk.
                    headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={have}-"} if have else {})
                    try:
                        with self._plain.stream("GET", url, headers=headers) as response:
                            if response.status_code in (403, 404, 410):
                                raise ResultExpired(
                                    f"the result URL answered {response.status_code}: it has expired "
                                    "(results are kept 24 h) or is wrong"
                                )
                            if response.status_code == 429 or response.status_code >= 500:
                                raise _Retryable(response.status_code)
                            if response.status_code >= 400:
                                raise DownloadError(f"the result URL answered {response.status_code}")
                            if have and (response.status_code != 206 or _range_start(response) != have):
                                out.seek(0)
                                out.truncate()
                                have = 0  # the server sent it all again
                            total = _total_size(response, have, total)
                            for chunk in response.iter_bytes():  # as it arrives: a drop loses nothing
                                out.write(chunk)
                                have += len(chunk)
                                if on_progress is not None:
                                    on_progress(have, total)
                        if total is None or have == total:
                            break
                    except (httpx.TransportError, _Retryable):
                        if attempt == self._retry.attempts - 1:
                            raise DownloadError(f"the download kept failing at {have} bytes") from None
                    self._sleep(self._retry.delay(attempt, None, self._rng))
                if total is not None and have != total:
                    raise DownloadError(f"got {have} of {total} bytes")
                out.flush()
                os.fsync(out.fileno())
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


class _Retryable(Exception):
    """A result host's 429 or 5xx: worth another try."""


def _partial_for(target: Path) -> Path:
    """A fresh hidden temporary name beside ``target`` (two downloads never share one)."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:100]}.", suffix=".part")
    os.close(fd)
    return Path(name)


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
