"""Real talking-head clips, voices and photos from ../shared/media (skipped without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight import CheckOptions, check_audio, check_image, check_video, probe_media
from tests.conftest import codes


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("LivePortrait__driving__d3.mp4", ["InvalidFile.Resolution"]),
        ("LivePortrait__driving__d19.mp4", ["InvalidFile.Resolution"]),
        ("LivePortrait__source__s13.mp4", []),
        ("LivePortrait__source__s29.mp4", []),
        (
            "SadTalker__ref_video__WDA_KatieHill_000.mp4",
            ["InvalidFile.Format", "InvalidFile.Resolution"],
        ),
    ],
)
def test_real_clips_get_the_codes_the_service_would_answer(
    shared_media: Path, name: str, expected: list[str]
) -> None:
    service_codes = CheckOptions(select=("InvalidFile",))
    assert codes(check_video(shared_media / name, service_codes)) == expected


def test_real_clip_facts_match_their_published_description(shared_media: Path) -> None:
    (video,) = probe_media(shared_media / "LivePortrait__source__s29.mp4").video
    assert (video.width, video.height, video.codec) == (720, 1364, "h264")
    assert video.avg_fps == pytest.approx(30, abs=0.01)
    assert video.duration == pytest.approx(5.3, abs=0.1)


@pytest.mark.parametrize(
    ("name", "rate", "channels", "depth"),
    [
        ("MuseTalk__audio__eng.wav", 16000, 1, 16),
        ("SadTalker__driven_audio__japanese.wav", 48000, 2, 24),
        ("SadTalker__driven_audio__RD_Radio31_000.wav", 16000, 2, 16),
    ],
)
def test_real_voices_pass_and_report_their_format(
    shared_media: Path, name: str, rate: int, channels: int, depth: int
) -> None:
    report = check_audio(shared_media / name)
    assert report.findings == ()
    assert report.media is not None
    (audio,) = report.media.audio
    assert (audio.sample_rate, audio.channels, audio.bit_depth) == (rate, channels, depth)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("face_recognition__biden.jpg", ["InvalidFile.ImageSize"]),  # aspect 2.27
        ("face_recognition__obama-1080p.jpg", []),
        ("face_recognition__lin-manuel-miranda.png", []),
        ("LivePortrait__source__s2.jpg", []),
    ],
)
def test_real_photos_as_reference_images(shared_media: Path, name: str, expected: list[str]) -> None:
    assert codes(check_image(shared_media / name)) == expected
