"""What the fixer plans and what it did: actions, options, per-file results.

A plan is a list of ``Action``s, each answering one or more findings; the writers
(``video``, ``audio``, ``image``) carry plans out, and ``job`` ties them to files:
check, plan, write to a temporary name, rename, check the output again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import limits
from .._models import CheckReport, FileReport, Finding, JobReport, Role
from .._rules.thresholds import AudioThresholds

#: How to make voice and video the same length (see ``FixOptions.align``).
Align = Literal["service", "trim", "extend", "pad"]
ALIGN_CHOICES: tuple[Align, ...] = ("service", "trim", "extend", "pad")
#: x264's speed presets (``FixOptions.preset``).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

#: How far one writer is, 0.0 to 1.0 (every writer, cut and join reports this way).
Progress = Callable[[float], None]
#: How far a whole fix is: called with (file number, file count, path, fraction of that
#: file done).
FixProgress = Callable[[int, int, str, float], None]


@dataclass(frozen=True)
class Action:
    """One step of a fix, named by a stable verb (``remux``, ``transcode``, ``scale``...)."""

    name: str
    #: What exactly, with the numbers: ``"1920x1080 -> 1280x720"``.
    detail: str
    #: The finding codes this step answers (empty for steps that only serve others).
    because: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.name, "detail": self.detail, "because": list(self.because)}


#: A voice normalised to ``FixOptions.target_lufs`` lands within a few tenths of a LU of it:
#: the target must lie this far above the quiet line (``AudioThresholds.quiet_lufs``).
LOUDNESS_MARGIN_LU = 1.0

#: The action of a file that already passes.
COPY = Action("copy", "already accepted: copied unchanged")


def finding_codes(report: FileReport) -> set[str]:
    """The codes of what the check found in a file: what every planner decides from."""
    return {f.code for f in report.findings}


@dataclass(frozen=True)
class FixOptions:
    """How to fix. The defaults change as little as possible."""

    #: Voice and video lengths: ``service`` leaves them (the service cuts the longer one,
    #: as it would anyway); ``trim`` cuts the longer to the shorter; ``extend`` pads the
    #: video by freezing its last frame (or loops it) to the voice's length; ``pad`` pads the
    #: voice with room tone to the video's length.
    align: Align = "service"
    #: Crop a close-up that follows the face when it is too small.
    reframe: bool = False
    #: Cut a reference image of the target face from the first frame when the video has
    #: several faces and no reference image was given.
    make_ref: bool = False
    #: Drop the video's own sound track (the service replaces it anyway).
    drop_audio: bool = False
    #: Denoise a noisy voice; normalise a quiet or hot one (to ``target_lufs``, true peak at
    #: most ``true_peak_dbtp``; a hot one's at most -1 dBTP in any case).
    denoise: bool = True
    normalize: bool = True
    target_lufs: float = -16.0
    true_peak_dbtp: float = -1.5
    #: x264/x265 speed preset and quality (constant rate factor) of a re-encode.
    preset: str = "medium"
    crf: int = 18
    #: The longest video or voice the fixer writes; None keeps any length (a long job that
    #: is sent in parts, ``prep-and-retalk --split``).
    max_duration_s: float | None = limits.MAX_DURATION_S
    #: Instants (s) a re-encoded video gets a keyframe at, so that it can later be cut
    #: there by copying packets (the cuts of a job sent in parts); or a function giving
    #: them, called only when the video is re-encoded.
    keyframes_at: tuple[float, ...] | Callable[[], tuple[float, ...]] = ()

    def keyframe_times(self) -> tuple[float, ...]:
        return self.keyframes_at() if callable(self.keyframes_at) else self.keyframes_at

    def conflict(self, audio: AudioThresholds) -> tuple[str, str] | None:
        """(setting, why) when a voice normalised with these options would still fail the
        ``audio`` thresholds it is checked against again; None when they agree."""
        if not self.normalize:
            return None
        if self.target_lufs < audio.quiet_lufs + LOUDNESS_MARGIN_LU:
            return "target_lufs", (
                f"{self.target_lufs:g} LUFS is not {LOUDNESS_MARGIN_LU:g} LU or more above "
                f"thresholds.audio.quiet_lufs ({audio.quiet_lufs:g}): a normalised voice would "
                "still be Audio.Quiet (raise target_lufs, or turn normalize off)"
            )
        if self.true_peak_dbtp > audio.max_true_peak_dbtp:  # the limiter's ceiling
            return "true_peak_dbtp", (
                f"{self.true_peak_dbtp:g} dBTP is above thresholds.audio.max_true_peak_dbtp "
                f"({audio.max_true_peak_dbtp:g}): a normalised voice would be Audio.Clipping "
                "(lower true_peak_dbtp, or turn normalize off)"
            )
        return None


@dataclass(frozen=True)
class FixedFile:
    """One input and what became of it."""

    path: str
    role: Role
    #: The file written (None when nothing could be written, or on a dry run).
    output: str | None
    actions: tuple[Action, ...]
    #: The output passes the service's limits (on a dry run: the plan is expected to).
    ok: bool
    #: What the check of the output still finds (on a dry run: of the input).
    findings: tuple[Finding, ...]
    #: Why no output could be written.
    error: str | None = None
    #: Advice beyond the fix (an option that would help, such as --make-ref).
    notes: tuple[str, ...] = ()
    #: On a dry run: where the output would be written (nothing is).
    planned: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "role": self.role,
            "output": self.output,
            "actions": [a.name for a in self.actions],
            "steps": [a.to_dict() for a in self.actions],
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
            "notes": list(self.notes),
            "planned": self.planned,
        }


@dataclass(frozen=True)
class FixReport:
    files: tuple[FixedFile, ...]
    job: JobReport | None = None
    dry_run: bool = False
    #: Job-level steps (alignment of voice and video), said once.
    job_actions: tuple[Action, ...] = field(default=())
    #: What the check of the inputs found (not in the JSON: each file's findings there are
    #: its output's).
    checked: CheckReport | None = field(default=None, compare=False, repr=False)

    SCHEMA = "preflight.fix/1"

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files) and (
            self.job is None or not any(f.severity.value == "error" for f in self.job.findings)
        )

    def to_dict(self) -> dict[str, Any]:
        job = None
        if self.job is not None:
            job = {**self.job.to_dict(), "actions": [a.to_dict() for a in self.job_actions]}
        return {
            "schema": self.SCHEMA,
            "dry_run": self.dry_run,
            "files": [f.to_dict() for f in self.files],
            "job": job,
            "summary": {
                "files": len(self.files),
                "fixed": sum(1 for f in self.files if f.ok),
                "failed": sum(1 for f in self.files if not f.ok),
            },
        }
