"""Shared test helpers: the fixture writers, committed fixtures and the real sample media."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SAMPLE = FIXTURES / "sample"
BAD = FIXTURES / "bad"
SHARED_MEDIA = ROOT.parent / "shared" / "media"

sys.path.insert(0, str(FIXTURES))

import make_fixtures  # noqa: E402  (the fixture script doubles as the writers' library)


def pytest_configure(config: pytest.Config) -> None:
    # Never the user's ~/.cache, even for session fixtures that run before any test.
    os.environ["PREFLIGHT_CACHE_DIR"] = tempfile.mkdtemp(prefix="preflight-test-cache-")
    config.addinivalue_line(
        "markers", "heavy: a test that takes a minute or more on its own: started first (see below)"
    )
    # pytest-xdist's own mark, known even where xdist is not installed (no warning then).
    config.addinivalue_line("markers", "xdist_group(name): the tests of one group run on one worker")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``heavy`` tests first, the rest in pytest-randomly's order: pytest-xdist hands
    tests out in this order, and a heavy test started last would leave the other workers
    idle while it runs on alone."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)  # a stable sort


@pytest.fixture(autouse=True)
def own_check_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets an empty check cache of its own: a verdict another test left there
    could otherwise hide a bug in the cache key (or make a test pass only after another)."""
    folder = tmp_path_factory.mktemp("check-cache")
    monkeypatch.setenv("PREFLIGHT_CACHE_DIR", str(folder))
    return folder


def run_cli(*args: str) -> tuple[int, str]:
    """Run the ``preflight`` command line in this process: its exit status and stdout."""
    import contextlib
    import io

    from preflight._cli.main import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(list(args))
    return status, buffer.getvalue()


