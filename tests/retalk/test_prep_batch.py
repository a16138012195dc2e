"""``prep-and-retalk --batch`` as a user runs it: every mistake in the CSV said at once
before anything runs, a table with the cost of each job and the total, a re-run that
skips only what is really done, and Ctrl-C (sent to the process group, as a terminal
does) that stops paying at once."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

from retalk import Client
from retalk._cli.main import EXIT_REFUSED
from retalk._cli.main import main as retalk_main
from retalk._cli.prep import main
from retalk._journal import Journal
from retalk._run.batch import BatchOutcome, run_batch
from retalk._run.batch_file import BatchJob, read_batch
from retalk.emulator import Emulator, Faults, Hold
from tests.conftest import ROOT, SAMPLE
from tests.retalk.conftest import EMULATED_KEY

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT are POSIX")

VOICE = SAMPLE / "voice.wav"


def clips(media: Any, folder: Path, count: int) -> list[Path]:
    """``count`` different short talking-head clips (different inputs: different jobs)."""
    made = []
    for index in range(count):
        made.append(media.write_video(folder / f"clip{index}.mp4", duration=2.2 + 0.2 * index, source="face"))
    return made


def batch_of(folder: Path, rows: list[str]) -> Path:
    batch = folder / "jobs.csv"
    batch.write_text("video,audio,ref,output,options\n" + "\n".join(rows) + "\n")
    return batch


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def submits(service: Emulator) -> int:
    return sum(1 for method, path, _ in service.requests if method == "POST" and "video-synthesis" in path)


# --------------------------------------------------------------------------- the CSV
def test_every_mistake_in_the_csv_is_said_at_once_by_row_and_column_before_anything_runs(
    service: Emulator, media: Any, tmp_path: Path
) -> None:
    (clip,) = clips(media, tmp_path, 1)
    (tmp_path / "a folder").mkdir()
    batch = batch_of(
        tmp_path,
        [
            f"{clip},{VOICE},,good.mp4,",
            f"missing.mp4,{VOICE},,one.mp4,",
            f"a folder,{VOICE},,two.mp4,",
            f"{clip},{VOICE},,three.mp4,--bogus",
            f"{clip},{VOICE},,four.mp4,--align sideways",
            f"{clip},gone.wav,,five.mp4,--face-threshold 90",
            f"{clip},{VOICE},,results/,",
        ],
    )
    status, out, err = run(
        "--batch", str(batch), "--base-url", service.base_url, "--journal", str(tmp_path / "j")
    )
    assert status == 2 and out == ""
    assert f"{batch}:3: video column: {tmp_path / 'missing.mp4'}: no such file" in err
    assert f"{batch}:4: video column: {tmp_path / 'a folder'} is a folder" in err
    assert f"{batch}:5: options column '--bogus': unrecognized arguments: --bogus" in err
    assert f"{batch}:6: options column '--align sideways': " in err and "sideways" in err
    assert f"{batch}:7: audio column: {tmp_path / 'gone.wav'}: no such file" in err
    assert f"{batch}:7: options column: --face-threshold 90: must be 120-200" in err
    assert f"{batch}:8: output column: results/ ends in a slash: give a file name" in err
    # One problem a line (not one line with the newlines escaped).
    assert "\\n" not in err and f"\n  {batch}:3: video column" in err
    # Our words, not argparse's usage, its exit code, or an option the user never typed.
    assert "usage:" not in err and "(2)" not in err and "--video" not in err
    assert "Traceback" not in err
    assert service.requests == [] and not (tmp_path / "good.work").exists()


def test_the_table_has_a_header_the_cost_of_each_job_and_the_total(
    service: Emulator, media: Any, tmp_path: Path
) -> None:
    first, second = clips(media, tmp_path, 2)
    batch = batch_of(tmp_path, [f"{first},{VOICE},,one.mp4,", f"{second},{VOICE},,two.mp4,"])
    common = ("--batch", str(batch), "--base-url", service.base_url, "--journal", str(tmp_path / "j"))
    status, out, _ = run(*common, "--format", "json")
    document = json.loads(out)
    costs = [job["cost_cny"] for job in document["jobs"]]
    assert status == 0 and all(c and c > 0 for c in costs)
    assert document["cost_cny"] == pytest.approx(sum(costs), abs=0.01)
    status, out, _ = run(*common)  # again: nothing paid, nothing to cost
    header, *rows, total = out.splitlines()
    assert status == 0 and header.split() == ["line", "status", "CNY", "output", "detail"]
    assert [row.split()[:3] for row in rows] == [["2", "skipped", "-"], ["3", "skipped", "-"]]
    assert total.split()[0] == "total" and total.endswith("; 0.00 CNY")
    status, out, _ = run(*common, "--force")  # paid again, on purpose
    header, *rows, total = out.splitlines()
    assert [row.split()[:3] for row in rows] == [
        ["2", "done", f"{costs[0]:.2f}"],
        ["3", "done", f"{costs[1]:.2f}"],
    ]
    assert total.endswith(f"; {sum(costs):.2f} CNY")


def test_a_dry_run_batch_says_what_each_row_would_send_and_cost_and_pays_for_nothing(
    service: Emulator, media: Any, tmp_path: Path
) -> None:
    (clip,) = clips(media, tmp_path, 1)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    batch = batch_of(tmp_path, [f"{clip},{VOICE},,one.mp4,", f"{broken},{VOICE},,two.mp4,"])
    journal = tmp_path / "j"
    common = ("--batch", str(batch), "--base-url", service.base_url, "--journal", str(journal), "--dry-run")
    status, out, err = run(*common, "--format", "json")
    document = json.loads(out)
    assert status == EXIT_REFUSED and [j["status"] for j in document["jobs"]] == ["planned", "refused"], err
    planned, refused = document["jobs"]
    assert planned["cost_cny"] > 0 and planned["task_id"] is None and "would send" in planned["detail"]
    assert refused["cost_cny"] is None and refused["detail"]
    assert document["summary"] == {"planned": 1, "refused": 1, "gated": 0}
    assert document["cost_cny"] == planned["cost_cny"]
    status, out, err = run(*common)
    header, *rows, total = out.splitlines()
    assert status == EXIT_REFUSED and header.split()[:2] == ["line", "status"], err
    assert [row.split()[:3] for row in rows] == [
        ["2", "planned", f"{planned['cost_cny']:.2f}"],
        ["3", "refused", "-"],
    ]
    assert total.endswith(f"1 planned, 1 refused, 0 gated; {planned['cost_cny']:.2f} CNY")
    # Nothing went to the service, nothing was recorded, no result was written.
    assert service.requests == [] and not journal.exists()
    assert not (tmp_path / "one.mp4").exists() and not (tmp_path / "two.mp4").exists()


def test_a_rerun_makes_again_a_job_whose_input_changed_and_skips_the_unchanged_one(
    service: Emulator, media: Any, tmp_path: Path
) -> None:
    first, second = clips(media, tmp_path, 2)
    voice = tmp_path / "voice.wav"
    media.write_audio(voice, duration=2.0)
    batch = batch_of(tmp_path, [f"{first},{voice},,one.mp4,", f"{second},{VOICE},,two.mp4,"])
    common = ("--batch", str(batch), "--base-url", service.base_url, "--journal", str(tmp_path / "j"))
    common += ("--format", "json")
    status, out, _ = run(*common)
    assert status == 0 and [j["status"] for j in json.loads(out)["jobs"]] == ["done", "done"]
    media.write_audio(voice, duration=2.1, level_db=-9.0)  # the voice re-recorded
    status, out, err = run(*common)
    jobs = json.loads(out)["jobs"]
    assert status == 0 and [j["status"] for j in jobs] == ["done", "skipped"], err
    assert "audio changed since the output was made" in err
    assert submits(service) == 3


def test_the_batch_lines_written_to_a_pipe_are_never_wrapped(
    service: Emulator, media: Any, tmp_path: Path
) -> None:
    (clip,) = clips(media, tmp_path, 1)
    output = tmp_path / ("a-result-with-a-name-long-enough-to-pass-eighty-columns-" * 2 + ".mp4")
    batch = batch_of(tmp_path, [f"{clip},{VOICE},,{output},"])
    status, out, err = run(
        "--batch", str(batch), "--base-url", service.base_url, "--journal", str(tmp_path / "j")
    )
    assert status == 0
    assert f"[line 2] {output.name}: done: {output}\n" in err
    assert f"  {output}  {output}\n" in out


def test_a_reader_that_goes_away_ends_the_batch_quietly_as_retalk_does(
    service: Emulator, tmp_path: Path
) -> None:
    # `prep-and-retalk --batch jobs.csv --format json | head -1`: head has gone when the
    # report is written. (The text table is written by rich, which ends the process itself.)
    # Every row's output exists (the journal never made them): skipped, nothing read or sent.
    rows = []
    for index in range(3):
        (tmp_path / f"clip{index}.mp4").write_bytes(b"a clip")
        (tmp_path / f"done{index}.mp4").write_bytes(b"a result")
        rows.append(f"clip{index}.mp4,{VOICE},,done{index}.mp4,")
    batch = batch_of(tmp_path, rows)
    command = [sys.executable, "-c", "from retalk._cli.prep import main; raise SystemExit(main())"]
    args = ["--batch", str(batch), "--format", "json", "--base-url", service.base_url]
    args += ["--journal", str(tmp_path / "j")]
    process = subprocess.Popen(
        [*command, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the table is written
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert err.count("skipped: the output exists") == 3
    assert "internal error" not in err and "Traceback" not in err and "Exception ignored" not in err
    assert service.requests == []


def test_every_finding_of_every_row_is_said_before_its_upload(
    service: Emulator, media: Any, tmp_path: Path
) -> None:
    first, second = clips(media, tmp_path, 2)
    silence = media.write_audio(tmp_path / "silence.wav", signal=np.zeros(4 * 16000), sample_rate=16000)
    batch = batch_of(tmp_path, [f"{first},{silence},,out0.mp4,", f"{second},{VOICE},,out1.mp4,"])
    status, _, err = run(
        "--batch", str(batch), "--jobs", "1", "--base-url", service.base_url, "--journal", str(tmp_path / "j")
    )
    assert status == 1  # the silent row is gated
    lines = err.splitlines()
    # The gated row names its finding with its message, not only the code.
    noted = [
        n for n, line in enumerate(lines) if line.startswith("[line 2] out0.mp4:   warning Audio.NoSpeech")
    ]
    assert noted and noted[0] < lines.index("[line 2] out0.mp4: gated: Audio.NoSpeech (nothing sent)"), err
    # The row sent says what was checked and fixed before it uploads.
    checked = [n for n, line in enumerate(lines) if line.startswith(f"[line 3] out1.mp4: checked {second}")]
    sent = [n for n, line in enumerate(lines) if line.startswith("[line 3] out1.mp4: task ")]
    assert checked and sent and checked[0] < sent[0], err


# --------------------------------------------------------------------------- Ctrl-C
class Lines:
    """A stream read line by line in a thread, so a test can wait for a line to appear."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for m in (re.search(pattern, line) for line in self.lines) if m]
            return bool(found)

        with self._changed:
            assert self._changed.wait_for(seen, timeout), f"no {pattern!r} in {''.join(self.lines)}"
        return found[0]

    def text(self) -> str:
        self._thread.join(30)
        return "".join(self.lines)


