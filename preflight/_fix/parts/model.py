"""What a long job's cut into parts is: the parts, the plan, and the error of a job that
cannot be cut. Plain data (saved in retalk's journal by ``to_dict``, read back by
``from_dict``), shared by the planner, the cut and the join.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..._exceptions import SplitError as SplitError

#: A voice's length (s) and its speech stretches, as ``speech_ranges`` gives them.
Speech = tuple[float, tuple[tuple[float, float], ...]]


@dataclass(frozen=True)
class Part:
    """One part: video frames ``[start_frame, end_frame)`` and the voice from ``start_s``
    to ``end_s`` (the same span, except that the last part's voice may run past its video:
    by the service's extension, or by the frames cut so that its video never runs past it)."""

    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    #: The pause (s) the part's end was cut in (None for the last part).
    pause: tuple[float, float] | None = None

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "pause": list(self.pause) if self.pause is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Part:
        pause = data.get("pause")
        return cls(
            int(data["index"]),
            int(data["start_frame"]),
            int(data["end_frame"]),
            float(data["start_s"]),
            float(data["end_s"]),
            (float(pause[0]), float(pause[1])) if pause else None,
        )


@dataclass(frozen=True)
class SplitPlan:
    """Where a long job is cut."""

    fps: Fraction
    #: Length (s) of the joined result: the shorter input, or the voice when extended.
    length_s: float
    parts: tuple[Part, ...]
    #: Every cut falls on a clean keyframe: the video parts are packet copies.
    copy: bool
    #: The last part's video is extended by the service to its voice.
    extend: bool = False
    #: A rate ceiling (bit/s) for encoded parts whose pictures would not fit otherwise.
    max_rate: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fps": [self.fps.numerator, self.fps.denominator],
            "length_s": self.length_s,
            "copy": self.copy,
            "extend": self.extend,
            "max_rate": self.max_rate,
            "parts": [p.to_dict() for p in self.parts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitPlan:
        num, den = data["fps"]
        return cls(
            Fraction(int(num), int(den)),
            float(data["length_s"]),
            tuple(Part.from_dict(p) for p in data["parts"]),
            bool(data["copy"]),
            bool(data.get("extend", False)),
            data.get("max_rate"),
        )
