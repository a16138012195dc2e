"""A long job sent in parts: each part its own task, one after another (the service runs
one task at a time per account; the next part is queued while one runs, so it never
idles), the results joined into one video. The journal knows the split and every part,
so a crash or Ctrl-C costs nothing: running the same command again, or ``retalk
resume``, finishes only the parts that are missing and joins them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import av

from preflight import JoinReport, PartFiles, PreflightError, SplitPlan, encode_voice, join_parts, limits

from .._exceptions import (
    ConfigError,
    DownloadError,
    InputError,
    ProtocolError,
    ResultExpired,
    RetalkError,
    TaskFailed,
)
from .._http import Client
from .._journal import UNFINISHED, DuplicateJob, Job, Journal, Split, running_elsewhere, sha256_of
from .job import Events, continue_job
from .output_path import JoinBlocked, output_problem

#: Bump when the cutting changes, so old splits are not mistaken for new ones.
SPLIT_VERSION = 1


@dataclass(frozen=True)
class PartOutcome:
    index: int
    start_s: float
    end_s: float
    job: Job

    def to_dict(self) -> dict[str, Any]:
        return {
            "part": self.index + 1,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "job": self.job.id,
            "task_id": self.job.task_id,
            "state": self.job.state,
            "billed_s": self.job.billed_s,
            "result": self.job.output,
        }


def split_fingerprint(inputs: dict[str, str], settings: dict[str, Any], base_url: str) -> str:
    """What identifies a split job: the original files' contents and every setting."""
    try:
        described = {role: sha256_of(path) for role, path in sorted(inputs.items())}
    except OSError as exc:
        raise ConfigError(f"{exc.filename}: cannot read it ({exc.strerror or exc})") from None
    document = {"files": described, "settings": settings, "service": base_url, "version": SPLIT_VERSION}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def parts_folder(work_dir: str, fingerprint: str) -> str:
    """Where a split's parts and results live: its own folder, so that another split for
    the same output (other inputs, other settings) never mixes its files with this one's."""
    return os.path.join(work_dir, f"parts-{fingerprint[:16]}")


def record_split(
    journal: Journal,
    fingerprint: str,
    output: str,
    plan: SplitPlan,
    parts: list[PartFiles],
    *,
    video: str,
    voice: str,
    ref: str | None,
    params: dict[str, Any],
    base_url: str,
    preset: str,
    crf: int,
    force: bool = False,
) -> Split:
    """The split and a job for each part, written down before anything is sent. Earlier
    splits still running for the same output are superseded (their sent parts stay in
    the journal and are still finished; they are just not joined)."""
    output = os.path.abspath(output)
    described: list[dict[str, Any]] = []
    for part, files in zip(plan.parts, parts, strict=True):
        result = os.path.join(os.path.dirname(files.video), f"result-{part.index + 1:02d}.mp4")
        described.append(
            {
                "video": files.video,
                "audio": files.audio,
                "result": result,
                "job": None,
                "sha256": [sha256_of(files.video), sha256_of(files.audio)],
            }
        )
    document = {
        "plan": plan.to_dict(),
        "video": os.path.abspath(video),
        "voice": os.path.abspath(voice),
        "voice_sha256": sha256_of(voice),
        "ref": os.path.abspath(ref) if ref else None,
        "params": params,
        "parts": described,
        "preset": preset,
        "crf": crf,
    }
    for older in journal.running_splits():
        if older.output == output and older.fingerprint != fingerprint:
            journal.update_split(
                older.id, state="failed", error="superseded by a later job for the same output"
            )
    split = journal.start_split(fingerprint, output, document, base_url)
    # A crash before every part has its job leaves "job": None; send_parts fills it in.
    for number in range(len(described)):
        split = _ensure_part_job(journal, split, number, force=force)
    return split


def _part_params(split: Split, number: int) -> dict[str, Any]:
    params = dict(split.plan["params"])
    last = number == len(split.plan["parts"]) - 1
    if not last:
        # Only the last part can have more voice than video.
        params.pop("video_extension", None)
    return params


