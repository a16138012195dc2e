"""The documentation as tested facts: the copy-paste snippets of README.md and docs/ run as
a user would, the site built with every link checked, the front page kept short, and the
pages' lists (codes, JSON contracts) held to what the code does."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight import Severity, settings_for
from preflight.codes import CODES, RETIRED
from tests.conftest import BAD, ROOT, SAMPLE, doc_pages, doc_snippet

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
    steps = yaml.safe_load(doc_snippet("github-actions"))
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

    run = shell(doc_snippet("report"), folder)

    assert run.returncode in (0, 1), run.stderr
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert all(name in page for name in ("talk.mp4", "voice.wav", "face.jpg"))
    assert "report written to report.html" in run.stderr


def test_the_settings_snippet_is_read_as_written(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(doc_snippet("settings"), encoding="utf-8")
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
        exec(compile(doc_snippet("python-check"), "python-api.md:python-check", "exec"), {})
        exec(compile(doc_snippet("python-fix"), "python-api.md:python-fix", "exec"), {})

    printed = out.getvalue().splitlines()
    fixed = [line for line in printed if "->" in line]
    assert any(line.startswith("talk.webm -> ready/talk.mp4") and line.endswith("True") for line in fixed)
    assert any(line.startswith("voice.m4a -> ready/voice.") for line in fixed)
    assert (folder / "ready" / "talk.mp4").is_file()


def test_the_shared_engine_snippet_reads_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(job_folder(tmp_path))
    out = io.StringIO()

    with contextlib.redirect_stdout(out):
        exec(compile(doc_snippet("python-engine"), "python-api.md:python-engine", "exec"), {})

    # One line per sampled frame, from the first: its time, how many faces, the target.
    samples = [line.split(maxsplit=2) for line in out.getvalue().splitlines()]
    assert len(samples) >= 4 and samples[0][0] == "0.0", samples
    assert all(faces == "1" and target.startswith("Face(box=") for _, faces, target in samples), samples


def test_every_snippet_in_the_docs_is_run_by_a_test_and_named_once() -> None:
    names = [
        name
        for page in doc_pages()
        for name in re.findall(r"<!-- snippet: ([\w-]+) -->", page.read_text(encoding="utf-8"))
    ]
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    assert names
    assert sorted({n for n in names if names.count(n) > 1}) == []
    assert [n for n in names if f'doc_snippet("{n}")' not in tests] == []


def test_the_docs_build_with_every_link_checked(tmp_path: Path) -> None:
    """`mkdocs build --strict` with the validation of mkdocs.yml: a broken link or anchor, a
    link out of docs/ or a page missing from the nav is a warning, and a warning fails."""
    pytest.importorskip("mkdocs", reason="MkDocs is not installed (it is in the dev extra)")
    site = tmp_path / "site"

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    pages = sorted((ROOT / "docs").rglob("*.md"))
    built = [site / page.relative_to(ROOT / "docs").with_suffix("") / "index.html" for page in pages]
    missing = [str(b) for b in built if not b.is_file() and not b.parent.with_suffix(".html").is_file()]
    assert missing == []


def _markdown_links(text: str) -> list[str]:
    """The targets of a page's Markdown links, outside code blocks and code spans."""
    text = re.sub(r"^([ \t]*)```.*?^\1```", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def _heading_anchors(page: Path) -> set[str]:
    """The anchors of a page's headings as GitHub makes them (lower case, punctuation
    dropped, spaces as hyphens), for the links GitHub shows: MkDocs checks the site's."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    headings = re.findall(r"^#+ (.*)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-") for heading in headings}


def test_no_link_leaves_the_repository_and_every_file_link_resolves() -> None:
    """MkDocs checks the links between pages of docs/; README.md and SECURITY.md (which
    GitHub shows) link into docs/ where MkDocs does not look, so their targets are checked
    here, and no page may send readers to a file outside the repository."""
    pages = [*doc_pages(), ROOT / "SECURITY.md"]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "shared/DESIGN" not in text, page
        for target in _markdown_links(text):
            if re.match(r"[a-z][a-z+.-]*:", target) or target.startswith("#"):
                continue  # a web address, or an anchor of the same page (MkDocs checks docs/)
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif (
                anchor and not page.is_relative_to(ROOT / "docs") and anchor not in _heading_anchors(resolved)
            ):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_repository_paths_the_docs_name_exist() -> None:
    """A path in a code span (`bench/identity.py`, `tests/oracle.py`) is a file a reader
    will look for: MkDocs cannot check it, so it is checked here."""
    generated = {"bench/.cache"}  # made by the benchmarks, ignored by git
    named = {
        (page.relative_to(ROOT), span)
        for page in [*doc_pages(), ROOT / "SECURITY.md"]
        for span in re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8"))
        if re.fullmatch(r"(preflight|retalk|tests|bench|fixtures|docs|\.ci)/[\w./-]*", span)
    }
    assert len(named) > 20
    assert (
        sorted(
            f"{page}: {span}" for page, span in named if span not in generated and not (ROOT / span).exists()
        )
        == []
    )


def test_the_readme_is_a_front_page_with_a_two_command_quick_start() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```sh\n(.*?)\n```", quick_start, re.S | re.M)
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci = [line for line in ci_lines if "pytest" in line and not line.lstrip().startswith("#")]

    assert len(readme.splitlines()) <= 400
    assert len(commands) == 2 and all("\n" not in command for command in commands), commands
    job, tests = commands
    # The main job, on the committed sample, against the emulator the command starts itself.
    assert "prep-and-retalk" in job and job.endswith("--emulator")
    assert all((ROOT / word).is_file() for word in job.split() if word.startswith("fixtures/"))
    # CI runs the same test command: the same steps in the same order (it may add pytest
    # options of its own, and waits for its apt installs between pip and pytest).
    *setup, pytest_step = tests.split(" && ")
    script = "\n".join(line for line in ci_lines if not line.lstrip().startswith("#"))
    places = [script.find(step) for step in setup]
    assert -1 not in places and places == sorted(places), (setup, script)
    assert len(ci) == 1 and script.find(ci[0]) > max(places), ci
    program, _, options = pytest_step.partition(" -m pytest")
    ci_program, _, ci_options = ci[0].strip().partition(" -m pytest")
    assert program == ci_program and set(options.split()) <= set(ci_options.split()), (tests, ci)


@pytest.mark.parametrize("program", ["preflight", "retalk"])
def test_the_readme_shows_every_subcommand(program: str) -> None:
    """The front page has an example of each subcommand the program's help lists."""
    run = subprocess.run(
        [sys.executable, "-m", program, "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    listed = run.stdout.split("  COMMAND\n", 1)[1].split("\n\n", 1)[0]
    subcommands = re.findall(r"^    ([a-z][\w-]*)\s", listed, re.M)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert len(subcommands) >= 4
    assert [name for name in subcommands if not re.search(rf"^{program} {name}\b", readme, re.M)] == []


def test_the_codes_table_is_the_code_list() -> None:
    page = (ROOT / "docs" / "check.md").read_text(encoding="utf-8")
    section = page.split("\n## The codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)` \| (\w+) \| (.*) \|$", section, re.M)

    assert rows == [(c.code, c.severity.value, c.summary) for c in CODES.values()]
    assert all(f"`{code}`" in section for code in RETIRED)


def _assert_same_keys(example: Any, real: Any, where: str) -> None:
    """The example has exactly the keys the real document has, at every level the example
    shows (a measured ``media`` or ``details`` may hold more than the example spells out)."""
    if example is None or real is None:
        return
    if isinstance(example, dict):
        assert isinstance(real, dict), where
        if where.endswith((".media", ".details")):
            assert set(example) <= set(real), (where, sorted(set(example) - set(real)))
        else:
            assert set(example) == set(real), (where, sorted(set(example) ^ set(real)))
        for key in example:
            _assert_same_keys(example[key], real[key], f"{where}.{key}")
    elif isinstance(example, list) and example and real:
        _assert_same_keys(example[0], real[0], f"{where}[0]")


def test_the_json_contracts_show_the_keys_the_commands_write(tmp_path: Path) -> None:
    from retalk._cli.prep import main

    journal = str(tmp_path / "journal.sqlite")
    batch = tmp_path / "jobs.csv"
    batch.write_text(
        f"video,audio,ref,output,options\n{SAMPLE / 'talking_head.mp4'},{SAMPLE / 'voice.wav'},,b.mp4,\n"
    )
    job = ["--journal", journal, "--emulator", "--isolated", "--format", "json"]
    documents = []
    for argv in (
        [
            str(SAMPLE / "talking_head.mp4"),
            str(SAMPLE / "voice.wav"),
            "--ref",
            str(SAMPLE / "face.jpg"),
            "-o",
            str(tmp_path / "a.mp4"),
            *job,
        ],
        ["--batch", str(batch), *job],
    ):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main(argv) == 0
        documents.append(json.loads(out.getvalue()))
    prep, batch_report = documents

    for example, real in (
        (doc_snippet("contract-prep"), prep),
        (doc_snippet("contract-check"), prep["check"]),
        (doc_snippet("contract-fix"), prep["fix"]),
        (doc_snippet("contract-batch"), batch_report),
    ):
        assert json.loads(example)["schema"] == real["schema"]
        _assert_same_keys(json.loads(example), real, real["schema"])
