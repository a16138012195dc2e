"""The hostile-input corpus (``tests/corpus``): every case is checked and fixed for real.

Each case says which error codes ``check`` must answer with and whether ``fix`` must
write a copy the service accepts or refuse, saying why. Every check and fix runs under a
watchdog (a hang ends the run with a traceback instead of blocking CI), originals are
hashed before and after, and a sample runs through the installed command line in a
subprocess with a timeout: hostile names, links, and the files that used to cost
gigabytes or unbounded time.
"""

from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import av
import pytest

from preflight import CheckOptions, FixOptions, LazyEngine, UsageError, check_paths, fix_paths
from preflight._fix_model import FixReport
from preflight._models import CheckReport, FileReport, Severity
from tests.corpus import make_corpus
from tests.corpus.make_corpus import CASES, Case

#: No single check or fix of a small file may take longer (the slowest takes about 3 s).
BOUND_S = 30.0
#: A subprocess that has not answered by then is hung.
SUBPROCESS_TIMEOUT_S = 60.0
#: Peak memory of a whole `preflight check` run on a file claiming a 15360x15360 frame
#: (it was 1.2 GB when FFmpeg decoded that frame while opening the file).
HUGE_FRAME_MAX_RSS_MB = 400

_T = TypeVar("_T")


def _case_id(case: Case) -> str:
    readable = case.name.encode("utf-8", "surrogateescape").decode("ascii", "replace")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", readable)


def _cases(*categories: str, names: tuple[str, ...] = ()) -> list[Any]:
    chosen = [c for c in CASES if c.category in categories or c.name in names]
    return [pytest.param(case, id=_case_id(case)) for case in chosen]


ALL = [pytest.param(case, id=_case_id(case)) for case in CASES]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The corpus folder, made on first use (about a minute) and cached across runs."""
    return make_corpus.corpus_dir()


@pytest.fixture(scope="session")
def timings(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """Seconds each check and fix took; the slowest are listed at the end of the run."""
    seen: dict[str, float] = {}
    yield seen
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and seen:
        slowest = sorted(seen.items(), key=lambda item: -item[1])[:5]
        with capture.global_and_fixture_disabled():  # said on the terminal, not captured
            reporter.write_line(
                f"\ncorpus: {len(seen)} checks and fixes, {sum(seen.values()):.1f} s in all; slowest: "
                + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest)
            )


def _bounded(what: str, timings: dict[str, float], run: Callable[[], _T]) -> _T:
    """Run ``run`` under a watchdog that dumps every thread's stack and ends the process
    if it outlives twice the bound (a hang inside FFmpeg cannot be interrupted otherwise),
    and fail if it took longer than the bound."""
    faulthandler.dump_traceback_later(2 * BOUND_S, exit=True)
    start = time.monotonic()
    try:
        result = run()
    finally:
        faulthandler.cancel_dump_traceback_later()
        timings[what] = time.monotonic() - start
    assert timings[what] < BOUND_S, f"{what} took {timings[what]:.1f} s"
    return result


def _digest(path: Path) -> str:
    """The file's content (through links), or what kind of non-file it is."""
    try:
        if not path.is_file():
            return "not a regular file"
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def _check(case: Case, path: Path, options: CheckOptions, engine: LazyEngine) -> CheckReport:
    """check_paths on the case's file: as a plain path, or in the role it is given as."""
    role = {case.given_as: str(path)} if case.given_as is not None else {}
    return check_paths(
        [] if role else [str(path)],
        video=role.get("video"),
        audio=role.get("audio"),
        ref=role.get("ref"),
        options=options,
        engine=engine,
    )


def _fix(case: Case, path: Path, out: Path, check_options: CheckOptions, engine: LazyEngine) -> FixReport:
    """fix_paths on the case's file, x264 at its fastest: the outcome is on trial, not the quality."""
    role = {case.given_as: str(path)} if case.given_as is not None else {}
    return fix_paths(
        [] if role else [str(path)],
        out_dir=out,
        video=role.get("video"),
        audio=role.get("audio"),
        ref=role.get("ref"),
        options=FixOptions(preset="ultrafast"),
        check_options=check_options,
        engine=engine,
    )


def _errors(report: FileReport) -> set[str]:
    return {f.code for f in report.findings if f.severity is Severity.ERROR}


def _assert_answers(case: Case, report: FileReport) -> None:
    found = {f.code for f in report.findings}
    assert report.role == case.role
    assert _errors(report) == case.errors, [f.message for f in report.findings]
    assert case.warnings <= found, [f.message for f in report.findings]
    assert not case.absent & found, [f.message for f in report.findings]
    for finding in report.findings:  # every finding explains itself
        assert finding.message.strip() and finding.code in finding.code


