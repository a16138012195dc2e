"""``prep-and-retalk``: from raw files to the lip-synced video, each stage visible.

check -> fix into a work folder -> check again (stop when errors remain) -> gate ->
upload -> submit -> wait -> download -> verify the result -> summary. The job runner
(``job``) makes every paid step resumable; a job sent in parts takes ``pipeline_parts``'s
stages after the plan; ``result`` is what a run made.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import av

from preflight import (
    CheckOptions,
    CheckReport,
    FixedFile,
    FixOptions,
    FixReport,
    Speech,
    SplitError,
    SplitPlan,
    check_paths,
    cut_times,
    fix_paths,
    limits,
    plan_split,
    speech_ranges,
)

from .._exceptions import RetalkError
from .._http import Client
from .._journal import DuplicateJob, DuplicateSplit, Journal, sha256_of
from .gates import Gates, findings_to_send, gated_text
from .job import Events, run_job
from .output_path import check_output, refuse_overwriting, refuse_replacing
from .pipeline_parts import send_split, split_and_send
from .result import PipelineResult, Stages, duration_of, verify
from .split_tasks import intact, split_fingerprint

#: Whole-file limits a job sent in parts may exceed: each part is checked on its own.
SPLIT_IGNORES = ("InvalidFile.Duration", "InvalidFile.Size")


def expected_length(video_s: float | None, audio_s: float | None, extend: bool) -> float | None:
    """How long the service's result will be: the shorter of the two, or the voice's length
    when the video is extended to it."""
    if video_s is None or audio_s is None:
        return None
    return audio_s if extend else min(video_s, audio_s)


def only_copied(fixed: FixedFile) -> bool:
    """The fix only copied the file: it was accepted as it is."""
    return [a.name for a in fixed.actions] == ["copy"]


def prepare_and_retalk(
    client: Client | None,
    journal: Journal | None,
    video: str,
    audio: str,
    ref: str | None,
    output: str,
    *,
    work_dir: str | None = None,
    fix: bool = True,
    dry_run: bool = False,
    extend_video: bool = False,
    face_threshold: int | None = None,
    fix_options: FixOptions | None = None,
    check_options: CheckOptions | None = None,
    overwrite: bool = False,
    force: bool = False,
    split: bool = False,
    gates: Gates | None = None,
    events: Events | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_checked: Callable[[PipelineResult], None] | None = None,
    on_part: Callable[[int, int, str], None] | None = None,
    on_progress: Callable[[str, float], None] | None = None,
    remake: bool = False,
) -> PipelineResult:
    """Run the pipeline; ``client``/``journal`` may be None on a dry run. With ``split``,
    inputs longer than the service takes are sent in parts and the results joined.
    ``on_progress(stage, fraction)`` follows the long media stages (fix, cut, join).
    ``check_options`` are the project's settings (``preflight.settings_for``). An output
    that is one of the inputs, or the journal, or that cannot take a file (a folder, a
    trailing slash, a name under a file) is a ``ConfigError`` before any work;
    ``overwrite`` lets the fix replace files in the work folder preflight did not write,
    and the result replace a file at ``output`` this journal did not record as this job's
    result (refused before any work without it; ``remake``: one the journal made from other
    inputs may be replaced too).

    Findings in ``gates`` (default: ``Gates()``) stop the job before anything is uploaded
    (``result.gated``, ``ok`` False); ``force`` passes them, as it sends a job sent before.
    ``on_checked(result)`` is called once everything is checked, before anything is sent."""
    originals = {"video": video, "audio": audio} | ({"ref": ref} if ref else {})
    check_output(output)  # before any work: a result is never paid for to find no place
    refuse_overwriting(output, {**originals, "journal": str(journal.path) if journal is not None else None})
    if journal is not None and not overwrite and os.path.lexists(output):
        # A file there is replaced only by this same job's result (the same command run
        # again), or one this journal made that the caller remakes (a batch row whose
        # inputs changed): never a file the user had there.
        made = journal.made_from(output)
        known = made == sources_of(originals) or (remake and made is not None)
        refuse_replacing(output, known or (made is None and journal.knows_output(output)))
    request = _settled(
        client, journal, originals, video, audio, ref, output,
        work_dir=work_dir, fix=fix, dry_run=dry_run, extend_video=extend_video,
        face_threshold=face_threshold, fix_options=fix_options, check_options=check_options,
        overwrite=overwrite, force=force, split=split, gates=gates, events=events,
        on_checked=on_checked, on_part=on_part,
    )  # fmt: skip
    result = PipelineResult(ok=False)
    result = _run(request, result, Stages(result, on_stage, on_progress))
    if result.ok and not dry_run and journal is not None:
        # What this result was made from: the same command again may replace it.
        journal.record_made(output, sources_of(originals))
    return result


def sources_of(originals: dict[str, str]) -> dict[str, str]:
    """The SHA-256 of each original input, by role (a URL stands for itself)."""
    return {
        role: name if name.startswith(("http://", "https://", "oss://")) else sha256_of(name)
        for role, name in originals.items()
    }


@dataclass
class _Request:
    """One job as the caller asked for it, settled: what is sent, where the fixed copies
    go, the task's parameters, the settings and the caller's callbacks."""

    client: Client | None
    journal: Journal | None
    originals: dict[str, str]
    video: str
    audio: str
    ref: str | None
    output: str
    folder: str
    fix: bool
    dry_run: bool
    extend_video: bool
    face_threshold: int | None
    params: dict[str, Any]
    #: The fixer's options; for a split, without its length limit and with the cuts'
    #: keyframes (``_listen_ahead``).
    options: FixOptions
    #: The project's check settings as given, and as applied (a split's whole-file limits
    #: left to each part).
    base_check: CheckOptions
    check_options: CheckOptions
    overwrite: bool
    force: bool
    split: bool
    gates: Gates
    events: Events | None
    on_checked: Callable[[PipelineResult], None] | None
    on_part: Callable[[int, int, str], None] | None
    #: A split's fingerprint (its inputs and every setting), once it is known.
    fingerprint: str | None = None

    def sender(self) -> tuple[Client, Journal]:
        """The client and the journal that sending takes."""
        if self.client is None or self.journal is None:
            raise RetalkError("a client and a journal are needed to send the job")
        return self.client, self.journal


def _settled(
    client: Client | None,
    journal: Journal | None,
    originals: dict[str, str],
    video: str,
    audio: str,
    ref: str | None,
    output: str,
    *,
    work_dir: str | None,
    fix: bool,
    dry_run: bool,
    extend_video: bool,
    face_threshold: int | None,
    fix_options: FixOptions | None,
    check_options: CheckOptions | None,
    overwrite: bool,
    force: bool,
    split: bool,
    gates: Gates | None,
    events: Events | None,
    on_checked: Callable[[PipelineResult], None] | None,
    on_part: Callable[[int, int, str], None] | None,
) -> _Request:
    """The request with every default filled in: the task's parameters, the work folder,
    the check settings a split applies."""
    params: dict[str, Any] = {}
    if extend_video:
        params["video_extension"] = True
    if face_threshold is not None:
        params["query_face_threshold"] = face_threshold
    base_check = check_options or CheckOptions()
    # A split's whole-file limits are left to each part.
    applied = replace(base_check, ignore=(*base_check.ignore, *SPLIT_IGNORES)) if split else base_check
    return _Request(
        client,
        journal,
        originals,
        video,
        audio,
        ref,
        output,
        folder=work_dir or str(Path(output).resolve().parent / f"{Path(output).stem}.work"),
        fix=fix,
        dry_run=dry_run,
        extend_video=extend_video,
        face_threshold=face_threshold,
        params=params,
        options=fix_options or FixOptions(),
        base_check=base_check,
        check_options=applied,
        overwrite=overwrite,
        force=force,
        split=split,
        gates=gates if gates is not None else Gates(),
        events=events,
        on_checked=on_checked,
        on_part=on_part,
    )


def _run(request: _Request, result: PipelineResult, stages: Stages) -> PipelineResult:
    """The steps in order: a split found in the journal goes on; else check and fix,
    measure, gate, plan the parts (a split), send, verify."""
    if request.split and not request.dry_run:
        resumed = _resume_split(request, result, stages)
        if resumed is not None:
            return resumed
    heard = _listen_ahead(request)
    inputs = _check_and_fix(request, result, stages)
    if inputs is None:
        return result
    result.sent = dict(inputs)
    if request.dry_run and result.fix is not None:
        # What would be sent: the fixed copies, where the fix would write them.
        result.sent = {f.role: f.planned for f in result.fix.files if f.planned} or result.sent
    lengths = {role: duration_of(inputs[role], role) for role in ("video", "audio")}
    result.expected_s = expected_length(lengths["video"], lengths["audio"], request.extend_video)
    if request.split:
        ended = _plan_parts(request, result, stages, inputs, lengths, heard)
        if ended is not None:
            return ended
    return _send_whole(request, result, stages, inputs)


def _resume_split(request: _Request, result: PipelineResult, stages: Stages) -> PipelineResult | None:
    """A split of these inputs and settings the journal holds: its parts go on (the
    result), or it is closed or refused as the journal's record says; None to start."""
    client, journal = request.sender()
    settings = {
        "fix": request.fix,
        # (Keyframes follow from the inputs; a function would not compare.)
        "options": {k: v for k, v in asdict(request.options).items() if k != "keyframes_at"},
        "params": request.params,
        "work_dir": request.folder,
        "output": os.path.abspath(request.output),
    }
    if request.base_check != CheckOptions():
        # Only when set: the splits of a run without settings keep their fingerprints.
        settings["check"] = asdict(request.base_check)
    fingerprint = request.fingerprint = split_fingerprint(request.originals, settings, client.base_url)
    found = journal.find_split(fingerprint)
    if found is not None and request.force:
        if found.state == "running":
            journal.update_split(found.id, state="failed", error="sent again with --force")
        found = None
    if found is not None and found.state == "joined":
        if os.path.exists(found.output) or not intact(found):
            raise DuplicateSplit(found)
        # Joined before, its output since removed: joined again from the parts' results
        # (fetched again if need be), nothing paid twice.
        found = journal.update_split(found.id, state="running")
    if found is None or found.state != "running":
        return None
    if not intact(found):
        journal.update_split(found.id, state="failed", error="its part files are gone or were replaced")
        return None
    stages.start("resume")
    stages.done("resume", f"split {found.id} found in the journal; its parts go on")
    result.plan = SplitPlan.from_dict(found.plan["plan"])
    result.expected_s = result.plan.length_s
    result.sent = {"video": found.plan.get("video", request.video), "audio": found.plan["voice"]}
    if found.plan.get("ref"):
        result.sent["ref"] = found.plan["ref"]
    return send_split(client, journal, found.id, result, stages, request.events, request.on_part)


