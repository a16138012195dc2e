"""What `preflight fix` plans for a job's video, step by step in words.

The user story: someone's clip was checked and the service would reject it (or it only
carries a warning). `preflight fix` then plans the least change, and says it step by step:
a video that cannot be read cannot be fixed (and says why); one that passes is copied as
it is; one under the wrong name keeps its bytes under the right one; one in another
container, too long, with a header that lies, a sound track that plays apart from the
picture, or padding that makes it too big, has its packets copied into a fresh MP4 (a
remux: seconds); and only a picture that must change (codec, size, aspect, frame rate,
pixel format, rotation, a pad to length, a close-up of a small face, a rate cut to fit
300 MB) is re-encoded, in one pass, each change named with its numbers and the findings
it answers. The checked facts are given by hand (a clean 10 s 1280x720 H.264 clip at
25 fps, changed one fact at a time); the planner reads nothing else. The limits are the
service page's own: "MP4, AVI, or MOV. Max 300 MB. Duration: 2-120 seconds. Frame rate:
15-60 fps. Encoding: H.264 or H.265 required. Side length: 640-2,048 pixels."
The real fixes on real media are in test_fix_video.py.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest

from preflight import (
    Action,
    Box,
    Face,
    FaceSample,
    FaceThresholds,
    FileReport,
    Finding,
    FixOptions,
    MediaInfo,
    Pose,
    VideoFaceScan,
)
from preflight._fix.video import VideoPlan, fitted_size, plan_video, reframe_share, target_fps
from preflight._fix.video.geometry import crop_or_pad, reframe_crop
from preflight._fix.video.plan import _clamped_fps
from preflight.codes import CODES
from tests.preflight.clean_clip import CLIP, MIB, MP4, PICTURE, SOUND

MKV = "matroska,webm"

#: The steps that open every re-encode of the clean clip's H.264.
REENCODE = ("transcode", "h264 re-encoded to H.264 (x264 medium, crf 18)", ())
STRAIGHT = Pose(0.0, 0.0, 0.0)


def clip(
    picture: dict[str, Any] | None = None, sound: dict[str, Any] | None = None, **changes: Any
) -> MediaInfo:
    """The clean clip with some of its facts (and its picture's or sound's) changed."""
    if picture is not None:
        changes["video"] = (replace(PICTURE, **picture),)
    if sound is not None:
        changes["audio"] = (replace(SOUND, **sound),)
    return replace(CLIP, **changes)


def checked(
    info: MediaInfo | None, *codes: str, path: str = "", faces: VideoFaceScan | None = None
) -> FileReport:
    findings = tuple(Finding(code, CODES[code].severity, f"{code} said.", True, {}) for code in codes)
    return FileReport(path or (info.path if info else "/clips/clip.mp4"), "video", findings, info, faces)


def plan(
    report: FileReport,
    duration: float | None = None,
    thresholds: FaceThresholds | None = None,
    **options: Any,
) -> VideoPlan:
    return plan_video(
        report, FixOptions(**options), duration=duration, thresholds=thresholds or FaceThresholds()
    )


def steps(made: VideoPlan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(a.name, a.detail, a.because) for a in made.actions]


def face(x: float, y: float, width: float, height: float) -> Face:
    return Face(Box(x, y, width, height), 0.9, STRAIGHT)


def scan(*samples: FaceSample, width: int = 1280, height: int = 720) -> VideoFaceScan:
    return VideoFaceScan(width, height, 10.0, 1.0, tuple(samples), "test")


def at(time: float, *faces: Face, target: int | None = 0) -> FaceSample:
    return FaceSample(time, tuple(faces), target if faces else None)


def remuxed(actions: list[tuple[str, str, tuple[str, ...]]], **fields: Any) -> VideoPlan:
    """The remux plan of the clean clip: its picture's size, both streams, its length."""
    made: dict[str, Any] = dict(
        width=1280, height=720, video_index=0, audio_index=1, length=10.0, audio="copy"
    )
    made.update(fields)
    return VideoPlan(tuple(Action(*a) for a in actions), ".mp4", "remux", **made)


def encoded(actions: list[tuple[str, str, tuple[str, ...]]], **fields: Any) -> VideoPlan:
    """The re-encode plan of the clean clip at constant quality, both streams kept."""
    made: dict[str, Any] = dict(
        width=1280, height=720, fps=Fraction(25), video_index=0, audio_index=1, length=10.0, audio="copy"
    )
    made.update(fields)
    return VideoPlan(tuple(Action(*a) for a in actions), ".mp4", "encode", **made)


# --------------------------------------------------------------------------- cannot be fixed
def test_a_file_without_a_picture_cannot_become_a_video() -> None:
    assert plan(checked(clip(video=()))) == VideoPlan((), "", unfixable="the file has no video stream")
    # Said before the check's own words about it.
    no_picture = checked(clip(video=()), "InvalidFile.Openerror")
    assert plan(no_picture).unfixable == "the file has no video stream"


def test_a_file_the_check_could_not_open_gives_the_checks_words_and_why_nothing_is_made() -> None:
    report = replace(
        checked(clip()),
        findings=(
            Finding("InvalidFile.Openerror", CODES["InvalidFile.Openerror"].severity, "Cut short.", False),
        ),
    )
    assert plan(report) == VideoPlan(
        (), "", unfixable="Cut short; preflight fix cannot repair a file it cannot read"
    )
    assert (
        plan(checked(None, "InvalidFile.Openerror")).unfixable
        == "InvalidFile.Openerror said; preflight fix cannot repair a file it cannot read"
    )


def test_a_file_that_does_not_open_says_why() -> None:
    assert plan(checked(None)) == VideoPlan(
        (), "", unfixable="the file cannot be opened; preflight fix cannot repair a file it cannot read"
    )
    assert (
        plan(checked(clip(error="moov atom not found"))).unfixable
        == "moov atom not found; preflight fix cannot repair a file it cannot read"
    )
    assert (
        plan(checked(clip(error="", video=()))).unfixable
        == "the file cannot be opened; preflight fix cannot repair a file it cannot read"
    )


@pytest.mark.parametrize(
    "picture", [{"codec": None}, {"width": 0}, {"height": 0}, {"width": -2}, {"height": -2}]
)
def test_a_picture_no_decoder_reads_cannot_be_converted(picture: dict[str, Any]) -> None:
    assert plan(checked(clip(picture), "InvalidFile.Format")) == VideoPlan(
        (), "", unfixable="FFmpeg knows no decoder for its video codec: nothing to convert from"
    )


def test_a_picture_wider_than_8192_px_is_a_lying_header() -> None:
    made = plan(checked(clip({"width": 8193, "height": 4608}), "InvalidFile.Resolution"))
    assert made == VideoPlan(
        (),
        "",
        unfixable="its frames are 8193x4608, beyond the 8192 px a side preflight decodes (no camera "
        "records that; the header is damaged or lies): export the video again at its real size",
    )
    tall = plan(checked(clip({"width": 4608, "height": 8193}), "InvalidFile.Resolution"))
    assert tall.unfixable is not None and tall.unfixable.startswith("its frames are 4608x8193,")
    at_most = plan(checked(clip({"width": 8192, "height": 2560}), "InvalidFile.Resolution"))
    assert at_most.unfixable is None and (at_most.width, at_most.height) == (2048, 640)


