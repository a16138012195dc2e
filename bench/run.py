"""Run every benchmark of the project and print one table: each figure, the peer it is
measured against in the same run, and the ratio.

    python bench/run.py [--quick] [--only NAME ...] [--markdown] [--log FILE]

Each benchmark runs as its own process (as it would alone), its own account going to the
log (default: bench/.cache/run.log); the figures come back through ``BENCH_FIGURES``
(see ``bench/_figures.py``). The table ends with the machine it was measured on. The
denoiser study (``bench/denoise.py``) measures quality, not speed, and is not run here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _figures import Figure

HERE = Path(__file__).resolve().parent

#: Benchmark -> (its arguments, its arguments with --quick).
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "probe_vs_ffprobe": ([], ["--files", "100"]),
    "speech_analysis": ([], ["--rounds", "3"]),
    "faces_vs_decode": ([], ["--rounds", "1"]),
    "check_folder": ([], ["--files", "200"]),
    "fix_video": ([], []),
    "async_jobs": ([], ["--jobs", "20"]),
    "pipeline_overhead": ([], ["--runs", "1"]),
    "identity": ([], ["--rounds", "2"]),
    "emulator_timing": ([], ["--rounds", "1"]),
}


def machine() -> str:
    """One line: CPU, cores, memory, OS, Python, PyAV and FFmpeg, and the peers' versions."""
    import av

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    ffmpeg = shutil.which("ffmpeg")
    peer = ""
    if ffmpeg:
        first = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False).stdout
        peer = f"; peers: {first.splitlines()[0].split(' Copyright')[0]}" if first else ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"
        f"{peer}"
    )


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _ratio(figure: Figure) -> str:
    ratio = figure.ratio
    if ratio is None:
        return "n/a"
    if figure.better == "lower" and ratio < 0.1:
        return f"{100 * ratio:.2g}% ({1 / ratio:.3g}x faster)"
    if figure.better == "lower" and ratio < 1:
        return f"{ratio:.3g}x ({1 / ratio:.3g}x faster)"
    return f"{ratio:.3g}x"


def table(figures: list[Figure], markdown: bool) -> str:
    rows = [
        (
            figure.bench,
            figure.figure,
            f"{_number(figure.ours)} {figure.unit}",
            figure.peer,
            "n/a" if figure.peer_value is None else f"{_number(figure.peer_value)} {figure.unit}",
            _ratio(figure),
            figure.goal,
        )
        for figure in figures
    ]
    header = ("bench", "figure", "ours", "peer", "peer's", "ratio", "goal")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller folders")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), metavar="NAME", help="run only these")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (docs)")
    parser.add_argument(
        "--log", type=Path, default=HERE / ".cache" / "run.log", help="the benchmarks' own output"
    )
    args = parser.parse_args()
    chosen = args.only or list(BENCHES)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch, open(args.log, "w") as log:
        sink = Path(scratch) / "figures.jsonl"
        env = {**os.environ, "BENCH_FIGURES": str(sink)}
        started = time.perf_counter()
        for name in chosen:
            extra = BENCHES[name][1 if args.quick else 0]
            command = [sys.executable, str(HERE / f"{name}.py"), *extra]
            print(f"running {name} {' '.join(extra)}".rstrip() + " ...", file=sys.stderr, flush=True)
            log.write(f"\n===== {' '.join(command)}\n")
            log.flush()
            begin = time.perf_counter()
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
            took = time.perf_counter() - begin
            print(f"  {'done' if done.returncode == 0 else 'FAILED'} in {took:.0f} s", file=sys.stderr)
            if done.returncode != 0:
                failed.append(name)
        figures = (
            [Figure(**json.loads(line)) for line in sink.read_text().splitlines()] if sink.exists() else []
        )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    print(table(figures, args.markdown))
    print(f"\nMeasured {when} on {machine()}; {time.perf_counter() - started:.0f} s in all"
          + (" (--quick)" if args.quick else "") + f"; the benchmarks' own output: {args.log}")  # fmt: skip
    if failed:
        print(f"failed: {', '.join(failed)} (see {args.log})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
