"""Benchmark: listening to 120 s of 48 kHz stereo speech, on one core.

    python bench/speech_analysis.py [--rounds 5]

Makes (once; cached in ``bench/.cache``) a 120 s 48 kHz stereo 16-bit WAV of speech: the
real English voice from ``../shared/media`` when present (resampled and looped), else the
fixture script's synthetic voice. Pins the process to one core and times
``preflight._probe.voice.analyse_audio`` (decode, EBU R128 loudness and true peak,
clipping, speech activity, noise floor, digital silence, background music), the same
speech over a music bed, and the whole ``check_audio`` for comparison. Goal: under 2% of
the audio's duration (faster than 50x real time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures"))
import make_fixtures  # noqa: E402
from _common import REAL_VOICE, decode_mono  # noqa: E402  (bench/, beside this script)
from _figures import record  # noqa: E402

from preflight import check_audio  # noqa: E402
from preflight._probe.voice import analyse_audio  # noqa: E402

SECONDS, RATE = 120, 48000


def speech(seconds: int) -> tuple[np.ndarray, str]:
    if REAL_VOICE.exists():
        voice = decode_mono(REAL_VOICE, RATE, "flt")
        source = f"real speech ({REAL_VOICE.name}), looped"
    else:
        voice = make_fixtures.voice_like(seconds, RATE)
        source = "synthetic voice (shared/media absent)"
    looped = np.resize(voice, seconds * RATE)
    # Stereo, the right channel a little different (a second microphone), as recorded.
    return np.vstack([looped, 0.9 * np.roll(looped, 7)]), source


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cache = ROOT / "bench" / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "speech_120s_48k_stereo.wav"
    signal, source = speech(SECONDS)
    if not path.exists():
        make_fixtures.write_audio(path, signal=signal, sample_rate=RATE)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        cores = "1 core (pinned)"
    else:
        cores = "all cores (pinning unsupported here)"

    # The music search transforms only the gaps between speech; music under the voice
    # widens them (its worst realistic case).
    with_music = cache / "speech_over_music_120s_48k_stereo.wav"
    if not with_music.exists():
        bed = make_fixtures.music_like(SECONDS, RATE, level_db=-30.0)
        make_fixtures.write_audio(with_music, signal=signal + bed, sample_rate=RATE)

    analyse_audio(path)  # warm the file cache and the codecs
    timings: dict[str, list[float]] = {
        "analyse_audio": [],
        "check_audio (probe + rules + analysis)": [],
        "analyse_audio, speech over music": [],
    }
    for _ in range(args.rounds):
        start = time.perf_counter()
        analysis = analyse_audio(path)
        timings["analyse_audio"].append(time.perf_counter() - start)
        start = time.perf_counter()
        check_audio(path)
        timings["check_audio (probe + rules + analysis)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        music = analyse_audio(with_music)
        timings["analyse_audio, speech over music"].append(time.perf_counter() - start)
    assert analysis is not None and music is not None
    print(f"{SECONDS} s of 48 kHz stereo 16-bit speech: {source}; {cores}; median of {args.rounds}")
    for label, values in timings.items():
        seconds = statistics.median(values)
        print(
            f"  {label:42} {seconds:6.3f} s = {100 * seconds / SECONDS:5.2f}% of the duration "
            f"({SECONDS / seconds:5.0f}x real time)"
        )
        record("speech_analysis", f"{label}, 120 s of 48 kHz stereo, 1 core", seconds, "s",
               "real time (the audio's duration)", float(SECONDS), goal="under 2%")  # fmt: skip
    print(
        f"  measured: {analysis.loudness_lufs:.1f} LUFS, true peak {analysis.true_peak_dbtp:+.1f} dBTP, "
        f"speech {analysis.speech_share:.0%}, SNR {analysis.snr_db:.0f} dB, "
        f"music in {analysis.music_share or 0:.0%} of {analysis.gaps_s:.0f} s of gaps"
    )
    print(
        f"  over music: music in {music.music_share or 0:.0%} of {music.gaps_s:.0f} s of gaps, "
        f"{music.music_level_db or 0:.0f} dBFS"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
