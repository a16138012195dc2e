"""The video planner: the least change that makes the job's video acceptable.

Remux before re-encode: when the picture itself is fine (H.264/H.265, size, rate,
orientation, length at most a trim away), packets are copied into MP4 and the job takes
seconds. Otherwise one filter graph does every picture change in one pass (``write``).

Each decision is a function of the facts and findings that returns its part of the plan
(codec, geometry, frame rate, pixel format, length, rotation, the video's own sound, the
size limit); ``plan_video`` puts the parts together in a fixed order, which is the order
the plan's steps are told in.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from ... import limits
from ..._models import FileReport, MediaInfo, VideoStreamInfo
from ..._probe.container import MAX_DECODE_SIDE, too_large_to_decode
from ..._probe.faces.scan import VideoFaceScan
from ..._rules.container import audio_apart
from ..._rules.thresholds import FaceThresholds
from ..media import PIXEL_FORMAT
from ..model import Action, FixOptions, finding_codes
from .geometry import crop_or_pad, fitted_size, reframe_crop, rotate_filters

#: Audio codecs MP4 carries that every player (and the service) reads: copied as they are.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "alac"})
#: AAC bit rate of a re-encoded sound track (the service replaces it; it only keeps sync).
AUDIO_BIT_RATE = 128_000
#: Share of the size limit a size-capped encode aims at (x264's rate control overshoots
#: by a few percent; the container adds a little).
SIZE_HEADROOM = 0.92
_DEFAULT_THRESHOLDS = FaceThresholds()
#: Why a video that cannot be read cannot be fixed either (it ends the reason's sentence).
_NO_SOURCE = "preflight fix cannot repair a file it cannot read"
#: How much bigger a quality re-encode can come out than its source (a heavily
#: compressed source re-encoded at crf 18): beyond the limit / this, the ceiling is set.
CRF_GROWTH = 4
#: Standard rates tried when a rate must change and no even multiple or divisor fits.
PREFERRED_FPS = Fraction(25)

AudioMode = Literal["copy", "aac", "drop", "none"]
#: One FFmpeg filter: its name and its arguments.
Filter = tuple[str, str]


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
    filters: tuple[Filter, ...] = ()
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


@dataclass(frozen=True)
class _Steps:
    """One decision's part of a plan: its steps, the filters they add, and why they need
    the picture re-encoded (finding codes, or the step's own name)."""

    actions: tuple[Action, ...] = ()
    filters: tuple[Filter, ...] = ()
    reencode: tuple[str, ...] = ()

    def __add__(self, other: _Steps) -> _Steps:
        return _Steps(
            self.actions + other.actions, self.filters + other.filters, self.reencode + other.reencode
        )

    def turned_first(self, turn: _Steps) -> _Steps:
        """These steps, then ``turn``'s, whose filters go first: the pixels are turned
        upright before any crop or scale (sizes are as displayed)."""
        return _Steps(self.actions + turn.actions, turn.filters + self.filters, self.reencode + turn.reencode)


@dataclass(frozen=True)
class _Span:
    """How long the output lasts: the length the rules judged (``shown``), and a trim or a
    pad when it must change."""

    shown: float | None
    trim_to: float | None = None
    pad_to: float | None = None
    steps: _Steps = _Steps()

    @property
    def length(self) -> float:
        """The output's length (0.0 when unknown)."""
        return self.trim_to or self.pad_to or self.shown or 0.0


@dataclass(frozen=True)
class _Size:
    """What the size limit asks for: a rate ceiling, a target bit rate, or only a remux."""

    max_rate: int | None
    bit_rate: int | None = None
    remux: bool = False
    steps: _Steps = _Steps()


@dataclass(frozen=True)
class _Decided:
    """Every decision's part, for the plan's last step: encode, remux, rename or copy."""

    steps: _Steps
    width: int
    height: int
    fps: Fraction | None
    span: _Span
    audio: AudioMode
    size: _Size
    #: A header that claims another length than the tracks (a remux writes one from them).
    header_remux: bool
    #: The sound track the probe chose (None: the video has none).
    audio_index: int | None


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


def _clamped_fps(fps: float | None) -> Fraction:
    """The clip's own rate as a fraction, when it is in range; else the preferred one."""
    rate = Fraction(fps or float(PREFERRED_FPS)).limit_denominator(1001)
    return rate if limits.VIDEO_MIN_FPS <= rate <= limits.VIDEO_MAX_FPS else target_fps(float(rate))


def _payload_bytes(info: MediaInfo, length: float) -> float | None:
    """Bytes of the streams kept (first video, first audio) over ``length`` seconds."""
    rates = [info.video[0].bit_rate] + ([info.audio[0].bit_rate] if info.audio else [])
    if any(rate is None for rate in rates):
        return None
    return sum(rate or 0 for rate in rates) * length / 8


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
    info = _readable(report)
    if isinstance(info, str):
        return VideoPlan((), "", unfixable=info)
    stream = info.video[0]
    codes = finding_codes(report)
    steps = _codec_steps(stream)
    # Sizes below are as displayed (rotation applied); a re-encode turns the pixels first.
    geometry, (width, height) = _geometry_steps(report, options, thresholds, codes, stream)
    fps, rate = _rate_steps(stream, codes)
    span = _span(info, codes, options, duration)
    steps += geometry + rate + _pixel_format_steps(stream, codes) + span.steps
    steps = steps.turned_first(_rotation_steps(stream, codes, bool(steps.reencode)))
    even, (width, height) = _even_sides_steps(width, height, bool(steps.reencode))
    steps += even
    header_remux = "Video.HeaderLength" in codes and info.header_duration is not None
    writes_mp4 = (
        bool(steps.reencode)
        or info.container not in limits.VIDEO_CONTAINERS
        or span.trim_to is not None
        or "InvalidFile.Size" in codes
        or header_remux
    )
    audio, sound = _audio_steps(info, options, codes, writes_mp4, span.pad_to)
    size = _size_steps(info, stream, options, codes, span.length, audio)
    audio_index = info.audio[0].index if info.audio else None
    decided = _Decided(
        steps + sound + size.steps, width, height, fps, span, audio, size, header_remux, audio_index
    )
    if decided.steps.reencode:
        return _encode_plan(decided, stream, options)
    return _copied_plan(decided, report, info, codes)


def _readable(report: FileReport) -> MediaInfo | str:
    """The video's facts, or why no fix can start from them."""
    info = report.media
    if isinstance(info, MediaInfo) and info.opened and not info.video:
        return "the file has no video stream"
    unopened = next((f for f in report.findings if f.code == "InvalidFile.Openerror"), None)
    if unopened is not None:
        # Its own words: cut short, a broken index, a still image... (a file that opens but
        # is damaged would fail just the same as a copy).
        return f"{unopened.message.rstrip('.')}; {_NO_SOURCE}"
    if not isinstance(info, MediaInfo) or not info.opened:
        reason = info.error if isinstance(info, MediaInfo) and info.error else "the file cannot be opened"
        return f"{reason}; {_NO_SOURCE}"
    stream = info.video[0]
    if stream.codec is None or stream.width <= 0 or stream.height <= 0:
        return "FFmpeg knows no decoder for its video codec: nothing to convert from"
    if too_large_to_decode(stream.width, stream.height):
        return (
            f"its frames are {stream.width}x{stream.height}, beyond the {MAX_DECODE_SIDE} px a "
            "side preflight decodes (no camera records that; the header is damaged or lies): export "
            "the video again at its real size"
        )
    return info


def _codec_steps(stream: VideoStreamInfo) -> _Steps:
    """A codec the service does not take is transcoded to H.264."""
    if stream.codec in limits.VIDEO_CODECS:
        return _Steps()
    action = Action(
        "transcode",
        f"{stream.codec or 'unknown codec'} -> H.264 (x264, {PIXEL_FORMAT})",
        ("InvalidFile.Format",),
    )
    return _Steps((action,), reencode=("InvalidFile.Format",))


def _geometry_steps(
    report: FileReport,
    options: FixOptions,
    thresholds: FaceThresholds,
    codes: set[str],
    stream: VideoStreamInfo,
) -> tuple[_Steps, tuple[int, int]]:
    """The close-up of ``--reframe``, then the crop or pad of a picture too wide for any
    size, then the scale to a size the service takes; and the size that comes out."""
    width, height = stream.width, stream.height
    steps = _Steps()
    reframed = None
    if options.reframe and "Face.TooSmall" in codes and isinstance(report.faces, VideoFaceScan):
        reframed = reframe_crop(width, height, report.faces, thresholds)
        if reframed is not None:
            step, action, width, height = reframed
            steps += _Steps((action,), (step,), ("Face.TooSmall",))
    if "InvalidFile.Resolution" not in codes and reframed is None:
        return steps, (width, height)
    size = fitted_size(width, height)
    if size is None:
        scan = report.faces if isinstance(report.faces, VideoFaceScan) else None
        step, action, width, height = crop_or_pad(width, height, scan)
        steps += _Steps((action,), (step,), ("InvalidFile.Resolution",))
        size = fitted_size(width, height)
    if size is not None and size != (width, height):
        because = ("InvalidFile.Resolution",) if "InvalidFile.Resolution" in codes else ()
        action = Action("scale", f"{width}x{height} -> {size[0]}x{size[1]}", because)
        steps += _Steps(
            (action,), (("scale", f"{size[0]}:{size[1]}:flags=lanczos"),), ("InvalidFile.Resolution",)
        )
        width, height = size
    return steps, (width, height)


def _rate_steps(stream: VideoStreamInfo, codes: set[str]) -> tuple[Fraction | None, _Steps]:
    """A rate out of range moves into it; a variable or unknown one is made constant.
    None when the rate stays (an encode then keeps the clip's own, clamped)."""
    # The rate the rules judge: the average one.
    source_fps = stream.avg_fps or stream.nominal_fps
    if "InvalidFile.FPS" in codes and source_fps:
        fps = target_fps(source_fps)
        action = Action("fps", f"{source_fps:.3g} -> {float(fps):.5g} fps", ("InvalidFile.FPS",))
        return fps, _Steps((action,), reencode=("InvalidFile.FPS",))
    if "Video.VariableFrameRate" in codes or "Video.FrameRateUnknown" in codes:
        fps = _clamped_fps(source_fps)
        code = "Video.VariableFrameRate" if "Video.VariableFrameRate" in codes else "Video.FrameRateUnknown"
        action = Action("cfr", f"variable -> constant {float(fps):.5g} fps", (code,))
        return fps, _Steps((action,), reencode=(code,))
    return None, _Steps()


def _pixel_format_steps(stream: VideoStreamInfo, codes: set[str]) -> _Steps:
    if "Video.PixelFormat" not in codes:
        return _Steps()
    action = Action("pixel-format", f"{stream.pixel_format} -> {PIXEL_FORMAT}", ("Video.PixelFormat",))
    return _Steps((action,), reencode=("Video.PixelFormat",))


def _span(info: MediaInfo, codes: set[str], options: FixOptions, duration: float | None) -> _Span:
    """The job's length (``duration``), else the service's limits: a trim, or a pad that
    holds the last frame (a pad re-encodes)."""
    # The length the rules judge: the stream's, rounded to the millisecond.
    length = info.stream_length("video")
    shown = round(length, 3) if length is not None else None
    if duration is not None and shown is not None and abs(duration - shown) > 1e-3:
        if duration < shown:
            trim = Action(
                "trim", f"{shown:.2f} s -> {duration:.2f} s (the voice's length)", ("Pair.DurationMismatch",)
            )
            return _Span(shown, trim_to=duration, steps=_Steps((trim,)))
        pad = Action(
            "pad-duration", f"{shown:.2f} s -> {duration:.2f} s, last frame held", ("Pair.DurationMismatch",)
        )
        return _Span(shown, pad_to=duration, steps=_Steps((pad,), reencode=("pad",)))
    if "InvalidFile.Duration" not in codes or shown is None:
        return _Span(shown)
    if options.max_duration_s is not None and shown > options.max_duration_s:
        longest = options.max_duration_s
        trim = Action("trim", f"{shown:.2f} s -> {longest:.0f} s", ("InvalidFile.Duration",))
        return _Span(shown, trim_to=longest, steps=_Steps((trim,)))
    if shown < limits.MIN_DURATION_S:
        shortest = limits.MIN_DURATION_S
        pad = Action(
            "pad-duration", f"{shown:.2f} s -> {shortest:.0f} s, last frame held", ("InvalidFile.Duration",)
        )
        return _Span(shown, pad_to=shortest, steps=_Steps((pad,), reencode=("pad",)))
    return _Span(shown)


def _rotation_steps(stream: VideoStreamInfo, codes: set[str], reencoded: bool) -> _Steps:
    """A rotated picture is turned when asked (Video.Rotated), and whenever it is re-encoded
    anyway (a new stream carries no rotation flag). Its filters go first."""
    if not stream.rotation % 360 or not (reencoded or "Video.Rotated" in codes):
        return _Steps()
    action = Action(
        "rotate",
        f"turned {stream.rotation} degrees into the pixels; rotation flag cleared",
        ("Video.Rotated",) if "Video.Rotated" in codes else (),
    )
    return _Steps((action,), rotate_filters(stream.rotation), ("rotate",))


def _even_sides_steps(width: int, height: int, reencoded: bool) -> tuple[_Steps, tuple[int, int]]:
    """x264 wants even sides: an odd picture that is re-encoded anyway loses a pixel row
    (or column); and the size that comes out."""
    if not reencoded or not (width % 2 or height % 2):
        return _Steps(), (width, height)
    even = (width - width % 2, height - height % 2)
    action = Action("crop", f"{width}x{height} -> {even[0]}x{even[1]} (x264 needs even sides)")
    return _Steps((action,), (("crop", f"{even[0]}:{even[1]}:0:0"),)), even


def _audio_steps(
    info: MediaInfo, options: FixOptions, codes: set[str], writes_mp4: bool, pad_to: float | None
) -> tuple[AudioMode, _Steps]:
    """The video's own sound: copied, dropped (as asked, or too far apart from the
    picture), or re-encoded to AAC when MP4 cannot carry it or it must be lengthened."""
    apart = audio_apart(info) if "Video.AudioOffset" in codes else None
    if info.audio and options.drop_audio:
        return "drop", _Steps((Action("drop-audio", "the video's own sound track dropped, as asked"),))
    if apart is not None:
        # Kept, it would be silence the length of the gap (3000 s of it under 3 s of picture).
        offset, picture = apart
        action = Action(
            "drop-audio",
            f"the sound track starts {abs(offset):.2f} s {'after' if offset > 0 else 'before'} "
            f"the {picture:.2f} s picture: dropped",
            ("Video.AudioOffset",),
        )
        return "drop", _Steps((action,))
    if not info.audio:
        return "none", _Steps()
    if writes_mp4 and (info.audio[0].codec not in MP4_AUDIO_CODECS or pad_to is not None):
        # MP4 cannot carry it (or it must be lengthened): re-encoded, starting where it did.
        return "aac", _Steps(
            (Action("audio-aac", f"sound track {info.audio[0].codec} -> AAC (kept in sync)"),)
        )
    return "copy", _Steps()


def _size_steps(
    info: MediaInfo,
    stream: VideoStreamInfo,
    options: FixOptions,
    codes: set[str],
    length: float,
    audio: AudioMode,
) -> _Size:
    """A rate ceiling keeps an encode under the size limit. It costs x264 about 10% more
    time, so it is set only when the source is dense enough for a re-encode to come near
    the limit. When the file is too big for its streams (padding, extra tracks) a remux is
    enough, and only a source whose pictures alone are too big gets an average-rate encode."""
    audio_rate = 0 if audio in ("drop", "none") else AUDIO_BIT_RATE
    # A job kept long to be sent in parts only has each part to fit.
    budget_s = length if options.max_duration_s is not None else min(length, limits.MAX_DURATION_S)
    ceiling = int(limits.VIDEO_MAX_BYTES * 8 * SIZE_HEADROOM / max(budget_s, 1.0)) - audio_rate
    source_rate = stream.bit_rate or info.bit_rate
    max_rate = ceiling if source_rate is None or source_rate * CRF_GROWTH > ceiling else None
    if "InvalidFile.Size" not in codes:
        return _Size(max_rate)
    payload = _payload_bytes(info, length)
    if payload is not None and payload <= limits.VIDEO_MAX_BYTES * SIZE_HEADROOM:
        action = Action(
            "remux",
            f"{info.size / limits.MIB:.0f} MiB file, {payload / limits.MIB:.0f} MiB of it the "
            "streams: rewritten without the rest",
            ("InvalidFile.Size",),
        )
        return _Size(max_rate, remux=True, steps=_Steps((action,)))
    action = Action(
        "bitrate",
        f"{info.size / limits.MIB:.0f} MiB -> video at {ceiling / 1e6:.1f} Mbit/s to land under "
        f"{limits.VIDEO_MAX_BYTES / limits.MIB:.0f} MiB",
        ("InvalidFile.Size",),
    )
    return _Size(ceiling, ceiling, steps=_Steps((action,), reencode=("InvalidFile.Size",)))


def _encode_plan(decided: _Decided, stream: VideoStreamInfo, options: FixOptions) -> VideoPlan:
    """The picture re-encoded by x264 (the codec named first, when it was not the reason)."""
    actions = list(decided.steps.actions)
    bit_rate = decided.size.bit_rate
    if stream.codec in limits.VIDEO_CODECS and not any(a.name == "transcode" for a in actions):
        quality = f"{bit_rate / 1e6:.1f} Mbit/s" if bit_rate else f"crf {options.crf}"
        actions.insert(
            0, Action("transcode", f"{stream.codec} re-encoded to H.264 (x264 {options.preset}, {quality})")
        )
    source_fps = stream.avg_fps or stream.nominal_fps
    fps = decided.fps or _clamped_fps(source_fps)
    return VideoPlan(
        tuple(actions),
        ".mp4",
        "encode",
        decided.steps.filters,
        decided.width,
        decided.height,
        fps,
        decided.span.trim_to,
        decided.span.pad_to,
        bit_rate,
        decided.size.max_rate,
        decided.audio,
        options.preset,
        options.crf,
        video_index=stream.index,
        audio_index=decided.audio_index,
        keyframes=frozenset(round(t * fps) for t in options.keyframe_times()),
        length=decided.span.length or None,
    )


def _copied_plan(decided: _Decided, report: FileReport, info: MediaInfo, codes: set[str]) -> VideoPlan:
    """The picture's packets kept: remuxed into MP4 (a wrong container, a header's wrong
    length, a trim, a dropped sound track, waste in the file), copied under the right
    extension, or copied unchanged."""
    actions = list(decided.steps.actions)
    shown = decided.span.shown
    if info.container not in limits.VIDEO_CONTAINERS:
        detail = f"{info.container} -> MP4, streams copied (no re-encode)"
        actions.insert(0, Action("remux", detail, ("InvalidFile.Format",)))
        return _remux_plan(decided, actions, info)
    if decided.header_remux and not decided.size.remux and info.header_duration is not None:
        detail = (
            f"header claims {info.header_duration:.2f} s over {shown or 0.0:.2f} s of tracks: streams "
            "copied into a fresh MP4 (no re-encode)"
        )
        actions.insert(0, Action("remux", detail, ("Video.HeaderLength",)))
        return _remux_plan(decided, actions, info)
    if decided.span.trim_to is not None or decided.audio == "drop" or decided.size.remux:
        if not decided.size.remux:
            actions.insert(0, Action("remux", "into MP4, streams copied (no re-encode)"))
        return _remux_plan(decided, actions, info)
    extension = os.path.splitext(report.path)[1].lower()
    if extension not in limits.VIDEO_EXTENSIONS or "Video.ExtensionMismatch" in codes:
        right = ".mp4" if info.container != "avi" else ".avi"
        why = tuple(c for c in ("InvalidFile.Format", "Video.ExtensionMismatch") if c in codes)
        action = Action("rename", f"content is {right[1:].upper()}: copied unchanged as {right}", why)
        return VideoPlan((action,), right, "rename")
    return VideoPlan((), extension)


def _remux_plan(decided: _Decided, actions: list[Action], info: MediaInfo) -> VideoPlan:
    stream = info.video[0]
    return VideoPlan(
        tuple(actions),
        ".mp4",
        "remux",
        trim_to=decided.span.trim_to,
        audio=decided.audio,
        width=decided.width,
        height=decided.height,
        rotation=stream.rotation,
        video_index=stream.index,
        audio_index=decided.audio_index,
        length=decided.span.length or None,
    )
