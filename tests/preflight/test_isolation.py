"""A file that crashes or hangs the checker costs only its own report.

No file at hand really crashes FFmpeg, so these tests use preflight's test-only triggers
(``PREFLIGHT_TEST_CRASH_ON`` / ``PREFLIGHT_TEST_HANG_ON``: a worker about to check a file
whose path contains the value kills itself with SIGSEGV, or sleeps), read only in the
worker processes. The command line runs in a subprocess, as a user's would, so that its
exit status and error output are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from preflight import UsageError, check_paths
from preflight._check.workers import crash_finding
from tests.conftest import BAD, ROOT, SAMPLE, run_cli, run_module

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its usual report) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_isolation")

FILES = [
    SAMPLE / "face.jpg",
    SAMPLE / "talking_head.mp4",
    SAMPLE / "voice.wav",
    BAD / "banner.png",
    BAD / "low fps 480p.avi",
    BAD / "short_voice.m4a",
]
CRASHER = "talking_head.mp4"
HANGER = "voice.wav"
ISOLATED_RUNS = {"two processes": ["--jobs", "2"], "one other process": ["--jobs", "1", "--isolate"]}
# A time limit given implies --isolate: only a worker process can be stopped.
TIMED_RUNS = {"two processes": ["--jobs", "2"], "one process": ["--jobs", "1"]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("six")
    for source in FILES:
        shutil.copy(source, root / source.name)
    return root


def preflight(
    *args: str, crash_on: str | None = None, hang_on: str | None = None, once: Path | None = None
) -> tuple[int, str, str]:
    """Run ``preflight ARGS`` as a user would: exit status, stdout, stderr. ``once``: the
    crash happens only while that file does not exist (it is made then)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLIGHT_TEST_")}
    if crash_on is not None:
        env["PREFLIGHT_TEST_CRASH_ON"] = crash_on
    if once is not None:
        env["PREFLIGHT_TEST_CRASH_MARKER"] = str(once)
    if hang_on is not None:
        env["PREFLIGHT_TEST_HANG_ON"] = hang_on
    done = run_module("preflight", *args, env=env, cwd=ROOT, timeout=300)
    return done.returncode, done.stdout, done.stderr


def files_of(stdout: str) -> list[dict[str, Any]]:
    return list(json.loads(stdout)["files"])


