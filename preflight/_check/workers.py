"""Checking files in worker processes, so that a crash or a hang costs only its own file.

A file can make FFmpeg or mediapipe crash the process (a segfault, an abort) or read for
ever. In this process that would end the whole run, every other file's report with it.
Here each worker checks one file at a time, so the file in flight when a worker dies is
the one that killed it: the parent gives it an ``InvalidFile.Openerror`` finding, starts
a fresh worker and goes on. A crash is retried once in a fresh worker first (it might
have come from an earlier file's leftovers, or from a kill meant for the machine, not the
file); a file that is still being read after the time limit has its worker killed.

Workers are spawned, not forked: a fork of a process running FFmpeg or mediapipe threads
can hang. Each imports preflight anew (about 0.6 s; mediapipe takes 1 s more, on first
use), so a file's clock starts only when its worker has said it is ready.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from .._exceptions import PreflightError
from .._models import FileReport, Finding, Role, Severity
from .._probe.faces.loader import LazyEngine
from .file import _check_isolated, file_report

if TYPE_CHECKING:
    from .options import CheckOptions

#: How long one file may take in a worker (s), by default: far above any real check (a
#: 60 s 1080p clip analysed in full takes 3-6 s on two cores; see docs/performance.md).
DEFAULT_TIMEOUT_S = 300.0

# Test-only fault triggers, read only inside a worker (never in the checking process):
# a worker about to check a file whose path contains the variable's value crashes (SIGSEGV)
# or hangs (sleeps), as a real FFmpeg bug would; with a marker path too, it crashes only
# while that file does not exist (creating it: a crash that does not come back). The tests
# use them because no file that really crashes FFmpeg is at hand; nothing in preflight
# sets them.
TEST_CRASH_ENV = "PREFLIGHT_TEST_CRASH_ON"
TEST_CRASH_ONCE_ENV = "PREFLIGHT_TEST_CRASH_MARKER"
TEST_HANG_ENV = "PREFLIGHT_TEST_HANG_ON"

_ISOLATION_KINDS = ("crash", "timeout")


def isolation_failure(report: FileReport) -> bool:
    """The report says the file crashed or hung a worker (not worth caching: a kill for
    lack of memory or a slow moment of the machine may not happen again)."""
    return any(f.details.get("isolation") in _ISOLATION_KINDS for f in report.findings)


def _test_faults(name: str) -> None:
    crash_on, marker = os.environ.get(TEST_CRASH_ENV), os.environ.get(TEST_CRASH_ONCE_ENV)
    if crash_on and crash_on in name:
        if marker:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return  # crashed once already
        with contextlib.suppress(ImportError, ValueError, OSError):
            import resource  # no core file in the tests' folder

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.kill(os.getpid(), signal.SIGSEGV)
    hang_on = os.environ.get(TEST_HANG_ENV)
    if hang_on and hang_on in name:
        time.sleep(24 * 3600)


def _exit_with(parent_sentinel: int) -> None:
    wait([parent_sentinel])
    os._exit(1)


def _serve(conn: Connection, options: CheckOptions) -> None:
    """A worker: check the files the parent sends, one at a time, until it sends None."""
    # Ctrl-C reaches the whole process group; the parent ends its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        # A worker stuck in FFmpeg must not outlive a parent that was killed outright.
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    engine = LazyEngine()
    try:
        conn.send(("ready", -1, None))
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if task is None:
                return
            index, name, role = task
            _test_faults(name)
            try:
                report = _check_isolated(name, role, options, engine)
            except PreflightError as exc:  # the face engine cannot load: every file's problem
                conn.send(("fatal", index, exc))
                return
            conn.send(("done", index, report))
    finally:
        engine.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def crash_finding(exitcode: int | None) -> Finding:
    """The finding of a file whose worker died while checking it."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        how = f"signal {number} {_signal_name(number)}"
        if number == getattr(signal, "SIGKILL", None):  # POSIX only
            how += ", perhaps killed for lack of memory"
    else:
        how = f"exit status {exitcode}"
    return Finding(
        "InvalidFile.Openerror",
        Severity.ERROR,
        f"preflight's decoder crashed on this file ({how}); the service most likely cannot "
        "read it either. Please report it as a preflight bug, with the file if you can.",
        False,
        {"isolation": "crash", "exit_code": exitcode},
    )


def timeout_finding(timeout: float) -> Finding:
    """The finding of a file still being read after ``timeout`` seconds."""
    return Finding(
        "InvalidFile.Openerror",
        Severity.ERROR,
        f"reading this file took longer than {timeout:g} s, so preflight stopped; a file "
        "this slow to read is most likely damaged (on a busy machine, raise the limit with "
        "--timeout).",
        False,
        {"isolation": "timeout", "timeout_s": timeout},
    )


#: A worker that has not started within this time (s) means a broken installation.
_STARTUP_LIMIT_S = 120.0


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    started_at: float
    ready: bool = False
    #: How many files it has been given.
    given: int = 0
    #: The index of the file it is checking, and when it was sent.
    task: int | None = None
    sent_at: float = 0.0


