"""Planning and writing a compliant copy of the job's video, with the least change.

Remux before re-encode: when the picture itself is fine (H.264/H.265, size, rate,
orientation, length at most a trim away), packets are copied into MP4 and the job takes
seconds. Otherwise one FFmpeg filter graph (through PyAV) does every picture change in
one pass: turn upright, crop, scale, pad, constant frame rate, freeze-pad, and x264
encodes the result (yuv420p, constant quality, or a bit rate that lands under the size
limit). The video's own sound is copied when MP4 can carry it and the timing is unchanged,
else re-encoded to AAC; either way it stays in sync with the picture.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.filter
import numpy as np
import numpy.typing as npt
from av.video.frame import PictureType

from .. import limits
from .._local_file import local_file
from .._models import FileReport, MediaInfo
from .._probe.container import MAX_DECODE_SIDE, too_large_to_decode
from .._probe.faces.scan import VideoFaceScan
from .._probe.frames import Prefetch
from .._rules.container import audio_apart
from .._rules.thresholds import FaceThresholds
from .model import Action, FixOptions

#: Audio codecs MP4 carries that every player (and the service) reads: copied as they are.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "alac"})
#: Output pixel format: 8-bit 4:2:0, what every H.264 decoder takes.
PIXEL_FORMAT = "yuv420p"
#: AAC bit rate of a re-encoded sound track (the service replaces it; it only keeps sync).
AUDIO_BIT_RATE = 128_000
#: Share of the size limit a size-capped encode aims at (x264's rate control overshoots
#: by a few percent; the container adds a little).
SIZE_HEADROOM = 0.92
#: ``--reframe``: the close-up puts the face at this share of the picture's height (a
#: head-and-shoulders shot), or more when the project's thresholds ask for more (the face's
#: ``min_share``, or the ``min_px`` of a picture scaled to the 640 px the service needs
#: at least), with this margin, up to the tightest head shot...
REFRAME_FACE_SHARE = 0.3
REFRAME_MARGIN = 1.2
REFRAME_MAX_FACE_SHARE = 0.6
#: ...but never crops tighter than this many pixels high: scaled back up to 640, a
#: tighter crop would be more blur than face.
REFRAME_MIN_HEIGHT = 240
#: Face positions are smoothed over this many samples (about 1.5 s) so the crop glides.
REFRAME_SMOOTHING = 3
_DEFAULT_THRESHOLDS = FaceThresholds()
#: Why a video that cannot be read cannot be fixed either (it ends the reason's sentence).
_NO_SOURCE = "preflight fix cannot repair a file it cannot read"
#: How much bigger a quality re-encode can come out than its source (a heavily
#: compressed source re-encoded at crf 18): beyond the limit / this, the ceiling is set.
CRF_GROWTH = 4
#: AAC frames hold this many samples; above this rate the encoder gives up.
AAC_FRAME = 1024
AAC_MAX_RATE = 48000
#: Highest rate ceiling given to x264 (far above any talking head; fits FFmpeg's int).
MAX_CEILING = 400_000_000
#: Standard rates tried when a rate must change and no even multiple or divisor fits.
PREFERRED_FPS = Fraction(25)

AudioMode = Literal["copy", "aac", "drop", "none"]


@dataclass(frozen=True)
class VideoPlan:
    """How the fixed video is made. ``actions`` empty means: already accepted, copy it."""

    actions: tuple[Action, ...]
    #: Output extension: ".mp4" when written, the input's own when copied or renamed.
    extension: str
    #: "rename": the bytes are fine, only the extension was wrong (copied unchanged);
    #: "remux": packets copied into MP4; "encode": the picture is re-encoded.
    mode: Literal["copy", "rename", "remux", "encode"] = "copy"
    #: Video filters in order (name, arguments), for "encode".
    filters: tuple[tuple[str, str], ...] = ()
    width: int = 0
    height: int = 0
    fps: Fraction | None = None
    #: End the output here (seconds from the start), or pad it to this length.
    trim_to: float | None = None
    pad_to: float | None = None
    #: Target video bit rate when the size limit rules; else constant quality...
    bit_rate: int | None = None
    #: ...under a ceiling that keeps any encode under the size limit.
    max_rate: int | None = None
    audio: AudioMode = "copy"
    preset: str = "medium"
    crf: int = 18
    #: Why no compliant copy can be made.
    unfixable: str | None = None
    notes: tuple[str, ...] = field(default=())
    #: The streams the probe chose (cover art and extra tracks are skipped).
    video_index: int = 0
    audio_index: int | None = None
    #: Display rotation kept by a remux (counter-clockwise degrees).
    rotation: int = 0
    #: Output frames that must be keyframes (an encode).
    keyframes: frozenset[int] = frozenset()
    #: Expected length of the output's picture (s): its sound never runs past it.
    length: float | None = None


def _codes(report: FileReport) -> set[str]:
    return {f.code for f in report.findings}


def _even(value: float, up: bool) -> int:
    """The nearest even integer at or above (``up``) or at or below ``value``."""
    return 2 * (math.ceil(value / 2) if up else math.floor(value / 2))


def fitted_size(width: int, height: int) -> tuple[int, int] | None:
    """The size nearest ``width`` x ``height`` (same aspect) with every side in
    640-2048 px, even; None when the aspect is too wide for any (above 3.2)."""
    short, long = min(width, height), max(width, height)
    if (
        short >= limits.VIDEO_MIN_SIDE
        and long <= limits.VIDEO_MAX_SIDE
        and width % 2 == 0
        and height % 2 == 0
    ):
        return width, height
    if long / short > limits.VIDEO_MAX_SIDE / limits.VIDEO_MIN_SIDE:
        return None
    scale = 1.0
    if short < limits.VIDEO_MIN_SIDE:
        scale = limits.VIDEO_MIN_SIDE / short
    elif long > limits.VIDEO_MAX_SIDE:
        scale = limits.VIDEO_MAX_SIDE / long
    new_short = max(limits.VIDEO_MIN_SIDE, _even(short * scale, up=True))
    new_long = min(limits.VIDEO_MAX_SIDE, 2 * round(long * scale / 2))
    new_long = max(new_long, new_short)
    return (new_long, new_short) if width >= height else (new_short, new_long)


def target_fps(fps: float) -> Fraction:
    """A rate in 15-60 fps for a clip at ``fps``: an even multiple (every frame shown the
    same number of times, no judder) or an even divisor (every n-th frame) when one falls
    in range, else 25."""
    if fps < limits.VIDEO_MIN_FPS:
        factor = math.ceil(limits.VIDEO_MIN_FPS / fps)
        candidate = Fraction(fps).limit_denominator(1001) * factor
    else:
        divisor = math.ceil(fps / limits.VIDEO_MAX_FPS)
        candidate = Fraction(fps).limit_denominator(1001) / divisor
    if limits.VIDEO_MIN_FPS <= candidate <= limits.VIDEO_MAX_FPS and candidate.denominator in (1, 1001):
        return candidate
    return PREFERRED_FPS


def _target_face_box(scan: VideoFaceScan | None) -> tuple[float, float, float, float] | None:
    """The target face's box (relative x, y, w, h) averaged over the samples it is in."""
    if scan is None:
        return None
    boxes = [s.target_face.box for s in scan.samples if s.target_face is not None]
    if not boxes:
        return None
    n = len(boxes)
    return (
        sum(b.x for b in boxes) / n,
        sum(b.y for b in boxes) / n,
        sum(b.width for b in boxes) / n,
        sum(b.height for b in boxes) / n,
    )


