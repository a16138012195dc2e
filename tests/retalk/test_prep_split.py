"""A voice-over and a video longer than the service takes, sent in parts with
`prep-and-retalk --split` and joined: the joined result is as long as the job, its
picture has every frame once, its sound runs on across the joins, and an interrupted
run finishes later without paying for a part twice."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from retalk import Client
from retalk._cli.main import main as retalk_main
from retalk._cli.prep import main
from retalk._journal import Journal
from retalk.emulator import Emulator
from tests.conftest import ROOT, make_fixtures
from tests.retalk.conftest import emulated_service

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its 200 s pair) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_prep_split")

KEY = "sk-emulated-split-0123456789"
LENGTH_S = 200.0
RATE = 44100
FPS = 25


@pytest.fixture(scope="module")
def long_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """200 s of speech over a quiet steady tone (so the seams have sound to compare), and
    200 s of video whose frames carry their own numbers."""
    folder = tmp_path_factory.mktemp("long")
    voice = make_fixtures.voice_like(LENGTH_S, RATE)
    voice += 10 ** (-40 / 20) * np.sin(2 * np.pi * 300 * np.arange(len(voice)) / RATE)
    audio = make_fixtures.write_audio(folder / "voice over.wav", signal=voice, sample_rate=RATE)
    video = make_fixtures.write_video(
        folder / "long talk.mp4", width=640, height=640, fps=FPS, duration=LENGTH_S, counter=True,
        gop=FPS, audio=False,
    )  # fmt: skip
    return video, audio


#: The long video's frames are numbers, not a face: that gate is passed, as a user would.
NO_FACE = ("--accept", "Face.NotFound")


def run(*args: str) -> tuple[int, dict[str, Any]]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main([*args, *NO_FACE, "--format", "json"])
    return status, json.loads(buffer.getvalue()) if buffer.getvalue() else {}


def split_on_the_emulator(video: Path, audio: Path, out: Path) -> tuple[int, dict[str, Any]]:
    """The job sent in parts (``--split``) to the built-in emulated service, its journal
    beside the output."""
    return run(
        str(video), str(audio), "-o", str(out), "--emulator", "--split",
        "--journal", str(out.parent / "journal.sqlite"),
    )  # fmt: skip


def frame_numbers(path: Path) -> list[int]:
    return [number for _, number in make_fixtures.counted_frames(path)]


def samples(path: Path) -> npt.NDArray[np.float64]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=RATE)
        blocks = [f.to_ndarray()[0] for frame in container.decode(stream) for f in resampler.resample(frame)]
    return np.concatenate(blocks).astype(np.float64)


def snr_db(reference: npt.NDArray[np.float64], measured: npt.NDArray[np.float64]) -> float:
    error = float(np.mean((reference - measured) ** 2)) or 1e-20
    return 10 * np.log10(float(np.mean(reference**2)) / error)


def assert_joined_well(result: dict[str, Any], output: Path, sent_voice: Path) -> None:
    parts = result["split"]["parts"]
    assert len(parts) >= 2
    assert all(p["end_s"] - p["start_s"] <= 120.0 for p in parts)
    assert abs(result["result_duration_s"] - LENGTH_S) < 0.05
    # Every frame once, in order: nothing duplicated or missing at the joins.
    assert frame_numbers(output) == list(range(round(LENGTH_S * FPS)))
    # The sound: the voice that was sent, sample for sample in time, across every seam.
    heard, sent = samples(output), samples(sent_voice)
    assert abs(len(heard) - len(sent)) <= 1024
    length = min(len(heard), len(sent))
    heard, sent = heard[:length], sent[:length]
    for part in parts[1:]:
        seam = round(part["start_s"] * RATE)
        window = slice(seam - RATE // 10, seam + RATE // 10)
        # In phase with the voice around the seam (a gap or an overlap of even one AAC
        # frame would put the steady tone out of phase: SNR far below 0 dB).
        assert snr_db(sent[window], heard[window]) > 20, part
        lags = range(-64, 65)
        scores = [float(np.dot(sent[window], heard[window.start + lag : window.stop + lag])) for lag in lags]
        assert lags[int(np.argmax(scores))] == 0
    assert snr_db(sent, heard) > 20


def test_a_200_s_voice_over_is_sent_in_parts_and_joined_seamlessly(
    long_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    video, audio = long_pair
    out = tmp_path / "dubbed talk.mp4"
    status, result = split_on_the_emulator(video, audio, out)
    assert status == 0, result.get("error")
    assert result["ok"] and result["output"] == str(out)
    # Cut at pauses, each part its own task, billed for the whole.
    tasks = [p["task_id"] for p in result["split"]["parts"]]
    assert len(set(tasks)) == len(tasks) and all(tasks)
    assert abs(result["billed_s"] - LENGTH_S) < 0.5
    sent_voice = Path(result["sent"]["audio"])
    assert_joined_well(result, out, sent_voice)


def test_without_split_a_long_job_is_trimmed_to_what_the_service_takes(
    long_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    video, audio = long_pair
    status, result = run(str(video), str(audio), "-o", str(tmp_path / "o.mp4"), "--dry-run")
    assert status == 0
    assert abs(result["expected_duration_s"] - 120.0) < 0.01
    status, result = run(str(video), str(audio), "-o", str(tmp_path / "o.mp4"), "--dry-run", "--split")
    assert status == 0
    assert abs(result["expected_duration_s"] - LENGTH_S) < 0.01
    assert len(result["split"]["parts"]) == 2


@pytest.fixture()
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """Tasks of 3 s (time to stop a run between its parts), its key in the environment."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    with emulated_service(tmp_path, KEY, task_seconds=3.0) as running:
        yield running


