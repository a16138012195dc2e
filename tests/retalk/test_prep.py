"""`prep-and-retalk` end to end against the emulator it starts itself (no key, no network)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from retalk._cli.prep import main
from tests.conftest import SAMPLE


def run(*args: str) -> tuple[int, dict[str, Any]]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main([*args, "--format", "json"])
    return status, json.loads(buffer.getvalue()) if buffer.getvalue() else {}


def duration(path: str | Path) -> float:
    with av.open(str(path)) as container:
        return float(container.duration or 0) / av.time_base


def test_the_sample_job_runs_end_to_end_on_the_emulator(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    status, report = run(
        str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"), "--ref", str(SAMPLE / "face.jpg"),
        "-o", str(out), "--emulator", "--journal", str(tmp_path / "j.sqlite"),
    )  # fmt: skip
    assert status == 0 and report["ok"], report.get("error")
    assert report["schema"] == "retalk.prep/1" and report["task_id"]
    assert report["result_duration_s"] == pytest.approx(report["expected_duration_s"], abs=0.25)
    assert report["cost_cny"] == pytest.approx(report["billed_s"] * 0.08, abs=0.01)
    assert [s["stage"] for s in report["stages"]] == [
        "check and fix",
        "upload, submit, wait, download",
        "verify",
    ]
    with av.open(str(out)) as container:
        assert container.streams.video and container.streams.audio
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # a normal file, not a private temporary


def test_a_result_over_the_size_cap_is_refused_and_the_job_left_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The sample's result is about 560 KB: a cap of 0.1 MiB (as for an endless body) stops
    # the download; the paid task stays in the journal, and the same command finishes it.
    out, journal = tmp_path / "out.mp4", tmp_path / "j.sqlite"
    status, _ = run(
        str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"), "-o", str(out),
        "--emulator", "--journal", str(journal), "--max-result-size", "0.1",
    )  # fmt: skip
    said = " ".join(capsys.readouterr().err.split())
    assert status == 3 and not out.exists(), said
    # No emulator runs for `retalk resume`: the advice is the one that works.
    assert "larger than the 0.1 MiB a result can be" in said and "retalk resume" not in said, said
    assert "the same command again (with --emulator) downloads it" in said
    from retalk._journal import Journal

    with Journal(journal) as jobs:
        (job,) = jobs.jobs()
    assert job.state == "submitted" and job.task_id
    status, report = run(
        str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"), "-o", str(out),
        "--emulator", "--journal", str(journal),
    )  # fmt: skip
    assert status == 0 and report["task_id"] == job.task_id and out.exists()


def test_a_download_bound_that_is_not_positive_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run(
        str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"), "-o", str(tmp_path / "o.mp4"),
        "--emulator", "--stall-timeout", "0",
    )  # fmt: skip
    assert status == 2 and not (tmp_path / "o.mp4").exists()
    assert "--stall-timeout 0: must be a positive number" in capsys.readouterr().err


def test_a_pair_that_needs_fixing_is_fixed_then_sent(media: Any, tmp_path: Path) -> None:
    video = media.write_video(tmp_path / "talk.mkv", fps=10, width=480, height=480, source="face",
                              container_format="matroska", duration=3.0)  # fmt: skip
    quiet = media.voice_like(3.0, 44100, level_db=-34.0)
    audio = media.write_audio(tmp_path / "voice.m4a", signal=quiet, sample_rate=44100)
    out = tmp_path / "out.mp4"
    status, report = run(
        str(video), str(audio), "-o", str(out), "--emulator", "--journal", str(tmp_path / "j.sqlite")
    )
    assert status == 0 and report["ok"], report.get("error")
    actions = {f["role"]: f["actions"] for f in report["fix"]["files"]}
    assert "fps" in actions["video"] and "scale" in actions["video"]
    assert "loudnorm" in actions["audio"]
    assert duration(out) == pytest.approx(3.0, abs=0.25)


def test_a_dry_run_says_what_would_be_sent_and_what_it_costs(tmp_path: Path) -> None:
    status, report = run(
        str(SAMPLE / "talking_head.mp4"),
        str(SAMPLE / "voice.wav"),
        "-o",
        str(tmp_path / "o.mp4"),
        "--dry-run",
    )
    assert status == 0 and report["task_id"] is None and report["output"] is None
    assert report["cost_cny"] == pytest.approx(report["expected_duration_s"] * 0.08, abs=0.01)
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.work").exists()


def test_inputs_that_cannot_be_fixed_stop_before_anything_is_sent(tmp_path: Path) -> None:
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    status, report = run(str(noise), str(SAMPLE / "voice.wav"), "-o", str(tmp_path / "o.mp4"), "--emulator",
                         "--journal", str(tmp_path / "j.sqlite"))  # fmt: skip
    assert status == 1 and not report["ok"] and "cannot be made acceptable" in report["error"]
    assert report["task_id"] is None and not (tmp_path / "o.mp4").exists()


def test_a_batch_of_five_with_one_bad_job_finishes_the_rest_and_a_rerun_skips_them(
    media: Any, tmp_path: Path
) -> None:
    lines = ["video,audio,ref,output,options"]
    for index, seconds in enumerate((2.2, 2.4, 2.6, 2.8)):
        media.write_video(tmp_path / f"clip{index}.mp4", duration=seconds, source="face")
        options = "--extend-video" if index == 3 else ""
        lines.append(f"clip{index}.mp4,{SAMPLE / 'voice.wav'},,out/clip{index}.mp4,{options}")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    lines.append(f"broken.mp4,{SAMPLE / 'voice.wav'},,out/broken.mp4,")
    batch = tmp_path / "jobs.csv"
    batch.write_text("\n".join(lines) + "\n")
    journal = str(tmp_path / "j.sqlite")

    def run_batch(*extra: str) -> tuple[int, dict[str, Any]]:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            status = main(
                ["--batch", str(batch), "--emulator", "--journal", journal, "--format", "json", *extra]
            )
        return status, json.loads(buffer.getvalue())

    status, report = run_batch()
    statuses = {Path(j["output"]).name: j["status"] for j in report["jobs"]}
    assert statuses == {"clip0.mp4": "done", "clip1.mp4": "done", "clip2.mp4": "done", "clip3.mp4": "done",
                        "broken.mp4": "refused"}  # fmt: skip
    assert status == 1
    assert report["summary"] == {"done": 4, "skipped": 0, "refused": 1, "gated": 0, "failed": 0}
    # The voice (4.0 s) is longer than every clip: cut to the clip, or the clip extended.
    assert duration(tmp_path / "out" / "clip0.mp4") == pytest.approx(2.2, abs=0.25)
    assert duration(tmp_path / "out" / "clip3.mp4") == pytest.approx(4.0, abs=0.25)
    again, second = run_batch()
    assert again == 1
    assert second["summary"] == {"done": 0, "skipped": 4, "refused": 1, "gated": 0, "failed": 0}
