"""What a check looks at and how: the options every check takes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .._exceptions import UsageError
from .._models import Finding, Role, Severity
from .._rules.thresholds import Thresholds
from .._rules.voice import AUDIO_CONTENT_CODES
from ..codes import CODES, matches, unknown_selectors

_FACE_CODES = tuple(code for code in CODES if code.startswith("Face."))
_REF_MATCH_CODES = ("Face.RefMatch", "Face.RefMismatch")
_SPEECH_CODES = AUDIO_CONTENT_CODES


@dataclass(frozen=True)
class CheckOptions:
    """What to report. Empty ``select`` means every code."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    #: Skip content analysis (faces, speech): container facts only.
    fast: bool = False
    #: Keep a small picture of each sampled frame (for a contact sheet).
    thumbnails: bool = False
    #: Inside folders, skip files and folders matching these globs (``drafts/**``,
    #: ``*.tmp.mp4``), matched against the path below the folder searched and the name.
    exclude: tuple[str, ...] = ()
    #: Also skip files named directly (not in a role) that match ``exclude``, their paths
    #: taken relative to this folder (the settings file's), as ruff's ``--force-exclude``
    #: does: pre-commit names every file. None keeps every file named.
    force_exclude: str | None = None
    #: Code or prefix -> the severity a project gives it (the most specific one wins).
    severity: tuple[tuple[str, Severity], ...] = ()
    #: When the face and voice findings fire (a project's ``[thresholds]``).
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: Also tell who each face is (dlib's embedding, one per face track), so that a job's
    #: reference image can be matched. ``check_paths`` sets it for a job with a video and
    #: a reference image, ``fix_paths`` also for ``make_ref``; it costs ~0.2 s to load and
    #: ~0.14 s a face, so other checks do without.
    identify: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.thresholds, Thresholds):
            raise UsageError("thresholds: must be a preflight.Thresholds")
        unknown = unknown_selectors([*self.select, *self.ignore])
        if unknown:
            raise UsageError(
                "unknown finding code or prefix: "
                + ", ".join(unknown)
                + " (see `preflight codes` for the list)"
            )

    def keeps(self, finding: Finding) -> bool:
        return self.keeps_code(finding.code)

    def adjust(self, finding: Finding) -> Finding:
        """The finding at the severity the project gives its code, if it gives one."""
        chosen = [(len(code), level) for code, level in self.severity if matches(finding.code, [code])]
        if not chosen:
            return finding
        level = max(chosen, key=lambda item: item[0])[1]
        return finding if level is finding.severity else replace(finding, severity=level)

    def keeps_code(self, code: str) -> bool:
        if self.select and not matches(code, self.select):
            return False
        return not matches(code, self.ignore)

    def analyses_speech(self) -> bool:
        """The voice is listened to unless ``fast``, or unless no finding from it would show."""
        return not self.fast and any(self.keeps_code(code) for code in _SPEECH_CODES)

    def analyses_faces(self, role: Role = "video") -> bool:
        """Faces are looked at unless ``fast``, or unless no face finding would be shown."""
        wanted = _FACE_CODES if role == "video" else (*_FACE_CODES, "InvalidFile.Content")
        return not self.fast and any(self.keeps_code(code) for code in wanted)

    def identifies_faces(self) -> bool:
        """Who each face is, when asked for and a reference-match finding would show."""
        return self.identify and not self.fast and any(self.keeps_code(code) for code in _REF_MATCH_CODES)
