"""Faults beyond the happy path, each against the real emulator over real HTTP, the command
lines run as the user runs them: the service killed and started again in the middle of a
task, a disk that fills up during the download, a result URL that has expired, a service
clock hours ahead of or behind ours, and the command killed (SIGKILL) at every stage and
then finished by ``retalk resume`` or by running it again. Every story ends the same way:
the job is done or clearly reported, and exactly one task was paid for."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import av
import pytest

from preflight.limits import RESULT_URL_TTL_S
from retalk import Client, PollPolicy, RetryPolicy, TaskTimeout, TransportError
from retalk._journal import Job, Journal
from retalk._run.job import resume, run_job
from retalk.emulator import Emulator, Faults
from tests.conftest import ROOT, SAMPLE
from tests.retalk.conftest import emulated_service
from tests.retalk.relay import Relay

KEY = "sk-faults-0123456789abcdef"
VIDEO, VOICE = str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav")  # 4 s each
FAST_POLL = PollPolicy(steps=(0.05,), cap_s=0.1, jitter=0.1)
#: A command line that hangs would hang the suite: every one gets this long.
CLI_TIMEOUT_S = 90


# --------------------------------------------------------------------------- helpers
@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with emulated_service(tmp_path, KEY, task_seconds=0.3) as running:
        yield running


def client_for(base_url: str, retry: RetryPolicy | None = None) -> Client:
    return Client(
        KEY, base_url=base_url, poll=FAST_POLL, retry=retry or RetryPolicy(attempts=6, base_s=0.05, cap_s=0.5)
    )


def cli_env(base_url: str, journal: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DASHSCOPE_API_KEY": KEY,
        "DASHSCOPE_HTTP_BASE_URL": base_url,
        "RETALK_JOURNAL": str(journal),
    }


def retalk(*args: str) -> list[str]:
    return [sys.executable, "-m", "retalk", *args]


def prep(*args: str) -> list[str]:
    return [sys.executable, "-m", "retalk._cli.prep", *args, "--format", "json"]


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False
    )
    # House rules, on every run: never a traceback, never the key.
    assert "Traceback" not in done.stderr, done.stderr
    assert KEY not in done.stdout + done.stderr
    return done


def said(done: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, stdout and stderr, as one line (terminals wrap it)."""
    return " ".join((done.stdout + done.stderr).split())


def duration(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(container.duration or 0) / av.time_base


def only_job(journal_file: Path) -> Job:
    with Journal(journal_file) as journal:
        (job,) = journal.jobs()
        return job


class SubmitCommand(NamedTuple):
    """``retalk submit`` of the sample pair as the user runs it, all of it in the test's folder."""

    journal: Path
    out: Path
    env: dict[str, str]
    command: list[str]


def submit_of_the_pair(emulator: Emulator, folder: Path) -> SubmitCommand:
    journal, out = folder / "j.sqlite", folder / "out.mp4"
    return SubmitCommand(
        journal, out, cli_env(emulator.base_url, journal), retalk("submit", VIDEO, VOICE, "-o", str(out))
    )


def sent_without_waiting(command: list[str], env: dict[str, str], journal_file: Path) -> str:
    """The submit command run with ``--no-wait``: its task's id."""
    sent = run([*command, "--no-wait"], env)
    assert sent.returncode == 0, sent.stderr
    task_id = only_job(journal_file).task_id
    assert task_id is not None
    return task_id


class UnknownTask(NamedTuple):
    """The submit command of the pair and its task's id, the service answering UNKNOWN for it."""

    submit: SubmitCommand
    task_id: str


@pytest.fixture()
def unknown_task(emulator: Emulator, tmp_path: Path) -> UnknownTask:
    """The submit sent without waiting, its task then answered UNKNOWN by the service (as
    for a task it never had, or no longer has) while it runs on."""
    submit = submit_of_the_pair(emulator, tmp_path)
    task_id = sent_without_waiting(submit.command, submit.env, submit.journal)
    emulator.forget(task_id)
    return UnknownTask(submit, task_id)


def ended_with_its_url_refused(
    emulator: Emulator, command: list[str], env: dict[str, str], journal_file: Path
) -> str:
    """The submit sent without waiting, its task ended and its result URL refused since
    (the service's 24 h shortened to half a second): the task's id."""
    emulator.faults.result_ttl_s = 0.5
    task_id = sent_without_waiting(command, env, journal_file)
    with client_for(emulator.base_url) as client:
        wait_for(lambda: client.get(task_id).status == "SUCCEEDED", 30, "the task")
    time.sleep(0.6)
    return task_id


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Drained:
    """A child's pipe read to the end in a thread of its own; ``text`` once it is closed
    (or what came so far, when asked early)."""

    def __init__(self, pipe: Any) -> None:
        self._chunks: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self._chunks.extend(iter(pipe.readline, "")), daemon=True
        )
        self._reader.start()

    def _read(self, pipe: Any) -> None:
        self._chunks.extend(iter(pipe.readline, ""))

    def text(self, timeout: float = 10.0) -> str:
        self._reader.join(timeout)
        return "".join(self._chunks)


