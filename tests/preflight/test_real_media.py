"""Real talking-head clips, voices and photos from ../shared/media (skipped without it)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from preflight import (
    CheckOptions,
    LazyEngine,
    VideoFaceScan,
    check_audio,
    check_image,
    check_paths,
    check_video,
    probe_media,
)
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
    report = check_audio(shared_media / name, CheckOptions(fast=True))  # the container facts
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


# --- Faces on real footage --------------------------------------------------------------
CLIPS = [
    "LivePortrait__driving__d3.mp4",
    "LivePortrait__driving__d12.mp4",
    "LivePortrait__driving__d19.mp4",
    "LivePortrait__source__s13.mp4",
    "LivePortrait__source__s29.mp4",
    "SadTalker__ref_video__WDA_KatieHill_000.mp4",
]


@pytest.mark.parametrize("name", CLIPS)
def test_real_clips_show_one_face_in_most_frames(shared_media: Path, engine: LazyEngine, name: str) -> None:
    report = check_video(shared_media / name, engine=engine)
    scan = report.faces
    assert isinstance(scan, VideoFaceScan) and scan.error is None
    single = [len(s.faces) == 1 and s.target == 0 for s in scan.samples]
    assert sum(single) >= 0.8 * len(single), [len(s.faces) for s in scan.samples]
    assert not {"Face.NotFound", "Face.Missing", "Face.Multiple", "Face.NotFrontal"} & set(codes(report))


def test_a_full_length_dancer_is_too_small_for_a_close_up(shared_media: Path, engine: LazyEngine) -> None:
    report = check_video(shared_media / "LivePortrait__source__s13.mp4", engine=engine)
    finding = next(f for f in report.findings if f.code == "Face.TooSmall")
    assert finding.details["face_height_px"] < 128 and finding.details["share"] < 0.1


def test_a_tight_crop_that_cuts_the_chin_off_is_reported(shared_media: Path, engine: LazyEngine) -> None:
    report = check_video(shared_media / "LivePortrait__driving__d3.mp4", engine=engine)
    finding = next(f for f in report.findings if f.code == "Face.CutOff")
    # The chin leaves the frame twice, around 4-5 s and 8-9 s.
    assert len(finding.details["ranges"]) == 2
    assert all(3.5 <= start and end <= 9.5 for start, end in finding.details["ranges"])


def test_a_photo_of_two_people_is_no_reference(shared_media: Path, engine: LazyEngine) -> None:
    report = check_image(shared_media / "face_recognition__two_people.jpg", engine=engine)
    assert codes(report) == ["InvalidFile.Content"]
    assert report.findings[0].details["faces"] == 2


def test_a_screenshot_matches_its_clip_and_a_stranger_does_not(
    shared_media: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    clip = shared_media / "SadTalker__ref_video__WDA_KatieHill_000.mp4"
    with av.open(str(clip)) as container:
        # Off the 0.5 s sampling grid, so the screenshot is not itself a sampled frame.
        frame = next(f for f in container.decode(video=0) if f.time is not None and f.time >= 4.23)
        frame.to_image().save(tmp_path / "screenshot.png")
    same = check_paths(video=clip, ref=tmp_path / "screenshot.png", engine=engine)
    other = check_paths(video=clip, ref=shared_media / "face_recognition__obama-1080p.jpg", engine=engine)
    assert same.job is not None and other.job is not None
    assert [f.code for f in same.job.findings] == ["Face.RefMatch"]
    assert same.job.findings[0].details["distance"] < same.job.findings[0].details["threshold"]
    assert [f.code for f in other.job.findings] == ["Face.RefMismatch"]


def test_a_radio_voice_that_hits_full_scale_is_called_clipped(shared_media: Path) -> None:
    report = check_audio(shared_media / "SadTalker__driven_audio__RD_Radio31_000.wav")
    assert [f.code for f in report.findings] == ["Audio.Clipping"]
    assert report.findings[0].details["clipped_runs"] > 0
