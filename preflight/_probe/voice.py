"""Listening to the voice: loudness, peaks, clipping, silence, speech activity and noise.

One decoding pass feeds two consumers:

- the loudness meter (``loudness``: FFmpeg's ``ebur128``, ITU-R BS.1770 / EBU R128) for
  integrated loudness (LUFS), sample peak and true peak;
- a copy at the native rate as 32-bit float for clipping, and a 16 kHz mono mix-down
  (plus per-channel levels) for speech activity, pauses, digital silence and noise, in
  NumPy over 30 ms frames.

Nothing here judges: ``_rules.voice`` turns these facts into findings.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from .. import limits
from .._local_file import local_file
from .loudness import LoudnessMeter

#: Speech analysis runs on a 16 kHz mono mix-down (the rate lip-sync models use).
ANALYSIS_RATE = 16000
#: Frame length for speech activity.
FRAME_S = 0.03
#: A frame is speech when louder than the noise floor by this much (30 ms of steady noise
#: varies by about 1 dB, so 6 dB keeps noise out and still finds speech in loud noise)...
SPEECH_ABOVE_FLOOR_DB = 6.0
#: ...and louder than this absolute level (a whisper at normal recording level).
SPEECH_MIN_DBFS = -55.0
#: Speech bursts closer than this are one stretch of speech (the gaps between words).
SPEECH_BRIDGE_S = 0.3
#: Samples at or beyond this magnitude are at full scale...
FULL_SCALE = 0.999
#: ...except beyond 1.0 in floating-point PCM, which keeps peaks over full scale intact:
#: those overs are a hot level (a true peak finding), not flat tops.
_FLOAT_PCM = frozenset({"pcm_f32le", "pcm_f32be", "pcm_f64le", "pcm_f64be"})
#: This many full-scale samples in a row are a clipped run (one may be a true peak).
CLIP_RUN = 3
#: Exact-zero stretches at least this long are digital silence.
DIGITAL_SILENCE_S = 0.1
#: Background music: a spectral peak this much (dB) above the mean level of the spectrum
#: within ``TONE_NEIGHBOURHOOD_HZ`` of it is a tone (room noise and breaths have none)...
TONE_PROMINENCE_DB = 12.0
TONE_NEIGHBOURHOOD_HZ = 140.0
#: ...held within one bin (15.6 Hz) for this many frames on each side (3 x 30 ms: a note,
#: not a click), between 100 Hz and 4 kHz (below is mains hum, above is sibilance)...
TONE_HOLD_FRAMES = 3
TONE_BAND_HZ = (100.0, 4000.0)
FFT_SIZE = 1024
#: ...and not a bin whose level varies by less than this (dB, standard deviation) through
#: the gaps: a steady whine or hum is not music.
STEADY_TONE_DB = 3.0
#: Gaps are frames at least this far (s) from speech, so a vowel's tail is not a tone...
GAP_MARGIN_S = 0.06
#: ...and music is only judged on at least this much gap (s) in total.
MIN_GAPS_S = 0.5
#: Only this much is listened to: the service takes at most 120 s, and memory stays
#: bounded (an hour-long file is rejected for its length anyway).
MAX_ANALYSED_S = limits.MAX_DURATION_S + 10


@dataclass(frozen=True)
class AudioAnalysis:
    """What the voice sounds like, measured."""

    duration: float
    sample_rate: int
    channels: int
    #: Integrated loudness (LUFS); None when the voice is too short or all silence.
    loudness_lufs: float | None
    #: Highest sample and true (4x oversampled) peak, dBFS / dBTP.
    sample_peak_dbfs: float | None
    true_peak_dbtp: float | None
    #: Runs of at least ``CLIP_RUN`` full-scale samples.
    clipped_runs: int
    #: Level (dBFS RMS) of each channel, to spot a dead one.
    channel_levels_db: tuple[float, ...]
    #: Speech activity: the share of the clip with speech and the speech stretches (s).
    speech_share: float
    speech_ranges: tuple[tuple[float, float], ...]
    #: Noise floor (dBFS, quietest 10% of frames) and speech level (median speech frame).
    noise_floor_db: float
    speech_level_db: float | None
    #: Stretches (s) of exact digital zero.
    digital_silence: tuple[tuple[float, float], ...] = field(default=())
    #: Total length (s) of the gaps between speech, and which share of it holds tones that
    #: change (music); None when the gaps are too short to tell.
    gaps_s: float = 0.0
    music_share: float | None = None
    #: Median level (dBFS) of the gap frames that hold music.
    music_level_db: float | None = None

    @property
    def snr_db(self) -> float | None:
        if self.speech_level_db is None:
            return None
        return self.speech_level_db - self.noise_floor_db

    @property
    def leading_silence(self) -> float:
        return self.speech_ranges[0][0] if self.speech_ranges else self.duration

    @property
    def trailing_silence(self) -> float:
        return self.duration - self.speech_ranges[-1][1] if self.speech_ranges else self.duration

    @property
    def pauses(self) -> list[tuple[float, float]]:
        """Silences between stretches of speech."""
        return [(a[1], b[0]) for a, b in zip(self.speech_ranges, self.speech_ranges[1:], strict=False)]

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "duration": round(self.duration, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "loudness_lufs": rounded(self.loudness_lufs),
            "sample_peak_dbfs": rounded(self.sample_peak_dbfs),
            "true_peak_dbtp": rounded(self.true_peak_dbtp),
            "clipped_runs": self.clipped_runs,
            "channel_levels_db": [round(v, 1) for v in self.channel_levels_db],
            "speech_share": round(self.speech_share, 3),
            "speech_ranges": [[round(a, 2), round(b, 2)] for a, b in self.speech_ranges],
            "noise_floor_db": round(self.noise_floor_db, 1),
            "speech_level_db": rounded(self.speech_level_db),
            "snr_db": rounded(self.snr_db),
            "digital_silence": [[round(a, 2), round(b, 2)] for a, b in self.digital_silence],
            "gaps_s": round(self.gaps_s, 2),
            "music_share": rounded(self.music_share),
            "music_level_db": rounded(self.music_level_db),
        }


def _db(power: npt.NDArray[np.float64] | float) -> Any:
    return 10 * np.log10(np.maximum(power, 1e-12))


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the True runs in ``mask``."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _clipped_runs(full: npt.NDArray[np.bool_], carry: int) -> tuple[int, int]:
    """Clipped runs that reach ``CLIP_RUN`` in this block (a run that began in the block
    before counts once), and the full-scale samples it ends with."""
    count = 0
    for start, stop in _runs(full):
        before = carry if start == 0 else 0
        if before < CLIP_RUN <= before + stop - start:
            count += 1
    if not full.size or not full[-1]:
        return count, 0
    below = np.flatnonzero(~full)
    return count, (len(full) - int(below[-1]) - 1) if below.size else carry + len(full)


def decoded_audio(container: Any, stream: Any) -> Iterator[Any]:
    """The stream's frames, decoded as FFmpeg's command line does: a packet the decoder
    refuses (the cut-off last frame of a truncated AAC or MP3, a damaged one in the
    middle) is skipped, not fatal to the whole voice."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            continue