# --------------------------------------------------------------------------- 1. the service restarts
def start_service(root: Path, port: int, task_seconds: float) -> tuple[subprocess.Popen[str], str]:
    """``retalk emulator`` in a process of its own (so that it can be SIGKILLed) and its URL."""
    process = subprocess.Popen(
        retalk("emulator", "--port", str(port), "--root", str(root), "--api-key", KEY,
               "--task-seconds", str(task_seconds)),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    banner = process.stderr.readline()  # "retalk emulator on http://127.0.0.1:PORT/api/v1 ..."
    assert "retalk emulator on http" in banner, banner
    return process, banner.split()[3]


def test_a_service_killed_and_started_again_mid_task_still_finishes_the_job_paid_once(tmp_path: Path) -> None:
    root, journal_file, out = tmp_path / "service", tmp_path / "j.sqlite", tmp_path / "out.mp4"
    service, behind = start_service(root, 0, task_seconds=3.0)
    # The client knows the relay's port, which this test keeps taken throughout; each run
    # of the service gets a port of its own from the OS (no race for the old one).
    relay = Relay()
    relay.forward_to(behind)
    base_url = relay.url(behind)
    client_run = None
    try:
        client_run = subprocess.Popen(
            retalk("submit", VIDEO, VOICE, "-o", str(out)), cwd=ROOT, env=cli_env(base_url, journal_file),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # Read as it writes: a client blocked on a full pipe would meet nobody.
        said_out, said_err = Drained(client_run.stdout), Drained(client_run.stderr)
        with client_for(base_url) as probe:
            wait_for(lambda: [t.status for t in probe.list()] == ["RUNNING"], 60, "the task to run")
        service.kill()  # SIGKILL: no goodbye, the task mid-run
        service.wait(10)
        relay.forward_to(None)
        wait_for(
            lambda: relay.refused >= 1 or client_run.poll() is not None,
            60,
            "the client to meet the service gone",
        )
        assert client_run.poll() is None, f"the client ended early: {said_err.text()}"
        service, behind = start_service(root, 0, task_seconds=0.2)
        relay.forward_to(behind)
        client_run.wait(timeout=CLI_TIMEOUT_S)
        stdout, stderr = said_out.text(), said_err.text()
        assert client_run.returncode == 0, stderr
        assert "Traceback" not in stderr and KEY not in stdout + stderr
        with client_for(base_url) as probe:
            tasks = probe.list(page_size=50)
    finally:
        relay.close()
        service.kill()
        service.wait(10)
        if client_run is not None and client_run.poll() is None:
            client_run.kill()
            client_run.wait(10)
    # The service knew its task after the restart, ran it to the end, and only one was made.
    assert [t.status for t in tasks] == ["SUCCEEDED"]
    job = only_job(journal_file)
    assert job.state == "downloaded" and job.task_id == tasks[0].task_id
    assert duration(out) == pytest.approx(4.0, abs=0.25)


def test_waiting_rides_out_an_outage_longer_than_the_retries_of_one_request(tmp_path: Path) -> None:
    root = tmp_path / "service"
    # The task outlasts the outage (0.5 s + 1.5 s) with room to spare: one that ended before
    # the service went away would meet the outage in its download, not in the wait.
    faults = Faults(task_seconds=4.0, submit_interval_s=0)
    first = Emulator(root, api_key=KEY, faults=faults).start()
    relay = Relay()  # the client's port, kept by this test; each service run gets its own
    relay.forward_to(first.base_url)
    restarted: list[Emulator] = []
    # Each request gives up after well under a second; the outage lasts 1.5 s.
    quick_to_give_up = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.1)
    holding = first.hold("query")  # the first poll: the job is waiting

    def outage() -> None:
        holding.reached.wait(60)
        # The first poll is answered (the client has heard from the service in this wait),
        # then the service goes away. Stopping with the poll still held raced its answer
        # against the closing sockets, and a lost answer is "never reached", not an outage.
        holding.release()
        time.sleep(0.5)
        first.stop()
        relay.forward_to(None)
        time.sleep(1.5)  # the outage itself
        restarted.append(Emulator(root, api_key=KEY, faults=faults).start())
        relay.forward_to(restarted[0].base_url)

    thread = threading.Thread(target=outage)
    thread.start()
    try:
        with (
            client_for(relay.url(first.base_url), quick_to_give_up) as client,
            Journal(tmp_path / "j.sqlite") as journal,
        ):
            job = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "out.mp4"))
    finally:
        thread.join(30)
        relay.close()
        first.stop()
        for emulator in restarted:
            emulator.stop()
    assert job.state == "downloaded" and restarted
    assert relay.refused >= 1  # the client did meet the outage
    assert first.submissions == 1 and restarted[0].submissions == 0
    assert duration(tmp_path / "out.mp4") == pytest.approx(4.0, abs=0.25)


