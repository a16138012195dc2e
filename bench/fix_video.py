"""Benchmark: the fixer against the ffmpeg command line, in one run on the same inputs.

    python bench/fix_video.py [--rounds 1] [--preset medium]

1. A 60 s 1080p VP9 clip (WebM, Opus sound) fixed to H.264 by ``preflight fix``, against
   ``ffmpeg -i clip.webm -c:v libx264 -preset P -crf 18 -pix_fmt yuv420p -c:a aac`` (same
   encoder, preset and quality). Goal: at most 1.1x the ffmpeg time.
2. A remux-only fix of a 100 MB MKV (H.264 + AAC): goal under 2 s.

Inputs are made once and cached in ``bench/.cache``. The ffmpeg row is skipped when no
``ffmpeg`` binary is installed (the fixer itself never uses one).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))
import make_fixtures  # noqa: E402
from _figures import record  # noqa: E402  (bench/, beside this script)

from preflight import CheckOptions, FixOptions, fix_paths  # noqa: E402

CACHE = ROOT / "bench" / ".cache"


def _moving_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """A talking-head-like picture with motion (a face that sways, a busy background)."""
    base = make_fixtures._picture("portrait", width + 64, height + 32)
    frames = []
    for i in range(count):
        dx = int(32 + 32 * np.sin(i / 15))
        dy = int(16 + 16 * np.sin(i / 23))
        frames.append(np.ascontiguousarray(base[dy : dy + height, dx : dx + width]))
    return frames


def make_vp9(path: Path, seconds: int = 60) -> Path:
    if path.exists():
        return path
    rate = 25
    loop = _moving_frames(1920, 1080, 100)
    temporary = path.with_suffix(".part")
    with av.open(str(temporary), "w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.bit_rate = 4_000_000
        stream.options = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
        audio = out.add_stream("libopus", rate=48000, layout="mono")
        for i in range(seconds * rate):
            frame = av.VideoFrame.from_ndarray(loop[i % len(loop)], format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        make_fixtures._encode_audio_into(out, audio, make_fixtures.voice_like(seconds, 48000), 48000)
    temporary.rename(path)
    return path


def make_mkv(path: Path, megabytes: int = 100) -> Path:
    """H.264 + AAC in Matroska, ``megabytes`` MB or a little more: a grainy, high-rate 1080p
    clip (about 120 Mbit/s) encoded until the file is that big."""
    if path.exists():
        return path
    rate = 25
    rng = np.random.default_rng(0)
    grain = [
        np.clip(f.astype(np.int16) + rng.integers(-3, 4, f.shape), 0, 255).astype(np.uint8)
        for f in _moving_frames(1920, 1080, 25)
    ]
    temporary = path.with_suffix(".part")
    with av.open(str(temporary), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=Fraction(rate))
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "ultrafast", "qp": "8"}
        audio = out.add_stream("aac", rate=48000, layout="mono")
        count = written = 0
        while count % rate or written < megabytes * 1_000_000:
            frame = av.VideoFrame.from_ndarray(grain[count % len(grain)], format="rgb24")
            frame.pts = count
            for packet in stream.encode(frame):
                written += packet.size
                out.mux(packet)
            count += 1
        for packet in stream.encode(None):
            out.mux(packet)
        make_fixtures._encode_audio_into(out, audio, make_fixtures.voice_like(count / rate, 48000), 48000)
    temporary.rename(path)
    return path


def time_fix(src: Path, preset: str) -> tuple[float, list[str]]:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report = fix_paths(
            video=src,
            out_dir=folder,
            options=FixOptions(preset=preset),
            check_options=CheckOptions(fast=True),
        )
        elapsed = time.perf_counter() - start
    (fixed,) = report.files
    assert fixed.ok, fixed
    return elapsed, [a.name for a in fixed.actions]


def time_ffmpeg(src: Path, preset: str, copy: bool = False) -> float:
    """The ffmpeg command line doing the same: re-encode, or (``copy``) remux to MP4."""
    codecs = (
        ["-c", "copy"]
        if copy
        else ["-c:v", "libx264", "-preset", preset, "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac",
              "-b:a", "128k"]
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "ffmpeg", "-v", "error", "-y", "-i", str(src), *codecs, "-movflags", "+faststart",
            str(Path(folder) / "out.mp4"),
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--preset", default="medium")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    print("making inputs (once)...", file=sys.stderr)
    vp9 = make_vp9(CACHE / "talk_60s_1080p_vp9.webm")
    mkv = make_mkv(CACHE / "talk_100MB_h264.mkv")

    fixer, ffmpeg = [], []
    actions: list[str] = []
    for _ in range(args.rounds):
        seconds, actions = time_fix(vp9, args.preset)
        fixer.append(seconds)
        if shutil.which("ffmpeg"):
            ffmpeg.append(time_ffmpeg(vp9, args.preset))
    fix_s = statistics.median(fixer)
    print(f"60 s 1080p VP9 -> H.264 (x264 {args.preset}, crf 18), median of {args.rounds}:")
    print(f"  preflight fix   {fix_s:7.1f} s   ({' + '.join(actions)})")
    if ffmpeg:
        ff_s = statistics.median(ffmpeg)
        print(f"  ffmpeg          {ff_s:7.1f} s")
        print(f"  ratio           {fix_s / ff_s:7.2f}x  (goal: at most 1.1x)")
        record("fix_video", "fix 60 s 1080p VP9 -> H.264 (x264 medium, crf 18)", fix_s, "s",
               "the ffmpeg command line, same encoder settings", ff_s, goal="at most 1.1x")  # fmt: skip
    else:
        print("  ffmpeg          (not installed: no comparison)")

    remux = [time_fix(mkv, args.preset) for _ in range(max(3, args.rounds))]
    remux_s = statistics.median(r[0] for r in remux)
    size = mkv.stat().st_size / 1e6
    print(
        f"remux-only fix of a {size:.0f} MB MKV (H.264 + AAC): {remux_s:.2f} s  "
        f"({' + '.join(remux[0][1])}; goal < 2 s)"
    )
    if shutil.which("ffmpeg"):
        copy_s = statistics.median(time_ffmpeg(mkv, args.preset, copy=True) for _ in range(3))
        print(f"  ffmpeg -c copy -movflags +faststart: {copy_s:.2f} s")
        record("fix_video", f"remux-only fix of a {size:.0f} MB MKV", remux_s, "s",
               "ffmpeg -c copy -movflags +faststart", copy_s, goal="under 2 s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
