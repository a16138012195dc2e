"""A job's voice and video together: does the voice fit the video, and what will be cut?"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from preflight import CheckOptions, Severity, check_paths
from tests.conftest import BAD, SAMPLE

# Container facts are enough for these checks; faces are tested elsewhere.
FAST = CheckOptions(fast=True)


def job_codes(report) -> list[str]:  # type: ignore[no-untyped-def]
    assert report.job is not None
    return [f.code for f in report.job.findings]


@pytest.fixture(scope="module")
def silent_video(made: Callable[..., Path]) -> Callable[[float], Path]:
    def make(seconds: float) -> Path:
        return made("video", f"silent {seconds}.mp4", width=640, height=640, duration=seconds, audio=False)

    return make


@pytest.fixture(scope="module")
def voice(made: Callable[..., Path]) -> Callable[[float], Path]:
    def make(seconds: float) -> Path:
        return made("audio", f"voice {seconds}.wav", duration=seconds, sample_rate=16000)

    return make


def test_a_voice_longer_than_the_video_is_cut_unless_the_video_is_extended(silent_video, voice) -> None:
    report = check_paths(video=silent_video(2.0), audio=voice(3.0), options=FAST)
    assert job_codes(report) == ["Pair.DurationMismatch"]
    (finding,) = report.job.findings
    assert finding.severity is Severity.WARNING
    assert finding.details == {
        "video_s": 2.0,
        "audio_s": 3.0,
        "difference_s": 1.0,
        "output_s": 2.0,
        "output_with_video_extension_s": 3.0,
        "lost_s": 1.0,
    }
    assert "last 1.00 s are never heard" in finding.message
    assert "video_extension=true" in finding.message and "0.24 CNY" in finding.message
    assert "prep-and-retalk --extend-video" in finding.message  # our own option, not only the API's


def test_a_video_longer_than_the_voice_loses_its_end(silent_video, voice) -> None:
    report = check_paths(video=silent_video(3.0), audio=voice(2.0), options=FAST)
    (finding,) = report.job.findings
    assert finding.code == "Pair.DurationMismatch"
    assert finding.details["output_s"] == 2.0 and finding.details["lost_s"] == 1.0
    assert "output_with_video_extension_s" not in finding.details
    assert "Pad the voice with silence" in finding.message


def test_lengths_within_a_frame_of_each_other_match(silent_video, voice) -> None:
    report = check_paths(video=silent_video(2.0), audio=voice(2.02), options=FAST)
    assert job_codes(report) == []


def test_the_videos_own_sound_track_will_be_replaced(voice) -> None:
    report = check_paths(video=SAMPLE / "talking_head.mp4", audio=voice(4.0), options=FAST)
    assert job_codes(report) == ["Pair.VideoAudioReplaced"]
    assert report.job.findings[0].severity is Severity.INFO


def test_an_unreadable_voice_gives_no_pair_guesses(silent_video) -> None:
    report = check_paths(video=silent_video(2.0), audio=BAD / "notes.mp4", options=FAST)
    assert job_codes(report) == []
    assert [f.code for f in report.files[1].findings] == ["InvalidFile.Openerror"]


def test_pair_findings_follow_select_and_ignore(silent_video, voice) -> None:
    ignored = check_paths(
        video=silent_video(2.0), audio=voice(3.0), options=CheckOptions(fast=True, ignore=("Pair",))
    )
    assert job_codes(ignored) == []


def test_words_after_the_videos_end_would_be_cut(silent_video, voice) -> None:
    report = check_paths(video=silent_video(2.0), audio=voice(4.0))
    assert job_codes(report) == ["Pair.DurationMismatch", "Pair.SpeechCut"]
    cut = report.job.findings[1]
    assert cut.severity is Severity.WARNING
    assert 1.0 < cut.details["speech_cut_s"] <= 2.0 and cut.details["first_cut_word_s"] >= 2.0
    assert "video_extension=true" in cut.message and "--extend-video" in cut.message


def test_silence_after_the_video_is_no_loss(silent_video, media, tmp_path: Path) -> None:
    import numpy as np

    voice_then_room = np.concatenate(
        [media.voice_like(2.0, 16000), np.random.default_rng(1).normal(0, 10 ** (-66 / 20), 2 * 16000)]
    )
    audio = media.write_audio(tmp_path / "then quiet.wav", signal=voice_then_room, sample_rate=16000)
    report = check_paths(video=silent_video(2.0), audio=audio)
    assert job_codes(report) == ["Pair.DurationMismatch"]
