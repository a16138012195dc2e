"""Rules: probe facts in, findings out. Every limit comes from ``limits``.

Each message says what was measured, what the service accepts and what would fix it;
``fixable`` says whether ``preflight fix`` can.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import limits
from .._models import Finding, ImageInfo, MediaInfo
from .._probe.container import (
    MAX_DECODE_PIXELS,
    MAX_DECODE_SIDE,
    TOO_MANY_PIXELS,
    too_large_to_decode,
    too_many_pixels,
)
from ..codes import CODES

_CONTAINER_NAMES = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4/MOV/M4A",
    "avi": "AVI",
    "matroska,webm": "Matroska/WebM",
    "wav": "WAV",
    "mp3": "MP3",
    "aac": "AAC (ADTS)",
    "flac": "FLAC",
    "ogg": "Ogg",
    "flv": "FLV",
    "mpegts": "MPEG-TS",
    "asf": "ASF/WMV",
}
# Extension -> the FFmpeg demuxer that content with that extension should have.
_EXPECTED_DEMUXER = {
    ".mp4": "mov,mp4,m4a,3gp,3g2,mj2",
    ".mov": "mov,mp4,m4a,3gp,3g2,mj2",
    ".avi": "avi",
    ".wav": "wav",
    ".mp3": "mp3",
    ".aac": "aac",
}
_IMAGE_EXT_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}
_WELL_SUPPORTED_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p", "nv12"})
_EXIF_ORIENTATION_MEANING = {
    2: "mirrored",
    3: "rotated 180 degrees",
    4: "flipped vertically",
    5: "mirrored and rotated 90 degrees",
    6: "rotated 90 degrees clockwise",
    7: "mirrored and rotated 270 degrees",
    8: "rotated 90 degrees counter-clockwise",
}


def _finding(code: str, message: str, fixable: bool, **details: Any) -> Finding:
    return Finding(code, CODES[code].severity, message, fixable, details)


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} million pixels"


def _mb(size: int) -> str:
    return f"{size / limits.MIB:.1f} MB"


def _container_name(demuxer: str | None) -> str:
    if demuxer is None:
        return "unknown"
    return _CONTAINER_NAMES.get(demuxer, demuxer)


def _number_text(value: float) -> str:
    """Up to three decimals, no trailing zeros: 14.985 stays 14.985, 25.0 reads 25."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _seconds_text(value: float) -> str:
    return _number_text(value) + " s"


def _duration_findings(kind: str, duration: float | None, unknown_code: str) -> list[Finding]:
    if duration is None:
        return [
            _finding(
                unknown_code,
                f"The {kind} does not state its duration, so the 2-120 s limit cannot be "
                "checked; re-encoding writes a proper header.",
                True,
            )
        ]
    shown = round(duration, 3)
    if shown < limits.MIN_DURATION_S:
        return [
            _finding(
                "InvalidFile.Duration",
                f"{kind.capitalize()} lasts {_seconds_text(shown)}; the service accepts "
                f"{limits.MIN_DURATION_S:g}-{limits.MAX_DURATION_S:g} s. "
                f"preflight fix pads it to {limits.MIN_DURATION_S:g} s.",
                True,
                duration=shown,
                min=limits.MIN_DURATION_S,
                max=limits.MAX_DURATION_S,
            )
        ]
    if shown > limits.MAX_DURATION_S:
        return [
            _finding(
                "InvalidFile.Duration",
                f"{kind.capitalize()} lasts {_seconds_text(shown)}; the service accepts "
                f"{limits.MIN_DURATION_S:g}-{limits.MAX_DURATION_S:g} s. "
                f"preflight fix trims it to {limits.MAX_DURATION_S:g} s "
                "(prep-and-retalk --split sends long files in parts).",
                True,
                duration=shown,
                min=limits.MIN_DURATION_S,
                max=limits.MAX_DURATION_S,
            )
        ]
    return []


#: How far an MP4's movie header may state another length than its longest track before
#: it is a lie rather than rounding. In a real file they differ by an edit list's start or a
#: last frame (at most 64 ms over the shared media, the fixtures and the corpus); a fixed
#: second, not a share, because the finding matters only near the 2 and 120 s limits.
HEADER_LENGTH_SLACK_S = 1.0


