"""The voice, measured, turned into findings: is it the "clear, loud human voice" the
service asks for?

Every threshold is ours (the service gives none). The tunable ones are ``AudioThresholds``
(``thresholds``), each with its reason there; the detector's own lines live here.
"""

from __future__ import annotations

import dataclasses

from .._models import Finding
from .._probe.voice import AudioAnalysis
from .finding import finding
from .thresholds import AudioThresholds
from .words import percent

#: The default quiet line (LUFS); the rules read ``AudioThresholds.quiet_lufs`` from the
#: caller's thresholds.
QUIET_LUFS = AudioThresholds.quiet_lufs
#: Background music counts only when no more than this much (dB) under the voice:
#: fainter, it does not move the lips.
MUSIC_MAX_BELOW_SPEECH_DB = 30.0
#: A channel this much (dB) quieter than the loudest is dead: mixing down halves the voice.
DEAD_CHANNEL_DB = 30.0


#: The codes this analysis can give (when none is selected, the voice is not decoded).
AUDIO_CONTENT_CODES = (
    "Audio.Quiet",
    "Audio.Clipping",
    "Audio.NoSpeech",
    "Audio.MostlySilence",
    "Audio.LongSilence",
    "Audio.Noisy",
    "Audio.Music",
    "Audio.LowSampleRate",
    "Audio.SilentChannel",
    "Audio.Unchecked",
)


def audio_unchecked(reason: str) -> Finding:
    return finding("Audio.Unchecked", f"The voice could not be analysed: {reason}.", error=reason)


def _span(ranges: list[tuple[float, float]]) -> str:
    shown = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in ranges[:4])
    return shown + (f" and {len(ranges) - 4} more" if len(ranges) > 4 else "")


_DEFAULT = AudioThresholds()


def audio_content_findings(analysis: AudioAnalysis, thresholds: AudioThresholds = _DEFAULT) -> list[Finding]:
    speech = _speech_findings(analysis, thresholds)
    formats = _format_findings(analysis, thresholds)
    if any(f.code == "Audio.NoSpeech" for f in speech):
        return speech + formats  # how loud or clean nothing is, is moot
    return _level_findings(analysis, thresholds) + speech + formats


def _level_findings(a: AudioAnalysis, t: AudioThresholds) -> list[Finding]:
    findings: list[Finding] = []
    if a.loudness_lufs is not None and a.loudness_lufs < t.quiet_lufs:
        findings.append(
            finding(
                "Audio.Quiet",
                f"The voice is quiet: {a.loudness_lufs:.1f} LUFS integrated (want at least "
                f"{t.quiet_lufs:g}; speech is usually -23 to -16). preflight fix normalises it.",
                fixable=True,
                loudness_lufs=round(a.loudness_lufs, 2),
                min_lufs=t.quiet_lufs,
            )
        )
    hot = a.true_peak_dbtp is not None and a.true_peak_dbtp > t.max_true_peak_dbtp
    peak = "unmeasured" if a.true_peak_dbtp is None else f"{a.true_peak_dbtp:+.1f} dBTP"
    if a.clipped_runs:
        findings.append(
            finding(
                "Audio.Clipping",
                f"The voice clips: {a.clipped_runs} run(s) of flat-topped samples at full scale, "
                f"true peak {peak} (want at most {t.max_true_peak_dbtp:+g}). Clipping is "
                "distortion no fix can undo; record or export it again with more headroom "
                "(preflight fix brings the peaks down, so the service's encode adds no more).",
                clipped_runs=a.clipped_runs,
                true_peak_dbtp=None if a.true_peak_dbtp is None else round(a.true_peak_dbtp, 2),
                max_true_peak_dbtp=t.max_true_peak_dbtp,
            )
        )
    elif hot:
        findings.append(
            finding(
                "Audio.Clipping",
                f"The voice's true peak is {peak} (want at most {t.max_true_peak_dbtp:+g}): it "
                "distorts once encoded. preflight fix limits the peaks.",
                fixable=True,
                clipped_runs=0,
                true_peak_dbtp=None if a.true_peak_dbtp is None else round(a.true_peak_dbtp, 2),
                max_true_peak_dbtp=t.max_true_peak_dbtp,
            )
        )
    return findings


def clipping_left(before: Finding, true_peak_dbtp: float | None) -> Finding:
    """``Audio.Clipping`` of a fixed voice whose input clipped: lowering the peaks took the
    flat tops off full scale, where the check finds them, but not the distortion."""
    runs = before.details.get("clipped_runs", 0)
    after = "" if true_peak_dbtp is None else f" to {true_peak_dbtp:+.1f} dBTP"
    return dataclasses.replace(
        before,
        message=f"The voice clipped before the fix ({runs} run(s) of flat-topped samples at full "
        f"scale); the fix brought its peaks down{after}, but no fix undoes distortion already "
        "recorded. Record or export it again with more headroom.",
        fixable=False,
        details={**before.details, "true_peak_dbtp_after_fix": true_peak_dbtp},
    )


