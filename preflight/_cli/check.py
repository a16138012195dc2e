"""``preflight check``: report what the service would reject, with its own error codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn

from .. import __version__
from .._check.cache import CheckCache, default_cache_dir
from .._check.options import CheckOptions
from .._check.paths import check_paths
from .._check.workers import DEFAULT_TIMEOUT_S
from .._config import Config, settings_for
from .._exceptions import UsageError
from .._models import CheckReport, FileReport
from .._probe.faces.scan import VideoFaceScan
from .._render.contact_sheet import write_contact_sheet
from .._render.display import printable
from .._render.formats import render_github, render_junit, render_sarif, render_statistics
from .._render.text import FORMATS, render_json, render_text

#: ``check`` also speaks the CI tools' formats.
CHECK_FORMATS = (*FORMATS, "github", "sarif", "junit")


def _codes(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


#: The options that pick findings by code, each repeatable: a list of codes or prefixes.
_CODE_SELECTORS = (
    ("--select", "report only these codes or prefixes, comma-separated (e.g. InvalidFile,Video.Rotated)"),
    ("--ignore", "do not report these codes or prefixes, comma-separated"),
)


def add_inputs(parser: argparse.ArgumentParser, formats: tuple[str, ...] | None = FORMATS) -> None:
    """Input options shared by the commands that take media (check, fix, report); no
    ``--format`` when ``formats`` is None."""
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or folders (searched recursively); each file's role comes from its "
        "extension, or its content when the extension says nothing",
    )
    parser.add_argument("--video", metavar="FILE", help="the job's video")
    parser.add_argument("--audio", metavar="FILE", help="the job's audio (the new voice)")
    parser.add_argument("--ref", metavar="FILE", help="the job's reference face image")
    if formats is not None:
        parser.add_argument(
            "--format",
            "--output-format",
            dest="format",
            choices=formats,
            default="text",
            help="output format (default: text)",
        )
    for flag, meaning in _CODE_SELECTORS:
        parser.add_argument(flag, type=_codes, action="extend", default=[], metavar="CODES", help=meaning)
    parser.add_argument(
        "--fast",
        action="store_true",
        help="container facts only: skip content analysis (faces, speech)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (default: the nearest preflight.toml, or pyproject.toml with "
        "[tool.preflight], from the files up)",
    )
    parser.add_argument("--isolated", action="store_true", help="ignore every settings file")
    parser.add_argument(
        "--force-exclude",
        action="store_true",
        help="apply the settings' exclude globs to files named on the command line too "
        "(relative to the settings file's folder), as pre-commit hooks need",
    )


def add_isolation(parser: argparse.ArgumentParser) -> None:
    """``--jobs``, ``--timeout`` and ``--isolate``, for the commands that check files
    (check, report)."""
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="check files in N processes at once (default: one per CPU for 8 files or more "
        "analysed in full; --fast checks run in this process)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="give up on a file still being checked after S seconds: it gets an "
        "InvalidFile.Openerror finding, the others are checked (default: "
        f"{DEFAULT_TIMEOUT_S:g}, in other processes only; giving it implies --isolate)",
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="check in another process even with one job, so that a file that crashes "
        "FFmpeg or hangs costs only its own report (several jobs always are)",
    )


def isolation(args: argparse.Namespace) -> dict[str, Any]:
    """check_paths' ``jobs``, ``isolate`` and ``timeout`` from the command line."""
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be 1 or more")
    if args.timeout is None:
        return {"jobs": args.jobs, "isolate": args.isolate, "timeout": DEFAULT_TIMEOUT_S}
    if not args.timeout > 0:  # also NaN
        raise UsageError(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    # A limit asked for is kept, and only a worker process can be stopped in its tracks.
    return {"jobs": args.jobs, "isolate": True, "timeout": args.timeout}


OnFile = Callable[[int, int, str], None]


def progress_bar(console: Console, *measures: ProgressColumn) -> Progress:
    """The commands' progress bar on ``console``, gone when done: what is being done, its
    ``measures`` (bar, count, time left...), then the file's name."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        *measures,
        # A name is shown, never read as markup (a folder named "x[" broke the bar).
        TextColumn("{task.fields[path]}", style="dim", markup=False),
        console=console,
        transient=True,
    )


@contextmanager
def file_progress(console: Console, shown: bool = True) -> Iterator[Callable[[str], OnFile] | None]:
    """A bar of files done, on a terminal when ``shown``: ``stage(name)`` gives the
    callback that reports files under that name (checking, drawing...). None elsewhere."""
    if not (shown and console.is_terminal):
        yield None
        return
    with progress_bar(console, BarColumn(), MofNCompleteColumn()) as progress:
        task = progress.add_task("checking", total=None, path="")

        def stage(name: str) -> OnFile:
            def on_file(number: int, total: int, path: str) -> None:
                progress.update(
                    task, description=name, completed=number - 1, total=total, path=printable(path)
                )

            return on_file

        yield stage


def settings(args: argparse.Namespace, **extra: Any) -> tuple[CheckOptions, Config]:
    """The check's options: the settings file's, then the command line's (``--select``
    replaces the file's list, ``--ignore`` adds to it)."""
    given = [*args.paths, *(p for p in (args.video, args.audio, args.ref) if p)]
    config = settings_for(given, args.config, args.isolated)
    options = config.check_options(
        args.select,
        args.ignore,
        fast=args.fast,
        force_exclude=_settings_folder(config) if args.force_exclude else None,
        **extra,
    )
    return options, config


def _settings_folder(config: Config) -> str:
    """The folder the exclude globs are relative to: the settings file's, else here."""
    return os.path.dirname(os.path.abspath(config.path)) if config.path else os.getcwd()


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="predict what the service would reject",
        description="Probe video, audio and image files and report, with the service's own "
        "error codes, what VideoRetalk would reject. Exit status: 0 no errors, 1 at least "
        "one error finding, 2 bad usage or internal failure.",
    )
    add_inputs(parser, CHECK_FORMATS)
    parser.add_argument("-q", "--quiet", action="store_true", help="list only files with findings")
    add_isolation(parser)
    parser.add_argument("--no-cache", action="store_true", help="check every file again, even unchanged ones")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where results are kept (default: PREFLIGHT_CACHE_DIR, else .preflight_cache beside "
        "the settings file, else ~/.cache/preflight)",
    )
    parser.add_argument(
        "--statistics",
        action="store_true",
        help="print how many findings of each code instead of each finding (text or json)",
    )
    parser.add_argument(
        "--contact-sheet",
        metavar="PNG",
        help="also write the sampled frames of the video, faces boxed, to this PNG (with "
        "several videos, one sheet each: PNG's name plus the video's)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options, config = settings(args, thumbnails=args.contact_sheet is not None)
    if not (args.paths or args.video or args.audio or args.ref):
        raise UsageError("nothing to check: give files or folders, or --video/--audio/--ref")
    cache = None if args.no_cache else _trusted_cache(args.cache_dir or default_cache_dir(config.path))
    if args.contact_sheet is not None:
        _check_sheet_target(args.contact_sheet, options)
    isolated = isolation(args)
    if args.statistics and args.format not in ("text", "json"):
        raise UsageError(f"--statistics prints text or json, not {args.format}")

    def check(on_file: Callable[[int, int, str], None] | None = None) -> CheckReport:
        return check_paths(
            args.paths,
            video=args.video,
            audio=args.audio,
            ref=args.ref,
            options=options,
            on_file=on_file,
            cache=cache,
            **isolated,
        )

    with file_progress(Console(stderr=True), shown=args.format == "text") as stage:
        report = check(stage("checking") if stage is not None else None)

    status = 0 if report.ok else 1
    try:
        if args.statistics:
            render_statistics(report, sys.stdout, as_json=args.format == "json")
        elif args.format == "json":
            render_json(report, sys.stdout)
        elif args.format == "github":
            render_github(report, sys.stdout)
        elif args.format == "sarif":
            render_sarif(report, sys.stdout, __version__)
        elif args.format == "junit":
            render_junit(report, sys.stdout)
        else:
            render_text(report, Console(highlight=False), quiet=args.quiet)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, grep -q) went away; the verdict still stands.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    # After the report, so that a sheet that cannot be written never costs the verdict.
    if args.contact_sheet is not None and not _write_sheets(report, args.contact_sheet, args.ref, options):
        return 2
    return status