# --------------------------------------------------------------------------- the corpus
def test_the_corpus_is_at_least_60_small_real_files(corpus: Path) -> None:
    assert len(CASES) >= 60
    assert len({case.category for case in CASES}) >= 10
    for case in CASES:
        assert os.path.lexists(corpus / case.name), case.name
    assert make_corpus.corpus_bytes(corpus) < 50 * 1024 * 1024


def test_the_corpus_is_made_once_and_reused(corpus: Path) -> None:
    before = os.stat(corpus).st_mtime_ns
    assert make_corpus.corpus_dir() == corpus
    assert os.stat(corpus).st_mtime_ns == before


# --------------------------------------------------------------------------- check
@pytest.mark.parametrize("case", ALL)
def test_check_names_what_the_service_would_reject_in_each_hostile_file(
    case: Case, corpus: Path, engine: LazyEngine, timings: dict[str, float], capfd: pytest.CaptureFixture[str]
) -> None:
    path = corpus / case.name
    before = _digest(path)
    options = CheckOptions(fast=case.fast)
    if case.fix == "usage":
        with pytest.raises(UsageError, match=re.escape(case.fix_says)):
            _check(case, path, options, engine)
        return
    report = _bounded(f"check {case.name}", timings, lambda: _check(case, path, options, engine))
    (file,) = report.files
    _assert_answers(case, file)
    assert report.ok == (not case.errors)  # the exit status: 1 exactly when there is an error
    assert "Traceback" not in capfd.readouterr().err
    assert _digest(path) == before


# --------------------------------------------------------------------------- fix
def _decodes(output: Path) -> int:
    """Frames of the output's first video stream that decode (up to 30), read by PyAV
    directly: a copy whose key frame went missing decodes none."""
    count = 0
    with av.open(str(output)) as container:
        for _ in container.decode(video=0):
            count += 1
            if count >= 30:
                break
    return count


@pytest.mark.parametrize("case", ALL)
def test_fix_writes_an_accepted_copy_or_says_why_not(
    case: Case,
    corpus: Path,
    engine: LazyEngine,
    tmp_path: Path,
    timings: dict[str, float],
    capfd: pytest.CaptureFixture[str],
) -> None:
    path = corpus / case.name
    before = _digest(path)
    out = tmp_path / "fixed"
    check_options = CheckOptions(fast=case.fast)

    def fix() -> FixReport:
        return _fix(case, path, out, check_options, engine)

    if case.fix == "usage":
        with pytest.raises(UsageError, match=re.escape(case.fix_says)):
            fix()
        assert _digest(path) == before
        return
    report = _bounded(f"fix {case.name}", timings, fix)
    (fixed,) = report.files
    assert "Traceback" not in capfd.readouterr().err
    assert _digest(path) == before  # the original is never written to
    leftovers = [p.name for p in out.iterdir()] if out.exists() else []
    assert not [name for name in leftovers if name.startswith(".")], leftovers  # no half-written file
    if case.fix == "refused":
        assert not fixed.ok and fixed.output is None
        assert fixed.error and case.fix_says.lower() in fixed.error.lower(), fixed.error
        assert report.ok is False and leftovers == []
        return

    assert fixed.ok, (fixed.error, [f.message for f in fixed.findings])
    assert fixed.error is None and fixed.output is not None
    output = Path(fixed.output)
    assert output.parent == out and output.is_file() and not output.is_symlink()
    assert case.fix_actions <= {action.name for action in fixed.actions}, fixed.actions
    # A fresh check of the output, not the fixer's own: nothing the service would reject.
    again = check_paths([str(output)], options=check_options, engine=engine)
    (checked,) = again.files
    assert not {c for c in _errors(checked) if c.startswith("InvalidFile.")}, [
        f.message for f in checked.findings
    ]
    if case.role == "video":
        assert _decodes(output) > 0


# --------------------------------------------------------------------------- the command line
def _preflight(
    *args: str, timeout: float = SUBPROCESS_TIMEOUT_S
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=timeout,
        check=False,
    )
    return done, time.monotonic() - start


def _cli_inputs(case: Case, path: Path) -> list[str]:
    # After "--", a name such as "-rf.mp4" is a file, never an option.
    return [f"--{case.given_as}", str(path)] if case.given_as else ["--", str(path)]


_CLI_SAMPLE = _cases(
    "name",
    "link",
    names=(
        "huge-15360-tiny-file.mp4",
        "huge-15360-tiny-file.mkv",
        "claims-10-hours.mp4",
        "pts-gap-10-hours.mkv",
        "one-keyframe-110s.mp4",
        "trunc-moov-at-end-half.mp4",
        "wav-unknown-codec.wav",
        "avi-unknown-fourcc.avi",
        "video-given-as-audio.mp4",
        "mp4-no-extension",
        "png-claims-60000px.png",
        "png-16bit-13000px.png",
        "sound-3000s-after-picture.mkv",
    ),
)


