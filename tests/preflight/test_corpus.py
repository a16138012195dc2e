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

from preflight import (
    CheckOptions,
    CheckReport,
    FileReport,
    FixOptions,
    FixReport,
    LazyEngine,
    Severity,
    UsageError,
    check_paths,
    fix_paths,
)
from preflight._atomic import LEDGER_NAME
from tests.conftest import run_cli_measured, run_module
from tests.corpus import make_corpus
from tests.corpus.make_corpus import CASES, Case
from tests.oracle import (
    assert_audio_accepted,
    assert_image_accepted,
    assert_video_accepted,
    probe,
    read_image,
)

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (the corpus, when not cached yet) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_corpus")

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
    assert not [name for name in leftovers if name.endswith(".part")], leftovers  # no half-written file
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
    # And judged from outside preflight (tests/oracle.py: ffprobe or a bare PyAV reading,
    # Pillow for images) against the service's written limits.
    if case.role == "video":
        assert_video_accepted(probe(output))
    elif case.role == "audio":
        assert_audio_accepted(probe(output))
    else:
        assert_image_accepted(read_image(output))


# --------------------------------------------------------------------------- the command line
def _preflight(
    *args: str, timeout: float = SUBPROCESS_TIMEOUT_S
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = run_module("preflight", *args, timeout=timeout, errors="surrogateescape")
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
    name = Path(case.name).name  # a case may sit in a folder of its own
    written = [p for p in out.iterdir() if p.name != LEDGER_NAME]  # (the list of what fix wrote)
    if case.errors:  # converted: the same name but for the extension
        (converted,) = written
        assert converted.stem == Path(name).stem
    else:
        assert [p.name for p in written] == [name]  # the same name, copied byte for byte
        assert _digest(out / name) == before
    assert not (Path.cwd() / "pwned").exists()  # nothing in a name was ever run


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
def test_a_header_claiming_a_huge_frame_costs_neither_time_nor_memory(corpus: Path) -> None:
    """3 KB of H.264 claiming 15360x15360: FFmpeg decoded a 350 MB frame just to open it,
    the face scan decoded more (20 s, 1.2 GB), and the fixer spent 30 s re-encoding
    concealment noise. Now nothing of it is decoded, and the fixer refuses it."""
    path = corpus / "huge-15360-tiny-file.mp4"
    # The whole command, faces included, in a process of its own that reports its peak memory.
    start = time.monotonic()
    done, peak_mb = run_cli_measured(
        "check", "--format", "json", "--no-cache", str(path), timeout=SUBPROCESS_TIMEOUT_S
    )
    seconds = time.monotonic() - start
    assert done.returncode == 1, done.stderr
    (file,) = json.loads(done.stdout)["files"]
    (resolution,) = [f for f in file["findings"] if f["code"] == "InvalidFile.Resolution"]
    assert resolution["fixable"] is False and "8192" in resolution["message"]
    assert file["faces"] is None  # the face scan never decoded a frame
    assert seconds < 15
    assert peak_mb < HUGE_FRAME_MAX_RSS_MB


def test_checking_the_whole_corpus_folder_answers_for_every_file_and_never_blocks(corpus: Path) -> None:
    """One command over the folder: every file is answered for in one report (the named
    pipe is skipped, not read, which would block forever), damaged ones included."""
    done, seconds = _preflight("check", "--fast", "--format", "json", "--no-cache", str(corpus))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert seconds < SUBPROCESS_TIMEOUT_S
    files = {os.path.relpath(f["path"], corpus): f for f in json.loads(done.stdout)["files"]}
    for case in CASES:
        if case.fix == "usage":
            assert case.name not in files
            continue
        assert case.name in files
        # Content findings need the full check; a role given by hand does not apply here.
        if case.fast and case.given_as is None:
            errors = {f["code"] for f in files[case.name]["findings"] if f["severity"] == "error"}
            assert errors == case.errors, case.name


# --------------------------------------------------------------------------- names on show
_NAMES = [case for case in CASES if case.category == "name"]
#: What no output may carry raw because of a name: every C0 control but the newline that
#: ends a line, DEL, every C1 control, the separators and bidirectional overrides.
_RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ANNOTATION = re.compile(r"::(error|warning|notice) (file=[^,:]*,)?title=[^,:]*::[^\r\n]*")


def _shown_safely(output: bytes, what: str, annotations: bool = False) -> str:
    """The output as text, after checking it is UTF-8 (no raw byte of a name that is not)
    with no raw control character, and that no line starts with "::" (a GitHub Actions
    workflow command) unless it is one of the annotations asked for."""
    text = output.decode("utf-8")  # strict: a name's raw bytes must not get through
    raw = _RAW.search(text)
    assert raw is None, f"{what}: raw {raw.group()!r} in {text[max(0, raw.start() - 40) : raw.end() + 40]!r}"
    for line in text.splitlines():
        if line.startswith("::"):
            assert annotations and _ANNOTATION.fullmatch(line), f"{what}: {line!r}"
    return text


def _github_unescaped(text: str) -> str:
    """A workflow command's property as the runner reads it."""
    for escaped, char in (("%3A", ":"), ("%2C", ","), ("%0D", "\r"), ("%0A", "\n"), ("%25", "%")):
        text = text.replace(escaped, char)
    return text


def _given(corpus: Path, case: Case) -> str:
    """A case's path relative to the corpus's parent folder, as CI names files. (Not from
    inside the corpus: FFmpeg takes a relative name with ":" before any "/" for a URL;
    see ``test_a_relative_name_with_a_colon_is_opened_as_a_file``.)"""
    return f"{corpus.name}/{case.name}"


def _run_on_names(corpus: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``preflight ARGS -- NAMES`` (relative names, as in CI), bytes out."""
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args, "--", *(_given(corpus, case) for case in _NAMES)],
        cwd=corpus.parent,
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT_S * 2,
        check=False,
    )


@pytest.mark.parametrize("output_format", ["text", "json", "github", "sarif", "junit"])
def test_every_check_format_shows_hostile_names_safely_and_parses(corpus: Path, output_format: str) -> None:
    from xml.etree import ElementTree

    import jsonschema

    from preflight import printable

    done = _run_on_names(corpus, "check", "--fast", "--no-cache", "--format", output_format)
    out = _shown_safely(done.stdout, f"check --format {output_format}", annotations=output_format == "github")
    _shown_safely(done.stderr, "stderr")
    failing = [case for case in _NAMES if case.errors]
    assert failing and done.returncode == 1, done.stderr
    names = {_given(corpus, case) for case in _NAMES}
    failing_names = {_given(corpus, case) for case in failing}
    if output_format == "text":  # every name shown, escaped, the report whole
        for name in names:
            assert printable(name) in out, printable(name)
        assert f"Checked {len(names)} files: {len(failing)} errors" in out
    elif output_format == "json":  # machine formats keep names whole
        assert {f["path"] for f in json.loads(out)["files"]} == names
    elif output_format == "sarif":
        from urllib.parse import unquote

        document = json.loads(out)
        schema = json.loads((Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json").read_text())
        jsonschema.Draft4Validator(schema).validate(document)
        uris = {
            unquote(
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], errors="surrogateescape"
            )
            for r in document["runs"][0]["results"]
        }
        assert uris == failing_names
    elif output_format == "junit":
        root = ElementTree.fromstring(done.stdout)  # well-formed XML 1.0
        cases = {case.get("name") for case in root.iter("testcase")}
        assert cases == {printable(name) for name in names}
        assert root.get("failures") == str(len(failing))
    else:  # github: one annotation per error, on the file it is about
        files = [re.match(r"::error file=([^,]*),", line) for line in out.splitlines()]
        assert all(files) and len(files) == len(failing), out
        shown = {printable(_github_unescaped(match.group(1))) for match in files if match}
        assert shown == {printable(name) for name in failing_names}


def test_fix_and_report_show_hostile_names_safely(corpus: Path, tmp_path: Path) -> None:
    from html.parser import HTMLParser

    from preflight import printable

    for output_format in ("text", "json"):
        done = _run_on_names(
            corpus, "fix", "--fast", "--dry-run", "-o", str(tmp_path / "out"), "--format", output_format
        )
        out = _shown_safely(done.stdout, f"fix --format {output_format}")
        _shown_safely(done.stderr, "stderr")
        assert done.returncode == 0, done.stderr  # a dry run's verdict: every copy would pass
        if output_format == "json":
            assert {f["path"] for f in json.loads(out)["files"]} == {_given(corpus, c) for c in _NAMES}
        else:
            assert f"{len(_NAMES)} of {len(_NAMES)} file(s) would pass." in out

    page = tmp_path / "report.html"
    done = _run_on_names(corpus, "report", "--fast", "-o", str(page))
    _shown_safely(done.stderr, "report's stderr")
    assert done.returncode == 1, done.stderr

    class Text(HTMLParser):
        seen = ""

        def handle_data(self, data: str) -> None:
            self.seen += data

    parser = Text()
    html_text = page.read_bytes().decode("utf-8")
    parser.feed(html_text)
    parser.close()
    assert not _RAW.search(html_text.replace("\t", " "))
    for case in _NAMES:
        assert printable(case.name) in parser.seen, printable(case.name)


def test_a_name_starting_with_a_workflow_command_never_starts_a_line(corpus: Path, tmp_path: Path) -> None:
    """Given as it is, relative: fix's text starts its lines with the file's name."""
    done = subprocess.run(
        [sys.executable, "-m", "preflight", "fix", "--fast", "--dry-run", "-o", str(tmp_path / "out"),
         "--", "::error file=x::starts-a-line.wav"],
        cwd=corpus, capture_output=True, timeout=SUBPROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip
    out = _shown_safely(done.stdout, "fix")
    assert "./::error file=x::starts-a-line.wav (audio)" in out, out


def test_a_relative_name_with_a_colon_is_opened_as_a_file(corpus: Path) -> None:
    # FFmpeg reads "name:rest" as protocol "name" (here "::error file=x::..." is no protocol
    # at all, and "Protocol not found" was a false InvalidFile.Openerror).
    done = subprocess.run(
        [sys.executable, "-m", "preflight", "check", "--fast", "--no-cache", "--format", "json",
         "--", "::error file=x::starts-a-line.wav"],
        cwd=corpus, capture_output=True, timeout=SUBPROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip
    (file,) = json.loads(done.stdout)["files"]
    assert file["findings"] == [], file["findings"]


def test_names_that_look_like_ffmpeg_protocols_are_read_and_written_as_files(tmp_path: Path) -> None:
    """A voice called ``concat:x.wav`` fixed into a folder called ``out:put``, both given
    relative: FFmpeg must open each as a file (``concat`` and ``out`` are not protocols
    here), so the voice is checked, converted and written like any other."""
    make_corpus.mf.write_audio(tmp_path / "concat:x.m4a", duration=3.0)
    done = subprocess.run(
        [sys.executable, "-m", "preflight", "fix", "--fast", "--format", "json",
         "-o", "out:put", "--", "concat:x.m4a"],
        cwd=tmp_path, capture_output=True, timeout=SUBPROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (file,) = json.loads(done.stdout)["files"]
    assert file["ok"] and file["output"] == "out:put/concat:x.wav", file
    with av.open(str(tmp_path / "out:put" / "concat:x.wav")) as written:
        assert written.streams.audio[0].codec_context.name == "pcm_s16le"