def _listen_ahead(request: _Request) -> Future[Speech | None] | None:
    """For a split: the fixer's length limit lifted, and, with the fix, the voice listened
    to on the other core while the fixer checks the files (its future); else None."""
    if not request.split:
        return None
    request.options = replace(request.options, max_duration_s=None)
    if not request.fix:
        return None
    audio, video, extend = request.audio, request.video, request.extend_video
    listening = _in_background(lambda: _speech_of(audio))

    def likely_cuts() -> tuple[float, ...]:
        return _likely_cuts(video, audio, extend, listening.result())

    # Should the fixer re-encode the video, it puts keyframes where the job will be
    # cut: the parts are then packet copies, not a second encode.
    request.options = replace(request.options, keyframes_at=likely_cuts)
    return listening


def _check_and_fix(request: _Request, result: PipelineResult, stages: Stages) -> dict[str, str] | None:
    """What will be sent, by role: the fixed copies (the originals on a dry run or with
    ``fix`` off); None when the inputs cannot be made acceptable (``result.error``)."""
    if not request.fix:
        stages.start("check")
        result.check = check_paths(
            video=request.video, audio=request.audio, ref=request.ref, options=request.check_options
        )
        stages.done("check", f"{result.check.errors} error(s), {result.check.warnings} warning(s)")
        if not result.check.ok:
            result.error = "the service would reject the inputs (run without --no-fix to fix them)"
            _tell(request.on_checked, result)
            return None
        return dict(request.originals)
    # One pass: the fixer checks the inputs (shown as the check) and its outputs.
    stages.start("check and fix")
    result.fix = fix_paths(
        video=request.video,
        audio=request.audio,
        ref=request.ref,
        out_dir=request.folder,
        options=request.options,
        check_options=request.check_options,
        dry_run=request.dry_run,
        overwrite=request.overwrite,
        on_progress=_per_file(stages.progress("check and fix")),
    )
    result.check = result.fix.checked
    if request.options.align == "trim":
        result.trim_cuts_speech_s = _speech_cut_s(result.check)
    stages.done("check and fix", _fixed_text(result.fix, request.folder))
    if not result.fix.ok:
        problems = [f"{f.path}: {f.error or _error_codes(f.findings)}" for f in result.fix.files if not f.ok]
        result.error = "the inputs cannot be made acceptable: " + "; ".join(problems)
        _tell(request.on_checked, result)
        return None
    if request.dry_run:
        return dict(request.originals)
    return {f.role: f.output for f in result.fix.files if f.output}


