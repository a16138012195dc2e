"""``AsyncClient``: the protocol core's steps run on ``httpx.AsyncClient``, for running many
jobs at once; only the waiting is ``await``-ed. The same methods and promises as ``Client``,
because the same core (``core.py``) makes every decision."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .._models import Task
from .core import BaseClient
from .policies import DownloadPolicy, TransferProgress
from .steps import Close, Drain, Open, Pause, Run, Step, Steps, T


class AsyncClient(BaseClient[httpx.AsyncBaseTransport, Callable[[float], Awaitable[None]]]):
    """``async with AsyncClient() as client: task = await client.submit(...)``."""

    _api: httpx.AsyncClient
    _plain: httpx.AsyncClient

    def _default_sleep(self) -> Callable[[float], Awaitable[None]]:
        return asyncio.sleep

    def _connection(self, transport: httpx.AsyncBaseTransport | None, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, **options)

    @cached_property
    def _lock(self) -> asyncio.Lock:
        """Held by an ``Exclusive`` step's run (uploads at once share one policy fetch)."""
        return asyncio.Lock()

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
        run = Run(steps)
        while (step := run.next_step()) is not None:
            try:
                run.did(await self._do(step))
            except BaseException as exc:  # the core decides what it means
                run.failed(exc)
        return run.result

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
