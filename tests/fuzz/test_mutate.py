"""The mutator: reproducible, and it finds and changes the structure of each kind of file."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import pytest
from PIL import Image, UnidentifiedImageError

from tests.fuzz.mutate import (
    OPERATIONS,
    Field,
    corrupt_field,
    fix_png_crcs,
    load_seeds,
    mutant,
    structure,
)

SEEDS = load_seeds(Path(__file__).resolve().parent / "seeds")


def test_the_same_seed_and_number_give_the_same_bytes_and_others_differ() -> None:
    first = [mutant(SEEDS, 11, n) for n in range(50)]
    again = [mutant(SEEDS, 11, n) for n in range(50)]
    other = [mutant(SEEDS, 12, n) for n in range(50)]

    assert first == again
    assert [m.data for m in first] != [m.data for m in other]
    assert all(m.data != SEEDS[m.seed] and m.operations for m in first)
    assert {m.seed for m in first} == set(SEEDS)  # every kind of seed is drawn


@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        ("video.mp4", ["b'moov'.size", "b'stsz'.samples", "b'avc1'.width", "b'mp4a'.sample_rate"]),
        ("voice.m4a", ["b'mdhd'.timescale", "b'stco'.entries"]),
        ("voice.wav", ["RIFF.size", "b'fmt '+2/16", "b'fmt '+4/32", "b'data'.size"]),
        ("video.avi", ["b'avih'.size", "b'strh'+20/32", "b'idx1'.size"]),
        ("face.webp", ["RIFF.size", "b'VP8 '+6/16"]),
        ("face.png", ["IHDR.width", "IHDR.colour_type", "b'IDAT'.length"]),
        ("face.jpg", ["SOF.height", "SOF.components", "FFDA.length"]),
        ("video.mkv", ["EBML18538067.size", "EBMLB0.value"]),  # the Segment; a PixelWidth
        ("voice.mp3", ["frame0.header", "frame5.header"]),
    ],
)
def test_each_kind_of_seed_has_its_fields_found(seed: str, expected: list[str]) -> None:
    names = {field.name for field in structure(seed, SEEDS[seed])}
    assert set(expected) <= names


def test_mp4_fields_point_at_the_numbers_they_name() -> None:
    data = SEEDS["video.mp4"]
    fields = {f.name: f for f in structure("video.mp4", data)}
    moov = fields["b'moov'.type"]
    assert data[moov.offset : moov.offset + 4] == b"moov"
    width = fields["b'avc1'.width"]
    assert struct.unpack_from(">H", data, width.offset)[0] == 128


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_changes_every_seed(operation: str) -> None:
    apply, _ = OPERATIONS[operation]
    for name, data in SEEDS.items():
        changed = bytearray(data)
        rng = random.Random(f"{operation}:{name}")
        for _ in range(5):  # a random change may happen to write what was there
            if not changed:
                break  # truncated to nothing
            description = apply(changed, rng, structure(name, bytes(changed)))
            assert description
        assert bytes(changed) != data, (operation, name)


def test_a_corrupted_field_keeps_its_width_and_byte_order() -> None:
    data = bytearray(b"\x00" * 8)
    field = Field(2, 4, False, "x.size")
    for seed in range(30):
        corrupt_field(data, random.Random(seed), [field])
        assert len(data) == 8 and data[:2] == b"\x00\x00" and data[6:] == b"\x00\x00"


def test_png_crcs_are_fixed_so_that_a_changed_header_reaches_the_decoder() -> None:
    data = bytearray(SEEDS["face.png"])
    ihdr = {f.name: f for f in structure("face.png", bytes(data))}["IHDR.width"]
    struct.pack_into(">I", data, ihdr.offset, 47)  # 48 px wide: now 47
    with pytest.raises(UnidentifiedImageError):  # Pillow checks IHDR's CRC
        Image.open(io.BytesIO(bytes(data)))
    with Image.open(io.BytesIO(fix_png_crcs(bytes(data)))) as image:
        assert image.size == (47, 48)
