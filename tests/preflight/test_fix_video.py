"""`preflight fix` on videos the service would reject: every output is checked again with a
probe that is not the fixer's own (ffprobe when installed, else a bare PyAV reading), and
the picture and sound must still line up (flashes and beeps at the same instants).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from preflight import (
    AudioStreamInfo,
    CheckOptions,
    FileReport,
    Finding,
    FixOptions,
    MediaInfo,
    Severity,
    VideoStreamInfo,
    check_video,
    fix_paths,
    limits,
)
from preflight._fix.video import fitted_size, plan_video, target_fps, write_video
from tests.conftest import run_cli, run_cli_measured
from tests.corpus.make_corpus import claim_hours, sound_apart
from tests.oracle import (
    Probed,
    assert_video_accepted,
    count_frames,
    needs_ffprobe,
    probe,
    probe_ffprobe,
    probe_pyav,
)

FLASHES = (0.52, 1.32, 2.12)


def independent_probe(path: Path) -> Probed:
    return probe(path)


def assert_accepted(probed: Probed) -> None:
    assert_video_accepted(probed)


def flash_times(path: Path) -> list[float]:
    """Times of the frames that turn white."""
    times: list[float] = []
    was_white = False
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray")
            white = float(luma.mean()) > 200
            if white and not was_white:
                times.append(float(frame.time))
            was_white = white
    return times


def beep_times(path: Path) -> list[float]:
    """Onsets of the 1 kHz beeps in the sound track (5 ms resolution)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        first: float | None = None
        parts = []
        for frame in container.decode(stream):
            if first is None:
                first = float(frame.time or 0.0)
            parts.extend(f.to_ndarray().ravel() for f in resampler.resample(frame))
    samples = np.concatenate(parts)
    window = 80  # 5 ms
    level = np.sqrt((samples[: len(samples) // window * window].reshape(-1, window) ** 2).mean(axis=1))
    loud = level > 0.05
    onsets = np.flatnonzero(loud & ~np.concatenate([[False], loud[:-1]]))
    return [(first or 0.0) + i * window / 16000 for i in onsets]


def assert_in_sync(path: Path, fps: float) -> None:
    flashes, beeps = flash_times(path), beep_times(path)
    assert len(flashes) == len(FLASHES) and len(beeps) == len(FLASHES), (flashes, beeps)
    for flash, beep in zip(flashes, beeps, strict=True):
        # A frame's picture covers 1/fps; AAC adds its own few ms.
        assert abs(flash - beep) <= 1 / fps + 0.012, (flashes, beeps)


def fix_video(src: Path, out_dir: Path, **options: Any) -> tuple[Path, dict[str, Any]]:
    """Run `preflight fix --video SRC --out-dir OUT --format json`; the output and its entry."""
    args = [
        "fix",
        "--video",
        str(src),
        "--out-dir",
        str(out_dir),
        "--format",
        "json",
        "--preset",
        "ultrafast",
    ]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    status, out = run_cli(*args)
    data = json.loads(out)
    entry = data["files"][0]
    assert status == (0 if entry["ok"] else 1)
    assert entry["output"] is not None, entry
    return Path(entry["output"]), entry


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the cases
def test_an_mp4_whose_header_claims_10_hours_gets_a_true_header_by_a_remux(media, tmp_path: Path) -> None:
    """2.5 s of frames whose MP4 header claims 10 hours: FFmpeg 8 goes by the tracks and
    ffprobe 5.1 by the header, so a service reading like the latter would refuse it.
    check warns with both lengths; fix copies the streams into a fresh MP4 that every
    reader, old and new, sees as 2.5 s."""
    src = media.write_video(tmp_path / "talk.mp4", width=640, height=640, fps=15, duration=2.5)
    claim_hours(10)(src)
    report = check_video(src, CheckOptions(fast=True))
    (claim,) = [f for f in report.findings if f.code == "Video.HeaderLength"]
    assert claim.severity is Severity.WARNING and claim.fixable and report.ok
    assert "claims 36000 s" in claim.message and "hold 2.5" in claim.message, claim.message
    assert "InvalidFile.Duration" in claim.message
    assert claim.details["header_duration"] == 36000
    assert claim.details["duration"] == pytest.approx(2.5, abs=0.05)

    before = md5(src)
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["remux"] and entry["ok"] and out.name == "talk.mp4"
    assert md5(src) == before
    assert probe_pyav(out).duration == pytest.approx(2.5, abs=0.05)
    with av.open(str(src)) as a, av.open(str(out)) as b:  # the same coded pictures
        pictures = [bytes(p) for p in a.demux(video=0) if p.size]
        assert pictures == [bytes(p) for p in b.demux(video=0) if p.size]
    assert "Video.HeaderLength" not in {f["code"] for f in entry["findings"]}
    if shutil.which("ffprobe"):  # the reader that trusts the header: 10 hours before, 2.5 s after
        assert probe_ffprobe(src).duration == 36000
        probed = probe_ffprobe(out)
        assert probed.duration == pytest.approx(2.5, abs=0.05)
        assert_accepted(probed)


def test_h264_in_matroska_is_remuxed_without_re_encoding(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "talk.mkv", container_format="matroska", flashes=FLASHES)
    before = md5(src)
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["remux"] and entry["ok"] and out.suffix == ".mp4"
    probed = independent_probe(out)
    assert_accepted(probed)
    assert probed.duration == pytest.approx(3.0, abs=0.05)
    # The same coded pictures: no generation loss.
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert [bytes(p) for p in a.demux(video=0) if p.size] == [
            bytes(p) for p in b.demux(video=0) if p.size
        ]
    assert_in_sync(out, 25)
    assert md5(src) == before


def test_vp9_in_webm_is_transcoded_to_h264_in_sync(media, tmp_path: Path) -> None:
    src = media.write_video(
        tmp_path / "talk.webm",
        codec="libvpx-vp9",
        container_format="webm",
        audio_codec="libopus",
        flashes=FLASHES,
    )
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["ok"] and "transcode" in entry["actions"]
    probed = independent_probe(out)
    assert_accepted(probed)
    assert probed.codec == "h264" and probed.audio_codec == "aac"
    assert probed.duration == pytest.approx(3.0, abs=1 / 25 + 0.03)
    assert_in_sync(out, 25)


def test_mpeg4_part2_in_avi_is_transcoded(media, tmp_path: Path) -> None:
    src = media.write_video(
        tmp_path / "old camera.avi", codec="mpeg4", container_format="avi", flashes=FLASHES
    )
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["ok"] and out.name == "old camera.mp4"
    probed = independent_probe(out)
    assert_accepted(probed)
    assert probed.duration == pytest.approx(3.0, abs=0.1)
    assert_in_sync(out, 25)


def test_ten_fps_becomes_twenty_and_stays_in_sync(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "slow.mp4", fps=10, flashes=FLASHES)
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["ok"] and "fps" in entry["actions"]
    probed = independent_probe(out)
    assert_accepted(probed)
    assert probed.fps == pytest.approx(20)
    assert probed.duration == pytest.approx(3.0, abs=0.1)
    assert_in_sync(out, 10)


def test_ninety_fps_becomes_forty_five(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "fast.mp4", fps=90, duration=2.5, flashes=(*FLASHES[:2], 2.2))
    out, _entry = fix_video(src, tmp_path / "out")
    probed = independent_probe(out)
    assert_accepted(probed)
    assert probed.fps == pytest.approx(45)
    assert probed.duration == pytest.approx(2.5, abs=1 / 45 + 0.03)


def test_a_small_video_is_scaled_up_and_the_face_stays(media, tmp_path: Path, engine) -> None:
    src = media.write_video(tmp_path / "small.mp4", width=480, height=360, source="face", flashes=FLASHES)
    out, _entry = fix_video(src, tmp_path / "out")
    probed = independent_probe(out)
    assert_accepted(probed)
    assert (probed.width, probed.height) == (854, 640)
    assert_in_sync(out, 25)
    report = check_video(out, engine=engine)
    assert report.ok and not [f for f in report.findings if f.code in ("Face.NotFound", "Face.Missing")]


def test_a_huge_video_is_scaled_down(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "big.mp4", width=2560, height=1440, duration=2.2)
    out, _ = fix_video(src, tmp_path / "out")
    probed = independent_probe(out)
    assert_accepted(probed)
    assert (probed.width, probed.height) == (2048, 1152)


def test_a_panorama_is_cropped_around_the_face(media, tmp_path: Path, engine) -> None:
    src = media.write_video(tmp_path / "wide.mp4", width=2600, height=640, source="portrait", duration=2.2)
    out, entry = fix_video(src, tmp_path / "out")
    assert "crop" in entry["actions"]
    probed = independent_probe(out)
    assert_accepted(probed)
    assert probed.width / probed.height == pytest.approx(3.2, abs=0.01)
    report = check_video(out, engine=engine)
    assert not [f for f in report.findings if f.code in ("Face.NotFound", "Face.CutOff")]


def test_a_panorama_without_faces_is_padded(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "wide.mp4", width=2600, height=640, duration=2.2)
    out, entry = fix_video(src, tmp_path / "out", fast=True)
    assert "pad" in entry["actions"]
    assert_accepted(independent_probe(out))


def test_a_phone_clip_is_turned_upright(media, tmp_path: Path, engine) -> None:
    src = media.write_video(tmp_path / "phone.mp4", width=1280, height=720, rotation=90, source="face")
    out, entry = fix_video(src, tmp_path / "out")
    assert "rotate" in entry["actions"]
    probed = independent_probe(out)
    assert (probed.width, probed.height, probed.rotation) == (720, 1280, 0)
    report = check_video(out, engine=engine)
    assert not [f for f in report.findings if f.code.startswith("Face.") or f.code == "Video.Rotated"]


def test_variable_frame_rate_becomes_constant(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "vfr.mp4", vfr=True)
    out, entry = fix_video(src, tmp_path / "out")
    assert "cfr" in entry["actions"]
    assert not [f for f in entry["findings"] if f["code"] == "Video.VariableFrameRate"]
    assert_accepted(independent_probe(out))


def test_a_long_video_is_trimmed_to_120_s_without_re_encoding(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "long.mp4", width=640, height=640, fps=15, duration=124.0)
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["remux", "trim"]
    probed = independent_probe(out)
    assert_accepted(probed)
    assert 120 - 3 / 15 <= probed.duration <= 120.0


def test_a_one_second_video_is_held_to_two(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "blink.mp4", duration=1.0)
    out, entry = fix_video(src, tmp_path / "out")
    assert "pad-duration" in entry["actions"]
    probed = independent_probe(out)
    assert_accepted(probed)
    assert probed.duration == pytest.approx(2.0, abs=0.05)


def test_a_padded_oversized_file_is_remuxed_back_under_the_limit(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "padded.mp4", duration=2.2)
    media.grow_to(src, limits.VIDEO_MAX_BYTES + 1024)
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["remux"] and entry["ok"]
    assert out.stat().st_size < 1024 * 1024


def test_dense_pictures_over_the_size_limit_get_an_average_rate() -> None:
    video = VideoStreamInfo(
        0,
        "h264",
        "High",
        "yuv420p",
        1920,
        1080,
        1920,
        1080,
        0,
        25.0,
        25.0,
        False,
        2500,
        100.0,
        0.0,
        40_000_000,
    )
    audio = AudioStreamInfo(1, "aac", "LC", 48000, 2, "stereo", "fltp", None, 100.0, 0.0, 128_000)
    size = 100 * 40_000_000 // 8
    info = MediaInfo("dense.mp4", size, "mov,mp4,m4a,3gp,3g2,mj2", 100.0, 0.0, 40_128_000, (video,), (audio,))
    finding = Finding("InvalidFile.Size", Severity.ERROR, "too big", True)
    plan = plan_video(FileReport("dense.mp4", "video", (finding,), info), FixOptions())
    # The streams themselves are too big (unlike padding): an average-rate encode, capped.
    assert plan.mode == "encode" and "bitrate" in [a.name for a in plan.actions]
    assert plan.bit_rate is not None and plan.max_rate == plan.bit_rate
    assert (plan.bit_rate + 128_000) * 100 / 8 < limits.VIDEO_MAX_BYTES * 0.95


def test_an_average_rate_encode_lands_near_its_target(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "clip.mp4", duration=4.0, source="face", quality=10)
    report = check_video(src, CheckOptions(fast=True))
    plan = plan_video(report, FixOptions(preset="ultrafast"))
    from dataclasses import replace

    plan = replace(
        plan, mode="encode", bit_rate=400_000, max_rate=400_000, fps=Fraction(25), width=720, height=720
    )
    write_video(plan, str(src), tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as container:
        video_bytes = sum(p.size for p in container.demux(video=0))
    assert video_bytes * 8 / 4.0 == pytest.approx(400_000, rel=0.35)


def test_a_video_that_passes_is_copied_byte_for_byte(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "fine.mp4")
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["copy"] and entry["ok"]
    assert md5(out) == md5(src)


def test_an_mp4_named_avi_is_copied_under_its_real_extension(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "mislabelled.avi", container_format="mp4")
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["rename"] and out.suffix == ".mp4"
    assert md5(out) == md5(src)


def test_fixing_into_the_input_folder_never_touches_the_input(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "talk.mp4", fps=10)
    before = md5(src)
    out, entry = fix_video(src, tmp_path)
    assert out == tmp_path / "talk.fixed.mp4" and entry["ok"]
    assert md5(src) == before
    assert not list(tmp_path.glob(".*.part"))


def test_an_unreadable_video_is_not_fixed_and_says_why(media, tmp_path: Path) -> None:
    src = tmp_path / "noise.mp4"
    src.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    report = fix_paths(video=src, out_dir=tmp_path / "out")
    (fixed,) = report.files
    assert not fixed.ok and fixed.output is None and fixed.error
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_dry_run_writes_nothing_and_shows_the_plan(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "slow.mp4", fps=10)
    report = fix_paths(video=src, out_dir=tmp_path / "out", dry_run=True)
    (fixed,) = report.files
    assert [a.name for a in fixed.actions] == ["transcode", "fps"] and fixed.output is None
    assert not (tmp_path / "out").exists()


def test_sizes_and_rates_are_chosen_sensibly() -> None:
    assert fitted_size(480, 360) == (854, 640)
    assert fitted_size(4096, 2160) == (2048, 1080)
    assert fitted_size(641, 479) == (856, 640)
    assert fitted_size(2600, 640) is None
    assert target_fps(10) == 20 and target_fps(12) == 24 and target_fps(5) == 15
    assert target_fps(120) == 60 and target_fps(90) == 45 and target_fps(100) == 50
    assert target_fps(7) == 21


def test_reframe_crops_a_close_up_that_follows_a_small_face(media, tmp_path: Path, engine) -> None:
    src = media.write_video(tmp_path / "wide shot.mp4", width=1280, height=720, source="small_face")
    before = check_video(src, engine=engine)
    assert "Face.TooSmall" in [f.code for f in before.findings]
    out, entry = fix_video(src, tmp_path / "out", reframe=True)
    assert "reframe" in entry["actions"]
    assert_accepted(independent_probe(out))
    after = check_video(out, engine=engine)
    assert not [f for f in after.findings if f.code.startswith("Face.")]
    # Without --reframe, a small face is advice, not a reason to touch the file.
    _, plain = fix_video(src, tmp_path / "plain")
    assert plain["actions"] == ["copy"]


# --------------------------------------------------------------------------- harder cases
@pytest.mark.parametrize(
    ("name", "options"),
    [
        pytest.param("late.mkv", {"container_format": "matroska"}, id="aac copied"),
        pytest.param(
            "late flac.mkv", {"container_format": "matroska", "audio_codec": "flac"}, id="flac to aac"
        ),
        pytest.param("late.mp4", {"codec": "mpeg4"}, id="re-encoded picture, aac copied"),
        pytest.param(
            "late slow.mkv", {"container_format": "matroska", "audio_codec": "flac", "fps": 10}, id="fps"
        ),
    ],
)
def test_sound_that_starts_after_the_picture_stays_in_step(
    media, tmp_path: Path, name: str, options: dict[str, Any]
) -> None:
    src = media.write_video(tmp_path / name, flashes=FLASHES, audio_delay=0.5, **options)
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["ok"]
    probed = independent_probe(out)
    assert_accepted(probed)
    assert probed.audio_codec in ("aac", "mp3")
    flashes, beeps = flash_times(out), beep_times(out)
    assert len(flashes) == 3 and len(beeps) == 3, (flashes, beeps)
    for flash, beep in zip(flashes, beeps, strict=True):
        assert abs(flash - beep) <= 1 / options.get("fps", 25) + 0.03, (flashes, beeps)


def test_pcm_sound_in_a_quicktime_file_that_passes_is_copied_not_remuxed(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "edit.mov", container_format="mov", audio_codec="pcm_s16le")
    assert check_video(src, CheckOptions(fast=True)).ok
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["copy"] and md5(out) == md5(src)


def test_an_odd_sized_video_that_passes_is_left_alone() -> None:
    # x264 and x265 only write odd sizes in 4:4:4, which is a finding of its own: the
    # planner is asked directly about a phone's 1437x899 H.264 screen recording.
    video = VideoStreamInfo(
        0, "h264", "High", "yuv420p", 1438, 900, 1437, 899, 0, 30.0, 30.0, False, 300, 10.0, 0.0, 2_000_000
    )
    info = MediaInfo("screen.mov", 2_500_000, "mov,mp4,m4a,3gp,3g2,mj2", 10.0, 0.0, 2_000_000, (video,))
    plan = plan_video(FileReport("screen.mov", "video", (), info), FixOptions())
    assert plan.actions == () and plan.mode == "copy"


def test_hevc_in_matroska_is_remuxed_as_hevc_for_quicktime(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "hevc.mkv", codec="libx265", container_format="matroska")
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["remux"]
    assert independent_probe(out).codec == "hevc"
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_tag == "hvc1"


@pytest.mark.parametrize("rotation", [180, 270])
def test_other_rotations_are_turned_upright_too(media, tmp_path: Path, engine, rotation: int) -> None:
    src = media.write_video(
        tmp_path / "phone.mp4", width=1280, height=720, rotation=rotation, source="portrait"
    )
    out, _entry = fix_video(src, tmp_path / "out")
    probed = independent_probe(out)
    assert probed.rotation == 0
    assert (probed.width, probed.height) == ((720, 1280) if rotation == 270 else (1280, 720))
    report = check_video(out, engine=engine)
    assert not [f for f in report.findings if f.code.startswith("Face.")]


def test_a_remux_trim_keeps_every_frame_decodable(media, tmp_path: Path) -> None:
    src = media.write_video(
        tmp_path / "long.mkv", width=640, height=640, fps=15, duration=121.0, container_format="matroska"
    )
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["actions"] == ["remux", "trim"]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = [f.time for f in container.decode(stream)]
    assert len(frames) >= 120 * 15 - 3 and frames == sorted(frames)
    assert max(frames) < 120.0


def test_a_single_video_has_no_job_and_a_rerun_into_a_subfolder_does_not_snowball(
    media, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    media.write_video(folder / "talk.mp4", fps=10)
    for _ in range(2):
        status, out = run_cli(
            "fix", str(folder), "--out-dir", str(folder / "out"), "--format", "json", "--fast"
        )
        data = json.loads(out)
        assert status == 0 and data["job"] is None and len(data["files"]) == 1
    # (Hidden: the list of what preflight wrote there, which lets the re-run replace it.)
    assert sorted(p.name for p in (folder / "out").iterdir() if p.name[0] != ".") == ["talk.mp4"]


def test_a_file_named_in_two_roles_keeps_its_job_checks(media, tmp_path: Path) -> None:
    src = media.write_video(tmp_path / "talk.mp4")
    report = fix_paths(video=src, audio=src, out_dir=tmp_path / "out", check_options=CheckOptions(fast=True))
    assert report.job is not None
    assert "Pair.VideoAudioReplaced" in [f.code for f in report.job.findings]


def test_names_that_are_not_utf8_or_very_long_still_get_a_report(media, tmp_path: Path) -> None:
    odd = os.fsdecode(b"caf\xe9 ") + "x" * 200 + ".mkv"
    src = media.write_video(tmp_path / odd, container_format="matroska")
    status, out = run_cli("fix", str(src), "--out-dir", str(tmp_path / "out"), "--format", "json", "--fast")
    data = json.loads(out)
    assert status == 0 and data["files"][0]["ok"]
    assert len([p for p in (tmp_path / "out").iterdir() if p.name[0] != "."]) == 1


# --------------------------------------------------------------------------- sound far from the picture
#: Peak memory of a whole `preflight fix` run on a clip whose sound starts 3000 s after its
#: picture (the fixer held 3000 s of silence: over 1 GB at 48 kHz stereo).
APART_MAX_RSS_MB = 300


def _lengths(path: Path) -> tuple[float, float | None]:
    """Where the picture and the sound end (seconds, from their packets), read with PyAV."""
    ends: dict[str, float] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None or packet.stream.type not in ("video", "audio"):
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            ends[packet.stream.type] = max(ends.get(packet.stream.type, 0.0), end)
    return ends["video"], ends.get("audio")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux's /proc")
def test_sound_3000_s_after_the_picture_is_dropped_not_padded_with_silence(tmp_path: Path) -> None:
    src = tmp_path / "late sound.mkv"
    sound_apart(0.0, 3000.0)(src)
    report = check_video(src, CheckOptions(fast=True))
    (apart,) = [f for f in report.findings if f.code == "Video.AudioOffset"]
    assert "3000.00 s after" in apart.message and "2.53 s" in apart.message and apart.fixable
    out = tmp_path / "out"
    done, peak_mb = run_cli_measured("fix", "--fast", "--video", str(src), "-o", str(out), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    (entry,) = json.loads(done.stdout)["files"]
    assert entry["ok"] and {"remux", "drop-audio"} <= set(entry["actions"])
    picture, sound = _lengths(Path(entry["output"]))
    assert sound is None and abs(picture - 2.53) < 0.05
    assert peak_mb < APART_MAX_RSS_MB, peak_mb


def test_sound_3000_s_before_the_picture_does_not_hold_the_picture_back(tmp_path: Path) -> None:
    src = tmp_path / "early sound.mkv"
    sound_apart(3000.0, 0.0)(src)
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["ok"] and "drop-audio" in entry["actions"]
    picture, sound = _lengths(out)
    assert sound is None and abs(picture - 2.53) < 0.05  # not 3002.5 s


def test_sound_kept_against_the_advice_never_runs_past_the_picture(tmp_path: Path) -> None:
    """With the Video codes ignored the sound is kept: re-encoded, it is bounded by the
    picture (3 s of silence, not 3000)."""
    src = tmp_path / "late sound.mkv"
    sound_apart(0.0, 3000.0)(src)
    out, entry = fix_video(src, tmp_path / "out", ignore="Video")
    assert entry["ok"] and "audio-aac" in entry["actions"] and "drop-audio" not in entry["actions"]
    picture, sound = _lengths(out)
    assert sound is not None and sound <= picture + 0.03, (picture, sound)


def test_sound_that_starts_a_second_in_is_padded_to_the_picture_end(tmp_path: Path) -> None:
    """A modest delay gets silence before the sound and after it, up to the picture's end."""
    src = tmp_path / "delayed.mkv"
    sound_apart(0.0, 1.0)(src)
    assert "Video.AudioOffset" not in [f.code for f in check_video(src, CheckOptions(fast=True)).findings]
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["ok"] and "audio-aac" in entry["actions"]
    picture, sound = _lengths(out)
    assert sound is not None and abs(sound - picture) <= 0.03, (picture, sound)


def test_sound_far_longer_than_its_picture_ends_with_it(tmp_path: Path) -> None:
    """20 s of sound under 2.5 s of picture (they overlap, so no finding): the copy's sound
    ends with its picture, as the service's input would, not 17.5 s later."""
    src = tmp_path / "long sound.mkv"
    sound_apart(0.0, 0.0, sound_seconds=20.0)(src)
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["ok"] and "audio-aac" in entry["actions"]
    picture, sound = _lengths(out)
    assert sound is not None and abs(sound - picture) <= 0.03, (picture, sound)


# --------------------------------------------------------------------------- judged from outside
ORACLES = {"pyav": probe_pyav, "ffprobe": probe_ffprobe}


@pytest.mark.parametrize("oracle", ["pyav", "ffprobe"])
@pytest.mark.parametrize("fps", [24, 30, 50, 60])
def test_a_re_encoded_clip_keeps_its_own_frame_rate_length_and_sound(
    media, tmp_path: Path, fps: int, oracle: str
) -> None:
    """A clip too small for the service is re-encoded (scaled up): its rate, frames, length,
    sound and the sound's offset must come out as they went in, read by a probe that is not
    preflight's."""
    if oracle == "ffprobe":
        needs_ffprobe()
    read = ORACLES[oracle]
    src = media.write_video(
        tmp_path / f"small {fps}.mp4", width=480, height=272, fps=fps, duration=2.5, flashes=FLASHES
    )
    out, entry = fix_video(src, tmp_path / "out")
    assert entry["ok"] and "scale" in entry["actions"], entry
    before, after = read(src), read(out)
    assert_video_accepted(after)
    assert after.fps == pytest.approx(before.fps, abs=0.01) == pytest.approx(fps, abs=0.01)
    assert count_frames(out) == count_frames(src)
    assert after.duration == pytest.approx(before.duration, abs=1 / fps + 0.03)
    assert min(after.width, after.height) >= 640
    assert after.width / after.height == pytest.approx(before.width / before.height, rel=0.02)
    assert after.sample_rate == before.sample_rate and after.channels == before.channels
    assert after.av_offset == pytest.approx(before.av_offset, abs=0.03)
    assert_in_sync(out, fps)