# --------------------------------------------------------------------------- 2. a full disk
@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: smaller than any result (the sample's is about 560 KB)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here to make a small file system")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def make_room(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)


def assert_told_the_disk_is_full(done: subprocess.CompletedProcess[str], out: Path) -> None:
    text = said(done)
    assert "No space left on device" in text and "ENOSPC" in text, text
    assert str(out) in text and "retalk resume" in text, text


def test_a_full_disk_while_downloading_keeps_the_paid_task_for_resume(
    emulator: Emulator, small_disk: Path, tmp_path: Path
) -> None:
    journal_file, out = tmp_path / "j.sqlite", small_disk / "out.mp4"
    env = cli_env(emulator.base_url, journal_file)
    full = run(retalk("submit", VIDEO, VOICE, "-o", str(out)), env)
    assert full.returncode == 3, full.stderr
    assert_told_the_disk_is_full(full, out)
    assert list(small_disk.iterdir()) == []  # no result, not even a hidden part of one
    job = only_job(journal_file)
    assert job.state == "submitted" and job.task_id  # done on the service, not yet here
    with client_for(emulator.base_url) as client:
        assert client.get(job.task_id).status == "SUCCEEDED"
    make_room(small_disk)
    again = run(retalk("resume"), env)
    assert again.returncode == 0, again.stderr
    assert only_job(journal_file).state == "downloaded"
    assert duration(out) == pytest.approx(4.0, abs=0.25)
    assert emulator.submissions == 1


def test_prep_and_retalk_on_a_full_disk_says_so_and_the_same_command_finishes_it(
    emulator: Emulator, small_disk: Path, tmp_path: Path
) -> None:
    out = small_disk / "out.mp4"
    command = prep(VIDEO, VOICE, "-o", str(out), "--work-dir", str(tmp_path / "work"),
                   "--journal", str(tmp_path / "j.sqlite"))  # fmt: skip
    env = cli_env(emulator.base_url, tmp_path / "unused.sqlite")
    full = run(command, env)
    assert full.returncode == 3, full.stderr
    assert_told_the_disk_is_full(full, out)
    assert list(small_disk.iterdir()) == []
    make_room(small_disk)
    again = run(command, env)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["ok"] and report["result_duration_s"] == pytest.approx(4.0, abs=0.25)
    assert emulator.submissions == 1


# --------------------------------------------------------------------------- 3. an expired result
def test_a_result_that_expired_is_reported_and_never_paid_for_again(
    emulator: Emulator, tmp_path: Path
) -> None:
    journal_file, out, env, command = submit_of_the_pair(emulator, tmp_path)
    task_id = ended_with_its_url_refused(emulator, command, env, journal_file)
    age_task(emulator, task_id, 25 * 3600.0)  # the user came back a day later

    late = run(retalk("resume"), env)
    assert late.returncode == 1, late.stderr
    assert f"the result of task {task_id} can no longer be downloaded" in said(late)
    assert "403" in said(late) and "--force" in said(late)
    job = only_job(journal_file)
    assert job.state == "expired" and job.task_id == task_id
    assert not out.exists() and list(tmp_path.glob(".out.mp4*")) == []
    # The client asked the service again for the URL before it gave up on it.
    downloads = [p for m, p, h in emulator.requests if p.startswith("/results/")]
    assert len(downloads) == 2

    # Nothing is left for resume to try again and again; the same inputs ask for --force.
    assert run(retalk("resume"), env).returncode == 0
    twice = run(command, env)
    assert twice.returncode == 2 and "--force" in said(twice) and "expired" in said(twice)
    by_hand = run(retalk("download", task_id, "-o", str(out)), env)
    assert by_hand.returncode == 1 and "expired" in said(by_hand), said(by_hand)
    assert emulator.submissions == 1


def age_task(emulator: Emulator, task_id: str, seconds: float) -> None:
    """Make a task look as if it ended ``seconds`` earlier (its end time, on the service's clock)."""
    with emulator.state.lock:
        task = emulator.state.tasks[task_id]
        assert task.ended is not None
        task.ended -= timedelta(seconds=seconds)


def test_a_result_refused_within_its_24_hours_is_not_written_off(emulator: Emulator, tmp_path: Path) -> None:
    journal_file, out, env, command = submit_of_the_pair(emulator, tmp_path)
    # The result URL answers 403 (a proxy refusing the host, a CDN hiccup) a second after
    # the task ended: far within the 24 h a result lives.
    ended_with_its_url_refused(emulator, command, env, journal_file)

    refused = run(retalk("resume"), env)
    assert refused.returncode == 1, refused.stderr  # resume: a job not finished
    text = said(refused)
    assert "refused" in text and "403" in text and "retalk resume" in text, text
    assert "--force" not in text, text
    assert only_job(journal_file).state == "submitted"  # not written off

    emulator.faults.result_ttl_s = float(RESULT_URL_TTL_S)  # the refusal is over
    again = run(retalk("resume"), env)
    assert again.returncode == 0, again.stderr
    assert only_job(journal_file).state == "downloaded" and duration(out) == pytest.approx(4.0, abs=0.25)
    assert emulator.submissions == 1


# --------------------------------------------------------------------------- 4. clock skew
@pytest.mark.parametrize("hours", [2, -2], ids=["service clock 2 h ahead", "service clock 2 h behind"])
def test_a_service_clock_hours_off_breaks_neither_the_job_nor_finding_a_lost_submit(
    tmp_path: Path, hours: int
) -> None:
    faults = Faults(task_seconds=0.1, submit_interval_s=0, clock_offset_s=hours * 3600.0, policy_ttl_s=60)
    with (
        Emulator(tmp_path / "service", api_key=KEY, faults=faults) as emulator,
        client_for(emulator.base_url) as client,
        Journal(tmp_path / "j.sqlite") as journal,
    ):
        # A whole job: the upload policy's expiry (stated on the service's clock) is read
        # as a length of time, so one policy serves both files; the task is waited for.
        job = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "one.mp4"))
        assert job.state == "downloaded"
        policies = [p for m, p, h in emulator.requests if p.startswith("/api/v1/uploads")]
        assert len(policies) == 1
        assert client.clock_offset == pytest.approx(hours * 3600.0, abs=2.0)

        # A crash mid-submit: the submit reached the service, its answer never came back.
        lost = journal.start(
            {"video": VIDEO, "audio": VOICE}, {"video_extension": True}, str(tmp_path / "two.mp4"),
            base_url=client.base_url,
        )  # fmt: skip
        urls = {role: journal.job(job.id).inputs[role]["url"] for role in ("video", "audio")}
        now = time.time()
        inputs = {role: {**d, "url": urls[role], "uploaded": now} for role, d in lost.inputs.items()}
        journal.update(lost.id, inputs=inputs, state="submitting", submit_started=now)
        created = client.submit(urls["video"], urls["audio"], video_extension=True)
        # Resume, told the service lists at once (settle_s=0), must still find that task
        # although the service dates it two hours off: not paid for again.
        (done,) = resume(client, journal, settle_s=0)
    assert done.task_id == created.task_id and done.state == "downloaded"
    assert emulator.submissions == 2