@pytest.fixture()
def slow(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """An emulated service whose tasks run ``request.param`` seconds."""
    faults = Faults(task_seconds=request.param, submit_interval_s=0)
    with Emulator(tmp_path / "slow-service", api_key=EMULATED_KEY, faults=faults) as running:
        yield running


def start_prep(service: Emulator, journal: Path, *args: str) -> tuple[subprocess.Popen[str], Lines]:
    """``prep-and-retalk ARGS`` in a session of its own, as a terminal starts it."""
    command = [sys.executable, "-m", "retalk._cli.prep", *args]
    command += ["--base-url", service.base_url, "--journal", str(journal)]
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "DASHSCOPE_API_KEY": EMULATED_KEY},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    return process, Lines(process.stderr)


def one_at_a_time(batch: Path) -> list[str]:
    """The words that run ``batch``, one job at a time."""
    return ["--batch", str(batch), "--jobs", "1"]


def start_batch(
    batch: Path, service: Emulator, journal: Path, *extra: str
) -> tuple[subprocess.Popen[str], Lines]:
    """The batch in a session of its own (as a terminal starts it), one job at a time."""
    return start_prep(service, journal, *one_at_a_time(batch), *extra)


def held_at(
    point: str, service: Emulator, journal: Path, *args: str
) -> tuple[subprocess.Popen[str], Lines, Hold]:
    """``prep-and-retalk ARGS`` started as by `start_prep`, returned once its first request
    at ``point`` waits there, held by the service until the hold is released."""
    held = service.hold(point)
    process, err = start_prep(service, journal, *args)
    assert held.reached.wait(120), err.text()
    return process, err, held