@dataclass
class _Supervisor:
    """Runs ``work`` through up to ``jobs`` workers, one file in flight per worker."""

    work: list[tuple[str, Role]]
    options: CheckOptions
    jobs: int
    timeout: float | None
    on_file: Callable[[int, int, str], None] | None
    reports: dict[int, FileReport] = field(default_factory=dict)
    queue: deque[int] = field(default_factory=deque)
    #: Files whose worker crashed once: retried in a fresh worker, and the next crash is theirs.
    crashed_once: set[int] = field(default_factory=set)
    workers: list[_Worker] = field(default_factory=list)

    def run(self) -> list[FileReport]:
        self.queue.extend(range(len(self.work)))
        context = multiprocessing.get_context("spawn")
        try:
            while len(self.reports) < len(self.work):
                self._staff(context)
                self._dispatch()
                self._wait()
        finally:
            self._release()
        return [self.reports[i] for i in range(len(self.work))]

    def _release(self) -> None:
        """End every worker: the idle ones close their engines and exit (within 2 s between
        them all), the busy ones (an error or Ctrl-C in this process) are killed."""
        idle = [w for w in self.workers if w.ready and w.task is None]
        for worker in idle:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        deadline = time.monotonic() + 2.0
        for worker in idle:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            self._kill(worker)

    def _staff(self, context: Any) -> None:
        busy = sum(1 for w in self.workers if w.task is not None)
        while len(self.workers) < min(self.jobs, len(self.queue) + busy):
            self._start(context)
        retrying = any(i in self.crashed_once for i in self.queue)
        if retrying and not any(w.given == 0 for w in self.workers):
            self._start(context)  # one more for a while: a retry needs a fresh worker

    def _start(self, context: Any) -> None:
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_serve, args=(child_end, self.options), name="preflight-check", daemon=True
        )
        process.start()
        child_end.close()  # so that the parent reads EOF when the worker dies
        self.workers.append(_Worker(process, parent_end, time.monotonic()))

    def _dispatch(self) -> None:
        for worker in list(self.workers):
            if not worker.ready or worker.task is not None:
                continue
            # A retry goes only to a worker that has checked nothing yet, so that its second
            # crash cannot be an earlier file's doing.
            index = next((i for i in self.queue if worker.given == 0 or i not in self.crashed_once), None)
            if index is None:
                continue
            name, role = self.work[index]
            try:
                worker.conn.send((index, name, role))
            except OSError:  # it died idle: no file's fault
                self._kill(worker)
                self.workers.remove(worker)
                continue
            self.queue.remove(index)
            worker.task, worker.sent_at, worker.given = index, time.monotonic(), worker.given + 1
            if self.on_file is not None:
                self.on_file(min(len(self.reports) + 1, len(self.work)), len(self.work), name)

    def _deadline(self, worker: _Worker) -> float | None:
        if not worker.ready:
            return worker.started_at + _STARTUP_LIMIT_S
        if worker.task is not None and self.timeout is not None:
            return worker.sent_at + self.timeout
        return None

    def _wait(self) -> None:
        deadlines = [d for d in map(self._deadline, self.workers) if d is not None]
        wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        objects: list[Any] = [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]
        ready = set(wait(objects, wait_for))
        for worker in list(self.workers):
            if worker.conn in ready:
                if not self._receive(worker):
                    self._lost(worker, crash=True)
            elif worker.process.sentinel in ready:
                self._lost(worker, crash=True)
        now = time.monotonic()
        for worker in list(self.workers):
            deadline = self._deadline(worker)
            if deadline is not None and now >= deadline:
                self._lost(worker, crash=False)

    def _receive(self, worker: _Worker) -> bool:
        """Take the worker's message; False when it died (EOF, or half a message)."""
        try:
            kind, index, payload = worker.conn.recv()
        except Exception:  # EOF, or whatever unpickling half a message raises
            return False
        if kind == "ready":
            worker.ready = True
        elif kind == "done":
            self.reports[index] = payload
            worker.task = None
        elif kind == "fatal":
            raise payload
        return True

    def _lost(self, worker: _Worker, *, crash: bool) -> None:
        """The worker died (``crash``) or overran its time: its file pays, not the others."""
        self._kill(worker)
        self.workers.remove(worker)
        if not worker.ready:
            how = f"exit status {worker.process.exitcode}" if crash else f"silent for {_STARTUP_LIMIT_S:g} s"
            raise PreflightError(f"a checking process could not start ({how})")
        index = worker.task
        if index is None:
            return  # died idle: nothing lost, a fresh one takes over
        name, role = self.work[index]
        if not crash:
            assert self.timeout is not None
            self.reports[index] = _alone(name, role, timeout_finding(self.timeout), self.options)
        elif index in self.crashed_once:
            self.reports[index] = _alone(name, role, crash_finding(worker.process.exitcode), self.options)
        else:
            self.crashed_once.add(index)
            self.queue.appendleft(index)

    @staticmethod
    def _kill(worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.conn.close()


def _alone(name: str, role: Role, finding: Finding, options: CheckOptions) -> FileReport:
    return file_report(name, role, [finding], options, None)


def check_in_workers(
    work: list[tuple[str, Role]],
    options: CheckOptions,
    jobs: int,
    timeout: float | None,
    on_file: Callable[[int, int, str], None] | None = None,
) -> list[FileReport]:
    """Check ``work`` in up to ``jobs`` worker processes; reports in the order of ``work``.

    A file that crashes its worker twice (each time in a fresh one) or is still being
    checked after ``timeout`` seconds gets an ``InvalidFile.Openerror`` finding; the other
    files are checked as usual.
    """
    return _Supervisor(work, options, jobs, timeout, on_file).run()
