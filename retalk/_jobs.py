"""A whole job, step by step, with the journal written before and after each step:
upload (reusing what is still in the storage), submit, wait, download. ``continue_job``
picks a job up wherever a crash left it, so ``resume`` finishes what was paid for."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._client import Client, Progress
from ._exceptions import DownloadError, RetalkError, TaskFailed
from ._journal import UPLOAD_REUSE_MARGIN_S, UPLOAD_TTL_S, Job, Journal, roles_of, sha256_of
from ._models import Task

#: A task created this long before its submit was recorded as started still counts as
#: that submit's (the two clocks are not the same machine's).
CLOCK_SLACK_S = 120.0


@dataclass
class Events:
    """What a caller may want to show while a job runs (all optional)."""

    on_stage: Callable[[Job, str], None] | None = None
    on_upload: Callable[[str, int, int | None], None] | None = None
    on_status: Callable[[Task, float], None] | None = None
    on_download: Progress | None = None


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
    job = journal.start(inputs, params, os.path.abspath(output) if output else None, force=force)
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
) -> Job:
    """Take ``job`` from its recorded state to the end (or to submitted, ``wait=False``)."""
    if job.state in ("new", "uploaded"):
        job = _upload(client, journal, job, events)
    if job.state == "submitting":
        job = _find_lost_submit(client, journal, job)
    if job.state == "uploaded":
        job = _submit(client, journal, job, events)
    if job.state == "submitted" and wait:
        job = _finish(client, journal, job, wait_timeout, events)
    return job


def _upload(client: Client, journal: Journal, job: Job, events: Events | None) -> Job:
    _stage(events, job, "upload")
    inputs = {role: dict(described) for role, described in job.inputs.items()}
    now = time.time()
    for role in roles_of(job):
        described = inputs[role]
        fresh = (
            described.get("url") and described.get("uploaded", 0) + UPLOAD_TTL_S - UPLOAD_REUSE_MARGIN_S > now
        )
        if fresh:
            continue
        path = described["path"]
        if not os.path.exists(path):
            raise RetalkError(f"job {job.id}: its {role} {path} is gone; it cannot be uploaded again")
        if sha256_of(path) != described["sha256"]:
            raise RetalkError(f"job {job.id}: its {role} {path} has changed since the job was started")
        url = journal.cached_upload(described["sha256"])
        if url is None:

            def progress(done: int, total: int | None, role: str = role) -> None:
                if events is not None and events.on_upload is not None:
                    events.on_upload(role, done, total)

            url = client.upload(path, on_progress=progress)
            journal.record_upload(described["sha256"], url)
        described.update(url=url, uploaded=time.time())
        job = journal.update(job.id, inputs=inputs)
    return journal.update(job.id, state="uploaded")


def _submit(client: Client, journal: Journal, job: Job, events: Events | None) -> Job:
    _stage(events, job, "submit")
    # Written first: a crash from here on leaves a job that resume checks for a task.
    job = journal.update(job.id, state="submitting", submit_started=time.time())
    urls = {role: job.inputs[role]["url"] for role in roles_of(job)}
    task = client.submit(
        urls["video"],
        urls["audio"],
        urls.get("ref"),
        video_extension=job.params.get("video_extension"),
        query_face_threshold=job.params.get("query_face_threshold"),
    )
    # The moment submit returns: the task id is what the money bought.
    return journal.update(job.id, state="submitted", task_id=task.task_id)


def _find_lost_submit(client: Client, journal: Journal, job: Job) -> Job:
    """A crash during submit: adopt the task it created, if the service lists one that no
    other job owns; else the submit never got through and is sent again."""
    started = job.submit_started or job.created
    since = time.strftime("%Y%m%d%H%M%S", time.localtime(started - CLOCK_SLACK_S))
    owned = journal.known_task_ids()
    for task in client.list(page_size=50, start_time=since):
        if task.task_id not in owned:
            return journal.update(job.id, state="submitted", task_id=task.task_id)
    return journal.update(job.id, state="uploaded")


def _finish(
    client: Client, journal: Journal, job: Job, wait_timeout: float | None, events: Events | None
) -> Job:
    assert job.task_id is not None
    _stage(events, job, "wait")
    task = client.wait(job.task_id, timeout=wait_timeout, on_status=events.on_status if events else None)
    if not task.succeeded:
        failure = TaskFailed(job.task_id, task.code or task.status, task.message or task.status)
        journal.update(
            job.id, state="canceled" if task.status == "CANCELED" else "failed", error=str(failure)
        )
        raise failure
    if not task.video_url:
        raise DownloadError(f"task {task.task_id} succeeded without a result URL")
    _stage(events, job, "download")
    output = job.output or f"{task.task_id}.mp4"
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    client.download(task.video_url, output, on_progress=events.on_download if events else None)
    billed = task.usage.video_duration if task.usage else None
    return journal.update(job.id, state="downloaded", billed_s=billed, error=None)


def resume(
    client: Client,
    journal: Journal,
    *,
    wait_timeout: float | None = None,
    events: Events | None = None,
    on_error: Callable[[Job, Exception], None] | None = None,
) -> list[Job]:
    """Finish every unfinished job in the journal; one job's failure does not stop the rest."""
    finished: list[Job] = []
    for job in journal.unfinished():
        try:
            finished.append(continue_job(client, journal, job, wait_timeout=wait_timeout, events=events))
        except RetalkError as exc:
            if on_error is None:
                raise
            on_error(journal.job(job.id), exc)
    return finished
