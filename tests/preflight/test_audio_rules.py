"""The voice track is judged as the service would judge it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from preflight import check_audio
from tests.conftest import BAD, FIXTURES, SAMPLE, codes, run_cli


def test_the_sample_voice_passes_cleanly() -> None:
    report = check_audio(SAMPLE / "voice.wav")
    assert report.ok and report.findings == ()


@pytest.mark.parametrize("name", ["voice.wav", "voice.mp3", "voice.aac"])
def test_wav_mp3_and_aac_are_accepted(made, name: str) -> None:
    report = check_audio(made("audio", name, duration=3.0, sample_rate=44100))
    assert report.findings == ()


@pytest.mark.parametrize(
    ("name", "container"),
    [("voice.m4a", "mov,mp4,m4a,3gp,3g2,mj2"), ("voice.flac", "flac"), ("voice.ogg", "ogg")],
)
def test_other_audio_formats_are_rejected_and_fixable(made, name: str, container: str) -> None:
    report = check_audio(made("audio", name, duration=3.0, sample_rate=48000))
    assert codes(report) == ["InvalidFile.Format"]
    assert report.findings[0].fixable and report.findings[0].details["container"] == container


def test_a_wav_holding_a_codec_the_service_cannot_read_is_rejected(made) -> None:
    report = check_audio(
        made("audio", "mp3inside.wav", duration=3.0, codec="libmp3lame", container_format="wav")
    )
    assert codes(report) == ["InvalidFile.Format"] and "mp3" in report.findings[0].message


def test_a_video_given_as_audio_is_a_format_error_the_fixer_can_extract(tmp_path: Path) -> None:
    report = check_audio(SAMPLE / "talking_head.mp4")
    assert codes(report) == ["InvalidFile.Format"]
    finding = report.findings[0]
    assert finding.fixable and "extracts its audio" in finding.message


def test_a_video_without_sound_given_as_audio_cannot_be_opened(made) -> None:
    path = made("video", "silent.mp4", width=640, height=640, fps=25, duration=2.0, audio=False)
    assert codes(check_audio(path)) == ["InvalidFile.Openerror"]


def test_wav_content_named_mp3_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "voice.mp3"
    shutil.copy(SAMPLE / "voice.wav", path)
    assert codes(check_audio(path)) == ["Audio.ExtensionMismatch"]


def test_good_content_under_an_unaccepted_extension_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "voice.wave"
    shutil.copy(SAMPLE / "voice.wav", path)
    report = check_audio(path)
    assert codes(report) == ["InvalidFile.Format"] and ".wave" in report.findings[0].message


@pytest.mark.parametrize(
    ("samples", "rejected"),
    # The page: "Duration: 2-120 seconds."
    # At 16 kHz: 31999 samples = 1.9999 s, 32000 = 2 s, 1920000 = 120 s, 1920016 = 120.001 s.
    [(31_984, True), (32_000, False), (1_920_000, False), (1_920_016, True)],
)
def test_duration_must_be_2_to_120_seconds(made, samples: int, rejected: bool) -> None:
    path = made("audio", f"len_{samples}.wav", duration=samples / 16000, sample_rate=16000)
    report = check_audio(path)
    assert codes(report) == (["InvalidFile.Duration"] if rejected else [])


def test_the_committed_short_m4a_has_both_problems() -> None:
    assert codes(check_audio(BAD / "short_voice.m4a")) == [
        "InvalidFile.Format",
        "InvalidFile.Duration",
    ]


# The service's page: "File: WAV, MP3, or AAC. Max 30 MB." (MB read as MiB, as its
# upload policy does). Written out here, never taken from `limits`, so a wrong limit fails.
# A WAV grows by whole 2-byte padding, so "just outside" is 2 bytes over.
@pytest.mark.parametrize(("size", "rejected"), [(30 * 1024 * 1024, False), (30 * 1024 * 1024 + 2, True)])
def test_audio_may_be_30_mb_but_no_more(media, tmp_path: Path, size: int, rejected: bool) -> None:
    path = tmp_path / "voice.wav"
    shutil.copy(SAMPLE / "voice.wav", path)
    media.grow_to(path, size)  # a sparse hole: costs no disk
    report = check_audio(path)
    assert codes(report) == (["InvalidFile.Size"] if rejected else [])
    if rejected:
        assert report.findings[0].details == {"size": size, "max": 30 * 1024 * 1024}
    assert report.media is not None and report.media.audio[0].duration == pytest.approx(4.0)


@pytest.mark.parametrize(("name", "content"), [("empty.wav", b""), ("text.mp3", b"hello\n" * 50)])
def test_files_that_are_not_audio_cannot_be_opened(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert codes(check_audio(path)) == ["InvalidFile.Openerror"]


def test_an_image_given_as_audio_cannot_be_opened() -> None:
    report = check_audio(SAMPLE / "face.jpg")
    assert codes(report) == ["InvalidFile.Openerror"] and "no audio stream" in report.findings[0].message


@pytest.mark.parametrize(("seconds", "rejected"), [(1.9, True), (2.2, False)])
def test_raw_aac_duration_is_measured_not_estimated_from_the_bitrate(
    made, seconds: float, rejected: bool
) -> None:
    # FFmpeg (and ffprobe) estimate an ADTS file's length from its bitrate, 5-10 % off.
    report = check_audio(made("audio", f"len{seconds}.aac", duration=seconds, sample_rate=44100))
    assert codes(report) == (["InvalidFile.Duration"] if rejected else [])
    assert report.media is not None
    assert report.media.audio[0].duration == pytest.approx(seconds, abs=0.05)


def test_a_truncated_mp3_is_judged_by_what_is_left(media, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "long.mp3", duration=10.0, sample_rate=44100)
    media.truncate_to(path, 0.1)  # its Xing header still says 10 s
    report = check_audio(path)
    assert codes(report) == ["InvalidFile.Duration"]
    assert report.findings[0].details["duration"] < 1.5


def test_a_wav_header_with_no_channels_cannot_be_decoded(tmp_path: Path) -> None:
    data = bytearray((SAMPLE / "voice.wav").read_bytes())
    fmt = data.index(b"fmt ")
    data[fmt + 10 : fmt + 12] = (0).to_bytes(2, "little")  # channel count
    path = tmp_path / "no channels.wav"
    path.write_bytes(bytes(data))
    report = check_audio(path)
    assert codes(report) == ["InvalidFile.Openerror"] and "cannot be decoded" in report.findings[0].message


def test_random_bytes_named_mp3_are_not_accepted(tmp_path: Path) -> None:
    import random

    path = tmp_path / "noise.mp3"
    path.write_bytes(random.Random(3).randbytes(200_000))
    report = check_audio(path)
    assert not report.ok and "InvalidFile.Openerror" in codes(report)


# --------------------------------------------------------------------------- retired codes
def test_settings_naming_the_retired_digital_silence_code_still_load(tmp_path: Path) -> None:
    """Audio.DigitalSilence is no longer reported (every TTS voice has exact-zero pauses),
    but codes are stable: a team's settings and command lines that name it keep working."""
    from preflight._config import load_config

    settings = tmp_path / "preflight.toml"
    settings.write_text(
        'ignore = ["Audio.DigitalSilence"]\nselect = ["InvalidFile", "Audio.DigitalSilence"]\n'
        '[severity]\n"Audio.DigitalSilence" = "info"\n',
        encoding="utf-8",
    )
    config = load_config(settings)
    assert config.ignore == ("Audio.DigitalSilence",)
    voice = str(FIXTURES / "tts" / "espeak_22k.wav")
    for option in ("--ignore", "--select"):
        status, out = run_cli("check", "--audio", voice, option, "Audio.DigitalSilence", "--format", "json")
        assert status == 0, out
        assert json.loads(out)["summary"]["warnings"] == 0
    # A typo is still a typo.
    status, _ = run_cli("check", "--audio", voice, "--ignore", "Audio.DigitalSilense")
    assert status == 2
