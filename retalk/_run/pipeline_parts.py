"""The pipeline's stages for a job sent in parts: cut the inputs, check each part, write
the split down, send the parts, join their results and verify the whole.

Apart from ``pipeline`` (the steps every job takes) and from ``parts`` (the split's
journal and its parts' tasks, which ``retalk resume`` drives without a pipeline).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import av

from preflight import CheckOptions, FixOptions, SplitError, SplitPlan, check_paths, write_parts

from .._http import Client
from .._journal import Journal
from .job import Events
from .result import PipelineResult, Stages, verify
from .split_tasks import join_split, parts_folder, record_split, send_parts, stop_split, voice_track_ahead


def split_and_send(
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
    stages: Stages,
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
    return send_split(client, journal, split.id, result, stages, events, on_part)


def send_split(
    client: Client,
    journal: Journal,
    split_id: int,
    result: PipelineResult,
    stages: Stages,
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
    return verify(split.output, result, stages)
