"""``AsyncClient``: the same methods and promises as ``Client``, on ``httpx.AsyncClient``,
for running many jobs at once. The request shapes, error mapping and retry rules are the
synchronous client's own functions; only the waiting is ``await``-ed."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ._client import (
    MAX_ANSWER_BYTES,
    MAX_STORAGE_ANSWER_BYTES,
    MODEL,
    SUBMIT_PATH,
    DownloadPolicy,
    PollPolicy,
    Progress,
    RetryPolicy,
    _achunks,
    _Body,
    _download_target,
    _error_from,
    _judge_result,
    _Meter,
    _outage_or_raise,
    _partial_for,
    _publish,
    _range_start,
    _Reader,
    _retry_after,
    _Retryable,
    _surely_unsent,
    _too_many_redirects,
    _total_size,
    _transport_error,
    _why,
    _write_problem,
    listed_tasks,
    object_name,
    queried_task,
    resolve_base_url,
    resolve_key,
    shown,
    submit_request,
    submitted_task,
    task_path,
    upload_fields,
)
from ._exceptions import (
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
from ._models import Task, UploadPolicy
from ._quotas import RateLimiter, kind_of


class AsyncClient:
    """``async with AsyncClient() as client: task = await client.submit(...)``."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        seed: int | None = None,
        download_policy: DownloadPolicy | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._key = resolve_key(api_key)
        self.base_url = resolve_base_url(base_url)
        #: Shared by all the requests of this client, however many run at once: a batch
        #: of jobs stays inside the account's quotas as a whole.
        self.limiter = limiter or RateLimiter()
        self._retry = retry or RetryPolicy()
        self._poll = poll or PollPolicy()
        self._downloads = download_policy or DownloadPolicy()
        self._max_answer = max_answer_bytes
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._policy: UploadPolicy | None = None
        self._policy_lock = asyncio.Lock()
        self._issued: set[str] = set()
        #: API requests sent (retries included), for benchmarks.
        self.requests_sent = 0
        self._api = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=timeout,
            transport=transport,
            trust_env=False,  # no proxy from the environment ever sees the key
        )
        # Redirects are followed by hand, bounded, their bodies never read.
        self._plain = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._plain.aclose()

    async def _answer(
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
        response = await self._api.send(request, stream=True)
        try:
            body = _Body(response, self._max_answer, f"{method} {path}")
            async for chunk in _achunks(response):
                body.feed(chunk)
        finally:
            await response.aclose()
        return body.response()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        kind = kind_of(method, path, SUBMIT_PATH)
        for attempt in range(self._retry.attempts):
            last = attempt == self._retry.attempts - 1
            pause = self.limiter.reserve(kind)
            if pause > 0:
                await self._sleep(pause)
            self.requests_sent += 1
            try:
                response = await self._answer(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                reason = redact(f"{type(exc).__name__}: {exc}", self._key)
                if not idempotent and not _surely_unsent(exc):
                    raise SubmitUncertain(f"{method} {path}: {reason}") from None
                if last:
                    raise _transport_error(f"{method} {path}: {reason}", exc) from None
                await self._sleep(self._retry.delay(attempt, None, self._rng))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                error = _error_from(response, self._key)
                if not idempotent and response.status_code >= 500:
                    raise SubmitUncertain(f"{method} {path}: {error}")
                if last:
                    raise error
                floor = self.limiter.throttled_floor(kind) if response.status_code == 429 else 0.0
                await self._sleep(self._retry.delay(attempt, _retry_after(response), self._rng, floor))
                continue
            if response.status_code >= 400:
                raise _error_from(response, self._key)
            try:
                body = response.json()
            except (ValueError, RecursionError):
                if not idempotent:
                    raise SubmitUncertain(f"{method} {path}: the answer was not JSON") from None
                raise ServerError(response.status_code, "BadResponse", "the answer was not JSON") from None
            return body if isinstance(body, dict) else {}
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ tasks
    async def submit(
        self,
        video_url: str,
        audio_url: str,
        ref_image_url: str | None = None,
        *,
        video_extension: bool | None = None,
        query_face_threshold: int | None = None,
        known_ids: set[str] | None = None,
    ) -> Task:
        body, headers = submit_request(
            video_url, audio_url, ref_image_url, video_extension, query_face_threshold
        )
        known = known_ids if known_ids is not None else await self.recent_task_ids()
        try:
            answer = await self._request("POST", SUBMIT_PATH, json=body, headers=headers, idempotent=False)
        except SubmitUncertain as exc:
            adopted = await self._single_new_task(known)
            if adopted is not None:
                return adopted
            raise SubmitUncertain(
                f"{exc}; the task list shows no single new task, so it was not sent again "
                "(`retalk resume` settles it)"
            ) from None
        task = submitted_task(answer)
        self._issued.add(task.task_id)
        return task

    async def recent_task_ids(self) -> set[str] | None:
        try:
            return {t.task_id for t in await self.list(page_size=50)}
        except (ServiceError, TransportError, ProtocolError):
            return None

    async def _single_new_task(self, known: set[str] | None, checks: int = 3) -> Task | None:
        if known is None:
            return None
        try:
            for _ in range(checks):
                await self._sleep(1.0)
                listed = await self.list(page_size=50)
                fresh = [t for t in listed if t.task_id not in known and t.task_id not in self._issued]
                if len(fresh) == 1:
                    self._issued.add(fresh[0].task_id)
                    return await self.get(fresh[0].task_id)
                if len(fresh) > 1:
                    return None
        except (ServiceError, TransportError, ProtocolError):
            return None
        return None

    async def get(self, task_id: str) -> Task:
        return queried_task(await self._request("GET", task_path(task_id)), task_id)

    async def cancel(self, task_id: str) -> Task:
        try:
            await self._request("POST", task_path(task_id, "/cancel"))
        except InputError:
            task = await self.get(task_id)
            if task.status == "CANCELED":
                return task  # an earlier try did it; its answer was lost
            raise
        return await self.get(task_id)

    async def list(self, *, page_no: int = 1, page_size: int = 10, status: str | None = None) -> list[Task]:
        params: dict[str, Any] = {"page_no": page_no, "page_size": page_size, "model_name": MODEL}
        if status:
            params["status"] = status
        return listed_tasks(await self._request("GET", "/tasks", params=params))

    async def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        on_status: Callable[[Task, float], None] | None = None,
    ) -> Task:
        started = time.monotonic()
        answered: float | None = None  # the last answer in this wait (none yet)
        told: float | None = None
        delays = self._poll.delays(self._rng)
        while True:
            try:
                task = await self.get(task_id)
            except (TransportError, ServerError, ThrottledError) as exc:
                # As the synchronous client: an outage of a service that answered in this
                # wait is waited out (and said); one never reached fails at once.
                now = time.monotonic()
                pause = next(delays)
                told = _outage_or_raise(
                    exc, task_id, self._poll, timeout, started, answered, now, pause, told
                )
                await self._sleep(pause)
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
            await self._sleep(pause)

    # ------------------------------------------------------------------ files
    async def _upload_policy(self, refresh: bool = False) -> UploadPolicy:
        async with self._policy_lock:  # many uploads at once share one policy
            if refresh or self._policy is None or self._policy.expired(time.monotonic()):
                body = await self._request("GET", "/uploads", params={"action": "getPolicy", "model": MODEL})
                try:
                    self._policy = UploadPolicy.parse(body, time.monotonic())
                except (KeyError, TypeError) as exc:
                    raise ServerError(200, "BadResponse", f"the upload policy lacks {exc}") from None
            return self._policy

    async def upload(self, path: str | os.PathLike[str], on_progress: Progress | None = None) -> str:
        text = os.fspath(path)
        if re.match(r"^(https?|oss)://", text):
            return text
        size = os.path.getsize(text)
        policy = await self._upload_policy()
        if size > policy.max_file_size_mb * 1024 * 1024:
            raise UploadError(
                f"{text}: {size / 2**20:.1f} MiB, over the storage limit of {policy.max_file_size_mb:g} MB"
            )
        name = object_name(text)
        for attempt in range(self._retry.attempts):
            key = f"{policy.upload_dir}/{name}"
            try:
                with open(text, "rb") as handle:
                    # Read in chunks as it is sent (never the whole file in memory), sized up
                    # front so the storage gets a Content-Length.
                    files = {"file": (name, _Reader(handle, size, on_progress), "application/octet-stream")}
                    request = self._plain.build_request(
                        "POST",
                        policy.upload_host,
                        data=upload_fields(policy, key),
                        files=files,  # type: ignore[arg-type]
                    )
                    sent = await self._plain.send(request, stream=True, follow_redirects=False)
                    try:
                        body = _Body(sent, MAX_STORAGE_ANSWER_BYTES, f"upload of {text}")
                        async for chunk in _achunks(sent):
                            body.feed(chunk)
                    finally:
                        await sent.aclose()
                    response = body.response()
            except httpx.InvalidURL:
                raise UploadError(
                    f"{text}: the upload policy names the storage host {shown(policy.upload_host)}, "
                    "which is not a URL"
                ) from None
            except httpx.TransportError as exc:
                if attempt == self._retry.attempts - 1:
                    raise TransportError(f"upload of {text}: {type(exc).__name__}: {exc}") from None
                await self._sleep(self._retry.delay(attempt, None, self._rng))
                continue
            if response.status_code in (200, 204):
                return f"oss://{key}"
            if response.status_code == 409 and attempt > 0:
                return f"oss://{key}"
            answer = response.text[:300]
            if response.status_code == 403 and "expired" in answer.lower():
                policy = await self._upload_policy(refresh=True)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                await self._sleep(self._retry.delay(attempt, _retry_after(response), self._rng))
                continue
            raise UploadError(f"{text}: the storage refused it: {response.status_code} {answer}")
        raise UploadError(f"{text}: the storage kept failing after {self._retry.attempts} tries")

    async def download(
        self,
        url: str,
        path: str | os.PathLike[str],
        on_progress: Progress | None = None,
        *,
        policy: DownloadPolicy | None = None,
        before_publish: Callable[[Path], None] | None = None,
    ) -> Path:
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
                        async with self._result(url, headers, meter) as response:
                            if have and (response.status_code != 206 or _range_start(response) != have):
                                out.seek(0)
                                out.truncate()
                                have = 0
                            total = meter.total(_total_size(response, have, total))
                            meter.begin(have)
                            async for chunk in _achunks(response):
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
                    await self._sleep(meter.pause(self._retry.delay(attempt, None, self._rng), have, total))
                if total is not None and have != total:
                    raise DownloadError(f"got {have} of {total} bytes ({reason})")
                out.flush()
                os.fsync(out.fileno())
                if before_publish is not None:
                    before_publish(partial)  # the whole file, before it takes its name
                _publish(partial, target)  # while still open and locked
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise _write_problem(target, exc) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target

    @asynccontextmanager
    async def _result(
        self, url: str, headers: dict[str, str], meter: _Meter
    ) -> AsyncIterator[httpx.Response]:
        """As ``Client._result``: bounded redirects, bodies unread, the answer judged."""
        try:
            request = self._plain.build_request(
                "GET", url, headers=headers, timeout=meter.timeout(self._plain.timeout)
            )
            for _ in range(meter.policy.max_redirects + 1):
                response = await self._plain.send(request, stream=True, follow_redirects=False)
                if response.next_request is None:
                    break
                await response.aclose()
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
            await response.aclose()
