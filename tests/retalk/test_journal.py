"""The journal's promises: the same inputs are not paid twice, a job is submitted by one
process only, uploads are reused only while they live and only where they were made, and a
damaged journal (a file that is not one, locked, read-only; a broken row) is said with the
file and what to do, never rewritten, and one broken row stops no other job."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from retalk import Client, PollPolicy, RetalkError
from retalk._journal import UPLOAD_TTL_S, DamagedRow, DuplicateJob, Journal, JournalError
from retalk._run.job import continue_job, run_job
from retalk._run.split_tasks import finish_splits
from retalk.emulator import Emulator, Faults
from tests.conftest import ROOT, SAMPLE, run_module

API = "https://dashscope.example.com/api/v1"


def test_the_same_inputs_submitted_again_need_force(tmp_path: Path, files: dict[str, str]) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        job = journal.start(files, {}, "a.mp4", base_url=API)
        journal.update(job.id, state="submitted", task_id="t1")
        with pytest.raises(DuplicateJob, match="t1"):
            journal.start(files, {}, "b.mp4", base_url=API)
        assert journal.start(files, {}, "b.mp4", base_url=API, force=True).id != job.id
        # Other parameters, or another service, are another job.
        assert journal.start(files, {"video_extension": True}, None, base_url=API).id != job.id
        assert journal.start(files, {}, None, base_url="http://127.0.0.1:1/api/v1").id != job.id


def test_a_job_never_submitted_is_taken_up_again_with_the_new_output(
    tmp_path: Path, files: dict[str, str]
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        first = journal.start(files, {}, "first.mp4", base_url=API)
        again = journal.start(files, {}, "second.mp4", base_url=API)
        assert again.id == first.id and again.output == "second.mp4"


def test_only_one_claim_on_a_job_wins(tmp_path: Path, files: dict[str, str]) -> None:
    with Journal(tmp_path / "j.sqlite") as one, Journal(tmp_path / "j.sqlite") as other:
        job = one.start(files, {}, None, base_url=API)
        one.update(job.id, state="uploaded")
        assert one.claim(job.id, "uploaded", "submitting") is not None
        assert other.claim(job.id, "uploaded", "submitting") is None


def test_uploads_are_reused_while_they_live_and_only_where_they_were_made(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record_upload("abc", "oss://dir/x.mp4", API, uploaded=time.time() - 3600)
        cached = journal.cached_upload("abc", API)
        assert cached is not None and cached[0] == "oss://dir/x.mp4"
        assert cached[1] < time.time() - 3000  # its own upload time, not now
        assert journal.cached_upload("abc", "http://127.0.0.1:1/api/v1") is None
        assert journal.cached_upload("abc", API, now=time.time() + UPLOAD_TTL_S) is None


def test_an_input_changed_before_upload_ends_the_job_instead_of_blocking_resume(
    tmp_path: Path, files: dict[str, str]
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal, Client("sk-x", base_url=API) as client:
        job = journal.start(files, {}, None, base_url=API)
        Path(files["video"]).write_bytes(b"another take")
        with pytest.raises(RetalkError, match="has changed"):
            continue_job(client, journal, job)
        assert journal.job(job.id).state == "failed" and journal.unfinished() == []


def test_a_submitting_job_goes_back_to_uploaded_only_if_still_submitting_and_ours(
    tmp_path: Path, files: dict[str, str]
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        job = journal.start(files, {}, "a.mp4", base_url=API)
        journal.update(job.id, state="submitting")
        # Another process took it up and submitted it meanwhile: not undone.
        journal.update(job.id, owner="elsewhere:1", state="submitted", task_id="t1")
        assert journal.unclaim_submit(job.id) is None
        assert journal.job(job.id).state == "submitted"
        journal.update(job.id, state="submitting", task_id=None)
        assert journal.unclaim_submit(job.id) is None  # still submitting, but not ours
        journal.update(job.id, owner=None)  # that process ended
        taken = journal.take_up(job.id, None)
        assert taken is not None
        again = journal.unclaim_submit(job.id)
        assert again is not None and again.state == "uploaded"


# --------------------------------------------------------------------------- a damaged journal
def retalk_cli(
    journal: Path, *args: str, base_url: str = "http://127.0.0.1:9/api/v1"
) -> CompletedProcess[str]:
    """A retalk command as the user runs it, on this journal; never a traceback."""
    env = {
        **os.environ,
        "DASHSCOPE_API_KEY": "sk-journal-tests",
        "DASHSCOPE_HTTP_BASE_URL": base_url,
        "RETALK_JOURNAL": str(journal),
    }
    done: CompletedProcess[str] = run_module("retalk", *args, env=env, cwd=ROOT)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return done


def a_journal_with_jobs(path: Path, files: dict[str, str], count: int = 3) -> bytes:
    with Journal(path) as journal:
        for number in range(count):
            journal.start(files, {"n": number}, None, base_url=API)
    with closing(sqlite3.connect(path)) as db, db:  # everything in the main file, as after a clean exit
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


def garbage(path: Path, files: dict[str, str]) -> None:
    path.write_bytes(b"\x00\xffnot a database, whatever it once was\n" * 200)


def cut_off(path: Path, files: dict[str, str]) -> None:
    whole = a_journal_with_jobs(path, files, count=40)
    path.write_bytes(whole[: len(whole) // 2])


def another_programs_database(path: Path, files: dict[str, str]) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE jobs (name TEXT, salary REAL)")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (garbage, "is damaged (not a SQLite database, or a cut-off one)"),
        (cut_off, "is damaged (not a SQLite database, or a cut-off one)"),
        (another_programs_database, "is another program's database, not a retalk journal"),
    ],
)
@pytest.mark.parametrize("command", [("jobs",), ("resume",), ("submit", "VIDEO", "AUDIO", "--no-wait")])
def test_a_journal_file_that_is_not_a_journal_is_named_with_what_to_do_and_left_as_it_is(
    tmp_path: Path,
    files: dict[str, str],
    damage: Callable[[Path, dict[str, str]], None],
    said: str,
    command: tuple[str, ...],
) -> None:
    path = tmp_path / "journal.sqlite"
    damage(path, files)
    before = path.read_bytes()
    args = [{"VIDEO": files["video"], "AUDIO": files["audio"]}.get(a, a) for a in command]
    done = retalk_cli(path, *args)
    assert done.returncode == 2, done.stderr
    text = " ".join(done.stderr.split())
    assert f"the journal {path} {said}" in text
    assert "move it aside" in text or "another journal file" in text
    assert path.read_bytes() == before  # never rewritten, never deleted


def test_a_folder_where_the_journal_goes_is_said_to_be_a_folder(tmp_path: Path) -> None:
    done = retalk_cli(tmp_path, "jobs")
    assert done.returncode == 2
    assert f"the journal {tmp_path} is a folder, not a file" in " ".join(done.stderr.split())


def test_an_empty_file_is_a_new_journal(tmp_path: Path, files: dict[str, str]) -> None:
    # Nothing in it to lose (made by `touch` or `mktemp`): taken as a fresh journal.
    path = tmp_path / "journal.sqlite"
    path.touch()
    done = retalk_cli(path, "jobs")
    assert done.returncode == 0 and done.stdout.strip() == "no jobs"
    with Journal(path) as journal:
        assert journal.start(files, {}, None, base_url=API).id == 1


def test_a_journal_locked_by_another_process_says_so(tmp_path: Path, files: dict[str, str]) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.start(files, {}, None, base_url=API)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer, in the middle of a long transaction
    try:
        with Journal(path, timeout=0.2) as journal, pytest.raises(JournalError) as caught:
            journal.start(files, {"again": True}, None, base_url=API)
        assert f"the journal {path} is locked by another process" in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_read_only_journal_says_so(tmp_path: Path, files: dict[str, str]) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here to make a read-only file system")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs (needs root with CAP_SYS_ADMIN); as root, file modes do not stop writes"
        )
    try:
        path = folder / "journal.sqlite"
        a_journal_with_jobs(path, files, count=1)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        done = retalk_cli(path, "jobs")
        assert done.returncode == 2
        text = " ".join(done.stderr.split())
        assert f"the journal {path} cannot be written (read-only" in text and "--journal FILE" in text
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_damaged_row_is_named_and_skipped_while_the_other_jobs_are_listed_and_resumed(
    tmp_path: Path,
) -> None:
    path, out = tmp_path / "journal.sqlite", tmp_path / "out.mp4"
    faults = Faults(task_seconds=0.2, submit_interval_s=0)
    with Emulator(tmp_path / "service", faults=faults) as emulator:
        poll = PollPolicy(steps=(0.05,), cap_s=0.1)
        with (
            Client("sk-journal-tests", base_url=emulator.base_url, poll=poll) as client,
            Journal(path) as journal,
        ):
            good = run_job(
                client,
                journal,
                str(SAMPLE / "talking_head.mp4"),
                str(SAMPLE / "voice.wav"),
                output=str(out),
                wait=False,
            )
            other = journal.start(
                {"video": str(SAMPLE / "talking_head.mp4"), "audio": str(SAMPLE / "voice.wav")},
                {"video_extension": True},
                None,
                base_url=emulator.base_url,
            )
        # A hand edit gone wrong, and a row whose types are wrong (with a terminal escape in it).
        with closing(sqlite3.connect(path)) as db, db:
            db.execute('UPDATE jobs SET inputs = \'{"video": {"path": \' WHERE id = ?', (other.id,))
            db.execute("UPDATE jobs SET owner = NULL")  # as when the process that sent them ended
            db.execute(
                "INSERT INTO jobs (created, updated, fingerprint, inputs, params, state, base_url) "
                "VALUES (1, 1, 'f', '[]', '{}', ?, ?)",
                ("submitted\x1b[31m", emulator.base_url),
            )
            rows_before = db.execute("SELECT * FROM jobs WHERE id != ?", (good.id,)).fetchall()
        listed = retalk_cli(path, "jobs", base_url=emulator.base_url)
        assert listed.returncode == 0, listed.stderr
        assert f"job {good.id}: submitted, task {good.task_id}" in listed.stdout
        assert f"job {other.id}: damaged in the journal (inputs is not JSON" in listed.stdout
        assert "job 3: damaged in the journal (inputs is a JSON list, not a dict)" in listed.stdout
        assert "\x1b" not in listed.stdout + listed.stderr and "warning" in listed.stderr

        resumed = retalk_cli(path, "resume", "--format", "json", base_url=emulator.base_url)
        assert resumed.returncode == 1, resumed.stderr  # done, but not everything could be looked at
        report = json.loads(resumed.stdout)
        assert not report["failed"], report
        assert [job["job"] for job in report["finished"]] == [good.id] and out.exists()
        assert [row["id"] for row in report["damaged"]] == [str(other.id), "3"]
        assert f"job {other.id} is damaged" in " ".join(resumed.stderr.split())
        assert emulator.submissions == 1
    with closing(sqlite3.connect(path)) as db, db:  # the damaged rows are as they were
        assert db.execute("SELECT * FROM jobs WHERE id != ?", (good.id,)).fetchall() == rows_before


def test_a_damaged_row_for_the_same_inputs_stops_that_job_only_with_what_to_do(
    tmp_path: Path, files: dict[str, str]
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        job = journal.start(files, {}, None, base_url=API)
        journal.update(job.id, state="submitted", task_id="t1")
        with closing(sqlite3.connect(journal.path)) as db, db:
            db.execute("UPDATE jobs SET params = 'not json' WHERE id = ?", (job.id,))
        with pytest.raises(DamagedRow, match=f"job {job.id} is damaged \\(params is not JSON"):
            journal.start(files, {}, None, base_url=API)
        # Other inputs go on as usual.
        assert journal.start(files, {"video_extension": True}, None, base_url=API).state == "new"
        assert [d.row_id for d in journal.damaged()] == [job.id]


def test_a_split_whose_part_row_is_damaged_is_reported_and_the_resume_goes_on(
    tmp_path: Path, files: dict[str, str]
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal, Client("sk-x", base_url=API) as client:
        part = journal.start(files, {}, None, base_url=API)
        split = journal.start_split("f", str(tmp_path / "joined.mp4"), {"parts": [{"job": part.id}]}, API)
        with closing(sqlite3.connect(journal.path)) as db, db:
            db.execute("UPDATE jobs SET inputs = 'oops' WHERE id = ?", (part.id,))
        reported: list[tuple[int, Exception]] = []
        assert finish_splits(client, journal, on_error=lambda s, exc: reported.append((s.id, exc))) == []
        ((which, error),) = reported
        assert which == split.id and isinstance(error, DamagedRow) and error.row_id == part.id
        assert journal.split(split.id).state == "running"  # left for the user, not failed


def test_forgetting_a_job_shows_a_tampered_task_id_escaped(tmp_path: Path, files: dict[str, str]) -> None:
    # A journal written before ids were checked (or edited by hand) may hold any text as a
    # task id: `retalk forget` names it, and a terminal must never receive its ESC or NL.
    path = tmp_path / "journal.sqlite"
    a_journal_with_jobs(path, files, count=1)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "UPDATE jobs SET state = 'submitted', owner = NULL, task_id = ? WHERE id = 1",
            ("\x1b]0;pwned\x07\n::x",),
        )

    done = retalk_cli(path, "forget", "1")

    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "task \\x1b]0;pwned\\x07\\n::x" in done.stdout
