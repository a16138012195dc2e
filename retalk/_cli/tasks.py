"""``retalk upload|submit|status|wait|download|cancel|list|jobs|forget|resume``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from preflight import line_start, printable

from .._exceptions import ConfigError, RetalkError
from .._http import Client, is_local, resolve_base_url
from .._journal import UNFINISHED, DamagedRow, Job, Journal, Split, default_path
from .._models import Task, face_threshold_problem
from .._run.job import resume, run_job
from .._run.output_path import check_output, refuse_overwriting, refuse_replacing
from .._run.split_tasks import finish_splits
from .display import Display, events_of, live_display, plain_console
from .options import (
    EXTEND_HELP,
    LISTED_STATUSES,
    PAGE_SIZE_RANGE,
    TASK_HELP,
    common_options,
    download_policy,
    job_number,
    journal_option,
    page_size_arg,
    positive_int,
    result_options,
    status_arg,
    task_id_arg,
)

PRICE_CNY_PER_SECOND = 0.08


def add_parsers(subparsers: Any) -> None:
    upload = subparsers.add_parser("upload", help="put local files in the temporary storage (48 h)")
    upload.add_argument("files", nargs="+", metavar="FILE", help="the files to upload")
    common_options(upload)
    upload.set_defaults(run=run_upload)

    submit = subparsers.add_parser("submit", help="upload, submit, wait and download one job")
    submit.add_argument("video", help="the video (MP4, MOV or AVI)")
    submit.add_argument("audio", help="the voice (WAV, MP3 or AAC)")
    submit.add_argument("--ref", help="reference image of the face to sync")
    submit.add_argument("-o", "--output", help="where the result goes (default: TASK_ID.mp4)")
    submit.add_argument("--extend-video", action="store_true", help=EXTEND_HELP)
    submit.add_argument("--face-threshold", type=int, metavar="N", help="query_face_threshold, 120-200")
    submit.add_argument(
        "--force", action="store_true", help="submit inputs that were submitted before (pay again)"
    )
    submit.add_argument(
        "--no-wait", action="store_true", help="stop once submitted (`retalk resume` finishes it)"
    )
    submit.add_argument("--timeout", type=float, metavar="S", help="give up waiting after S seconds")
    result_options(submit)
    submit.set_defaults(run=run_submit)

    for name, helptext, runner in (
        ("status", "show a task", run_status),
        ("cancel", "cancel a task still PENDING", run_cancel),
    ):
        command = subparsers.add_parser(name, help=helptext)
        command.add_argument("task_id", help=TASK_HELP)
        common_options(command)
        journal_option(command)
        command.set_defaults(run=runner)

    wait = subparsers.add_parser("wait", help="wait for a task to finish")
    wait.add_argument("task_id", help=TASK_HELP)
    wait.add_argument("--timeout", type=float, metavar="S", help="give up waiting after S seconds (exit 3)")
    common_options(wait)
    journal_option(wait)
    wait.set_defaults(run=run_wait)

    download = subparsers.add_parser("download", help="download a task's result")
    download.add_argument("task_id", help=TASK_HELP + ", or the result URL itself")
    download.add_argument(
        "-o",
        "--output",
        required=True,
        help="where the result goes (a journaled job of that task is then done, with this output)",
    )
    result_options(download)
    download.set_defaults(run=run_download)

    listing = subparsers.add_parser("list", help="recent tasks")
    listing.add_argument(
        "--status",
        type=status_arg,
        help=f"only tasks in this status, any case: {', '.join(LISTED_STATUSES)}",
    )
    listing.add_argument(
        "--page-size",
        type=page_size_arg,
        default=10,
        metavar="N",
        help=f"at most N tasks, {PAGE_SIZE_RANGE[0]}-{PAGE_SIZE_RANGE[1]} (default 10)",
    )
    common_options(listing)
    listing.set_defaults(run=run_list)

    listing_jobs = subparsers.add_parser(
        "jobs",
        help="the jobs in the journal, newest first, and what went wrong (a damaged row named, not hidden)",
    )
    listing_jobs.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="at most N jobs (default 50)"
    )
    listing_jobs.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    journal_option(listing_jobs)
    listing_jobs.set_defaults(run=run_jobs)

    forget = subparsers.add_parser(
        "forget",
        help="stop following an unfinished job (e.g. one whose task the service answers UNKNOWN for)",
    )
    forget.add_argument("job", type=job_number, help="the job's number (`retalk jobs`), as 8 or job:8")
    forget.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    journal_option(forget)
    forget.set_defaults(run=run_forget)

    again = subparsers.add_parser("resume", help="finish every unfinished job in the journal")
    again.add_argument(
        "--timeout", type=float, metavar="S", help="give up waiting for each task after S seconds"
    )
    again.add_argument(
        "--job",
        type=job_number,
        metavar="N",
        help="with -o: the job (`retalk jobs`) whose result goes to -o",
    )
    again.add_argument(
        "--split", type=int, metavar="N", help="with -o: the split job whose joined result goes to -o"
    )
    again.add_argument(
        "-o",
        "--output",
        help="with --job or --split: write its result here (its own output could not take it)",
    )
    result_options(again)
    again.set_defaults(run=run_resume)


def _client(args: argparse.Namespace) -> Client:
    return Client(base_url=args.base_url, download_policy=download_policy(args))


def _err() -> Console:
    return plain_console(stderr=True)


def _live(args: argparse.Namespace) -> AbstractContextManager[Display | None]:
    """Bars on stderr for text output on a terminal."""
    console = _err()
    return live_display(console, args.format == "text" and console.is_terminal)


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.format == "json":
        json.dump(data, sys.stdout, indent=2, ensure_ascii=True)
        sys.stdout.write("\n")
    else:
        plain_console().print(text, markup=False)


def _task_dict(task: Task) -> dict[str, Any]:
    return asdict(task)


def _task_text(task: Task) -> str:
    # Every field is the service's text: shown printable, one task per line.
    parts = [f"{line_start(task.task_id)} {printable(task.status)}"]
    if task.code:
        parts.append(f"{printable(str(task.code))}: {printable(str(task.message or ''))}")
    if task.usage and task.usage.video_duration is not None:
        seconds = task.usage.video_duration
        parts.append(f"{seconds:.2f} s billed, {seconds * PRICE_CNY_PER_SECOND:.2f} CNY")
    if task.video_url:
        parts.append(printable(str(task.video_url)))
    return "  ".join(parts)


def _job_dict(job: Job) -> dict[str, Any]:
    return {
        "job": job.id,
        "state": job.state,
        "task_id": job.task_id,
        "output": job.output,
        "billed_s": job.billed_s,
        "cost_cny": None if job.billed_s is None else round(job.billed_s * PRICE_CNY_PER_SECOND, 2),
        "error": job.error,
    }


def _job_text(job: Job) -> str:
    text = f"job {job.id}: {printable(job.state)}"
    if job.task_id:
        text += f", task {printable(job.task_id)}"
    if job.billed_s is not None:
        text += f", {job.billed_s:.2f} s billed ({job.billed_s * PRICE_CNY_PER_SECOND:.2f} CNY)"
    if job.state == "downloaded" and job.output:
        text += f" -> {printable(job.output)}"
    return text


# --------------------------------------------------------------------------- commands
def run_upload(args: argparse.Namespace) -> int:
    urls = []
    with _client(args) as client, _live(args) as display:
        for name in args.files:

            def show(done: int, total: int | None, shown: str = os.path.basename(name)) -> None:
                if display is not None:
                    display.transfer(shown, done, total)

            urls.append({"file": name, "url": client.upload(name, on_progress=show)})
    _print(args, urls, "\n".join(f"{line_start(u['file'])}: {printable(u['url'])}" for u in urls))
    return 0


def run_submit(args: argparse.Namespace) -> int:
    if args.face_threshold is not None and (refused := face_threshold_problem(args.face_threshold)):
        raise ConfigError(f"--face-threshold {args.face_threshold}: {refused}")
    if args.output:
        check_output(args.output)
    with _client(args) as client, Journal(args.journal) as journal:
        if args.output:
            files = {"video": args.video, "audio": args.audio, "ref": args.ref, "journal": str(journal.path)}
            refuse_overwriting(args.output, files)
            if not args.overwrite:
                refuse_replacing(args.output, journal.knows_output(args.output))
        with _live(args) as display:
            job = run_job(
                client,
                journal,
                args.video,
                args.audio,
                args.ref,
                output=args.output,
                video_extension=True if args.extend_video else None,
                query_face_threshold=args.face_threshold,
                force=args.force,
                wait_timeout=args.timeout,
                events=events_of(display),
                wait=not args.no_wait,
            )
    _print(args, _job_dict(job), _job_text(job))
    return 0


def run_status(args: argparse.Namespace) -> int:
    return _on_one_task(args, lambda client, task_id, _: client.get(task_id))


def run_cancel(args: argparse.Namespace) -> int:
    return _on_one_task(args, lambda client, task_id, _: client.cancel(task_id), settle=False)


def run_wait(args: argparse.Namespace) -> int:
    return _on_one_task(
        args,
        lambda client, task_id, display: client.wait(
            task_id, timeout=args.timeout, on_status=events_of(display).on_status
        ),
        live=True,
    )


def _on_one_task(
    args: argparse.Namespace,
    act: Callable[[Client, str, Display | None], Task],
    *,
    live: bool = False,
    settle: bool = True,
) -> int:
    """``status``, ``cancel`` and ``wait``: ``act`` on the task named (with bars on stderr
    when ``live``), show what the service answered, and with ``settle`` end as ``wait``
    does: a task the service does not know (UNKNOWN) is no success, nor is a failed or
    canceled one."""
    task_id = task_id_arg(args.task_id, args.journal)
    with _client(args) as client, _live(args) if live else nullcontext(None) as display:
        task = act(client, task_id, display)
    _print(args, _task_dict(task), _task_text(task))
    if settle:
        task.raise_for_status()
    return 0


def _same_file_name(recorded: str | None, given: str) -> bool:
    """``given`` names the output the journal recorded for a job (or split)."""
    return recorded is not None and os.path.abspath(recorded) == os.path.abspath(given)


def run_download(args: argparse.Namespace) -> int:
    url = args.task_id
    task_id = None if url.startswith(("http://", "https://")) else task_id_arg(url, args.journal)
    check_output(args.output)
    # Never over the journal or a journaled job's inputs: said before any request. A URL's
    # download leaves a journal that does not exist yet uncreated (it has nothing to say).
    journal_path = Path(args.journal) if args.journal else default_path()
    keep: dict[str, str | None] = {"journal": str(journal_path)}
    known = False
    if task_id is not None or os.path.lexists(journal_path):
        with Journal(journal_path) as journal:
            job = journal.by_task(task_id) if task_id is not None else None
            if job is not None:
                keep |= {role: d.get("path") for role, d in job.inputs.items()}
                # Only this task's own result may be replaced by it: another job's result
                # there was paid for too.
                known = _same_file_name(job.output, args.output)
    refuse_overwriting(args.output, keep)
    if not args.overwrite:
        refuse_replacing(args.output, known)
    task: Task | None = None
    with _client(args) as client, _live(args) as display:
        if task_id is not None:
            task = client.get(task_id).raise_for_status()
            if not task.video_url:
                raise ConfigError(
                    f"task {printable(task.task_id)} is {printable(task.status)}: no result to download yet"
                )
            url = task.video_url
        path = client.download(url, args.output, on_progress=events_of(display).on_download)
    text = f"downloaded to {printable(str(path))}"
    data: dict[str, Any] = {"output": str(path)}
    if task is not None:
        # The journal's job of this task (one whose own output could not take the result) is
        # done: `retalk resume` no longer tries it.
        with Journal(args.journal) as journal:
            job = journal.by_task(task.task_id)
            if job is not None and job.state in UNFINISHED:
                billed = task.usage.video_duration if task.usage else None
                job = journal.update(
                    job.id, state="downloaded", output=os.path.abspath(path), billed_s=billed, error=None
                )
                data["job"] = _job_dict(job)
                text += f"; job {job.id}: downloaded"
    _print(args, data, text)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.list(page_size=args.page_size, status=args.status)
    _print(args, [_task_dict(t) for t in found], "\n".join(_task_text(t) for t in found) or "no tasks")
    return 0


def _warn_damaged(damaged: list[DamagedRow]) -> None:
    for row in damaged:
        _err().print(f"retalk: warning: {row}", markup=False)


def run_jobs(args: argparse.Namespace) -> int:
    with Journal(args.journal) as journal:
        jobs = journal.jobs(args.limit)
        damaged = journal.damaged()
    data = {"jobs": [_job_dict(j) for j in jobs], "damaged": [row.to_dict() for row in damaged]}
    lines = []
    for job in jobs:
        line = _job_text(job)
        if job.error and job.state != "downloaded":
            line += f"\n    {printable(job.error)}"
        lines.append(line)
    lines += [row.line for row in damaged]
    _print(args, data, "\n".join(lines) or "no jobs")
    _warn_damaged(damaged)
    return 0


def run_forget(args: argparse.Namespace) -> int:
    with Journal(args.journal) as journal:
        job = journal.forget(args.job)
    text = f"job {job.id}: forgotten; `retalk resume` leaves it alone, and the same inputs ask for --force"
    if job.task_id:
        text += f" (task {printable(job.task_id)}, if it ran, was paid for)"
    _print(args, _job_dict(job), text)
    return 0


def _new_output(args: argparse.Namespace) -> None:
    """``retalk resume --job N -o FILE``: that unfinished job's result goes to FILE."""
    if (args.job is None and args.split is None) != (args.output is None) or None not in (
        args.job,
        args.split,
    ):
        raise ConfigError("-o FILE goes with one of --job N or --split N: whose result goes to FILE")
    if args.output is None:
        return
    check_output(args.output)
    with Journal(args.journal) as journal:
        if args.split is not None:
            try:
                split = journal.split(args.split)
            except RetalkError as exc:  # no such split: bad input, as a task id is
                raise ConfigError(str(exc)) from None
            if split.state != "running":
                raise ConfigError(f"split {split.id} is {split.state}: there is nothing left to join")
            refuse_overwriting(args.output, {"voice": split.plan.get("voice"), "journal": str(journal.path)})
            if not args.overwrite:
                refuse_replacing(args.output, _same_file_name(split.output, args.output))
            journal.update_split(split.id, output=os.path.abspath(args.output), error=None)
            return
        try:
            job = journal.job(args.job)
        except RetalkError as exc:  # no such job: bad input, as `job:N` is
            raise ConfigError(str(exc)) from None
        if job.state not in UNFINISHED:
            raise ConfigError(f"job {job.id} is {job.state}: there is nothing left to download for it")
        refuse_overwriting(
            args.output, {**{r: d.get("path") for r, d in job.inputs.items()}, "journal": str(journal.path)}
        )
        if not args.overwrite:
            refuse_replacing(args.output, _same_file_name(job.output, args.output))
        journal.update(job.id, output=os.path.abspath(args.output), error=None)