# --------------------------------------------------------------------------- bytes kept
@pytest.mark.parametrize(
    ("name", "extension"), [("clip.mp4", ".mp4"), ("clip.MOV", ".mov"), ("a.b.avi", ".avi")]
)
def test_a_clip_that_passes_is_kept_as_it_is(name: str, extension: str) -> None:
    assert plan(checked(clip(), path=f"/clips/{name}")) == VideoPlan((), extension)


def test_warnings_the_planner_does_not_act_on_change_nothing() -> None:
    report = checked(clip(), "Video.MultipleStreams", "Video.DurationUnknown", "Face.TooSmall")
    assert plan(report) == VideoPlan((), ".mp4")
    # A header that lies, but whose claim is not known, has nothing to rewrite.
    assert plan(checked(clip(header_duration=None), "Video.HeaderLength")) == VideoPlan((), ".mp4")


@pytest.mark.parametrize(
    ("container", "name", "codes", "right", "because"),
    [
        (MP4, "clip.mkv", ("InvalidFile.Format",), ".mp4", ("InvalidFile.Format",)),
        (MP4, "clip", ("InvalidFile.Format",), ".mp4", ("InvalidFile.Format",)),
        (MP4, "clip.avi", ("Video.ExtensionMismatch",), ".mp4", ("Video.ExtensionMismatch",)),
        ("avi", "clip.mov", ("Video.ExtensionMismatch",), ".avi", ("Video.ExtensionMismatch",)),
        (
            "avi",
            "clip.webm",
            ("Video.ExtensionMismatch", "InvalidFile.Format"),
            ".avi",
            ("InvalidFile.Format", "Video.ExtensionMismatch"),
        ),
    ],
)
def test_a_clip_under_the_wrong_name_keeps_its_bytes_under_the_right_one(
    container: str, name: str, codes: tuple[str, ...], right: str, because: tuple[str, ...]
) -> None:
    made = plan(checked(clip(container=container), *codes, path=f"/clips/{name}"))
    kind = right[1:].upper()
    assert made == VideoPlan(
        (Action("rename", f"content is {kind}: copied unchanged as {right}", because),), right, "rename"
    )


def test_a_mov_whose_sound_mp4_cannot_carry_is_kept_when_nothing_is_written() -> None:
    made = plan(checked(clip(sound={"codec": "pcm_s16le"}), path="/clips/clip.mov"))
    assert made == VideoPlan((), ".mov")


# --------------------------------------------------------------------------- packets copied
def test_a_matroska_clip_has_its_packets_copied_into_mp4() -> None:
    made = plan(checked(clip(container=MKV), "InvalidFile.Format", path="/clips/clip.mkv"))
    assert made == remuxed(
        [("remux", "matroska,webm -> MP4, streams copied (no re-encode)", ("InvalidFile.Format",))]
    )


@pytest.mark.parametrize("codec", ["aac", "mp3", "alac"])
def test_sound_mp4_carries_is_copied_with_the_packets(codec: str) -> None:
    made = plan(checked(clip(container=MKV, sound={"codec": codec}), "InvalidFile.Format"))
    assert made.audio == "copy" and [a.name for a in made.actions] == ["remux"]


def test_sound_mp4_cannot_carry_is_made_aac_in_sync() -> None:
    made = plan(checked(clip(container=MKV, sound={"codec": "opus", "index": 2}), "InvalidFile.Format"))
    assert made == remuxed(
        [
            ("remux", "matroska,webm -> MP4, streams copied (no re-encode)", ("InvalidFile.Format",)),
            ("audio-aac", "sound track opus -> AAC (kept in sync)", ()),
        ],
        audio="aac",
        audio_index=2,
    )


def test_a_silent_clip_in_another_container_is_copied_without_sound() -> None:
    made = plan(
        checked(clip(container=MKV, audio=(), video=(replace(PICTURE, index=3),)), "InvalidFile.Format")
    )
    assert made == remuxed(
        [("remux", "matroska,webm -> MP4, streams copied (no re-encode)", ("InvalidFile.Format",))],
        audio="none",
        audio_index=None,
        video_index=3,
    )


def test_a_remux_keeps_the_rotation_flag_when_no_turn_was_asked() -> None:
    made = plan(
        checked(clip({"rotation": 90, "width": 720, "height": 1280}, container=MKV), "InvalidFile.Format")
    )
    assert made.mode == "remux" and made.rotation == 90 and made.filters == ()
    assert (made.width, made.height) == (720, 1280)


def test_a_header_that_claims_another_length_is_rewritten_from_the_tracks() -> None:
    made = plan(checked(clip(header_duration=130.0), "Video.HeaderLength"))
    assert made == remuxed(
        [
            (
                "remux",
                "header claims 130.00 s over 10.00 s of tracks: streams copied into a fresh MP4 "
                "(no re-encode)",
                ("Video.HeaderLength",),
            )
        ]
    )
    unknown = plan(
        checked(clip({"duration": None}, duration=None, header_duration=1.5), "Video.HeaderLength")
    )
    assert steps(unknown)[0][1].startswith("header claims 1.50 s over 0.00 s of tracks")
    assert unknown.length is None


# --------------------------------------------------------------------------- length
def test_a_clip_over_120_s_is_cut_to_120_by_copying_packets() -> None:
    made = plan(checked(clip({"duration": 130.5}, duration=130.6), "InvalidFile.Duration"))
    assert made == remuxed(
        [
            ("remux", "into MP4, streams copied (no re-encode)", ()),
            ("trim", "130.50 s -> 120 s", ("InvalidFile.Duration",)),
        ],
        trim_to=120.0,
        length=120.0,
    )


def test_the_stream_length_is_judged_to_the_millisecond() -> None:
    # 120.0004 s shows as 120.000: inside the limit, nothing to cut.
    assert plan(checked(clip({"duration": 120.0004}), "InvalidFile.Duration")) == VideoPlan((), ".mp4")
    over = plan(checked(clip({"duration": 120.001}), "InvalidFile.Duration"))
    assert over.trim_to == 120.0 and steps(over)[1] == (
        "trim",
        "120.00 s -> 120 s",
        ("InvalidFile.Duration",),
    )
    # No stream length: the container's.
    long = plan(checked(clip({"duration": None}, duration=125.0), "InvalidFile.Duration"))
    assert long.trim_to == 120.0 and steps(long)[1][1] == "125.00 s -> 120 s"


def test_a_long_clip_is_kept_whole_when_the_job_is_sent_in_parts_or_cut_shorter_when_asked() -> None:
    report = checked(clip({"duration": 130.5}), "InvalidFile.Duration")
    assert plan(report, max_duration_s=None) == VideoPlan((), ".mp4")
    shorter = plan(report, max_duration_s=60.0)
    assert shorter.trim_to == 60.0 and steps(shorter)[1] == (
        "trim",
        "130.50 s -> 60 s",
        ("InvalidFile.Duration",),
    )
    # The limit the fixer was given, not the service's, decides what is too long.
    assert (
        plan(checked(clip({"duration": 100.0}), "InvalidFile.Duration"), max_duration_s=60.0).trim_to == 60.0
    )


