"""The one exception tree of ``preflight``.

Bad media never raises: it becomes a finding. Exceptions are for callers' mistakes.

    PreflightError
    ├── UsageError          a path that does not exist, an unknown code, a bad option
    ├── FaceEngineError     the face engine (mediapipe) cannot be loaded
    ├── FaceAnalysisError   the face engine failed on one picture (the check reports it
    │                       as that file's Face.Unchecked finding, never raises it)
    └── SplitError          a long job cannot be cut into parts the service takes
"""

from __future__ import annotations


class PreflightError(Exception):
    """Base class of every error ``preflight`` raises on purpose."""


class UsageError(PreflightError):
    """The caller asked for something that cannot be done as asked."""


class FaceEngineError(PreflightError):
    """The face engine cannot be loaded (a missing or broken installation)."""


class FaceAnalysisError(PreflightError):
    """The face engine failed on one picture; the engine itself still works."""


class SplitError(PreflightError):
    """The job cannot be cut into parts the service takes (no pause where one is needed,
    a video without a steady frame rate)."""
