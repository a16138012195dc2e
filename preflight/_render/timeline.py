"""The sound of one file over time, reduced for the report's plots: a waveform envelope,
the loudness every 100 ms and the speech the detector heard, from one decoding pass.

The check keeps only totals (``AudioAnalysis``); drawing needs the readings over time,
so the sound is decoded again here, through the same meter (``_probe.loudness``) and the
same speech detector (``_probe.voice.speech_ranges``) the check uses.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

from .._local_file import local_file
from .._probe.loudness import LoudnessMeter, reading
from .._probe.voice import AudioAnalysis, speech_ranges

#: Columns of the waveform: one min/max pair each.
ENVELOPE_COLUMNS = 1000
#: The sound is drawn for at most this long (s); beyond, the page says it stopped.
MAX_TIMELINE_S = 3600.0


@dataclass(frozen=True)
class AudioTimeline:
    """The sound of one file over time, reduced for drawing."""

    duration: float
    #: Lowest and highest sample (mono mix, -1..1) in each of the columns spanning
    #: ``duration``.
    lows: tuple[float, ...]
    highs: tuple[float, ...]
    #: Every 100 ms: (time s, momentary LUFS, short-term LUFS), as EBU R 128 measures them.
    loudness: tuple[tuple[float, float, float], ...]
    integrated_lufs: float | None
    #: Stretches (s) the speech detector heard.
    speech: tuple[tuple[float, float], ...]
    #: True when the file goes on past ``MAX_TIMELINE_S``.
    cut_short: bool = False
    #: Why decoding stopped early, when it did.
    error: str | None = None


def audio_timeline(
    path: str | os.PathLike[str],
    speech: AudioAnalysis | None = None,
    columns: int = ENVELOPE_COLUMNS,
    max_seconds: float = MAX_TIMELINE_S,
) -> AudioTimeline | None:
    """Decode the first audio stream once for the waveform and the loudness; None when
    the file has no audio. The speech stretches are ``speech``'s when it covers the whole
    sound, else the detector is run again over all of it."""
    name = os.fspath(path)
    block_mins: list[npt.NDArray[np.float32]] = []
    block_maxs: list[npt.NDArray[np.float32]] = []
    loudness: list[tuple[float, float, float]] = []
    integrated: float | None = None
    error: str | None = None
    cut_short = False
    samples = 0
    try:
        with av.open(local_file(name)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            rate = stream.rate or stream.codec_context.sample_rate or 48000
            block = max(1, rate // 100)  # 10 ms of samples
            mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
            meter = LoudnessMeter(template=stream, peak=None)
            pending: list[npt.NDArray[np.float32]] = []
            pending_samples = 0

            def measure(frame: av.AudioFrame | None) -> None:
                nonlocal integrated
                for out in meter.push(frame):
                    metadata = dict(out.metadata)
                    momentary, short = reading(metadata, "lavfi.r128.M"), reading(metadata, "lavfi.r128.S")
                    if momentary is None or short is None or out.time is None:
                        continue
                    if isinstance(out, av.AudioFrame):
                        end = float(out.time) + out.samples / rate
                        # Until its window has filled, a reading means nothing: leave it out.
                        loudness.append(
                            (end, momentary if end >= 0.4 else math.nan, short if end >= 3 else math.nan)
                        )
                    integrated = reading(metadata, "lavfi.r128.I")

            def reduce(final: bool) -> None:
                nonlocal pending, pending_samples
                if not pending:
                    return
                joined = np.concatenate(pending)
                whole = len(joined) // block
                if whole:
                    blocks = joined[: whole * block].reshape(whole, block)
                    block_mins.append(blocks.min(axis=1))
                    block_maxs.append(blocks.max(axis=1))
                rest = joined[whole * block :]
                if final and len(rest):
                    block_mins.append(rest.min(keepdims=True))
                    block_maxs.append(rest.max(keepdims=True))
                    rest = rest[:0]
                pending, pending_samples = [rest], len(rest)

            try:
                for frame in itertools.chain(container.decode(stream), [None]):
                    if frame is not None and frame.time is not None and frame.time >= max_seconds:
                        cut_short = True
                        frame = None
                    measure(frame)
                    for converted in mono.resample(frame):
                        values = converted.to_ndarray().reshape(-1).astype(np.float32)
                        pending.append(values)
                        pending_samples += len(values)
                        samples += len(values)
                    # Reduced ten seconds at a time: per frame, numpy's overhead would dominate.
                    if pending_samples >= 10 * rate or frame is None:
                        reduce(final=frame is None)
                    if frame is None:
                        break
            except av.FFmpegError as exc:
                error = f"decoding stopped at {samples / rate:.1f} s: {exc}"
                reduce(final=True)
    except av.FFmpegError as exc:
        return AudioTimeline(0.0, (), (), (), None, (), error=str(exc))
    duration = samples / rate if samples else 0.0
    lows, highs = _columns(block_mins, block_maxs, columns)
    if speech is not None and speech.duration >= duration - 0.5:
        heard = speech.speech_ranges
    else:
        try:
            heard = speech_ranges(name, max_seconds)[1]
        except av.FFmpegError:
            heard = speech.speech_ranges if speech is not None else ()
    return AudioTimeline(
        duration=duration,
        lows=lows,
        highs=highs,
        loudness=tuple(loudness),
        integrated_lufs=integrated if integrated is not None and integrated > -70 else None,
        speech=tuple(r for r in heard if r[0] < duration),
        cut_short=cut_short,
        error=error,
    )


def _columns(
    mins: list[npt.NDArray[np.float32]], maxs: list[npt.NDArray[np.float32]], columns: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if not mins:
        return (), ()
    low, high = np.concatenate(mins), np.concatenate(maxs)
    count = min(columns, len(low))
    edges = np.linspace(0, len(low), count + 1).astype(int)
    starts = edges[:-1]
    return (
        tuple(float(v) for v in np.minimum.reduceat(low, starts)),
        tuple(float(v) for v in np.maximum.reduceat(high, starts)),
    )
