"""The real client against the emulator over real HTTP on 127.0.0.1: the whole job, each
injected fault, an expired upload policy, a failed task read as its preflight finding, a
crash in the middle of ``wait`` followed by ``resume`` (same task, no second submit), and
the key nowhere but in the API's Authorization header."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from retalk import Client, PollPolicy, RetryPolicy, SubmitUncertain, TaskFailed, UploadError
from retalk._journal import DuplicateJob, Journal
from retalk._run.job import resume, run_job
from retalk.emulator import Emulator, Faults
from tests.conftest import ROOT, SAMPLE
from tests.retalk.conftest import emulated_service

KEY = "sk-emulated-0123456789abcdef"
VIDEO, VOICE, FACE = str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"), str(SAMPLE / "face.jpg")
FAST_POLL = PollPolicy(steps=(0.05,), cap_s=0.1, jitter=0.1)


@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with emulated_service(tmp_path, KEY, task_seconds=0.2) as running:
        yield running


def client_for(emulator: Emulator) -> Client:
    return Client(
        KEY, base_url=emulator.base_url, poll=FAST_POLL, retry=RetryPolicy(attempts=6, base_s=0.05, cap_s=0.5)
    )


def duration(path: Path) -> float:
    with av.open(str(path)) as container:
        return float(container.duration or 0) / av.time_base


def assert_key_only_sent_to_the_api(emulator: Emulator) -> None:
    for method, path, headers in emulator.requests:
        has_key = "Authorization" in headers or "authorization" in headers
        assert has_key == path.startswith("/api/v1"), (method, path)
        assert KEY not in str(headers)


def test_a_whole_job_over_http(emulator: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "result.mp4"
    with client_for(emulator) as client, Journal(tmp_path / "journal.sqlite") as journal:
        job = run_job(client, journal, VIDEO, VOICE, FACE, output=str(out))
        assert job.state == "downloaded" and job.task_id and job.billed_s
        with av.open(str(out)) as container:
            assert container.streams.video and container.streams.audio
        assert duration(out) == pytest.approx(job.billed_s, abs=0.1)
        # The same inputs again would pay twice.
        with pytest.raises(DuplicateJob):
            run_job(client, journal, VIDEO, VOICE, FACE, output=str(out))
    assert emulator.submissions == 1
    assert_key_only_sent_to_the_api(emulator)


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(Faults(throttle_every=2, task_seconds=0.1, submit_interval_s=0), id="throttled"),
        pytest.param(Faults(error_every=3, task_seconds=0.1, submit_interval_s=0), id="server errors"),
        pytest.param(Faults(drop_every=4, task_seconds=0.1, submit_interval_s=0), id="dropped connections"),
        pytest.param(Faults(slow_s=0.2, task_seconds=0.1, submit_interval_s=0), id="slow"),
    ],
)
def test_faults_are_ridden_out_without_a_second_submit(tmp_path: Path, faults: Faults) -> None:
    with Emulator(tmp_path / "service", api_key=KEY, faults=faults) as emulator:
        with client_for(emulator) as client, Journal(tmp_path / "j.sqlite") as journal:
            try:
                job = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "r.mp4"))
            except SubmitUncertain:
                # A 5xx to the submit itself: never re-sent blindly. The task list shows
                # nothing new, so resume (once the service had time to list it) sends it.
                (stuck,) = journal.unfinished()
                assert stuck.state == "submitting" and emulator.submissions == 0
                (job,) = resume(client, journal, settle_s=0)
        assert job.state == "downloaded"
        assert emulator.submissions == 1
        assert_key_only_sent_to_the_api(emulator)


def test_a_failed_task_is_read_as_the_preflight_finding(emulator: Emulator, tmp_path: Path, media) -> None:  # type: ignore[no-untyped-def]
    slow = media.write_video(tmp_path / "slow.mp4", fps=10)
    with client_for(emulator) as client, Journal(tmp_path / "j.sqlite") as journal:
        with pytest.raises(TaskFailed) as caught:
            run_job(client, journal, str(slow), VOICE, output=str(tmp_path / "r.mp4"))
        assert caught.value.finding is not None and caught.value.finding.code == "InvalidFile.FPS"
        (job,) = journal.jobs()
        assert job.state == "failed" and "InvalidFile.FPS" in (job.error or "")
    assert not (tmp_path / "r.mp4").exists()


def test_an_expired_upload_policy_is_fetched_again(tmp_path: Path) -> None:
    faults = Faults(policy_ttl_s=0, task_seconds=0.1, submit_interval_s=0)
    with (
        Emulator(tmp_path / "service", api_key=KEY, faults=faults) as emulator,
        client_for(emulator) as client,
    ):
        # Every policy is born expired: the client asks again, then reports it clearly.
        with pytest.raises(UploadError, match=r"kept failing|refused"):
            client.upload(SAMPLE / "voice.wav")
        policies = [p for m, p, h in emulator.requests if p.startswith("/api/v1/uploads")]
        assert len(policies) >= 2


def test_a_crash_during_wait_is_resumed_with_the_same_task(emulator: Emulator, tmp_path: Path) -> None:
    journal_file = tmp_path / "journal.sqlite"
    env = {
        **os.environ,
        "DASHSCOPE_API_KEY": KEY,
        "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
        "RETALK_JOURNAL": str(journal_file),
    }
    emulator.faults.task_seconds = 30.0  # long enough to be killed while waiting
    process = subprocess.Popen(
        [sys.executable, "-m", "retalk", "submit", VIDEO, VOICE, "-o", str(tmp_path / "r.mp4")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    # Killed once the client polls its task (so the journal holds the task id): waiting on
    # that, not on a pause that a loaded machine may outlast.
    deadline = time.monotonic() + 60
    while not any(m == "GET" and "/tasks/" in p for m, p, _ in list(emulator.requests)):
        assert time.monotonic() < deadline and process.poll() is None, "the client never polled its task"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert emulator.submissions == 1
    with Journal(journal_file) as journal:
        (job,) = journal.unfinished()
        assert job.state == "submitted" and job.task_id
        emulator.faults.task_seconds = 0.1
        with client_for(emulator) as client:
            (done,) = resume(client, journal)
    assert done.task_id == job.task_id and done.state == "downloaded"
    assert emulator.submissions == 1
    assert (tmp_path / "r.mp4").exists()


def test_the_key_never_reaches_output_or_logs(emulator: Emulator, tmp_path: Path) -> None:
    env = {**os.environ, "DASHSCOPE_API_KEY": KEY, "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
           "RETALK_JOURNAL": str(tmp_path / "j.sqlite"), "RETALK_DEBUG": "1"}  # fmt: skip
    runs = [
        ["submit", VIDEO, VOICE, "-o", str(tmp_path / "r.mp4")],
        ["list", "--format", "json"],
        ["status", "no-such-task"],
        ["submit", VIDEO, VOICE],  # a duplicate
    ]
    for args in runs:
        done = subprocess.run(
            [sys.executable, "-m", "retalk", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert KEY not in done.stdout and KEY not in done.stderr, args
    wrong = subprocess.run(
        [sys.executable, "-m", "retalk", "list"], cwd=ROOT, capture_output=True, text=True,
        env={**env, "DASHSCOPE_API_KEY": "sk-wrong-key-abcdef"},
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "sk-wrong-key-abcdef" not in wrong.stderr and "InvalidApiKey" in wrong.stderr
    assert_key_only_sent_to_the_api(emulator)


def test_the_async_client_runs_jobs_side_by_side_while_the_service_takes_one_at_a_time(
    emulator: Emulator, tmp_path: Path
) -> None:
    import asyncio

    from retalk import AsyncClient

    async def job(client: AsyncClient, index: int) -> str:
        video = await client.upload(SAMPLE / "talking_head.mp4")
        audio = await client.upload(SAMPLE / "voice.wav")
        task = await client.submit(video, audio)
        done = (await client.wait(task.task_id)).raise_for_status()
        assert done.video_url is not None
        await client.download(done.video_url, tmp_path / f"{index}.mp4")
        return task.task_id

    async def three() -> list[str]:
        async with AsyncClient(KEY, base_url=emulator.base_url, poll=FAST_POLL) as client:
            return list(await asyncio.gather(*(job(client, i) for i in range(3))))

    ids = asyncio.run(three())
    assert len(set(ids)) == 3 and emulator.submissions == 3
    assert all(duration(tmp_path / f"{i}.mp4") > 2 for i in range(3))
    assert_key_only_sent_to_the_api(emulator)


def test_a_policy_that_expires_between_fetch_and_use_is_fetched_again(tmp_path: Path) -> None:
    from dataclasses import replace

    faults = Faults(policy_ttl_s=1, task_seconds=0.1, submit_interval_s=0)
    with (
        Emulator(tmp_path / "service", api_key=KEY, faults=faults) as emulator,
        client_for(emulator) as client,
    ):
        client.upload(SAMPLE / "voice.wav")  # fetches the policy
        stale = client._policy
        assert stale is not None
        time.sleep(1.2)
        # Our clock still thinks it is fresh (skew): the storage says otherwise.
        client._policy = replace(stale, received=time.monotonic(), expire_in_seconds=300)
        url = client.upload(SAMPLE / "voice.wav")
        assert url.startswith("oss://")
        policies = [p for m, p, h in emulator.requests if p.startswith("/api/v1/uploads")]
        assert len(policies) == 2


def test_a_task_the_service_fails_is_recorded_failed_with_its_code(tmp_path: Path) -> None:
    faults = Faults(fail_tasks=True, task_seconds=0.1, submit_interval_s=0)
    with Emulator(tmp_path / "service", api_key=KEY, faults=faults) as emulator:
        with client_for(emulator) as client, Journal(tmp_path / "j.sqlite") as journal:
            with pytest.raises(TaskFailed, match=r"InternalError\.Algo"):
                run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "r.mp4"))
            (job,) = journal.jobs()
            assert job.state == "failed" and not journal.unfinished()
            # A failed job does not block trying again (it was not paid for).
            emulator.faults.fail_tasks = False
            again = run_job(client, journal, VIDEO, VOICE, output=str(tmp_path / "r.mp4"))
            assert again.state == "downloaded"


def test_a_crash_mid_submit_adopts_the_one_task_it_created_and_only_that(
    emulator: Emulator, tmp_path: Path
) -> None:
    with client_for(emulator) as client, Journal(tmp_path / "j.sqlite") as journal:
        video, audio = client.upload(VIDEO), client.upload(VOICE)
        job = journal.start(
            {"video": VIDEO, "audio": VOICE}, {}, str(tmp_path / "r.mp4"), base_url=client.base_url
        )
        now = time.time()
        inputs = {
            role: {**d, "url": u, "uploaded": now}
            for (role, d), u in zip(job.inputs.items(), (video, audio), strict=True)
        }
        journal.update(job.id, inputs=inputs, state="submitting", submit_started=now)
        other = client.submit(video, audio)  # another program's task, in the same moments
        ours = client.submit(video, audio)  # sent, then our process died before writing it down
        with pytest.raises(SubmitUncertain, match="several tasks"):
            resume(client, journal)  # two candidates: never a guess
        # Once the other task is known to belong to another job, only ours is left.
        other_job = journal.start(
            {"video": VIDEO, "audio": VOICE}, {"video_extension": True}, None, base_url=client.base_url
        )
        journal.update(other_job.id, state="downloaded", task_id=other.task_id)
        sent = emulator.submissions
        (done,) = resume(client, journal)
    assert done.task_id == ours.task_id and done.state == "downloaded"
    assert emulator.submissions == sent  # adopted, not sent again
