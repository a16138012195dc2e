"""Who is in the reference photo: the same person as in the video, or somebody else?

Real photos and clips from ../shared/media (skipped without it); every derived picture (a
crop, a flip, a smaller copy, a recompressed copy, a still video made from a photo) is made
here, in the test's own folder.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageOps

from preflight import (
    CheckReport,
    Finding,
    FixOptions,
    FixReport,
    LazyEngine,
    Severity,
    VideoFaceScan,
    check_paths,
    fix_paths,
)
from preflight._check.cache import code_fingerprint
from preflight._cli.main import main
from preflight._probe.faces.match import RESNET_MODEL, SAME_PERSON_DISTANCE
from tests.conftest import SAMPLE, run_cli

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its clip of a photo) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_faces_identity")

KATIE = "SadTalker__ref_video__WDA_KatieHill_000.mp4"
OBAMA = "face_recognition__obama-1080p.jpg"
TWO = "face_recognition__two_people.jpg"  # Obama on the left, Biden on the right


def still_video(picture: Image.Image, path: Path, seconds: float = 3.0) -> Path:
    """A video of a photo held still, as a user makes one from a portrait (H.264, 25 fps)."""
    picture = picture.convert("RGB")
    picture.thumbnail((1280, 1280))
    picture = picture.crop((0, 0, picture.width // 2 * 2, picture.height // 2 * 2))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = picture.width, picture.height, "yuv420p"
        frame = av.VideoFrame.from_image(picture)
        for _ in range(round(25 * seconds)):
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def half(path: Path, side: str) -> Image.Image:
    """One person of the two-people photo: its left or right half."""
    with Image.open(path) as photo:
        picture = photo.convert("RGB")
    middle = picture.width // 2
    return picture.crop(
        (0, 0, middle, picture.height) if side == "left" else (middle, 0, picture.width, picture.height)
    )


def frame_of(clip: Path, seconds: float) -> Image.Image:
    """The clip's frame at ``seconds`` (off the 0.5 s sampling grid: not itself a sample)."""
    with av.open(str(clip)) as container:
        frame = next(f for f in container.decode(video=0) if f.time is not None and f.time >= seconds)
        return frame.to_image()


