"""The voice's samples: decoded into float planes, cut or padded with room tone, and
written as 16-bit WAV.

Shared by the planner (which listens to a stereo voice's channels), the writer, and the
denoise benchmark (``bench/denoise.py``).
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt

from ..._local_file import local_file
from ..._probe.voice import decoded_audio
from ..model import Progress

Planes = npt.NDArray[np.float64]  # (channels, samples), floats in -1..1

#: Room tone (padding) is never quieter than this (dBFS RMS): a noise floor measured as
#: digital silence still gets a faint hiss, never exact zeros (about 8 LSB RMS in 16 bits).
ROOM_TONE_MIN_DB = -72.0
#: Fade at a cut (s), so trimming mid-word does not click.
FADE_S = 0.01
#: What a written voice holds: 16-bit PCM.
WAV_CODEC = "pcm_s16le"


def decode_planes(
    path: str,
    index: int,
    rate: int | None,
    max_s: float,
    expected_s: float | None,
    on_progress: Progress | None,
    channels: int | Literal["mix"] | None = None,
) -> tuple[Planes, int]:
    """The stream's samples as float planes at ``rate`` (its own when None), at most
    ``max_s`` seconds of them. More than two channels are mixed down by FFmpeg's own
    matrix (centre at full level, surrounds lower, LFE out) when ``channels`` is "mix"."""
    with av.open(local_file(path)) as container:
        stream = container.streams[index]
        out_rate = rate or stream.codec_context.sample_rate
        layout = "mono" if channels == "mix" and (stream.channels or 1) > 2 else None
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=out_rate)
        # No bound for a voice kept whole (a job sent in parts).
        limit = math.ceil(max_s * out_rate) if math.isfinite(max_s) else sys.maxsize
        blocks: list[npt.NDArray[Any]] = []
        have = 0
        shown = 0.0
        for frame in decoded_audio(container, stream):
            for converted in resampler.resample(frame):
                blocks.append(converted.to_ndarray())
                have += converted.samples
            if on_progress is not None and expected_s:
                done = min(1.0, have / out_rate / min(expected_s, max_s))
                if done - shown >= 0.01:
                    on_progress(done * 0.9)  # the rest is the processing and writing
                    shown = done
            if have >= limit:
                break
        else:
            blocks.extend(f.to_ndarray() for f in resampler.resample(None))
    if not blocks:
        raise ValueError("no audio could be decoded")
    planes: Planes = np.concatenate(blocks, axis=1)[:, :limit].astype(np.float64)
    return planes, out_rate


def fit_length(planes: Planes, rate: int, wanted: int) -> Planes:
    """Cut (with a short fade) or pad with room tone to exactly ``wanted`` samples."""
    have = planes.shape[1]
    if have > wanted:
        out: Planes = planes[:, :wanted].copy()
        fade = min(wanted, round(FADE_S * rate))
        out[:, wanted - fade :] *= np.linspace(1.0, 0.0, fade)
        return out
    if have < wanted:
        tone = room_tone(planes, rate, wanted - have)
        return np.concatenate([planes, tone], axis=1)
    return planes


def noise_floor_db(planes: Planes, rate: int) -> float:
    """The quietest tenth of 30 ms frames (dBFS RMS), as the analysis measures it."""
    size = max(1, round(0.03 * rate))
    mono = planes.mean(axis=0)
    count = len(mono) // size
    if count == 0:
        return ROOM_TONE_MIN_DB
    power = (mono[: count * size].reshape(count, size) ** 2).mean(axis=1)
    return float(10 * np.log10(max(float(np.percentile(power, 10)), 1e-12)))


def room_tone(planes: Planes, rate: int, count: int) -> Planes:
    """``count`` samples of faint noise at the recording's own noise floor, so the padding
    sounds like the rest of the recording (a room that goes dead is heard)."""
    level = max(noise_floor_db(planes, rate), ROOM_TONE_MIN_DB)
    rng = np.random.default_rng(count)  # the same file gives the same output
    return rng.normal(0.0, 10 ** (level / 20), (planes.shape[0], count))


def write_wav(planes: Planes, rate: int, target: Path) -> None:
    layout = "mono" if planes.shape[0] == 1 else "stereo"
    pcm = np.round(np.clip(planes, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    interleaved = np.ascontiguousarray(pcm.T).reshape(1, -1)
    with av.open(local_file(target), "w", format="wav") as out:
        stream = out.add_stream(WAV_CODEC, rate=rate, layout=layout)
        chunk = 4096
        for start in range(0, pcm.shape[1], chunk):
            part = interleaved[:, start * pcm.shape[0] : (start + chunk) * pcm.shape[0]]
            frame = av.AudioFrame.from_ndarray(part, format="s16", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
