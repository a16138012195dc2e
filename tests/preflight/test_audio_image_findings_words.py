"""What the report tells a user whose voice file or reference image the service would
reject, in words and numbers: each finding's code, severity, fixable flag, message (the
measured value beside the limit) and JSON details, at each limit of the service's page
just inside and just outside. Stories about a real file read a cheap one; stories about
wording and boundaries give the probed facts by hand, as a probe would state them.

The page: "File: WAV, MP3, or AAC. Max 30 MB. Duration: 2-120 seconds." for the audio;
"File: JPEG, JPG, PNG, BMP, or WebP. Max 10 MB. Aspect ratio: 2 or less; longest side:
4,096 pixels or less." for the image. The limits are written out here, never taken from
``preflight.limits``, so a wrong limit fails.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from preflight import (
    CheckOptions,
    Finding,
    ImageInfo,
    MediaInfo,
    Severity,
    check_audio,
    check_image,
    check_video,
    probe_media,
)
from preflight._rules.container import audio_findings, image_findings
from preflight._rules.video import audio_apart
from tests.conftest import SAMPLE
from tests.corpus.make_corpus import png16_blank
from tests.preflight import clean_voice
from tests.preflight.clean_clip import MIB, MP4, PICTURE

#: Container facts only: these stories are about what the service would reject, not faces
#: or speech (they have their own tests).
FACTS = CheckOptions(fast=True)
# fixtures/sample/voice.wav as the probe states it: the clean voice, 4 s at 16 kHz.
VOICE_TRACK = replace(clean_voice.SOUND, sample_rate=16000, duration=4.0, start_time=None, bit_rate=256_000)
VOICE = replace(
    clean_voice.VOICE,
    path="voice.wav",
    size=128_078,
    duration=4.0,
    start_time=None,
    bit_rate=256_156,
    audio=(VOICE_TRACK,),
)
# A 1000x800 RGB JPEG photo of a face, no EXIF orientation.
PHOTO = ImageInfo(
    path="face.jpg",
    size=150_000,
    format="JPEG",
    mode="RGB",
    stored_width=1000,
    stored_height=800,
    orientation=None,
    width=1000,
    height=800,
)


def voice(**changes: Any) -> MediaInfo:
    """The voice with its one track changed."""
    return replace(VOICE, audio=(replace(VOICE_TRACK, **changes),))


def facts(finding: Finding) -> tuple[str, str, bool, dict[str, object]]:
    """What the JSON report says of a finding besides its message."""
    data = finding.to_dict()
    return data["code"], data["severity"], data["fixable"], data["details"]


# --------------------------------------------------------------------------- the voice
def test_the_well_formed_voice_given_as_facts_has_nothing_to_report() -> None:
    assert audio_findings(VOICE) == []


def test_a_file_that_cannot_be_opened_as_audio_says_what_ffmpeg_said() -> None:
    (finding,) = audio_findings(replace(VOICE, error="Invalid data found when processing input"))
    assert finding.message == "Cannot open the file as audio: Invalid data found when processing input."
    assert facts(finding) == (
        "InvalidFile.Openerror",
        "error",
        False,
        {"reason": "Invalid data found when processing input"},
    )


def test_a_silent_video_given_as_audio_has_no_audio_stream_with_video_only(made) -> None:
    path = made("video", "silent.mp4", width=640, height=640, fps=25, duration=2.0, audio=False)
    (finding,) = check_audio(path, FACTS).findings
    assert finding.message == "The file has no audio stream (MP4/MOV/M4A with video only)."
    assert facts(finding) == ("InvalidFile.Openerror", "error", False, {"container": MP4, "video_streams": 1})


def test_a_file_with_no_stream_at_all_names_only_its_container() -> None:
    (finding,) = audio_findings(replace(VOICE, container="ogg", audio=()))
    assert finding.message == "The file has no audio stream (Ogg)."
    assert facts(finding) == (
        "InvalidFile.Openerror",
        "error",
        False,
        {"container": "ogg", "video_streams": 0},
    )


def test_a_wav_of_a_codec_ffmpeg_does_not_know_cannot_be_decoded(tmp_path: Path) -> None:
    data = bytearray((SAMPLE / "voice.wav").read_bytes())
    fmt = data.index(b"fmt ")
    data[fmt + 8 : fmt + 10] = (0x1234).to_bytes(2, "little")  # a format tag no codec has
    path = tmp_path / "voice.wav"
    path.write_bytes(bytes(data))
    (finding,) = check_audio(path, FACTS).findings
    assert finding.message == (
        "The audio stream (unknown codec) cannot be decoded: its codec is one FFmpeg does not "
        "know, so nothing here can decode it."
    )
    assert facts(finding) == (
        "InvalidFile.Openerror",
        "error",
        False,
        {"codec": None, "sample_rate": None, "channels": None},
    )


def test_a_wav_header_of_no_channels_cannot_be_decoded_and_says_what_it_read() -> None:
    # Its sample rate and format are usable: one missing field is enough.
    (finding,) = audio_findings(voice(channels=0, channel_layout=None))
    assert finding.message == (
        "The audio stream (pcm_s16le) cannot be decoded: its header gives no usable sample rate, "
        "channel count or sample format (sample rate 16000, channels 0)."
    )
    assert facts(finding) == (
        "InvalidFile.Openerror",
        "error",
        False,
        {"codec": "pcm_s16le", "sample_rate": 16000, "channels": 0},
    )


def test_a_track_with_no_sample_format_cannot_be_decoded() -> None:
    (finding,) = audio_findings(voice(sample_format=None))
    assert finding.code == "InvalidFile.Openerror"
    assert "(sample rate 16000, channels 1)" in finding.message


def test_a_video_given_as_audio_names_its_container_and_sound_and_the_fix() -> None:
    (finding,) = audio_findings(probe_media(SAMPLE / "talking_head.mp4"))
    assert finding.message == (
        "This is a video file (MP4/MOV/M4A, aac audio); the service wants an audio file: "
        "WAV, MP3 or AAC. preflight fix extracts its audio track."
    )
    assert facts(finding) == (
        "InvalidFile.Format",
        "error",
        True,
        {"container": MP4, "codec": "aac", "video_streams": 1},
    )


def test_a_flac_voice_is_a_format_the_service_does_not_take() -> None:
    flac = replace(voice(codec="flac", bit_depth=None), path="voice.flac", container="flac")
    (finding,) = audio_findings(flac)
    assert finding.message == (
        "Format is FLAC with flac audio; the service accepts WAV, MP3 or AAC (.aac, ADTS). "
        "preflight fix converts it to WAV (16-bit PCM)."
    )
    assert facts(finding) == ("InvalidFile.Format", "error", True, {"container": "flac", "codec": "flac"})


def test_a_wav_holding_mp3_is_a_codec_the_service_cannot_read() -> None:
    (finding,) = audio_findings(voice(codec="mp3", sample_format="fltp", bit_depth=None))
    assert finding.message == (
        "WAV file holds mp3, which the service cannot read; preflight fix converts it to 16-bit PCM WAV."
    )
    assert facts(finding) == ("InvalidFile.Format", "error", True, {"container": "wav", "codec": "mp3"})


def test_wav_content_named_mp3_is_a_warning_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "voice.mp3"
    shutil.copy(SAMPLE / "voice.wav", path)
    (finding,) = check_audio(path, FACTS).findings
    assert finding.message == (
        "Extension .mp3 does not match the content (WAV); a server that trusts the extension "
        "may fail to read it. preflight fix gives it the right extension."
    )
    assert facts(finding) == (
        "Audio.ExtensionMismatch",
        "warning",
        True,
        {"extension": ".mp3", "container": "wav"},
    )


def test_a_wav_under_an_unaccepted_extension_lists_the_ones_the_service_takes(tmp_path: Path) -> None:
    path = tmp_path / "voice.wave"
    shutil.copy(SAMPLE / "voice.wav", path)
    (finding,) = check_audio(path, FACTS).findings
    assert finding.message == (
        "Extension .wave is not accepted; the service takes .aac, .mp3, .wav. The content is "
        "WAV: preflight fix writes it with the right extension, without re-encoding."
    )
    assert facts(finding) == ("InvalidFile.Format", "error", True, {"extension": ".wave", "container": "wav"})


def test_a_truncated_voice_keeps_its_truncation_beside_the_other_findings() -> None:
    cut = replace(VOICE, path="voice.mp3", missing_bytes=4096)
    findings = audio_findings(cut)
    assert [f.code for f in findings] == ["InvalidFile.Openerror", "Audio.ExtensionMismatch"]
    assert findings[0].message == (
        "The file is truncated: its index points 4,096 bytes past the end of the file "
        "(128,078 bytes). Copy or export it again."
    )


@pytest.mark.parametrize(("size", "rejected"), [(30 * MIB, False), (30 * MIB + 1, True)])
def test_a_voice_may_be_30_mb_and_one_byte_more_says_how_to_shrink_it(size: int, rejected: bool) -> None:
    findings = audio_findings(replace(VOICE, size=size))
    if not rejected:
        assert findings == []
        return
    (finding,) = findings
    assert finding.message == (
        "Audio file is 30.0 MB (31,457,281 bytes); the service accepts at most 30.0 MB "
        "(31,457,280 bytes). preflight fix converts it to a smaller encoding (mono, 16-bit, or MP3)."
    )
    assert facts(finding) == ("InvalidFile.Size", "error", True, {"size": 31_457_281, "max": 31_457_280})


@pytest.mark.parametrize(
    ("seconds", "rejected"), [(1.999, True), (2.0, False), (120.0, False), (120.001, True)]
)
def test_a_voice_lasts_2_to_120_seconds_by_its_track(seconds: float, rejected: bool) -> None:
    # The container states 60 s: the track's own length is the one that counts.
    findings = audio_findings(replace(voice(duration=seconds), duration=60.0))
    assert [f.code for f in findings] == (["InvalidFile.Duration"] if rejected else [])
    if rejected:
        assert findings[0].message.startswith(f"Audio lasts {seconds:g} s; the service accepts 2-120 s.")
        assert findings[0].details == {"duration": seconds, "min": 2.0, "max": 120.0}


def test_a_track_that_states_no_length_is_judged_by_the_container() -> None:
    (finding,) = audio_findings(replace(voice(duration=None), duration=1.5))
    assert finding.message == "Audio lasts 1.5 s; the service accepts 2-120 s. preflight fix pads it to 2 s."
    assert facts(finding) == (
        "InvalidFile.Duration",
        "error",
        True,
        {"duration": 1.5, "min": 2.0, "max": 120.0},
    )


def test_a_voice_that_states_no_length_anywhere_cannot_be_checked() -> None:
    (finding,) = audio_findings(replace(voice(duration=None), duration=None))
    assert finding.message == (
        "The audio does not state its duration, so the 2-120 s limit cannot be checked; "
        "re-encoding writes a proper header."
    )
    assert facts(finding) == ("Audio.DurationUnknown", "warning", True, {})


def test_two_audio_streams_are_noted_and_the_first_is_judged() -> None:
    second = replace(VOICE_TRACK, index=1, codec="mp3", duration=1.0)
    (finding,) = audio_findings(replace(VOICE, audio=(VOICE_TRACK, second)))
    assert finding.message == "The file has 2 audio streams; the service will most likely use the first."
    assert facts(finding) == ("Audio.MultipleStreams", "info", True, {"streams": 2})
    assert finding.severity is Severity.INFO


# ------------------------------------------------------- the video's own sound track
# audio_apart: (where the sound starts against the picture, the picture's length) when the
# sound plays at no moment of the picture, else None. Only the streams' starts and lengths
# count: the picture is the clean clip's.
def sound_at(
    sound_start: float, sound_seconds: float, picture_start: float = 0.0, picture_seconds: float = 2.5
) -> tuple[float, float] | None:
    track = replace(VOICE_TRACK, start_time=sound_start, duration=sound_seconds)
    picture = replace(PICTURE, start_time=picture_start, duration=picture_seconds)
    return audio_apart(replace(VOICE, video=(picture,), audio=(track,)))


def test_sound_that_starts_exactly_when_the_picture_ends_is_apart() -> None:
    assert sound_at(2.5, 1.0) == (2.5, 2.5)
    assert sound_at(2.49, 1.0) is None  # a hundredth of a second earlier, it overlaps


def test_sound_that_ends_exactly_when_the_picture_begins_is_apart() -> None:
    assert sound_at(0.5, 0.5, picture_start=1.0) == (-0.5, 2.5)
    # Half a second of overlap is sound the picture can use.
    assert sound_at(0.0, 1.5, picture_start=1.0) is None


def test_sound_that_ends_before_a_long_picture_begins_is_apart() -> None:
    # It starts less than a picture's length early, but is over before the picture begins.
    assert sound_at(0.0, 0.5, picture_start=1.0, picture_seconds=10.0) == (-1.0, 10.0)


def test_a_picture_shorter_than_a_second_is_still_compared() -> None:
    assert sound_at(1.0, 1.0, picture_seconds=0.8) == (1.0, 0.8)
    assert sound_at(0.5, 1.0, picture_seconds=0.8) is None


# --------------------------------------------------------- an image given as the video
def test_a_photo_given_as_the_video_is_a_still_image_to_pass_as_ref() -> None:
    (finding,) = check_video(SAMPLE / "face.jpg", FACTS).findings
    assert finding.message == (
        "Cannot open the file as video: it is a still image (JPEG). Give a video file, or pass "
        "the image as --ref."
    )
    assert facts(finding) == ("InvalidFile.Openerror", "error", False, {"format": "JPEG"})


def test_a_damaged_png_given_as_the_video_is_a_still_image_of_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # PNG's signature, then nothing usable
    (finding,) = check_video(path, FACTS).findings
    assert finding.message == (
        "Cannot open the file as video: it is a still image (unknown format). Give a video "
        "file, or pass the image as --ref."
    )
    assert facts(finding) == ("InvalidFile.Openerror", "error", False, {"format": None})


# ----------------------------------------------------------------- the reference image
def test_the_photo_given_as_facts_has_nothing_to_report() -> None:
    assert image_findings(PHOTO) == []


def test_text_named_jpg_cannot_be_opened_as_an_image(tmp_path: Path) -> None:
    path = tmp_path / "face.jpg"
    path.write_bytes(b"not an image\n")
    (finding,) = check_image(path, FACTS).findings
    assert finding.message == "Cannot open the file as an image: Pillow recognises no image format in it."
    assert facts(finding) == (
        "InvalidFile.Openerror",
        "error",
        False,
        {"reason": "Pillow recognises no image format in it"},
    )


def test_an_image_too_big_to_open_safely_is_rejected_for_its_size(tmp_path: Path) -> None:
    # 14000x14000 is 196 million pixels: Pillow refuses to open it (a decompression bomb).
    path = tmp_path / "bomb.png"
    png16_blank(14000, 14000)(path)
    (finding,) = check_image(path, FACTS).findings
    assert finding.code == "InvalidFile.ImageSize" and finding.severity is Severity.ERROR
    assert finding.fixable is False
    assert finding.message.startswith(
        "The image has too many pixels to open safely (too many pixels to decode safely ("
    )
    assert finding.message.endswith("); the service accepts at most 4096 px per side.")
    assert "196000000 pixels" in finding.message
    assert finding.details["reason"].startswith("too many pixels to decode safely (")


def test_an_image_whose_pixels_cannot_be_decoded_is_probably_truncated() -> None:
    (finding,) = image_findings(PHOTO, "image file is truncated (12 bytes not processed)")
    assert finding.message == (
        "The image header reads as JPEG 1000x800, but its pixels cannot be decoded (image file "
        "is truncated (12 bytes not processed)); the file is probably truncated."
    )
    assert facts(finding) == (
        "InvalidFile.Openerror",
        "error",
        False,
        {"reason": "image file is truncated (12 bytes not processed)"},
    )


def test_a_gif_is_a_format_the_service_does_not_take() -> None:
    gif = replace(PHOTO, path="face.gif", format="GIF", mode="P")
    (finding,) = image_findings(gif)
    assert finding.message == (
        "Image format is GIF; the service accepts JPEG, PNG, BMP or WebP. preflight fix converts "
        "it (PNG when it has transparency, JPEG otherwise)."
    )
    assert facts(finding) == ("InvalidFile.Format", "error", True, {"format": "GIF", "extension": ".gif"})


def test_png_content_named_jpg_names_the_content() -> None:
    (finding,) = image_findings(replace(PHOTO, format="PNG"))
    assert finding.message == (
        "Extension .jpg does not match the content (PNG); a server that trusts the extension may "
        "fail to read it. preflight fix gives it the right extension."
    )
    assert facts(finding) == (
        "Image.ExtensionMismatch",
        "warning",
        True,
        {"extension": ".jpg", "format": "PNG"},
    )


def test_a_jpeg_named_jfif_lists_the_extensions_the_service_takes() -> None:
    (finding,) = image_findings(replace(PHOTO, path="face.jfif"))
    assert finding.message == (
        "Extension .jfif is not accepted; the service takes .bmp, .jpeg, .jpg, .png, .webp. The "
        "content is JPEG: preflight fix writes it with the right extension, without re-encoding."
    )
    assert facts(finding) == ("InvalidFile.Format", "error", True, {"extension": ".jfif", "format": "JPEG"})


@pytest.mark.parametrize(("size", "rejected"), [(10 * MIB, False), (10 * MIB + 1, True)])
def test_an_image_may_be_10_mb_and_one_byte_more_is_re_encoded(size: int, rejected: bool) -> None:
    findings = image_findings(replace(PHOTO, size=size))
    if not rejected:
        assert findings == []
        return
    (finding,) = findings
    assert finding.message == (
        "Image file is 10.0 MB (10,485,761 bytes); the service accepts at most 10.0 MB "
        "(10,485,760 bytes). preflight fix re-encodes it smaller."
    )
    assert facts(finding) == ("InvalidFile.Size", "error", True, {"size": 10_485_761, "max": 10_485_760})


def sized(width: int, height: int) -> ImageInfo:
    return replace(PHOTO, stored_width=width, stored_height=height, width=width, height=height)


@pytest.mark.parametrize(("width", "height"), [(4096, 2048), (2048, 4096), (1000, 500)])
def test_a_longest_side_of_4096_and_an_aspect_of_2_pass(width: int, height: int) -> None:
    assert image_findings(sized(width, height)) == []


def test_a_side_of_4097_px_is_downscaled() -> None:
    (finding,) = image_findings(sized(4097, 2100))
    assert finding.message == (
        "Image is 4097x2100: its longest side is 4097 px (at most 4096; preflight fix downscales it)."
    )
    assert facts(finding) == (
        "InvalidFile.ImageSize",
        "error",
        True,
        {"width": 4097, "height": 2100, "aspect": 1.951, "max_side": 4096, "max_aspect": 2.0},
    )


def test_an_aspect_just_over_2_is_cropped_and_stated_to_three_decimals() -> None:
    (finding,) = image_findings(sized(2500, 1201))
    assert finding.message == (
        "Image is 2500x1201: its aspect ratio is 2.08 (at most 2; preflight fix crops around the face)."
    )
    assert facts(finding) == (
        "InvalidFile.ImageSize",
        "error",
        True,
        {"width": 2500, "height": 1201, "aspect": 2.082, "max_side": 4096, "max_aspect": 2.0},
    )


def test_a_tall_and_narrow_image_is_judged_by_its_aspect_too() -> None:
    (finding,) = image_findings(sized(500, 1001))
    assert finding.details["aspect"] == 2.002
    assert "its aspect ratio is 2.00 (at most 2;" in finding.message


def test_an_image_too_long_and_too_narrow_names_both_problems() -> None:
    (finding,) = image_findings(sized(5000, 2000))
    assert finding.message == (
        "Image is 5000x2000: its longest side is 5000 px (at most 4096; preflight fix downscales "
        "it) and its aspect ratio is 2.50 (at most 2; preflight fix crops around the face)."
    )
    assert finding.fixable is True


def test_an_image_beyond_what_preflight_decodes_must_be_scaled_down_elsewhere() -> None:
    # 8193x8192 is one column more than the 8192x8192 preflight decodes.
    (finding,) = image_findings(sized(8193, 8192))
    assert finding.message == (
        "Image is 8193x8192: its longest side is 8193 px (at most 4096; 67.1 million pixels, "
        "more than the 67.1 million pixels preflight decodes: scale it down in an image editor)."
    )
    assert facts(finding) == (
        "InvalidFile.ImageSize",
        "error",
        False,
        {"width": 8193, "height": 8192, "aspect": 1.0, "max_side": 4096, "max_aspect": 2.0},
    )


def test_an_image_too_big_to_decode_counts_its_pixels_to_a_tenth_of_a_million() -> None:
    # 10020x7001 is 70,150,020 pixels: 70.2 million, over the 67.1 million decoded.
    (finding,) = image_findings(replace(sized(10020, 7001), path="/refs/poster.jpg", size=9_000_000))
    assert "its longest side is 10020 px (at most 4096; 70.2 million pixels, more than the 67.1 million" in (
        finding.message
    )


def test_an_image_of_8192_by_8192_is_still_downscaled_by_the_fixer() -> None:
    (finding,) = image_findings(sized(8192, 8192))
    assert finding.fixable is True
    assert finding.message.endswith("(at most 4096; preflight fix downscales it).")


def test_an_image_with_no_height_has_no_aspect_and_cannot_be_fixed() -> None:
    (finding,) = image_findings(sized(300, 0))
    assert finding.message == (
        "Image is 300x0: its aspect ratio is inf (at most 2; preflight fix crops around the face)."
    )
    assert facts(finding) == (
        "InvalidFile.ImageSize",
        "error",
        False,
        {"width": 300, "height": 0, "aspect": None, "max_side": 4096, "max_aspect": 2.0},
    )


def test_a_strip_one_pixel_tall_can_still_be_cropped() -> None:
    (finding,) = image_findings(sized(300, 1))
    assert finding.fixable is True and finding.details["aspect"] == 300.0


@pytest.mark.parametrize(("orientation", "meaning"), [(2, "mirrored"), (6, "rotated 90 degrees clockwise")])
def test_an_exif_orientation_other_than_1_is_named_with_both_sizes(orientation: int, meaning: str) -> None:
    shown = (800, 1000) if orientation == 6 else (1000, 800)
    turned = replace(PHOTO, orientation=orientation, width=shown[0], height=shown[1])
    (finding,) = image_findings(turned)
    assert finding.message == (
        f"EXIF orientation {orientation} ({meaning}): stored 1000x800, shown {shown[0]}x{shown[1]}. "
        "A server that ignores the tag sees the face turned; preflight fix applies it."
    )
    assert facts(finding) == ("Image.Rotated", "warning", True, {"orientation": orientation})


def test_exif_orientation_1_is_upright() -> None:
    assert image_findings(replace(PHOTO, orientation=1)) == []


def test_an_animation_of_two_frames_keeps_the_first() -> None:
    (finding,) = image_findings(replace(PHOTO, path="face.webp", format="WEBP", frames=2))
    assert finding.message == (
        "The image is animated (2 frames); only one can be the reference. "
        "preflight fix keeps the first frame."
    )
    assert facts(finding) == ("Image.Animated", "warning", True, {"frames": 2})


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1"])
def test_colour_modes_face_detectors_read_well_pass(mode: str) -> None:
    assert image_findings(replace(PHOTO, path="face.png", format="PNG", mode=mode)) == []


def test_a_cmyk_image_is_converted_to_rgb() -> None:
    (finding,) = image_findings(replace(PHOTO, mode="CMYK"))
    assert finding.message == (
        "Colour mode is CMYK; face detectors expect 8-bit RGB and may misread it. "
        "preflight fix converts it to RGB."
    )
    assert facts(finding) == ("Image.ColorMode", "warning", True, {"mode": "CMYK"})
