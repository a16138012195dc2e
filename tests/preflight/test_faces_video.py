"""Will the service find the right face in the video, and will the lip-sync look good?

Every clip here is a real H.264 file with a real face (NASA's astronaut portrait, or
scikit-image's cameraman looking sideways), scanned by the real mediapipe engine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from preflight import (
    CheckOptions,
    FileReport,
    LazyEngine,
    Severity,
    VideoFaceScan,
    check_paths,
    check_video,
    probe_media,
)
from preflight._probe.frames import sample_frames
from tests.conftest import BAD, ROOT, SAMPLE, codes
from tests.preflight.face_clips import LATE_FACE

SHORT = {"fps": 25, "duration": 2.0, "quality": 30}


@pytest.fixture(scope="module")
def scanned(made: Callable[..., Path], engine: LazyEngine) -> Callable[..., FileReport]:
    def scan(name: str, **options: object) -> FileReport:
        return check_video(made("video", name, **{**SHORT, **options}), engine=engine)

    return scan


def face_scan(report: FileReport) -> VideoFaceScan:
    assert isinstance(report.faces, VideoFaceScan)
    return report.faces


def face_codes(report: FileReport) -> list[str]:
    return [code for code in codes(report) if code.startswith("Face.")]


def test_a_clean_close_up_has_one_frontal_face_in_every_sample(engine: LazyEngine) -> None:
    report = check_video(SAMPLE / "talking_head.mp4", engine=engine)
    assert report.findings == ()
    scan = face_scan(report)
    assert scan.samples[0].time == 0.0  # the first frame, where the service picks its face
    assert len(scan.samples) == 8  # 4 s, every 0.5 s
    for sample in scan.samples:
        assert len(sample.faces) == 1 and sample.target == 0
        face = sample.faces[0]
        assert face.score > 0.8
        assert face.pose is not None and abs(face.pose.yaw) < 15 and abs(face.pose.pitch) < 15
        assert 0.2 < face.box.height < 0.35  # the astronaut's face in a 720 px square


def test_a_clip_without_a_face_says_nothing_would_be_synced(scanned: Callable[..., FileReport]) -> None:
    report = scanned("no face.mp4", width=640, height=640, source="pattern")
    assert face_codes(report) == ["Face.NotFound"]
    (finding,) = report.findings
    assert finding.details == {"samples": 4, "step": 0.5}
    assert "4 frames" in finding.message


def test_a_face_that_appears_late_is_missing_from_the_first_frame(scanned: Callable[..., FileReport]) -> None:
    report = scanned("late face.mp4", **LATE_FACE)
    assert face_codes(report) == ["Face.NotInFirstFrame", "Face.Missing"]
    first, missing = report.findings
    assert first.details["first_face_at"] == pytest.approx(1.0)
    # Samples at 0 and 0.5 s have no face; each stands for the time up to halfway onwards.
    ((start, end),) = missing.details["ranges"]
    assert start == 0.0 and end == pytest.approx(0.75, abs=0.02)
    assert missing.details["share"] == pytest.approx(0.25, abs=0.01)
    assert "No face in 0:00.0-0:00.7 (25% of the clip)" in missing.message


def test_two_people_name_the_face_the_service_will_pick(scanned: Callable[..., FileReport]) -> None:
    report = scanned("two people.mp4", width=1280, height=720, source="two_faces")
    assert face_codes(report) == ["Face.Multiple"]
    (finding,) = report.findings
    assert finding.details["first_frame_faces"] == 2
    assert finding.details["size_ratio"] > 0.8  # the same size: a near tie
    assert "near tie" in finding.message and "--ref" in finding.message
    scan = face_scan(report)
    assert all(len(s.faces) == 2 for s in scan.samples)
    # The target is followed: the same person in every sample.
    boxes = [s.target_face.box.centre[0] for s in scan.samples if s.target_face is not None]
    assert len(boxes) == len(scan.samples) and max(boxes) - min(boxes) < 0.1


def test_a_tiny_face_in_a_wide_frame_is_found_and_called_too_small(
    scanned: Callable[..., FileReport],
) -> None:
    report = scanned("wide shot.mp4", width=1280, height=720, source="small_face")
    assert face_codes(report) == ["Face.TooSmall"]
    (finding,) = report.findings
    assert finding.details["face_height_px"] < 70  # 8% of 720 px
    assert finding.details["share"] < 0.1
    assert finding.details["min_px"] == 128 and finding.details["min_share"] == 0.15
    assert "too few pixels" in finding.message


def test_a_phone_clip_stored_sideways_is_scanned_upright(engine: LazyEngine) -> None:
    path = BAD / "phone_rotated.mp4"
    report = check_video(path, engine=engine)
    assert codes(report) == ["Video.Rotated"]  # and no face finding
    scan = face_scan(report)
    assert (scan.width, scan.height) == (720, 1280)
    assert scan.samples
    for sample in scan.samples:
        (face,) = sample.faces
        assert face.pose is not None and abs(face.pose.roll) < 15  # upright, not on its side
    # Without the rotation the same frames lie on their side: the face in every one of them
    # upright is found in fewer of them sideways, and any found there lies on its side.
    info = probe_media(path)
    sideways = list(sample_frames(str(path), stream_index=0, duration=info.duration or 0, rotation=0))
    upright = list(sample_frames(str(path), stream_index=0, duration=info.duration or 0, rotation=90))
    assert sideways and len(sideways) == len(upright)
    assert (
        sideways[0].rgb.shape[1] > sideways[0].rgb.shape[0]
        and upright[0].rgb.shape[0] > upright[0].rgb.shape[1]
    )
    standing = [engine.detect(frame.rgb) for frame in upright]
    assert all(len(faces) == 1 for faces in standing), standing  # fails when no face is found
    assert all(faces[0].pose is not None and abs(faces[0].pose.roll) < 15 for faces in standing)
    lying = [engine.detect(frame.rgb) for frame in sideways]
    assert sum(map(len, lying)) < sum(map(len, standing))
    assert all(face.pose is None or abs(face.pose.roll) > 45 for faces in lying for face in faces)


def test_a_face_turned_away_is_not_front_facing(scanned: Callable[..., FileReport]) -> None:
    report = scanned("turned.mp4", width=720, height=720, source="turned_face")
    assert face_codes(report) == ["Face.NotFrontal"]
    (finding,) = report.findings
    assert finding.details["max_yaw"] > 40  # the cameraman looks into his eyepiece
    assert finding.details["ranges"] == [[0.0, 2.0]]
    assert finding.details["max_yaw_limit"] == 30.0


def test_a_face_framed_too_low_is_cut_off(scanned: Callable[..., FileReport]) -> None:
    report = scanned("low framing.mp4", width=720, height=720, source="cut_off_face")
    assert "Face.CutOff" in face_codes(report)
    finding = next(f for f in report.findings if f.code == "Face.CutOff")
    assert finding.details["ranges"] == [[0.0, 2.0]]
    assert finding.details["max_outside_share"] > 0.1


def test_damaged_frames_are_named_and_the_rest_still_checked(
    media, tmp_path: Path, engine: LazyEngine
) -> None:
    path = media.write_video(tmp_path / "damaged.mp4", width=640, height=640, duration=4.0, source="portrait")
    data = path.read_bytes()
    # Header and index intact; an eighth of the picture data zeroed from the middle on.
    middle, span = len(data) // 2, len(data) // 8
    path.write_bytes(data[:middle] + bytes(span) + data[middle + span :])
    report = check_video(path, engine=engine)
    assert face_codes(report) == ["Face.Unchecked"]
    (finding,) = report.findings
    assert finding.severity is Severity.WARNING
    assert finding.details["damaged"] and min(finding.details["damaged"]) >= 1.5
    assert "could not be decoded" in finding.message and "damaged" in finding.message
    scan = face_scan(report)
    assert all(len(s.faces) == 1 for s in scan.samples)  # what could be read was checked
    assert scan.samples[-1].time < min(scan.damaged)


def test_a_video_without_a_duration_says_its_faces_went_unchecked(
    media, tmp_path: Path, engine: LazyEngine
) -> None:
    path = media.write_video(
        tmp_path / "raw.h264",
        width=640,
        height=640,
        duration=2.0,
        source="portrait",
        audio=False,
        container_format="h264",
    )
    report = check_video(path, engine=engine)
    assert "Face.Unchecked" in codes(report)
    assert "how long" in next(f for f in report.findings if f.code == "Face.Unchecked").message


def test_fast_and_audio_checks_never_load_the_face_engine(tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "from preflight import CheckOptions, check_paths\n"
        f"video = {str(SAMPLE / 'talking_head.mp4')!r}\n"
        "check_paths([video], options=CheckOptions(fast=True))\n"
        f"check_paths([{str(SAMPLE / 'voice.wav')!r}])\n"
        "check_paths([video], options=CheckOptions(select=('InvalidFile.FPS',)))\n"
        "print('mediapipe' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "False"


def test_face_findings_follow_select_and_ignore(engine: LazyEngine, made: Callable[..., Path]) -> None:
    path = made("video", "no face.mp4", width=640, height=640, source="pattern", **SHORT)
    assert codes(check_video(path, CheckOptions(ignore=("Face",)), engine=engine)) == []
    only = check_video(path, CheckOptions(select=("Face.NotFound",)), engine=engine)
    assert codes(only) == ["Face.NotFound"]


def test_one_engine_serves_a_whole_folder(tmp_path: Path, media) -> None:
    media.write_video(tmp_path / "a.mp4", width=640, height=640, duration=2.0, source="portrait")
    media.write_video(tmp_path / "b.mp4", width=640, height=640, duration=2.0, source="pattern")
    built = []

    def factory():  # type: ignore[no-untyped-def]
        from preflight import load_engine

        built.append(1)
        return load_engine()

    engine = LazyEngine(factory)
    report = check_paths([tmp_path], engine=engine)
    engine.close()
    assert [face_codes(r) for r in report.files] == [[], ["Face.NotFound"]]
    assert built == [1]
