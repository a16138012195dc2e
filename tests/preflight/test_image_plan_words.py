"""What `preflight fix` plans for a reference photo, step by step in words: which findings
each step answers, what it keeps, and why a photo cannot be fixed. The checked facts are
given by hand (the image's header and its faces); where the planner looks at the pixels
(transparency), a small real file stands behind them."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from preflight import (
    Action,
    Box,
    Face,
    FaceThresholds,
    FileReport,
    Finding,
    FixOptions,
    ImageFaceScan,
    ImageInfo,
    Pose,
)
from preflight._fix.image import ImagePlan, plan_image
from preflight.codes import CODES

OPTIONS = FixOptions()


def header(
    path: str = "/photos/me.jpg",
    fmt: str | None = "JPEG",
    mode: str | None = "RGB",
    size: tuple[int, int] = (1000, 800),
    orientation: int | None = None,
    frames: int = 1,
    nbytes: int = 200_000,
    error: str | None = None,
) -> ImageInfo:
    width, height = size
    upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return ImageInfo(
        path, nbytes, fmt, mode, width, height, orientation, *upright, frames=frames, error=error
    )


def checked(
    info: ImageInfo | None, *codes: str, faces: tuple[Face, ...] | None = None, path: str = ""
) -> FileReport:
    findings = tuple(Finding(code, CODES[code].severity, f"{code} said", True, {}) for code in codes)
    scan = None
    if faces is not None and info is not None:
        scan = ImageFaceScan(info.width, info.height, faces, "test")
    return FileReport(path or (info.path if info else "/photos/x.jpg"), "ref", findings, info, scan)


def face(x: float = 0.4, y: float = 0.3, width: float = 0.1, height: float = 0.1) -> Face:
    return Face(Box(x, y, width, height), 0.9, Pose(0.0, 0.0, 0.0))


def plan(report: FileReport, thresholds: FaceThresholds | None = None) -> ImagePlan:
    return plan_image(report, OPTIONS, thresholds=thresholds or FaceThresholds())


def steps(made: ImagePlan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(a.name, a.detail, a.because) for a in made.actions]


# --------------------------------------------------------------------------- cannot be fixed
def test_an_image_that_cannot_be_opened_says_why_and_plans_nothing() -> None:
    made = plan(checked(header(error="broken header")))
    assert made == ImagePlan((), ".jpg", unfixable="cannot open the image: broken header")
    assert plan(checked(None)).unfixable == "cannot open the image: not readable as an image"


def test_an_image_of_more_pixels_than_preflight_decodes_is_left_to_an_editor() -> None:
    made = plan(checked(header(size=(8193, 8192)), "InvalidFile.ImageSize"))
    assert made.actions == () and made.unfixable == (
        "its pixels are not decoded: 8193x8192 is 67.1 million pixels, more than the 67.1 million "
        "preflight decodes; scale it down to at most 4096 px a side in an image editor"
    )
    assert plan(checked(header(size=(8192, 8192)), "InvalidFile.ImageSize")).unfixable is None


def test_an_image_the_check_could_not_open_gives_the_checks_words() -> None:
    assert plan(checked(header(), "InvalidFile.Openerror")).unfixable == "InvalidFile.Openerror said"


def test_a_photo_without_a_person_cannot_be_cropped_into_one() -> None:
    expected = "no face in the image, and cropping cannot add one: use a photo of the person to sync"
    assert plan(checked(header(), "InvalidFile.Content", faces=())).unfixable == expected
    assert plan(checked(header(), "InvalidFile.Content")).unfixable == expected  # faces not looked at


# --------------------------------------------------------------------------- the bytes kept
@pytest.mark.parametrize("name", ["me.jpg", "me.jpeg", "me.JPG"])
def test_a_jpeg_that_passes_is_kept_as_it_is(name: str) -> None:
    made = plan(checked(header(path=f"/photos/{name}"), faces=(face(),)))
    assert made == ImagePlan((), Path(name).suffix)


@pytest.mark.parametrize(
    ("name", "words"),
    [("me.png", "JPEG content named .png"), ("me", "JPEG content named (no extension)")],
)
def test_a_jpeg_under_another_name_keeps_its_bytes_under_the_right_one(name: str, words: str) -> None:
    made = plan(checked(header(path=f"/photos/{name}"), "Image.ExtensionMismatch", "InvalidFile.Format"))
    assert made.extension == ".jpg" and made.format is None
    assert steps(made) == [
        ("rename", f"{words}: same bytes, written as .jpg", ("InvalidFile.Format", "Image.ExtensionMismatch"))
    ]


# --------------------------------------------------------------------------- new pixels
def test_a_phone_photo_is_turned_upright_and_stays_jpeg() -> None:
    made = plan(checked(header(size=(800, 1000), orientation=6), "Image.Rotated"))
    assert steps(made) == [
        ("orient", "EXIF orientation 6 applied: stored 800x1000, now upright 1000x800", ("Image.Rotated",))
    ]
    assert (made.format, made.extension, made.size, made.crop) == ("JPEG", ".jpg", (1000, 800), None)


def test_an_orientation_of_1_is_no_turn() -> None:
    made = plan(checked(header(orientation=1), "Image.ColorMode"))
    assert [name for name, _, _ in steps(made)] == []


def test_a_cmyk_photo_becomes_rgb_only_when_the_check_asked() -> None:
    made = plan(checked(header(mode="CMYK"), "Image.ColorMode"))
    assert steps(made) == [("to-rgb", "CMYK -> RGB", ("Image.ColorMode",))]
    assert steps(plan(checked(header(mode="L"), "Image.Rotated"))) == []
    assert steps(plan(checked(header(mode="RGBA"), "Image.ColorMode"))) == []


def test_two_people_are_cropped_to_the_larger_ones_head_and_shoulders() -> None:
    people = (face(0.4, 0.3, 0.1, 0.1), face(0.7, 0.3, 0.09, 0.09))
    made = plan(
        checked(header(size=(1000, 1000)), "InvalidFile.Content", "InvalidFile.ImageSize", faces=people)
    )
    assert steps(made) == [
        (
            "crop-face",
            "2 people: kept the largest face, 1000x1000 -> 300x300 at (300, 230)",
            ("InvalidFile.Content", "InvalidFile.ImageSize"),
        )
    ]
    assert (made.crop, made.size, made.format) == ((300, 230, 600, 530), (300, 300), "JPEG")


def test_who_counts_as_a_person_follows_the_settings() -> None:
    # A face a fifth the size of the main one is background by default: nothing to crop
    # (the check's finding stands); counted as a person, it is cropped away.
    pair = (face(0.4, 0.3, 0.1, 0.1), face(0.7, 0.3, 0.02, 0.02))
    report = checked(header(size=(1000, 1000)), "InvalidFile.Content", faces=pair)
    assert [name for name, _, _ in steps(plan(report))] == []
    assert [name for name, _, _ in steps(plan(report, FaceThresholds(other_person_share=0.1)))] == [
        "crop-face"
    ]


@pytest.mark.parametrize(
    ("faces", "where", "crop"),
    [
        ((face(0.05, 0.4),), "around the face", (0, 0, 2000, 1000)),
        (None, "centred (no face known)", (500, 0, 2500, 1000)),
        ((), "centred (no face known)", (500, 0, 2500, 1000)),
    ],
)
def test_a_banner_is_cut_to_an_aspect_of_2(
    faces: tuple[Face, ...] | None, where: str, crop: tuple[int, int, int, int]
) -> None:
    made = plan(checked(header(size=(3000, 1000)), "InvalidFile.ImageSize", faces=faces))
    assert steps(made) == [
        ("crop", f"3000x1000 -> 2000x1000, aspect 3.00 -> 2.00, {where}", ("InvalidFile.ImageSize",))
    ]
    assert made.crop == crop and made.size == (2000, 1000)


def test_an_aspect_of_exactly_2_is_not_cut_and_one_column_more_is() -> None:
    assert steps(plan(checked(header(size=(2000, 1000)), "Image.Rotated"))) == []
    tall = plan(checked(header(size=(1000, 2001)), "InvalidFile.ImageSize"))
    assert steps(tall) == [
        (
            "crop",
            "1000x2001 -> 1000x2000, aspect 2.00 -> 2.00, centred (no face known)",
            ("InvalidFile.ImageSize",),
        )
    ]


def test_a_huge_photo_is_downscaled_to_4096_px() -> None:
    made = plan(checked(header(size=(5000, 2500)), "InvalidFile.ImageSize"))
    assert steps(made) == [("downscale", "5000x2500 -> 4096x2048 (Lanczos)", ("InvalidFile.ImageSize",))]
    assert made.size == (4096, 2048)


def test_a_jpeg_under_another_name_that_needs_new_pixels_is_written_as_jpg() -> None:
    made = plan(
        checked(header(path="/photos/me.png", orientation=3), "Image.Rotated", "Image.ExtensionMismatch")
    )
    assert steps(made)[-1] == (
        "rename",
        "JPEG content: written as .jpg, not .png",
        ("Image.ExtensionMismatch",),
    )
    nameless = plan(checked(header(path="/photos/me", orientation=3), "Image.Rotated"))
    assert steps(nameless)[-1] == ("rename", "JPEG content: written as .jpg, not (no extension)", ())


def test_a_jpeg_over_10_mb_steps_its_quality_down() -> None:
    made = plan(checked(header(nbytes=12 * 1024 * 1024 + 1), "InvalidFile.Size"))
    assert steps(made) == [
        (
            "reencode",
            "12.0 MB -> under 10.0 MB: JPEG quality 92 stepping down to 80, then smaller if needed",
            ("InvalidFile.Size",),
        )
    ]


# --------------------------------------------------------------------------- formats, from real files
def write(path: Path, mode: str, fmt: str, transparent: bool = False) -> Path:
    picture = Image.new(mode, (64, 48), (200, 120, 90, 255) if mode == "RGBA" else (200, 120, 90))
    if transparent:
        picture.putpixel((3, 3), (0, 0, 0, 0))
    picture.save(path, format=fmt)
    return path


def test_a_format_the_service_refuses_becomes_jpeg(tmp_path: Path) -> None:
    tiff = write(tmp_path / "me.tiff", "RGB", "TIFF")
    made = plan(checked(header(path=str(tiff), fmt="TIFF", size=(64, 48)), "InvalidFile.Format"))
    assert steps(made) == [("convert", "TIFF -> JPEG", ("InvalidFile.Format",))]
    assert (made.format, made.extension, made.alpha) == ("JPEG", ".jpg", False)


def test_a_transparent_image_becomes_png_and_says_why(tmp_path: Path) -> None:
    gif = tmp_path / "me.gif"
    Image.new("P", (64, 48)).save(gif, transparency=0)
    made = plan(
        checked(header(path=str(gif), fmt="GIF", mode="P", size=(64, 48), frames=3), "Image.Animated")
    )
    assert steps(made) == [
        ("first-frame", "kept the first of 3 frames", ("Image.Animated",)),
        ("convert", "GIF -> PNG (it has transparency)", ()),
    ]
    assert (made.format, made.extension, made.alpha) == ("PNG", ".png", True)


def test_a_colour_mode_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    png = tmp_path / "me.png"
    Image.new("LA", (64, 48), (100, 0)).save(png)
    made = plan(checked(header(path=str(png), fmt="PNG", mode="LA", size=(64, 48)), "Image.ColorMode"))
    assert steps(made) == [("to-rgb", "LA -> RGBA", ("Image.ColorMode",))]
    assert (made.format, made.alpha) == ("PNG", True)


def test_an_opaque_png_stays_png_unless_it_is_too_large(tmp_path: Path) -> None:
    png = write(tmp_path / "me.png", "RGBA", "PNG")  # an alpha band, every pixel opaque
    small = plan(checked(header(path=str(png), fmt="PNG", mode="RGBA", size=(64, 48)), "Image.Rotated"))
    assert (small.format, small.alpha, steps(small)) == ("PNG", False, [])
    large = plan(
        checked(
            header(path=str(png), fmt="PNG", mode="RGBA", size=(64, 48), nbytes=11 * 1024 * 1024),
            "InvalidFile.Size",
        )
    )
    assert steps(large) == [
        ("convert", "PNG -> JPEG (opaque: JPEG is far smaller)", ()),
        (
            "reencode",
            "11.0 MB -> under 10.0 MB: JPEG quality 92 stepping down to 80, then smaller if needed",
            ("InvalidFile.Size",),
        ),
    ]
    assert large.extension == ".jpg"


def test_a_transparent_png_over_10_mb_keeps_its_transparency(tmp_path: Path) -> None:
    png = write(tmp_path / "me.png", "RGBA", "PNG", transparent=True)
    made = plan(
        checked(
            header(path=str(png), fmt="PNG", mode="RGBA", size=(64, 48), nbytes=11 * 1024 * 1024),
            "InvalidFile.Size",
        )
    )
    assert steps(made) == [
        (
            "reencode",
            "11.0 MB -> under 10.0 MB: PNG keeps its transparency, then smaller if needed",
            ("InvalidFile.Size",),
        )
    ]
    assert (made.format, made.alpha, made.extension) == ("PNG", True, ".png")


@pytest.mark.parametrize("fmt", ["BMP", "WEBP"])
def test_an_opaque_bmp_or_webp_that_needs_new_pixels_becomes_jpeg(tmp_path: Path, fmt: str) -> None:
    source = write(tmp_path / f"me.{fmt.lower()}", "RGB", fmt)
    made = plan(checked(header(path=str(source), fmt=fmt, size=(64, 48), orientation=2), "Image.Rotated"))
    assert steps(made)[-1] == ("convert", f"{fmt} -> JPEG", ())
    assert made.extension == ".jpg"


def test_pixels_that_cannot_be_decoded_make_the_photo_unfixable(tmp_path: Path) -> None:
    broken = tmp_path / "me.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    made = plan(checked(header(path=str(broken), fmt="PNG", size=(64, 48)), "Image.Rotated"))
    assert made.actions == () and (made.unfixable or "").startswith("its pixels cannot be decoded (")


def test_every_step_names_an_action_a_user_can_read() -> None:
    made = plan(
        checked(header(size=(800, 1000), orientation=8, mode="CMYK"), "Image.Rotated", "Image.ColorMode")
    )
    assert all(isinstance(a, Action) and a.detail for a in made.actions)
    assert [a.name for a in made.actions] == ["orient", "to-rgb"]


def test_two_frames_are_already_an_animation() -> None:
    made = plan(checked(header(frames=2), "Image.Animated"))
    assert steps(made) == [("first-frame", "kept the first of 2 frames", ("Image.Animated",))]


def test_the_crop_for_one_person_stops_short_of_the_second() -> None:
    people = (face(0.4, 0.3, 0.1, 0.1), face(0.6, 0.3, 0.09, 0.09))
    made = plan(checked(header(size=(1000, 1000)), "InvalidFile.Content", faces=people))
    assert made.crop == (300, 230, 550, 530)


def test_a_three_by_one_sliver_is_cut_to_an_aspect_of_2() -> None:
    made = plan(checked(header(size=(3, 1)), "InvalidFile.ImageSize"))
    assert steps(made) == [
        ("crop", "3x1 -> 2x1, aspect 3.00 -> 2.00, centred (no face known)", ("InvalidFile.ImageSize",))
    ]


def test_a_tall_crop_from_the_middle_says_its_own_size() -> None:
    made = plan(checked(header(size=(1000, 3000)), "InvalidFile.ImageSize", faces=(face(0.45, 0.45),)))
    assert steps(made)[0] == (
        "crop",
        "1000x3000 -> 1000x2000, aspect 3.00 -> 2.00, around the face",
        ("InvalidFile.ImageSize",),
    )
    assert made.crop == (0, 500, 1000, 2500)


@pytest.mark.parametrize("name", ["me.jpeg", "me.JPG"])
def test_a_jpeg_with_new_pixels_keeps_its_own_jpeg_extension(name: str) -> None:
    made = plan(checked(header(path=f"/photos/{name}", orientation=3), "Image.Rotated"))
    assert made.extension == Path(name).suffix
    assert [n for n, _, _ in steps(made)] == ["orient"]


def test_conversions_and_renames_answer_both_format_findings(tmp_path: Path) -> None:
    both = ("InvalidFile.Format", "Image.ExtensionMismatch")
    tiff = write(tmp_path / "me.png", "RGB", "TIFF")
    made = plan(checked(header(path=str(tiff), fmt="TIFF", size=(64, 48)), *both))
    assert steps(made) == [("convert", "TIFF -> JPEG", both)]
    renamed = plan(checked(header(path="/photos/me.png", orientation=3), "Image.Rotated", *both))
    assert steps(renamed)[-1] == ("rename", "JPEG content: written as .jpg, not .png", both)
