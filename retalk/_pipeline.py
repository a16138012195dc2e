"""``prep-and-retalk``: from raw files to the lip-synced video, each stage visible.

check -> fix into a work folder -> check again (stop when errors remain) -> upload ->
submit -> wait -> download -> verify the result -> summary. The journal (``_jobs``) makes
every paid step resumable.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from preflight import CheckReport, FixOptions, FixReport, check_paths, fix_paths, limits

from ._client import Client
from ._exceptions import RetalkError
from ._jobs import Events, run_job
from ._journal import Job, Journal

#: The result may differ from the expected length by this much (a frame or two, AAC padding).
DURATION_TOLERANCE_S = 0.25


@dataclass
class Stage:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class PipelineResult:
    """What happened, for the summary (text or JSON)."""

    ok: bool
    output: str | None = None
    stages: list[Stage] = field(default_factory=list)
    check: CheckReport | None = None
    fix: FixReport | None = None
    job: Job | None = None
    sent: dict[str, str] = field(default_factory=dict)
    expected_s: float | None = None
    result_s: float | None = None
    error: str | None = None

    @property
    def cost_cny(self) -> float | None:
        seconds = (
            self.job.billed_s if self.job is not None and self.job.billed_s is not None else self.expected_s
        )
        return None if seconds is None else round(seconds * limits.PRICE_CNY_PER_SECOND, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "retalk.prep/1",
            "ok": self.ok,
            "output": self.output,
            "sent": self.sent,
            "expected_duration_s": None if self.expected_s is None else round(self.expected_s, 3),
            "result_duration_s": None if self.result_s is None else round(self.result_s, 3),
            "billed_s": self.job.billed_s if self.job is not None else None,
            "cost_cny": self.cost_cny,
            "task_id": self.job.task_id if self.job is not None else None,
            "stages": [
                {"stage": s.name, "seconds": round(s.seconds, 3), "detail": s.detail} for s in self.stages
            ],
            "check": self.check.to_dict() if self.check is not None else None,
            "fix": self.fix.to_dict() if self.fix is not None else None,
            "error": self.error,
        }


def _duration(path: str, kind: str) -> float | None:
    with av.open(path) as container:
        streams = container.streams.video if kind == "video" else container.streams.audio
        if streams and streams[0].duration is not None and streams[0].time_base is not None:
            return float(streams[0].duration * streams[0].time_base)
        return float(container.duration) / av.time_base if container.duration else None


def _length_of(path: str) -> float | None:
    """The result's length as a player shows it: the container's (its longest stream)."""
    with av.open(path) as container:
        return float(container.duration) / av.time_base if container.duration else None


def _error_codes(findings: Any) -> str:
    return ", ".join(x.code for x in findings if x.severity.value == "error")


def expected_length(video: str, audio: str, extend: bool) -> float | None:
    """How long the service's result will be: the shorter of the two, or the voice's length
    when the video is extended to it."""
    video_s, audio_s = _duration(video, "video"), _duration(audio, "audio")
    if video_s is None or audio_s is None:
        return None
    return audio_s if extend else min(video_s, audio_s)


def prepare_and_retalk(
    client: Client | None,
    journal: Journal | None,
    video: str,
    audio: str,
    ref: str | None,
    output: str,
    *,
    work_dir: str | None = None,
    fix: bool = True,
    dry_run: bool = False,
    extend_video: bool = False,
    face_threshold: int | None = None,
    fix_options: FixOptions | None = None,
    force: bool = False,
    events: Events | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run the pipeline; ``client``/``journal`` may be None on a dry run."""
    result = PipelineResult(ok=False)
    clock = time.perf_counter()

    def stage(name: str, detail: str = "") -> None:
        nonlocal clock
        now = time.perf_counter()
        result.stages.append(Stage(name, now - clock, detail))
        clock = now

    def starting(name: str) -> None:
        if on_stage is not None:
            on_stage(name)

    inputs = {"video": video, "audio": audio} | ({"ref": ref} if ref else {})
    if fix:
        # One pass: the fixer checks the inputs (shown as the check) and its outputs.
        starting("check and fix")
        folder = work_dir or str(Path(output).resolve().parent / f"{Path(output).stem}.work")
        options = fix_options or FixOptions()
        result.fix = fix_paths(
            video=video, audio=audio, ref=ref, out_dir=folder, options=options, dry_run=dry_run
        )
        result.check = result.fix.checked
        changed = sum(1 for f in result.fix.files if [a.name for a in f.actions] != ["copy"])
        stage("check and fix", f"{changed} file(s) changed, into {folder}")
        if not result.fix.ok:
            problems = [
                f"{f.path}: {f.error or _error_codes(f.findings)}" for f in result.fix.files if not f.ok
            ]
            result.error = "the inputs cannot be made acceptable: " + "; ".join(problems)
            return result
        if not dry_run:
            inputs = {f.role: f.output for f in result.fix.files if f.output}
    else:
        starting("check")
        result.check = check_paths(video=video, audio=audio, ref=ref)
        stage("check", f"{result.check.errors} error(s), {result.check.warnings} warning(s)")
        if not result.check.ok:
            result.error = "the service would reject the inputs (run without --no-fix to fix them)"
            return result
    result.sent = dict(inputs)
    result.expected_s = expected_length(
        video if dry_run else inputs["video"], audio if dry_run else inputs["audio"], extend_video
    )
    if dry_run:
        stage("dry run", "nothing sent")
        result.ok = True
        return result
    if client is None or journal is None:
        raise RetalkError("a client and a journal are needed to send the job")
    starting("send")
    job = run_job(
        client,
        journal,
        inputs["video"],
        inputs["audio"],
        inputs.get("ref"),
        output=output,
        video_extension=True if extend_video else None,
        query_face_threshold=face_threshold,
        force=force,
        events=events,
    )
    result.job = job
    stage("upload, submit, wait, download", f"task {job.task_id}")
    starting("verify")
    result.output = os.path.abspath(output)
    result.result_s = _length_of(output)
    stage("verify", f"{result.result_s:.2f} s" if result.result_s is not None else "no duration")
    if result.result_s is None or (
        result.expected_s is not None and abs(result.result_s - result.expected_s) > DURATION_TOLERANCE_S
    ):
        result.error = f"the result lasts {result.result_s} s; {result.expected_s} s was expected"
        return result
    result.ok = True
    return result