def test_a_clip_under_2_s_is_held_on_its_last_frame_to_2_s() -> None:
    made = plan(checked(clip({"duration": 1.5}, duration=1.5), "InvalidFile.Duration"))
    assert made == encoded(
        [
            REENCODE,
            ("pad-duration", "1.50 s -> 2 s, last frame held", ("InvalidFile.Duration",)),
            # Lengthened, the sound is encoded again (silence added after it).
            ("audio-aac", "sound track aac -> AAC (kept in sync)", ()),
        ],
        pad_to=2.0,
        length=2.0,
        audio="aac",
    )


def test_2_s_exactly_is_long_enough() -> None:
    assert plan(checked(clip({"duration": 2.0}), "InvalidFile.Duration")) == VideoPlan((), ".mp4")
    assert plan(checked(clip({"duration": 1.999}), "InvalidFile.Duration")).pad_to == 2.0
    assert plan(checked(clip({"duration": None}, duration=None), "InvalidFile.Duration")) == VideoPlan(
        (), ".mp4"
    )


def test_a_video_longer_than_its_voice_is_cut_to_the_voices_length() -> None:
    made = plan(checked(clip()), duration=8.0)
    assert made == remuxed(
        [
            ("remux", "into MP4, streams copied (no re-encode)", ()),
            ("trim", "10.00 s -> 8.00 s (the voice's length)", ("Pair.DurationMismatch",)),
        ],
        trim_to=8.0,
        length=8.0,
    )
    # The voice's length rules over the service's limit.
    assert plan(checked(clip({"duration": 130.0}), "InvalidFile.Duration"), duration=125.0).trim_to == 125.0


def test_a_video_shorter_than_its_voice_holds_its_last_frame() -> None:
    made = plan(checked(clip()), duration=12.5)
    assert steps(made) == [
        REENCODE,
        ("pad-duration", "10.00 s -> 12.50 s, last frame held", ("Pair.DurationMismatch",)),
        ("audio-aac", "sound track aac -> AAC (kept in sync)", ()),
    ]
    assert (made.mode, made.pad_to, made.trim_to, made.length, made.audio) == (
        "encode",
        12.5,
        None,
        12.5,
        "aac",
    )


def test_a_voice_within_a_millisecond_of_the_video_changes_nothing() -> None:
    assert plan(checked(clip()), duration=10.0009) == VideoPlan((), ".mp4")
    assert plan(checked(clip()), duration=9.9991) == VideoPlan((), ".mp4")
    assert plan(checked(clip()), duration=10.002).pad_to == 10.002
    assert plan(checked(clip()), duration=9.998).trim_to == 9.998
    # A video of no known length is left for the voice to match.
    assert plan(checked(clip({"duration": None}, duration=None)), duration=5.0) == VideoPlan((), ".mp4")


# --------------------------------------------------------------------------- sound
def test_the_sound_is_dropped_when_asked() -> None:
    made = plan(checked(clip()), drop_audio=True)
    assert made == remuxed(
        [
            ("remux", "into MP4, streams copied (no re-encode)", ()),
            ("drop-audio", "the video's own sound track dropped, as asked", ()),
        ],
        audio="drop",
    )
    assert plan(checked(clip(audio=())), drop_audio=True) == VideoPlan((), ".mp4")


@pytest.mark.parametrize(
    ("video_start", "sound_start", "words"),
    [
        (0.0, 12.0, "the sound track starts 12.00 s after the 10.00 s picture: dropped"),
        (0.0, 10.0, "the sound track starts 10.00 s after the 10.00 s picture: dropped"),
        (15.0, 0.0, "the sound track starts 15.00 s before the 10.00 s picture: dropped"),
    ],
)
def test_a_sound_track_that_plays_apart_from_the_picture_is_dropped(
    video_start: float, sound_start: float, words: str
) -> None:
    info = clip({"start_time": video_start}, {"start_time": sound_start, "duration": 3.0})
    made = plan(checked(info, "Video.AudioOffset"))
    assert made == remuxed(
        [
            ("remux", "into MP4, streams copied (no re-encode)", ()),
            ("drop-audio", words, ("Video.AudioOffset",)),
        ],
        audio="drop",
    )
    # Without the warning (ignored), it is left alone.
    assert plan(checked(info)) == VideoPlan((), ".mp4")


def test_a_sound_track_that_overlaps_the_picture_is_kept() -> None:
    info = clip(sound={"start_time": 9.9})
    assert plan(checked(info, "Video.AudioOffset")) == VideoPlan((), ".mp4")


def test_a_dropped_sound_leaves_its_bit_rate_to_the_picture() -> None:
    # 120 s dense source: the ceiling is the whole 300 MiB budget, no sound in it.
    info = clip({"duration": 120.0, "bit_rate": 10_000_000}, duration=120.0)
    kept = plan(checked(info, "Video.PixelFormat"))
    dropped = plan(checked(info, "Video.PixelFormat"), drop_audio=True)
    assert (kept.max_rate, dropped.max_rate) == (19_165_798, 19_293_798)
    silent = plan(
        checked(
            clip({"duration": 120.0, "bit_rate": 10_000_000}, duration=120.0, audio=()), "Video.PixelFormat"
        )
    )
    assert silent.max_rate == 19_293_798 and silent.audio == "none" and silent.audio_index is None


# --------------------------------------------------------------------------- size
def test_a_file_padded_past_300_mb_whose_streams_fit_is_rewritten_without_the_padding() -> None:
    info = clip({"duration": 120.0, "bit_rate": 16_000_000}, duration=120.0, size=320 * MIB)
    made = plan(checked(info, "InvalidFile.Size"))
    assert made == remuxed(
        [
            (
                "remux",
                "320 MiB file, 231 MiB of it the streams: rewritten without the rest",
                ("InvalidFile.Size",),
            )
        ],
        length=120.0,
    )


def test_streams_that_fill_the_size_limits_headroom_still_remux_and_a_bit_more_re_encodes() -> None:
    # 92% of 300 MiB is 289,406,976 bytes: 19,293,798 bit/s for 120 s fits, one more does not.
    fits = clip({"duration": 120.0, "bit_rate": 19_165_798}, duration=120.0, size=301 * MIB)
    assert plan(checked(fits, "InvalidFile.Size")).mode == "remux"
    over = clip({"duration": 120.0, "bit_rate": 19_165_799}, duration=120.0, size=301 * MIB)
    made = plan(checked(over, "InvalidFile.Size"))
    assert made == encoded(
        [
            ("transcode", "h264 re-encoded to H.264 (x264 medium, 19.2 Mbit/s)", ()),
            ("bitrate", "301 MiB -> video at 19.2 Mbit/s to land under 300 MiB", ("InvalidFile.Size",)),
        ],
        bit_rate=19_165_798,
        max_rate=19_165_798,
        length=120.0,
    )


def test_a_file_of_unknown_stream_rates_is_re_encoded_to_fit() -> None:
    for picture, sound in (({"bit_rate": None}, None), (None, {"bit_rate": None})):
        made = plan(checked(clip(picture, sound, size=310 * MIB), "InvalidFile.Size"))
        assert steps(made)[1] == (
            "bitrate",
            "310 MiB -> video at 231.4 Mbit/s to land under 300 MiB",
            ("InvalidFile.Size",),
        )
        assert made.bit_rate == made.max_rate == 231_397_580


