"""Benchmark: the in-process probe against an ffprobe subprocess per file.

    python bench/probe_vs_ffprobe.py [--files 200] [--keep DIR]

Makes a folder of small media files (H.264 MP4s of several sizes and rates, WAVs, MP3s,
JPEGs and PNGs), then measures on the same files, in the same run:

1. per file: ``preflight.probe`` in process against ``ffprobe -show_streams -show_format``
   run as a subprocess (what a script that shells out does); goal: at least 10x faster;
2. the folder: ``preflight check --fast FOLDER`` as one command (Python start-up included)
   against running ffprobe once per file; goal: faster.

Prints a table of figures and ratios. Skips the comparisons, with a message, when ffprobe
is not installed (Debian: ``apt-get install ffmpeg``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))
import make_fixtures  # noqa: E402
from _common import time_check  # noqa: E402  (bench/, beside this script)
from _figures import record  # noqa: E402

from preflight import probe  # noqa: E402


def make_corpus(folder: Path, count: int) -> list[Path]:
    """``count`` distinct small files: about half videos, a third audio, the rest images."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(640, 360), (720, 720), (480, 640), (1280, 720), (320, 240)]
    rates = [15, 24, 25, 30, 60]
    files: list[Path] = []
    for i in range(count):
        kind = i % 6
        if kind in (0, 1, 2):
            width, height = sizes[i % len(sizes)]
            path = make_fixtures.write_video(
                folder / f"clip_{i:03d}.mp4",
                width=width,
                height=height,
                fps=rates[i % len(rates)],
                duration=0.5 + (i % 4) * 0.5,
                audio=i % 2 == 0,
                quality=40,
            )
        elif kind in (3, 4):
            ext = ".wav" if kind == 3 else ".mp3"
            path = make_fixtures.write_audio(
                folder / f"voice_{i:03d}{ext}", duration=1.0 + i % 3, sample_rate=16000 if i % 2 else 44100
            )
        else:
            ext = ".jpg" if i % 12 == 5 else ".png"
            path = make_fixtures.write_image(
                folder / f"face_{i:03d}{ext}", width=256 + i, height=256, source="pattern"
            )
        files.append(path)
    return files


def time_in_process(files: list[Path], repeats: int) -> list[float]:
    per_file = []
    for path in files:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            probe(path)
            best = min(best, time.perf_counter() - start)
        per_file.append(best)
    return per_file


def time_ffprobe(ffprobe: str, files: list[Path]) -> list[float]:
    per_file = []
    for path in files:
        start = time.perf_counter()
        subprocess.run(
            [ffprobe, "-v", "error", "-show_streams", "-show_format", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        per_file.append(time.perf_counter() - start)
    return per_file


def time_check_folder(folder: Path) -> float:
    # --no-cache: the folder is checked, not read back from an earlier run's cache.
    return time_check(["--fast", "--no-cache", "--format", "json", str(folder)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="files in the folder (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="in-process repeats per file (best of)")
    parser.add_argument("--keep", type=Path, help="make the corpus here and keep it")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="preflight-bench-"))
    try:
        print(f"making {args.files} small media files in {folder} ...", flush=True)
        files = make_corpus(folder, args.files)
        size = sum(p.stat().st_size for p in files)
        print(f"  {len(files)} files, {size / 1e6:.1f} MB in all\n")

        ours = time_in_process(files, args.repeats)
        ffprobe = shutil.which("ffprobe")
        rows = [("preflight probe, per file (median)", statistics.median(ours) * 1e3, "ms")]
        if ffprobe is None:
            print("ffprobe is not installed: comparisons skipped (apt-get install ffmpeg).")
            theirs = None
        else:
            time_ffprobe(ffprobe, files[:5])  # warm the page cache and ffprobe's libraries
            theirs = time_ffprobe(ffprobe, files)
            rows.append(("ffprobe subprocess, per file (median)", statistics.median(theirs) * 1e3, "ms"))
        check_wall = time_check_folder(folder)
        rows.append((f"preflight check --fast on the folder ({len(files)} files)", check_wall, "s"))
        if theirs is not None:
            rows.append((f"ffprobe once per file ({len(files)} files)", sum(theirs), "s"))

        print(f"{'figure':<58}{'value':>12}")
        print("-" * 70)
        for label, value, unit in rows:
            print(f"{label:<58}{value:>10.2f} {unit}")
        if theirs is not None:
            per_file_ratio = statistics.median(theirs) / statistics.median(ours)
            folder_ratio = sum(theirs) / check_wall
            print("-" * 70)
            print(f"{'per-file speed-up over ffprobe (goal >= 10x)':<58}{per_file_ratio:>10.1f} x")
            print(f"{'folder speed-up over ffprobe per file (goal > 1x)':<58}{folder_ratio:>10.1f} x")
            record("probe_vs_ffprobe", "probe one file (median)", statistics.median(ours) * 1e3, "ms",
                   "ffprobe subprocess", statistics.median(theirs) * 1e3, goal="10x faster")  # fmt: skip
            record("probe_vs_ffprobe", f"check --fast, folder of {len(files)}", check_wall, "s",
                   "ffprobe once per file", sum(theirs), goal="faster")  # fmt: skip
            by_kind: dict[str, list[tuple[float, float]]] = {}
            for path, mine, other in zip(files, ours, theirs, strict=True):
                by_kind.setdefault(path.suffix, []).append((mine, other))
            print("\nper kind (median ms, preflight / ffprobe / ratio):")
            for suffix, pairs in sorted(by_kind.items()):
                mine_ms = statistics.median(p[0] for p in pairs) * 1e3
                other_ms = statistics.median(p[1] for p in pairs) * 1e3
                print(f"  {suffix:<6}{mine_ms:>8.2f}{other_ms:>10.2f}{other_ms / mine_ms:>8.1f} x")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
