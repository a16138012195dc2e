"""The options and argument types the ``retalk`` subcommands and ``prep-and-retalk``
share: said once, so that a flag means the same (and is checked the same) everywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from preflight import printable

from .._exceptions import ConfigError, RetalkError
from .._http import DownloadPolicy, is_task_id, shown
from .._journal import Journal
from .._models import KNOWN_STATUSES, UNKNOWN

#: What ``retalk list --status`` takes: the statuses the API page names a task can be in.
LISTED_STATUSES = tuple(sorted(KNOWN_STATUSES - {UNKNOWN}))
#: The task list's page size, as the service takes it.
PAGE_SIZE_RANGE = (1, 100)
#: How a job of the journal is named where a task id is taken: ``job:8``. A task id is
#: letters, digits and dashes, so this can never be one.
JOB_PREFIX = "job:"
#: The help of every option that names a task.
TASK_HELP = "a task id, or a job number of the journal as `job:N` (`retalk jobs` lists them)"
#: ``--extend-video``, said the same everywhere (the API page on video_extension).
EXTEND_HELP = (
    "video_extension: when the voice is longer than the video, extend the video to the voice's "
    "length (the service plays it backwards, then forwards again) instead of cutting the voice"
)


def common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url", help="API base URL (default: DASHSCOPE_HTTP_BASE_URL, else DashScope's)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def journal_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal",
        metavar="FILE",
        help="the job journal (default: RETALK_JOURNAL, else ~/.local/state/retalk)",
    )


def overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="let the result replace a file at -o that the journal does not know as a result",
    )


def result_options(parser: argparse.ArgumentParser) -> None:
    """The options of a command that writes a task's result to a file (submit, download,
    resume): ``--overwrite``, the download's limits, the service's and the journal's."""
    overwrite_option(parser)
    download_options(parser)
    common_options(parser)
    journal_option(parser)


def download_options(parser: argparse.ArgumentParser) -> None:
    defaults = DownloadPolicy()
    parser.add_argument(
        "--max-result-size",
        type=float,
        metavar="MIB",
        help=f"refuse a result larger than this (default {defaults.max_bytes >> 20} MiB)",
    )
    parser.add_argument(
        "--download-timeout",
        type=float,
        metavar="S",
        help=f"give a download up after S seconds in all (default {defaults.deadline_s:g})",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        metavar="S",
        help=f"a download that gets under {defaults.stall_bytes >> 10} KiB in S seconds is stalled and "
        f"tried again (default {defaults.stall_s:g})",
    )


def download_policy(args: argparse.Namespace) -> DownloadPolicy:
    changes: dict[str, Any] = {}
    for option, field in (
        ("max_result_size", "max_bytes"),
        ("download_timeout", "deadline_s"),
        ("stall_timeout", "stall_s"),
    ):
        value = getattr(args, option, None)
        if value is None:
            continue
        if not 0 < value < float("inf"):
            raise ConfigError(f"--{option.replace('_', '-')} {value:g}: must be a positive number")
        changes[field] = int(value * 2**20) if field == "max_bytes" else value
    return replace(DownloadPolicy(), **changes)


def task_id_arg(text: str, journal: str | None = None) -> str:
    """A task id given on the command line (or ``job:N``, the task of the journal's job N),
    checked before it goes into a URL or a file name."""
    if text.startswith(JOB_PREFIX):
        number = text[len(JOB_PREFIX) :]
        if not number.isdigit():
            raise ConfigError(f"{shown(text)}: a job is named by its number, like job:8 (`retalk jobs`)")
        with Journal(journal) as opened:
            try:
                job = opened.job(int(number))
            except RetalkError as exc:  # no such job, or its row is damaged: bad input
                raise ConfigError(str(exc)) from None
        if not job.task_id:
            raise ConfigError(f"job {job.id} is {printable(job.state)}: it has no task (yet)")
        return job.task_id
    if not is_task_id(text):
        raise ConfigError(
            f"{shown(text)} is not a task id (letters, digits and dashes, at most 64, like "
            "a8532587-fa8c-4ef8-82be-0c46b17950d1) nor a job as job:N"
        )
    return text


def status_arg(text: str) -> str:
    """A task status for the list, in any case; one the service does not list is refused
    (it would list nothing, silently)."""
    status = text.strip().upper()
    if status not in LISTED_STATUSES:
        raise argparse.ArgumentTypeError(
            f"{shown(text)} is not a task status (one of {', '.join(LISTED_STATUSES)}, any case)"
        )
    return status


def whole_number(low: int, high: int | None, limit: str) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (no top when None);
    ``limit`` says the range in the message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shown(text)} is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value}: {limit}")
        return value

    return parse


#: ``--page-size``: what the service takes.
page_size_arg = whole_number(
    *PAGE_SIZE_RANGE, f"the service lists {PAGE_SIZE_RANGE[0]} to {PAGE_SIZE_RANGE[1]} tasks a page"
)
#: A count of at least one.
positive_int = whole_number(1, None, "must be 1 or more")


def job_number(text: str) -> int:
    """A job's number, bare (``8``) or as everywhere else (``job:8``)."""
    number = text[len(JOB_PREFIX) :] if text.startswith(JOB_PREFIX) else text
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a job number (like 8 or job:8)")
    return int(number)
