"""Denoising a voice: spectral noise reduction with no delay, so the cleaned voice stays
sample-aligned with its input (chosen over FFmpeg's afftdn and noisereduce by
``bench/denoise.py``).
"""

from __future__ import annotations

import math

import numpy as np

from .samples import Planes

#: Denoising never takes a time-frequency cell down by more than this (dB): the room stays
#: faintly audible instead of a gated, watery silence. bench/denoise.py: -30 dB clears
#: Audio.Noisy on every mixture there (-20 dB leaves it at 0 dB input SNR) for the same
#: damage to the voice; -40 dB only gains 2 dB more in the pauses.
DENOISE_FLOOR_DB = -30.0
#: The noise spectrum is the mean of the quietest share of the frames (the pauses).
NOISE_FRAMES_SHARE = 0.15
#: Frames transformed at once (bounds the memory of a long file).
DENOISE_BLOCK = 256
#: Decision-directed smoothing of the a priori SNR (Ephraim-Malah): near 1, little
#: "musical noise".
DENOISE_SMOOTHING = 0.98


def denoise(planes: Planes, rate: int, floor_db: float = DENOISE_FLOOR_DB) -> Planes:
    """Spectral noise reduction with no delay: a Wiener gain per time-frequency cell, its
    a priori SNR smoothed the decision-directed way (Ephraim & Malah), against the noise
    spectrum of the quietest frames; cells never go below ``floor_db``.

    Offline and centred (frames padded by reflection at both ends), so the output is
    sample-aligned with the input by construction. Chosen over FFmpeg's afftdn and
    noisereduce by ``bench/denoise.py``. Frames are transformed ``DENOISE_BLOCK`` at a
    time, so memory stays a few times the signal's own size.
    """
    size = 1 << math.ceil(math.log2(0.032 * rate))  # about 32 ms
    hop = size // 4
    window = np.sqrt(np.hanning(size + 1)[:-1])  # analysis x synthesis = periodic Hann...
    overlap = float((window[::hop] ** 2).sum())  # ...whose four shifted copies sum to this
    length = planes.shape[1]
    count = -(-length // hop) + 6  # frames to cover the signal plus a window each side
    total = (count - 1) * hop + size
    floor = 10 ** (floor_db / 20)
    out = np.empty_like(planes)
    for channel, signal in enumerate(planes):
        padded = np.pad(signal, (size, total - length - size), mode="reflect" if length > 1 else "constant")
        frames = np.lib.stride_tricks.sliding_window_view(padded, size)[::hop]  # a view: no copy
        noise = _noise_power(frames, window)
        result = np.zeros(total + size)
        previous = np.zeros(size // 2 + 1)
        for start in range(0, count, DENOISE_BLOCK):
            spectrum = np.fft.rfft(frames[start : start + DENOISE_BLOCK] * window, axis=1)
            gains, previous = _wiener_gains(spectrum.real**2 + spectrum.imag**2, noise, floor, previous)
            cleaned = np.fft.irfft(spectrum * gains, n=size, axis=1) * window
            _overlap_add(result, cleaned, start * hop, hop)
        out[channel] = result[size : size + length] / overlap
    return out


def _noise_power(frames: Planes, window: Planes) -> Planes:
    """Mean power spectrum of the quietest ``NOISE_FRAMES_SHARE`` of the frames."""
    energy = np.concatenate(
        [
            ((frames[i : i + DENOISE_BLOCK] * window) ** 2).sum(axis=1)
            for i in range(0, len(frames), DENOISE_BLOCK)
        ]
    )
    quiet = np.flatnonzero(energy <= np.quantile(energy, NOISE_FRAMES_SHARE))
    spectrum = np.fft.rfft(frames[quiet] * window, axis=1)
    noise: Planes = (spectrum.real**2 + spectrum.imag**2).mean(axis=0) + 1e-20
    return noise


def _wiener_gains(power: Planes, noise: Planes, floor: float, previous: Planes) -> tuple[Planes, Planes]:
    """Gains for consecutive frames, and the last frame's cleaned power (for the next)."""
    gains = np.empty_like(power)
    alpha = DENOISE_SMOOTHING
    for i, row in enumerate(power):
        posterior = row / noise
        prior = alpha * previous / noise + (1 - alpha) * np.maximum(posterior - 1.0, 0.0)
        gain = np.maximum(prior / (1.0 + prior), floor)
        gains[i] = gain
        previous = gain * gain * row
    return gains, previous


def _overlap_add(into: Planes, frames: Planes, offset: int, hop: int) -> None:
    """Add frames placed ``hop`` apart from ``offset`` on; every fourth frame never
    overlaps the others, so each of four runs is one contiguous addition."""
    step = frames.shape[1] // hop
    for first in range(min(step, len(frames))):
        run = frames[first::step].reshape(-1)
        at = offset + first * hop
        into[at : at + len(run)] += run
