"""The check cache: an unchanged file checked again with the same settings comes from the
cache; a change of the file (size or time) or of the settings checks it again; a broken
entry is checked again; `--no-cache` never reads it; runs side by side share it safely."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preflight import CheckOptions, check_paths
from preflight._check.cache import CheckCache
from tests.conftest import BAD, ROOT, run_cli

LONG_AGO = time.time() - 3600


def aged_copy(source: Path, target: Path) -> Path:
    """A copy last modified an hour ago (fresh files are never cached)."""
    shutil.copy(source, target)
    os.utime(target, (LONG_AGO, LONG_AGO))
    return target


def swap_content_keeping_size_and_time(path: Path, other: Path) -> None:
    """Another file's bytes under the same name, size and time: what the cache trusts."""
    data = other.read_bytes()[: path.stat().st_size].ljust(path.stat().st_size, b"\0")
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, (LONG_AGO, LONG_AGO))


def codes(out: str) -> list[str]:
    return [f["code"] for file in json.loads(out)["files"] for f in file["findings"]]


def test_an_unchanged_file_comes_from_the_cache_and_a_changed_one_is_checked_again(tmp_path: Path) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    _, first = run_cli("check", str(clip), "--fast", "--format", "json", *cache)
    assert "InvalidFile.FPS" in codes(first)
    # Same name, size and time, other bytes: trusted as unchanged (as ruff and make do)...
    swap_content_keeping_size_and_time(clip, BAD / "notes.mp4")
    _, cached = run_cli("check", str(clip), "--fast", "--format", "json", *cache)
    assert cached == first
    # ...--no-cache looks again...
    _, fresh = run_cli("check", str(clip), "--fast", "--format", "json", "--no-cache", *cache)
    assert codes(fresh) == ["InvalidFile.Openerror"]
    # ...and so does the cache once the file's time changes.
    os.utime(clip, (LONG_AGO + 1, LONG_AGO + 1))
    _, after = run_cli("check", str(clip), "--fast", "--format", "json", *cache)
    assert codes(after) == ["InvalidFile.Openerror"]


def test_other_settings_and_fresh_files_are_not_served_from_the_cache(tmp_path: Path) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    cache = CheckCache(tmp_path / "cache", "test")
    check_paths([clip], options=CheckOptions(fast=True), cache=cache)
    narrow = check_paths([clip], options=CheckOptions(fast=True, select=("InvalidFile.FPS",)), cache=cache)
    assert [f.code for f in narrow.files[0].findings] == ["InvalidFile.FPS"]
    assert len(list((tmp_path / "cache").glob("*/*"))) == 2
    fresh = tmp_path / "fresh.avi"
    shutil.copy(BAD / "low fps 480p.avi", fresh)  # modified just now
    check_paths([fresh], options=CheckOptions(fast=True), cache=cache)
    assert len(list((tmp_path / "cache").glob("*/*"))) == 2


def test_a_broken_entry_is_checked_again(tmp_path: Path) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    cache = CheckCache(tmp_path / "cache", "test")
    first = check_paths([clip], options=CheckOptions(fast=True), cache=cache)
    (entry,) = (tmp_path / "cache").glob("*/*")
    entry.write_bytes(b"not a report")
    again = check_paths([clip], options=CheckOptions(fast=True), cache=cache)
    assert again.files[0].findings == first.files[0].findings