def _outside_limits(seconds: float) -> bool:
    shown = round(seconds, 3)
    return not limits.MIN_DURATION_S <= shown <= limits.MAX_DURATION_S


def _header_length(info: MediaInfo, duration: float | None) -> list[Finding]:
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
        _finding(
            "Video.HeaderLength",
            f"The MP4 header claims {_seconds_text(claimed)}, but the tracks hold "
            f"{_seconds_text(round(duration, 3))} of video. A reader that trusts the header "
            "(ffprobe 5.1 does; the service's FFmpeg version is unknown) would answer "
            f"InvalidFile.Duration ({limits.MIN_DURATION_S:g}-{limits.MAX_DURATION_S:g} s). "
            "preflight fix copies the streams into a fresh MP4 whose header states their length.",
            True,
            header_duration=round(claimed, 3),
            duration=round(duration, 3),
            min=limits.MIN_DURATION_S,
            max=limits.MAX_DURATION_S,
        )
    ]


def _size_finding(kind: str, size: int, limit: int, how: str) -> list[Finding]:
    if size <= limit:
        return []
    return [
        _finding(
            "InvalidFile.Size",
            f"{kind.capitalize()} file is {_mb(size)} ({size:,} bytes); the service accepts at "
            f"most {_mb(limit)} ({limit:,} bytes). {how}",
            True,
            size=size,
            max=limit,
        )
    ]


def _extension_findings(
    ext: str,
    accepted: frozenset[str],
    matches_content: bool,
    content: str,
    mismatch_code: str,
    **details: Any,
) -> list[Finding]:
    """Findings about the file name's extension, once the content itself is acceptable."""
    if ext not in accepted:
        return [
            _finding(
                "InvalidFile.Format",
                f"Extension {ext or '(none)'} is not accepted; the service takes "
                f"{', '.join(sorted(accepted))}. The content is {content}: preflight fix writes "
                "it with the right extension, without re-encoding.",
                True,
                extension=ext,
                **details,
            )
        ]
    if not matches_content:
        return [
            _finding(
                mismatch_code,
                f"Extension {ext} does not match the content ({content}); a server that trusts "
                "the extension may fail to read it. preflight fix gives it the right extension.",
                True,
                extension=ext,
                **details,
            )
        ]
    return []


def _open_error(kind: str, info: MediaInfo | ImageInfo) -> Finding:
    return _finding(
        "InvalidFile.Openerror",
        f"Cannot open the file as {kind}: {info.error}.",
        False,
        reason=info.error,
    )


def _truncated(info: MediaInfo) -> list[Finding]:
    if not info.missing_bytes:
        return []
    return [
        _finding(
            "InvalidFile.Openerror",
            f"The file is truncated: its index points {info.missing_bytes:,} bytes past "
            f"the end of the file ({info.size:,} bytes). Copy or export it again.",
            False,
            size=info.size,
            missing_bytes=info.missing_bytes,
        )
    ]


