"""``prep-and-retalk``: one command from raw files to a lip-synced video.

Exit status: 0 done, 1 input errors, a finding that gates the job (nothing sent), or the
service refused the task, 2 bad usage or configuration, 3 service or network failure after
retries, 130 interrupted (the job is in the journal: ``retalk resume`` finishes it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from preflight import ALIGN_CHOICES, Finding, PreflightError, printable, settings_for
from preflight.codes import unknown_selectors

from .. import __version__
from .._exceptions import ConfigError, RetalkError, redact
from .._journal import Job, Journal
from .._models import face_threshold_problem
from .._run.batch import BatchOutcome, plan_batch, run_batch
from .._run.batch_file import BatchJob, BatchProblems, read_batch
from .._run.gates import DEFAULT_GATE, DEFAULT_SPEECH_CUT_S, Gates
from .._run.job import Events
from .._run.output_path import JoinBlocked, OutputUnusable
from .._run.pipeline import only_copied, prepare_and_retalk
from .._run.result import PipelineResult
from .._run.split_tasks import stop_split
from .display import events_of, live_display, plain_console
from .main import (
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    EXIT_USAGE,
    _status_for,
    parsed,
    reader_gone,
)
from .options import EXTEND_HELP, download_options
from .prep_service import service, tidy

#: The exit statuses, for the help.
PREP_EXIT_STATUSES = """exit status:
  0    done (with --batch: every job done or skipped)
  1    an input cannot be made acceptable, a finding gates the job (nothing sent), or the service
       refused the task (a batch: a job refused or gated)
  2    bad usage or configuration (an option, a batch file's row, the key, the journal)
  3    the service or the network failed after retries (a batch: a job failed)
  130  interrupted: nothing new is sent; what was sent is in the journal (`retalk resume`)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prep-and-retalk",
        description="Check and fix a video, a voice and an optional reference image for "
        "VideoRetalk, send them, wait, and download the lip-synced result.",
        epilog=PREP_EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"prep-and-retalk {__version__}")
    parser.add_argument("video", nargs="?", help="the video (any common format: it is fixed)")
    parser.add_argument("audio", nargs="?", help="the voice to lip-sync it to")
    parser.add_argument("--ref", help="reference image of the face to sync")
    parser.add_argument("-o", "--output", help="the result, an MP4")
    parser.add_argument(
        "--batch",
        metavar="CSV",
        help="run the jobs of a CSV file (columns video, audio, ref, output, options) instead",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="with --batch: jobs at once (default 2)"
    )
    parser.add_argument(
        "--base-url", help="API base URL (default: DASHSCOPE_HTTP_BASE_URL, else DashScope's)"
    )
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="send to a local emulator this command starts (no key, no network; the result is "
        "not lip-synced); its jobs are journaled like the service's, so the same command run again "
        "finishes or reuses the job instead of paying again",
    )
    parser.add_argument("--no-fix", action="store_true", help="only check; stop if the service would reject")
    parser.add_argument(
        "--dry-run", action="store_true", help="stop before upload: say what would be sent and cost"
    )
    parser.add_argument("--work-dir", help="where fixed copies go (default: OUTPUT's name + .work)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files in the work folder that preflight did not write there, and a file at "
        "-o that the journal does not record as this job's result",
    )
    parser.add_argument("--extend-video", action="store_true", help=EXTEND_HELP)
    parser.add_argument("--face-threshold", type=int, metavar="N", help="query_face_threshold, 120-200")
    parser.add_argument("--reframe", action="store_true", help="fix: crop a close-up around a small face")
    parser.add_argument(
        "--align",
        choices=ALIGN_CHOICES,
        default=None,
        help="fix: voice and video lengths (default: the settings' fix.align, else service)",
    )
    parser.add_argument(
        "--make-ref", action="store_true", help="fix: cut a reference image when several faces"
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="send inputs longer than 120 s in parts, cut at pauses in the speech, and join the results",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="send anyway: pass every finding that gates the job, and send inputs that were sent "
        "before (pay again)",
    )
    parser.add_argument(
        "--accept",
        action="append",
        default=[],
        metavar="CODE",
        help="send although this finding gates the job (a code or a prefix; repeatable). Gating "
        f"by default: {', '.join(DEFAULT_GATE)} (from {DEFAULT_SPEECH_CUT_S:g} s of speech cut); "
        "settings: [prep] gate, speech_cut_s",
    )
    parser.add_argument(
        "--journal", metavar="FILE", help="the job journal (default: RETALK_JOURNAL, else ~/.local/state)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings file, as `preflight check` reads (default: the nearest preflight.toml, or "
        "pyproject.toml with [tool.preflight], from the inputs up)",
    )
    parser.add_argument("--isolated", action="store_true", help="ignore every settings file")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="the summary's format (default text)"
    )
    download_options(parser)
    return parser


