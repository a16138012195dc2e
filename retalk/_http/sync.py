"""``Client``: the protocol core's steps run on ``httpx.Client``, waiting with ``sleep``.
It decides nothing itself (``core.py`` does); it sends what the core built, sleeps as long
as the core says and hands the answer back."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .._models import Task
from .core import BaseClient
from .policies import DownloadPolicy, TransferProgress
from .steps import Close, Drain, Open, Pause, Run, Step, Steps, T


class Client(BaseClient[httpx.BaseTransport, Callable[[float], None]]):
    """A VideoRetalk client. Use as a context manager, or call ``close()``.

    >>> with Client() as client:  # DASHSCOPE_API_KEY from the environment
    ...     task = client.submit(client.upload("talk.mp4"), client.upload("voice.wav"))
    ...     done = client.wait(task.task_id)
    ...     client.download(done.video_url, "out.mp4")
    """

    _api: httpx.Client
    _plain: httpx.Client

    def _default_sleep(self) -> Callable[[float], None]:
        return time.sleep

    def _connection(self, transport: httpx.BaseTransport | None, **options: Any) -> httpx.Client:
        return httpx.Client(transport=transport, **options)

    def close(self) -> None:
        self._api.close()
        self._plain.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, steps: Steps[T]) -> T:
        """Do each step the core asks for and hand it the outcome, or the exception."""
        run = Run(steps)
        while (step := run.next_step()) is not None:
            try:
                run.did(self._do(step))
            except BaseException as exc:  # the core decides what it means
                run.failed(exc)
        return run.result

    def _do(self, step: Step) -> Any:
        if isinstance(step, Open):
            client = self._api if step.api else self._plain
            return client.send(step.request, stream=True, follow_redirects=False)
        if isinstance(step, Drain):
            for chunk in _chunks(step.response):
                step.sink(chunk)
        elif isinstance(step, Close):
            step.response.close()
        elif isinstance(step, Pause):
            self._sleep(step.seconds)
        else:
            return self._run(step.steps)
        return None

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
        return self._run(
            self._submit(
                video_url, audio_url, ref_image_url, video_extension, query_face_threshold, known_ids
            )
        )

    def recent_task_ids(self) -> set[str] | None:
        """The ids of the latest 50 tasks; None when the list cannot be had."""
        return self._run(self._recent_task_ids())

    def get(self, task_id: str) -> Task:
        return self._run(self._get(task_id))

    def cancel(self, task_id: str) -> Task:
        """Cancel a PENDING task (the service cancels nothing that runs)."""
        return self._run(self._cancel(task_id))

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
        return self._run(self._list(page_no, page_size, status, start_time, end_time))

    def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        on_status: Callable[[Task, float], None] | None = None,
    ) -> Task:
        """Poll until the task is final (SUCCEEDED, FAILED, CANCELED) or the service answers
        UNKNOWN (not an end: see ``Task.unknown``), and return it; statuses this client does
        not know count as running. ``on_status`` gets each answer and the seconds waited.
        Raises ``TaskTimeout`` after ``timeout`` seconds."""
        return self._run(self._wait(task_id, timeout, on_status))

    # ------------------------------------------------------------------ files
    def upload(self, path: str | os.PathLike[str], on_progress: TransferProgress | None = None) -> str:
        """Put a local file in the temporary storage (48 h) and return its ``oss://`` URL.
        URLs (``http(s)://``, ``oss://``) are returned as they are."""
        return self._run(self._upload(path, on_progress))

    def download(
        self,
        url: str,
        path: str | os.PathLike[str],
        on_progress: TransferProgress | None = None,
        *,
        policy: DownloadPolicy | None = None,
        before_publish: Callable[[Path], None] | None = None,
    ) -> Path:
        """Stream the result to ``path``: written under a temporary name, resumed with
        ``Range`` when the connection drops, checked against ``Content-Length``, then renamed.
        Bounded by ``policy`` (the client's ``download_policy`` by default): its size, a
        deadline, a stall timeout and the redirects followed. ``before_publish(path)`` is
        called with the whole file under its temporary name just before the rename."""
        return self._run(self._download(url, path, on_progress, policy, before_publish))


def _chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body as it arrives, undecoded (a response already in memory, as it is)."""
    if response.is_stream_consumed:
        yield response.content
    else:
        yield from response.iter_raw()
