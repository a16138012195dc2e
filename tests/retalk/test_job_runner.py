"""The job runner in-process, against the emulated service: a user sends a video and a
voice and gets the result once, paid for once, whatever happens on the way. The task
fails, the service forgets it, the result URL is refused, the command stopped between the
submit and its answer, several unfinished jobs finished by ``resume``: each story ends
with the journal in the right state, the right message, and one submit per task paid for.
Fast (no subprocess, tasks of no time, no sleeps): the mutation target of ``_run/job.py``."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from retalk import (
    AuthError,
    Client,
    DownloadError,
    InputError,
    PollPolicy,
    ProtocolError,
    ResultExpired,
    RetalkError,
    RetryPolicy,
    SubmitUncertain,
    Task,
    TaskFailed,
    TaskTimeout,
    TaskUnknown,
)
from retalk._journal import DuplicateJob, Job, Journal
from retalk._run.job import Events, continue_job, resume, run_job
from retalk.emulator import EmulatedTask, Emulator, service_now
from tests.conftest import SAMPLE
from tests.retalk.conftest import emulated_service

OTHER = f"{socket.gethostname()}:{os.getppid()}"  # a live process, not this one
KEY = "sk-job-runner-0123456789abcdef"
VIDEO, VOICE = str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav")
FAST_POLL = PollPolicy(steps=(0.01,), cap_s=0.02, jitter=0.1)


@pytest.fixture(autouse=True)
def in_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job without an output downloads into the working folder: the test's own."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[Emulator]:
    with emulated_service(tmp_path, KEY, task_seconds=0.0) as running:
        yield running


@pytest.fixture()
def client(service: Emulator) -> Iterator[Client]:
    with Client(
        KEY,
        base_url=service.base_url,
        poll=FAST_POLL,
        retry=RetryPolicy(attempts=3, base_s=0.01, cap_s=0.02),
        sleep=lambda _: None,
    ) as made:
        yield made


@pytest.fixture()
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "journal.sqlite")
    yield opened
    opened.close()


def uploads(service: Emulator) -> int:
    return sum(1 for method, path, _ in service.requests if method == "POST" and path.startswith("/oss"))


def submitting_job(journal: Journal, client: Client, started: float | None = None) -> Job:
    """A job caught between its claim and the submit's answer (a crash, a lost answer)."""
    job = journal.start({"video": VIDEO, "audio": VOICE}, {}, None, base_url=client.base_url)
    claimed = journal.claim(job.id, "new", "submitting", submit_started=started or time.time())
    assert claimed is not None
    return claimed


def foreign_task(client: Client) -> str:
    """A task submitted by someone else (another machine of the account): no job owns it."""
    return client.submit(client.upload(VIDEO), client.upload(VOICE)).task_id


def ended_job(client: Client, journal: Journal, output: Path) -> tuple[Job, str]:
    """A job submitted without waiting, returned once its task has ended on the service
    (not yet downloaded): the job and its task's id."""
    sent = run_job(client, journal, VIDEO, VOICE, output=str(output), wait=False)
    assert sent.task_id is not None
    for _ in range(2000):
        if client.get(sent.task_id).finished:
            return sent, sent.task_id
        time.sleep(0.005)
    raise AssertionError(f"task {sent.task_id} never ended")


def new_job(journal: Journal, client: Client, params: dict[str, Any], output: Path) -> Job:
    """A job of the sample pair, journaled for this client's service and not yet sent."""
    return journal.start({"video": VIDEO, "audio": VOICE}, params, str(output), base_url=client.base_url)


def end_earlier(service: Emulator, task_id: str, hours: float) -> None:
    """Move a task's end ``hours`` back on the service's clock (its result ages with it)."""
    with service.state.lock:
        task = service.state.tasks[task_id]
        assert task.ended is not None
        task.ended -= timedelta(hours=hours)