def _finding_lines(findings: Sequence[Finding]) -> list[str]:
    return [
        f"  {finding.severity.value:7} {printable(finding.code)}  {printable(finding.message)}"
        for finding in findings
    ]


def _checked_lines(result: PipelineResult) -> list[str]:
    """Every finding, by name and with its message, and what the fix did (escaped)."""
    lines: list[str] = []
    if result.check is not None:
        for report in result.check.files:
            if not report.findings:
                lines.append(f"checked {printable(report.path)} ({report.role}): nothing to report")
                continue
            lines.append(f"checked {printable(report.path)} ({report.role}):")
            lines += _finding_lines(report.findings)
        if result.check.job is not None and result.check.job.findings:
            lines.append("checked the job (the files together):")
            lines += _finding_lines(result.check.job.findings)
    if result.fix is not None:
        for fixed in result.fix.files:
            path, steps = printable(fixed.path), printable(", ".join(a.name for a in fixed.actions))
            if fixed.error is not None:
                lines.append(f"cannot fix {path}: {printable(fixed.error)}")
                continue
            still = ", ".join(f.code for f in fixed.findings if f.severity.value != "info")
            left = f" (still: {printable(still)})" if still else ""
            where = printable((fixed.planned if result.fix.dry_run else fixed.output) or "(not written)")
            verb = "copied" if only_copied(fixed) else "fixed"
            if only_copied(fixed):
                steps = "already accepted"
            if result.fix.dry_run:
                verb = {"copied": "would copy", "fixed": "would fix"}[verb]
            lines.append(f"{verb} {path} -> {where}: {steps}{left}")
        for action in result.fix.job_actions:
            lines.append(f"job: {printable(action.name)} {printable(action.detail)}")
    if result.trim_cuts_speech_s is not None:
        lines.append(
            f"--align trim cuts {result.trim_cuts_speech_s:.1f} s of speech (Pair.SpeechCut of the "
            "inputs); not gated: you chose the trim"
        )
    if result.gated:
        lines.append(
            "gated (stops the job before anything is sent): "
            + ", ".join(printable(f.code) for f in result.gated)
        )
    return lines


def _checked_text(result: PipelineResult, console: Console) -> None:
    """Every finding and what the fix did: said as soon as it is known, before anything is
    sent (``on_checked``)."""
    for line in _checked_lines(result):
        console.print(line, markup=False)
    console.file.flush()


