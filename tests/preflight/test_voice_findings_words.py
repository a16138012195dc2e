"""What the report says about a measured voice, in words and numbers: the findings made
from a voice's measurements (loudness, peaks, speech stretches), given as facts."""

from __future__ import annotations

from dataclasses import replace

from preflight import AudioThresholds, Finding
from preflight._probe.voice import AudioAnalysis
from preflight._rules.voice import audio_content_findings, audio_unchecked, clipping_left
from tests.preflight.clean_voice import HEARD

# The clean voice at 16 kHz for 36 s: six words of 1 s, each 6 s after the last.
SPACED = replace(
    HEARD,
    duration=36.0,
    sample_rate=16000,
    speech_share=0.9,
    speech_ranges=((0.0, 1.0), (7.0, 8.0), (14.0, 15.0), (21.0, 22.0), (28.0, 29.0), (35.0, 36.0)),
)


def by_code(analysis: AudioAnalysis, code: str) -> list[Finding]:
    return [f for f in audio_content_findings(analysis) if f.code == code]


def test_five_long_silences_show_the_first_four_and_count_the_rest() -> None:
    (finding,) = by_code(SPACED, "Audio.LongSilence")
    assert finding.message == (
        "Silence longer than 5 s at 1.0-7.0 s, 8.0-14.0 s, 15.0-21.0 s, 22.0-28.0 s and 1 more; "
        "a face that long with its mouth shut looks frozen."
    )
    assert len(finding.details["ranges"]) == 5


def test_four_long_silences_are_all_shown_with_nothing_more() -> None:
    four = replace(SPACED, duration=29.0, speech_ranges=SPACED.speech_ranges[:5])
    (finding,) = by_code(four, "Audio.LongSilence")
    assert "at 1.0-7.0 s, 8.0-14.0 s, 15.0-21.0 s, 22.0-28.0 s; a face" in finding.message


def test_a_quiet_voice_is_fixable_and_says_by_how_much() -> None:
    (finding,) = by_code(replace(SPACED, loudness_lufs=-31.256), "Audio.Quiet")
    assert finding.fixable is True
    assert finding.details == {"loudness_lufs": -31.26, "min_lufs": -28.0}
    assert finding.message == (
        "The voice is quiet: -31.3 LUFS integrated (want at least -28; speech is usually "
        "-23 to -16). preflight fix normalises it."
    )
    # Exactly at the least loudness is loud enough.
    assert by_code(replace(SPACED, loudness_lufs=-28.0), "Audio.Quiet") == []


def test_a_voice_that_could_not_be_analysed_says_why() -> None:
    finding = audio_unchecked("no audio could be decoded")
    assert finding.code == "Audio.Unchecked"
    assert finding.message == "The voice could not be analysed: no audio could be decoded."
    assert finding.details == {"error": "no audio could be decoded"}
    assert finding.fixable is False


def test_clipping_recorded_before_a_fix_is_still_reported_after_it() -> None:
    (before,) = by_code(replace(SPACED, clipped_runs=3, true_peak_dbtp=0.4), "Audio.Clipping")
    after = clipping_left(before, -1.5)
    assert (after.code, after.severity, after.fixable) == ("Audio.Clipping", before.severity, False)
    assert after.message == (
        "The voice clipped before the fix (3 run(s) of flat-topped samples at full scale); the fix "
        "brought its peaks down to -1.5 dBTP, but no fix undoes distortion already recorded. "
        "Record or export it again with more headroom."
    )
    assert after.details == {**before.details, "true_peak_dbtp_after_fix": -1.5}
    unmeasured = clipping_left(before, None)
    assert "brought its peaks down, but" in unmeasured.message


def test_a_clipped_voice_names_its_runs_and_its_peak() -> None:
    (finding,) = by_code(replace(SPACED, clipped_runs=3, true_peak_dbtp=0.437), "Audio.Clipping")
    assert finding.fixable is False  # distortion already recorded
    assert finding.details == {"clipped_runs": 3, "true_peak_dbtp": 0.44, "max_true_peak_dbtp": 1.0}
    assert finding.message == (
        "The voice clips: 3 run(s) of flat-topped samples at full scale, true peak +0.4 dBTP "
        "(want at most +1). Clipping is distortion no fix can undo; record or export it again "
        "with more headroom (preflight fix brings the peaks down, so the service's encode adds "
        "no more)."
    )
    (unmeasured,) = by_code(replace(SPACED, clipped_runs=2, true_peak_dbtp=None), "Audio.Clipping")
    assert "true peak unmeasured (want" in unmeasured.message
    assert unmeasured.details["true_peak_dbtp"] is None


