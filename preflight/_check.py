"""The check engine: files in, reports out."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from . import limits
from ._audio_analysis import AudioAnalysis, analyse_audio
from ._audio_rules import AUDIO_CONTENT_CODES, audio_content_findings, audio_unchecked
from ._cache import CheckCache
from ._exceptions import FaceEngineError, PreflightError, UsageError
from ._face_rules import (
    ref_face_findings,
    ref_match_findings,
    unchecked,
    video_face_findings,
    with_reference_given,
)
from ._face_scan import FaceScan, ImageFaceScan, VideoFaceScan, scan_image, scan_video
from ._faces import FaceEngine, LazyEngine
from ._isolation import DEFAULT_TIMEOUT_S, check_in_workers, isolation_failure
from ._models import CheckReport, FileReport, Finding, JobReport, MediaInfo, Probe, Role, Severity
from ._pair_rules import pair_findings
from ._probe import image_decode_error, probe_image, probe_media
from ._rules import audio_findings, image_findings, still_image_as_video, video_findings
from ._sniff import guess_role, role_from_extension, sniff_file
from ._thresholds import Thresholds
from .codes import CODES, matches, unknown_selectors


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


_FACE_CODES = tuple(code for code in CODES if code.startswith("Face."))
_REF_MATCH_CODES = ("Face.RefMatch", "Face.RefMismatch")
_SPEECH_CODES = AUDIO_CONTENT_CODES
_DEFAULT_OPTIONS = CheckOptions()


def _report(
    path: str,
    role: Role,
    findings: list[Finding],
    options: CheckOptions,
    media: Probe | None,
    faces: FaceScan | None = None,
    speech: AudioAnalysis | None = None,
) -> FileReport:
    kept = tuple(options.adjust(f) for f in findings if options.keeps(f))
    return FileReport(path=path, role=role, findings=kept, media=media, faces=faces, speech=speech)


@contextmanager
def _engine_for(engine: FaceEngine | None) -> Iterator[FaceEngine]:
    """The caller's engine, or a lazy one of our own that is closed afterwards."""
    if engine is not None:
        yield engine
        return
    own = LazyEngine()
    try:
        yield own
    finally:
        own.close()


def check_video(
    path: str | os.PathLike[str],
    options: CheckOptions = _DEFAULT_OPTIONS,
    *,
    engine: FaceEngine | None = None,
) -> FileReport:
    """Check a file as the job's video, faces included unless ``options.fast``."""
    name = os.fspath(path)
    if sniff_file(name) == "ref":
        # FFmpeg would open a still image as a one-frame "video"; the service would not.
        image = probe_image(name)
        return _report(name, "video", still_image_as_video(image), options, image)
    info = probe_media(name)
    findings = video_findings(info)
    scan: FaceScan | None = None
    # A file the service cannot open has no faces worth looking for.
    if options.analyses_faces() and not any(f.code == "InvalidFile.Openerror" for f in findings):
        if not info.duration:
            findings.append(unchecked("the container does not say how long the video is"))
        else:
            with _engine_for(engine) as faces:
                scan, failure = _guarded(
                    lambda: scan_video(
                        name, info, faces, thumbnails=options.thumbnails, identify=options.identifies_faces()
                    )
                )
            findings.extend(failure)
            if isinstance(scan, VideoFaceScan):
                findings.extend(video_face_findings(scan, options.thresholds.face))
    return _report(name, "video", findings, options, info, scan)


def _guarded(scan: Callable[[], FaceScan | None]) -> tuple[FaceScan | None, list[Finding]]:
    """Run a face scan; if it fails on this file, say so and keep the file's other findings.
    An engine that cannot load at all is not one file's problem: that still raises."""
    try:
        return scan(), []
    except FaceEngineError:
        raise
    except Exception as exc:
        return None, [unchecked(f"the face scan failed ({type(exc).__name__}: {exc})")]


