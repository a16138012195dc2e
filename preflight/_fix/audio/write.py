"""The voice writer: carries out an ``AudioPlan`` with PyAV.

A remux copies the packets into the plan's container. An encode decodes (bounded to a
little over what the output needs), changes the samples in NumPy (channels, denoise,
length, loudness) and writes 16-bit WAV. Every step on the samples keeps the voice
sample-aligned with its input (no filter delay, padding only at the end), so lips stay in
sync.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np

from ..._local_file import local_file
from ..model import Progress
from .loudness import normalise_loudness
from .noise import denoise
from .plan import AudioPlan
from .samples import decode_planes, fit_length, write_wav

#: A mix-down that would clip is scaled to peak here instead (-1 dBFS).
MIX_PEAK = 10 ** (-1 / 20)
#: Decoding stops this far (s) past what the output needs.
DECODE_MARGIN_S = 1.0


def write_audio(
    plan: AudioPlan,
    source: str,
    target: Path,
    on_progress: Progress | None = None,
) -> None:
    """Carry out ``plan``: write ``target`` (a temporary name) from ``source``, never
    touching ``source``."""
    if plan.unfixable is not None:
        raise ValueError(f"nothing to write: {plan.unfixable}")
    if plan.mode == "remux":
        _remux(plan, source, target, on_progress)
    elif plan.mode == "encode":
        _encode(plan, source, target, on_progress)
    else:
        raise ValueError("an empty plan is carried out by copying the file")
    if on_progress is not None:
        on_progress(1.0)


def _remux(plan: AudioPlan, source: str, target: Path, on_progress: Progress | None) -> None:
    with av.open(local_file(source)) as src, av.open(local_file(target), "w", format=plan.muxer) as out:
        stream = src.streams[plan.stream_index]
        copy = out.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            if on_progress is not None and plan.source_duration and packet.pts is not None:
                on_progress(min(1.0, float(packet.pts * stream.time_base) / plan.source_duration))
            packet.stream = copy
            out.mux(packet)


def _encode(plan: AudioPlan, source: str, target: Path, on_progress: Progress | None) -> None:
    rate = plan.sample_rate
    wanted = round(plan.length_s * rate) if plan.length_s is not None else None
    # Enough for the output, never much more than the service takes.
    longest = plan.length_s or plan.max_length_s
    bound = longest + DECODE_MARGIN_S if longest is not None else float("inf")
    planes, _ = decode_planes(
        source, plan.stream_index, rate, bound, plan.source_duration, on_progress, plan.channels
    )
    if isinstance(plan.channels, int):
        planes = planes[plan.channels : plan.channels + 1]
    elif plan.channels == "mix" and planes.shape[0] > 1:
        planes = planes.mean(axis=0, keepdims=True)
    peak = float(np.abs(planes).max(initial=0.0))
    if peak > 1.0:  # FFmpeg's surround matrix adds channels up: a voice on all of them clips
        planes = planes * (MIX_PEAK / peak)
    if plan.denoise:
        planes = denoise(planes, rate)
    cap = math.floor(plan.max_length_s * rate) if plan.max_length_s is not None else planes.shape[1]
    wanted = min(wanted, cap) if wanted is not None else min(planes.shape[1], cap)
    planes = fit_length(planes, rate, wanted)
    if plan.loudness_lufs is not None:
        planes = normalise_loudness(
            planes, rate, plan.loudness_lufs, plan.true_peak_dbtp, only_down=plan.loudness_only_down
        )
    write_wav(planes, rate, target)
