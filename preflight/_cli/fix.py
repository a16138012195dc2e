"""``preflight fix``: write compliant copies of the inputs, touching only what is wrong."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, TaskProgressColumn, TimeRemainingColumn
from rich.text import Text

from .._exceptions import UsageError
from .._fix.job import fix_paths
from .._fix.model import ALIGN_CHOICES, PRESETS, FixReport
from .._models import Severity
from .._render.display import line_start, plain, printable
from .._render.text import render_json
from .check import add_inputs, progress_bar, settings


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fix",
        help="write compliant copies of the files, with the least change",
        description="Check the files, then write copies the service accepts into --out-dir, "
        "changing only what is wrong (a file that already passes is copied unchanged). The "
        "originals are never modified. Exit status: 0 every output passes, 1 some output still "
        "fails (the report says why), 2 bad usage or internal failure.",
    )
    add_inputs(parser)
    parser.add_argument("-o", "--out-dir", required=True, metavar="DIR", help="where the fixed copies go")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files in DIR that preflight did not write there (by default such a file "
        "is refused, exit 2; the outputs of an earlier run are always replaced)",
    )
    parser.add_argument(
        "--align",
        choices=ALIGN_CHOICES,
        default=None,
        help="voice and video lengths: leave them to the service (default: it cuts the longer), "
        "trim both to the shorter, extend the video to the voice, or pad the voice to the video",
    )
    parser.add_argument(
        "--make-ref",
        action="store_true",
        help="when the video shows several faces and no --ref is given, cut a reference image "
        "of the face the service would pick from the first frame",
    )
    parser.add_argument(
        "--reframe", action="store_true", help="crop a close-up that follows a face that is too small"
    )
    parser.add_argument("--drop-audio", action="store_true", help="drop the video's own sound track")
    parser.add_argument("--no-denoise", action="store_true", help="leave a noisy voice as it is")
    parser.add_argument("--no-normalize", action="store_true", help="leave a quiet or hot voice at its level")
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="x264 speed preset of a re-encode (default: medium)",
    )
    parser.add_argument(
        "--crf",
        type=int,
        default=None,
        metavar="N",
        help="x264 quality of a re-encode, 0-51, lower is better (default: 18, visually lossless)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not (args.paths or args.video or args.audio or args.ref):
        raise UsageError("nothing to fix: give files or folders, or --video/--audio/--ref")
    check_options, config = settings(args)
    # The settings file's fixer defaults, then the command line's.
    options = config.fix_options(
        check_options,
        align=args.align,
        reframe=args.reframe or None,
        make_ref=args.make_ref or None,
        drop_audio=args.drop_audio or None,
        denoise=False if args.no_denoise else None,
        normalize=False if args.no_normalize else None,
        preset=args.preset,
        crf=args.crf,
    )
    inputs: dict[str, Any] = {
        "out_dir": args.out_dir,
        "video": args.video,
        "audio": args.audio,
        "ref": args.ref,
        "options": options,
        "check_options": check_options,
        "dry_run": args.dry_run,
        "overwrite": args.overwrite,
    }
    err_console = Console(stderr=True)
    if err_console.is_terminal and args.format == "text" and not args.dry_run:
        with progress_bar(err_console, BarColumn(), TaskProgressColumn(), TimeRemainingColumn()) as progress:
            task = progress.add_task("fixing", total=1.0, path="")

            def on_progress(number: int, total: int, path: str, fraction: float) -> None:
                if fraction == 0.0:
                    progress.reset(
                        task, total=1.0, description=f"fixing {number}/{total}", path=printable(path)
                    )
                progress.update(task, completed=fraction)

            report = fix_paths(args.paths, on_progress=on_progress, **inputs)
    else:
        report = fix_paths(args.paths, **inputs)

    try:
        if args.format == "json":
            render_json(report, sys.stdout)
        else:
            console = Console(highlight=False)
            # In a log, one line per item: wrapping could start a line with part of a name.
            console.soft_wrap = not console.is_terminal
            render_fix_text(report, console)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if report.ok else 1


_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def render_fix_text(report: FixReport, console: Console) -> None:
    # Text objects, never markup strings: names and messages are shown as they are.
    for fixed in report.files:
        target = fixed.output or ("(dry run)" if report.dry_run else "(not written)")
        line = Text.assemble(
            plain(line_start(fixed.path), "bold"), f" ({fixed.role}) -> ", plain(target), "  "
        )
        line.append("ok" if fixed.ok else "still fails", style="green" if fixed.ok else "bold red")
        console.print(line)
        for action in fixed.actions:
            console.print(Text.assemble("  ", plain(action.name, "magenta"), " ", plain(action.detail)))
        if fixed.error:
            console.print(Text.assemble("  ", ("not fixed:", "bold red"), " ", plain(fixed.error)))
        for note in fixed.notes:
            console.print(Text.assemble("  ", ("note:", "cyan"), " ", plain(note)))
        # A dry run shows what the input has; a fix, what its output still has.
        label = "found" if report.dry_run else "still"
        for finding in fixed.findings:
            code = plain(finding.code, _STYLE[finding.severity])
            console.print(Text.assemble("  ", (label, "dim"), " ", code, " ", plain(finding.message)))
    job_findings = report.job.findings if report.job is not None else ()
    if report.job_actions or job_findings:
        console.print(Text("job", style="bold"))
    for action in report.job_actions:
        console.print(Text.assemble("  ", plain(action.name, "magenta"), " ", plain(action.detail)))
    for finding in job_findings:
        code = plain(finding.code, _STYLE[finding.severity])
        console.print(Text.assemble("  ", code, " ", plain(finding.message)))
    fixed_count = sum(1 for f in report.files if f.ok)
    word = "would pass" if report.dry_run else "pass"
    console.print(f"{fixed_count} of {len(report.files)} file(s) {word}.")
