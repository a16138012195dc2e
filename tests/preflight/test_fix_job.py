"""`preflight fix` on a whole job: voice and video lengths aligned as the user chooses,
outputs written whole or not at all, and the command line's promises (dry run, JSON,
exit status, Ctrl-C)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from preflight import CheckOptions, FixOptions, FixReport, fix_paths
from preflight._cli.main import main
from tests.conftest import ROOT, SAMPLE, run_cli


def duration(path: str | Path) -> float:
    with av.open(str(path)) as container:
        return float(container.duration or 0) / av.time_base


#: Container checks only: these stories are about lengths and outputs, not faces or speech.
FAST = CheckOptions(fast=True)


@pytest.fixture()
def job(media, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(video_s: float, audio_s: float) -> tuple[Path, Path]:
        video = media.write_video(tmp_path / "talk.mp4", duration=video_s)
        audio = media.write_audio(tmp_path / "voice.wav", duration=audio_s)
        return video, audio

    return make


@pytest.fixture()
def fixed(job: Callable[[float, float], tuple[Path, Path]], tmp_path: Path) -> Callable[..., FixReport]:
    def fix(video_s: float, audio_s: float, **options: Any) -> FixReport:
        """A job of a ``video_s`` video and an ``audio_s`` voice, fixed with these options."""
        video, audio = job(video_s, audio_s)
        return fix_paths(
            video=video,
            audio=audio,
            out_dir=tmp_path / "out",
            options=FixOptions(**options),
            check_options=FAST,
        )

    return fix


def outputs(report) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f.role: f.output for f in report.files}


def job_codes(report: FixReport) -> list[str]:
    """The codes of what the fixed job's check says of the pair."""
    assert report.job is not None
    return [f.code for f in report.job.findings]


def test_by_default_the_lengths_are_left_to_the_service_and_it_says_so(
    fixed: Callable[..., FixReport],
) -> None:
    report = fixed(4.0, 3.0)
    assert [a.name for f in report.files for a in f.actions] == ["copy", "copy"]
    (note,) = report.job_actions
    assert note.name == "align" and "cuts the longer video to 3.00 s" in note.detail
    assert "Pair.DurationMismatch" in job_codes(report)


def test_align_trim_cuts_both_to_the_shorter(fixed: Callable[..., FixReport]) -> None:
    report = fixed(4.0, 3.0, align="trim")
    made = outputs(report)
    assert duration(made["video"]) == pytest.approx(3.0, abs=0.05)
    assert duration(made["audio"]) == pytest.approx(3.0, abs=0.01)
    assert "Pair.DurationMismatch" not in job_codes(report)


def test_align_extend_holds_the_video_to_the_voice(fixed: Callable[..., FixReport]) -> None:
    report = fixed(3.0, 4.5, align="extend", preset="ultrafast")
    made = outputs(report)
    assert duration(made["video"]) == pytest.approx(4.5, abs=0.05)
    assert [a.name for a in report.files[1].actions] == ["copy"]
    assert "Pair.DurationMismatch" not in job_codes(report)


def test_align_pad_fills_the_voice_to_the_video(fixed: Callable[..., FixReport]) -> None:
    report = fixed(4.0, 3.0, align="pad")
    made = outputs(report)
    assert duration(made["audio"]) == pytest.approx(4.0, abs=0.01)
    assert [a.name for a in report.files[0].actions] == ["copy"]


def test_a_job_that_passes_is_copied_byte_for_byte_in_the_contract_json(job, tmp_path: Path) -> None:
    video, audio = job(3.0, 3.0)
    ref = SAMPLE / "face.jpg"
    status, out = run_cli(
        "fix", "--video", str(video), "--audio", str(audio), "--ref", str(ref),
        "--out-dir", str(tmp_path / "o"), "--format", "json",
    )  # fmt: skip
    data = json.loads(out)
    assert status == 0 and data["schema"] == "preflight.fix/1"
    assert [entry["role"] for entry in data["files"]] == ["video", "audio", "ref"]
    for entry in data["files"]:
        assert set(entry) >= {"path", "role", "output", "actions", "ok", "findings"}
        assert entry["ok"] and entry["actions"] == ["copy"]
        assert Path(entry["output"]).read_bytes() == Path(entry["path"]).read_bytes()
    assert data["job"] is not None and data["summary"] == {"files": 3, "fixed": 3, "failed": 0}


