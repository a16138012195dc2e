"""The reference image is judged as the service would judge it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from preflight import CheckOptions, FileReport, check_image
from tests.conftest import BAD, SAMPLE, codes
from tests.corpus.make_corpus import png16_blank

# These stories are about container and header facts; faces have their own tests
# (test_faces_*.py), so the face scan is left out here.
CONTAINER_FACTS = CheckOptions(fast=True)


def check_image_facts(path: Path | str) -> FileReport:
    return check_image(path, CONTAINER_FACTS)


def test_the_sample_face_passes_cleanly() -> None:
    report = check_image(SAMPLE / "face.jpg")
    assert report.ok and report.findings == ()


# The page: "Aspect ratio: 2 or less; longest side: 4,096 pixels or less."
@pytest.mark.parametrize(
    ("width", "height", "rejected"),
    [
        (1000, 500, False),  # aspect exactly 2
        (1001, 500, True),  # aspect 2.002
        (500, 1001, True),
        (4096, 2048, False),  # longest side exactly 4096, aspect exactly 2
        (4097, 2100, True),  # one pixel too long
    ],
)
def test_aspect_at_most_2_and_longest_side_at_most_4096(
    made, width: int, height: int, rejected: bool
) -> None:
    path = made("image", f"img_{width}x{height}.jpg", width=width, height=height, quality=70)
    report = check_image_facts(path)
    assert codes(report) == (["InvalidFile.ImageSize"] if rejected else [])
    if rejected:
        assert report.findings[0].details["width"] == width and report.findings[0].fixable


def test_the_committed_banner_is_too_wide() -> None:
    finding = check_image_facts(BAD / "banner.png").findings[0]
    assert finding.code == "InvalidFile.ImageSize" and finding.details["aspect"] == 3.0


def test_limits_apply_to_the_image_as_displayed(made) -> None:
    # Stored 4096x2048 with EXIF orientation 6: displayed 2048x4096, still within limits.
    report = check_image_facts(
        made("image", "exif6_big.jpg", width=4096, height=2048, exif_orientation=6, quality=60)
    )
    assert codes(report) == ["Image.Rotated"]
    assert report.media is not None and (report.media.width, report.media.height) == (2048, 4096)


# The service's page: "File: JPEG, JPG, PNG, BMP, or WebP. Max 10 MB." (MB read as MiB).
# Written out here, never taken from `limits`, so a wrong limit fails.
@pytest.mark.parametrize(("size", "rejected"), [(10 * 1024 * 1024, False), (10 * 1024 * 1024 + 1, True)])
def test_an_image_may_be_10_mb_but_no_more(media, tmp_path: Path, size: int, rejected: bool) -> None:
    path = tmp_path / "face.jpg"
    shutil.copy(SAMPLE / "face.jpg", path)
    media.grow_to(path, size)  # trailing zeros after the JPEG's end: a sparse hole
    report = check_image_facts(path)
    assert codes(report) == (["InvalidFile.Size"] if rejected else [])
    if rejected:
        assert report.findings[0].details == {"size": size, "max": 10 * 1024 * 1024}


@pytest.mark.parametrize("name", ["face.png", "face.bmp", "face.webp", "face.jpeg"])
def test_png_bmp_webp_and_jpeg_are_accepted(made, name: str) -> None:
    assert check_image_facts(made("image", name, width=400, height=400)).findings == ()


@pytest.mark.parametrize(("name", "fmt"), [("face.gif", "GIF"), ("face.tiff", "TIFF")])
def test_other_image_formats_are_rejected_and_fixable(made, name: str, fmt: str) -> None:
    report = check_image_facts(made("image", name, width=400, height=400))
    assert codes(report) == ["InvalidFile.Format"]
    assert report.findings[0].details["format"] == fmt and report.findings[0].fixable


def test_png_content_named_jpg_is_a_warning(made, tmp_path: Path) -> None:
    path = tmp_path / "face.jpg"
    shutil.copy(made("image", "face.png", width=400, height=400), path)
    assert codes(check_image_facts(path)) == ["Image.ExtensionMismatch"]


def test_a_jpeg_under_an_unaccepted_extension_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "face.jfif"
    shutil.copy(SAMPLE / "face.jpg", path)
    assert codes(check_image_facts(path)) == ["InvalidFile.Format"]


def test_animated_and_cmyk_images_get_warnings(made) -> None:
    animated = check_image_facts(made("image", "anim.webp", width=300, height=300, frames=3))
    assert codes(animated) == ["Image.Animated"] and animated.findings[0].details["frames"] == 3
    cmyk = check_image_facts(made("image", "cmyk.jpg", width=300, height=300, mode="CMYK"))
    assert codes(cmyk) == ["Image.ColorMode"]


@pytest.mark.parametrize("fraction", [0.3, 0.7])
def test_a_truncated_image_cannot_be_opened(media, tmp_path: Path, fraction: float) -> None:
    for name in ("face.jpg", "face.png"):
        path = media.write_image(tmp_path / name, width=600, height=600)
        media.truncate_to(path, fraction)
        report = check_image_facts(path)
        assert codes(report) == ["InvalidFile.Openerror"], name


@pytest.mark.parametrize(("name", "content"), [("empty.png", b""), ("text.jpg", b"not an image\n")])
def test_files_that_are_not_images_cannot_be_opened(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    report = check_image_facts(path)
    assert codes(report) == ["InvalidFile.Openerror"] and not report.findings[0].fixable


def test_a_video_given_as_reference_image_cannot_be_opened() -> None:
    assert codes(check_image(SAMPLE / "talking_head.mp4")) == ["InvalidFile.Openerror"]


def test_a_camera_mpo_jpeg_is_a_jpeg(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "camera.jpg"
    with Image.open(SAMPLE / "face.jpg") as image:
        image.save(path, format="MPO", save_all=True, append_images=[image.resize((128, 128))])
    report = check_image_facts(path)
    assert report.findings == () and report.media is not None and report.media.format == "JPEG"


def test_a_damaged_gif_header_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    first, second = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    first.save(buffer, format="GIF", save_all=True, append_images=[second])
    path = tmp_path / "cut.gif"
    path.write_bytes(buffer.getvalue()[:173])
    assert codes(check_image_facts(path)) == ["InvalidFile.Openerror"]


def test_an_oversized_image_is_not_decoded_just_to_be_rejected(made) -> None:
    report = check_image_facts(made("image", "huge.png", width=5000, height=3000, source="pattern"))
    assert codes(report) == ["InvalidFile.ImageSize"]


@pytest.mark.parametrize(
    ("width", "height", "fixable"),
    [
        pytest.param(8192, 8192, True, id="67.1 million pixels: the most preflight decodes"),
        pytest.param(8193, 8192, False, id="one column more"),
        pytest.param(13000, 13000, False, id="the 328 KB bomb"),
    ],
)
def test_an_image_beyond_the_pixels_preflight_decodes_is_not_fixable(
    tmp_path: Path, width: int, height: int, fixable: bool
) -> None:
    path = tmp_path / "big.png"
    png16_blank(width, height)(path)
    (finding,) = [f for f in check_image_facts(path).findings if f.code == "InvalidFile.ImageSize"]
    assert finding.fixable is fixable and f"{width}x{height}" in finding.message
    if not fixable:
        assert f"{width * height / 1e6:.1f} million pixels" in finding.message
        assert "more than the 67.1 million pixels preflight decodes" in finding.message
