"""preflight: predict what the VideoRetalk service would reject, before you pay for it.

    >>> from preflight import check_paths
    >>> report = check_paths(video="talk.mp4", audio="voice.wav")
    >>> report.ok, [f.code for f in report.all_findings()]

Bad media never raises: every problem is a ``Finding`` with the service's own error code
(``InvalidFile.*``) or an advice code (``Video.*``, ``Audio.*``, ``Image.*``...).
Exceptions (``PreflightError``) are for callers' mistakes, such as a missing path.
"""

from __future__ import annotations

from . import limits
from ._check import (
    CheckOptions,
    check_audio,
    check_file,
    check_image,
    check_paths,
    check_video,
    collect_files,
)
from ._exceptions import PreflightError, UsageError
from ._models import (
    AudioStreamInfo,
    CheckReport,
    FileReport,
    Finding,
    ImageInfo,
    JobReport,
    MediaInfo,
    Role,
    Severity,
    VideoStreamInfo,
)
from ._probe import probe, probe_image, probe_media
from ._sniff import guess_role
from .codes import CODES

__version__ = "0.1.0"

__all__ = [
    "CODES",
    "AudioStreamInfo",
    "CheckOptions",
    "CheckReport",
    "FileReport",
    "Finding",
    "ImageInfo",
    "JobReport",
    "MediaInfo",
    "PreflightError",
    "Role",
    "Severity",
    "UsageError",
    "VideoStreamInfo",
    "__version__",
    "check_audio",
    "check_file",
    "check_image",
    "check_paths",
    "check_video",
    "collect_files",
    "guess_role",
    "limits",
    "probe",
    "probe_image",
    "probe_media",
]
