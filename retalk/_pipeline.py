"""``prep-and-retalk``: from raw files to the lip-synced video, each stage visible.

check -> fix into a work folder -> check again (stop when errors remain) -> upload ->
submit -> wait -> download -> verify the result -> summary. The journal (``_jobs``) makes
every paid step resumable.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import av

from preflight import (
    CheckOptions,
    CheckReport,
    Finding,
    FixedFile,
    FixOptions,
    FixReport,
    check_paths,
    fix_paths,
    limits,
    local_file,
)
from preflight._audio_analysis import speech_ranges
from preflight._split import (
    JoinReport,
    Speech,
    SplitError,
    SplitPlan,
    cut_times,
    plan_split,
    write_parts,
)

from ._exceptions import ConfigError, RetalkError
from ._gates import Gates
from ._http import Client
from ._jobs import Events, run_job
from ._journal import DuplicateJob, DuplicateSplit, Job, Journal, sha256_of
from ._output_path import check_output, refuse_replacing
from ._split import (
    PartOutcome,
    intact,
    join_split,
    parts_folder,
    record_split,
    send_parts,
    split_fingerprint,
    stop_split,
    voice_track_ahead,
)

#: The result may differ from the expected length by this much (a frame or two, AAC padding).
DURATION_TOLERANCE_S = 0.25


@dataclass
class Stage:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class PipelineResult:
    """What happened, for the summary (text or JSON)."""

    ok: bool
    output: str | None = None
    stages: list[Stage] = field(default_factory=list)
    check: CheckReport | None = None
    fix: FixReport | None = None
    job: Job | None = None
    sent: dict[str, str] = field(default_factory=dict)
    expected_s: float | None = None
    result_s: float | None = None
    error: str | None = None
    #: A job sent in parts (``split``): where it was cut, and each part's task.
    plan: SplitPlan | None = None
    parts: list[PartOutcome] = field(default_factory=list)
    split_id: int | None = None
    joined: JoinReport | None = None
    #: Findings that stopped the job before anything was sent (``_gates``).
    gated: list[Finding] = field(default_factory=list)
    #: Speech ``--align trim`` cuts (the inputs' ``Pair.SpeechCut``): chosen, so not gated.
    trim_cuts_speech_s: float | None = None

    @property
    def billed_s(self) -> float | None:
        if self.parts:
            billed = [p.job.billed_s for p in self.parts]
            return None if any(b is None for b in billed) else round(sum(b or 0.0 for b in billed), 3)
        return self.job.billed_s if self.job is not None else None

    @property
    def cost_cny(self) -> float | None:
        seconds = self.billed_s if self.billed_s is not None else self.expected_s
        return None if seconds is None else round(seconds * limits.PRICE_CNY_PER_SECOND, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "retalk.prep/1",
            "ok": self.ok,
            "output": self.output,
            "sent": self.sent,
            "expected_duration_s": None if self.expected_s is None else round(self.expected_s, 3),
            "result_duration_s": None if self.result_s is None else round(self.result_s, 3),
            "billed_s": self.billed_s,
            "cost_cny": self.cost_cny,
            "task_id": self.job.task_id if self.job is not None else None,
            "split": None
            if self.plan is None
            else {
                "id": self.split_id,
                "cut_by": "copy" if self.plan.copy else "encode",
                "joined_by": self.joined.video if self.joined is not None else None,
                "notes": list(self.joined.notes) if self.joined is not None else [],
                "parts": [p.to_dict() for p in self.parts]
                or [
                    {"part": p.index + 1, "start_s": round(p.start_s, 3), "end_s": round(p.end_s, 3)}
                    for p in self.plan.parts
                ],
            },
            "stages": [
                {"stage": s.name, "seconds": round(s.seconds, 3), "detail": s.detail} for s in self.stages
            ],
            "check": self.check.to_dict() if self.check is not None else None,
            "fix": self.fix.to_dict() if self.fix is not None else None,
            "gated": [f.to_dict() for f in self.gated],
            "trim_cuts_speech_s": self.trim_cuts_speech_s,
            "error": self.error,
        }


def _duration(path: str, kind: str) -> float | None:
    with av.open(local_file(path)) as container:
        streams = container.streams.video if kind == "video" else container.streams.audio
        if streams and streams[0].duration is not None and streams[0].time_base is not None:
            return float(streams[0].duration * streams[0].time_base)
        return float(container.duration) / av.time_base if container.duration else None


def _length_of(path: str) -> float | None:
    """The result's length as a player shows it: the container's (its longest stream)."""
    with av.open(local_file(path)) as container:
        return float(container.duration) / av.time_base if container.duration else None


def _error_codes(findings: Any) -> str:
    return ", ".join(x.code for x in findings if x.severity.value == "error")


def expected_length(video_s: float | None, audio_s: float | None, extend: bool) -> float | None:
    """How long the service's result will be: the shorter of the two, or the voice's length
    when the video is extended to it."""
    if video_s is None or audio_s is None:
        return None
    return audio_s if extend else min(video_s, audio_s)


#: Whole-file limits a job sent in parts may exceed: each part is checked on its own.
SPLIT_IGNORES = ("InvalidFile.Duration", "InvalidFile.Size")


def only_copied(fixed: FixedFile) -> bool:
    """The fix only copied the file: it was accepted as it is."""
    return [a.name for a in fixed.actions] == ["copy"]


def file_keys(path: str | os.PathLike[str]) -> set[object]:
    """What makes two paths one file: the path with links and ``..`` resolved, and, when it
    exists, its device and inode (a hard link, or a case-insensitive file system's other
    spelling)."""
    keys: set[object] = {os.path.realpath(path)}
    try:
        status = os.stat(path)
    except OSError:
        return keys
    keys.add((status.st_dev, status.st_ino))
    return keys


def refuse_overwriting(output: str | os.PathLike[str], others: dict[str, str | None]) -> None:
    """``ConfigError`` naming both paths when the result would replace one of ``others``
    (role -> path: the inputs, the journal): checked before anything is sent."""
    written = file_keys(output)
    for role, path in others.items():
        if path and written & file_keys(path):
            raise ConfigError(
                f"the output {os.fspath(output)} is the {role} {path}: the result would replace it "
                "(choose another output)"
            )


class _Stages:
    """Times each stage of the pipeline into the result, and tells the caller it started."""

    def __init__(
        self,
        result: PipelineResult,
        on_stage: Callable[[str], None] | None,
        on_progress: Callable[[str, float], None] | None = None,
    ) -> None:
        self._result = result
        self._on_stage = on_stage
        self._on_progress = on_progress
        self._clock = time.perf_counter()

    def progress(self, name: str) -> Callable[[float], None] | None:
        """How far the stage ``name`` is (a fraction), for the caller; None when unwatched."""
        watcher = self._on_progress
        if watcher is None:
            return None
        return lambda fraction: watcher(name, fraction)

    def start(self, name: str) -> None:
        self._clock = time.perf_counter()
        if self._on_stage is not None:
            self._on_stage(name)

    def done(self, name: str, detail: str = "") -> None:
        now = time.perf_counter()
        self._result.stages.append(Stage(name, now - self._clock, detail))
        self._clock = now


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
    result = _prepare_and_retalk(
        client, journal, originals, video, audio, ref, output,
        work_dir=work_dir, fix=fix, dry_run=dry_run, extend_video=extend_video,
        face_threshold=face_threshold, fix_options=fix_options, check_options=check_options,
        overwrite=overwrite, force=force, split=split, gates=gates, events=events,
        on_stage=on_stage, on_checked=on_checked, on_part=on_part, on_progress=on_progress,
    )  # fmt: skip
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


def _prepare_and_retalk(
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
    on_stage: Callable[[str], None] | None,
    on_checked: Callable[[PipelineResult], None] | None,
    on_part: Callable[[int, int, str], None] | None,
    on_progress: Callable[[str, float], None] | None,
) -> PipelineResult:
    result = PipelineResult(ok=False)
    stages = _Stages(result, on_stage, on_progress)
    params: dict[str, Any] = {}
    if extend_video:
        params["video_extension"] = True
    if face_threshold is not None:
        params["query_face_threshold"] = face_threshold
    options = fix_options or FixOptions()
    folder = work_dir or str(Path(output).resolve().parent / f"{Path(output).stem}.work")
    base_check = check_options or CheckOptions()
    check_options = replace(base_check, ignore=(*base_check.ignore, *SPLIT_IGNORES)) if split else base_check
    fingerprint = None
    if split and not dry_run:
        if client is None or journal is None:
            raise RetalkError("a client and a journal are needed to send the job")
        settings = {
            "fix": fix,
            # (Keyframes follow from the inputs; a function would not compare.)
            "options": {k: v for k, v in asdict(options).items() if k != "keyframes_at"},
            "params": params,
            "work_dir": folder,
            "output": os.path.abspath(output),
        }
        if base_check != CheckOptions():
            # Only when set: the splits of a run without settings keep their fingerprints.
            settings["check"] = asdict(base_check)
        fingerprint = split_fingerprint(originals, settings, client.base_url)
        found = journal.find_split(fingerprint)
        if found is not None and force:
            if found.state == "running":
                journal.update_split(found.id, state="failed", error="sent again with --force")
            found = None
        if found is not None and found.state == "joined":
            if os.path.exists(found.output) or not intact(found):
                raise DuplicateSplit(found)
            # Joined before, its output since removed: joined again from the parts' results
            # (fetched again if need be), nothing paid twice.
            found = journal.update_split(found.id, state="running")
        if found is not None and found.state == "running":
            if intact(found):
                stages.start("resume")
                stages.done("resume", f"split {found.id} found in the journal; its parts go on")
                result.plan = SplitPlan.from_dict(found.plan["plan"])
                result.expected_s = result.plan.length_s
                result.sent = {"video": found.plan.get("video", video), "audio": found.plan["voice"]}
                if found.plan.get("ref"):
                    result.sent["ref"] = found.plan["ref"]
                return _send_split(client, journal, found.id, result, stages, events, on_part)
            journal.update_split(found.id, state="failed", error="its part files are gone or were replaced")

    heard: Future[Speech | None] | None = None
    if split:
        options = replace(options, max_duration_s=None)
        if fix:
            # The voice is listened to on the other core while the fixer checks the files.
            listening = heard = _in_background(lambda: _speech_of(audio))

            def likely_cuts() -> tuple[float, ...]:
                return _likely_cuts(video, audio, extend_video, listening.result())

            # Should the fixer re-encode the video, it puts keyframes where the job will be
            # cut: the parts are then packet copies, not a second encode.
            options = replace(options, keyframes_at=likely_cuts)
    inputs = dict(originals)
    if fix:
        # One pass: the fixer checks the inputs (shown as the check) and its outputs.
        stages.start("check and fix")
        result.fix = fix_paths(
            video=video,
            audio=audio,
            ref=ref,
            out_dir=folder,
            options=options,
            check_options=check_options,
            dry_run=dry_run,
            overwrite=overwrite,
            on_progress=_per_file(stages.progress("check and fix")),
        )
        result.check = result.fix.checked
        if options.align == "trim":
            result.trim_cuts_speech_s = _speech_cut_s(result.check)
        stages.done("check and fix", _fixed_text(result.fix, folder))
        if not result.fix.ok:
            problems = [
                f"{f.path}: {f.error or _error_codes(f.findings)}" for f in result.fix.files if not f.ok
            ]
            result.error = "the inputs cannot be made acceptable: " + "; ".join(problems)
            _tell(on_checked, result)
            return result
        if not dry_run:
            inputs = {f.role: f.output for f in result.fix.files if f.output}
    else:
        stages.start("check")
        result.check = check_paths(video=video, audio=audio, ref=ref, options=check_options)
        stages.done("check", f"{result.check.errors} error(s), {result.check.warnings} warning(s)")
        if not result.check.ok:
            result.error = "the service would reject the inputs (run without --no-fix to fix them)"
            _tell(on_checked, result)
            return result
    result.sent = dict(inputs)
    if dry_run and result.fix is not None:
        # What would be sent: the fixed copies, where the fix would write them.
        result.sent = {f.role: f.planned for f in result.fix.files if f.planned} or result.sent
    lengths = {role: _duration(inputs[role], role) for role in ("video", "audio")}
    result.expected_s = expected_length(lengths["video"], lengths["audio"], extend_video)
    gate = gates if gates is not None else Gates()

    def stopped() -> bool:
        """Tell the caller what was found; True when a gate stops the job (nothing sent)."""
        aligned = dry_run and fix and options.align != "service"
        # A job these very inputs already made (sent with --accept, open or done) is not
        # gated again: it is taken up or reported as before, never paid for twice.
        # A split of these inputs and settings counts the same way: a failed one run again
        # pays only for the parts that did not make it (its paid parts are taken up).
        known = journaled = False
        if journal is not None and client is not None and not dry_run:
            known = journal.sent_before(inputs, params, client.base_url) is not None or (
                fingerprint is not None and journal.split_sent_before(fingerprint) is not None
            )
            journaled = known or (
                journal.sent_before(inputs, params, client.base_url, any_state=True) is not None
                or (
                    fingerprint is not None
                    and journal.split_sent_before(fingerprint, any_state=True) is not None
                )
            )
        if not force and not known:
            result.gated = gate.gating(_to_send(result, aligned), extend_video=extend_video)
        if result.gated:
            result.error = _gated_text(result.gated, result, gate, offer_force=not journaled)
        _tell(on_checked, result)
        return bool(result.gated)

    if split:
        stages.start("plan the parts")
        try:
            # The voice listened to before the fix serves again when the fix copied it.
            copied = result.fix is not None and any(
                f.role == "audio" and only_copied(f) for f in result.fix.files
            )
            plan = plan_split(
                inputs["video"],
                inputs["audio"],
                extend=extend_video,
                speech=heard.result() if copied and heard is not None else None,
            )
        except SplitError as exc:
            if dry_run and fix:
                # Planned on the inputs as they are; the fix (not run) may make it possible.
                stages.done("plan the parts", f"not planned before the fix: {exc}")
                if stopped():
                    return result
                stages.done("dry run", "nothing sent")
                result.ok = True
                return result
            result.error = f"the job cannot be split: {exc}"
            return result
        result.plan = plan
        result.expected_s = plan.length_s
        how = "packet copies" if plan.copy else "encoded"
        stages.done("plan the parts", f"{len(plan.parts)} part(s), {how}: " + _cuts_text(plan))
        if stopped():
            return result
        # One part is sent as it is only if both files fit; else it is cut to the job's
        # length like any part (a 150 s video under a 60 s voice).
        fits = all((seconds or 0.0) <= limits.MAX_DURATION_S for seconds in lengths.values())
        if len(plan.parts) > 1 or not fits:
            if dry_run:
                stages.done("dry run", "nothing sent")
                result.ok = True
                return result
            assert client is not None and journal is not None and fingerprint is not None
            return _split_and_send(
                client,
                journal,
                fingerprint,
                inputs,
                plan,
                folder,
                output,
                params,
                options,
                force,
                result,
                stages,
                events,
                on_part,
            )
        result.plan = None  # it fits in one task

    detail = "nothing sent"
    longest = options.max_duration_s
    if (
        dry_run
        and fix
        and longest is not None
        and result.expected_s is not None
        and result.expected_s > longest
    ):
        # The files were not written: the fixer's trim is only planned.
        detail += f"; the job is {result.expected_s:.2f} s, trimmed to {longest:.0f} s (--split sends it all)"
        result.expected_s = longest
    if not split and stopped():
        return result
    if dry_run:
        stages.done("dry run", detail)
        result.ok = True
        return result
    if client is None or journal is None:
        raise RetalkError("a client and a journal are needed to send the job")
    stages.start("send")
    try:
        job = run_job(
            client,
            journal,
            inputs["video"],
            inputs["audio"],
            inputs.get("ref"),
            output=output,
            video_extension=True if extend_video else None,
            query_face_threshold=face_threshold,
            force=force,
            events=events,
        )
    except DuplicateJob as exc:
        # Sent, paid and downloaded into this very output by a run that ended before it
        # verified it (killed): verified now; telling the user to pay again with --force
        # would be the wrong advice.
        done = exc.job
        if done.state != "downloaded" or done.output != os.path.abspath(output) or not os.path.exists(output):
            raise
        job = done
    result.job = job
    stages.done("upload, submit, wait, download", f"task {job.task_id}")
    return _verify(output, result, stages)


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


def _to_send(result: PipelineResult, aligned: bool) -> list[Finding]:
    """The findings of what would be sent: the fixed copies and the job they make (on a dry
    run, the inputs'), or the inputs' without the fix. ``aligned``: a dry run whose fix
    would make voice and video the same length (``--align``), so no word is cut."""
    if result.fix is not None:
        found = [f for fixed in result.fix.files for f in fixed.findings]
        found += list(result.fix.job.findings) if result.fix.job is not None else []
    else:
        found = result.check.all_findings() if result.check is not None else []
    return [f for f in found if not (aligned and f.code == "Pair.SpeechCut")]


def _gated_text(gated: list[Finding], result: PipelineResult, gates: Gates, offer_force: bool = True) -> str:
    """Why the job stopped, what sending it would cost, and how to send it anyway
    (``offer_force``: False when the journal holds a job or split for these inputs: --force
    would start new jobs, paying again for parts already paid)."""
    reasons = "; ".join(f"{f.code} ({f.message.rstrip('.')})" for f in gated)
    if result.expected_s is not None and result.cost_cny is not None:
        cost = f"about {result.cost_cny:.2f} CNY ({result.expected_s:.2f} s billed)"
    else:
        cost = "an unknown amount (the result's length is unknown)"
    passes = " ".join(f"--accept {f.code}" for f in gated)
    threshold = (
        f", speech_cut_s (now {gates.speech_cut_s:g} s)"
        if any(f.code == "Pair.SpeechCut" for f in gated)
        else ""
    )
    return (
        f"stopped before sending, nothing uploaded or paid: {reasons}. Sent as it is, the job "
        f"would cost {cost} for a result you would not want. To send it anyway: {passes}"
        + (", or --force (passes every gate)" if offer_force else "")
        + f"; settings: [prep] gate{threshold}"
    )


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
        video_s = _duration(video, "video")
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


def _verify(output: str, result: PipelineResult, stages: _Stages) -> PipelineResult:
    stages.start("verify")
    result.output = os.path.abspath(output)
    result.result_s = _length_of(output)
    stages.done("verify", f"{result.result_s:.2f} s" if result.result_s is not None else "no duration")
    if result.result_s is None or (
        result.expected_s is not None and abs(result.result_s - result.expected_s) > DURATION_TOLERANCE_S
    ):
        result.error = f"the result lasts {result.result_s} s; {result.expected_s} s was expected"
        return result
    result.ok = True
    return result


def _split_and_send(
    client: Client,
    journal: Journal,
    fingerprint: str,
    inputs: dict[str, str],
    plan: SplitPlan,
    folder: str,
    output: str,
    params: dict[str, Any],
    options: FixOptions,
    force: bool,
    result: PipelineResult,
    stages: _Stages,
    events: Events | None,
    on_part: Callable[[int, int, str], None] | None,
) -> PipelineResult:
    stages.start("cut into parts")
    where = parts_folder(folder, fingerprint)
    try:
        files = write_parts(
            inputs["video"],
            inputs["audio"],
            plan,
            where,
            preset=options.preset,
            crf=options.crf,
            on_progress=stages.progress("cut into parts"),
        )
    except SplitError as exc:
        result.error = f"the job could not be cut into parts: {exc}"
        return result
    stages.done("cut into parts", f"{len(files)} part(s) into {where}")
    stages.start("check the parts")
    problems = []
    # Only what the service would refuse a part for: the whole was analysed already. With a
    # reference face, each part must show it (InvalidFile.FaceNotMatch), so faces are looked at.
    part_options = CheckOptions(select=("InvalidFile",), fast=not inputs.get("ref"))
    for number, part in enumerate(files, start=1):
        checked = check_paths(video=part.video, audio=part.audio, ref=inputs.get("ref"), options=part_options)
        if not checked.ok:
            codes = sorted({f.code for f in checked.all_findings() if f.severity.value == "error"})
            problems.append(f"part {number}: {', '.join(codes)}")
    stages.done("check the parts", "; ".join(problems) or f"{len(files)} parts pass")
    if problems:
        result.error = "a part would be rejected: " + "; ".join(problems)
        return result
    try:
        split = record_split(
            journal,
            fingerprint,
            output,
            plan,
            files,
            video=inputs["video"],
            voice=inputs["audio"],
            ref=inputs.get("ref"),
            params=params,
            base_url=client.base_url,
            preset=options.preset,
            crf=options.crf,
            force=force,
        )
    except BaseException as exc:
        # Ctrl-C (or a stopped batch) while its parts were being written down: closed, as
        # nothing of it was sent.
        if not isinstance(exc, Exception):
            found = journal.find_split(fingerprint)
            if found is not None and found.state == "running":
                stop_split(journal, found.id)
        raise
    return _send_split(client, journal, split.id, result, stages, events, on_part)


def _send_split(
    client: Client,
    journal: Journal,
    split_id: int,
    result: PipelineResult,
    stages: _Stages,
    events: Events | None,
    on_part: Callable[[int, int, str], None] | None,
) -> PipelineResult:
    split = journal.split(split_id)
    result.split_id = split.id
    stages.start("send the parts")
    # The joined result's sound is encoded while the parts are away.
    try:
        with voice_track_ahead(split):
            result.parts = send_parts(client, journal, split, events=events, on_part=on_part)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            # Ctrl-C, a stopped batch: closed with all its parts if none was ever submitted
            # (else `retalk resume` would pay for parts of a split that cannot be joined);
            # kept whole for `retalk resume` once one was.
            stop_split(journal, split.id)
        raise
    tasks = ", ".join(p.job.task_id or "?" for p in result.parts)
    stages.done("upload, submit, wait, download", f"{len(result.parts)} tasks: {tasks}")
    stages.start("join")
    try:
        result.joined = join_split(journal, journal.split(split.id), on_progress=stages.progress("join"))
    except (SplitError, av.FFmpegError, OSError) as exc:
        folder = os.path.dirname(split.plan["parts"][0]["result"])
        result.error = f"the parts are done (results in {folder}) but could not be joined: {exc}"
        return result
    notes = "; ".join(result.joined.notes)
    stages.done(
        "join", f"{result.joined.video}, {result.joined.frames} frames" + (f"; {notes}" if notes else "")
    )
    if result.plan is not None:
        result.expected_s = result.plan.length_s
    return _verify(split.output, result, stages)