def _crop_or_pad(
    width: int, height: int, scan: VideoFaceScan | None
) -> tuple[tuple[str, str], Action, int, int]:
    """A picture too wide (or tall) for any scale: crop to 3.2:1 around the target face, or
    pad to 3.2:1 when no face is known."""
    ratio = limits.VIDEO_MAX_SIDE / limits.VIDEO_MIN_SIDE
    face = _target_face_box(scan)
    wide = width >= height
    if face is not None:
        if wide:
            # The kept side first: an odd one loses a row, and the other is cut to match it
            # (from the odd side, 601 -> 1922x600, still over 3.2:1).
            crop_h = _even(height, up=False)
            crop_w = _even(crop_h * ratio, up=False)
            centre = (face[0] + face[2] / 2) * width
            x = int(min(max(0, centre - crop_w / 2), width - crop_w)) // 2 * 2
            y = 0
        else:
            crop_w = _even(width, up=False)
            crop_h = _even(crop_w * ratio, up=False)
            centre = (face[1] + face[3] / 2) * height
            y = int(min(max(0, centre - crop_h / 2), height - crop_h)) // 2 * 2
            x = 0
        return (
            ("crop", f"{crop_w}:{crop_h}:{x}:{y}"),
            Action(
                "crop", f"{width}x{height} -> {crop_w}x{crop_h} around the face", ("InvalidFile.Resolution",)
            ),
            crop_w,
            crop_h,
        )
    if wide:
        pad_w, pad_h = width, _even(math.ceil(width / ratio), up=True)
    else:
        pad_w, pad_h = _even(math.ceil(height / ratio), up=True), height
    x, y = (pad_w - width) // 2 // 2 * 2, (pad_h - height) // 2 // 2 * 2
    return (
        ("pad", f"{pad_w}:{pad_h}:{x}:{y}:black"),
        Action(
            "pad",
            f"{width}x{height} -> {pad_w}x{pad_h} (black bars; no face known to crop around)",
            ("InvalidFile.Resolution",),
        ),
        pad_w,
        pad_h,
    )


def _payload_bytes(info: MediaInfo, length: float) -> float | None:
    """Bytes of the streams kept (first video, first audio) over ``length`` seconds."""
    rates = [info.video[0].bit_rate] + ([info.audio[0].bit_rate] if info.audio else [])
    if any(rate is None for rate in rates):
        return None
    return sum(rate or 0 for rate in rates) * length / 8


