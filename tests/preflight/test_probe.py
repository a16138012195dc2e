"""The probe reads container facts without decoding, and never raises on bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import pytest

from preflight import CheckOptions, check_audio, fix_paths, probe, probe_image, probe_media
from tests.conftest import SAMPLE
from tests.corpus.make_corpus import claim_hours, voice_stamped_late


def test_a_clean_talking_head_clip_reports_its_container_and_stream_facts() -> None:
    info = probe_media(SAMPLE / "talking_head.mp4")
    assert info.opened and info.container == "mov,mp4,m4a,3gp,3g2,mj2"
    (video,) = info.video
    assert (video.codec, video.pixel_format) == ("h264", "yuv420p")
    assert video.profile  # libx264 names its profile
    assert (video.width, video.height, video.rotation) == (720, 720, 0)
    assert video.avg_fps == pytest.approx(25.0) and video.nominal_fps == pytest.approx(25.0)
    assert video.variable_frame_rate is False
    assert video.duration == pytest.approx(4.0, abs=0.001)
    assert video.frame_count == 100 and video.start_time == 0.0
    (audio,) = info.audio
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 44100, 1)
    assert audio.bit_depth is None  # lossy: no bit depth
    wav = probe_media(SAMPLE / "voice.wav").audio[0]
    assert (wav.codec, wav.sample_rate, wav.channel_layout, wav.bit_depth) == ("pcm_s16le", 16000, "mono", 16)
    assert wav.duration == pytest.approx(4.0)
    assert info.size == (SAMPLE / "talking_head.mp4").stat().st_size
    assert info.header_duration == pytest.approx(4.0, abs=0.1)  # what its movie header states


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_phone_clip_is_measured_as_displayed(made, rotation: int) -> None:
    path = made(
        "video",
        f"rot{rotation}.mp4",
        width=960,
        height=640,
        fps=25,
        duration=0.4,
        rotation=rotation,
        audio=False,
    )
    (video,) = probe_media(path).video
    # The decoder's own reading of the display matrix, for comparison.
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0)).rotation % 360
    assert video.rotation == decoded == rotation
    assert (video.coded_width, video.coded_height) == (960, 640)
    expected = (640, 960) if rotation in (90, 270) else (960, 640)
    assert (video.width, video.height) == expected


@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_uneven_frame_intervals_are_flagged_as_variable_frame_rate(made, name: str) -> None:
    vfr = made("video", name, width=320, height=240, fps=25, duration=2.0, vfr=True, audio=False)
    cfr = made("video", "cfr-" + name, width=320, height=240, fps=25, duration=2.0, audio=False)
    assert probe_media(vfr).video[0].variable_frame_rate is True
    assert probe_media(cfr).video[0].variable_frame_rate is False


def test_audio_facts_include_bit_depth_for_pcm(made) -> None:
    wav = made("audio", "stereo48.wav", duration=2.5, sample_rate=48000, channels=2, codec="pcm_s24le")
    (audio,) = probe_media(wav).audio
    assert (audio.codec, audio.sample_rate, audio.channels, audio.bit_depth) == (
        "pcm_s24le",
        48000,
        2,
        24,
    )
    assert audio.duration == pytest.approx(2.5)
    mp3 = made("audio", "voice.mp3", duration=2.5, sample_rate=44100)
    (audio,) = probe_media(mp3).audio
    assert (audio.codec, audio.bit_depth) == ("mp3", None)


def test_image_size_is_reported_as_displayed_after_exif_orientation(made) -> None:
    path = made("image", "exif6.jpg", width=800, height=400, exif_orientation=6)
    info = probe_image(path)
    assert (info.format, info.mode, info.orientation) == ("JPEG", "RGB", 6)
    assert (info.stored_width, info.stored_height) == (800, 400)
    assert (info.width, info.height) == (400, 800)


def test_probe_picks_the_reader_from_the_content(made, tmp_path: Path) -> None:
    jpeg = made("image", "face.jpg", width=320, height=320)
    renamed = tmp_path / "no_extension"
    renamed.write_bytes(jpeg.read_bytes())
    assert probe(renamed).to_dict()["kind"] == "image"
    assert probe(SAMPLE / "voice.wav").to_dict()["kind"] == "media"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"This is not a video.\n", "recognises no audio or video"),
        (b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100, "recognises no audio or video"),
    ],
)
def test_unreadable_files_give_a_reason_not_an_exception(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "broken file.mp4"
    path.write_bytes(content)
    info = probe_media(path)
    assert not info.opened and expected in (info.error or "")
    image = probe_image(path)
    assert not image.opened and image.error


def test_a_truncated_mp4_with_its_index_first_reports_the_missing_bytes(media, tmp_path: Path) -> None:
    path = media.write_video(
        tmp_path / "cut.mp4",
        width=320,
        height=240,
        fps=25,
        duration=2.0,
        container_options={"movflags": "faststart"},
    )
    full = path.stat().st_size
    media.truncate_to(path, 0.6)
    info = probe_media(path)
    assert info.opened
    assert 0 < info.missing_bytes <= full - path.stat().st_size


def _mvhd_as_version_1(path: Path, seconds: float) -> None:
    """Rewrite the movie header (moov at the file's end) as a version-1 box, 64-bit times,
    claiming ``seconds``: how recorders write files longer than 32 bits of ticks."""
    data = path.read_bytes()
    moov = data.rindex(b"moov") - 4
    mvhd = data.index(b"mvhd", moov) - 4
    (size,) = struct.unpack_from(">I", data, mvhd)
    created, modified, timescale, _old = struct.unpack_from(">IIII", data, mvhd + 12)
    times = struct.pack(">QQIQ", created, modified, timescale, round(seconds * timescale))
    body = struct.pack(">I", 1 << 24) + times
    box = struct.pack(">I4s", size + 12, b"mvhd") + body + data[mvhd + 28 : mvhd + size]
    (moov_size,) = struct.unpack_from(">I", data, moov)
    head = data[:moov] + struct.pack(">I", moov_size + 12) + data[moov + 4 : mvhd]
    path.write_bytes(head + box + data[mvhd + size :])


def test_the_length_an_mp4_header_claims_is_read_from_version_0_and_1_boxes(media, tmp_path: Path) -> None:
    """FFmpeg 8 goes by the tracks; the probe keeps what the movie header claims beside them."""
    plain = media.write_video(tmp_path / "plain.mp4", width=320, height=240, fps=25, duration=2.0)
    assert probe_media(plain).header_duration == pytest.approx(2.0, abs=0.1)
    claiming = media.write_video(tmp_path / "claims.mp4", width=320, height=240, fps=25, duration=2.0)
    claim_hours(10)(claiming)  # version-0 boxes
    info = probe_media(claiming)
    assert info.header_duration == 36000 and info.video[0].duration == pytest.approx(2.0, abs=0.05)
    wide = media.write_video(tmp_path / "wide.mp4", width=320, height=240, fps=25, duration=2.0)
    _mvhd_as_version_1(wide, 5e9)  # beyond 32 bits of milliseconds
    info = probe_media(wide)
    assert info.opened and info.header_duration == 5e9
    assert info.video[0].duration == pytest.approx(2.0, abs=0.05)
    with_wav = probe_media(SAMPLE / "voice.wav")
    assert with_wav.header_duration is None  # not MP4: nothing claimed


def test_a_missing_file_is_an_error_result(tmp_path: Path) -> None:
    assert "cannot read the file" in (probe_media(tmp_path / "gone.mp4").error or "")
    assert "cannot read the file" in (probe_image(tmp_path / "gone.png").error or "")


def test_a_matroska_voice_stamped_3000_s_late_lasts_its_3_s(tmp_path: Path) -> None:
    """Matroska's own length counts from time zero: 3 s of voice stamped 3000 s late read
    as 3003 s, failed the length check and were fixed into 120 s of room tone."""
    path = tmp_path / "late voice.mka"
    voice_stamped_late(3000.0)(path)
    info = probe_media(path)
    (audio,) = info.audio
    assert audio.start_time == pytest.approx(3000.0)
    assert audio.duration == pytest.approx(3.0, abs=0.01) and info.duration == audio.duration
    report = check_audio(path, CheckOptions(fast=True))
    assert [f.code for f in report.findings] == ["InvalidFile.Format"]
    fixed = fix_paths(audio=path, out_dir=tmp_path / "out", check_options=CheckOptions(fast=True))
    (entry,) = fixed.files
    assert entry.ok and entry.output is not None
    assert probe_media(entry.output).duration == pytest.approx(3.0, abs=0.01)  # not 120 s
