"""The voice planner: the least change that makes an audio file pass.

``plan_audio`` reads what ``check_audio`` found and decides how to write (``write``), the
cheapest way first:

- nothing (an empty plan): the file already passes and is copied byte for byte elsewhere;
- ``remux``: the compressed packets as they are, into the right container (a raw AAC or
  MP3 stream, or PCM, under the wrong name): no quality lost;
- ``encode``: decode, change the samples (resample, channels, denoise, loudness, length)
  and write 16-bit PCM WAV. WAV is lossless against the decoded voice, and at 48 kHz
  stereo 120 s is 22 MiB: always under the 30 MiB limit, so no lossy bitrate has to be
  picked.

AAC or MP3 inside an MP4, MOV or Matroska file is decoded, not copied: raw ADTS cannot
tell a player to skip the encoder's priming samples (1024 at the start: 23 ms at 44.1 kHz,
64 ms at 16 kHz) as those containers do, and lips must stay in sync.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np

from ... import limits
from ..._models import FileReport, MediaInfo
from ..._probe.voice import AudioAnalysis
from ..._rules.thresholds import AudioThresholds
from ..._rules.voice import DEAD_CHANNEL_DB
from ..model import Action, FixOptions, finding_codes
from .samples import WAV_CODEC, decode_planes

#: The highest rate we write; above it nothing audible to a voice is kept, only bytes.
#: (``AudioThresholds.min_sample_rate`` goes no higher, so a resampled voice passes.)
MAX_SAMPLE_RATE = 48000
_DEFAULT_THRESHOLDS = AudioThresholds()
#: Stereo whose channels correlate more than this carries one voice twice: mono keeps it
#: all, in half the bytes.
SAME_VOICE_CORRELATION = 0.9
#: ...measured on this much of the start (s).
CORRELATION_S = 30.0
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
    codes = finding_codes(report)
    if "InvalidFile.Openerror" in codes:
        opened = next(f for f in report.findings if f.code == "InvalidFile.Openerror")
        return AudioPlan((), own_ext, unfixable=opened.message)
    stream = info.audio[0]
    rate, channels = stream.sample_rate or 0, stream.channels or 1
    source_s = info.stream_length("audio")
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
    if info.container == "wav" and codec == WAV_CODEC:
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
        planes = decode_planes(path, index, None, CORRELATION_S, None, None)[0]
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
