"""What the journal keeps and what it answers, read straight from a journal file.

A user submits a video and a voice; the journal writes the job down before anything costs
money, and answers later runs: "was this sent before?" (then not paid twice), "what did
a crash leave?" (``unfinished``, ``take_up``), "what is this process holding?" (``owned``,
for Ctrl-C), "is this file one of our results?" (``knows_output``, ``made_from``), "is
that upload still alive?" (``cached_upload``). A job sent in parts is a split whose parts
are jobs. A row broken by hand is named (``DamagedRow``) and stops no other job; a file
that is not a journal is a ``JournalError`` that says what it is and what to do.

Every test here drives ``Journal`` directly on a file in ``tmp_path``: no service, no
media, no subprocess but a ``sleep`` standing for another live process (these are the
tests the mutation run of ``_journal/`` uses: the whole file runs in a few seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from retalk import ConfigError, RetalkError
from retalk._journal import (
    STATES,
    UNFINISHED,
    UPLOAD_REUSE_MARGIN_S,
    UPLOAD_TTL_S,
    DamagedRow,
    DuplicateJob,
    DuplicateSplit,
    Job,
    Journal,
    JournalError,
    default_path,
    roles_of,
    running_elsewhere,
    sha256_of,
    store,
    upload_fresh,
)
from retalk._journal.schema import problem

API = "https://dashscope.example.com/api/v1"
OTHER_API = "http://127.0.0.1:1/api/v1"


def me() -> str:
    """This process, as the journal names its owner (asked each time: a test may run in a
    process forked after this module was imported, as mutmut runs them)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@pytest.fixture()
def alive() -> Iterator[str]:
    """Another process on this machine, running while the test does, as an owner: one of
    its own (not pytest's parent, which a wrong signal from a mutant would stop)."""
    with subprocess.Popen(["sleep", "60"]) as other:
        try:
            yield f"{socket.gethostname()}:{other.pid}"
        finally:
            other.kill()


#: A process number above the kernel's largest: no process has it.
DEAD = f"{socket.gethostname()}:99999999"


@pytest.fixture()
def journal(tmp_path: Path) -> Any:
    with Journal(tmp_path / "j.sqlite") as opened:
        yield opened