def test_a_silent_file_too_big_counts_only_its_picture() -> None:
    info = clip({"duration": 120.0, "bit_rate": 19_293_798}, duration=120.0, size=301 * MIB, audio=())
    assert plan(checked(info, "InvalidFile.Size")).mode == "remux"


def test_a_job_sent_in_parts_only_has_each_part_to_fit() -> None:
    info = clip({"duration": 240.0, "bit_rate": None}, duration=240.0, bit_rate=None)
    parts = plan(checked(info, "Video.PixelFormat"), max_duration_s=None)
    assert parts.max_rate == 19_165_798  # 92% of 300 MiB over each 120 s part, less the sound
    # Sent whole (its length warning ignored), the whole 240 s must fit.
    whole = plan(checked(info, "Video.PixelFormat"))
    assert whole.max_rate == 9_518_899


def test_a_ceiling_is_set_only_on_a_source_dense_enough_to_come_near_the_limit() -> None:
    # 10 s: 231,397,580 bit/s for the picture; a quality encode grows at most 4 times.
    report = checked(clip(), "Video.PixelFormat")
    assert plan(report).max_rate is None
    # 231,397,580 / 4 = 57,849,395: a source that dense is left at constant quality alone.
    assert plan(checked(clip({"bit_rate": 57_849_395}), "Video.PixelFormat")).max_rate is None
    assert plan(checked(clip({"bit_rate": 57_849_396}), "Video.PixelFormat")).max_rate == 231_397_580
    # No stream rate: the container's; none at all: the ceiling.
    assert (
        plan(checked(clip({"bit_rate": None}, bit_rate=60_000_000), "Video.PixelFormat")).max_rate
        == 231_397_580
    )
    assert plan(checked(clip({"bit_rate": None}, bit_rate=2_000_000), "Video.PixelFormat")).max_rate is None
    assert plan(checked(clip({"bit_rate": None}, bit_rate=None), "Video.PixelFormat")).max_rate == 231_397_580


def test_a_clip_of_unknown_length_is_budgeted_as_one_second() -> None:
    info = clip({"duration": None, "bit_rate": None}, duration=None, bit_rate=None)
    made = plan(checked(info, "Video.PixelFormat"))
    assert made.max_rate == 2_315_127_808 and made.length is None


# --------------------------------------------------------------------------- new pixels
def test_a_vp9_picture_is_transcoded_to_h264_once() -> None:
    made = plan(checked(clip({"codec": "vp9"}), "InvalidFile.Format"))
    assert made == encoded([("transcode", "vp9 -> H.264 (x264, yuv420p)", ("InvalidFile.Format",))])


def test_h265_is_accepted_as_it_is() -> None:
    assert plan(checked(clip({"codec": "hevc"}))) == VideoPlan((), ".mp4")


def test_a_picture_under_640_px_is_scaled_up_in_its_aspect() -> None:
    made = plan(checked(clip({"width": 480, "height": 360, "avg_fps": 30.0}), "InvalidFile.Resolution"))
    assert made == encoded(
        [REENCODE, ("scale", "480x360 -> 854x640", ("InvalidFile.Resolution",))],
        filters=(("scale", "854:640:flags=lanczos"),),
        width=854,
        height=640,
        fps=Fraction(30),
    )


def test_a_4k_picture_is_scaled_down_to_2048() -> None:
    made = plan(checked(clip({"width": 3840, "height": 2160, "avg_fps": 50.0}), "InvalidFile.Resolution"))
    assert steps(made) == [REENCODE, ("scale", "3840x2160 -> 2048x1152", ("InvalidFile.Resolution",))]
    assert (made.width, made.height, made.fps, made.filters) == (
        2048,
        1152,
        Fraction(50),
        (("scale", "2048:1152:flags=lanczos"),),
    )


def test_a_size_left_alone_when_the_check_did_not_ask() -> None:
    assert plan(checked(clip({"width": 480, "height": 360}))) == VideoPlan((), ".mp4")


@pytest.mark.parametrize(
    ("size", "fitted"),
    [
        ((640, 640), (640, 640)),
        ((2048, 2048), (2048, 2048)),
        ((2048, 640), (2048, 640)),
        ((640, 2048), (640, 2048)),
        ((639, 1000), (640, 1002)),
        ((1000, 639), (1002, 640)),
        ((2049, 1000), (2048, 1000)),
        ((1000, 2049), (1000, 2048)),
        ((480, 360), (854, 640)),
        ((360, 480), (640, 854)),
        ((3840, 2160), (2048, 1152)),
        ((4096, 2160), (2048, 1080)),
        ((3000, 1001), (2048, 684)),
        ((1001, 3000), (684, 2048)),
        ((1281, 720), (1280, 720)),
        ((1280, 721), (1280, 722)),
        ((641, 641), (642, 642)),
        ((3200, 1000), (2048, 640)),
        ((1000, 3200), (640, 2048)),
        ((320, 1024), (640, 2048)),
        ((200, 640), (640, 2048)),
    ],
)
def test_a_fitted_size_keeps_the_aspect_with_every_side_in_640_to_2048_and_even(
    size: tuple[int, int], fitted: tuple[int, int]
) -> None:
    assert fitted_size(*size) == fitted


@pytest.mark.parametrize("size", [(3202, 1000), (1000, 3202), (2050, 640), (640, 2050), (200, 642)])
def test_no_size_fits_an_aspect_over_3_2(size: tuple[int, int]) -> None:
    assert fitted_size(*size) is None


def test_a_banner_with_no_face_known_gets_black_bars_to_3_2_then_scaled() -> None:
    made = plan(checked(clip({"width": 2100, "height": 600}), "InvalidFile.Resolution"))
    assert steps(made) == [
        REENCODE,
        (
            "pad",
            "2100x600 -> 2100x658 (black bars; no face known to crop around)",
            ("InvalidFile.Resolution",),
        ),
        ("scale", "2100x658 -> 2048x642", ("InvalidFile.Resolution",)),
    ]
    assert made.filters == (("pad", "2100:658:0:28:black"), ("scale", "2048:642:flags=lanczos"))
    assert (made.width, made.height) == (2048, 642)


def test_a_tall_strip_with_no_face_known_gets_bars_at_its_sides() -> None:
    step, action, width, height = crop_or_pad(600, 2100, None)
    assert step == ("pad", "658:2100:28:0:black")
    assert action == Action(
        "pad", "600x2100 -> 658x2100 (black bars; no face known to crop around)", ("InvalidFile.Resolution",)
    )
    assert (width, height) == (658, 2100)
    # A scan in which the target face is never seen is no face known.
    assert crop_or_pad(600, 2100, scan(at(0.0), width=600, height=2100))[0] == ("pad", "658:2100:28:0:black")


def test_a_strip_padded_is_centred_on_even_pixels() -> None:
    # 2000 / 3.2 = 625 rows: 626 even, the picture 26 rows lower, 13 above: 12 (even).
    assert crop_or_pad(2000, 601, None)[0] == ("pad", "2000:626:0:12:black")
    assert crop_or_pad(601, 2000, None)[0] == ("pad", "626:2000:12:0:black")
    assert crop_or_pad(3201, 1000, None)[0] == ("pad", "3201:1002:0:0:black")


