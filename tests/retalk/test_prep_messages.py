"""`prep-and-retalk` says exactly what happened: a file that cannot be fixed is not
"fixed", counts count what was done, and a dry run names what it would write and send
without writing it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from retalk._cli.prep import main
from retalk.emulator import Emulator
from tests.conftest import BAD, SAMPLE

VIDEO, VOICE = SAMPLE / "talking_head.mp4", SAMPLE / "voice.wav"


def prep(*args: str, fmt: str = "text") -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main([*args, "--format", fmt])
    return status, out.getvalue()


def test_a_file_that_cannot_be_fixed_is_not_reported_as_fixed(service: Emulator, tmp_path: Path) -> None:
    # Said "fixed bad/notes.mp4 -> (dry run):" and "1 file(s) changed", outside a dry run.
    status, text = prep(
        str(BAD / "notes.mp4"), str(VOICE), "-o", str(tmp_path / "o.mp4"),
        "--base-url", service.base_url, "--journal", str(tmp_path / "j.sqlite"),
    )  # fmt: skip
    assert status == 1 and service.requests == []
    assert "(dry run)" not in text and f"fixed {BAD / 'notes.mp4'}" not in text
    assert f"cannot fix {BAD / 'notes.mp4'}: " in text
    assert "preflight fix cannot repair a file it cannot read" in text
    assert "nothing to fix from" not in text
    assert f"copied {VOICE} -> {tmp_path / 'o.work' / 'voice.wav'}: already accepted" in text
    (stage,) = [line for line in text.splitlines() if line.lstrip().startswith("check and fix")]
    assert "0 file(s) changed, 1 copied as they are" in stage and "1 cannot be made acceptable" in stage


def test_a_dry_run_names_the_copies_it_would_send_and_writes_no_work_folder(tmp_path: Path) -> None:
    # Said "into OUT.work" (never created) and listed the originals under "would send".
    status, text = prep(str(VIDEO), str(VOICE), "-o", str(tmp_path / "o.mp4"), "--dry-run")
    work = tmp_path / "o.work"
    assert status == 0 and not work.exists()
    (stage,) = [line for line in text.splitlines() if line.lstrip().startswith("check and fix")]
    assert f"into {work} (dry run: not written)" in stage and "would be copied as they are" in stage
    assert f"would copy {VIDEO} -> {work / 'talking_head.mp4'}: already accepted" in text
    (sent,) = [line for line in text.splitlines() if line.startswith("would send")]
    assert json.loads(sent.split(": ", 1)[1]) == {
        "video": str(work / "talking_head.mp4"),
        "audio": str(work / "voice.wav"),
    }
    status, document = prep(str(VIDEO), str(VOICE), "-o", str(tmp_path / "o.mp4"), "--dry-run", fmt="json")
    report: dict[str, Any] = json.loads(document)
    assert report["sent"] == {"video": str(work / "talking_head.mp4"), "audio": str(work / "voice.wav")}
    assert not work.exists()


def test_a_fixed_file_names_its_steps_and_where_it_went(
    media: Any, service: Emulator, tmp_path: Path
) -> None:
    video = media.write_video(
        tmp_path / "talk.mp4", fps=10, width=720, height=720, source="face", duration=4.0
    )
    status, text = prep(
        str(video), str(VOICE), "-o", str(tmp_path / "o.mp4"),
        "--base-url", service.base_url, "--journal", str(tmp_path / "j.sqlite"),
    )  # fmt: skip
    assert status == 0, text
    (line,) = [line for line in text.splitlines() if line.startswith(f"fixed {video} -> ")]
    assert line.startswith(f"fixed {video} -> {tmp_path / 'o.work' / 'talk.mp4'}: ") and "fps" in line
    (stage,) = [line for line in text.splitlines() if line.lstrip().startswith("check and fix")]
    assert "1 file(s) changed, 1 copied as they are" in stage
