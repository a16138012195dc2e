"""What the report says about a measured voice, in words and numbers: the findings made
from a voice's measurements (loudness, peaks, speech stretches), given as facts."""

from __future__ import annotations

from dataclasses import replace

from preflight._audio_analysis import AudioAnalysis
from preflight._audio_rules import audio_content_findings, audio_unchecked, clipping_left
from preflight._models import Finding

# A clean, well-levelled 36 s voice: six words of 1 s, each 6 s after the last.
SPACED = AudioAnalysis(
    duration=36.0,
    sample_rate=16000,
    channels=1,
    loudness_lufs=-20.0,
    sample_peak_dbfs=-6.0,
    true_peak_dbtp=-6.0,
    clipped_runs=0,
    channel_levels_db=(-20.0,),
    speech_share=0.9,
    speech_ranges=((0.0, 1.0), (7.0, 8.0), (14.0, 15.0), (21.0, 22.0), (28.0, 29.0), (35.0, 36.0)),
    noise_floor_db=-70.0,
    speech_level_db=-20.0,
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
    (hot,) = by_code(replace(SPACED, true_peak_dbtp=1.5), "Audio.Clipping")
    assert hot.fixable is True
    assert hot.details == {"clipped_runs": 0, "true_peak_dbtp": 1.5, "max_true_peak_dbtp": 1.0}
    assert hot.message.startswith("The voice's true peak is +1.5 dBTP (want at most +1)")
    assert by_code(replace(SPACED, true_peak_dbtp=1.0), "Audio.Clipping") == []


def test_mostly_silence_gives_the_share_wanted_as_a_percentage() -> None:
    (finding,) = by_code(replace(SPACED, speech_share=0.3), "Audio.MostlySilence")
    assert "speech fills 30% of the clip, want at least 40% (leading 0.0 s" in finding.message
