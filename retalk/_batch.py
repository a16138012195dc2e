"""``prep-and-retalk --batch jobs.csv``: many jobs with a concurrency cap, one line of
status per job, a final table, and a report; a re-run skips the jobs already done.

CSV columns: ``video``, ``audio``, ``ref`` (may be empty), ``output``, ``options`` (may be
empty: the per-job flags of ``prep-and-retalk``, e.g. ``--extend-video --align trim``).
Relative paths are read from the CSV's folder. Every row is checked before any job starts,
and every problem said at once. Ctrl-C stops the batch before it pays for anything more.
A job a finding gates (``_gates``) is not sent; its row says ``gated`` with the codes,
and the other jobs go on.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from preflight import CheckOptions, FixOptions, PreflightError, settings_for
from preflight._fix_model import ALIGN_CHOICES
from preflight.codes import unknown_selectors

from ._exceptions import ConfigError, RetalkError
from ._gates import Gates
from ._http import Client
from ._jobs import Events
from ._journal import DuplicateJob, DuplicateSplit, Job, Journal, sha256_of
from ._models import Task
from ._output_path import output_problem
from ._pipeline import PipelineResult, file_keys, prepare_and_retalk
from ._quotas import RateLimiter
from ._split import paid_parts

COLUMNS = ("video", "audio", "ref", "output", "options")
#: Stages of the pipeline that come before anything is paid for: an interrupted batch
#: stops a job at the start of any of them (or as the fix reports progress).
BEFORE_PAYING = frozenset(
    {"check and fix", "check", "plan the parts", "cut into parts", "check the parts", "send"}
)
#: Steps of a job (``Events.on_stage``) after which its task is submitted.
BEFORE_SUBMIT = frozenset({"upload", "submit"})


class BatchProblems(ConfigError):
    """Every mistake of a batch file, said one a line (each line escaped on its own)."""

    def __init__(self, heading: str, problems: list[str]) -> None:
        self.lines = [heading, *(f"  {problem}" for problem in problems)]
        super().__init__("\n".join(self.lines))


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


@dataclass(frozen=True)
class BatchJob:
    line: int
    video: str
    audio: str
    ref: str | None
    output: str
    extend_video: bool
    face_threshold: int | None
    fix_options: FixOptions
    #: Sent in parts when longer than the service takes (``--split``).
    split: bool = False
    #: The project's settings for this job's files (as ``preflight check`` finds them).
    check_options: CheckOptions = field(default_factory=CheckOptions)
    #: The fix may replace files in the work folder preflight did not write (``--overwrite``).
    overwrite: bool = False
    #: The findings that stop this job (its settings' ``[prep]``, the ``--accept`` passes).
    gates: Gates = field(default_factory=Gates)


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
            "cost_cny": self.result.cost_cny
            if self.result and (self.result.job or self.result.parts)
            else None,
            "gated": [f.code for f in self.result.gated] if self.result else [],
        }


class _OptionsParser(argparse.ArgumentParser):
    """The options column's parser: a mistake is a ``ValueError`` with argparse's words,
    never its usage text and exit on stderr."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _options_parser() -> argparse.ArgumentParser:
    parser = _OptionsParser(prog="options", add_help=False, exit_on_error=False)
    parser.add_argument("--extend-video", action="store_true")
    parser.add_argument("--face-threshold", type=int)
    parser.add_argument("--reframe", action="store_true")
    parser.add_argument("--align", choices=ALIGN_CHOICES, default=None)
    parser.add_argument("--make-ref", action="store_true")
    parser.add_argument("--split", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--accept", action="append", default=[])
    return parser


def read_batch(
    path: str | os.PathLike[str],
    *,
    config: str | None = None,
    isolated: bool = False,
    accept: tuple[str, ...] = (),
    overwrite: bool = False,
) -> list[BatchJob]:
    """The jobs of a batch file; ``ConfigError`` naming the line for anything malformed, or
    an output that would replace an input (any job's) or the batch file. Each job gets the
    settings its files are governed by (or ``config``'s, or none when ``isolated``), and
    passes the gates ``accept`` names (and its own ``--accept``)."""
    folder = Path(path).resolve().parent
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the batch file ({exc.strerror or exc})") from None
    jobs: list[BatchJob] = []
    problems: list[str] = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("video", "audio", "output") if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path}: the header lacks {', '.join(missing)} (columns: {', '.join(COLUMNS)})"
            )
        parser = _options_parser()
        for line, row in enumerate(reader, start=2):
            job = _read_row(path, folder, line, row, parser, config, isolated, accept, overwrite, problems)
            if job is not None:
                jobs.append(job)
    if problems:
        raise BatchProblems(f"{path}: nothing was run; fix these first:", problems)
    outputs = [j.output for j in jobs]
    if len(set(outputs)) != len(outputs):
        raise ConfigError(f"{path}: two jobs write the same output")
    # Before any job starts: no result may replace a file a job (its own or another) reads.
    read: dict[object, str] = {key: f"batch file {path}" for key in file_keys(path)}
    for job in jobs:
        for role, name in (("video", job.video), ("audio", job.audio), ("ref", job.ref)):
            if name:
                read.update({key: f"{role} {name} (line {job.line})" for key in file_keys(name)})
    for job in jobs:
        clash = next((read[key] for key in file_keys(job.output) if key in read), None)
        if clash is not None:
            raise ConfigError(
                f"{path}:{job.line}: the output {job.output} is the {clash}: the result would "
                "replace it (choose another output)"
            )
    return jobs


