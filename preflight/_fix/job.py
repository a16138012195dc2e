"""The fixer: check, plan, write compliant copies, check them again.

Outputs go to a temporary hidden name in the output folder and are renamed when whole;
inputs are never written to (an output that would land on an input gets another name), and
a file already in the folder is replaced only when preflight wrote it (its ledger says so)
or the caller allows it (``overwrite``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

import av
import av.error

from .. import limits
from .._atomic import OutputLedger, atomic_output, output_name
from .._check.file import _check_isolated, _engine_for
from .._check.options import CheckOptions
from .._check.paths import _job_report, check_paths
from .._exceptions import UsageError
from .._models import FileReport, MediaInfo, Severity
from .._probe.faces.engine import FaceEngine
from .._probe.faces.scan import VideoFaceScan
from .._rules.faces import with_reference_given
from .._rules.pair import DURATION_TOLERANCE_S
from .._rules.thresholds import Thresholds
from .._rules.voice import clipping_left
from .audio import AudioPlan, plan_audio, write_audio
from .image import ImagePlan, make_reference, plan_image, write_image
from .model import COPY, Action, FixedFile, FixOptions, FixProgress, FixReport, Progress
from .video import VideoPlan, plan_video, write_video

Plan = VideoPlan | AudioPlan | ImagePlan
_DEFAULT_FIX = FixOptions()
_DEFAULT_CHECK = CheckOptions()


@dataclass(frozen=True)
class _Lengths:
    """Target lengths (seconds) of the job's video and voice after alignment."""

    video: float | None = None
    audio: float | None = None
    note: Action | None = None


def _length(report: FileReport | None) -> float | None:
    """The length the rules judge: the first stream of the role's kind, else the file's."""
    if report is None or not isinstance(report.media, MediaInfo):
        return None
    info = report.media
    length = info.stream_length("video" if report.role == "video" else "audio")
    # A file without a stream of its role's kind still has the container's length.
    return length if length is not None else info.duration


def _clamp(seconds: float, longest: float | None) -> float:
    return min(max(seconds, limits.MIN_DURATION_S), longest if longest is not None else float("inf"))


def _align(video: FileReport | None, audio: FileReport | None, options: FixOptions) -> _Lengths:
    """What ``--align`` asks of the job's two lengths."""
    video_s, audio_s = _length(video), _length(audio)
    if video_s is None or audio_s is None or abs(video_s - audio_s) <= DURATION_TOLERANCE_S:
        return _Lengths()
    longer = "video" if video_s > audio_s else "voice"
    if options.align == "service":
        return _Lengths(
            note=Action(
                "align",
                f"left to the service: it cuts the longer {longer} to {min(video_s, audio_s):.2f} s "
                "(use --align trim|extend|pad to choose)",
                ("Pair.DurationMismatch",),
            )
        )
    if options.align == "trim":
        target = _clamp(min(video_s, audio_s), options.max_duration_s)
        return _Lengths(
            target, target, Action("align", f"both trimmed to {target:.2f} s", ("Pair.DurationMismatch",))
        )
    if options.align == "extend":
        target = _clamp(audio_s, options.max_duration_s)
        return _Lengths(
            video=target,
            note=Action("align", f"video fitted to the voice's {target:.2f} s", ("Pair.DurationMismatch",)),
        )
    target = _clamp(video_s, options.max_duration_s)
    return _Lengths(
        audio=target,
        note=Action("align", f"voice fitted to the video's {target:.2f} s", ("Pair.DurationMismatch",)),
    )


def _plan(report: FileReport, options: FixOptions, lengths: _Lengths, thresholds: Thresholds) -> Plan:
    """The plan for one file, judged by the thresholds it was checked (and is checked again) with."""
    if report.role == "video":
        return plan_video(report, options, duration=lengths.video, thresholds=thresholds.face)
    if report.role == "audio":
        return plan_audio(report, options, duration=lengths.audio, thresholds=thresholds.audio)
    return plan_image(report, options, thresholds=thresholds.face)


def _write(plan: Plan, source: str, target: Path, progress: Progress) -> None:
    if not plan.actions:
        shutil.copyfile(source, target)
    elif isinstance(plan, VideoPlan):
        write_video(plan, source, target, progress)
    elif isinstance(plan, AudioPlan):
        write_audio(plan, source, target, progress)
    else:
        write_image(plan, source, target)


def _unfixable(report: FileReport, reason: str) -> FixedFile:
    return FixedFile(report.path, report.role, None, (), False, report.findings, reason)


