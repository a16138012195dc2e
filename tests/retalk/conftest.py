"""What the retalk tests share: the emulated service a prep-and-retalk run talks to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retalk.emulator import Emulator, Faults

#: The key the emulated service accepts (and the environment hands the command line).
EMULATED_KEY = "sk-emulated-prep-0123456789"


@pytest.fixture()
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A quick emulator (tasks of 0.2 s, no submit pacing), its key in the environment."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", EMULATED_KEY)
    with Emulator(
        tmp_path / "service", api_key=EMULATED_KEY, faults=Faults(task_seconds=0.2, submit_interval_s=0)
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def journal_of_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's default journal (and so its `--emulator` runs' emulator) in its own
    folder, never the user's ~/.local/state."""
    journal = tmp_path / "state" / "journal.sqlite"
    monkeypatch.setenv("RETALK_JOURNAL", str(journal))
    return journal
