"""Rules on a file as a whole, one entry point per role: ``video_findings``,
``audio_findings``, ``image_findings``. Probe facts in, findings out; every limit comes
from ``limits``.

Here: can it be opened, is it truncated, its container, codec and extension, its size.
The checks on what it holds are by subject: ``video`` (the picture stream), ``duration``,
``image`` (the picture); the entry points run them in the order the report shows them.

Each message says what was measured, what the service accepts and what would fix it;
``fixable`` says whether ``preflight fix`` can.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from .. import limits
from .._models import AudioStreamInfo, Finding, ImageInfo, MediaInfo, VideoStreamInfo
from .._probe.container import TOO_MANY_PIXELS
from .._probe.sniff import IMAGE_EXT_FORMAT
from .duration import duration_findings, header_length_findings
from .finding import finding
from .image import animation_findings, colour_mode_findings, image_size_findings, orientation_findings
from .video import (
    audio_apart,
    audio_offset_findings,
    frame_rate_findings,
    multiple_video_findings,
    pixel_format_findings,
    resolution_findings,
    rotation_findings,
    variable_rate_findings,
)
from .words import mb

# ``audio_apart`` lives in ``video``; named here too for the importers of its old place
# (``_fix/video.py``) until they import it from there.
__all__ = [
    "audio_apart",
    "audio_findings",
    "image_findings",
    "still_image_as_video",
    "video_findings",
]

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


#: What a file is meant as, for the checks all three roles share.
_Role = Literal["video", "audio", "image"]


def _container_name(demuxer: str | None) -> str:
    if demuxer is None:
        return "unknown"
    return _CONTAINER_NAMES.get(demuxer, demuxer)


# Role -> the most bytes the service takes, and how ``preflight fix`` gets a file under it.
_SIZE_LIMITS: dict[_Role, tuple[int, str]] = {
    "video": (limits.VIDEO_MAX_BYTES, "preflight fix re-encodes it at a bitrate that fits."),
    "audio": (
        limits.AUDIO_MAX_BYTES,
        "preflight fix converts it to a smaller encoding (mono, 16-bit, or MP3).",
    ),
    "image": (limits.IMAGE_MAX_BYTES, "preflight fix re-encodes it smaller."),
}


def _size_findings(role: _Role, size: int) -> list[Finding]:
    limit, how = _SIZE_LIMITS[role]
    if size <= limit:
        return []
    return [
        finding(
            "InvalidFile.Size",
            f"{role.capitalize()} file is {mb(size)} ({size:,} bytes); the service accepts at "
            f"most {mb(limit)} ({limit:,} bytes). {how}",
            fixable=True,
            size=size,
            max=limit,
        )
    ]


# Role -> the extensions the service takes for it, and the code when one names other content.
_EXTENSIONS: dict[_Role, tuple[frozenset[str], str]] = {
    "video": (limits.VIDEO_EXTENSIONS, "Video.ExtensionMismatch"),
    "audio": (limits.AUDIO_EXTENSIONS, "Audio.ExtensionMismatch"),
    "image": (limits.IMAGE_EXTENSIONS, "Image.ExtensionMismatch"),
}


def _format_findings(info: MediaInfo | ImageInfo, role: _Role, refusal: str | None) -> list[Finding]:
    """The content's format (``refusal`` says why the service cannot take it, None when it
    can), then, once the content is acceptable, the file name's extension."""
    ext = Path(info.path).suffix.lower()
    details: dict[str, Any]
    if isinstance(info, ImageInfo):
        content = str(info.format)
        matches_content = IMAGE_EXT_FORMAT.get(ext) == info.format
        details = {"format": info.format}
    else:
        content = _container_name(info.container)
        matches_content = _EXPECTED_DEMUXER.get(ext) == info.container
        details = {"container": info.container}
    if refusal is not None:
        return [finding("InvalidFile.Format", refusal, fixable=True, **details, extension=ext)]
    accepted, mismatch_code = _EXTENSIONS[role]
    if ext not in accepted:
        return [
            finding(
                "InvalidFile.Format",
                f"Extension {ext or '(none)'} is not accepted; the service takes "
                f"{', '.join(sorted(accepted))}. The content is {content}: preflight fix writes "
                "it with the right extension, without re-encoding.",
                fixable=True,
                extension=ext,
                **details,
            )
        ]
    if not matches_content:
        return [
            finding(
                mismatch_code,
                f"Extension {ext} does not match the content ({content}); a server that trusts "
                "the extension may fail to read it. preflight fix gives it the right extension.",
                fixable=True,
                extension=ext,
                **details,
            )
        ]
    return []