def test_peaks_above_the_limit_are_fixable_and_peaks_at_it_pass() -> None:
    (hot,) = by_code(replace(SPACED, true_peak_dbtp=1.5432), "Audio.Clipping")
    assert hot.fixable is True
    assert hot.details == {"clipped_runs": 0, "true_peak_dbtp": 1.54, "max_true_peak_dbtp": 1.0}
    assert hot.message == (
        "The voice's true peak is +1.5 dBTP (want at most +1): it distorts once encoded. "
        "preflight fix limits the peaks."
    )
    assert by_code(replace(SPACED, true_peak_dbtp=1.0), "Audio.Clipping") == []


def test_mostly_silence_gives_the_share_wanted_as_a_percentage() -> None:
    (finding,) = by_code(replace(SPACED, speech_share=0.3), "Audio.MostlySilence")
    assert "speech fills 30% of the clip, want at least 40% (leading 0.0 s" in finding.message


def codes(analysis: AudioAnalysis, thresholds: AudioThresholds | None = None) -> list[str]:
    return [f.code for f in audio_content_findings(analysis, thresholds or AudioThresholds())]


def test_a_voice_with_under_5_percent_speech_is_no_speech_and_its_loudness_is_moot() -> None:
    silent = replace(SPACED, speech_share=0.0449, loudness_lufs=-40.0, sample_rate=8000)
    (finding,) = by_code(silent, "Audio.NoSpeech")
    assert finding.message == (
        "No speech found: only 4% of the 36.0 s sounds like a voice; the service would keep "
        "the mouth closed throughout."
    )
    assert finding.details == {"speech_share": 0.045, "min_speech_share": 0.05}
    assert (finding.severity, finding.fixable) == ("warning", False)
    # Nothing about how loud or how spaced nothing is; the format still counts.
    assert codes(silent) == ["Audio.NoSpeech", "Audio.LowSampleRate"]
    # Exactly 5% is speech enough not to be "none" (it is still mostly silence).
    assert codes(replace(SPACED, speech_share=0.05)) == ["Audio.MostlySilence", "Audio.LongSilence"]


def test_mostly_silence_says_the_share_and_the_silence_at_each_end() -> None:
    ranges = ((1.234, 2.0), (3.0, 3.8734))
    quiet_ends = replace(SPACED, duration=6.0, speech_share=0.29876, speech_ranges=ranges)
    (finding,) = by_code(quiet_ends, "Audio.MostlySilence")
    assert finding.message == (
        "Mostly silence: speech fills 30% of the clip, want at least 40% (leading 1.2 s, "
        "trailing 2.1 s); the mouth stays closed in the silences. Trim them."
    )
    assert finding.details == {
        "speech_share": 0.299,
        "min_speech_share": 0.4,
        "leading_s": 1.23,
        "trailing_s": 2.13,
    }
    assert by_code(replace(quiet_ends, speech_share=0.4), "Audio.MostlySilence") == []
    # A share set in settings is said as set, to its fraction of a percent.
    (set_finely,) = [
        f
        for f in audio_content_findings(quiet_ends, AudioThresholds(mostly_silence_share=0.425))
        if f.code == "Audio.MostlySilence"
    ]
    assert "want at least 42.5% (" in set_finely.message


def test_a_silence_of_exactly_5_s_is_no_long_silence_and_one_just_over_is_at_either_end() -> None:
    five = replace(SPACED, duration=12.0, speech_ranges=((0.0, 1.0), (6.0, 12.0)))
    assert by_code(five, "Audio.LongSilence") == []
    leading = replace(SPACED, duration=12.0, speech_ranges=((5.0123, 12.0),))
    (finding,) = by_code(leading, "Audio.LongSilence")
    assert finding.details == {"ranges": [[0.0, 5.01]], "max_silence_s": 5.0}
    assert finding.message.startswith("Silence longer than 5 s at 0.0-5.0 s; a face")
    trailing = replace(SPACED, duration=12.0, speech_ranges=((0.0, 6.987),))
    (finding,) = by_code(trailing, "Audio.LongSilence")
    assert finding.details["ranges"] == [[6.99, 12.0]]
    assert (finding.severity, finding.fixable) == ("info", False)