def test_a_banner_is_cropped_to_3_2_around_the_face() -> None:
    faces = scan(at(0.0, face(0.8, 0.3, 0.1, 0.2)), width=2100, height=600)
    made = plan(checked(clip({"width": 2100, "height": 600}), "InvalidFile.Resolution", faces=faces))
    assert steps(made) == [
        REENCODE,
        ("crop", "2100x600 -> 1920x600 around the face", ("InvalidFile.Resolution",)),
        ("scale", "1920x600 -> 2048x640", ("InvalidFile.Resolution",)),
    ]
    assert made.filters == (("crop", "1920:600:180:0"), ("scale", "2048:640:flags=lanczos"))
    assert (made.width, made.height) == (2048, 640)


@pytest.mark.parametrize(
    ("boxes", "x"),
    [
        ([(0.0, 0.1)], 0),  # face at the left edge: the crop starts at 0
        ([(0.9, 0.1)], 180),  # at the right: the crop ends at the edge
        ([(0.45, 0.1)], 90),  # centre 1050: 1050 - 960
        ([(0.42, 0.06), (0.5, 0.06)], 68),  # averaged: centre 1029, 69 on a 2-px grid
        ([(0.4, 0.2), (0.52, 0.0)], 110),  # width averaged too: centre 1071
    ],
)
def test_the_crop_follows_the_target_face_averaged_over_the_samples(
    boxes: list[tuple[float, float]], x: int
) -> None:
    samples = [at(float(t), face(bx, 0.3, bw, 0.2)) for t, (bx, bw) in enumerate(boxes)]
    # A sample where someone else is the target, and one without the target, do not count.
    samples.append(at(9.0, face(0.0, 0.0, 0.05, 0.05), target=None))
    step, action, width, height = crop_or_pad(2100, 600, scan(*samples, width=2100, height=600))
    assert step == ("crop", f"1920:600:{x}:0")
    assert action == Action("crop", "2100x600 -> 1920x600 around the face", ("InvalidFile.Resolution",))
    assert (width, height) == (1920, 600)


@pytest.mark.parametrize(("y0", "y"), [(0.0, 0), (0.45, 90), (0.9, 180), (0.4509, 90)])
def test_a_tall_strip_is_cropped_around_the_face_too(y0: float, y: int) -> None:
    faces = scan(at(0.0, face(0.3, y0, 0.2, 0.1)), width=600, height=2100)
    step, action, width, height = crop_or_pad(600, 2100, faces)
    assert step == ("crop", f"600:1920:0:{y}")
    assert action.detail == "600x2100 -> 600x1920 around the face"
    assert (width, height) == (600, 1920)


# --------------------------------------------------------------------------- frame rate
@pytest.mark.parametrize(
    ("fps", "target"),
    [
        (12.0, Fraction(24)),  # every frame twice
        (10.0, Fraction(20)),
        (7.5, Fraction(15)),
        (5.0, Fraction(15)),  # three times
        (15.0, Fraction(15)),
        (60.0, Fraction(60)),
        (100.0, Fraction(50)),  # every second frame
        (120.0, Fraction(60)),
        (240.0, Fraction(60)),
        (90.0, Fraction(45)),
        (120000 / 1001, Fraction(60000, 1001)),
        (15000 / 1001, Fraction(30000, 1001)),
        (14.9, Fraction(25)),  # 29.8: no standard rate, so 25
        (60.5, Fraction(25)),
        (61.0, Fraction(25)),
        (181.0, Fraction(25)),
    ],
)
def test_a_rate_outside_15_to_60_fps_becomes_a_multiple_or_divisor_or_25(
    fps: float, target: Fraction
) -> None:
    assert target_fps(fps) == target


@pytest.mark.parametrize(
    ("fps", "clamped"),
    [
        (24.0, Fraction(24)),
        (30.0, Fraction(30)),
        (30000 / 1001, Fraction(30000, 1001)),
        (50.0, Fraction(50)),
        (60.0, Fraction(60)),
        (15.0, Fraction(15)),
        (None, Fraction(25)),
        (0.0, Fraction(25)),
        (120.0, Fraction(60)),
        (10.0, Fraction(20)),
        (60.2, Fraction(25)),
        (14.99, Fraction(25)),
        # In range, any rate is kept as it is (a new one is picked only out of range).
        (29.97, Fraction(2997, 100)),
        (23.5, Fraction(47, 2)),
    ],
)
def test_a_clips_own_rate_is_kept_when_in_range(fps: float | None, clamped: Fraction) -> None:
    assert _clamped_fps(fps) == clamped


@pytest.mark.parametrize(
    ("avg", "nominal", "words", "target"),
    [
        (120.0, 120.0, "120 -> 60 fps", Fraction(60)),
        (100.0, None, "100 -> 50 fps", Fraction(50)),
        (None, 12.0, "12 -> 24 fps", Fraction(24)),
        (10.0, 30.0, "10 -> 20 fps", Fraction(20)),
        (120000 / 1001, 120.0, "120 -> 59.94 fps", Fraction(60000, 1001)),
    ],
)
def test_a_rate_outside_15_to_60_is_changed(
    avg: float | None, nominal: float | None, words: str, target: Fraction
) -> None:
    made = plan(checked(clip({"avg_fps": avg, "nominal_fps": nominal}), "InvalidFile.FPS"))
    assert made == encoded([REENCODE, ("fps", words, ("InvalidFile.FPS",))], fps=target)


def test_a_rate_outside_the_range_with_no_rate_known_is_left_alone() -> None:
    assert plan(checked(clip({"avg_fps": None, "nominal_fps": None}), "InvalidFile.FPS")) == VideoPlan(
        (), ".mp4"
    )
    both = plan(
        checked(clip({"avg_fps": None, "nominal_fps": None}), "InvalidFile.FPS", "Video.FrameRateUnknown")
    )
    assert steps(both)[1] == ("cfr", "variable -> constant 25 fps", ("Video.FrameRateUnknown",))


@pytest.mark.parametrize(
    ("avg", "codes", "words", "because", "fps"),
    [
        (
            30000 / 1001,
            ("Video.VariableFrameRate",),
            "29.97",
            "Video.VariableFrameRate",
            Fraction(30000, 1001),
        ),
        (
            24.0,
            ("Video.VariableFrameRate", "Video.FrameRateUnknown"),
            "24",
            "Video.VariableFrameRate",
            Fraction(24),
        ),
        (50.0, ("Video.FrameRateUnknown",), "50", "Video.FrameRateUnknown", Fraction(50)),
        (None, ("Video.FrameRateUnknown",), "30", "Video.FrameRateUnknown", Fraction(30)),
        (75.0, ("Video.VariableFrameRate",), "25", "Video.VariableFrameRate", Fraction(25)),
    ],
)
def test_a_variable_rate_is_made_constant(
    avg: float | None, codes: tuple[str, ...], words: str, because: str, fps: Fraction
) -> None:
    made = plan(checked(clip({"avg_fps": avg, "nominal_fps": 30.0}), *codes))
    assert made == encoded([REENCODE, ("cfr", f"variable -> constant {words} fps", (because,))], fps=fps)


