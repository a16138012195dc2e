"""Seeded mutations of small media files, aware of their structure.

``mutant(seeds, run_seed, number)`` gives the same bytes for the same arguments on every
machine and Python version (``random.Random`` seeded with a string is). Each mutant is a
seed file with one to four operations applied: random byte and bit changes, truncation,
deleted, duplicated or inserted chunks, boundary values (0, 0x7FFFFFFF, 0xFFFFFFFF, ...)
written over 32-bit words, and, where the container is known, corruption of its own
fields: MP4 box sizes, types and table counts (the boxes walked to any depth), RIFF chunk
sizes and the WAV/AVI/WebP header fields, PNG chunk lengths and IHDR (CRC fixed again half
of the time, so the decoder gets past it), JPEG segment lengths and frame size, Matroska
element sizes and small values, MP3 frame headers. Positions are drawn near those fields
half of the time, since a change deep in the compressed pixels rarely reaches new code.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BOUNDARY_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 0x10000, 0xFFFF)
BOUNDARY_16 = (0, 1, 0x7FFF, 0x8000, 0xFFFF)
BOUNDARY_8 = (0, 1, 0x7F, 0x80, 0xFF)
_BOUNDARY = {1: BOUNDARY_8, 2: BOUNDARY_16, 4: BOUNDARY_32, 8: (0, 1, 2**63 - 1, 2**64 - 1, 2**32)}
#: Extensions a mutant may be renamed to (a mislabelled file).
EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".wav", ".mp3", ".aac", ".m4a", ".jpg", ".png", ".webp")


@dataclass(frozen=True)
class Field:
    """A number in a file's structure: where, how wide, which byte order, what it is."""

    offset: int
    size: int
    big_endian: bool
    name: str


@dataclass(frozen=True)
class Mutant:
    seed: str  # the seed file's name
    name: str  # the mutant's file name (the seed's extension, or another one)
    data: bytes
    operations: tuple[str, ...]


# --------------------------------------------------------------------------- structure
_MP4_CONTAINERS = {
    b"moov": 8,
    b"trak": 8,
    b"mdia": 8,
    b"minf": 8,
    b"stbl": 8,
    b"edts": 8,
    b"dinf": 8,
    b"udta": 8,
    b"mvex": 8,
    b"moof": 8,
    b"traf": 8,
    b"meta": 12,
    b"stsd": 16,
    b"dref": 16,
    b"avc1": 86,
    b"hvc1": 86,
    b"hev1": 86,
    b"mp4v": 86,
    b"mp4a": 36,
    b"ilst": 8,
}
# Full boxes: the 32-bit fields after version and flags worth corrupting (offsets in box).
_MP4_FIELDS = {
    b"mvhd": ((20, 4, "timescale"), (24, 4, "duration")),
    b"mdhd": ((20, 4, "timescale"), (24, 4, "duration")),
    b"tkhd": ((20, 4, "track_id"), (28, 4, "duration"), (84, 4, "width"), (88, 4, "height")),
    b"stts": ((12, 4, "entries"), (16, 4, "count"), (20, 4, "delta")),
    b"ctts": ((12, 4, "entries"), (16, 4, "count"), (20, 4, "offset")),
    b"stss": ((12, 4, "entries"), (16, 4, "sample")),
    b"stsc": ((12, 4, "entries"), (16, 4, "first_chunk"), (20, 4, "per_chunk"), (24, 4, "desc")),
    b"stsz": ((12, 4, "sample_size"), (16, 4, "samples"), (20, 4, "size0")),
    b"stco": ((12, 4, "entries"), (16, 4, "offset0")),
    b"co64": ((12, 4, "entries"), (16, 8, "offset0")),
    b"elst": ((12, 4, "entries"), (16, 4, "segment_duration"), (20, 4, "media_time")),
    b"stsd": ((12, 4, "entries"),),
    b"avc1": ((32, 2, "width"), (34, 2, "height"), (24, 2, "dref")),
    b"mp4a": ((24, 2, "channels"), (26, 2, "sample_size"), (32, 4, "sample_rate")),
    b"avcC": ((9, 1, "profile"), (12, 1, "length_size"), (13, 1, "sps_count"), (14, 2, "sps_length")),
    b"esds": ((12, 1, "tag"), (13, 1, "length")),
    b"hdlr": ((16, 4, "handler"),),
}


