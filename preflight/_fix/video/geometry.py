"""The picture's geometry for the video planner: the size the service takes, the crop or
pad of a picture too wide for any size, the ``--reframe`` close-up that follows the face,
and the turn of a rotated picture.

Pure functions of sizes and face positions (no file is read): the planner (``plan``) picks
which of them a video needs, from its findings.
"""

from __future__ import annotations

import itertools
import math

from ... import limits
from ..._probe.faces.scan import VideoFaceScan
from ..._rules.thresholds import FaceThresholds
from ..model import Action

#: ``--reframe``: the close-up puts the face at this share of the picture's height (a
#: head-and-shoulders shot), or more when the project's thresholds ask for more (the face's
#: ``min_share``, or the ``min_px`` of a picture scaled to the 640 px the service needs
#: at least), with this margin, up to the tightest head shot...
REFRAME_FACE_SHARE = 0.3
REFRAME_MARGIN = 1.2
REFRAME_MAX_FACE_SHARE = 0.6
#: ...but never crops tighter than this many pixels high: scaled back up to 640, a
#: tighter crop would be more blur than face.
REFRAME_MIN_HEIGHT = 240
#: Face positions are smoothed over this many samples (about 1.5 s) so the crop glides.
REFRAME_SMOOTHING = 3


def _even(value: float, up: bool) -> int:
    """The nearest even integer at or above (``up``) or at or below ``value``."""
    return 2 * (math.ceil(value / 2) if up else math.floor(value / 2))


def fitted_size(width: int, height: int) -> tuple[int, int] | None:
    """The size nearest ``width`` x ``height`` (same aspect) with every side in
    640-2048 px, even; None when the aspect is too wide for any (above 3.2)."""
    short, long = min(width, height), max(width, height)
    if (
        short >= limits.VIDEO_MIN_SIDE
        and long <= limits.VIDEO_MAX_SIDE
        and width % 2 == 0
        and height % 2 == 0
    ):
        return width, height
    if long / short > limits.VIDEO_MAX_SIDE / limits.VIDEO_MIN_SIDE:
        return None
    scale = 1.0
    if short < limits.VIDEO_MIN_SIDE:
        scale = limits.VIDEO_MIN_SIDE / short
    elif long > limits.VIDEO_MAX_SIDE:
        scale = limits.VIDEO_MAX_SIDE / long
    new_short = max(limits.VIDEO_MIN_SIDE, _even(short * scale, up=True))
    new_long = min(limits.VIDEO_MAX_SIDE, 2 * round(long * scale / 2))
    new_long = max(new_long, new_short)
    return (new_long, new_short) if width >= height else (new_short, new_long)


def _target_face_box(scan: VideoFaceScan | None) -> tuple[float, float, float, float] | None:
    """The target face's box (relative x, y, w, h) averaged over the samples it is in."""
    if scan is None:
        return None
    boxes = [s.target_face.box for s in scan.samples if s.target_face is not None]
    if not boxes:
        return None
    n = len(boxes)
    return (
        sum(b.x for b in boxes) / n,
        sum(b.y for b in boxes) / n,
        sum(b.width for b in boxes) / n,
        sum(b.height for b in boxes) / n,
    )


def crop_or_pad(
    width: int, height: int, scan: VideoFaceScan | None
) -> tuple[tuple[str, str], Action, int, int]:
    """A picture too wide (or tall) for any scale: crop to 3.2:1 around the target face, or
    pad to 3.2:1 when no face is known."""
    ratio = limits.VIDEO_MAX_SIDE / limits.VIDEO_MIN_SIDE
    face = _target_face_box(scan)
    wide = width >= height
    if face is not None:
        if wide:
            # The kept side first: an odd one loses a row, and the other is cut to match it
            # (from the odd side, 601 -> 1922x600, still over 3.2:1).
            crop_h = _even(height, up=False)
            crop_w = _even(crop_h * ratio, up=False)
            centre = (face[0] + face[2] / 2) * width
            x = int(min(max(0, centre - crop_w / 2), width - crop_w)) // 2 * 2
            y = 0
        else:
            crop_w = _even(width, up=False)
            crop_h = _even(crop_w * ratio, up=False)
            centre = (face[1] + face[3] / 2) * height
            y = int(min(max(0, centre - crop_h / 2), height - crop_h)) // 2 * 2
            x = 0
        return (
            ("crop", f"{crop_w}:{crop_h}:{x}:{y}"),
            Action(
                "crop", f"{width}x{height} -> {crop_w}x{crop_h} around the face", ("InvalidFile.Resolution",)
            ),
            crop_w,
            crop_h,
        )
    if wide:
        pad_w, pad_h = width, _even(math.ceil(width / ratio), up=True)
    else:
        pad_w, pad_h = _even(math.ceil(height / ratio), up=True), height
    x, y = (pad_w - width) // 2 // 2 * 2, (pad_h - height) // 2 // 2 * 2
    return (
        ("pad", f"{pad_w}:{pad_h}:{x}:{y}:black"),
        Action(
            "pad",
            f"{width}x{height} -> {pad_w}x{pad_h} (black bars; no face known to crop around)",
            ("InvalidFile.Resolution",),
        ),
        pad_w,
        pad_h,
    )


