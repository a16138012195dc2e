"""``retalk`` on a real pseudo-terminal against the emulator: what the service sends (a
failed task's code and message, a task id) and file names are shown escaped, never obeyed
as console markup or terminal sequences, and never cost the run."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console

from retalk import Task
from retalk._cli.display import live_display
from retalk.emulator import Emulator, Faults
from tests.conftest import SAMPLE, make_fixtures, run_on_terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

KEY = "sk-emulated-terminal-0123456789"
#: Sequences a terminal would obey: blink on red, set the window's title, and a carriage
#: return then a newline that starts a GitHub Actions workflow command.
RAW = ("\x1b[5;41m", "\x1b]0;pwned", "\x07", "\rcr")
HOSTILE = "[/]x \x1b[5;41mblink \x1b]0;pwned\x07\rcr\n::error file=x::pwned"
HOSTILE_SHOWN = "[/]x \\x1b[5;41mblink \\x1b]0;pwned\\x07\\rcr\\n::error file=x::pwned"


def _retalk(emulator: Emulator, tmp_path: Path, *args: str) -> tuple[int, str]:
    """``retalk ARGS`` on a terminal: its exit status and what the terminal shows (rich's
    own colours and cursor moves taken out), after checking nothing hostile got there raw."""
    env = {
        **os.environ,
        "DASHSCOPE_API_KEY": KEY,
        "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
        "RETALK_JOURNAL": str(tmp_path / "journal.sqlite"),
    }
    status, written = run_on_terminal([sys.executable, "-m", "retalk", *args], cwd=tmp_path, env=env)
    output = written.decode("utf-8")
    for raw in RAW:
        assert raw not in output, (raw, output)
    assert "internal error" not in output and "MarkupError" not in output, output
    lines = re.split(r"\r\n|\r|\n", output)
    assert not [line for line in lines if line.startswith("::")], output
    return status, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)


@pytest.fixture()
def failing(tmp_path: Path) -> Emulator:
    faults = Faults(task_seconds=0.2, submit_interval_s=0, fail_tasks=True, fail_with=("Algo.[/]x", HOSTILE))
    with Emulator(tmp_path / "service", api_key=KEY, faults=faults) as emulator:
        yield emulator  # type: ignore[misc]


def test_a_failed_tasks_code_and_message_reach_the_terminal_escaped(
    failing: Emulator, tmp_path: Path
) -> None:
    args = ["submit", str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"), "-o", "r.mp4"]
    status, shown = _retalk(failing, tmp_path, *args)
    assert status == 1, shown  # the task was refused: the whole message, escaped
    assert f"failed: Algo.[/]x: {HOSTILE_SHOWN}" in shown
    assert failing.submissions == 1


def test_uploading_a_file_whose_name_is_markup_and_escapes_shows_it_as_it_is(
    failing: Emulator, tmp_path: Path
) -> None:
    name = "[bold]y \x1b]0;pwned\x07.wav"
    make_fixtures.write_audio(tmp_path / name, duration=1.0, sample_rate=16000)
    status, shown = _retalk(failing, tmp_path, "upload", name)
    assert status == 0, shown
    assert "[bold]y \\x1b]0;pwned\\x07.wav: " in shown and "oss://" in shown


def test_the_live_display_shows_a_task_id_that_is_markup_as_it_is() -> None:
    """The waiting line is drawn by rich: an id of ``[/]x`` ended the run with MarkupError
    after the task was paid for."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    with live_display(console, True) as display:
        assert display is not None
        display.waiting(Task(task_id="[/]x\x1b]0;pwned\x07", status="RUNNING [bold]"), 3.0)
        display.transfer("upload [/]v\x1b[5m.mp4", 10, 100)
    output = buffer.getvalue()
    assert "task [/]x\\x1b]0;pwned\\x07: RUNNING [bold], 3 s" in output
    assert "upload [/]v\\x1b[5m.mp4" in output
    assert "\x1b]0;pwned" not in output and "\x1b[5m" not in output
