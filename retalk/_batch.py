"""``prep-and-retalk --batch jobs.csv``: many jobs with a concurrency cap, one line of
status per job, a final table, and a report; a re-run skips the jobs already done.

CSV columns: ``video``, ``audio``, ``ref`` (may be empty), ``output``, ``options`` (may be
empty: the per-job flags of ``prep-and-retalk``, e.g. ``--extend-video --align trim``).
Relative paths are read from the CSV's folder. A job a finding gates (``_gates``) is not
sent; its row says ``gated`` with the codes, and the other jobs go on.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preflight import CheckOptions, FixOptions, PreflightError, settings_for
from preflight._fix_model import ALIGN_CHOICES
from preflight.codes import unknown_selectors

from ._client import Client
from ._exceptions import ConfigError, RetalkError
from ._gates import Gates
from ._journal import DuplicateJob, DuplicateSplit, Journal
from ._pipeline import PipelineResult, file_keys, prepare_and_retalk
from ._quotas import RateLimiter

COLUMNS = ("video", "audio", "ref", "output", "options")


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
    status: str  # "done", "skipped", "refused", "gated", "failed"
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


def _options_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="options", add_help=False, exit_on_error=False)
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
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("video", "audio", "output") if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path}: the header lacks {', '.join(missing)} (columns: {', '.join(COLUMNS)})"
            )
        parser = _options_parser()
        for line, row in enumerate(reader, start=2):

            def where(name: str | None, line: int = line) -> str | None:
                if not name or not name.strip():
                    return None
                return (
                    str((folder / name.strip()).resolve())
                    if not os.path.isabs(name.strip())
                    else name.strip()
                )

            video, audio, output = where(row.get("video")), where(row.get("audio")), where(row.get("output"))
            if not (video and audio and output):
                raise ConfigError(f"{path}:{line}: video, audio and output are all needed")
            try:
                flags = parser.parse_args(shlex.split(row.get("options") or ""))
            except (argparse.ArgumentError, ValueError, SystemExit) as exc:
                raise ConfigError(f"{path}:{line}: bad options {row.get('options')!r} ({exc})") from None
            if unknown_selectors(flags.accept):
                unknown = ", ".join(unknown_selectors(flags.accept))
                raise ConfigError(f"{path}:{line}: --accept {unknown}: unknown code or prefix")
            ref = where(row.get("ref"))
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
                raise ConfigError(f"{path}:{line}: {exc}") from None
            jobs.append(
                BatchJob(
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
                    flags.overwrite,
                    Gates.of(settings.gate, settings.gate_speech_cut_s, (*accept, *flags.accept)),
                )
            )
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


def run_batch(
    jobs: list[BatchJob],
    make_client: Callable[[], Client],
    journal_path: str | os.PathLike[str] | None,
    *,
    concurrency: int = 2,
    force: bool = False,
    split: bool = False,
    on_line: Callable[[BatchJob, str], None] | None = None,
) -> list[BatchOutcome]:
    """Run every job (at most ``concurrency`` at once: the service runs one task at a time
    anyway, so more only queues); one job's failure never stops the others. ``split``
    sends every long job in parts (a job's own ``--split`` option does it for that job)."""

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

    def say(job: BatchJob, text: str) -> None:
        if on_line is not None:
            on_line(job, text)

    def one(job: BatchJob) -> BatchOutcome:
        if os.path.exists(job.output) and not force:
            say(job, "skipped: already done")
            return BatchOutcome(job, "skipped", "the output exists")
        say(job, "started")
        # Each thread its own client and journal connection (SQLite connections stay
        # in the thread that made them).
        try:
            with make_client() as client, Journal(journal_path) as journal:
                with sharing:
                    if not shared:
                        shared.append(client.limiter)
                    client.limiter = shared[0]
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
                    on_stage=lambda stage: say(job, stage),
                    on_part=lambda number, count, text: say(job, f"part {number}/{count}: {text}"),
                )
        except (DuplicateJob, DuplicateSplit) as exc:
            say(job, f"skipped: {exc}")
            return BatchOutcome(job, "skipped", str(exc))
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

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="retalk-batch") as pool:
        return list(pool.map(one, jobs))
