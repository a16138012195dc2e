"""Scanning a video or a reference image for faces.

A scan holds facts (which faces, where, when, how turned); ``_rules.faces`` turns them into
findings. The target face, the one the service will sync, is followed the way the service
picks it: the largest face of the first frame, then the face that overlaps it most in each
later sample.

Every face is also given a track (the same face followed from sample to sample by its
overlap, through a few samples where the detector missed it, never across a cut). When a
reference face is to be matched (``identify``), each track is described once (dlib's
embedding, ~0.14 s a face), from its sample where the face is largest and most frontal,
not in every sampled frame; at most ``MAX_DESCRIBED_TRACKS`` of them, tracks in a new place
before pieces of one seen before.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..._models import MediaInfo
from ..container import too_large_to_decode
from ..frames import Prefetch, SamplingResult, sample_frames, sample_step
from .engine import Box, Face, FaceEngine, RGBImage
from .loader import LazyEngine

#: Longest side of a thumbnail kept for the contact sheet.
THUMBNAIL_SIDE = 320
#: Longest side a reference image is reduced to before detection (ample for BlazeFace).
IMAGE_ANALYSIS_SIDE = 1024
#: A face that overlaps the target's last box by less than this is somebody else.
_SAME_FACE_OVERLAP = 0.2
#: At most this many tracks of a video are described (the largest faces first, tracks in a
#: new place before tracks that look like an earlier one seen again): a crowd must not cost
#: seconds a face.
MAX_DESCRIBED_TRACKS = 6
#: A face not found for up to this many samples in a row keeps its track (see ``_Tracks``).
_TRACK_GRACE = 3
#: Side of the tiny copy of a frame (RGB) that tells one shot from another.
_LOOK_SIDE = 16
#: Two frames whose tiny copies differ by more than this (mean absolute difference, 0-255)
#: are different shots, and a face in one never continues a track of the other. On the six
#: real clips in shared/media: samples 0.5 s apart within a clip differed by at most 25,
#: 2 s apart by at most 41; frames of different clips by at least 43.
_SAME_SHOT_DIFFERENCE = 34.0
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
    #: With ``identify``: face tracks left undescribed (too small, or over the budget), so
    #: not compared with a reference face.
    undescribed: int = 0

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

    #: Live track number -> (the face's box when last seen, the sample number then, and
    #: the frame's look then).
    last: dict[int, tuple[Box, int, Look]] = field(default_factory=dict)
    #: Tracks begun so far.
    count: int = 0
    #: Samples analysed so far.
    samples: int = 0
    #: Track number -> (how good a view, sample number, face index, pixels, box in them).
    best: dict[int, tuple[tuple[bool, float], int, int, RGBImage, Box]] = field(default_factory=dict)
    #: Track number -> its first and last sample number.
    span: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Track number -> the box of its best view, in the whole frame.
    place: dict[int, Box] = field(default_factory=dict)
    #: Track number -> the look of the frame of its best view.
    looks: dict[int, Look] = field(default_factory=dict)
    #: Tracks kept for describing but not described (too small, or over the budget).
    undescribed: int = 0

    def assign(self, faces: tuple[Face, ...], look: Look) -> tuple[int, ...]:
        """The track of each face: the live track of the same shot it overlaps most, best
        pairs first (the most recently seen first among equal overlaps); a new track for a
        face that overlaps none. ``look`` is the frame's (``look_of``)."""
        number = self.samples
        self.samples += 1
        # A track missed for up to _TRACK_GRACE samples in a row is still live: the detector
        # misses a face now and then (a blink, a turn, motion blur), and a face's place
        # changes little in that time.
        self.last = {t: seen for t, seen in self.last.items() if number - seen[1] <= _TRACK_GRACE + 1}
        # After a cut the next shot's face in the same place is somebody else as often as not.
        live = {t: (box, seen) for t, (box, seen, then) in self.last.items() if same_shot(look, then)}
        pairs = sorted(
            (
                (face.box.overlap(box), seen, i, track)
                for i, face in enumerate(faces)
                for track, (box, seen) in live.items()
            ),
            reverse=True,
        )
        found: dict[int, int] = {}
        for overlap, _, i, track in pairs:
            if overlap < _SAME_FACE_OVERLAP:
                break
            if i not in found and track not in found.values():
                found[i] = track
        for i in range(len(faces)):
            if i not in found:
                found[i] = self.count
                self.count += 1
        for i, face in enumerate(faces):
            self.last[found[i]] = (face.box, number, look)
            first = self.span.get(found[i], (number, number))[0]
            self.span[found[i]] = (first, number)
        return tuple(found[i] for i in range(len(faces)))

    def keep(
        self, number: int, rgb: RGBImage, look: Look, faces: tuple[Face, ...], tracks: tuple[int, ...]
    ) -> None:
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
            self.place[track] = face.box
            self.looks[track] = look

    def _continues(self, track: int, other: int) -> bool:
        """Whether ``track`` looks like ``other`` seen again: at other times (their spans
        of samples do not overlap), where the other was (the detector lost the face for a
        while, or the shot came back)."""
        (first, last), (other_first, other_last) = self.span[track], self.span[other]
        if first <= other_last and other_first <= last:
            return False  # seen in the same stretch of time: two faces
        return self.place[track].overlap(self.place[other]) >= _SAME_FACE_OVERLAP

    def order(self) -> list[int]:
        """The tracks in the order they are described: largest first, but a track that
        looks like a larger one seen again (``_continues``) waits until every track in a
        new place has had its turn, so a second person is not crowded out by pieces of
        the first one's track. Among those that wait, the one from the shot least like
        those chosen goes first (an interview cutting between two people in the same
        place: both get described before more pieces of either)."""
        by_size = sorted(self.best, key=lambda t: self.best[t][0][1], reverse=True)
        chosen: list[int] = []
        waiting: list[int] = []
        for track in by_size:
            (waiting if any(self._continues(track, t) for t in chosen) else chosen).append(track)
        while waiting:
            unlike = max(waiting, key=lambda t: min(difference(self.looks[t], self.looks[c]) for c in chosen))
            waiting.remove(unlike)
            chosen.append(unlike)
        return chosen

    def described(self, samples: list[FaceSample], engine: FaceEngine) -> list[FaceSample]:
        """``samples`` with the best face of up to MAX_DESCRIBED_TRACKS tracks described."""
        chosen = self.order()
        self.undescribed = max(0, len(chosen) - MAX_DESCRIBED_TRACKS)
        for track in chosen[:MAX_DESCRIBED_TRACKS]:
            _, number, index, pixels, box = self.best[track]
            descriptor = engine.describe(pixels, box)
            if descriptor is None:
                self.undescribed += 1
                continue
            sample = samples[number]
            faces = list(sample.faces)
            faces[index] = dataclasses.replace(faces[index], descriptor=descriptor)
            samples[number] = dataclasses.replace(sample, faces=tuple(faces))
        return samples


Look = np.ndarray[Any, np.dtype[np.float32]]


def look_of(rgb: RGBImage) -> Look:
    """A tiny copy of a frame, enough to tell one shot from another."""
    tiny = Image.fromarray(rgb).resize((_LOOK_SIDE, _LOOK_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(tiny, dtype=np.float32)


def difference(a: Look, b: Look) -> float:
    """Mean absolute difference of two looks, 0-255."""
    return float(np.abs(a - b).mean())


def same_shot(a: Look, b: Look) -> bool:
    return difference(a, b) <= _SAME_SHOT_DIFFERENCE


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
            look = look_of(frame.rgb)
            numbers = tracks.assign(faces, look)
            if identify:
                tracks.keep(len(samples), frame.rgb, look, faces, numbers)
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
        undescribed=tracks.undescribed,
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
