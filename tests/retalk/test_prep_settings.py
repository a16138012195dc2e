"""`prep-and-retalk` reads the project's settings (`preflight.toml`, `[tool.preflight]`) as
`preflight check` and `preflight fix` do: what they ignore it ignores, their thresholds
are its thresholds, their fixer defaults are its defaults; `--isolated` reads none,
`--config FILE` reads FILE, and a mistake in them is a usage error before anything is sent."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from retalk._cli.prep import main
from retalk.emulator import Emulator
from tests.conftest import run_cli


@pytest.fixture()
def project(media: Any, tmp_path: Path) -> Path:
    """A project folder: a 3 s talking head and a 4 s voice too quiet (about -46 LUFS)."""
    folder = tmp_path / "project"
    folder.mkdir()
    media.write_video(folder / "talk.mp4", duration=3.0, source="face")
    quiet = media.voice_like(4.0, 44100, level_db=-34.0)
    media.write_audio(folder / "voice.wav", signal=quiet, sample_rate=44100)
    return folder


def prep(*args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*args, "--format", "json"])
    return status, json.loads(out.getvalue()) if out.getvalue() else {}, err.getvalue()


def job(project: Path, *extra: str) -> list[str]:
    return [str(project / "talk.mp4"), str(project / "voice.wav"), "-o", str(project / "dubbed.mp4"), *extra]


def found(report: dict[str, Any], role: str) -> list[str]:
    """The codes the check found in the file of ``role``."""
    (entry,) = [f for f in report["files"] if f["role"] == role]
    return [finding["code"] for finding in entry["findings"]]


def actions(report: dict[str, Any], role: str) -> list[str]:
    (entry,) = [f for f in report["fix"]["files"] if f["role"] == role]
    return list(entry["actions"])


def check_in(project: Path, *extra: str) -> dict[str, Any]:
    status, out = run_cli(
        "check", "--video", str(project / "talk.mp4"), "--audio", str(project / "voice.wav"),
        "--format", "json", *extra,
    )  # fmt: skip
    assert status in (0, 1), out
    document: dict[str, Any] = json.loads(out)
    return document


def test_without_settings_the_quiet_voice_is_found_and_normalised(project: Path) -> None:
    status, report, err = prep(*job(project, "--dry-run"))
    assert status == 0, err
    assert "Audio.Quiet" in found(report["check"], "audio")
    assert "loudnorm" in actions(report, "audio")


def test_a_code_the_project_ignores_is_ignored_as_check_ignores_it(project: Path, service: Emulator) -> None:
    (project / "preflight.toml").write_text('ignore = ["Audio.Quiet"]\n')
    status, report, err = prep(
        *job(project, "--base-url", service.base_url, "--journal", str(project / "j.db"))
    )
    assert status == 0 and report["ok"], err
    assert found(report["check"], "audio") == found(check_in(project), "audio")
    assert "Audio.Quiet" not in found(report["check"], "audio")
    # Not found, so not fixed: the voice was sent as it was.
    assert actions(report, "audio") == ["copy"]
    assert service.submissions == 1


def test_the_projects_thresholds_judge_the_files(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.preflight.thresholds.audio]\nquiet_lufs = -50.0\n")
    status, report, err = prep(*job(project, "--dry-run"))
    assert status == 0, err
    assert found(report["check"], "audio") == found(check_in(project), "audio")
    assert "Audio.Quiet" not in found(report["check"], "audio")


def test_the_projects_fixer_defaults_are_used_and_the_command_line_wins(project: Path) -> None:
    (project / "preflight.toml").write_text('[fix]\nalign = "trim"\nnormalize = false\n')
    status, report, err = prep(*job(project, "--dry-run"))
    assert status == 0, err
    assert "trim" in actions(report, "audio") and "loudnorm" not in actions(report, "audio")
    assert report["expected_duration_s"] == pytest.approx(3.0, abs=0.1)
    status, fixed, _ = run_fix(project)
    assert actions({"fix": fixed}, "audio") == actions(report, "audio")
    status, report, err = prep(*job(project, "--dry-run", "--align", "service"))
    assert status == 0 and "trim" not in actions(report, "audio")


def run_fix(project: Path) -> tuple[int, dict[str, Any], str]:
    status, out = run_cli(
        "fix", "--video", str(project / "talk.mp4"), "--audio", str(project / "voice.wav"),
        "-o", str(project / "fixed"), "--dry-run", "--format", "json",
    )  # fmt: skip
    return status, json.loads(out), ""


def test_isolated_reads_no_settings_and_config_reads_the_file_named(project: Path, tmp_path: Path) -> None:
    (project / "preflight.toml").write_text('ignore = ["Audio.Quiet"]\n')
    status, report, _ = prep(*job(project, "--dry-run", "--isolated"))
    assert status == 0 and "Audio.Quiet" in found(report["check"], "audio")

    elsewhere = tmp_path / "team.toml"
    elsewhere.write_text('[fix]\nalign = "trim"\n')
    status, report, _ = prep(*job(project, "--dry-run", "--config", str(elsewhere)))
    # The file named, not the one beside the inputs.
    assert status == 0 and "Audio.Quiet" in found(report["check"], "audio")
    assert "trim" in actions(report, "audio")


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ('ignore = ["Audio.Nope"]\n', "ignore: unknown code or prefix Audio.Nope"),
        ("[fix]\ncrf = 99\n", "crf 99: must be 0-51"),
        ("[fix]\ntarget_lufs = -40.0\n", "fix.target_lufs"),
        ("select = [\n", "not valid TOML"),
    ],
)
def test_a_mistake_in_the_settings_is_a_usage_error_before_anything_is_sent(
    project: Path, service: Emulator, settings: str, named: str
) -> None:
    (project / "preflight.toml").write_text(settings)
    status, report, err = prep(
        *job(project, "--base-url", service.base_url, "--journal", str(project / "j.db"))
    )
    assert status == 2 and report == {}
    assert named in err and "Traceback" not in err
    assert service.requests == []
    # As `preflight fix` says.
    assert run_cli("fix", str(project / "talk.mp4"), "-o", str(project / "o"), "--dry-run")[0] == 2


def test_a_batch_reads_each_jobs_settings(project: Path, service: Emulator, tmp_path: Path) -> None:
    (project / "preflight.toml").write_text('ignore = ["Audio.Quiet"]\n')
    batch = tmp_path / "jobs.csv"
    row = f"{project / 'talk.mp4'},{project / 'voice.wav'},,{tmp_path / 'o.mp4'},"
    batch.write_text(f"video,audio,ref,output,options\n{row}\n")
    status, report, err = prep(
        "--batch", str(batch), "--base-url", service.base_url, "--journal", str(tmp_path / "j")
    )
    assert status == 0 and report["summary"]["done"] == 1, err
    # Not normalised: the voice sent is the original's bytes.
    assert (tmp_path / "o.work" / "voice.wav").read_bytes() == (project / "voice.wav").read_bytes()
    (project / "preflight.toml").write_text('ignore = ["Audio.Nope"]\n')
    (tmp_path / "o.mp4").unlink()
    status, _, err = prep(
        "--batch", str(batch), "--base-url", service.base_url, "--journal", str(tmp_path / "j")
    )
    assert status == 2 and f"{batch}:2" in err and "Audio.Nope" in err