def check_audio(
    path: str | os.PathLike[str],
    options: CheckOptions = _DEFAULT_OPTIONS,
    *,
    engine: FaceEngine | None = None,
) -> FileReport:
    """Check a file as the job's audio (the voice to sync), listening to it unless
    ``options.fast``. (``engine`` is unused: it keeps the checkers' signatures alike.)"""
    name = os.fspath(path)
    info = probe_media(name)
    findings = audio_findings(info)
    speech: AudioAnalysis | None = None
    if (
        options.analyses_speech()
        and info.audio
        and not any(f.code == "InvalidFile.Openerror" for f in findings)
    ):
        try:
            speech = analyse_audio(name, info.audio[0].index)
        except Exception as exc:  # a decoder failure is this file's finding, not a crash
            findings.append(audio_unchecked(f"{type(exc).__name__}: {exc}"))
        else:
            if speech is None:
                findings.append(audio_unchecked("no audio could be decoded"))
            else:
                findings.extend(audio_content_findings(speech, options.thresholds.audio))
    return _report(name, "audio", findings, options, info, speech=speech)


def check_image(
    path: str | os.PathLike[str],
    options: CheckOptions = _DEFAULT_OPTIONS,
    *,
    engine: FaceEngine | None = None,
) -> FileReport:
    """Check a file as the job's reference image, its face included unless ``options.fast``."""
    name = os.fspath(path)
    info = probe_image(name)
    # Decoding proves the file is whole; an image already too large to send is not worth
    # the time and memory (a 13000 px PNG is 700 MB of pixels).
    decodable = info.opened and max(info.width, info.height) <= limits.IMAGE_MAX_SIDE
    decode_error = image_decode_error(name) if decodable else None
    findings = image_findings(info, decode_error)
    scan: FaceScan | None = None
    if decodable and decode_error is None and options.analyses_faces("ref"):
        with _engine_for(engine) as faces:
            scan, failure = _guarded(
                lambda: scan_image(
                    name, faces, thumbnails=options.thumbnails, identify=options.identifies_faces()
                )
            )
        findings.extend(failure)
        if isinstance(scan, ImageFaceScan):
            findings.extend(ref_face_findings(scan, options.thresholds.face))
    return _report(name, "ref", findings, options, info, scan)


_CHECKERS: dict[Role, Callable[..., FileReport]] = {
    "video": check_video,
    "audio": check_audio,
    "ref": check_image,
}


def check_file(
    path: str | os.PathLike[str],
    role: Role | None = None,
    options: CheckOptions = _DEFAULT_OPTIONS,
    *,
    engine: FaceEngine | None = None,
) -> FileReport:
    """Check one file in the given role, or the role its extension or content says."""
    name = os.fspath(path)
    return _CHECKERS[_role_or_fail(name, role)](name, options, engine=engine)


def _check_isolated(name: str, role: Role, options: CheckOptions, engine: FaceEngine) -> FileReport:
    """Check one file of many: a failure inside the engine becomes that file's finding,
    so one strange file never costs the report on all the others."""
    try:
        return _CHECKERS[role](name, options, engine=engine)
    except PreflightError:
        raise  # the face engine cannot load: that is no single file's fault
    except Exception as exc:
        finding = Finding(
            "InvalidFile.Openerror",
            Severity.ERROR,
            f"preflight could not read this file ({type(exc).__name__}: {exc}); the service "
            "most likely cannot either. Please report it as a preflight bug.",
            False,
            {"exception": type(exc).__name__},
        )
        return _report(name, role, [finding], options, None)


#: From this many files analysed in full, ``jobs=None`` checks them in parallel.
AUTO_JOBS_MIN_FILES = 8


def _role_or_fail(name: str, role: Role | None) -> Role:
    found = role or guess_role(name)
    if found is None:
        raise UsageError(
            f"cannot tell what {name} is: its extension names no media type and its content "
            "looks like none; pass it with --video, --audio or --ref"
        )
    return found


def _is_file_or_broken_link(name: str) -> bool:
    """A regular file (links followed), or a dangling link to report as unopenable."""
    return os.path.isfile(name) or (os.path.islink(name) and not os.path.exists(name))


