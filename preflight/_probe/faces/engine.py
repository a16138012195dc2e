"""Faces: what a face engine reports, and the engine interface.

Coordinates are relative to the picture as displayed (rotation applied): ``x`` and
``width`` are fractions of its width, ``y`` and ``height`` of its height. A box that
extends past 0..1 is a face cut off by the frame edge.

The engine is an interface so that another detector can replace mediapipe's;
``loader.load_engine`` builds the default one, importing mediapipe only then (about 1.5 s).
Besides finding faces, an engine tells who a face is (``describe``: dlib's embedding,
``match``), loading that network only when a reference face is matched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from ..frames import RGBImage as RGBImage

if TYPE_CHECKING:
    from .match import FaceDescriptor


@dataclass(frozen=True)
class Box:
    """A face box, relative to the displayed picture."""

    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.width / 2, self.y + self.height / 2)

    def overlap(self, other: Box) -> float:
        """Intersection over union, 0..1."""
        ix = max(0.0, min(self.right, other.right) - max(self.x, other.x))
        iy = max(0.0, min(self.bottom, other.bottom) - max(self.y, other.y))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0

    def outside_share(self) -> float:
        """The share of the box that lies outside the picture (0 when wholly inside)."""
        area = self.width * self.height
        if area <= 0:
            return 0.0
        ix = max(0.0, min(self.right, 1.0) - max(self.x, 0.0))
        iy = max(0.0, min(self.bottom, 1.0) - max(self.y, 0.0))
        return max(0.0, 1.0 - ix * iy / area)

    def to_dict(self) -> dict[str, float]:
        return {
            k: round(v, 4)
            for k, v in (("x", self.x), ("y", self.y), ("width", self.width), ("height", self.height))
        }


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees: yaw (turned left/right), pitch (up/down), roll (tilted).
    Zero is a face looking straight at the camera."""

    yaw: float
    pitch: float
    roll: float

    def to_dict(self) -> dict[str, float]:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


@dataclass(frozen=True)
class Face:
    box: Box
    #: Detector confidence, 0..1.
    score: float
    #: From the face mesh; None when the mesh could not be fitted.
    pose: Pose | None = None
    #: Mesh landmarks, shape (N, 3): x, y relative to the picture, z in units of its width.
    landmarks: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)
    #: Who it is: a ``match.FaceDescriptor`` (dlib's embedding) when a reference face
    #: is to be matched, else None (hinted Any: ``match`` imports this module).
    #: Not in ``to_dict``.
    descriptor: Any = field(default=None, compare=False, repr=False)

    def height_px(self, picture_height: int) -> float:
        return self.box.height * picture_height

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box.to_dict(),
            "score": round(self.score, 3),
            "pose": self.pose.to_dict() if self.pose is not None else None,
        }


class FaceEngine(Protocol):
    """Finds faces in an RGB picture (H x W x 3, uint8, displayed orientation)."""

    name: str

    def detect(self, rgb: RGBImage) -> list[Face]:
        """Faces in the picture, largest first."""
        ...

    def describe(self, rgb: RGBImage, box: Box) -> FaceDescriptor | None:
        """Who the face in ``box`` is (see ``match``); None when it has too few
        pixels to tell. Raises ``FaceEngineError`` when the recogniser cannot load."""
        ...

    def close(self) -> None: ...


# --- Pose from mesh landmarks --------------------------------------------------------------
# Mesh indices (the 468-point canonical topology): outer eye corners, forehead, chin.
_RIGHT_EYE_OUTER, _LEFT_EYE_OUTER, _FOREHEAD, _CHIN = 33, 263, 10, 152
#: The forehead-to-chin axis of a face looking straight at the camera leans back by this
#: many degrees in mesh coordinates (measured on five frontal portraits: 3 to 11, median 6).
PITCH_BIAS_DEG = 6.0


def pose_from_landmarks(points: npt.NDArray[np.floating[Any]], width: int, height: int) -> Pose | None:
    """Yaw/pitch/roll from mesh landmarks (relative x, y; z in units of width).

    The face's own axes are taken from the eye corners (left-right) and the
    forehead-chin line (up-down), in pixels with depth; their tilt out of the picture
    plane gives yaw and pitch.
    """
    p = np.asarray(points, dtype=np.float64)[:, :3] * np.array([width, height, width], dtype=np.float64)
    across = p[_LEFT_EYE_OUTER] - p[_RIGHT_EYE_OUTER]
    down = p[_CHIN] - p[_FOREHEAD]
    across_len = float(np.linalg.norm(across))
    if across_len == 0:
        return None
    across /= across_len
    down = down - across * float(np.dot(across, down))
    down_len = float(np.linalg.norm(down))
    if down_len == 0:
        return None
    down /= down_len
    # Out-of-plane angles against the axis's length in the picture plane, so that a head
    # tilted sideways (roll) does not read as turned.
    yaw = math.degrees(math.atan2(across[2], math.hypot(across[0], across[1])))
    pitch = math.degrees(math.atan2(down[2], math.hypot(down[0], down[1]))) - PITCH_BIAS_DEG
    roll = math.degrees(math.atan2(across[1], across[0]))
    return Pose(yaw=yaw, pitch=pitch, roll=roll)
