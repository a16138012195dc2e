"""What the report says about a video's container facts, in words and numbers.

The user story: someone checks a clip before paying for a lip-sync job and reads, for each
problem, the service's own code, how bad it is, whether ``preflight fix`` can mend it, the
measured value beside the service's limit, and the same facts as JSON details. The probed
facts are built by hand here (a clean 10 s 1280x720 H.264 clip, changed one fact at a
time) so each number and boundary is exact; the limits are the service page's own:
"MP4, AVI, or MOV. Max 300 MB. Duration: 2-120 seconds. Frame rate: 15-60 fps. Encoding:
H.264 or H.265 required. Side length: 640-2,048 pixels." Real files for the same rules are
in test_video_rules.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from preflight import Finding, MediaInfo, Severity
from preflight._rules.container import video_findings
from tests.preflight.clean_clip import CLIP, MIB, MP4, PICTURE, SOUND


def clip(picture: dict[str, Any] | None = None, **changes: Any) -> MediaInfo:
    """The clean clip with some of its facts (and some of its picture's) changed."""
    if picture is not None:
        changes["video"] = (replace(PICTURE, **picture),)
    return replace(CLIP, **changes)


def found(info: MediaInfo, code: str) -> list[Finding]:
    return [f for f in video_findings(info) if f.code == code]


def only(info: MediaInfo, code: str) -> Finding:
    (finding,) = found(info, code)
    return finding


def test_the_clean_clip_has_nothing_to_say() -> None:
    assert video_findings(CLIP) == []


# --- Files that are not a usable video ------------------------------------------------


def test_a_file_that_cannot_be_opened_says_why() -> None:
    broken = clip(error="FFmpeg recognises no audio or video in it", container=None, video=(), audio=())
    assert video_findings(broken) == [
        Finding(
            "InvalidFile.Openerror",
            Severity.ERROR,
            "Cannot open the file as video: FFmpeg recognises no audio or video in it.",
            False,
            {"reason": "FFmpeg recognises no audio or video in it"},
        )
    ]


def test_a_truncated_file_says_how_many_bytes_are_missing() -> None:
    (finding, *_) = video_findings(clip(size=2_000_000, missing_bytes=700_000))
    assert finding == Finding(
        "InvalidFile.Openerror",
        Severity.ERROR,
        "The file is truncated: its index points 700,000 bytes past the end of the file "
        "(2,000,000 bytes). Copy or export it again.",
        False,
        {"size": 2_000_000, "missing_bytes": 700_000},
    )


def test_a_sound_file_given_as_the_video_is_told_to_go_to_audio() -> None:
    assert video_findings(clip(video=())) == [
        Finding(
            "InvalidFile.Openerror",
            Severity.ERROR,
            "The file has no video stream (MP4/MOV/M4A with only audio). "
            "Pass it as --audio, or give a video file.",
            False,
            {"container": MP4, "audio_streams": 1},
        )
    ]


def test_a_file_with_no_streams_at_all_gets_no_audio_hint() -> None:
    assert video_findings(clip(container="mpegts", video=(), audio=())) == [
        Finding(
            "InvalidFile.Openerror",
            Severity.ERROR,
            "The file has no video stream (MPEG-TS with no audio or video).",
            False,
            {"container": "mpegts", "audio_streams": 0},
        )
    ]


# --- Container, extension and codec ---------------------------------------------------


def test_h264_in_another_container_is_remuxed_without_re_encoding() -> None:
    assert video_findings(clip(path="/clips/clip.mkv", container="matroska,webm")) == [
        Finding(
            "InvalidFile.Format",
            Severity.ERROR,
            "Container is Matroska/WebM; the service accepts MP4, AVI or MOV. "
            "preflight fix remuxes it into MP4 (no re-encode).",
            True,
            {"container": "matroska,webm", "extension": ".mkv"},
        )
    ]


def test_another_codec_in_another_container_is_converted_to_h264() -> None:
    webm = clip(path="/clips/clip.webm", container="matroska,webm", picture={"codec": "vp9"})
    assert video_findings(webm) == [
        Finding(
            "InvalidFile.Format",
            Severity.ERROR,
            "Container is Matroska/WebM; the service accepts MP4, AVI or MOV. "
            "preflight fix converts it to H.264 in MP4.",
            True,
            {"container": "matroska,webm", "extension": ".webm"},
        ),
        Finding(
            "InvalidFile.Format",
            Severity.ERROR,
            "Video codec is vp9; the service accepts only H.264 or H.265. "
            "preflight fix re-encodes it to H.264.",
            True,
            {"codec": "vp9"},
        ),
    ]


def test_a_container_without_a_friendly_name_is_named_by_its_demuxer() -> None:
    finding = only(clip(path="/clips/clip.nut", container="nut"), "InvalidFile.Format")
    assert finding.message.startswith("Container is nut; the service accepts MP4, AVI or MOV.")


def test_a_codec_ffmpeg_does_not_know_cannot_be_converted() -> None:
    unknown = clip(
        path="/clips/clip.avi",
        container="avi",
        picture={"codec": None, "profile": None, "pixel_format": None, "width": 0, "height": 0},
    )
    # No size or pixel format is judged for a stream nothing can decode.
    assert video_findings(unknown) == [
        Finding(
            "InvalidFile.Format",
            Severity.ERROR,
            "Video codec is unknown; the service accepts only H.264 or H.265. "
            "FFmpeg knows no decoder for it either, so preflight fix cannot convert it.",
            False,
            {"codec": None},
        )
    ]


def test_an_unaccepted_extension_names_the_accepted_ones_and_the_content() -> None:
    assert video_findings(clip(path="/clips/clip")) == [
        Finding(
            "InvalidFile.Format",
            Severity.ERROR,
            "Extension (none) is not accepted; the service takes .avi, .mov, .mp4. The content "
            "is MP4/MOV/M4A: preflight fix writes it with the right extension, without re-encoding.",
            True,
            {"extension": "", "container": MP4},
        )
    ]


def test_an_extension_naming_another_accepted_container_is_a_warning() -> None:
    assert video_findings(clip(path="/clips/clip.avi")) == [
        Finding(
            "Video.ExtensionMismatch",
            Severity.WARNING,
            "Extension .avi does not match the content (MP4/MOV/M4A); a server that trusts the "
            "extension may fail to read it. preflight fix gives it the right extension.",
            True,
            {"extension": ".avi", "container": MP4},
        )
    ]
    # Upper case is the same extension.
    assert video_findings(clip(path="/clips/CLIP.MOV")) == []


# --- Size -----------------------------------------------------------------------------


def test_a_video_a_byte_over_300_mb_says_both_sizes() -> None:
    assert video_findings(clip(size=300 * MIB)) == []
    assert video_findings(clip(size=300 * MIB + 1)) == [
        Finding(
            "InvalidFile.Size",
            Severity.ERROR,
            "Video file is 300.0 MB (314,572,801 bytes); the service accepts at most 300.0 MB "
            "(314,572,800 bytes). preflight fix re-encodes it at a bitrate that fits.",
            True,
            {"size": 314_572_801, "max": 314_572_800},
        )
    ]


# --- Frame size -----------------------------------------------------------------------


def frame(width: int, height: int) -> Finding:
    return only(clip(picture={"width": width, "height": height}), "InvalidFile.Resolution")


def test_a_frame_out_of_range_with_a_usable_shape_is_scaled() -> None:
    finding = frame(2560, 1440)
    assert finding == Finding(
        "InvalidFile.Resolution",
        Severity.ERROR,
        "Frame is 2560x1440 as displayed; each side must be 640-2048 px: "
        "preflight fix scales it into range keeping the aspect ratio.",
        True,
        {"width": 2560, "height": 1440, "min": 640, "max": 2048},
    )


def test_a_frame_of_exactly_2048_by_640_shape_still_fits_by_scaling() -> None:
    # 3200x1000 scaled by 0.64 is 2048x640: both sides at a limit, inside.
    assert frame(3200, 1000).message.endswith("preflight fix scales it into range keeping the aspect ratio.")


@pytest.mark.parametrize(("width", "height"), [(640, 2048), (2048, 640), (640, 640), (2048, 2048)])
def test_sides_of_exactly_640_and_2048_px_pass(width: int, height: int) -> None:
    info = clip(picture={"width": width, "height": height, "coded_width": width, "coded_height": height})
    assert found(info, "InvalidFile.Resolution") == []


def test_a_strip_no_scale_fits_says_its_aspect_ratio_and_the_most_there_is() -> None:
    finding = frame(2048, 600)
    assert finding.message == (
        "Frame is 2048x600 as displayed; each side must be 640-2048 px: its aspect ratio 3.41 "
        "exceeds 3.2, so no scale fits: preflight fix crops around the face (or pads)."
    )
    assert finding.fixable is True


def test_a_frame_no_camera_records_is_a_damaged_header_nothing_can_fix() -> None:
    finding = frame(9000, 5000)
    assert finding.message == (
        "Frame is 9000x5000 as displayed; each side must be 640-2048 px: no camera records more "
        "than 8192 px a side, so the header is damaged or lies, and preflight does not decode "
        "it; export the video again."
    )
    assert finding.fixable is False
    assert finding.details == {"width": 9000, "height": 5000, "min": 640, "max": 2048}


@pytest.mark.parametrize(
    ("width", "height", "ratio", "fixable"),
    [
        (0, 720, "720.00", False),
        (720, 0, "720.00", False),
        (1, 720, "720.00", True),
        (720, 1, "720.00", True),
    ],
)
def test_a_frame_no_pixel_wide_or_tall_cannot_be_fixed_but_one_pixel_can(
    width: int, height: int, ratio: str, fixable: bool
) -> None:
    finding = frame(width, height)
    assert f"Frame is {width}x{height} as displayed" in finding.message
    assert f"its aspect ratio {ratio} exceeds 3.2" in finding.message
    assert finding.fixable is fixable


# --- Frame rate -----------------------------------------------------------------------


def rate(fps: float | None) -> list[Finding]:
    return found(clip(picture={"avg_fps": fps, "nominal_fps": fps}), "InvalidFile.FPS")


def test_a_rate_under_15_fps_is_resampled_to_25() -> None:
    assert rate(10.0) == [
        Finding(
            "InvalidFile.FPS",
            Severity.ERROR,
            "Frame rate is 10 fps; the service accepts 15-60 fps. preflight fix resamples it to 25 fps.",
            True,
            {"fps": 10.0, "min": 15.0, "max": 60.0},
        )
    ]


def test_a_rate_over_60_fps_is_resampled_to_60_and_shown_to_the_thousandth() -> None:
    (finding,) = rate(61.23456)
    assert finding.message == (
        "Frame rate is 61.235 fps; the service accepts 15-60 fps. preflight fix resamples it to 60 fps."
    )
    assert finding.details == {"fps": 61.235, "min": 15.0, "max": 60.0}


@pytest.mark.parametrize(
    ("fps", "rejected"),
    # Containers store rates as fractions: 1499/100 and 6001/100 are the limits read back.
    [(1498 / 100, True), (1499 / 100, False), (6001 / 100, False), (6002 / 100, True)],
)
def test_a_rate_a_hundredth_beyond_15_or_60_fps_is_the_limit_read_back(fps: float, rejected: bool) -> None:
    assert bool(rate(fps)) is rejected


def test_a_container_that_states_no_frame_rate_says_the_limit_cannot_be_checked() -> None:
    info = clip(picture={"avg_fps": None, "nominal_fps": None})
    assert video_findings(info) == [
        Finding(
            "Video.FrameRateUnknown",
            Severity.WARNING,
            "The container does not state a frame rate, so the 15-60 fps limit cannot be "
            "checked; re-encoding at a constant rate fixes it.",
            True,
            {},
        )
    ]


def test_a_variable_rate_gives_its_average_and_nominal_rate() -> None:
    info = clip(picture={"variable_frame_rate": True, "avg_fps": 24.97649, "nominal_fps": 60000 / 1001})
    assert video_findings(info) == [
        Finding(
            "Video.VariableFrameRate",
            Severity.WARNING,
            "Frame intervals vary (average 24.976 fps); lip-sync models assume a constant rate "
            "and lips can drift from the voice. preflight fix converts it to a constant rate.",
            True,
            {"avg_fps": 24.976, "nominal_fps": 59.94},
        )
    ]


def test_a_variable_rate_with_no_stated_rates_has_none_in_its_details() -> None:
    info = clip(picture={"variable_frame_rate": True, "avg_fps": None, "nominal_fps": None})
    finding = only(info, "Video.VariableFrameRate")
    assert finding.details == {"avg_fps": None, "nominal_fps": None}
    # Not "average 0 fps": no rate was measured.
    assert finding.message.startswith("Frame intervals vary (average rate unknown); lip-sync models")


# --- Duration -------------------------------------------------------------------------


def lasting(seconds: float | None, **changes: Any) -> list[Finding]:
    info = clip(picture={"duration": seconds}, duration=seconds, **changes)
    return [f for f in video_findings(info) if f.code in ("InvalidFile.Duration", "Video.DurationUnknown")]


def test_a_video_under_2_s_is_padded() -> None:
    assert lasting(1.96) == [
        Finding(
            "InvalidFile.Duration",
            Severity.ERROR,
            "Video lasts 1.96 s; the service accepts 2-120 s. preflight fix pads it to 2 s.",
            True,
            {"duration": 1.96, "min": 2.0, "max": 120.0},
        )
    ]


def test_a_video_over_120_s_is_trimmed_or_sent_in_parts() -> None:
    assert lasting(120.04) == [
        Finding(
            "InvalidFile.Duration",
            Severity.ERROR,
            "Video lasts 120.04 s; the service accepts 2-120 s. preflight fix trims it to 120 s "
            "(prep-and-retalk --split sends long files in parts).",
            True,
            {"duration": 120.04, "min": 2.0, "max": 120.0},
        )
    ]


@pytest.mark.parametrize(
    ("seconds", "rejected"),
    # Compared to the millisecond: a hair under 2 s or over 120 s is the limit itself.
    [(1.9994, True), (1.9996, False), (120.0004, False), (120.0006, True)],
)
def test_lengths_are_judged_to_the_millisecond(seconds: float, rejected: bool) -> None:
    assert bool(lasting(seconds)) is rejected


def test_a_video_that_states_no_duration_says_the_limit_cannot_be_checked() -> None:
    assert lasting(None) == [
        Finding(
            "Video.DurationUnknown",
            Severity.WARNING,
            "The video does not state its duration, so the 2-120 s limit cannot be checked; "
            "re-encoding writes a proper header.",
            True,
            {},
        )
    ]


def test_the_picture_tracks_own_length_counts_over_the_files() -> None:
    # The sound runs on after the picture: the file lasts 130 s, the picture 100 s.
    long_sound = replace(SOUND, duration=130.0)
    info = clip(picture={"duration": 100.0}, duration=130.0, audio=(long_sound,))
    assert found(info, "InvalidFile.Duration") == []
    # And a picture with no length of its own goes by the file's.
    unstated = clip(picture={"duration": None}, duration=130.0, audio=(long_sound,))
    assert only(unstated, "InvalidFile.Duration").details["duration"] == 130.0


# --- A header that claims another length than its tracks ------------------------------


def header(
    claimed: float, picture_s: float | None, sound_s: float | None = None, **changes: Any
) -> list[Finding]:
    sound = (replace(SOUND, duration=sound_s),) if sound_s is not None else ()
    info = clip(picture={"duration": picture_s}, audio=sound, header_duration=claimed, **changes)
    return found(info, "Video.HeaderLength")


def test_a_header_claiming_ten_hours_for_a_short_clip_names_both_lengths() -> None:
    assert header(36000.0, 2.52) == [
        Finding(
            "Video.HeaderLength",
            Severity.WARNING,
            "The MP4 header claims 36000 s, but the tracks hold 2.52 s of video. A reader that "
            "trusts the header (ffprobe 5.1 does; the service's FFmpeg version is unknown) would "
            "answer InvalidFile.Duration (2-120 s). preflight fix copies the streams into a "
            "fresh MP4 whose header states their length.",
            True,
            {"header_duration": 36000.0, "duration": 2.52, "min": 2.0, "max": 120.0},
        )
    ]


def test_lengths_in_the_header_finding_are_rounded_once_to_the_millisecond() -> None:
    (finding,) = header(0.12346, 2.00046)
    assert "claims 0.123 s, but the tracks hold 2 s of video" in finding.message
    assert finding.details["header_duration"] == 0.123
    assert finding.details["duration"] == 2.0


@pytest.mark.parametrize(
    ("claimed", "picture_s", "warned"),
    [
        (2.0, 3.5, False),  # exactly 2 s is inside the limit
        (1.6, 2.8, True),  # 1.6 s is outside, not 2 s rounded
        (120.4, 119.0, True),
        (120.0004, 118.5, False),  # 120 s to the millisecond
        (120.0006, 118.5, True),
        (36000.0, 2.0, True),  # tracks of exactly 2 s are inside the limit
    ],
)
def test_a_header_length_is_judged_against_2_and_120_s_to_the_millisecond(
    claimed: float, picture_s: float, warned: bool
) -> None:
    assert bool(header(claimed, picture_s)) is warned


@pytest.mark.parametrize(
    ("claimed", "picture_s", "sound_s", "warned"),
    [
        (121.0, 120.0, None, False),  # a second apart is still rounding
        (121.0, 119.5, None, True),
        (120.2, 119.5, 110.0, False),  # within a second of the longest track, the picture
        (120.8, 119.0, 120.0, False),  # ... or the sound
        (120.8, 119.0, 119.5, True),
    ],
)
def test_a_header_within_a_second_of_its_longest_track_is_not_a_lie(
    claimed: float, picture_s: float, sound_s: float | None, warned: bool
) -> None:
    assert bool(header(claimed, picture_s, sound_s)) is warned


def test_a_header_is_measured_against_the_file_when_no_track_states_a_length() -> None:
    assert len(header(36000.0, None, duration=2.52)) == 1


# --- Rotation, pixel format, sound apart, several streams -----------------------------


def test_a_rotated_clip_gives_its_stored_and_shown_size() -> None:
    info = clip(
        picture={"coded_width": 1280, "coded_height": 720, "width": 720, "height": 1280, "rotation": 90}
    )
    assert video_findings(info) == [
        Finding(
            "Video.Rotated",
            Severity.WARNING,
            "Stored as 1280x720 with a 90 degree rotation flag (shown as 720x1280); a server that "
            "ignores the flag sees the face sideways. preflight fix bakes the rotation into the pixels.",
            True,
            {"rotation": 90, "coded_width": 1280, "coded_height": 720},
        )
    ]


def test_a_ten_bit_picture_names_its_pixel_format_and_profile() -> None:
    info = clip(picture={"pixel_format": "yuv422p10le", "profile": "High 4:2:2"})
    assert video_findings(info) == [
        Finding(
            "Video.PixelFormat",
            Severity.WARNING,
            "Pixel format is yuv422p10le (High 4:2:2 profile); many decoders accept only 8-bit "
            "4:2:0 (yuv420p). preflight fix re-encodes it as yuv420p.",
            True,
            {"pixel_format": "yuv422p10le", "profile": "High 4:2:2"},
        )
    ]


def test_an_unstated_pixel_format_and_profile_read_unknown() -> None:
    finding = only(clip(picture={"pixel_format": None, "profile": None}), "Video.PixelFormat")
    assert finding.message.startswith("Pixel format is unknown (unknown profile); ")


# Timestamps on a 90 kHz clock: sound from 2.600489 s, 2.533489 s of picture.
LATE_SOUND = replace(SOUND, start_time=234044 / 90000, duration=2.5)
SHORT_PICTURE = {"duration": 228014 / 90000}


def test_sound_after_the_picture_says_how_late_and_what_the_file_claims() -> None:
    info = clip(picture=SHORT_PICTURE, audio=(LATE_SOUND,), duration=5.1)
    assert found(info, "Video.AudioOffset") == [
        Finding(
            "Video.AudioOffset",
            Severity.WARNING,
            "The video's own sound track starts 2.60 s after the picture begins, and the picture "
            "lasts 2.53 s: the sound is of no use to it, and the file claims to last 5 s. "
            "preflight fix drops the sound track (the service puts the voice in its place).",
            True,
            {"offset": 2.6, "video_duration": 2.533},
        )
    ]


def test_sound_long_before_the_picture_says_how_early() -> None:
    early = replace(SOUND, start_time=0.0, duration=2.0)
    info = clip(picture={"duration": 2.5, "start_time": 3.0}, audio=(early,), duration=None)
    (finding,) = found(info, "Video.AudioOffset")
    assert finding.message.startswith("The video's own sound track starts 3.00 s before the picture begins")
    assert finding.message.endswith(
        "lasts 2.50 s: the sound is of no use to it. preflight fix drops the sound track "
        "(the service puts the voice in its place)."
    )
    assert finding.details == {"offset": -3.0, "video_duration": 2.5}


def test_sound_half_a_second_after_a_shorter_picture_is_after_it() -> None:
    info = clip(picture={"duration": 0.4}, audio=(replace(SOUND, start_time=0.5),))
    assert "starts 0.50 s after the picture begins" in only(info, "Video.AudioOffset").message


def test_a_sound_track_with_the_picture_but_no_length_says_it_holds_no_sound() -> None:
    info = clip(audio=(replace(SOUND, start_time=0.0, duration=0.0),))
    (finding,) = found(info, "Video.AudioOffset")
    # Not "starts -0.00 s before the picture begins".
    assert finding.message.startswith(
        "The video's own sound track starts as the picture begins but holds no sound, and the "
        "picture lasts 10.00 s: the sound is of no use to it"
    )
    assert finding.details == {"offset": 0.0, "video_duration": 10.0}


def test_a_second_video_stream_is_mentioned_as_information() -> None:
    info = clip(video=(PICTURE, replace(PICTURE, index=2)))
    assert video_findings(info) == [
        Finding(
            "Video.MultipleStreams",
            Severity.INFO,
            "The file has 2 video streams; the service will most likely use the first.",
            True,
            {"streams": 2},
        )
    ]