def derived(picture: Image.Image, how: str, folder: Path) -> Path:
    """``picture`` as users change photos: flipped, at a third of its size, recompressed."""
    if how == "flipped":
        picture, suffix = ImageOps.mirror(picture), ".png"
    elif how == "a third of the size":
        picture, suffix = (
            picture.resize((picture.width // 3, picture.height // 3), Image.Resampling.LANCZOS),
            ".png",
        )
    else:
        suffix = ".jpg"
    path = folder / f"{how.replace(' ', '_')}{suffix}"
    picture.convert("RGB").save(path, quality=10)  # JPEG quality 10: heavy blocking
    return path


def ref_finding(report: CheckReport | FixReport) -> Finding:
    """The job's one finding about the reference face (a match or a mismatch)."""
    assert report.job is not None
    (finding,) = [f for f in report.job.findings if f.code.startswith("Face.Ref")]
    return finding


def ref_match(report: CheckReport | FixReport) -> Finding:
    """The job's finding that the reference is the person in the video."""
    finding = ref_finding(report)
    assert finding.code == "Face.RefMatch", finding.message
    return finding


def video_scan(report: CheckReport) -> VideoFaceScan:
    """What the face scan saw in the job's video."""
    scan = report.files[0].faces
    assert isinstance(scan, VideoFaceScan)
    return scan


def job_finding(video: Path, ref: Path, engine: LazyEngine) -> tuple[str, dict]:
    finding = ref_finding(check_paths(video=video, ref=ref, engine=engine))
    return finding.code, dict(finding.details)


@pytest.fixture(scope="module")
def obama_clip(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with Image.open(shared_media / OBAMA) as photo:
        return still_video(photo, tmp_path_factory.mktemp("obama") / "obama.mp4")


@pytest.mark.parametrize("how", ["another photo", "flipped", "a third of the size", "recompressed"])
def test_photos_of_the_person_in_a_clip_match_it(
    shared_media: Path, obama_clip: Path, how: str, engine: LazyEngine, tmp_path: Path
) -> None:
    if how == "another photo":  # another day, another suit: the left half of two_people.jpg
        ref = tmp_path / "obama_elsewhere.png"
        half(shared_media / TWO, "left").save(ref)
    else:
        with Image.open(shared_media / OBAMA) as photo:
            ref = derived(photo, how, tmp_path)
    code, details = job_finding(obama_clip, ref, engine)
    assert code == "Face.RefMatch", details
    assert details["distance"] < details["threshold"] == SAME_PERSON_DISTANCE
    assert details["closest_is_default_target"] is True


@pytest.mark.parametrize("how", ["another frame", "flipped", "a third of the size", "recompressed"])
def test_frames_of_a_real_clip_match_it(
    shared_media: Path, how: str, engine: LazyEngine, tmp_path: Path
) -> None:
    frame = frame_of(shared_media / KATIE, 2.23)
    ref = tmp_path / "frame.png" if how == "another frame" else derived(frame, how, tmp_path)
    if how == "another frame":
        frame.save(ref)
    code, details = job_finding(shared_media / KATIE, ref, engine)
    assert code == "Face.RefMatch", details
    assert details["distance"] < SAME_PERSON_DISTANCE


@pytest.mark.parametrize(
    "ref",
    [
        OBAMA,
        "face_recognition__lin-manuel-miranda.png",
        "LivePortrait__source__s2.jpg",
        "biden, right half of two_people",
        "a frame of another clip",
    ],
)
def test_a_clip_of_one_person_does_not_match_a_photo_of_another(
    shared_media: Path, ref: str, engine: LazyEngine, tmp_path: Path
) -> None:
    if ref.startswith("biden"):
        path = tmp_path / "biden.png"
        half(shared_media / TWO, "right").save(path)
    elif ref.startswith("a frame"):
        path = tmp_path / "d19.png"
        frame_of(shared_media / "LivePortrait__driving__d19.mp4", 2.23).save(path)
    else:
        path = shared_media / ref
    code, details = job_finding(shared_media / KATIE, path, engine)
    assert code == "Face.RefMismatch", details
    assert details["distance"] >= details["threshold"] == SAME_PERSON_DISTANCE


def test_a_photo_of_another_person_does_not_match_a_still_video(
    shared_media: Path, obama_clip: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    half(shared_media / TWO, "right").save(tmp_path / "biden.png")
    code, details = job_finding(obama_clip, tmp_path / "biden.png", engine)
    assert code == "Face.RefMismatch" and details["distance"] >= SAME_PERSON_DISTANCE


def test_check_with_another_photo_of_the_videos_person_does_not_warn(
    shared_media: Path, obama_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = tmp_path / "obama_elsewhere.jpg"
    half(shared_media / TWO, "left").save(ref, quality=92)

    status, out = run_cli("check", "--video", str(obama_clip), "--ref", str(ref))

    assert status == 0, out
    assert "Face.RefMismatch" not in out and "0 errors, 0 warnings" in out
    assert "info    Face.RefMatch" in out and f"below {SAME_PERSON_DISTANCE:g}" in out


def test_a_reference_picks_its_person_among_two(
    shared_media: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    with Image.open(shared_media / TWO) as photo:
        panel = still_video(photo, tmp_path / "panel.mp4")
    with Image.open(shared_media / OBAMA) as photo:
        photo.save(tmp_path / "obama.jpg")
    with Image.open(shared_media / "face_recognition__biden.jpg") as photo:
        # The head and shoulders of a full-length photo (another photo than the panel's).
        photo.convert("RGB").crop((0, 0, photo.width, photo.width)).save(tmp_path / "biden.jpg")

    picks = {}
    for name in ("obama", "biden"):
        report = check_paths(video=panel, ref=tmp_path / f"{name}.jpg", engine=engine)
        assert report.job is not None
        (finding,) = report.job.findings
        assert finding.code == "Face.RefMatch" and finding.severity is Severity.INFO
        picks[name] = finding
        # Two people, two tracks, each described once (not once per sampled frame).
        assert finding.details["faces_compared"] == 2
    sides = {name: ("on the left" in f.message, "on the right" in f.message) for name, f in picks.items()}
    # The largest face is the service's own pick; the other is named by where it is.
    assert sum(f.details["closest_is_default_target"] for f in picks.values()) == 1
    default = next(name for name, f in picks.items() if f.details["closest_is_default_target"])
    other = "biden" if default == "obama" else "obama"
    assert sides[other] == ((True, False) if other == "obama" else (False, True))


def head(photo: Image.Image, side: int, engine: LazyEngine) -> Image.Image:
    """The photo's largest face with as much again around it, ``side`` px square."""
    rgb = np.asarray(photo.convert("RGB"))
    box = engine.detect(rgb)[0].box
    height, width = rgb.shape[:2]
    x, y = (box.x + box.width / 2) * width, (box.y + box.height / 2) * height
    half_side = max(box.width * width, box.height * height)
    square = (int(x - half_side), int(y - half_side), int(x + half_side), int(y + half_side))
    return photo.convert("RGB").crop(square).resize((side, side), Image.Resampling.LANCZOS)


def flickering_clip(
    shared_media: Path,
    path: Path,
    guest_side: int,
    engine: LazyEngine,
    *,
    seconds: float = 6.0,
    every: float = 1.0,
) -> Path:
    """``seconds`` of a real talking head (looped), sharp only within 0.25 s of each multiple
    of ``every`` seconds and a coarse mosaic between, the same shot but no face to find
    (every 1 s: every other 0.5 s sample misses the main face), with a photo of another
    person, ``guest_side`` px square, in the bottom left corner all along."""
    with Image.open(shared_media / OBAMA) as photo:
        guest = head(photo, guest_side, engine)
    frames = looped(shared_media / KATIE)  # 512x512, 25 fps
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        stream.options = {"crf": "30", "preset": "ultrafast"}
        for number in range(round(seconds * 25)):
            picture = next(frames)
            time = number / 25
            if min(time % every, every - time % every) >= 0.25:
                picture = picture.resize((16, 16), Image.Resampling.BOX).resize(
                    picture.size, Image.Resampling.NEAREST
                )
            picture.paste(guest, (0, picture.height - guest_side))
            out.mux(stream.encode(av.VideoFrame.from_image(picture)))
        out.mux(stream.encode())
    frames.close()
    return path


def looped(clip: Path) -> Iterator[Image.Image]:
    """The clip's frames, over and over."""
    while True:
        with av.open(str(clip)) as container:
            for frame in container.decode(video=0):
                yield frame.to_image().convert("RGB")


def test_a_smaller_second_person_is_found_though_the_main_face_is_missed_in_every_other_sample(
    shared_media: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    clip = flickering_clip(shared_media, tmp_path / "flicker.mp4", 120, engine)

    report = check_paths(video=clip, ref=shared_media / OBAMA, engine=engine)

    finding = ref_match(report)
    assert finding.details["distance"] < SAME_PERSON_DISTANCE
    # The main face is one track across its gaps, the guest another: two faces described.
    scan = video_scan(report)
    main_face = {s.tracks[0] for s in scan.samples if len(s.faces) == 2}
    assert len(main_face) == 1 and sum(len(s.faces) == 1 for s in scan.samples) >= 5
    assert finding.details["faces_compared"] == 2 and finding.details["faces_not_compared"] == 0


def test_a_face_lost_for_seconds_at_a_time_does_not_crowd_out_a_second_person(
    shared_media: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    # The main face is there only every 2.5 s (5 samples apart): 7 pieces of it, each a
    # track of its own, all larger than the guest, more than the 6 faces described.
    clip = flickering_clip(shared_media, tmp_path / "flicker.mp4", 120, engine, seconds=16.5, every=2.5)

    report = check_paths(video=clip, ref=shared_media / OBAMA, engine=engine)

    finding = ref_match(report)
    scan = video_scan(report)
    pieces = {
        s.tracks[s.faces.index(max(s.faces, key=lambda f: f.box.height))]
        for s in scan.samples
        if len(s.faces) == 2
    }
    assert len(pieces) > 6 and finding.details["faces_compared"] == 6
    assert finding.details["faces_not_compared"] == len(pieces) + 1 - 6


def interview(clips: list[Path], path: Path, shot: float, seconds: float) -> Path:
    """Close-ups of the clips' people (looped), in turns of ``shot`` seconds, as an
    interview cuts between them."""
    shots = [looped(clip) for clip in clips]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        stream.options = {"crf": "30", "preset": "ultrafast"}
        for number in range(round(seconds * 25)):
            pictures = [next(frames) for frames in shots]  # every clip plays on meanwhile
            picture = pictures[int(number / 25 / shot) % len(clips)].resize((512, 512))
            out.mux(stream.encode(av.VideoFrame.from_image(picture)))
        out.mux(stream.encode())
    for frames in shots:
        frames.close()
    return path


def test_a_clip_cutting_between_two_people_in_the_same_place_describes_both(
    shared_media: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    guest = shared_media / "LivePortrait__driving__d12.mp4"
    clip = interview([shared_media / KATIE, guest], tmp_path / "interview.mp4", shot=1.0, seconds=6.0)
    frame_of(guest, 3.23).save(tmp_path / "guest.png")

    report = check_paths(video=clip, ref=tmp_path / "guest.png", engine=engine)

    finding = ref_match(report)
    assert finding.details["distance"] < SAME_PERSON_DISTANCE
    # Each person one track, however often the shots alternate.
    scan = video_scan(report)
    assert {t for s in scan.samples for t in s.tracks} == {0, 1}
    assert finding.details["faces_compared"] == 2


def test_three_people_taking_turns_are_all_described_before_more_pieces_of_one(
    shared_media: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    # Three close-ups in turns of 1 s over 12 s: each person is away for 4 samples at a
    # time, so each is 4 pieces of track in the same place: 12 pieces, 6 described. Largest
    # first, the two larger people's pieces would take all 6.
    people = [shared_media / KATIE, shared_media / "LivePortrait__driving__d3.mp4"]
    guest = shared_media / "LivePortrait__driving__d12.mp4"  # the smallest face of the three
    clip = interview([*people, guest], tmp_path / "panel.mp4", shot=1.0, seconds=12.0)
    frame_of(guest, 3.23).save(tmp_path / "guest.png")

    report = check_paths(video=clip, ref=tmp_path / "guest.png", engine=engine)

    finding = ref_match(report)
    assert finding.details["faces_compared"] == 6 and finding.details["faces_not_compared"] > 0


def test_a_mismatch_says_how_many_faces_were_too_small_to_compare(
    shared_media: Path, engine: LazyEngine, tmp_path: Path
) -> None:
    clip = flickering_clip(shared_media, tmp_path / "flicker.mp4", 60, engine)  # a ~30 px guest
    with Image.open(shared_media / "face_recognition__biden.jpg") as photo:
        photo.convert("RGB").crop((0, 0, photo.width, photo.width)).save(tmp_path / "biden.jpg")

    status, out = run_cli("check", "--video", str(clip), "--ref", str(tmp_path / "biden.jpg"))

    assert status == 1 and "warning Face.RefMismatch" in out, out
    text = " ".join(out.split())
    assert "none of the 1 video face compared" in text
    assert "but 1 face was not compared (under 32 px high" in text
    assert "the person may still be in the video" in text


def test_each_face_track_is_described_once_and_only_for_a_job_with_a_reference(engine: LazyEngine) -> None:
    alone = check_paths(video=SAMPLE / "talking_head.mp4", engine=engine)
    job = check_paths(video=SAMPLE / "talking_head.mp4", ref=SAMPLE / "face.jpg", engine=engine)
    scans = [alone.files[0].faces, job.files[0].faces]
    described = [sum(f.descriptor is not None for s in scan.samples for f in s.faces) for scan in scans]  # type: ignore[union-attr]
    samples = len(job.files[0].faces.samples)  # type: ignore[union-attr]
    assert samples > 1 and described == [0, 1]
    assert [s.tracks for s in job.files[0].faces.samples] == [(0,)] * samples  # type: ignore[union-attr]


def test_make_ref_cuts_a_reference_that_matches_the_face_the_service_syncs(
    tmp_path: Path, media: object, engine: LazyEngine
) -> None:
    video = media.write_video(  # type: ignore[attr-defined]
        tmp_path / "panel.mp4", width=1280, height=720, source="two_faces", duration=2.2
    )
    made = fix_paths(
        video=video,
        audio=SAMPLE / "voice.wav",
        out_dir=tmp_path / "out",
        options=FixOptions(make_ref=True),
        engine=engine,
    )
    match = ref_match(made)
    assert match.details["closest_is_default_target"] is True
    assert match.details["distance"] < SAME_PERSON_DISTANCE


def test_cached_verdicts_of_another_recogniser_are_not_served() -> None:
    fingerprint = code_fingerprint()
    assert "dlib-bin=" in fingerprint and "face-recognition-models=" in fingerprint
    assert f"{RESNET_MODEL}:" in fingerprint


def test_the_models_are_found_without_the_deprecated_pkg_resources() -> None:
    # face_recognition_models' own __init__ imports pkg_resources, which warns (or is
    # gone) on new setuptools: describing a face must not import it.
    code = (
        "import sys, numpy as np\n"
        "from PIL import Image\n"
        "from preflight import load_engine\n"
        f"rgb = np.asarray(Image.open({str(SAMPLE / 'face.jpg')!r}).convert('RGB'))\n"
        "engine = load_engine()\n"
        "(face,) = engine.detect(rgb)\n"
        "assert engine.describe(rgb, face.box).vector.shape == (128,)\n"
        "assert 'face_recognition_models' not in sys.modules and 'pkg_resources' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_face_too_small_to_tell_is_not_described(engine: LazyEngine) -> None:
    with Image.open(SAMPLE / "face.jpg") as photo:
        rgb = np.asarray(photo.convert("RGB"))
    (face,) = engine.detect(rgb)
    tiny = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] // 12, rgb.shape[0] // 12)))
    assert engine.describe(rgb, face.box) is not None
    assert engine.describe(tiny, face.box) is None  # under MIN_FACE_PX: no guess


def test_a_job_checked_in_worker_processes_matches_as_in_this_one(engine: LazyEngine) -> None:
    here = check_paths(video=SAMPLE / "talking_head.mp4", ref=SAMPLE / "face.jpg", engine=engine)
    workers = check_paths(video=SAMPLE / "talking_head.mp4", ref=SAMPLE / "face.jpg", jobs=2)
    assert here.job is not None and workers.job is not None
    assert [f.code for f in workers.job.findings] == ["Face.RefMatch"]
    assert workers.job.findings[0].details == pytest.approx(here.job.findings[0].details, abs=1e-3)


def test_a_missing_face_model_is_a_clear_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As if face-recognition-models were not installed (a broken installation).
    monkeypatch.setattr("preflight._probe.faces.match.MODELS_PACKAGE", "face_recognition_models_absent")
    status = main(["check", "--video", str(SAMPLE / "talking_head.mp4"), "--ref", str(SAMPLE / "face.jpg")])
    err = capsys.readouterr().err
    assert status == 2
    assert "preflight: error: matching a reference face needs the face-recognition-models" in err
    assert "pip install face-recognition-models" in err and "Traceback" not in err