def _unreadable_folder(error: OSError) -> None:
    # Skipping it silently would let a CI gate pass on files it never saw.
    raise UsageError(f"{error.filename}: cannot read the folder ({error.strerror or error})")


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def collect_files(
    paths: Iterable[str | os.PathLike[str]],
    exclude: Iterable[str | os.PathLike[str]] = (),
    globs: tuple[str, ...] = (),
    named_root: str | None = None,
) -> list[tuple[str, Role | None]]:
    """Expand files and folders (recursively, sorted) into (path, role) pairs.

    Files named explicitly are kept (unless ``named_root`` is given and they match
    ``globs`` relative to it); inside folders, hidden entries, the ``exclude`` folders and
    what matches ``globs`` are skipped, and only files that are recognisably media (by
    extension, else by content) are kept.
    """
    found: list[tuple[str, Role | None]] = []
    seen: set[str] = set()
    skipped = {os.path.realpath(os.fspath(folder)) for folder in exclude}

    def add(name: str, role: Role | None) -> None:
        key = os.path.normpath(name)
        if key not in seen:
            seen.add(key)
            found.append((name, role))

    for raw in paths:
        name = os.fspath(raw)
        if os.path.isdir(name):
            for root, dirs, files in os.walk(name, onerror=_unreadable_folder):
                dirs[:] = sorted(
                    d
                    for d in dirs
                    if not _is_hidden(d)
                    and os.path.realpath(os.path.join(root, d)) not in skipped
                    and not _excluded(os.path.join(root, d), name, globs)
                )
                for file_name in sorted(files):
                    if _is_hidden(file_name) or _excluded(os.path.join(root, file_name), name, globs):
                        continue
                    full = os.path.join(root, file_name)
                    if not _is_file_or_broken_link(full):
                        continue  # a FIFO or device (or a link to one) would block the reader
                    role = role_from_extension(full) or sniff_file(full)
                    if role is not None:
                        add(full, role)
        elif _is_file_or_broken_link(name):
            if named_root is None or not _excluded(os.path.abspath(name), named_root, globs):
                add(name, None)
        elif os.path.lexists(name):
            raise UsageError(f"{name}: not a regular file")
        else:
            raise UsageError(f"{name}: no such file or folder")
    return found


def _excluded(path: str, top: str, globs: tuple[str, ...]) -> bool:
    """``path`` (found below the folder ``top``) matches one of the exclude globs."""
    if not globs:
        return False
    below = os.path.relpath(path, top).replace(os.sep, "/")
    name = os.path.basename(path)
    return any(
        fnmatch.fnmatchcase(below, glob)
        or fnmatch.fnmatchcase(name, glob)
        or fnmatch.fnmatchcase(below + "/", glob)
        for glob in globs
    )