def _elsewhere_notes(urls: list[str]) -> list[str]:
    """What finishes the unfinished jobs of other base URLs than this resume's."""
    emulated = sum(1 for url in urls if is_local(url))
    notes = []
    if emulated:
        notes.append(
            f"{emulated} emulator job(s): run the same prep-and-retalk --emulator command to finish them"
        )
    for url in sorted({url for url in urls if not is_local(url)}):
        count = urls.count(url)
        notes.append(f"{count} job(s) of {printable(url)}: `retalk resume --base-url {printable(url)}`")
    return notes


def run_resume(args: argparse.Namespace) -> int:
    failures: list[tuple[Job, Exception]] = []
    _new_output(args)
    url = resolve_base_url(args.base_url)
    with Journal(args.journal) as journal:
        # Nothing to do for this service needs no key and no service; jobs of another
        # (an emulator a command started) are named, with what finishes them.
        idle = not journal.unfinished(url) and not journal.running_splits(url) and not journal.damaged()
        elsewhere = [j.base_url for j in journal.unfinished() if j.base_url != url]
        elsewhere += [s.base_url for s in journal.running_splits() if s.base_url != url]
    if idle:
        notes = _elsewhere_notes(elsewhere)
        _print(
            args,
            {"finished": [], "failed": [], "joined": [], "not_joined": [], "damaged": [], "elsewhere": notes},
            "\n".join(["nothing to resume", *notes]),
        )
        return 0
    with _client(args) as client, Journal(args.journal) as journal:
        # A damaged row is skipped (and said), never in the way of the other jobs.
        damaged = journal.damaged()
        with _live(args) as display:
            events = events_of(display)
            done = resume(
                client,
                journal,
                wait_timeout=args.timeout,
                events=events,
                on_error=lambda job, exc: failures.append((job, exc)),
            )
            # Jobs sent in parts: once every part is in, the parts are joined.
            split_failures: list[tuple[Split, Exception]] = []
            joined = finish_splits(
                client,
                journal,
                wait_timeout=args.timeout,
                events=events,
                on_error=lambda split, exc: split_failures.append((split, exc)),
            )
    notes = _elsewhere_notes(elsewhere)
    data = {
        "finished": [_job_dict(j) for j in done],
        "failed": [{**_job_dict(j), "reason": str(e)} for j, e in failures],
        "joined": [{"split": s.id, "output": s.output} for s in joined],
        "not_joined": [{"split": s.id, "output": s.output, "reason": str(e)} for s, e in split_failures],
        "damaged": [row.to_dict() for row in damaged],
        "elsewhere": notes,
    }
    lines = [_job_text(j) for j in done] + [f"job {j.id}: {printable(str(e))}" for j, e in failures]
    lines += [f"split {s.id}: joined into {printable(str(s.output))}" for s in joined]
    lines += [f"split {s.id}: {printable(str(e))}" for s, e in split_failures]
    _print(args, data, "\n".join([*lines, *notes]) or "nothing to resume")
    _warn_damaged(damaged)
    return 0 if not failures and not split_failures and not damaged else 1