def clip_batch(media: Any, folder: Path, count: int) -> Path:
    """A batch of ``count`` clips over the voice, each to its own out<n>.mp4."""
    return batch_of(
        folder, [f"{clip},{VOICE},,out{n}.mp4," for n, clip in enumerate(clips(media, folder, count))]
    )


def ctrl_c(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGINT)


def table_of(process: subprocess.Popen[str]) -> dict[str, list[str]]:
    assert process.stdout is not None
    rows = process.stdout.read().splitlines()
    assert rows and rows[0].split()[:2] == ["line", "status"], rows
    return {row.split()[0]: row.split() for row in rows[1:]}


def task_of_first_job(journal: Path) -> str:
    with Journal(journal) as opened:
        (job,) = opened.jobs()
    assert job.task_id is not None
    return job.task_id


def batch_stopped_once_paid(
    service: Emulator, media: Any, folder: Path, count: int
) -> tuple[subprocess.Popen[str], Lines, Hold, str]:
    """A batch of ``count`` clips, sent Ctrl-C once its first job is submitted (paid for),
    while the service holds that job's first look at its task: the batch, what it says,
    the hold (to release) and the task's id. Its journal is ``folder``/j.sqlite."""
    journal = folder / "j.sqlite"
    process, err, held = held_at("query", service, journal, *one_at_a_time(clip_batch(media, folder, count)))
    task = task_of_first_job(journal)
    ctrl_c(process)
    return process, err, held, task


