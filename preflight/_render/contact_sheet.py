"""A contact sheet: the sampled frames of a video on one PNG, faces boxed.

Green marks the face the service will sync, yellow other faces, orange a target turned
away or cut off; a red frame and "no face" mark samples without any face. With a
reference image, its face comes first, boxed in blue, with whether its person is in the
video and the embedding distance.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .._atomic import atomic_output
from .._models import FileReport, Severity
from .._probe.faces.engine import Box, Face, RGBImage
from .._probe.faces.match import same_person
from .._probe.faces.scan import FaceSample, ImageFaceScan, VideoFaceScan
from .._rules.faces import closest_match, is_cut_off, is_turned, people
from .._rules.thresholds import FaceThresholds
from .._rules.words import clock

_DEFAULT_THRESHOLDS = FaceThresholds()
_TILE = 240
_COLUMNS = 6
_LABEL = 22
_GAP = 6
_HEADER = 58
_BACKGROUND = (24, 26, 30)
_TEXT = (230, 230, 230)
_DIM = (150, 150, 150)
_TARGET = (60, 220, 90)
_OTHER = (240, 200, 40)
_TROUBLE = (255, 140, 0)
_NO_FACE = (230, 50, 50)
_REFERENCE = (70, 150, 255)


def _tile_image(thumbnail: RGBImage | None) -> Image.Image:
    if thumbnail is None:
        return Image.new("RGB", (_TILE, _TILE - _LABEL), _BACKGROUND)
    image = Image.fromarray(thumbnail)
    image.thumbnail((_TILE, _TILE - _LABEL), Image.Resampling.BILINEAR)
    return image


def _draw_box(
    draw: ImageDraw.ImageDraw,
    box: Box,
    origin: tuple[int, int],
    size: tuple[int, int],
    colour: tuple[int, int, int],
    width: int,
) -> None:
    x0, y0 = origin
    w, h = size
    left, top = x0 + box.x * w, y0 + box.y * h
    right, bottom = x0 + box.right * w, y0 + box.bottom * h
    # Clip to the picture so a cut-off face stays visible as a box touching the edge.
    left, right = max(x0, left), min(x0 + w - 1, right)
    top, bottom = max(y0, top), min(y0 + h - 1, bottom)
    if right > left and bottom > top:
        draw.rectangle((left, top, right, bottom), outline=colour, width=width)


def _sample_tile(
    sample: FaceSample, thresholds: FaceThresholds
) -> tuple[Image.Image, str, tuple[int, int, int]]:
    picture = _tile_image(sample.thumbnail)
    draw = ImageDraw.Draw(picture)
    for index, face in enumerate(sample.faces):
        if index == sample.target:
            continue
        _draw_box(draw, face.box, (0, 0), picture.size, _OTHER, 2)
    target = sample.target_face
    label = clock(sample.time)
    colour = _TEXT
    if target is not None:
        trouble = is_turned(target, thresholds) or is_cut_off(target)
        _draw_box(draw, target.box, (0, 0), picture.size, _TROUBLE if trouble else _TARGET, 3)
        if target.pose is not None:
            label += f"  yaw {target.pose.yaw:+.0f}  pitch {target.pose.pitch:+.0f}"
        if trouble:
            colour = _TROUBLE
    elif sample.faces:
        label += "  target not seen"
        colour = _OTHER
    else:
        label += "  no face"
        colour = _NO_FACE
        draw.rectangle((0, 0, picture.width - 1, picture.height - 1), outline=_NO_FACE, width=4)
    return picture, label, colour


def _reference_tile(
    ref: ImageFaceScan, video: VideoFaceScan, thresholds: FaceThresholds
) -> tuple[Image.Image, str, tuple[int, int, int]]:
    picture = _tile_image(ref.thumbnail)
    draw = ImageDraw.Draw(picture)
    for face in ref.faces:
        _draw_box(draw, face.box, (0, 0), picture.size, _REFERENCE, 3)
    label = "reference"
    persons = people(ref.faces, thresholds)
    if len(persons) == 1:
        gap = _closest_distance(persons[0], video)
        if gap is not None:
            label += f"  {'same person' if same_person(gap) else 'not in video'} ({gap:.2f})"
    else:
        label += f"  {len(persons)} faces"
    return picture, label, _REFERENCE


def _closest_distance(reference: Face, video: VideoFaceScan) -> float | None:
    found = closest_match(reference, video.samples) if reference.descriptor is not None else None
    return found[0] if found is not None else None


def render_contact_sheet(
    report: FileReport, ref: FileReport | None = None, *, thresholds: FaceThresholds = _DEFAULT_THRESHOLDS
) -> Image.Image:
    """The contact sheet of a checked video whose scan kept thumbnails (a target counts as
    turned by the ``thresholds`` it was checked with)."""
    scan = report.faces
    if not isinstance(scan, VideoFaceScan):
        raise ValueError(f"{report.path}: no face scan to draw")
    tiles = []
    if ref is not None and isinstance(ref.faces, ImageFaceScan) and ref.faces.thumbnail is not None:
        tiles.append(_reference_tile(ref.faces, scan, thresholds))
    tiles.extend(_sample_tile(s, thresholds) for s in scan.samples if s.thumbnail is not None)

    font = ImageFont.load_default(size=13)
    title_font = ImageFont.load_default(size=16)
    columns = max(1, min(_COLUMNS, len(tiles)))
    rows = max(1, -(-len(tiles) // columns))
    width = columns * (_TILE + _GAP) + _GAP
    height = _HEADER + rows * (_TILE + _GAP) + _GAP
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((_GAP, 8), os.path.basename(report.path), fill=_TEXT, font=title_font)
    codes = sorted({f.code for f in report.findings if f.severity is not Severity.INFO})
    summary = f"{scan.width}x{scan.height}, {len(scan.samples)} frames sampled every {scan.step:g} s.  " + (
        "Findings: " + ", ".join(codes) if codes else "No findings."
    )
    draw.text((_GAP, 32), summary, fill=_DIM, font=font)
    for number, (picture, label, colour) in enumerate(tiles):
        row, column = divmod(number, columns)
        x = _GAP + column * (_TILE + _GAP)
        y = _HEADER + row * (_TILE + _GAP)
        sheet.paste(picture, (x + (_TILE - picture.width) // 2, y + (_TILE - _LABEL - picture.height) // 2))
        draw.text((x + 2, y + _TILE - _LABEL + 4), label, fill=colour, font=font)
    return sheet


def write_contact_sheet(
    report: FileReport,
    path: str | os.PathLike[str],
    ref: FileReport | None = None,
    *,
    thresholds: FaceThresholds = _DEFAULT_THRESHOLDS,
) -> Path:
    """Render and write the sheet as PNG, atomically (never half-written under its name)."""
    target = Path(path)
    sheet = render_contact_sheet(report, ref, thresholds=thresholds)
    with atomic_output(target) as temporary, open(temporary, "wb") as stream:
        sheet.save(stream, format="PNG", optimize=False)
    return target


def render_image_faces(scan: ImageFaceScan) -> Image.Image | None:
    """A checked image's thumbnail with its faces boxed (None when no thumbnail was kept)."""
    if scan.thumbnail is None:
        return None
    picture = Image.fromarray(scan.thumbnail)
    draw = ImageDraw.Draw(picture)
    for face in scan.faces:
        _draw_box(draw, face.box, (0, 0), picture.size, _REFERENCE, 3)
    return picture
