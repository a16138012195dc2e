"""Fixing a reference image: plan the least change from its check, then write it with Pillow.

``plan_image`` reads a ``check_image`` report and says what to do (``ImagePlan``);
``write_image`` does it; ``make_reference`` cuts a reference image of the target face out of
a video's first frame (``--make-ref``). A file whose pixels are fine keeps its bytes (copied,
or renamed when only its extension is wrong); otherwise the upright first frame is cropped,
downscaled and encoded as JPEG, or PNG when it has transparency (a JPEG or PNG source keeps
its format), under the service's byte limit.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageOps

from .. import limits
from .._exceptions import UsageError
from .._local_file import local_file
from .._models import FileReport, ImageInfo
from .._probe.container import MAX_DECODE_PIXELS, probe_media, too_many_pixels
from .._probe.exif import ORIENTATION_MEANING, ORIENTATION_TAG
from .._probe.faces.engine import Box, RGBImage
from .._probe.faces.scan import ImageFaceScan, VideoFaceScan
from .._probe.frames import _upright
from .._probe.sniff import IMAGE_EXT_FORMAT
from .._rules.faces import people
from .._rules.thresholds import FaceThresholds
from .._rules.words import mb
from .model import Action, FixOptions, finding_codes

#: JPEG quality of a re-encode: visually lossless for photos. When the file is too large
#: the quality steps down this far, then the picture is downscaled instead (a smaller
#: clean face matches better than a large blocky one).
QUALITY = 92
_QUALITY_STEPS = (QUALITY, 85, 80)
#: Head-and-shoulders margins around a face box (BlazeFace's box runs from the brows to
#: the chin, about three quarters of the head): face widths on each side, face heights
#: above (forehead and hair) and below (neck and shoulders).
MARGIN_SIDE = 1.0
MARGIN_TOP = 0.7
MARGIN_BOTTOM = 1.3
#: Another person's shoulders reach about this many of their face widths beside their face;
#: a crop for one person stops short of them, though never closer to the target face than
#: halfway to the other face.
SHOULDER = 1.0

#: Rows of a 16-bit or float picture scaled to 8 bits at a time (a few MB of floats),
#: so the conversion costs no more than the 8-bit result.
_STRIP_ROWS = 256

_DEFAULT_THRESHOLDS = FaceThresholds()
_EXTENSION = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp"}
#: Findings answered by new pixels (the others need at most a new extension).
_NEEDS_PIXELS = frozenset(
    {"Image.Rotated", "Image.Animated", "Image.ColorMode", "InvalidFile.ImageSize", "InvalidFile.Size"}
)

#: Left, top, right, bottom in pixels.
Crop = tuple[int, int, int, int]


@dataclass(frozen=True)
class ImagePlan:
    """What to do to one reference image. No actions: it passes, copy it unchanged."""

    actions: tuple[Action, ...]
    #: Extension of the output (the input's own when its bytes are kept as they are).
    extension: str
    #: Why the image cannot be fixed (then there are no actions and nothing to write).
    unfixable: str | None = None
    #: Pillow format to encode; None keeps the source's bytes (a copy, or a rename).
    format: str | None = None
    #: Region to keep, in pixels of the upright picture (EXIF orientation applied).
    crop: Crop | None = None
    #: Width and height after the crop and any downscale.
    size: tuple[int, int] | None = None
    #: Keep the transparency (PNG only).
    alpha: bool = False


def _because(present: set[str], *codes: str) -> tuple[str, ...]:
    return tuple(c for c in codes if c in present)


def _unfixable(path: str, reason: str) -> ImagePlan:
    return ImagePlan((), Path(path).suffix, unfixable=reason)


def plan_image(
    report: FileReport, options: FixOptions, *, thresholds: FaceThresholds = _DEFAULT_THRESHOLDS
) -> ImagePlan:
    """The least change that makes a checked reference image pass, judged by the
    ``thresholds`` it was checked with (which faces count as people). ``options`` has
    nothing for images yet; it is taken for symmetry with the other planners."""
    del options
    info = report.media
    if not isinstance(info, ImageInfo) or not info.opened:
        reason = info.error if isinstance(info, ImageInfo) and info.error else "not readable as an image"
        return _unfixable(report.path, f"cannot open the image: {reason}")
    if too_many_pixels(info.stored_width, info.stored_height):
        # Refused before a single pixel is decoded (the check decodes none of it either).
        return _unfixable(report.path, _too_many_pixels(info.stored_width, info.stored_height))
    present = finding_codes(report)
    if "InvalidFile.Openerror" in present:
        finding = next(f for f in report.findings if f.code == "InvalidFile.Openerror")
        return _unfixable(report.path, finding.message)
    content = next((f for f in report.findings if f.code == "InvalidFile.Content"), None)
    scan = report.faces if isinstance(report.faces, ImageFaceScan) else None
    persons = people(scan.faces, thresholds) if scan is not None else []
    if content is not None and not persons:
        return _unfixable(
            report.path,
            "no face in the image, and cropping cannot add one: use a photo of the person to sync",
        )
    several = content is not None and len(persons) > 1

    ext = Path(report.path).suffix
    # Anything that needs new pixels? If not, the bytes stay (under the right extension).
    repaint = bool(present & _NEEDS_PIXELS) or several or info.format not in limits.IMAGE_FORMATS
    if not repaint:
        right_ext = ext if IMAGE_EXT_FORMAT.get(ext.lower()) == info.format else _EXTENSION[str(info.format)]
        if right_ext == ext:
            return ImagePlan((), ext)
        because = _because(present, "InvalidFile.Format", "Image.ExtensionMismatch")
        detail = f"{info.format} content named {ext or '(no extension)'}: same bytes, written as {right_ext}"
        return ImagePlan((Action("rename", detail, because),), right_ext)

    actions: list[Action] = []
    width, height = info.width, info.height
    if info.orientation not in (None, 1):
        actions.append(
            Action(
                "orient",
                f"EXIF orientation {info.orientation} applied: stored {info.stored_width}x"
                f"{info.stored_height}, now upright {width}x{height}",
                _because(present, "Image.Rotated"),
            )
        )
    if info.frames > 1:
        actions.append(
            Action(
                "first-frame", f"kept the first of {info.frames} frames", _because(present, "Image.Animated")
            )
        )
    try:
        alpha = info.format != "JPEG" and _has_alpha(report.path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return _unfixable(report.path, f"its pixels cannot be decoded ({exc or type(exc).__name__})")
    fmt = _output_format(info, alpha, "InvalidFile.Size" in present)
    if info.mode not in ("RGB", "RGBA") and "Image.ColorMode" in present:
        actions.append(Action("to-rgb", f"{info.mode} -> {'RGBA' if alpha else 'RGB'}", ("Image.ColorMode",)))

    crop, cropped = _crop(scan, len(persons) if several else 0, present, width, height)
    actions += cropped
    cw, ch = (crop[2] - crop[0], crop[3] - crop[1]) if crop else (width, height)
    size = fit_within(cw, ch, limits.IMAGE_MAX_SIDE)
    if size != (cw, ch):
        actions.append(
            Action(
                "downscale",
                f"{cw}x{ch} -> {size[0]}x{size[1]} (Lanczos)",
                _because(present, "InvalidFile.ImageSize"),
            )
        )
    out_ext = ext if IMAGE_EXT_FORMAT.get(ext.lower()) == fmt else _EXTENSION[fmt]
    actions += _format_steps(info, fmt, alpha, (ext, out_ext), present)
    return ImagePlan(tuple(actions), out_ext, format=fmt, crop=crop, size=size, alpha=alpha)


def _crop(
    scan: ImageFaceScan | None, people_count: int, present: set[str], width: int, height: int
) -> tuple[Crop | None, list[Action]]:
    """The region kept: around the largest face when ``people_count`` people show (0: not
    asked), else a crop to an aspect the service takes when the picture is too long."""
    actions: list[Action] = []
    crop: Crop | None = None
    if people_count and scan is not None:
        target, others = scan.faces[0], scan.faces[1:]
        crop = face_crop(target.box, [o.box for o in others], width, height)
        left, top, right, bottom = crop
        actions.append(
            Action(
                "crop-face",
                f"{people_count} people: kept the largest face, "
                f"{width}x{height} -> {right - left}x{bottom - top} at ({left}, {top})",
                _because(present, "InvalidFile.Content", "InvalidFile.ImageSize"),
            )
        )
    elif max(width, height) / max(1, min(width, height)) > limits.IMAGE_MAX_ASPECT:
        centre = scan.faces[0].box.centre if scan is not None and scan.faces else None
        crop = aspect_crop(width, height, centre)
        left, top, right, bottom = crop
        where = "around the face" if centre is not None else "centred (no face known)"
        actions.append(
            Action(
                "crop",
                f"{width}x{height} -> {right - left}x{bottom - top}, aspect "
                f"{max(width, height) / min(width, height):.2f} -> "
                f"{max(right - left, bottom - top) / min(right - left, bottom - top):.2f}, {where}",
                _because(present, "InvalidFile.ImageSize"),
            )
        )
    return crop, actions


def _format_steps(
    info: ImageInfo, fmt: str, alpha: bool, extensions: tuple[str, str], present: set[str]
) -> list[Action]:
    """The format written (``fmt``) and its extension (``extensions``: the input's, the
    output's), and the re-encode of a file too large to send."""
    ext, out_ext = extensions
    actions: list[Action] = []
    if fmt != info.format:
        why = ""
        if alpha:
            why = " (it has transparency)"
        elif info.format == "PNG":
            why = " (opaque: JPEG is far smaller)"
        actions.append(
            Action(
                "convert",
                f"{info.format} -> {fmt}{why}",
                _because(present, "InvalidFile.Format", "Image.ExtensionMismatch"),
            )
        )
    elif out_ext != ext:
        actions.append(
            Action(
                "rename",
                f"{fmt} content: written as {out_ext}, not {ext or '(no extension)'}",
                _because(present, "InvalidFile.Format", "Image.ExtensionMismatch"),
            )
        )
    if "InvalidFile.Size" in present:
        how = (
            f"JPEG quality {QUALITY} stepping down to {_QUALITY_STEPS[-1]}"
            if fmt == "JPEG"
            else "PNG keeps its transparency"
        )
        actions.append(
            Action(
                "reencode",
                f"{mb(info.size)} -> under {mb(limits.IMAGE_MAX_BYTES)}: {how}, then smaller if needed",
                ("InvalidFile.Size",),
            )
        )
    return actions


def _too_many_pixels(width: int, height: int) -> str:
    return (
        f"its pixels are not decoded: {width}x{height} is {width * height / 1e6:.1f} million pixels, "
        f"more than the {MAX_DECODE_PIXELS / 1e6:.1f} million preflight decodes; scale it down to at "
        f"most {limits.IMAGE_MAX_SIDE} px a side in an image editor"
    )


def _open_bounded(path: str) -> Image.Image:
    """The image opened (header only), refused before decoding when it has more pixels
    than preflight decodes: the file may have changed since it was checked."""
    image = Image.open(path)
    if too_many_pixels(*image.size):
        image.close()
        raise ValueError(_too_many_pixels(*image.size))
    return image


def _has_alpha(path: str) -> bool:
    """Does any pixel show through? (A fully opaque alpha band does not count.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _open_bounded(path) as image:
            if "A" not in image.mode and "a" not in image.mode and "transparency" not in image.info:
                return False
            # The alpha band alone where there is one: a quarter of an RGBA copy.
            alpha = (
                image.getchannel("A")
                if image.mode in ("RGBA", "LA")
                else image.convert("RGBA").getchannel("A")
            )
            low, _high = alpha.getextrema()
            return bool(low < 255)


def _output_format(info: ImageInfo, alpha: bool, too_large: bool) -> str:
    """JPEG or PNG: the source's own when it is one of them, PNG for transparency, and JPEG
    for an opaque PNG too large to send."""
    if info.format == "JPEG":
        return "JPEG"
    if alpha:
        return "PNG"
    if info.format == "PNG" and not too_large:
        return "PNG"
    return "JPEG"


# --- Geometry ----------------------------------------------------------------------------
def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Scale down to ``max_side`` keeping the aspect; the short side rounds up, so the
    aspect ratio never grows."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    if width >= height:
        return max_side, min(max_side, max(1, math.ceil(height * scale - 1e-9)))
    return min(max_side, max(1, math.ceil(width * scale - 1e-9))), max_side


def _window(lo: float, hi: float, length: float, centre: float) -> tuple[float, float]:
    """A span of ``length`` inside [lo, hi], centred on ``centre`` as far as it fits."""
    start = min(max(lo, centre - length / 2), hi - length)
    return start, start + length


def aspect_crop(width: int, height: int, centre: tuple[float, float] | None) -> Crop:
    """Cut the long side to ``IMAGE_MAX_ASPECT`` times the short one, keeping ``centre``
    (relative to the picture) in the middle as far as it goes; the picture's centre when None."""
    cx, cy = centre if centre is not None else (0.5, 0.5)
    if width >= height:
        keep = min(width, math.floor(height * limits.IMAGE_MAX_ASPECT))
        left, _ = _window(0, width, keep, cx * width)
        x0 = round(left)
        return x0, 0, x0 + keep, height
    keep = min(height, math.floor(width * limits.IMAGE_MAX_ASPECT))
    top, _ = _window(0, height, keep, cy * height)
    y0 = round(top)
    return 0, y0, width, y0 + keep


def face_crop(face: Box, others: Sequence[Box], width: int, height: int) -> Crop:
    """Head and shoulders of ``face`` (relative box), with no other face in the crop and, as
    far as the room allows, none of the others' shoulders; aspect at most IMAGE_MAX_ASPECT."""
    fx0, fy0, fx1, fy1 = face.x * width, face.y * height, face.right * width, face.bottom * height
    fw, fh = fx1 - fx0, fy1 - fy0
    left, right = fx0 - MARGIN_SIDE * fw, fx1 + MARGIN_SIDE * fw
    top, bottom = fy0 - MARGIN_TOP * fh, fy1 + MARGIN_BOTTOM * fh
    for other in others:
        ox0, oy0, ox1, oy1 = other.x * width, other.y * height, other.right * width, other.bottom * height
        reach = SHOULDER * (ox1 - ox0)
        if ox0 >= fx1:  # to the right: their body hangs below their face, so cut beside it
            right = min(right, max(ox0 - reach, (fx1 + ox0) / 2))
        elif ox1 <= fx0:
            left = max(left, min(ox1 + reach, (ox1 + fx0) / 2))
        elif oy0 >= fy1:  # below, overlapping sideways
            bottom = min(bottom, (fy1 + oy0) / 2)
        elif oy1 <= fy0:
            top = max(top, (oy1 + fy0) / 2)
        # Overlapping boxes cannot be told apart by a crop; the check of the output says so.
    x0, y0 = max(0, math.floor(left)), max(0, math.floor(top))
    x1, y1 = min(width, math.ceil(right)), min(height, math.ceil(bottom))
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    if w > limits.IMAGE_MAX_ASPECT * h:
        keep = math.floor(limits.IMAGE_MAX_ASPECT * h)
        start, _ = _window(x0, x1, keep, (fx0 + fx1) / 2)
        x0 = round(start)
        x1 = x0 + keep
    elif h > limits.IMAGE_MAX_ASPECT * w:
        keep = math.floor(limits.IMAGE_MAX_ASPECT * w)
        # A little below the face's middle: the shoulders matter more than the sky.
        start, _ = _window(y0, y1, keep, (fy0 + fy1) / 2 + 0.25 * fh)
        y0 = round(start)
        y1 = y0 + keep
    return x0, y0, x1, y1


# --- Writing -----------------------------------------------------------------------------
def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float grey as 8-bit, scaled from the range their values use (a 12-bit
    sensor's 0-4095 maps to 0-255), not clipped to white as Pillow's own conversion does."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return image
    _low, top_value = image.getextrema()  # one band: (low, high)
    high = float(top_value)  # type: ignore[arg-type]
    if image.mode == "F" and high <= 1.0:
        full = 1.0
    else:
        full = float(2 ** max(8, math.ceil(math.log2(high + 1)))) - 1 if high > 0 else 255.0
    scale = 255.0 / full
    # Scaled a strip at a time: the whole picture as floats is 8 bytes a pixel (a 64
    # million pixel scan took 1.8 GB), the 8-bit result one.
    result = np.empty((image.height, image.width), dtype=np.uint8)
    for top in range(0, image.height, _STRIP_ROWS):
        bottom = min(image.height, top + _STRIP_ROWS)
        strip = np.asarray(image.crop((0, top, image.width, bottom)), dtype=np.float64) * scale
        result[top:bottom] = np.clip(strip, 0, 255).round()
    return Image.fromarray(result)


def _upright_pixels(source: str, alpha: bool) -> tuple[Image.Image, bytes | None, bytes | None]:
    """The first frame, EXIF orientation applied, as RGB(A) or 8-bit grey; its EXIF
    (orientation tag removed) and colour profile when they still apply."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _open_bounded(source) as image:
            image.seek(0)
            exif = image.getexif()
            # exif_transpose copies even an upright picture: turned only when the tag says so.
            turned = exif.get(ORIENTATION_TAG) in ORIENTATION_MEANING
            upright = ImageOps.exif_transpose(image) if turned else image
            icc = image.info.get("icc_profile") if image.mode in ("RGB", "RGBA") else None
            eight = _eight_bit(upright)
            # Grey stays one byte a pixel until it is cut and scaled (``write_image``).
            picture = eight if eight.mode == "L" and not alpha else eight.convert("RGBA" if alpha else "RGB")
    exif.pop(ORIENTATION_TAG, None)
    return picture, (exif.tobytes() if len(exif) else None), icc


def _encode(picture: Image.Image, fmt: str, quality: int, exif: bytes | None, icc: bytes | None) -> bytes:
    buffer = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if exif:
        kwargs["exif"] = exif
    if icc:
        kwargs["icc_profile"] = icc
    if fmt == "JPEG":
        kwargs.update(quality=quality, optimize=True)
    picture.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _within_budget(picture: Image.Image, fmt: str, exif: bytes | None, icc: bytes | None) -> bytes:
    """Encode under IMAGE_MAX_BYTES: JPEG quality steps down first, then the picture shrinks
    (by the square root of the overshoot: bytes follow the pixel count)."""
    qualities = _QUALITY_STEPS if fmt == "JPEG" else (0,)
    data = b""
    for quality in qualities:
        data = _encode(picture, fmt, quality, exif, icc)
        if len(data) <= limits.IMAGE_MAX_BYTES:
            return data
    while len(data) > limits.IMAGE_MAX_BYTES and min(picture.size) > 1:
        scale = min(0.9, 0.95 * math.sqrt(limits.IMAGE_MAX_BYTES / len(data)))
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
        data = _encode(picture, fmt, qualities[-1], exif, icc)
    return data


def write_image(plan: ImagePlan, source: str, target: Path) -> None:
    """Write the fixed image to ``target`` (a temporary name; the format is always given to
    Pillow, never guessed from it). ``source`` is only read.

    Raises ``OSError`` when the pixels cannot be decoded after all: only an image too large
    for the check to have decoded (a side above IMAGE_MAX_SIDE) can get this far damaged."""
    if plan.unfixable is not None:
        raise UsageError(f"cannot write an unfixable image: {plan.unfixable}")
    if plan.format is None:
        shutil.copyfile(source, target)
        return
    picture, exif, icc = _upright_pixels(source, plan.alpha)
    if plan.crop is not None:
        picture = picture.crop(plan.crop)
    if plan.size is not None and plan.size != picture.size:
        picture = picture.resize(plan.size, Image.Resampling.LANCZOS)
    if picture.mode == "L":
        picture = picture.convert("RGB")
    target.write_bytes(_within_budget(picture, plan.format, exif, icc))


# --- A reference image from the video ----------------------------------------------------
def _first_frame(video_path: str) -> tuple[RGBImage, float]:
    """The first decodable frame, upright at full resolution, and its time in seconds."""
    info = probe_media(video_path)
    if not info.video:
        raise UsageError(f"{video_path}: no video stream to cut a reference image from")
    stream_info = info.video[0]
    with av.open(local_file(video_path)) as container:
        stream = container.streams[stream_info.index]
        start = stream.start_time or 0
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            pts = frame.pts if frame.pts is not None else start
            seconds = max(0.0, float((pts - start) * stream.time_base)) if stream.time_base else 0.0
            return _upright(rgb, stream_info.rotation), seconds
    raise UsageError(f"{video_path}: no frame could be decoded")


def make_reference(video_path: str, scan: VideoFaceScan, target: Path) -> tuple[Action, ...]:
    """Cut a head-and-shoulders reference image of the face the service would sync (the
    largest in the first frame) out of the video's first frame, with no other face in it,
    and write it to ``target`` as JPEG. Raises ``UsageError`` when the first frame has no face."""
    first = scan.samples[0] if scan.samples else None
    face = first.target_face if first is not None else None
    if first is None or face is None:
        raise UsageError("no face in the video's first frame to cut a reference image from")
    rgb, seconds = _first_frame(os.fspath(video_path))
    height, width = rgb.shape[:2]
    others = [f.box for f in first.faces if f is not face]
    crop = face_crop(face.box, others, width, height)
    picture = Image.fromarray(rgb).crop(crop)
    picture = picture.resize(fit_within(*picture.size, limits.IMAGE_MAX_SIDE), Image.Resampling.LANCZOS)
    target.write_bytes(_within_budget(picture, "JPEG", None, None))
    because = ("Face.Multiple",) if len(first.faces) > 1 else ()
    return (
        Action(
            "make-ref",
            f"face at {seconds:.1f} s, {picture.width}x{picture.height} px crop at ({crop[0]}, {crop[1]}) "
            f"of the {width}x{height} first frame"
            + (f", {len(others)} other face(s) left out" if others else ""),
            because,
        ),
    )
