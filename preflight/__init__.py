"""preflight: predict what the VideoRetalk service would reject, before you pay for it.

    >>> from preflight import check_paths
    >>> report = check_paths(video="talk.mp4", audio="voice.wav")
    >>> report.ok, [f.code for f in report.all_findings()]
    >>> from preflight import fix_paths
    >>> fixed = fix_paths(video="talk.mkv", audio="voice.m4a", out_dir="ready")

Bad media never raises: every problem is a ``Finding`` with the service's own error code
(``InvalidFile.*``) or an advice code (``Video.*``, ``Audio.*``, ``Image.*``...).
Exceptions (``PreflightError``) are for callers' mistakes, such as a missing path.
"""

from __future__ import annotations

from . import limits
from ._atomic import AtomicFile, lock_exclusive, remove_orphan_parts
from ._check.file import check_audio, check_file, check_image, check_video
from ._check.options import CheckOptions
from ._check.paths import check_paths, collect_files
from ._config import Config, settings_for
from ._exceptions import FaceEngineError, PreflightError, SplitError, UsageError
from ._fix.job import fix_paths
from ._fix.model import ALIGN_CHOICES, Action, FixedFile, FixOptions, FixReport
from ._fix.parts import (
    JoinReport,
    PartFiles,
    Speech,
    SplitPlan,
    cut_times,
    encode_voice,
    join_parts,
    plan_split,
    write_parts,
)
from ._local_file import local_file
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
from ._probe.container import probe, probe_image, probe_media
from ._probe.faces.engine import Box, Face, FaceEngine, Pose
from ._probe.faces.loader import LazyEngine, load_engine
from ._probe.faces.scan import FaceSample, ImageFaceScan, VideoFaceScan, scan_image, scan_video
from ._probe.sniff import guess_role
from ._probe.voice import speech_ranges
from ._render.display import line_start, plain, printable
from ._render.html import ReportPage, build_report, write_report
from ._rules.thresholds import AudioThresholds, FaceThresholds, Thresholds
from .codes import CODES

__version__ = "0.1.0"

__all__ = [
    "ALIGN_CHOICES",
    "CODES",
    "Action",
    "AtomicFile",
    "AudioStreamInfo",
    "AudioThresholds",
    "Box",
    "CheckOptions",
    "CheckReport",
    "Config",
    "Face",
    "FaceEngine",
    "FaceEngineError",
    "FaceSample",
    "FaceThresholds",
    "FileReport",
    "Finding",
    "FixOptions",
    "FixReport",
    "FixedFile",
    "ImageFaceScan",
    "ImageInfo",
    "JobReport",
    "JoinReport",
    "LazyEngine",
    "MediaInfo",
    "PartFiles",
    "Pose",
    "PreflightError",
    "ReportPage",
    "Role",
    "Severity",
    "Speech",
    "SplitError",
    "SplitPlan",
    "Thresholds",
    "UsageError",
    "VideoFaceScan",
    "VideoStreamInfo",
    "__version__",
    "build_report",
    "check_audio",
    "check_file",
    "check_image",
    "check_paths",
    "check_video",
    "collect_files",
    "cut_times",
    "encode_voice",
    "fix_paths",
    "guess_role",
    "join_parts",
    "limits",
    "line_start",
    "load_engine",
    "local_file",
    "lock_exclusive",
    "plain",
    "plan_split",
    "printable",
    "probe",
    "probe_image",
    "probe_media",
    "remove_orphan_parts",
    "scan_image",
    "scan_video",
    "settings_for",
    "speech_ranges",
    "write_parts",
    "write_report",
]
