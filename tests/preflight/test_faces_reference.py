"""The reference image: exactly one person, front-facing, and the same face as the video's."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from preflight import ImageFaceScan, LazyEngine, Severity, check_image, check_paths, fix_paths
from tests.conftest import FIXTURES, SAMPLE, codes, run_cli

TURNED = FIXTURES / "faces" / "turned.jpg"


@pytest.fixture(scope="module")
def image(made: Callable[..., Path]) -> Callable[..., Path]:
    def make(name: str, source: str, width: int = 800, height: int = 600) -> Path:
        return made("image", name, width=width, height=height, source=source)

    return make


def test_a_photo_without_a_face_is_rejected_as_content(
    image: Callable[..., Path], engine: LazyEngine
) -> None:
    report = check_image(image("wallpaper.png", "pattern"), engine=engine)
    assert codes(report) == ["InvalidFile.Content"]
    (finding,) = report.findings
    assert finding.severity is Severity.ERROR and finding.details == {"faces": 0}
    assert not report.ok


def test_one_face_passes_and_is_measured(image: Callable[..., Path], engine: LazyEngine) -> None:
    report = check_image(image("portrait.jpg", "portrait"), engine=engine)
    assert report.findings == ()
    assert isinstance(report.faces, ImageFaceScan)
    (face,) = report.faces.faces
    assert face.box.height == pytest.approx(0.30, abs=0.04)  # as composed
    assert face.pose is not None and abs(face.pose.yaw) < 15


def test_two_people_are_rejected_as_content(image: Callable[..., Path], engine: LazyEngine) -> None:
    report = check_image(image("couple.jpg", "two_faces", width=1000, height=600), engine=engine)
    assert codes(report) == ["InvalidFile.Content"]
    assert report.findings[0].details["faces"] == 2
    assert "2 faces" in report.findings[0].message


def test_a_turned_face_is_accepted_but_not_frontal(engine: LazyEngine) -> None:
    report = check_image(TURNED, engine=engine)
    assert codes(report) == ["Face.NotFrontal"]
    assert abs(report.findings[0].details["yaw"]) > 40


def test_a_phone_photo_is_read_upright_from_its_exif_orientation(
    image: Callable[..., Path], engine: LazyEngine, tmp_path: Path
) -> None:
    # Stored on its side with orientation 6 ("turn 90 degrees clockwise to view"), as a
    # phone held upright writes it.
    with Image.open(image("upright.jpg", "portrait", width=600, height=800)) as upright:
        stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif.tobytes(), quality=90)
    report = check_image(path, engine=engine)
    assert codes(report) == ["Image.Rotated"]
    assert isinstance(report.faces, ImageFaceScan)
    assert (report.faces.width, report.faces.height) == (600, 800)
    (face,) = report.faces.faces
    assert face.pose is not None and abs(face.pose.roll) < 15


def test_the_videos_own_face_matches_its_reference(engine: LazyEngine) -> None:
    report = check_paths(video=SAMPLE / "talking_head.mp4", ref=SAMPLE / "face.jpg", engine=engine)
    assert report.job is not None
    (finding,) = report.job.findings
    assert finding.code == "Face.RefMatch" and finding.severity is Severity.INFO
    assert finding.details["distance"] < finding.details["threshold"] == 0.6
    assert finding.details["closest_is_default_target"] is True
    assert "query_face_threshold" in finding.message


def test_somebody_elses_face_is_a_mismatch_warning(engine: LazyEngine) -> None:
    report = check_paths(video=SAMPLE / "talking_head.mp4", ref=TURNED, engine=engine)
    assert report.job is not None
    codes_found = [f.code for f in report.job.findings]
    assert codes_found == ["Face.RefMismatch"]
    (finding,) = report.job.findings
    assert finding.severity is Severity.WARNING  # advice: the service's matcher has its own threshold
    assert finding.details["distance"] >= finding.details["threshold"] == 0.6
    assert f"distance {finding.details['distance']:.2f}" in finding.message
    assert "InvalidFile.FaceNotMatch" in finding.message and "query_face_threshold" in finding.message


def test_a_reference_with_two_people_is_not_matched(image: Callable[..., Path], engine: LazyEngine) -> None:
    report = check_paths(
        video=SAMPLE / "talking_head.mp4", ref=image("couple.jpg", "two_faces", 1000, 600), engine=engine
    )
    assert report.job is not None and report.job.findings == ()
    assert [codes(r) for r in report.files] == [[], ["InvalidFile.Content"]]


def test_a_sixteen_bit_grey_photo_is_read_at_its_full_range(tmp_path: Path, engine: LazyEngine) -> None:
    with Image.open(SAMPLE / "face.jpg") as photo:
        grey = np.asarray(photo.convert("L"), dtype=np.uint16) * 257
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)  # mode I;16
    report = check_image(path, engine=engine)
    assert codes(report) == ["Image.ColorMode"]  # a warning, not "no face"
    assert isinstance(report.faces, ImageFaceScan) and len(report.faces.faces) == 1


def test_a_head_tilted_sideways_is_still_front_facing(tmp_path: Path, engine: LazyEngine) -> None:
    with Image.open(SAMPLE / "face.jpg") as photo:
        photo.convert("RGB").rotate(40, expand=True).save(tmp_path / "tilted.png")
    report = check_image(tmp_path / "tilted.png", engine=engine)
    assert codes(report) == []
    assert isinstance(report.faces, ImageFaceScan)
    (face,) = report.faces.faces
    assert face.pose is not None
    assert abs(face.pose.roll) > 30 and abs(face.pose.yaw) < 15 and abs(face.pose.pitch) < 15


def test_a_one_pixel_image_is_no_person_and_harms_nothing_after_it(
    tmp_path: Path, engine: LazyEngine
) -> None:
    Image.new("RGB", (1, 1)).save(tmp_path / "a_dot.png")
    shutil.copy(SAMPLE / "face.jpg", tmp_path / "b_face.jpg")
    shutil.copy(SAMPLE / "talking_head.mp4", tmp_path / "c_clip.mp4")
    report = check_paths([tmp_path], engine=engine)
    assert [codes(r) for r in report.files] == [["InvalidFile.Content"], [], []]


def test_a_job_with_its_reference_image_is_not_asked_for_one(
    tmp_path: Path, media: Any, engine: LazyEngine
) -> None:
    video = media.write_video(
        tmp_path / "panel.mp4", width=1280, height=720, source="two_faces", duration=2.2
    )
    alone = check_paths(video=video, engine=engine)
    with_ref = check_paths(video=video, ref=SAMPLE / "face.jpg", engine=engine)
    (asked,) = [f for f in alone.files[0].findings if f.code == "Face.Multiple"]
    (told,) = [f for f in with_ref.files[0].findings if f.code == "Face.Multiple"]
    assert "--ref" in asked.message and "--ref" not in told.message
    # The reference decides the face, not its size in the first frame.
    assert "will sync the largest" in asked.message and "will sync the largest" not in told.message
    assert told.details == asked.details


def test_fixing_a_job_with_its_reference_image_does_not_ask_for_one(
    tmp_path: Path, media: Any, engine: LazyEngine
) -> None:
    video = media.write_video(
        tmp_path / "panel.mp4", width=1280, height=720, source="two_faces", duration=2.2
    )

    fixed = fix_paths(video=video, ref=SAMPLE / "face.jpg", out_dir=tmp_path / "out", engine=engine)

    video_result = next(f for f in fixed.files if f.role == "video")
    (told,) = [f for f in video_result.findings if f.code == "Face.Multiple"]
    assert "--ref" not in told.message and "will sync the largest" not in told.message
    assert not any("--make-ref" in note for note in video_result.notes)


def test_check_says_a_two_person_reference_can_be_fixed_as_fix_then_crops_it(
    shared_media: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    # `preflight check` said "None of the errors can be fixed", then `preflight fix` cropped it.
    photo = shared_media / "face_recognition__two_people.jpg"
    report = check_paths(ref=photo, engine=engine)
    (finding,) = report.files[0].findings
    assert finding.code == "InvalidFile.Content" and finding.fixable
    assert "preflight fix crops it to the largest face" in finding.message
    fixed = fix_paths(ref=photo, out_dir=tmp_path / "fixed", engine=engine)
    assert fixed.ok and [a.name for a in fixed.files[0].actions] == ["crop-face"]
    status, out = run_cli("check", "--ref", str(photo))
    assert status == 1 and "1 of the errors can be fixed with `preflight fix`" in out


def test_the_face_engines_protobuf_deprecation_warning_never_reaches_stderr() -> None:
    # A batch runs jobs in threads: one thread's `catch_warnings` restores the filters while
    # another runs a graph. A graph run outside the engine's guard stands for that.
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from PIL import Image\n"
        "from preflight._probe.faces.mediapipe_engine import MediapipeEngine\n"
        "engine = MediapipeEngine()\n"
        f"picture = np.asarray(Image.open({str(SAMPLE / 'face.jpg')!r}).convert('RGB'))\n"
        "engine._detector.process(picture)\n"
        "print(len(engine.detect(picture)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert "GetPrototype" not in done.stderr and "UserWarning" not in done.stderr