def _ensure_part_job(journal: Journal, split: Split, number: int, *, force: bool = False) -> Split:
    """The part's job in the journal (made now if a crash came first), its id in the split."""
    part = split.plan["parts"][number]
    if part.get("job") is not None:
        return split
    inputs = {"video": part["video"], "audio": part["audio"]}
    if split.plan.get("ref"):
        inputs["ref"] = split.plan["ref"]
    try:
        job = journal.start(
            inputs,
            _part_params(split, number),
            part["result"],
            base_url=split.base_url,
            force=force,
            digests=dict(zip(("video", "audio"), part.get("sha256") or (), strict=False)),
        )
    except DuplicateJob as exc:
        # The very same part was sent before (the parts were cut again the same way):
        # its task is this part's, already paid for.
        job = exc.job
    document = dict(split.plan)
    document["parts"] = [dict(p) for p in split.plan["parts"]]
    document["parts"][number]["job"] = job.id
    return journal.update_split(split.id, plan=document)


def intact(split: Split) -> bool:
    """The parts' files and the voice are there and unchanged (a split found in the
    journal can go on: a later run for the same output did not overwrite them)."""
    try:
        if sha256_of(split.plan["voice"]) != split.plan.get("voice_sha256"):
            return False
        return all(
            [sha256_of(p["video"]), sha256_of(p["audio"])] == p.get("sha256") for p in split.plan["parts"]
        )
    except OSError:
        return False


#: A part in one of these states was submitted, or may have been: it may be paid for.
SUBMITTED = ("submitting", "submitted", "downloaded", "expired", "protocol-error", "forgotten")


@dataclass(frozen=True)
class SplitStop:
    """What an interrupted split became (``stop_split``)."""

    split: Split
    #: Its parts submitted (or maybe submitted), in this run or an earlier one.
    paid: list[Job]
    #: Its parts never submitted: closed with the split when nothing was paid, else left
    #: open for ``retalk resume``.
    unsent: list[Job]

    @property
    def closed(self) -> bool:
        return self.split.state == "canceled"


def stop_split(journal: Journal, split_id: int) -> SplitStop:
    """After Ctrl-C (or a stopped batch): a split none of whose parts was ever submitted, in
    this run or an earlier one, is closed with all its unsent parts (``canceled``: neither
    ``resume`` nor ``finish_splits`` sends them; the same command starts afresh). Once any
    part was submitted, nothing is closed: a canceled part would fail the split and waste
    the paid ones; ``retalk resume`` sends the rest and joins."""
    split = journal.split(split_id)
    parts = [journal.job(i) for i in split.job_ids if i is not None]
    paid = [job for job in parts if job.state in SUBMITTED]
    # Closed already (by the pipeline, before the caller looks): its parts closed with it.
    closed = ("canceled",) if split.state == "canceled" else ()
    unsent = [job for job in parts if job.state in ("new", "uploaded", *closed)]
    if split.state != "running" or paid:
        return SplitStop(split, paid, unsent)
    reason = "interrupted before any part was submitted (nothing paid; run the same command to send it)"
    for job in unsent:
        journal.update(job.id, state="canceled", error=reason)
    split = journal.update_split(split.id, state="canceled", error=reason)
    return SplitStop(split, paid, [journal.job(job.id) for job in unsent])


def paid_parts(journal: Journal, job: Job) -> list[Job]:
    """The parts submitted (in any run) of the running splits ``job`` is a part of."""
    found: list[Job] = []
    for split in journal.splits_holding([job.id]):
        if split.state == "running":
            parts = (journal.job(i) for i in split.job_ids if i is not None)
            found += [part for part in parts if part.state in SUBMITTED]
    return found


class PartFailed(RetalkError):
    """A part's task failed or was canceled: the split stops (running the command again
    tries that part anew, and pays for it again)."""


