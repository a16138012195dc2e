"""Checking one file: probe it, judge it, and scan its faces and voice when asked."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .. import limits
from .._exceptions import FaceEngineError, PreflightError, UsageError
from .._models import FileReport, Finding, Probe, Role, Severity
from .._probe.container import image_decode_error, probe_image, probe_media
from .._probe.faces.engine import FaceEngine
from .._probe.faces.loader import LazyEngine
from .._probe.faces.scan import FaceScan, ImageFaceScan, VideoFaceScan, scan_image, scan_video
from .._probe.sniff import guess_role, sniff_file
from .._probe.voice import AudioAnalysis, analyse_audio
from .._rules.container import audio_findings, image_findings, still_image_as_video, video_findings
from .._rules.faces import (
    ref_face_findings,
    unchecked,
    video_face_findings,
)
from .._rules.voice import audio_content_findings, audio_unchecked
from .options import CheckOptions

_DEFAULT_OPTIONS = CheckOptions()


def file_report(
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
        return file_report(name, "video", still_image_as_video(image), options, image)
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
    return file_report(name, "video", findings, options, info, scan)


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
    return file_report(name, "audio", findings, options, info, speech=speech)


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
    return file_report(name, "ref", findings, options, info, scan)


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
        return file_report(name, role, [finding], options, None)


def _role_or_fail(name: str, role: Role | None) -> Role:
    found = role or guess_role(name)
    if found is None:
        raise UsageError(
            f"cannot tell what {name} is: its extension names no media type and its content "
            "looks like none; pass it with --video, --audio or --ref"
        )
    return found
