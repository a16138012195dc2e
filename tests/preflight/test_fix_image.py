"""Fixing the reference image: each story builds a rejected (or merely awkward) image, fixes
it, and checks the output with Pillow alone against the service's written limits and the
input (tests/oracle.py), then afresh with preflight, the way the service would judge it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from preflight import (
    CheckOptions,
    FileReport,
    FixOptions,
    ImageFaceScan,
    ImageInfo,
    LazyEngine,
    check_image,
    check_video,
    limits,
)
from preflight._fix.image import ImagePlan, make_reference, plan_image, write_image
from preflight._rules.faces import people
from tests.conftest import codes, run_cli_measured
from tests.corpus.make_corpus import png16_blank
from tests.oracle import assert_image_accepted, read_image

Fixed = tuple[ImagePlan, Path, FileReport]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fix(engine: LazyEngine, tmp_path: Path) -> Callable[[Path], Fixed]:
    """Check, plan, write to a temporary name, rename to the planned extension, check the
    output afresh. The source must come out untouched."""

    def run(source: Path) -> Fixed:
        before = _digest(source)
        plan = plan_image(check_image(source, engine=engine), FixOptions())
        assert plan.unfixable is None, plan.unfixable
        part = tmp_path / "out.part"
        write_image(plan, str(source), part)
        output = part.rename(tmp_path / f"out{plan.extension}")
        assert _digest(source) == before
        fresh = check_image(output, engine=engine)
        assert_judged_from_outside(source, output, plan, fresh)
        return plan, output, fresh

    return run


def assert_accepted(report: FileReport) -> None:
    """Passes the service's limits, with one person in it."""
    assert report.ok, [f.message for f in report.findings]
    info = report.media
    assert isinstance(info, ImageInfo) and info.size <= limits.IMAGE_MAX_BYTES
    assert max(info.width, info.height) <= limits.IMAGE_MAX_SIDE
    assert max(info.width, info.height) / min(info.width, info.height) <= limits.IMAGE_MAX_ASPECT
    assert isinstance(report.faces, ImageFaceScan)
    assert len(people(report.faces.faces)) == 1


def names(plan: ImagePlan) -> list[str]:
    return [action.name for action in plan.actions]


def assert_judged_from_outside(source: Path, output: Path, plan: ImagePlan, fresh: FileReport) -> None:
    """The output as Pillow alone reads it (tests/oracle.py), not preflight: a whole picture
    within the service's written limits; the input's displayed size unless the plan crops or
    scales; and preflight's own reading agreeing with it."""
    before, after = read_image(source), read_image(output)
    assert_image_accepted(after)
    # (a re-encode to get under 10 MB may make the picture smaller too, when it must)
    if not set(names(plan)) & {"crop-face", "crop", "downscale", "reencode"}:
        assert (after.width, after.height) == (before.width, before.height)
    info = fresh.media
    assert isinstance(info, ImageInfo)
    assert (info.format, info.width, info.height, info.size) == (
        after.format,
        after.width,
        after.height,
        after.size,
    )


def test_an_image_that_already_passes_is_left_alone(made: Callable[..., Path], engine: LazyEngine) -> None:
    path = made("image", "fine.jpg", width=600, height=600, source="portrait")
    plan = plan_image(check_image(path, engine=engine), FixOptions())
    assert plan.actions == () and plan.unfixable is None
    assert plan.extension == ".jpg"


def test_a_phone_photo_is_turned_upright(media, tmp_path: Path, fix: Callable[[Path], Fixed]) -> None:
    # Stored on its side with orientation 6 ("turn 90 degrees clockwise to view").
    with Image.open(
        media.write_image(tmp_path / "upright.jpg", width=600, height=800, source="portrait")
    ) as up:
        stored = up.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, format="JPEG", exif=exif.tobytes(), quality=90)

    plan, output, report = fix(path)
    assert names(plan) == ["orient"] and plan.actions[0].because == ("Image.Rotated",)
    assert_accepted(report)
    assert codes(report) == []
    assert isinstance(report.media, ImageInfo) and report.media.orientation in (None, 1)
    with Image.open(output) as image:
        assert image.size == (600, 800)  # the pixels themselves are upright now


@pytest.mark.parametrize("content", ["TIFF", "GIF"])
def test_a_format_the_service_refuses_is_converted_to_jpeg(
    media, tmp_path: Path, fix: Callable[[Path], Fixed], content: str
) -> None:
    frames = 3 if content == "GIF" else 1  # an animated GIF: its first frame is kept
    path = media.write_image(
        tmp_path / "photo.jpg", width=500, height=500, source="portrait", image_format=content, frames=frames
    )
    plan, _, report = fix(path)
    assert "convert" in names(plan) and plan.extension == ".jpg"
    convert = next(a for a in plan.actions if a.name == "convert")
    assert convert.detail == f"{content} -> JPEG" and convert.because == ("InvalidFile.Format",)
    assert ("first-frame" in names(plan)) == (content == "GIF")
    assert_accepted(report)
    assert report.media is not None and report.media.format == "JPEG"


