"""A job sent in parts, as the journal sees it: a crash while the split was being written
down, a later job for the same output, part files changed behind its back, and a part
the service failed. In none of them is a part paid twice or a wrong result joined."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from preflight._fix.parts import SplitPlan, plan_split, write_parts
from retalk import Client, PollPolicy, Task
from retalk._cli.main import EXIT_REFUSED, _status_for
from retalk._journal import Journal
from retalk._run.job import Events
from retalk._run.split_tasks import PartFailed, finish_splits, parts_folder, record_split, send_parts
from retalk.emulator import Emulator
from tests.conftest import make_fixtures
from tests.retalk.conftest import emulated_service

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its 30 s pair) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_split_journal")

KEY = "sk-emulated-split-journal"
SECONDS = 30.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pair")
    video = make_fixtures.write_video(
        folder / "talk.mp4", width=640, height=640, duration=SECONDS, gop=25, audio=False
    )
    audio = make_fixtures.write_audio(folder / "voice.wav", duration=SECONDS, sample_rate=44100)
    return video, audio


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[Emulator]:
    with emulated_service(tmp_path, KEY, task_seconds=0.05) as running:
        yield running


def client_for(service: Emulator) -> Client:
    return Client(KEY, base_url=service.base_url, poll=PollPolicy(steps=(0.05,), cap_s=0.1, jitter=0.0))


def recorded(
    journal: Journal,
    service: Emulator,
    pair: tuple[Path, Path],
    work: Path,
    fingerprint: str,
    output: Path,
    max_part_s: float = 12,
) -> tuple[int, SplitPlan]:
    """A split of the pair into parts of at most 12 s, written down as prep-and-retalk does."""
    video, audio = pair
    plan = plan_split(video, audio, max_part_s=max_part_s)
    files = write_parts(video, audio, plan, parts_folder(str(work), fingerprint), preset="ultrafast")
    split = record_split(
        journal, fingerprint, str(output), plan, files, video=str(video), voice=str(audio), ref=None,
        params={}, base_url=service.base_url, preset="ultrafast", crf=30,
    )  # fmt: skip
    return split.id, plan


def test_a_crash_while_the_split_was_written_down_is_finished_by_resume(
    service: Emulator, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal, client_for(service) as client:
        split_id, plan = recorded(journal, service, pair, tmp_path, "a" * 64, tmp_path / "out.mp4")
        # As if the process died before the last part's job was written down.
        split = journal.split(split_id)
        document = dict(split.plan)
        document["parts"] = [dict(p) for p in split.plan["parts"]]
        document["parts"][-1]["job"] = None
        journal.update_split(split_id, plan=document)

        (done,) = finish_splits(client, journal)

    assert done.id == split_id and done.state == "joined" and (tmp_path / "out.mp4").exists()
    assert service.submissions == len(plan.parts) >= 3


def test_a_later_job_for_the_same_output_supersedes_the_earlier_split(
    service: Emulator, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"
    with Journal(tmp_path / "j.sqlite") as journal, client_for(service) as client:
        first, _ = recorded(journal, service, pair, tmp_path, "a" * 64, output)
        second, plan = recorded(journal, service, pair, tmp_path, "b" * 64, output)
        assert journal.split(first).state == "failed"
        assert "superseded" in (journal.split(first).error or "")

        joined = finish_splits(client, journal)

    assert [s.id for s in joined] == [second]
    assert service.submissions == len(plan.parts)


def test_part_files_changed_behind_the_splits_back_are_neither_sent_nor_joined(
    service: Emulator, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal, client_for(service) as client:
        split_id, _ = recorded(journal, service, pair, tmp_path, "a" * 64, tmp_path / "out.mp4")
        part = Path(journal.split(split_id).plan["parts"][1]["audio"])
        part.write_bytes(part.read_bytes()[:-100])
        problems: list[str] = []

        joined = finish_splits(client, journal, on_error=lambda split, exc: problems.append(str(exc)))

        assert joined == [] and service.submissions == 0
        assert journal.split(split_id).state == "failed"
    assert "replaced" in problems[0] and not (tmp_path / "out.mp4").exists()


def test_a_part_the_service_fails_fails_the_split_and_resume_sends_nothing_again(
    service: Emulator, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    service.faults.fail_tasks = True
    with Journal(tmp_path / "j.sqlite") as journal, client_for(service) as client:
        split_id, _ = recorded(journal, service, pair, tmp_path, "a" * 64, tmp_path / "out.mp4")
        with pytest.raises(PartFailed, match="part 1"):
            send_parts(client, journal, journal.split(split_id))
        sent = service.submissions
        assert sent == 2  # the first part, and the next one queued behind it
        assert journal.split(split_id).state == "failed"

        assert finish_splits(client, journal) == []

    assert service.submissions == sent


def test_a_part_answered_with_a_bad_task_id_fails_the_split_and_nothing_more_is_paid(
    service: Emulator, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    # The submit reached the service (and may be billed) but its answer carries no usable
    # task id: the part is kept as protocol-error, and the split ends there. Sending the
    # other parts would pay for a split that can never be joined.
    service.faults.submit_task_id = "../../evil"
    with Journal(tmp_path / "j.sqlite") as journal, client_for(service) as client:
        split_id, plan = recorded(journal, service, pair, tmp_path, "a" * 64, tmp_path / "out.mp4")
        assert len(plan.parts) >= 2
        with pytest.raises(PartFailed, match="part 1") as failed:
            send_parts(client, journal, journal.split(split_id))
        assert "retalk list" in str(failed.value) and "--force" in str(failed.value)
        assert journal.split(split_id).state == "failed"
        assert service.submissions == 1
        # The service answers properly again: resume still sends nothing by itself.
        service.faults.submit_task_id = None
        assert finish_splits(client, journal, on_error=lambda split, exc: None) == []
        with pytest.raises(PartFailed, match="protocol-error"):
            send_parts(client, journal, journal.split(split_id))
        states = [journal.job(part["job"]).state for part in journal.split(split_id).plan["parts"]]
    assert service.submissions == 1 and states[0] == "protocol-error"
    assert "downloaded" not in states and not (tmp_path / "out.mp4").exists()


def test_a_part_the_user_forgot_ends_the_split_instead_of_counting_as_done(
    service: Emulator, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    # `retalk forget` on a part stuck in UNKNOWN: it is no result, so the split cannot be
    # joined and the next parts are not sent.
    with Journal(tmp_path / "j.sqlite") as journal, client_for(service) as client:
        split_id, _ = recorded(journal, service, pair, tmp_path, "a" * 64, tmp_path / "out.mp4")
        first = journal.split(split_id).plan["parts"][0]["job"]
        journal.forget(first)
        told: list[str] = []
        with pytest.raises(PartFailed, match="forgotten"):
            send_parts(
                client, journal, journal.split(split_id),
                on_part=lambda number, count, text: told.append(f"{number}: {text}"),
            )  # fmt: skip
    assert service.submissions == 0 and not any("done" in line for line in told), told


def test_a_part_whose_result_expired_fails_the_split_and_asks_for_force(
    service: Emulator, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    aged: list[str] = []

    def age_the_first_result(task: Task, waited: float) -> None:
        # Part 1's task has just succeeded: make it look as if it ended 25 h ago, so that its
        # result has expired for real (its URL answers 403, its end time is a day old).
        if task.status == "SUCCEEDED" and not aged:
            with service.state.lock:
                ended = service.state.tasks[task.task_id].ended
                assert ended is not None
                service.state.tasks[task.task_id].ended = ended - timedelta(hours=25)
            aged.append(task.task_id)

    told: list[str] = []
    with Journal(tmp_path / "j.sqlite") as journal, client_for(service) as client:
        split_id, plan = recorded(journal, service, pair, tmp_path, "a" * 64, tmp_path / "out.mp4", 20)
        assert len(plan.parts) == 2
        with pytest.raises(PartFailed, match="part 1") as failed:
            send_parts(
                client, journal, journal.split(split_id), events=Events(on_status=age_the_first_result),
                on_part=lambda number, count, text: told.append(f"{number}: {text}"),
            )  # fmt: skip
        assert "expired" in str(failed.value) or "can no longer be downloaded" in str(failed.value)
        assert "--force" in str(failed.value) and _status_for(failed.value) == EXIT_REFUSED
        assert not any("done" in line for line in told), told
        assert journal.split(split_id).state == "failed"
        sent = service.submissions
        assert sent == 2  # the first part, and the next one queued behind it

        # Nothing is sent again, nothing joined: resume leaves the failed split alone.
        assert finish_splits(client, journal) == []
        # The same split run again meets the expired part first: failed again, not "done".
        with pytest.raises(PartFailed, match="expired"):
            send_parts(client, journal, journal.split(split_id))
    assert aged and service.submissions == sent and not (tmp_path / "out.mp4").exists()