def send_parts(
    client: Client,
    journal: Journal,
    split: Split,
    *,
    events: Events | None = None,
    wait_timeout: float | None = None,
    on_part: Callable[[int, int, str], None] | None = None,
) -> list[PartOutcome]:
    """Every part uploaded, submitted, waited for and downloaded, in order; the next part
    is submitted before waiting for this one, so it waits in the service's queue. A part
    whose task failed stops the split (``PartFailed``): nothing is sent again by itself."""
    plan = SplitPlan.from_dict(split.plan["plan"])
    count = len(plan.parts)

    def job_for(number: int) -> Job:
        nonlocal split
        split = _ensure_part_job(journal, split, number)
        job = journal.job(split.plan["parts"][number]["job"])
        # A part that ended without a result (failed, canceled, expired, a protocol error,
        # forgotten by the user) ends the split: it is never "done", and the join could
        # never have it. Sending the next parts would pay for a split that cannot be joined.
        if job.state not in (*UNFINISHED, "downloaded"):
            reason = f"part {number + 1} of split {split.id} ({job.state}): {job.error or 'no reason given'}"
            journal.update_split(split.id, state="failed", error=reason)
            raise PartFailed(reason + _again(job.state))
        return job

    def tell(number: int, text: str) -> None:
        if on_part is not None:
            on_part(number + 1, count, text)

    outcomes: list[PartOutcome] = []
    for number, part in enumerate(plan.parts):
        job = job_for(number)
        result = split.plan["parts"][number]["result"]
        if job.state == "downloaded" and job.output and os.path.exists(job.output):
            tell(number, f"done before (task {job.task_id})")
        elif job.state == "downloaded":
            tell(number, f"fetching the result of task {job.task_id} again")
            job = _download_again(client, journal, split, job, result)
        else:
            tell(number, "sending")
            refused: tuple[int, Exception] | None = None  # the next part, refused at submit
            try:
                job = continue_job(client, journal, job, events=events, wait=False)
                if number + 1 < count:
                    ahead = job_for(number + 1)
                    if ahead.state in ("new", "uploaded", "submitting"):
                        tell(number + 1, "queued behind the part before")
                        try:
                            continue_job(client, journal, ahead, events=events, wait=False)
                        except (TaskFailed, InputError) as exc:
                            refused = (number + 1, exc)  # this part is paid for: finished first
                tell(number, f"waiting for task {job.task_id}")
                job = continue_job(
                    client, journal, journal.job(job.id), events=events, wait_timeout=wait_timeout
                )
            except (TaskFailed, InputError, ResultExpired, ProtocolError) as exc:
                refused = (number, exc)
            if refused is not None:
                which, cause = refused
                reason = f"part {which + 1} of split {split.id}: {cause}"
                journal.update_split(split.id, state="failed", error=reason)
                state = journal.job(split.plan["parts"][which]["job"]).state
                raise PartFailed(reason + _again(state)) from cause
        tell(number, f"done (task {job.task_id}, {job.billed_s} s billed)")
        outcomes.append(PartOutcome(part.index, part.start_s, part.end_s, job))
    return outcomes


def _again(state: str) -> str:
    """What to do about a part that ended the split: a failed part is tried anew by the same
    command; an expired one was paid for and its job stands in the journal (the same command
    meets it again), so only --force pays again."""
    if state == "expired":
        return "; run the same command again with --force to pay for the job again"
    if state in ("protocol-error", "forgotten"):
        # The part's task may exist and be billed: look before paying for it again.
        return (
            "; its task may still exist and be paid for: look for it with `retalk list`, "
            "then run the same command again with --force to pay for the job again"
        )
    return "; run the same command again to try that part anew"


def _download_again(client: Client, journal: Journal, split: Split, job: Job, result: str) -> Job:
    """A part's result was downloaded and then removed: fetched again, into this split's
    folder, while the service still offers it; else the split cannot be finished."""
    assert job.task_id is not None
    task = client.get(job.task_id)
    if not task.video_url:
        reason = (
            f"the result of task {job.task_id} is gone from {job.output} and the service no longer "
            f"offers it (results live {limits.RESULT_URL_TTL_S // 3600} h)"
        )
        journal.update_split(split.id, state="failed", error=reason)
        raise DownloadError(reason + "; pass --force to send the job again")
    os.makedirs(os.path.dirname(result) or ".", exist_ok=True)
    client.download(task.video_url, result)
    return journal.update(job.id, output=result)


