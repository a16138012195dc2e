"""The ``retalk`` commands as a user types them against the emulated service: the help
names every option and the exit statuses, a job number of the journal works where a task
id does, bad list options stop before the service is asked, a task the service does not
know is no success, and a pipe gets whole lines."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from retalk._cli import main as retalk_main
from retalk._cli import prep
from retalk._journal import Journal
from retalk.emulator import Emulator
from tests.conftest import SAMPLE


@pytest.fixture()
def retalk(
    service: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):  # type: ignore[no-untyped-def]
    """``retalk ARGS`` in this process, the emulated service and a journal of its own in the
    environment: its exit status, stdout and stderr."""
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", service.base_url)
    monkeypatch.setenv("RETALK_JOURNAL", str(tmp_path / "journal.sqlite"))

    def run(*args: str) -> tuple[int, str, str]:
        status = retalk_main.main(list(args))
        out, err = capsys.readouterr()
        return status, out, err

    return run


def submitted(retalk, tmp_path: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    status, out, err = retalk(
        "submit", str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"),
        "-o", str(tmp_path / "r.mp4"), "--format", "json",
    )  # fmt: skip
    assert status == 0, err
    job: dict[str, object] = json.loads(out)
    return job


def options_without_help(parser: argparse.ArgumentParser, name: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                missing += options_without_help(sub, f"{name} {command}")
        elif not action.help:
            missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_both_helps_say_every_exit_status_and_every_option_what_it_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for main in (retalk_main.main, prep.main):
        assert main(["--help"]) == 0
        shown = capsys.readouterr().out
        assert "exit status" in shown
        for status in ("0 ", "1 ", "2 ", "3 ", "130 "):
            assert re.search(rf"^\s+{status}", shown, re.MULTILINE), (status, shown)
    assert options_without_help(retalk_main.build_parser(), "retalk") == []
    assert options_without_help(prep.build_parser(), "prep-and-retalk") == []


def test_extend_video_is_explained_the_same_true_way_everywhere() -> None:
    def extend_help(parser: argparse.ArgumentParser) -> str:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parser = action.choices["submit"]
                break
        return next(a.help or "" for a in parser._actions if "--extend-video" in a.option_strings)

    one, other = extend_help(retalk_main.build_parser()), extend_help(prep.build_parser())
    assert one == other
    # The API page: the video is extended when the voice is longer, reversed then forward.
    assert "longer" in one and "backwards" in one


def test_a_task_the_service_does_not_know_is_no_success_for_status_as_for_wait(retalk) -> None:  # type: ignore[no-untyped-def]
    status, out, err = retalk("status", "no-such-task")
    waited, _, _ = retalk("wait", "no-such-task", "--timeout", "5")
    assert "UNKNOWN" in out and "UNKNOWN" in err
    assert status == waited == 3


def test_the_job_numbers_retalk_prints_are_taken_where_a_task_id_is(retalk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job = submitted(retalk, tmp_path)
    status, out, _ = retalk("status", f"job:{job['job']}", "--format", "json")
    assert status == 0 and json.loads(out)["task_id"] == job["task_id"]
    status, out, _ = retalk("wait", f"job:{job['job']}", "--format", "json")
    assert status == 0 and json.loads(out)["status"] == "SUCCEEDED"
    again = tmp_path / "again.mp4"
    status, _, err = retalk("download", f"job:{job['job']}", "-o", str(again))
    assert status == 0 and again.stat().st_size > 0, err
    status, _, err = retalk("forget", f"job:{job['job']}")  # the number taken; the job is done
    assert status == 2 and f"job {job['job']} is downloaded, not unfinished" in err
    status, _, err = retalk("status", "job:99")
    assert status == 2 and "no job 99" in err
    status, _, err = retalk("status", "job:x")
    assert status == 2 and "job:8" in err


def test_list_takes_a_documented_status_in_any_case_and_a_page_size_the_service_takes(
    retalk, service: Emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    job = submitted(retalk, tmp_path)
    status, out, _ = retalk("list", "--status", "succeeded", "--format", "json")
    assert status == 0 and [t["task_id"] for t in json.loads(out)] == [job["task_id"]]
    asked = len(service.requests)
    for bad in (("--status", "FOO"), ("--page-size", "0"), ("--page-size", "101")):
        status, out, err = retalk("list", *bad)
        assert status == 2 and out == "" and bad[1] in err, (bad, err)
    assert len(service.requests) == asked  # none reached the service


@pytest.mark.parametrize("threshold", ["119", "201"])
def test_a_face_threshold_the_service_refuses_is_a_usage_error_before_anything_is_sent(
    retalk, service: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], threshold: str
) -> None:  # type: ignore[no-untyped-def]
    inputs = (str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"), "-o", str(tmp_path / "r.mp4"))
    status, _, err = retalk("submit", *inputs, "--face-threshold", threshold)
    assert status == 2 and f"--face-threshold {threshold}: must be 120-200" in err
    status = prep.main([*inputs, "--base-url", service.base_url, "--face-threshold", threshold])
    assert status == 2 and f"--face-threshold {threshold}: must be 120-200" in capsys.readouterr().err
    assert service.requests == []


def test_without_a_key_the_message_offers_what_exists(retalk, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    status, _, err = retalk("list")
    assert status == 2 and "DASHSCOPE_API_KEY" in err and "--emulator" in err
    assert "pass one" not in err


def test_resume_with_nothing_to_resume_says_so_without_asking_for_a_key(
    retalk, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    status, out, err = retalk("resume")
    assert (status, out.strip(), err) == (0, "nothing to resume", "")


def test_a_listing_written_to_a_pipe_keeps_each_task_on_one_line(retalk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job = submitted(retalk, tmp_path)
    status, out, _ = retalk("list")
    lines = out.splitlines()
    assert status == 0 and len(lines) == 1, out
    assert lines[0].startswith(str(job["task_id"])) and "http" in lines[0] and len(lines[0]) > 80


def test_resume_of_a_job_or_split_the_journal_does_not_have_is_a_usage_error(retalk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for which in ("--job", "--split"):
        status, _, err = retalk("resume", which, "99", "-o", str(tmp_path / "x.mp4"))
        assert status == 2 and "99" in err and "Traceback" not in err, (which, err)


def test_resume_with_only_an_emulator_job_says_what_finishes_it_without_asking_for_a_key(
    retalk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.start(
            {"video": str(SAMPLE / "talking_head.mp4"), "audio": str(SAMPLE / "voice.wav")},
            {},
            str(tmp_path / "r.mp4"),
            base_url="http://127.0.0.1:9/api/v1",
        )
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "https://dashscope.aliyuncs.com/api/v1")
    status, out, err = retalk("resume")
    assert status == 0 and err == "", err
    assert out.splitlines() == [
        "nothing to resume",
        "1 emulator job(s): run the same prep-and-retalk --emulator command to finish them",
    ]


def test_resume_with_service_work_still_names_the_emulator_jobs_it_leaves(
    retalk, service: Emulator, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    status, out, err = retalk(
        "submit", str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav"), "--no-wait",
        "-o", str(tmp_path / "result.mp4"),
    )  # fmt: skip
    assert status == 0, err
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.start(
            {"video": str(SAMPLE / "talking_head.mp4"), "audio": str(SAMPLE / "face.jpg")},
            {},
            str(tmp_path / "r.mp4"),
            base_url="http://127.0.0.1:9/api/v1",
        )
    status, out, err = retalk("resume", "--format", "json")
    assert status == 0, err
    document = json.loads(out)
    assert len(document["finished"]) == 1 and (tmp_path / "result.mp4").stat().st_size > 0
    assert document["elsewhere"] == [
        "1 emulator job(s): run the same prep-and-retalk --emulator command to finish them"
    ]


def test_emulator_with_a_journal_under_a_file_is_a_clear_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    monkeypatch.setenv("RETALK_JOURNAL", str(tmp_path / "afile" / "journal.sqlite"))
    video, voice = str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav")
    status = prep.main([video, voice, "-o", str(tmp_path / "r.mp4"), "--emulator"])
    err = capsys.readouterr().err
    assert status == 2 and "internal error" not in err and "--journal" in err, err
    assert str(tmp_path / "afile") in err
