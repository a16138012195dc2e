"""Face scans in, findings out: will the service find the right face, and will it sync well?

Thresholds are ours, not the service's (its page says only "close-up, front-facing",
"avoid extreme angles or very small faces"); the tunable ones are ``FaceThresholds``
(``thresholds``), each justified there.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import Any

from .. import limits
from .._models import Finding
from .._probe.faces.engine import Face
from .._probe.faces.match import MIN_FACE_PX, SAME_PERSON_DISTANCE, distance, same_person
from .._probe.faces.scan import MAX_DESCRIBED_TRACKS, FaceSample, ImageFaceScan, VideoFaceScan
from .finding import finding
from .thresholds import FaceThresholds
from .words import clock, percent

#: A face is cut off when its mouth or chin lies outside the frame (mesh landmarks: the
#: mouth corners, lower lip and chin), which is what the lip-sync needs to see. A tight
#: close-up whose forehead or ears touch the edge is fine. Without landmarks, more than
#: this share of the face box outside the frame counts as cut off.
MAX_OUTSIDE_SHARE = 0.25
_MOUTH_AND_CHIN = (61, 291, 17, 152)
#: The thresholds when the caller gives none.
_DEFAULT = FaceThresholds()


def unchecked(reason: str, **details: Any) -> Finding:
    """Faces could not be (fully) checked: a warning, since the service may stumble too."""
    return finding("Face.Unchecked", f"Faces were not checked: {reason}.", error=reason, **details)


def _ranges(scan: VideoFaceScan, flagged: Sequence[bool]) -> list[list[float]]:
    """Time ranges (seconds) covered by runs of flagged samples.

    A sample stands for the time from halfway after the previous sample to halfway before
    the next (the first from 0, the last to the end of the clip).
    """
    times = [s.time for s in scan.samples]
    # After damage, the last sample speaks only for its own step, not for what was not read.
    last_end = min(scan.duration, times[-1] + scan.step) if scan.error else scan.duration
    found: list[list[float]] = []
    for i, hit in enumerate(flagged):
        if not hit:
            continue
        start = 0.0 if i == 0 else (times[i - 1] + times[i]) / 2
        end = last_end if i == len(times) - 1 else (times[i] + times[i + 1]) / 2
        if found and i > 0 and flagged[i - 1]:
            found[-1][1] = round(end, 2)
        else:
            found.append([round(start, 2), round(end, 2)])
    return found


def _describe_ranges(ranges: list[list[float]], limit: int = 4) -> str:
    text = ", ".join(f"{clock(a)}-{clock(b)}" for a, b in ranges[:limit])
    return text + (f" and {len(ranges) - limit} more" if len(ranges) > limit else "")


def _covered(ranges: list[list[float]]) -> float:
    return sum(b - a for a, b in ranges)


def _where(face: Face) -> str:
    x = face.box.centre[0]
    return "on the left" if x < 0.4 else "on the right" if x > 0.6 else "in the centre"


def is_cut_off(face: Face) -> bool:
    """The mouth or chin is outside the frame (a detector property, not a tunable threshold)."""
    if face.landmarks is not None and len(face.landmarks) > max(_MOUTH_AND_CHIN):
        points = face.landmarks[list(_MOUTH_AND_CHIN), :2]
        return bool(((points < 0.0) | (points > 1.0)).any())
    return face.box.outside_share() > MAX_OUTSIDE_SHARE


def is_turned(face: Face, thresholds: FaceThresholds = _DEFAULT) -> bool:
    pose = face.pose
    return pose is not None and (
        abs(pose.yaw) > thresholds.max_yaw_deg or abs(pose.pitch) > thresholds.max_pitch_deg
    )


def _degrees(limit: float) -> str:
    return f"{limit:g}"


def video_face_findings(scan: VideoFaceScan, thresholds: FaceThresholds = _DEFAULT) -> list[Finding]:
    samples = scan.samples
    if not samples:
        return [unchecked(f"no frame could be decoded ({scan.error or 'no picture in the stream'})")]
    with_face = [bool(s.faces) for s in samples]
    if not any(with_face):
        return [
            finding(
                "Face.NotFound",
                f"No face found in any of {len(samples)} frames sampled every {scan.step:g} s; "
                "the service lip-syncs only frames with a detectable face and would return "
                "this video unchanged. Use a close-up of a front-facing person.",
                samples=len(samples),
                step=round(scan.step, 3),
            )
        ]
    findings: list[Finding] = []
    if not samples[0].faces:
        first = next(s.time for s in samples if s.faces)
        findings.append(
            finding(
                "Face.NotInFirstFrame",
                f"No face in the first frame (the first face appears at {clock(first)}); the "
                "service picks the face to sync in the first frame. Trim the start or pass "
                "a reference image (--ref).",
                first_face_at=round(first, 2),
            )
        )
    missing = _ranges(scan, [not hit for hit in with_face])
    if missing:
        share = _covered(missing) / scan.duration
        findings.append(
            finding(
                "Face.Missing",
                f"No face in {_describe_ranges(missing)} ({share:.0%} of the clip); the "
                "service leaves those frames untouched, so the new voice plays over the old "
                "lips there.",
                ranges=missing,
                share=round(share, 3),
            )
        )
    findings.extend(_multiple_faces(scan, thresholds))
    findings.extend(_target_findings(scan, thresholds))
    if scan.damaged or scan.error:
        times = ", ".join(clock(t) for t in scan.damaged[:6]) + (" ..." if len(scan.damaged) > 6 else "")
        where = f"Frames at {times} could not be decoded" if scan.damaged else "Decoding failed"
        findings.append(
            finding(
                "Face.Unchecked",
                f"{where} ({scan.error}); the file is damaged, and the service may reject or "
                "garble it. Re-export it from the original.",
                error=scan.error,
                damaged=list(scan.damaged),
            )
        )
    return findings


def people(faces: Sequence[Face], thresholds: FaceThresholds = _DEFAULT) -> list[Face]:
    """The faces that count as people: not far smaller than the largest (faces come
    largest first), so that a poster or a passer-by far behind does not."""
    if not faces:
        return []
    share = thresholds.other_person_share
    return [f for f in faces if f.box.height >= share * faces[0].box.height]


def _multiple_faces(scan: VideoFaceScan, thresholds: FaceThresholds) -> list[Finding]:
    present = [people(s.faces, thresholds) for s in scan.samples]
    several = [len(p) > 1 for p in present]
    if not any(several):
        return []
    first = present[0]
    ranges = _ranges(scan, several)
    most = max(len(p) for p in present)
    details: dict[str, Any] = {"max_faces": most, "ranges": ranges, "first_frame_faces": len(first)}
    if len(first) > 1:
        target, runner_up = first[0], first[1]
        size_ratio = runner_up.box.height / target.box.height
        details["target_box"] = target.box.to_dict()
        details["size_ratio"] = round(size_ratio, 3)
        tie = " (a near tie in size: a small move could change its choice)" if size_ratio > 0.8 else ""
        pick = (
            f"{len(first)} faces in the first frame{_LARGEST_PICK}"
            f"{_where(target)} ({target.height_px(scan.height):.0f} px high){tie}"
        )
    else:
        pick = f"Up to {most} faces in {_describe_ranges(ranges)}"
    return [
        finding(
            "Face.Multiple",
            f"{pick}. {_REF_ADVICE}",
            **details,
        )
    ]


#: Without a reference image the service picks the largest face of the first frame.
_LARGEST_PICK = "; the service will sync the largest, "
#: The advice that ends a Face.Multiple message when no reference image is given.
_REF_ADVICE = (
    "The service syncs one face only; to choose which, pass a reference "
    "image of that person (--ref; a screenshot of the video will do)."
)
_REF_GIVEN = "The reference image chooses the face the service syncs (see the job)."


def with_reference_given(finding: Finding) -> Finding:
    """A Face.Multiple finding for a job that has a reference image: it neither asks for
    one nor says the service will sync the largest face, since the reference decides (the
    job's Face.RefMatch/RefMismatch says whom it picks)."""
    if finding.code != "Face.Multiple" or _REF_ADVICE not in finding.message:
        return finding
    counted = finding.message.split(_REF_ADVICE)[0].rstrip(". ")
    counted = counted.split(_LARGEST_PICK)[0]
    return dataclasses.replace(finding, message=f"{counted}. {_REF_GIVEN}")


def _target_findings(scan: VideoFaceScan, thresholds: FaceThresholds) -> list[Finding]:
    targets = [s.target_face for s in scan.samples]
    seen = [f for f in targets if f is not None]
    if not seen:
        return []
    findings: list[Finding] = []
    height_px = statistics.median(f.height_px(scan.height) for f in seen)
    share = height_px / scan.height
    min_px, min_share = thresholds.min_px, thresholds.min_share
    if height_px < min_px or share < min_share:
        why = (
            "too few pixels for a sharp new mouth"
            if height_px < min_px
            else "a wider shot than the close-up the service asks for"
        )
        findings.append(
            finding(
                "Face.TooSmall",
                f"The face is {height_px:.0f} px high, {share:.1%} of the frame height (want at "
                f"least {min_px} px and {percent(min_share)}): {why}. Crop closer to the "
                "face or film closer.",
                face_height_px=round(height_px, 1),
                frame_height_px=scan.height,
                share=round(share, 3),
                min_px=min_px,
                min_share=min_share,
            )
        )
    turned = [f is not None and is_turned(f, thresholds) for f in targets]
    if any(turned):
        poses = [f.pose for f in seen if f.pose is not None]
        worst_yaw = max(abs(p.yaw) for p in poses)
        worst_pitch = max(abs(p.pitch) for p in poses)
        ranges = _ranges(scan, turned)
        findings.append(
            finding(
                "Face.NotFrontal",
                f"The face turns away from the camera in {_describe_ranges(ranges)} (up to "
                f"{worst_yaw:.0f} deg sideways, {worst_pitch:.0f} deg up or down; want within "
                f"{_degrees(thresholds.max_yaw_deg)} and {_degrees(thresholds.max_pitch_deg)}); lip-sync "
                "is poor on turned faces. "
                "Use a front-facing shot or cut those parts.",
                ranges=ranges,
                max_yaw=round(worst_yaw, 1),
                max_pitch=round(worst_pitch, 1),
                max_yaw_limit=thresholds.max_yaw_deg,
                max_pitch_limit=thresholds.max_pitch_deg,
                share=round(sum(turned) / len(seen), 3),
            )
        )
    cut = [f is not None and is_cut_off(f) for f in targets]
    if any(cut):
        ranges = _ranges(scan, cut)
        cut_faces = [f for f, hit in zip(targets, cut, strict=True) if hit and f is not None]
        worst = max(f.box.outside_share() for f in cut_faces)
        findings.append(
            finding(
                "Face.CutOff",
                f"The mouth or chin is outside the frame in {_describe_ranges(ranges)} (up to "
                f"{worst:.0%} of the face box outside); the lip-sync needs the whole lower face. "
                "Reframe, or pad the video.",
                ranges=ranges,
                max_outside_share=round(worst, 3),
            )
        )
    return findings


def ref_face_findings(scan: ImageFaceScan, thresholds: FaceThresholds = _DEFAULT) -> list[Finding]:
    faces = scan.faces
    if not faces:
        return [
            finding(
                "InvalidFile.Content",
                "No face found in the reference image; the service needs exactly one person "
                "in it, face clearly visible and front-facing.",
                faces=0,
            )
        ]
    largest = faces[0]
    persons = people(faces, thresholds)
    if len(persons) > 1:
        return [
            finding(
                "InvalidFile.Content",
                f"{len(persons)} faces in the reference image; the service rejects images with "
                "more than one person. preflight fix crops it to the largest face; crop it "
                "yourself if another is the one to sync.",
                # The fixer crops it (``plan_image``): the check says so, as fix does it.
                fixable=True,
                faces=len(persons),
                boxes=[f.box.to_dict() for f in persons],
            )
        ]
    findings: list[Finding] = []
    if len(faces) > len(persons):
        findings.append(
            finding(
                "Face.Multiple",
                f"Besides the main face, {len(faces) - 1} small face(s) in the background; the "
                "service may count them as more people and reject the image. Crop to the "
                "main face.",
                max_faces=len(faces),
            )
        )
    height_px = largest.height_px(scan.height)
    if height_px < thresholds.ref_min_px:
        findings.append(
            finding(
                "Face.TooSmall",
                f"The face is {height_px:.0f} px high (want at least {thresholds.ref_min_px} px); a small "
                "reference face is hard to match in the video.",
                face_height_px=round(height_px, 1),
                min_px=thresholds.ref_min_px,
            )
        )
    if is_turned(largest, thresholds) and largest.pose is not None:
        findings.append(
            finding(
                "Face.NotFrontal",
                f"The reference face is turned {abs(largest.pose.yaw):.0f} deg sideways and "
                f"{abs(largest.pose.pitch):.0f} deg up or down (want within "
                f"{_degrees(thresholds.max_yaw_deg)} and {_degrees(thresholds.max_pitch_deg)}); the "
                "service asks for a clear, frontal view.",
                yaw=round(largest.pose.yaw, 1),
                pitch=round(largest.pose.pitch, 1),
                max_yaw_limit=thresholds.max_yaw_deg,
                max_pitch_limit=thresholds.max_pitch_deg,
            )
        )
    return findings


def closest_match(reference: Face, samples: Sequence[FaceSample]) -> tuple[float, FaceSample, int] | None:
    """The video's described face closest to the reference: (distance, its sample, its
    index there). Only each track's best view carries a descriptor."""
    best: tuple[float, FaceSample, int] | None = None
    for sample in samples:
        for index, face in enumerate(sample.faces):
            if face.descriptor is None:
                continue
            gap = distance(reference.descriptor, face.descriptor)
            if best is None or gap < best[0]:
                best = (gap, sample, index)
    return best


def ref_match_findings(
    video: VideoFaceScan, ref: ImageFaceScan, thresholds: FaceThresholds = _DEFAULT
) -> list[Finding]:
    """Is the one person of the reference image in the video? (dlib's embedding distance
    against each face track of the video, ``_probe.faces.match``.)"""
    persons = people(ref.faces, thresholds)
    if len(persons) != 1 or persons[0].descriptor is None:
        return []  # InvalidFile.Content (or a face too small to describe) already said it
    found = closest_match(persons[0], video.samples)
    if found is None:
        return []
    gap, sample, index = found
    details: dict[str, Any] = {
        "distance": round(gap, 3),
        "threshold": SAME_PERSON_DISTANCE,
        "closest_time": round(sample.time, 2),
        "closest_is_default_target": index == sample.target,
        "faces_compared": sum(f.descriptor is not None for s in video.samples for f in s.faces),
        "faces_not_compared": video.undescribed,
    }
    measured = f"embedding distance {gap:.2f}; the same person measures below {SAME_PERSON_DISTANCE:g}"
    service = (
        f"the service's own matcher uses query_face_threshold (default "
        f"{limits.QUERY_FACE_THRESHOLD_DEFAULT}, {limits.QUERY_FACE_THRESHOLD_MIN}-"
        f"{limits.QUERY_FACE_THRESHOLD_MAX}; lower is looser)"
    )
    if same_person(gap):
        which = (
            "the face the service would pick anyway"
            if index == sample.target
            else f"not the largest face: the reference makes the service sync the one "
            f"{_where(sample.faces[index])}"
        )
        return [
            finding(
                "Face.RefMatch",
                f"The reference face is the video's face at {clock(sample.time)} ({measured}), "
                f"{which}; {service}.",
                **details,
            )
        ]
    if video.undescribed:
        # Some faces were never compared: the person may be one of them, so no certainty.
        compared = details["faces_compared"]
        verdict = (
            f"The reference face is none of the {compared} video face{'s' if compared != 1 else ''} "
            f"compared (closest at {clock(sample.time)}, {measured}), but {video.undescribed} "
            f"face{'s were' if video.undescribed != 1 else ' was'} not compared (under "
            f"{MIN_FACE_PX} px high, or over the budget of {MAX_DESCRIBED_TRACKS} faces a "
            f"video), so the person may still be in the video; if not, the service would fail "
            f"with InvalidFile.FaceNotMatch"
        )
    else:
        verdict = (
            f"The reference face is none of the video's faces (closest at {clock(sample.time)}, "
            f"{measured}); the service would then fail with InvalidFile.FaceNotMatch"
        )
    return [
        finding(
            "Face.RefMismatch",
            f"{verdict}. Use a photo of the person in the video; {service}.",
            **details,
        )
    ]
