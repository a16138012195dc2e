"""Benchmark: the two wall times the emulator's tests bound, measured on this machine.

    python bench/emulator_timing.py [--rounds 5]

The tests (tests/retalk/test_emulator.py) bound these generously, so that a loaded machine
never fails them; the figures here say how far from those bounds a run really is:
- ``stop()`` with a task running (the test allows 20 s; the task would run 30 s), against
  ``stop()`` of an idle emulator;
- a storage POST while every API request is slowed by 6 s (the test allows under 6 s),
  against an API request under the same fault.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _figures import record

from retalk import Client
from retalk.emulator import Emulator, Faults

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "fixtures" / "sample" / "talking_head.mp4"
AUDIO = ROOT / "fixtures" / "sample" / "voice.wav"
SLOW_S = 6.0
KEY = "sk-bench"


def stop_times(root: Path, running: bool) -> float:
    emulator = Emulator(root, faults=Faults(submit_interval_s=0.0, task_seconds=30)).start()
    with Client(KEY, base_url=emulator.base_url) as client:
        if running:
            task = client.submit(client.upload(VIDEO), client.upload(AUDIO))
            while client.get(task.task_id).status != "RUNNING":
                time.sleep(0.03)
        began = time.monotonic()
        emulator.stop()
        return time.monotonic() - began


def slowed_times(root: Path) -> tuple[float, float]:
    """A storage POST and an API request, with every API request slowed by SLOW_S."""
    data = root.with_name(f"{root.name}-data.wav")
    data.write_bytes(b"data")
    with (
        Emulator(root, faults=Faults(submit_interval_s=0.0)) as emulator,
        Client(KEY, base_url=emulator.base_url, timeout=30) as client,
    ):
        client.upload(data)  # fetches the upload policy, before the API is slowed
        emulator.faults.slow_s = SLOW_S
        began = time.monotonic()
        client.upload(data)  # the policy is kept: only the storage POST
        storage = time.monotonic() - began
        began = time.monotonic()
        client.list(page_size=1)
        return storage, time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as scratch:
        root = Path(scratch)
        busy = statistics.median(stop_times(root / f"busy{i}", True) for i in range(args.rounds))
        idle = statistics.median(stop_times(root / f"idle{i}", False) for i in range(args.rounds))
        storage, api = slowed_times(root / "slow")
    print(f"stop() with a task running: {busy:.3f} s (idle: {idle:.3f} s; the test allows 20 s)")
    print(f"storage POST with the API slowed by {SLOW_S:g} s: {storage:.3f} s (an API request: {api:.2f} s)")
    record("emulator_timing", "emulator stop() with a task running", busy, "s", "stop() idle", idle,
           goal="the test allows 20 s")  # fmt: skip
    record("emulator_timing", f"storage POST, API slowed by {SLOW_S:g} s", storage, "s",
           "an API request under the same fault", api, goal=f"the test allows {SLOW_S:g} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
