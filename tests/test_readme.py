"""The README's copy-paste snippets, copied out of the README and run as a user would."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight._config import settings_for
from preflight._models import Severity
from tests.conftest import BAD, ROOT, SAMPLE, readme_snippet

BIN = Path(sys.executable).parent


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a snippet's command line the way a terminal or a CI runner would (bash), with
    this environment's commands first on PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def job_folder(folder: Path) -> Path:
    """talk.mp4, voice.wav and face.jpg, as the snippets name them."""
    shutil.copy(SAMPLE / "talking_head.mp4", folder / "talk.mp4")
    shutil.copy(SAMPLE / "voice.wav", folder / "voice.wav")
    shutil.copy(SAMPLE / "face.jpg", folder / "face.jpg")
    return folder


def test_the_ci_workflow_annotates_bad_media_and_keeps_its_sarif_and_report(tmp_path: Path) -> None:
    steps = yaml.safe_load(readme_snippet("github-actions"))
    commands = [step["run"] for step in steps if str(step.get("run", "")).startswith("preflight ")]
    media = tmp_path / "media"
    shutil.copytree(SAMPLE, media)
    shutil.copy(BAD / "low fps 480p.avi", media / "low fps 480p.avi")
    assert len(commands) == 3

    runs = [shell(command, tmp_path) for command in commands]

    # The check fails the step, with one annotation per finding on the bad file.
    annotations = runs[0].stdout.splitlines()
    assert runs[0].returncode == 1
    bad = [line for line in annotations if line.startswith("::error file=media/low fps 480p.avi")]
    assert any("InvalidFile.FPS" in line for line in bad)
    assert not any("talking_head.mp4" in line and line.startswith("::error") for line in annotations)
    # The SARIF step (run even though the check failed) leaves the file for code scanning.
    sarif = json.loads((tmp_path / "preflight.sarif").read_text(encoding="utf-8"))
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"InvalidFile.FPS", "InvalidFile.Resolution"}
    # And the report, for the artefact.
    page = (tmp_path / "preflight-report.html").read_text(encoding="utf-8")
    assert runs[2].returncode == 1 and "low fps 480p.avi" in page and "InvalidFile.FPS" in page
    assert all("Traceback" not in run.stderr for run in runs)


def test_the_report_command_writes_the_page(tmp_path: Path) -> None:
    folder = job_folder(tmp_path)

    run = shell(readme_snippet("report"), folder)

    assert run.returncode in (0, 1), run.stderr
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert all(name in page for name in ("talk.mp4", "voice.wav", "face.jpg"))
    assert "report written to report.html" in run.stderr


def test_the_settings_snippet_is_read_as_written(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(readme_snippet("settings"), encoding="utf-8")
    (tmp_path / "drafts").mkdir()
    shutil.copy(BAD / "notes.mp4", tmp_path / "drafts" / "notes.mp4")
    shutil.copy(BAD / "notes.mp4", tmp_path / "take.tmp.mp4")
    shutil.copy(SAMPLE / "voice.wav", tmp_path / "voice.wav")

    config = settings_for([str(tmp_path)], None, False)
    run = shell("preflight check . --format json", tmp_path)

    assert config.path == str(tmp_path / "pyproject.toml")
    assert dict(config.severity)["Audio.Noisy"] is Severity.ERROR
    assert config.fix_options().crf == 20
    report = json.loads(run.stdout)
    # The excluded files are not even looked at.
    assert [f["path"] for f in report["files"]] == ["./voice.wav"], run.stderr


def test_the_python_snippets_run(tmp_path: Path, media: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = job_folder(tmp_path)
    media.write_video(folder / "talk.webm", width=640, height=480, codec="vp9", duration=2.5, audio=False)
    media.write_audio(folder / "voice.m4a", duration=2.5, codec="aac")
    monkeypatch.chdir(folder)
    out = io.StringIO()

    with contextlib.redirect_stdout(out):
        exec(compile(readme_snippet("python-check"), "README:python-check", "exec"), {})
        exec(compile(readme_snippet("python-fix"), "README:python-fix", "exec"), {})

    printed = out.getvalue().splitlines()
    fixed = [line for line in printed if "->" in line]
    assert any(line.startswith("talk.webm -> ready/talk.mp4") and line.endswith("True") for line in fixed)
    assert any(line.startswith("voice.m4a -> ready/voice.") for line in fixed)
    assert (folder / "ready" / "talk.mp4").is_file()


def test_every_snippet_in_the_readme_is_run_by_a_test() -> None:
    import re

    names = re.findall(r"<!-- snippet: ([\w-]+) -->", (ROOT / "README.md").read_text(encoding="utf-8"))
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    assert names
    assert [n for n in names if f'readme_snippet("{n}")' not in tests] == []
