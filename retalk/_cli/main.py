"""``retalk`` command line: parser, the one fatal-error path, exit statuses.

Exit status: 0 done, 1 the task or an input was refused (the message says which finding)
or its result expired, 2 bad usage or configuration (the key, the base URL, a duplicate
without --force, a damaged journal), 3 the service or the network failed after retries, the
service answers UNKNOWN for the task (the job stays open), or the result could not
be written (a full disk: the task waits in the journal for ``retalk resume``),
130 interrupted (submitted tasks are in the journal: ``retalk resume``).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import traceback
from collections.abc import Sequence

from preflight import printable

from .. import __version__
from .._exceptions import (
    AuthError,
    ConfigError,
    DownloadError,
    InputError,
    ResultExpired,
    RetalkError,
    ServiceError,
    SubmitUncertain,
    TaskFailed,
    TaskTimeout,
    TaskUnknown,
    TransportError,
    UploadError,
    redact,
)
from .._journal import DuplicateJob, DuplicateSplit
from .._run.split_tasks import PartFailed
from . import emulator, tasks

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3
EXIT_INTERRUPTED = 130

#: The exit statuses, for every command's help (the module's docstring says why each).
EXIT_STATUSES = """exit status:
  0    done
  1    the task or an input was refused, the task failed or was canceled, its result expired
  2    bad usage or configuration (an option, the key, the base URL, the journal)
  3    the service or the network failed after retries, the service does not know the task
       (UNKNOWN), a timeout, or the result could not be written (`retalk resume` finishes it)
  130  interrupted (submitted tasks are in the journal: `retalk resume` finishes them)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retalk",
        description="Upload, submit, wait for and download VideoRetalk lip-sync tasks, never losing "
        "or double-paying one. The key comes from DASHSCOPE_API_KEY. Where a task id is "
        "taken, `job:N` names the task of the journal's job N (`retalk jobs`).",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"retalk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    tasks.add_parsers(subparsers)
    emulator.add_parser(subparsers)
    return parser


def _status_for(exc: RetalkError) -> int:
    if isinstance(exc, ConfigError | DuplicateJob | DuplicateSplit | AuthError):
        return EXIT_USAGE  # the key, the account or the base URL: set up differently
    # A result that expired is as final as a failed task: asking again will not bring it back.
    if isinstance(exc, TaskFailed | InputError | UploadError | PartFailed | ResultExpired):
        return EXIT_REFUSED
    # UNKNOWN is no end: the job stays open, like a task still running after --timeout.
    if isinstance(
        exc, ServiceError | TransportError | SubmitUncertain | TaskTimeout | TaskUnknown | DownloadError
    ):
        return EXIT_SERVICE
    return EXIT_SERVICE


def escape_unprintable_output() -> None:
    """A file name that is not valid UTF-8 must not cost the output: what the terminal
    cannot show is escaped."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def reader_gone() -> int:
    """The exit status once standard output's reader (head, less) went away: nothing more
    to say. Output goes to /dev/null from here, so the flush at exit does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def parsed(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The arguments, or the exit status when argparse ended the run: --help (0), a usage
    mistake (2). Output that cannot be shown is escaped from here on."""
    escape_unprintable_output()
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parsed(parser, argv)
    if isinstance(args, int):
        return args
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except RetalkError as exc:
        finding = getattr(exc, "finding", None)
        hint = f" [{printable(finding.code)}: see `preflight codes`]" if finding is not None else ""
        # The message carries the service's words and file names: shown printable.
        text = printable(redact(str(exc), os.environ.get("DASHSCOPE_API_KEY")))
        print(f"retalk: error: {text}{hint}", file=sys.stderr)
        return _status_for(exc)
    except KeyboardInterrupt:
        print(
            "retalk: interrupted; submitted tasks are in the journal: `retalk resume` finishes them",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return reader_gone()
    except OSError as exc:
        print(
            f"retalk: error: {printable(str(exc.filename or ''))}: {printable(str(exc.strerror or exc))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except Exception as exc:  # the one place an unexpected failure becomes a message
        text = printable(redact(f"{type(exc).__name__}: {exc}", os.environ.get("DASHSCOPE_API_KEY")))
        print(f"retalk: internal error: {text}\nThis is a bug in retalk; please report it.", file=sys.stderr)
        if os.environ.get("RETALK_DEBUG"):
            traceback.print_exc()
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