def check_paths(
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    video: str | os.PathLike[str] | None = None,
    audio: str | os.PathLike[str] | None = None,
    ref: str | os.PathLike[str] | None = None,
    options: CheckOptions = _DEFAULT_OPTIONS,
    on_file: Callable[[int, int, str], None] | None = None,
    engine: FaceEngine | None = None,
    exclude: Sequence[str | os.PathLike[str]] = (),
    jobs: int | None = 1,
    cache: CheckCache | None = None,
    isolate: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT_S,
) -> CheckReport:
    """Check files and folders, plus files in explicit roles.

    With ``jobs`` above 1, files are checked in that many processes at once (each with its
    own face engine); the report lists them in the same order whatever finished first.
    ``jobs=None`` chooses: one process per CPU for ``AUTO_JOBS_MIN_FILES`` files or more
    analysed in full, else this process. ``isolate`` checks in another process even with
    one job. In other processes, a file that crashes its process (FFmpeg or mediapipe
    failing hard) or is still being checked after ``timeout`` seconds gets an
    ``InvalidFile.Openerror`` finding and costs no other file its report. With a
    ``cache``, files unchanged since a check with the same settings are not checked again.

    When two or more of ``video``, ``audio`` and ``ref`` are given, the report carries a
    job section with the checks across them. ``engine`` finds faces; by default
    mediapipe's, loaded only if some file needs it. Folders in ``exclude`` are not
    searched (an output folder inside an input folder).
    """
    explicit: list[tuple[str, Role | None]] = []
    for role, value in (("video", video), ("audio", audio), ("ref", ref)):
        if value is None:
            continue
        name = os.fspath(value)
        if not os.path.lexists(name):
            raise UsageError(f"{name}: no such file")
        if os.path.isdir(name):
            raise UsageError(f"{name}: is a folder; --{role} takes one file")
        if not _is_file_or_broken_link(name):
            raise UsageError(f"{name}: not a regular file")
        explicit.append((name, role))  # type: ignore[arg-type]
    if video is not None and ref is not None and not options.identify:
        # The job matches the reference face against the video's: both are described.
        options = replace(options, identify=True)
    named = {os.path.normpath(name) for name, _ in explicit}
    # A file given in a role and also found in a folder is checked once, in its role.
    found = collect_files(paths, exclude, options.exclude, options.force_exclude)
    work = explicit + [(n, r) for n, r in found if os.path.normpath(n) not in named]
    # Fail on unknowable files before doing any work.
    resolved = [(name, _role_or_fail(name, role)) for name, role in work]

    # Files unchanged since a check with the same settings come from the cache.
    keys = [cache.key(name, role, options) if cache is not None else None for name, role in resolved]
    known: dict[int, FileReport] = {}
    for index, key in enumerate(keys):
        hit = cache.get(key) if cache is not None and key is not None else None
        if hit is not None:
            known[index] = replace(hit, path=resolved[index][0])
    missing = [i for i in range(len(resolved)) if i not in known]
    todo = [resolved[i] for i in missing]
    if jobs is None:
        # Each process starts FFmpeg and mediapipe anew (about 1.5 s on this kind of
        # machine): worth it for many files analysed in full, never for --fast.
        many = not options.fast and len(todo) >= AUTO_JOBS_MIN_FILES
        jobs = (os.cpu_count() or 1) if many else 1
    if isolate and engine is not None:
        raise UsageError("isolate: an engine of the caller's cannot be sent to another process")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"timeout {timeout}: must be more than 0 seconds")
    if engine is None and todo and (isolate or (jobs > 1 and len(todo) > 1)):
        fresh = check_in_workers(todo, options, min(jobs, len(todo)), timeout, on_file)
    else:
        fresh = []
        with _engine_for(engine) as faces:
            for number, (name, role) in enumerate(todo, start=1):
                if on_file is not None:
                    on_file(number, len(todo), name)
                fresh.append(_check_isolated(name, role, options, faces))
    for index, report in zip(missing, fresh, strict=True):
        known[index] = report
        key = keys[index]
        # A crash or a hang may be the machine's doing (memory, load): checked again next time.
        if cache is not None and key is not None and not isolation_failure(report):
            cache.put(key, report)
    reports = [known[i] for i in range(len(resolved))]

    job = _job_report(reports[: len(explicit)], options) if len(explicit) >= 2 else None
    if any(role == "ref" for _, role in explicit):
        # The job has its reference image: the video's findings stop asking for one.
        reports = [
            replace(r, findings=tuple(with_reference_given(f) for f in r.findings))
            if r.role == "video"
            else r
            for r in reports
        ]
    return CheckReport(files=tuple(reports), job=job)


def _job_report(explicit: list[FileReport], options: CheckOptions) -> JobReport:
    """Checks across the files given in roles."""
    by_role = {report.role: report for report in explicit}
    video, audio, ref = by_role.get("video"), by_role.get("audio"), by_role.get("ref")
    findings = pair_findings(
        video.media if video is not None and isinstance(video.media, MediaInfo) else None,
        audio.media if audio is not None and isinstance(audio.media, MediaInfo) else None,
        audio.speech if audio is not None else None,
    )
    if (
        video is not None
        and ref is not None
        and isinstance(video.faces, VideoFaceScan)
        and isinstance(ref.faces, ImageFaceScan)
    ):
        findings.extend(ref_match_findings(video.faces, ref.faces, options.thresholds.face))
    return JobReport(
        findings=tuple(options.adjust(f) for f in findings if options.keeps(f)),
        files=tuple(report.path for report in explicit),
    )
