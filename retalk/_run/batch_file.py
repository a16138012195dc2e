"""``prep-and-retalk --batch jobs.csv``: many jobs with a concurrency cap, one line of
status per job, a final table, and a report; a re-run skips the jobs already done. This
module reads the file (``batch`` runs its jobs).

CSV columns: ``video``, ``audio``, ``ref`` (may be empty), ``output``, ``options`` (may be
empty: the per-job flags of ``prep-and-retalk``, e.g. ``--extend-video --align trim``).
Relative paths are read from the CSV's folder. Every row is checked before any job starts,
and every problem said at once. Ctrl-C stops the batch before it pays for anything more.
A job a finding gates (``gates``) is not sent; its row says ``gated`` with the codes,
and the other jobs go on.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from preflight import ALIGN_CHOICES, CheckOptions, FixOptions, PreflightError, settings_for
from preflight.codes import unknown_selectors

from .._exceptions import ConfigError
from .._journal import sha256_of
from .._models import face_threshold_problem
from .gates import Gates
from .output_path import file_keys, output_problem

COLUMNS = ("video", "audio", "ref", "output", "options")


class BatchProblems(ConfigError):
    """Every mistake of a batch file, said one a line (each line escaped on its own)."""

    def __init__(self, heading: str, problems: list[str]) -> None:
        self.lines = [heading, *(f"  {problem}" for problem in problems)]
        super().__init__("\n".join(self.lines))


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
    if flags.face_threshold is not None and (refused := face_threshold_problem(flags.face_threshold)):
        problems.append(f"{here}: options column: --face-threshold {flags.face_threshold}: {refused}")
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