def video_findings(info: MediaInfo) -> list[Finding]:
    """Findings for a file meant as the job's video."""
    if not info.opened:
        return [_open_error("video", info)]
    findings = _truncated(info)
    if not info.video:
        what = "only audio" if info.audio else "no audio or video"
        hint = " Pass it as --audio, or give a video file." if info.audio else ""
        findings.append(
            _finding(
                "InvalidFile.Openerror",
                f"The file has no video stream ({_container_name(info.container)} with {what}).{hint}",
                False,
                container=info.container,
                audio_streams=len(info.audio),
            )
        )
        return findings

    stream = info.video[0]
    ext = Path(info.path).suffix.lower()
    codec_ok = stream.codec in limits.VIDEO_CODECS
    if info.container not in limits.VIDEO_CONTAINERS:
        how = "remuxes it into MP4 (no re-encode)" if codec_ok else "converts it to H.264 in MP4"
        findings.append(
            _finding(
                "InvalidFile.Format",
                f"Container is {_container_name(info.container)}; the service accepts MP4, AVI "
                f"or MOV. preflight fix {how}.",
                True,
                container=info.container,
                extension=ext,
            )
        )
    else:
        findings += _extension_findings(
            ext,
            limits.VIDEO_EXTENSIONS,
            _EXPECTED_DEMUXER.get(ext) == info.container,
            _container_name(info.container),
            "Video.ExtensionMismatch",
            container=info.container,
        )
    if not codec_ok:
        how = (
            "preflight fix re-encodes it to H.264."
            if stream.codec is not None
            else "FFmpeg knows no decoder for it either, so preflight fix cannot convert it."
        )
        findings.append(
            _finding(
                "InvalidFile.Format",
                f"Video codec is {stream.codec or 'unknown'}; the service accepts only H.264 or H.265. {how}",
                stream.codec is not None,
                codec=stream.codec,
            )
        )

    findings += _size_finding(
        "video",
        info.size,
        limits.VIDEO_MAX_BYTES,
        "preflight fix re-encodes it at a bitrate that fits.",
    )

    width, height = stream.width, stream.height
    low, high = limits.VIDEO_MIN_SIDE, limits.VIDEO_MAX_SIDE
    # The size of a stream no decoder knows is unknown (0x0), not wrong.
    if stream.codec is not None and not (low <= width <= high and low <= height <= high):
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
        findings.append(
            _finding(
                "InvalidFile.Resolution",
                f"Frame is {width}x{height} as displayed; each side must be {low}-{high} px: {how}.",
                width > 0 and height > 0 and not huge,
                width=width,
                height=height,
                min=low,
                max=high,
            )
        )

    fps = stream.avg_fps
    if fps is None:
        findings.append(
            _finding(
                "Video.FrameRateUnknown",
                "The container does not state a frame rate, so the 15-60 fps limit cannot be "
                "checked; re-encoding at a constant rate fixes it.",
                True,
            )
        )
    elif not (
        limits.VIDEO_MIN_FPS - limits.FPS_TOLERANCE <= fps <= limits.VIDEO_MAX_FPS + limits.FPS_TOLERANCE
    ):
        target = "25" if fps < limits.VIDEO_MIN_FPS else f"{limits.VIDEO_MAX_FPS:g}"
        findings.append(
            _finding(
                "InvalidFile.FPS",
                f"Frame rate is {_number_text(fps)} fps; the service accepts "
                f"{limits.VIDEO_MIN_FPS:g}-{limits.VIDEO_MAX_FPS:g} fps. preflight fix "
                f"resamples it to {target} fps.",
                True,
                fps=round(fps, 3),
                min=limits.VIDEO_MIN_FPS,
                max=limits.VIDEO_MAX_FPS,
            )
        )

    duration = stream.duration if stream.duration is not None else info.duration
    findings += _duration_findings("video", duration, "Video.DurationUnknown")
    findings += _header_length(info, duration)

    if stream.variable_frame_rate:
        findings.append(
            _finding(
                "Video.VariableFrameRate",
                f"Frame intervals vary (average {_number_text(fps) + ' fps' if fps else 'rate unknown'}); "
                "lip-sync models assume a "
                "constant rate and lips can drift from the voice. preflight fix converts it "
                "to a constant rate.",
                True,
                avg_fps=None if fps is None else round(fps, 3),
                nominal_fps=None if stream.nominal_fps is None else round(stream.nominal_fps, 3),
            )
        )
    if stream.rotation:
        findings.append(
            _finding(
                "Video.Rotated",
                f"Stored as {stream.coded_width}x{stream.coded_height} with a {stream.rotation} "
                f"degree rotation flag (shown as {width}x{height}); a server that ignores the "
                "flag sees the face sideways. preflight fix bakes the rotation into the pixels.",
                True,
                rotation=stream.rotation,
                coded_width=stream.coded_width,
                coded_height=stream.coded_height,
            )
        )
    if codec_ok and stream.pixel_format not in _WELL_SUPPORTED_PIXEL_FORMATS:
        findings.append(
            _finding(
                "Video.PixelFormat",
                f"Pixel format is {stream.pixel_format or 'unknown'} ({stream.profile or 'unknown'} "
                "profile); many decoders accept only 8-bit 4:2:0 (yuv420p). preflight fix "
                "re-encodes it as yuv420p.",
                True,
                pixel_format=stream.pixel_format,
                profile=stream.profile,
            )
        )
    apart = audio_apart(info)
    if apart is not None:
        offset, length = apart
        shown = round(offset, 2)
        if shown > 0:
            when = f"starts {shown:.2f} s after the picture begins"
        elif shown < 0:
            when = f"starts {-shown:.2f} s before the picture begins"
        else:  # with the picture, but no sound in it ("-0.00 s before" said nothing)
            when = "starts as the picture begins but holds no sound"
        findings.append(
            _finding(
                "Video.AudioOffset",
                f"The video's own sound track {when}, and the picture "
                f"lasts {length:.2f} s: the sound is of no use to it"
                + (f", and the file claims to last {info.duration:.0f} s" if info.duration else "")
                + ". preflight fix drops the sound track (the service puts the voice in its place).",
                True,
                offset=round(offset, 3),
                video_duration=round(length, 3),
            )
        )
    if len(info.video) > 1:
        findings.append(
            _finding(
                "Video.MultipleStreams",
                f"The file has {len(info.video)} video streams; the service will most likely use the first.",
                True,
                streams=len(info.video),
            )
        )
    return findings


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


