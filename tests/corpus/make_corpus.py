"""The hostile-input corpus: files the fixtures do not cover, each declared with what
``preflight check`` must answer and what ``preflight fix`` must do with it.

Truncated and bit-flipped files, lying extensions, empty and one-frame streams, lengths
at both ends, odd sample rates and channel counts, 10-bit and 4:4:4 H.264, HEVC in MKV,
alpha channels, rotation flags, odd, tiny and absurd frame sizes, animated, CMYK, 16-bit
and EXIF-oriented images, symbolic links and file names a shell would trip on. Every file
is small and real, made here with PyAV, Pillow and NumPy (the fixture writers where they
fit), and damaged on purpose where that is the point.

``corpus_dir()`` makes the corpus once and caches it in ``tests/corpus/.cache/<key>/``,
the key a hash of this module, the fixture writers and the media libraries' versions: a
change to any of them makes a fresh corpus. Run ``python tests/corpus/make_corpus.py`` to
(re)make it and list the cases (``--force`` makes it again even when cached).

HEVC with an alpha channel cannot be made here: the bundled x265 is built without alpha
support (``yuva420p`` fails to open the encoder). VP9 with alpha in WebM and ProRes 4444
with alpha in MOV stand in for it (alpha in a codec the service refuses), and plain HEVC
in MKV covers "HEVC in a container the service refuses".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import PIL
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIXTURES = ROOT / "fixtures"
CACHE = HERE / ".cache"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

import make_fixtures as mf  # noqa: E402  (the fixture writers)

Role = Literal["video", "audio", "ref"]
FixOutcome = Literal["accepted", "refused", "usage"]


@dataclass(frozen=True)
class Case:
    """One hostile input and what preflight must make of it."""

    #: File name inside the corpus folder (any bytes a Linux name may hold).
    name: str
    #: Writes the file (or link) at the path given.
    make: Callable[[Path], object]
    #: What it is about: truncated, damaged, extension, streams, length, audio, codec,
    #: geometry, image, name, link.
    category: str
    #: The role ``check`` gives it (from the extension, else the content, else ``given_as``).
    role: Role
    #: Exactly the error codes ``check`` must report.
    errors: frozenset[str] = frozenset()
    #: Codes (warnings, infos) that must be among the findings too.
    warnings: frozenset[str] = frozenset()
    #: Codes that must not be among the findings (a face that must be found).
    absent: frozenset[str] = frozenset()
    #: Container facts only; False when the case is about content (faces, the voice).
    fast: bool = True
    #: ``accepted``: fix writes an output that passes a fresh check; ``refused``: no output,
    #: and a reason containing ``fix_says``; ``usage``: not a media file at all, exit 2 with
    #: ``fix_says`` in the message (check and fix alike).
    fix: FixOutcome = "accepted"
    fix_says: str = ""
    #: Action names the fix must take (a subset of what it does).
    fix_actions: frozenset[str] = frozenset()
    #: Pass the file with ``--video/--audio/--ref`` instead of as a plain path.
    given_as: Role | None = None
    #: What is hostile about it, for the listing.
    about: str = ""


def _set(*codes: str) -> frozenset[str]:
    return frozenset(codes)


# --------------------------------------------------------------------------- base files
def _video(path: Path, **options: object) -> Path:
    """A small clip the service accepts: 640x640, 15 fps, 2.5 s, H.264 + AAC, a face."""
    settings: dict[str, object] = {
        "width": 640,
        "height": 640,
        "fps": 15,
        "duration": 2.5,
        "source": "portrait",
        "quality": 35,
    }
    settings.update(options)
    return mf.write_video(path, **settings)  # type: ignore[arg-type]


def _audio(path: Path, **options: object) -> Path:
    settings: dict[str, object] = {"duration": 3.0, "sample_rate": 16000}
    settings.update(options)
    return mf.write_audio(path, **settings)  # type: ignore[arg-type]


def _image(path: Path, **options: object) -> Path:
    settings: dict[str, object] = {"width": 400, "height": 400, "source": "portrait"}
    settings.update(options)
    return mf.write_image(path, **settings)  # type: ignore[arg-type]


def _cut(path: Path, keep: float | int) -> None:
    """Keep a fraction (float) or a number of bytes (int) of the file, as a broken copy would."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep) if isinstance(keep, float) else keep)


def _made_elsewhere(writer: Callable[[Path], object], suffix: str) -> Callable[[Path], bytes]:
    """The bytes a writer makes under a name with ``suffix`` (the writers pick the format
    from the extension; the case then stores them under another name)."""

    def make(_: Path) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            made = Path(folder) / f"source{suffix}"
            writer(made)
            return made.read_bytes()

    return make


def _as(writer: Callable[[Path], object], suffix: str) -> Callable[[Path], None]:
    """Make a file of the kind ``suffix`` names, stored under the case's own name."""
    source = _made_elsewhere(writer, suffix)

    def make(path: Path) -> None:
        path.write_bytes(source(path))

    return make


def _then(writer: Callable[[Path], object], *steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        writer(path)
        for step in steps:
            step(path)

    return make


# --------------------------------------------------------------------------- ISO BMFF
_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta"}


def _boxes(
    data: bytes | bytearray, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, size) of every box, depth first."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header:
            return
        yield kind, offset, size
        if kind in _CONTAINER_BOXES:
            yield from _boxes(data, offset + header, offset + size)
        offset += size


def _patch_boxes(path: Path, patch: Callable[[bytearray, bytes, int, int], None]) -> None:
    data = bytearray(path.read_bytes())
    for kind, offset, size in list(_boxes(data)):
        patch(data, kind, offset, size)
    path.write_bytes(bytes(data))


def _rename_box(old: bytes, new: bytes) -> Callable[[Path], None]:
    def step(path: Path) -> None:
        def patch(data: bytearray, kind: bytes, offset: int, size: int) -> None:
            if kind == old:
                data[offset + 4 : offset + 8] = new

        _patch_boxes(path, patch)

    return step


def claim_hours(hours: float) -> Callable[[Path], None]:
    """Every duration field (movie, tracks, media) claims ``hours``; the samples stay."""

    def step(path: Path) -> None:
        timescales: dict[int, int] = {}

        def patch(data: bytearray, kind: bytes, offset: int, size: int) -> None:
            body = offset + 8
            version = data[body]
            if kind in (b"mvhd", b"mdhd"):
                if version != 0:
                    raise ValueError("expected version-0 boxes")
                scale = struct.unpack(">I", data[body + 12 : body + 16])[0]
                timescales[offset] = scale
                data[body + 16 : body + 20] = struct.pack(">I", int(hours * 3600 * scale))
                if kind == b"mvhd":
                    timescales[-1] = scale
            elif kind == b"tkhd":
                if version != 0:
                    raise ValueError("expected version-0 boxes")
                # tkhd durations are in the movie's time scale (mvhd comes first).
                data[body + 20 : body + 24] = struct.pack(">I", int(hours * 3600 * timescales[-1]))

        _patch_boxes(path, patch)

    return step


def _overflow_stsz(path: Path) -> None:
    """The first video sample's size says 2 GB: the index points far past the file's end."""

    def patch(data: bytearray, kind: bytes, offset: int, size: int) -> None:
        if kind == b"stsz" and not getattr(patch, "done", False):
            body = offset + 8
            if struct.unpack(">I", data[body + 4 : body + 8])[0] == 0:  # sizes listed
                data[body + 12 : body + 16] = struct.pack(">I", 0x7FFF0000)
                patch.done = True  # type: ignore[attr-defined]

    _patch_boxes(path, patch)


def _flip_mdat(share: float, seed: int = 3) -> Callable[[Path], None]:
    """Flip one bit in ``share`` of the media data's bytes (the headers stay whole)."""

    def step(path: Path) -> None:
        data = bytearray(path.read_bytes())
        mdat = next((o, s) for k, o, s in _boxes(data) if k == b"mdat")
        rng = random.Random(seed)
        first, last = mdat[0] + 8 + 64, mdat[0] + mdat[1]
        for _ in range(int((last - first) * share)):
            data[rng.randrange(first, last)] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))

    return step