def run_on_terminal(
    argv: list[str],
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, bytes]:
    """Run a command on a real pseudo-terminal (stdin, stdout and stderr all on it, 120
    columns, as a person's shell runs it): its exit status and every byte it wrote there."""
    import fcntl
    import pty
    import select
    import signal
    import struct
    import subprocess
    import termios
    import time

    main_fd, secondary_fd = pty.openpty()
    fcntl.ioctl(secondary_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    environment = {k: v for k, v in (env or os.environ).items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    environment["TERM"] = "xterm-256color"
    environment.pop("COLUMNS", None)
    process = subprocess.Popen(
        argv,
        stdin=secondary_fd,
        stdout=secondary_fd,
        stderr=secondary_fd,
        cwd=cwd,
        env=environment,
        start_new_session=True,
    )
    os.close(secondary_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                raise TimeoutError(f"{argv} still running after {timeout} s: {b''.join(chunks)!r}")
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        return process.wait(timeout=timeout), b"".join(chunks)
    finally:
        os.close(main_fd)


def doc_pages() -> list[Path]:
    """README.md and every page of docs/, in a stable order: where the tested snippets live."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def doc_snippet(name: str) -> str:
    """The fenced block after ``<!-- snippet: NAME -->`` in README.md or a page of docs/,
    dedented: what a user would copy and paste. Fails when no page has the marker (it is
    documentation we test), when two places do (which would the test be running?), or when
    no fenced block follows it."""
    import re
    import textwrap

    marker = f"<!-- snippet: {name} -->"
    pages = {page: page.read_text(encoding="utf-8") for page in doc_pages()}
    where = [str(page.relative_to(ROOT)) for page, text in pages.items() for _ in range(text.count(marker))]
    assert where, f"no page of README.md or docs/ has the snippet {name!r}"
    assert len(where) == 1, f"the snippet {name!r} is in more than one place: {where}"
    page, text = next((page, text) for page, text in pages.items() if marker in text)
    found = re.search(rf"^([ \t]*){re.escape(marker)}\n\1```[\w-]*\n(.*?)\n\1```", text, re.S | re.M)
    assert found is not None, f"{page.relative_to(ROOT)}: no fenced block right after {marker}"
    indent = found.group(1)
    return textwrap.dedent("\n".join(line[len(indent) :] for line in found.group(2).splitlines()))


def codes(report: Any) -> list[str]:
    """The finding codes of a FileReport, in order."""
    return [finding.code for finding in report.findings]


@pytest.fixture(scope="session")
def media() -> Any:
    """The fixture writers (write_video, write_audio, write_image, grow_to, truncate_to)."""
    return make_fixtures


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Make a media file once per session: made("video", "name.mp4", width=...)."""
    folder = tmp_path_factory.mktemp("made")
    writers = {
        "video": make_fixtures.write_video,
        "audio": make_fixtures.write_audio,
        "image": make_fixtures.write_image,
    }
    cache: dict[tuple[str, str], Path] = {}
    kept = os.environ.get(KEPT_MEDIA_VARIABLE)
    if not kept and os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist's workers share their run's temporary folder (each has its own
        # below it): one worker writes a file, the others reuse it.
        kept = str(tmp_path_factory.getbasetemp().parent / "made-by-the-workers")

    def make(kind: str, name: str, **options: Any) -> Path:
        key = (kind, name)
        if key not in cache:
            if kept and _plain(options):
                cache[key] = _kept(Path(kept), kind, name, options, writers[kind])
            else:
                cache[key] = writers[kind](folder / name, **options)
        return cache[key]

    return make


#: A folder where ``made`` keeps the media it writes between test runs (the mutation runs
#: test hundreds of mutants with the same files); unset, every run writes its own.
KEPT_MEDIA_VARIABLE = "PREFLIGHT_TEST_KEPT_MEDIA"


def _plain(options: dict[str, Any]) -> bool:
    """Options whose repr says all of them (an array's repr is cut short: never kept)."""
    simple = (str, int, float, bool, type(None))
    return all(
        isinstance(v, simple) or (isinstance(v, tuple) and all(isinstance(x, simple) for x in v))
        for v in options.values()
    )


def _kept(folder: Path, kind: str, name: str, options: dict[str, Any], writer: Callable[..., Path]) -> Path:
    """The file ``writer`` makes for these options, written once into ``folder`` (keyed by
    the options and the writers' own source, so a changed writer writes it again)."""
    import fcntl
    import hashlib
    import inspect

    recipe = repr((kind, name, sorted(options.items()), inspect.getsource(make_fixtures)))
    place = folder / hashlib.sha256(recipe.encode()).hexdigest()[:24]
    if (place / name).exists():
        return place / name
    place.mkdir(parents=True, exist_ok=True)
    # One writer per file: another process (an xdist worker, a mutant's run) making the
    # same file waits for it rather than encoding it again beside it.
    with open(place / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (place / name).exists():
            with tempfile.TemporaryDirectory(dir=place) as scratch:
                written = writer(Path(scratch) / name, **options)
                os.replace(written, place / name)
    return place / name


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real sample media not available ({SHARED_MEDIA} is absent)")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """One face engine for the whole run (mediapipe loads once, on first use)."""
    from preflight import LazyEngine

    shared = LazyEngine()
    yield shared
    shared.close()


def run_cli_measured(*args: str, timeout: float = 120.0) -> tuple[Any, float]:
    """Run the ``preflight`` command line in a process of its own: the finished process
    (stdout, stderr, returncode) and its peak memory in MB (Linux's VmHWM: getrusage would
    carry the forking parent's peak over into the child)."""
    import re
    import subprocess

    measured = (
        "import re, sys\n"
        "from preflight._cli.main import main\n"
        "status = main(sys.argv[1:])\n"
        "with open('/proc/self/status') as status_file:\n"
        "    print('peak', re.search(r'VmHWM:\\s*(\\d+)', status_file.read()).group(1), file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", measured, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    peak = re.search(r"peak (\d+)", done.stderr)
    assert peak is not None, done.stderr
    return done, int(peak.group(1)) / 1024


def run_module(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
    errors: str = "strict",
) -> Any:
    """Run ``python -m MODULE ARGS`` in a process of its own, as a user runs the command:
    the finished process (stdout, stderr, returncode), its output as text."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        errors=errors,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