def _is_url(name: str) -> bool:
    return name.startswith(("http://", "https://"))


def _read_row(
    path: str | os.PathLike[str],
    folder: Path,
    line: int,
    row: dict[str, str | None],
    parser: argparse.ArgumentParser,
    config: str | None,
    isolated: bool,
    accept: tuple[str, ...],
    overwrite: bool,
    problems: list[str],
) -> BatchJob | None:
    """One row's job, or None with what is wrong with it added to ``problems`` (each named
    by its line and column: the user typed a CSV, not our options)."""
    here = f"{path}:{line}"
    found = len(problems)

    def where(column: str) -> str | None:
        name = (row.get(column) or "").strip()
        if not name:
            return None
        if _is_url(name):
            return name
        return name if os.path.isabs(name) else str((folder / name).resolve())

    names = {column: where(column) for column in ("video", "audio", "ref", "output")}
    for column in ("video", "audio", "output"):
        if names[column] is None:
            problems.append(f"{here}: the {column} column is empty")
    for column in ("video", "audio", "ref"):
        name = names[column]
        if name is None or _is_url(name):
            continue
        if os.path.isdir(name):
            problems.append(f"{here}: {column} column: {name} is a folder; the column takes one file")
        elif not os.path.exists(name):
            problems.append(f"{here}: {column} column: {name}: no such file")
    output = names["output"]
    typed = (row.get("output") or "").strip()  # resolving drops a trailing slash
    if output is not None and os.path.isdir(output):
        problems.append(f"{here}: output column: {output} is a folder; name the result's file")
    elif output is not None and typed.endswith(("/", os.sep)):
        # (A folder not made yet, as ``out/``: no folder there, the slash is the mistake.)
        problems.append(f"{here}: output column: {typed} ends in a slash: give a file name")
    elif output is not None and (problem := output_problem(output)) is not None:
        problems.append(f"{here}: output column: {output} {problem}")
    cell = row.get("options") or ""
    try:
        flags = parser.parse_args(shlex.split(cell))
    except (argparse.ArgumentError, ValueError) as exc:
        problems.append(f"{here}: options column {cell!r}: {exc}")
        return None
    if flags.face_threshold is not None and not 120 <= flags.face_threshold <= 200:
        problems.append(f"{here}: options column: --face-threshold {flags.face_threshold}: must be 120-200")
    unknown = unknown_selectors(flags.accept)
    if unknown:
        problems.append(f"{here}: options column: --accept {', '.join(unknown)}: unknown code or prefix")
    video, audio, ref = names["video"], names["audio"], names["ref"]
    if len(problems) > found or video is None or audio is None or output is None:
        return None
    try:
        settings = settings_for([p for p in (video, audio, ref) if p], config, isolated)
        check_options = settings.check_options()
        fix_options = settings.fix_options(
            check_options,
            align=flags.align,
            reframe=flags.reframe or None,
            make_ref=flags.make_ref or None,
        )
    except PreflightError as exc:
        problems.append(f"{here}: {exc}")
        return None
    return BatchJob(
        line,
        video,
        audio,
        ref,
        output,
        flags.extend_video,
        flags.face_threshold,
        fix_options,
        flags.split,
        check_options,
        flags.overwrite or overwrite,
        Gates.of(settings.gate, settings.gate_speech_cut_s, (*accept, *flags.accept)),
    )