#: Resampled audio is packed, not planar: PyAV counts a planar frame's planes by reading
#: FFmpeg's array of plane pointers up to a null one, which from 8 channels on lies past
#: the array's end, and ``to_ndarray`` then copies from wild pointers (a segfault, found by
#: the fuzzer; a plain 8-channel WAV does it). A packed frame has one plane, whatever its
#: channel count.
PACKED_FLOAT = "flt"


def frame_planes(frame: Any) -> npt.NDArray[np.float32]:
    """A packed float frame's samples as planes: (channels, samples)."""
    packed: npt.NDArray[np.float32] = frame.to_ndarray()
    channels = int(frame.layout.nb_channels)
    planes: npt.NDArray[np.float32] = packed.reshape(-1, channels).T
    return planes


def analyse_audio(path: str | os.PathLike[str], stream_index: int | None = None) -> AudioAnalysis | None:
    """Decode the voice once and measure it. None when no audio could be decoded."""
    with av.open(local_file(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0] if stream_index is None else container.streams[stream_index]
        rate = stream.rate or stream.codec_context.sample_rate
        layout = stream.layout.name if stream.layout else "mono"
        channels = stream.channels or 1
        loudness = LoudnessMeter(template=stream)
        native = av.AudioResampler(format=PACKED_FLOAT, layout=layout, rate=rate)
        float_pcm = stream.codec_context.name in _FLOAT_PCM
        speech = av.AudioResampler(format=PACKED_FLOAT, layout=layout, rate=ANALYSIS_RATE)
        clipped_runs = 0
        carry = 0  # full-scale samples (any channel) that ended the previous frame
        blocks: list[npt.NDArray[np.float32]] = []
        # Seconds from the first sound, not from time zero (a voice stamped 3000 s late is
        # still a voice), and samples counted too: timestamps that never advance bound nothing.
        first: float | None = None
        kept, most = 0, MAX_ANALYSED_S * ANALYSIS_RATE
        for frame in decoded_audio(container, stream):
            if frame.time is not None:
                first = frame.time if first is None else first
                if frame.time - first > MAX_ANALYSED_S:
                    break
            if kept > most:
                break
            loudness.push(frame)
            for converted in native.resample(frame):
                size = np.abs(frame_planes(converted))
                at_full = (size >= FULL_SCALE) & (size <= 1.0) if float_pcm else size >= FULL_SCALE
                full = np.asarray(at_full.any(axis=0), dtype=np.bool_)
                counted, carry = _clipped_runs(full, carry)
                clipped_runs += counted
            for block in speech.resample(frame):
                blocks.append(frame_planes(block).astype(np.float32))
                kept += block.samples
        loudness.push(None)
        blocks.extend(frame_planes(f).astype(np.float32) for f in speech.resample(None))
    if not blocks:
        return None
    planes = np.concatenate(blocks, axis=1).astype(np.float64)
    mono = planes.mean(axis=0)
    return _measure(mono, planes, rate, channels, loudness, clipped_runs)


def _measure(
    mono: npt.NDArray[np.float64],
    planes: npt.NDArray[np.float64],
    rate: int,
    channels: int,
    loudness: LoudnessMeter,
    clipped_runs: int,
) -> AudioAnalysis:
    duration = len(mono) / ANALYSIS_RATE
    size = int(FRAME_S * ANALYSIS_RATE)
    count = len(mono) // size
    frames = mono[: count * size].reshape(count, size) if count else np.zeros((1, size))
    level = _db((frames**2).mean(axis=1))  # digital zero reads -120 dB
    zero = np.all(frames == 0.0, axis=1)
    floor, speaking = _speaking(level, zero)
    ranges = _bridged([(a * FRAME_S, b * FRAME_S) for a, b in _runs(speaking)])
    speech_level = float(np.median(level[speaking])) if speaking.any() else None
    silence = [
        (a / ANALYSIS_RATE, b / ANALYSIS_RATE)
        for a, b in _runs(np.asarray(mono == 0.0, dtype=np.bool_))
        if (b - a) / ANALYSIS_RATE >= DIGITAL_SILENCE_S
    ]
    gaps = _gaps(speaking | zero)
    music = _music_frames(mono, size, gaps) if gaps.sum() * FRAME_S >= MIN_GAPS_S else None
    return AudioAnalysis(
        duration=duration,
        sample_rate=rate,
        channels=channels,
        loudness_lufs=loudness.integrated_lufs,
        sample_peak_dbfs=loudness.sample_peak_dbfs,
        true_peak_dbtp=loudness.true_peak_dbtp,
        clipped_runs=clipped_runs,
        channel_levels_db=tuple(float(_db(float((p**2).mean()))) for p in planes),
        speech_share=sum(b - a for a, b in ranges) / duration if duration else 0.0,
        speech_ranges=tuple(ranges),
        noise_floor_db=floor,
        speech_level_db=speech_level,
        digital_silence=tuple(silence),
        gaps_s=float(gaps.sum() * FRAME_S),
        music_share=None if music is None else float(music[gaps].mean()),
        music_level_db=float(np.median(level[music])) if music is not None and music.any() else None,
    )


def _speaking(
    level: npt.NDArray[np.float64], zero: npt.NDArray[np.bool_]
) -> tuple[float, npt.NDArray[np.bool_]]:
    """The noise floor (dBFS) and which frames hold speech."""
    # The quietest tenth of the clip: the room (or the digital silence) between words.
    floor = float(np.percentile(level, 10))
    speaking: npt.NDArray[np.bool_] = (
        (level > floor + SPEECH_ABOVE_FLOOR_DB) & (level > SPEECH_MIN_DBFS) & ~zero
    )
    return floor, speaking


def speech_ranges(
    path: str | os.PathLike[str], max_seconds: float | None = None
) -> tuple[float, tuple[tuple[float, float], ...]]:
    """The length (s) of the whole voice, however long (or of its first ``max_seconds``),
    and its speech stretches (s), as ``analyse_audio`` finds them; for cutting a long job
    at pauses. Only frame levels are kept, so an hour of audio takes a few megabytes."""
    size = int(FRAME_S * ANALYSIS_RATE)
    levels: list[npt.NDArray[np.float64]] = []
    zeros: list[npt.NDArray[np.bool_]] = []
    carry = np.zeros(0)
    samples = 0
    with av.open(local_file(path)) as container:
        if not container.streams.audio:
            return 0.0, ()
        stream = container.streams.audio[0]
        layout = stream.layout.name if stream.layout else "mono"
        speech = av.AudioResampler(format=PACKED_FLOAT, layout=layout, rate=ANALYSIS_RATE)

        def add(mono: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            joined = np.concatenate([carry, mono])
            whole = len(joined) // size
            frames = joined[: whole * size].reshape(whole, size)
            levels.append(_db((frames**2).mean(axis=1)))
            zeros.append(np.all(frames == 0.0, axis=1))
            rest: npt.NDArray[np.float64] = joined[whole * size :]
            return rest

        # Measured ten seconds at a time: per decoded frame, numpy's overhead would dominate.
        batch: list[npt.NDArray[Any]] = []
        batched = 0
        first: float | None = None
        for frame in itertools.chain(decoded_audio(container, stream), [None]):
            if frame is not None and frame.time is not None and first is None:
                first = frame.time  # seconds count from the first sound, as analyse_audio's
            if (
                frame is not None
                and max_seconds is not None
                and (frame.time or 0.0) - (first or 0.0) >= max_seconds
            ):
                frame = None
            for converted in speech.resample(frame):
                batch.append(frame_planes(converted))
                batched += converted.samples
            if batched >= 10 * ANALYSIS_RATE or (frame is None and batch):
                mono = np.concatenate(batch, axis=1).astype(np.float64).mean(axis=0)
                samples += len(mono)
                carry = add(mono)
                batch, batched = [], 0
            if frame is None:
                break
    if not levels or not sum(len(x) for x in levels):
        return samples / ANALYSIS_RATE, ()
    _, speaking = _speaking(np.concatenate(levels), np.concatenate(zeros))
    ranges = _bridged([(a * FRAME_S, b * FRAME_S) for a, b in _runs(speaking)])
    return samples / ANALYSIS_RATE, tuple(ranges)


def _dilated(mask: npt.NDArray[np.bool_], reach: int) -> npt.NDArray[np.bool_]:
    """``mask`` grown by ``reach`` frames on each side."""
    grown: npt.NDArray[np.bool_] = mask.copy()
    for shift in range(1, reach + 1):
        grown[shift:] |= mask[:-shift]
        grown[:-shift] |= mask[shift:]
    return grown


def _gaps(busy: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Frames at least ``GAP_MARGIN_S`` from speech (or digital zero, where there is
    nothing to hear)."""
    gaps: npt.NDArray[np.bool_] = ~_dilated(busy, round(GAP_MARGIN_S / FRAME_S))
    return gaps


def _music_frames(
    mono: npt.NDArray[np.float64], hop: int, gaps: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Which frames hold a held tone that is not the same steady tone all along.

    Only the gap frames (and their neighbours, for the hold) are transformed: 60 ms
    Hann windows, one per 30 ms frame, so a frame's window covers it and the next.
    """
    count = len(gaps)
    hold = TONE_HOLD_FRAMES
    frames = np.flatnonzero(_dilated(gaps, hold))
    window = 2 * hop
    padded = np.concatenate([mono, np.zeros(window)])
    chunks = padded[(frames * hop)[:, None] + np.arange(window)[None, :]] * np.hanning(window)
    bin_hz = ANALYSIS_RATE / FFT_SIZE
    low, high = (round(f / bin_hz) for f in TONE_BAND_HZ)
    reach = round(TONE_NEIGHBOURHOOD_HZ / bin_hz)
    # Only the band and its neighbourhood are needed; zero-padded to a power of two (faster).
    spectrum = np.fft.rfft(chunks, n=FFT_SIZE, axis=1)[:, max(0, low - reach) : high + reach]
    power = _db(spectrum.real**2 + spectrum.imag**2)
    if low < reach:
        power = np.pad(power, ((0, 0), (reach - low, 0)), "edge")
    # Peaks: local maxima standing out of the level (dB) of their neighbourhood: its mean,
    # taken again without what stands 3 dB over it, so a comb of harmonics does not
    # raise its own reference (as robust as a median here, and ten times faster).
    width = 2 * reach + 1

    def moving_mean(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        sums = np.cumsum(np.pad(values, ((0, 0), (1, 0))), axis=1)
        return np.asarray((sums[:, width:] - sums[:, :-width]) / width)

    rough = np.pad(moving_mean(power), ((0, 0), (reach, reach)), "edge")
    local = moving_mean(np.minimum(power, rough + 3.0))
    band = power[:, reach:-reach]
    prominence = band - local
    peak = (band >= np.roll(band, 1, axis=1)) & (band >= np.roll(band, -1, axis=1))
    peak &= prominence > TONE_PROMINENCE_DB
    tones = np.zeros((count, high - low), dtype=np.bool_)
    tones[frames] = peak
    # Within one bin, held for ``hold`` frames before and after.
    wide = tones | np.roll(tones, 1, axis=1) | np.roll(tones, -1, axis=1)
    held = tones.copy()
    for shift in range(1, hold + 1):
        held[shift:] &= wide[:-shift]
        held[:shift] = False
        held[:-shift] &= wide[shift:]
        held[-shift:] = False
    # A bin whose level hardly moves through the gaps holds a steady whine or hum, not
    # music: notes come and go (10 dB and more), noise alone wavers by 5.6 dB.
    in_gaps = gaps[frames]
    steady = band[in_gaps].std(axis=0) < STEADY_TONE_DB if in_gaps.sum() > 1 else np.zeros(high - low, bool)
    steady = steady | np.roll(steady, 1) | np.roll(steady, -1)
    music: npt.NDArray[np.bool_] = (held & ~steady).any(axis=1) & gaps
    return music


def _bridged(ranges: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, stop in ranges:
        if merged and start - merged[-1][1] < SPEECH_BRIDGE_S:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    # A lone click is no speech.
    return [(a, b) for a, b in merged if b - a >= 0.1]
