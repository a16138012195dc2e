"""The check cache as a trust boundary: a repository's `.preflight_cache` and a shared
`PREFLIGHT_CACHE_DIR` may hold anything. Links planted there are never written through, a
folder others can write to is not used (and the user is told), an entry is data that is
never run, and a changed rule never serves an old verdict."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preflight import CheckOptions, FileReport, check_paths
from preflight._check.cache import ENTRY_MAX_BYTES, CheckCache, code_fingerprint, source_hash
from preflight._check.cache_entry import ENTRY_FORMAT, decode, encode
from tests.conftest import BAD, ROOT, SAMPLE, run_cli

LONG_AGO = time.time() - 3600
FAST = CheckOptions(fast=True)


def aged_copy(source: Path, target: Path) -> Path:
    """A copy last modified an hour ago (fresh files are never cached)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    os.utime(target, (LONG_AGO, LONG_AGO))
    return target


def codes(out: str) -> list[str]:
    return [f["code"] for file in json.loads(out)["files"] for f in file["findings"]]


def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A project with a settings file (its cache goes beside it) and a clip to check."""
    monkeypatch.delenv("PREFLIGHT_CACHE_DIR", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "preflight.toml").write_text("")
    return repo, aged_copy(BAD / "low fps 480p.avi", repo / "clip.avi")


def entries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and len(p.name) == 64]


def test_links_a_repository_ships_in_its_cache_folder_are_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, clip = repository(tmp_path, monkeypatch)
    outside = tmp_path / "outside"
    (outside / "entries").mkdir(parents=True)
    precious = outside / "precious.txt"
    precious.write_text("the user's own file\n")
    cache = repo / ".preflight_cache"
    cache.mkdir(mode=0o755)
    (cache / ".gitignore").symlink_to(precious)
    (cache / "CACHEDIR.TAG").symlink_to(outside / "created.txt")  # dangling: would be created
    for number in range(256):  # every entry's subfolder leads outside
        (cache / f"{number:02x}").symlink_to(outside / "entries", target_is_directory=True)

    status, out = run_cli("check", str(clip), "--fast", "--format", "json")

    assert status == 1 and "InvalidFile.FPS" in codes(out)
    assert precious.read_text() == "the user's own file\n"
    assert not (outside / "created.txt").exists()
    assert list((outside / "entries").iterdir()) == []


def test_a_cache_folder_that_is_a_link_is_refused_with_a_message_and_the_check_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, clip = repository(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (repo / ".preflight_cache").symlink_to(elsewhere, target_is_directory=True)

    status, out = run_cli("check", str(clip), "--fast", "--format", "json")

    assert status == 1 and "InvalidFile.FPS" in codes(out)  # stdout is the report alone
    message = f"preflight: not using the cache {repo / '.preflight_cache'}: it is a symbolic link\n"
    assert capsys.readouterr().err == message
    assert list(elsewhere.iterdir()) == []


def test_a_refused_cache_is_named_with_its_control_characters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    odd = tmp_path / "cache\n::error ::x\x1b[31m"
    odd.write_text("a file, not a folder")

    status, out = run_cli("check", str(clip), "--fast", "--format", "text", "--cache-dir", str(odd))

    assert status == 1 and "InvalidFile.FPS" in out
    err = capsys.readouterr().err
    assert (
        err == f"preflight: not using the cache {tmp_path}/cache\\n::error ::x\\x1b[31m: it is not a folder\n"
    )
    assert odd.read_text() == "a file, not a folder"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_cache_folder_others_can_write_to_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    monkeypatch.setenv("PREFLIGHT_CACHE_DIR", str(shared))

    status, out = run_cli("check", str(clip), "--fast", "--format", "json")

    assert status == 1 and "InvalidFile.FPS" in codes(out)
    assert capsys.readouterr().err == (
        f"preflight: not using the cache {shared}: other users can write to it "
        f"(mode {mode:o}; if it is yours, chmod go-w it)\n"
    )
    assert list(shared.iterdir()) == []
    # Once it is the user's alone, it is used again.
    shared.chmod(0o700)
    run_cli("check", str(clip), "--fast", "--format", "json")
    assert capsys.readouterr().err == ""
    assert len(entries(shared)) == 1
    assert (shared / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a folder away"
)
def test_another_users_cache_folder_is_not_used(tmp_path: Path) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 4242, 4242)
    cache = CheckCache(theirs)
    check_paths([clip], options=FAST, cache=cache)
    assert list(theirs.iterdir()) == []
    assert cache.refusal() == "it belongs to another user (uid 4242)"


class _Payload:
    """What a hostile writer plants: unpickling it makes a folder (any code would run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_planted_as_an_entry_is_never_run_and_the_file_is_checked_afresh(tmp_path: Path) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    folder = tmp_path / "cache"
    cache = CheckCache(folder)
    key = cache.key(str(clip), "video", FAST)
    assert key is not None
    (folder / key[:2]).mkdir(mode=0o700, parents=True)
    marker = tmp_path / "the payload ran"
    (folder / key[:2] / key).write_bytes(pickle.dumps(_Payload(marker)))

    report = check_paths([clip], options=FAST, cache=cache)

    assert not marker.exists()
    assert "InvalidFile.FPS" in [f.code for f in report.files[0].findings]
    # ...and the planted entry is replaced by a real one.
    assert cache.get(key) == report.files[0]


def faces_of(report: FileReport) -> list[Any]:
    scan = report.faces
    if scan is None:
        return []
    faces = list(getattr(scan, "faces", ()))
    for sample in getattr(scan, "samples", ()):
        faces.extend(sample.faces)
    return faces


def test_real_reports_come_back_from_an_entry_exactly(tmp_path: Path, engine: Any) -> None:
    folder = tmp_path / "media"
    for source in (SAMPLE / "talking_head.mp4", SAMPLE / "face.jpg", SAMPLE / "voice.wav", BAD / "notes.mp4"):
        aged_copy(source, folder / source.name)
    aged_copy(BAD / "phone_rotated.mp4", folder / "rotated.mp4")
    fresh = check_paths([folder], engine=engine)
    kinds = {type(r.media).__name__ for r in fresh.files} | {type(r.faces).__name__ for r in fresh.files}
    assert {"MediaInfo", "ImageInfo", "VideoFaceScan", "ImageFaceScan"} <= kinds
    assert any(r.speech is not None for r in fresh.files)
    assert any(r.findings for r in fresh.files) and any(f.details for r in fresh.files for f in r.findings)
    assert any(face.landmarks is not None for r in fresh.files for face in faces_of(r))

    for report in fresh.files:
        back = decode(encode(report))
        assert back == report
        for kept, came in zip(faces_of(report), faces_of(back), strict=True):
            # Not compared by ==, yet what the reference match and the mouth rule read.
            for name in ("landmarks", "descriptor"):
                a, b = getattr(kept, name), getattr(came, name)
                a, b = getattr(a, "lbp", a), getattr(b, "lbp", b)
                assert (a is None and b is None) or (a.dtype == b.dtype and np.array_equal(a, b))


def test_a_job_from_the_cache_matches_the_reference_face_as_a_fresh_check_does(
    tmp_path: Path, engine: Any
) -> None:
    video = aged_copy(SAMPLE / "talking_head.mp4", tmp_path / "v.mp4")
    voice = aged_copy(SAMPLE / "voice.wav", tmp_path / "a.wav")
    face = aged_copy(SAMPLE / "face.jpg", tmp_path / "r.jpg")
    cache = CheckCache(tmp_path / "cache")
    first = check_paths(video=video, audio=voice, ref=face, engine=engine, cache=cache)
    assert len(entries(tmp_path / "cache")) == 3
    again = check_paths(video=video, audio=voice, ref=face, engine=engine, cache=cache)
    assert again == first
    assert again.to_dict() == first.to_dict()


def hostile_entries(real: bytes) -> dict[str, bytes]:
    entry = json.loads(real)
    report = entry["report"]

    def changed(**fields: Any) -> bytes:
        return json.dumps({**entry, "report": {**report, **fields}}).encode()

    finding = report["findings"][0]
    return {
        "not json": b"\x80\x02not json",
        "a list": b"[1, 2]",
        "another format": json.dumps({**entry, "format": 999}).encode(),
        "format as text": json.dumps({**entry, "format": "1"}).encode(),
        "an extra field": json.dumps({**entry, "code": "import os"}).encode(),
        "a field missing": json.dumps(
            {**entry, "report": {k: v for k, v in report.items() if k != "role"}}
        ).encode(),
        "role null": changed(role=None),
        "role not a role": changed(role="video; rm -rf ~"),
        "path a number": changed(path=7),
        "an unknown severity": changed(findings=[{**finding, "severity": "fatal"}]),
        "fixable a number": changed(findings=[{**finding, "fixable": 1}]),
        "details a list": changed(findings=[{**finding, "details": []}]),
        "details with an untagged object": changed(findings=[{**finding, "details": {"a": {"b": 1}}}]),
        "media of another kind": changed(media={"kind": "image"}),
        "media size as text": changed(media={**report["media"], "size": "big"}),
        "nested deep": b"[" * 100_000 + b"]" * 100_000,
        "details nested deep": changed(
            findings=[{**finding, "details": {"a": json.loads("[" * 900 + "]" * 900)}}]
        ),
    }


def test_a_hostile_entry_is_a_miss_never_an_error_nor_a_report_of_another_shape(tmp_path: Path) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    folder = tmp_path / "cache"
    cache = CheckCache(folder)
    first = check_paths([clip], options=FAST, cache=cache)
    (entry,) = entries(folder)
    real = entry.read_bytes()
    assert cache.get(entry.name) == first.files[0]
    for name, data in hostile_entries(real).items():
        with pytest.raises(ValueError):
            decode(data)
        entry.write_bytes(data)
        assert cache.get(entry.name) is None, name
    # A well-formed entry too long to be one of ours is not read.
    entry.write_bytes(real[:-1] + b" " * ENTRY_MAX_BYTES + b"}")
    assert json.loads(entry.read_bytes())["format"] == ENTRY_FORMAT
    assert cache.get(entry.name) is None


@pytest.mark.parametrize("planted", ["/dev/zero", "fifo", "huge"])
def test_an_entry_that_never_ends_is_not_read(tmp_path: Path, planted: str) -> None:
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    folder = tmp_path / "cache"
    cache = CheckCache(folder)
    check_paths([clip], options=FAST, cache=cache)
    (entry,) = entries(folder)
    entry.unlink()
    if planted == "fifo":
        os.mkfifo(entry)
    elif planted == "huge":
        with open(entry, "wb") as handle:
            handle.truncate(8 << 30)  # sparse: 8 GB that take no room
    else:
        entry.symlink_to(planted)
    answers: list[FileReport | None] = []
    reader = threading.Thread(target=lambda: answers.append(cache.get(entry.name)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive() and planted == "fifo":
        os.close(os.open(entry, os.O_WRONLY | os.O_NONBLOCK))  # lets a blocked reader go
    assert not reader.is_alive() and answers == [None]
    again = check_paths([clip], options=FAST, cache=cache)  # checked afresh, the plant replaced
    assert "InvalidFile.FPS" in [f.code for f in again.files[0].findings]
    assert stat.S_ISREG(os.lstat(entry).st_mode) and cache.get(entry.name) == again.files[0]


def copy_of_the_package(target: Path) -> Path:
    package = ROOT / "preflight"
    shutil.copytree(package, target / "preflight", ignore=shutil.ignore_patterns("__pycache__"))
    return target / "preflight"


def test_the_code_hash_is_the_package_source(tmp_path: Path) -> None:
    copy = copy_of_the_package(tmp_path)
    assert source_hash(copy) == source_hash(ROOT / "preflight")
    assert code_fingerprint().startswith(source_hash(ROOT / "preflight"))
    (copy / "limits.py").write_text((copy / "limits.py").read_text() + "\n# a changed rule\n")
    assert source_hash(copy) != source_hash(ROOT / "preflight")
    # ...and another hash is another key: an entry of the old code is a miss.
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    old, new = CheckCache(tmp_path / "cache", "old code"), CheckCache(tmp_path / "cache", "new code")
    assert old.key(str(clip), "video", FAST) != new.key(str(clip), "video", FAST)


def test_a_changed_rule_checks_the_files_again_under_the_same_version(tmp_path: Path) -> None:
    copy = copy_of_the_package(tmp_path / "install")
    clip = aged_copy(BAD / "low fps 480p.avi", tmp_path / "clip.avi")
    env = {**os.environ, "PYTHONPATH": str(copy.parent), "PREFLIGHT_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "preflight", "check", str(clip), "--fast", "--format", "json"]

    def check() -> list[str]:
        run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode in (0, 1), run.stderr
        return codes(run.stdout)

    assert "InvalidFile.FPS" in check()
    # A commit lowers the least frame rate; the version number stays 0.1.0.
    limits = copy / "limits.py"
    text = limits.read_text()
    assert "VIDEO_MIN_FPS: Final = 15.0" in text
    limits.write_text(text.replace("VIDEO_MIN_FPS: Final = 15.0", "VIDEO_MIN_FPS: Final = 1.0"))
    assert "InvalidFile.FPS" not in check()