def sources_of(job: BatchJob) -> dict[str, str]:
    """The SHA-256 of each of the job's original inputs (a URL stands for itself)."""
    named = {"video": job.video, "audio": job.audio} | ({"ref": job.ref} if job.ref else {})
    return {role: name if _is_url(name) else sha256_of(name) for role, name in named.items()}


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

    # A journal that cannot be used stops the batch before any job, once (exit 2), instead
    # of failing every job with the same message.
    with Journal(journal_path) as journal:
        # No result may replace the journal either: it may hold the only record of a task.
        keys = file_keys(journal.path)
        clash = next((job for job in jobs if file_keys(job.output) & keys), None)
        if clash is not None:
            raise ConfigError(
                f"line {clash.line}: the output {clash.output} is the journal {journal.path}: the "
                "result would replace it (choose another output)"
            )
    # One limiter for the whole batch (the first client's, with its quotas): each thread
    # has its own client, but the service counts the account's requests against one quota.
    shared: list[RateLimiter] = []
    sharing = threading.Lock()
    stop = stop if stop is not None else threading.Event()
    progress = [_Progress() for _ in jobs]

    def say(job: BatchJob, text: str) -> None:
        if on_line is not None:
            on_line(job, text)

    def note(text: str) -> None:
        if on_note is not None:
            on_note(text)

    def one(job: BatchJob, track: _Progress) -> BatchOutcome:
        track.started = True
        try:
            sources = sources_of(job)
        except OSError as exc:
            say(job, f"refused: {exc.strerror or exc}")
            return BatchOutcome(job, "refused", f"cannot read the inputs: {exc.strerror or exc}")
        remake = False  # the output is this journal's, made from other inputs: made again
        if os.path.exists(job.output):
            with Journal(journal_path) as journal:
                made = journal.made_from(job.output)
            if made is None and not force:
                say(job, "skipped: the output exists")
                return BatchOutcome(
                    job, "skipped", "the output exists; the journal has no record of its inputs (--force)"
                )
            if made == sources and not force:
                say(job, "skipped: already done, its inputs unchanged")
                return BatchOutcome(job, "skipped", "the output exists, made from these very inputs")
            if made is not None and made != sources:
                # (with --force too: a result this journal made stays this batch's to remake)
                changed = sorted(r for r in set(made) | set(sources) if made.get(r) != sources.get(r))
                remake = True
                say(job, f"{', '.join(changed)} changed since the output was made: made again")
        say(job, "started")
        # Each thread its own client and journal connection (SQLite connections stay
        # in the thread that made them).
        try:
            with make_client() as client, Journal(journal_path) as journal:
                with sharing:
                    if not shared:
                        shared.append(client.limiter)
                    client.limiter = shared[0]

                def stage(name: str) -> None:
                    if stop.is_set() and name in BEFORE_PAYING:
                        raise Interrupted
                    say(job, name)

                def fixing(name: str, fraction: float) -> None:
                    if stop.is_set() and name in BEFORE_PAYING:
                        raise Interrupted

                def step(sent: Job, name: str) -> None:
                    if sent.id not in track.jobs:
                        track.jobs.append(sent.id)
                    if name == "wait" and sent.task_id:
                        submitted(sent.task_id)
                    if name not in BEFORE_SUBMIT:
                        return
                    if stop.is_set():
                        # Parts of its split submitted in this run or an earlier one count:
                        # the split is paid for, so this part is kept for `retalk resume`.
                        for part in paid_parts(journal, sent):
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
                        journal.update(
                            sent.id,
                            state="canceled",
                            error="the batch was interrupted before this job was submitted "
                            "(nothing paid; run the batch again to send it)",
                        )
                        raise Interrupted
                    if name == "submit":
                        track.submitting = True

                def submitted(task_id: str) -> None:
                    if task_id not in track.tasks:
                        track.tasks.append(task_id)
                        say(job, f"task {task_id} submitted")

                def polled(task: Task, waited: float) -> None:
                    submitted(task.task_id)

                result = prepare_and_retalk(
                    client,
                    journal,
                    job.video,
                    job.audio,
                    job.ref,
                    job.output,
                    extend_video=job.extend_video,
                    face_threshold=job.face_threshold,
                    fix_options=job.fix_options,
                    check_options=job.check_options,
                    overwrite=job.overwrite,
                    force=force,
                    split=split or job.split,
                    gates=job.gates,
                    events=Events(on_stage=step, on_status=polled),
                    on_stage=stage,
                    on_part=lambda number, count, text: say(job, f"part {number}/{count}: {text}"),
                    on_progress=fixing,
                    on_checked=(lambda checked: on_checked(job, checked)) if on_checked else None,
                    remake=remake,
                )
        except Interrupted:
            if track.paid:
                with Journal(journal_path) as journal:
                    for number in track.jobs:
                        task_id = journal.job(number).task_id
                        if task_id and task_id not in track.tasks:
                            track.tasks.append(task_id)
                left = f"{_paid_text(job, track)}: `retalk resume` finishes it"
                say(job, f"left: {left}")
                return BatchOutcome(job, "left", left)
            say(job, "stopped before it paid for anything")
            return BatchOutcome(job, "stopped", "interrupted before anything was paid for")
        except (DuplicateJob, DuplicateSplit) as exc:
            say(job, f"skipped: {exc}")
            return BatchOutcome(job, "skipped", str(exc))
        except ConfigError as exc:  # the row as given cannot be done (a file at its output)
            say(job, f"refused: {exc}")
            return BatchOutcome(job, "refused", str(exc))
        except RetalkError as exc:
            say(job, f"failed: {exc}")
            status = "refused" if getattr(exc, "finding", None) is not None else "failed"
            return BatchOutcome(job, status, str(exc))
        except PreflightError as exc:  # the job as given cannot be done (a file in the way)
            say(job, f"refused: {exc}")
            return BatchOutcome(job, "refused", str(exc))
        except Exception as exc:  # one job's surprise is that job's failure
            say(job, f"failed: {type(exc).__name__}: {exc}")
            return BatchOutcome(job, "failed", f"{type(exc).__name__}: {exc}")
        if result.ok:
            say(job, f"done: {result.output}")
            return BatchOutcome(job, "done", result.output or "", result)
        if result.gated:
            codes = ", ".join(f.code for f in result.gated)
            say(job, f"gated: {codes} (nothing sent)")
            return BatchOutcome(job, "gated", f"{codes}: {result.error}", result)
        status = "refused" if result.job is None and not result.parts else "failed"
        say(job, f"{status}: {result.error}")
        return BatchOutcome(job, status, result.error or "", result)

    outcomes: list[BatchOutcome | None] = [None] * len(jobs)
    queue = list(range(len(jobs)))
    taking = threading.Lock()

    count = max(1, min(concurrency, len(jobs)))
    running = [count]
    all_done = threading.Event()

    def worker() -> None:
        try:
            while not stop.is_set():
                with taking:
                    if not queue:
                        return
                    index = queue.pop(0)
                outcomes[index] = one(jobs[index], progress[index])
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
        stop.set()
        with taking:
            # Threads Ctrl-C kept from starting never count down.
            running[0] -= sum(1 for thread in threads if thread.ident is None)
            if running[0] <= 0:
                all_done.set()
        try:
            paid = [(jobs[i], t) for i, t in enumerate(progress) if outcomes[i] is None and t.paid]
            note(
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
            left = [(jobs[i], t) for i, t in enumerate(progress) if outcomes[i] is None and t.paid]
            if left:
                note(
                    "not waiting any more: `retalk resume` finishes "
                    + "; ".join(_paid_text(job, track) for job, track in left)
                )
    finished: list[BatchOutcome] = []
    for index, job in enumerate(jobs):
        outcome = outcomes[index]
        if outcome is None:
            track = progress[index]
            if track.paid:
                outcome = BatchOutcome(job, "left", f"{_paid_text(job, track)}: `retalk resume` finishes it")
            elif track.started:
                outcome = BatchOutcome(job, "stopped", "interrupted before anything was paid for")
            else:
                outcome = BatchOutcome(job, "stopped", "not started: the batch was interrupted")
        finished.append(outcome)
    return finished


def _paid_text(job: BatchJob, track: _Progress) -> str:
    tasks = ", ".join(track.tasks) or "being submitted"
    return f"line {job.line} (task {tasks})"
