"""Rules on a reference image's picture: its size and shape, EXIF orientation, animation
and colour mode.

Each check takes the probe's facts and gives its findings; ``container.image_findings``
runs them after the checks on the file as a whole (opened, format, size).
"""

from __future__ import annotations

from .. import limits
from .._models import Finding, ImageInfo
from .._probe.container import MAX_DECODE_PIXELS, too_many_pixels
from .._probe.exif import ORIENTATION_MEANING
from .finding import finding
from .words import megapixels


def image_size_findings(info: ImageInfo) -> list[Finding]:
    """``InvalidFile.ImageSize``: a side too long or an aspect ratio too wide."""
    longest, shortest = max(info.width, info.height), min(info.width, info.height)
    aspect = longest / shortest if shortest else float("inf")
    problems = []
    # Beyond the pixels preflight decodes, the fixer cannot downscale it either.
    undecodable = too_many_pixels(info.width, info.height)
    if longest > limits.IMAGE_MAX_SIDE:
        how = (
            f"{megapixels(info.width * info.height)}, more than the {megapixels(MAX_DECODE_PIXELS)} "
            "preflight decodes: scale it down in an image editor"
            if undecodable
            else "preflight fix downscales it"
        )
        problems.append(f"its longest side is {longest} px (at most {limits.IMAGE_MAX_SIDE}; {how})")
    if aspect > limits.IMAGE_MAX_ASPECT:
        problems.append(
            f"its aspect ratio is {aspect:.2f} (at most {limits.IMAGE_MAX_ASPECT:g}; "
            "preflight fix crops around the face)"
        )
    if not problems:
        return []
    return [
        finding(
            "InvalidFile.ImageSize",
            f"Image is {info.width}x{info.height}: " + " and ".join(problems) + ".",
            fixable=shortest > 0 and not undecodable,
            width=info.width,
            height=info.height,
            aspect=round(aspect, 3) if shortest else None,
            max_side=limits.IMAGE_MAX_SIDE,
            max_aspect=limits.IMAGE_MAX_ASPECT,
        )
    ]


def orientation_findings(info: ImageInfo) -> list[Finding]:
    """``Image.Rotated``: an EXIF orientation that turns or mirrors the picture."""
    if info.orientation is None or info.orientation == 1:
        return []
    return [
        finding(
            "Image.Rotated",
            f"EXIF orientation {info.orientation} ({ORIENTATION_MEANING[info.orientation]}): "
            f"stored {info.stored_width}x{info.stored_height}, shown {info.width}x{info.height}. "
            "A server that ignores the tag sees the face turned; preflight fix applies it.",
            fixable=True,
            orientation=info.orientation,
        )
    ]


def animation_findings(info: ImageInfo) -> list[Finding]:
    """``Image.Animated``: only one frame can be the reference."""
    if info.frames <= 1:
        return []
    return [
        finding(
            "Image.Animated",
            f"The image is animated ({info.frames} frames); only one can be the reference. "
            "preflight fix keeps the first frame.",
            fixable=True,
            frames=info.frames,
        )
    ]


def colour_mode_findings(info: ImageInfo) -> list[Finding]:
    """``Image.ColorMode``: a colour mode face detectors may misread."""
    if info.mode in (None, "RGB", "RGBA", "L", "LA", "P", "1"):
        return []
    return [
        finding(
            "Image.ColorMode",
            f"Colour mode is {info.mode}; face detectors expect 8-bit RGB and may misread it. "
            "preflight fix converts it to RGB.",
            fixable=True,
            mode=info.mode,
        )
    ]
