"""Read facts FFmpeg does not pass on from an MP4/MOV's ``moov`` box, without decoding: the
display rotation of its tracks (``tkhd``) and the length its movie header states (``mvhd``).

PyAV 18 exposes no stream side data, and decoding a frame to read ``frame.rotation``
costs a decoder start-up per file. The rotation lives in the track header's matrix, a few
bytes inside ``moov``; this module walks the boxes to it. FFmpeg 8 goes by the sample
tables for a file's length; older readers (ffprobe 5.1) take the movie header's word, so
what it claims is read too.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

# A moov larger than this is not read (a 2-hour file's moov is a few MB).
MAX_MOOV_BYTES = 64 * 1024 * 1024


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, payload_start, payload_end) for the boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _top_level_boxes(handle: BinaryIO, file_size: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, start, header length, size) of each top-level box, in file order, from its
    header alone; a size of 0 means "to the end of the file". The walk stops at a header cut
    short or a size too small to step over: the file is damaged from there."""
    pos = 0
    while pos + 8 <= file_size:
        handle.seek(pos)
        header = handle.read(16)
        if len(header) < 8:
            return
        size, kind = struct.unpack_from(">I4s", header, 0)
        header_len = 8
        if size == 1 and len(header) == 16:
            (size,) = struct.unpack_from(">Q", header, 8)
            header_len = 16
        elif size == 0:
            size = file_size - pos
        yield kind, pos, header_len, size
        if size < 8:
            return
        pos += size


def _read_moov(handle: BinaryIO, file_size: int) -> bytes | None:
    for kind, start, header_len, size in _top_level_boxes(handle, file_size):
        if size < header_len:
            return None
        if kind == b"moov":
            if size > MAX_MOOV_BYTES:
                return None
            handle.seek(start + header_len)
            return handle.read(size - header_len)
    return None


def has_moov(handle: BinaryIO, file_size: int) -> bool:
    """True when a top-level ``moov`` box starts inside the file (whole or not)."""
    return any(kind == b"moov" for kind, _, _, _ in _top_level_boxes(handle, file_size))


def _rotation_from_matrix(a: int, b: int, c: int, d: int) -> int:
    # Same as FFmpeg's av_display_rotation_get on the matrix the mov demuxer exports:
    # degrees counter-clockwise, what ffprobe prints as "rotation".
    scale_a = math.hypot(a, c)
    scale_b = math.hypot(b, d)
    if scale_a == 0 or scale_b == 0:
        return 0
    degrees = math.degrees(math.atan2(c / scale_b, a / scale_a))
    return round(degrees / 90.0) * 90 % 360


def _tkhd(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(track_id, rotation) from a tkhd payload."""
    if end - start < 4:
        return None
    version = data[start]
    if version == 1:
        id_at, matrix_at = start + 4 + 16, start + 4 + 32 + 16
    else:
        id_at, matrix_at = start + 4 + 8, start + 4 + 20 + 16
    if matrix_at + 36 > end:
        return None
    (track_id,) = struct.unpack_from(">I", data, id_at)
    a, b, _u, c, d, _v = struct.unpack_from(">iiiiii", data, matrix_at)
    return track_id, _rotation_from_matrix(a, b, c, d)


def _mvhd_duration(data: bytes, start: int, end: int) -> float | None:
    """The movie's stated length in seconds from an mvhd payload; None when it states none
    (zero, all ones: "unknown") or the box is cut short."""
    if end - start < 4:
        return None
    version = data[start]
    if version == 1:
        at, fmt, unknown = start + 4 + 16, ">IQ", 0xFFFF_FFFF_FFFF_FFFF
    else:
        at, fmt, unknown = start + 4 + 8, ">II", 0xFFFF_FFFF
    if at + struct.calcsize(fmt) > end:
        return None
    timescale, duration = struct.unpack_from(fmt, data, at)
    if timescale == 0 or duration in (0, unknown):
        return None
    return float(duration / timescale)


@dataclass(frozen=True)
class MoovFacts:
    """What one read of the ``moov`` box tells."""

    #: Track id -> display rotation (0/90/180/270), as ffprobe reports it.
    rotations: dict[int, int] = field(default_factory=dict)
    #: Seconds the movie header (``mvhd``) claims; None when it states none, or for a
    #: fragmented file (its ``mvhd`` covers only the samples before the fragments).
    header_duration: float | None = None


def moov_facts(handle: BinaryIO, file_size: int) -> MoovFacts:
    """Track rotations and the movie header's stated length, from one bounded read."""
    moov = _read_moov(handle, file_size)
    if moov is None:
        return MoovFacts()
    rotations: dict[int, int] = {}
    header_duration: float | None = None
    fragmented = False
    for kind, start, end in _boxes(moov, 0, len(moov)):
        if kind == b"mvhd":
            header_duration = _mvhd_duration(moov, start, end)
        elif kind == b"mvex":
            fragmented = True
        if kind != b"trak":
            continue
        for child, child_start, child_end in _boxes(moov, start, end):
            if child == b"tkhd":
                parsed = _tkhd(moov, child_start, child_end)
                if parsed is not None:
                    rotations[parsed[0]] = parsed[1]
    return MoovFacts(rotations, None if fragmented else header_duration)
