"""``preflight`` command line: one module per subcommand, one fatal-error path."""

from __future__ import annotations

import argparse
import io
import os
import sys
import traceback
from collections.abc import Sequence

from .. import __version__
from .._exceptions import PreflightError
from .._render.display import printable
from . import check, codes, fix, report

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_FAILURE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preflight",
        description="Check video, audio and reference images against the VideoRetalk "
        "service's limits before you pay for a task.",
    )
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    check.add_parser(subparsers)
    fix.add_parser(subparsers)
    report.add_parser(subparsers)
    codes.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A file name that is not valid UTF-8 must not cost the report: escape what the
    # terminal cannot show.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_FAILURE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_FAILURE
    try:
        return int(args.run(args))
    except PreflightError as exc:
        print(f"preflight: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (head, less) went away; nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the one place an unexpected failure becomes a message
        print(
            f"preflight: internal error: {type(exc).__name__}: {printable(str(exc))}\n"
            "This is a bug in preflight; please report it with the file that caused it."
            + ("" if os.environ.get("PREFLIGHT_DEBUG") else " (Set PREFLIGHT_DEBUG=1 for details.)"),
            file=sys.stderr,
        )
        if os.environ.get("PREFLIGHT_DEBUG"):
            traceback.print_exc()
        return EXIT_FAILURE