def test_runs_side_by_side_share_the_cache(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    for source in BAD.iterdir():
        aged_copy(source, folder / source.name)
    env = {**os.environ, "PREFLIGHT_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "preflight", "check", str(folder), "--fast", "--format", "json"]
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE) for _ in range(4)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert all(run.returncode == 1 for run in runs)
    assert len(set(outputs)) == 1
    assert not list((tmp_path / "cache").glob("*/.*.part"))
    _, again = run_cli(
        "check", str(folder), "--fast", "--format", "json", "--cache-dir", str(tmp_path / "cache")
    )
    assert again.encode() == outputs[0]


def test_pictures_asked_for_are_never_taken_from_the_cache_nor_kept_in_it(tmp_path: Path) -> None:
    clip = aged_copy(BAD / "phone_rotated.mp4", tmp_path / "clip.mp4")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    run_cli("check", str(clip), *cache)
    assert len(list((tmp_path / "cache").glob("*/*"))) == 1
    for _ in range(2):  # the second run would be served a picture-less entry if one were kept
        sheet = tmp_path / "sheet.png"
        sheet.unlink(missing_ok=True)
        status, _ = run_cli("check", str(clip), "--contact-sheet", str(sheet), *cache)
        assert status == 0 and sheet.stat().st_size > 0
        # The checks that took pictures left no entry: only the first, picture-less one.
        assert len(list((tmp_path / "cache").glob("*/*"))) == 1
    assert CheckCache(tmp_path / "cache").key(str(clip), "video", CheckOptions(thumbnails=True)) is None


# Each part of a cache entry's key, changed alone, must make the entry miss. The file's
# bytes are swapped (same size and time) after the first check, so a hit shows the old
# verdict (InvalidFile.FPS) and a miss the new one (the swapped bytes cannot be opened).
KEY_PARTS = ["nothing", "size", "mtime", "inode", "role", "settings", "code"]


@pytest.mark.parametrize("changed", KEY_PARTS)
def test_changing_one_part_of_the_cache_key_checks_the_file_again(tmp_path: Path, changed: str) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    folder = tmp_path / "cache"
    options = CheckOptions(fast=True)
    first = check_paths(video=clip, options=options, cache=CheckCache(folder, "code-1"))
    assert "InvalidFile.FPS" in [f.code for f in first.files[0].findings]
    swap_content_keeping_size_and_time(clip, BAD / "notes.mp4")
    before = clip.stat()
    role, code = "video", "code-1"
    if changed == "size":
        with open(clip, "ab") as handle:
            handle.write(b"\0" * 16)
        os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif changed == "mtime":
        os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    elif changed == "inode":
        # Same bytes, size and time under the same name, in a new inode (the old one still
        # exists while the new one is made, so the two cannot share a number).
        replacement = tmp_path / "replacement.avi"
        shutil.copyfile(clip, replacement)
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(replacement, clip)
        assert clip.stat().st_ino != before.st_ino
    elif changed == "role":
        role = "audio"
    elif changed == "settings":
        options = CheckOptions(fast=True, select=("InvalidFile.FPS", "InvalidFile.Openerror"))
    elif changed == "code":
        code = "code-2"
    after = clip.stat()
    assert (after.st_size != before.st_size) is (changed == "size")
    assert (after.st_mtime_ns != before.st_mtime_ns) is (changed == "mtime")
    cache = CheckCache(folder, code)
    again = check_paths(**{role: clip}, options=options, cache=cache)  # type: ignore[arg-type]
    found = [f.code for f in again.files[0].findings]
    if changed == "nothing":
        assert "InvalidFile.FPS" in found  # a hit: the same key serves the old verdict
    else:
        assert found == ["InvalidFile.Openerror"], f"changing the {changed} must miss the cache"


def test_a_changed_threshold_checks_the_files_again(media, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "voices"
    folder.mkdir()
    voice = media.write_audio(
        folder / "quiet.wav", signal=media.voice_like(4.0, 16000, level_db=-30.0), sample_rate=16000
    )
    os.utime(voice, (LONG_AGO, LONG_AGO))  # old enough to be cached
    settings = tmp_path / "preflight.toml"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    _, first = run_cli("check", str(folder), "--format", "json", *cache)
    assert codes(first) == ["Audio.Quiet"]
    settings.write_text("[thresholds.audio]\nquiet_lufs = -50\n")
    _, tuned = run_cli("check", str(folder), "--format", "json", *cache)
    assert codes(tuned) == []  # not the default-threshold result from the cache
    settings.write_text("[thresholds.audio]\nquiet_lufs = -36.5\n")
    _, stricter = run_cli("check", str(folder), "--format", "json", *cache)
    assert "want at least -36.5" in json.loads(stricter)["files"][0]["findings"][0]["message"]
    assert len(list((tmp_path / "cache").glob("*/*"))) == 3  # one entry per set of thresholds
    settings.unlink()
    _, again = run_cli("check", str(folder), "--format", "json", *cache)
    assert again == first
    assert len(list((tmp_path / "cache").glob("*/*"))) == 3  # ...the first one served again