def by_hand(path: Path, sql: str, *args: object) -> None:
    """An edit with the sqlite3 tool, as a user (or an older version) might make."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(sql, args)


def row_of(path: Path, table: str, row_id: int) -> dict[str, Any]:
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone())


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- jobs
def test_a_new_job_keeps_the_files_their_contents_the_parameters_and_who_runs_it(
    journal: Journal, files: dict[str, str]
) -> None:
    before = time.time()
    job = journal.start(files, {"query_face_threshold": 170}, "out.mp4", base_url=API)
    after = time.time()

    assert job.id == 1 and job.state == "new" and job.output == "out.mp4" and job.base_url == API
    assert job.inputs == {
        "video": {"path": files["video"], "sha256": digest(b"video bytes")},
        "audio": {"path": files["audio"], "sha256": digest(b"audio bytes")},
    }
    assert job.params == {"query_face_threshold": 170}
    assert job.owner == me()
    assert before <= job.created <= after and isinstance(job.created, float)
    assert (job.task_id, job.submit_started, job.error, job.billed_s) == (None, None, None, None)
    raw = row_of(journal.path, "jobs", job.id)
    assert raw["created"] == raw["updated"] == job.created
    # The fingerprint older journals hold: the contents by role, the parameters, the service.
    assert job.fingerprint == digest(
        json.dumps(
            {
                "files": {"video": digest(b"video bytes"), "audio": digest(b"audio bytes")},
                "params": {"query_face_threshold": 170},
                "service": API,
            },
            sort_keys=True,
        ).encode()
    )
    assert journal.job(job.id) == job and journal.jobs() == [job]


def test_a_relative_path_is_kept_absolute_and_digests_given_are_trusted(
    journal: Journal, files: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = journal.start(
        {"video": "talk.mp4", "audio": "voice.wav"}, {}, None, base_url=API, digests={"video": "ab" * 32}
    )
    assert job.inputs["video"] == {"path": files["video"], "sha256": "ab" * 32}
    assert job.inputs["audio"] == {"path": files["audio"], "sha256": digest(b"audio bytes")}
    assert job.output is None and job.base_url == API


def test_the_service_defaults_to_none_named(journal: Journal, files: dict[str, str]) -> None:
    job = journal.start(files, {}, None)
    assert job.base_url == ""
    assert journal.sent_before(files, {}) == job
    assert journal.sent_before(files, {}, API) is None


@pytest.mark.parametrize(
    "state", ["submitting", "submitted", "downloaded", "expired", "protocol-error", "forgotten"]
)
def test_the_same_inputs_after_a_submit_are_a_duplicate_that_needs_force(
    journal: Journal, files: dict[str, str], state: str
) -> None:
    job = journal.start(files, {}, "a.mp4", base_url=API)
    journal.update(job.id, state=state)
    with pytest.raises(DuplicateJob) as caught:
        journal.start(files, {}, "b.mp4", base_url=API)
    assert str(caught.value) == (
        f"these inputs were already submitted (job {job.id}, {state}); pass --force to pay for them again"
    )
    assert caught.value.job == journal.job(job.id)
    # Refused before anything was written: the transaction is closed, the file free.
    with Journal(journal.path, timeout=0.1) as other:
        forced = other.start(files, {}, "b.mp4", base_url=API, force=True)
    assert forced.id == job.id + 1 and forced.state == "new" and forced.output == "b.mp4"
    assert journal.job(job.id).output == "a.mp4"


def test_a_duplicate_names_its_task_when_it_has_one(journal: Journal, files: dict[str, str]) -> None:
    job = journal.start(files, {}, None, base_url=API)
    journal.update(job.id, state="submitted", task_id="task-7")
    with pytest.raises(
        DuplicateJob, match=r"^these inputs were already submitted \(task task-7, submitted\);"
    ):
        journal.start(files, {}, None, base_url=API)


@pytest.mark.parametrize("state", ["failed", "canceled"])
def test_after_a_failed_or_canceled_job_the_same_inputs_are_a_new_job(
    journal: Journal, files: dict[str, str], state: str
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    journal.update(job.id, state=state)
    again = journal.start(files, {}, None, base_url=API)
    assert again.id == job.id + 1 and again.state == "new"
    assert journal.sent_before(files, {}, API) == again
    assert journal.sent_before(files, {}, API, any_state=True) == again


def test_other_parameters_or_another_service_are_another_job(journal: Journal, files: dict[str, str]) -> None:
    job = journal.start(files, {}, None, base_url=API)
    journal.update(job.id, state="submitted", task_id="t1")
    assert journal.start(files, {"video_extension": True}, None, base_url=API).id == job.id + 1
    assert journal.start(files, {}, None, base_url=OTHER_API).id == job.id + 2


@pytest.mark.parametrize("state", ["new", "uploaded"])
def test_a_job_never_submitted_is_taken_up_by_the_next_run_with_its_output(
    journal: Journal, files: dict[str, str], state: str
) -> None:
    first = journal.start(files, {}, "first.mp4", base_url=API)
    journal.update(first.id, state=state, owner=DEAD)
    time.sleep(0.01)
    again = journal.start(files, {}, "second.mp4", base_url=API)
    assert again.id == first.id and again.state == state
    assert again.output == "second.mp4" and again.owner == me()
    raw = row_of(journal.path, "jobs", first.id)
    assert raw["updated"] > raw["created"]
    assert len(journal.jobs()) == 1


def test_a_job_another_live_process_runs_is_not_taken_from_it(
    journal: Journal, files: dict[str, str], alive: str
) -> None:
    first = journal.start(files, {}, "first.mp4", base_url=API)
    journal.update(first.id, owner=alive)
    with pytest.raises(RetalkError) as caught:
        journal.start(files, {}, "second.mp4", base_url=API)
    assert str(caught.value) == f"job {first.id} for these inputs is being run by process {alive}"
    assert journal.job(first.id).output == "first.mp4" and journal.job(first.id).owner == alive


def test_sent_before_answers_open_or_done_jobs_and_any_state_when_asked(
    journal: Journal, files: dict[str, str]
) -> None:
    assert journal.sent_before(files, {}, API) is None
    first = journal.start(files, {}, None, base_url=API)
    journal.update(first.id, state="failed")
    assert journal.sent_before(files, {}, API) is None
    assert journal.sent_before(files, {}, API, any_state=True) == journal.job(first.id)
    second = journal.start(files, {}, None, base_url=API)
    journal.update(second.id, state="downloaded")
    assert journal.sent_before(files, {}, API) == journal.job(second.id)
    third = journal.start(files, {}, None, base_url=API, force=True)
    journal.update(third.id, state="canceled")
    assert journal.sent_before(files, {}, API) == journal.job(second.id)  # the latest not canceled
    assert journal.sent_before(files, {}, API, any_state=True) == journal.job(third.id)
    assert journal.sent_before(files, {"n": 1}, API, any_state=True) is None


def test_a_job_not_in_the_journal_is_said_with_the_file(journal: Journal) -> None:
    with pytest.raises(RetalkError) as caught:
        journal.job(42)
    assert str(caught.value) == f"no job 42 in {journal.path}"
    assert journal.by_task("nothing") is None


def test_a_job_is_found_by_its_task_and_task_ids_are_known(journal: Journal, files: dict[str, str]) -> None:
    one = journal.start(files, {"n": 1}, None, base_url=API)
    two = journal.start(files, {"n": 2}, None, base_url=API)
    journal.start(files, {"n": 3}, None, base_url=API)
    journal.update(one.id, task_id="t-1", state="submitted")
    journal.update(two.id, task_id="t-2", state="submitted")
    assert journal.by_task("t-2") == journal.job(two.id)
    assert journal.known_task_ids() == {"t-1", "t-2"}


def test_jobs_lists_the_latest_fifty_newest_first(journal: Journal, files: dict[str, str]) -> None:
    for number in range(51):
        journal.start(files, {"n": number}, None, base_url=API)
    listed = journal.jobs()
    assert [j.id for j in listed] == list(range(51, 1, -1))
    assert [j.id for j in journal.jobs(limit=2)] == [51, 50]


def test_update_sets_each_column_and_refuses_unknown_ones(journal: Journal, files: dict[str, str]) -> None:
    job = journal.start(files, {}, None, base_url=API)
    moved = journal.update(
        job.id,
        state="downloaded",
        task_id="t-9",
        submit_started=5,
        error="none",
        billed_s=12,
        output="done.mp4",
        owner=None,
        inputs={**job.inputs, "ref": {"path": "/r.png", "sha256": "cd" * 32}},
    )
    assert (moved.state, moved.task_id, moved.error, moved.output, moved.owner) == (
        "downloaded",
        "t-9",
        "none",
        "done.mp4",
        None,
    )
    assert moved.submit_started == 5.0 and isinstance(moved.submit_started, float)
    assert moved.billed_s == 12.0 and isinstance(moved.billed_s, float)
    assert moved.inputs["ref"] == {"path": "/r.png", "sha256": "cd" * 32}
    assert roles_of(moved) == ["video", "audio", "ref"]
    raw = row_of(journal.path, "jobs", job.id)
    assert raw["updated"] >= raw["created"] and json.loads(raw["inputs"]) == moved.inputs
    with pytest.raises(ValueError) as unknown:
        journal.update(job.id, created=1, fingerprint="x")
    assert str(unknown.value) == "not jobs columns: ['created', 'fingerprint']"
    with pytest.raises(ValueError) as state:
        journal.update(job.id, state="lost")
    assert str(state.value) == "not a state of jobs: lost"
    assert journal.job(job.id) == moved


def test_every_state_the_journal_names_can_be_set(journal: Journal, files: dict[str, str]) -> None:
    job = journal.start(files, {}, None, base_url=API)
    for state in STATES:
        assert journal.update(job.id, state=state).state == state


def test_the_roles_come_video_voice_reference(
    journal: Journal, files: dict[str, str], tmp_path: Path
) -> None:
    ref = tmp_path / "face.png"
    ref.write_bytes(b"a face")
    job = journal.start({"ref": str(ref), **files}, {}, None, base_url=API)
    assert roles_of(job) == ["video", "audio", "ref"]
    assert roles_of(journal.start(files, {}, None, base_url=API)) == ["video", "audio"]


# --------------------------------------------------------------------------- who runs a job
def test_only_the_first_claim_on_a_job_wins_and_sets_its_fields(
    journal: Journal, files: dict[str, str]
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    journal.update(job.id, state="uploaded", owner=DEAD)
    claimed = journal.claim(job.id, "uploaded", "submitting", submit_started=123.5)
    assert claimed is not None
    assert (claimed.state, claimed.owner, claimed.submit_started) == ("submitting", me(), 123.5)
    assert journal.claim(job.id, "uploaded", "submitting") is None
    assert journal.claim(99, "uploaded", "submitting") is None
    plain = journal.claim(job.id, "submitting", "submitted")
    assert plain is not None and plain.state == "submitted" and plain.submit_started == 123.5
    both = journal.claim(job.id, "submitted", "downloaded", task_id="t-1", billed_s=4.0)
    assert both is not None and (both.state, both.task_id, both.billed_s) == ("downloaded", "t-1", 4.0)


def test_take_up_takes_over_what_an_ended_run_left(journal: Journal, files: dict[str, str]) -> None:
    job = journal.start(files, {}, "left.mp4", base_url=API)
    journal.update(job.id, state="submitted", task_id="t1", owner=DEAD)
    taken = journal.take_up(job.id, None)
    assert taken is not None and taken.owner == me() and taken.output == "left.mp4"
    taken = journal.take_up(job.id, "mine.mp4")
    assert taken is not None and taken.output == "mine.mp4" and taken.state == "submitted"


def test_take_up_leaves_finished_jobs_missing_ones_and_those_of_a_live_process(
    journal: Journal, files: dict[str, str], alive: str
) -> None:
    job = journal.start(files, {}, "a.mp4", base_url=API)
    journal.update(job.id, owner=alive)
    assert journal.take_up(job.id, "b.mp4") is None
    assert journal.job(job.id).owner == alive and journal.job(job.id).output == "a.mp4"
    journal.update(job.id, owner=None, state="downloaded")
    assert journal.take_up(job.id, "b.mp4") is None
    assert journal.job(job.id).owner is None
    assert journal.take_up(77, "b.mp4") is None
    for state in UNFINISHED:
        journal.update(job.id, state=state, owner=None)
        assert journal.take_up(job.id, None) is not None


def test_a_submit_that_did_not_get_through_goes_back_to_uploaded_only_if_still_ours(
    journal: Journal, files: dict[str, str]
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    journal.update(job.id, state="submitting")
    back = journal.unclaim_submit(job.id)
    assert back is not None and back.state == "uploaded" and back.owner == me()
    assert journal.unclaim_submit(job.id) is None  # no longer submitting
    journal.update(job.id, state="submitting", owner=DEAD)
    assert journal.unclaim_submit(job.id) is None  # someone else's
    assert journal.job(job.id).state == "submitting"


def test_forgetting_an_unfinished_job_closes_it_with_the_state_it_was_in(
    journal: Journal, files: dict[str, str]
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    journal.update(job.id, state="submitted", task_id="t1", owner=DEAD)
    forgotten = journal.forget(job.id)
    assert forgotten.state == "forgotten" and forgotten.owner is None
    assert forgotten.error == "forgotten by the user while submitted"
    assert journal.unfinished() == [] and journal.sent_before(files, {}, API) == forgotten
    with pytest.raises(DuplicateJob):
        journal.start(files, {}, None, base_url=API)


def test_forget_says_why_it_cannot(journal: Journal, files: dict[str, str], alive: str) -> None:
    with pytest.raises(ConfigError) as missing:
        journal.forget(5)
    assert str(missing.value) == f"no job 5 in {journal.path} (`retalk jobs` lists them)"
    job = journal.start(files, {}, None, base_url=API)
    journal.update(job.id, state="downloaded")
    with pytest.raises(ConfigError) as finished:
        journal.forget(job.id)
    assert str(finished.value) == f"job {job.id} is downloaded, not unfinished: nothing to forget"
    journal.update(job.id, state="new", owner=alive)
    with pytest.raises(ConfigError) as running:
        journal.forget(job.id)
    assert str(running.value) == f"job {job.id} is being run by process {alive}; stop that first"
    assert journal.job(job.id).state == "new"
    journal.update(job.id, owner=me())
    assert journal.forget(job.id).error == "forgotten by the user while new"


def test_unfinished_lists_open_jobs_of_a_service_but_not_a_live_process_s(
    journal: Journal, files: dict[str, str], alive: str
) -> None:
    ids = {}
    for number, state in enumerate(STATES):
        job = journal.start(files, {"n": number}, None, base_url=API)
        ids[state] = journal.update(job.id, state=state, owner=DEAD).id
    elsewhere = journal.start(files, {}, None, base_url=OTHER_API)
    running = journal.start(files, {"n": "running"}, None, base_url=API)
    journal.update(running.id, owner=alive)
    mine = journal.start(files, {"n": "mine"}, None, base_url=API)
    nobody = journal.start(files, {"n": "nobody"}, None, base_url=API)
    journal.update(nobody.id, owner=None)

    open_here = [ids[state] for state in UNFINISHED]
    assert [j.id for j in journal.unfinished(API)] == [*open_here, mine.id, nobody.id]
    assert [j.id for j in journal.unfinished()] == [*open_here, elsewhere.id, mine.id, nobody.id]
    assert [j.id for j in journal.unfinished(OTHER_API)] == [elsewhere.id]
    # Ctrl-C: only what this process holds.
    assert [j.id for j in journal.owned()] == [elsewhere.id, mine.id]


def test_running_elsewhere_only_for_a_live_other_process_on_this_machine(
    journal: Journal, files: dict[str, str], alive: str
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    for owner, running in [
        (alive, True),
        (me(), False),
        (DEAD, False),
        (None, False),
        ("", False),
        (f"another-host:{os.getppid()}", False),
        (f"{socket.gethostname()}:pid", False),
        (f"{socket.gethostname()}:", False),
        (str(os.getppid()), False),
    ]:
        assert running_elsewhere(journal.update(job.id, owner=owner)) is running, owner


def test_asking_whether_a_process_runs_leaves_it_running(journal: Journal, files: dict[str, str]) -> None:
    with subprocess.Popen(["sleep", "60"]) as other:
        try:
            job = journal.update(
                journal.start(files, {}, None).id, owner=f"{socket.gethostname()}:{other.pid}"
            )
            assert running_elsewhere(job)
            with pytest.raises(subprocess.TimeoutExpired):
                other.wait(timeout=0.2)  # no signal was sent to it, only asked about
        finally:
            other.kill()


def test_a_process_of_another_user_counts_as_running(
    journal: Journal, files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root every process can be signalled: another user's refusal is given by word.
    def refused(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    job = journal.update(journal.start(files, {}, None).id, owner=f"{socket.gethostname()}:4242")
    monkeypatch.setattr(os, "kill", refused)
    assert running_elsewhere(job)


# --------------------------------------------------------------------------- uploads
def test_an_upload_is_reused_while_it_lives_and_only_where_it_was_made(journal: Journal) -> None:
    uploaded = 1_000_000
    journal.record_upload("abc", "oss://dir/x.mp4", API, uploaded=uploaded)
    last_reuse = uploaded + UPLOAD_TTL_S - UPLOAD_REUSE_MARGIN_S
    cached = journal.cached_upload("abc", API, now=last_reuse - 0.5)
    assert cached == ("oss://dir/x.mp4", 1_000_000.0) and isinstance(cached[1], float)
    assert journal.cached_upload("abc", API, now=last_reuse) is None
    assert journal.cached_upload("abc", OTHER_API, now=uploaded) is None
    assert journal.cached_upload("abd", API, now=uploaded) is None
    assert journal.cached_upload("abc", API) is None  # now: long gone
    assert upload_fresh(uploaded, last_reuse - 1) and not upload_fresh(uploaded, last_reuse)
    assert UPLOAD_TTL_S - UPLOAD_REUSE_MARGIN_S == 47 * 3600


def test_an_upload_is_dated_now_and_a_new_one_replaces_the_old(journal: Journal) -> None:
    before = time.time()
    journal.record_upload("abc", "oss://dir/old.mp4")
    journal.record_upload("abc", "oss://dir/new.mp4")
    cached = journal.cached_upload("abc")
    assert cached is not None and cached[0] == "oss://dir/new.mp4"
    assert before <= cached[1] <= time.time()
    assert journal.cached_upload("abc", API) is None


# --------------------------------------------------------------------------- results
def test_a_made_result_remembers_its_originals(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert journal.made_from("out.mp4") is None
    journal.record_made("out.mp4", {"video": "v1", "audio": "a1"})
    assert journal.made_from(str(tmp_path / "out.mp4")) == {"video": "v1", "audio": "a1"}
    journal.record_made(str(tmp_path / "out.mp4"), {"video": "v2", "audio": "a1"})
    assert journal.made_from("out.mp4") == {"video": "v2", "audio": "a1"}
    assert journal.knows_output("out.mp4") and not journal.knows_output("other.mp4")


@pytest.mark.parametrize("sources", ["not json", "[1, 2]", '{"video": 3}', None])
def test_a_made_record_that_cannot_be_read_is_no_record(
    journal: Journal, tmp_path: Path, sources: str | None
) -> None:
    out = str(tmp_path / "out.mp4")
    journal.record_made(out, {"video": "v1"})
    by_hand(journal.path, "UPDATE made SET sources = ?", sources if sources is not None else 12)
    assert journal.made_from(out) is None


def test_a_made_record_with_number_keys_answers_them_as_text(journal: Journal, tmp_path: Path) -> None:
    out = str(tmp_path / "out.mp4")
    journal.record_made(out, {"video": "v1"})
    by_hand(journal.path, "UPDATE made SET sources = ?", '{"1": "v1", "audio": "a"}')
    assert journal.made_from(out) == {"1": "v1", "audio": "a"}


def test_the_journal_knows_the_results_it_wrote(
    journal: Journal, files: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "job.mp4"
    job = journal.start(files, {}, str(out), base_url=API)
    assert not journal.knows_output(str(out))
    journal.update(job.id, state="submitted")
    assert not journal.knows_output(str(out))
    journal.update(job.id, state="downloaded")
    assert journal.knows_output(str(out))

    joined = tmp_path / "joined.mp4"
    split = journal.start_split("f" * 64, str(joined), {"parts": []}, API)
    assert not journal.knows_output(str(joined))
    journal.update_split(split.id, state="joined")
    assert journal.knows_output(str(joined))


def test_a_result_renamed_into_place_is_known_while_its_bytes_are_the_same(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    finished = tmp_path / ".out.mp4.part"
    finished.write_bytes(b"the result" * 200_000)  # more than one read of a megabyte
    journal.record_result("out.mp4", finished)
    out = tmp_path / "out.mp4"
    assert not journal.knows_output(str(out))  # killed before the rename: nothing there
    finished.rename(out)
    assert journal.knows_output(str(out)) and journal.knows_output("out.mp4")
    out.write_bytes(b"a file the user put there since")
    assert not journal.knows_output(str(out))
    out.unlink()
    out.mkdir()
    assert not journal.knows_output(str(out))
    with closing(sqlite3.connect(journal.path)) as db:
        ((recorded, updated),) = db.execute("SELECT output, updated FROM results").fetchall()
    assert recorded == str(out) and updated <= time.time()


def test_a_file_the_journal_never_wrote_is_not_its_result(journal: Journal, tmp_path: Path) -> None:
    out = tmp_path / "mine.mp4"
    out.write_bytes(b"the user's own file")
    assert not journal.knows_output(str(out))


def test_a_recorded_result_that_cannot_be_read_is_not_taken_for_ours(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root every file can be read: the read fails by word, as on a disk error.
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the result")
    journal.record_result(str(out), out)
    assert journal.knows_output(str(out))

    def unreadable(path: object) -> str:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store, "sha256_of", unreadable)
    assert not journal.knows_output(str(out))


def test_sha256_of_reads_the_whole_file(tmp_path: Path) -> None:
    big = tmp_path / "big"
    data = os.urandom((1 << 20) * 2 + 17)
    big.write_bytes(data)
    assert sha256_of(big) == digest(data) and sha256_of(str(big)) == digest(data)
    (tmp_path / "empty").touch()
    assert sha256_of(tmp_path / "empty") == digest(b"")


# --------------------------------------------------------------------------- splits
def test_a_split_keeps_its_plan_and_moves_through_its_states(journal: Journal, tmp_path: Path) -> None:
    plan = {"parts": [{"job": 1}, {"job": None}], "voice": "v"}
    before = time.time()
    split = journal.start_split("f" * 64, "joined.mp4", plan, API)
    assert (split.id, split.fingerprint, split.output, split.state, split.plan) == (
        1,
        "f" * 64,
        "joined.mp4",
        "running",
        plan,
    )
    assert split.base_url == API and split.error is None and before <= split.created <= time.time()
    assert split.job_ids == [1, None]
    assert journal.split(split.id) == split

    moved = journal.update_split(split.id, state="failed", error="part 2 failed", output="again.mp4")
    assert (moved.state, moved.error, moved.output) == ("failed", "part 2 failed", "again.mp4")
    replanned = journal.update_split(split.id, plan={"parts": [{"job": 3}]})
    assert replanned.plan == {"parts": [{"job": 3}]} and replanned.job_ids == [3]
    with pytest.raises(ValueError) as unknown:
        journal.update_split(split.id, fingerprint="x")
    assert str(unknown.value) == "not splits columns: ['fingerprint']"
    with pytest.raises(ValueError) as state:
        journal.update_split(split.id, state="submitted")
    assert str(state.value) == "not a state of splits: submitted"
    with pytest.raises(RetalkError) as missing:
        journal.split(9)
    assert str(missing.value) == f"no split job 9 in {journal.path}"


def test_a_split_without_parts_has_no_jobs_and_defaults_to_no_service(journal: Journal) -> None:
    split = journal.start_split("f", "joined.mp4", {})
    assert split.job_ids == [] and split.base_url == ""
    assert journal.running_splits("") == [split]


def test_find_split_and_split_sent_before_answer_the_latest_that_counts(journal: Journal) -> None:
    assert journal.find_split("f") is None and journal.split_sent_before("f") is None
    failed = journal.update_split(journal.start_split("f", "a.mp4", {}, API).id, state="failed")
    assert journal.find_split("f") is None
    assert journal.split_sent_before("f") == failed  # its parts may be paid for
    joined = journal.update_split(journal.start_split("f", "a.mp4", {}, API).id, state="joined")
    canceled = journal.update_split(journal.start_split("f", "a.mp4", {}, API).id, state="canceled")
    assert journal.find_split("f") == joined
    assert journal.split_sent_before("f") == joined
    assert journal.split_sent_before("f", any_state=True) == canceled
    assert journal.find_split("g") is None and journal.split_sent_before("g", any_state=True) is None
    with pytest.raises(DuplicateSplit) as caught:
        raise DuplicateSplit(joined)
    assert str(caught.value) == (
        f"these inputs were already sent in parts and joined into a.mp4 (split {joined.id}); "
        "pass --force to pay for them again"
    )
    assert caught.value.split == joined


def test_splits_holding_finds_the_splits_of_some_jobs_in_any_state(journal: Journal) -> None:
    broken_first = journal.start_split("e", "z.mp4", {"parts": [{"job": 2}]}, API)
    by_hand(journal.path, "UPDATE splits SET state = 'lost' WHERE id = ?", broken_first.id)
    one = journal.start_split("f", "a.mp4", {"parts": [{"job": 1}, {"job": 2}]}, API)
    two = journal.update_split(
        journal.start_split("g", "b.mp4", {"parts": [{"job": 3}]}, API).id, state="failed"
    )
    journal.start_split("h", "c.mp4", {"parts": [{"job": None}, {}]}, API)
    broken = journal.start_split("i", "d.mp4", {"parts": [{"job": 2}]}, API)
    by_hand(journal.path, "UPDATE splits SET plan = 'oops' WHERE id = ?", broken.id)
    assert journal.splits_holding([2]) == [one]
    assert journal.splits_holding(iter([3, 1])) == [one, two]
    assert journal.splits_holding([4]) == [] and journal.splits_holding([]) == []


def test_running_splits_of_a_service_skip_damaged_and_closed_ones(journal: Journal) -> None:
    first = journal.start_split("f", "a.mp4", {}, API)
    other = journal.start_split("g", "b.mp4", {}, OTHER_API)
    journal.update_split(journal.start_split("h", "c.mp4", {}, API).id, state="joined")
    broken = journal.start_split("i", "d.mp4", {}, API)
    by_hand(journal.path, "UPDATE splits SET plan = '[]' WHERE id = ?", broken.id)
    last = journal.start_split("j", "e.mp4", {}, API)
    assert journal.running_splits() == [first, other, last]
    assert journal.running_splits(API) == [first, last]
    assert journal.running_splits(OTHER_API) == [other]


# --------------------------------------------------------------------------- damaged rows
@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("inputs", "[]", "inputs is a JSON list, not a dict"),
        ("inputs", '{"video": ', "inputs is not JSON: Expecting value: line 1 column 11 (char 10)"),
        ("inputs", '{"video": "x", "audio": {}}', "inputs: 'video' has no file path"),
        ("inputs", '{"video": {"sha256": "x"}}', "inputs: 'video' has no file path"),
        ("inputs", '{"video": {"path": 1, "sha256": "x"}}', "inputs: 'video' has no file path"),
        ("inputs", '{"video": {"path": "/v"}}', "inputs: 'video' has no SHA-256"),
        ("inputs", '{"audio": {"path": "/v", "sha256": 7}}', "inputs: 'audio' has no SHA-256"),
        (
            "inputs",
            '{"video": {"path": "/v", "sha256": "x", "url": 3}}',
            "inputs: 'video' has a URL that is not text",
        ),
        (
            "inputs",
            '{"video": {"path": "/v", "sha256": "x", "uploaded": "today"}}',
            "inputs: 'video' has an upload time that is not a number",
        ),
        ("inputs", '{"video": {"path": "/v", "sha256": "x"}}', "inputs: the video or the voice is missing"),
        ("inputs", '{"audio": {"path": "/v", "sha256": "x"}}', "inputs: the video or the voice is missing"),
        ("params", "not json", "params is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ("params", "[1]", "params is a JSON list, not a dict"),
        ("state", "lost", "state 'lost' is not a job state"),
        ("state", b"new", "state is bytes, not str"),
        ("state", 3, "state '3' is not a job state"),
        ("created", "yesterday", "created is str, not float"),
        ("fingerprint", b"f", "fingerprint is bytes, not str"),
        ("output", b"o", "output is bytes, not str"),
        ("task_id", b"t", "task_id is bytes, not str"),
        ("submit_started", "soon", "submit_started is str, not float"),
        ("error", b"e", "error is bytes, not str"),
        ("billed_s", "a lot", "billed_s is str, not float"),
        ("base_url", b"u", "base_url is bytes, not str"),
        ("owner", b"me", "owner is bytes, not str"),
    ],
)
def test_a_damaged_job_row_is_named_with_what_is_wrong(
    journal: Journal, files: dict[str, str], column: str, value: object, reason: str
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    good = journal.start(files, {"n": 2}, None, base_url=API)
    by_hand(journal.path, f"UPDATE jobs SET {column} = ? WHERE id = ?", value, job.id)
    with pytest.raises(DamagedRow) as caught:
        journal.job(job.id)
    assert caught.value.reason == reason
    assert (caught.value.table, caught.value.row_id) == ("jobs", job.id)
    assert [d.reason for d in journal.damaged()] == [reason]
    # The others go on; the damaged row is left as it was.
    assert journal.jobs() == [good] and journal.unfinished() == [good]


def test_a_job_row_with_uploaded_inputs_and_whole_number_times_is_whole(
    journal: Journal, files: dict[str, str]
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    inputs = {role: {**d, "url": f"oss://{role}", "uploaded": 5} for role, d in job.inputs.items()}
    journal.update(job.id, inputs=inputs)
    by_hand(journal.path, "UPDATE jobs SET created = 7, params = CAST('{}' AS BLOB) WHERE id = ?", job.id)
    read = journal.job(job.id)
    assert read.inputs == inputs and read.params == {}
    assert read.created == 7.0 and isinstance(read.created, float)
    assert journal.damaged() == []


def test_a_damaged_row_says_what_to_do_escaped_for_a_terminal(
    journal: Journal, files: dict[str, str]
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    by_hand(journal.path, "UPDATE jobs SET state = ? WHERE id = ?", "sent\x1b[31m", job.id)
    (damaged,) = journal.damaged()
    assert str(damaged) == (
        f"the journal {journal.path}: job {job.id} is damaged (state 'sent\\\\x1b[31m' is not a job state); "
        "it is left as it is and skipped: look at it (or delete it) with the sqlite3 tool, or move the "
        "journal aside; its task, if it had one, is on the service (`retalk list`)"
    )
    # The reason holds the state as Python shows it, escaped once more for the terminal.
    assert (
        damaged.line == f"job {job.id}: damaged in the journal (state 'sent\\\\x1b[31m' is not a job state)"
    )
    assert damaged.to_dict() == {
        "table": "jobs",
        "id": str(job.id),
        "reason": "state 'sent\\x1b[31m' is not a job state",
    }
    assert isinstance(damaged, JournalError)


def test_a_damaged_row_of_the_same_inputs_stops_their_start_only(
    journal: Journal, files: dict[str, str]
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    by_hand(journal.path, "UPDATE jobs SET params = 'x' WHERE id = ?", job.id)
    with pytest.raises(DamagedRow, match=f"job {job.id} is damaged"):
        journal.start(files, {}, None, base_url=API)
    with pytest.raises(DamagedRow):
        journal.sent_before(files, {}, API)
    assert journal.start(files, {"n": 1}, None, base_url=API).id == job.id + 1


@pytest.mark.parametrize(
    ("plan", "state", "reason"),
    [
        ('{"parts": {}}', "running", "plan: its parts are not a list of parts"),
        ('{"parts": [1]}', "running", "plan: its parts are not a list of parts"),
        ('{"parts": [{"job": "3"}]}', "running", "plan: a part's job is not a job number"),
        ('{"parts": [{"job": 1.5}]}', "running", "plan: a part's job is not a job number"),
        ("[]", "running", "plan is a JSON list, not a dict"),
        ("{}", "submitted", "state 'submitted' is not a split state"),
    ],
)
def test_a_damaged_split_row_is_named_after_the_jobs(
    journal: Journal, files: dict[str, str], plan: str, state: str, reason: str
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    by_hand(journal.path, "UPDATE jobs SET inputs = '[]' WHERE id = ?", job.id)
    split = journal.start_split("f", "a.mp4", {}, API)
    by_hand(journal.path, "UPDATE splits SET plan = ?, state = ? WHERE id = ?", plan, state, split.id)
    first, second = journal.damaged()
    assert (first.table, first.row_id) == ("jobs", job.id)
    assert (second.table, second.row_id, second.reason) == ("splits", split.id, reason)
    assert second.line == f"split job {split.id}: damaged in the journal ({reason})"
    assert str(second).startswith(f"the journal {journal.path}: split job {split.id} is damaged ({reason});")
    assert journal.running_splits() == []
    with pytest.raises(DamagedRow):
        journal.split(split.id)


def test_a_damaged_split_row_of_the_same_inputs_is_said(journal: Journal) -> None:
    split = journal.start_split("f", "a.mp4", {}, API)
    by_hand(journal.path, "UPDATE splits SET output = ? WHERE id = ?", b"3", split.id)
    with pytest.raises(DamagedRow, match="output is bytes, not str"):
        journal.find_split("f")
    with pytest.raises(DamagedRow, match="output is bytes, not str"):
        journal.split_sent_before("f")


# --------------------------------------------------------------------------- the file
def test_the_journal_file_defaults_to_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETALK_JOURNAL", str(tmp_path / "given.sqlite"))
    assert default_path() == tmp_path / "given.sqlite"
    with Journal() as journal:
        assert journal.path == tmp_path / "given.sqlite" and journal.path.is_file()
    monkeypatch.setenv("RETALK_JOURNAL", "")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_path() == tmp_path / "state" / "retalk" / "journal.sqlite"
    monkeypatch.setenv("XDG_STATE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "state" / "retalk" / "journal.sqlite"


def test_a_new_journal_is_made_with_its_folders_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "journal.sqlite"
    with Journal(str(path)) as journal:
        assert journal.path == path and path.is_file()
        assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with closing(sqlite3.connect(path)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"jobs", "uploads", "splits", "made", "results"}


def test_an_empty_file_or_an_older_journal_is_taken_as_it_is(tmp_path: Path, files: dict[str, str]) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with Journal(empty) as journal:
        assert journal.start(files, {}, None, base_url=API).id == 1
    older = tmp_path / "older.sqlite"
    with closing(sqlite3.connect(older)) as db, db:  # no splits, made or results yet; a table of the user's
        db.execute(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, "
            "fingerprint TEXT NOT NULL, inputs TEXT NOT NULL, params TEXT NOT NULL, output TEXT, "
            "state TEXT NOT NULL, task_id TEXT, submit_started REAL, error TEXT, billed_s REAL, "
            "base_url TEXT NOT NULL DEFAULT '', owner TEXT)"
        )
        db.execute("CREATE TABLE notes (text TEXT)")
    with Journal(older) as journal:
        assert journal.start(files, {}, None, base_url=API).id == 1
        assert journal.start_split("f", "a.mp4", {}).id == 1


def refusal(path: Path) -> str:
    """Why the journal at ``path`` cannot be opened, as the user is told."""
    with pytest.raises(JournalError) as caught:
        Journal(path)
    return str(caught.value)


def a_journal_of_pages(path: Path, files: dict[str, str]) -> int:
    """A journal of 40 jobs (pages of rows and of an index) whose write-ahead log is
    emptied into the file itself, where damage to it is found; its page size."""
    with Journal(path) as journal:
        for number in range(40):
            journal.start(files, {"n": number, "pad": "x" * 400}, None, base_url=API)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(db.execute("PRAGMA page_size").fetchone()[0])


def test_a_folder_where_the_journal_goes_is_said_to_be_one(tmp_path: Path) -> None:
    assert refusal(tmp_path) == (
        f"the journal {tmp_path} is a folder, not a file ({tmp_path} is a folder); "
        "give the journal's file name with --journal FILE or RETALK_JOURNAL"
    )


def test_a_journal_under_a_file_cannot_be_used(tmp_path: Path) -> None:
    # Its folder is a file: said with what mkdir said (the file is there), not more.
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "j.sqlite"
    assert refusal(path) == (
        f"the journal {path} cannot be used (File exists); check the file and its folder, "
        "or give another journal file with --journal FILE or RETALK_JOURNAL"
    )


def test_a_journal_that_sqlite_cannot_open_is_said_so(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    path.symlink_to(tmp_path / "gone" / "j.sqlite")  # a link into a folder that is no more
    assert refusal(path) == (
        f"the journal {path} cannot be used (unable to open database file); check the file and its "
        "folder, or give another journal file with --journal FILE or RETALK_JOURNAL"
    )


def test_a_journal_with_a_damaged_page_is_found_when_opened(tmp_path: Path, files: dict[str, str]) -> None:
    path = tmp_path / "journal.sqlite"
    size = a_journal_of_pages(path, files)
    data = bytearray(path.read_bytes())
    data[2 * size : 2 * size + 16] = b"\xff" * 16  # the third page's header (an index)
    path.write_bytes(bytes(data))
    assert refusal(path).startswith(
        f"the journal {path} is damaged (not a SQLite database, or a cut-off one) (database disk image is "
        "malformed: *** in database main ***\\nPage 3: btreeInitPage() returns error code 11); it was left"
    )
    assert path.read_bytes() == data


def test_a_file_that_is_not_a_database_is_damaged_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"\x00\xffnot a database\n" * 300)
    before = path.read_bytes()
    assert refusal(path) == (
        f"the journal {path} is damaged (not a SQLite database, or a cut-off one) (file is not a database); "
        f"it was left as it is: move it aside (e.g. `mv {path} {path}.damaged`) and run again with a new, "
        "empty journal; the tasks it recorded are still on the service: `retalk list` lists them and "
        "`retalk download TASK -o FILE` fetches a result"
    )
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


def test_a_cut_off_journal_is_found_when_opened(tmp_path: Path, files: dict[str, str]) -> None:
    path = tmp_path / "journal.sqlite"
    a_journal_of_pages(path, files)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    text = refusal(path)
    assert text.startswith(f"the journal {path} is damaged (not a SQLite database, or a cut-off one) (")
    assert "malformed" in text and "move it aside" in text


def test_another_programs_database_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "people.sqlite"
    by_hand(path, "CREATE TABLE people (name TEXT, salary REAL)")
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE cars (plate TEXT)")
    assert refusal(path) == (
        f"the journal {path} is another program's database, not a retalk journal "
        "(not a retalk journal: its tables are cars, people); it was left as it is; "
        "or give another journal file with --journal FILE or RETALK_JOURNAL"
    )
    same_names = tmp_path / "jobs.sqlite"
    by_hand(same_names, "CREATE TABLE jobs (id INTEGER, name TEXT, salary REAL)")
    assert (
        "(not a retalk journal: table jobs lacks created, fingerprint, inputs, output, params, state, "
        "task_id, updated)" in refusal(same_names)
    )
    uploads = tmp_path / "uploads.sqlite"
    by_hand(uploads, "CREATE TABLE uploads (sha256 TEXT, url TEXT)")
    assert "table uploads lacks base_url, uploaded)" in refusal(uploads)
    splits = tmp_path / "splits.sqlite"
    by_hand(splits, "CREATE TABLE splits (id INTEGER, fingerprint TEXT, plan TEXT)")
    assert "table splits lacks created, output, state, updated)" in refusal(splits)


def test_a_journal_locked_by_another_writer_says_so_soon(tmp_path: Path, files: dict[str, str]) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.start(files, {}, None, base_url=API)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Journal(path, timeout=0.2) as journal:
            began = time.monotonic()
            with pytest.raises(JournalError) as caught:
                journal.start(files, {"again": True}, None, base_url=API)
            assert time.monotonic() - began < 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(caught.value) == (
        f"the journal {path} is locked by another process (database is locked); "
        "let the other retalk (or whatever holds the file) finish, then run again"
    )
    with Journal(path) as journal:
        assert len(journal.jobs()) == 1  # nothing half-written


def test_a_failed_write_leaves_the_file_free_for_the_next_writer(
    journal: Journal, files: dict[str, str], alive: str
) -> None:
    job = journal.start(files, {}, None, base_url=API)
    journal.update(job.id, owner=alive)
    with pytest.raises(RetalkError):
        journal.start(files, {}, None, base_url=API)
    with pytest.raises(KeyboardInterrupt), journal._write() as db:
        db.execute("UPDATE jobs SET output = 'half' WHERE id = ?", (job.id,))
        raise KeyboardInterrupt
    assert journal.job(job.id).output is None
    with Journal(journal.path, timeout=0.1) as other:
        assert other.update(job.id, output="next.mp4").output == "next.mp4"


def test_a_closed_journal_says_it_cannot_be_used(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.close()
    with pytest.raises(JournalError) as caught:
        journal.jobs()
    assert str(caught.value) == (
        f"the journal {journal.path} cannot be used (Cannot operate on a closed database.); "
        "check the file and its folder, or give another journal file with --journal FILE or RETALK_JOURNAL"
    )
    with Journal(tmp_path / "k.sqlite") as opened:
        pass
    with pytest.raises(JournalError):
        opened.known_task_ids()


@pytest.mark.parametrize(
    ("error", "what", "todo"),
    [
        (
            sqlite3.OperationalError("database is locked"),
            "is locked by another process",
            "let the other retalk (or whatever holds the file) finish, then run again",
        ),
        (
            sqlite3.OperationalError("Database BUSY"),
            "is locked by another process",
            "let the other retalk (or whatever holds the file) finish, then run again",
        ),
        (
            sqlite3.OperationalError("attempt to write a readonly database"),
            "cannot be written (read-only: the file, its folder or the disk)",
            "make it writable, or give another journal file with --journal FILE or RETALK_JOURNAL",
        ),
        (
            PermissionError(13, "Permission denied"),
            "cannot be written (read-only: the file, its folder or the disk)",
            "make it writable, or give another journal file with --journal FILE or RETALK_JOURNAL",
        ),
        (
            sqlite3.DatabaseError("database disk image is MALFORMED"),
            "is damaged (not a SQLite database, or a cut-off one)",
            "it was left as it is: move it aside",
        ),
        (
            sqlite3.DatabaseError("Corrupt page"),
            "is damaged (not a SQLite database, or a cut-off one)",
            "it was left as it is: move it aside",
        ),
        (
            sqlite3.DatabaseError("Not A Retalk Journal: its tables are x"),
            "is another program's database, not a retalk journal",
            "it was left as it is; or give another journal file",
        ),
        (
            sqlite3.OperationalError("disk I/O error"),
            "cannot be used",
            "check the file and its folder, or give another journal file with --journal FILE",
        ),
    ],
)
def test_each_trouble_with_the_file_is_said_with_what_to_do(
    tmp_path: Path, error: BaseException, what: str, todo: str
) -> None:
    path = tmp_path / "j.sqlite"
    path.touch()
    cause = error.strerror if isinstance(error, OSError) else str(error)
    text = str(problem(path, error))
    assert text.startswith(f"the journal {path} {what} ({cause}); {todo}")


def test_a_folder_is_said_to_be_one_whatever_sqlite_said(tmp_path: Path) -> None:
    folder_said = str(problem(tmp_path, sqlite3.OperationalError("unable to open database file")))
    assert folder_said.startswith(f"the journal {tmp_path} is a folder, not a file (unable to open")
    file = tmp_path / "j.sqlite"
    said = str(problem(file, IsADirectoryError(21, "Is a directory")))
    assert said == (
        f"the journal {file} is a folder, not a file (Is a directory); "
        "give the journal's file name with --journal FILE or RETALK_JOURNAL"
    )


def test_an_os_error_without_words_is_said_by_its_whole_self(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    assert str(problem(path, OSError("gone"))).startswith(f"the journal {path} cannot be used (gone);")


def test_a_journal_that_cannot_be_written_is_said_to_be_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root every file is writable: the file, then its folder, made unwritable by word.
    path = tmp_path / "j.sqlite"
    path.touch()
    error = sqlite3.OperationalError("disk I/O error")
    real_access = os.access

    def unwritable(place: Path) -> Any:
        return lambda p, mode, *args, **kwargs: Path(p) != place and real_access(p, mode)

    for place in (path, tmp_path):
        monkeypatch.setattr(os, "access", unwritable(place))
        assert f"the journal {path} cannot be written (read-only" in str(problem(path, error))
        monkeypatch.undo()
    assert f"the journal {path} cannot be used (" in str(problem(path, error))
    gone = tmp_path / "no" / "such" / "j.sqlite"
    assert f"the journal {gone} cannot be used (" in str(problem(gone, error))


def test_a_file_name_with_control_characters_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / "j\x1b[2J.sqlite"
    text = str(problem(path, sqlite3.OperationalError("database is locked\n")))
    assert "\x1b" not in text and "\n" not in text
    assert text.startswith(
        f"the journal {tmp_path}/j\\x1b[2J.sqlite is locked by another process (database is locked\\n);"
    )


def test_a_job_read_from_a_row_keeps_each_column(journal: Journal, files: dict[str, str]) -> None:
    job = journal.start(files, {"p": 1}, "o.mp4", base_url=API)
    journal.update(job.id, task_id="t", submit_started=2.5, error="e", billed_s=3.5, state="failed")
    with closing(sqlite3.connect(journal.path)) as db:
        db.row_factory = sqlite3.Row
        read = Job.from_row(db.execute("SELECT * FROM jobs").fetchone())
    assert read == Job(
        job.id,
        job.created,
        job.fingerprint,
        job.inputs,
        {"p": 1},
        "o.mp4",
        "failed",
        "t",
        2.5,
        "e",
        3.5,
        API,
        me(),
    )


def a_row(**values: object) -> sqlite3.Row:
    """A job row as SQLite may hand it back from a journal whose columns lost their types."""
    whole: dict[str, object] = {
        "id": 1, "created": 1.0, "updated": 1.0, "fingerprint": "f",
        "inputs": '{"video": {"path": "/v", "sha256": "x"}, "audio": {"path": "/a", "sha256": "y"}}',
        "params": "{}", "output": None, "state": "new", "task_id": None, "submit_started": None,
        "error": None, "billed_s": None, "base_url": "", "owner": None, **values,
    }  # fmt: skip
    with closing(sqlite3.connect(":memory:")) as db:
        db.row_factory = sqlite3.Row
        columns = ", ".join(f"? AS {name}" for name in whole)
        row: sqlite3.Row = db.execute(f"SELECT {columns}", tuple(whole.values())).fetchone()
        return row


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"inputs": 5}, "inputs is int, not JSON text"),
        ({"inputs": None}, "inputs is NoneType, not JSON text"),
        ({"id": "1"}, "id is str, not int"),
        ({"created": None}, "created is NoneType, not float"),
        ({"fingerprint": 3}, "fingerprint is int, not str"),
    ],
)
def test_a_row_of_the_wrong_types_is_refused_with_what_it_holds(
    values: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError) as caught:
        Job.from_row(a_row(**values))
    assert str(caught.value) == reason


def test_whole_numbers_where_times_go_are_read_as_times() -> None:
    job = Job.from_row(a_row(created=7, submit_started=8, billed_s=9))
    assert (job.created, job.submit_started, job.billed_s) == (7.0, 8.0, 9.0)
    assert all(isinstance(t, float) for t in (job.created, job.submit_started, job.billed_s))


def test_a_row_of_the_right_types_is_a_job() -> None:
    job = Job.from_row(
        a_row(inputs=b'{"video": {"path": "/v", "sha256": "x"}, "audio": {"path": "/a", "sha256": "y"}}')
    )
    assert job.inputs["audio"] == {"path": "/a", "sha256": "y"} and job.created == 1.0