def test_an_encode_keeps_the_clips_own_rate() -> None:
    for rate in (24.0, 30.0, 50.0, 60.0):
        made = plan(checked(clip({"avg_fps": rate, "nominal_fps": 25.0}), "Video.PixelFormat"))
        assert made.fps == Fraction(int(rate))
    assert plan(checked(clip({"avg_fps": None, "nominal_fps": 24.0}), "Video.PixelFormat")).fps == Fraction(
        24
    )


def test_keyframes_asked_for_land_on_frames_of_the_output_rate() -> None:
    report = checked(clip({"avg_fps": 24.0}), "Video.PixelFormat")
    assert plan(report, keyframes_at=(0.0, 1.0, 2.5)).keyframes == frozenset({0, 24, 60})
    assert plan(report, keyframes_at=lambda: (0.5, 3.0)).keyframes == frozenset({12, 72})
    changed = checked(clip({"avg_fps": 120.0}), "InvalidFile.FPS")
    assert plan(changed, keyframes_at=(1.0, 2.0)).keyframes == frozenset({60, 120})
    # A remux keeps the source's keyframes: none asked.
    remux = plan(checked(clip(container=MKV), "InvalidFile.Format"), keyframes_at=(1.0,))
    assert remux.keyframes == frozenset()


# --------------------------------------------------------------------------- pixels
def test_a_pixel_format_decoders_reject_becomes_yuv420p() -> None:
    made = plan(checked(clip({"pixel_format": "yuv444p"}), "Video.PixelFormat"))
    assert made == encoded([REENCODE, ("pixel-format", "yuv444p -> yuv420p", ("Video.PixelFormat",))])


def test_the_quality_and_speed_asked_for_are_used() -> None:
    made = plan(checked(clip({"pixel_format": "yuv422p"}), "Video.PixelFormat"), preset="slow", crf=20)
    assert steps(made)[0] == ("transcode", "h264 re-encoded to H.264 (x264 slow, crf 20)", ())
    assert (made.preset, made.crf) == ("slow", 20)


@pytest.mark.parametrize(
    ("rotation", "filters"),
    [
        (90, (("transpose", "cclock"),)),
        (180, (("hflip", ""), ("vflip", ""))),
        (270, (("transpose", "clock"),)),
        (450, (("transpose", "cclock"),)),
    ],
)
def test_a_rotated_clip_is_turned_into_its_pixels_when_asked(
    rotation: int, filters: tuple[tuple[str, str], ...]
) -> None:
    made = plan(checked(clip({"rotation": rotation}), "Video.Rotated"))
    assert made == encoded(
        [
            REENCODE,
            (
                "rotate",
                f"turned {rotation} degrees into the pixels; rotation flag cleared",
                ("Video.Rotated",),
            ),
        ],
        filters=filters,
    )


def test_a_rotated_clip_is_turned_whenever_it_is_re_encoded_and_only_then() -> None:
    info = clip({"rotation": 90, "width": 360, "height": 480})
    made = plan(checked(info, "InvalidFile.Resolution"))
    assert steps(made) == [
        REENCODE,
        ("scale", "360x480 -> 640x854", ("InvalidFile.Resolution",)),
        ("rotate", "turned 90 degrees into the pixels; rotation flag cleared", ()),
    ]
    # Turned first: the sizes are as displayed.
    assert made.filters == (("transpose", "cclock"), ("scale", "640:854:flags=lanczos"))
    assert plan(checked(info)) == VideoPlan((), ".mp4")
    assert plan(checked(clip({"rotation": 360}), "Video.Rotated")) == VideoPlan((), ".mp4")


@pytest.mark.parametrize(
    ("size", "even"),
    [
        ((1281, 721), (1280, 720)),
        ((1281, 720), (1280, 720)),
        ((1280, 721), (1280, 720)),
        ((1279, 719), (1278, 718)),
    ],
)
def test_an_odd_picture_re_encoded_loses_a_row_or_column(
    size: tuple[int, int], even: tuple[int, int]
) -> None:
    made = plan(checked(clip({"width": size[0], "height": size[1]}), "Video.PixelFormat"))
    assert steps(made)[-1] == (
        "crop",
        f"{size[0]}x{size[1]} -> {even[0]}x{even[1]} (x264 needs even sides)",
        (),
    )
    assert made.filters == (("crop", f"{even[0]}:{even[1]}:0:0"),)
    assert (made.width, made.height) == even
    assert plan(checked(clip({"width": size[0], "height": size[1]}))) == VideoPlan((), ".mp4")


def test_sound_mp4_cannot_carry_is_made_aac_when_the_picture_is_re_encoded() -> None:
    made = plan(checked(clip({"pixel_format": "yuv444p"}, {"codec": "pcm_s16le"}), "Video.PixelFormat"))
    assert steps(made)[-1] == ("audio-aac", "sound track pcm_s16le -> AAC (kept in sync)", ())
    assert made.audio == "aac"


# --------------------------------------------------------------------------- close-up
def test_reframe_gives_the_face_30_percent_of_the_picture_or_what_the_thresholds_need() -> None:
    assert reframe_share(FaceThresholds()) == pytest.approx(0.3)
    assert reframe_share(FaceThresholds(min_share=0.3)) == pytest.approx(0.36)
    assert reframe_share(FaceThresholds(min_px=200)) == pytest.approx(0.375)
    assert reframe_share(FaceThresholds(min_share=0.55)) == pytest.approx(0.6)
    assert reframe_share(FaceThresholds(min_share=0.0, min_px=1)) == pytest.approx(0.3)


def test_a_small_face_gets_a_close_up_that_follows_it_when_asked() -> None:
    faces = scan(
        at(0.0, face(0.4, 0.3, 0.05, 0.1)),
        at(1.0, face(0.5, 0.3, 0.05, 0.1)),
        at(2.0, face(0.6, 0.3, 0.05, 0.1)),
        at(3.0, face(0.6, 0.3, 0.05, 0.1)),
        width=1920,
        height=1080,
    )
    report = checked(clip({"width": 1920, "height": 1080}), "Face.TooSmall", faces=faces)
    made = plan(report, reframe=True)
    assert steps(made) == [
        REENCODE,
        (
            "reframe",
            "close-up 640x360 following the face (4 positions): face 108 px = 30% of the picture "
            "instead of 10%",
            ("Face.TooSmall",),
        ),
        ("scale", "640x360 -> 1138x640", ()),
    ]
    assert made.filters == (
        (
            "crop",
            "w=640:h=360:"
            "x='if(lt(t,0.000),592.0,if(lt(t,1.000),592.0+(96.000)*(t-0.000),if(lt(t,2.000),688.0+(128.000)"
            "*(t-1.000),if(lt(t,3.000),816.0+(64.000)*(t-2.000),880.0))))':"
            "y='if(lt(t,0.000),216.0,if(lt(t,1.000),216.0+(-0.000)*(t-0.000),if(lt(t,2.000),216.0+(0.000)"
            "*(t-1.000),if(lt(t,3.000),216.0+(0.000)*(t-2.000),216.0))))'",
        ),
        ("scale", "1138:640:flags=lanczos"),
    )
    assert (made.width, made.height) == (1138, 640)
    # Not asked, or no scan: the finding stands.
    assert plan(report) == VideoPlan((), ".mp4")
    assert plan(replace(report, faces=None), reframe=True) == VideoPlan((), ".mp4")