def _open_error(kind: str, info: MediaInfo | ImageInfo) -> Finding:
    return finding(
        "InvalidFile.Openerror",
        f"Cannot open the file as {kind}: {info.error}.",
        reason=info.error,
    )


def _truncated(info: MediaInfo) -> list[Finding]:
    if not info.missing_bytes:
        return []
    return [
        finding(
            "InvalidFile.Openerror",
            f"The file is truncated: its index points {info.missing_bytes:,} bytes past "
            f"the end of the file ({info.size:,} bytes). Copy or export it again.",
            size=info.size,
            missing_bytes=info.missing_bytes,
        )
    ]


def _no_video_stream(info: MediaInfo) -> Finding:
    what = "only audio" if info.audio else "no audio or video"
    hint = " Pass it as --audio, or give a video file." if info.audio else ""
    return finding(
        "InvalidFile.Openerror",
        f"The file has no video stream ({_container_name(info.container)} with {what}).{hint}",
        container=info.container,
        audio_streams=len(info.audio),
    )


def _no_audio_stream(info: MediaInfo) -> Finding:
    return finding(
        "InvalidFile.Openerror",
        f"The file has no audio stream ({_container_name(info.container)}"
        f"{' with video only' if info.video else ''}).",
        container=info.container,
        video_streams=len(info.video),
    )


def _opening_findings(info: MediaInfo, role: Literal["video", "audio"]) -> list[Finding]:
    """What every check of a video or audio file starts with: does it open, is it whole,
    does it hold a stream for its role. Without that stream no other rule can run."""
    if not info.opened:
        return [_open_error(role, info)]
    findings = _truncated(info)
    if role == "video" and not info.video:
        findings.append(_no_video_stream(info))
    if role == "audio" and not info.audio:
        findings.append(_no_audio_stream(info))
    return findings


def video_findings(info: MediaInfo) -> list[Finding]:
    """Findings for a file meant as the job's video."""
    findings = _opening_findings(info, "video")
    if not (info.opened and info.video):
        return findings
    stream = info.video[0]
    findings += _video_format_findings(info, stream)
    findings += _size_findings("video", info.size)
    findings += resolution_findings(stream)
    findings += frame_rate_findings(stream)
    duration = info.stream_length("video")
    findings += duration_findings("video", duration, "Video.DurationUnknown")
    findings += header_length_findings(info, duration)
    findings += variable_rate_findings(stream)
    findings += rotation_findings(stream)
    findings += pixel_format_findings(stream)
    findings += audio_offset_findings(info)
    findings += multiple_video_findings(info)
    return findings


def _video_format_findings(info: MediaInfo, stream: VideoStreamInfo) -> list[Finding]:
    """The container (or, in an accepted one, the extension) and the picture's codec."""
    codec_ok = stream.codec in limits.VIDEO_CODECS
    refusal = None
    if info.container not in limits.VIDEO_CONTAINERS:
        how = "remuxes it into MP4 (no re-encode)" if codec_ok else "converts it to H.264 in MP4"
        refusal = (
            f"Container is {_container_name(info.container)}; the service accepts MP4, AVI "
            f"or MOV. preflight fix {how}."
        )
    findings = _format_findings(info, "video", refusal)
    if not codec_ok:
        how = (
            "preflight fix re-encodes it to H.264."
            if stream.codec is not None
            else "FFmpeg knows no decoder for it either, so preflight fix cannot convert it."
        )
        findings.append(
            finding(
                "InvalidFile.Format",
                f"Video codec is {stream.codec or 'unknown'}; the service accepts only H.264 or H.265. {how}",
                fixable=stream.codec is not None,
                codec=stream.codec,
            )
        )
    return findings


def still_image_as_video(info: ImageInfo) -> list[Finding]:
    """A still image given as the video: FFmpeg could show it as one frame, the service won't."""
    return [
        finding(
            "InvalidFile.Openerror",
            f"Cannot open the file as video: it is a still image ({info.format or 'unknown format'}). "
            "Give a video file, or pass the image as --ref.",
            format=info.format,
        )
    ]