def planted(
    service: Emulator, seconds_ago: float, count: int = 1, kind: type[EmulatedTask] = EmulatedTask
) -> list[str]:
    """Tasks someone else submitted ``seconds_ago`` (listed, never run), answered as ``kind`` answers."""
    ids = []
    with service.state.lock:
        for _ in range(count):
            task = kind(
                task_id=str(uuid.uuid4()),
                request_id=str(uuid.uuid4()),
                video_url="oss://x/v.mp4",
                audio_url="oss://x/a.wav",
                ref_image_url=None,
                video_extension=False,
                submitted=service_now(-seconds_ago),
            )
            service.state.tasks[task.task_id] = task
            ids.append(task.task_id)
    return ids


def recorded_result(journal: Journal, output: Path) -> str | None:
    """The SHA-256 the journal wrote down for a result before it was renamed into place."""
    row = journal._db.execute("SELECT sha256 FROM results WHERE output = ?", (str(output),)).fetchone()
    return None if row is None else str(row[0])


def lists(service: Emulator) -> int:
    return sum(1 for method, path, _ in service.requests if method == "GET" and "/tasks?" in path)


# --------------------------------------------------------------------------- the happy path
def test_a_job_is_uploaded_submitted_once_waited_for_and_downloaded(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    out = tmp_path / "deep" / "er" / "out.mp4"
    stages: list[tuple[int, str]] = []
    roles: list[str] = []
    statuses: list[str] = []
    downloaded: list[int] = []
    events = Events(
        on_stage=lambda job, stage: stages.append((job.id, stage)),
        on_upload=lambda role, done, total: roles.append(role),
        on_status=lambda task, waited: statuses.append(task.status),
        on_download=lambda done, total: downloaded.append(done),
    )
    job = run_job(client, journal, VIDEO, VOICE, output=str(out), events=events)
    assert job.state == "downloaded" and job.error is None
    assert job.task_id is not None and service.submissions == 1
    assert out.stat().st_size > 1000  # the folder made for it
    assert job.billed_s == pytest.approx(4.0, abs=0.3)
    assert stages == [(job.id, stage) for stage in ("upload", "submit", "wait", "download")]
    assert set(roles) == {"video", "audio"}
    assert statuses[-1] == "SUCCEEDED"
    assert downloaded[-1] == out.stat().st_size
    assert journal.job(job.id).output == str(out)
    assert recorded_result(journal, out) == hashlib.sha256(out.read_bytes()).hexdigest()
    recorded = journal.job(job.id).inputs
    assert all(recorded[r]["url"].startswith("oss://") for r in ("video", "audio"))


def test_the_parameters_reach_the_service(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    job = run_job(
        client,
        journal,
        VIDEO,
        VOICE,
        str(SAMPLE / "face.jpg"),
        output=str(tmp_path / "o.mp4"),
        video_extension=True,
        query_face_threshold=150,
        wait=False,
    )
    assert job.state == "submitted" and job.params == {"video_extension": True, "query_face_threshold": 150}
    made = service.state.tasks[job.task_id or ""]
    assert made.video_extension is True and (made.ref_image_url or "").startswith("oss://")


def test_a_bad_parameter_fails_the_job_and_nothing_is_paid(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="query_face_threshold must be an integer 120-200"):
        run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "o.mp4"), query_face_threshold=10)
    (job,) = journal.jobs()
    assert job.state == "failed" and "120-200" in (job.error or "") and job.task_id is None
    assert service.submissions == 0


def test_without_an_output_the_result_is_named_after_its_task(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    job = run_job(client, journal, VIDEO, VOICE)
    assert job.state == "downloaded" and (tmp_path / f"{job.task_id}.mp4").stat().st_size > 1000


def test_no_wait_stops_once_submitted_and_continue_finishes_it(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    sent = run_job(client, journal, VIDEO, VOICE, output=str(out), wait=False)
    assert sent.state == "submitted" and sent.task_id is not None and not out.exists()
    done = continue_job(client, journal, sent)
    assert done.state == "downloaded" and done.task_id == sent.task_id and out.exists()
    assert service.submissions == 1


def test_the_same_command_again_takes_up_the_job_instead_of_paying_again(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    first = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "a.mp4"), wait=False)
    again = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "b.mp4"))
    assert again.id == first.id and again.task_id == first.task_id and again.state == "downloaded"
    assert (tmp_path / "b.mp4").exists() and service.submissions == 1
    # Finished: the same inputs again are refused unless paid for anew with force.
    with pytest.raises(DuplicateJob):
        run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "c.mp4"))
    forced = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "c.mp4"), force=True)
    assert forced.id != first.id and forced.state == "downloaded" and service.submissions == 2


