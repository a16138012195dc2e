"""Scanning a video or a reference image for faces.

A scan holds facts (which faces, where, when, how turned); ``_face_rules`` turns them into
findings. The target face, the one the service will sync, is followed the way the service
picks it: the largest face of the first frame, then the face that overlaps it most in each
later sample.

Every face is also given a track (the same face followed from sample to sample by its
overlap). When a reference face is to be matched (``identify``), each track is described
once (dlib's embedding, ~0.14 s a face), from its sample where the face is largest and
most frontal, not in every sampled frame.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ._faces import Box, Face, FaceEngine, LazyEngine, RGBImage
from ._frames import Prefetch, SamplingResult, sample_frames, sample_step
from ._models import MediaInfo
from ._probe import too_large_to_decode

#: Longest side of a thumbnail kept for the contact sheet.
THUMBNAIL_SIDE = 320
#: Longest side a reference image is reduced to before detection (ample for BlazeFace).
IMAGE_ANALYSIS_SIDE = 1024
#: A face that overlaps the target's last box by less than this is somebody else.
_SAME_FACE_OVERLAP = 0.2
#: At most this many tracks of a video are described (the largest faces first): a crowd
#: must not cost seconds a face.
MAX_DESCRIBED_TRACKS = 6
#: A face turned further than this (yaw or pitch, degrees) is described only when its
#: track has no straighter view.
_DESCRIBE_MAX_TURN_DEG = 25.0
#: Around a track's best face, this share of its size is kept for describing it later
#: (more than the network's own padding of 0.25).
_KEEP_MARGIN = 0.6


@dataclass(frozen=True)
class FaceSample:
    """The faces of one sampled frame."""

    time: float
    #: Largest first.
    faces: tuple[Face, ...]
    #: Index into ``faces`` of the face the service would sync; None when it is not there.
    target: int | None
    thumbnail: RGBImage | None = field(default=None, compare=False, repr=False)
    #: Per face, the track it belongs to (numbered from 0 in order of appearance).
    tracks: tuple[int, ...] = ()

    @property
    def target_face(self) -> Face | None:
        return self.faces[self.target] if self.target is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 3),
            "faces": [f.to_dict() for f in self.faces],
            "target": self.target,
            "tracks": list(self.tracks),
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


@dataclass
class _Tracks:
    """Faces followed across samples by overlap, and each track's best view so far (its
    pixels kept, so that it can be described once at the end)."""

    #: Track number -> the face's box in the last sample it was seen in.
    last: dict[int, Box] = field(default_factory=dict)
    #: Tracks begun so far.
    count: int = 0
    #: Track number -> (how good a view, sample number, face index, pixels, box in them).
    best: dict[int, tuple[tuple[bool, float], int, int, RGBImage, Box]] = field(default_factory=dict)

    def assign(self, faces: tuple[Face, ...]) -> tuple[int, ...]:
        """The track of each face: the last sample's track it overlaps most, best pairs
        first; a new track for a face that overlaps none."""
        pairs = sorted(
            (
                (face.box.overlap(box), i, track)
                for i, face in enumerate(faces)
                for track, box in self.last.items()
            ),
            reverse=True,
        )
        found: dict[int, int] = {}
        for overlap, i, track in pairs:
            if overlap < _SAME_FACE_OVERLAP:
                break
            if i not in found and track not in found.values():
                found[i] = track
        for i in range(len(faces)):
            if i not in found:
                found[i] = self.count
                self.count += 1
        self.last = {found[i]: face.box for i, face in enumerate(faces)}
        return tuple(found[i] for i in range(len(faces)))

    def keep(self, number: int, rgb: RGBImage, faces: tuple[Face, ...], tracks: tuple[int, ...]) -> None:
        """Remember the faces of sample ``number`` that are their track's best view yet."""
        height, width = rgb.shape[:2]
        for index, (face, track) in enumerate(zip(faces, tracks, strict=True)):
            pose = face.pose
            frontal = pose is None or max(abs(pose.yaw), abs(pose.pitch)) <= _DESCRIBE_MAX_TURN_DEG
            quality = (frontal, face.height_px(height))
            if track in self.best and self.best[track][0] >= quality:
                continue
            pixels, box = _around(rgb, face.box, width, height)
            self.best[track] = (quality, number, index, pixels, box)

    def described(self, samples: list[FaceSample], engine: FaceEngine) -> list[FaceSample]:
        """``samples`` with each track's best face described (the largest tracks first)."""
        chosen = sorted(self.best.values(), key=lambda kept: kept[0][1], reverse=True)
        for _, number, index, pixels, box in chosen[:MAX_DESCRIBED_TRACKS]:
            descriptor = engine.describe(pixels, box)
            if descriptor is None:
                continue
            sample = samples[number]
            faces = list(sample.faces)
            faces[index] = dataclasses.replace(faces[index], descriptor=descriptor)
            samples[number] = dataclasses.replace(sample, faces=tuple(faces))
        return samples