def still_image_as_video(info: ImageInfo) -> list[Finding]:
    """A still image given as the video: FFmpeg could show it as one frame, the service won't."""
    return [
        _finding(
            "InvalidFile.Openerror",
            f"Cannot open the file as video: it is a still image ({info.format or 'unknown format'}). "
            "Give a video file, or pass the image as --ref.",
            False,
            format=info.format,
        )
    ]


def audio_findings(info: MediaInfo) -> list[Finding]:
    """Findings for a file meant as the job's audio."""
    if not info.opened:
        return [_open_error("audio", info)]
    findings = _truncated(info)
    if not info.audio:
        findings.append(
            _finding(
                "InvalidFile.Openerror",
                f"The file has no audio stream ({_container_name(info.container)}"
                f"{' with video only' if info.video else ''}).",
                False,
                container=info.container,
                video_streams=len(info.video),
            )
        )
        return findings

    stream = info.audio[0]
    ext = Path(info.path).suffix.lower()
    if not (stream.sample_rate and stream.channels and stream.sample_format):
        why = (
            "its codec is one FFmpeg does not know, so nothing here can decode it"
            if stream.codec is None
            else "its header gives no usable sample rate, channel count or sample format "
            f"(sample rate {stream.sample_rate}, channels {stream.channels})"
        )
        findings.append(
            _finding(
                "InvalidFile.Openerror",
                f"The audio stream ({stream.codec or 'unknown codec'}) cannot be decoded: {why}.",
                False,
                codec=stream.codec,
                sample_rate=stream.sample_rate,
                channels=stream.channels,
            )
        )
        return findings
    if info.video:
        findings.append(
            _finding(
                "InvalidFile.Format",
                f"This is a video file ({_container_name(info.container)}, {stream.codec} audio); "
                "the service wants an audio file: WAV, MP3 or AAC. preflight fix extracts "
                "its audio track.",
                True,
                container=info.container,
                codec=stream.codec,
                video_streams=len(info.video),
            )
        )
    else:
        accepted_codecs = limits.AUDIO_CONTAINER_CODECS.get(info.container or "")
        if accepted_codecs is None:
            findings.append(
                _finding(
                    "InvalidFile.Format",
                    f"Format is {_container_name(info.container)} with {stream.codec} audio; the "
                    "service accepts WAV, MP3 or AAC (.aac, ADTS). preflight fix converts it "
                    "to WAV (16-bit PCM).",
                    True,
                    container=info.container,
                    codec=stream.codec,
                )
            )
        elif stream.codec not in accepted_codecs:
            findings.append(
                _finding(
                    "InvalidFile.Format",
                    f"{_container_name(info.container)} file holds {stream.codec}, which the "
                    "service cannot read; preflight fix converts it to 16-bit PCM WAV.",
                    True,
                    container=info.container,
                    codec=stream.codec,
                )
            )
        else:
            findings += _extension_findings(
                ext,
                limits.AUDIO_EXTENSIONS,
                _EXPECTED_DEMUXER.get(ext) == info.container,
                _container_name(info.container),
                "Audio.ExtensionMismatch",
                container=info.container,
            )

    findings += _size_finding(
        "audio",
        info.size,
        limits.AUDIO_MAX_BYTES,
        "preflight fix converts it to a smaller encoding (mono, 16-bit, or MP3).",
    )
    duration = stream.duration if stream.duration is not None else info.duration
    findings += _duration_findings("audio", duration, "Audio.DurationUnknown")
    if len(info.audio) > 1:
        findings.append(
            _finding(
                "Audio.MultipleStreams",
                f"The file has {len(info.audio)} audio streams; the service will most likely use the first.",
                True,
                streams=len(info.audio),
            )
        )
    return findings


