"""What the report says about the faces it saw, in words and numbers: the findings made
from a face scan (where faces are, how large, how turned, whether the reference person is
among them), given as facts, each limit met exactly and passed by a hair."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from preflight import Box, Face, FaceSample, FaceThresholds, Finding, ImageFaceScan, Pose, VideoFaceScan
from preflight._probe.faces.match import FaceDescriptor
from preflight._rules.faces import (
    closest_match,
    is_cut_off,
    is_turned,
    people,
    ref_face_findings,
    ref_match_findings,
    unchecked,
    video_face_findings,
    with_reference_given,
)
from preflight._rules.words import clock

STRAIGHT = Pose(0.0, 0.0, 0.0)


def face(
    x: float = 0.4,
    y: float = 0.2,
    width: float = 0.2,
    height: float = 0.5,
    pose: Pose | None = STRAIGHT,
    landmarks: npt.NDArray[np.float32] | None = None,
    descriptor: FaceDescriptor | None = None,
) -> Face:
    return Face(Box(x, y, width, height), 0.9, pose, landmarks, descriptor)


def at(time: float, *faces: Face, target: int | None = 0) -> FaceSample:
    return FaceSample(time, tuple(faces), target if faces else None)


def scan(*samples: FaceSample, height: int = 720, duration: float = 10.0, **more: object) -> VideoFaceScan:
    return VideoFaceScan(1280, height, duration, 1.0, tuple(samples), "test", **more)  # type: ignore[arg-type]


def every_second(*faces_at: tuple[Face, ...], **more: object) -> VideoFaceScan:
    """Samples at 0, 1, 2 ... s of a clip as many seconds long, each with its faces."""
    samples = [at(float(t), *faces) for t, faces in enumerate(faces_at)]
    return scan(*samples, duration=float(len(samples)), **more)


def by_code(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


ONE = (face(),)
NONE: tuple[Face, ...] = ()


# --------------------------------------------------------------------------- the clock
def test_times_read_as_a_player_shows_them() -> None:
    assert clock(0.0) == "0:00.0"
    assert clock(59.96) == "1:00.0"  # rounded before it is split into minutes
    assert clock(125.0) == "2:05.0"
    assert clock(-0.4) == "0:00.0"


# --------------------------------------------------------------------------- found or not
def test_a_video_whose_frames_could_not_be_read_is_unchecked_with_why() -> None:
    (finding,) = video_face_findings(scan(error="invalid data"))
    assert finding.code == "Face.Unchecked" and finding.severity == "warning"
    assert finding.message == "Faces were not checked: no frame could be decoded (invalid data)."
    assert finding.details == {"error": "no frame could be decoded (invalid data)"}
    (bare,) = video_face_findings(scan())
    assert bare.message == "Faces were not checked: no frame could be decoded (no picture in the stream)."
    other = unchecked("the engine failed", engine="mediapipe")
    assert other.details == {"error": "the engine failed", "engine": "mediapipe"} and not other.fixable


def test_no_face_in_any_frame_says_how_many_frames_were_looked_at() -> None:
    nobody = replace(every_second(NONE, NONE, NONE), step=1 / 3)
    (finding,) = video_face_findings(nobody)
    assert finding.code == "Face.NotFound" and finding.severity == "warning"
    assert finding.message == (
        "No face found in any of 3 frames sampled every 0.333333 s; the service lip-syncs only "
        "frames with a detectable face and would return this video unchanged. Use a close-up "
        "of a front-facing person."
    )
    assert finding.details == {"samples": 3, "step": 0.333}


def test_a_face_that_appears_late_is_said_with_when_and_the_gap_as_missing() -> None:
    late = every_second(NONE, NONE, ONE, ONE, ONE, ONE, ONE, ONE, ONE, ONE)
    findings = video_face_findings(late)
    assert [f.code for f in findings] == ["Face.NotInFirstFrame", "Face.Missing"]
    first, missing = findings
    assert first.message == (
        "No face in the first frame (the first face appears at 0:02.0); the service picks the "
        "face to sync in the first frame. Trim the start or pass a reference image (--ref)."
    )
    assert first.details == {"first_face_at": 2.0}
    # The first two samples stand for 0 s to halfway between the second and the third.
    assert missing.details == {"ranges": [[0.0, 1.5]], "share": 0.15}
    assert missing.message == (
        "No face in 0:00.0-0:01.5 (15% of the clip); the service leaves those frames "
        "untouched, so the new voice plays over the old lips there."
    )


def test_missing_stretches_are_joined_and_the_last_runs_to_the_end() -> None:
    gaps = every_second(ONE, NONE, NONE, ONE, NONE, ONE, NONE, ONE, NONE, ONE, NONE, ONE, NONE)
    (missing,) = by_code(video_face_findings(gaps), "Face.Missing")
    assert missing.details["ranges"] == [
        [0.5, 2.5],
        [3.5, 4.5],
        [5.5, 6.5],
        [7.5, 8.5],
        [9.5, 10.5],
        [11.5, 13.0],
    ]
    assert missing.message.startswith(
        "No face in 0:00.5-0:02.5, 0:03.5-0:04.5, 0:05.5-0:06.5, 0:07.5-0:08.5 and 2 more (58% of the clip);"
    )
    assert missing.details["share"] == 0.577


def test_after_damage_the_last_frame_read_speaks_only_for_its_own_step() -> None:
    broken = replace(every_second(ONE, ONE, NONE), duration=10.0, error="corrupt", damaged=(3.0,))
    findings = video_face_findings(broken)
    (missing,) = by_code(findings, "Face.Missing")
    assert missing.details["ranges"] == [[1.5, 3.0]]  # not to 10 s: nothing was read there
    (damaged,) = by_code(findings, "Face.Unchecked")
    assert damaged.message == (
        "Frames at 0:03.0 could not be decoded (corrupt); the file is damaged, and the service "
        "may reject or garble it. Re-export it from the original."
    )
    assert damaged.details == {"error": "corrupt", "damaged": [3.0]}


def test_many_damaged_frames_show_the_first_six() -> None:
    broken = replace(every_second(ONE, ONE), error="corrupt", damaged=tuple(float(t) for t in range(2, 9)))
    (damaged,) = by_code(video_face_findings(broken), "Face.Unchecked")
    assert damaged.message.startswith(
        "Frames at 0:02.0, 0:03.0, 0:04.0, 0:05.0, 0:06.0, 0:07.0 ... could not be decoded (corrupt)"
    )
    only_error = replace(every_second(ONE, ONE), error="end of file")
    (failed,) = by_code(video_face_findings(only_error), "Face.Unchecked")
    assert failed.message.startswith("Decoding failed (end of file); the file is damaged")


def test_a_clean_close_up_has_nothing_to_say() -> None:
    assert video_face_findings(every_second(ONE, ONE, ONE)) == []


# --------------------------------------------------------------------------- several people
def two(runner_up_height: float, target_x: float = 0.1) -> tuple[Face, ...]:
    return (face(x=target_x, height=0.5), face(x=0.7, height=runner_up_height))


def test_two_people_in_the_first_frame_name_the_one_the_service_syncs() -> None:
    (finding,) = by_code(video_face_findings(every_second(two(0.45), ONE)), "Face.Multiple")
    assert finding.severity == "warning" and not finding.fixable
    assert finding.message == (
        "2 faces in the first frame; the service will sync the largest, on the left (360 px "
        "high) (a near tie in size: a small move could change its choice). The service syncs "
        "one face only; to choose which, pass a reference image of that person (--ref; a "
        "screenshot of the video will do)."
    )
    assert finding.details == {
        "max_faces": 2,
        "ranges": [[0.0, 0.5]],
        "first_frame_faces": 2,
        "target_box": {"x": 0.1, "y": 0.2, "width": 0.2, "height": 0.5},
        "size_ratio": 0.9,
    }


def test_a_runner_up_of_80_percent_is_no_near_tie() -> None:
    (finding,) = by_code(video_face_findings(every_second(two(0.4, target_x=0.5))), "Face.Multiple")
    assert "sync the largest, in the centre (360 px high). The service" in finding.message
    assert finding.details["size_ratio"] == 0.8
    (right,) = by_code(video_face_findings(every_second(two(0.4, target_x=0.55))), "Face.Multiple")
    assert "the largest, on the right (" in right.message


@pytest.mark.parametrize(
    ("centre_x", "where"),
    [(0.39, "on the left"), (0.4, "in the centre"), (0.6, "in the centre"), (0.61, "on the right")],
)
def test_the_largest_face_is_placed_left_centre_or_right(centre_x: float, where: str) -> None:
    (finding,) = by_code(
        video_face_findings(every_second(two(0.3, target_x=centre_x - 0.1))), "Face.Multiple"
    )
    assert f"the largest, {where} (" in finding.message


def test_a_face_under_35_percent_of_the_largest_is_no_person() -> None:
    small = (face(height=0.5), face(x=0.7, height=0.17))
    assert people(small) == [small[0]]
    assert by_code(video_face_findings(every_second(small)), "Face.Multiple") == []
    exactly = (face(height=0.5), face(x=0.7, height=0.175))
    assert people(exactly) == list(exactly)
    assert people(()) == []


def test_people_joining_later_are_said_with_when() -> None:
    crowd = (face(height=0.5), face(x=0.7, height=0.4), face(x=0.05, height=0.3))
    (finding,) = by_code(video_face_findings(every_second(ONE, ONE, crowd, crowd, ONE)), "Face.Multiple")
    assert finding.message.startswith("Up to 3 faces in 0:01.5-0:03.5. The service syncs one face only;")
    assert finding.details == {"max_faces": 3, "ranges": [[1.5, 3.5]], "first_frame_faces": 1}


def test_with_a_reference_image_several_people_are_counted_without_advice() -> None:
    (first,) = by_code(video_face_findings(every_second(two(0.45), ONE)), "Face.Multiple")
    assert with_reference_given(first).message == (
        "2 faces in the first frame. The reference image chooses the face the service syncs (see the job)."
    )
    (later,) = by_code(video_face_findings(every_second(ONE, two(0.45))), "Face.Multiple")
    assert with_reference_given(later).message == (
        "Up to 2 faces in 0:00.5-0:02.0. The reference image chooses the face the service "
        "syncs (see the job)."
    )
    said_once = with_reference_given(later)
    assert with_reference_given(said_once) == said_once  # no advice left to take out
    other = unchecked("x")
    assert with_reference_given(other) is other


# --------------------------------------------------------------------------- size, pose, frame
def sized(pixels: float, frame_height: int = 720) -> VideoFaceScan:
    one = (face(height=pixels / frame_height),)
    return replace(every_second(one, one, one), height=frame_height)


def test_a_face_under_128_px_is_too_small_for_a_sharp_mouth() -> None:
    (finding,) = by_code(video_face_findings(sized(127, 720)), "Face.TooSmall")
    assert finding.severity == "warning"
    assert finding.message == (
        "The face is 127 px high, 17.6% of the frame height (want at least 128 px and 15%): too "
        "few pixels for a sharp new mouth. Crop closer to the face or film closer."
    )
    assert finding.details == {
        "face_height_px": 127.0,
        "frame_height_px": 720,
        "share": 0.176,
        "min_px": 128,
        "min_share": 0.15,
    }
    assert by_code(video_face_findings(sized(128, 720)), "Face.TooSmall") == []


def test_a_face_under_15_percent_of_the_frame_is_a_wide_shot() -> None:
    (finding,) = by_code(video_face_findings(sized(161.9, 1080)), "Face.TooSmall")
    assert finding.message == (
        "The face is 162 px high, 15.0% of the frame height (want at least 128 px and 15%): a "
        "wider shot than the close-up the service asks for. Crop closer to the face or film closer."
    )
    assert finding.details["face_height_px"] == 161.9 and finding.details["share"] == 0.15
    assert by_code(video_face_findings(sized(162, 1080)), "Face.TooSmall") == []


def test_the_face_size_is_the_median_of_the_frames() -> None:
    sizes = [face(height=h / 720) for h in (100, 300, 310)]
    assert by_code(video_face_findings(every_second(*[(f,) for f in sizes])), "Face.TooSmall") == []
    small = [face(height=h / 720) for h in (100, 120, 310)]
    (finding,) = by_code(video_face_findings(every_second(*[(f,) for f in small])), "Face.TooSmall")
    assert finding.details["face_height_px"] == 120.0


def test_a_share_set_finely_in_settings_is_said_as_set() -> None:
    finely = FaceThresholds(min_share=0.125)
    (finding,) = by_code(video_face_findings(sized(80, 720), finely), "Face.TooSmall")
    assert "(want at least 128 px and 12.5%)" in finding.message


def turned(yaw: float, pitch: float = 0.0) -> tuple[Face, ...]:
    return (face(pose=Pose(yaw, pitch, 5.0)),)


def test_a_face_turned_past_30_degrees_is_said_with_when_and_how_far() -> None:
    video = every_second(ONE, turned(-35.26, 12.34), turned(31.0), ONE)
    (finding,) = by_code(video_face_findings(video), "Face.NotFrontal")
    assert finding.severity == "warning"
    assert finding.message == (
        "The face turns away from the camera in 0:00.5-0:02.5 (up to 35 deg sideways, 12 deg up "
        "or down; want within 30 and 30); lip-sync is poor on turned faces. Use a front-facing "
        "shot or cut those parts."
    )
    assert finding.details == {
        "ranges": [[0.5, 2.5]],
        "max_yaw": 35.3,
        "max_pitch": 12.3,
        "max_yaw_limit": 30.0,
        "max_pitch_limit": 30.0,
        "share": 0.5,
    }


@pytest.mark.parametrize(
    ("yaw", "pitch", "is_it"),
    [(30.0, 0.0, False), (30.01, 0.0, True), (-30.01, 0.0, True), (0.0, 30.0, False), (0.0, -30.01, True)],
)
def test_30_degrees_either_way_is_still_frontal(yaw: float, pitch: float, is_it: bool) -> None:
    assert is_turned(face(pose=Pose(yaw, pitch, 0.0))) is is_it
    assert bool(by_code(video_face_findings(every_second(turned(yaw, pitch))), "Face.NotFrontal")) is is_it


def test_a_face_without_a_pose_is_not_called_turned() -> None:
    assert is_turned(face(pose=None)) is False
    assert video_face_findings(every_second((face(pose=None),))) == []


def mesh(**moved: tuple[float, float]) -> npt.NDArray[np.float32]:
    """A face mesh of 478 points, all in the frame but the named ones (mouth corners 61 and
    291, lower lip 17, chin 152) put where given."""
    points = np.full((478, 3), 0.5, dtype=np.float32)
    for name, (x, y) in moved.items():
        points[int(name.removeprefix("p")), :2] = (x, y)
    return points


@pytest.mark.parametrize(
    ("points", "cut"),
    [
        ({"p152": (0.5, 1.0)}, False),
        ({"p152": (0.5, 1.01)}, True),
        ({"p17": (0.5, 1.2)}, True),
        ({"p61": (-0.01, 0.5)}, True),
        ({"p291": (1.01, 0.5)}, True),
        ({"p10": (0.5, -0.3)}, False),  # the forehead may leave the frame
    ],
)
def test_a_face_is_cut_off_when_its_mouth_or_chin_leaves_the_frame(
    points: dict[str, tuple[float, float]], cut: bool
) -> None:
    assert is_cut_off(face(y=0.6, height=0.5, landmarks=mesh(**points))) is cut


def test_without_a_mesh_more_than_a_quarter_of_the_box_outside_is_cut_off() -> None:
    assert is_cut_off(face(y=0.625, height=0.5)) is False  # exactly 25% below the frame
    assert is_cut_off(face(y=0.63, height=0.5)) is True
    too_few = np.full((100, 3), 2.0, dtype=np.float32)  # not a whole mesh: the box decides
    assert is_cut_off(face(y=0.2, height=0.5, landmarks=too_few)) is False


def test_a_cut_off_chin_is_said_with_when_and_how_much_is_outside() -> None:
    low, lower = (face(y=0.7, height=0.5),), (face(y=0.8123, height=0.5),)
    (finding,) = by_code(video_face_findings(every_second(ONE, low, lower, ONE)), "Face.CutOff")
    assert finding.severity == "warning"
    assert finding.message == (
        "The mouth or chin is outside the frame in 0:00.5-0:02.5 (up to 62% of the face box "
        "outside); the lip-sync needs the whole lower face. Reframe, or pad the video."
    )
    assert finding.details == {"ranges": [[0.5, 2.5]], "max_outside_share": 0.625}


def test_the_target_face_is_judged_not_the_others() -> None:
    # The service syncs the first frame's largest face; a small turned face beside it is
    # no reason for a finding, and a sample where the target is gone judges nothing.
    video = every_second(
        (face(height=0.5), face(x=0.75, height=0.1, pose=Pose(60.0, 0.0, 0.0))),
        (face(height=0.5),),
    )
    assert by_code(video_face_findings(video), "Face.NotFrontal") == []
    gone = scan(
        at(0.0, face(), target=None), at(1.0, face(pose=Pose(50.0, 0.0, 0.0)), target=None), duration=2.0
    )
    assert video_face_findings(gone) == []


# --------------------------------------------------------------------------- the reference image
def photo(*faces: Face, height: int = 800) -> ImageFaceScan:
    return ImageFaceScan(600, height, tuple(faces), "test")


def test_a_reference_image_without_a_face_is_rejected() -> None:
    (finding,) = ref_face_findings(photo())
    assert (finding.code, finding.severity, finding.fixable) == ("InvalidFile.Content", "error", False)
    assert finding.message == (
        "No face found in the reference image; the service needs exactly one person in it, "
        "face clearly visible and front-facing."
    )
    assert finding.details == {"faces": 0}


def test_two_people_in_the_reference_image_are_rejected_and_cropped_by_the_fix() -> None:
    pair = (face(x=0.1, height=0.4), face(x=0.6, height=0.14))  # 35% of the largest: a person
    (finding,) = ref_face_findings(photo(*pair))
    assert (finding.code, finding.severity, finding.fixable) == ("InvalidFile.Content", "error", True)
    assert finding.message == (
        "2 faces in the reference image; the service rejects images with more than one person. "
        "preflight fix crops it to the largest face; crop it yourself if another is the one to sync."
    )
    assert finding.details == {"faces": 2, "boxes": [f.box.to_dict() for f in pair]}


def test_a_small_face_behind_the_reference_person_is_a_warning() -> None:
    (finding,) = ref_face_findings(photo(face(height=0.4), face(x=0.7, height=0.13), face(x=0.8, height=0.1)))
    assert (finding.code, finding.severity, finding.fixable) == ("Face.Multiple", "warning", False)
    assert finding.message == (
        "Besides the main face, 2 small face(s) in the background; the service may count them "
        "as more people and reject the image. Crop to the main face."
    )
    assert finding.details == {"max_faces": 3}


def test_a_reference_face_under_80_px_is_hard_to_match() -> None:
    (finding,) = ref_face_findings(photo(face(height=79.4 / 800)))
    assert finding.code == "Face.TooSmall"
    assert finding.message == (
        "The face is 79 px high (want at least 80 px); a small reference face is hard to match in the video."
    )
    assert finding.details == {"face_height_px": 79.4, "min_px": 80}
    assert ref_face_findings(photo(face(height=80 / 800))) == []


def test_a_turned_reference_face_says_how_far() -> None:
    (finding,) = ref_face_findings(photo(face(pose=Pose(-31.26, 4.44, 2.0))))
    assert finding.code == "Face.NotFrontal"
    assert finding.message == (
        "The reference face is turned 31 deg sideways and 4 deg up or down (want within 30 and "
        "30); the service asks for a clear, frontal view."
    )
    assert finding.details == {
        "yaw": -31.3,
        "pitch": 4.4,
        "max_yaw_limit": 30.0,
        "max_pitch_limit": 30.0,
    }
    assert ref_face_findings(photo(face(pose=Pose(30.0, -30.0, 0.0)))) == []


# --------------------------------------------------------------------------- the same person?
def person(gap: float) -> FaceDescriptor:
    """An embedding ``gap`` away from ``person(0)``."""
    vector = np.zeros(128)
    vector[0] = gap
    return FaceDescriptor(vector)


def described(gap: float, x: float = 0.4, height: float = 0.5) -> Face:
    return face(x=x, height=height, descriptor=person(gap))


def test_the_reference_person_found_as_the_face_the_service_picks_anyway() -> None:
    video = scan(at(0.0, described(0.7)), at(1.0, described(0.4123)), duration=2.0)
    (finding,) = ref_match_findings(video, photo(described(0.0)))
    assert (finding.code, finding.severity) == ("Face.RefMatch", "info")
    assert finding.message == (
        "The reference face is the video's face at 0:01.0 (embedding distance 0.41; the same "
        "person measures below 0.6), the face the service would pick anyway; the service's own "
        "matcher uses query_face_threshold (default 170, 120-200; lower is looser)."
    )
    assert finding.details == {
        "distance": 0.412,
        "threshold": 0.6,
        "closest_time": 1.0,
        "closest_is_default_target": True,
        "faces_compared": 2,
        "faces_not_compared": 0,
    }


def test_the_reference_person_found_beside_the_largest_face_is_named_by_place() -> None:
    both = at(2.5, described(0.9, x=0.05, height=0.5), described(0.3, x=0.75, height=0.4))
    (finding,) = ref_match_findings(scan(both, duration=3.0), photo(described(0.0)))
    assert finding.code == "Face.RefMatch"
    assert (
        "(embedding distance 0.30; the same person measures below 0.6), not the largest face: the "
        "reference makes the service sync the one on the right; the service's" in finding.message
    )
    assert finding.details["closest_is_default_target"] is False
    assert finding.details["closest_time"] == 2.5


def test_a_distance_of_exactly_0_6_is_another_person() -> None:
    (finding,) = ref_match_findings(scan(at(0.0, described(0.6)), duration=1.0), photo(described(0.0)))
    assert (finding.code, finding.severity) == ("Face.RefMismatch", "warning")
    assert finding.message == (
        "The reference face is none of the video's faces (closest at 0:00.0, embedding distance "
        "0.60; the same person measures below 0.6); the service would then fail with "
        "InvalidFile.FaceNotMatch. Use a photo of the person in the video; the service's own "
        "matcher uses query_face_threshold (default 170, 120-200; lower is looser)."
    )


@pytest.mark.parametrize(
    ("compared", "left_out", "words"),
    [
        (1, 1, "none of the 1 video face compared (closest at 0:00.0, embedding distance 0.80; the "
         "same person measures below 0.6), but 1 face was not compared"),
        (2, 3, "none of the 2 video faces compared (closest at 0:00.0, embedding distance 0.80; the "
         "same person measures below 0.6), but 3 faces were not compared"),
    ],
)  # fmt: skip
def test_faces_never_compared_leave_the_mismatch_uncertain(compared: int, left_out: int, words: str) -> None:
    faces = [described(0.8 + i / 10, x=0.1 + i / 4, height=0.5 - i / 10) for i in range(compared)]
    video = scan(at(0.0, *faces), duration=1.0, undescribed=left_out)
    (finding,) = ref_match_findings(video, photo(described(0.0)))
    assert finding.code == "Face.RefMismatch"
    assert finding.message == (
        f"The reference face is {words} (under 32 px high, or over the budget of 6 faces a "
        "video), so the person may still be in the video; if not, the service would fail with "
        "InvalidFile.FaceNotMatch. Use a photo of the person in the video; the service's own "
        "matcher uses query_face_threshold (default 170, 120-200; lower is looser)."
    )
    assert finding.details["faces_compared"] == compared
    assert finding.details["faces_not_compared"] == left_out


def test_nothing_to_compare_says_nothing() -> None:
    video = scan(at(0.0, described(0.1)), duration=1.0)
    assert ref_match_findings(video, photo(face())) == []  # the reference face is not described
    assert ref_match_findings(scan(at(0.0, face()), duration=1.0), photo(described(0.0))) == []
    two_people = photo(described(0.0, height=0.4), described(0.0, x=0.7, height=0.3))
    assert ref_match_findings(video, two_people) == []  # rejected as it is: one person wanted


def test_the_closest_face_of_all_samples_is_the_one_compared() -> None:
    samples = [
        at(0.0, described(0.5)),
        at(1.0, face(), described(0.2, x=0.7, height=0.3)),
        at(2.0, described(0.2)),
    ]
    gap, sample, index = closest_match(described(0.0), samples) or (0.0, samples[0], -1)
    assert (gap, sample.time, index) == (pytest.approx(0.2), 1.0, 1)  # the first of equals
    assert closest_match(described(0.0), [at(0.0, face())]) is None


# --------------------------------------------------------------------------- edges of the wording
def test_every_face_warning_is_a_warning() -> None:
    late = replace(every_second(NONE, ONE, ONE), error="corrupt", damaged=(3.0,))
    assert {f.code: str(f.severity) for f in video_face_findings(late)} == {
        "Face.NotInFirstFrame": "warning",
        "Face.Missing": "warning",
        "Face.Unchecked": "warning",
    }
    small_turned = photo(face(height=60 / 800, pose=Pose(40.0, 0.0, 0.0)))
    assert [(f.code, str(f.severity)) for f in ref_face_findings(small_turned)] == [
        ("Face.TooSmall", "warning"),
        ("Face.NotFrontal", "warning"),
    ]


def test_times_and_shares_keep_their_stated_precision() -> None:
    samples = [at(0.0), at(1.2345, face(pose=Pose(40.0, 0.0, 0.0))), at(2.0, face()), at(3.0, face())]
    findings = video_face_findings(scan(*samples, duration=4.0))
    assert by_code(findings, "Face.NotInFirstFrame")[0].details["first_face_at"] == 1.23
    (missing,) = by_code(findings, "Face.Missing")
    assert missing.details["ranges"] == [[0.0, 0.62]]
    assert by_code(findings, "Face.NotFrontal")[0].details["share"] == 0.333
    odd = scan(at(0.1234, face()), at(1.1234), at(2.3456, face()), duration=3.0)
    (gap,) = by_code(video_face_findings(odd), "Face.Missing")
    assert gap.details["ranges"] == [[0.62, 1.73]]
    (pair,) = by_code(video_face_findings(every_second(two(0.41234))), "Face.Multiple")
    assert pair.details["size_ratio"] == 0.825
    (small,) = by_code(video_face_findings(sized(127.46, 720)), "Face.TooSmall")
    assert small.details["face_height_px"] == 127.5
    (ref_small,) = ref_face_findings(photo(face(height=79.44 / 800)))
    assert ref_small.details["face_height_px"] == 79.4
    match = scan(at(1.2345, described(0.1)), duration=2.0)
    (found,) = ref_match_findings(match, photo(described(0.0)))
    assert found.details["closest_time"] == 1.23


def test_without_damage_the_last_frame_speaks_for_the_rest_of_the_clip() -> None:
    ended = replace(every_second(ONE, ONE, NONE), duration=10.0)
    (missing,) = by_code(video_face_findings(ended), "Face.Missing")
    assert missing.details["ranges"] == [[1.5, 10.0]]


def test_four_stretches_are_all_named_and_six_damaged_frames_all_shown() -> None:
    four = every_second(ONE, NONE, ONE, NONE, ONE, NONE, ONE, NONE, ONE)
    (missing,) = by_code(video_face_findings(four), "Face.Missing")
    assert "0:06.5-0:07.5 (" in missing.message and "more" not in missing.message
    six = replace(every_second(ONE, ONE), error="corrupt", damaged=tuple(float(t) for t in range(2, 8)))
    (damaged,) = by_code(video_face_findings(six), "Face.Unchecked")
    assert damaged.message.startswith("Frames at 0:02.0, 0:03.0, 0:04.0, 0:05.0, 0:06.0, 0:07.0 could not")


def test_a_mesh_point_on_the_edge_is_inside_and_depth_is_not_position() -> None:
    edge = mesh(p61=(0.0, 0.5), p152=(0.5, 1.0))
    edge[:, 2] = -0.2  # depth, in units of the width: never a place in the picture
    assert is_cut_off(face(landmarks=edge)) is False
    short = np.full((292 - 1, 3), 0.5, dtype=np.float32)  # one point short of the chin's index
    assert is_cut_off(face(landmarks=short)) is False
    whole = np.full((292, 3), 0.5, dtype=np.float32)
    whole[152, 1] = 1.5
    assert is_cut_off(face(landmarks=whole)) is True


def test_a_box_exactly_a_quarter_outside_is_not_cut_off() -> None:
    assert is_cut_off(face(x=0.0, width=1.0, y=0.625, height=0.5)) is False


def test_the_worst_cut_is_measured_over_the_cut_faces_only() -> None:
    # A face whose forehead is far above the frame but whose chin is in is not cut off;
    # its box, more outside than the cut face's, is not the "up to" figure.
    forehead_out = face(y=-0.3, height=0.6, landmarks=mesh())
    chin_out = face(y=0.6, height=0.5, landmarks=mesh(p152=(0.5, 1.05)))
    (finding,) = by_code(video_face_findings(every_second((forehead_out,), (chin_out,))), "Face.CutOff")
    assert finding.details["max_outside_share"] == 0.2


def test_thresholds_from_settings_decide_who_counts_and_what_is_turned() -> None:
    loose = FaceThresholds(other_person_share=0.1, max_yaw_deg=40.0, max_pitch_deg=40.0)
    small = (face(height=0.5), face(x=0.7, height=0.1))
    assert by_code(video_face_findings(every_second(small), loose), "Face.Multiple") != []
    assert by_code(video_face_findings(every_second(turned(35.0)), loose), "Face.NotFrontal") == []
    assert ref_face_findings(photo(face(height=0.4), face(x=0.7, height=0.1)), loose)[0].details["faces"] == 2
    assert ref_face_findings(photo(face(pose=Pose(35.0, 0.0, 0.0))), loose) == []
    background = photo(described(0.0, height=0.4), described(0.0, x=0.7, height=0.1))
    video = scan(at(0.0, described(0.1)), duration=1.0)
    assert [f.code for f in ref_match_findings(video, background)] == ["Face.RefMatch"]
    assert ref_match_findings(video, background, loose) == []  # two people: no one to match


def test_a_face_of_exactly_128_px_in_a_tall_frame_is_a_wide_shot_not_too_few_pixels() -> None:
    (finding,) = by_code(video_face_findings(sized(128, 1080)), "Face.TooSmall")
    assert "(want at least 128 px and 15%): a wider shot than the close-up" in finding.message


def test_a_stretch_over_several_samples_ends_at_its_rounded_half_step() -> None:
    run = scan(at(0.0, face()), at(1.0), at(2.0), at(3.1234, face()), duration=4.0)
    (missing,) = by_code(video_face_findings(run), "Face.Missing")
    assert missing.details["ranges"] == [[0.5, 2.56]]
