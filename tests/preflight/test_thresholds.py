"""A project tunes when the face and voice findings fire: `[thresholds.face]` and
`[thresholds.audio]` in its settings file (or `CheckOptions(thresholds=...)`). The findings,
their messages, the fixer's plans and its check of its own outputs all follow the same
numbers. Every file here is real media written with PyAV and checked by the real engines.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight import (
    AudioThresholds,
    CheckOptions,
    FaceThresholds,
    FixOptions,
    LazyEngine,
    Thresholds,
    UsageError,
    check_image,
    check_video,
    fix_paths,
)
from tests.conftest import run_cli

RATE = 16000


def findings_by_file(out: str) -> dict[str, list[dict[str, Any]]]:
    return {Path(f["path"]).name: f["findings"] for f in json.loads(out)["files"]}


def codes_of(findings: list[dict[str, Any]]) -> list[str]:
    return [f["code"] for f in findings]


@pytest.fixture()
def voices(media: Any, tmp_path: Path) -> Path:
    """A folder with two voices: quiet (-42.5 LUFS) and softer (-32.5 LUFS), both under the
    default line of -28 LUFS."""
    folder = tmp_path / "voices"
    folder.mkdir()
    for name, peak_db in (("quiet.wav", -30.0), ("softer.wav", -20.0)):
        media.write_audio(
            folder / name, signal=media.voice_like(4.0, RATE, level_db=peak_db), sample_rate=RATE
        )
    return folder


def test_a_project_that_lowers_the_quiet_line_stops_hearing_quiet_voices_above_it(
    voices: Path, tmp_path: Path
) -> None:
    _, out = run_cli("check", str(voices), "--format", "json", "--no-cache")
    found = findings_by_file(out)
    assert codes_of(found["quiet.wav"]) == codes_of(found["softer.wav"]) == ["Audio.Quiet"]
    assert "want at least -28;" in found["softer.wav"][0]["message"]

    (tmp_path / "preflight.toml").write_text("[thresholds.audio]\nquiet_lufs = -36.5\n")
    status, out = run_cli("check", str(voices), "--format", "json", "--no-cache")
    found = findings_by_file(out)
    assert found["softer.wav"] == []
    (quiet,) = found["quiet.wav"]
    assert quiet["code"] == "Audio.Quiet" and quiet["details"]["min_lufs"] == -36.5
    assert "-42.5 LUFS integrated (want at least -36.5;" in quiet["message"]
    assert status == 0  # a warning


def test_a_pyproject_table_tunes_the_face_findings_of_real_clips(
    made: Callable[..., Path], tmp_path: Path
) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    clip = {"fps": 25, "duration": 2.0, "quality": 30}
    for name, source, width in (("wide.mp4", "small_face", 1280), ("turned.mp4", "turned_face", 720)):
        (folder / name).write_bytes(
            made("video", f"thresholds {name}", width=width, height=720, source=source, **clip).read_bytes()
        )
    _, out = run_cli("check", str(folder), "--format", "json", "--no-cache")
    found = findings_by_file(out)
    (small,) = found["wide.mp4"]  # a 50 px face, 7% of the frame height
    assert small["code"] == "Face.TooSmall" and "want at least 128 px and 15%" in small["message"]
    (turned,) = found["turned.mp4"]  # the cameraman looks 53 degrees aside
    assert turned["code"] == "Face.NotFrontal" and "want within 30 and 30" in turned["message"]

    # A team filming medium shots, and one that accepts heads turned up to 45 degrees.
    (tmp_path / "pyproject.toml").write_text(
        "[tool.preflight.thresholds.face]\nmin_px = 40\nmin_share = 0.05\nmax_yaw_deg = 45\n"
    )
    _, out = run_cli("check", str(folder), "--format", "json", "--no-cache")
    found = findings_by_file(out)
    assert found["wide.mp4"] == []
    (turned,) = found["turned.mp4"]
    assert "want within 45 and 30" in turned["message"] and turned["details"]["max_yaw_limit"] == 45.0
    (tmp_path / "pyproject.toml").write_text("[tool.preflight.thresholds.face]\nmax_yaw_deg = 60\n")
    _, out = run_cli("check", str(folder / "turned.mp4"), "--format", "json", "--no-cache")
    assert findings_by_file(out)["turned.mp4"] == []


def test_the_reference_image_follows_the_face_thresholds(
    made: Callable[..., Path], engine: LazyEngine
) -> None:
    portrait = made(
        "image", "thresholds portrait.jpg", width=800, height=600, source="portrait"
    )  # a 187 px face
    assert check_image(portrait, engine=engine).findings == ()
    strict = CheckOptions(thresholds=Thresholds(face=FaceThresholds(ref_min_px=200)))
    (small,) = check_image(portrait, strict, engine=engine).findings
    assert small.code == "Face.TooSmall" and "want at least 200 px" in small.message
    assert small.details["min_px"] == 200


def test_several_processes_honour_the_thresholds(voices: Path, tmp_path: Path) -> None:
    (tmp_path / "preflight.toml").write_text("[thresholds.audio]\nquiet_lufs = -36.5\n")
    _, one = run_cli("check", str(voices), "--format", "json", "--no-cache", "--jobs", "1")
    _, two = run_cli("check", str(voices), "--format", "json", "--no-cache", "--jobs", "2")
    assert one == two
    found = findings_by_file(two)
    assert found["softer.wav"] == [] and "want at least -36.5" in found["quiet.wav"][0]["message"]


# --------------------------------------------------------------------------- the fixer
def test_the_fixer_normalises_to_a_target_above_the_project_line(
    voices: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "preflight.toml"
    settings.write_text("[thresholds.audio]\nquiet_lufs = -14\n")
    status, out = run_cli("fix", str(voices / "softer.wav"), "-o", str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert status == 2 and out == ""
    assert "preflight.toml: fix.target_lufs: -16 LUFS is not 1 LU or more above" in err
    assert "thresholds.audio.quiet_lufs (-14)" in err

    settings.write_text("[thresholds.audio]\nquiet_lufs = -14\n[fix]\ntarget_lufs = -12.0\n")
    status, out = run_cli("fix", str(voices / "softer.wav"), "-o", str(tmp_path / "out"), "--format", "json")
    (fixed,) = json.loads(out)["files"]
    assert status == 0 and fixed["actions"] == ["loudnorm"] and fixed["findings"] == []
    # The output, checked again with the project's line, is loud enough.
    _, again = run_cli("check", fixed["output"], "--format", "json", "--no-cache")
    assert findings_by_file(again)[Path(fixed["output"]).name] == []


def test_a_project_that_wants_a_higher_sample_rate_gets_its_voices_resampled_to_it(
    media: Any, tmp_path: Path
) -> None:
    voice = media.write_audio(tmp_path / "voice.wav", duration=3.0, sample_rate=RATE)
    options = CheckOptions(thresholds=Thresholds(audio=AudioThresholds(min_sample_rate=22050)))
    report = fix_paths(audio=voice, out_dir=tmp_path / "out", check_options=options)
    (checked,) = report.checked.files if report.checked is not None else ()
    (low,) = checked.findings
    assert low.code == "Audio.LowSampleRate" and "want at least 22050" in low.message
    (fixed,) = report.files
    assert [(a.name, a.detail) for a in fixed.actions] == [("resample", "16000 Hz -> 22050 Hz")]
    assert fixed.ok and fixed.findings == ()


def test_reframe_gives_the_close_up_the_project_asks_for(made: Callable[..., Path], tmp_path: Path) -> None:
    clip = made(
        "video",
        "thresholds portrait.mp4",
        width=1280,
        height=720,
        fps=25,
        duration=2.0,
        quality=30,
        source="portrait",
    )
    assert check_video(clip).findings == ()  # the face fills 31% of the height: a close-up by default
    tight = CheckOptions(thresholds=Thresholds(face=FaceThresholds(min_share=0.4)))
    report = fix_paths(
        video=clip, out_dir=tmp_path / "out", options=FixOptions(reframe=True), check_options=tight
    )
    (checked,) = report.checked.files if report.checked is not None else ()
    assert [f.code for f in checked.findings] == ["Face.TooSmall"]
    (fixed,) = report.files
    assert "reframe" in [a.name for a in fixed.actions]
    assert fixed.ok and fixed.findings == ()  # checked again with the same thresholds


# --------------------------------------------------------------------------- the API
def test_thresholds_are_checked_when_made_and_travel_to_other_processes() -> None:
    with pytest.raises(
        UsageError, match=r"thresholds\.face\.max_yaw_deg: 120 is out of range: must be 0 to 90"
    ):
        FaceThresholds(max_yaw_deg=120)
    with pytest.raises(UsageError, match=r"thresholds\.audio\.min_sample_rate: must be a whole number"):
        AudioThresholds(min_sample_rate=16000.5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"no_speech_share: 0\.5 is above mostly_silence_share \(0\.4\)"):
        AudioThresholds(no_speech_share=0.5)
    options = CheckOptions(thresholds=Thresholds(audio=AudioThresholds(quiet_lufs=-32)))
    assert options.thresholds.audio.quiet_lufs == -32.0 and isinstance(
        options.thresholds.audio.quiet_lufs, float
    )
    assert pickle.loads(pickle.dumps(options)) == options
    assert CheckOptions().thresholds == Thresholds()