def _trusted_cache(folder: str | os.PathLike[str]) -> CheckCache | None:
    """The cache in ``folder``, unless others could have written there: then the check runs
    uncached, and says why on stderr (never in the report a program reads)."""
    cache = CheckCache(folder)
    reason = cache.refusal()
    if reason is None:
        return cache
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(folder))
    print(f"preflight: not using the cache {shown}: {reason}", file=sys.stderr)
    return None


def _check_sheet_target(name: str, options: CheckOptions) -> None:
    """Fail before any work when the sheet could not be written or drawn."""
    if options.fast:
        raise UsageError("--contact-sheet needs the face scan, which --fast turns off")
    if not options.analyses_faces():
        raise UsageError("--contact-sheet needs the face scan, but --select/--ignore leave no Face code")
    if os.path.isdir(name):
        raise UsageError(f"{name}: is a folder; --contact-sheet takes a PNG file name")
    if not name.lower().endswith(".png"):
        # Also keeps a slip such as `--contact-sheet clip.mp4` from replacing a video.
        raise UsageError(f"{name}: the contact sheet is a PNG; give a name ending in .png")
    folder = os.path.dirname(name) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"{name}: cannot write the contact sheet: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{name}: cannot write the contact sheet: folder {folder} is not writable")


def _sheet_names(name: str, videos: list[FileReport]) -> list[str]:
    """One name per video: NAME itself for one, NAME-stem.png for several (numbered when
    two videos share a stem)."""
    if len(videos) == 1:
        return [name]
    root = name[: -len(".png")]
    names: list[str] = []
    for video in videos:
        stem = os.path.splitext(os.path.basename(video.path))[0]
        candidate, number = f"{root}-{stem}.png", 1
        while candidate in names:
            number += 1
            candidate = f"{root}-{stem}-{number}.png"
        names.append(candidate)
    return names


def _write_sheets(report: CheckReport, name: str, ref_path: str | None, options: CheckOptions) -> bool:
    """Write the sheets; False (after saying why) when one could not be written."""
    videos = [r for r in report.files if isinstance(r.faces, VideoFaceScan)]
    ref = next((r for r in report.files if r.role == "ref" and r.path == ref_path), None)
    if not videos:
        print("preflight: no contact sheet written: no video was scanned for faces", file=sys.stderr)
        return True
    inputs = {os.path.realpath(r.path) for r in report.files}
    for video, target in zip(videos, _sheet_names(name, videos), strict=True):
        if os.path.realpath(target) in inputs:
            print(
                f"preflight: error: {printable(target)}: is one of the checked files; not overwritten",
                file=sys.stderr,
            )
            return False
        try:
            written = write_contact_sheet(video, target, ref, thresholds=options.thresholds.face)
        except OSError as exc:
            print(
                f"preflight: error: {printable(target)}: cannot write the contact sheet "
                f"({printable(str(exc.strerror or exc))})",
                file=sys.stderr,
            )
            return False
        print(f"preflight: contact sheet written to {printable(str(written))}", file=sys.stderr)
    return True