def _stopped(request: _Request, result: PipelineResult, inputs: dict[str, str]) -> bool:
    """Tell the caller what was found; True when a gate stops the job (nothing sent)."""
    aligned = request.dry_run and request.fix and request.options.align != "service"
    # A job these very inputs already made (sent with --accept, open or done) is not
    # gated again: it is taken up or reported as before, never paid for twice.
    # A split of these inputs and settings counts the same way: a failed one run again
    # pays only for the parts that did not make it (its paid parts are taken up).
    known = journaled = False
    journal, client, fingerprint = request.journal, request.client, request.fingerprint
    if journal is not None and client is not None and not request.dry_run:
        known = journal.sent_before(inputs, request.params, client.base_url) is not None or (
            fingerprint is not None and journal.split_sent_before(fingerprint) is not None
        )
        journaled = known or (
            journal.sent_before(inputs, request.params, client.base_url, any_state=True) is not None
            or (
                fingerprint is not None and journal.split_sent_before(fingerprint, any_state=True) is not None
            )
        )
    if not request.force and not known:
        result.gated = request.gates.gating(
            findings_to_send(result, aligned), extend_video=request.extend_video
        )
    if result.gated:
        result.error = gated_text(result.gated, result, request.gates, offer_force=not journaled)
    _tell(request.on_checked, result)
    return bool(result.gated)


