"""A whole job, step by step, with the journal written before and after each step:
upload (reusing what is still in the storage), submit, wait, download. ``continue_job``
picks a job up wherever a crash left it, so ``resume`` finishes what was paid for."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from preflight import limits

from .._exceptions import (
    DownloadError,
    InputError,
    ProtocolError,
    ResultExpired,
    RetalkError,
    ServiceError,
    SubmitUncertain,
    TaskFailed,
    TaskUnknown,
    TransportError,
)
from .._http import Client, TransferProgress, check_task_id, write_problem
from .._journal import (
    UNFINISHED,
    DuplicateJob,
    Job,
    Journal,
    roles_of,
    running_elsewhere,
    sha256_of,
    upload_fresh,
)
from .._models import BEIJING, Task
from .output_path import OutputUnusable, output_problem

#: A task created this long before its submit was recorded as started still counts as
#: that submit's (the two clocks are not the same machine's)...
CLOCK_SLACK_S = 120.0
#: ...and one created up to this long after it (a slow answer, the request timeout).
LOST_SUBMIT_WINDOW_S = 180.0
#: After this long the service lists any task a submit created; none listed means none made.
SETTLE_S = 120.0
#: Pages of 50 tasks looked through for a lost submit's task.
LOST_SUBMIT_PAGES = 10


@dataclass
class Events:
    """What a caller may want to show while a job runs (all optional)."""

    on_stage: Callable[[Job, str], None] | None = None
    on_upload: Callable[[str, int, int | None], None] | None = None
    on_status: Callable[[Task, float], None] | None = None
    on_download: TransferProgress | None = None


def run_job(
    client: Client,
    journal: Journal,
    video: str,
    audio: str,
    ref: str | None = None,
    *,
    output: str | None = None,
    video_extension: bool | None = None,
    query_face_threshold: int | None = None,
    force: bool = False,
    wait_timeout: float | None = None,
    events: Events | None = None,
    wait: bool = True,
) -> Job:
    """Upload, submit, wait and download one job (or stop once submitted, ``wait=False``);
    the journal knows each step."""
    inputs = {"video": video, "audio": audio} | ({"ref": ref} if ref else {})
    params: dict[str, Any] = {}
    if video_extension is not None:
        params["video_extension"] = video_extension
    if query_face_threshold is not None:
        params["query_face_threshold"] = query_face_threshold
    output_path = os.path.abspath(output) if output else None
    try:
        job = journal.start(inputs, params, output_path, base_url=client.base_url, force=force)
    except DuplicateJob as exc:
        # The same command run again after a crash or a kill: the task it sent (or may have
        # sent) is finished, never paid for again. (Only a finished job asks for --force.)
        if exc.job.state not in UNFINISHED:
            raise
        if running_elsewhere(exc.job):
            raise RetalkError(
                f"job {exc.job.id} for these inputs is being run by process {exc.job.owner}"
            ) from None
        taken = journal.take_up(exc.job.id, output_path)
        if taken is None:
            raise
        job = taken
    return continue_job(client, journal, job, wait_timeout=wait_timeout, events=events, wait=wait)


def _stage(events: Events | None, job: Job, stage: str) -> None:
    if events is not None and events.on_stage is not None:
        events.on_stage(job, stage)


def continue_job(
    client: Client,
    journal: Journal,
    job: Job,
    *,
    wait_timeout: float | None = None,
    events: Events | None = None,
    wait: bool = True,
    settle_s: float = SETTLE_S,
) -> Job:
    """Take ``job`` from its recorded state to the end (or to submitted, ``wait=False``).
    A job caught mid-submit is settled once the service has had ``settle_s`` to list it."""
    if job.state in ("new", "uploaded"):
        job = _upload(client, journal, job, events)
    if job.state == "submitting":
        job = _find_lost_submit(client, journal, job, settle_s)
    if job.state == "uploaded":
        job = _submit(client, journal, job, events)
    if job.state == "submitted" and wait:
        job = _finish(client, journal, job, wait_timeout, events)
    return job


def _upload(client: Client, journal: Journal, job: Job, events: Events | None) -> Job:
    """Every input in the storage, reusing uploads that still have a while to live."""
    _stage(events, job, "upload")
    inputs = {role: dict(described) for role, described in job.inputs.items()}
    now = time.time()
    for role in roles_of(job):
        described = inputs[role]
        if described.get("url") and upload_fresh(described.get("uploaded", 0.0), now):
            continue
        path = described["path"]
        problem = None
        if not os.path.exists(path):
            problem = f"job {job.id}: its {role} {path} is gone; it cannot be uploaded again"
        elif sha256_of(path) != described["sha256"]:
            problem = f"job {job.id}: its {role} {path} has changed since the job was started"
        if problem is not None:
            # Nothing was paid for yet: the job ends here instead of blocking every resume.
            journal.update(job.id, state="failed", error=problem)
            raise RetalkError(problem)
        cached = journal.cached_upload(described["sha256"], client.base_url)
        if cached is not None:
            url, uploaded = cached  # its own upload time: the 48 h run from then
        else:

            def progress(done: int, total: int | None, role: str = role) -> None:
                if events is not None and events.on_upload is not None:
                    events.on_upload(role, done, total)

            url, uploaded = client.upload(path, on_progress=progress), time.time()
            journal.record_upload(described["sha256"], url, client.base_url, uploaded)
        described.update(url=url, uploaded=uploaded)
        job = journal.update(job.id, inputs=inputs)
    return journal.update(job.id, state="uploaded")


def _submit(client: Client, journal: Journal, job: Job, events: Events | None) -> Job:
    _stage(events, job, "submit")
    now = time.time()
    if not all(upload_fresh(job.inputs[r].get("uploaded", 0.0), now) for r in roles_of(job)):
        job = _upload(client, journal, journal.update(job.id, state="new"), events)
    # The tasks there were before, listed before the claim: a crash while listing leaves
    # an "uploaded" job that is simply sent, not a "submitting" one resume must settle
    # (which takes the service's two minutes to list a task).
    known = client.recent_task_ids()
    # Claimed first (no other process submits it too) and written down: a crash from here
    # on leaves a job that resume checks for a task.
    claimed = journal.claim(job.id, "uploaded", "submitting", submit_started=time.time())
    if claimed is None:
        raise RetalkError(f"job {job.id} was taken by another process; it is not submitted twice")
    job = claimed
    urls = {role: job.inputs[role]["url"] for role in roles_of(job)}
    try:
        task = client.submit(
            urls["video"],
            urls["audio"],
            urls.get("ref"),
            video_extension=job.params.get("video_extension"),
            query_face_threshold=job.params.get("query_face_threshold"),
            known_ids=known,
        )
    except InputError as exc:
        # Refused as it stands: nothing was created, and sending it again will not help.
        journal.update(job.id, state="failed", error=str(exc))
        raise
    except ProtocolError as exc:
        # Answered, but with no task id fit to store or use: the task may exist and be
        # billed. Kept for the user to look at (`retalk jobs`), never sent again by itself.
        journal.update(job.id, state="protocol-error", error=str(exc))
        raise
    except (ServiceError, TransportError):
        # Throttled, unauthorised, unreachable after the retries: nothing was created.
        journal.update(job.id, state="uploaded")
        raise
    # The moment submit returns: the task id is what the money bought.
    return journal.update(job.id, state="submitted", task_id=task.task_id)


def _find_lost_submit(client: Client, journal: Journal, job: Job, settle_s: float = SETTLE_S) -> Job:
    """A crash (or an unanswered request) during submit: adopt the task it created when
    exactly one task that no job owns was submitted in its window; when none was and the
    service has had time to list it, the submit never got through and is sent again."""
    started = job.submit_started or job.created
    owned = journal.known_task_ids()
    candidates: list[Task] = []
    for page in range(1, LOST_SUBMIT_PAGES + 1):
        tasks = client.list(page_no=page, page_size=50)
        # The service's times are on its clock; ``started`` is on ours. Hours apart (a
        # clock set wrong) would hide the task and pay for it again: its times are moved
        # onto our clock by the offset its answers' Date shows.
        # The offset measured now may not be the one at submit (a clock corrected by NTP
        # since, a Date header that is wrong): a task in the window with it or with none
        # counts, so that our own task is never missed (and paid for again).
        offsets = {client.clock_offset or 0.0, 0.0}
        for task in tasks:
            if task.task_id in owned:
                continue
            moments = _submit_moments(task, offsets)
            if any(started - CLOCK_SLACK_S <= m <= started + LOST_SUBMIT_WINDOW_S for m in moments):
                candidates.append(task)
        oldest = _submit_moments(tasks[-1], offsets) if tasks else []
        if len(tasks) < 50 or (oldest and max(oldest) < started - CLOCK_SLACK_S):
            break
    if len(candidates) == 1:
        return journal.update(job.id, state="submitted", task_id=candidates[0].task_id)
    if candidates:
        ids = ", ".join(t.task_id for t in candidates)
        raise SubmitUncertain(
            f"job {job.id}: several tasks could be its own ({ids}); check them with `retalk status`"
        )
    if time.time() - started < settle_s:
        raise SubmitUncertain(
            f"job {job.id}: its submit is too recent to tell; `retalk resume` again in a minute"
        )
    # Sent again only if the job is still ours and still "submitting": another process may
    # have taken it up and submitted it while the list was read (never undone, never paid twice).
    again = journal.unclaim_submit(job.id)
    if again is None:
        raise RetalkError(f"job {job.id} was taken up by another process; it is not submitted twice")
    return again


def _submit_moments(task: Task, offsets: set[float]) -> list[float]:
    """When the task was submitted, on our clock, by each of the clock offsets."""
    found = (_service_time(task.submit_time, offset) for offset in offsets)
    return [moment for moment in found if moment is not None]


def _service_time(text: str | None, offset: float = 0.0) -> float | None:
    """A time as the service states it (Beijing time, no zone), as a timestamp on this
    machine's clock (``offset``: the service's clock minus ours)."""
    if not text:
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=BEIJING).timestamp() - offset
        except ValueError:
            continue
    return None


def _finish(
    client: Client, journal: Journal, job: Job, wait_timeout: float | None, events: Events | None
) -> Job:
    assert job.task_id is not None
    task_id = check_task_id(job.task_id, f"job {job.id} in the journal {journal.path}")
    _stage(events, job, "wait")
    task = client.wait(task_id, timeout=wait_timeout, on_status=events.on_status if events else None)
    if not task.finished:
        # UNKNOWN (no such task, or expired) is no end: the task may still run and be paid
        # for. The job stays "submitted" for resume; sending it again takes --force.
        raise TaskUnknown(task_id, job.id)
    if not task.succeeded:
        failure = TaskFailed(job.task_id, task.code or task.status, task.message or task.status)
        journal.update(
            job.id, state="canceled" if task.status == "CANCELED" else "failed", error=str(failure)
        )
        raise failure
    if not task.video_url:
        raise DownloadError(f"task {task.task_id} succeeded without a result URL")
    _stage(events, job, "download")
    output = job.output or f"{task_id}.mp4"  # the id checked: a plain name, here
    with contextlib.suppress(OSError):  # (a folder that cannot be made is said just below)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    problem = output_problem(output)
    if problem is not None:
        # Paid for, and the name will not take it (a folder made there since the submit):
        # said with how to give it another name, once per run, never sent again.
        journal.update(job.id, error=f"the output {output} {problem}")
        raise OutputUnusable(job.id, task.task_id, output, problem)
    try:
        task = _download(client, journal, task, output, events)
    except ResultExpired as exc:
        # Paid for and gone: recorded as such, so that resume stops asking and the same
        # inputs again ask for --force. Never sent again from here.
        reason = (
            f"the result of task {task.task_id} can no longer be downloaded ({exc}); it was paid for "
            "and is not sent again: send the inputs again with --force to pay for a new one"
        )
        journal.update(job.id, state="expired", error=reason)
        raise ResultExpired(reason) from None
    except (DownloadError, OSError) as exc:
        # The task is done and paid for: it stays "submitted" for resume to download.
        text = str(exc) if isinstance(exc, DownloadError) else str(write_problem(Path(output), exc))
        raise DownloadError(
            f"{text}; task {task.task_id} succeeded and stays in the journal: `retalk resume` "
            f"downloads it (within {limits.RESULT_URL_TTL_S // 3600} h of its end)"
        ) from None
    billed = task.usage.video_duration if task.usage else None
    return journal.update(job.id, state="downloaded", billed_s=billed, error=None)


def _past_result_ttl(client: Client, task: Task) -> bool:
    """The task's result has outlived its life (``RESULT_URL_TTL_S`` after the task's end)
    on the service's clock (ours moved by the offset its Date showed, when known). False
    when the end time is not known: a result is never written off on a guess."""
    ended = _service_time(task.end_time)  # a timestamp on the service's clock
    if ended is None:
        return False
    return time.time() + (client.clock_offset or 0.0) >= ended + limits.RESULT_URL_TTL_S


def _download(client: Client, journal: Journal, task: Task, output: str, events: Events | None) -> Task:
    """The result into ``output``; a URL that no longer works is asked for again once (the
    service may give a fresh one) before the result is taken as expired, and taken as such
    only once its life is over by the service's clock: refused earlier (a proxy refusing
    the host, a CDN hiccup), it is a ``DownloadError`` that leaves the job for resume."""
    assert task.video_url is not None
    progress = events.on_download if events else None

    def recorded(finished: Path) -> None:  # a kill after the rename still finds it ours
        journal.record_result(output, finished)

    try:
        client.download(task.video_url, output, on_progress=progress, before_publish=recorded)
        return task
    except ResultExpired as first:
        refusal = first
    again = client.get(task.task_id)
    if again.succeeded and again.video_url:
        try:
            client.download(again.video_url, output, on_progress=progress, before_publish=recorded)
            return again
        except ResultExpired as second:
            refusal = second
    if not _past_result_ttl(client, again if again.end_time else task):
        raise DownloadError(
            f"the download of the result of task {task.task_id} was refused ({refusal}) within its "
            f"{limits.RESULT_URL_TTL_S // 3600} h; it is not written off: `retalk resume` will try again"
        )
    raise refusal


def resume(
    client: Client,
    journal: Journal,
    *,
    wait_timeout: float | None = None,
    events: Events | None = None,
    on_error: Callable[[Job, Exception], None] | None = None,
    settle_s: float = SETTLE_S,
) -> list[Job]:
    """Finish every unfinished job in the journal; one job's failure does not stop the rest."""
    finished: list[Job] = []
    for listed in journal.unfinished(client.base_url):
        # Taken up first (this process its owner, set atomically): the same command run
        # again meanwhile sees a live owner and leaves the job alone, instead of both
        # finding no task and both submitting it. One that another process took first is
        # skipped (said through on_error), not continued alongside it.
        if listed.state in ("new", "uploaded") and _split_stopped(journal, listed):
            continue  # a part of a split that is not running: sending it would pay for nothing
        job = journal.take_up(listed.id, None)
        if job is None:
            current = journal.job(listed.id)
            if current.state in UNFINISHED and on_error is not None:
                on_error(
                    current,
                    RetalkError(f"job {current.id} is being run by process {current.owner}; left to it"),
                )
            continue
        try:
            finished.append(
                continue_job(
                    client, journal, job, wait_timeout=wait_timeout, events=events, settle_s=settle_s
                )
            )
        except RetalkError as exc:
            if on_error is None:
                raise
            on_error(journal.job(job.id), exc)
    return finished


def _split_stopped(journal: Journal, job: Job) -> bool:
    """``job`` is a part of a split none of which is running (closed, failed or joined):
    never sent by ``resume``; its split's command sends it again if need be."""
    splits = journal.splits_holding([job.id])
    return bool(splits) and not any(split.state == "running" for split in splits)
