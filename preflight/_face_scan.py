"""Scanning a video or a reference image for faces.

A scan holds facts (which faces, where, when, how turned); ``_face_rules`` turns them into
findings. The target face, the one the service will sync, is followed the way the service
picks it: the largest face of the first frame, then the face that overlaps it most in each
later sample.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ._face_match import describe
from ._faces import Face, FaceEngine, LazyEngine, RGBImage
from ._frames import Prefetch, SamplingResult, sample_frames, sample_step
from ._models import MediaInfo
from ._probe import too_large_to_decode

#: Longest side of a thumbnail kept for the contact sheet.
THUMBNAIL_SIDE = 320
#: Longest side a reference image is reduced to before detection (ample for BlazeFace).
IMAGE_ANALYSIS_SIDE = 1024
#: A face that overlaps the target's last box by less than this is somebody else.
_SAME_FACE_OVERLAP = 0.2


@dataclass(frozen=True)
class FaceSample:
    """The faces of one sampled frame."""

    time: float
    #: Largest first.
    faces: tuple[Face, ...]
    #: Index into ``faces`` of the face the service would sync; None when it is not there.
    target: int | None
    thumbnail: RGBImage | None = field(default=None, compare=False, repr=False)

    @property
    def target_face(self) -> Face | None:
        return self.faces[self.target] if self.target is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 3),
            "faces": [f.to_dict() for f in self.faces],
            "target": self.target,
        }


@dataclass(frozen=True)
class VideoFaceScan:
    """Faces across a video's sampled frames."""

    #: Picture size as displayed (rotation applied), full resolution.
    width: int
    height: int
    duration: float
    #: Seconds between samples.
    step: float
    samples: tuple[FaceSample, ...]
    engine: str
    #: The first decoding error, if any.
    error: str | None = None
    #: Sample times (seconds) whose frames could not be decoded.
    damaged: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "video",
            "engine": self.engine,
            "width": self.width,
            "height": self.height,
            "step": round(self.step, 3),
            "error": self.error,
            "damaged": list(self.damaged),
            "samples": [s.to_dict() for s in self.samples],
        }


@dataclass(frozen=True)
class ImageFaceScan:
    """Faces in a reference image (EXIF orientation applied)."""

    width: int
    height: int
    faces: tuple[Face, ...]
    engine: str
    thumbnail: RGBImage | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "image",
            "engine": self.engine,
            "width": self.width,
            "height": self.height,
            "faces": [f.to_dict() for f in self.faces],
        }


FaceScan = VideoFaceScan | ImageFaceScan


def _thumbnail(rgb: RGBImage) -> RGBImage:
    image = Image.fromarray(rgb)
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(image)


def _with_descriptors(rgb: RGBImage, faces: list[Face]) -> tuple[Face, ...]:
    return tuple(
        Face(f.box, f.score, f.pose, f.landmarks, describe(rgb, f.landmarks))
        if f.landmarks is not None
        else f
        for f in faces
    )


def _follow(faces: tuple[Face, ...], last: Face | None) -> int | None:
    """Index of the target face among ``faces``, given where it was last seen."""
    if not faces:
        return None
    if last is None:
        return 0  # the largest: the service's own choice in the first frame
    overlaps = [face.box.overlap(last.box) for face in faces]
    best = max(range(len(faces)), key=lambda i: overlaps[i])
    if overlaps[best] >= _SAME_FACE_OVERLAP:
        return best
    # The target moved a lot between samples: a lone face is still most likely it.
    return 0 if len(faces) == 1 else None


def scan_video(
    path: str | os.PathLike[str],
    info: MediaInfo,
    engine: FaceEngine,
    *,
    thumbnails: bool = False,
) -> VideoFaceScan | None:
    """Sample the video's frames and find the faces in each. None when there is no
    video stream or no duration to sample over."""
    if not info.video or not info.duration:
        return None
    stream = info.video[0]
    if too_large_to_decode(stream.width, stream.height):
        return None  # its size is refused already; decoding it could take gigabytes
    duration = info.duration
    sampling = SamplingResult()
    samples: list[FaceSample] = []
    last_target: Face | None = None
    frames = sample_frames(
        os.fspath(path),
        stream_index=stream.index,
        duration=duration,
        rotation=stream.rotation,
        result=sampling,
    )
    with Prefetch(frames) as decoded:
        if isinstance(engine, LazyEngine):
            engine.preload()  # mediapipe imports while the first frames decode
        for frame in decoded:
            faces = _with_descriptors(frame.rgb, engine.detect(frame.rgb))
            target = _follow(faces, last_target)
            if target is not None:
                last_target = faces[target]
            samples.append(
                FaceSample(frame.time, faces, target, _thumbnail(frame.rgb) if thumbnails else None)
            )
    return VideoFaceScan(
        width=stream.width,
        height=stream.height,
        duration=duration,
        step=sample_step(duration),
        samples=tuple(samples),
        engine=engine.name,
        error=sampling.error,
        damaged=tuple(round(t, 3) for t in sampling.damaged),
    )


def _as_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB. Pillow's own conversion clips 16-bit and float grey to white, so those
    are scaled to their range first."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def scan_image(
    path: str | os.PathLike[str], engine: FaceEngine, *, thumbnails: bool = False
) -> ImageFaceScan | None:
    """Find the faces in a still image as displayed. None when it cannot be decoded."""
    try:
        with Image.open(os.fspath(path)) as image:
            upright = _as_rgb(ImageOps.exif_transpose(image))
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None
    width, height = upright.size
    upright.thumbnail((IMAGE_ANALYSIS_SIDE, IMAGE_ANALYSIS_SIDE), Image.Resampling.LANCZOS)
    rgb = np.asarray(upright)
    faces = _with_descriptors(rgb, engine.detect(rgb))
    return ImageFaceScan(width, height, faces, engine.name, _thumbnail(rgb) if thumbnails else None)