def _plan_parts(
    request: _Request,
    result: PipelineResult,
    stages: Stages,
    inputs: dict[str, str],
    lengths: dict[str, float | None],
    heard: Future[Speech | None] | None,
) -> PipelineResult | None:
    """Where a split job is cut, then its parts sent (the result); None when it fits in
    one task (sent whole, already gated)."""
    stages.start("plan the parts")
    try:
        # The voice listened to before the fix serves again when the fix copied it.
        copied = result.fix is not None and any(
            f.role == "audio" and only_copied(f) for f in result.fix.files
        )
        plan = plan_split(
            inputs["video"],
            inputs["audio"],
            extend=request.extend_video,
            speech=heard.result() if copied and heard is not None else None,
        )
    except SplitError as exc:
        if request.dry_run and request.fix:
            # Planned on the inputs as they are; the fix (not run) may make it possible.
            stages.done("plan the parts", f"not planned before the fix: {exc}")
            return (
                result if _stopped(request, result, inputs) else _dry_run_done(result, stages, "nothing sent")
            )
        result.error = f"the job cannot be split: {exc}"
        return result
    result.plan = plan
    result.expected_s = plan.length_s
    how = "packet copies" if plan.copy else "encoded"
    stages.done("plan the parts", f"{len(plan.parts)} part(s), {how}: " + _cuts_text(plan))
    if _stopped(request, result, inputs):
        return result
    # One part is sent as it is only if both files fit; else it is cut to the job's
    # length like any part (a 150 s video under a 60 s voice).
    fits = all((seconds or 0.0) <= limits.MAX_DURATION_S for seconds in lengths.values())
    if len(plan.parts) <= 1 and fits:
        result.plan = None  # it fits in one task
        return None
    if request.dry_run:
        return _dry_run_done(result, stages, "nothing sent")
    client, journal = request.sender()
    assert request.fingerprint is not None
    return split_and_send(
        client,
        journal,
        request.fingerprint,
        inputs,
        plan,
        request.folder,
        request.output,
        request.params,
        request.options,
        request.force,
        result,
        stages,
        request.events,
        request.on_part,
    )


def _dry_run_done(result: PipelineResult, stages: Stages, detail: str) -> PipelineResult:
    stages.done("dry run", detail)
    result.ok = True
    return result


