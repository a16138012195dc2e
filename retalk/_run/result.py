"""What a ``prep-and-retalk`` run made (``PipelineResult``, the ``retalk.prep/1`` summary),
each stage timed, and the check of the result's length that ends a run.

Apart from the pipeline's steps so that the whole-job and the parts paths, and the
command line that shows the summary, share one record of what happened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av

from preflight import CheckReport, Finding, FixReport, JoinReport, SplitPlan, limits, local_file

from .._journal import Job
from .split_tasks import PartOutcome

#: The result may differ from the expected length by this much (a frame or two, AAC padding).
DURATION_TOLERANCE_S = 0.25


@dataclass
class Stage:
    """One stage of a run: its name, how long it took and what it did."""

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
    #: A job sent in parts (``split``): where it was cut, and each part's task.
    plan: SplitPlan | None = None
    parts: list[PartOutcome] = field(default_factory=list)
    split_id: int | None = None
    joined: JoinReport | None = None
    #: Findings that stopped the job before anything was sent (``gates``).
    gated: list[Finding] = field(default_factory=list)
    #: Speech ``--align trim`` cuts (the inputs' ``Pair.SpeechCut``): chosen, so not gated.
    trim_cuts_speech_s: float | None = None

    @property
    def billed_s(self) -> float | None:
        if self.parts:
            billed = [p.job.billed_s for p in self.parts]
            return None if any(b is None for b in billed) else round(sum(b or 0.0 for b in billed), 3)
        return self.job.billed_s if self.job is not None else None

    @property
    def cost_cny(self) -> float | None:
        seconds = self.billed_s if self.billed_s is not None else self.expected_s
        return None if seconds is None else round(seconds * limits.PRICE_CNY_PER_SECOND, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "retalk.prep/1",
            "ok": self.ok,
            "output": self.output,
            "sent": self.sent,
            "expected_duration_s": None if self.expected_s is None else round(self.expected_s, 3),
            "result_duration_s": None if self.result_s is None else round(self.result_s, 3),
            "billed_s": self.billed_s,
            "cost_cny": self.cost_cny,
            "task_id": self.job.task_id if self.job is not None else None,
            "split": None
            if self.plan is None
            else {
                "id": self.split_id,
                "cut_by": "copy" if self.plan.copy else "encode",
                "joined_by": self.joined.video if self.joined is not None else None,
                "notes": list(self.joined.notes) if self.joined is not None else [],
                "parts": [p.to_dict() for p in self.parts]
                or [
                    {"part": p.index + 1, "start_s": round(p.start_s, 3), "end_s": round(p.end_s, 3)}
                    for p in self.plan.parts
                ],
            },
            "stages": [
                {"stage": s.name, "seconds": round(s.seconds, 3), "detail": s.detail} for s in self.stages
            ],
            "check": self.check.to_dict() if self.check is not None else None,
            "fix": self.fix.to_dict() if self.fix is not None else None,
            "gated": [f.to_dict() for f in self.gated],
            "trim_cuts_speech_s": self.trim_cuts_speech_s,
            "error": self.error,
        }


class Stages:
    """Times each stage of the pipeline into the result, and tells the caller it started."""

    def __init__(
        self,
        result: PipelineResult,
        on_stage: Callable[[str], None] | None,
        on_progress: Callable[[str, float], None] | None = None,
    ) -> None:
        self._result = result
        self._on_stage = on_stage
        self._on_progress = on_progress
        self._clock = time.perf_counter()

    def progress(self, name: str) -> Callable[[float], None] | None:
        """How far the stage ``name`` is (a fraction), for the caller; None when unwatched."""
        watcher = self._on_progress
        if watcher is None:
            return None
        return lambda fraction: watcher(name, fraction)

    def start(self, name: str) -> None:
        self._clock = time.perf_counter()
        if self._on_stage is not None:
            self._on_stage(name)

    def done(self, name: str, detail: str = "") -> None:
        now = time.perf_counter()
        self._result.stages.append(Stage(name, now - self._clock, detail))
        self._clock = now


def duration_of(path: str, kind: str) -> float | None:
    with av.open(local_file(path)) as container:
        streams = container.streams.video if kind == "video" else container.streams.audio
        if streams and streams[0].duration is not None and streams[0].time_base is not None:
            return float(streams[0].duration * streams[0].time_base)
        return float(container.duration) / av.time_base if container.duration else None


def length_of(path: str) -> float | None:
    """The result's length as a player shows it: the container's (its longest stream)."""
    with av.open(local_file(path)) as container:
        return float(container.duration) / av.time_base if container.duration else None


def verify(output: str, result: PipelineResult, stages: Stages) -> PipelineResult:
    """The result's length against the one expected: ``ok`` only when they agree."""
    stages.start("verify")
    result.output = os.path.abspath(output)
    result.result_s = length_of(output)
    stages.done("verify", f"{result.result_s:.2f} s" if result.result_s is not None else "no duration")
    if result.result_s is None or (
        result.expected_s is not None and abs(result.result_s - result.expected_s) > DURATION_TOLERANCE_S
    ):
        result.error = f"the result lasts {result.result_s} s; {result.expected_s} s was expected"
        return result
    result.ok = True
    return result
