"""Rules on a video's picture stream: frame size, frame rate, rotation, pixel format, its
own sound track's timing and extra streams.

Each check takes the probe's facts and gives its findings; ``container.video_findings``
runs them in the order the report shows them.
"""

from __future__ import annotations

from .. import limits
from .._models import Finding, MediaInfo, VideoStreamInfo
from .._probe.container import MAX_DECODE_SIDE, too_large_to_decode
from .finding import finding
from .words import number

_WELL_SUPPORTED_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p", "nv12"})


def resolution_findings(stream: VideoStreamInfo) -> list[Finding]:
    """``InvalidFile.Resolution``: a side of the shown frame outside the service's range."""
    width, height = stream.width, stream.height
    low, high = limits.VIDEO_MIN_SIDE, limits.VIDEO_MAX_SIDE
    # The size of a stream no decoder knows is unknown (0x0), not wrong.
    if stream.codec is None or (low <= width <= high and low <= height <= high):
        return []
    aspect = max(width, height) / max(1, min(width, height))
    huge = too_large_to_decode(width, height)
    if huge:
        how = (
            f"no camera records more than {MAX_DECODE_SIDE} px a side, so the header is "
            "damaged or lies, and preflight does not decode it; export the video again"
        )
    elif aspect > high / low:
        how = (
            f"its aspect ratio {aspect:.2f} exceeds {high / low:.1f}, so no scale fits: "
            "preflight fix crops around the face (or pads)"
        )
    else:
        how = "preflight fix scales it into range keeping the aspect ratio"
    return [
        finding(
            "InvalidFile.Resolution",
            f"Frame is {width}x{height} as displayed; each side must be {low}-{high} px: {how}.",
            fixable=width > 0 and height > 0 and not huge,
            width=width,
            height=height,
            min=low,
            max=high,
        )
    ]


def frame_rate_findings(stream: VideoStreamInfo) -> list[Finding]:
    """The frame rate: unknown, or outside the service's range."""
    fps = stream.avg_fps
    if fps is None:
        return [
            finding(
                "Video.FrameRateUnknown",
                "The container does not state a frame rate, so the 15-60 fps limit cannot be "
                "checked; re-encoding at a constant rate fixes it.",
                fixable=True,
            )
        ]
    if limits.VIDEO_MIN_FPS - limits.FPS_TOLERANCE <= fps <= limits.VIDEO_MAX_FPS + limits.FPS_TOLERANCE:
        return []
    target = "25" if fps < limits.VIDEO_MIN_FPS else f"{limits.VIDEO_MAX_FPS:g}"
    return [
        finding(
            "InvalidFile.FPS",
            f"Frame rate is {number(fps)} fps; the service accepts "
            f"{limits.VIDEO_MIN_FPS:g}-{limits.VIDEO_MAX_FPS:g} fps. preflight fix "
            f"resamples it to {target} fps.",
            fixable=True,
            fps=round(fps, 3),
            min=limits.VIDEO_MIN_FPS,
            max=limits.VIDEO_MAX_FPS,
        )
    ]


def variable_rate_findings(stream: VideoStreamInfo) -> list[Finding]:
    """``Video.VariableFrameRate``: frame intervals that vary."""
    if not stream.variable_frame_rate:
        return []
    fps = stream.avg_fps
    return [
        finding(
            "Video.VariableFrameRate",
            f"Frame intervals vary (average {number(fps) + ' fps' if fps else 'rate unknown'}); "
            "lip-sync models assume a "
            "constant rate and lips can drift from the voice. preflight fix converts it "
            "to a constant rate.",
            fixable=True,
            avg_fps=None if fps is None else round(fps, 3),
            nominal_fps=None if stream.nominal_fps is None else round(stream.nominal_fps, 3),
        )
    ]


def rotation_findings(stream: VideoStreamInfo) -> list[Finding]:
    """``Video.Rotated``: pixels stored sideways behind a rotation flag."""
    if not stream.rotation:
        return []
    return [
        finding(
            "Video.Rotated",
            f"Stored as {stream.coded_width}x{stream.coded_height} with a {stream.rotation} "
            f"degree rotation flag (shown as {stream.width}x{stream.height}); a server that ignores the "
            "flag sees the face sideways. preflight fix bakes the rotation into the pixels.",
            fixable=True,
            rotation=stream.rotation,
            coded_width=stream.coded_width,
            coded_height=stream.coded_height,
        )
    ]


def pixel_format_findings(stream: VideoStreamInfo) -> list[Finding]:
    """``Video.PixelFormat``: an accepted codec in a pixel format many decoders refuse."""
    if stream.codec not in limits.VIDEO_CODECS or stream.pixel_format in _WELL_SUPPORTED_PIXEL_FORMATS:
        return []
    return [
        finding(
            "Video.PixelFormat",
            f"Pixel format is {stream.pixel_format or 'unknown'} ({stream.profile or 'unknown'} "
            "profile); many decoders accept only 8-bit 4:2:0 (yuv420p). preflight fix "
            "re-encodes it as yuv420p.",
            fixable=True,
            pixel_format=stream.pixel_format,
            profile=stream.profile,
        )
    ]


def audio_apart(info: MediaInfo) -> tuple[float, float] | None:
    """(Start of the first sound track against the first picture's, the picture's length),
    in seconds, when the sound is of no use to the picture: it starts at or after the
    picture's end, ends before the picture begins, or starts a whole picture's length or
    more before it (kept, the picture would wait that long, held or missing). None when
    they overlap closer or the picture's length is unknown (the container's own length
    counts the gap, so only the stream's is trusted)."""
    if not info.video or not info.audio:
        return None
    video, audio = info.video[0], info.audio[0]
    if not video.duration or video.duration <= 0:
        return None
    offset = (audio.start_time or 0.0) - (video.start_time or 0.0)
    ends_before = audio.duration is not None and offset + audio.duration <= 0
    return (offset, video.duration) if abs(offset) >= video.duration or ends_before else None


def audio_offset_findings(info: MediaInfo) -> list[Finding]:
    """``Video.AudioOffset``: the video's own sound plays at no moment of its picture."""
    apart = audio_apart(info)
    if apart is None:
        return []
    offset, length = apart
    shown = round(offset, 2)
    if shown > 0:
        when = f"starts {shown:.2f} s after the picture begins"
    elif shown < 0:
        when = f"starts {-shown:.2f} s before the picture begins"
    else:  # with the picture, but no sound in it ("-0.00 s before" said nothing)
        when = "starts as the picture begins but holds no sound"
    return [
        finding(
            "Video.AudioOffset",
            f"The video's own sound track {when}, and the picture "
            f"lasts {length:.2f} s: the sound is of no use to it"
            + (f", and the file claims to last {info.duration:.0f} s" if info.duration else "")
            + ". preflight fix drops the sound track (the service puts the voice in its place).",
            fixable=True,
            offset=round(offset, 3),
            video_duration=round(length, 3),
        )
    ]


def multiple_video_findings(info: MediaInfo) -> list[Finding]:
    """``Video.MultipleStreams``: the service will most likely take the first."""
    if len(info.video) <= 1:
        return []
    return [
        finding(
            "Video.MultipleStreams",
            f"The file has {len(info.video)} video streams; the service will most likely use the first.",
            fixable=True,
            streams=len(info.video),
        )
    ]
