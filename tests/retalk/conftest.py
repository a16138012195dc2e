"""What the retalk tests share: the emulated service a prep-and-retalk run talks to, and
the job inputs the journal tests record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retalk.emulator import Emulator, Faults

#: The key the emulated service accepts (and the environment hands the command line).
EMULATED_KEY = "sk-emulated-prep-0123456789"


def emulated_service(folder: Path, key: str, task_seconds: float) -> Emulator:
    """An emulated service in ``folder``/service that takes ``key`` and runs each task
    ``task_seconds``; submits are not paced (a test sends them faster than the service allows).
    Started by ``with``."""
    return Emulator(
        folder / "service", api_key=key, faults=Faults(task_seconds=task_seconds, submit_interval_s=0)
    )


@pytest.fixture()
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A quick emulator (tasks of 0.2 s, no submit pacing), its key in the environment."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", EMULATED_KEY)
    with emulated_service(tmp_path, EMULATED_KEY, task_seconds=0.2) as running:
        yield running


@pytest.fixture(autouse=True)
def journal_of_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's default journal (and so its `--emulator` runs' emulator) in its own
    folder, never the user's ~/.local/state."""
    journal = tmp_path / "state" / "journal.sqlite"
    monkeypatch.setenv("RETALK_JOURNAL", str(journal))
    return journal


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    """A job's inputs as the journal records them: a video and a voice file (their bytes
    stand in for media; the journal only hashes them)."""
    video, audio = tmp_path / "talk.mp4", tmp_path / "voice.wav"
    video.write_bytes(b"video bytes")
    audio.write_bytes(b"audio bytes")
    return {"video": str(video), "audio": str(audio)}