@pytest.mark.parametrize(
    "offset_s", [10 * 86400.0, 10 * 3600.0], ids=["a Date 10 days off", "a clock corrected by 10 h"]
)
def test_a_lost_submit_is_found_when_the_service_clock_changed_or_lies_after_the_submit(
    tmp_path: Path, offset_s: float
) -> None:
    faults = Faults(task_seconds=0.1, submit_interval_s=0)
    with (
        Emulator(tmp_path / "service", api_key=KEY, faults=faults) as emulator,
        Journal(tmp_path / "j.sqlite") as journal,
    ):
        with client_for(emulator.base_url) as client:
            lost = journal.start(
                {"video": VIDEO, "audio": VOICE}, {}, str(tmp_path / "out.mp4"), base_url=client.base_url
            )
            urls = {"video": client.upload(VIDEO), "audio": client.upload(VOICE)}
            now = time.time()
            inputs = {role: {**d, "url": urls[role], "uploaded": now} for role, d in lost.inputs.items()}
            journal.update(lost.id, inputs=inputs, state="submitting", submit_started=now)
            created = client.submit(urls["video"], urls["audio"])  # its answer "lost"
        # Between the submit and resume the service's Date moved: a bogus header days off
        # (ignored), or its clock corrected by hours (the task was dated before that).
        emulator.faults.clock_offset_s = offset_s
        with client_for(emulator.base_url) as client:
            resume(client, journal, settle_s=0, on_error=lambda job, exc: None)
            if offset_s > 86400:
                assert client.clock_offset is None or abs(client.clock_offset) < 60
        job = journal.job(lost.id)
    assert job.task_id == created.task_id and emulator.submissions == 1


