"""What the command lines show on stderr while they work: a bar per long stage (a share
done), per upload and download (bytes), and a line for the task the service is running."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from preflight import printable

from .._models import Task
from .._run.job import Events


class Display:
    """The bars of one live display."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._bars: dict[str, Any] = {}
        self._status = progress.add_task("waiting", total=None, visible=False, amount="")

    def _bar(self, name: str, completed: float, total: float | None, amount: str) -> None:
        if name not in self._bars:
            self._bars[name] = self._progress.add_task(printable(name), total=total, amount=amount)
        self._progress.update(self._bars[name], completed=completed, total=total, amount=amount)

    def stage(self, name: str, fraction: float) -> None:
        self._bar(name, fraction, 1.0, f"{fraction:.0%}")

    def transfer(self, name: str, done: int, total: int | None) -> None:
        amount = decimal(done) + (f" of {decimal(total)}" if total else "")
        self._bar(name, done, total, amount)

    def waiting(self, task: Task, waited: float) -> None:
        self._progress.update(
            self._status,
            visible=True,
            description=f"task {printable(task.task_id)}: {printable(task.status)}, {waited:.0f} s",
        )

    def events(self) -> Events:
        return Events(
            on_upload=lambda role, done, total: self.transfer(f"upload {role}", done, total),
            on_status=self.waiting,
            on_download=lambda done, total: self.transfer("download", done, total),
        )


@contextmanager
def live_display(console: Console, enabled: bool) -> Iterator[Display | None]:
    """A live display on ``console`` (None when not ``enabled``: not a terminal, JSON)."""
    if not enabled:
        yield None
        return
    with Progress(
        # What the service sends and file names are shown, never read as markup.
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[amount]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield Display(progress)


def plain_console(stderr: bool = False) -> Console:
    """A console for lines of text: wrapped to a terminal's width, never when written to a
    pipe or a file (one line per item there, whole, for grep and for other programs)."""
    console = Console(stderr=stderr, highlight=False)
    console.soft_wrap = not console.is_terminal
    return console


def events_of(display: Display | None) -> Events:
    return display.events() if display is not None else Events()
