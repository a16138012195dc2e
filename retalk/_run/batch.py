"""``prep-and-retalk --batch``: the jobs of a batch file (``batch_file``) run with a
concurrency cap, one job's failure never stopping the others, and Ctrl-C stopping the
batch before it pays for anything more (the jobs already paid for are waited for, or left
to ``retalk resume``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from preflight import PreflightError

from .._exceptions import ConfigError, RetalkError
from .._http import Client
from .._journal import DuplicateJob, DuplicateSplit, Job, Journal
from .._models import Task
from .._quotas import RateLimiter
from .batch_file import BatchJob, sources_of
from .job import Events
from .output_path import file_keys
from .pipeline import prepare_and_retalk
from .result import PipelineResult
from .split_tasks import paid_parts

#: Stages of the pipeline that come before anything is paid for: an interrupted batch
#: stops a job at the start of any of them (or as the fix reports progress).
BEFORE_PAYING = frozenset(
    {"check and fix", "check", "plan the parts", "cut into parts", "check the parts", "send"}
)
#: Steps of a job (``Events.on_stage``) after which its task is submitted.
BEFORE_SUBMIT = frozenset({"upload", "submit"})


class Interrupted(BaseException):
    """Raised in a job's thread once the batch is interrupted, at the next point before the
    job would pay: not an ``Exception``, so no handler takes it for the job's failure."""


@dataclass
class _Progress:
    """How far a running job got, for the interrupted batch's messages."""

    started: bool = False
    submitting: bool = False
    tasks: list[str] = field(default_factory=list)
    #: The journal's jobs it ran (a split's parts), to name their tasks when it is cut short.
    jobs: list[int] = field(default_factory=list)

    @property
    def paid(self) -> bool:
        return self.submitting or bool(self.tasks)


@dataclass
class BatchOutcome:
    job: BatchJob
    #: "done", "skipped", "refused", "gated", "failed"; an interrupted batch: "stopped" (nothing
    #: paid for), "left" (its task was sent: `retalk resume` finishes it).
    status: str
    detail: str
    result: PipelineResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.job.line,
            "video": self.job.video,
            "audio": self.job.audio,
            "output": self.job.output,
            "status": self.status,
            "detail": self.detail,
            "task_id": self.result.job.task_id if self.result and self.result.job else None,
            "task_ids": [p.job.task_id for p in self.result.parts] if self.result else [],
            # What was paid; in a dry run, what would be.
            "cost_cny": self.result.cost_cny
            if self.result and (self.result.job or self.result.parts or self.status == "planned")
            else None,
            "gated": [f.code for f in self.result.gated] if self.result else [],
        }


def plan_batch(
    jobs: list[BatchJob],
    *,
    split: bool = False,
    on_line: Callable[[BatchJob, str], None] | None = None,
    on_checked: Callable[[BatchJob, PipelineResult], None] | None = None,
) -> list[BatchOutcome]:
    """``--dry-run`` for a batch: every job checked and its fix planned, as a single job's
    dry run does, with no client, no journal and nothing uploaded or paid. A job that would
    be sent is "planned", with what it would send and its estimated cost; the others are
    "gated" or "refused" as the real run would say."""
    outcomes = []
    for job in jobs:
        result = prepare_and_retalk(
            None, None, **_job_arguments(job, split), dry_run=True, on_checked=_for_job(on_checked, job)
        )
        outcome = _planned(job, result)
        if on_line is not None:
            on_line(job, f"{outcome.status}: {outcome.detail}")
        outcomes.append(outcome)
    return outcomes


def _job_arguments(job: BatchJob, split: bool) -> dict[str, Any]:
    """A batch row as the pipeline's arguments (the inputs, the output and the row's options)."""
    return {
        "video": job.video,
        "audio": job.audio,
        "ref": job.ref,
        "output": job.output,
        "extend_video": job.extend_video,
        "face_threshold": job.face_threshold,
        "fix_options": job.fix_options,
        "check_options": job.check_options,
        "overwrite": job.overwrite,
        "split": split or job.split,
        "gates": job.gates,
    }


def _for_job(
    on_checked: Callable[[BatchJob, PipelineResult], None] | None, job: BatchJob
) -> Callable[[PipelineResult], None] | None:
    if on_checked is None:
        return None
    return lambda result: on_checked(job, result)


def _planned(job: BatchJob, result: PipelineResult) -> BatchOutcome:
    if result.gated:
        codes = ", ".join(f.code for f in result.gated)
        return BatchOutcome(job, "gated", f"{codes}: {result.error}", result)
    if not result.ok:
        return BatchOutcome(job, "refused", result.error or "", result)
    what = "the work folder's copies" if result.fix is not None else "the inputs as they are"
    parts = f" in {len(result.plan.parts)} parts" if result.plan is not None else ""
    length = f"{result.expected_s:.2f} s" if result.expected_s is not None else "of unknown length"
    return BatchOutcome(job, "planned", f"would send {what}{parts}; the result {length}", result)


