"""How the image fixer frames a reference photo, in pixels: scaled to the service's 4096 px
side, cut to its aspect limit of 2 around the face, and cropped to one person's head and
shoulders when there are several, worked out by hand for each case."""

from __future__ import annotations

import pytest

from preflight import Box
from preflight._fix.image import aspect_crop, face_crop, fit_within


@pytest.mark.parametrize(
    ("width", "height", "fitted"),
    [
        pytest.param(4096, 100, (4096, 100), id="a 4096 px side is kept"),
        pytest.param(4097, 100, (4096, 100), id="one px over: the short side rounds up"),
        pytest.param(5000, 2500, (4096, 2048), id="an exact short side is not rounded up past it"),
        pytest.param(100, 8192, (50, 4096), id="tall"),
        pytest.param(3, 8193, (2, 4096), id="a sliver rounds up"),
        pytest.param(8192, 1, (4096, 1), id="never under one pixel"),
        pytest.param(1, 8193, (1, 4096), id="never under one pixel, tall"),
        pytest.param(5000, 5000, (4096, 4096), id="square"),
    ],
)
def test_an_image_is_scaled_to_4096_px_a_side_keeping_its_shape(
    width: int, height: int, fitted: tuple[int, int]
) -> None:
    assert fit_within(width, height, 4096) == fitted


@pytest.mark.parametrize(
    ("size", "centre", "crop"),
    [
        pytest.param((3000, 1000), None, (500, 0, 2500, 1000), id="no face: the middle"),
        pytest.param((3000, 1000), (0.1, 0.5), (0, 0, 2000, 1000), id="a face near the left edge"),
        pytest.param((3000, 1000), (0.95, 0.5), (1000, 0, 3000, 1000), id="a face near the right edge"),
        pytest.param((3000, 1000), (0.4, 0.5), (200, 0, 2200, 1000), id="centred on the face"),
        pytest.param((1000, 3000), (0.5, 0.2), (0, 0, 1000, 2000), id="tall, a face near the top"),
        pytest.param((1000, 3000), (0.5, 0.5), (0, 500, 1000, 2500), id="tall, a face in the middle"),
        pytest.param((1000, 3000), None, (0, 500, 1000, 2500), id="tall, no face: the middle"),
        pytest.param((2001, 1000), (0.5, 0.5), (0, 0, 2000, 1000), id="one column over an aspect of 2"),
        pytest.param((2000, 1000), (0.5, 0.5), (0, 0, 2000, 1000), id="an aspect of exactly 2 is whole"),
    ],
)
def test_a_too_wide_or_tall_image_is_cut_to_an_aspect_of_2_around_the_face(
    size: tuple[int, int], centre: tuple[float, float] | None, crop: tuple[int, int, int, int]
) -> None:
    assert aspect_crop(*size, centre) == crop


FACE = Box(0.4, 0.3, 0.1, 0.1)  # 100 px square at (400, 300) in a 1000 px square


@pytest.mark.parametrize(
    ("others", "crop"),
    [
        # A face width each side, 0.7 face heights above, 1.3 below.
        pytest.param([], (300, 230, 600, 530), id="alone: head and shoulders"),
        pytest.param([Box(0.7, 0.3, 0.1, 0.1)], (300, 230, 600, 530), id="a person far right: not reached"),
        pytest.param([Box(0.6, 0.3, 0.1, 0.1)], (300, 230, 550, 530), id="close on the right: halfway"),
        pytest.param([Box(0.65, 0.3, 0.05, 0.1)], (300, 230, 600, 530), id="right, shoulders clear of ours"),
        pytest.param([Box(0.62, 0.3, 0.05, 0.1)], (300, 230, 570, 530), id="right, a shoulder away"),
        pytest.param([Box(0.15, 0.3, 0.1, 0.1)], (325, 230, 600, 530), id="close on the left: halfway"),
        pytest.param([Box(0.2, 0.3, 0.05, 0.1)], (300, 230, 600, 530), id="left, shoulders clear of ours"),
        pytest.param([Box(0.22, 0.3, 0.05, 0.1)], (320, 230, 600, 530), id="left, a shoulder away"),
        pytest.param([Box(0.42, 0.45, 0.1, 0.1)], (300, 230, 600, 425), id="below: halfway down to it"),
        pytest.param([Box(0.42, 0.1, 0.1, 0.1)], (300, 250, 600, 530), id="above: halfway up to it"),
        pytest.param(
            [Box(0.45, 0.32, 0.1, 0.1)], (300, 230, 600, 530), id="overlapping: no cut tells them apart"
        ),
        pytest.param([Box(0.5, 0.3, 0.1, 0.1)], (300, 230, 500, 530), id="touching on the right"),
        pytest.param([Box(0.3, 0.3, 0.1, 0.1)], (400, 230, 600, 530), id="touching on the left"),
        pytest.param([Box(0.42, 0.4, 0.1, 0.1)], (300, 230, 600, 400), id="touching below"),
        pytest.param([Box(0.42, 0.15, 0.1, 0.15)], (300, 300, 600, 530), id="touching above"),
    ],
)
def test_a_crop_keeps_one_persons_head_and_shoulders_and_stops_short_of_the_others(
    others: list[Box], crop: tuple[int, int, int, int]
) -> None:
    assert face_crop(FACE, others, 1000, 1000) == crop


def test_a_crop_squeezed_flat_by_people_above_and_below_is_narrowed_to_an_aspect_of_2() -> None:
    squeezed = face_crop(FACE, [Box(0.42, 0.41, 0.1, 0.1), Box(0.42, 0.19, 0.1, 0.1)], 1000, 1000)
    assert squeezed == (340, 295, 560, 405)  # 220 x 110, around the face's middle


def test_a_crop_squeezed_thin_by_people_each_side_keeps_the_shoulders_under_the_face() -> None:
    squeezed = face_crop(FACE, [Box(0.3, 0.3, 0.09, 0.1), Box(0.51, 0.3, 0.09, 0.1)], 1000, 1000)
    assert squeezed == (395, 265, 505, 485)  # 110 x 220, a quarter face below the middle


def test_a_crop_stops_at_the_picture_edges() -> None:
    assert face_crop(Box(0.0, 0.0, 0.1, 0.1), [], 1000, 1000) == (0, 0, 200, 230)
    assert face_crop(Box(0.9, 0.85, 0.1, 0.1), [], 1000, 1000) == (800, 780, 1000, 1000)


def test_crop_edges_round_outwards_to_whole_pixels() -> None:
    # 333.3 .. 633.3 across, 263.3 .. 563.3 down: floor on the left and top, ceil on the right and bottom.
    assert face_crop(Box(0.4333, 0.3333, 0.1, 0.1), [], 1000, 1000) == (333, 263, 634, 564)
