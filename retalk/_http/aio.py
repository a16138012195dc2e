"""``AsyncClient``: the protocol core's steps run on ``httpx.AsyncClient``, for running many
jobs at once; only the waiting is ``await``-ed. The same methods and promises as ``Client``,
because the same core (``core.py``) makes every decision."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .._models import Task
from .._quotas import RateLimiter
from .core import BaseClient
from .policies import MAX_ANSWER_BYTES, DownloadPolicy, PollPolicy, RetryPolicy, TransferProgress
from .steps import Close, Drain, Open, Pause, Step, Steps, T


class AsyncClient(BaseClient):
    """``async with AsyncClient() as client: task = await client.submit(...)``."""

    _api: httpx.AsyncClient
    _plain: httpx.AsyncClient

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
        super().__init__(
            api_key,
            base_url=base_url,
            retry=retry,
            poll=poll,
            seed=seed,
            download_policy=download_policy,
            max_answer_bytes=max_answer_bytes,
            limiter=limiter,
        )
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._api = httpx.AsyncClient(**self._api_options(timeout), transport=transport)
        # Redirects are followed by the core, bounded, their bodies never read.
        self._plain = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._plain.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self, steps: Steps[T]) -> T:
        """Do each step the core asks for and hand it the outcome, or the exception
        (a cancellation too: the core closes what it opened)."""
        outcome: Any = None
        failure: BaseException | None = None
        while True:
            try:
                step = steps.send(outcome) if failure is None else steps.throw(failure)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            try:
                outcome, failure = await self._do(step), None
            except BaseException as exc:  # the core decides what it means
                outcome, failure = None, exc

    async def _do(self, step: Step) -> Any:
        if isinstance(step, Open):
            client = self._api if step.api else self._plain
            return await client.send(step.request, stream=True, follow_redirects=False)
        if isinstance(step, Drain):
            async for chunk in _chunks(step.response):
                step.sink(chunk)
        elif isinstance(step, Close):
            await step.response.aclose()
        elif isinstance(step, Pause):
            await self._sleep(step.seconds)
        else:
            async with self._lock:
                return await self._run(step.steps)
        return None

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
        """As ``Client.submit``."""
        return await self._run(
            self._submit(
                video_url, audio_url, ref_image_url, video_extension, query_face_threshold, known_ids
            )
        )

    async def recent_task_ids(self) -> set[str] | None:
        return await self._run(self._recent_task_ids())

    async def get(self, task_id: str) -> Task:
        return await self._run(self._get(task_id))

    async def cancel(self, task_id: str) -> Task:
        return await self._run(self._cancel(task_id))

    async def list(
        self,
        *,
        page_no: int = 1,
        page_size: int = 10,
        status: str | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
    ) -> list[Task]:
        return await self._run(self._list(page_no, page_size, status, start_time, end_time))

    async def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        on_status: Callable[[Task, float], None] | None = None,
    ) -> Task:
        return await self._run(self._wait(task_id, timeout, on_status))

    # ------------------------------------------------------------------ files
    async def upload(self, path: str | os.PathLike[str], on_progress: TransferProgress | None = None) -> str:
        return await self._run(self._upload(path, on_progress))

    async def download(
        self,
        url: str,
        path: str | os.PathLike[str],
        on_progress: TransferProgress | None = None,
        *,
        policy: DownloadPolicy | None = None,
        before_publish: Callable[[Path], None] | None = None,
    ) -> Path:
        return await self._run(self._download(url, path, on_progress, policy, before_publish))


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives, undecoded (a response already in memory, as it is)."""
    if response.is_stream_consumed:
        yield response.content
    else:
        async for chunk in response.aiter_raw():
            yield chunk