def test_a_noisy_voice_is_fixable_and_says_its_distance_from_the_noise_floor() -> None:
    noisy = replace(SPACED, speech_level_db=-20.0, noise_floor_db=-39.46)
    (finding,) = by_code(noisy, "Audio.Noisy")
    assert finding.message == (
        "The voice is noisy: speech stands 19 dB above the noise floor (-39 dBFS; want at "
        "least 20 dB). The model moves the mouth on noise too. preflight fix denoises it."
    )
    assert finding.details == {"snr_db": 19.5, "noise_floor_db": -39.5, "min_snr_db": 20.0}
    assert (finding.severity, finding.fixable) == ("warning", True)
    assert by_code(replace(noisy, noise_floor_db=-40.0), "Audio.Noisy") == []  # 20 dB is enough
    assert by_code(replace(noisy, speech_level_db=None), "Audio.Noisy") == []  # no speech level


MUSICAL = replace(SPACED, gaps_s=30.0, music_share=0.3, music_level_db=-50.0, speech_level_db=-20.0)


def test_music_in_30_percent_of_the_pauses_and_within_30_db_of_the_voice_is_said() -> None:
    (finding,) = by_code(
        replace(MUSICAL, music_share=0.31234, music_level_db=-44.46, gaps_s=30.126), "Audio.Music"
    )
    assert finding.message == (
        "Background music, or another tonal sound, fills 31% of the pauses between speech "
        "(-44 dBFS, 24 dB under the voice); the service asks for a voice without music, and "
        "the model may move the lips to it. Use a voice-only recording or stem."
    )
    assert finding.details == {
        "music_share": 0.312,
        "music_level_db": -44.5,
        "below_voice_db": 24.5,
        "gaps_s": 30.13,
        "min_share": 0.3,
    }
    # At both limits at once (30% of the pauses, 30 dB under the voice) it is still said.
    assert [f.details["below_voice_db"] for f in by_code(MUSICAL, "Audio.Music")] == [30.0]
    assert (finding.severity, finding.fixable) == ("warning", False)


def test_music_fainter_or_rarer_than_the_limits_or_unmeasured_is_not_said() -> None:
    assert by_code(replace(MUSICAL, music_share=0.2999), "Audio.Music") == []
    assert by_code(replace(MUSICAL, music_level_db=-50.01), "Audio.Music") == []  # 30.01 dB under
    assert by_code(replace(MUSICAL, music_share=None), "Audio.Music") == []
    assert by_code(replace(MUSICAL, music_level_db=None), "Audio.Music") == []
    assert by_code(replace(MUSICAL, speech_level_db=None), "Audio.Music") == []


def test_a_voice_sampled_under_16_khz_is_telephone_quality() -> None:
    (finding,) = by_code(replace(SPACED, sample_rate=15999), "Audio.LowSampleRate")
    assert finding.message == (
        "Sampled at 15999 Hz (want at least 16000; 8 kHz is telephone quality); the sounds "
        "that shape s, f and t are gone. Use the original recording."
    )
    assert finding.details == {"sample_rate": 15999, "min_sample_rate": 16000}
    assert (finding.severity, finding.fixable) == ("warning", False)
    assert by_code(replace(SPACED, sample_rate=16000), "Audio.LowSampleRate") == []


def test_a_channel_more_than_30_db_under_the_loudest_is_dead_and_named() -> None:
    (finding,) = by_code(
        replace(SPACED, channels=2, channel_levels_db=(-20.04, -50.06)), "Audio.SilentChannel"
    )
    assert finding.message == (
        "Channel 2 of 2 is silent (-50 dBFS against -20); mixed down, the voice loses half "
        "its level. preflight fix keeps the live channel."
    )
    assert finding.details == {"channel_levels_db": [-20.0, -50.1]}
    assert (finding.severity, finding.fixable) == ("warning", True)
    (first,) = by_code(
        replace(SPACED, channels=3, channel_levels_db=(-61.0, -20.0, -22.0)), "Audio.SilentChannel"
    )
    assert first.message.startswith("Channel 1 of 3 is silent (-61 dBFS against -20)")
    assert by_code(replace(SPACED, channels=2, channel_levels_db=(-20.0, -50.0)), "Audio.SilentChannel") == []


def test_findings_come_loudness_first_then_speech_then_format() -> None:
    everything = replace(
        MUSICAL, loudness_lufs=-35.0, speech_share=0.3, noise_floor_db=-30.0, sample_rate=8000,
        channels=2, channel_levels_db=(-20.0, -70.0),
    )  # fmt: skip
    loudness = ["Audio.Quiet"]
    speech = ["Audio.MostlySilence", "Audio.LongSilence", "Audio.Noisy", "Audio.Music"]
    audio_format = ["Audio.LowSampleRate", "Audio.SilentChannel"]
    assert codes(everything) == loudness + speech + audio_format