def _send_whole(
    request: _Request, result: PipelineResult, stages: Stages, inputs: dict[str, str]
) -> PipelineResult:
    """The job as one task: gated (unless a split already was), sent, downloaded, verified;
    on a dry run, what would be sent."""
    detail = "nothing sent"
    longest = request.options.max_duration_s
    if request.dry_run and request.fix and longest is not None and result.expected_s is not None:
        if result.expected_s > longest:
            # The files were not written: the fixer's trim is only planned.
            detail += (
                f"; the job is {result.expected_s:.2f} s, trimmed to {longest:.0f} s (--split sends it all)"
            )
            result.expected_s = longest
    if not request.split and _stopped(request, result, inputs):
        return result
    if request.dry_run:
        return _dry_run_done(result, stages, detail)
    client, journal = request.sender()
    stages.start("send")
    try:
        job = run_job(
            client,
            journal,
            inputs["video"],
            inputs["audio"],
            inputs.get("ref"),
            output=request.output,
            video_extension=True if request.extend_video else None,
            query_face_threshold=request.face_threshold,
            force=request.force,
            events=request.events,
        )
    except DuplicateJob as exc:
        # Sent, paid and downloaded into this very output by a run that ended before it
        # verified it (killed): verified now; telling the user to pay again with --force
        # would be the wrong advice.
        done = exc.job
        output = request.output
        if done.state != "downloaded" or done.output != os.path.abspath(output) or not os.path.exists(output):
            raise
        job = done
    result.job = job
    stages.done("upload, submit, wait, download", f"task {job.task_id}")
    return verify(request.output, result, stages)


def _error_codes(findings: Any) -> str:
    return ", ".join(x.code for x in findings if x.severity.value == "error")


def _speech_cut_s(check: CheckReport | None) -> float | None:
    """The speech the inputs' lengths cut (their ``Pair.SpeechCut``), or None."""
    if check is None or check.job is None:
        return None
    for finding in check.job.findings:
        if finding.code == "Pair.SpeechCut":
            cut = (finding.details or {}).get("speech_cut_s")
            return float(cut) if isinstance(cut, int | float) else None
    return None


def _tell(on_checked: Callable[[PipelineResult], None] | None, result: PipelineResult) -> None:
    if on_checked is not None:
        on_checked(result)


def _fixed_text(report: FixReport, folder: str) -> str:
    """What the fix did (or, on a dry run, would do), counted exactly."""
    changed = sum(1 for f in report.files if f.ok and [a.name for a in f.actions] not in ([], ["copy"]))
    copied = sum(1 for f in report.files if f.ok and only_copied(f))
    failed = sum(1 for f in report.files if not f.ok)
    verb = "would be " if report.dry_run else ""
    counts = [f"{changed} file(s) {verb}changed"] + ([f"{copied} {verb}copied as they are"] if copied else [])
    text = ", ".join(counts) + f", into {folder}" + (" (dry run: not written)" if report.dry_run else "")
    return text + (f"; {failed} cannot be made acceptable" if failed else "")


_T = TypeVar("_T")


def _in_background(work: Callable[[], _T]) -> Future[_T]:
    """``work`` started in a thread of its own; its future waited for when needed. (The
    thread is not a daemon: FFmpeg is never torn down under it at exit.)"""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retalk-listen")
    try:
        return pool.submit(work)
    finally:
        pool.shutdown(wait=False)


def _speech_of(audio: str) -> Speech | None:
    """The voice's speech stretches, or None when it cannot be read (the fix says why)."""
    try:
        return speech_ranges(audio)
    except (av.FFmpegError, OSError, ValueError, IndexError):
        return None


def _likely_cuts(video: str, audio: str, extend: bool, speech: Speech | None) -> tuple[float, ...]:
    """Where the job will probably be cut (s); none when the inputs cannot tell (the fix
    reports what is wrong with them)."""
    if speech is None:
        return ()
    try:
        video_s = duration_of(video, "video")
        return cut_times(audio, video_s, extend=extend, speech=speech) if video_s else ()
    except (av.FFmpegError, OSError, ValueError, IndexError, SplitError):
        return ()


def _per_file(watch: Callable[[float], None] | None) -> Callable[[int, int, str, float], None] | None:
    """The fixer's progress (file n of total, and how far in it) as one fraction."""
    if watch is None:
        return None

    def progress(number: int, total: int, path: str, fraction: float) -> None:
        watch(min(1.0, (number - 1 + fraction) / max(total, 1)))

    return progress


def _cuts_text(plan: SplitPlan) -> str:
    return ", ".join(f"{p.start_s:.2f}-{p.end_s:.2f} s" for p in plan.parts)