def _summary_text(result: PipelineResult, console: Console, checked_said: bool = False) -> None:
    if not checked_said:
        _checked_text(result, console)
    for stage in result.stages:
        console.print(f"  {stage.name:32} {stage.seconds:7.2f} s  {printable(stage.detail)}", markup=False)
    if result.error:
        console.print(f"not done: {printable(result.error)}", markup=False)
        return
    cost = result.cost_cny
    if result.job is None and not result.parts:
        expected = f"{result.expected_s:.2f} s" if result.expected_s is not None else "unknown length"
        what = "the work folder's copies" if result.fix is not None else "the inputs as they are"
        console.print(f"would send {what}: {json.dumps(result.sent, ensure_ascii=True)}", markup=False)
        if result.plan is not None:
            console.print(f"in {len(result.plan.parts)} parts, one task each", markup=False)
        console.print(f"the result would last {expected}, about {cost} CNY", markup=False)
        return
    if result.job is not None:
        tasks = f"task {printable(str(result.job.task_id))}"
    else:
        tasks = f"{len(result.parts)} parts: " + ", ".join(
            printable(p.job.task_id or "?") for p in result.parts
        )
    console.print(
        f"done: {printable(str(result.output))} ({result.result_s:.2f} s; "
        f"billed {result.billed_s} s, {cost} CNY; {tasks})",
        markup=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parsed(build_parser(), argv)
    if isinstance(args, int):
        return args
    secret = os.environ.get("DASHSCOPE_API_KEY")
    # The one fatal-error path, for a single job and a batch alike.
    try:
        return _run_batch(args) if args.batch else _run_one(args)
    except RetalkError as exc:
        text = str(exc)
        if args.emulator:
            # No emulator runs for `retalk resume`/`download`: the same command starts it again.
            if isinstance(exc, OutputUnusable | JoinBlocked):
                text = exc.emulated()
            else:
                text = _emulated_advice(text)
        lines = exc.lines if isinstance(exc, BatchProblems) else [text]
        # One problem a line, each escaped on its own (a newline in a name stays escaped).
        shown = "\n".join(printable(redact(line, secret)) for line in lines)
        print(f"prep-and-retalk: error: {shown}", file=sys.stderr)
        return _status_for(exc)
    except _Stopped as stopped:
        print(f"prep-and-retalk: {printable(stopped.text)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        again = "run the same command again" + ("" if args.emulator else " (or `retalk resume`)")
        print(f"prep-and-retalk: interrupted; {again} to finish what was sent", file=sys.stderr)
        return EXIT_INTERRUPTED
    except PreflightError as exc:  # a path that does not exist, a bad option
        print(f"prep-and-retalk: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return reader_gone()
    except Exception as exc:
        print(
            f"prep-and-retalk: internal error: {printable(redact(f'{type(exc).__name__}: {exc}', secret))}",
            file=sys.stderr,
        )
        return EXIT_USAGE


def _emulated_advice(text: str) -> str:
    """A message's advice as it holds for a job sent to the emulator this command starts:
    no emulator runs for `retalk resume`, the same command starts it again on its tasks."""
    text = text.replace("`retalk resume` again", "the same command (with --emulator) again")
    return text.replace("`retalk resume`", "the same command again (with --emulator)")


def _run_one(args: argparse.Namespace) -> int:
    if not (args.video and args.audio and args.output):
        raise ConfigError("give VIDEO AUDIO -o OUTPUT (or --batch CSV)")
    if args.face_threshold is not None and (refused := face_threshold_problem(args.face_threshold)):
        raise ConfigError(f"--face-threshold {args.face_threshold}: {refused}")
    # The project's settings, found and read as `preflight check` and `fix` do.
    config = settings_for([p for p in (args.video, args.audio, args.ref) if p], args.config, args.isolated)
    check_options = config.check_options()
    fix_options = config.fix_options(
        check_options, align=args.align, reframe=args.reframe or None, make_ref=args.make_ref or None
    )
    gates = Gates.of(config.gate, config.gate_speech_cut_s, _accepted(args))
    common = {
        "work_dir": args.work_dir,
        "fix": not args.no_fix,
        "extend_video": args.extend_video,
        "face_threshold": args.face_threshold,
        "fix_options": fix_options,
        "check_options": check_options,
        "overwrite": args.overwrite,
        "force": args.force,
        "split": args.split,
        "gates": gates,
    }
    err = plain_console(stderr=True)
    show = args.format == "text" and err.is_terminal
    out = Console(highlight=False, soft_wrap=True)
    said: list[bool] = []

    def checked(result: PipelineResult) -> None:
        # Every finding in text, on a terminal or not, before anything is uploaded.
        if args.format == "text" and not said:
            said.append(True)
            _checked_text(result, out)

    common["on_checked"] = checked
    if args.dry_run:
        result = prepare_and_retalk(
            None, None, args.video, args.audio, args.ref, args.output, dry_run=True, **common
        )
    else:
        with ExitStack() as stack:
            make_client, journal_path, emulator = service(args, stack)
            client = stack.enter_context(make_client())
            journal = stack.enter_context(Journal(journal_path))
            display = stack.enter_context(live_display(err, show))
            seen: list[int] = []  # the journal's jobs this run took up, for Ctrl-C
            events = events_of(display)
            events = replace(events, on_stage=_noting(seen, events))
            try:
                result = prepare_and_retalk(
                    client,
                    journal,
                    args.video,
                    args.audio,
                    args.ref,
                    args.output,
                    events=events,
                    on_progress=display.stage if display is not None else None,
                    on_stage=(lambda name: err.print(f"{printable(name)}...", markup=False))
                    if show
                    else None,
                    on_part=(
                        lambda number, count, text: err.print(
                            f"  part {number}/{count}: {printable(text)}", markup=False
                        )
                    )
                    if show
                    else None,
                    **common,
                )
            except KeyboardInterrupt:
                raise _Stopped(_close_unpaid(journal, seen, args.emulator)) from None
            if emulator is not None:
                tidy(emulator, journal)
    if args.format == "json":
        json.dump(result.to_dict(), sys.stdout, indent=2, ensure_ascii=True)
        sys.stdout.write("\n")
    else:
        _summary_text(result, out, checked_said=bool(said))
    if result.ok:
        return 0
    sent = result.job is not None or bool(result.parts)
    return 3 if sent else EXIT_REFUSED


class _Stopped(KeyboardInterrupt):
    """Ctrl-C in a single run, with what became of its journal's jobs."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _noting(seen: list[int], events: Events) -> Callable[[Job, str], None]:
    """``events.on_stage``, noting each journal job the run takes a step of."""
    inner = events.on_stage

    def stage(job: Job, name: str) -> None:
        if job.id not in seen:
            seen.append(job.id)
        if inner is not None:
            inner(job, name)

    return stage


def _close_unpaid(journal: Journal, seen: list[int], emulated: bool) -> str:
    """After Ctrl-C: jobs never submitted are closed (`retalk resume` would pay for them),
    and so is a split none of whose parts was ever submitted, with all its parts; a job
    submitted, or caught mid-submit, is kept, and so is every part of a split one of whose
    parts was submitted (in this run or an earlier one: the rest are needed to join it)."""
    again = "run the same command again" + ("" if emulated else " (or `retalk resume`)")
    # The jobs this run took a step of, and those it started or took up without one yet:
    # a split's later parts, a job caught mid-submit whose task is being looked for.
    ids = list(dict.fromkeys([*seen, *(job.id for job in journal.owned())]))
    said: list[str] = []
    handled: set[int] = set()
    for split in journal.splits_holding(ids):
        if split.state not in ("running", "canceled"):
            continue  # an earlier split that shares a part: not this run's
        stop = stop_split(journal, split.id)
        handled |= {i for i in split.job_ids if i is not None}
        unsent = ", ".join(f"job {j.id}" for j in stop.unsent)
        if stop.closed:
            said.append(
                f"interrupted before anything was paid for (split {split.id} closed with its parts: "
                f"{unsent or 'none'}, nothing submitted); run the same command again to send it"
            )
        elif stop.paid:
            named = ", ".join(_named(j) for j in stop.paid)
            said.append(
                f"interrupted after {named} of split {split.id} was submitted and paid for (in this "
                f"run or before); its other parts ({unsent or 'none unsent'}) are kept: {again} to "
                "send them and join the whole"
            )
    jobs = [journal.job(number) for number in ids if number not in handled]
    paid = [job for job in jobs if job.state not in ("new", "uploaded", "submitting", "canceled", "failed")]
    if paid:
        named = ", ".join(_named(j) for j in paid)
        said.append(f"interrupted after {named} was submitted and paid for; {again} to finish it")
    for job in jobs:
        if job.state == "submitting":
            # Its submit may have reached the service: resume looks for its task.
            kept = "`retalk resume`" if not emulated else "the same command run again"
            said.append(
                f"interrupted while job {job.id} was being submitted: it may have been paid; kept for {kept}"
            )
    unpaid = [job for job in jobs if job.state in ("new", "uploaded")]
    if unpaid and not paid and not any(j.state == "submitting" for j in jobs):
        for job in unpaid:
            journal.update(
                job.id,
                state="canceled",
                error="interrupted before it was submitted (nothing paid; run the same command to send it)",
            )
        closed = ", ".join(f"job {j.id}" for j in unpaid)
        said.append(
            f"interrupted before anything was paid for ({closed} closed, nothing submitted); "
            "run the same command again to send it"
        )
    return "; ".join(said) or "interrupted before anything was sent or paid for"


def _named(job: Job) -> str:
    if job.state == "submitting":
        return f"job {job.id} (caught mid-submit: it may have been paid)"
    return f"job {job.id}" + (f" (task {job.task_id})" if job.task_id else "")


def _row_checked(err: Console) -> Callable[[BatchJob, PipelineResult], None]:
    """A batch row's every finding and fix, as a single job says them, before its upload:
    each line starts with the row's, as its status lines do."""

    def said(job: BatchJob, result: PipelineResult) -> None:
        where = f"[line {job.line}] {printable(Path(job.output).name)}:"
        for line in _checked_lines(result):
            err.print(f"{where} {line}", markup=False)

    return said


def _accepted(args: argparse.Namespace) -> tuple[str, ...]:
    """``--accept``'s codes; a typo is a usage error (it would pass nothing)."""
    unknown = unknown_selectors(args.accept)
    if unknown:
        raise ConfigError(f"--accept {', '.join(unknown)}: unknown code or prefix (see `preflight codes`)")
    return tuple(args.accept)


def _run_batch(args: argparse.Namespace) -> int:
    err = plain_console(stderr=True)
    jobs = read_batch(
        args.batch,
        config=args.config,
        isolated=args.isolated,
        accept=_accepted(args),
        overwrite=args.overwrite,
    )
    stop = threading.Event()
    on_line = lambda job, text: err.print(  # noqa: E731
        f"[line {job.line}] {printable(Path(job.output).name)}: {printable(text)}", markup=False
    )
    on_checked = _row_checked(err) if args.format == "text" else None
    if args.dry_run:
        # Nothing uploaded, submitted or paid: no client, no journal.
        return _batch_table(
            args, plan_batch(jobs, split=args.split, on_line=on_line, on_checked=on_checked), stop
        )
    with ExitStack() as stack:
        make_client, journal_path, emulator = service(args, stack)
        outcomes = run_batch(
            jobs,
            make_client,
            journal_path,
            concurrency=args.jobs,
            force=args.force,
            split=args.split,
            on_line=on_line,
            on_note=lambda text: err.print(f"prep-and-retalk: {printable(text)}", markup=False),
            stop=stop,
            on_checked=on_checked,
        )
        if emulator is not None:
            with Journal(journal_path) as journal:
                tidy(emulator, journal)
    return _batch_table(args, outcomes, stop)


def _batch_table(args: argparse.Namespace, outcomes: list[BatchOutcome], stop: threading.Event) -> int:
    """The batch's table (or JSON document) and its exit status."""
    if args.dry_run:
        statuses = ["planned", "refused", "gated"]
    else:
        statuses = ["done", "skipped", "refused", "gated", "failed"]
    # Only an interrupted batch has these; a whole run's summary stays as it always was.
    statuses += [s for s in ("stopped", "left") if any(o.status == s for o in outcomes)]
    counts = {status: sum(1 for o in outcomes if o.status == status) for status in statuses}
    rows = [o.to_dict() for o in outcomes]
    total = round(sum(r["cost_cny"] or 0.0 for r in rows), 2)
    if args.format == "json":
        document = {
            "schema": "retalk.batch/1",
            "jobs": rows,
            "summary": counts,
            "cost_cny": total,
            "interrupted": stop.is_set(),
        }
        json.dump(document, sys.stdout, indent=2, ensure_ascii=True)
        sys.stdout.write("\n")
    else:
        console = plain_console()
        console.print(f"{'line':>5}  {'status':8}  {'CNY':>7}  output  detail", markup=False)
        for outcome, row in zip(outcomes, rows, strict=True):
            cost = f"{row['cost_cny']:.2f}" if row["cost_cny"] is not None else "-"
            console.print(
                f"{outcome.job.line:>5}  {outcome.status:8}  {cost:>7}  "
                f"{printable(str(outcome.job.output))}  {printable(outcome.detail)}",
                markup=False,
            )
        summary = ", ".join(f"{n} {status}" for status, n in counts.items())
        console.print(f"{'total':>5}  {summary}; {total:.2f} CNY", markup=False)
    sys.stdout.flush()
    if stop.is_set():
        return EXIT_INTERRUPTED
    if counts.get("failed"):
        return 3
    return EXIT_REFUSED if counts["refused"] or counts["gated"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