def image_findings(info: ImageInfo, decode_error: str | None = None) -> list[Finding]:
    """Findings for a file meant as the reference image."""
    if not info.opened:
        if info.error and info.error.startswith(TOO_MANY_PIXELS):
            return [
                _finding(
                    "InvalidFile.ImageSize",
                    f"The image has too many pixels to open safely ({info.error}); the service "
                    f"accepts at most {limits.IMAGE_MAX_SIDE} px per side.",
                    False,
                    reason=info.error,
                )
            ]
        return [_open_error("an image", info)]
    if decode_error is not None:
        return [
            _finding(
                "InvalidFile.Openerror",
                f"The image header reads as {info.format} {info.width}x{info.height}, but its "
                f"pixels cannot be decoded ({decode_error}); the file is probably truncated.",
                False,
                reason=decode_error,
            )
        ]

    findings: list[Finding] = []
    ext = Path(info.path).suffix.lower()
    if info.format not in limits.IMAGE_FORMATS:
        findings.append(
            _finding(
                "InvalidFile.Format",
                f"Image format is {info.format}; the service accepts JPEG, PNG, BMP or WebP. "
                "preflight fix converts it (PNG when it has transparency, JPEG otherwise).",
                True,
                format=info.format,
                extension=ext,
            )
        )
    else:
        findings += _extension_findings(
            ext,
            limits.IMAGE_EXTENSIONS,
            _IMAGE_EXT_FORMAT.get(ext) == info.format,
            str(info.format),
            "Image.ExtensionMismatch",
            format=info.format,
        )

    findings += _size_finding(
        "image", info.size, limits.IMAGE_MAX_BYTES, "preflight fix re-encodes it smaller."
    )

    longest, shortest = max(info.width, info.height), min(info.width, info.height)
    aspect = longest / shortest if shortest else float("inf")
    problems = []
    # Beyond the pixels preflight decodes, the fixer cannot downscale it either.
    undecodable = too_many_pixels(info.width, info.height)
    if longest > limits.IMAGE_MAX_SIDE:
        how = (
            f"{_megapixels(info.width * info.height)}, more than the {_megapixels(MAX_DECODE_PIXELS)} "
            "preflight decodes: scale it down in an image editor"
            if undecodable
            else "preflight fix downscales it"
        )
        problems.append(f"its longest side is {longest} px (at most {limits.IMAGE_MAX_SIDE}; {how})")
    if aspect > limits.IMAGE_MAX_ASPECT:
        problems.append(
            f"its aspect ratio is {aspect:.2f} (at most {limits.IMAGE_MAX_ASPECT:g}; "
            "preflight fix crops around the face)"
        )
    if problems:
        findings.append(
            _finding(
                "InvalidFile.ImageSize",
                f"Image is {info.width}x{info.height}: " + " and ".join(problems) + ".",
                shortest > 0 and not undecodable,
                width=info.width,
                height=info.height,
                aspect=round(aspect, 3) if shortest else None,
                max_side=limits.IMAGE_MAX_SIDE,
                max_aspect=limits.IMAGE_MAX_ASPECT,
            )
        )

    if info.orientation is not None and info.orientation != 1:
        findings.append(
            _finding(
                "Image.Rotated",
                f"EXIF orientation {info.orientation} ({_EXIF_ORIENTATION_MEANING[info.orientation]}): "
                f"stored {info.stored_width}x{info.stored_height}, shown {info.width}x{info.height}. "
                "A server that ignores the tag sees the face turned; preflight fix applies it.",
                True,
                orientation=info.orientation,
            )
        )
    if info.frames > 1:
        findings.append(
            _finding(
                "Image.Animated",
                f"The image is animated ({info.frames} frames); only one can be the reference. "
                "preflight fix keeps the first frame.",
                True,
                frames=info.frames,
            )
        )
    if info.mode not in (None, "RGB", "RGBA", "L", "LA", "P", "1"):
        findings.append(
            _finding(
                "Image.ColorMode",
                f"Colour mode is {info.mode}; face detectors expect 8-bit RGB and may misread it. "
                "preflight fix converts it to RGB.",
                True,
                mode=info.mode,
            )
        )
    return findings