def by_name(files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {Path(f["path"]).name: f for f in files}


@pytest.fixture(scope="module")
def usual(folder: Path) -> list[dict[str, Any]]:
    """The folder's report when nothing goes wrong, checked in this process (--fast)."""
    status, out, _ = preflight("check", str(folder), "--fast", "--no-cache", "--format", "json")
    assert status == 1
    return files_of(out)


@pytest.mark.parametrize("how", ISOLATED_RUNS.values(), ids=ISOLATED_RUNS.keys())
def test_a_file_that_crashes_the_checker_costs_only_its_own_report(
    folder: Path, usual: list[dict[str, Any]], how: list[str]
) -> None:
    args = ["check", str(folder), "--fast", "--no-cache", "--format", "json", *how]
    status, out, err = preflight(*args, crash_on=CRASHER)

    assert status == 1
    assert "Traceback" not in err and "internal error" not in err
    files = files_of(out)
    # Same files, same order; the five others exactly as usual.
    assert [f["path"] for f in files] == [f["path"] for f in usual]
    crashed = by_name(files).pop(CRASHER)
    assert [f for f in files if Path(f["path"]).name != CRASHER] == [
        f for f in usual if Path(f["path"]).name != CRASHER
    ]
    [finding] = crashed["findings"]
    assert finding["code"] == "InvalidFile.Openerror" and finding["severity"] == "error"
    assert "crashed on this file (signal 11 SIGSEGV)" in finding["message"]
    assert finding["details"] == {"isolation": "crash", "exit_code": -11}


def test_a_crash_that_does_not_come_back_costs_nothing(
    folder: Path, usual: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A worker killed once while reading a file (the machine short of memory, say): the
    file is checked again in a fresh worker, and its report is the usual one."""
    marker = tmp_path / "crashed"
    args = ["check", str(folder), "--fast", "--no-cache", "--format", "json", "--isolate"]
    status, out, err = preflight(*args, crash_on=CRASHER, once=marker)

    assert marker.exists()  # it did crash
    assert status == 1 and "Traceback" not in err
    assert files_of(out) == usual


def test_with_nothing_wrong_an_isolated_check_gives_the_usual_report(
    folder: Path, usual: list[dict[str, Any]]
) -> None:
    status, out, _ = preflight("check", str(folder), "--fast", "--no-cache", "--format", "json", "--isolate")
    assert status == 1 and files_of(out) == usual


def test_a_crash_in_a_full_check_in_several_processes(folder: Path) -> None:
    """As a big folder is checked by default (faces and voices analysed, one process per
    CPU): the crashed file is named, the others analysed in full."""
    args = ["check", str(folder), "--no-cache", "--jobs", "2", "--format", "json"]
    status, out, err = preflight(*args, crash_on="face.jpg")

    assert status == 1 and "Traceback" not in err
    files = by_name(files_of(out))
    assert [f["code"] for f in files["face.jpg"]["findings"]] == ["InvalidFile.Openerror"]
    assert "crashed on this file (signal 11 SIGSEGV)" in files["face.jpg"]["findings"][0]["message"]
    # The sample job passes in full, its face found and its voice heard.
    assert files[CRASHER]["findings"] == [] and files[CRASHER]["faces"]["samples"]
    assert files["voice.wav"]["findings"] == [] and files["voice.wav"]["speech"] is not None
    assert all(files[name]["findings"] for name in ("banner.png", "low fps 480p.avi", "short_voice.m4a"))


@pytest.mark.parametrize("how", TIMED_RUNS.values(), ids=TIMED_RUNS.keys())
def test_a_file_that_hangs_is_given_up_after_the_timeout(
    folder: Path, usual: list[dict[str, Any]], how: list[str]
) -> None:
    args = ["check", str(folder), "--fast", "--no-cache", "--format", "json", "--timeout", "3", *how]
    started = time.monotonic()
    status, out, err = preflight(*args, hang_on=HANGER)
    took = time.monotonic() - started

    assert status == 1 and "Traceback" not in err
    assert 3 <= took < 120  # the worker was killed, not waited for (it sleeps for a day)
    files = files_of(out)
    assert [f["path"] for f in files] == [f["path"] for f in usual]
    [finding] = by_name(files)[HANGER]["findings"]
    assert finding["code"] == "InvalidFile.Openerror"
    assert finding["message"].startswith("reading this file took longer than 3 s")
    assert finding["details"] == {"isolation": "timeout", "timeout_s": 3.0}
    assert [f for f in files if Path(f["path"]).name != HANGER] == [
        f for f in usual if Path(f["path"]).name != HANGER
    ]


def test_checking_in_this_process_never_reads_the_test_triggers(
    folder: Path, usual: list[dict[str, Any]]
) -> None:
    status, out, _ = preflight(
        "check", str(folder), "--fast", "--no-cache", "--format", "json", "--jobs", "1", crash_on=CRASHER
    )
    assert status == 1 and files_of(out) == usual


def test_a_crash_is_not_remembered_by_the_cache(tmp_path: Path, folder: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    an_hour_ago = time.time() - 3600
    for name in ("face.jpg", CRASHER):
        shutil.copy(folder / name, media / name)
        os.utime(media / name, (an_hour_ago, an_hour_ago))  # old enough to be cached
    cache = ["--cache-dir", str(tmp_path / "cache"), "--fast", "--isolate", "--format", "json"]

    _, crashed, _ = preflight("check", str(media), *cache, crash_on=CRASHER)
    _, again, _ = preflight("check", str(media), *cache)

    assert by_name(files_of(crashed))[CRASHER]["findings"][0]["details"]["isolation"] == "crash"
    assert by_name(files_of(again))[CRASHER]["findings"] == []  # checked again, and fine


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_timeout_must_be_a_positive_number_of_seconds(
    folder: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run_cli("check", str(folder), "--fast", "--timeout", value)
    assert status == 2 and out == ""
    assert f"--timeout {value}: must be more than 0 seconds" in capsys.readouterr().err


def test_isolation_cannot_use_the_callers_own_engine(engine: Any) -> None:
    with pytest.raises(UsageError, match="cannot be sent to another process"):
        check_paths([SAMPLE / "face.jpg"], isolate=True, engine=engine)


def test_a_worker_killed_outright_or_exiting_is_described_as_such() -> None:
    killed = crash_finding(-9)
    assert "(signal 9 SIGKILL, perhaps killed for lack of memory)" in killed.message
    assert "(exit status 3)" in crash_finding(3).message
    assert killed.code == "InvalidFile.Openerror" and killed.details == {
        "isolation": "crash",
        "exit_code": -9,
    }