def _face_track(scan: VideoFaceScan) -> list[tuple[float, float, float, float]]:
    """(time, centre x, centre y, height) of the target face, relative, smoothed."""
    seen = [(s.time, s.target_face.box) for s in scan.samples if s.target_face is not None]
    track = []
    for index, (time, _box) in enumerate(seen):
        near = [
            box
            for _, box in seen[max(0, index - REFRAME_SMOOTHING // 2) : index + REFRAME_SMOOTHING // 2 + 1]
        ]
        track.append(
            (
                time,
                sum(b.x + b.width / 2 for b in near) / len(near),
                sum(b.y + b.height / 2 for b in near) / len(near),
                sum(b.height for b in near) / len(near),
            )
        )
    return track


def _piecewise(points: list[tuple[float, float]]) -> str:
    """An FFmpeg expression of ``t``: straight lines through (time, value) points, held
    before the first and after the last."""
    expression = f"{points[-1][1]:.1f}"
    for (t0, v0), (t1, v1) in reversed(list(itertools.pairwise(points))):
        slope = (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0
        expression = f"if(lt(t,{t1:.3f}),{v0:.1f}+({slope:.3f})*(t-{t0:.3f}),{expression})"
    return f"if(lt(t,{points[0][0]:.3f}),{points[0][1]:.1f},{expression})"


def reframe_share(thresholds: FaceThresholds) -> float:
    """The share of the close-up's height ``--reframe`` gives the face: enough for the
    thresholds the output is checked against (a cropped picture is scaled up to at least
    640 px, so the face's pixels follow from its share)."""
    wanted = max(thresholds.min_share, thresholds.min_px / limits.VIDEO_MIN_SIDE) * REFRAME_MARGIN
    return min(REFRAME_MAX_FACE_SHARE, max(REFRAME_FACE_SHARE, wanted))


def _reframe(
    width: int, height: int, scan: VideoFaceScan, thresholds: FaceThresholds
) -> tuple[tuple[str, str], Action, int, int] | None:
    """A close-up crop, same aspect as the picture, that follows the target face."""
    track = _face_track(scan)
    if not track:
        return None
    face_px = max(h for *_, h in track) * height
    crop_h = min(height, max(REFRAME_MIN_HEIGHT, face_px / reframe_share(thresholds)))
    crop_h = _even(crop_h, up=False)
    crop_w = min(width, _even(crop_h * width / height, up=False))
    if crop_h >= height - 2:
        return None  # the face is too small to gain anything by cropping
    xs = [(t, min(max(0.0, cx * width - crop_w / 2), width - crop_w)) for t, cx, _, _ in track]
    # Eyes a little above the middle, as a camera operator frames a face.
    ys = [(t, min(max(0.0, cy * height - crop_h * 0.45), height - crop_h)) for t, _, cy, _ in track]
    args = f"w={crop_w}:h={crop_h}:x='{_piecewise(xs)}':y='{_piecewise(ys)}'"
    share = face_px / crop_h
    action = Action(
        "reframe",
        f"close-up {crop_w}x{crop_h} following the face ({len(track)} positions): face "
        f"{face_px:.0f} px = {share:.0%} of the picture instead of {face_px / height:.0%}",
        ("Face.TooSmall",),
    )
    return ("crop", args), action, crop_w, crop_h


def _rotate_filters(rotation: int) -> tuple[tuple[str, str], ...]:
    # ``rotation`` is the counter-clockwise display rotation (ffprobe's convention).
    return {
        90: (("transpose", "cclock"),),
        180: (("hflip", ""), ("vflip", "")),
        270: (("transpose", "clock"),),
    }.get(rotation % 360, ())


def plan_video(
    report: FileReport,
    options: FixOptions,
    *,
    duration: float | None = None,
    thresholds: FaceThresholds = _DEFAULT_THRESHOLDS,
) -> VideoPlan:
    """The least change that makes the video acceptable.

    Decisions follow the findings (so ``--ignore`` a warning and it is left alone) and
    read the facts the way the rules do, with the ``thresholds`` the video was checked
    with. ``duration`` (job alignment) asks for an output of that length: trimmed, or
    padded by holding the last frame.
    """
    info = report.media
    if isinstance(info, MediaInfo) and info.opened and not info.video:
        return VideoPlan((), "", unfixable="the file has no video stream")
    unopened = next((f for f in report.findings if f.code == "InvalidFile.Openerror"), None)
    if unopened is not None:
        # Its own words: cut short, a broken index, a still image... (a file that opens but
        # is damaged would fail just the same as a copy).
        return VideoPlan((), "", unfixable=f"{unopened.message.rstrip('.')}; {_NO_SOURCE}")
    if not isinstance(info, MediaInfo) or not info.opened:
        reason = info.error if isinstance(info, MediaInfo) and info.error else "the file cannot be opened"
        return VideoPlan((), "", unfixable=f"{reason}; {_NO_SOURCE}")
    stream = info.video[0]
    if stream.codec is None or stream.width <= 0 or stream.height <= 0:
        return VideoPlan(
            (), "", unfixable="FFmpeg knows no decoder for its video codec: nothing to convert from"
        )
    if too_large_to_decode(stream.width, stream.height):
        return VideoPlan(
            (),
            "",
            unfixable=f"its frames are {stream.width}x{stream.height}, beyond the {MAX_DECODE_SIDE} px a "
            "side preflight decodes (no camera records that; the header is damaged or lies): export "
            "the video again at its real size",
        )
    codes = _codes(report)
    extension = os.path.splitext(report.path)[1].lower()
    actions: list[Action] = []
    encode_reasons: list[str] = []
    filters: list[tuple[str, str]] = []

    container_ok = info.container in limits.VIDEO_CONTAINERS
    codec_ok = stream.codec in limits.VIDEO_CODECS
    if not codec_ok:
        encode_reasons.append("InvalidFile.Format")
        actions.append(
            Action(
                "transcode",
                f"{stream.codec or 'unknown codec'} -> H.264 (x264, {PIXEL_FORMAT})",
                ("InvalidFile.Format",),
            )
        )

    # Sizes below are as displayed (rotation applied); a re-encode turns the pixels first.
    width, height = stream.width, stream.height
    if options.reframe and "Face.TooSmall" in codes and isinstance(report.faces, VideoFaceScan):
        reframed = _reframe(width, height, report.faces, thresholds)
        if reframed is not None:
            step, action, width, height = reframed
            filters.append(step)
            actions.append(action)
            encode_reasons.append("Face.TooSmall")
    if "InvalidFile.Resolution" in codes or "Face.TooSmall" in encode_reasons:
        size = fitted_size(width, height)
        if size is None:
            scan = report.faces if isinstance(report.faces, VideoFaceScan) else None
            step, action, width, height = _crop_or_pad(width, height, scan)
            filters.append(step)
            actions.append(action)
            encode_reasons.append("InvalidFile.Resolution")
            size = fitted_size(width, height)
        if size is not None and size != (width, height):
            filters.append(("scale", f"{size[0]}:{size[1]}:flags=lanczos"))
            because = ("InvalidFile.Resolution",) if "InvalidFile.Resolution" in codes else ()
            actions.append(Action("scale", f"{width}x{height} -> {size[0]}x{size[1]}", because))
            encode_reasons.append("InvalidFile.Resolution")
            width, height = size

    # The rate the rules judge: the average one.
    source_fps = stream.avg_fps or stream.nominal_fps
    fps: Fraction | None = None
    if "InvalidFile.FPS" in codes and source_fps:
        fps = target_fps(source_fps)
        actions.append(Action("fps", f"{source_fps:.3g} -> {float(fps):.5g} fps", ("InvalidFile.FPS",)))
        encode_reasons.append("InvalidFile.FPS")
    elif "Video.VariableFrameRate" in codes or "Video.FrameRateUnknown" in codes:
        fps = _clamped_fps(source_fps)
        code = "Video.VariableFrameRate" if "Video.VariableFrameRate" in codes else "Video.FrameRateUnknown"
        actions.append(Action("cfr", f"variable -> constant {float(fps):.5g} fps", (code,)))
        encode_reasons.append(code)

    if "Video.PixelFormat" in codes:
        actions.append(
            Action("pixel-format", f"{stream.pixel_format} -> {PIXEL_FORMAT}", ("Video.PixelFormat",))
        )
        encode_reasons.append("Video.PixelFormat")

    # The length the rules judge: the stream's, rounded to the millisecond.
    length = stream.duration if stream.duration is not None else info.duration
    shown = round(length, 3) if length is not None else None
    trim_to: float | None = None
    pad_to: float | None = None
    if duration is not None and shown is not None and abs(duration - shown) > 1e-3:
        if duration < shown:
            trim_to = duration
            actions.append(
                Action(
                    "trim",
                    f"{shown:.2f} s -> {duration:.2f} s (the voice's length)",
                    ("Pair.DurationMismatch",),
                )
            )
        else:
            pad_to = duration
            actions.append(
                Action(
                    "pad-duration",
                    f"{shown:.2f} s -> {duration:.2f} s, last frame held",
                    ("Pair.DurationMismatch",),
                )
            )
    elif (
        "InvalidFile.Duration" in codes
        and shown is not None
        and options.max_duration_s is not None
        and shown > options.max_duration_s
    ):
        trim_to = options.max_duration_s
        actions.append(Action("trim", f"{shown:.2f} s -> {trim_to:.0f} s", ("InvalidFile.Duration",)))
    elif "InvalidFile.Duration" in codes and shown is not None and shown < limits.MIN_DURATION_S:
        pad_to = limits.MIN_DURATION_S
        actions.append(
            Action(
                "pad-duration", f"{shown:.2f} s -> {pad_to:.0f} s, last frame held", ("InvalidFile.Duration",)
            )
        )
    if pad_to is not None:
        encode_reasons.append("pad")

    # A rotated picture is turned when asked (Video.Rotated), and whenever it is re-encoded
    # anyway (a new stream carries no rotation flag).
    if stream.rotation % 360 and (encode_reasons or "Video.Rotated" in codes):
        filters[:0] = _rotate_filters(stream.rotation)
        actions.append(
            Action(
                "rotate",
                f"turned {stream.rotation} degrees into the pixels; rotation flag cleared",
                ("Video.Rotated",) if "Video.Rotated" in codes else (),
            )
        )
        encode_reasons.append("rotate")
    # x264 wants even sides: an odd picture that is re-encoded anyway loses a pixel row.
    if encode_reasons and (width % 2 or height % 2):
        even = (width - width % 2, height - height % 2)
        filters.append(("crop", f"{even[0]}:{even[1]}:0:0"))
        actions.append(Action("crop", f"{width}x{height} -> {even[0]}x{even[1]} (x264 needs even sides)"))
        width, height = even

    out_length = trim_to or pad_to or shown or 0.0
    # A header that claims another length than the tracks: a remux writes one from them.
    header_remux = "Video.HeaderLength" in codes and info.header_duration is not None
    writes_mp4 = (
        bool(encode_reasons)
        or not container_ok
        or trim_to is not None
        or "InvalidFile.Size" in codes
        or header_remux
    )
    audio: AudioMode = "none" if not info.audio else "copy"
    apart = audio_apart(info) if "Video.AudioOffset" in codes else None
    if info.audio and options.drop_audio:
        audio = "drop"
        actions.append(Action("drop-audio", "the video's own sound track dropped, as asked"))
    elif apart is not None:
        # Kept, it would be silence the length of the gap (3000 s of it under 3 s of picture).
        audio = "drop"
        offset, picture = apart
        actions.append(
            Action(
                "drop-audio",
                f"the sound track starts {abs(offset):.2f} s {'after' if offset > 0 else 'before'} "
                f"the {picture:.2f} s picture: dropped",
                ("Video.AudioOffset",),
            )
        )
    elif info.audio and writes_mp4 and (info.audio[0].codec not in MP4_AUDIO_CODECS or pad_to is not None):
        # MP4 cannot carry it (or it must be lengthened): re-encoded, starting where it did.
        audio = "aac"
        actions.append(Action("audio-aac", f"sound track {info.audio[0].codec} -> AAC (kept in sync)"))

    # A rate ceiling keeps an encode under the size limit. It costs x264 about 10% more
    # time, so it is set only when the source is dense enough for a re-encode to come near
    # the limit. When the file is too big for its streams (padding, extra tracks) a remux is
    # enough, and only a source whose pictures alone are too big gets an average-rate encode.
    audio_rate = 0 if audio in ("drop", "none") else AUDIO_BIT_RATE
    # A job kept long to be sent in parts only has each part to fit.
    budget_s = out_length if options.max_duration_s is not None else min(out_length, limits.MAX_DURATION_S)
    ceiling = int(limits.VIDEO_MAX_BYTES * 8 * SIZE_HEADROOM / max(budget_s, 1.0)) - audio_rate
    source_rate = stream.bit_rate or info.bit_rate
    max_rate = ceiling if source_rate is None or source_rate * CRF_GROWTH > ceiling else None
    bit_rate: int | None = None
    size_remux = False
    if "InvalidFile.Size" in codes:
        payload = _payload_bytes(info, out_length)
        if payload is not None and payload <= limits.VIDEO_MAX_BYTES * SIZE_HEADROOM:
            size_remux = True
            actions.append(
                Action(
                    "remux",
                    f"{info.size / limits.MIB:.0f} MiB file, {payload / limits.MIB:.0f} MiB of it the "
                    "streams: rewritten without the rest",
                    ("InvalidFile.Size",),
                )
            )
        else:
            bit_rate = max_rate = ceiling
            actions.append(
                Action(
                    "bitrate",
                    f"{info.size / limits.MIB:.0f} MiB -> video at {bit_rate / 1e6:.1f} Mbit/s to land under "
                    f"{limits.VIDEO_MAX_BYTES / limits.MIB:.0f} MiB",
                    ("InvalidFile.Size",),
                )
            )
            encode_reasons.append("InvalidFile.Size")

    audio_index = info.audio[0].index if info.audio else None
    if encode_reasons:
        if codec_ok and not any(a.name == "transcode" for a in actions):
            actions.insert(
                0,
                Action(
                    "transcode",
                    f"{stream.codec} re-encoded to H.264 (x264 {options.preset}, "
                    + (f"{bit_rate / 1e6:.1f} Mbit/s" if bit_rate else f"crf {options.crf}")
                    + ")",
                ),
            )
        return VideoPlan(
            tuple(actions),
            ".mp4",
            "encode",
            tuple(filters),
            width,
            height,
            fps or _clamped_fps(source_fps),
            trim_to,
            pad_to,
            bit_rate,
            max_rate,
            audio,
            options.preset,
            options.crf,
            video_index=stream.index,
            audio_index=audio_index,
            keyframes=frozenset(
                round(t * (fps or _clamped_fps(source_fps))) for t in options.keyframe_times()
            ),
            length=out_length or None,
        )

    def remux(steps: list[Action]) -> VideoPlan:
        return VideoPlan(
            tuple(steps),
            ".mp4",
            "remux",
            trim_to=trim_to,
            audio=audio,
            width=width,
            height=height,
            rotation=stream.rotation,
            video_index=stream.index,
            audio_index=audio_index,
            length=out_length or None,
        )

    if not container_ok:
        actions.insert(
            0,
            Action(
                "remux", f"{info.container} -> MP4, streams copied (no re-encode)", ("InvalidFile.Format",)
            ),
        )
        return remux(actions)
    if header_remux and not size_remux and info.header_duration is not None:
        actions.insert(
            0,
            Action(
                "remux",
                f"header claims {info.header_duration:.2f} s over {shown or 0.0:.2f} s of tracks: streams "
                "copied into a fresh MP4 (no re-encode)",
                ("Video.HeaderLength",),
            ),
        )
        return remux(actions)
    if trim_to is not None or audio == "drop" or size_remux:
        if not size_remux:
            actions.insert(0, Action("remux", "into MP4, streams copied (no re-encode)"))
        return remux(actions)
    if extension not in limits.VIDEO_EXTENSIONS or "Video.ExtensionMismatch" in codes:
        right = ".mp4" if info.container != "avi" else ".avi"
        return VideoPlan(
            (
                Action(
                    "rename",
                    f"content is {right[1:].upper()}: copied unchanged as {right}",
                    tuple(c for c in ("InvalidFile.Format", "Video.ExtensionMismatch") if c in codes),
                ),
            ),
            right,
            "rename",
        )
    return VideoPlan((), extension)


def _clamped_fps(fps: float | None) -> Fraction:
    """The clip's own rate as a fraction, when it is in range; else the preferred one."""
    rate = Fraction(fps or float(PREFERRED_FPS)).limit_denominator(1001)
    return rate if limits.VIDEO_MIN_FPS <= rate <= limits.VIDEO_MAX_FPS else target_fps(float(rate))


# --------------------------------------------------------------------------- writing
Progress = Callable[[float], None]


def write_video(plan: VideoPlan, source: str, target: Path, on_progress: Progress | None = None) -> None:
    """Carry out ``plan`` from ``source`` into ``target`` (a temporary name)."""
    if plan.mode in ("copy", "rename"):
        shutil.copyfile(source, target)
    elif plan.mode == "remux":
        _remux(plan, source, target, on_progress)
    else:
        _encode(plan, source, target, on_progress)


def _open_output(target: Path) -> Any:
    # faststart: the index goes first, so the service can read the file while downloading.
    return av.open(local_file(target), "w", format="mp4", options={"movflags": "+faststart"})


def _start(container: Any, stream: Any, sound: Any | None) -> float:
    """Where the streams' shared clock starts (seconds): the picture's own start when its
    sound is not kept (a dropped track's start must not hold the picture back)."""
    if sound is None and stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    if container.start_time is not None:
        return float(container.start_time) / av.time_base
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _remux(plan: VideoPlan, source: str, target: Path, on_progress: Progress | None) -> None:
    with av.open(local_file(source)) as inp, _open_output(target) as out:
        vin = inp.streams[plan.video_index]
        keep_audio = plan.audio in ("copy", "aac") and plan.audio_index is not None
        ain = inp.streams[plan.audio_index] if keep_audio else None
        vout = out.add_stream_from_template(vin)
        if plan.rotation % 360:
            vout.set_display_rotation(plan.rotation)  # the flag is not part of the template
        if vin.codec_context.name == "hevc":
            vout.codec_tag = "hvc1"  # what QuickTime and Safari need to play HEVC in MP4
        start = _start(inp, vin, ain)
        audio = _AudioTrack(out, ain, plan, start, plan.trim_to) if ain is not None else None
        total = plan.trim_to or (inp.duration / av.time_base if inp.duration else 0.0)
        video_end: float | None = None
        # Matroska keeps milliseconds: a 66.67 ms frame is stored as 66, and 30 frames at
        # 15 fps (2.000 s) would come out 1.998 s long, under the service's minimum. The
        # last frame's duration sets the MP4's length: one tick short of a frame is a frame.
        rate = vin.average_rate or vin.guessed_rate
        frame_ticks = math.ceil(1 / (rate * vin.time_base)) if rate and vin.time_base else 0
        streams = [s for s in (vin, ain) if s is not None]
        for packet in _with_decode_times(_whole_frames(inp.demux(streams), vin, frame_ticks), vin):
            if packet.dts is None or packet.size == 0:
                continue
            if packet.stream is not vin:
                if audio is not None:
                    audio.add(packet)
                continue
            when = float(packet.pts * packet.time_base) - start if packet.pts is not None else None
            if plan.trim_to is not None and (
                video_end is not None or (when is not None and when >= plan.trim_to)
            ):
                # Stop at the first frame past the cut, in decoding order: every frame kept
                # then has all its references.
                video_end = video_end if video_end is not None else when
                continue
            _shift(packet, start)
            packet.stream = vout
            out.mux(packet)
            if on_progress is not None and when is not None and total:
                on_progress(min(1.0, when / total))
        if audio is not None:
            end = plan.trim_to if video_end is None else min(video_end, plan.trim_to or video_end)
            audio.finish(end)


def _whole_frames(packets: Iterator[Any], video: Any, frame_ticks: int) -> Iterator[Any]:
    """The packets, a video frame stored one tick short of the frame interval lengthened
    to it (see ``_remux``)."""
    for packet in packets:
        if frame_ticks and packet.stream is video and packet.duration == frame_ticks - 1:
            packet.duration = frame_ticks
        yield packet


def _with_decode_times(packets: Iterator[Any], video: Any) -> Iterator[Any]:
    """The packets, every video packet with a decode time. Matroska stores presentation
    times only, and FFmpeg's demuxer gives none to the first frames of a stream with B
    frames (the key frame among them): they get decode times counted back from the first
    one known, a frame apart, as FFmpeg's command line does. (Dropped, they took the key
    frame with them: an MP4 whose every frame referred to one that was not there.)"""
    held: list[Any] = []
    for packet in packets:
        if packet.stream is video and packet.dts is None and packet.pts is not None and packet.size:
            held.append(packet)
            continue
        if held and packet.stream is video and packet.dts is not None:
            yield from _dated(held, packet.dts, packet.duration)
            held = []
        yield packet
    if held:  # no decode time anywhere: presentation order is all there is
        held.sort(key=lambda p: p.pts)
        yield from _dated(held, held[-1].pts + (held[-1].duration or 1), held[-1].duration)


def _dated(held: list[Any], next_dts: int, step: int | None) -> list[Any]:
    """``held`` with decode times one ``step`` apart, ending a step before ``next_dts``,
    and never after a packet's own presentation time."""
    interval = max(1, step or max((p.duration or 0) for p in held) or 1)
    for back, packet in enumerate(reversed(held), start=1):
        packet.dts = next_dts - back * interval
    excess = max(p.dts - p.pts for p in held)
    if excess > 0:
        for packet in held:
            packet.dts -= excess
    return held


def _shift(packet: Any, start: float) -> None:
    offset = round(start / packet.time_base)
    if packet.pts is not None:
        packet.pts -= offset
    if packet.dts is not None:
        packet.dts -= offset


def _mux_audio(out: Any, aout: Any, packet: Any, start: float) -> None:
    _shift(packet, start)
    packet.stream = aout
    out.mux(packet)


def _graph(stream: Any, plan: VideoPlan) -> tuple[Any, Any]:
    graph = av.filter.Graph()
    source = graph.add_buffer(template=stream)
    chain = [source]
    steps = list(plan.filters)
    # start_time=0: a picture that starts after the sound gets its first frame held from 0.
    steps.append(("fps", f"fps={plan.fps}:start_time=0"))
    if plan.pad_to is not None:
        steps.append(("tpad", f"stop_mode=clone:stop_duration={plan.pad_to:.3f}"))
    steps.append(("format", PIXEL_FORMAT))
    steps.append(("setsar", "1"))
    for name, args in steps:
        node = graph.add(name, args) if args else graph.add(name)
        chain[-1].link_to(node)
        chain.append(node)
    sink = graph.add("buffersink")
    chain[-1].link_to(sink)
    graph.configure()
    return graph, source


def _pull(graph: Any) -> Iterator[Any]:
    while True:
        try:
            yield graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return


def _encode(plan: VideoPlan, source: str, target: Path, on_progress: Progress | None) -> None:
    if plan.fps is None:
        raise ValueError("an encode plan needs a frame rate")
    fps = plan.fps
    with av.open(local_file(source)) as inp, _open_output(target) as out:
        vin = inp.streams[plan.video_index]
        vin.thread_type = "AUTO"
        keep_audio = plan.audio in ("copy", "aac") and plan.audio_index is not None
        ain = inp.streams[plan.audio_index] if keep_audio else None
        start = _start(inp, vin, ain)
        total = plan.trim_to or plan.pad_to or (inp.duration / av.time_base if inp.duration else 0.0)
        end = plan.trim_to if plan.trim_to is not None else plan.pad_to

        vout = out.add_stream("libx264", rate=fps)
        vout.width, vout.height = plan.width, plan.height
        vout.pix_fmt = PIXEL_FORMAT
        # PyAV asks for slice threads; FFmpeg's libx264 then gives x264 sliced threads,
        # 20-25% slower than its own frame threads, which FFmpeg's command line gets.
        vout.thread_type = "AUTO"
        # Kept apart: the stream's own time base changes to the muxer's once writing starts.
        frame_time_base = 1 / fps
        vout.time_base = frame_time_base
        # A keyframe asked for is an IDR: nothing after it refers to a frame before.
        options = {"preset": plan.preset, "forced-idr": "1"}
        if plan.bit_rate:
            vout.bit_rate = plan.bit_rate
        else:
            options["crf"] = str(plan.crf)
        if plan.max_rate:
            # A short clip's ceiling is huge; FFmpeg keeps the buffer size in an int.
            ceiling = min(plan.max_rate if not plan.bit_rate else int(plan.bit_rate * 1.05), MAX_CEILING)
            # A one-second buffer: x264 can overshoot the ceiling by at most that much.
            options |= {"maxrate": str(ceiling), "bufsize": str(ceiling)}
        vout.options = options

        audio = _AudioTrack(out, ain, plan, start, end) if ain is not None else None
        index = 0

        def emit(frame: Any) -> bool:
            """Encode one filtered frame; False once the output is long enough."""
            nonlocal index
            when = float(frame.time) if frame.time is not None else index / float(fps)
            if end is not None and when >= end - 1e-6:
                return False
            index = round(when * fps)
            frame.pts = index
            frame.time_base = frame_time_base
            # The decoder's frame type would force x264's hand (as FFmpeg does, let the
            # encoder choose).
            # (Except where a keyframe was asked for: a later cut.)
            frame.pict_type = PictureType.I if index in plan.keyframes else PictureType.NONE
            index += 1
            for packet in vout.encode(frame):
                out.mux(packet)
            if on_progress is not None and total:
                on_progress(min(1.0, when / total))
            return True

        # Demuxing, decoding and filtering run in a second thread while x264 encodes (as
        # FFmpeg's own command line does): FFmpeg releases the GIL, so the two overlap.
        going = True
        with Prefetch(_decoded(inp, vin, ain, plan, start), depth=8) as items:
            for kind, item in items:
                if kind == "audio":
                    if audio is not None:
                        audio.add(item)
                    if not going and audio is not None and audio.past(end):
                        break
                elif going:
                    going = emit(item)
                    if not going and audio is None:
                        break
        for packet in vout.encode(None):
            out.mux(packet)
        if audio is not None:
            length = float(index / fps)
            audio.finish(min(end, length) if end is not None else length)


def _decoded(
    inp: Any, vin: Any, ain: Any | None, plan: VideoPlan, start: float
) -> Generator[tuple[str, Any], None, None]:
    """Filtered video frames and raw audio packets, in the file's order."""
    graph, buffer = _graph(vin, plan)
    shift = None
    streams = [s for s in (vin, ain) if s is not None]
    for packet in inp.demux(streams):
        if packet.stream is not vin:
            if packet.dts is not None:
                yield "audio", packet
            continue
        for frame in packet.decode():
            if frame.pts is None:
                continue
            if shift is None:
                shift = round(start / frame.time_base)
            frame.pts -= shift
            buffer.push(frame)
            for filtered in _pull(graph):
                yield "video", filtered
    buffer.push(None)
    for filtered in _pull(graph):
        yield "video", filtered


class _AudioTrack:
    """The video's own sound, kept in step with the picture: packets copied (cut at the
    end), or decoded, placed at the instant it started, cut or padded, and encoded to AAC.

    It never runs past the picture (``end``, else the plan's length): whatever a header
    says about where the sound starts, nothing beyond that is held, decoded or written,
    and silence is made a second at a time."""

    def __init__(self, out: Any, stream: Any, plan: VideoPlan, start: float, end: float | None) -> None:
        self._out = out
        self._start = start
        self._end = end if end is not None else plan.length
        self._copy = plan.audio == "copy"
        self._last = 0.0  # seconds of sound read so far
        self._held: list[Any] = []
        if self._copy:
            self._stream = out.add_stream_from_template(stream)
            return
        # AAC takes at most 96 kHz; a voice needs no more than 48.
        self._rate = min(stream.rate or 48000, AAC_MAX_RATE)
        self._layout = "stereo" if (stream.channels or 2) >= 2 else "mono"
        self._stream = out.add_stream("aac", rate=self._rate, layout=self._layout)
        self._stream.bit_rate = AUDIO_BIT_RATE
        self._resampler = av.AudioResampler(format="fltp", layout=self._layout, rate=self._rate)
        self._pending = np.zeros((2 if self._layout == "stereo" else 1, 0), dtype=np.float32)
        self._skip = 0  # samples still to drop (sound that began before the picture)
        self._placed = False
        self._written = 0  # samples encoded

    def past(self, end: float | None) -> bool:
        """True once the sound read reaches half a second beyond ``end``."""
        return end is not None and self._last > end + 0.5

    def _full(self) -> bool:
        """True once the sound has reached the picture's end: the rest is never used."""
        if self._end is None:
            return False
        if self._copy:
            return self._last >= self._end
        return self._written + self._pending.shape[1] >= round(self._end * self._rate)

    def add(self, packet: Any) -> None:
        if packet.dts is None:
            return
        if packet.pts is not None:
            self._last = float(packet.pts * packet.time_base) - self._start
        if self._full():
            return
        if self._copy:
            self._held.append(packet)
            return
        for frame in packet.decode():
            if not self._placed and frame.time is not None:
                # Where the sound starts against the picture: silence before it, or the
                # part before the picture dropped, so the two stay in step.
                offset = round((float(frame.time) - self._start) * self._rate)
                if offset > 0:
                    self._silence(offset)
                else:
                    self._skip = -offset
                self._placed = True
            if self._full():
                return
            for converted in self._resampler.resample(frame):
                self._queue(np.asarray(converted.to_ndarray(), dtype=np.float32))

    def _silence(self, count: int) -> None:
        """``count`` samples of silence, up to the picture's end, a second at a time."""
        if self._end is not None:
            count = min(count, round(self._end * self._rate) - self._written - self._pending.shape[1])
        while count > 0:
            chunk = min(count, self._rate)
            self._queue(np.zeros((self._pending.shape[0], chunk), dtype=np.float32))
            count -= chunk

    def _queue(self, samples: npt.NDArray[np.float32]) -> None:
        if self._skip:
            dropped = min(self._skip, samples.shape[1])
            samples = samples[:, dropped:]
            self._skip -= dropped
        self._pending = np.concatenate([self._pending, samples], axis=1)
        while self._pending.shape[1] >= AAC_FRAME:
            self._emit(self._pending[:, :AAC_FRAME])
            self._pending = self._pending[:, AAC_FRAME:]

    def _emit(self, samples: npt.NDArray[np.float32]) -> None:
        if self._end is not None:
            # Cut to end exactly on time (a whole frame could end 21 ms late).
            samples = samples[:, : max(0, round(self._end * self._rate) - self._written)]
        if not samples.shape[1]:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self._layout)
        frame.sample_rate = self._rate
        frame.pts = self._written
        frame.time_base = Fraction(1, self._rate)
        self._written += frame.samples
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def finish(self, end: float | None) -> None:
        """Write what is left, up to ``end`` (s; None: the picture's end), padding with silence."""
        if end is None or (self._end is not None and end > self._end):
            end = self._end
        if self._copy:
            for packet in self._held:
                begin = float(packet.pts * packet.time_base) - self._start
                length = float((packet.duration or 0) * packet.time_base)
                if end is None or begin + length <= end + 1e-6:
                    _mux_audio(self._out, self._stream, packet, self._start)
            return
        for converted in self._resampler.resample(None):
            self._queue(np.asarray(converted.to_ndarray(), dtype=np.float32))
        if end is not None:
            # Pad with silence to the picture's end (the service replaces this track anyway).
            self._end = end
            self._silence(round(end * self._rate) - self._written - self._pending.shape[1])
        if self._pending.shape[1]:
            self._emit(self._pending)  # AAC takes a short last frame
        for packet in self._stream.encode(None):
            self._out.mux(packet)