# --------------------------------------------------------------------------- 5. SIGKILL at every stage
def kill_when_held(emulator: Emulator, point: str, command: list[str], env: dict[str, str]) -> None:
    """Run ``command`` and SIGKILL it while the emulator holds its request at ``point``."""
    hold = emulator.hold(point)
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if not hold.reached.wait(CLI_TIMEOUT_S):
            raise AssertionError(f"the command never got to {point}")
        process.kill()
        process.wait(10)
    finally:
        hold.release()  # the service goes on with the request its client no longer hears
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == -signal.SIGKILL


def kill_when(condition: Any, command: list[str], env: dict[str, str], what: str) -> None:
    """Run ``command`` and SIGKILL it as soon as ``condition()`` holds."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while not condition() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == -signal.SIGKILL, f"it ended before {what}"


#: Where the emulator holds the request in flight when the command is killed.
HTTP_STAGES = {
    "uploading the video": "storage",
    "between upload and submit": "list",
    "submitted, answer not yet back": "submit",
    "waiting": "query",
    "downloading": "result",
}
#: What the journal knows at each of those moments: the intent to submit is written down
#: before the submit is sent ("submitting"), the task id as soon as its answer is back.
JOURNAL_AT = {"storage": "new", "list": "uploaded", "submit": "submitting", "query": "submitted",
              "result": "submitted"}  # fmt: skip


@pytest.mark.parametrize("point", list(HTTP_STAGES.values()), ids=list(HTTP_STAGES))
def test_retalk_submit_killed_at_any_stage_is_finished_by_resume_paid_once(
    emulator: Emulator, tmp_path: Path, point: str
) -> None:
    journal_file, out, env, command = submit_of_the_pair(emulator, tmp_path)
    kill_when_held(emulator, point, command, env)
    assert not out.exists()  # never a half-written result under its name
    if point == "result":
        assert list(tmp_path.glob(".out.mp4.*.part"))  # what the kill left of the download...
    killed = only_job(journal_file)
    assert killed.state == JOURNAL_AT[point]
    assert (killed.task_id is not None) == (killed.state == "submitted")
    done = run(retalk("resume"), env)
    assert done.returncode == 0, done.stdout + done.stderr
    job = only_job(journal_file)
    assert job.state == "downloaded" and job.task_id
    assert duration(out) == pytest.approx(4.0, abs=0.25)
    assert emulator.submissions == 1
    assert not list(tmp_path.rglob("*.part"))  # ...is removed by the next run, never an orphan


def test_retalk_submit_run_again_after_a_kill_finishes_the_task_instead_of_asking_to_pay_again(
    emulator: Emulator, tmp_path: Path
) -> None:
    journal_file, out, env, command = submit_of_the_pair(emulator, tmp_path)
    kill_when_held(emulator, "query", command, env)
    done = run(command, env)
    assert done.returncode == 0, done.stderr
    assert only_job(journal_file).state == "downloaded" and duration(out) == pytest.approx(4.0, abs=0.25)
    assert emulator.submissions == 1


def test_a_task_the_service_answers_unknown_for_stays_open_and_is_never_sent_again_by_itself(
    emulator: Emulator, unknown_task: UnknownTask
) -> None:
    # UNKNOWN is "no such task, or it expired": the task may still run (and be billed), so
    # the job must stay open. Before, it was recorded failed and a re-run paid again.
    (journal_file, out, env, command), task_id = unknown_task
    for _ in range(2):  # the same command, twice: never a second task
        again = run(command, env)
        assert again.returncode == 3, again.stderr
        assert f"UNKNOWN for task {task_id}" in said(again) and "stays open" in said(again)
        assert "--force" in said(again)
        job = only_job(journal_file)
        assert job.state == "submitted" and job.task_id == task_id
    resumed = run(retalk("resume"), env)
    assert resumed.returncode == 1 and "UNKNOWN" in said(resumed)
    assert only_job(journal_file).state == "submitted" and emulator.submissions == 1
    # The service knows it again (a replica caught up): resume finishes the paid task.
    emulator.forget(task_id, forgotten=False)
    finished = run(retalk("resume"), env)
    assert finished.returncode == 0, finished.stderr
    assert only_job(journal_file).state == "downloaded" and duration(out) == pytest.approx(4.0, abs=0.25)
    assert emulator.submissions == 1
    # Sent again only on purpose, and then it pays for a new task.
    forced = run([*command, "--force", "--no-wait"], env)
    assert forced.returncode == 0, forced.stderr
    assert emulator.submissions == 2


def test_a_job_whose_task_stays_unknown_is_settled_only_on_purpose(
    emulator: Emulator, unknown_task: UnknownTask
) -> None:
    # A task that really expired answers UNKNOWN for good: the user, not the client,
    # decides to stop following it, and even then the same inputs ask for --force.
    (journal_file, _, env, command), task_id = unknown_task
    job = only_job(journal_file)
    asked = run(retalk("resume"), env)
    assert asked.returncode == 1 and f"`retalk forget {job.id}`" in said(asked)
    forgot = run(retalk("forget", str(job.id)), env)
    assert forgot.returncode == 0, forgot.stderr
    assert f"job {job.id}: forgotten" in said(forgot) and task_id in said(forgot)
    assert only_job(journal_file).state == "forgotten"
    quiet = run(retalk("resume"), env)
    assert quiet.returncode == 0 and "nothing to resume" in quiet.stdout
    again = run(command, env)
    assert again.returncode == 2 and "--force" in said(again)
    assert emulator.submissions == 1
    twice = run(retalk("forget", str(job.id)), env)
    assert twice.returncode == 2 and "not unfinished" in said(twice)
    missing = run(retalk("forget", "99"), env)
    assert missing.returncode == 2 and "no job 99" in said(missing)


def test_an_async_batch_of_submits_is_paced_so_the_service_throttles_none(tmp_path: Path) -> None:
    # The emulator refuses a second submit within a second, as the service does. Before,
    # three submits at once got two 429s and came back; paced, each goes through first time.
    import asyncio

    from retalk import AsyncClient

    async def three(base_url: str) -> list[str]:
        async with AsyncClient(KEY, base_url=base_url) as client:
            video, audio = await client.upload(VIDEO), await client.upload(VOICE)
            tasks = await asyncio.gather(*(client.submit(video, audio, known_ids=set()) for _ in range(3)))
            return [task.task_id for task in tasks]

    with Emulator(tmp_path / "service", api_key=KEY, faults=Faults(task_seconds=0.1)) as emulator:
        ids = asyncio.run(three(emulator.base_url))
        submits = [p for m, p, h in emulator.requests if m == "POST" and "video-synthesis" in p]
    assert len(set(ids)) == 3 and emulator.submissions == 3
    assert len(submits) == 3  # not one throttled


PREP_STAGES = ["checking and fixing", *HTTP_STAGES, "verifying"]


@pytest.mark.parametrize("stage", PREP_STAGES)
def test_prep_and_retalk_killed_at_any_stage_is_finished_by_running_it_again_paid_once(
    emulator: Emulator, tmp_path: Path, stage: str
) -> None:
    out = tmp_path / "out.mp4"
    command = prep(VIDEO, VOICE, "-o", str(out), "--journal", str(tmp_path / "j.sqlite"))
    env = cli_env(emulator.base_url, tmp_path / "unused.sqlite")
    if stage == "checking and fixing":
        kill_when(lambda: (tmp_path / "out.work").exists(), command, env, "its fix")
    elif stage == "verifying":
        kill_when(out.exists, command, env, "it verified the result")
    else:
        kill_when_held(emulator, HTTP_STAGES[stage], command, env)
        assert not out.exists()
    done = run(command, env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["output"] == str(out)
    assert report["result_duration_s"] == pytest.approx(report["expected_duration_s"], abs=0.25)
    assert emulator.submissions == 1
    job = only_job(tmp_path / "j.sqlite")
    assert job.state == "downloaded" and job.task_id == report["task_id"]
    assert not list(tmp_path.rglob("*.part"))  # a part a kill left is removed by the next run


def back_to_before_it_was_recorded(journal_file: Path, job_id: int) -> None:
    """The journal as a kill leaves it in the instant after the result took its name and
    before its job was marked downloaded (or the output recorded as made)."""
    with Journal(journal_file) as journal:
        journal.update(job_id, state="submitted")
    with sqlite3.connect(journal_file) as db:
        db.execute("DELETE FROM made")
    db.close()


def test_a_run_killed_just_after_its_result_took_its_name_is_finished_by_the_same_command(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The window the stage kills above hit only by chance: the same command again knows the
    # file as this job's own (its bytes were recorded before the rename) and finishes, paid
    # once; a file of the user's put there instead is still never replaced.
    out, journal_file = tmp_path / "out.mp4", tmp_path / "j.sqlite"
    command = prep(VIDEO, VOICE, "-o", str(out), "--journal", str(journal_file))
    env = cli_env(emulator.base_url, tmp_path / "unused.sqlite")
    assert run(command, env).returncode == 0
    back_to_before_it_was_recorded(journal_file, only_job(journal_file).id)

    done = run(command, env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] and emulator.submissions == 1
    assert only_job(journal_file).state == "downloaded"

    back_to_before_it_was_recorded(journal_file, only_job(journal_file).id)
    out.write_bytes(b"the user's own take")
    refused = run(command, env)
    assert refused.returncode == 2 and "--overwrite" in said(refused)
    assert out.read_bytes() == b"the user's own take" and emulator.submissions == 1


# --------------------------------------------------------------------------- 6. resume and a re-run at once
def test_resume_and_the_same_command_run_again_at_once_submit_a_job_left_submitting_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A job left "submitting" by a kill (its submit never got through, long ago): ``resume``
    reads the task list slowly while the same command is run again. Only one of them may
    send it; the other leaves it alone (before: both did, and the first task was forgotten)."""
    journal_file, _, env, command = submit_of_the_pair(emulator, tmp_path)
    kill_when_held(emulator, "list", command, env)  # uploaded, owner a dead process
    with Journal(journal_file) as journal:
        (job,) = journal.jobs()
        # Killed right after the claim, its submit never sent, five minutes ago.
        journal.update(job.id, state="submitting", submit_started=time.time() - 300)
    holding = emulator.hold("list")  # resume's look for a lost task is slow
    outcome: list[Any] = []

    def resuming() -> None:
        with client_for(emulator.base_url) as client, Journal(journal_file) as journal:
            try:
                outcome.append(resume(client, journal, on_error=lambda j, e: outcome.append(e)))
            except Exception as exc:  # reported by the assertions below
                outcome.append(exc)

    thread = threading.Thread(target=resuming)
    thread.start()
    try:
        assert holding.reached.wait(CLI_TIMEOUT_S)
        again = run(command, env)  # while resume still waits for its list
    finally:
        holding.release()
        thread.join(CLI_TIMEOUT_S)
    assert emulator.submissions == 1, (said(again), outcome)
    assert again.returncode != 0 and "being run by process" in said(again), said(again)
    job = only_job(journal_file)
    assert job.state == "downloaded" and job.task_id
    assert [j.task_id for j in outcome[0]] == [job.task_id]