def test_a_job_another_live_process_runs_is_left_to_it(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    sent = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "a.mp4"), wait=False)
    journal.update(sent.id, owner=OTHER)
    with pytest.raises(RetalkError, match=f"job {sent.id} for these inputs is being run by process {OTHER}"):
        run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "a.mp4"))
    problems: list[str] = []
    assert resume(client, journal, on_error=lambda job, exc: problems.append(str(exc))) == []
    assert problems == []  # not even listed: the journal leaves it to its process
    assert journal.job(sent.id).state == "submitted" and service.submissions == 1


def test_uploads_are_reused_by_the_next_job(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "a.mp4"), wait=False)
    assert uploads(service) == 2
    second = run_job(
        client, journal, VIDEO, VOICE, output=str(tmp_path / "b.mp4"), wait=False, video_extension=True
    )
    assert second.state == "submitted" and uploads(service) == 2  # both inputs from the cache
    # An upload that has outlived the storage's 48 h is sent again before the submit.
    old = time.time() - 3 * 24 * 3600
    inputs = {role: dict(d, uploaded=old) for role, d in second.inputs.items()}
    job = journal.start(
        {"video": VIDEO, "audio": VOICE}, {"video_extension": False}, None, base_url=client.base_url
    )
    job = journal.update(job.id, inputs=inputs, state="uploaded")
    journal.record_upload(inputs["video"]["sha256"], inputs["video"]["url"], client.base_url, old)
    journal.record_upload(inputs["audio"]["sha256"], inputs["audio"]["url"], client.base_url, old)
    sent = continue_job(client, journal, job, wait=False)
    assert sent.state == "submitted" and uploads(service) == 4
    assert all(sent.inputs[r]["uploaded"] > old + 3600 for r in ("video", "audio"))


# --------------------------------------------------------------------------- inputs gone
@pytest.mark.parametrize(
    ("change", "said"),
    [("gone", "is gone; it cannot be uploaded again"), ("changed", "has changed since the job was started")],
)
def test_an_input_gone_or_changed_before_the_upload_ends_the_job(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path, change: str, said: str
) -> None:
    voice = tmp_path / "voice.wav"
    voice.write_bytes(Path(VOICE).read_bytes())
    job = journal.start({"video": VIDEO, "audio": str(voice)}, {}, None, base_url=client.base_url)
    if change == "gone":
        voice.unlink()
    else:
        voice.write_bytes(voice.read_bytes() + b"\0")
    with pytest.raises(RetalkError) as raised:
        continue_job(client, journal, job)
    assert str(raised.value) == f"job {job.id}: its audio {voice} {said}"
    assert journal.job(job.id).state == "failed" and journal.job(job.id).error == str(raised.value)
    assert service.submissions == 0


# --------------------------------------------------------------------------- the task's end
def test_a_failed_task_fails_the_job_with_the_services_words(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    service.faults.fail_tasks = True
    with pytest.raises(TaskFailed) as raised:
        run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "o.mp4"))
    (job,) = journal.jobs()
    assert raised.value.task_id == job.task_id and raised.value.code == "InternalError.Algo"
    assert job.state == "failed"
    assert (
        job.error == f"task {job.task_id} failed: InternalError.Algo: Injected failure: the algorithm failed."
    )
    assert not (tmp_path / "o.mp4").exists() and service.submissions == 1


def test_a_canceled_task_cancels_the_job(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    sent, task_id = ended_job(client, journal, tmp_path / "o.mp4")
    with service.state.lock:  # canceled by hand on the console, say
        service.state.tasks[task_id].status = "CANCELED"
    with pytest.raises(TaskFailed) as raised:
        continue_job(client, journal, sent)
    job = journal.job(sent.id)
    assert job.state == "canceled" and job.error == str(raised.value)
    assert job.error == f"task {sent.task_id} failed: CANCELED: CANCELED"


def test_a_task_the_service_forgot_keeps_the_job_open(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    sent = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "o.mp4"), wait=False)
    assert sent.task_id is not None
    service.forget(sent.task_id)
    with pytest.raises(TaskUnknown) as raised:
        continue_job(client, journal, sent)
    assert raised.value.task_id == sent.task_id and raised.value.job_id == sent.id
    assert journal.job(sent.id).state == "submitted" and service.submissions == 1


