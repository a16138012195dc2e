"""Benchmark: the whole ``preflight check`` of a 60 s 1080p25 H.264 clip, faces included,
against simply decoding every frame of it.

    python bench/faces_vs_decode.py [--rounds 3] [--cache DIR]

Makes (once; cached in ``bench/.cache``) 60 s 1080p25 H.264 talking-head clips with film
grain, at bitrates a camera would write:

- ``phone``: a key frame every second at 12 Mbit/s, as phones record;
- ``export``: libx264's default 10 s between key frames at 6 Mbit/s, as editors and
  ffmpeg export: frames between key frames need their chain decoded;
- ``low-rate``: 10 s between key frames and a very low bitrate, so that a full decode is
  cheap: the hardest comparison for the check;

plus a 15 s clip to show that memory does not grow with the clip's length.

Then, in the same run, rounds interleaved, each as a fresh process (Python start-up and
mediapipe's import included, as a user pays them):

1. ``preflight check CLIP`` (probe, rules and the face scan);
2. a full decode of every frame with PyAV (``for frame in container.decode(video=0)``);
3. ``ffmpeg -v error -i CLIP -f null -`` when ffmpeg is installed.

Goal: (1) costs less than (2), and peak memory stays flat. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))
import make_fixtures  # noqa: E402
from _figures import record  # noqa: E402  (bench/, beside this script)

DECODE_ALL = (
    "import av, sys\nwith av.open(sys.argv[1]) as c:\n    for _ in c.decode(video=0):\n        pass\n"
)


def make_clip(path: Path, *, seconds: int, gop: int | None, mbps: float | None, grain: float = 4.0) -> Path:
    """A 1080p25 head-and-shoulders clip that sways, with per-frame grain, at ``mbps``
    (x264's average-bitrate mode), or at a low constant quality when None."""
    if path.exists():
        return path
    width, height, fps = 1920, 1080, 25
    margin = 80
    base = make_fixtures._portraits(width + 2 * margin, height + 2 * margin, [(0.5, 0.42)], 0.34)
    rng = np.random.default_rng(7)
    grains = [rng.normal(0, grain, size=(height, width, 1)).astype(np.int16) for _ in range(12)]
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as out:
        options = {"preset": "veryfast"} if mbps else {"preset": "veryfast", "crf": "30"}
        if gop is not None:
            options["g"] = str(gop)
        stream = out.add_stream("libx264", rate=fps, options=options)
        if mbps:
            stream.bit_rate = int(mbps * 1e6)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            dx = margin + int(margin * 0.8 * math.sin(i / 37))
            dy = margin + int(margin * 0.5 * math.sin(i / 23))
            picture = base[dy : dy + height, dx : dx + width].astype(np.int16) + grains[i % len(grains)]
            frame = av.VideoFrame.from_ndarray(np.clip(picture, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    partial.replace(path)
    return path


def _peak_kib(pid: int) -> int:
    """The process's resident high-water mark (VmHWM), which exec resets. (getrusage's
    ru_maxrss would also count the parent's pages copied at fork.)"""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (MiB) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _peak_kib(child.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if child.returncode not in (0, 1):
        raise SystemExit(f"{command[0]} failed with status {child.returncode}")
    return seconds, peak // 1024


def describe(path: Path) -> str:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys = sum(1 for e in stream.index_entries if e.is_keyframe)
        seconds = float(stream.duration * stream.time_base)
        rate = path.stat().st_size * 8 / seconds / 1e6
        size = f"{stream.width}x{stream.height} {float(stream.average_rate):g} fps {seconds:.0f} s"
        return f"{size}, {keys} key frames, {rate:.1f} Mbit/s"


def sampling_account(path: Path) -> str:
    """How much of the clip the sampler decodes (in process, for the record)."""
    from preflight import probe_media
    from preflight._probe.frames import SamplingResult, sample_frames

    info = probe_media(path)
    stream = info.video[0]
    result = SamplingResult()
    samples = sum(
        1
        for _ in sample_frames(
            str(path),
            stream_index=stream.index,
            duration=info.duration or 0,
            rotation=stream.rotation,
            result=result,
        )
    )
    return f"{samples} samples, {result.decoded} of {stream.frame_count} frames decoded"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    print("making clips (once, cached) ...", flush=True)
    clips = {
        # A phone's recording: a key frame every second, 12 Mbit/s.
        "phone": make_clip(args.cache / "talk_60s_phone.mp4", seconds=60, gop=25, mbps=12),
        # An editor's or ffmpeg's export: libx264's default 10 s between key frames, 6 Mbit/s.
        "export": make_clip(args.cache / "talk_60s_export.mp4", seconds=60, gop=None, mbps=6),
        # The hardest case: 10 s between key frames and so few bits that decoding is cheap.
        "low-rate": make_clip(
            args.cache / "talk_60s_lowrate.mp4", seconds=60, gop=None, mbps=None, grain=0.5
        ),
    }
    short = make_clip(args.cache / "talk_15s_export.mp4", seconds=15, gop=None, mbps=6)
    ffmpeg = shutil.which("ffmpeg")
    # --no-cache: every round checks the clip, never reads an earlier round's result back.
    preflight = [sys.executable, "-m", "preflight", "check", "--no-cache", "--format", "json"]

    print(f"\n{'clip':8} {'what':34} {'median s':>9} {'peak MiB':>9} {'vs decode':>10}")
    for name, clip in clips.items():
        print(f"{name}: {describe(clip)}; sampler: {sampling_account(clip)}")
        figures: dict[str, list[tuple[float, int]]] = {"check": [], "decode": [], "ffmpeg": []}
        for _ in range(args.rounds):
            figures["check"].append(run([*preflight, str(clip)]))
            figures["decode"].append(run([sys.executable, "-c", DECODE_ALL, str(clip)]))
            if ffmpeg:
                figures["ffmpeg"].append(run([ffmpeg, "-v", "error", "-i", str(clip), "-f", "null", "-"]))
        decode = statistics.median(s for s, _ in figures["decode"])
        labels = {
            "check": "preflight check (faces included)",
            "decode": "PyAV: decode every frame",
            "ffmpeg": "ffmpeg -f null (every frame)",
        }
        for key, label in labels.items():
            if not figures[key]:
                print(f"{name:8} {label:34} {'(ffmpeg not installed)':>20}")
                continue
            seconds = statistics.median(s for s, _ in figures[key])
            memory = max(m for _, m in figures[key])
            print(f"{name:8} {label:34} {seconds:9.2f} {memory:9d} {seconds / decode:9.2f}x")
        check_s = statistics.median(s for s, _ in figures["check"])
        record("faces_vs_decode", f"check 60 s 1080p clip ({name}), faces included", check_s, "s",
               "PyAV decode of every frame", decode, goal="below 1x")  # fmt: skip
        if figures["ffmpeg"]:
            record("faces_vs_decode", f"check 60 s 1080p clip ({name}), faces included", check_s, "s",
                   "ffmpeg -f null", statistics.median(s for s, _ in figures["ffmpeg"]))  # fmt: skip

    long_check = run([*preflight, str(clips["export"])])
    short_check = run([*preflight, str(short)])
    print(
        f"\nmemory: preflight check peaks at {short_check[1]} MiB on 15 s and {long_check[1]} MiB on 60 s "
        f"({describe(short)})"
    )
    print(
        "fast path: "
        + "; ".join(f"{n} {run([*preflight, '--fast', str(c)])[0]:.2f} s" for n, c in clips.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