def fix_paths(
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    out_dir: str | os.PathLike[str],
    video: str | os.PathLike[str] | None = None,
    audio: str | os.PathLike[str] | None = None,
    ref: str | os.PathLike[str] | None = None,
    options: FixOptions = _DEFAULT_FIX,
    check_options: CheckOptions = _DEFAULT_CHECK,
    dry_run: bool = False,
    overwrite: bool = False,
    on_progress: FixProgress | None = None,
    engine: FaceEngine | None = None,
) -> FixReport:
    """Write a compliant copy of every file into ``out_dir``, with the least change.

    Each output is checked again by the same engine, with the same ``check_options`` (its
    thresholds included); the report says what was done and what still fails. With
    ``dry_run``, nothing is written: the report holds the plans.

    A file already in ``out_dir`` under an output's name is replaced only when a run of
    preflight wrote it there and it has not changed since, or with ``overwrite``; else
    ``UsageError`` names it before anything is written. An input is never written over.
    """
    conflict = options.conflict(check_options.thresholds.audio)
    if conflict is not None:
        raise UsageError(f"FixOptions.{conflict[0]}: {conflict[1]}")
    folder = os.fspath(out_dir)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"{folder}: not a folder (--out-dir takes a folder)")
    if (ref is not None or options.make_ref) and not check_options.identify:
        # The job will match its reference face (given, or cut by --make-ref) against the
        # video's, in the first check and in the checks of the outputs alike.
        check_options = replace(check_options, identify=True)
    with _engine_for(engine) as faces:
        # The output folder may sit inside an input folder: its files are not inputs.
        checked = check_paths(
            paths, video=video, audio=audio, ref=ref, options=check_options, engine=faces, exclude=(folder,)
        )
        if not dry_run:
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise UsageError(
                    f"{folder}: cannot create the output folder ({exc.strerror or exc})"
                ) from exc
            if not os.access(folder, os.W_OK):
                raise UsageError(f"{folder}: the output folder is not writable")
        # check_paths puts the files given in roles first.
        explicit = list(checked.files[: sum(v is not None for v in (video, audio, ref))])
        by_role = {r.role: r for r in explicit}
        lengths = (
            _align(by_role.get("video"), by_role.get("audio"), options) if len(explicit) >= 2 else _Lengths()
        )
        inputs = {os.path.realpath(r.path) for r in checked.files}
        taken: set[str] = set()
        plans = [
            _plan(r, options, lengths if n < len(explicit) else _Lengths(), check_options.thresholds)
            for n, r in enumerate(checked.files)
        ]
        # Every output named before the first is written: a refusal leaves the folder as it was.
        # (On a dry run too: the report says where each would go.)
        names = [
            None
            if plan.unfixable is not None
            else output_name(r.path, folder, plan.extension or os.path.splitext(r.path)[1], taken, inputs)
            for r, plan in zip(checked.files, plans, strict=True)
        ]
        targets = [None if dry_run else name for name in names]
        first_video = by_role.get("video") or next((r for r in checked.files if r.role == "video"), None)
        has_ref = any(r.role == "ref" for r in checked.files)
        ref_target = None
        if options.make_ref and not (dry_run or has_ref) and first_video and _wants_ref(first_video):
            ref_target = output_name(f"{Path(first_video.path).stem}.ref.jpg", folder, ".jpg", taken, inputs)
        ledger = OutputLedger.load(folder)
        if not dry_run and not overwrite:
            _refuse_replacing([t for t in (*targets, ref_target) if t is not None], ledger)
        results: list[FixedFile] = []
        outputs: dict[int, FileReport] = {}  # by position: one file may be given in two roles
        made_ref: FileReport | None = None
        total = len(checked.files)
        for number, (report, plan, target) in enumerate(zip(checked.files, plans, targets, strict=True), 1):

            def progress(fraction: float, number: int = number, path: str = report.path) -> None:
                if on_progress is not None:
                    on_progress(number, total, path, fraction)

            progress(0.0)
            fixed, recheck = _fix_one(report, plan, target, check_options, ledger, progress, faces)
            if dry_run:
                fixed = replace(fixed, planned=names[number - 1])
            results.append(fixed)
            if recheck is not None:
                outputs[number - 1] = recheck
            progress(1.0)
        if not options.make_ref and not has_ref:
            results = [_offer_make_ref(r, fixed) for r, fixed in zip(checked.files, results, strict=True)]
        if ref_target is not None and first_video is not None:
            made = _make_ref(first_video, ref_target, check_options, ledger, faces)
            if made is not None:
                results.append(made[0])
                if made[1] is not None:
                    made_ref = made[1]
        if ref is not None or made_ref is not None:
            # The job has its reference image: the video's findings stop asking for one.
            results = [_with_reference(fixed) for fixed in results]
        job = None
        if len(explicit) >= 2:
            final = [outputs.get(index, r) for index, r in enumerate(explicit)]
            if made_ref is not None:
                final.append(made_ref)
            job = _job_report(final, check_options)
    notes = (lengths.note,) if lengths.note is not None else ()
    return FixReport(tuple(results), job, dry_run, notes, checked=checked)