def audio_findings(info: MediaInfo) -> list[Finding]:
    """Findings for a file meant as the job's audio."""
    findings = _opening_findings(info, "audio")
    if not (info.opened and info.audio):
        return findings
    stream = info.audio[0]
    if not (stream.sample_rate and stream.channels and stream.sample_format):
        why = (
            "its codec is one FFmpeg does not know, so nothing here can decode it"
            if stream.codec is None
            else "its header gives no usable sample rate, channel count or sample format "
            f"(sample rate {stream.sample_rate}, channels {stream.channels})"
        )
        findings.append(
            finding(
                "InvalidFile.Openerror",
                f"The audio stream ({stream.codec or 'unknown codec'}) cannot be decoded: {why}.",
                codec=stream.codec,
                sample_rate=stream.sample_rate,
                channels=stream.channels,
            )
        )
        return findings
    findings += _audio_format_findings(info, stream)
    findings += _size_findings("audio", info.size)
    findings += duration_findings("audio", info.stream_length("audio"), "Audio.DurationUnknown")
    if len(info.audio) > 1:
        findings.append(
            finding(
                "Audio.MultipleStreams",
                f"The file has {len(info.audio)} audio streams; the service will most likely use the first.",
                fixable=True,
                streams=len(info.audio),
            )
        )
    return findings


def _audio_format_findings(info: MediaInfo, stream: AudioStreamInfo) -> list[Finding]:
    """A video file given as the voice, a format or codec the service cannot read, or
    (when it can) the extension."""
    container = _container_name(info.container)
    if info.video:
        return [
            finding(
                "InvalidFile.Format",
                f"This is a video file ({container}, {stream.codec} audio); "
                "the service wants an audio file: WAV, MP3 or AAC. preflight fix extracts "
                "its audio track.",
                fixable=True,
                container=info.container,
                codec=stream.codec,
                video_streams=len(info.video),
            )
        ]
    accepted_codecs = limits.AUDIO_CONTAINER_CODECS.get(info.container or "")
    if accepted_codecs is None:
        return [
            finding(
                "InvalidFile.Format",
                f"Format is {container} with {stream.codec} audio; the "
                "service accepts WAV, MP3 or AAC (.aac, ADTS). preflight fix converts it "
                "to WAV (16-bit PCM).",
                fixable=True,
                container=info.container,
                codec=stream.codec,
            )
        ]
    if stream.codec not in accepted_codecs:
        return [
            finding(
                "InvalidFile.Format",
                f"{container} file holds {stream.codec}, which the "
                "service cannot read; preflight fix converts it to 16-bit PCM WAV.",
                fixable=True,
                container=info.container,
                codec=stream.codec,
            )
        ]
    return _format_findings(info, "audio", None)


def image_findings(info: ImageInfo, decode_error: str | None = None) -> list[Finding]:
    """Findings for a file meant as the reference image."""
    if not info.opened:
        if info.error and info.error.startswith(TOO_MANY_PIXELS):
            return [
                finding(
                    "InvalidFile.ImageSize",
                    f"The image has too many pixels to open safely ({info.error}); the service "
                    f"accepts at most {limits.IMAGE_MAX_SIDE} px per side.",
                    reason=info.error,
                )
            ]
        return [_open_error("an image", info)]
    if decode_error is not None:
        return [
            finding(
                "InvalidFile.Openerror",
                f"The image header reads as {info.format} {info.width}x{info.height}, but its "
                f"pixels cannot be decoded ({decode_error}); the file is probably truncated.",
                reason=decode_error,
            )
        ]
    refusal = None
    if info.format not in limits.IMAGE_FORMATS:
        refusal = (
            f"Image format is {info.format}; the service accepts JPEG, PNG, BMP or WebP. "
            "preflight fix converts it (PNG when it has transparency, JPEG otherwise)."
        )
    findings = _format_findings(info, "image", refusal)
    findings += _size_findings("image", info.size)
    findings += image_size_findings(info)
    findings += orientation_findings(info)
    findings += animation_findings(info)
    findings += colour_mode_findings(info)
    return findings
