"""`prep-and-retalk` never writes its result over a file it reads: an output that is the
video, the voice, the reference image (by any spelling, a symbolic or a hard link), the
journal, or in a batch any job's input, is a usage error (exit 2) naming both paths before
anything is uploaded, submitted or journaled. A link planted at the output's name is
replaced by the result, never followed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import av
import pytest

from retalk._cli.main import main as retalk_main
from retalk._cli.prep import main
from retalk.emulator import Emulator
from tests.conftest import SAMPLE

#: A voice other than the sample's: other inputs, another job.
ANOTHER_VOICE = SAMPLE.parent / "tts" / "espeak_16k.wav"


def copy_of(source: Path, to: Path) -> Path:
    """``source``'s bytes written at ``to`` (a file of its own, not a link): ``to``."""
    to.write_bytes(source.read_bytes())
    return to


def prep(service: Emulator, journal: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*args, "--base-url", service.base_url, "--journal", str(journal), "--format", "json"])
    return status, json.loads(out.getvalue()) if out.getvalue() else {}, err.getvalue()


def pair(inputs: dict[str, Path]) -> tuple[str, str]:
    """The video and the voice, as the command line names them."""
    return str(inputs["video"]), str(inputs["audio"])


def journaled(journal: Path) -> int:
    if not journal.exists():
        return 0
    with contextlib.closing(sqlite3.connect(journal)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables & {"jobs", "splits"})


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Copies of the sample job in a folder of their own (the tests link to them)."""
    folder = tmp_path / "in"
    folder.mkdir()
    files = {"video": "talking_head.mp4", "audio": "voice.wav", "ref": "face.jpg"}
    copies = {role: folder / name for role, name in files.items()}
    for role, name in files.items():
        copy_of(SAMPLE / name, copies[role])
    return copies


def output_spelled(how: str, inputs: dict[str, Path], tmp_path: Path) -> tuple[str, str]:
    """(the output to give, the role of the input it is)."""
    if how == "the same path":
        return str(inputs["video"]), "video"
    if how == "another spelling":
        return f"{inputs['audio'].parent}/../in/./{inputs['audio'].name}", "audio"
    if how == "a symbolic link":
        link = tmp_path / "result.mp4"
        link.symlink_to(inputs["video"])
        return str(link), "video"
    link = tmp_path / "result.jpg"
    os.link(inputs["ref"], link)
    return str(link), "ref"


@pytest.mark.parametrize("how", ["the same path", "another spelling", "a symbolic link", "a hard link"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
def test_an_output_that_is_an_input_is_refused_before_anything_is_sent(
    how: str, split: bool, service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    output, role = output_spelled(how, inputs, tmp_path)
    before = {r: p.read_bytes() for r, p in inputs.items()}
    journal = tmp_path / "j.sqlite"
    extra = ["--split"] if split else []
    status, report, err = prep(
        service, journal, *pair(inputs), "--ref", str(inputs["ref"]), "-o", output, *extra
    )
    assert status == 2 and report == {}
    assert output in err and str(inputs[role]) in err and "Traceback" not in err
    assert service.requests == [] and service.submissions == 0 and journaled(journal) == 0
    assert {r: p.read_bytes() for r, p in inputs.items()} == before


def test_an_output_that_is_the_journal_is_refused(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    status, _, err = prep(service, journal, *pair(inputs), "-o", str(journal))
    assert status == 2 and f"the journal {journal}" in err
    assert service.requests == [] and journaled(journal) == 0


def test_a_link_planted_at_the_outputs_name_is_replaced_not_followed(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    victim = tmp_path / "notes.txt"
    victim.write_text("not to be touched")
    output = tmp_path / "dubbed.mp4"
    output.symlink_to(victim)
    args = (*pair(inputs), "-o", str(output))
    # Not this run's file: refused, until --overwrite says it is meant.
    status, report, err = prep(service, tmp_path / "j.sqlite", *args)
    assert status == 2 and "--overwrite" in err and output.is_symlink()
    status, report, err = prep(service, tmp_path / "j.sqlite", *args, "--overwrite")
    assert status == 0 and report["ok"], err
    assert victim.read_text() == "not to be touched"
    assert not output.is_symlink()
    with av.open(str(output)) as container:
        assert container.streams.video


def batch_file(tmp_path: Path, rows: list[str]) -> Path:
    batch = tmp_path / "jobs.csv"
    batch.write_text("video,audio,ref,output,options\n" + "\n".join(rows) + "\n")
    return batch


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_a_batch_row_whose_output_is_its_own_input_is_refused_not_skipped(
    force: list[str], service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    video, audio = inputs["video"], inputs["audio"]
    other = copy_of(video, tmp_path / "other.mp4")
    batch = batch_file(tmp_path, [f"{other},{audio},,{tmp_path / 'fine.mp4'},", f"{video},{audio},,{video},"])
    before = video.read_bytes()
    status, report, err = prep(service, tmp_path / "j.sqlite", "--batch", str(batch), *force)
    assert status == 2 and report == {}
    assert f"{batch}:3" in err and err.count(str(video)) == 2
    assert service.requests == [] and journaled(tmp_path / "j.sqlite") == 0
    assert video.read_bytes() == before and not (tmp_path / "fine.mp4").exists()


def test_a_batch_row_may_not_write_over_another_rows_input(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    video, audio = inputs["video"], inputs["audio"]
    second = copy_of(video, tmp_path / "second.mp4")
    # Line 2 would write its result where line 3 reads its video.
    batch = batch_file(tmp_path, [f"{video},{audio},,{second},", f"{second},{audio},,{tmp_path / 'b.mp4'},"])
    status, _, err = prep(service, tmp_path / "j.sqlite", "--batch", str(batch))
    assert status == 2 and f"{batch}:2" in err and "line 3" in err and str(second) in err
    assert service.requests == []


def test_retalk_submit_refuses_an_output_that_is_its_video_too(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, audio = inputs["video"], inputs["audio"]
    before = video.read_bytes()
    status = retalk_main(
        ["submit", str(video), str(audio), "-o", str(video), "--base-url", service.base_url,
         "--journal", str(tmp_path / "j.sqlite")]
    )  # fmt: skip
    assert status == 2 and f"the output {video} is the video {video}" in capsys.readouterr().err
    assert service.requests == [] and video.read_bytes() == before


def test_a_batch_with_a_damaged_journal_stops_before_any_job_with_what_to_do(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(b"this is not a database, whatever its name says\n" * 100)
    before = journal.read_bytes()
    batch = batch_file(tmp_path, [f"{inputs['video']},{inputs['audio']},,{tmp_path / 'a.mp4'},"])

    status, report, err = prep(service, journal, "--batch", str(batch))

    # Said once, as the usage error it is (not every job "failed" with it, exit 3).
    assert status == 2 and report == {}, err
    assert err.count(f"the journal {journal} is damaged") == 1 and "move it aside" in err
    assert service.requests == [] and journal.read_bytes() == before


def test_a_batch_row_whose_output_is_the_journal_stops_the_batch_before_any_job(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    batch = batch_file(
        tmp_path,
        [
            f"{inputs['video']},{inputs['audio']},,{tmp_path / 'a.mp4'},",
            f"{inputs['video']},{inputs['audio']},,{journal},",
        ],
    )

    status, report, err = prep(service, journal, "--batch", str(batch))

    assert status == 2 and report == {}, err
    assert "line 3" in err and f"is the journal {journal}" in " ".join(err.split())
    assert service.requests == [] and journaled(journal) == 0


def retalk(service: Emulator, journal: Path, *args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = retalk_main([*args, "--base-url", service.base_url, "--journal", str(journal)])
    return status, err.getvalue()


def submitted(service: Emulator, journal: Path, inputs: dict[str, Path], output: Path) -> None:
    """``retalk submit`` of the sample pair to ``output``, done and downloaded."""
    status, err = retalk(service, journal, "submit", *pair(inputs), "-o", str(output))
    assert status == 0, err


def test_retalk_download_never_writes_over_the_journal_or_the_jobs_inputs(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    submitted(service, journal, inputs, tmp_path / "r.mp4")
    kept = journal.read_bytes(), inputs["video"].read_bytes()
    asked = len(service.requests)
    for output, role in ((journal, "journal"), (inputs["video"], "video")):
        status, err = retalk(service, journal, "download", "job:1", "-o", str(output))
        assert status == 2 and f"the {role} {output}" in err and "Traceback" not in err, err
    assert (journal.read_bytes(), inputs["video"].read_bytes()) == kept
    assert len(service.requests) == asked  # refused before any request


NOTES = "my notes"


def users_notes(path: Path) -> Path:
    """A file of the user's at ``path``, which no run wrote and no journal knows."""
    path.write_text(NOTES)
    return path


