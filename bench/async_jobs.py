"""Benchmark: 50 jobs through ``AsyncClient`` against the emulator, with a concurrency cap.

    python bench/async_jobs.py [--jobs 50] [--cap 4] [--task-seconds 0.3]

Each job uploads the sample video and voice, submits, waits and downloads. The emulator
runs one task at a time and takes one submission per ``--submit-interval`` seconds, like
the service. The ideal wall time is what the service itself needs: its busy time (from
each task's scheduled to end time), or the submissions' spacing, whichever is longer.
Reports requests per task and the wall time against that ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _figures import record  # noqa: E402  (bench/, beside this script)

from retalk import AsyncClient, PollPolicy, Quotas, RateLimiter, RetryPolicy  # noqa: E402
from retalk.emulator import Emulator, Faults  # noqa: E402

SAMPLE = ROOT / "fixtures" / "sample"
KEY = "sk-bench"


def _moment(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()


async def one_job(client: AsyncClient, gate: asyncio.Semaphore, out: Path, index: int) -> tuple[float, float]:
    async with gate:
        video = await client.upload(SAMPLE / "talking_head.mp4")
        audio = await client.upload(SAMPLE / "voice.wav")
        task = await client.submit(video, audio)
        done = await client.wait(task.task_id)
        assert done.succeeded and done.video_url, done
        await client.download(done.video_url, out / f"{index}.mp4")
        assert done.scheduled_time and done.end_time
        return _moment(done.scheduled_time), _moment(done.end_time)


async def run(
    jobs: int, cap: int, emulator: Emulator, out: Path
) -> tuple[float, int, list[tuple[float, float]]]:
    poll = PollPolicy(steps=(0.2, 0.2, 0.4), cap_s=0.5)
    # Paced at the emulator's submission rate (the service's is 1 per second, the default).
    pacing = RateLimiter(Quotas(submits_per_s=1 / emulator.faults.submit_interval_s))
    async with AsyncClient(
        KEY, base_url=emulator.base_url, poll=poll, retry=RetryPolicy(base_s=0.2, cap_s=2.0), limiter=pacing
    ) as client:
        gate = asyncio.Semaphore(cap)
        start = time.perf_counter()
        spans = await asyncio.gather(*(one_job(client, gate, out, i) for i in range(jobs)))
        return time.perf_counter() - start, client.requests_sent, list(spans)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--task-seconds", type=float, default=0.3)
    parser.add_argument("--submit-interval", type=float, default=0.2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        faults = Faults(task_seconds=args.task_seconds, submit_interval_s=args.submit_interval)
        with Emulator(Path(folder) / "service", api_key=KEY, faults=faults) as emulator:
            out = Path(folder) / "results"
            out.mkdir()
            wall, requests, spans = asyncio.run(run(args.jobs, args.cap, emulator, out))
    busy = sum(end - begin for begin, end in spans)
    ideal = max(busy, args.jobs * args.submit_interval)
    print(
        f"{args.jobs} jobs through AsyncClient, concurrency cap {args.cap}, "
        "emulator running one task at a time"
    )
    print(
        f"  API requests       {requests} = {requests / args.jobs:.1f} per task "
        "(the storage POSTs not counted)"
    )
    print(f"  wall time          {wall:.1f} s")
    print(
        f"  ideal for the cap  {ideal:.1f} s (the service's own busy time; "
        f"submissions {args.submit_interval} s apart)"
    )
    print(f"  ratio              {wall / ideal:.2f}x")
    record("async_jobs", f"{args.jobs} jobs via AsyncClient, cap {args.cap}", wall, "s",
           "ideal wall time (the emulator's busy time)", ideal, goal="close to 1x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