def test_a_png_named_jpg_keeps_its_bytes_under_the_right_name(
    media, tmp_path: Path, fix: Callable[[Path], Fixed]
) -> None:
    path = media.write_image(
        tmp_path / "photo.jpg", width=400, height=400, source="portrait", image_format="PNG"
    )
    plan, output, report = fix(path)
    assert names(plan) == ["rename"] and plan.extension == ".png"
    assert output.read_bytes() == path.read_bytes()
    assert_accepted(report)


def test_a_huge_photo_is_downscaled_to_4096(media, tmp_path: Path, fix: Callable[[Path], Fixed]) -> None:
    path = media.write_image(tmp_path / "camera.jpg", width=5000, height=3000, source="portrait", quality=80)
    plan, _, report = fix(path)
    assert names(plan) == ["downscale"]
    assert plan.actions[0].detail == "5000x3000 -> 4096x2458 (Lanczos)"
    assert_accepted(report)
    assert isinstance(report.media, ImageInfo)
    assert (report.media.width, report.media.height) == (4096, 2458)


def test_a_wide_image_is_cropped_around_the_face(
    media, tmp_path: Path, engine: LazyEngine, fix: Callable[[Path], Fixed]
) -> None:
    # The face off-centre, so a centred crop would not be the same crop.
    with Image.open(media.write_image(tmp_path / "p.png", width=1000, height=1000, source="portrait")) as one:
        canvas = Image.new("RGB", (3000, 1000), (74, 84, 98))
        canvas.paste(one, (1800, 0))
    path = tmp_path / "wide.jpg"
    canvas.save(path, format="JPEG", quality=90)
    before = check_image(path, engine=engine)
    assert codes(before) == ["InvalidFile.ImageSize"]
    assert isinstance(before.faces, ImageFaceScan)
    face_x = before.faces.faces[0].box.centre[0] * 3000

    plan, _, report = fix(path)
    assert names(plan) == ["crop"] and "around the face" in plan.actions[0].detail
    assert plan.crop is not None
    left, top, right, bottom = plan.crop
    assert (right - left, bottom - top) == (2000, 1000)
    assert left < face_x < right
    assert_accepted(report)
    # The face is where it was in the source, moved only by the crop.
    assert isinstance(report.faces, ImageFaceScan)
    assert report.faces.faces[0].box.centre[0] * 2000 + left == pytest.approx(face_x, abs=20)


def test_too_big_to_scan_for_faces_a_wide_image_is_cropped_centred_then_downscaled(
    media, tmp_path: Path
) -> None:
    # Over 4096 px the check does not decode the picture, so no face is known.
    path = media.write_image(tmp_path / "banner.jpg", width=9000, height=3000, source="portrait", quality=60)
    report = check_image(path)
    assert report.faces is None and codes(report) == ["InvalidFile.ImageSize"]
    plan = plan_image(report, FixOptions())
    assert names(plan) == ["crop", "downscale"]
    assert plan.crop == (1500, 0, 7500, 3000) and "centred (no face known)" in plan.actions[0].detail
    assert plan.size == (4096, 2048)  # aspect exactly 2 after rounding, never above


def test_two_people_are_cropped_to_the_larger_one(
    media, tmp_path: Path, fix: Callable[[Path], Fixed]
) -> None:
    path = media.write_image(tmp_path / "couple.jpg", width=1000, height=600, source="two_faces")
    plan, _, report = fix(path)
    assert names(plan) == ["crop-face"] and plan.actions[0].because == ("InvalidFile.Content",)
    assert_accepted(report)
    assert codes(report) == []


def test_a_transparent_png_stays_png(tmp_path: Path, media, fix: Callable[[Path], Fixed]) -> None:
    # A cut-out portrait, too wide: cropped, and the transparency survives.
    with Image.open(media.write_image(tmp_path / "p.png", width=1200, height=500, source="portrait")) as rgb:
        rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 255))
    rgba.paste((0, 0, 0, 0), (150, 0, 250, 500))  # a see-through strip inside the crop
    path = tmp_path / "cutout.png"
    rgba.save(path, format="PNG")

    plan, output, report = fix(path)
    assert names(plan) == ["crop"] and plan.extension == ".png" and plan.alpha
    assert_accepted(report)
    with Image.open(output) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        assert image.getchannel("A").getextrema()[0] == 0


