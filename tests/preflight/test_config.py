"""A project's settings in `pyproject.toml` (`[tool.preflight]`) or `preflight.toml`, found
by walking up from the files: codes selected and ignored, folders excluded, a warning the
team treats as an error, the fixer's defaults; and every mistake in the file named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from preflight._config import Config, find_config, load_config
from tests.conftest import BAD, run_cli


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A project with media: a 10 fps clip, a phone clip stored sideways, and a draft."""
    media = tmp_path / "media"
    (media / "drafts").mkdir(parents=True)
    shutil.copy(BAD / "low fps 480p.avi", media / "low fps 480p.avi")
    shutil.copy(BAD / "phone_rotated.mp4", media / "phone_rotated.mp4")
    shutil.copy(BAD / "phone_rotated.mp4", media / "drafts" / "take 2.mp4")
    return tmp_path


def codes_by_file(out: str) -> dict[str, list[str]]:
    report = json.loads(out)
    return {Path(f["path"]).name: [x["code"] for x in f["findings"]] for f in report["files"]}


def test_pyproject_settings_shape_what_check_reports(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "dub"\n\n'
        "[tool.preflight]\n"
        'ignore = ["InvalidFile.Resolution"]\n'
        'exclude = ["drafts"]\n'
        '[tool.preflight.severity]\n"Video.Rotated" = "error"\n'
    )
    status, out = run_cli("check", str(project / "media"), "--fast", "--format", "json")
    found = codes_by_file(out)

    assert set(found) == {"low fps 480p.avi", "phone_rotated.mp4"}  # the draft is excluded
    assert "InvalidFile.Resolution" not in found["low fps 480p.avi"]
    assert "InvalidFile.FPS" in found["low fps 480p.avi"]
    rotated = json.loads(out)["files"][1]["findings"]
    assert [(f["code"], f["severity"]) for f in rotated] == [("Video.Rotated", "error")]
    assert status == 1


def test_the_command_line_wins_select_replaces_and_ignore_adds(project: Path) -> None:
    (project / "preflight.toml").write_text('select = ["Video"]\nignore = ["InvalidFile.FPS"]\n')
    _, out = run_cli("check", str(project / "media"), "--fast", "--format", "json")
    assert codes_by_file(out)["low fps 480p.avi"] == []  # only Video.* selected by the file

    _, out = run_cli(
        "check", str(project / "media"), "--fast", "--format", "json",
        "--select", "InvalidFile", "--ignore", "InvalidFile.Resolution",
    )  # fmt: skip
    assert codes_by_file(out)["low fps 480p.avi"] == ["InvalidFile.Format"]


def test_the_nearest_file_is_found_and_preflight_toml_comes_before_pyproject(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.preflight]\nignore = ["Video"]\n')
    assert find_config([str(project / "media" / "drafts")]) == project / "pyproject.toml"
    (project / "preflight.toml").write_text('ignore = ["Audio"]\n')
    assert find_config([str(project / "media")]) == project / "preflight.toml"
    (project / "media" / "preflight.toml").write_text("select = []\n")
    assert (
        find_config([str(project / "media" / "drafts" / "take 2.mp4")])
        == project / "media" / "preflight.toml"
    )
    # A pyproject without the table is no settings file.
    (project / "media" / "preflight.toml").unlink()
    (project / "preflight.toml").unlink()
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config([str(project / "media")]) is None


def test_isolated_and_an_explicit_file(project: Path) -> None:
    (project / "preflight.toml").write_text('ignore = ["InvalidFile"]\n')
    other = project / "strict.toml"
    other.write_text('[severity]\n"Video" = "error"\n')
    _, out = run_cli("check", str(project / "media"), "--fast", "--format", "json", "--isolated")
    assert "InvalidFile.FPS" in codes_by_file(out)["low fps 480p.avi"]
    status, out = run_cli(
        "check", str(project / "media"), "--fast", "--format", "json", "--config", str(other)
    )
    assert status == 1 and "InvalidFile.FPS" in codes_by_file(out)["low fps 480p.avi"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('selct = ["Video"]\n', "selct: unknown setting"),
        ('select = "Video"\n', "select: must be a list of strings"),
        ('ignore = ["Vidoe.Rotated"]\n', "ignore: unknown code or prefix Vidoe.Rotated"),
        ('[severity]\n"Video.Rotated" = "fatal"\n', "severity.Video.Rotated: 'fatal' is not"),
        ('[fix]\ncrf = "high"\n', "fix.crf: must be a int"),
        ("[fix]\nspeed = 2\n", "fix.speed: unknown setting"),
        ('[fix]\nalign = "stretch"\n', "fix.align: must be one of"),
        ("select = [\n", "not valid TOML"),
    ],
)
def test_a_mistake_in_the_settings_file_is_a_usage_error_naming_it(
    project: Path, text: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "preflight.toml").write_text(text)
    status, out = run_cli("check", str(project / "media"), "--fast")
    err = capsys.readouterr().err
    assert status == 2 and out == ""
    assert named in err and "preflight.toml" in err and "Traceback" not in err


def test_the_fixer_takes_its_defaults_from_the_file_and_the_command_line_wins(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text("[tool.preflight.fix]\ncrf = 60\n")
    status, _ = run_cli("fix", str(project / "media"), "-o", str(project / "out"), "--dry-run")
    assert status == 2 and "crf 60: must be 0-51" in capsys.readouterr().err
    status, _ = run_cli(
        "fix", str(project / "media"), "-o", str(project / "out"), "--dry-run", "--crf", "20", "--fast"
    )
    assert status in (0, 1)

    config = load_config(project / "pyproject.toml")
    assert config.fix == {"crf": 60}
    assert Config(fix={"preset": "slow", "denoise": False}).fix_options(crf=22).preset == "slow"