def _with_reference(fixed: FixedFile) -> FixedFile:
    if fixed.role != "video":
        return fixed
    return replace(fixed, findings=tuple(with_reference_given(f) for f in fixed.findings))


def _offer_make_ref(report: FileReport, fixed: FixedFile) -> FixedFile:
    """Say that --make-ref exists when it would help: several faces, no reference image."""
    if report.role != "video" or not any(f.code == "Face.Multiple" for f in report.findings):
        return fixed
    offer = (
        "the video shows several faces and no reference image was given: --make-ref cuts one "
        "of the face the service would pick from the first frame"
    )
    return replace(fixed, notes=(*fixed.notes, offer))


def _refuse_replacing(targets: list[str], ledger: OutputLedger) -> None:
    """A usage error naming every output that would replace a file no run of preflight
    wrote (the user's own, or one changed since): nothing is written then."""
    theirs = [t for t in targets if os.path.lexists(t) and not ledger.wrote(t)]
    if theirs:
        names = ", ".join(theirs)
        raise UsageError(
            f"{names}: already there and not written by preflight; not replaced (remove it, "
            "choose another output folder, or allow it with --overwrite)"
        )


def _fix_one(
    report: FileReport,
    plan: Plan,
    target: str | None,
    check_options: CheckOptions,
    ledger: OutputLedger,
    progress: Progress,
    engine: FaceEngine,
) -> tuple[FixedFile, FileReport | None]:
    """Write ``plan``'s output to ``target`` (None on a dry run) and check it again."""
    if plan.unfixable is not None:
        return _unfixable(report, plan.unfixable), None
    actions = plan.actions or (COPY,)
    if target is None:
        expect_ok = report.ok or all(f.fixable for f in report.findings if f.severity is Severity.ERROR)
        return FixedFile(report.path, report.role, None, actions, expect_ok, report.findings), None
    try:
        with atomic_output(target) as temporary:
            _write(plan, report.path, temporary, progress)
    except av.error.ExitError as exc:  # FFmpeg saw the Ctrl-C first
        raise KeyboardInterrupt from exc
    except av.error.FFmpegError as exc:  # a codec that fails on this file (an OSError too)
        return _unfixable(report, f"the fix failed ({type(exc).__name__}: {exc})"), None
    except OSError as exc:
        if exc.errno is None:
            # Not the file system: Pillow reports undecodable pixels ("image file is
            # truncated") as an OSError without an errno.
            return _unfixable(report, f"the fix failed: the file cannot be decoded ({exc})"), None
        return _unfixable(report, f"cannot write {target}: {exc.strerror or exc}"), None
    except Exception as exc:  # any other failure on this file is this file's problem
        return _unfixable(report, f"the fix failed ({type(exc).__name__}: {exc})"), None
    _remember(ledger, target)
    again = _check_isolated(target, report.role, check_options, engine)
    again = _clipping_kept(report, again)
    return FixedFile(report.path, report.role, target, actions, again.ok, again.findings), again


def _clipping_kept(before: FileReport, after: FileReport) -> FileReport:
    """A voice that clipped still has the distortion after its peaks are lowered, though the
    check of the output no longer sees flat tops at full scale: say so."""
    clipped = next((f for f in before.findings if f.code == "Audio.Clipping"), None)
    if (
        before.role != "audio"
        or clipped is None
        or not clipped.details.get("clipped_runs")
        or any(f.code == "Audio.Clipping" for f in after.findings)
    ):
        return after
    peak = after.speech.true_peak_dbtp if after.speech is not None else None
    return replace(after, findings=(*after.findings, clipping_left(clipped, peak)))


def _remember(ledger: OutputLedger, target: str) -> None:
    """Note the output in the folder's ledger; a ledger that cannot be written only means
    a re-run asks for --overwrite."""
    with suppress(OSError):
        ledger.record(target)


def _wants_ref(video: FileReport) -> bool:
    """``--make-ref`` has work to do: the video's faces were scanned and there are several."""
    return isinstance(video.faces, VideoFaceScan) and any(f.code == "Face.Multiple" for f in video.findings)


def _make_ref(
    video: FileReport,
    target: str,
    check_options: CheckOptions,
    ledger: OutputLedger,
    engine: FaceEngine,
) -> tuple[FixedFile, FileReport | None] | None:
    """``--make-ref``: a reference image of the target face, when the video has several."""
    scan = video.faces
    if not isinstance(scan, VideoFaceScan):
        return None
    try:
        with atomic_output(target) as temporary:
            actions = make_reference(video.path, scan, temporary)
    except Exception as exc:
        return FixedFile(video.path, "ref", None, (), False, (), f"--make-ref failed: {exc}"), None
    _remember(ledger, target)
    again = _check_isolated(target, "ref", check_options, engine)
    return FixedFile(video.path, "ref", target, actions, again.ok, again.findings), again
