"""A project's settings in `pyproject.toml` (`[tool.preflight]`) or `preflight.toml`, found
by walking up from the files: codes selected and ignored, folders excluded, a warning the
team treats as an error, the fixer's defaults, the face and voice thresholds; and every
mistake in the file named."""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from preflight import AudioThresholds, Config, FaceThresholds, Thresholds
from preflight._config import find_config, load_config
from preflight._rules.thresholds import GROUPS
from tests.conftest import BAD, doc_snippet, run_cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


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


def test_force_exclude_skips_named_files_as_a_pre_commit_hook_names_them(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "preflight.toml").write_text('exclude = ["media/drafts/**"]\n')
    draft, clip = Path("media/drafts/take 2.mp4"), Path("media/phone_rotated.mp4")
    monkeypatch.chdir(project / "media")  # the globs are relative to the settings file

    _, named = run_cli("check", "drafts/take 2.mp4", "phone_rotated.mp4", "--fast", "--format", "json")
    _, forced = run_cli(
        "check", "drafts/take 2.mp4", "phone_rotated.mp4", "--fast", "--format", "json", "--force-exclude"
    )  # fmt: skip
    status, alone = run_cli("check", "drafts/take 2.mp4", "--fast", "--format", "json", "--force-exclude")

    assert set(codes_by_file(named)) == {draft.name, clip.name}  # named files are kept...
    assert set(codes_by_file(forced)) == {clip.name}  # ...unless exclusions are forced
    assert status == 0 and json.loads(alone)["files"] == []


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
        ("thresholds = 3\n", "thresholds: must be a table"),
        ("[thresholds]\nface = 1\n", "thresholds.face: must be a table"),
        ("[thresholds.video]\nmin_px = 100\n", "thresholds.video: unknown table (known: face, audio)"),
        ("[thresholds.face]\nmin_pix = 100\n", "thresholds.face.min_pix: unknown setting (known: min_px,"),
        ("[thresholds.face]\nmin_px = 0\n", "thresholds.face.min_px: 0 is out of range: must be 1 to 4096"),
        ("[thresholds.face]\nmin_px = 99.5\n", "thresholds.face.min_px: must be a whole number (pixels)"),
        (
            "[thresholds.face]\nmin_share = 15\n",
            "thresholds.face.min_share: 15 is out of range: must be 0 to 1",
        ),
        ("[thresholds.face]\nmax_yaw_deg = 95.0\n", "thresholds.face.max_yaw_deg: 95.0 is out of range"),
        ("[thresholds.face]\nmax_pitch_deg = -5\n", "thresholds.face.max_pitch_deg: -5 is out of range"),
        ('[thresholds.audio]\nquiet_lufs = "loud"\n', "thresholds.audio.quiet_lufs: must be a number (LUFS)"),
        (
            "[thresholds.audio]\nquiet_lufs = 28\n",
            "thresholds.audio.quiet_lufs: 28 is out of range: must be -70 to 0",
        ),
        ("[thresholds.audio]\nmin_snr_db = true\n", "thresholds.audio.min_snr_db: must be a number"),
        (
            "[thresholds.audio]\nlong_silence_s = inf\n",
            "thresholds.audio.long_silence_s: inf is out of range",
        ),
        (
            "[thresholds.audio]\nno_speech_share = 0.5\n",
            "thresholds.audio.no_speech_share: 0.5 is above mostly",
        ),
        ("prep = 1\n", "prep: must be a table"),
        ("[prep]\ngates = []\n", "prep.gates: unknown setting (known: gate, speech_cut_s)"),
        ('[prep]\ngate = "Pair"\n', "prep.gate: must be a list of codes or prefixes"),
        ('[prep]\ngate = ["Pair.Cut"]\n', "prep.gate: unknown code or prefix Pair.Cut"),
        ("[prep]\nspeech_cut_s = -1\n", "prep.speech_cut_s: must be a number of seconds, 0 or more"),
        ("[prep]\nspeech_cut_s = true\n", "prep.speech_cut_s: must be a number of seconds"),
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
    # Read back from what x264 wrote into each output (its settings SEI): the file's crf is
    # used by default, and the command line's wins over it.
    (project / "pyproject.toml").write_text("[tool.preflight.fix]\ncrf = 30\npreset = 'ultrafast'\n")
    clip = project / "media" / "low fps 480p.avi"
    for extra, crf in (((), "30.0"), (("--crf", "20"), "20.0")):
        out = project / f"out-{crf}"
        status, _ = run_cli("fix", "--video", str(clip), "-o", str(out), "--fast", *extra)
        assert status == 0
        assert x264_settings(out / "low fps 480p.mp4")["crf"] == crf