@pytest.mark.parametrize("case", _CLI_SAMPLE)
def test_the_command_line_answers_hostile_files_in_a_subprocess(
    case: Case, corpus: Path, timings: dict[str, float]
) -> None:
    path = corpus / case.name
    before = _digest(path)
    args = ["check", "--format", "json", "--no-cache", *(["--fast"] if case.fast else [])]
    done, seconds = _preflight(*args, *_cli_inputs(case, path))
    timings[f"cli check {case.name}"] = seconds
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert _digest(path) == before
    if case.fix == "usage":
        assert done.returncode == 2 and case.fix_says in done.stderr and done.stdout == ""
        return
    assert done.returncode == (1 if case.errors else 0), done.stderr
    (file,) = json.loads(done.stdout)["files"]
    errors = {f["code"] for f in file["findings"] if f["severity"] == "error"}
    assert errors == case.errors and file["role"] == case.role
    assert file["path"] == str(path)  # the name comes back as given, whatever it holds


@pytest.mark.parametrize("case", _cases("name", names=("link-to-good.mp4", "dangling-link.mp4")))
def test_fix_on_the_command_line_keeps_hostile_names_as_they_are(
    case: Case, corpus: Path, tmp_path: Path, timings: dict[str, float]
) -> None:
    path = corpus / case.name
    before = _digest(path)
    out = tmp_path / "out dir"
    done, seconds = _preflight(
        "fix", "--fast", "--preset", "ultrafast", "-o", str(out), *_cli_inputs(case, path)
    )
    timings[f"cli fix {case.name}"] = seconds
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert _digest(path) == before
    if case.fix == "refused":
        assert done.returncode == 1 and case.fix_says.lower() in done.stdout.lower()
        assert not out.exists() or not list(out.iterdir())
        return
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in out.iterdir()] == [case.name]  # the same name, copied byte for byte
    assert _digest(out / case.name) == before
    assert not (Path.cwd() / "pwned").exists()  # nothing in a name was ever run


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
def test_a_header_claiming_a_huge_frame_costs_neither_time_nor_memory(corpus: Path) -> None:
    """3 KB of H.264 claiming 15360x15360: FFmpeg decoded a 350 MB frame just to open it,
    the face scan decoded more (20 s, 1.2 GB), and the fixer spent 30 s re-encoding
    concealment noise. Now nothing of it is decoded, and the fixer refuses it."""
    path = corpus / "huge-15360-tiny-file.mp4"
    # The whole command, faces included, in a process of its own that reports its peak memory.
    # (VmHWM, not getrusage: Linux carries the forking parent's peak over into the child's.)
    measured = (
        "import re, sys\n"
        "from preflight._cli.main import main\n"
        "status = main(sys.argv[1:])\n"
        "with open('/proc/self/status') as status_file:\n"
        "    print('peak', re.search(r'VmHWM:\\s*(\\d+)', status_file.read()).group(1), file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", measured, "check", "--format", "json", "--no-cache", str(path)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    seconds = time.monotonic() - start
    assert done.returncode == 1, done.stderr
    (file,) = json.loads(done.stdout)["files"]
    (resolution,) = [f for f in file["findings"] if f["code"] == "InvalidFile.Resolution"]
    assert resolution["fixable"] is False and "8192" in resolution["message"]
    assert file["faces"] is None  # the face scan never decoded a frame
    assert seconds < 15
    peak_kb = int(re.search(r"peak (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    assert peak_kb / 1024 < HUGE_FRAME_MAX_RSS_MB


def test_checking_the_whole_corpus_folder_answers_for_every_file_and_never_blocks(corpus: Path) -> None:
    """One command over the folder: every file is answered for in one report (the named
    pipe is skipped, not read, which would block forever), damaged ones included."""
    done, seconds = _preflight("check", "--fast", "--format", "json", "--no-cache", str(corpus))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert seconds < SUBPROCESS_TIMEOUT_S
    files = {Path(f["path"]).name: f for f in json.loads(done.stdout)["files"]}
    for case in CASES:
        if case.fix == "usage":
            assert case.name not in files
            continue
        assert case.name in files
        # Content findings need the full check; a role given by hand does not apply here.
        if case.fast and case.given_as is None:
            errors = {f["code"] for f in files[case.name]["findings"] if f["severity"] == "error"}
            assert errors == case.errors, case.name