# --------------------------------------------------------------------------- H.264 SPS
class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | (self.data[self.pos // 8] >> (7 - self.pos % 8)) & 1
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> i) & 1 for i in range(n - 1, -1, -1)]

    def ue(self, value: int) -> None:
        length = (value + 1).bit_length()
        self.u(length - 1, 0)
        self.u(length, value + 1)

    def payload(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def _unescape(data: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in data:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _escape(data: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in data:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _resized_sps(nal: bytes, width: int, height: int) -> bytes:
    """An H.264 sequence parameter set saying ``width`` x ``height`` (multiples of 16),
    every other field as it was."""
    rbsp = _unescape(nal[1:])
    reader, writer = _BitReader(rbsp), _BitWriter()

    def u(n: int) -> int:
        value = reader.u(n)
        writer.u(n, value)
        return value

    def ue() -> int:
        value = reader.ue()
        writer.ue(value)
        return value

    profile = u(8)
    u(16)  # constraint flags, level
    ue()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        if ue() == 3:  # chroma_format_idc
            u(1)
        ue()  # bit depths
        ue()
        u(1)
        if u(1):
            raise ValueError("scaling matrices are not handled")
    ue()  # log2_max_frame_num
    poc_type = ue()
    if poc_type == 0:
        ue()
    elif poc_type == 1:
        raise ValueError("pic_order_cnt_type 1 is not handled")
    ue()  # max_num_ref_frames
    u(1)
    reader.ue()
    reader.ue()
    writer.ue(width // 16 - 1)
    writer.ue(height // 16 - 1)
    last = len(rbsp) * 8 - 1
    while not (rbsp[last // 8] >> (7 - last % 8)) & 1:  # the stop bit
        last -= 1
    while reader.pos < last:
        u(1)
    writer.u(1, 1)
    return nal[:1] + _escape(writer.payload())


def _nal_units(stream: bytes) -> list[bytes]:
    starts = []
    at = stream.find(b"\x00\x00\x01")
    while at >= 0:
        starts.append(at + 3)
        at = stream.find(b"\x00\x00\x01", at + 3)
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(stream)
        units.append(stream[start:end].rstrip(b"\x00") if i + 1 < len(starts) else stream[start:end])
    return units


def _huge_h264(width: int, height: int, container: str) -> Callable[[Path], None]:
    """A few KB of H.264 whose header says ``width`` x ``height``: 64x64 pictures encoded,
    then the sequence parameter set rewritten. A decoder would allocate the full frames
    (about 350 MB each at 15360x15360) and conceal the missing picture."""

    def make(path: Path) -> None:
        with tempfile.TemporaryDirectory() as folder:
            raw, patched = Path(folder) / "small.h264", Path(folder) / "huge.h264"
            with av.open(str(raw), "w", format="h264") as out:
                stream = out.add_stream("libx264", rate=15, options={"preset": "ultrafast", "crf": "40"})
                stream.width = stream.height = 64
                stream.pix_fmt = "yuv420p"
                for i in range(30):
                    frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 8, np.uint8), format="rgb24")
                    frame.pts = i
                    for packet in stream.encode(frame):
                        out.mux(packet)
                for packet in stream.encode(None):
                    out.mux(packet)
            units = [
                _resized_sps(unit, width, height) if unit[0] & 0x1F == 7 else unit
                for unit in _nal_units(raw.read_bytes())
            ]
            patched.write_bytes(b"".join(b"\x00\x00\x00\x01" + unit for unit in units))
            tick = Fraction(1, 15)
            with (
                # max_pixels: FFmpeg would decode a 15360x15360 frame just to open it.
                av.open(
                    str(patched), format="h264", options={"framerate": "15", "max_pixels": "4096"}
                ) as inp,
                av.open(str(path), "w", format=container) as out,
            ):
                vin = inp.streams.video[0]
                vout = out.add_stream_from_template(vin)
                vout.time_base = tick
                number = 0
                for packet in inp.demux(vin):
                    if packet.size == 0:
                        continue
                    packet.pts = packet.dts = number
                    packet.duration = 1
                    packet.time_base = tick
                    packet.stream = vout
                    out.mux(packet)
                    number += 1

    return make


# --------------------------------------------------------------------------- Matroska, AVI
def _mkv_claims_hours(hours: float) -> Callable[[Path], None]:
    """The segment's Duration element (milliseconds, an 8-byte float) says ``hours``."""

    def step(path: Path) -> None:
        data = bytearray(path.read_bytes())
        at = data.find(b"\x44\x89\x88")
        if at < 0:
            raise ValueError("no 8-byte Duration element")
        data[at + 3 : at + 11] = struct.pack(">d", hours * 3600 * 1000)
        path.write_bytes(bytes(data))

    return step


def _avi_fourcc(old: bytes, new: bytes) -> Callable[[Path], None]:
    """Rename the video codec in an AVI's headers (stream header and bitmap header) to a
    fourcc no decoder knows; the frames stay as they were."""

    def step(path: Path) -> None:
        data = bytearray(path.read_bytes())
        movi = data.find(b"movi")
        head = data[:movi].replace(old, new)
        path.write_bytes(bytes(head + data[movi:]))

    return step


# --------------------------------------------------------------------------- other video
def _encode(
    path: Path,
    codec: str,
    pix_fmt: str,
    *,
    width: int = 640,
    height: int = 640,
    frames: int = 30,
    fps: int = 15,
    container: str | None = None,
    options: dict[str, str] | None = None,
    alpha: bool = False,
    pts: Callable[[int], int] | None = None,
    time_base: Fraction | None = None,
) -> None:
    """Frames of a moving pattern (an alpha gradient with ``alpha``) in any encoder."""
    picture = mf._picture("portrait", width, height)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if codec == "libx265" and path.suffix in (".mp4", ".mov"):
            stream.codec_tag = "hvc1"
        for i in range(frames):
            rgb = np.roll(picture, 4 * i, axis=1)
            if alpha:
                plane = np.broadcast_to(np.linspace(0, 255, height, dtype=np.uint8)[:, None], (height, width))
                frame = av.VideoFrame.from_ndarray(np.dstack([rgb, plane]), format="rgba")
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = pts(i) if pts is not None else i
            if time_base is not None:
                frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _x264(pix_fmt: str, **options: object) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        _encode(path, "libx264", pix_fmt, options={"preset": "ultrafast", "crf": "35"}, **options)  # type: ignore[arg-type]

    return make


def _x265(pix_fmt: str, **options: object) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        settings = {"preset": "ultrafast", "crf": "35", "x265-params": "log-level=error"}
        _encode(path, "libx265", pix_fmt, options=settings, **options)  # type: ignore[arg-type]

    return make


def _long_video(seconds: float, gop: int) -> Callable[[Path], None]:
    """A long clip made fast: a still portrait with a small bar moving along its foot,
    15 fps, 640x640, a key frame every ``gop`` frames."""

    def make(path: Path) -> None:
        picture = mf._picture("portrait", 640, 640)
        frames = []
        for k in range(15):
            moved = picture.copy()
            moved[600:620, 20 + 40 * k : 40 + 40 * k] = 255
            frames.append(av.VideoFrame.from_ndarray(moved, format="rgb24").reformat(format="yuv420p"))
        with av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=15, options={"preset": "ultrafast", "crf": "45"})
            stream.width = stream.height = 640
            stream.pix_fmt = "yuv420p"
            stream.codec_context.gop_size = gop
            for i in range(round(seconds * 15)):
                frame = frames[i % len(frames)]
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)

    return make


def _empty_video_track(path: Path) -> None:
    """The video track's sample tables emptied (no frame listed), the sound left whole."""

    def patch(data: bytearray, kind: bytes, offset: int, size: int) -> None:
        if kind == b"trak":
            inside = {k: (o, n) for k, o, n in _boxes(data, offset + 8, offset + size)}
            if b"stsd" in inside and data[inside[b"stsd"][0] + 20 : inside[b"stsd"][0] + 24] == b"avc1":
                for table in (b"stts", b"stss", b"stsc", b"stco", b"ctts"):
                    if table in inside:
                        at = inside[table][0] + 12  # entry count, after version and flags
                        data[at : at + 4] = bytes(4)
                stsz = inside[b"stsz"][0]
                data[stsz + 16 : stsz + 20] = bytes(4)  # sample count, after the uniform size

    _patch_boxes(path, patch)


def _two_video_streams(path: Path) -> None:
    picture = mf._picture("portrait", 640, 640)
    with av.open(str(path), "w", format="mp4") as out:
        streams = []
        for _ in range(2):
            stream = out.add_stream("libx264", rate=15, options={"preset": "ultrafast", "crf": "35"})
            stream.width = stream.height = 640
            stream.pix_fmt = "yuv420p"
            streams.append(stream)
        for i in range(38):
            for stream in streams:
                frame = av.VideoFrame.from_ndarray(np.roll(picture, 4 * i, axis=1), format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
        for stream in streams:
            for packet in stream.encode(None):
                out.mux(packet)


# --------------------------------------------------------------------------- audio
def _wav_bytes(samples: np.ndarray, rate: int, *, bits: int = 16, fmt_tag: int = 1) -> bytes:
    """A canonical WAV of ``samples`` (frames x channels, floats in -1..1)."""
    channels = samples.shape[1]
    pcm: bytes
    if bits == 16:
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    elif bits == 24:  # the low three bytes of each little-endian 32-bit sample
        ints = (np.clip(samples, -1, 1) * 8388607).astype("<i4").reshape(-1)
        pcm = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raise ValueError(bits)
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _wav(
    duration: float, rate: int, channels: int = 1, *, bits: int = 16, fmt_tag: int = 1, silent: bool = False
) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        n = round(duration * rate)
        voice = np.zeros(n) if silent or n == 0 else mf.voice_like(duration, rate)
        samples = np.repeat(voice[:, None], channels, axis=1)
        if channels == 6:
            samples[:, 3] *= 0.1  # the LFE channel: quiet, as in a real 5.1 mix
        path.write_bytes(_wav_bytes(samples, rate, bits=bits, fmt_tag=fmt_tag))

    return make


def _id3_cover(path: Path) -> None:
    """An MP3 voice behind an ID3v2.3 tag holding a JPEG cover (FFmpeg shows it as a video
    stream marked attached picture)."""
    with tempfile.TemporaryDirectory() as folder:
        mp3 = _audio(Path(folder) / "voice.mp3", sample_rate=44100)
        cover = _image(Path(folder) / "cover.jpg", width=300, height=300)
        jpeg = cover.read_bytes()
        payload = b"\x00image/jpeg\x00\x03cover\x00" + jpeg
        frame = b"APIC" + struct.pack(">I", len(payload)) + b"\x00\x00" + payload
        size = len(frame)
        syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
        path.write_bytes(b"ID3\x03\x00\x00" + syncsafe + frame + mp3.read_bytes())


# --------------------------------------------------------------------------- images
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_rgb48(path: Path) -> None:
    """A 48-bit RGB PNG (16 bits a channel), which Pillow can read but not write."""
    rgb = mf._picture("portrait", 320, 320).astype(">u2") * 257
    rows = b"".join(b"\x00" + row.tobytes() for row in rgb)
    header = struct.pack(">IIBBBBB", 320, 320, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _png_claiming(width: int, height: int) -> Callable[[Path], None]:
    """A PNG of a few hundred bytes whose header says ``width`` x ``height`` (CRC right)."""

    def make(path: Path) -> None:
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        rows = zlib.compress(b"\x00" + b"\x80" * 3 * 64)  # one row's worth, no more
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", rows)
            + _png_chunk(b"IEND", b"")
        )

    return make


def png16_blank(width: int, height: int) -> Callable[[Path], None]:
    """A whole, valid 16-bit greyscale PNG of ``width`` x ``height`` zeros, compressed a
    row at a time: a few hundred KB on disk, ``width * height * 2`` bytes decoded."""

    def make(path: Path) -> None:
        packer = zlib.compressobj(9)
        row = b"\x00" + bytes(2 * width)  # filter type 0, then the samples
        rows = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
        header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", rows)
            + _png_chunk(b"IEND", b"")
        )

    return make


def sound_apart(
    video_start: float, audio_start: float, seconds: float = 2.5, sound_seconds: float = 0.5
) -> Callable[[Path], None]:
    """A Matroska clip (640x640 H.264, 15 fps, ``seconds`` long) whose PCM sound track
    (``sound_seconds`` long, 48 kHz stereo) starts at ``audio_start`` and picture at
    ``video_start``: a gap of thousands of seconds that a header states in a few bytes."""

    def make(path: Path) -> None:
        rate, fps = 48000, 15
        with av.open(str(path), "w", format="matroska") as out:
            picture = out.add_stream("libx264", rate=fps)
            picture.width, picture.height, picture.pix_fmt = 640, 640, "yuv420p"
            picture.options = {"preset": "ultrafast", "crf": "40"}
            sound = out.add_stream("pcm_s16le", rate=rate, layout="stereo")
            first = round(video_start * fps)
            for index, rgb in enumerate(mf._frames(640, 640, "portrait", round(seconds * fps))):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = first + index
                out.mux(picture.encode(frame))
            out.mux(picture.encode(None))
            count = round(sound_seconds * rate)
            tone = (3000 * np.sin(2 * np.pi * 220 * np.arange(count) / rate)).astype(np.int16)
            for begin in range(0, count, rate // 2):  # half a second a packet
                block = np.repeat(tone[begin : begin + rate // 2], 2)[None, :]
                frame = av.AudioFrame.from_ndarray(block, format="s16", layout="stereo")
                frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
                frame.pts = round(audio_start * rate) + begin
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))

    return make


def voice_stamped_late(seconds_late: float, seconds: float = 3.0) -> Callable[[Path], None]:
    """A Matroska voice (PCM, 16 kHz mono) whose first sample is stamped ``seconds_late``:
    Matroska's own length runs from time zero, so it claims the gap as sound."""

    def make(path: Path) -> None:
        rate = 16000
        samples = (mf.voice_like(seconds, rate) * 32767).astype(np.int16)
        with av.open(str(path), "w", format="matroska") as out:
            stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
            for first in range(0, len(samples), 1024):
                block = samples[None, first : first + 1024]
                frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
                frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
                frame.pts = round(seconds_late * rate) + first
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))

    return make


def _break_png_crc(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[29] ^= 0xFF  # the IHDR chunk's CRC (8 signature + 8 head + 13 body)
    path.write_bytes(bytes(data))


def _zero_head(count: int) -> Callable[[Path], None]:
    def step(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[:count] = bytes(count)
        path.write_bytes(bytes(data))

    return step


#: EXIF orientation -> the transpose that undoes it on display. The stored pixels are the
#: upright face turned the other way, so that a viewer applying the tag shows it upright.
_STORE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _exif_oriented(orientation: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        upright = Image.fromarray(mf._picture("portrait", 360, 480))
        turn = _STORE_FOR_ORIENTATION[orientation]
        stored = upright.transpose(turn) if turn is not None else upright
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored.save(path, format="JPEG", quality=88, exif=exif.tobytes())

    return make


def _animated_webp(path: Path) -> None:
    _image(path, frames=4)


def _gif(path: Path) -> None:
    _image(path, image_format="GIF", mode="P")


def _tiny_png(path: Path) -> None:
    Image.new("RGB", (1, 1), (128, 128, 128)).save(path, format="PNG")


# --------------------------------------------------------------------------- links and odd files
def _link_to(target: str, make_target: Callable[[Path], object] | None = None) -> Callable[[Path], None]:
    """A symbolic link (relative, as in a repository) to ``target`` beside it, made first."""

    def make(path: Path) -> None:
        if make_target is not None:
            where = path.parent / target
            where.parent.mkdir(parents=True, exist_ok=True)
            make_target(where)
        path.symlink_to(target)

    return make


def _link_loop(path: Path) -> None:
    other = path.parent / "_targets" / f"{path.stem}-other{path.suffix}"
    other.parent.mkdir(parents=True, exist_ok=True)
    other.symlink_to(f"../{path.name}")
    path.symlink_to(f"_targets/{other.name}")


def _in_its_folder(writer: Callable[[Path], object]) -> Callable[[Path], None]:
    """Make the case's folder too: a case named ``x[/]y.wav`` is ``y.wav`` in a folder ``x[``."""

    def make(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)

    return make


#: Every C0 control but NUL (no name can hold it), then DEL; every C1 control as the
#: characters U+0080-U+009F (UTF-8), and as the raw bytes 0x80-0x9F (not UTF-8: the
#: surrogate escapes os.fsdecode gives them).
C0_AND_DEL = "".join(map(chr, range(1, 32))) + "\x7f"
C1 = "".join(map(chr, range(0x80, 0xA0)))
C1_BYTES = bytes(range(0x80, 0xA0)).decode("utf-8", "surrogateescape")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _text(content: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(content)

    return make


def _random_bytes(size: int, seed: int = 11) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(random.Random(seed).randbytes(size))

    return make


# --------------------------------------------------------------------------- the cases
OPEN = "InvalidFile.Openerror"
FORMAT = "InvalidFile.Format"
DURATION = "InvalidFile.Duration"
RESOLUTION = "InvalidFile.Resolution"
IMAGE_SIZE = "InvalidFile.ImageSize"
CONTENT = "InvalidFile.Content"


def _faststart(path: Path) -> Path:
    return _video(path, container_options={"movflags": "+faststart"})


def _cases() -> list[Case]:
    video: Role = "video"
    audio: Role = "audio"
    image: Role = "ref"
    cases = [
        # --- truncated at several points ------------------------------------------------
        Case(
            "trunc-moov-at-end-half.mp4",
            _then(_video, lambda p: _cut(p, 0.5)),
            "truncated",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="no moov box",
            about="MP4 with its index at the end, cut in the middle: the index is gone",
        ),
        Case(
            "trunc-faststart-half.mp4",
            _then(_faststart, lambda p: _cut(p, 0.5)),
            "truncated",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="truncated",
            about="MP4 with its index first, cut in the middle: the index points past the end",
        ),
        Case(
            "trunc-faststart-tail.mp4",
            _then(_faststart, lambda p: _cut(p, p.stat().st_size - 700)),
            "truncated",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="truncated",
            about="index first, the last 700 bytes missing (an interrupted download)",
        ),
        Case(
            "trunc-ftyp-only.mp4",
            _then(_video, lambda p: _cut(p, 32)),
            "truncated",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="Cannot open",
            about="only the first 32 bytes: a file type box and nothing else",
        ),
        Case(
            "trunc-3-bytes.mp4",
            _then(_video, lambda p: _cut(p, 3)),
            "truncated",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="Cannot open",
            about="3 bytes of an MP4",
        ),
        Case(
            "empty.mp4",
            _text(b""),
            "truncated",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="empty",
            about="0 bytes",
        ),
        Case(
            "empty.jpg",
            _text(b""),
            "truncated",
            image,
            _set(OPEN),
            fix="refused",
            fix_says="empty",
            about="0 bytes, named as a photo",
        ),
        Case(
            "trunc-mkv-half.mkv",
            _then(lambda p: _video(p, duration=4.0), lambda p: _cut(p, 0.5)),
            "truncated",
            video,
            _set(FORMAT, DURATION),
            fix_actions=_set("pad-duration"),
            about="Matroska cut in the middle: its header still claims 4 s",
        ),
        Case(
            "trunc-wav-half.wav",
            _then(lambda p: _audio(p, duration=6.0), lambda p: _cut(p, 0.5)),
            "truncated",
            audio,
            fast=False,
            fix_actions=_set("copy"),
            about="WAV whose header promises twice the samples there are (3 s of 6)",
        ),
        Case(
            "trunc-wav-to-1s.wav",
            _then(lambda p: _audio(p, duration=4.0), lambda p: _cut(p, 0.25)),
            "truncated",
            audio,
            _set(DURATION),
            fix_actions=_set("pad"),
            about="WAV header says 4 s, 1 s of samples left: the real length is what counts",
        ),
        Case(
            "trunc-mp3-40pct.mp3",
            _then(lambda p: _audio(p, sample_rate=44100), lambda p: _cut(p, 0.4)),
            "truncated",
            audio,
            _set(DURATION),
            fix_actions=_set("pad"),
            about="MP3 cut to 40%: 1.2 s of a 3 s voice",
        ),
        Case(
            "trunc-aac-half.aac",
            _then(lambda p: _audio(p, sample_rate=44100), lambda p: _cut(p, 0.5)),
            "truncated",
            audio,
            _set(DURATION),
            fix_actions=_set("pad"),
            about="ADTS AAC cut in the middle (mid-frame)",
        ),
        Case(
            "trunc-jpeg-half.jpg",
            _then(_image, lambda p: _cut(p, 0.5)),
            "truncated",
            image,
            _set(OPEN),
            fix="refused",
            fix_says="cannot be decoded",
            about="JPEG cut in the middle",
        ),
        Case(
            "trunc-png-half.png",
            _then(_image, lambda p: _cut(p, 0.5)),
            "truncated",
            image,
            _set(OPEN),
            fix="refused",
            fix_says="cannot be decoded",
            about="PNG cut in the middle",
        ),
        Case(
            "trunc-webp-half.webp",
            _then(_image, lambda p: _cut(p, 0.5)),
            "truncated",
            image,
            _set(OPEN),
            fix="refused",
            fix_says="header is damaged",
            about="WebP cut in the middle",
        ),
        # --- damaged headers and data ---------------------------------------------------
        Case(
            "moov-renamed.mp4",
            _then(_video, _rename_box(b"moov", b"mooX")),
            "damaged",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="no moov box",
            about="the index box's name bit-flipped: no moov atom",
        ),
        Case(
            "stsz-overflow.mp4",
            _then(_faststart, _overflow_stsz),
            "damaged",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="index is damaged",
            about="a sample size flipped to 2 GB: the index points far past the end",
        ),
        Case(
            "mdat-bitflips.mp4",
            _then(_video, _flip_mdat(0.002)),
            "damaged",
            video,
            fast=False,
            fix_actions=_set("copy"),
            about="0.2% of the picture data bit-flipped, headers whole: decoders conceal it",
        ),
        Case(
            "claims-10-hours.mp4",
            _then(_video, claim_hours(10)),
            "damaged",
            video,
            warnings=_set("Video.HeaderLength"),
            fast=False,
            fix_actions=_set("remux"),
            about="2.5 s of frames whose MP4 headers claim 10 hours: FFmpeg 8 (and preflight) go by "
            "the sample tables, ffprobe 5.1 by the header; the fix writes a fresh one",
        ),
        Case(
            "mkv-claims-10-hours.mkv",
            _then(_video, _mkv_claims_hours(10)),
            "damaged",
            video,
            _set(FORMAT),
            fast=False,
            fix_actions=_set("remux"),
            about="Matroska whose header says 10 hours over 2.5 s of frames",
        ),
        Case(
            "pts-gap-10-hours.mkv",
            lambda p: _encode(
                p,
                "libx264",
                "yuv420p",
                container="matroska",
                time_base=Fraction(1, 1000),
                pts=lambda i: i * 1000 // 15 if i < 37 else 36_000_000,
                options={"preset": "ultrafast", "crf": "35"},
                frames=38,
            ),
            "damaged",
            video,
            _set(FORMAT, DURATION),
            fast=False,
            fix_actions=_set("remux", "trim"),
            about="2.5 s of frames, then one more 10 hours later (every decode must stay bounded)",
        ),
        Case(
            "avi-unknown-fourcc.avi",
            _then(lambda p: _video(p, codec="mpeg4"), _avi_fourcc(b"FMP4", b"QQQQ")),
            "damaged",
            video,
            _set(FORMAT),
            fix="refused",
            fix_says="no decoder",
            about="AVI whose video codec fourcc no decoder knows",
        ),
        Case(
            "png-bad-crc.png",
            _then(_image, _break_png_crc),
            "damaged",
            image,
            _set(OPEN),
            fix="refused",
            fix_says="no image format",
            about="PNG header chunk with a broken CRC",
        ),
        Case(
            "jpeg-soi-zeroed.jpg",
            _then(_image, _zero_head(4)),
            "damaged",
            image,
            _set(OPEN),
            fix="refused",
            fix_says="no image format",
            about="JPEG whose start-of-image marker is zeroed",
        ),
        Case(
            "wav-unknown-codec.wav",
            _wav(3.0, 16000, fmt_tag=0x7777),
            "damaged",
            audio,
            _set(OPEN),
            fix="refused",
            fix_says="FFmpeg does not know",
            about="WAV header naming a codec that does not exist (format tag 0x7777)",
        ),
        Case(
            "random-bytes.mp4",
            _random_bytes(65536),
            "damaged",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="Cannot open",
            about="64 KB of noise named .mp4",
        ),
        Case(
            "text-named.wav",
            _text(b"RIFF? no. just a text file\n" * 20),
            "damaged",
            audio,
            _set(OPEN),
            fix="refused",
            fix_says="recognises no audio or video",
            about="a text file named .wav",
        ),
        # --- wrong extensions, both ways ------------------------------------------------
        Case(
            "matroska-named.mp4",
            _as(_video, ".mkv"),
            "extension",
            video,
            _set(FORMAT),
            fix_actions=_set("remux"),
            about="Matroska (H.264) named .mp4",
        ),
        Case(
            "mp4-named.avi",
            _as(_video, ".mp4"),
            "extension",
            video,
            warnings=_set("Video.ExtensionMismatch"),
            fix_actions=_set("rename"),
            about="MP4 named .avi",
        ),
        Case(
            "mp4-named.mkv",
            _as(_video, ".mp4"),
            "extension",
            video,
            _set(FORMAT),
            fix_actions=_set("rename"),
            about="MP4 named .mkv",
        ),
        Case(
            "avi-named.mp4",
            _as(lambda p: _video(p, codec="h264"), ".avi"),
            "extension",
            video,
            warnings=_set("Video.ExtensionMismatch"),
            fix_actions=_set("rename"),
            about="AVI (H.264 + MP3) named .mp4",
        ),
        Case(
            "mp4-no-extension",
            _as(_video, ".mp4"),
            "extension",
            video,
            _set(FORMAT),
            fix_actions=_set("rename"),
            about="MP4 with no extension (role from its first bytes)",
        ),
        Case(
            "wav-named.mp3",
            _as(_audio, ".wav"),
            "extension",
            audio,
            warnings=_set("Audio.ExtensionMismatch"),
            fix_actions=_set("remux"),
            about="WAV named .mp3",
        ),
        Case(
            "mp3-named.wav",
            _as(_audio, ".mp3"),
            "extension",
            audio,
            warnings=_set("Audio.ExtensionMismatch"),
            fix_actions=_set("remux"),
            about="MP3 named .wav",
        ),
        Case(
            "wav-named.bin",
            _as(_audio, ".wav"),
            "extension",
            audio,
            _set(FORMAT),
            fix_actions=_set("remux"),
            about="WAV named .bin (role from its first bytes)",
        ),
        Case(
            "png-named.jpg",
            _as(_image, ".png"),
            "extension",
            image,
            warnings=_set("Image.ExtensionMismatch"),
            fix_actions=_set("rename"),
            about="PNG named .jpg",
        ),
        Case(
            "gif-named.jpg",
            _as(_gif, ".gif"),
            "extension",
            image,
            _set(FORMAT),
            fix_actions=_set("convert"),
            about="GIF renamed .jpg",
        ),
        Case(
            "tiff-named.tif",
            _as(lambda p: _image(p, image_format="TIFF"), ".tif"),
            "extension",
            image,
            _set(FORMAT),
            fix_actions=_set("convert"),
            about="a TIFF photo",
        ),
        Case(
            "jpeg-named.mp4",
            _as(_image, ".jpg"),
            "extension",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="still image",
            about="a photo named .mp4",
        ),
        Case(
            "mp3-named.mp4",
            _as(_audio, ".mp3"),
            "extension",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="no video stream",
            about="an MP3 named .mp4",
        ),
        Case(
            "mp4-named.jpg",
            _as(_video, ".mp4"),
            "extension",
            image,
            _set(OPEN),
            fix="refused",
            fix_says="no image format",
            about="a video named .jpg",
        ),
        Case(
            "video-given-as-audio.mp4",
            _video,
            "extension",
            audio,
            _set(FORMAT),
            given_as="audio",
            fix_actions=_set("extract"),
            about="a video passed with --audio",
        ),
        Case(
            "wav-given-as-video.wav",
            _audio,
            "extension",
            video,
            _set(OPEN),
            given_as="video",
            fix="refused",
            fix_says="no video stream",
            about="a WAV passed with --video",
        ),
        # --- streams: none, empty, extra ------------------------------------------------
        Case(
            "video-track-no-frames.mp4",
            _then(_video, _empty_video_track),
            "streams",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="no video stream",
            about="an MP4 whose video track lists no frame at all, beside 2.5 s of sound",
        ),
        Case(
            "audio-only.mp4",
            _as(_audio, ".m4a"),
            "streams",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="no video stream",
            about="AAC in MP4 named .mp4: no picture",
        ),
        Case(
            "wav-no-samples.wav",
            _wav(0.0, 16000),
            "streams",
            audio,
            _set(OPEN),
            fix="refused",
            fix_says="no samples",
            about="a WAV header with an empty data chunk",
        ),
        Case(
            "one-frame.mp4",
            lambda p: _video(p, fps=25, duration=0.04),
            "streams",
            video,
            _set(DURATION),
            fix_actions=_set("pad-duration"),
            about="a single frame (0.04 s)",
        ),
        Case(
            "fragmented.mp4",
            lambda p: _video(
                p,
                fps=25,
                duration=3.0,
                gop=25,
                container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
            ),
            "streams",
            video,
            fix_actions=_set("copy"),
            about="fragmented MP4 (as browsers record): an empty index up front, the frames in fragments",
        ),
        Case(
            "two-video-streams.mp4",
            _two_video_streams,
            "streams",
            video,
            warnings=_set("Video.MultipleStreams"),
            fix_actions=_set("copy"),
            about="two video tracks, no sound",
        ),
        Case(
            "mp3-id3-cover-art.mp3",
            _id3_cover,
            "streams",
            audio,
            fast=False,
            fix_actions=_set("copy"),
            about="MP3 with a JPEG cover in its ID3 tag (an attached-picture stream)",
        ),
        # --- lengths at both ends -------------------------------------------------------
        Case(
            "video-0.5s.mp4",
            lambda p: _video(p, duration=0.5),
            "length",
            video,
            _set(DURATION),
            fix_actions=_set("pad-duration"),
            about="0.5 s of video",
        ),
        Case(
            "video-125s.mp4",
            _long_video(125.0, gop=150),
            "length",
            video,
            _set(DURATION),
            fix_actions=_set("trim"),
            about="125 s of video",
        ),
        Case(
            "one-keyframe-110s.mp4",
            _long_video(110.0, gop=100_000),
            "length",
            video,
            fast=False,
            absent=_set("Face.NotFound"),
            fix_actions=_set("copy"),
            about="110 s in one group of pictures: every sample needs decoding from the start",
        ),
        Case(
            "audio-0.5s.wav",
            lambda p: _audio(p, duration=0.5),
            "length",
            audio,
            _set(DURATION),
            fix_actions=_set("pad"),
            about="0.5 s of voice",
        ),
        Case(
            "audio-125s.mp3",
            lambda p: _audio(p, duration=125.0, sample_rate=8000),
            "length",
            audio,
            _set(DURATION),
            fix_actions=_set("trim"),
            about="125 s of voice (8 kHz MP3)",
        ),
        # --- sample rates, channels, depth ----------------------------------------------
        Case(
            "audio-8khz.wav",
            _wav(3.0, 8000),
            "audio",
            audio,
            warnings=_set("Audio.LowSampleRate"),
            fast=False,
            fix_actions=_set("resample"),
            about="8 kHz telephone audio",
        ),
        Case(
            "audio-96khz-24bit.wav",
            _wav(3.0, 96000, bits=24),
            "audio",
            audio,
            fast=False,
            fix_actions=_set("copy"),
            about="96 kHz 24-bit studio audio",
        ),
        Case(
            "audio-5.1.wav",
            _wav(3.0, 48000, channels=6),
            "audio",
            audio,
            fast=False,
            fix_actions=_set("copy"),
            about="a 5.1 WAV (six channels)",
        ),
        Case(
            "audio-5.1.aac",
            lambda p: _audio(p, sample_rate=48000, channels=6),
            "audio",
            audio,
            fast=False,
            fix_actions=_set("copy"),
            about="5.1 AAC in ADTS",
        ),
        Case(
            "audio-digital-silence.wav",
            _wav(3.0, 16000, silent=True),
            "audio",
            audio,
            warnings=_set("Audio.NoSpeech"),
            fast=False,
            fix_actions=_set("copy"),
            about="3 s of exact zeros",
        ),
        # --- codecs and pixel formats ---------------------------------------------------
        Case(
            "h264-high10.mp4",
            _x264("yuv420p10le"),
            "codec",
            video,
            warnings=_set("Video.PixelFormat"),
            fix_actions=_set("pixel-format"),
            about="10-bit H.264 (High 10)",
        ),
        Case(
            "h264-high444.mp4",
            _x264("yuv444p"),
            "codec",
            video,
            warnings=_set("Video.PixelFormat"),
            fix_actions=_set("pixel-format"),
            about="4:4:4 H.264 (High 4:4:4 Predictive)",
        ),
        Case(
            "h264-bframes.mkv",
            _then(
                lambda p: _encode(
                    p, "libx264", "yuv420p", frames=38, options={"preset": "medium", "crf": "35"}
                )
            ),
            "codec",
            video,
            _set(FORMAT),
            fix_actions=_set("remux"),
            about="H.264 with B frames in Matroska: the first frames have no decode time",
        ),
        Case(
            "hevc.mkv",
            _x265("yuv420p"),
            "codec",
            video,
            _set(FORMAT),
            fix_actions=_set("remux"),
            about="HEVC in Matroska",
        ),
        Case(
            "hevc-main10.mp4",
            _x265("yuv420p10le"),
            "codec",
            video,
            warnings=_set("Video.PixelFormat"),
            fix_actions=_set("pixel-format"),
            about="10-bit HEVC in MP4",
        ),
        Case(
            "vp9-alpha.webm",
            lambda p: _encode(
                p, "libvpx-vp9", "yuva420p", alpha=True, options={"deadline": "realtime", "cpu-used": "8"}
            ),
            "codec",
            video,
            _set(FORMAT),
            fix_actions=_set("transcode"),
            about="VP9 with an alpha channel in WebM (stands in for HEVC with alpha)",
        ),
        Case(
            "prores4444-alpha.mov",
            lambda p: _encode(
                p,
                "prores_ks",
                "yuva444p10le",
                width=320,
                height=240,
                alpha=True,
                options={"profile": "4444", "qscale": "31"},
            ),
            "codec",
            video,
            _set(FORMAT, RESOLUTION),
            fix_actions=_set("transcode", "scale"),
            about="ProRes 4444 with alpha in MOV, 320x240",
        ),
        # --- geometry ---------------------------------------------------------------------
        Case(
            "rotation-90.mp4",
            lambda p: _video(p, width=800, height=640, rotation=90),
            "geometry",
            video,
            warnings=_set("Video.Rotated"),
            absent=_set("Face.NotFound"),
            fast=False,
            fix_actions=_set("rotate"),
            about="a phone clip stored sideways, flag 90",
        ),
        Case(
            "rotation-180.mp4",
            lambda p: _video(p, rotation=180),
            "geometry",
            video,
            warnings=_set("Video.Rotated"),
            absent=_set("Face.NotFound"),
            fast=False,
            fix_actions=_set("rotate"),
            about="stored upside down, flag 180",
        ),
        Case(
            "rotation-270.mp4",
            lambda p: _video(p, width=800, height=640, rotation=270),
            "geometry",
            video,
            warnings=_set("Video.Rotated"),
            absent=_set("Face.NotFound"),
            fast=False,
            fix_actions=_set("rotate"),
            about="stored sideways the other way, flag 270",
        ),
        Case(
            "rotation-90.mkv",
            lambda p: _video(p, width=800, height=640, rotation=90),
            "geometry",
            video,
            _set(FORMAT),
            warnings=_set("Video.Rotated"),
            fix_actions=_set("rotate"),
            about="rotation flag in Matroska (read from the first frame)",
        ),
        Case(
            "odd-641x479.mp4",
            _x264("gray", width=641, height=479),
            "geometry",
            video,
            _set(RESOLUTION),
            fix_actions=_set("scale"),
            about="odd sides, one under 640 (monochrome H.264)",
        ),
        Case(
            "odd-1281x721-444.mp4",
            _x264("yuv444p", width=1281, height=721),
            "geometry",
            video,
            warnings=_set("Video.PixelFormat"),
            fix_actions=_set("crop"),
            about="odd sides in range (4:4:4): a re-encode must make them even",
        ),
        Case(
            "tiny-16x16.mp4",
            _x264("yuv420p", width=16, height=16),
            "geometry",
            video,
            _set(RESOLUTION),
            fix_actions=_set("scale"),
            about="a 16x16 picture",
        ),
        Case(
            "wide-4000x400.mp4",
            _x264("yuv420p", width=4000, height=400),
            "geometry",
            video,
            _set(RESOLUTION),
            fix_actions=_set("pad"),
            about="aspect 10:1: no scale fits",
        ),
        Case(
            "huge-15360-tiny-file.mp4",
            _huge_h264(15360, 15360, "mp4"),
            "geometry",
            video,
            _set(RESOLUTION),
            fix="refused",
            fix_says="8192",
            about="3 KB of H.264 whose header says 15360x15360 (350 MB a decoded frame)",
        ),
        Case(
            "huge-15360-tiny-file.mkv",
            _huge_h264(15360, 8640, "matroska"),
            "geometry",
            video,
            _set(FORMAT, RESOLUTION),
            fix="refused",
            fix_says="8192",
            about="the same in Matroska, where reading the rotation decodes a frame",
        ),
        Case(
            "png-claims-60000px.png",
            _png_claiming(60000, 60000),
            "geometry",
            image,
            _set(IMAGE_SIZE),
            fix="refused",
            fix_says="too many pixels",
            about="a 200-byte PNG claiming 60000x60000",
        ),
        Case(
            "png-claims-12000px.png",
            _png_claiming(12000, 6000),
            "geometry",
            image,
            _set(IMAGE_SIZE),
            fix="refused",
            fix_says="decode",
            about="a 200-byte PNG claiming 12000x6000 (under Pillow's bomb limit)",
        ),
        Case(
            "png-16bit-13000px.png",
            png16_blank(13000, 13000),
            "geometry",
            image,
            _set(IMAGE_SIZE),
            warnings=_set("Image.ColorMode"),
            fix="refused",
            fix_says="not decoded",
            about="a whole 328 KB 16-bit PNG of 13000x13000 (the fixer took 4.7 GB decoding it)",
        ),
        Case(
            "sound-3000s-after-picture.mkv",
            sound_apart(0.0, 3000.0),
            "streams",
            video,
            _set(FORMAT),
            warnings=_set("Video.AudioOffset"),
            fix_actions=_set("remux", "drop-audio"),
            about="sound starting 3000 s after 2.5 s of picture (the fixer wrote 3000 s of silence)",
        ),
        Case(
            "voice-stamped-3000s-late.mka",
            voice_stamped_late(3000.0),
            "length",
            audio,
            _set(FORMAT),
            fix_actions=_set("convert"),
            about="3 s of voice stamped 3000 s late (read as 3003 s, fixed into 120 s of room tone)",
        ),
        Case(
            "sound-3000s-before-picture.mkv",
            sound_apart(3000.0, 0.0),
            "streams",
            video,
            _set(FORMAT),
            warnings=_set("Video.AudioOffset"),
            fix_actions=_set("remux", "drop-audio"),
            about="half a second of sound, then 3000 s later 2.5 s of picture",
        ),
        # --- images ---------------------------------------------------------------------
        Case(
            "webp-animated.webp",
            _animated_webp,
            "image",
            image,
            warnings=_set("Image.Animated"),
            fix_actions=_set("first-frame"),
            about="an animated WebP (4 frames)",
        ),
        Case(
            "cmyk.jpg",
            lambda p: _image(p, mode="CMYK"),
            "image",
            image,
            warnings=_set("Image.ColorMode"),
            absent=_set(CONTENT),
            fast=False,
            fix_actions=_set("to-rgb"),
            about="a CMYK JPEG",
        ),
        Case(
            "png-16bit-gray.png",
            lambda p: _image(p, mode="I;16"),
            "image",
            image,
            warnings=_set("Image.ColorMode"),
            fix_actions=_set("to-rgb"),
            about="a 16-bit greyscale PNG",
        ),
        Case(
            "png-48bit-rgb.png",
            _png_rgb48,
            "image",
            image,
            fast=False,
            fix_actions=_set("copy"),
            about="a 48-bit RGB PNG (Pillow reads it as 8-bit RGB)",
        ),
        Case(
            "image-1x1.png",
            _tiny_png,
            "image",
            image,
            _set(CONTENT),
            fast=False,
            fix="refused",
            fix_says="no face",
            about="a single pixel",
        ),
        *(
            Case(
                f"exif-orientation-{n}.jpg",
                _exif_oriented(n),
                "image",
                image,
                warnings=_set("Image.Rotated") if n != 1 else frozenset(),
                absent=_set(CONTENT),
                fast=False,
                fix_actions=_set("orient") if n != 1 else _set("copy"),
                about=f"EXIF orientation {n}, pixels stored so that the tag shows the face upright",
            )
            for n in range(1, 9)
        ),
        # --- names ----------------------------------------------------------------------
        Case(
            "name with  spaces.mp4",
            _video,
            "name",
            video,
            fix_actions=_set("copy"),
            about="spaces, two of them in a row",
        ),
        Case(
            'it\'s "quoted".mp4',
            _video,
            "name",
            video,
            fix_actions=_set("copy"),
            about="single and double quotes",
        ),
        Case("café ü 日本.wav", _audio, "name", audio, fix_actions=_set("copy"), about="non-ASCII (NFC)"),
        Case(
            "-rf.mp4",
            _video,
            "name",
            video,
            fix_actions=_set("copy"),
            about="a leading dash (given after --)",
        ),
        Case(
            "$(touch pwned); `id`.jpg",
            _image,
            "name",
            image,
            fix_actions=_set("copy"),
            about="shell syntax that must never be run",
        ),
        Case(
            "[bold red]markup.mp4",
            _video,
            "name",
            video,
            fix_actions=_set("copy"),
            about="console markup that must be shown, not obeyed",
        ),
        Case(
            "two\nlines.wav", _audio, "name", audio, fix_actions=_set("copy"), about="a newline in the name"
        ),
        Case(
            "latin1-\udce9t\udce9.png",
            _image,
            "name",
            image,
            fix_actions=_set("copy"),
            about="bytes that are not UTF-8 (Latin-1 é)",
        ),
        # Names a terminal, rich or a CI log would obey: shown escaped, never crashing a run.
        # Some are M4A (an error the fixer converts) so that annotations carry their names.
        Case(
            "x[/]y.m4a",
            _in_its_folder(_audio),
            "name",
            audio,
            _set(FORMAT),
            fix_actions=_set("convert"),
            about="a folder named 'x[' holding ']y.m4a': '[/]' is rich's closing tag",
        ),
        Case(
            "[bold]style [link=x]link[#f00]colour \\[escaped].wav",
            _audio,
            "name",
            audio,
            fix_actions=_set("copy"),
            # No name holds "/": rich's closing tag "[/]" needs x[/]y.m4a's folder.
            about="console markup: a style, a link, a colour, an escaped bracket",
        ),
        Case(
            "esc-\x1b[5;41mblink\x1b[0m-\x1b]0;pwned\x07.m4a",
            _audio,
            "name",
            audio,
            _set(FORMAT),
            fix_actions=_set("convert"),
            about="ESC sequences: blinking red, and a window title set (OSC)",
        ),
        Case(
            "cr-\roverwritten.wav",
            _audio,
            "name",
            audio,
            fix_actions=_set("copy"),
            about="a carriage return: what follows overwrites the line on a terminal",
        ),
        Case(
            "nl-\n::error file=x::pwned.m4a",
            _audio,
            "name",
            audio,
            _set(FORMAT),
            fix_actions=_set("convert"),
            about="a newline then a GitHub Actions workflow command",
        ),
        Case(
            "::error file=x::starts-a-line.wav",
            _audio,
            "name",
            audio,
            fix_actions=_set("copy"),
            about="a workflow command at the start of the name",
        ),
        Case(
            f"c0-{C0_AND_DEL}.png",
            _image,
            "name",
            image,
            fix_actions=_set("copy"),
            about="every C0 control character but NUL, and DEL",
        ),
        Case(
            f"c1-{C1}.m4a",
            _audio,
            "name",
            audio,
            _set(FORMAT),
            fix_actions=_set("convert"),
            about="every C1 control character, UTF-8 encoded (U+009B is CSI)",
        ),
        Case(
            f"c1-bytes-{C1_BYTES}.m4a",
            _audio,
            "name",
            audio,
            _set(FORMAT),
            fix_actions=_set("convert"),
            about="the bytes 0x80-0x9F raw: not UTF-8",
        ),
        Case(
            "invalid-utf8-\udcff-\udcc3.wav",
            _audio,
            "name",
            audio,
            fix_actions=_set("copy"),
            about="a byte never in UTF-8 (0xFF) and a lead byte with nothing after it",
        ),
        Case(
            "bidi-\u202egnp.wav",
            _audio,
            "name",
            audio,
            fix_actions=_set("copy"),
            about="a right-to-left override: the name would show as 'bidi-vaw.png'",
        ),
        # --- links ----------------------------------------------------------------------
        Case(
            "link-to-good.mp4",
            _link_to("_targets/good.mp4", _video),
            "link",
            video,
            fix_actions=_set("copy"),
            about="a relative symbolic link to an accepted clip",
        ),
        Case(
            "dangling-link.mp4",
            _link_to("_targets/gone.mp4"),
            "link",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="No such file",
            about="a link to nothing",
        ),
        Case(
            "link-loop.mp4",
            _link_loop,
            "link",
            video,
            _set(OPEN),
            fix="refused",
            fix_says="symbolic links",
            about="two links pointing at each other",
        ),
        Case(
            "fifo.mp4",
            _fifo,
            "link",
            video,
            fix="usage",
            fix_says="not a regular file",
            about="a named pipe: reading it would block forever",
        ),
    ]
    names = [case.name for case in cases]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"duplicate case names: {sorted(duplicates)}")
    return cases


CASES: tuple[Case, ...] = tuple(_cases())


# --------------------------------------------------------------------------- the cache
def cache_key() -> str:
    """Changes whenever the files could come out differently."""
    digest = hashlib.sha256()
    for source in (Path(__file__), FIXTURES / "make_fixtures.py", FIXTURES / "sample" / "face.jpg"):
        digest.update(source.read_bytes())
    digest.update(f"av {av.__version__} pillow {PIL.__version__} numpy {np.__version__}".encode())
    return digest.hexdigest()[:16]


def write_corpus(folder: Path) -> list[Path]:
    """Make every case in ``folder`` (which must exist and be empty)."""
    made = []
    for case in CASES:
        path = folder / case.name
        case.make(path)
        made.append(path)
    return made


def corpus_dir(*, force: bool = False) -> Path:
    """The corpus folder, made on first use. Made whole under a temporary name and then
    renamed, so a run interrupted halfway or two runs side by side never see half a corpus."""
    target = CACHE / cache_key()
    if target.is_dir() and not force:
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=CACHE))
    try:
        write_corpus(building)
        if force and target.is_dir():
            shutil.rmtree(target)
        try:
            building.rename(target)
        except OSError:
            if not target.is_dir():  # someone else's rename won the race: theirs is as good
                raise
    finally:
        if building.exists():
            shutil.rmtree(building)
    for stale in CACHE.iterdir():  # corpora of older generators
        if stale != target and not stale.name.startswith(".building-"):
            shutil.rmtree(stale, ignore_errors=True)
    return target


def corpus_bytes(folder: Path) -> int:
    return sum(
        os.lstat(os.path.join(root, name)).st_size for root, _, names in os.walk(folder) for name in names
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="make the corpus again even when cached")
    args = parser.parse_args(argv)
    folder = corpus_dir(force=args.force)
    for case in CASES:
        codes = ", ".join(sorted(case.errors)) or "no error"
        print(f"{case.category:<10} {case.name!r:<34} {case.role:<6} {codes:<50} fix: {case.fix}")
    print(f"{len(CASES)} cases, {corpus_bytes(folder) / 1e6:.1f} MB in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
