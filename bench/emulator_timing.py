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
from typing import Any

import httpx
from _figures import record

from retalk.emulator import Emulator, Faults

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "fixtures" / "sample" / "talking_head.mp4"
AUDIO = ROOT / "fixtures" / "sample" / "voice.wav"
SLOW_S = 6.0


def _policy(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/uploads", params={"action": "getPolicy", "model": "videoretalk"})
    answer.raise_for_status()
    data: dict[str, Any] = answer.json()["data"]
    return data


def _upload(policy: dict[str, Any], name: str, data: bytes) -> str:
    key = f"{policy['upload_dir']}/{name}"
    fields = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": key,
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
    }
    httpx.post(policy["upload_host"], data=fields, files={"file": ("f", data)}).raise_for_status()
    return f"oss://{key}"


def stop_times(root: Path, running: bool) -> float:
    emulator = Emulator(root, faults=Faults(submit_interval_s=0.0, task_seconds=30)).start()
    with httpx.Client(base_url=emulator.base_url, headers={"Authorization": "Bearer any"}) as api:
        if running:
            policy = _policy(api)
            video, audio = (
                _upload(policy, "v.mp4", VIDEO.read_bytes()),
                _upload(policy, "a.wav", AUDIO.read_bytes()),
            )
            body = {
                "model": "videoretalk",
                "input": {"video_url": video, "audio_url": audio},
                "parameters": {},
            }
            headers = {"X-DashScope-Async": "enable", "X-DashScope-OssResourceResolve": "enable"}
            answer = api.post("/services/aigc/image2video/video-synthesis/", json=body, headers=headers)
            task_id = answer.json()["output"]["task_id"]
            while api.get(f"/tasks/{task_id}").json()["output"]["task_status"] != "RUNNING":
                time.sleep(0.03)
        began = time.monotonic()
        emulator.stop()
        return time.monotonic() - began


def slowed_times(root: Path) -> tuple[float, float]:
    """A storage POST and an API request, with every API request slowed by SLOW_S."""
    with (
        Emulator(root, faults=Faults(submit_interval_s=0.0)) as emulator,
        httpx.Client(base_url=emulator.base_url, headers={"Authorization": "Bearer any"}, timeout=30) as api,
    ):
        policy = _policy(api)
        emulator.faults.slow_s = SLOW_S
        began = time.monotonic()
        _upload(policy, "a.wav", b"data")
        storage = time.monotonic() - began
        began = time.monotonic()
        api.get("/tasks/a")
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