def _noisy(portrait: np.ndarray, spread: int, tile: int | None = None) -> np.ndarray:
    """Grain no encoder can squeeze, over a face the detector still finds. A ``tile`` of
    grain repeated is quicker to make, and all the same to JPEG."""
    height, width, _ = portrait.shape
    shape = (tile, tile, 3) if tile else portrait.shape
    noise = np.random.default_rng(1).integers(0, 2 * spread + 1, shape, dtype=np.uint8)
    if tile:
        noise = np.tile(noise, (height // tile + 1, width // tile + 1, 1))[:height, :width]
    return np.clip(portrait.astype(np.int16) + noise - spread, 0, 255).astype(np.uint8)


def test_a_noisy_4096_png_over_10_mb_becomes_a_jpeg_under_it(
    media, tmp_path: Path, fix: Callable[[Path], Fixed]
) -> None:
    path = tmp_path / "scan.png"
    Image.fromarray(_noisy(media._picture("portrait", 4096, 4096), 20)).save(
        path, format="PNG", compress_level=0
    )
    assert path.stat().st_size > limits.IMAGE_MAX_BYTES

    plan, _, report = fix(path)
    assert names(plan) == ["convert", "reencode"] and plan.extension == ".jpg"
    assert_accepted(report)
    assert report.media is not None and report.media.format == "JPEG"


def test_a_transparent_png_over_10_mb_stays_png_and_shrinks(
    media, tmp_path: Path, fix: Callable[[Path], Fixed]
) -> None:
    rgb = _noisy(media._picture("portrait", 2000, 2000), 60)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:200, :200] = 0
    path = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([rgb, alpha])).save(path, format="PNG", compress_level=1)
    assert path.stat().st_size > limits.IMAGE_MAX_BYTES

    plan, output, report = fix(path)
    assert names(plan) == ["reencode"] and plan.extension == ".png"
    assert_accepted(report)
    with Image.open(output) as image:
        assert image.mode == "RGBA" and image.width < 2000


def test_cmyk_and_16_bit_images_become_rgb(media, tmp_path: Path, fix: Callable[[Path], Fixed]) -> None:
    cmyk = media.write_image(tmp_path / "print.jpg", width=400, height=400, source="portrait", mode="CMYK")
    plan, _, report = fix(cmyk)
    assert names(plan) == ["to-rgb"] and plan.actions[0].detail == "CMYK -> RGB"
    assert_accepted(report)

    grey = np.asarray(Image.open(media.write_image(tmp_path / "g.png", width=400, height=400)).convert("L"))
    deep = tmp_path / "scan16.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(deep, format="PNG")
    plan, output, report = fix(deep)
    assert names(plan) == ["to-rgb"]
    assert_accepted(report)
    with Image.open(output) as image:  # 16-bit levels scaled down, not clipped to white
        assert image.mode == "RGB" and abs(np.asarray(image)[..., 0].astype(int) - grey).max() <= 1


def test_an_image_without_a_face_cannot_be_fixed(made: Callable[..., Path], engine: LazyEngine) -> None:
    path = made("image", "wallpaper.png", width=600, height=400, source="pattern")
    plan = plan_image(check_image(path, engine=engine), FixOptions())
    assert plan.actions == ()
    assert plan.unfixable is not None and "no face" in plan.unfixable