def x264_settings(path: Path) -> dict[str, str]:
    """The options x264 wrote into the stream ("x264 - core ... options: crf=20.0 ...")."""
    data = path.read_bytes()
    found = re.search(rb"x264 - core [^\0]*? - options: ([^\0]*)", data)
    assert found is not None, f"{path} carries no x264 settings"
    return dict(item.split("=", 1) for item in found.group(1).decode().split() if "=" in item)

    config = load_config(project / "pyproject.toml")
    assert config.fix == {"crf": 60}
    assert Config(fix={"preset": "slow", "denoise": False}).fix_options(crf=22).preset == "slow"


def test_a_mistake_in_a_pyproject_thresholds_table_names_its_full_key(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text("[tool.preflight.thresholds.audio]\nquiet_lufz = -30\n")
    status, _ = run_cli("check", str(project / "media"), "--fast")
    err = capsys.readouterr().err
    assert (
        status == 2 and "pyproject.toml: tool.preflight.thresholds.audio.quiet_lufz: unknown setting" in err
    )


def test_thresholds_are_read_from_the_file_and_the_rest_keep_their_defaults(project: Path) -> None:
    (project / "preflight.toml").write_text(
        "[thresholds.face]\nmin_px = 96\nmax_yaw_deg = 40\n[thresholds.audio]\nquiet_lufs = -32\n"
    )
    config = load_config(project / "preflight.toml")
    assert config.thresholds == Thresholds(
        face=FaceThresholds(min_px=96, max_yaw_deg=40.0), audio=AudioThresholds(quiet_lufs=-32.0)
    )
    assert Config().thresholds == Thresholds()


def test_the_documented_thresholds_snippet_lists_every_threshold_at_its_default(tmp_path: Path) -> None:
    """The thresholds example of the settings page, loaded as a settings file, is exactly the
    defaults, and lists every threshold: the page cannot drift from the code."""
    text = doc_snippet("thresholds")
    settings = tmp_path / ("pyproject.toml" if "[tool.preflight" in text else "preflight.toml")
    settings.write_text(text, encoding="utf-8")

    assert load_config(settings) == Config(str(settings))  # the defaults, and nothing else
    data = tomllib.loads(text)
    table = data["tool"]["preflight"] if settings.name == "pyproject.toml" else data
    listed = {(group, key) for group, keys in table["thresholds"].items() for key in keys}
    assert listed == {(group, f.name) for group, kind in GROUPS.items() for f in fields(kind)}


def test_the_prep_table_says_which_findings_gate_a_paid_job(tmp_path: Path) -> None:
    (tmp_path / "preflight.toml").write_text('[prep]\ngate = ["Face", "Pair.SpeechCut"]\nspeech_cut_s = 4\n')
    config = load_config(tmp_path / "preflight.toml")
    assert config.gate == ("Face", "Pair.SpeechCut") and config.gate_speech_cut_s == 4.0
    # Not set: None, so that prep-and-retalk's defaults apply.
    assert Config().gate is None and Config().gate_speech_cut_s is None
    (tmp_path / "preflight.toml").write_text("[prep]\ngate = []\n")
    assert load_config(tmp_path / "preflight.toml").gate == ()