def test_a_banner_of_an_odd_height_is_cropped_to_a_size_the_service_takes() -> None:
    faces = scan(at(0.0, face(0.45, 0.3, 0.1, 0.2)), width=2100, height=601)
    made = plan(checked(clip({"width": 2100, "height": 601}), "InvalidFile.Resolution", faces=faces))
    # Cut from the odd side it was 1922x600: over 3.2:1, under 640 px, and no scale fitted it.
    assert (made.width, made.height) == (2048, 640)
    assert [a.detail for a in made.actions if a.name == "crop"] == ["2100x601 -> 1920x600 around the face"]
    tall_faces = scan(at(0.0, face(0.3, 0.45, 0.2, 0.1)), width=601, height=2100)
    tall = plan(checked(clip({"width": 601, "height": 2100}), "InvalidFile.Resolution", faces=tall_faces))
    assert (tall.width, tall.height) == (640, 2048)


def close_up(*samples: FaceSample, width: int = 1920, height: int = 1080, **thresholds: Any) -> Any:
    faces = scan(*samples, width=width, height=height)
    return reframe_crop(width, height, faces, FaceThresholds(**thresholds))


def test_a_close_up_is_sized_by_the_largest_face_seen_and_keeps_the_aspect() -> None:
    made = close_up(
        at(0.0, face(0.4, 0.3, 0.1, 0.2)),
        at(1.0, face(0.4, 0.3, 0.1, 0.2)),
        at(2.0, face(0.4, 0.3, 0.1, 0.2)),
        at(3.0, face(0.4, 0.3, 0.1, 0.35)),
    )
    assert made is not None
    step, action, width, height = made
    # Heights smoothed over neighbours: 0.2, 0.2, 0.25, 0.275 of 1080 rows. 297 px of face
    # at 30%: 990 rows, 1760 columns.
    assert (width, height) == (1760, 990)
    assert action == Action(
        "reframe",
        "close-up 1760x990 following the face (4 positions): face 297 px = 30% of the picture instead of 28%",
        ("Face.TooSmall",),
    )
    assert step[1].startswith("w=1760:h=990:x='if(lt(t,0.000),")


def test_a_close_up_for_stricter_thresholds_is_tighter() -> None:
    made = close_up(at(0.0, face(0.4, 0.3, 0.1, 0.2)), min_share=0.4)
    assert made is not None
    # 216 px of face at 48%: 450 rows, 800 columns.
    assert made[1].detail == (
        "close-up 800x450 following the face (1 positions): face 216 px = 48% of the picture instead of 20%"
    )
    assert (made[2], made[3]) == (800, 450)


def test_a_tiny_face_is_never_cropped_tighter_than_240_rows() -> None:
    made = close_up(at(0.0, face(0.5, 0.5, 0.01, 0.02)))
    assert made is not None
    assert (made[2], made[3]) == (426, 240)
    assert made[1].detail.endswith("face 22 px = 9% of the picture instead of 2%")


def test_a_face_near_a_third_of_the_picture_gains_nothing_from_a_close_up() -> None:
    # 1079 rows wanted is 1078 even: within 2 rows of the 1080 there are.
    assert close_up(at(0.0, face(0.4, 0.3, 0.1, 1079 * 0.3 / 1080))) is None
    near = close_up(at(0.0, face(0.4, 0.3, 0.1, 1077 * 0.3 / 1080)))
    assert near is not None and (near[2], near[3]) == (1912, 1076)
    assert close_up(at(0.0, face(0.4, 0.3, 0.1, 0.5))) is None  # larger than the picture allows
    assert close_up(at(0.0)) is None  # the target face never seen


def test_a_close_up_stays_inside_the_picture() -> None:
    top_left, bottom_right = face(0.0, 0.0, 0.05, 0.1), face(0.95, 0.9, 0.05, 0.1)
    made = close_up(
        *(at(float(t), top_left) for t in range(3)), *(at(float(t), bottom_right) for t in range(3, 6))
    )
    assert made is not None
    # 640x360: the left and top edges at 0, the right and bottom at 1280 and 720; between
    # them the smoothed centres (0.342, 0.35) and (0.658, 0.65).
    assert made[0][1] == (
        "w=640:h=360:x='if(lt(t,0.000),0.0,if(lt(t,1.000),0.0+(0.000)*(t-0.000),if(lt(t,2.000),0.0+(336.000)*"
        "(t-1.000),if(lt(t,3.000),336.0+(608.000)*(t-2.000),if(lt(t,4.000),944.0+(336.000)*(t-3.000),"
        "if(lt(t,5.000),1280.0+(0.000)*(t-4.000),1280.0))))))':y='if(lt(t,0.000),0.0,if(lt(t,1.000),0.0+"
        "(0.000)*(t-0.000),if(lt(t,2.000),0.0+(216.000)*(t-1.000),if(lt(t,3.000),216.0+(324.000)*(t-2.000),"
        "if(lt(t,4.000),540.0+(180.000)*(t-3.000),if(lt(t,5.000),720.0+(0.000)*(t-4.000),720.0))))))'"
    )


def test_a_close_up_glides_over_three_samples() -> None:
    made = close_up(
        at(0.0, face(0.1, 0.1, 0.05, 0.1)),
        at(2.0, face(0.4, 0.4, 0.05, 0.1)),
        at(2.0, face(0.4, 0.4, 0.05, 0.1)),
        at(5.0, face(0.7, 0.1, 0.05, 0.1)),
        at(6.0, face(0.7, 0.1, 0.05, 0.1)),
    )
    assert made is not None
    # Centres smoothed over their neighbours (two samples at 2 s: no line between them).
    assert made[0][1] == (
        "w=640:h=360:x='if(lt(t,0.000),208.0,if(lt(t,2.000),208.0+(48.000)*(t-0.000),if(lt(t,2.000),304.0+"
        "(0.000)*(t-2.000),if(lt(t,5.000),688.0+(64.000)*(t-2.000),if(lt(t,6.000),880.0+(192.000)*(t-5.000),"
        "1072.0)))))':y='if(lt(t,0.000),162.0,if(lt(t,2.000),162.0+(27.000)*(t-0.000),if(lt(t,2.000),216.0+"
        "(0.000)*(t-2.000),if(lt(t,5.000),216.0+(-36.000)*(t-2.000),if(lt(t,6.000),108.0+(-108.000)*"
        "(t-5.000),0.0)))))'"
    )


def test_a_close_up_that_still_fits_is_not_scaled_and_a_size_finding_is_answered_by_the_scale() -> None:
    faces = scan(at(0.0, face(0.4, 0.3, 0.1, 0.25)), width=1920, height=1080)
    fits = plan(checked(clip({"width": 1920, "height": 1080}), "Face.TooSmall", faces=faces), reframe=True)
    assert [a.name for a in fits.actions] == ["transcode", "reframe"]
    assert (fits.width, fits.height, fits.filters[0][1][:15]) == (1600, 900, "w=1600:h=900:x=")
    small = scan(at(0.0, face(0.4, 0.3, 0.1, 0.1)), width=1920, height=1080)
    report = checked(
        clip({"width": 1920, "height": 1080}), "Face.TooSmall", "InvalidFile.Resolution", faces=small
    )
    made = plan(report, reframe=True)
    assert steps(made)[2] == ("scale", "640x360 -> 1138x640", ("InvalidFile.Resolution",))


