"""Checking many files: which to look at under the given paths, in worker processes, with the
cache, and the job report of a video and its voice."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from .._exceptions import UsageError
from .._models import CheckReport, FileReport, JobReport, MediaInfo, Role
from .._probe.faces.engine import FaceEngine
from .._probe.faces.scan import ImageFaceScan, VideoFaceScan
from .._probe.sniff import role_from_extension, sniff_file
from .._rules.faces import (
    ref_match_findings,
    with_reference_given,
)
from .._rules.pair import pair_findings
from .cache import CheckCache
from .file import _check_isolated, _engine_for, _role_or_fail
from .options import CheckOptions
from .workers import DEFAULT_TIMEOUT_S, check_in_workers, isolation_failure

_DEFAULT_OPTIONS = CheckOptions()

#: From this many files analysed in full, ``jobs=None`` checks them in parallel.
AUTO_JOBS_MIN_FILES = 8


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
