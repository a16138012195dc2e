"""An oracle for the fixer's outputs that is not preflight: what ffprobe says of a file (when
it is installed), else a bare PyAV reading written here, and Pillow's own reading of an
image. Neither goes through preflight's probe or rules, so a bug there cannot make an
output look right; and the service's limits are written out as the page gives them, never
taken from ``preflight.limits``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

MIB = 1024 * 1024  # the page's "MB", read as the upload policy's MiB


@dataclass(frozen=True)
class Probed:
    """What an independent probe says of a media file."""

    container: str
    size: int
    duration: float  # the container's, in seconds
    codec: str | None = None  # the first video stream's
    width: int = 0
    height: int = 0
    fps: float = 0.0  # average frame rate
    rotation: int = 0
    video_start: float | None = None  # seconds
    audio_codec: str | None = None
    sample_rate: int = 0
    channels: int = 0
    audio_start: float | None = None

    @property
    def av_offset(self) -> float:
        """How much later the sound starts than the picture (seconds; 0 with one of them)."""
        if self.video_start is None or self.audio_start is None:
            return 0.0
        return self.audio_start - self.video_start


def probe(path: Path) -> Probed:
    """ffprobe when installed, else the bare PyAV reading."""
    return probe_ffprobe(path) if shutil.which("ffprobe") else probe_pyav(path)


def needs_ffprobe() -> None:
    if not shutil.which("ffprobe"):
        pytest.skip("ffprobe is not installed (.ci/run installs Debian's ffmpeg when it runs as root)")


def _rate(text: str | None) -> float:
    num, _, den = (text or "0/1").partition("/")
    return float(Fraction(int(num), int(den or 1))) if int(den or 1) else 0.0


def probe_ffprobe(path: Path) -> Probed:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", os.fspath(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    data = json.loads(done.stdout)
    video = next((s for s in data["streams"] if s["codec_type"] == "video"), None)
    audio = next((s for s in data["streams"] if s["codec_type"] == "audio"), None)
    rotation = 0
    for side in (video or {}).get("side_data_list", []):
        rotation = int(side.get("rotation", rotation))
    return Probed(
        container=data["format"]["format_name"],
        size=int(data["format"]["size"]),
        duration=float(data["format"].get("duration", 0.0)),
        codec=video["codec_name"] if video else None,
        width=int(video["width"]) if video else 0,
        height=int(video["height"]) if video else 0,
        fps=_rate(video.get("avg_frame_rate")) if video else 0.0,
        rotation=rotation,
        video_start=float(video["start_time"]) if video and "start_time" in video else None,
        audio_codec=audio["codec_name"] if audio else None,
        sample_rate=int(audio["sample_rate"]) if audio else 0,
        channels=int(audio["channels"]) if audio else 0,
        audio_start=float(audio["start_time"]) if audio and "start_time" in audio else None,
    )


def probe_pyav(path: Path) -> Probed:
    with av.open(os.fspath(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None

        def start(stream: av.stream.Stream | None) -> float | None:
            if stream is None or stream.start_time is None:
                return None
            return float(stream.start_time * stream.time_base)

        return Probed(
            container=container.format.name,
            size=Path(path).stat().st_size,
            duration=float(container.duration or 0) / av.time_base,
            codec=video.codec_context.codec.canonical_name if video else None,
            width=video.codec_context.width if video else 0,
            height=video.codec_context.height if video else 0,
            fps=float(video.average_rate or 0) if video else 0.0,
            video_start=start(video),
            audio_codec=audio.codec_context.codec.canonical_name if audio else None,
            sample_rate=audio.codec_context.sample_rate if audio else 0,
            channels=len(audio.layout.channels) if audio else 0,
            audio_start=start(audio),
        )


def count_frames(path: Path) -> int:
    """Frames decoded from the first video stream (the truth a frame rate must agree with)."""
    with av.open(os.fspath(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# The service's page, "Input limitations", as literal numbers.
def assert_video_accepted(probed: Probed) -> None:
    """MP4/AVI/MOV, H.264/H.265, max 300 MB, 2-120 s, 15-60 fps, sides 640-2,048 pixels."""
    assert probed.container.startswith("mov,mp4") or probed.container == "avi", probed
    assert probed.codec in ("h264", "hevc"), probed
    assert probed.size <= 300 * MIB, probed
    assert 2.0 <= round(probed.duration, 3) <= 120.0, probed
    assert 15 - 0.01 <= probed.fps <= 60 + 0.01, probed
    assert 640 <= min(probed.width, probed.height) and max(probed.width, probed.height) <= 2048, probed


def assert_audio_accepted(probed: Probed) -> None:
    """WAV, MP3 or AAC, max 30 MB, 2-120 s."""
    assert (probed.container, probed.audio_codec) in (
        ("wav", "pcm_s16le"),
        ("wav", "pcm_s24le"),
        ("mp3", "mp3"),
        ("aac", "aac"),
    ), probed
    assert probed.size <= 30 * MIB, probed
    assert 2.0 <= round(probed.duration, 3) <= 120.0, probed


@dataclass(frozen=True)
class ImageRead:
    """Pillow's own reading of an image, as displayed (EXIF orientation applied)."""

    format: str
    mode: str
    width: int
    height: int
    size: int


def read_image(path: Path) -> ImageRead:
    with Image.open(path) as image:
        turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        width, height = (image.height, image.width) if turned else image.size
        image.load()  # the whole picture decodes: not a truncated file
        return ImageRead(str(image.format), image.mode, width, height, Path(path).stat().st_size)


def assert_image_accepted(read: ImageRead) -> None:
    """JPEG, PNG, BMP or WebP; max 10 MB; aspect ratio 2 or less; longest side 4,096 or less."""
    assert read.format in ("JPEG", "PNG", "BMP", "WEBP"), read
    assert read.size <= 10 * MIB, read
    assert max(read.width, read.height) <= 4096, read
    assert max(read.width, read.height) <= 2 * min(read.width, read.height), read
