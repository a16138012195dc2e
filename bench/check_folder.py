"""Benchmark: `preflight check` on a folder of 500 small media files, cold in one process
against cold in two (`--jobs`), and warm (every result from the cache) against cold.

    python bench/check_folder.py [--files 500] [--runs 1]

The folder (cached in bench/.cache/folder) holds a mix of what a dubbing team keeps: 2 s
talking-head clips (H.264, some in MKV or at 10 fps), WAV and MP3 voices, and JPEG and PNG
portraits. Each figure is the wall time of the whole command, Python start-up included,
content analysed in full (faces and speech); the cache lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))
import make_fixtures  # noqa: E402
from _figures import record  # noqa: E402  (bench/, beside this script)

FOLDER = ROOT / "bench" / ".cache" / "folder"


def make_folder(count: int) -> Path:
    target = FOLDER / str(count)
    marker = target / ".complete"
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        kind = i % 5
        if kind == 0:
            make_fixtures.write_video(target / f"talk {i:03d}.mp4", width=640, height=640, duration=2.0,
                                      source="portrait")  # fmt: skip
        elif kind == 1:
            make_fixtures.write_video(
                target / f"take {i:03d}.mkv", width=640, height=480, fps=10, duration=2.0
            )
        elif kind == 2:
            make_fixtures.write_audio(target / f"voice {i:03d}.wav", duration=3.0, sample_rate=16000)
        elif kind == 3:
            make_fixtures.write_audio(target / f"voice {i:03d}.mp3", duration=3.0, sample_rate=44100)
        else:
            ext = ".jpg" if i % 2 else ".png"
            make_fixtures.write_image(target / f"face {i:03d}{ext}", width=512, height=512, source="portrait")
    marker.write_text("")
    return target


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "preflight", "check", *args, "-q"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr.decode())
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    folder = make_folder(args.files)
    one, two, warm = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
            env = {**os.environ, "PREFLIGHT_CACHE_DIR": cache}
            one.append(timed([str(folder), "--jobs", "1", "--no-cache"], env))
            two.append(timed([str(folder), "--jobs", "2", "--no-cache"], env))
            timed([str(folder)], env)  # fills the cache
            warm.append(timed([str(folder)], env))
    one_s, two_s, warm_s = (statistics.median(x) for x in (one, two, warm))
    print(f"{args.files} files on {os.cpu_count()} CPUs (median of {args.runs})")
    print(f"  cold, --jobs 1   {one_s:7.2f} s")
    print(f"  cold, --jobs 2   {two_s:7.2f} s   {one_s / two_s:.2f}x faster than --jobs 1")
    print(f"  warm (cached)    {warm_s:7.2f} s   {100 * warm_s / one_s:.1f}% of cold --jobs 1")
    record("check_folder", f"check {args.files} small files, --jobs 2", two_s, "s",
           "--jobs 1 (ideal on 2 cores: 0.5x)", one_s, goal="close to 0.5x")  # fmt: skip
    record("check_folder", f"check {args.files} small files, warm cache", warm_s, "s",
           "cold, --jobs 1", one_s, goal="under 0.1x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