def _around(rgb: RGBImage, box: Box, width: int, height: int) -> tuple[RGBImage, Box]:
    """A copy of the pixels around ``box`` (a margin of ``_KEEP_MARGIN``), and the box
    relative to that copy."""
    margin_x, margin_y = _KEEP_MARGIN * box.width, _KEEP_MARGIN * box.height
    left = max(0, int((box.x - margin_x) * width))
    top = max(0, int((box.y - margin_y) * height))
    right = min(width, int((box.right + margin_x) * width) + 1)
    bottom = min(height, int((box.bottom + margin_y) * height) + 1)
    if right <= left or bottom <= top:
        return rgb.copy(), box
    pixels = np.ascontiguousarray(rgb[top:bottom, left:right])
    part_w, part_h = right - left, bottom - top
    inside = Box(
        (box.x * width - left) / part_w,
        (box.y * height - top) / part_h,
        box.width * width / part_w,
        box.height * height / part_h,
    )
    return pixels, inside


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
    identify: bool = False,
) -> VideoFaceScan | None:
    """Sample the video's frames and find the faces in each; with ``identify``, describe
    each face track once (for matching a reference face). None when there is no video
    stream or no duration to sample over."""
    if not info.video or not info.duration:
        return None
    stream = info.video[0]
    if too_large_to_decode(stream.width, stream.height):
        return None  # its size is refused already; decoding it could take gigabytes
    duration = info.duration
    sampling = SamplingResult()
    samples: list[FaceSample] = []
    last_target: Face | None = None
    tracks = _Tracks()
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
            faces = tuple(engine.detect(frame.rgb))
            target = _follow(faces, last_target)
            if target is not None:
                last_target = faces[target]
            numbers = tracks.assign(faces)
            if identify:
                tracks.keep(len(samples), frame.rgb, faces, numbers)
            thumbnail = _thumbnail(frame.rgb) if thumbnails else None
            samples.append(FaceSample(frame.time, faces, target, thumbnail, numbers))
    if identify:
        samples = tracks.described(samples, engine)
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
    path: str | os.PathLike[str],
    engine: FaceEngine,
    *,
    thumbnails: bool = False,
    identify: bool = False,
) -> ImageFaceScan | None:
    """Find the faces in a still image as displayed; with ``identify``, describe the
    largest (the reference image's person). None when it cannot be decoded."""
    try:
        with Image.open(os.fspath(path)) as image:
            upright = _as_rgb(ImageOps.exif_transpose(image))
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None
    width, height = upright.size
    upright.thumbnail((IMAGE_ANALYSIS_SIDE, IMAGE_ANALYSIS_SIDE), Image.Resampling.LANCZOS)
    rgb = np.asarray(upright)
    faces = engine.detect(rgb)
    if identify and faces:
        faces[0] = dataclasses.replace(faces[0], descriptor=engine.describe(rgb, faces[0].box))
    return ImageFaceScan(width, height, tuple(faces), engine.name, _thumbnail(rgb) if thumbnails else None)
