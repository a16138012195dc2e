"""The journal's promises: the same inputs are not paid twice, a job is submitted by one
process only, uploads are reused only while they live and only where they were made."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from retalk import Client
from retalk._exceptions import RetalkError
from retalk._jobs import continue_job
from retalk._journal import UPLOAD_TTL_S, DuplicateJob, Journal

API = "https://dashscope.example.com/api/v1"


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    video, audio = tmp_path / "talk.mp4", tmp_path / "voice.wav"
    video.write_bytes(b"video bytes")
    audio.write_bytes(b"audio bytes")
    return {"video": str(video), "audio": str(audio)}


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
