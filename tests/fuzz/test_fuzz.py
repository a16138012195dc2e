"""The fuzzer, in CI: a short bounded run must find nothing, and the harness must catch
what it is there to catch (a crash, a hang).

The run's size and seed are ``PREFLIGHT_FUZZ_INPUTS`` (default 2000, about a minute and
a half on two busy cores) and ``PREFLIGHT_FUZZ_SEED`` (default 20240901, so that CI is
repeatable); failures are saved under pytest's temporary folder, named in the message.
The long run is ``python -m tests.fuzz.run --inputs 100000 --seed N`` (see run.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.run import Fuzzer

CI_INPUTS = int(os.environ.get("PREFLIGHT_FUZZ_INPUTS", "2000"))
CI_SEED = int(os.environ.get("PREFLIGHT_FUZZ_SEED", "20240901"))


@pytest.mark.heavy  # minutes on a busy machine: started first (tests/conftest.py)
def test_a_short_fuzz_run_finds_no_exception_crash_or_hang(tmp_path: Path) -> None:
    fuzzer = Fuzzer(seed=CI_SEED, out=tmp_path / "failures", bound=20.0, full_share=0.2, cli_every=500)
    summary = fuzzer.run(range(CI_INPUTS))
    print(summary.text())

    assert summary.inputs == CI_INPUTS
    assert not summary.failures, summary.text()
    assert summary.cli_runs >= 1 and summary.cli_files > CI_INPUTS // 2
    # The run reached the checks, not just the door: videos, voices and images alike.
    assert summary.by_code["InvalidFile.Openerror"] < CI_INPUTS * 0.8
    for code in ("InvalidFile.Resolution", "Face.TooSmall", "InvalidFile.Duration", "InvalidFile.Format"):
        assert summary.by_code[code] > 0, code


def test_a_crashing_worker_is_recorded_restarted_and_confirmed_by_the_cli(tmp_path: Path) -> None:
    """Input 3 "crashes" the worker (the harness's self-test): it is saved with its seed,
    run again (it crashes again), then the CLI reports it as InvalidFile.Openerror beside a
    seed file that is checked as usual; the inputs after it are checked by a new worker."""
    fuzzer = Fuzzer(
        seed=5, out=tmp_path / "failures", bound=20.0, full_share=0.0, cli_every=0, simulate={3: "crash"}
    )
    summary = fuzzer.run(range(6))

    assert summary.inputs == 6
    [crash] = summary.failures
    assert crash.kind == "crash" and crash.number == 3
    assert "the worker died (signal 11 SIGSEGV), reproducible" in crash.detail
    assert "the CLI reported it as InvalidFile.Openerror" in crash.detail
    assert crash.saved is not None and Path(crash.saved).read_bytes()
    assert '"seed": 5' in Path(crash.saved + ".json").read_text()
    [(name, message)] = summary.confirmed
    assert name == crash.name and "crashed on this file (signal 11 SIGSEGV)" in message
    assert summary.worker_starts == 3  # the first, the one that crashed again, the one after
    assert f"reproduce: python -m tests.fuzz.run --file {crash.saved} --mode fast" in summary.text()


def test_an_input_over_the_time_bound_is_recorded_and_its_worker_replaced(tmp_path: Path) -> None:
    fuzzer = Fuzzer(
        seed=5, out=tmp_path / "failures", bound=3.0, full_share=0.0, cli_every=0, simulate={1: "hang"}
    )
    summary = fuzzer.run(range(4))

    [timeout] = summary.failures
    assert timeout.kind == "timeout" and timeout.number == 1
    assert "still being checked after 3 s" in timeout.detail
    assert summary.inputs == 4 and summary.worker_starts == 2