def voice_track(split: Split) -> str:
    """Where the joined result's sound is made ahead, while the parts are away."""
    # Named by what it is made of: another journal's split in the same folder has the
    # same id, not the same fingerprint.
    return os.path.join(_folder(split), f"voice-{split.fingerprint[:16]}.m4a")


def make_voice_track(split: Split, stop: threading.Event | None = None) -> None:
    """The joined result's sound (the whole voice as AAC), unless it is there already."""
    target = voice_track(split)
    if not os.path.exists(target):
        encode_voice(split.plan["voice"], SplitPlan.from_dict(split.plan["plan"]), target, stop=stop)


@contextmanager
def voice_track_ahead(split: Split) -> Iterator[None]:
    """Make the voice track in a second thread while the block runs (the parts are sent);
    if the block fails, the track is abandoned. A track that could not be made is made by
    the join instead."""
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="retalk-voice") as pool:
        made = pool.submit(make_voice_track, split, stop)
        try:
            yield
        except BaseException:
            stop.set()
            raise
        finally:
            wait([made])


def join_split(
    journal: Journal, split: Split, *, on_progress: Callable[[float], None] | None = None
) -> JoinReport:
    """The parts' results joined into the split's output; the split is then done."""
    plan = SplitPlan.from_dict(split.plan["plan"])
    results = []
    for number, part in enumerate(split.plan["parts"]):
        job = journal.job(part["job"])
        if job.state != "downloaded" or not job.output or not os.path.exists(job.output):
            raise RetalkError(f"split {split.id}: part {number + 1} is not downloaded yet ({job.state})")
        results.append(job.output)
    problem = output_problem(split.output)
    if problem is not None:
        # Every part is paid for and downloaded: only the joined file needs another name.
        raise JoinBlocked(split.id, split.output, problem)
    os.makedirs(os.path.dirname(split.output) or ".", exist_ok=True)
    track = voice_track(split)
    report = join_parts(
        results,
        split.plan["voice"],
        plan,
        split.output,
        preset=split.plan.get("preset", "medium"),
        crf=int(split.plan.get("crf", 18)),
        on_progress=on_progress,
        voice_track=track if os.path.exists(track) else None,
        # A kill after the rename leaves a file the next run knows as this split's own.
        before_publish=lambda joined: journal.record_result(split.output, joined),
    )
    journal.update_split(split.id, state="joined", error=None)
    return report


def finish_splits(
    client: Client,
    journal: Journal,
    *,
    events: Events | None = None,
    wait_timeout: float | None = None,
    on_error: Callable[[Split, Exception], None] | None = None,
) -> list[Split]:
    """Every split still running: its missing parts sent, then joined (``retalk resume``).
    A split another live process is sending is left to it; a failed part is not sent
    again (the split is failed: running its command again retries that part)."""
    done: list[Split] = []
    for split in journal.running_splits(client.base_url):
        ids = [i for i in split.job_ids if i is not None]
        try:
            # A part whose journal row is damaged stops this split only (said through on_error).
            if any(running_elsewhere(journal.job(i)) for i in ids):
                continue
            if not intact(split):
                reason = f"its part files in {_folder(split)} are gone or were replaced"
                journal.update_split(split.id, state="failed", error=reason)
                raise RetalkError(f"split {split.id}: {reason}")
            with voice_track_ahead(split):
                send_parts(client, journal, split, events=events, wait_timeout=wait_timeout)
            join_split(journal, journal.split(split.id))
            done.append(journal.split(split.id))
        except (RetalkError, PreflightError, av.FFmpegError, OSError) as exc:
            if on_error is None:
                raise
            on_error(split, exc)
    return done


def _folder(split: Split) -> str:
    parts = split.plan.get("parts") or [{}]
    return os.path.dirname(parts[0].get("video", "")) or "."
