"""A video is judged as the service would judge it, with its own error codes."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from preflight import CheckOptions, FileReport, Severity, check_video
from tests.conftest import BAD, SAMPLE, codes
from tests.corpus.make_corpus import sound_apart

# These stories are about container and header facts; faces have their own tests
# (test_faces_*.py), so the face scan is left out here.
CONTAINER_FACTS = CheckOptions(fast=True)


def check_video_facts(path: Path | str) -> FileReport:
    return check_video(path, CONTAINER_FACTS)


SMALL = {"fps": 25, "duration": 2.0, "audio": False}


def test_the_sample_clip_passes_cleanly() -> None:
    report = check_video(SAMPLE / "talking_head.mp4")
    assert report.ok and report.findings == ()


# The page: "Side length: 640-2,048 pixels." Literal numbers, never `limits`.
@pytest.mark.parametrize(
    ("width", "height", "rejected"),
    [
        (639, 640, True),
        (640, 640, False),
        (640, 639, True),
        (2048, 1152, False),
        (2049, 1152, True),
        (1152, 2049, True),
        (2048, 2048, False),
    ],
)
def test_each_side_must_be_640_to_2048_pixels(made, width: int, height: int, rejected: bool) -> None:
    pix_fmt = "yuv444p" if width % 2 or height % 2 else "yuv420p"  # 4:2:0 needs even sides
    path = made(
        "video",
        f"side_{width}x{height}.mp4",
        width=width,
        height=height,
        fps=15,
        duration=2.0,
        pix_fmt=pix_fmt,
        audio=False,
    )
    report = check_video_facts(path)
    assert ("InvalidFile.Resolution" in codes(report)) is rejected
    if rejected:
        finding = next(f for f in report.findings if f.code == "InvalidFile.Resolution")
        assert finding.severity is Severity.ERROR and finding.fixable
        assert finding.details == {"width": width, "height": height, "min": 640, "max": 2048}
        assert f"{width}x{height}" in finding.message and "640-2048" in finding.message


def test_resolution_is_judged_on_the_displayed_frame(made) -> None:
    # Stored 1280x720 with a 90 degree flag: displayed 720x1280, inside the limits.
    report = check_video_facts(BAD / "phone_rotated.mp4")
    assert codes(report) == ["Video.Rotated"]
    assert report.ok
    assert report.findings[0].details["rotation"] == 90


def test_an_aspect_ratio_no_scale_can_fix_says_crop_or_pad(made) -> None:
    path = made("video", "strip.mp4", width=2048, height=600, fps=15, duration=2.0, audio=False)
    finding = check_video_facts(path).findings[0]
    assert finding.code == "InvalidFile.Resolution" and "crops" in finding.message


@pytest.mark.parametrize(
    ("fps", "rejected"),
    # The page: "Frame rate: 15-60 fps". Containers store rates as rounded fractions, so a
    # rate a hair under 15 or over 60 (14.995, 60.005) is the limit itself, read back.
    [
        (10, True),
        (14.985, True),
        (14.995, False),
        (15, False),
        (29.97, False),
        (60, False),
        (60.005, False),
        (60.5, True),
        (61, True),
    ],
)
def test_frame_rate_must_be_15_to_60(made, fps: float, rejected: bool) -> None:
    path = made("video", f"fps_{fps}.mp4", width=640, height=640, fps=fps, duration=2.5, audio=False)
    report = check_video_facts(path)
    assert ("InvalidFile.FPS" in codes(report)) is rejected
    if rejected:
        finding = report.findings[codes(report).index("InvalidFile.FPS")]
        assert finding.details["fps"] == pytest.approx(fps, abs=0.001)
        assert finding.fixable
        # The message shows the measured rate, not one rounded onto the limit.
        assert f"Frame rate is {fps:g} fps" in finding.message


@pytest.mark.parametrize(
    ("frames", "rejected"),
    # The page: "Duration: 2-120 seconds."
    # At 25 fps: 49 frames = 1.96 s, 50 = 2.00 s, 3000 = 120.00 s, 3001 = 120.04 s.
    [(49, True), (50, False), (3000, False), (3001, True)],
)
def test_duration_must_be_2_to_120_seconds(made, frames: int, rejected: bool) -> None:
    path = made(
        "video",
        f"frames_{frames}.mp4",
        width=64,
        height=64,
        fps=25,
        duration=frames / 25,
        audio=False,
    )
    report = check_video_facts(path)
    assert ("InvalidFile.Duration" in codes(report)) is rejected
    if rejected:
        finding = report.findings[codes(report).index("InvalidFile.Duration")]
        assert finding.details["duration"] == pytest.approx(frames / 25)
        assert "2-120 s" in finding.message


def claim_length(path: Path, seconds: float) -> None:
    """Make the movie header (a version-0 ``mvhd``) claim ``seconds``; the tracks stay."""
    data = bytearray(path.read_bytes())
    body = data.index(b"mvhd") + 4
    (timescale,) = struct.unpack_from(">I", data, body + 12)
    struct.pack_into(">I", data, body + 16, round(seconds * timescale))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("frames", "claimed", "warned"),
    # At 25 fps: 63 frames = 2.52 s, 3000 = 120.00 s, 25 = 1.00 s. A claim more than 1 s
    # from the tracks, on the wrong side of 2 or 120 s while they are not, is a finding.
    [
        (63, 36000.0, True),
        (63, 1.0, True),
        (63, 1.6, False),  # 0.92 s short: within the slack a real file never comes near
        (63, 3.6, False),  # wrong, but inside 2-120 s: every reader accepts it
        (3000, 121.5, True),
        (3000, 120.9, False),
        (25, 36000.0, False),  # the tracks break the limit themselves: InvalidFile.Duration
    ],
)
def test_an_mp4_header_claiming_a_length_its_tracks_do_not_hold_is_named(
    made, tmp_path: Path, frames: int, claimed: float, warned: bool
) -> None:
    made_path = made(
        "video", f"frames_{frames}.mp4", width=64, height=64, fps=25, duration=frames / 25, audio=False
    )
    path = Path(shutil.copy(made_path, tmp_path / "claims.mp4"))
    claim_length(path, claimed)
    report = check_video_facts(path)
    assert ("Video.HeaderLength" in codes(report)) is warned, report.findings
    assert ("InvalidFile.Duration" in codes(report)) is (frames < 50)
    if warned:
        finding = report.findings[codes(report).index("Video.HeaderLength")]
        assert finding.severity is Severity.WARNING and finding.fixable
        assert finding.details["header_duration"] == pytest.approx(claimed, abs=0.001)
        assert finding.details["duration"] == pytest.approx(frames / 25, abs=0.001)
        assert f"claims {claimed:g} s" in finding.message and f"{frames / 25:g} s" in finding.message


# The service's page: "File: MP4, AVI, or MOV. Max 300 MB." (MB read as MiB). Written out
# here, never taken from `limits`, so a wrong limit fails.
@pytest.mark.parametrize(("size", "rejected"), [(300 * 1024 * 1024, False), (300 * 1024 * 1024 + 1, True)])
def test_a_video_may_be_300_mb_but_not_a_byte_more(
    made, media, tmp_path: Path, size: int, rejected: bool
) -> None:
    path = tmp_path / "big.mp4"
    shutil.copy(made("video", "small.mp4", width=640, height=640, **SMALL), path)
    media.grow_to(path, size)  # a trailing MP4 free box in a sparse hole
    report = check_video_facts(path)
    assert codes(report) == (["InvalidFile.Size"] if rejected else [])
    if rejected:
        assert report.findings[0].details == {"size": size, "max": 300 * 1024 * 1024}


def test_codecs_other_than_h264_or_h265_are_rejected_and_fixable() -> None:
    report = check_video_facts(BAD / "low fps 480p.avi")
    assert codes(report) == ["InvalidFile.Format", "InvalidFile.Resolution", "InvalidFile.FPS"]
    assert "mpeg4" in report.findings[0].message
    assert all(f.fixable for f in report.findings)


def test_h265_in_mp4_is_accepted(made) -> None:
    path = made("video", "hevc.mp4", width=640, height=640, codec="hevc", **SMALL)
    assert check_video_facts(path).findings == ()


def test_h264_in_matroska_is_rejected_for_its_container_only(made) -> None:
    report = check_video_facts(made("video", "clip.mkv", width=640, height=640, **SMALL))
    assert codes(report) == ["InvalidFile.Format"]
    assert "Matroska" in report.findings[0].message and "remux" in report.findings[0].message


def test_an_unaccepted_extension_on_good_content_is_a_format_error(made, tmp_path: Path) -> None:
    path = tmp_path / "clip.m4v"
    shutil.copy(made("video", "small.mp4", width=640, height=640, **SMALL), path)
    report = check_video_facts(path)
    assert codes(report) == ["InvalidFile.Format"]
    assert report.findings[0].details["extension"] == ".m4v"


def test_mp4_content_named_avi_is_a_warning(made, tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    shutil.copy(made("video", "small.mp4", width=640, height=640, **SMALL), path)
    assert codes(check_video_facts(path)) == ["Video.ExtensionMismatch"]


def test_variable_frame_rate_ten_bit_and_rotation_are_warnings(made) -> None:
    vfr = check_video_facts(made("video", "vfr640.mp4", width=640, height=640, vfr=True, **SMALL))
    assert codes(vfr) == ["Video.VariableFrameRate"] and vfr.ok
    ten = check_video_facts(made("video", "ten.mp4", width=640, height=640, pix_fmt="yuv420p10le", **SMALL))
    assert codes(ten) == ["Video.PixelFormat"] and ten.findings[0].details["pixel_format"] == "yuv420p10le"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero.mp4", b"", "empty"),
        ("notes.mp4", b"This is not a video.\n", "recognises no audio or video"),
    ],
)
def test_files_that_are_not_video_cannot_be_opened(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    report = check_video_facts(path)
    assert codes(report) == ["InvalidFile.Openerror"]
    assert reason in report.findings[0].message and not report.findings[0].fixable


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9])
def test_truncated_videos_cannot_be_opened(media, tmp_path: Path, fraction: float) -> None:
    for options in ({}, {"movflags": "faststart"}):  # index at the end, and at the front
        path = media.write_video(
            tmp_path / f"cut {fraction}.mp4",
            width=640,
            height=640,
            container_options=options,
            **SMALL,
        )
        media.truncate_to(path, fraction)
        assert "InvalidFile.Openerror" in codes(check_video_facts(path)), options


def test_an_audio_only_mp4_is_not_a_video(made, media) -> None:
    path = made("audio", "voice_only.mp4", duration=3.0, sample_rate=44100)
    report = check_video_facts(path)
    assert codes(report) == ["InvalidFile.Openerror"]
    assert "no video stream" in report.findings[0].message and "--audio" in report.findings[0].message


def test_a_still_image_is_not_a_video(made, tmp_path: Path) -> None:
    path = tmp_path / "still.mp4"
    path.write_bytes(made("image", "still.jpg", width=800, height=800).read_bytes())
    report = check_video_facts(path)
    assert codes(report) == ["InvalidFile.Openerror"] and "still image" in report.findings[0].message


def test_one_file_can_carry_several_errors(made) -> None:
    path = made("video", "many.mkv", width=320, height=240, fps=10, duration=1.0, codec="mpeg4", audio=False)
    assert codes(check_video_facts(path)) == [
        "InvalidFile.Format",
        "InvalidFile.Format",
        "InvalidFile.Resolution",
        "InvalidFile.FPS",
        "InvalidFile.Duration",
    ]


@pytest.mark.parametrize(
    ("picture_at", "sound_at", "apart"),
    [
        pytest.param(0.0, 2.0, False, id="sound from 2 s into 2.5 s of picture: overlaps"),
        pytest.param(0.0, 2.6, True, id="sound from 2.6 s: after the picture's end"),
        pytest.param(1.0, 0.0, False, id="sound 1 s before the picture: held a second"),
        pytest.param(3.0, 0.0, True, id="sound 3 s before 2.5 s of picture"),
    ],
)
def test_sound_that_plays_at_no_moment_of_the_picture_is_named(
    tmp_path: Path, picture_at: float, sound_at: float, apart: bool
) -> None:
    path = tmp_path / "clip.mkv"
    sound_apart(picture_at, sound_at)(path)
    report = check_video_facts(path)
    found = [f for f in report.findings if f.code == "Video.AudioOffset"]
    assert bool(found) is apart
    if apart:
        (finding,) = found
        assert finding.severity is Severity.WARNING and finding.fixable
        assert finding.details == {"offset": round(sound_at - picture_at, 3), "video_duration": 2.533}