def run_batch(
    jobs: list[BatchJob],
    make_client: Callable[[], Client],
    journal_path: str | os.PathLike[str] | None,
    *,
    concurrency: int = 2,
    force: bool = False,
    split: bool = False,
    on_line: Callable[[BatchJob, str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    on_checked: Callable[[BatchJob, PipelineResult], None] | None = None,
) -> list[BatchOutcome]:
    """Run every job (at most ``concurrency`` at once: the service runs one task at a time
    anyway, so more only queues); one job's failure never stops the others. ``split``
    sends every long job in parts (a job's own ``--split`` option does it for that job).

    A job whose output exists is skipped while its original inputs are the ones the journal
    recorded it was made from (a changed input is a new job); one the journal has no
    record of is skipped too (``force`` makes it again).

    Ctrl-C (``KeyboardInterrupt`` in the calling thread): nothing new is sent; a running job
    stops at its next step before it pays (its journal entry closed, so `retalk resume`
    will not send it either); the jobs whose tasks were sent are waited for. A second
    Ctrl-C stops waiting: those are left to `retalk resume`. Either way every job has an
    outcome ("stopped" or "left" for the ones cut short), ``on_note`` says what happens, and
    ``stop`` (the caller's, to ask afterwards) is set. Setting ``stop`` from another thread
    stops the batch as a first Ctrl-C does (without the note). ``on_checked(job, result)``
    is each job's every finding and fix, before it uploads anything."""
    _refuse_replacing_the_journal(jobs, journal_path)
    batch = _Batch(
        jobs,
        make_client,
        journal_path,
        force=force,
        split=split,
        on_line=on_line,
        on_note=on_note,
        on_checked=on_checked,
        stop=stop if stop is not None else threading.Event(),
        progress=[_Progress() for _ in jobs],
        outcomes=[None] * len(jobs),
    )
    _run_all(batch, max(1, min(concurrency, len(jobs))))
    return [
        outcome or _cut_short(job, track)
        for job, track, outcome in zip(jobs, batch.progress, batch.outcomes, strict=True)
    ]


def _refuse_replacing_the_journal(jobs: list[BatchJob], journal_path: str | os.PathLike[str] | None) -> None:
    """``ConfigError`` when a job's output is the journal: it may hold the only record of a
    task. Opening it first stops the batch once, before any job, when it cannot be used
    (exit 2), instead of failing every job with the same message."""
    with Journal(journal_path) as journal:
        keys = file_keys(journal.path)
        clash = next((job for job in jobs if file_keys(job.output) & keys), None)
        if clash is not None:
            raise ConfigError(
                f"line {clash.line}: the output {clash.output} is the journal {journal.path}: the "
                "result would replace it (choose another output)"
            )


@dataclass
class _Batch:
    """One batch run: its jobs and settings, the callbacks, each job's progress and outcome
    (filled in by the worker threads), and the rate limiter every thread's client shares."""

    jobs: list[BatchJob]
    make_client: Callable[[], Client]
    journal_path: str | os.PathLike[str] | None
    force: bool
    split: bool
    on_line: Callable[[BatchJob, str], None] | None
    on_note: Callable[[str], None] | None
    on_checked: Callable[[BatchJob, PipelineResult], None] | None
    stop: threading.Event
    progress: list[_Progress]
    outcomes: list[BatchOutcome | None]
    # One limiter for the whole batch (the first client's, with its quotas): each thread
    # has its own client, but the service counts the account's requests against one quota.
    shared: list[RateLimiter] = field(default_factory=list)
    sharing: threading.Lock = field(default_factory=threading.Lock)

    def say(self, job: BatchJob, text: str) -> None:
        if self.on_line is not None:
            self.on_line(job, text)

    def note(self, text: str) -> None:
        if self.on_note is not None:
            self.on_note(text)

    def paid_unfinished(self) -> list[tuple[BatchJob, _Progress]]:
        """The jobs still running whose tasks are paid for."""
        return [
            (job, track)
            for job, track, outcome in zip(self.jobs, self.progress, self.outcomes, strict=True)
            if outcome is None and track.paid
        ]

    def share_limiter(self, client: Client) -> None:
        with self.sharing:
            if not self.shared:
                self.shared.append(client.limiter)
            client.limiter = self.shared[0]


def _one(batch: _Batch, job: BatchJob, track: _Progress) -> BatchOutcome:
    """Run one job to its outcome: skipped, sent and done, or why not."""
    track.started = True
    try:
        sources = sources_of(job)
    except OSError as exc:
        batch.say(job, f"refused: {exc.strerror or exc}")
        return BatchOutcome(job, "refused", f"cannot read the inputs: {exc.strerror or exc}")
    skipped, remake = _skipped_or_remade(batch, job, sources)
    if skipped is not None:
        return skipped
    batch.say(job, "started")
    try:
        result = _send(batch, job, track, remake)
    except Interrupted:
        return _interrupted(batch, job, track)
    except (DuplicateJob, DuplicateSplit) as exc:
        batch.say(job, f"skipped: {exc}")
        return BatchOutcome(job, "skipped", str(exc))
    except ConfigError as exc:  # the row as given cannot be done (a file at its output)
        batch.say(job, f"refused: {exc}")
        return BatchOutcome(job, "refused", str(exc))
    except RetalkError as exc:
        batch.say(job, f"failed: {exc}")
        status = "refused" if getattr(exc, "finding", None) is not None else "failed"
        return BatchOutcome(job, status, str(exc))
    except PreflightError as exc:  # the job as given cannot be done (a file in the way)
        batch.say(job, f"refused: {exc}")
        return BatchOutcome(job, "refused", str(exc))
    except Exception as exc:  # one job's surprise is that job's failure
        batch.say(job, f"failed: {type(exc).__name__}: {exc}")
        return BatchOutcome(job, "failed", f"{type(exc).__name__}: {exc}")
    return _outcome_of(batch, job, result)


def _skipped_or_remade(
    batch: _Batch, job: BatchJob, sources: dict[str, str]
) -> tuple[BatchOutcome | None, bool]:
    """The job's outcome when its existing output stands (skipped), else None; and whether
    the output is this journal's, made from other inputs: made again (``remake``)."""
    if not os.path.exists(job.output):
        return None, False
    with Journal(batch.journal_path) as journal:
        made = journal.made_from(job.output)
    if made is None and not batch.force:
        batch.say(job, "skipped: the output exists")
        return BatchOutcome(
            job, "skipped", "the output exists; the journal has no record of its inputs (--force)"
        ), False
    if made == sources and not batch.force:
        batch.say(job, "skipped: already done, its inputs unchanged")
        return BatchOutcome(job, "skipped", "the output exists, made from these very inputs"), False
    if made is not None and made != sources:
        # (with --force too: a result this journal made stays this batch's to remake)
        changed = sorted(r for r in set(made) | set(sources) if made.get(r) != sources.get(r))
        batch.say(job, f"{', '.join(changed)} changed since the output was made: made again")
        return None, True
    return None, False


def _send(batch: _Batch, job: BatchJob, track: _Progress, remake: bool) -> PipelineResult:
    """The job through the pipeline, watched so that a stopped batch stops it before it
    pays. Each thread its own client and journal connection (SQLite connections stay in
    the thread that made them)."""
    with batch.make_client() as client, Journal(batch.journal_path) as journal:
        batch.share_limiter(client)
        watch = _Watch(batch, job, track, journal)
        return prepare_and_retalk(
            client,
            journal,
            **_job_arguments(job, batch.split),
            force=batch.force,
            events=Events(on_stage=watch.step, on_status=watch.polled),
            on_stage=watch.stage,
            on_part=lambda number, count, text: batch.say(job, f"part {number}/{count}: {text}"),
            on_progress=watch.fixing,
            on_checked=_for_job(batch.on_checked, job),
            remake=remake,
        )


@dataclass
class _Watch:
    """One running job's callbacks: its lines, its tasks as they are submitted, and, once
    the batch is stopped, ``Interrupted`` at its next step before it pays."""

    batch: _Batch
    job: BatchJob
    track: _Progress
    journal: Journal

    def stage(self, name: str) -> None:
        if self.batch.stop.is_set() and name in BEFORE_PAYING:
            raise Interrupted
        self.batch.say(self.job, name)

    def fixing(self, name: str, fraction: float) -> None:
        if self.batch.stop.is_set() and name in BEFORE_PAYING:
            raise Interrupted

    def step(self, sent: Job, name: str) -> None:
        track = self.track
        if sent.id not in track.jobs:
            track.jobs.append(sent.id)
        if name == "wait" and sent.task_id:
            self.submitted(sent.task_id)
        if name not in BEFORE_SUBMIT:
            return
        if self.batch.stop.is_set():
            self._stop_before_submit(sent)
        if name == "submit":
            track.submitting = True

    def _stop_before_submit(self, sent: Job) -> NoReturn:
        track = self.track
        # Parts of its split submitted in this run or an earlier one count:
        # the split is paid for, so this part is kept for `retalk resume`.
        for part in paid_parts(self.journal, sent):
            if part.task_id is None:
                track.submitting = True
            elif part.task_id not in track.tasks:
                track.tasks.append(part.task_id)
        if track.paid:
            # A later part of a split whose earlier parts are paid for: left
            # open (canceled, it would make the paid parts unusable) for
            # `retalk resume` to send and join.
            raise Interrupted
        # Closed, not left open: `retalk resume` would submit (pay for) it.
        self.journal.update(
            sent.id,
            state="canceled",
            error="the batch was interrupted before this job was submitted "
            "(nothing paid; run the batch again to send it)",
        )
        raise Interrupted

    def submitted(self, task_id: str) -> None:
        if task_id not in self.track.tasks:
            self.track.tasks.append(task_id)
            self.batch.say(self.job, f"task {task_id} submitted")

    def polled(self, task: Task, waited: float) -> None:
        self.submitted(task.task_id)


def _interrupted(batch: _Batch, job: BatchJob, track: _Progress) -> BatchOutcome:
    """A job the stopped batch cut short: left to `retalk resume` once paid, else stopped."""
    if track.paid:
        with Journal(batch.journal_path) as journal:
            for number in track.jobs:
                task_id = journal.job(number).task_id
                if task_id and task_id not in track.tasks:
                    track.tasks.append(task_id)
        left = f"{_paid_text(job, track)}: `retalk resume` finishes it"
        batch.say(job, f"left: {left}")
        return BatchOutcome(job, "left", left)
    batch.say(job, "stopped before it paid for anything")
    return BatchOutcome(job, "stopped", "interrupted before anything was paid for")


def _outcome_of(batch: _Batch, job: BatchJob, result: PipelineResult) -> BatchOutcome:
    if result.ok:
        batch.say(job, f"done: {result.output}")
        return BatchOutcome(job, "done", result.output or "", result)
    if result.gated:
        codes = ", ".join(f.code for f in result.gated)
        batch.say(job, f"gated: {codes} (nothing sent)")
        return BatchOutcome(job, "gated", f"{codes}: {result.error}", result)
    status = "refused" if result.job is None and not result.parts else "failed"
    batch.say(job, f"{status}: {result.error}")
    return BatchOutcome(job, status, result.error or "", result)


def _run_all(batch: _Batch, count: int) -> None:
    """The jobs taken from one queue by ``count`` threads until done or stopped; Ctrl-C
    stops the batch, a second one stops waiting for the tasks already paid for."""
    queue = list(range(len(batch.jobs)))
    taking = threading.Lock()
    running = [count]
    all_done = threading.Event()

    def worker() -> None:
        try:
            while not batch.stop.is_set():
                with taking:
                    if not queue:
                        return
                    index = queue.pop(0)
                batch.outcomes[index] = _one(batch, batch.jobs[index], batch.progress[index])
        finally:
            with taking:
                running[0] -= 1
                if not running[0]:
                    all_done.set()

    # Daemon threads: a second Ctrl-C returns at once and the process may end while a
    # thread still waits on a task (the journal has it; `retalk resume` finishes it).
    threads = [threading.Thread(target=worker, name=f"retalk-batch-{n}", daemon=True) for n in range(count)]

    def wait_for_all() -> None:
        # Not Thread.join: a join Ctrl-C interrupts takes the thread for ended (Python
        # before 3.13). An Event's wait with a timeout lets Ctrl-C in and stays true.
        while not all_done.wait(0.5):
            pass

    try:
        for thread in threads:
            thread.start()
        wait_for_all()
    except KeyboardInterrupt:
        batch.stop.set()
        with taking:
            # Threads Ctrl-C kept from starting never count down.
            running[0] -= sum(1 for thread in threads if thread.ident is None)
            if running[0] <= 0:
                all_done.set()
        try:
            paid = batch.paid_unfinished()
            batch.note(
                "interrupted: nothing more is sent; jobs not yet paid for stop before they pay"
                + (
                    "; waiting for the tasks already paid for: "
                    + "; ".join(_paid_text(job, track) for job, track in paid)
                    + " (Ctrl-C again leaves them to `retalk resume`)"
                    if paid
                    else ""
                )
            )
            wait_for_all()
        except KeyboardInterrupt:
            left = batch.paid_unfinished()
            if left:
                batch.note(
                    "not waiting any more: `retalk resume` finishes "
                    + "; ".join(_paid_text(job, track) for job, track in left)
                )


def _cut_short(job: BatchJob, track: _Progress) -> BatchOutcome:
    """The outcome of a job the interrupted batch left without one."""
    if track.paid:
        return BatchOutcome(job, "left", f"{_paid_text(job, track)}: `retalk resume` finishes it")
    if track.started:
        return BatchOutcome(job, "stopped", "interrupted before anything was paid for")
    return BatchOutcome(job, "stopped", "not started: the batch was interrupted")


def _paid_text(job: BatchJob, track: _Progress) -> str:
    tasks = ", ".join(track.tasks) or "being submitted"
    return f"line {job.line} (task {tasks})"
