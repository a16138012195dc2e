"""A voice's loudness: measured by FFmpeg's ebur128 (the meter the check uses), brought to
a target, and its peaks held under a ceiling by a look-ahead limiter at the voice's own
sample rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from ..._probe.loudness import GATE_LUFS, LoudnessMeter
from .samples import Planes

#: Limiter: the gain curve reaches its full reduction within this (s) before a peak and
#: recovers as slowly after it; offline, so it looks ahead with no delay.
LIMITER_RAMP_S = 0.01
#: Head-room kept under the true-peak ceiling by the sample-peak limiter (dB) on its first
#: try; the true peak is then measured and the limiter tightened if it is still over.
LIMITER_MARGIN_DB = 0.3
#: Loudness within this (LU) of the target needs no further gain round.
LOUDNESS_TOLERANCE_LU = 0.3


def measure_loudness(planes: Planes, rate: int) -> tuple[float | None, float | None]:
    """Integrated loudness (LUFS) and true peak (dBTP) by FFmpeg's ebur128, the meter the
    check uses."""
    layout = "mono" if planes.shape[0] == 1 else "stereo"
    meter = LoudnessMeter(
        format="fltp", sample_rate=rate, layout=layout, time_base=Fraction(1, rate), peak="true"
    )
    for frame in _frames(planes.astype(np.float32), rate, layout):
        meter.push(frame)
    meter.push(None)
    # Read here, not through the meter's properties: those take an infinite peak (a sample
    # of inf) for no peak at all, where the limiter must see it as far over the ceiling.
    loudness, peak = _value(meter.totals, "lavfi.r128.I"), _value(meter.totals, "lavfi.r128.true_peak")
    return (
        None if loudness is None or loudness <= GATE_LUFS else loudness,
        None if peak is None or peak <= 0 else 20 * math.log10(peak),
    )


def _value(totals: dict[str, str], key: str) -> float | None:
    try:
        return float(totals[key])
    except (KeyError, ValueError):
        return None


def _frames(planes: npt.NDArray[np.float32], rate: int, layout: str) -> Iterator[Any]:
    for start in range(0, planes.shape[1], 4096):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planes[:, start : start + 4096]), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        yield frame


def normalise_loudness(
    planes: Planes, rate: int, target_lufs: float, ceiling_dbtp: float, *, only_down: bool = False
) -> Planes:
    """Gain to ``target_lufs`` (with ``only_down``, never above the voice's own loudness),
    then a look-ahead limiter that keeps the true peak under ``ceiling_dbtp``; the sample
    rate never changes (FFmpeg's loudnorm would run at 192 kHz). A few rounds: limiting
    lowers the loudness a little, gain raises the peaks."""
    loudness, _ = measure_loudness(planes, rate)
    if loudness is None:
        return planes  # nothing loud enough to measure: leave it
    if only_down:
        target_lufs = min(target_lufs, loudness)
    gain_db = target_lufs - loudness
    threshold_db = ceiling_dbtp - LIMITER_MARGIN_DB
    out = planes
    for _ in range(4):
        out = _limit(planes * 10 ** (gain_db / 20), rate, 10 ** (threshold_db / 20))
        loudness, peak = measure_loudness(out, rate)
        over = (peak or -math.inf) - ceiling_dbtp
        short = target_lufs - (loudness if loudness is not None else target_lufs)
        if over <= 0 and abs(short) <= LOUDNESS_TOLERANCE_LU:
            break
        if over > 0:
            threshold_db -= over + 0.1
        gain_db += short
    return out


def _limit(planes: Planes, rate: int, ceiling: float) -> Planes:
    """Keep every sample within ``ceiling`` with a smooth gain curve: the gain each sample
    needs, held at its minimum over the ramp on both sides, then smoothed twice over the
    ramp; the smoothed curve never exceeds what any sample needs."""
    peak = np.abs(planes).max(axis=0)
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    if need.min() >= 1.0:
        return planes
    ramp = max(1, round(LIMITER_RAMP_S * rate)) | 1  # odd, so the windows are centred
    held = _running_min(need, 2 * ramp - 1)
    gain = _running_mean(_running_mean(held, ramp), ramp)
    limited: Planes = planes * np.minimum(gain, need)
    return limited


def _running_min(values: Planes, width: int) -> Planes:
    """Minimum over a centred window of odd ``width`` (van Herk / Gil-Werman, O(n))."""
    half = width // 2
    padded = np.pad(values, (half, half + width), constant_values=1.0)
    blocks = len(padded) // width
    grid = padded[: blocks * width].reshape(blocks, width)
    forward = np.minimum.accumulate(grid, axis=1).reshape(-1)
    backward = np.minimum.accumulate(grid[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    n = len(values)
    result: Planes = np.minimum(backward[:n], forward[width - 1 : width - 1 + n])
    return result


def _running_mean(values: Planes, width: int) -> Planes:
    """Mean over a centred window of odd ``width`` (the edges see the signal's own ends)."""
    half = width // 2
    padded = np.pad(values, (half, half), mode="edge")
    sums = np.concatenate([[0.0], np.cumsum(padded)])
    result: Planes = (sums[width:] - sums[:-width]) / width
    return result