def test_an_output_that_became_a_folder_is_said_and_the_job_kept(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    out = tmp_path / "o.mp4"
    sent = run_job(client, journal, VIDEO, VOICE, output=str(out), wait=False)
    out.mkdir()
    with pytest.raises(RetalkError) as raised:
        continue_job(client, journal, sent)
    assert type(raised.value).__name__ == "OutputUnusable"
    problem = f"is a folder; give a file name, e.g. {out / 'result.mp4'}"
    assert str(raised.value).startswith(
        f"the output {out} {problem}: task {sent.task_id} succeeded and is paid for (job {sent.id}); "
        f"give its result another name: `retalk resume --job {sent.id} -o NEW.mp4`"
    ), str(raised.value)
    job = journal.job(sent.id)
    assert job.state == "submitted" and (job.error or "").startswith(f"the output {out} ")
    # The folder moved away: resume downloads it, and the trouble is no longer shown.
    out.rmdir()
    done = continue_job(client, journal, job)
    assert done.state == "downloaded" and done.error is None and out.is_file()
    assert service.submissions == 1


def test_a_download_that_fails_leaves_the_job_for_resume(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    out = tmp_path / "o.mp4"
    sent, task_id = ended_job(client, journal, out)
    service.discard(task_id)  # its URL now answers 404
    with pytest.raises(DownloadError) as raised:
        continue_job(client, journal, sent)
    assert (
        f"task {sent.task_id} succeeded and stays in the journal: `retalk resume` downloads it (within 24 h"
        in str(raised.value)
    )
    assert journal.job(sent.id).state == "submitted" and not out.exists()


def test_a_refused_result_within_its_day_is_not_written_off_and_later_downloaded(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    out = tmp_path / "o.mp4"
    service.faults.result_ttl_s = 0.0
    sent = run_job(client, journal, VIDEO, VOICE, output=str(out), wait=False)
    assert sent.task_id is not None
    with pytest.raises(DownloadError) as raised:
        continue_job(client, journal, sent)
    assert not isinstance(raised.value, ResultExpired)
    text = str(raised.value)
    assert text.startswith(f"the download of the result of task {sent.task_id} was refused (")
    assert "within its 24 h; it is not written off: `retalk resume` will try again" in text
    assert journal.job(sent.id).state == "submitted"
    results = [p for m, p, h in service.requests if p.startswith("/results/")]
    assert len(results) == 2  # asked for the URL again, tried once more
    service.faults.result_ttl_s = 24 * 3600.0
    done = continue_job(client, journal, sent)
    assert done.state == "downloaded" and out.exists() and service.submissions == 1


def test_a_result_past_its_day_is_written_off_and_never_paid_again(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    out = tmp_path / "o.mp4"
    service.faults.result_ttl_s = 0.0
    sent, task_id = ended_job(client, journal, out)
    end_earlier(service, task_id, hours=25)
    with pytest.raises(ResultExpired) as raised:
        continue_job(client, journal, sent)
    text = str(raised.value)
    assert text.startswith(f"the result of task {sent.task_id} can no longer be downloaded (")
    assert text.endswith(
        "it was paid for and is not sent again: send the inputs again with --force to pay for a new one"
    )
    job = journal.job(sent.id)
    assert job.state == "expired" and job.error == text and not out.exists()
    assert resume(client, journal) == [] and service.submissions == 1


# --------------------------------------------------------------------------- a lost submit
def test_a_lost_submit_that_never_arrived_is_sent_again_once_settled(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    job = submitting_job(journal, client)
    with pytest.raises(SubmitUncertain) as raised:
        continue_job(client, journal, job, settle_s=60)
    assert (
        str(raised.value)
        == f"job {job.id}: its submit is too recent to tell; `retalk resume` again in a minute"
    )
    assert journal.job(job.id).state == "submitting" and service.submissions == 0
    done = continue_job(client, journal, job, settle_s=0)
    assert done.state == "downloaded" and service.submissions == 1


def test_a_lost_submit_adopts_the_one_task_it_made(
    service: Emulator, client: Client, journal: Journal
) -> None:
    job = submitting_job(journal, client)
    made = foreign_task(client)
    # Another job's task, newer and listed first: passed over, the search goes on.
    owned = run_job(client, journal, VIDEO, VOICE, video_extension=True, wait=False)
    done = continue_job(client, journal, job, wait=False, settle_s=0)
    assert done.state == "submitted" and done.task_id == made != owned.task_id
    assert service.submissions == 2


def test_a_lost_submit_with_two_candidates_is_left_to_the_user(
    service: Emulator, client: Client, journal: Journal
) -> None:
    job = submitting_job(journal, client)
    first, second = foreign_task(client), foreign_task(client)
    with pytest.raises(SubmitUncertain) as raised:
        continue_job(client, journal, job, settle_s=0)
    text = str(raised.value)
    newest_first = f"({second}, {first})"
    assert (
        text
        == f"job {job.id}: several tasks could be its own {newest_first}; check them with `retalk status`"
    )
    assert journal.job(job.id).state == "submitting" and service.submissions == 2


@pytest.mark.parametrize(
    ("seconds", "adopted"),
    [(-190, False), (130, False), (110, True), (-170, True)],
    ids=["before the window", "after the window", "inside, after", "inside, before"],
)
def test_only_a_task_inside_the_submits_window_is_adopted(
    service: Emulator, client: Client, journal: Journal, seconds: int, adopted: bool
) -> None:
    other = foreign_task(client)
    job = submitting_job(journal, client, started=time.time() + seconds)
    done = continue_job(client, journal, job, wait=False, settle_s=-3600)
    assert done.state == "submitted" and (done.task_id == other) == adopted
    # Not adopted: the job's own submit is sent, a second task.
    assert service.submissions == (1 if adopted else 2)


@pytest.mark.parametrize("hours", [-9, 7])
def test_a_service_clock_hours_off_still_finds_the_lost_task(
    service: Emulator, client: Client, journal: Journal, hours: int
) -> None:
    service.faults.clock_offset_s = hours * 3600.0
    made = foreign_task(client)
    job = submitting_job(journal, client)
    done = continue_job(client, journal, job, wait=False, settle_s=0)
    assert done.task_id == made and service.submissions == 1


def test_a_lost_submit_taken_up_by_another_process_is_not_sent_again(
    service: Emulator, client: Client, journal: Journal
) -> None:
    job = submitting_job(journal, client)
    journal.update(job.id, owner=OTHER)
    with pytest.raises(RetalkError) as raised:
        continue_job(client, journal, job, settle_s=0)
    assert str(raised.value) == f"job {job.id} was taken up by another process; it is not submitted twice"
    assert service.submissions == 0


# --------------------------------------------------------------------------- resume
def test_resume_finishes_every_job_and_one_failure_stops_none(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    a = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "a.mp4"), wait=False)
    b = run_job(
        client, journal, VIDEO, VOICE, output=str(tmp_path / "b.mp4"), wait=False, video_extension=True
    )
    c = run_job(
        client, journal, VIDEO, VOICE, output=str(tmp_path / "c.mp4"), wait=False, video_extension=False
    )
    assert b.task_id is not None
    service.forget(b.task_id)
    problems: list[tuple[int, str]] = []
    done = resume(client, journal, on_error=lambda job, exc: problems.append((job.id, type(exc).__name__)))
    assert [j.id for j in done] == [a.id, c.id] and all(j.state == "downloaded" for j in done)
    assert problems == [(b.id, "TaskUnknown")]
    assert (tmp_path / "a.mp4").exists() and (tmp_path / "c.mp4").exists()
    # Without on_error, the first failure is raised.
    with pytest.raises(TaskUnknown):
        resume(client, journal)
    assert service.submissions == 3


def test_resume_sends_a_job_left_before_its_submit_and_settles_a_lost_one(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    waiting = journal.start(
        {"video": VIDEO, "audio": VOICE},
        {"video_extension": True},
        str(tmp_path / "w.mp4"),
        base_url=client.base_url,
    )
    lost = submitting_job(journal, client)
    with pytest.raises(SubmitUncertain):
        resume(client, journal)
    assert journal.job(waiting.id).state == "downloaded"
    done = resume(client, journal, settle_s=0)
    assert [j.id for j in done] == [lost.id] and done[0].state == "downloaded"
    assert service.submissions == 2 and resume(client, journal) == []


def test_a_wait_that_times_out_keeps_the_job_submitted(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    service.faults.task_seconds = 2.0
    with pytest.raises(TaskTimeout):
        run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "o.mp4"), wait_timeout=0.05)
    (job,) = journal.jobs()
    assert job.state == "submitted" and job.task_id is not None and service.submissions == 1
    with pytest.raises(TaskTimeout):
        resume(client, journal, wait_timeout=0.05)


def test_a_submit_refused_for_its_key_leaves_the_job_to_send_again(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "a.mp4"), wait=False)
    with Client(
        "sk-wrong-0123456789abcdef", base_url=service.base_url, retry=RetryPolicy(attempts=1)
    ) as wrong:
        with pytest.raises(AuthError):  # the uploads come from the journal's cache
            run_job(wrong, journal, VIDEO, VOICE, output=str(tmp_path / "b.mp4"), video_extension=True)
    job = journal.jobs()[0]
    assert job.state == "uploaded" and job.task_id is None and service.submissions == 1
    done = continue_job(client, journal, job)
    assert done.state == "downloaded" and service.submissions == 2


def test_a_submit_answer_without_a_usable_task_id_is_kept_and_never_sent_again(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    service.faults.submit_task_id = "../../etc/passwd"
    with pytest.raises(ProtocolError) as raised:
        run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "o.mp4"))
    (job,) = journal.jobs()
    assert job.state == "protocol-error" and job.error == str(raised.value) and job.task_id is None
    assert resume(client, journal) == [] and service.submissions == 1


def test_the_lost_submits_task_is_found_on_a_later_page(
    service: Emulator, client: Client, journal: Journal
) -> None:
    job = submitting_job(journal, client, started=time.time() - 1000)
    (ours,) = planted(service, 950)  # 50 s after its submit started
    planted(service, 100, count=50)  # newer, by others: a full first page
    before = lists(service)
    done = continue_job(client, journal, job, wait=False, settle_s=0)
    assert done.task_id == ours and service.submissions == 0
    assert lists(service) - before == 2


def test_the_search_stops_at_a_page_older_than_the_submit(
    service: Emulator, client: Client, journal: Journal
) -> None:
    planted(service, 5000, count=60)  # all long before the submit
    job = submitting_job(journal, client)
    before = lists(service)
    done = continue_job(client, journal, job, wait=False, settle_s=0)
    # One page read by the search, one listed before the submit sent again.
    assert done.state == "submitted" and service.submissions == 1
    assert lists(service) - before == 2


def test_the_search_reads_at_most_ten_pages(service: Emulator, client: Client, journal: Journal) -> None:
    planted(service, 100, count=500)  # newer than the submit's window: ten full pages
    job = submitting_job(journal, client, started=time.time() - 1000)
    (oldest,) = planted(service, 990)  # the 501st: never reached
    before = lists(service)
    done = continue_job(client, journal, job, wait=False, settle_s=0)
    assert done.task_id != oldest and service.submissions == 1
    assert lists(service) - before == 10 + 1


def test_a_refused_result_whose_end_the_service_does_not_state_is_not_written_off(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    service.faults.result_ttl_s = 0.0
    sent, task_id = ended_job(client, journal, tmp_path / "o.mp4")
    with service.state.lock:
        service.state.tasks[task_id].ended = None
    with pytest.raises(DownloadError) as raised:
        continue_job(client, journal, sent)
    assert not isinstance(raised.value, ResultExpired)
    assert journal.job(sent.id).state == "submitted"


def test_a_result_is_written_off_by_the_services_clock_not_ours(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    # The service's clock 20 h behind ours; its result ended 10 h ago by that clock: 30 h
    # ago by ours, yet 14 h of its day are left.
    service.faults.clock_offset_s = -20 * 3600.0
    service.faults.result_ttl_s = 0.0
    sent, task_id = ended_job(client, journal, tmp_path / "o.mp4")
    end_earlier(service, task_id, hours=10)
    with pytest.raises(DownloadError) as raised:
        continue_job(client, journal, sent)
    assert not isinstance(raised.value, ResultExpired)
    assert journal.job(sent.id).state == "submitted"


def test_resume_leaves_jobs_for_another_service_alone(
    service: Emulator, client: Client, journal: Journal
) -> None:
    elsewhere = journal.start(
        {"video": VIDEO, "audio": VOICE}, {}, None, base_url="http://127.0.0.1:9/api/v1"
    )
    assert resume(client, journal) == []
    assert journal.job(elsewhere.id).state == "new" and service.submissions == 0


def test_resume_leaves_the_parts_of_a_stopped_split_alone(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    new, uploaded, alone = (
        new_job(journal, client, {}, tmp_path / "a.mp4"),
        new_job(journal, client, {"video_extension": True}, tmp_path / "b.mp4"),
        new_job(journal, client, {"video_extension": False}, tmp_path / "c.mp4"),
    )
    journal.update(uploaded.id, state="uploaded")
    plan = {"parts": [{"job": new.id}, {"job": uploaded.id}]}
    split = journal.start_split("fingerprint", str(tmp_path / "joined.mp4"), plan, base_url=client.base_url)
    journal.update_split(split.id, state="failed")
    assert [j.id for j in resume(client, journal)] == [alone.id]
    assert journal.job(new.id).state == "new" and journal.job(uploaded.id).state == "uploaded"
    assert service.submissions == 1
    journal.update_split(split.id, state="running")  # its command runs it again
    done = resume(client, journal)
    assert [j.id for j in done] == [new.id, uploaded.id] and service.submissions == 3


def test_resume_skips_a_job_another_process_took_up_meanwhile_and_says_so(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    first, taken, ended, last = (
        new_job(journal, client, {}, tmp_path / "a.mp4"),
        new_job(journal, client, {"video_extension": True}, tmp_path / "b.mp4"),
        new_job(journal, client, {"query_face_threshold": 150}, tmp_path / "d.mp4"),
        new_job(journal, client, {"video_extension": False}, tmp_path / "c.mp4"),
    )
    stages: list[tuple[int, str]] = []

    def on_stage(running: Job, stage: str) -> None:
        stages.append((running.id, stage))
        if running.id == first.id:
            journal.update(taken.id, owner=OTHER)  # another command took it up meanwhile
            journal.update(ended.id, state="failed", error="ended meanwhile")  # nothing to say

    problems: list[tuple[int, str]] = []
    done = resume(
        client,
        journal,
        events=Events(on_stage=on_stage),
        on_error=lambda j, exc: problems.append((j.id, str(exc))),
    )
    assert [j.id for j in done] == [first.id, last.id]
    assert problems == [(taken.id, f"job {taken.id} is being run by process {OTHER}; left to it")]
    assert (last.id, "download") in stages and journal.job(taken.id).state == "new"
    assert service.submissions == 2


def test_a_result_refused_once_is_downloaded_by_the_url_asked_for_again(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o.mp4"
    service.faults.result_ttl_s = 0.0
    sent = run_job(client, journal, VIDEO, VOICE, output=str(out), wait=False)
    asked = client.get

    def ask_again(task_id: str) -> Task:
        service.faults.result_ttl_s = 24 * 3600.0  # a fresh URL, say
        return asked(task_id)

    monkeypatch.setattr(client, "get", ask_again)
    sizes: list[int] = []
    done = continue_job(
        client, journal, sent, events=Events(on_download=lambda got, total: sizes.append(got))
    )
    assert done.state == "downloaded" and sizes[-1] == out.stat().st_size
    assert recorded_result(journal, out) == hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize("when", ["aged-while-asked", "forgotten-while-asked"])
def test_the_write_off_is_judged_by_the_latest_end_the_service_states(
    service: Emulator,
    client: Client,
    journal: Journal,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    service.faults.result_ttl_s = 0.0
    sent, task_id = ended_job(client, journal, tmp_path / "o.mp4")

    def age() -> None:
        end_earlier(service, task_id, hours=25)

    asked = client.get
    if when == "forgotten-while-asked":
        age()  # the task's end known from the wait; the query again answers UNKNOWN

        def ask_again(task_id: str) -> Task:
            service.forget(task_id)
            return asked(task_id)
    else:
        # Ended a day ago by the answer asked for again, not by the one waited for.
        def ask_again(task_id: str) -> Task:
            age()
            return asked(task_id)

    real_wait = client.wait

    def wait(task_id: str, **kwargs: Any) -> Task:
        answer = real_wait(task_id, **kwargs)
        monkeypatch.setattr(client, "get", ask_again)
        return answer

    monkeypatch.setattr(client, "wait", wait)
    with pytest.raises(ResultExpired):
        continue_job(client, journal, sent)
    assert journal.job(sent.id).state == "expired"


def test_a_service_time_in_whole_seconds_is_read(service: Emulator, client: Client, journal: Journal) -> None:
    class Whole(EmulatedTask):
        def output(self, base: str) -> dict[str, Any]:
            answer = super().output(base)
            answer["submit_time"] = answer["submit_time"][:19]  # no milliseconds
            return answer

    job = submitting_job(journal, client)
    (task_id,) = planted(service, 0, kind=Whole)
    done = continue_job(client, journal, job, wait=False, settle_s=0)
    assert done.task_id == task_id and service.submissions == 0


def test_tasks_of_other_jobs_on_the_first_page_do_not_end_the_search(
    service: Emulator, client: Client, journal: Journal
) -> None:
    job = submitting_job(journal, client, started=time.time() - 1000)
    (ours,) = planted(service, 1100)  # 100 s before its submit was recorded: clocks differ
    for task_id in planted(service, 940, count=50):  # after it, each another job's
        other = journal.start(
            {"video": VIDEO, "audio": VOICE}, {}, None, base_url=client.base_url, force=True
        )
        journal.update(other.id, state="submitted", task_id=task_id)
    done = continue_job(client, journal, job, wait=False, settle_s=0)
    assert done.task_id == ours and service.submissions == 0


def test_an_output_under_a_file_is_said_as_unusable(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    (tmp_path / "taken").write_bytes(b"a file, not a folder")
    out = tmp_path / "taken" / "o.mp4"
    sent = run_job(client, journal, VIDEO, VOICE, output=str(out), wait=False)
    with pytest.raises(RetalkError) as raised:
        continue_job(client, journal, sent)
    assert type(raised.value).__name__ == "OutputUnusable"
    assert (journal.job(sent.id).error or "").startswith(f"the output {out} ")
    assert journal.job(sent.id).state == "submitted"


def test_a_success_without_a_result_url_is_said_and_the_job_kept(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    class NoUrl(EmulatedTask):
        def output(self, base: str) -> dict[str, Any]:
            answer = super().output(base)
            answer.pop("video_url", None)
            return answer

    sent, task_id = ended_job(client, journal, tmp_path / "o.mp4")
    with service.state.lock:
        service.state.tasks[task_id].__class__ = NoUrl
    with pytest.raises(DownloadError) as raised:
        continue_job(client, journal, sent)
    assert str(raised.value) == f"task {sent.task_id} succeeded without a result URL"
    assert journal.job(sent.id).state == "submitted"


def test_a_disk_that_fills_during_the_download_leaves_the_job_for_resume(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o.mp4"
    sent = run_job(client, journal, VIDEO, VOICE, output=str(out), wait=False)

    def full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(client, "download", full)
    with pytest.raises(DownloadError) as raised:
        continue_job(client, journal, sent)
    assert str(raised.value) == (
        f"cannot write the result to {out}: No space left on device [ENOSPC]; task {sent.task_id} "
        "succeeded and stays in the journal: `retalk resume` downloads it (within 24 h of its end)"
    )
    assert journal.job(sent.id).state == "submitted"


def test_a_success_the_service_states_no_usage_for_is_downloaded_unbilled(
    service: Emulator, client: Client, journal: Journal, tmp_path: Path
) -> None:
    sent, task_id = ended_job(client, journal, tmp_path / "o.mp4")
    with service.state.lock:
        service.state.tasks[task_id].usage = None
    done = continue_job(client, journal, sent)
    assert done.state == "downloaded" and done.billed_s is None