def _speech_findings(a: AudioAnalysis, t: AudioThresholds) -> list[Finding]:
    findings: list[Finding] = []
    if a.speech_share < t.no_speech_share:
        return [
            finding(
                "Audio.NoSpeech",
                f"No speech found: only {a.speech_share:.0%} of the {a.duration:.1f} s sounds like "
                "a voice; the service would keep the mouth closed throughout.",
                speech_share=round(a.speech_share, 3),
                min_speech_share=t.no_speech_share,
            )
        ]
    if a.speech_share < t.mostly_silence_share:
        findings.append(
            finding(
                "Audio.MostlySilence",
                f"Mostly silence: speech fills {a.speech_share:.0%} of the clip, want at least "
                f"{percent(t.mostly_silence_share)} (leading {a.leading_silence:.1f} s, trailing "
                f"{a.trailing_silence:.1f} s); the mouth stays closed in the silences. Trim them.",
                speech_share=round(a.speech_share, 3),
                min_speech_share=t.mostly_silence_share,
                leading_s=round(a.leading_silence, 2),
                trailing_s=round(a.trailing_silence, 2),
            )
        )
    silences = [(0.0, a.leading_silence), *a.pauses, (a.duration - a.trailing_silence, a.duration)]
    long = [(x, y) for x, y in silences if y - x > t.long_silence_s]
    if long:
        findings.append(
            finding(
                "Audio.LongSilence",
                f"Silence longer than {t.long_silence_s:g} s at {_span(long)}; a face that long with "
                "its mouth shut looks frozen.",
                ranges=[[round(x, 2), round(y, 2)] for x, y in long],
                max_silence_s=t.long_silence_s,
            )
        )
    snr = a.snr_db
    if snr is not None and snr < t.min_snr_db:
        findings.append(
            finding(
                "Audio.Noisy",
                f"The voice is noisy: speech stands {snr:.0f} dB above the noise floor "
                f"({a.noise_floor_db:.0f} dBFS; want at least {t.min_snr_db:g} dB). The model "
                "moves the mouth on noise too. preflight fix denoises it.",
                fixable=True,
                snr_db=round(snr, 1),
                noise_floor_db=round(a.noise_floor_db, 1),
                min_snr_db=t.min_snr_db,
            )
        )
    music = _musicfinding(a, t)
    if music is not None:
        findings.append(music)
    return findings


def _musicfinding(a: AudioAnalysis, t: AudioThresholds) -> Finding | None:
    """Always a warning: a heuristic (a bird, a phone or a TV can hold tones too)."""
    if a.music_share is None or a.music_level_db is None or a.speech_level_db is None:
        return None
    below = a.speech_level_db - a.music_level_db
    if a.music_share < t.music_share or below > MUSIC_MAX_BELOW_SPEECH_DB:
        return None
    return finding(
        "Audio.Music",
        f"Background music, or another tonal sound, fills {a.music_share:.0%} of the pauses "
        f"between speech ({a.music_level_db:.0f} dBFS, {below:.0f} dB under the voice); the "
        "service asks for a voice without music, and the model may move the lips to it. Use "
        "a voice-only recording or stem.",
        music_share=round(a.music_share, 3),
        music_level_db=round(a.music_level_db, 1),
        below_voice_db=round(below, 1),
        gaps_s=round(a.gaps_s, 2),
        min_share=t.music_share,
    )


def _format_findings(a: AudioAnalysis, t: AudioThresholds) -> list[Finding]:
    findings: list[Finding] = []
    if a.sample_rate < t.min_sample_rate:
        findings.append(
            finding(
                "Audio.LowSampleRate",
                f"Sampled at {a.sample_rate} Hz (want at least {t.min_sample_rate}; 8 kHz is "
                "telephone quality); the sounds that shape s, f and t are gone. Use the original "
                "recording.",
                sample_rate=a.sample_rate,
                min_sample_rate=t.min_sample_rate,
            )
        )
    levels = a.channel_levels_db
    if len(levels) > 1 and min(levels) < max(levels) - DEAD_CHANNEL_DB:
        dead = levels.index(min(levels))
        findings.append(
            finding(
                "Audio.SilentChannel",
                f"Channel {dead + 1} of {len(levels)} is silent ({levels[dead]:.0f} dBFS against "
                f"{max(levels):.0f}); mixed down, the voice loses half its level. preflight fix "
                "keeps the live channel.",
                fixable=True,
                channel_levels_db=[round(v, 1) for v in levels],
            )
        )
    return findings
