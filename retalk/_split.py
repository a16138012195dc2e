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

from preflight import limits
from preflight._split import JoinReport, PartFiles, SplitPlan, encode_voice, join_parts

from ._client import Client
from ._exceptions import DownloadError, RetalkError
from ._jobs import Events, continue_job
from ._journal import DuplicateJob, Job, Journal, Split, sha256_of

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
    described = {role: sha256_of(path) for role, path in sorted(inputs.items())}
    document = {"files": described, "settings": settings, "service": base_url, "version": SPLIT_VERSION}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def record_split(
    journal: Journal,
    fingerprint: str,
    output: str,
    plan: SplitPlan,
    parts: list[PartFiles],
    *,
    voice: str,
    ref: str | None,
    params: dict[str, Any],
    base_url: str,
    preset: str,
    crf: int,
    force: bool = False,
) -> Split:
    """The split and a job for each part, written down before anything is sent."""
    output = os.path.abspath(output)
    described: list[dict[str, Any]] = []
    for part, files in zip(plan.parts, parts, strict=True):
        result = os.path.join(os.path.dirname(files.video), f"result-{part.index + 1:02d}.mp4")
        described.append({"video": files.video, "audio": files.audio, "result": result, "job": None})
    document = {
        "plan": plan.to_dict(),
        "voice": os.path.abspath(voice),
        "ref": os.path.abspath(ref) if ref else None,
        "params": params,
        "parts": described,
        "preset": preset,
        "crf": crf,
    }
    split = journal.start_split(fingerprint, output, document, base_url)
    for number, entry in enumerate(described):
        job = _start_part(journal, split, entry, number, force=force)
        entry["job"] = job.id
        split = journal.update_split(split.id, plan=document)
    return split


def _part_params(split: Split, number: int) -> dict[str, Any]:
    params = dict(split.plan["params"])
    last = number == len(split.plan["parts"]) - 1
    if not last:
        # Only the last part can have more voice than video.
        params.pop("video_extension", None)
    return params


def _start_part(journal: Journal, split: Split, part: dict[str, Any], number: int, *, force: bool) -> Job:
    inputs = {"video": part["video"], "audio": part["audio"]}
    if split.plan.get("ref"):
        inputs["ref"] = split.plan["ref"]
    try:
        return journal.start(
            inputs, _part_params(split, number), part["result"], base_url=split.base_url, force=force
        )
    except DuplicateJob as exc:
        # The very same part was sent before (the parts were cut again the same way):
        # its task is this part's, already paid for.
        return exc.job


def intact(split: Split) -> bool:
    """The parts' files are still there (a split found in the journal can go on)."""
    files = [p[k] for p in split.plan["parts"] for k in ("video", "audio")] + [split.plan["voice"]]
    return all(os.path.exists(f) for f in files)


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
    is submitted before waiting for this one, so it waits in the service's queue."""
    plan = SplitPlan.from_dict(split.plan["plan"])
    count = len(plan.parts)
    jobs: dict[int, Job] = {}

    def job_for(number: int) -> Job:
        nonlocal split
        if number in jobs:
            return jobs[number] if jobs[number].state != "submitted" else journal.job(jobs[number].id)
        part = split.plan["parts"][number]
        job = journal.job(part["job"])
        if job.state in ("failed", "canceled"):
            # Asked again: this part is tried anew (the others are kept).
            job = _start_part(journal, split, part, number, force=False)
            document = dict(split.plan)
            document["parts"] = [dict(p) for p in split.plan["parts"]]
            document["parts"][number]["job"] = job.id
            split = journal.update_split(split.id, plan=document)
        jobs[number] = job
        return job

    def tell(number: int, text: str) -> None:
        if on_part is not None:
            on_part(number + 1, count, text)

    outcomes: list[PartOutcome] = []
    for number, part in enumerate(plan.parts):
        job = job_for(number)
        if job.state == "downloaded" and job.output and os.path.exists(job.output):
            tell(number, f"done before (task {job.task_id})")
        else:
            if job.state == "downloaded":
                job = _download_again(client, journal, job)
            else:
                tell(number, "sending")
                job = continue_job(client, journal, job, events=events, wait=False)
                jobs[number] = job
                if number + 1 < count:
                    ahead = job_for(number + 1)
                    if ahead.state in ("new", "uploaded", "submitting"):
                        tell(number + 1, "queued behind the part before")
                        jobs[number + 1] = continue_job(client, journal, ahead, events=events, wait=False)
                tell(number, f"waiting for task {job.task_id}")
                job = continue_job(
                    client, journal, journal.job(job.id), events=events, wait_timeout=wait_timeout
                )
            tell(number, f"done (task {job.task_id}, {job.billed_s} s billed)")
        jobs[number] = job
        outcomes.append(PartOutcome(part.index, part.start_s, part.end_s, job))
    return outcomes


def _download_again(client: Client, journal: Journal, job: Job) -> Job:
    """A part's result was downloaded and then removed: fetched again while its URL lives."""
    assert job.task_id is not None and job.output is not None
    task = client.get(job.task_id)
    if not task.video_url:
        raise DownloadError(
            f"part result {job.output} is gone and task {job.task_id} no longer offers it "
            f"(results live {limits.RESULT_URL_TTL_S // 3600} h)"
        )
    client.download(task.video_url, job.output)
    return journal.job(job.id)


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
    """Every split still running: its missing parts sent, then joined (``retalk resume``)."""
    done: list[Split] = []
    for split in journal.running_splits(client.base_url):
        try:
            if not intact(split):
                raise RetalkError(f"split {split.id}: its part files in {_folder(split)} are gone")
            with voice_track_ahead(split):
                send_parts(client, journal, split, events=events, wait_timeout=wait_timeout)
            join_split(journal, journal.split(split.id))
            done.append(journal.split(split.id))
        except RetalkError as exc:
            if on_error is None:
                raise
            on_error(split, exc)
    return done


def _folder(split: Split) -> str:
    parts = split.plan.get("parts") or [{}]
    return os.path.dirname(parts[0].get("video", "")) or "."
