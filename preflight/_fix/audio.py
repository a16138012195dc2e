"""Fixing the voice: plan the least change that makes an audio file pass, then write it.

``plan_audio`` reads what ``check_audio`` found and decides; ``write_audio`` carries the plan
out with PyAV. Three ways to write, cheapest first:

- nothing (an empty plan): the file already passes and is copied byte for byte elsewhere;
- ``remux``: the compressed packets as they are, into the right container (a raw AAC or
  MP3 stream, or PCM, under the wrong name): no quality lost;
- ``encode``: decode (bounded to a little over what the output needs), change the samples in
  NumPy (resample, channels, denoise, loudness, length) and write 16-bit PCM WAV. WAV is
  lossless against the decoded voice, and at 48 kHz stereo 120 s is 22 MiB: always under
  the 30 MiB limit, so no lossy bitrate has to be picked.

Every step on the samples keeps the voice sample-aligned with its input (no filter delay,
padding only at the end), so lips stay in sync. For the same reason AAC or MP3 inside an
MP4, MOV or Matroska file is decoded, not copied: raw ADTS cannot tell a player to skip the
encoder's priming samples (1024 at the start: 23 ms at 44.1 kHz, 64 ms at 16 kHz) as those
containers do.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.filter
import numpy as np
import numpy.typing as npt

from .. import limits
from .._local_file import local_file
from .._models import FileReport, MediaInfo
from .._probe.voice import AudioAnalysis, decoded_audio
from .._rules.thresholds import AudioThresholds
from .._rules.voice import DEAD_CHANNEL_DB
from .model import Action, FixOptions

Planes = npt.NDArray[np.float64]  # (channels, samples), floats in -1..1

#: The highest rate we write; above it nothing audible to a voice is kept, only bytes.
#: (``AudioThresholds.min_sample_rate`` goes no higher, so a resampled voice passes.)
MAX_SAMPLE_RATE = 48000
_DEFAULT_THRESHOLDS = AudioThresholds()
#: Stereo whose channels correlate more than this carries one voice twice: mono keeps it
#: all, in half the bytes.
SAME_VOICE_CORRELATION = 0.9
#: ...measured on this much of the start (s).
CORRELATION_S = 30.0
#: A mix-down that would clip is scaled to peak here instead (-1 dBFS).
MIX_PEAK = 10 ** (-1 / 20)
#: Room tone (padding) is never quieter than this (dBFS RMS): a noise floor measured as
#: digital silence still gets a faint hiss, never exact zeros (about 8 LSB RMS in 16 bits).
ROOM_TONE_MIN_DB = -72.0
#: Fade at a cut (s), so trimming mid-word does not click.
FADE_S = 0.01
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
#: Limiter: the gain curve reaches its full reduction within this (s) before a peak and
#: recovers as slowly after it; offline, so it looks ahead with no delay.
LIMITER_RAMP_S = 0.01
#: Head-room kept under the true-peak ceiling by the sample-peak limiter (dB) on its first
#: try; the true peak is then measured and the limiter tightened if it is still over.
LIMITER_MARGIN_DB = 0.3
#: Loudness within this (LU) of the target needs no further gain round.
LOUDNESS_TOLERANCE_LU = 0.3
#: Decoding stops this far (s) past what the output needs.
DECODE_MARGIN_S = 1.0
#: A voice is brought down (``loudnorm``) when its true peak is above this (dBTP): the
#: service re-encodes the voice into its result, and a lossy encode overshoots peaks this
#: close to full scale (EBU R128 s1 and AES TD1004 give -1 dBTP as the most for lossy
#: delivery). Its peaks are limited to this, or to ``FixOptions.true_peak_dbtp`` if lower...
HOT_TRUE_PEAK_DBTP = -1.0
#: ...or when its loudness is above this (LUFS): 6 LU over online speech (-16), beyond any
#: speech norm; only heavy limiting or clipping gets a voice there.
LOUD_LUFS = -10.0

_REMUX_FORMATS = {"aac": ("adts", ".aac"), "mp3": ("mp3", ".mp3")}
#: FFmpeg demuxers of raw streams (no edit lists): packets copy out of them exactly.
_RAW_CONTAINERS = frozenset({"aac", "mp3"})
#: FFmpeg demuxer of an accepted audio file -> muxer and extension to write it with.
_ACCEPTED_OUTPUT = {"wav": ("wav", ".wav"), "mp3": ("mp3", ".mp3"), "aac": ("adts", ".aac")}
_WAV_CODEC = "pcm_s16le"


@dataclass(frozen=True)
class AudioPlan:
    """What to do with one voice file, and how to write it."""

    actions: tuple[Action, ...]
    #: Extension of the output: ".wav", ".mp3" or ".aac" (the input's own when no action).
    extension: str
    #: Why no compliant output can be made (then nothing is written).
    unfixable: str | None = None
    #: ``remux``: copy the packets into ``muxer``; ``encode``: decode and write 16-bit WAV.
    mode: Literal["copy", "remux", "encode"] = "copy"
    muxer: str | None = None
    stream_index: int = 0
    #: Output sample rate (``encode``).
    sample_rate: int = 0
    #: Channels: None keeps them (mono or stereo); ``"mix"`` makes mono (stereo averaged,
    #: more channels through FFmpeg's surround matrix); a number keeps that channel
    #: (0-based) alone.
    channels: int | Literal["mix"] | None = None
    #: Output length in seconds (trim or pad to it); None keeps the decoded length.
    length_s: float | None = None
    denoise: bool = False
    #: Loudness target (LUFS) and true-peak ceiling (dBTP); None leaves the level alone.
    loudness_lufs: float | None = None
    true_peak_dbtp: float = 0.0
    #: The target only ever lowers the loudness (a hot voice quieter than the target keeps
    #: its loudness and only has its peaks limited).
    loudness_only_down: bool = False
    #: How long the input is expected to be (s), for progress.
    source_duration: float | None = None
    #: The longest voice written; None keeps any length (a job sent in parts).
    max_length_s: float | None = limits.MAX_DURATION_S


# --------------------------------------------------------------------------- planning
def plan_audio(
    report: FileReport,
    options: FixOptions,
    *,
    duration: float | None = None,
    thresholds: AudioThresholds = _DEFAULT_THRESHOLDS,
) -> AudioPlan:
    """The least change that makes the voice pass (and last ``duration`` s when given),
    judged by the ``thresholds`` it was checked with."""
    info = report.media
    own_ext = Path(report.path).suffix.lower()
    if not isinstance(info, MediaInfo) or not info.opened:
        reason = info.error if isinstance(info, MediaInfo) else "it is not an audio or video file"
        return AudioPlan((), own_ext, unfixable=f"the file cannot be opened: {reason}")
    if not info.audio:
        return AudioPlan((), own_ext, unfixable="the file has no audio stream")
    codes = {f.code for f in report.findings}
    if "InvalidFile.Openerror" in codes:
        opened = next(f for f in report.findings if f.code == "InvalidFile.Openerror")
        return AudioPlan((), own_ext, unfixable=opened.message)
    stream = info.audio[0]
    rate, channels = stream.sample_rate or 0, stream.channels or 1
    source_s = stream.duration if stream.duration is not None else info.duration
    speech = report.speech

    changes: list[Action] = []  # steps on the samples; any of them means decoding
    length_s = _target_length(source_s, duration, rate, options.max_duration_s)
    if length_s is not None and source_s is not None:
        verb = "trim" if length_s < source_s else "pad"
        why = ("InvalidFile.Duration",) if "InvalidFile.Duration" in codes else ()
        how = "" if verb == "trim" else " with room tone"
        changes.append(Action(verb, f"{source_s:.3f} s -> {length_s:.3f} s{how}", why))
    elif length_s is not None:
        changes.append(Action("trim", f"cut or padded to {length_s:.3f} s (the header gives no length)"))
    if "Audio.Noisy" in codes and options.denoise and speech is not None:
        snr = f", speech {speech.snr_db:.0f} dB over the noise" if speech.snr_db is not None else ""
        changes.append(
            Action("denoise", f"noise floor {speech.noise_floor_db:.0f} dBFS{snr}", ("Audio.Noisy",))
        )
    if "Audio.Quiet" in codes and options.normalize:
        measured = speech.loudness_lufs if speech is not None else None
        before = f"{measured:.1f} LUFS -> " if measured is not None else ""
        changes.append(
            Action(
                "loudnorm",
                f"{before}{options.target_lufs:.1f} LUFS, true peak <= {options.true_peak_dbtp:.1f} dBTP",
                ("Audio.Quiet",),
            )
        )
    hot = _hot_voice_step(speech, codes, options)
    if hot is not None:
        changes.append(hot)
    # Re-encoding for a reason of its own: a codec or container the service cannot read
    # and no clean packet copy, too big, or no duration in the header.
    # Packets are copied only out of a raw stream under the wrong name. Out of MP4, MOV or
    # Matroska they are decoded instead: those containers tell the decoder to skip the
    # encoder's priming samples, raw ADTS/MP3 cannot, and the voice would start 21-64 ms
    # late (more than a frame at 16 kHz). 16-bit WAV loses nothing and always fits.
    remuxable = stream.codec in _REMUX_FORMATS and info.container in _RAW_CONTAINERS
    accepted = limits.AUDIO_CONTAINER_CODECS.get(info.container or "", frozenset())
    format_ok = not info.video and stream.codec in accepted
    needs_encode = bool(changes) or not (format_ok or remuxable)
    needs_encode |= bool(codes & {"InvalidFile.Size", "Audio.DurationUnknown"})
    needs_encode |= "Audio.LowSampleRate" in codes or "Audio.SilentChannel" in codes

    if not needs_encode:
        return _plan_without_encoding(info, codes, own_ext, format_ok)

    out_rate = min(max(rate, thresholds.min_sample_rate), MAX_SAMPLE_RATE)
    steps = _container_steps(info, codes, stream.codec)
    if out_rate != rate:
        why = ("Audio.LowSampleRate",) if "Audio.LowSampleRate" in codes else ()
        steps.append(Action("resample", f"{rate} Hz -> {out_rate} Hz", why))
    mix, channel_step = _channel_plan(report, stream.index, channels, codes)
    if channel_step is not None:
        steps.append(channel_step)
    return AudioPlan(
        actions=tuple(steps + changes),
        extension=".wav",
        mode="encode",
        muxer="wav",
        stream_index=stream.index,
        sample_rate=out_rate,
        channels=mix,
        length_s=length_s,
        denoise=any(a.name == "denoise" for a in changes),
        loudness_lufs=options.target_lufs if any(a.name == "loudnorm" for a in changes) else None,
        true_peak_dbtp=options.true_peak_dbtp if hot is None else _hot_ceiling(options),
        loudness_only_down=hot is not None,
        source_duration=source_s,
        max_length_s=options.max_duration_s,
    )


def _hot_ceiling(options: FixOptions) -> float:
    return min(options.true_peak_dbtp, HOT_TRUE_PEAK_DBTP)


def _hot_voice_step(speech: AudioAnalysis | None, codes: set[str], options: FixOptions) -> Action | None:
    """``loudnorm`` bringing down a voice whose true peak or loudness is too high (the
    quiet path, ``Audio.Quiet``, has its own step); None when it is in range, not
    measured, or ``--no-normalize``."""
    if not options.normalize or "Audio.Quiet" in codes or speech is None:
        return None
    loudness, peak = speech.loudness_lufs, speech.true_peak_dbtp
    if loudness is None or peak is None or (peak <= HOT_TRUE_PEAK_DBTP and loudness <= LOUD_LUFS):
        return None
    ceiling = _hot_ceiling(options)
    if loudness > options.target_lufs:
        level = f"loudness {loudness:.1f} -> {options.target_lufs:.1f} LUFS"
    else:  # never louder than it was: the peaks alone come down
        level = f"loudness {loudness:.1f} LUFS kept"
    why = ("Audio.Clipping",) if "Audio.Clipping" in codes else ()
    return Action("loudnorm", f"{level}, true peak {peak:+.2f} -> {ceiling:.1f} dBTP", why)


def _target_length(
    source_s: float | None, duration: float | None, rate: int, longest: float | None
) -> float | None:
    """The output length when it must change, else None (``longest``: None for no limit)."""
    low, high = limits.MIN_DURATION_S, longest if longest is not None else float("inf")
    if duration is not None:
        wanted = min(max(duration, low), high)  # never ask for a length the service refuses
        within_a_sample = source_s is not None and abs(source_s - wanted) * max(rate, 1) < 1.0
        return None if within_a_sample else wanted
    if source_s is None:
        return None  # unknown: re-encoding writes it down, and cuts at the maximum
    shown = round(source_s, 3)  # as the rules compare it
    return low if shown < low else high if shown > high else None


def _plan_without_encoding(info: MediaInfo, codes: set[str], own_ext: str, format_ok: bool) -> AudioPlan:
    """Packets are fine: copy the file, or copy its packets into the right container."""
    stream = info.audio[0]
    if format_ok:
        muxer, ext = _ACCEPTED_OUTPUT[info.container or ""]
        if ext == own_ext:
            return AudioPlan((), own_ext)
        why = tuple(sorted(codes & {"Audio.ExtensionMismatch", "InvalidFile.Format"}))
        detail = f"{stream.codec} into {ext} (no re-encoding): the extension {own_ext or '(none)'} is wrong"
        return AudioPlan(
            (Action("remux", detail, why),), ext, mode="remux", muxer=muxer, stream_index=stream.index
        )
    muxer, ext = _REMUX_FORMATS[stream.codec or ""]
    why = tuple(sorted(codes & {"InvalidFile.Format", "Audio.MultipleStreams"}))
    kind = "ADTS" if muxer == "adts" else "MP3"
    what = f"{stream.codec} stream #{stream.index} copied into raw {kind} {ext}, no re-encoding"
    verb = "extract" if info.video else "remux"
    return AudioPlan(
        (Action(verb, f"{what} (from {_container_label(info)})", why),),
        ext,
        mode="remux",
        muxer=muxer,
        stream_index=stream.index,
        source_duration=stream.duration or info.duration,
    )


def _container_label(info: MediaInfo) -> str:
    return f"{'video' if info.video else 'audio'} in {(info.container or '?').split(',')[0].upper()}"


def _container_steps(info: MediaInfo, codes: set[str], codec: str | None) -> list[Action]:
    """How the container and codec change on the way to 16-bit WAV."""
    fmt = {"InvalidFile.Format", "Audio.ExtensionMismatch", "Audio.MultipleStreams"} & codes
    why = tuple(sorted(fmt | ({"InvalidFile.Size", "Audio.DurationUnknown"} & codes)))
    if info.video:
        return [
            Action("extract", f"the first audio stream ({codec}) of the {_container_label(info)}", why),
            Action("convert", f"{codec} -> WAV PCM 16-bit"),
        ]
    if info.container == "wav" and codec == _WAV_CODEC:
        return [Action("reencode", "WAV PCM 16-bit written anew", why)] if why else []
    verb = "reencode" if info.container == "wav" else "convert"
    container = (info.container or "?").split(",")[0]
    named = codec if container == codec else f"{container} {codec}"
    return [Action(verb, f"{named} -> WAV PCM 16-bit", why)]


def _channel_plan(
    report: FileReport, index: int, channels: int, codes: set[str]
) -> tuple[int | Literal["mix"] | None, Action | None]:
    """Which channels to write: a dead one dropped, the same voice twice made mono, more
    than two mixed down."""
    speech = report.speech
    levels = speech.channel_levels_db if speech is not None else ()
    if not levels:
        found = next((f for f in report.findings if f.code == "Audio.SilentChannel"), None)
        levels = tuple(found.details.get("channel_levels_db", ())) if found is not None else ()
    if "Audio.SilentChannel" in codes and len(levels) == 2:
        live = int(np.argmax(levels))
        detail = f"keep channel {live + 1} alone (channel {2 - live} is silent: {min(levels):.0f} dBFS)"
        return live, Action("downmix", detail, ("Audio.SilentChannel",))
    if channels > 2:
        why = ("Audio.SilentChannel",) if "Audio.SilentChannel" in codes else ()
        return "mix", Action("downmix", f"{channels} channels -> mono", why)
    if channels == 2:
        correlation = _stereo_correlation(report.path, index)
        if correlation is not None and correlation >= SAME_VOICE_CORRELATION:
            detail = f"stereo -> mono (the channels carry the same voice: correlation {correlation:.2f})"
            return "mix", Action("downmix", detail)
    return None, None


def _stereo_correlation(path: str, index: int) -> float | None:
    """Correlation of the two channels over (at most) the first ``CORRELATION_S``."""
    try:
        planes = _decode(path, index, None, CORRELATION_S, None, None)[0]
    except (av.FFmpegError, ValueError):
        return None
    if planes.shape[0] != 2 or planes.shape[1] == 0:
        return None
    left, right = planes
    power = math.sqrt(float(left @ left) * float(right @ right))
    if power == 0.0:
        return None
    # A channel much quieter than the other is the dead-channel case, not the same voice.
    levels = 10 * np.log10(np.maximum((planes**2).mean(axis=1), 1e-12))
    if abs(levels[0] - levels[1]) > DEAD_CHANNEL_DB:
        return None
    return float(left @ right) / power


# --------------------------------------------------------------------------- writing
def write_audio(
    plan: AudioPlan,
    source: str,
    target: Path,
    on_progress: Callable[[float], None] | None = None,
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


def _remux(plan: AudioPlan, source: str, target: Path, on_progress: Callable[[float], None] | None) -> None:
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


def _encode(plan: AudioPlan, source: str, target: Path, on_progress: Callable[[float], None] | None) -> None:
    rate = plan.sample_rate
    wanted = round(plan.length_s * rate) if plan.length_s is not None else None
    # Enough for the output, never much more than the service takes.
    longest = plan.length_s or plan.max_length_s
    bound = longest + DECODE_MARGIN_S if longest is not None else float("inf")
    planes, _ = _decode(
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
    planes = _fit_length(planes, rate, wanted)
    if plan.loudness_lufs is not None:
        planes = normalise_loudness(
            planes, rate, plan.loudness_lufs, plan.true_peak_dbtp, only_down=plan.loudness_only_down
        )
    _write_wav(planes, rate, target)


def _decode(
    path: str,
    index: int,
    rate: int | None,
    max_s: float,
    expected_s: float | None,
    on_progress: Callable[[float], None] | None,
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


def _fit_length(planes: Planes, rate: int, wanted: int) -> Planes:
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


def _write_wav(planes: Planes, rate: int, target: Path) -> None:
    layout = "mono" if planes.shape[0] == 1 else "stereo"
    pcm = np.round(np.clip(planes, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    interleaved = np.ascontiguousarray(pcm.T).reshape(1, -1)
    with av.open(local_file(target), "w", format="wav") as out:
        stream = out.add_stream(_WAV_CODEC, rate=rate, layout=layout)
        chunk = 4096
        for start in range(0, pcm.shape[1], chunk):
            part = interleaved[:, start * pcm.shape[0] : (start + chunk) * pcm.shape[0]]
            frame = av.AudioFrame.from_ndarray(part, format="s16", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


# --------------------------------------------------------------------------- denoising
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


# --------------------------------------------------------------------------- loudness
def measure_loudness(planes: Planes, rate: int) -> tuple[float | None, float | None]:
    """Integrated loudness (LUFS) and true peak (dBTP) by FFmpeg's ebur128, the meter the
    check uses."""
    layout = "mono" if planes.shape[0] == 1 else "stereo"
    graph = av.filter.Graph()
    source = graph.add_abuffer(format="fltp", sample_rate=rate, layout=layout, time_base=Fraction(1, rate))
    meter = graph.add("ebur128", "metadata=1:peak=true")
    sink = graph.add("abuffersink")
    source.link_to(meter)
    meter.link_to(sink)
    graph.configure()
    totals: dict[str, str] = {}
    for frame in _frames(planes.astype(np.float32), rate, layout):
        graph.push(frame)
        totals = _drain(graph, totals)
    graph.push(None)
    totals = _drain(graph, totals)

    def value(key: str) -> float | None:
        try:
            return float(totals[key])
        except (KeyError, ValueError):
            return None

    loudness, peak = value("lavfi.r128.I"), value("lavfi.r128.true_peak")
    return (
        None if loudness is None or loudness <= -70.0 else loudness,
        None if peak is None or peak <= 0 else 20 * math.log10(peak),
    )


def _frames(planes: npt.NDArray[np.float32], rate: int, layout: str) -> Iterator[Any]:
    for start in range(0, planes.shape[1], 4096):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planes[:, start : start + 4096]), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        yield frame


def _drain(graph: Any, totals: dict[str, str]) -> dict[str, str]:
    while True:
        try:
            frame = graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return totals
        if frame.metadata:
            totals = dict(frame.metadata)


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
