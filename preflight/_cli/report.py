"""``preflight report``: the check, as one self-contained HTML page."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rich.console import Console

from .. import __version__
from .._check.paths import check_paths
from .._exceptions import UsageError
from .._render.display import printable
from .._render.html import ReportPage, build_report, write_report
from .check import add_inputs, add_isolation, file_progress, isolation, settings


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the check as one self-contained HTML page",
        description="Check the files like `preflight check`, then write one HTML page with "
        "the findings, the sampled frames with faces boxed, and each sound's waveform "
        "(speech marked) and loudness over time. The page loads nothing from the network. "
        "Exit status: 0 no errors, 1 at least one error finding, 2 bad usage or failure.",
    )
    add_inputs(parser, formats=None)
    parser.add_argument(
        "-o", "--output", required=True, metavar="HTML", help="the page to write (a name ending in .html)"
    )
    parser.add_argument("--title", help="the page's title (default: what was checked)")
    add_isolation(parser)
    parser.set_defaults(run=run)


def _check_target(name: str, inputs: list[str]) -> None:
    """Fail before any work when the page could not be written."""
    if os.path.isdir(name):
        raise UsageError(f"{name}: is a folder; -o takes an HTML file name")
    if not name.lower().endswith((".html", ".htm")):
        # Also keeps a slip such as `-o clip.mp4` from replacing a video.
        raise UsageError(f"{name}: the report is an HTML page; give a name ending in .html")
    folder = os.path.dirname(name) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"{name}: cannot write the report: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{name}: cannot write the report: folder {folder} is not writable")
    if os.path.exists(name) and any(os.path.exists(p) and os.path.samefile(name, p) for p in inputs):
        raise UsageError(f"{name}: is one of the files to check; not overwritten")


def _title(args: argparse.Namespace) -> str:
    if args.title:
        return str(args.title)
    if args.video or args.audio or args.ref:
        named = [os.path.basename(p) for p in (args.video, args.audio, args.ref) if p]
        return "preflight report: " + " + ".join(named)
    shown = ", ".join(args.paths[:3]) + (f" and {len(args.paths) - 3} more" if len(args.paths) > 3 else "")
    return f"preflight report: {shown}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def run(args: argparse.Namespace) -> int:
    options, config = settings(args, thumbnails=True)
    inputs = [*args.paths, *(p for p in (args.video, args.audio, args.ref) if p)]
    if not inputs:
        raise UsageError("nothing to report on: give files or folders, or --video/--audio/--ref")
    isolated = isolation(args)
    _check_target(args.output, inputs)
    page = ReportPage(
        title=_title(args),
        version=__version__,
        settings=config.path,
        quiet_lufs=options.thresholds.audio.quiet_lufs,
    )
    console = Console(stderr=True)
    with file_progress(console) as stage:
        report = check_paths(
            args.paths,
            video=args.video,
            audio=args.audio,
            ref=args.ref,
            options=options,
            on_file=stage("checking") if stage is not None else None,
            # Pictures are never kept in the cache, and the page needs them.
            cache=None,
            **isolated,
        )
        text = build_report(report, page, on_file=stage("drawing") if stage is not None else None)
    try:
        write_report(text, args.output)
    except OSError as exc:
        print(
            f"preflight: error: {printable(args.output)}: cannot write the report "
            f"({printable(str(exc.strerror or exc))})",
            file=sys.stderr,
        )
        return 2
    print(
        f"preflight: report written to {printable(args.output)} ({len(report.files)} files, "
        f"{_count(report.errors, 'error')}, {_count(report.warnings, 'warning')})",
        file=sys.stderr,
    )
    return 0 if report.ok else 1