def test_a_close_up_is_planned_with_the_thresholds_the_video_was_checked_with() -> None:
    faces = scan(at(0.0, face(0.4, 0.3, 0.1, 0.2)), width=1920, height=1080)
    report = checked(clip({"width": 1920, "height": 1080}), "Face.TooSmall", faces=faces)
    made = plan(report, thresholds=FaceThresholds(min_share=0.4), reframe=True)
    assert made.filters[0][1].startswith("w=800:h=450:") and steps(made)[2] == (
        "scale",
        "800x450 -> 1138x640",
        (),
    )


@pytest.mark.parametrize(
    ("size", "crop", "cropped", "fitted"),
    [
        ((2100, 602), "1926:602:86:0", (1926, 602), (2048, 640)),
        ((602, 2100), "602:1926:0:86", (602, 1926), (640, 2048)),
    ],
)
def test_a_crop_to_3_2_rounds_its_long_side_down_to_stay_inside_the_aspect(
    size: tuple[int, int], crop: str, cropped: tuple[int, int], fitted: tuple[int, int]
) -> None:
    # 602 x 3.2 = 1926.4: 1926 keeps the aspect under 3.2 (1928 would not, and no scale fits).
    width, height = size
    centred = face(0.45, 0.45, 0.1, 0.1)
    made = plan(
        checked(
            clip({"width": width, "height": height}),
            "InvalidFile.Resolution",
            faces=scan(at(0.0, centred), width=width, height=height),
        )
    )
    assert made.filters[0] == ("crop", crop)
    assert steps(made)[1:] == [
        (
            "crop",
            f"{width}x{height} -> {cropped[0]}x{cropped[1]} around the face",
            ("InvalidFile.Resolution",),
        ),
        (
            "scale",
            f"{cropped[0]}x{cropped[1]} -> {fitted[0]}x{fitted[1]}",
            ("InvalidFile.Resolution",),
        ),
    ]
    assert (made.width, made.height) == fitted


def test_a_crop_of_a_tall_strip_never_asks_for_more_columns_than_there_are() -> None:
    faces = scan(at(0.0, face(0.45, 0.45, 0.1, 0.1)), width=601, height=2100)
    step, _, width, _ = crop_or_pad(601, 2100, faces)
    assert step[1].startswith("600:") and width == 600


def test_a_close_up_of_an_odd_picture_may_take_all_but_three_rows() -> None:
    # 721 rows: 718 wanted is 3 short of the picture, more than the 2 that gain nothing.
    made = close_up(at(0.0, face(0.4, 0.3, 0.1, 718.5 * 0.3 / 721)), width=1280, height=721)
    assert made is not None and (made[2], made[3]) == (1274, 718)


def test_only_the_checks_closing_full_stop_is_dropped_from_its_words() -> None:
    words = "Cannot open the file as video: a still image in PCX."
    report = replace(
        checked(clip()),
        findings=(Finding("InvalidFile.Openerror", CODES["InvalidFile.Openerror"].severity, words, False),),
    )
    assert plan(report).unfixable == (
        "Cannot open the file as video: a still image in PCX; "
        "preflight fix cannot repair a file it cannot read"
    )


@pytest.mark.parametrize("size", [(1, 640), (640, 1)])
def test_a_picture_one_pixel_across_is_still_a_picture(size: tuple[int, int]) -> None:
    made = plan(checked(clip({"width": size[0], "height": size[1]}), "InvalidFile.Resolution"))
    assert made.unfixable is None and made.mode == "encode"
    assert [a.name for a in made.actions] == ["transcode", "pad", "scale"]


def test_a_header_length_the_check_was_told_to_ignore_is_left_alone() -> None:
    assert plan(checked(clip(header_duration=130.0))) == VideoPlan((), ".mp4")


PCM = {"codec": "pcm_s16le", "bit_rate": 1_536_000}


@pytest.mark.parametrize(
    ("info", "code", "first"),
    [
        (clip({"duration": 130.0}, PCM, duration=130.0), "InvalidFile.Duration", "into MP4, streams copied"),
        (
            clip({"duration": 30.0}, PCM, header_duration=130.0),
            "Video.HeaderLength",
            "header claims 130.00 s",
        ),
        (clip({}, PCM, size=301 * MIB), "InvalidFile.Size", "301 MiB file, 4 MiB of it the streams"),
    ],
)
def test_sound_mp4_cannot_carry_is_made_aac_whenever_a_new_mp4_is_written(
    info: MediaInfo, code: str, first: str
) -> None:
    made = plan(checked(info, code, path="/clips/clip.mov"))
    assert made.mode == "remux" and made.audio == "aac"
    assert any(a.detail.startswith(first) for a in made.actions)
    assert ("audio-aac", "sound track pcm_s16le -> AAC (kept in sync)", ()) in steps(made)


def test_the_sound_of_a_clip_under_a_second_that_starts_after_it_is_dropped() -> None:
    info = clip({"duration": 0.8}, {"start_time": 0.9, "duration": 3.0}, duration=3.9)
    made = plan(checked(info, "Video.AudioOffset"))
    assert steps(made)[-1] == (
        "drop-audio",
        "the sound track starts 0.90 s after the 0.80 s picture: dropped",
        ("Video.AudioOffset",),
    )


def test_streams_of_exactly_the_size_limits_headroom_are_remuxed() -> None:
    # 289,406,976 bit/s for 8 s: 289,406,976 bytes, 92% of 300 MiB to the byte.
    info = clip({"duration": 8.0, "bit_rate": 289_278_976}, duration=8.0, size=301 * MIB)
    assert plan(checked(info, "InvalidFile.Size")).mode == "remux"


def test_the_rate_to_fit_is_said_in_megabits() -> None:
    info = clip({"duration": 10.573, "bit_rate": None}, duration=10.573, size=310 * MIB)
    made = plan(checked(info, "InvalidFile.Size"))
    assert steps(made) == [
        ("transcode", "h264 re-encoded to H.264 (x264 medium, 218.9 Mbit/s)", ()),
        ("bitrate", "310 MiB -> video at 218.9 Mbit/s to land under 300 MiB", ("InvalidFile.Size",)),
    ]
    assert made.bit_rate == 218_850_133


def test_a_long_clip_re_encoded_anyway_is_cut_in_the_same_pass() -> None:
    info = clip({"duration": 130.0, "pixel_format": "yuv444p", "index": 2}, duration=130.0)
    made = plan(checked(info, "InvalidFile.Duration", "Video.PixelFormat"))
    assert made == encoded(
        [
            REENCODE,
            ("pixel-format", "yuv444p -> yuv420p", ("Video.PixelFormat",)),
            ("trim", "130.00 s -> 120 s", ("InvalidFile.Duration",)),
        ],
        trim_to=120.0,
        length=120.0,
        video_index=2,
    )


def test_a_header_remux_comes_first_among_its_steps() -> None:
    made = plan(checked(clip(header_duration=130.0), "Video.HeaderLength"), drop_audio=True)
    assert [a.name for a in made.actions] == ["remux", "drop-audio"]
    assert made.audio == "drop"