@pytest.mark.parametrize("slow", [3.0], indirect=True)
def test_ctrl_c_sends_nothing_new_waits_for_the_paid_task_and_prints_the_table(
    slow: Emulator, media: Any, tmp_path: Path
) -> None:
    process, err, held, task = batch_stopped_once_paid(slow, media, tmp_path, 3)
    held.release()  # the task runs 3 s more: the batch has them to take the signal in
    assert process.wait(120) == 130
    assert submits(slow) == 1  # nothing after the signal
    table = table_of(process)
    said = err.text()
    assert f"waiting for the tasks already paid for: line 2 (task {task})" in said
    assert table["2"][1] == "done" and table["3"][1] == table["4"][1] == "stopped"
    assert (tmp_path / "out0.mp4").exists() and not (tmp_path / "out1.mp4").exists()
    assert "Traceback" not in said


@pytest.mark.parametrize("slow", [300.0], indirect=True)
def test_a_second_ctrl_c_stops_waiting_at_once_and_leaves_the_task_to_resume(
    slow: Emulator, media: Any, tmp_path: Path
) -> None:
    process, err, held, task = batch_stopped_once_paid(slow, media, tmp_path, 2)
    err.wait_for("waiting for the tasks already paid for", timeout=60)
    ctrl_c(process)
    held.release()
    assert process.wait(30) == 130  # the task has 300 s to go: not waited for
    table = table_of(process)
    assert table["2"][1] == "left" and task in " ".join(table["2"]) and "resume" in " ".join(table["2"])
    assert table["3"][1] == "stopped" and submits(slow) == 1
    assert f"`retalk resume` finishes line 2 (task {task})" in err.text()
    with Journal(tmp_path / "j.sqlite") as opened:
        (job,) = opened.unfinished()
    assert (job.state, job.task_id) == ("submitted", task)


