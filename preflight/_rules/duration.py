"""Rules on how long a video or a voice lasts: unknown, outside the service's 2-120 s, or
claimed by an MP4 header that its tracks contradict.
"""

from __future__ import annotations

from .. import limits
from .._models import Finding, MediaInfo
from .finding import finding
from .words import in_seconds

#: How far an MP4's movie header may state another length than its longest track before
#: it is a lie rather than rounding. In a real file they differ by an edit list's start or a
#: last frame (at most 64 ms over the shared media, the fixtures and the corpus); a fixed
#: second, not a share, because the finding matters only near the 2 and 120 s limits.
HEADER_LENGTH_SLACK_S = 1.0


def duration_findings(kind: str, duration: float | None, unknown_code: str) -> list[Finding]:
    """The ``kind`` ("video" or "audio") lasting ``duration`` s: unknown (``unknown_code``)
    or outside the service's limits (``InvalidFile.Duration``)."""
    if duration is None:
        return [
            finding(
                unknown_code,
                f"The {kind} does not state its duration, so the 2-120 s limit cannot be "
                "checked; re-encoding writes a proper header.",
                fixable=True,
            )
        ]
    shown = round(duration, 3)
    if shown < limits.MIN_DURATION_S:
        how = f"pads it to {limits.MIN_DURATION_S:g} s."
    elif shown > limits.MAX_DURATION_S:
        how = f"trims it to {limits.MAX_DURATION_S:g} s (prep-and-retalk --split sends long files in parts)."
    else:
        return []
    return [
        finding(
            "InvalidFile.Duration",
            f"{kind.capitalize()} lasts {in_seconds(shown)}; the service accepts "
            f"{limits.MIN_DURATION_S:g}-{limits.MAX_DURATION_S:g} s. "
            f"preflight fix {how}",
            fixable=True,
            duration=shown,
            min=limits.MIN_DURATION_S,
            max=limits.MAX_DURATION_S,
        )
    ]


def _outside_limits(seconds: float) -> bool:
    shown = round(seconds, 3)
    return not limits.MIN_DURATION_S <= shown <= limits.MAX_DURATION_S


def header_length_findings(info: MediaInfo, duration: float | None) -> list[Finding]:
    """An MP4/MOV whose movie header claims a length its tracks do not hold, on the wrong
    side of a limit: FFmpeg 8 goes by the tracks, ffprobe 5.1 (and any service that reads
    like it) by the header, and would answer ``InvalidFile.Duration``."""
    claimed = info.header_duration
    if claimed is None or duration is None or not _outside_limits(claimed) or _outside_limits(duration):
        return []
    lengths = [s.duration for s in info.video if s.duration is not None]
    lengths += [s.duration for s in info.audio if s.duration is not None]
    tracks = max(lengths, default=duration)
    if abs(claimed - tracks) <= HEADER_LENGTH_SLACK_S:
        return []
    return [
        finding(
            "Video.HeaderLength",
            f"The MP4 header claims {in_seconds(claimed)}, but the tracks hold "
            f"{in_seconds(round(duration, 3))} of video. A reader that trusts the header "
            "(ffprobe 5.1 does; the service's FFmpeg version is unknown) would answer "
            f"InvalidFile.Duration ({limits.MIN_DURATION_S:g}-{limits.MAX_DURATION_S:g} s). "
            "preflight fix copies the streams into a fresh MP4 whose header states their length.",
            fixable=True,
            header_duration=round(claimed, 3),
            duration=round(duration, 3),
            min=limits.MIN_DURATION_S,
            max=limits.MAX_DURATION_S,
        )
    ]
