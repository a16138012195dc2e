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
from preflight._cache import CheckCache
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


@pytest.mark.parametrize("flag", ["--contact-sheet"])
def test_pictures_asked_for_are_never_taken_from_the_cache(tmp_path: Path, flag: str) -> None:
    clip = aged_copy(BAD / "phone_rotated.mp4", tmp_path / "clip.mp4")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    run_cli("check", str(clip), *cache)
    status, _ = run_cli("check", str(clip), flag, str(tmp_path / "sheet.png"), *cache)
    assert status == 0 and (tmp_path / "sheet.png").exists()


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