def test_a_file_the_run_did_not_write_is_not_replaced_without_overwrite(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    precious = users_notes(tmp_path / "precious.txt")
    status, report, err = prep(service, journal, *pair(inputs), "-o", str(precious))
    assert status == 2 and report == {} and str(precious) in err and "--overwrite" in err, err
    assert precious.read_text() == NOTES
    assert service.requests == [] and journaled(journal) == 0
    # Said, it is meant: replaced by the result.
    status, report, err = prep(service, journal, *pair(inputs), "-o", str(precious), "--overwrite")
    assert status == 0 and report["ok"], err
    with av.open(str(precious)) as container:
        assert container.streams.video
    # The same command again finds its own result there: no refusal, nothing paid again.
    status, report, err = prep(service, journal, *pair(inputs), "-o", str(precious))
    assert status == 0 and report["ok"] and service.submissions == 1, err


def test_retalk_download_submit_and_resume_do_not_replace_a_file_the_journal_does_not_know(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    precious = users_notes(tmp_path / "precious.mp4")
    status, err = retalk(service, journal, "submit", *pair(inputs), "-o", str(precious))
    assert status == 2 and "--overwrite" in err and service.submissions == 0, err
    status, err = retalk(service, journal, "submit", *pair(inputs), "--no-wait")
    assert status == 0, err
    status, err = retalk(service, journal, "resume", "--job", "1", "-o", str(precious))
    assert status == 2 and "--overwrite" in err, err
    status, err = retalk(service, journal, "download", "job:1", "-o", str(precious))
    assert status == 2 and "--overwrite" in err, err
    assert precious.read_text() == NOTES
    assert retalk(service, journal, "wait", "job:1")[0] == 0
    status, err = retalk(service, journal, "download", "job:1", "-o", str(precious), "--overwrite")
    assert status == 0 and precious.stat().st_size > 100, err
    # Now a result this journal knows: written there again without --overwrite.
    status, err = retalk(service, journal, "download", "job:1", "-o", str(precious))
    assert status == 0, err


def test_a_forced_batch_row_over_a_file_the_journal_does_not_know_is_refused_until_overwrite(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    """--force sends again, it does not make a user's file ours: the row is refused (the
    row as given cannot be done, not a service failure), and the batch's own --overwrite
    (not only the row's options cell) says the file may go."""
    journal = tmp_path / "j.sqlite"
    kept = tmp_path / "keep.mp4"
    kept.write_text("keep")
    batch = batch_file(tmp_path, [f"{inputs['video']},{inputs['audio']},,{kept},"])
    status, report, err = prep(service, journal, "--batch", str(batch), "--force")
    assert status == 1, err
    assert [j["status"] for j in report["jobs"]] == ["refused"] and "--overwrite" in report["jobs"][0][
        "detail"
    ]
    assert kept.read_text() == "keep" and service.submissions == 0
    status, report, err = prep(service, journal, "--batch", str(batch), "--force", "--overwrite")
    assert status == 0 and [j["status"] for j in report["jobs"]] == ["done"], err
    with av.open(str(kept)) as container:
        assert container.streams.video and service.submissions == 1


def test_a_forced_batch_remakes_its_own_result_when_an_input_changed(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    """With or without --force, a result this journal made from other inputs is the batch's
    own to make again: --force must not turn it into a stranger's file."""
    journal = tmp_path / "j.sqlite"
    output = tmp_path / "out.mp4"
    batch = batch_file(tmp_path, [f"{inputs['video']},{inputs['audio']},,{output},"])
    status, report, err = prep(service, journal, "--batch", str(batch))
    assert status == 0 and [j["status"] for j in report["jobs"]] == ["done"], err
    # Another voice under the same name: a new job, and its result replaces the old one.
    copy_of(ANOTHER_VOICE, inputs["audio"])
    status, report, err = prep(service, journal, "--batch", str(batch), "--force")
    assert status == 0 and [j["status"] for j in report["jobs"]] == ["done"], err
    assert service.submissions == 2


def test_downloading_a_result_url_leaves_a_journal_that_does_not_exist_uncreated(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    submitted(service, journal, inputs, tmp_path / "r.mp4")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = retalk_main(
            ["status", "job:1", "--base-url", service.base_url, "--journal", str(journal), "--format", "json"]
        )
    url = json.loads(out.getvalue())["video_url"]
    elsewhere = tmp_path / "never" / "made.sqlite"
    status, err = retalk(service, elsewhere, "download", url, "-o", str(tmp_path / "again.mp4"))
    assert status == 0 and (tmp_path / "again.mp4").stat().st_size > 0, err
    assert not elsewhere.exists() and not elsewhere.parent.exists()


def test_retalk_download_does_not_replace_another_jobs_result(
    service: Emulator, inputs: dict[str, Path], tmp_path: Path
) -> None:
    """Another job's result was paid for too: only a task's own result is replaced by it."""
    journal = tmp_path / "j.sqlite"
    first = tmp_path / "first.mp4"
    submitted(service, journal, inputs, first)
    kept = first.read_bytes()
    voice = copy_of(ANOTHER_VOICE, tmp_path / "other voice.wav")
    status, err = retalk(service, journal, "submit", str(inputs["video"]), str(voice), "--no-wait")
    assert status == 0 and retalk(service, journal, "wait", "job:2")[0] == 0, err
    for command in (["download", "job:2"], ["resume", "--job", "2"]):
        status, err = retalk(service, journal, *command, "-o", str(first))
        assert status == 2 and "--overwrite" in err, err
        assert first.read_bytes() == kept
    # Its own result, downloaded again to the same name: no refusal.
    status, err = retalk(service, journal, "download", "job:1", "-o", str(first))
    assert status == 0 and first.read_bytes() == kept, err
