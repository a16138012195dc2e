"""The protocol core: every decision ``Client`` and ``AsyncClient`` make, made once.

``BaseClient`` (as in httpx) holds the settings and the state (the upload policy, the task
ids handed out, the service's clock offset) and builds every request. Each operation is a
generator of steps (``steps.py``): it yields the I/O it needs (send, read, close, pause) and
decides what the outcome means (retry and how long to wait, which exception, whether a lost
submit's task can be adopted). The two clients only run those steps.

Two sets of connections are kept apart on purpose: one talks to the API base URL and
carries the key; the other talks to the temporary storage and the result URLs and never
has it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from preflight import AtomicFile

from .._exceptions import (
    DownloadError,
    InputError,
    ProtocolError,
    ServerError,
    ServiceError,
    SubmitUncertain,
    TaskTimeout,
    ThrottledError,
    TransportError,
    UploadError,
    redact,
)
from .._models import Task, UploadPolicy
from .._quotas import RateLimiter, kind_of
from .download import (
    Meter,
    Received,
    Retryable,
    download_target,
    judge_result,
    too_many_redirects,
    why,
    write_problem,
)
from .policies import (
    MAX_ANSWER_BYTES,
    MAX_CLOCK_OFFSET_S,
    MAX_STORAGE_ANSWER_BYTES,
    MODEL,
    OUTAGE_REPORT_S,
    SUBMIT_PATH,
    DownloadPolicy,
    PollPolicy,
    RetryPolicy,
    TransferProgress,
    resolve_base_url,
    resolve_key,
)
from .replies import (
    BoundedBody,
    error_from,
    json_answer,
    listed_tasks,
    queried_task,
    retry_after,
    server_clock_offset,
    shown,
    submitted_task,
    surely_unsent,
    transport_error,
)
from .requests import ProgressReader, list_params, object_name, submit_request, task_path, upload_fields
from .steps import Close, Drain, Exclusive, Open, Pause, Steps

log = logging.getLogger("retalk")

#: What a client sends on (``httpx.BaseTransport`` or ``httpx.AsyncBaseTransport``) and how
#: it waits (a sleep, or an ``await``-ed one): the only settings in which the two differ.
TransportT = TypeVar("TransportT")
SleepT = TypeVar("SleepT")


class BaseClient(Generic[TransportT, SleepT]):
    """The settings, the state and the steps of every operation; ``Client`` and
    ``AsyncClient`` add the connections and run the steps (``_submit``, ``_get``, ... are
    the steps of ``submit``, ``get``, ...). The constructor is theirs: one signature, so
    that the two take the same settings."""

    _api: httpx.Client | httpx.AsyncClient
    _plain: httpx.Client | httpx.AsyncClient

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        transport: TransportT | None = None,
        sleep: SleepT | None = None,
        seed: int | None = None,
        download_policy: DownloadPolicy | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        limiter: RateLimiter | None = None,
    ) -> None:
        """``transport``: httpx's (a mock one in tests); ``sleep``: how the client waits
        (default ``time.sleep``, ``asyncio.sleep`` for ``AsyncClient``); ``seed``: the
        retry jitter's, for repeatable tests."""
        self._key = resolve_key(api_key)
        self.base_url = resolve_base_url(base_url)
        #: Keeps every request of this client inside the service's quotas, however many run
        #: at once; give clients of one account the same one (``RateLimiter(Quotas(...))``)
        #: to pace them together.
        self.limiter = limiter or RateLimiter()
        self._retry = retry or RetryPolicy()
        self._poll = poll or PollPolicy()
        self._downloads = download_policy or DownloadPolicy()
        self._max_answer = max_answer_bytes
        self._rng = random.Random(seed)
        self._policy: UploadPolicy | None = None
        #: Task ids this client's submits returned (never adopted for another submit).
        self._issued: set[str] = set()
        #: The service's clock minus this machine's (s), from its last answer's ``Date``;
        #: None until it answered. Its task times are on its clock, not ours.
        self.clock_offset: float | None = None
        #: API requests sent (retries included), for benchmarks.
        self.requests_sent = 0
        self._sleep: SleepT = sleep if sleep is not None else self._default_sleep()
        self._api = self._connection(transport, **self._api_options(timeout))
        # Redirects are followed by the core, bounded, their bodies never read whole.
        self._plain = self._connection(transport, timeout=timeout)

    def _default_sleep(self) -> SleepT:
        raise NotImplementedError

    def _connection(self, transport: TransportT | None, **options: Any) -> httpx.Client | httpx.AsyncClient:
        """A connection pool of this client's kind on ``transport``, with httpx's ``options``."""
        raise NotImplementedError

    def _api_options(self, timeout: float) -> dict[str, Any]:
        """The API connections' settings: the key, and no proxy from the environment (none
        ever sees the key). Storage and result hosts get only the timeout, never the key."""
        return {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {self._key}"},
            "timeout": timeout,
            "trust_env": False,
        }

    # ------------------------------------------------------------------ plumbing
    def _read(self, request: httpx.Request, api: bool, limit: int, what: str) -> Steps[httpx.Response]:
        """Send ``request`` and read its answer within ``limit`` bytes."""
        response: httpx.Response = yield Open(request, api)
        try:
            body = BoundedBody(response, limit, what)
            yield Drain(response, body.feed)
        finally:
            yield Close(response)
        return body.response()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> Steps[dict[str, Any]]:
        """One API call with retries on 429, 5xx and network errors. A call that is not
        idempotent (a submit) is never re-sent once it may have reached the service."""
        kind = kind_of(method, path, SUBMIT_PATH)
        for attempt in range(self._retry.attempts):
            last = attempt == self._retry.attempts - 1
            pause = self.limiter.reserve(kind)  # every try counts against the quota
            if pause > 0:
                yield Pause(pause)
            self.requests_sent += 1
            try:
                wanted = {"Accept-Encoding": "identity"} | (headers or {})
                request = self._api.build_request(method, path, json=json, params=params, headers=wanted)
                response = yield from self._read(request, True, self._max_answer, f"{method} {path}")
            except httpx.TransportError as exc:
                reason = redact(f"{type(exc).__name__}: {exc}", self._key)
                if not idempotent and not surely_unsent(exc):
                    raise SubmitUncertain(f"{method} {path}: {reason}") from None
                if last:
                    raise transport_error(f"{method} {path}: {reason}", exc) from None
                log.debug("%s %s: %s; retrying", method, path, reason)
                yield Pause(self._retry.delay(attempt, None, self._rng))
                continue
            log.debug("%s %s -> %s", method, path, response.status_code)
            self._note_clock(response)
            if response.status_code == 429 or response.status_code >= 500:
                error = error_from(response, self._key)
                if not idempotent and response.status_code >= 500:
                    raise SubmitUncertain(f"{method} {path}: {error}")
                if last:
                    raise error
                floor = self.limiter.throttled_floor(kind) if response.status_code == 429 else 0.0
                yield Pause(self._retry.delay(attempt, retry_after(response), self._rng, floor))
                continue
            if response.status_code >= 400:
                raise error_from(response, self._key)
            return json_answer(response, f"{method} {path}", idempotent)
        raise AssertionError("unreachable")

    def _note_clock(self, response: httpx.Response) -> None:
        """The service's clock offset, from a 2xx answer's Date (a proxy's error page has
        its own clock), and only a plausible one: a Date days off is a broken header, not a
        clock to move task times by."""
        offset = server_clock_offset(response)
        if offset is not None and response.is_success and abs(offset) <= MAX_CLOCK_OFFSET_S:
            self.clock_offset = offset

    # ------------------------------------------------------------------ tasks
    def _submit(
        self,
        video_url: str,
        audio_url: str,
        ref_image_url: str | None,
        video_extension: bool | None,
        query_face_threshold: int | None,
        known_ids: set[str] | None,
    ) -> Steps[Task]:
        body, headers = submit_request(
            video_url, audio_url, ref_image_url, video_extension, query_face_threshold
        )
        known = known_ids if known_ids is not None else (yield from self._recent_task_ids())
        try:
            answer = yield from self._call("POST", SUBMIT_PATH, json=body, headers=headers, idempotent=False)
        except SubmitUncertain as exc:
            # It may have gone through. Never sent again from here: adopt the task if exactly
            # one new one appeared, else leave it to `retalk resume` to settle.
            adopted = yield from self._single_new_task(known)
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

    def _recent_task_ids(self) -> Steps[set[str] | None]:
        try:
            tasks = yield from self._list(1, 50, None, None, None)
        except (ServiceError, TransportError, ProtocolError):
            return None  # no list: an uncertain submit will then be reported, not adopted
        return {t.task_id for t in tasks}

    def _single_new_task(self, known: set[str] | None, checks: int = 3) -> Steps[Task | None]:
        """The one task that appeared since ``known`` and that this client has not
        handed out already; None when there is none, several, or no list to read."""
        if known is None:
            return None
        try:
            for _ in range(checks):
                yield Pause(1.0)
                listed = yield from self._list(1, 50, None, None, None)
                fresh = [t for t in listed if t.task_id not in known and t.task_id not in self._issued]
                if len(fresh) == 1:
                    self._issued.add(fresh[0].task_id)
                    return (yield from self._get(fresh[0].task_id))
                if len(fresh) > 1:
                    return None
        except (ServiceError, TransportError, ProtocolError):
            return None
        return None

    def _get(self, task_id: str) -> Steps[Task]:
        return queried_task((yield from self._call("GET", task_path(task_id))), task_id)

    def _cancel(self, task_id: str) -> Steps[Task]:
        try:
            yield from self._call("POST", task_path(task_id, "/cancel"))
        except InputError:
            task = yield from self._get(task_id)
            if task.status == "CANCELED":
                return task  # an earlier try did it; its answer was lost
            raise
        return (yield from self._get(task_id))

    def _list(
        self, page_no: int, page_size: int, status: str | None, start_time: str | None, end_time: str | None
    ) -> Steps[list[Task]]:
        params = list_params(page_no, page_size, status, start_time, end_time)
        return listed_tasks((yield from self._call("GET", "/tasks", params=params)))

    def _wait(
        self, task_id: str, timeout: float | None, on_status: Callable[[Task, float], None] | None
    ) -> Steps[Task]:
        started = time.monotonic()
        answered: float | None = None  # the last answer in this wait (none yet)
        told: float | None = None
        delays = self._poll.delays(self._rng)
        while True:
            try:
                task = yield from self._get(task_id)
            except (TransportError, ServerError, ThrottledError) as exc:
                # After its own retries. The service is down or restarting; the task is not
                # lost with it: keep polling, and give up only after a long outage.
                now = time.monotonic()
                pause = next(delays)
                told = outage_or_raise(exc, task_id, self._poll, timeout, started, answered, now, pause, told)
                log.info("task %s: no answer (%s); asking again in %.0f s", task_id, exc, pause)
                yield Pause(pause)
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
            yield Pause(pause)

    # ------------------------------------------------------------------ files
    def _upload_policy(self, refresh: bool = False) -> Steps[UploadPolicy]:
        if refresh or self._policy is None or self._policy.expired(time.monotonic()):
            body = yield from self._call("GET", "/uploads", params={"action": "getPolicy", "model": MODEL})
            try:
                self._policy = UploadPolicy.parse(body, time.monotonic())
            except (KeyError, TypeError) as exc:
                raise ServerError(200, "BadResponse", f"the upload policy lacks {exc}") from None
        return self._policy

    def _upload(self, path: str | os.PathLike[str], on_progress: TransferProgress | None) -> Steps[str]:
        text = os.fspath(path)
        if re.match(r"^(https?|oss)://", text):
            return text
        size = os.path.getsize(text)
        # Uploads running at once share one policy fetch.
        policy: UploadPolicy = yield Exclusive(self._upload_policy())
        if size > policy.max_file_size_mb * 1024 * 1024:
            raise UploadError(
                f"{text}: {size / 2**20:.1f} MiB, over the storage limit of {policy.max_file_size_mb:g} MB"
            )
        name = object_name(text)
        for attempt in range(self._retry.attempts):
            key = f"{policy.upload_dir}/{name}"
            try:
                with open(text, "rb") as handle:
                    # httpx writes the form fields first and the file last, as the storage needs.
                    files = {
                        "file": (name, ProgressReader(handle, size, on_progress), "application/octet-stream")
                    }
                    request = self._plain.build_request(
                        "POST",
                        policy.upload_host,
                        data=upload_fields(policy, key),
                        files=files,  # type: ignore[arg-type]
                    )
                    # A redirect is no stored file; the answer is read within a bound.
                    what = f"upload of {text}"
                    response = yield from self._read(request, False, MAX_STORAGE_ANSWER_BYTES, what)
            except httpx.InvalidURL:
                raise UploadError(
                    f"{text}: the upload policy names the storage host {shown(policy.upload_host)}, "
                    "which is not a URL"
                ) from None
            except httpx.TransportError as exc:
                if attempt == self._retry.attempts - 1:
                    raise TransportError(f"upload of {text}: {type(exc).__name__}: {exc}") from None
                yield Pause(self._retry.delay(attempt, None, self._rng))
                continue
            if response.status_code in (200, 204):
                return f"oss://{key}"
            if response.status_code == 409 and attempt > 0:
                return f"oss://{key}"  # our own earlier try arrived; overwriting is forbidden
            answer = response.text[:300]
            if response.status_code == 403 and "expired" in answer.lower():
                policy = yield Exclusive(self._upload_policy(refresh=True))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                yield Pause(self._retry.delay(attempt, retry_after(response), self._rng))
                continue
            raise UploadError(f"{text}: the storage refused it: {response.status_code} {answer}")
        raise UploadError(f"{text}: the storage kept failing after {self._retry.attempts} tries")

    def _download(
        self,
        url: str,
        path: str | os.PathLike[str],
        on_progress: TransferProgress | None,
        policy: DownloadPolicy | None,
        before_publish: Callable[[Path], None] | None,
    ) -> Steps[Path]:
        bounds = policy or self._downloads
        target = download_target(url, path)
        try:
            partial = AtomicFile.create(target)
        except OSError as exc:
            raise write_problem(target, exc) from None
        for orphan in partial.swept:
            log.info("removed %s, left by a download that was killed", orphan)
        meter = Meter(bounds)
        received = Received(partial.file, meter, on_progress)
        reason = ""
        try:
            for attempt in range(self._retry.attempts):
                # Identity: byte counts and Range offsets are about the bytes on disk.
                have = received.have
                headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={have}-"} if have else {})
                try:
                    response = yield from self._open_result(url, headers, meter)
                    try:
                        received.start(response)
                        yield Drain(response, received.feed)
                    finally:
                        yield Close(response)
                    if received.whole():
                        break
                    reason = f"the connection ended at {received.have} of {received.total} bytes"
                except (httpx.TransportError, Retryable) as exc:
                    reason = why(exc, bounds)
                    if attempt == self._retry.attempts - 1:
                        raise DownloadError(
                            f"the download kept failing at {received.have} bytes ({reason})"
                        ) from None
                delay = self._retry.delay(attempt, None, self._rng)
                yield Pause(meter.pause(delay, received.have, received.total))
            if not received.whole():
                raise DownloadError(f"got {received.have} of {received.total} bytes ({reason})")
            partial.publish(before_publish)  # synced, then named while still locked
        except OSError as exc:
            # Our side failed (a full disk): not the download. Said as such, and nothing
            # half-written is left, under the final name or the temporary one.
            partial.discard()
            raise write_problem(target, exc) from None
        except BaseException:
            partial.discard()
            raise
        return target

    def _open_result(self, url: str, headers: dict[str, str], meter: Meter) -> Steps[httpx.Response]:
        """The result host's answer, open to stream (the caller closes it), after at most
        ``max_redirects`` redirects (whose bodies are never read), judged by ``judge_result``."""
        try:
            request = self._plain.build_request(
                "GET", url, headers=headers, timeout=meter.timeout(self._plain.timeout)
            )
            for _ in range(meter.policy.max_redirects + 1):
                response: httpx.Response = yield Open(request, False)
                if response.next_request is None:
                    break
                yield Close(response)
                request = response.next_request
            else:
                raise DownloadError(too_many_redirects(url, meter.policy))
        except httpx.TransportError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DownloadError(f"the result URL {shown(url)}: {why(exc)}") from None
        try:
            judge_result(response)
        except BaseException:
            yield Close(response)
            raise
        return response


def outage_or_raise(
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
