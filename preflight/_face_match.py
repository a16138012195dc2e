"""Is the reference face the video's face? A match score from what the engine gives.

No face-recognition network ships offline. The face is cut out upright, 64 px square,
placed by its eyes (so that a talking mouth does not warp the cut), equalised, and
described by local binary pattern histograms on a 4 x 4 grid (the LBPH recogniser's
descriptor: robust to lighting). The distance is the chi-square distance between the
histograms; a reference is compared with every face of every sampled frame and the
closest one counts.

Measured on ``shared/media`` (6 real clips, 5 photos): frames of a clip against the
clip's other frames (the service's page suggests a screenshot as reference), 29 pairs,
came within 0.18-0.31 (median 0.22); other people, 181 pairs, 0.37-0.84 (median 0.54).
Several crop sizes, grids, radii and alignments were tried; this one separated best
(largest ratio between the closest stranger and the farthest same face). Mesh-landmark
geometry was tried too and did not separate people, so it is not used.
``CLEAR_MISMATCH`` sits in the gap. A mismatch is advice, never an error: this is no
face-recognition network, and the service's own matcher has its own threshold
(``query_face_threshold``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

_CROP = 64
# Where the eye centres land in the crop.
_CANON_EYES = np.array([[19.0, 24.0], [45.0, 24.0]])
_GRID = 4
#: Distances at or below this score 1 (the same face, as seen in frames of one clip)...
SURE_MATCH = 0.23
#: ...at or above this, 0; between, linearly. A distance from here up is a clear mismatch.
CLEAR_MISMATCH = 0.34


@dataclass(frozen=True)
class FaceDescriptor:
    lbp: npt.NDArray[np.float64]


def _uniform_table() -> npt.NDArray[np.uint8]:
    """Map each 8-bit pattern to one of 58 uniform bins, or bin 58 for the rest."""
    table = np.full(256, 58, dtype=np.uint8)
    next_bin = 0
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        if sum(bits[i] != bits[(i + 1) % 8] for i in range(8)) <= 2:
            table[code] = next_bin
            next_bin += 1
    return table


_UNIFORM = _uniform_table()
_NEIGHBOURS = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))


def _lbp_histograms(gray: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    h, w = gray.shape
    centre = gray[1:-1, 1:-1]
    codes = np.zeros(centre.shape, dtype=np.uint8)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        codes |= (gray[dy : dy + h - 2, dx : dx + w - 2] >= centre).astype(np.uint8) << bit
    bins = _UNIFORM[codes]
    cell_h, cell_w = bins.shape[0] // _GRID, bins.shape[1] // _GRID
    hists = []
    for gy in range(_GRID):
        for gx in range(_GRID):
            cell = bins[gy * cell_h : (gy + 1) * cell_h, gx * cell_w : (gx + 1) * cell_w]
            hist = np.bincount(cell.ravel(), minlength=59).astype(np.float64)
            hists.append(hist / max(1.0, hist.sum()))
    return np.concatenate(hists)


def _with_perpendicular(eyes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Two eye points plus a third, square to them: three points fix a similarity transform."""
    across = eyes[1] - eyes[0]
    return np.vstack([eyes, eyes[0] + np.array([-across[1], across[0]])])


def _aligned_crop(rgb: npt.NDArray[np.uint8], eyes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Grey face crop with the eyes at fixed places, histogram-equalised."""
    # Affine map from crop pixels to picture pixels (what Pillow's transform wants).
    src = np.hstack([_with_perpendicular(_CANON_EYES), np.ones((3, 1))])
    coeffs = np.linalg.solve(src, _with_perpendicular(eyes))  # 3x2
    a, d = coeffs[0]
    b, e = coeffs[1]
    c, f = coeffs[2]
    image = Image.fromarray(rgb).convert("L")
    crop = image.transform(
        (_CROP, _CROP), Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BILINEAR
    )
    values = np.asarray(crop, dtype=np.float64)
    ranks = np.argsort(np.argsort(values.ravel(), kind="stable"), kind="stable")
    return (ranks / max(1, values.size - 1)).reshape(values.shape)


def describe(rgb: npt.NDArray[np.uint8], landmarks: npt.NDArray[Any] | None) -> FaceDescriptor | None:
    """A descriptor of the face whose mesh landmarks (relative to ``rgb``) are given."""
    if landmarks is None or len(landmarks) < 468:
        return None
    height, width = rgb.shape[:2]
    pixels = np.asarray(landmarks, dtype=np.float64)[:, :2] * np.array([width, height])
    right_eye = (pixels[33] + pixels[133]) / 2
    left_eye = (pixels[263] + pixels[362]) / 2
    if np.linalg.norm(left_eye - right_eye) < 4:
        return None  # too few pixels to describe
    return FaceDescriptor(lbp=_lbp_histograms(_aligned_crop(rgb, np.vstack([right_eye, left_eye]))))


def distance(a: FaceDescriptor, b: FaceDescriptor) -> float:
    """Chi-square distance between the two faces' histograms: 0 identical, 2 disjoint."""
    total = a.lbp + b.lbp
    mask = total > 0
    return float(np.sum((a.lbp[mask] - b.lbp[mask]) ** 2 / total[mask]) / _GRID**2)


def match_score(closest_distance: float) -> float:
    """0 (clearly different faces) .. 1 (the same face as far as this cue can tell)."""
    span = CLEAR_MISMATCH - SURE_MATCH
    return float(min(1.0, max(0.0, (CLEAR_MISMATCH - closest_distance) / span)))