def test_a_dry_run_prints_the_plan_and_writes_nothing(media, tmp_path: Path) -> None:
    video = media.write_video(tmp_path / "slow.mp4", fps=10)
    status, out = run_cli("fix", str(video), "--out-dir", str(tmp_path / "o"), "--dry-run")
    assert status == 0
    assert "fps" in out and "10 -> 20 fps" in out and "(dry run)" in out
    assert not (tmp_path / "o").exists()


def test_a_file_that_cannot_be_fixed_exits_1_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "empty.mp4"
    bad.write_bytes(b"")
    status, out = run_cli("fix", "--video", str(bad), "--out-dir", str(tmp_path / "o"))
    assert status == 1 and "not fixed" in out and "Traceback" not in out


def test_an_out_dir_that_is_a_file_is_bad_usage(media, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    video = media.write_video(tmp_path / "talk.mp4")
    (tmp_path / "taken").write_text("x")
    assert main(["fix", str(video), "--out-dir", str(tmp_path / "taken")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_an_interrupted_fix_leaves_no_file_behind(media, tmp_path: Path) -> None:
    video = media.write_video(tmp_path / "slow.mp4", fps=10, duration=4.0)
    out = tmp_path / "out"

    def interrupt(number: int, total: int, path: str, fraction: float) -> None:
        if fraction > 0.3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fix_paths(video=video, out_dir=out, on_progress=interrupt, check_options=FAST)
    assert list(out.iterdir()) == []


def test_ctrl_c_on_the_command_line_exits_130_and_leaves_nothing(media, tmp_path: Path) -> None:
    video = media.write_video(tmp_path / "long.mp4", fps=10, duration=60.0, width=1280, height=720)
    out = tmp_path / "out"
    # A run started in the background by a shell (CI, `cmd &`) ignores SIGINT, and an ignored
    # signal stays ignored in every child: the fix would never hear the Ctrl-C. A handler,
    # unlike SIG_IGN, is reset to the default in the child, as at a terminal.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "preflight", "fix", "--video", str(video), "--out-dir", str(out), "--fast",
             "--preset", "medium"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        # Interrupted once it writes: waiting on that (or on its end), not on a wall-clock
        # guess a loaded machine can outlast. 600 frames of 720p take far longer to encode
        # than the signal to arrive, and x264's medium preset answers it between frames.
        while not (out.exists() and list(out.glob(".*.part"))):
            assert process.poll() is None, f"it ended before writing: {process.stderr.read()!r}"  # type: ignore[union-attr]
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert list(out.iterdir()) == []


def test_a_second_of_noise_is_padded_but_still_has_no_speech(media, tmp_path: Path) -> None:
    import numpy as np

    noise = np.random.default_rng(5).normal(0.0, 0.05, 16000)
    src = media.write_audio(tmp_path / "hiss.wav", signal=noise, sample_rate=16000)
    report = fix_paths(audio=src, out_dir=tmp_path / "out")
    (fixed,) = report.files
    assert [a.name for a in fixed.actions] == ["pad"]
    assert fixed.ok and duration(fixed.output or "") == pytest.approx(2.0, abs=0.01)
    assert "Audio.NoSpeech" in [f.code for f in fixed.findings]


def test_several_faces_and_no_reference_get_an_offer_or_a_made_reference(
    media, tmp_path: Path, engine
) -> None:
    video = media.write_video(tmp_path / "panel.mp4", source="two_faces", duration=2.2)
    offered = fix_paths(video=video, out_dir=tmp_path / "a", engine=engine)
    assert any("--make-ref" in note for note in offered.files[0].notes)
    made = fix_paths(video=video, out_dir=tmp_path / "b", options=FixOptions(make_ref=True), engine=engine)
    ref = next(f for f in made.files if f.role == "ref")
    assert ref.ok and ref.output is not None and ref.output.endswith(".jpg")


def test_a_dry_run_names_where_each_output_would_go_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "ready"
    report = fix_paths(
        video=SAMPLE / "talking_head.mp4", audio=SAMPLE / "voice.wav", out_dir=out, dry_run=True
    )
    assert [f.planned for f in report.files] == [str(out / "talking_head.mp4"), str(out / "voice.wav")]
    assert all(f.output is None for f in report.files) and not out.exists()
    assert report.to_dict()["files"][0]["planned"] == str(out / "talking_head.mp4")