def test_an_unreadable_image_cannot_be_fixed(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not an image at all")
    plan = plan_image(check_image(path), FixOptions())
    assert plan.actions == () and plan.unfixable is not None


def test_a_reference_is_cut_from_a_two_face_video(media, tmp_path: Path, engine: LazyEngine) -> None:
    # Filmed on a phone held sideways: stored 720x1280, shown 1280x720 with both faces.
    video = media.write_video(
        tmp_path / "interview.mp4", width=720, height=1280, rotation=90, duration=1.0, audio=False,
        source="two_faces",
    )  # fmt: skip
    scan = check_video(video, engine=engine).faces
    assert scan is not None and not isinstance(scan, ImageFaceScan)
    assert len(scan.samples[0].faces) == 2
    part = tmp_path / "ref.part"
    (action,) = make_reference(str(video), scan, part)
    assert action.name == "make-ref" and action.because == ("Face.Multiple",)
    assert action.detail.startswith("face at 0.0 s")
    with Image.open(part) as image:
        assert image.format == "JPEG"
    reference = part.rename(tmp_path / "ref.jpg")

    report = check_image(reference, engine=engine)
    assert_accepted(report)
    assert codes(report) == []
    # The face kept is the one the service syncs: the first frame's largest, on the left.
    target = scan.samples[0].target_face
    assert target is not None and target.box.centre[0] < 0.5


# --- Real photos (skipped when shared/media is absent) ------------------------------------
def test_real_two_people_photo_is_cropped_to_one(shared_media: Path, fix: Callable[[Path], Fixed]) -> None:
    plan, _, report = fix(shared_media / "face_recognition__two_people.jpg")
    assert names(plan) == ["crop-face"]
    assert_accepted(report)


def test_real_tall_portrait_is_cropped_to_aspect_2(shared_media: Path, fix: Callable[[Path], Fixed]) -> None:
    plan, _, report = fix(shared_media / "face_recognition__biden.jpg")  # 970x2204, aspect 2.27
    assert names(plan) == ["crop"] and plan.crop == (0, 0, 970, 1940)  # the head kept, the legs cut
    assert_accepted(report)


def test_real_photo_that_passes_is_copied(shared_media: Path, engine: LazyEngine, tmp_path: Path) -> None:
    source = shared_media / "face_recognition__obama-1080p.jpg"
    plan = plan_image(check_image(source, engine=engine), FixOptions())
    assert plan.actions == () and plan.unfixable is None and plan.extension == ".jpg"
    write_image(plan, str(source), tmp_path / "out.part")
    assert (tmp_path / "out.part").read_bytes() == source.read_bytes()


# --------------------------------------------------------------------------- memory bombs
#: Peak memory of a whole `preflight fix --ref` run on a 16-bit PNG of 13000x13000 (4.7 GB
#: when the fixer decoded and converted it): what the interpreter and its imports take.
BOMB_MAX_RSS_MB = 300


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
def test_a_328_kb_png_of_13000_px_is_refused_before_a_pixel_is_decoded(tmp_path: Path) -> None:
    """169 million 16-bit pixels in 328 KB: the check never decodes them, and now neither
    does the fixer. It says why, with the size and the limit, and writes nothing."""
    bomb = tmp_path / "poster.png"
    png16_blank(13000, 13000)(bomb)
    assert bomb.stat().st_size < 400_000
    out = tmp_path / "fixed"
    done, peak_mb = run_cli_measured("fix", "--fast", "--ref", str(bomb), "-o", str(out), "--format", "json")
    assert done.returncode == 1, done.stderr
    (entry,) = json.loads(done.stdout)["files"]
    assert entry["output"] is None and not entry["ok"]
    assert "13000x13000" in entry["error"] and "169.0 million pixels" in entry["error"]
    assert "67.1 million" in entry["error"] and "not decoded" in entry["error"]
    (size,) = [f for f in entry["findings"] if f["code"] == "InvalidFile.ImageSize"]
    assert size["fixable"] is False and "scale it down in an image editor" in size["message"]
    assert not out.exists() or list(out.iterdir()) == []
    assert peak_mb < BOMB_MAX_RSS_MB, peak_mb


#: ...and of one on a 16-bit PNG of 8000x8000 (64 million pixels, under the bound), which is
#: decoded: 128 MB of samples; converting them as a whole took 1.8 GB, strips take 300 MB.
DEEP_MAX_RSS_MB = 500


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
def test_a_16_bit_scan_under_the_bound_is_converted_a_strip_at_a_time(tmp_path: Path) -> None:
    scan = tmp_path / "scan.png"
    png16_blank(8000, 8000)(scan)
    out = tmp_path / "fixed"
    done, peak_mb = run_cli_measured("fix", "--fast", "--ref", str(scan), "-o", str(out), "--format", "json")
    (entry,) = json.loads(done.stdout)["files"]
    assert {"to-rgb", "downscale"} <= set(entry["actions"]) and entry["output"], entry
    with Image.open(entry["output"]) as image:
        assert image.mode == "RGB" and image.size == (limits.IMAGE_MAX_SIDE, limits.IMAGE_MAX_SIDE)
    assert peak_mb < DEEP_MAX_RSS_MB, peak_mb


def test_an_image_swapped_for_a_bomb_after_its_check_is_still_not_decoded(
    made: Callable[..., Path], tmp_path: Path
) -> None:
    """The plan was made from a small file; by the time it is written the file holds 13000 px.
    Nothing is decoded: the writer looks at the header again."""
    path = made("image", "wide.png", width=1200, height=400, source="portrait")
    plan = plan_image(check_image(path, CheckOptions(fast=True)), FixOptions())
    assert plan.unfixable is None and plan.format is not None
    swapped = tmp_path / "swapped.png"
    png16_blank(13000, 13000)(swapped)
    with pytest.raises(ValueError, match=re.escape("13000x13000 is 169.0 million pixels")):
        write_image(plan, str(swapped), tmp_path / "out.part")
    assert not (tmp_path / "out.part").exists()


def test_a_banner_under_the_pixel_bound_is_still_fixed(tmp_path: Path) -> None:
    """The bound is a pixel count, not a side: 9000x3000 (27 million) is decoded and fixed."""
    banner = tmp_path / "banner.png"
    Image.new("L", (9000, 3000), 128).save(banner)
    plan = plan_image(check_image(banner, CheckOptions(fast=True)), FixOptions())
    assert plan.unfixable is None and "downscale" in names(plan)
