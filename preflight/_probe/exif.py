"""The EXIF orientation tag: one table for the probe that reads it, the rules that judge
it and the fixer that applies it.

A camera stores the sensor's pixels as they came and says in tag 0x0112 how to turn them
for display; a server that ignores the tag shows the face on its side.
"""

from __future__ import annotations

from PIL import Image

#: EXIF tag 0x0112, Orientation.
ORIENTATION_TAG = 0x0112
#: Orientation 1 is upright; 2-8 turn or mirror the picture, as the findings say it.
ORIENTATION_MEANING = {
    2: "mirrored",
    3: "rotated 180 degrees",
    4: "flipped vertically",
    5: "mirrored and rotated 90 degrees",
    6: "rotated 90 degrees clockwise",
    7: "mirrored and rotated 270 degrees",
    8: "rotated 90 degrees counter-clockwise",
}
#: The orientations that turn the picture a quarter: its shown width and height swap.
SWAPS_SIDES = frozenset({5, 6, 7, 8})


def read_orientation(image: Image.Image) -> int | None:
    """The image's orientation (1-8) from its header; None when absent or unreadable."""
    if image.format == "PNG" and "exif" not in image.info:
        # Pillow would decode the whole PNG looking for an eXIf chunk after the pixels;
        # cameras write it before them, where the header read has already found it.
        return None
    try:
        value = image.getexif().get(ORIENTATION_TAG)
    except Exception:  # broken EXIF must not hide the image itself
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def shown_size(width: int, height: int, orientation: int | None) -> tuple[int, int]:
    """Width and height as displayed, the orientation applied."""
    return (height, width) if orientation in SWAPS_SIDES else (width, height)
