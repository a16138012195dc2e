"""A job's voice and video together: does the voice fit the video, and what will be cut?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from preflight import CheckOptions, Severity, check_paths
from tests.conftest import BAD, SAMPLE
from tests.preflight.clean_voice import HEARD

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


def odd_length_video(made: Callable[..., Path]) -> Path:
    """76 frames at 30 fps: 2.5333 s, a length with more digits than the report keeps."""
    return made("video", "silent 76 frames.mp4", width=640, height=640, fps=30, duration=76 / 30, audio=False)


def test_the_report_gives_both_lengths_to_the_millisecond(made: Callable[..., Path], voice) -> None:
    # 76 frames at 30 fps: 2.5333 s, a length with more digits than the report keeps.
    video = made(
        "video", "silent 76 frames.mp4", width=640, height=640, fps=30, duration=76 / 30, audio=False
    )
    report = check_paths(video=video, audio=voice(3.1279), options=FAST)  # 3.127875 s
    (finding,) = report.job.findings
    assert finding.details == {
        "video_s": 2.533,
        "audio_s": 3.128,
        "difference_s": 0.595,
        "output_s": 2.533,
        "output_with_video_extension_s": 3.128,
        "lost_s": 0.595,
    }
    assert "is 0.59 s longer than the video (2.53 s)" in finding.message
    assert finding.fixable is False  # preflight fix never pads or cuts a voice to fit


def test_a_video_longer_than_the_voice_says_by_how_much_in_plain_words(
    made: Callable[..., Path], voice
) -> None:
    video = made(
        "video", "silent 76 frames.mp4", width=640, height=640, fps=30, duration=76 / 30, audio=False
    )
    report = check_paths(video=video, audio=voice(1.9876), options=FAST)
    (finding,) = report.job.findings
    assert finding.details == {
        "video_s": 2.533,
        "audio_s": 1.988,
        "difference_s": -0.546,
        "output_s": 1.988,
        "lost_s": 0.546,
    }
    assert finding.message == (
        "The video (2.53 s) is 0.55 s longer than the voice (1.99 s). The service cuts the video "
        "to 1.99 s: its last 0.55 s are dropped (video_extension changes nothing here). Pad the "
        "voice with silence to keep them; the mouth stays closed in silent parts."
    )


def test_the_voice_is_held_against_the_picture_not_its_sound(made: Callable[..., Path], media, voice) -> None:
    # The video's own sound track runs on past its 2 s of picture, so the file lasts 3.27 s:
    # the picture is what the service lip-syncs, and a 3 s voice is 1 s too long for it.
    sound = media.voice_like(3.0, 48000)
    video = made("video", "long sound.mp4", width=640, height=640, duration=2.0, voice=sound)
    report = check_paths(video=video, audio=voice(3.0), options=FAST)
    assert job_codes(report) == ["Pair.DurationMismatch", "Pair.VideoAudioReplaced"]
    assert report.job.findings[0].details["video_s"] == 2.0
    assert report.job.findings[0].details["lost_s"] == 1.0


def test_a_video_whose_stream_has_no_length_is_timed_by_its_file(made: Callable[..., Path], voice) -> None:
    # Matroska stores no length per stream, only the file's.
    video = made("video", "silent.mkv", width=640, height=640, duration=2.0, audio=False)
    report = check_paths(video=video, audio=voice(3.0), options=FAST)
    assert job_codes(report) == ["Pair.DurationMismatch"]
    assert report.job.findings[0].details["video_s"] == 2.0


def test_the_replaced_sound_track_is_named_and_counted(voice) -> None:
    report = check_paths(video=SAMPLE / "talking_head.mp4", audio=voice(4.0), options=FAST)
    (replaced,) = report.job.findings
    assert replaced.details == {"video_audio_streams": 1}
    assert replaced.message == (
        "The video has its own sound track; the service replaces it with the new voice, "
        "so nothing of it (music, room sound) survives in the result."
    )


def test_a_video_and_photo_without_a_voice_have_nothing_to_pair() -> None:
    report = check_paths(video=SAMPLE / "talking_head.mp4", ref=SAMPLE / "face.jpg", options=FAST)
    assert [f.code for f in report.job.findings if f.code.startswith("Pair.")] == []


def test_an_unreadable_voice_says_nothing_about_the_videos_sound_either() -> None:
    report = check_paths(video=SAMPLE / "talking_head.mp4", audio=BAD / "notes.mp4", options=FAST)
    assert job_codes(report) == []


def test_the_cut_words_are_timed_from_the_videos_end(made: Callable[..., Path], voice) -> None:
    from preflight import probe_media
    from preflight._rules.pair import pair_findings

    video = made(
        "video", "silent 76 frames.mp4", width=640, height=640, fps=30, duration=76 / 30, audio=False
    )
    # The clean voice, heard as 4 s with words at 0.5-1.5 s, 2.3-3.1 s and 3.5-3.9 s: the video
    # ends at 2.533 s, in the middle of the second word.
    words = replace(
        HEARD, duration=4.0, speech_share=0.55, speech_ranges=((0.5, 1.5), (2.3, 3.1), (3.5, 3.9))
    )
    findings = pair_findings(probe_media(video), probe_media(voice(4.0)), words)
    assert [f.code for f in findings] == ["Pair.DurationMismatch", "Pair.SpeechCut"]
    cut = findings[1]
    assert cut.details == {"speech_cut_s": 0.97, "first_cut_word_s": 2.53, "video_s": 2.533}
    assert cut.message == (
        "1.0 s of speech come after the video ends at 2.53 s (from 2.5 s on); the service's "
        "default cut drops those words. Send with --extend-video (prep-and-retalk; the API's "
        "video_extension=true), use a longer video, or shorten the voice."
    )