def mp4_fields(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[Field]:
    """Box sizes and types, and the fields of the boxes in ``_MP4_FIELDS``, to any depth."""
    end = len(data) if end is None else end
    fields: list[Field] = []
    pos = start
    while pos + 8 <= end and depth < 12:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
            fields.append(Field(pos + 8, 8, True, f"{kind!r}.largesize"))
        elif size == 0:
            size = end - pos
        fields.append(Field(pos, 4, True, f"{kind!r}.size"))
        fields.append(Field(pos + 4, 4, True, f"{kind!r}.type"))
        if size < header or pos + size > end:
            break
        for offset, width, name in _MP4_FIELDS.get(kind, ()):
            if offset + width <= size:
                fields.append(Field(pos + offset, width, True, f"{kind!r}.{name}"))
        inner = _MP4_CONTAINERS.get(kind)
        if inner is not None and inner < size:
            fields.extend(mp4_fields(data, pos + inner, pos + size, depth + 1))
        pos += size
    return fields


# RIFF chunks whose first bytes are header fields (how many bytes to enumerate): WAV's
# format, AVI's main, stream and format headers and the first index entries, WebP's.
_RIFF_HEADERS = {
    b"fmt ": 40,
    b"fact": 4,
    b"avih": 56,
    b"strh": 56,
    b"strf": 40,
    b"dmlh": 4,
    b"idx1": 64,
    b"VP8X": 10,
    b"VP8 ": 10,
    b"VP8L": 5,
    b"ALPH": 1,
}


def riff_fields(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[Field]:
    """RIFF (WAV, AVI, WebP): chunk sizes, and every 16/32-bit field of the header chunks
    (``fmt``, ``avih``, ``strh``, ``strf``, ``idx1``, ``VP8X``...)."""
    end = len(data) if end is None else end
    fields: list[Field] = []
    pos = start
    if depth == 0:
        if data[:4] not in (b"RIFF", b"RF64") or len(data) < 12:
            return []
        fields.append(Field(4, 4, False, "RIFF.size"))
        pos = 12
    while pos + 8 <= end and depth < 6:
        kind = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        fields.append(Field(pos + 4, 4, False, f"{kind!r}.size"))
        body = pos + 8
        if kind == b"LIST" and size >= 4:
            fields.extend(riff_fields(data, body + 4, min(end, body + size), depth + 1))
        elif kind in _RIFF_HEADERS:
            limit = min(end, body + size, body + _RIFF_HEADERS[kind])
            for offset in range(body, limit - 1, 2):
                fields.append(Field(offset, 2, False, f"{kind!r}+{offset - body}/16"))
            for offset in range(body, limit - 3, 4):
                fields.append(Field(offset, 4, False, f"{kind!r}+{offset - body}/32"))
        pos = body + size + (size & 1)
    return fields


def png_fields(data: bytes) -> list[Field]:
    """PNG chunk lengths and types, and IHDR's fields."""
    fields: list[Field] = []
    pos = 8
    while pos + 12 <= len(data):
        length = struct.unpack_from(">I", data, pos)[0]
        kind = data[pos + 4 : pos + 8]
        fields.append(Field(pos, 4, True, f"{kind!r}.length"))
        fields.append(Field(pos + 4, 4, True, f"{kind!r}.type"))
        if kind == b"IHDR":
            for offset, width, name in (
                (8, 4, "width"),
                (12, 4, "height"),
                (16, 1, "bit_depth"),
                (17, 1, "colour_type"),
                (18, 1, "compression"),
                (19, 1, "filter"),
                (20, 1, "interlace"),
            ):
                fields.append(Field(pos + offset, width, True, f"IHDR.{name}"))
        pos += 12 + length
    return fields


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk's CRC, so that a changed field reaches the decoder."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = struct.unpack_from(">I", out, pos)[0]
        if pos + 12 + length > len(out):
            break
        crc = zlib.crc32(bytes(out[pos + 4 : pos + 8 + length])) & 0xFFFFFFFF
        struct.pack_into(">I", out, pos + 8 + length, crc)
        pos += 12 + length
    return bytes(out)


def jpeg_fields(data: bytes) -> list[Field]:
    """JPEG segment lengths, the frame's size and component count, the scan's components."""
    fields: list[Field] = []
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        fields.append(Field(pos + 2, 2, True, f"FF{marker:02X}.length"))
        if marker in (0xC0, 0xC1, 0xC2) and pos + 10 <= len(data):
            fields.append(Field(pos + 4, 1, True, "SOF.precision"))
            fields.append(Field(pos + 5, 2, True, "SOF.height"))
            fields.append(Field(pos + 7, 2, True, "SOF.width"))
            fields.append(Field(pos + 9, 1, True, "SOF.components"))
        if marker == 0xDA:
            fields.append(Field(pos + 4, 1, True, "SOS.components"))
            break  # entropy-coded data follows
        pos += 2 + length
    return fields


# Matroska master elements (their children are walked) and small values worth changing.
_EBML_MASTERS = {
    0x1A45DFA3,
    0x18538067,
    0x114D9B74,
    0x4DBB,
    0x1549A966,
    0x1654AE6B,
    0xAE,
    0xE0,
    0xE1,
    0x1F43B675,
    0xA0,
    0x1C53BB6B,
    0xBB,
    0xB7,
    0x1254C367,
    0x7373,
    0x67C8,
    0x63C0,
}


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int] | None:
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 8 - data[pos].bit_length() + 1
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos : pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length


def ebml_fields(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[Field]:
    """Matroska element sizes (walked through the master elements) and small values."""
    end = len(data) if end is None else end
    fields: list[Field] = []
    pos = start
    while pos < end and depth < 8 and len(fields) < 400:
        ident = _vint(data, pos, keep_marker=True)
        if ident is None:
            break
        element, id_length = ident
        size = _vint(data, pos + id_length, keep_marker=False)
        if size is None:
            break
        value, size_length = size
        body = pos + id_length + size_length
        fields.append(Field(pos + id_length, size_length, True, f"EBML{element:X}.size"))
        unknown = value == (1 << (7 * size_length)) - 1
        stop = end if unknown else min(end, body + value)
        if element in _EBML_MASTERS:
            fields.extend(ebml_fields(data, body, stop, depth + 1))
        elif 0 < value <= 8 and element != 0xA3:  # not a SimpleBlock's payload
            fields.append(Field(body, value, True, f"EBML{element:X}.value"))
        if unknown:
            break
        pos = stop
    return fields


def mp3_fields(data: bytes) -> list[Field]:
    """The ID3v2 tag's size and the first frame headers."""
    fields: list[Field] = []
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        fields.append(Field(6, 4, True, "ID3.size"))
        size = 0
        for byte in data[6:10]:
            size = size << 7 | (byte & 0x7F)
        pos = 10 + size
    found = 0
    while pos + 4 <= len(data) and found < 40:
        if data[pos] == 0xFF and data[pos + 1] & 0xE0 == 0xE0:
            fields.append(Field(pos, 4, True, f"frame{found}.header"))
            found += 1
            pos += 4
        else:
            pos += 1
    return fields


def structure(name: str, data: bytes) -> list[Field]:
    """The known fields of a file, by its content."""
    if data[4:8] == b"ftyp":
        return mp4_fields(data)
    if data[:4] in (b"RIFF", b"RF64"):
        return riff_fields(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return png_fields(data)
    if data[:2] == b"\xff\xd8":
        return jpeg_fields(data)
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return ebml_fields(data)
    if data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return mp3_fields(data)
    return []


# --------------------------------------------------------------------------- operations
Operation = Callable[[bytearray, random.Random, list[Field]], str]


def _position(data: bytearray, rng: random.Random, fields: list[Field]) -> int:
    """Where to change: near a field of the structure half of the time, else anywhere."""
    if not data:
        return 0
    if fields and rng.random() < 0.5:
        field = rng.choice(fields)
        return min(len(data) - 1, max(0, field.offset + rng.randint(-4, field.size + 4)))
    if rng.random() < 0.2:
        return rng.randrange(min(len(data), 512))  # the header
    return rng.randrange(len(data))


def _length(rng: random.Random, cap: int) -> int:
    return max(1, min(cap, int(rng.paretovariate(1.2) * 4)))


def set_bytes(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    at = _position(data, rng, fields)
    count = min(len(data) - at, rng.choice((1, 1, 1, 2, 4)))
    for i in range(count):
        data[at + i] = rng.randrange(256)
    return f"set {count} byte(s) at {at}"


def flip_bits(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    flips = rng.randint(1, 4)
    spots = []
    for _ in range(flips):
        at = _position(data, rng, fields)
        bit = rng.randrange(8)
        data[at] ^= 1 << bit
        spots.append(f"{at}.{bit}")
    return "flip bit(s) " + ",".join(spots)


def truncate(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    keep = rng.choice((rng.randrange(len(data)), _position(data, rng, fields), len(data) - _length(rng, 64)))
    keep = max(0, keep)
    del data[keep:]
    return f"truncate to {keep}"


def delete_chunk(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    at = _position(data, rng, fields)
    length = _length(rng, max(1, len(data) - at))
    del data[at : at + length]
    return f"delete {length} at {at}"


def duplicate_chunk(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    at = _position(data, rng, fields)
    length = _length(rng, max(1, min(4096, len(data) - at)))
    chunk = data[at : at + length]
    to = _position(data, rng, fields)
    data[to:to] = chunk
    return f"duplicate {length} at {at} to {to}"


def insert_chunk(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    at = _position(data, rng, fields)
    length = _length(rng, 1024)
    fill = rng.choice(("random", "zero", "ff", "repeat"))
    if fill == "random":
        chunk = bytes(rng.randrange(256) for _ in range(length))
    elif fill == "repeat":
        chunk = bytes([rng.randrange(256)]) * length
    else:
        chunk = (b"\x00" if fill == "zero" else b"\xff") * length
    data[at:at] = chunk
    return f"insert {length} {fill} at {at}"


def boundary_word(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    if len(data) < 4:
        return set_bytes(data, rng, fields)
    at = min(len(data) - 4, _position(data, rng, fields) & ~3)
    value = rng.choice(BOUNDARY_32)
    order = rng.choice((">", "<"))
    struct.pack_into(f"{order}I", data, at, value)
    return f"write {value:#x} ({'BE' if order == '>' else 'LE'}) at {at}"


def corrupt_field(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    usable = [f for f in fields if f.offset + f.size <= len(data)]
    if not usable:
        return boundary_word(data, rng, fields)
    # Sizes and lengths first: the most likely to lead a parser astray.
    sized = [f for f in usable if f.name.endswith((".size", ".length", "entries"))]
    field = rng.choice(sized if sized and rng.random() < 0.4 else usable)
    order: Literal["big", "little"] = "big" if field.big_endian else "little"
    old = int.from_bytes(data[field.offset : field.offset + field.size], order)
    top = (1 << (8 * field.size)) - 1
    how = rng.choice(("boundary", "boundary", "random", "plus", "minus", "double", "half", "zero"))
    if how == "boundary":
        new = rng.choice(_BOUNDARY.get(field.size, (0, top)))
    elif how == "random":
        new = rng.randrange(top + 1)
    elif how == "plus":
        new = old + rng.choice((1, 2, 8, 256, 65536))
    elif how == "minus":
        new = old - rng.choice((1, 2, 8, 256, 65536))
    elif how == "double":
        new = old * 2
    elif how == "half":
        new = old // 2
    else:
        new = 0
    new &= top
    data[field.offset : field.offset + field.size] = new.to_bytes(field.size, order)
    return f"{field.name} at {field.offset}: {old} -> {new} ({how})"


def swap_type(data: bytearray, rng: random.Random, fields: list[Field]) -> str:
    """Give a box or chunk another (known) type: a parser then reads it as that."""
    types = [f for f in fields if f.name.endswith(".type") and f.offset + 4 <= len(data)]
    if not types:
        return flip_bits(data, rng, fields)
    field, donor = rng.choice(types), rng.choice(types)
    new = bytes(data[donor.offset : donor.offset + 4]) if rng.random() < 0.7 else b"free"
    old = bytes(data[field.offset : field.offset + 4])
    data[field.offset : field.offset + 4] = new.ljust(4, b" ")[:4]
    return f"type at {field.offset}: {old!r} -> {new!r}"


OPERATIONS: dict[str, tuple[Operation, float]] = {
    "set_bytes": (set_bytes, 1.0),
    "flip_bits": (flip_bits, 1.0),
    "truncate": (truncate, 0.6),
    "delete_chunk": (delete_chunk, 0.7),
    "duplicate_chunk": (duplicate_chunk, 0.7),
    "insert_chunk": (insert_chunk, 0.7),
    "boundary_word": (boundary_word, 1.0),
    "corrupt_field": (corrupt_field, 2.5),
    "swap_type": (swap_type, 0.4),
}


def load_seeds(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def mutant(seeds: dict[str, bytes], run_seed: int, number: int) -> Mutant:
    """Input ``number`` of the run seeded ``run_seed``: always the same bytes."""
    rng = random.Random(f"preflight-fuzz:{run_seed}:{number}")
    seed = rng.choice(sorted(seeds))
    data = bytearray(seeds[seed])
    names, weights = zip(*((name, weight) for name, (_, weight) in OPERATIONS.items()), strict=True)
    operations: list[str] = []
    count = 1 + min(3, int(rng.expovariate(1.2)))
    # Another operation while the bytes are still the seed's (a byte set to its own value).
    while data and (len(operations) < count or (data == seeds[seed] and len(operations) < 8)):
        fields = structure(seed, bytes(data))
        name = rng.choices(names, weights)[0]
        operations.append(f"{name}: {OPERATIONS[name][0](data, rng, fields)}")
    if seed.endswith(".png") and rng.random() < 0.5:
        data = bytearray(fix_png_crcs(bytes(data)))
        operations.append("fix PNG CRCs")
    stem, _, ext = seed.rpartition(".")
    suffix = "." + ext
    if rng.random() < 0.04:
        suffix = rng.choice(EXTENSIONS)
        operations.append(f"renamed to {suffix}")
    return Mutant(
        seed=seed, name=f"{number:07d}-{stem}{suffix}", data=bytes(data), operations=tuple(operations)
    )
