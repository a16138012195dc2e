"""Where the result goes is settled before anything is paid for: `-o` must name a file in
an existing folder (not a folder, no trailing slash), or `prep-and-retalk` stops with exit 2
before checking, fixing or uploading. A task whose output became unusable after it was sent
is finished under a new name (`retalk resume --job N -o`, `retalk download -o`, or the same
command with a new `-o`), and the journal is then clean. `--emulator` runs are journaled in
the configured journal, so the same command run twice pays once."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import av
import pytest

from preflight import lock_exclusive
from preflight._fix.parts import plan_split, write_parts
from retalk._cli.main import main as retalk_main
from retalk._cli.prep import main as prep_main
from retalk._journal import Journal
from retalk._run.split_tasks import parts_folder, record_split
from retalk.emulator import Emulator
from tests.conftest import SAMPLE, make_fixtures

VIDEO, VOICE = str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav")


def run(command: Any, *args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = command([*args, "--format", "json"])
    return status, json.loads(out.getvalue()) if out.getvalue().strip() else {}, err.getvalue()


def jobs_in(journal: Path) -> list[tuple[int, str, str | None, str | None]]:
    """(id, state, output, error) of every job in the journal."""
    if not journal.exists():
        return []
    with contextlib.closing(sqlite3.connect(journal)) as db:
        try:
            return list(db.execute("SELECT id, state, output, error FROM jobs ORDER BY id"))
        except sqlite3.OperationalError:  # being made by the run
            return []


def is_video(path: Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.video)


@pytest.mark.parametrize("split", [[], ["--split"]], ids=["whole", "split"])
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["run", "dry-run"])
@pytest.mark.parametrize("how", ["a trailing slash", "an existing folder", "a file for a folder"])
def test_an_output_that_cannot_take_a_file_is_refused_before_any_work(
    how: str, split: list[str], dry_run: list[str], service: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "existing").mkdir()
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    output, said = {
        "a trailing slash": (f"{tmp_path}/newdir/", "ends with a slash"),
        "an existing folder": (str(tmp_path / "existing"), "is a folder"),
        "a file for a folder": (str(tmp_path / "notes.txt" / "out.mp4"), "is under"),
    }[how]
    journal = tmp_path / "j.sqlite"
    status, report, err = run(
        prep_main, VIDEO, VOICE, "-o", output, "--base-url", service.base_url, "--journal", str(journal),
        *split, *dry_run,
    )  # fmt: skip
    assert status == 2 and report == {}, err
    assert f"-o {output}: {said}" in err and "Traceback" not in err
    assert service.requests == [] and jobs_in(journal) == []
    # Nothing was written: no file named like the folder, no work folder.
    assert not (tmp_path / "newdir").exists() and (tmp_path / "notes.txt").is_file()
    assert list((tmp_path / "existing").iterdir()) == [] and list(tmp_path.glob("*.work")) == []


def test_batch_rows_whose_output_cannot_take_a_file_stop_the_batch_before_any_job(
    service: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    batch = tmp_path / "jobs.csv"
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    rows = [f"{VIDEO},{VOICE},,a.mp4,", f"{VIDEO},{VOICE},,results/,", f"{VIDEO},{VOICE},,notes.txt/b.mp4,"]
    batch.write_text("video,audio,ref,output,options\n" + "\n".join(rows) + "\n")
    status, report, err = run(
        prep_main,
        "--batch",
        str(batch),
        "--base-url",
        service.base_url,
        "--journal",
        str(tmp_path / "j.sqlite"),
    )
    assert status == 2 and report == {}, err
    assert f"{batch}:3: output column: {tmp_path / 'results'} is a folder" in err
    assert (
        f"{batch}:4: output column: {tmp_path / 'notes.txt' / 'b.mp4'} is under {tmp_path / 'notes.txt'}"
        in err
    )
    assert service.requests == [] and not (tmp_path / "a.mp4").exists()


def sent_then_blocked(service: Emulator, tmp_path: Path) -> tuple[Path, str, int]:
    """A job sent by `prep-and-retalk`, whose output a folder took while the task ran:
    (the journal, the task id, the job number). The run says how to finish it (exit 3)."""
    journal, output = tmp_path / "j.sqlite", tmp_path / "dubbed.mp4"
    held = service.hold("query")  # the first poll: the task is paid for, the job waits

    def make_a_folder_there() -> None:
        held.reached.wait(30)
        output.mkdir()
        held.release()

    helper = threading.Thread(target=make_a_folder_there)
    helper.start()
    status, _, err = run(
        prep_main, VIDEO, VOICE, "-o", str(output), "--base-url", service.base_url, "--journal", str(journal)
    )
    helper.join()
    [(number, state, _, error)] = jobs_in(journal)
    assert status == 3 and state == "submitted" and error is not None and "is a folder" in error
    said = " ".join(err.split())
    assert f"the output {output} is a folder" in said and "Traceback" not in said
    assert f"`retalk resume --job {number} -o NEW.mp4`" in said
    with contextlib.closing(sqlite3.connect(journal)) as db:
        (task_id,) = db.execute("SELECT task_id FROM jobs").fetchone()
    assert f"`retalk download {task_id} -o NEW.mp4`" in said
    return journal, task_id, number


def test_a_paid_job_whose_output_became_a_folder_is_finished_by_resume_with_a_new_output(
    service: Emulator, tmp_path: Path
) -> None:
    journal, _, number = sent_then_blocked(service, tmp_path)
    base = ["--base-url", service.base_url, "--journal", str(journal)]
    # A plain resume says it again (the task is not forgotten), it does not pay again.
    status, report, _ = run(retalk_main, "resume", *base)
    assert status == 1 and "is a folder" in report["failed"][0]["reason"]

    new = tmp_path / "dubbed-2.mp4"
    status, report, err = run(retalk_main, "resume", "--job", str(number), "-o", str(new), *base)
    assert status == 0 and report["finished"][0]["state"] == "downloaded", err
    assert is_video(new) and jobs_in(journal) == [(number, "downloaded", str(new), None)]
    status, report, _ = run(retalk_main, "resume", *base)
    assert status == 0 and report["finished"] == report["failed"] == []
    assert service.submissions == 1


def test_a_paid_job_whose_output_became_a_folder_is_finished_by_download(
    service: Emulator, tmp_path: Path
) -> None:
    journal, task_id, number = sent_then_blocked(service, tmp_path)
    base = ["--base-url", service.base_url, "--journal", str(journal)]
    new = tmp_path / "dubbed-2.mp4"
    status, report, err = run(retalk_main, "download", task_id, "-o", str(new), *base)
    assert status == 0 and report["job"]["state"] == "downloaded", err
    assert is_video(new) and jobs_in(journal) == [(number, "downloaded", str(new), None)]
    status, report, _ = run(retalk_main, "resume", *base)
    assert status == 0 and report["finished"] == report["failed"] == []


def test_resume_and_download_check_the_new_output_first(service: Emulator, tmp_path: Path) -> None:
    journal, task_id, number = sent_then_blocked(service, tmp_path)
    base = ["--base-url", service.base_url, "--journal", str(journal)]
    for command in (["resume", "--job", str(number), "-o"], ["download", task_id, "-o"]):
        status, _, err = run(retalk_main, *command, f"{tmp_path}/", *base)
        assert status == 2 and "ends with a slash" in err
    assert jobs_in(journal)[0][1] == "submitted"


def test_the_same_emulator_run_twice_pays_once_in_the_configured_journal(
    journal_of_the_test: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"
    first = run(prep_main, VIDEO, VOICE, "-o", str(output), "--emulator")
    written = output.read_bytes()
    second = run(prep_main, VIDEO, VOICE, "-o", str(output), "--emulator")
    assert first[0] == second[0] == 0, (first[2], second[2])
    # RETALK_JOURNAL is used: one job, its task reused by the second run.
    assert second[1]["task_id"] == first[1]["task_id"]
    assert [(state, out) for _, state, out, _ in jobs_in(journal_of_the_test)] == [
        ("downloaded", str(output))
    ]
    assert output.read_bytes() == written
    # The emulator's folder keeps no copy of a result its job has downloaded.
    results = journal_of_the_test.with_name("journal.sqlite.emulator") / "results"
    assert results.is_dir() and list(results.iterdir()) == []
    # Another output for the same inputs is no second payment either.
    status, _, err = run(prep_main, VIDEO, VOICE, "-o", str(tmp_path / "again.mp4"), "--emulator")
    assert status == 2 and "already submitted" in err and "--force" in err
    assert not (tmp_path / "again.mp4").exists()


def test_an_emulator_job_whose_output_became_a_folder_is_finished_by_the_same_command(
    journal_of_the_test: Path, tmp_path: Path
) -> None:
    journal = journal_of_the_test
    output = tmp_path / "out.mp4"

    def make_a_folder_there_once_submitted() -> None:
        # The emulator's task takes 0.5 s: the job is seen submitted well before its download.
        deadline = time.monotonic() + 30
        while not any(state == "submitted" for _, state, _, _ in jobs_in(journal)):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        output.mkdir()

    helper = threading.Thread(target=make_a_folder_there_once_submitted)
    helper.start()
    status, _, err = run(prep_main, VIDEO, VOICE, "-o", str(output), "--emulator")
    helper.join()
    said = " ".join(err.split())
    assert status == 3 and "is a folder" in said and "the same command again with -o NEW.mp4" in said
    # No emulator is there for `retalk resume` or `retalk download`: they are not offered.
    assert "retalk resume" not in said and "retalk download" not in said
    new = tmp_path / "new.mp4"
    status, report, err = run(prep_main, VIDEO, VOICE, "-o", str(new), "--emulator")
    assert status == 0 and report["ok"], err
    assert is_video(new) and [(s, o, e) for _, s, o, e in jobs_in(journal)] == [
        ("downloaded", str(new), None)
    ]
    state = json.loads((journal.with_name(journal.name + ".emulator") / "state.json").read_text())
    assert len(state["tasks"]) == 1  # the task sent first, not a second one


def test_a_split_whose_output_became_a_folder_is_joined_under_a_new_name_by_resume(
    service: Emulator, tmp_path: Path
) -> None:
    video = make_fixtures.write_video(
        tmp_path / "talk.mp4", width=640, height=640, duration=30.0, gop=25, audio=False
    )
    voice = make_fixtures.write_audio(tmp_path / "voice.wav", duration=30.0, sample_rate=44100)
    journal_path, output = tmp_path / "j.sqlite", tmp_path / "joined.mp4"
    with Journal(journal_path) as journal:
        plan = plan_split(video, voice, max_part_s=12)
        files = write_parts(video, voice, plan, parts_folder(str(tmp_path), "b" * 64), preset="ultrafast")
        split = record_split(
            journal, "b" * 64, str(output), plan, files, video=str(video), voice=str(voice), ref=None,
            params={}, base_url=service.base_url, preset="ultrafast", crf=30,
        )  # fmt: skip
    output.mkdir()  # made while the parts were away
    base = ["--base-url", service.base_url, "--journal", str(journal_path)]
    status, report, _ = run(retalk_main, "resume", *base)
    (blocked,) = report["not_joined"]
    assert status == 1 and "is a folder" in blocked["reason"]
    assert f"`retalk resume --split {split.id} -o NEW.mp4`" in blocked["reason"]
    paid = service.submissions

    new = tmp_path / "joined-2.mp4"
    status, report, err = run(retalk_main, "resume", "--split", str(split.id), "-o", str(new), *base)
    assert status == 0 and report["joined"] == [{"split": split.id, "output": str(new)}], err
    assert is_video(new) and service.submissions == paid == len(plan.parts)
    status, report, _ = run(retalk_main, "resume", *base)
    assert status == 0 and report["joined"] == report["not_joined"] == []


def test_the_note_about_a_busy_emulator_names_its_folder_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "j\x1b[31m.sqlite"  # a name with a terminal escape in it
    monkeypatch.setenv("RETALK_JOURNAL", str(journal))
    root = journal.with_name(journal.name + ".emulator")
    root.mkdir()
    held = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert lock_exclusive(held, wait=False)  # another --emulator run holds it
        status, _, err = run(prep_main, VIDEO, VOICE, "-o", str(tmp_path / "out.mp4"), "--emulator")
    finally:
        os.close(held)
    assert status == 0, err
    assert "another --emulator run is using" in err and "\x1b" not in err, repr(err)