def _face_track(scan: VideoFaceScan) -> list[tuple[float, float, float, float]]:
    """(time, centre x, centre y, height) of the target face, relative, smoothed."""
    seen = [(s.time, s.target_face.box) for s in scan.samples if s.target_face is not None]
    track = []
    for index, (time, _box) in enumerate(seen):
        near = [
            box
            for _, box in seen[max(0, index - REFRAME_SMOOTHING // 2) : index + REFRAME_SMOOTHING // 2 + 1]
        ]
        track.append(
            (
                time,
                sum(b.x + b.width / 2 for b in near) / len(near),
                sum(b.y + b.height / 2 for b in near) / len(near),
                sum(b.height for b in near) / len(near),
            )
        )
    return track


def _piecewise(points: list[tuple[float, float]]) -> str:
    """An FFmpeg expression of ``t``: straight lines through (time, value) points, held
    before the first and after the last."""
    expression = f"{points[-1][1]:.1f}"
    for (t0, v0), (t1, v1) in reversed(list(itertools.pairwise(points))):
        slope = (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0
        expression = f"if(lt(t,{t1:.3f}),{v0:.1f}+({slope:.3f})*(t-{t0:.3f}),{expression})"
    return f"if(lt(t,{points[0][0]:.3f}),{points[0][1]:.1f},{expression})"


def reframe_share(thresholds: FaceThresholds) -> float:
    """The share of the close-up's height ``--reframe`` gives the face: enough for the
    thresholds the output is checked against (a cropped picture is scaled up to at least
    640 px, so the face's pixels follow from its share)."""
    wanted = max(thresholds.min_share, thresholds.min_px / limits.VIDEO_MIN_SIDE) * REFRAME_MARGIN
    return min(REFRAME_MAX_FACE_SHARE, max(REFRAME_FACE_SHARE, wanted))


def reframe_crop(
    width: int, height: int, scan: VideoFaceScan, thresholds: FaceThresholds
) -> tuple[tuple[str, str], Action, int, int] | None:
    """A close-up crop, same aspect as the picture, that follows the target face."""
    track = _face_track(scan)
    if not track:
        return None
    face_px = max(h for *_, h in track) * height
    crop_h = min(height, max(REFRAME_MIN_HEIGHT, face_px / reframe_share(thresholds)))
    crop_h = _even(crop_h, up=False)
    crop_w = min(width, _even(crop_h * width / height, up=False))
    if crop_h >= height - 2:
        return None  # the face is too small to gain anything by cropping
    xs = [(t, min(max(0.0, cx * width - crop_w / 2), width - crop_w)) for t, cx, _, _ in track]
    # Eyes a little above the middle, as a camera operator frames a face.
    ys = [(t, min(max(0.0, cy * height - crop_h * 0.45), height - crop_h)) for t, _, cy, _ in track]
    args = f"w={crop_w}:h={crop_h}:x='{_piecewise(xs)}':y='{_piecewise(ys)}'"
    share = face_px / crop_h
    action = Action(
        "reframe",
        f"close-up {crop_w}x{crop_h} following the face ({len(track)} positions): face "
        f"{face_px:.0f} px = {share:.0%} of the picture instead of {face_px / height:.0%}",
        ("Face.TooSmall",),
    )
    return ("crop", args), action, crop_w, crop_h


def rotate_filters(rotation: int) -> tuple[tuple[str, str], ...]:
    """The filters that turn a picture shown ``rotation`` degrees turned into its pixels."""
    # ``rotation`` is the counter-clockwise display rotation (ffprobe's convention).
    return {
        90: (("transpose", "cclock"),),
        180: (("hflip", ""), ("vflip", "")),
        270: (("transpose", "clock"),),
    }.get(rotation % 360, ())
