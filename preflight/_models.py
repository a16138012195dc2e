"""Data the engine produces: probe facts, findings and reports.

Probe facts (``MediaInfo`` with its ``VideoStreamInfo``/``AudioStreamInfo``, and
``ImageInfo``) are kept apart from judgements (``Finding``) and from reports that tie the
two to a file and a role.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._probe.faces.scan import FaceScan
    from ._probe.voice import AudioAnalysis

Role = Literal["video", "audio", "ref"]
ROLES: tuple[Role, ...] = ("video", "audio", "ref")


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """One problem, with the service's own code when the service would reject the file."""

    code: str
    severity: Severity
    message: str
    fixable: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "fixable": self.fixable,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class VideoStreamInfo:
    index: int
    codec: str | None
    profile: str | None
    pixel_format: str | None
    #: Size as stored in the bitstream.
    coded_width: int
    coded_height: int
    #: Size as displayed, rotation applied.
    width: int
    height: int
    #: Display rotation in FFmpeg's convention (ffprobe's ``rotation``: degrees
    #: counter-clockwise), normalised to 0, 90, 180 or 270.
    rotation: int
    avg_fps: float | None
    #: The container's nominal rate (FFmpeg's ``r_frame_rate``).
    nominal_fps: float | None
    variable_frame_rate: bool | None
    frame_count: int | None
    duration: float | None
    start_time: float | None
    bit_rate: int | None


@dataclass(frozen=True)
class AudioStreamInfo:
    index: int
    codec: str | None
    profile: str | None
    sample_rate: int | None
    channels: int | None
    channel_layout: str | None
    sample_format: str | None
    #: Bits per sample for PCM; None for lossy codecs, where it has no meaning.
    bit_depth: int | None
    duration: float | None
    start_time: float | None
    bit_rate: int | None


@dataclass(frozen=True)
class MediaInfo:
    """Container facts of an audio or video file, read without decoding."""

    path: str
    size: int
    #: FFmpeg demuxer name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"avi"``, ``"wav"``.
    container: str | None
    duration: float | None
    start_time: float | None
    bit_rate: int | None
    video: tuple[VideoStreamInfo, ...] = ()
    audio: tuple[AudioStreamInfo, ...] = ()
    #: Cover art and other still pictures carried as "video" streams.
    attached_pictures: int = 0
    #: Bytes the container's index points to beyond the end of the file (truncation).
    missing_bytes: int = 0
    #: Seconds an MP4/MOV's movie header (``mvhd``) claims, whatever its tracks hold (FFmpeg
    #: 8 goes by the tracks, older readers by this); None when not MP4/MOV or not stated.
    header_duration: float | None = None
    #: Why the file could not be opened; None when it could.
    error: str | None = None

    @property
    def opened(self) -> bool:
        return self.error is None

    def stream_length(self, kind: Literal["video", "audio"]) -> float | None:
        """The length (s) the rules judge for the file as ``kind``: its first stream of
        that kind's own, else the container's; None when it holds no such stream."""
        streams = self.video if kind == "video" else self.audio
        if not streams:
            return None
        own = streams[0].duration
        return own if own is not None else self.duration

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["video"] = list(data["video"])
        data["audio"] = list(data["audio"])
        return {"kind": "media", **data}


@dataclass(frozen=True)
class ImageInfo:
    """Header facts of an image, read without decoding the pixels."""

    path: str
    size: int
    #: Pillow format name, e.g. ``"JPEG"``, ``"PNG"``.
    format: str | None
    mode: str | None
    #: Size as stored.
    stored_width: int
    stored_height: int
    #: EXIF orientation tag (1-8), None when absent.
    orientation: int | None
    #: Size as displayed, EXIF orientation applied.
    width: int
    height: int
    frames: int = 1
    error: str | None = None

    @property
    def opened(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "image", **dataclasses.asdict(self)}


Probe = MediaInfo | ImageInfo


@dataclass(frozen=True)
class FileReport:
    """Everything ``check`` learned about one file in one role."""

    path: str
    role: Role
    findings: tuple[Finding, ...]
    media: Probe | None = None
    #: The face scan (a ``VideoFaceScan`` or ``ImageFaceScan``); None when faces were not
    #: analysed (audio, ``fast``, or a file that cannot be read).
    faces: FaceScan | None = None
    #: What the voice sounds like (an ``AudioAnalysis``); None when not analysed.
    speech: AudioAnalysis | None = None

    @property
    def ok(self) -> bool:
        """True when the service would accept the file (no error finding)."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "role": self.role,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "media": self.media.to_dict() if self.media is not None else None,
            "faces": self.faces.to_dict() if self.faces is not None else None,
            "speech": self.speech.to_dict() if self.speech is not None else None,
        }


@dataclass(frozen=True)
class JobReport:
    """Checks across the files of one job (video + audio + reference image)."""

    findings: tuple[Finding, ...] = ()
    #: The paths of the job's files (video, audio, reference image, as given), whose own
    #: findings count towards the job's verdict too.
    files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"files": list(self.files), "findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True)
class CheckReport:
    files: tuple[FileReport, ...]
    job: JobReport | None = None

    SCHEMA = "preflight.check/1"

    def all_findings(self) -> list[Finding]:
        found = [f for report in self.files for f in report.findings]
        if self.job is not None:
            found.extend(self.job.findings)
        return found

    @property
    def errors(self) -> int:
        return sum(1 for f in self.all_findings() if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.all_findings() if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "files": [r.to_dict() for r in self.files],
            "job": self.job.to_dict() if self.job is not None else None,
            "summary": {
                "files": len(self.files),
                "errors": self.errors,
                "warnings": self.warnings,
            },
        }