# --------------------------------------------------------------------------- 7. a service never reached
@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """The URL of a port nobody listens on: bound by this test (so no other process can take
    it meanwhile) but never listening, so a connection to it is refused."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}/api/v1"


def test_waiting_on_a_service_never_reached_fails_after_the_retries_not_after_the_outage_time(
    closed_port_url: str,
) -> None:
    # A closed port from the start is a wrong URL or a service that is not there: no outage
    # to ride out (before: wait went on for the whole outage_s, 300 s by default).
    poll = PollPolicy(steps=(0.05,), cap_s=0.1, jitter=0.1, outage_s=30.0)
    quick = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.1)
    with Client(KEY, base_url=closed_port_url, poll=poll, retry=quick) as client:
        began = time.monotonic()
        with pytest.raises(TransportError):
            client.wait("some-task")
    assert time.monotonic() - began < 10


def test_async_waiting_on_a_service_never_reached_fails_after_the_retries(closed_port_url: str) -> None:
    import asyncio

    from retalk import AsyncClient

    poll = PollPolicy(steps=(0.05,), cap_s=0.1, jitter=0.1, outage_s=30.0)
    quick = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.1)

    async def waiting() -> None:
        async with AsyncClient(KEY, base_url=closed_port_url, poll=poll, retry=quick) as client:
            await client.wait("some-task")

    began = time.monotonic()
    with pytest.raises(TransportError):
        asyncio.run(waiting())
    assert time.monotonic() - began < 10


def test_an_outage_that_outlasts_the_timeout_is_a_timeout_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults(task_seconds=30.0, submit_interval_s=0)
    service = Emulator(tmp_path / "service", api_key=KEY, faults=faults).start()
    quick = RetryPolicy(attempts=2, base_s=0.05, cap_s=0.1)
    try:
        with client_for(service.base_url, quick) as client:
            urls = [client.upload(VIDEO), client.upload(VOICE)]
            task = client.submit(*urls)
            seen: list[str] = []

            def went_down(answer: Any, waited: float) -> None:
                seen.append(answer.status)
                service.stop()  # the service answered once in this wait, then went away

            began = time.monotonic()
            with caplog.at_level("WARNING", logger="retalk"), pytest.raises(TaskTimeout):
                client.wait(task.task_id, timeout=2.0, on_status=went_down)
    finally:
        service.stop()
    assert seen and time.monotonic() - began < 10
    assert "no answer from the service since" in caplog.text and "still trying" in caplog.text
