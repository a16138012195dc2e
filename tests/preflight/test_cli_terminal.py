"""``preflight check``, ``fix`` and ``report`` on a real pseudo-terminal, where rich draws
its progress bars and tables: a name with console markup or control characters gets the
whole report, shown escaped, never obeyed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.conftest import make_fixtures, run_on_terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

#: ESC sequences a terminal would obey: blink on red, and set the window's title (OSC).
HOSTILE = "\x1b[5;41mblink\x1b]0;pwned\x07"
HOSTILE_SHOWN = "\\x1b[5;41mblink\\x1b]0;pwned\\x07"


def _preflight(*args: str, cwd: Path) -> tuple[int, str]:
    """Exit status and all the terminal got, with nothing of the names' sequences raw."""
    status, written = run_on_terminal([sys.executable, "-m", "preflight", *args], cwd=cwd)
    output = written.decode("utf-8")
    for raw in ("\x1b]0;pwned", "\x1b[5;41m", "\rcr", "\x07"):
        assert raw not in output, (raw, output)
    return status, output


def _visible(output: str) -> str:
    """What the terminal shows: rich's own colours and cursor moves taken out."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)


def _lines(output: str) -> list[str]:
    # The terminal turns each "\n" into "\r\n"; rich's bars rewrite lines with "\r" too.
    return re.split(r"\r\n|\r|\n", output)


@pytest.fixture()
def markup_folder(tmp_path: Path) -> Path:
    """The issue's file: ``]y.m4a`` in a folder named ``x[`` (an M4A: an error to fix)."""
    (tmp_path / "x[").mkdir()
    make_fixtures.write_audio(tmp_path / "x[" / "]y.m4a", duration=3.0, sample_rate=16000)
    return tmp_path


def _shown_for_markup(folder: Path, status: int, *args: str) -> str:
    """What ``preflight args`` shows on a terminal in ``folder``, once it has exited
    ``status`` with no trace of tripping on the markup in the path."""
    exited, output = _preflight(*args, cwd=folder)
    output = _visible(output)
    assert "MarkupError" not in output and "internal error" not in output, output
    assert exited == status, output
    return output


def test_check_on_a_terminal_reports_a_file_whose_path_is_markup(markup_folder: Path) -> None:
    output = _shown_for_markup(markup_folder, 1, "check", "--fast", "--no-cache", "x[/]y.m4a")
    assert "x[/]y.m4a" in output and "InvalidFile.Format" in output
    assert "Checked 1 file: 1 error" in output


def test_fix_on_a_terminal_fixes_a_file_whose_path_is_markup(markup_folder: Path) -> None:
    output = _shown_for_markup(markup_folder, 0, "fix", "--fast", "-o", "out", "x[/]y.m4a")
    assert "x[/]y.m4a (audio) -> out/]y.wav  ok" in output
    assert "1 of 1 file(s) pass." in output
    assert (markup_folder / "out" / "]y.wav").is_file()


def test_report_on_a_terminal_writes_the_page_for_a_file_whose_path_is_markup(markup_folder: Path) -> None:
    output = _shown_for_markup(markup_folder, 1, "report", "--fast", "-o", "page.html", "x[/]y.m4a")
    assert "report written to page.html (1 files, 1 error, 0 warnings)" in output
    assert "x[/]y.m4a" in (markup_folder / "page.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", ["check", "fix"])
def test_control_characters_in_a_name_reach_the_terminal_escaped(tmp_path: Path, command: str) -> None:
    name = f"a{HOSTILE}\rcr\n::error file=x::pwned.m4a"
    make_fixtures.write_audio(tmp_path / name, duration=3.0, sample_rate=16000)
    args = ["--fast", "-o", "out"] if command == "fix" else ["--fast", "--no-cache"]
    status, output = _preflight(command, *args, "--", name, cwd=tmp_path)
    assert status == (0 if command == "fix" else 1), output
    output = _visible(output)
    # A long line wraps on the terminal: compared without the spaces and line ends.
    flat = re.sub(r"\s+", "", output)
    assert re.sub(r"\s+", "", f"a{HOSTILE_SHOWN}\\rcr\\n::error file=x::pwned.m4a") in flat
    assert "Checked 1 file: 1 error" in output or "1 of 1 file(s) pass." in output
    assert not [line for line in _lines(output) if line.startswith("::")]
