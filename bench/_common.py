"""What several benchmarks do alike, written once: read the real sample voice (when
``../shared/media`` is there) and time one ``preflight check`` as a fresh process.

Imported as ``_common`` by the scripts beside it (``python bench/X.py`` puts ``bench/``
first on ``sys.path``), like ``_figures``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: Real English speech, outside the repository; each benchmark says what it uses instead.
REAL_VOICE = ROOT.parent / "shared" / "media" / "MuseTalk__audio__eng.wav"


def decode_mono(path: Path, rate: int, sample_format: str) -> np.ndarray:
    """The whole first audio stream of ``path``, mixed to mono at ``rate`` Hz, as one
    array of ``sample_format`` (PyAV's name: ``"flt"``, ``"dbl"``) samples."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        parts = [
            f.to_ndarray().ravel() for frame in container.decode(audio=0) for f in resampler.resample(frame)
        ]
    return np.concatenate(parts)


def time_check(args: Sequence[str]) -> float:
    """Seconds one ``python -m preflight check ARGS`` takes, Python start-up included, its
    output thrown away (whatever its exit status)."""
    command = [sys.executable, "-m", "preflight", "check", *args]
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start
