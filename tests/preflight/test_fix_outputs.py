"""`preflight fix -o DIR` never replaces a file it did not write: the user's own file under
an output's name is refused (exit 2, nothing written) unless `--overwrite` allows it; the
outputs of an earlier run are replaced on a re-run; an input is never written over; and a
link planted at an output's name is replaced, never followed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from preflight._atomic import LEDGER_NAME
from preflight._cli.main import main


def fix(*args: str) -> tuple[int, dict[str, Any], str]:
    """``preflight fix ARGS --fast --format json``: status, the JSON report, stderr."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["fix", *args, "--fast", "--format", "json"])
    return status, json.loads(out.getvalue()) if out.getvalue() else {}, err.getvalue()


@pytest.fixture()
def clip(media: Any, tmp_path: Path) -> Path:
    """A video the service accepts as it is (the fix copies it)."""
    folder = tmp_path / "in"
    folder.mkdir()
    path: Path = media.write_video(folder / "talk.mp4", duration=2.0)
    return path


def test_a_file_of_the_users_at_an_outputs_name_is_refused_and_nothing_is_written(
    clip: Path, media: Any, tmp_path: Path
) -> None:
    voice = media.write_audio(clip.parent / "voice.wav", duration=2.0)
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "voice.wav"
    mine.write_bytes(b"the user's own take, not a copy of anything")

    status, report, err = fix(str(clip), str(voice), "-o", str(out))

    assert status == 2 and report == {}
    assert str(mine) in err and "--overwrite" in err and "Traceback" not in err
    assert mine.read_bytes() == b"the user's own take, not a copy of anything"
    # Refused before the first output: the video's copy was not written either.
    assert sorted(p.name for p in out.iterdir()) == ["voice.wav"]


def test_overwrite_allows_replacing_it(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "talk.mp4").write_bytes(b"old")
    status, report, _ = fix(str(clip), "-o", str(out), "--overwrite")
    assert status == 0
    assert (out / "talk.mp4").read_bytes() == clip.read_bytes()
    assert report["files"][0]["output"] == str(out / "talk.mp4")


def test_running_the_same_fix_again_replaces_its_own_outputs(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, _, _ = fix(str(clip), "-o", str(out))
    again, report, err = fix(str(clip), "-o", str(out))
    assert (first, again) == (0, 0), err
    assert report["files"][0]["output"] == str(out / "talk.mp4")
    assert (out / "talk.mp4").read_bytes() == clip.read_bytes()


def test_an_output_the_user_edited_since_is_not_replaced_on_a_rerun(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert fix(str(clip), "-o", str(out))[0] == 0
    with open(out / "talk.mp4", "ab") as edited:
        edited.write(b"the user's edit")
    status, _, err = fix(str(clip), "-o", str(out))
    assert status == 2 and str(out / "talk.mp4") in err
    assert (out / "talk.mp4").read_bytes().endswith(b"the user's edit")


def test_a_ledger_found_in_the_folder_cannot_claim_the_users_file(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "talk.mp4"
    mine.write_bytes(b"mine")
    seen = mine.stat()
    # Its size and times as a copied-in ledger could know them; not its inode and change time.
    forged = {"files": {"talk.mp4": [seen.st_ino + 1, seen.st_size, seen.st_mtime_ns, seen.st_mtime_ns]}}
    (out / LEDGER_NAME).write_text(json.dumps(forged))
    assert fix(str(clip), "-o", str(out))[0] == 2
    (out / LEDGER_NAME).write_bytes(b"\xff not json")
    status, _, err = fix(str(clip), "-o", str(out))
    assert status == 2 and "Traceback" not in err
    assert mine.read_bytes() == b"mine"


def test_a_link_planted_at_an_outputs_name_is_refused_and_with_overwrite_replaced_not_followed(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("precious")
    (out / "talk.mp4").symlink_to(victim)

    status, _, err = fix(str(clip), "-o", str(out))
    assert status == 2 and str(out / "talk.mp4") in err
    assert (out / "talk.mp4").is_symlink()

    status, _, _ = fix(str(clip), "-o", str(out), "--overwrite")
    assert status == 0
    assert not (out / "talk.mp4").is_symlink() and (out / "talk.mp4").read_bytes() == clip.read_bytes()
    assert victim.read_text() == "precious"


def test_an_output_never_lands_on_an_input_even_with_overwrite(clip: Path) -> None:
    before = clip.read_bytes()
    link = clip.parent / "alias.mp4"
    os.link(clip, link)  # the same file under another name
    status, report, _ = fix(str(clip), str(link), "-o", str(clip.parent), "--overwrite")
    assert status == 0
    written = sorted(Path(f["output"]).name for f in report["files"])
    assert written == ["alias.fixed.mp4", "talk.fixed.mp4"]
    assert clip.read_bytes() == before and link.stat().st_ino == clip.stat().st_ino


def test_a_part_a_killed_run_left_is_removed_and_one_being_written_is_left_alone(
    clip: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    orphan = out / ".talk.mp4.k1lled00.part"  # a run killed mid-write (SIGKILL) left it
    orphan.write_bytes(b"half a video")
    busy = out / ".talk.mp4.wr1t1ng0.part"  # another run is writing this one right now
    busy.write_bytes(b"being written")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time\n"
         "f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True)\n"
         "time.sleep(60)", str(busy)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        status, report, _ = fix(str(clip), "-o", str(out))
    finally:
        holder.kill()
        holder.wait()

    assert status == 0 and report["files"][0]["output"] == str(out / "talk.mp4")
    assert not orphan.exists() and busy.read_bytes() == b"being written"
