"""Where the check cache lives when nothing says where, and who can read what it keeps."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BAD, run_cli
from tests.preflight.test_cache_trust import aged_copy, entries


@pytest.fixture
def outside_any_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clip in a folder with no settings file, checked from there, with no
    PREFLIGHT_CACHE_DIR: the cache goes to the user's cache folder."""
    monkeypatch.delenv("PREFLIGHT_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    monkeypatch.chdir(aged_copy(BAD / "low fps 480p.avi", work / "clip.avi").parent)
    return work / "clip.avi"


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common umask 022, under which a folder made without a mode is readable by all."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_a_check_outside_any_project_keeps_its_cache_in_the_users_cache_folder(
    outside_any_project: Path, tmp_path: Path
) -> None:
    status, _ = run_cli("check", str(outside_any_project), "--fast")
    assert status == 1
    assert len(entries(tmp_path / "home" / ".cache" / "preflight")) == 1
    assert not (tmp_path / "work" / ".preflight_cache").exists()


def test_xdg_cache_home_moves_the_users_cache_folder(
    outside_any_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    run_cli("check", str(outside_any_project), "--fast")
    assert len(entries(tmp_path / "xdg" / "preflight")) == 1
    assert not (tmp_path / "home" / ".cache").exists()


def test_what_the_cache_keeps_is_readable_by_its_owner_alone(tmp_path: Path, usual_umask: None) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    cache = tmp_path / "cache"
    run_cli("check", str(clip), "--fast", "--cache-dir", str(cache))
    (entry,) = entries(cache)
    # Reports name the user's files: neither the folders nor the entries are for others.
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary left
    # The tags for backup tools and git are ordinary files anyone may read.
    assert stat.S_IMODE((cache / "CACHEDIR.TAG").stat().st_mode) == 0o644
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55\n")
    assert (cache / ".gitignore").read_text() == "*\n"


def test_an_entry_that_cannot_be_put_in_place_leaves_no_half_written_file(tmp_path: Path) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    cache = tmp_path / "cache"
    run_cli("check", str(clip), "--fast", "--cache-dir", str(cache))
    (entry,) = entries(cache)
    # Something else now holds the entry's name (a folder): the new entry cannot replace it.
    entry.unlink()
    entry.mkdir()
    status, _ = run_cli("check", str(clip), "--fast", "--cache-dir", str(cache))
    assert status == 1  # the check itself is unharmed
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]