@pytest.mark.parametrize("slow", [0.2], indirect=True)
def test_ctrl_c_during_check_and_fix_pays_for_nothing_and_leaves_nothing_to_resume(
    slow: Emulator, media: Any, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    process, err = start_batch(clip_batch(media, tmp_path, 2), slow, journal)
    err.wait_for(r"\[line 2\] out0\.mp4: check and fix")
    ctrl_c(process)
    assert process.wait(120) == 130
    assert submits(slow) == 0  # the job under way stopped before it paid
    table = table_of(process)
    assert table["2"][1] == table["3"][1] == "stopped" and "Traceback" not in err.text()
    with Journal(journal) as opened:
        assert opened.unfinished() == []


@pytest.mark.parametrize("slow", [0.2], indirect=True)
def test_ctrl_c_during_an_upload_stops_the_job_before_its_submit_and_closes_it(
    slow: Emulator, media: Any, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    batch = clip_batch(media, tmp_path, 2)
    # The first upload waits there: the job is past the fix.
    process, err, held = held_at("storage", slow, journal, *one_at_a_time(batch))
    ctrl_c(process)
    err.wait_for("interrupted: nothing more is sent")
    held.release()
    assert process.wait(120) == 130
    table = table_of(process)
    assert table["2"][1] == table["3"][1] == "stopped"
    assert submits(slow) == 0
    with Journal(journal) as opened:
        (job,) = opened.jobs()
        # Closed: `retalk resume` would otherwise submit, and pay for, it.
        assert job.state == "canceled" and opened.unfinished() == []


@pytest.mark.parametrize("slow", [0.5], indirect=True)
def test_ctrl_c_after_a_splits_first_part_is_paid_leaves_the_split_whole_for_resume(
    slow: Emulator, media: Any, tmp_path: Path
) -> None:
    # 130 s: two parts. Frames are numbers, not a face: that gate passed, as a user would.
    voice = media.write_audio(
        tmp_path / "long voice.wav", signal=media.voice_like(130.0, 44100), sample_rate=44100
    )
    video = media.write_video(
        tmp_path / "long.mp4",
        width=640,
        height=640,
        fps=25,
        duration=130.0,
        counter=True,
        gop=25,
        audio=False,
    )
    journal = tmp_path / "j.sqlite"
    held = slow.hold("submit")  # the first part's task is made (paid); its answer waits
    batch = batch_of(tmp_path, [f"{video},{voice},,dubbed.mp4,--split"])
    process, err = start_batch(batch, slow, journal, "--accept", "Face.NotFound")
    assert held.reached.wait(240), err.text()
    ctrl_c(process)
    err.wait_for("interrupted: nothing more is sent", timeout=60)
    held.release()
    assert process.wait(120) == 130
    table = table_of(process)
    said = err.text()
    # The paid part is named for resume, not called "nothing paid for".
    assert table["2"][1] == "left" and "resume" in " ".join(table["2"]), (table, said)
    assert "before anything was paid" not in " ".join(table["2"]) and submits(slow) == 1
    with Journal(journal) as opened:
        states = [job.state for job in reversed(opened.jobs())]
        assert "canceled" not in states and states[0] == "submitted", states
    # `retalk resume` sends the part left and joins the whole.
    command = [sys.executable, "-m", "retalk._cli.main", "resume", "--base-url", slow.base_url]
    resumed = subprocess.run(
        [*command, "--journal", str(journal)],
        cwd=ROOT, env={**os.environ, "DASHSCOPE_API_KEY": EMULATED_KEY}, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "joined into" in resumed.stdout and (tmp_path / "dubbed.mp4").exists()
    assert submits(slow) == 2


def single_run_stopped_at(point: str, service: Emulator, media: Any, folder: Path, within_s: float) -> str:
    """One clip's single (not batch) run, stopped by Ctrl-C while the service holds its
    first request at ``point``, then let go: what it said, once it ended (status 130)
    within ``within_s``. Its journal is ``folder``/j.sqlite."""
    (clip,) = clips(media, folder, 1)
    process, err, held = held_at(
        point, service, folder / "j.sqlite", str(clip), str(VOICE), "-o", str(folder / "out.mp4")
    )
    ctrl_c(process)
    held.release()
    assert process.wait(within_s) == 130
    return err.text()


@pytest.mark.parametrize("slow", [0.2], indirect=True)
def test_ctrl_c_in_a_single_run_during_its_upload_closes_the_job_so_resume_pays_nothing(
    slow: Emulator, media: Any, tmp_path: Path
) -> None:
    # The upload waits there: the job is journaled, not submitted.
    said = single_run_stopped_at("storage", slow, media, tmp_path, within_s=120)
    assert "before anything was paid for" in said and "closed" in said and "Traceback" not in said, said
    with Journal(tmp_path / "j.sqlite") as opened:
        (job,) = opened.jobs()
        assert job.state == "canceled" and opened.unfinished() == []
    assert submits(slow) == 0


@pytest.mark.parametrize("slow", [300.0], indirect=True)
def test_ctrl_c_in_a_single_run_after_its_submit_keeps_the_job_for_resume(
    slow: Emulator, media: Any, tmp_path: Path
) -> None:
    # Submitted: its first look at the task waits.
    said = single_run_stopped_at("query", slow, media, tmp_path, within_s=60)
    task = task_of_first_job(tmp_path / "j.sqlite")
    assert f"(task {task}) was submitted and paid for" in said and "retalk resume" in said, said
    with Journal(tmp_path / "j.sqlite") as opened:
        assert [j.state for j in opened.unfinished()] == ["submitted"]


@pytest.mark.parametrize("slow", [0.2], indirect=True)
def test_a_stopped_batch_keeps_a_split_whose_part_an_earlier_run_paid_for_resume(
    slow: Emulator, media: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 130 s: two parts. Frames are numbers, not a face: that gate passed, as a user would.
    voice = media.write_audio(
        tmp_path / "long voice.wav", signal=media.voice_like(130.0, 44100), sample_rate=44100
    )
    video = media.write_video(
        tmp_path / "long.mp4", width=640, height=640, fps=25, duration=130.0, counter=True, gop=25,
        audio=False,
    )  # fmt: skip
    jobs = read_batch(batch_of(tmp_path, [f"{video},{voice},,dubbed.mp4,--split"]), accept=("Face.NotFound",))
    journal = tmp_path / "j.sqlite"

    def stopped_at(words: str) -> BatchOutcome:
        """The batch run in this process, stopped (as by Ctrl-C) once a row says ``words``."""
        stop = threading.Event()

        def line(job: BatchJob, text: str) -> None:
            if words in text:
                stop.set()

        (outcome,) = run_batch(
            jobs, lambda: Client(EMULATED_KEY, base_url=slow.base_url), journal, stop=stop, on_line=line
        )
        return outcome

    # Stopped once the first part is submitted (paid), before the second is sent.
    assert stopped_at("part 2/2: queued").status == "left"
    with Journal(journal) as opened:
        assert [job.state for job in reversed(opened.jobs())] == ["submitted", "new"]
    # Run again and stopped again before the second part is sent: this run paid nothing,
    # the earlier one did. The part is kept for resume, not closed.
    again = stopped_at("part 1/2")
    assert again.status == "left" and "resume" in again.detail, again.detail
    with Journal(journal) as opened:
        assert "canceled" not in [job.state for job in opened.jobs()]
    assert submits(slow) == 1
    # `retalk resume` (in this process: its jobs are this process's) sends the rest and joins.
    monkeypatch.setenv("DASHSCOPE_API_KEY", EMULATED_KEY)
    assert retalk_main(["resume", "--base-url", slow.base_url, "--journal", str(journal)]) == 0
    assert (tmp_path / "dubbed.mp4").exists() and submits(slow) == 2