def part_jobs(journal: Path) -> list[tuple[str, str | None]]:
    with contextlib.closing(sqlite3.connect(journal)) as db:
        return list(db.execute("SELECT state, task_id FROM jobs ORDER BY id"))


def interrupted_run(service: Emulator, long_pair: tuple[Path, Path], tmp_path: Path) -> list[str]:
    """Start the job, stop it with Ctrl-C once the first part is downloaded and the next
    is running; returns the command."""
    video, audio = long_pair
    journal = tmp_path / "journal.sqlite"
    command = [
        str(video), str(audio), "-o", str(tmp_path / "dubbed.mp4"), "--split",
        "--base-url", service.base_url, "--journal", str(journal), *NO_FACE,
    ]  # fmt: skip
    env = {**os.environ, "DASHSCOPE_API_KEY": KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "retalk._cli.prep", *command],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if journal.exists() and [s for s, _ in part_jobs(journal)][:1] == ["downloaded"]:
                break
        except sqlite3.OperationalError:
            pass  # the journal is there, its tables not yet
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr
    states = [s for s, _ in part_jobs(journal)]
    assert states[0] == "downloaded" and "downloaded" not in states[1:], states
    assert service.submissions == 2  # the next part was queued behind the first
    return command


def test_an_interrupted_split_job_finishes_when_run_again_without_paying_twice(
    service: Emulator, long_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    command = interrupted_run(service, long_pair, tmp_path)
    before = part_jobs(tmp_path / "journal.sqlite")
    (first_result,) = (tmp_path / "dubbed.work").glob("parts-*/result-01.mp4")
    first_stamp = first_result.stat().st_mtime_ns
    service.faults.task_seconds = 0.2
    status, result = run(*command)

    assert status == 0, result.get("error")
    # The same tasks, no new submission, the first part not fetched again.
    assert [t for _, t in part_jobs(tmp_path / "journal.sqlite")] == [t for _, t in before]
    assert service.submissions == 2
    assert first_result.stat().st_mtime_ns == first_stamp
    assert_joined_well(result, tmp_path / "dubbed.mp4", Path(result["sent"]["audio"]))

    # Done: the same command again is refused rather than paid for twice...
    status, _ = run(*command)
    assert status == 2
    # ...unless the output was removed: then it is joined again from the parts' results.
    (tmp_path / "dubbed.mp4").unlink()
    status, result = run(*command)
    assert status == 0, result.get("error")
    assert (tmp_path / "dubbed.mp4").exists() and service.submissions == 2


def test_retalk_resume_finishes_and_joins_an_interrupted_split_job(
    service: Emulator,
    long_pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    interrupted_run(service, long_pair, tmp_path)
    service.faults.task_seconds = 0.2
    status = retalk_main(
        ["resume", "--base-url", service.base_url, "--journal", str(tmp_path / "journal.sqlite"),
         "--format", "json"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert status == 0, report
    assert [s["output"] for s in report["joined"]] == [str(tmp_path / "dubbed.mp4")]
    assert service.submissions == 2
    with av.open(str(tmp_path / "dubbed.mp4")) as joined:
        assert abs(float(joined.duration or 0) / av.time_base - LENGTH_S) < 0.05


def test_a_long_video_under_a_short_voice_is_cut_to_the_voice_and_sent_as_one_part(
    long_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    video, _ = long_pair
    voice = make_fixtures.write_audio(tmp_path / "short voice.wav", duration=60.0, sample_rate=RATE)
    out = tmp_path / "dubbed.mp4"
    status, result = split_on_the_emulator(video, voice, out)
    assert status == 0, result.get("error")
    assert len(result["split"]["parts"]) == 1
    assert abs(result["result_duration_s"] - 60.0) < 0.05
    assert frame_numbers(out) == list(range(60 * FPS))


def test_a_missing_input_with_split_is_a_clear_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    voice = make_fixtures.write_audio(tmp_path / "voice.wav", duration=3.0)
    status = main(
        [str(tmp_path / "gone.mp4"), str(voice), "-o", str(tmp_path / "o.mp4"), "--emulator", "--split"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "gone.mp4: cannot read it" in err and "Traceback" not in err


#: ``stopped_run(method, call, command)``: the exit status and what the run said (stderr).
StoppedRun = Callable[[str, int, list[str]], tuple[int, str]]


@pytest.fixture()
def stopped_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> StoppedRun:
    """Runs a command with ``Client.<method>`` stopped by Ctrl-C at its ``call``-th call
    (1: the first), as the user pressing it while that request is on its way; the other
    calls go through."""

    def stopped_run(method: str, call: int, command: list[str]) -> tuple[int, str]:
        real = getattr(Client, method)
        calls = [0]

        def stopped(self: Client, *args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == call:
                raise KeyboardInterrupt
            return real(self, *args, **kwargs)

        capsys.readouterr()  # what this run says, not what came before
        with monkeypatch.context() as patched:
            patched.setattr(Client, method, stopped)
            status = run(*command)[0]
        return status, capsys.readouterr().err

    return stopped_run


def split_command(long_pair: tuple[Path, Path], service: Emulator, tmp_path: Path) -> list[str]:
    video, audio = long_pair
    return [
        str(video), str(audio), "-o", str(tmp_path / "dubbed.mp4"), "--split", "--no-fix",
        "--base-url", service.base_url, "--journal", str(tmp_path / "journal.sqlite"),
    ]  # fmt: skip


@pytest.fixture()
def split_job(service: Emulator, long_pair: tuple[Path, Path], tmp_path: Path) -> list[str]:
    """The long pair's split job as its command line, the service's tasks made quick (0.2 s):
    for the stories that stop the job themselves rather than while a part runs."""
    service.faults.task_seconds = 0.2
    return split_command(long_pair, service, tmp_path)


def resume_all(service: Emulator, tmp_path: Path) -> int:
    return retalk_main(
        ["resume", "--base-url", service.base_url, "--journal", str(tmp_path / "journal.sqlite")]
    )


def test_ctrl_c_before_a_split_pays_closes_every_part_so_resume_pays_nothing_and_a_rerun_works(
    service: Emulator, split_job: list[str], tmp_path: Path, stopped_run: StoppedRun
) -> None:
    status, said = stopped_run("upload", 1, split_job)  # the first part's video, on its way
    assert status == 130, said
    assert "nothing submitted" in said and "Traceback" not in said, said
    with Journal(tmp_path / "journal.sqlite") as journal:
        states = [job.state for job in journal.jobs()]
        parts = ", ".join(f"job {job.id}" for job in reversed(journal.jobs()))
        assert f"split 1 closed with its parts: {parts}" in said, said
        # Every part closed with the split, not only the one that was uploading.
        assert len(states) >= 2 and set(states) == {"canceled"}, states
        assert journal.unfinished() == [] and journal.running_splits() == []
    # `retalk resume` sends (pays for) nothing of it...
    resume_all(service, tmp_path)
    assert service.submissions == 0
    # ...and the same command, run again, starts afresh and is done on the first try.
    status, result = run(*split_job)
    assert status == 0, result.get("error")
    assert service.submissions == len(result["split"]["parts"]) == len(states)
    assert (tmp_path / "dubbed.mp4").exists()


def test_ctrl_c_after_an_earlier_run_paid_a_part_keeps_the_rest_for_resume(
    service: Emulator, split_job: list[str], tmp_path: Path, stopped_run: StoppedRun
) -> None:
    # Part 1's two files are sent and it is submitted.
    assert stopped_run("upload", 3, split_job)[0] == 130
    assert [state for state, _ in part_jobs(tmp_path / "journal.sqlite")][:2] == ["submitted", "new"]
    # Run again, and stopped again before the next part is paid: this run paid nothing, the
    # earlier one did.
    status, said = stopped_run("upload", 1, split_job)
    assert status == 130, said
    states = [state for state, _ in part_jobs(tmp_path / "journal.sqlite")]
    assert "canceled" not in states, (states, said)
    assert "paid for" in said and "kept" in said and "retalk resume" in said, said
    assert service.submissions == 1
    # `retalk resume` sends the part left and joins the whole: nothing paid is wasted.
    assert resume_all(service, tmp_path) == 0
    assert (tmp_path / "dubbed.mp4").exists() and service.submissions == len(states)


def test_ctrl_c_while_a_job_caught_mid_submit_is_looked_for_says_it_may_be_paid(
    service: Emulator, tmp_path: Path, stopped_run: StoppedRun
) -> None:
    video = make_fixtures.write_video(
        tmp_path / "clip.mp4", width=640, height=640, fps=FPS, duration=3.0, counter=True, audio=False
    )
    voice = make_fixtures.write_audio(
        tmp_path / "voice.wav", signal=make_fixtures.voice_like(3.0, RATE), sample_rate=RATE
    )
    command = [
        str(video), str(voice), "-o", str(tmp_path / "out.mp4"), "--no-fix",
        "--base-url", service.base_url, "--journal", str(tmp_path / "journal.sqlite"),
    ]  # fmt: skip
    # The submit is on its way: it may make a task.
    assert stopped_run("submit", 1, command)[0] == 130
    assert [state for state, _ in part_jobs(tmp_path / "journal.sqlite")] == ["submitting"]
    # The same command takes the job up and looks for its task: Ctrl-C while it looks.
    status, said = stopped_run("list", 1, command)
    assert status == 130, said
    assert "before anything was sent or paid for" not in said, said
    assert "may have been paid; kept for `retalk resume`" in said, said
    assert [state for state, _ in part_jobs(tmp_path / "journal.sqlite")] == ["submitting"]


def test_a_failed_split_run_again_is_not_gated_again_nor_paid_twice(
    service: Emulator,
    long_pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command = split_command(long_pair, service, tmp_path)
    journal = tmp_path / "journal.sqlite"

    def fail_the_second_part() -> None:
        # Once the first part is paid and downloaded, the running second part fails.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.Error):
                if journal.exists() and [s for s, _ in part_jobs(journal)][:1] == ["downloaded"]:
                    service.faults.fail_tasks = True
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=fail_the_second_part)
    watcher.start()
    status, _ = run(*command)
    watcher.join()
    said = capsys.readouterr().err
    assert status == 1 and "part 2 of split" in said, said
    assert [s for s, _ in part_jobs(journal)][:2] == ["downloaded", "failed"]
    paid = service.submissions
    service.faults.fail_tasks = False
    service.faults.task_seconds = 0.2
    # Run again as the user would, without repeating --accept: the split was sent with it.
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main([*command, "--format", "json"])
    result = json.loads(buffer.getvalue())
    assert status == 0, result.get("error")
    assert "--force" not in str(result.get("error"))
    # Only the failed part is paid again; the paid one is taken up, not sent anew.
    assert service.submissions == paid + 1 and (tmp_path / "dubbed.mp4").exists()


def test_a_gate_never_offers_force_for_inputs_the_journal_holds(
    service: Emulator, long_pair: tuple[Path, Path], tmp_path: Path, stopped_run: StoppedRun
) -> None:
    command = split_command(long_pair, service, tmp_path)
    assert stopped_run("upload", 1, command)[0] == 130  # the split is closed, nothing paid
    # Gated again (nothing of it was sent), offered only what passes the finding.
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main([*command, "--format", "json"])
    error = str(json.loads(buffer.getvalue()).get("error"))
    assert status == 1 and "--accept Face.NotFound" in error, error
    assert "--force" not in error, error


def test_resume_never_sends_a_part_of_a_split_that_is_not_running(
    service: Emulator, split_job: list[str], tmp_path: Path, stopped_run: StoppedRun
) -> None:
    assert stopped_run("upload", 3, split_job)[0] == 130  # part 1 submitted, part 2 not yet
    with Journal(tmp_path / "journal.sqlite") as journal:
        (split,) = journal.running_splits()
        # Ended meanwhile (superseded by a job for the same output, say): it is never joined.
        journal.update_split(split.id, state="failed", error="superseded by a later job for the same output")
    resume_all(service, tmp_path)
    # The paid part is fetched; the unsent one is not paid for a split that cannot be joined.
    assert service.submissions == 1
    assert [s for s, _ in part_jobs(tmp_path / "journal.sqlite")][:2] == ["downloaded", "new"]


def test_a_split_killed_just_after_its_joined_result_took_its_name_is_finished_by_the_same_command(
    service: Emulator, split_job: list[str], tmp_path: Path
) -> None:
    # A kill in the instant after the join's rename, before the split was marked joined:
    # the same command again knows the joined file as this split's own (its bytes were
    # recorded first) and finishes without paying, instead of refusing its own result.
    assert run(*split_job)[0] == 0
    paid = service.submissions
    journal = tmp_path / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(journal)) as db, db:
        db.execute("UPDATE splits SET state = 'running'")
        db.execute("DELETE FROM made")
    status, result = run(*split_job)
    assert status == 0, result.get("error")
    assert service.submissions == paid and (tmp_path / "dubbed.mp4").exists()
