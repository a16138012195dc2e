"""A job longer than the service takes, cut into parts at pauses in the speech and the
lip-synced parts joined back: on real files, read back with PyAV.

The videos stamp each frame's number in their top row, so every part and every joined
video is decoded and its frames counted one by one (nothing lost, nothing doubled, each
at its own instant); the voice parts are compared sample for sample with the voice, and
the joined sound is lined up against the voice on both sides of every join.

The service's own result for a part is not needed: the join only uses the results'
pictures, so a part's "result" is the part's video itself, or a copy of it encoded
differently, cut short or run long.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

import preflight
from preflight import FixOptions, PreflightError, fix_paths
from preflight._fix.parts import CUT_MARGIN_S, MAX_PART_S, MIN_PART_S

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its 40 s videos) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_split")

RATE = 44100
#: 24 fps at 44.1 kHz: a frame is 1837.5 samples, so the voice's cuts are rounded.
FPS = 24
SECONDS = 40
FRAMES = SECONDS * FPS
#: The frame counter is 16 blocks of 32 px: the picture must be at least 512 px wide.
WIDTH, HEIGHT = 640, 360
#: One AAC frame.
AAC_FRAME = 1024


# --------------------------------------------------------------------------- media
@pytest.fixture(scope="module")
def voice_signal(media: Any) -> np.ndarray:
    """45 s of speech-like sound, pauses between words (the voices below are its start)."""
    signal: np.ndarray = media.voice_like(45.0, RATE)
    return signal


@pytest.fixture(scope="module")
def voice(made: Callable[..., Path], voice_signal: np.ndarray) -> Path:
    """The voice, as long as the videos (40 s)."""
    return made("audio", "split-voice.wav", signal=voice_signal[: SECONDS * RATE], sample_rate=RATE)


@pytest.fixture(scope="module")
def long_voice(made: Callable[..., Path], voice_signal: np.ndarray) -> Path:
    return made("audio", "split-voice-45s.wav", signal=voice_signal, sample_rate=RATE)


@pytest.fixture(scope="module")
def short_voice(made: Callable[..., Path], voice_signal: np.ndarray) -> Path:
    return made("audio", "split-voice-35s.wav", signal=voice_signal[: 35 * RATE], sample_rate=RATE)


def _counted_video(made: Callable[..., Path], name: str, gop: int) -> Path:
    return made(
        "video",
        name,
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        duration=SECONDS,
        counter=True,
        gop=gop,
        audio=False,
    )


@pytest.fixture(scope="module")
def keyed(made: Callable[..., Path]) -> Path:
    """40 s at 24 fps, a keyframe every second."""
    return _counted_video(made, "split-keyed.mp4", gop=FPS)


@pytest.fixture(scope="module")
def sparse(made: Callable[..., Path]) -> Path:
    """40 s at 24 fps, a keyframe every 250 frames (about ten seconds)."""
    return _counted_video(made, "split-sparse.mp4", gop=250)


@dataclass(frozen=True)
class Split:
    video: Path
    voice: Path
    plan: preflight.SplitPlan
    parts: list[preflight.PartFiles]


def _split(video: Path, voice: Path, max_part_s: float, folder: Path) -> Split:
    plan = preflight.plan_split(video, voice, max_part_s=max_part_s)
    return Split(video, voice, plan, preflight.write_parts(video, voice, plan, folder, preset="ultrafast"))


@pytest.fixture(scope="module")
def copied(keyed: Path, voice: Path, tmp_path_factory: pytest.TempPathFactory) -> Split:
    """Parts of at most 20 s: every chosen pause holds a keyframe, the parts are copies."""
    return _split(keyed, voice, 20, tmp_path_factory.mktemp("copied"))


@pytest.fixture(scope="module")
def encoded(sparse: Path, voice: Path, tmp_path_factory: pytest.TempPathFactory) -> Split:
    """Parts of at most 12 s from a video with few keyframes: the parts are encoded."""
    return _split(sparse, voice, 12, tmp_path_factory.mktemp("encoded"))


@pytest.fixture(params=["copied", "encoded"])
def split(request: pytest.FixtureRequest) -> Split:
    """Each split in turn: the parts copied, and the parts encoded."""
    made: Split = request.getfixturevalue(request.param)
    return made


# --------------------------------------------------------------------------- reading back
def pcm(path: Path | str) -> np.ndarray:
    """A 16-bit mono WAV's samples."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "pcm_s16le" and stream.channels == 1
        assert stream.codec_context.sample_rate == RATE
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(stream)])


def heard(path: Path | str) -> np.ndarray:
    """A file's sound track decoded to floats (mono)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac" and stream.codec_context.sample_rate == RATE
        return np.concatenate([frame.to_ndarray()[0] for frame in container.decode(stream)])


def packets(path: Path | str) -> list[Any]:
    with av.open(str(path)) as container:
        return [p for p in container.demux(container.streams.video[0]) if p.dts is not None]


def keyframes(path: Path) -> set[int]:
    """Frames (in display order) stored as keyframes."""
    shown = packets(path)
    order = sorted(int(p.pts) for p in shown)
    rank = {pts: i for i, pts in enumerate(order)}
    return {rank[int(p.pts)] for p in shown if p.is_keyframe}


def numbers(frames: Sequence[tuple[float, int]]) -> list[int]:
    return [number for _, number in frames]


def assert_on_time(frames: Sequence[tuple[float, int]], first: int = 0) -> None:
    """Frame k of the file shows at k / fps (the counter says which frame it is)."""
    for k, (time, _) in enumerate(frames):
        assert abs(time - k / FPS) < 0.5 / FPS, f"frame {first + k} shows at {time:.3f} s"


# --------------------------------------------------------------------------- the joined sound
#: Each side of a join is compared over this long a window.
SEAM_WINDOW_S = 2.0
#: Offsets (samples) searched for the best alignment: two AAC frames either way.
MAX_LAG = 2 * AAC_FRAME
#: Lossy coding at 192 kb/s keeps the voice about 40 dB over its error; a shift of a
#: single sample brings that down to 16 dB.
MIN_SNR_DB = 30.0


@dataclass(frozen=True)
class Side:
    """How the joined sound matches the voice on one side of a join."""

    window: tuple[float, float]
    #: How late (samples) the joined sound is against the voice; 0 when in place.
    lag: int
    snr_db: float


def lag_of(sound: np.ndarray, voice: np.ndarray, start: int) -> int:
    """The delay (samples, within ``MAX_LAG``) at which ``sound``, taken from ``start``,
    best matches ``voice``: its cross-correlation peak."""
    padded = np.pad(voice, (MAX_LAG, MAX_LAG + len(sound)))
    reference = padded[start : start + len(sound) + 2 * MAX_LAG]
    size = 1 << (len(reference) + len(sound)).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(reference, size) * np.conj(np.fft.rfft(sound, size)), size)
    return MAX_LAG - int(np.argmax(correlation[: 2 * MAX_LAG + 1]))


def seam_sides(sound: np.ndarray, voice: np.ndarray, seams: Sequence[float]) -> list[Side]:
    """The joined ``sound`` against the ``voice`` (floats) just before and just after each
    join: a lost, added or moved block of samples at a join moves all that follows."""
    sides = []
    for seam in seams:
        for lo_s, hi_s in ((seam - SEAM_WINDOW_S, seam), (seam, seam + SEAM_WINDOW_S)):
            lo, hi = max(0, round(lo_s * RATE)), min(len(voice), len(sound), round(hi_s * RATE))
            said, got = voice[lo:hi], sound[lo:hi]
            # The window must hold speech, or there is nothing to line up.
            assert np.sqrt(np.mean(said**2)) > 0.01, f"no speech in {lo_s:.1f}-{hi_s:.1f} s"
            snr = 10 * math.log10(np.sum(said**2) / max(np.sum((got - said) ** 2), 1e-20))
            sides.append(Side((lo_s, hi_s), lag_of(got, voice, lo), snr))
    return sides


def assert_seamless(sound: np.ndarray, voice: np.ndarray, seams: Sequence[float]) -> None:
    for side in seam_sides(sound, voice, seams):
        assert side.lag == 0, side
        assert side.snr_db >= MIN_SNR_DB, side


def as_float(samples: np.ndarray) -> np.ndarray:
    """16-bit samples as the AAC encoder reads them."""
    return samples.astype(np.float64) / 32768


def seams(plan: preflight.SplitPlan) -> list[float]:
    return [part.end_s for part in plan.parts[:-1]]


# --------------------------------------------------------------------------- results
def copy_packets(source: Path | str, target: Path, keep: slice, extra: Path | str | None = None) -> Path:
    """A result made of some of ``source``'s packets (and ``extra``'s first ones after
    them): a video cut short or run long without encoding."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        kept = [p for p in inp.demux(vin) if p.dts is not None][keep]
        step = int(kept[1].pts) - int(kept[0].pts)
        for packet in kept:
            packet.stream = vout
            out.mux(packet)
        if extra is not None:
            after = int(kept[-1].pts) + step
            with av.open(str(extra)) as more:
                for packet in first_packets(more, 3):
                    packet.pts, packet.dts = after + int(packet.pts), after + int(packet.dts)
                    packet.stream = vout
                    out.mux(packet)
    return target


def first_packets(container: Any, count: int) -> Iterator[Any]:
    """The first ``count`` video packets (a keyframe and what follows it)."""
    demuxed = (p for p in container.demux(container.streams.video[0]) if p.dts is not None)
    return itertools.islice(demuxed, count)


def reencode(source: Path | str, target: Path, codec: str, options: dict[str, str]) -> Path:
    """The same pictures encoded otherwise (the service may return another encoding)."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream(codec, rate=FPS, options=options)
        vout.width, vout.height, vout.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if codec == "libx265":
            vout.codec_tag = "hvc1"
        for number, frame in enumerate(inp.decode(vin)):
            frame.pts, frame.time_base = number, Fraction(1, FPS)
            for packet in vout.encode(frame):
                out.mux(packet)
        for packet in vout.encode(None):
            out.mux(packet)
    return target


def leftovers(folder: Path) -> list[str]:
    """Half-written outputs (atomic_output's hidden ``.part`` files)."""
    return sorted(name for name in os.listdir(folder) if name.endswith(".part"))


# --------------------------------------------------------------------------- planning
def assert_well_cut(plan: preflight.SplitPlan, voice: Path, max_part_s: float) -> None:
    """Every cut in a pause clear of speech, every part within limits, no gap or overlap."""
    _, speech = preflight.speech_ranges(voice)
    assert speech, "the voice must hold speech for the cuts to mean anything"
    assert plan.fps == FPS
    assert plan.parts[0].start_frame == 0 and plan.parts[0].start_s == 0.0
    for part in plan.parts:
        assert part.index == plan.parts.index(part)
        assert MIN_PART_S <= part.seconds <= max_part_s, part
        assert MIN_PART_S <= part.frames / FPS <= max_part_s, part
        assert part.start_s == pytest.approx(part.start_frame / FPS, abs=1e-9)
    for part, following in zip(plan.parts, plan.parts[1:], strict=False):
        assert part.end_frame == following.start_frame
        assert part.end_s == following.start_s == pytest.approx(part.end_frame / FPS, abs=1e-9)
        cut = part.end_s
        assert part.pause is not None and part.pause[0] + CUT_MARGIN_S <= cut + 1e-9
        assert cut <= part.pause[1] - CUT_MARGIN_S + 1e-9, part
        for begin, end in speech:
            assert cut <= begin - CUT_MARGIN_S + 1e-9 or cut >= end + CUT_MARGIN_S - 1e-9, (
                f"the cut at {cut:.3f} s falls in the speech from {begin:.2f} to {end:.2f} s"
            )
    assert plan.parts[-1].pause is None


@pytest.mark.parametrize(
    ("video_name", "max_part_s"), [("keyed", 12), ("keyed", 20), ("sparse", 12), ("sparse", 20)]
)
def test_cuts_fall_in_pauses_never_in_speech(
    request: pytest.FixtureRequest, voice: Path, video_name: str, max_part_s: float
) -> None:
    video: Path = request.getfixturevalue(video_name)
    plan = preflight.plan_split(video, voice, max_part_s=max_part_s)
    assert len(plan.parts) >= math.ceil(SECONDS / max_part_s)
    assert_well_cut(plan, voice, max_part_s)
    assert plan.length_s == SECONDS
    assert plan.parts[-1].end_frame == FRAMES and plan.parts[-1].end_s == SECONDS


@pytest.mark.parametrize(
    ("voice_name", "extend", "length_s", "end_frame"),
    [
        ("long_voice", False, SECONDS, FRAMES),  # the video is the shorter
        ("long_voice", True, 45.0, FRAMES),  # the service extends the video to the voice
        ("short_voice", False, 35.0, 35 * FPS),  # the voice is the shorter
        ("short_voice", True, 35.0, 35 * FPS),  # nothing to extend
    ],
)
def test_the_last_part_ends_with_the_shorter_input_or_the_voice_when_extended(
    request: pytest.FixtureRequest,
    keyed: Path,
    voice_name: str,
    extend: bool,
    length_s: float,
    end_frame: int,
) -> None:
    voice: Path = request.getfixturevalue(voice_name)
    plan = preflight.plan_split(keyed, voice, extend=extend, max_part_s=12)
    assert plan.extend is extend
    assert plan.length_s == pytest.approx(length_s, abs=1e-6)
    last = plan.parts[-1]
    assert last.end_s == pytest.approx(length_s, abs=1e-6) and last.end_frame == end_frame
    if length_s > SECONDS:
        # The picture stops at 40 s and the service makes the rest: the last part's voice
        # runs past its picture, and is what is held to the limit.
        assert last.frames / FPS < last.seconds <= 12
    assert_well_cut(plan, voice, 12)


def test_a_job_that_fits_is_one_part(keyed: Path, voice: Path) -> None:
    for max_part_s in (MAX_PART_S, 45.0):
        plan = preflight.plan_split(keyed, voice, max_part_s=max_part_s)
        assert len(plan.parts) == 1 and plan.copy
        only = plan.parts[0]
        assert (only.start_frame, only.end_frame, only.start_s, only.end_s) == (0, FRAMES, 0.0, SECONDS)
        assert only.pause is None


def test_a_plan_survives_its_json_form(keyed: Path, voice: Path) -> None:
    plan = preflight.plan_split(keyed, voice, max_part_s=12)
    assert preflight.SplitPlan.from_dict(plan.to_dict()) == plan


# --------------------------------------------------------------------------- no way to cut
def buzz(seconds: float) -> np.ndarray:
    """A voice held without a break (130 Hz and its harmonics)."""
    t = np.arange(round(seconds * RATE)) / RATE
    tone = np.zeros_like(t)
    for harmonic in range(1, 12):
        tone += np.sin(2 * np.pi * 130 * harmonic * t) / harmonic
    return 0.1 * tone


def test_speech_without_a_pause_long_enough_is_not_cut_mid_word(
    media: Any, keyed: Path, tmp_path: Path
) -> None:
    # 3 s of room, 17 s of speech without a break, 1 s of room, 9 s of speech.
    room = np.random.default_rng(3).normal(0.0, 10 ** (-66 / 20), 30 * RATE)
    signal = room.copy()
    signal[3 * RATE : 20 * RATE] += buzz(17)
    signal[21 * RATE : 30 * RATE] += buzz(9)
    talk = media.write_audio(tmp_path / "unbroken.wav", signal=signal, sample_rate=RATE)

    with pytest.raises(preflight.SplitError) as caught:
        preflight.plan_split(keyed, talk, max_part_s=12)
    assert isinstance(caught.value, PreflightError)
    message = str(caught.value)
    found = re.search(r"from (\d+\.\d) s to (\d+\.\d) s without a pause", message)
    assert found, message
    begin, end = float(found[1]), float(found[2])
    # The stretch named is the one that holds the unbroken speech: 3-20 s, and the cuts
    # around it fall in the silences either side.
    assert 0.0 <= begin <= 3.0 and 20.0 <= end <= 21.0, message
    assert "12 s" in message

    # Parts of up to 25 s can hold it: then the cut is in the one-second pause.
    plan = preflight.plan_split(keyed, talk, max_part_s=25)
    assert len(plan.parts) == 2
    assert 20.0 + CUT_MARGIN_S <= plan.parts[0].end_s <= 21.0 - CUT_MARGIN_S


def write_dropping_video(path: Path, seconds: float) -> Path:
    """A phone's clip: 25 fps, but every tenth frame dropped (its neighbour lasts 80 ms),
    so frame k is not at k / fps and a part's frame count does not give its length."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 128, 72, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        picture = np.zeros((72, 128, 3), np.uint8)
        slots = [slot for slot in range(round(seconds * 25)) if slot % 10 != 9]
        for slot in slots:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = slot * 40, Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_a_video_without_a_steady_frame_rate_is_not_cut(voice: Path, tmp_path: Path) -> None:
    dropping = write_dropping_video(tmp_path / "dropping.mp4", SECONDS)
    with pytest.raises(preflight.SplitError, match="frame rate is not constant"):
        preflight.plan_split(dropping, voice, max_part_s=20)


def test_frames_a_little_off_the_beat_still_come_at_a_steady_rate(
    media: Any, voice: Path, tmp_path: Path
) -> None:
    """write_video(vfr=True) shifts every other frame by a fifth of a frame: within half
    a frame of its place, so frame k still shows at frame k's instant, and it is cut."""
    jittery = media.write_video(
        tmp_path / "jittery.mp4", width=128, height=72, duration=SECONDS, vfr=True, audio=False
    )
    plan = preflight.plan_split(jittery, voice, max_part_s=20)
    assert len(plan.parts) == 3 and plan.parts[-1].end_s == SECONDS


# --------------------------------------------------------------------------- the parts
@pytest.mark.parametrize("name", ["copied", "encoded"])
def test_each_part_holds_exactly_its_frames_and_its_voice(
    request: pytest.FixtureRequest, media: Any, name: str
) -> None:
    split: Split = request.getfixturevalue(name)
    plan = split.plan
    assert len(split.parts) == len(plan.parts) >= 3
    assert [Path(p.video).name for p in split.parts][:2] == ["part-01.mp4", "part-02.mp4"]
    source_keys = keyframes(split.video)
    if name == "copied":
        # A keyframe every second: the planner picks pauses that hold one, and copies.
        assert plan.copy
        assert all(part.start_frame in source_keys for part in plan.parts)
        source_packets = sorted(packets(split.video), key=lambda p: int(p.pts))
    else:
        # Few keyframes: the parts start where the pauses are, and are encoded.
        assert not plan.copy
        assert any(part.start_frame not in source_keys for part in plan.parts)
    said = pcm(split.voice)
    for part, files in zip(plan.parts, split.parts, strict=True):
        stored = packets(files.video)
        assert stored[0].is_keyframe, f"part {part.index + 1} does not start on a keyframe"
        if plan.copy:
            originals = source_packets[part.start_frame : part.end_frame]
            assert sorted(bytes(p) for p in stored) == sorted(bytes(p) for p in originals)
        frames = media.counted_frames(files.video)
        assert numbers(frames) == list(range(part.start_frame, part.end_frame)), f"part {part.index + 1}"
        assert_on_time(frames, part.start_frame)
        with av.open(files.video) as container:
            assert not container.streams.audio and container.streams.video[0].codec_context.name == "h264"

        voice_part = pcm(files.audio)
        first, last = round(part.start_s * RATE), round(part.end_s * RATE)
        assert len(voice_part) == last - first
        assert np.array_equal(voice_part, said[first:last]), f"part {part.index + 1}'s voice"
    # Together the voice parts are the whole voice, sample for sample.
    assert np.array_equal(np.concatenate([pcm(files.audio) for files in split.parts]), said)


def test_a_video_the_fixer_encodes_gets_keyframes_at_the_cuts_and_is_cut_by_copying(
    media: Any, voice: Path, tmp_path: Path
) -> None:
    """10 fps is re-encoded at 20 fps anyway: told where the job will be cut (from the
    voice alone), the fixer puts keyframes there, so the parts are packet copies."""
    slow = media.write_video(
        tmp_path / "slow.mp4", width=640, height=640, fps=10, duration=SECONDS, audio=False, gop=250
    )
    times = preflight.cut_times(voice, SECONDS, max_part_s=12)
    assert len(times) >= 3
    fixed = fix_paths(
        video=slow,
        out_dir=tmp_path / "fixed",
        options=FixOptions(preset="ultrafast", max_duration_s=None, keyframes_at=times),
    )
    (done,) = fixed.files
    assert done.ok and done.output is not None and "fps" in [a.name for a in done.actions]
    plan = preflight.plan_split(done.output, voice, max_part_s=12)

    assert plan.copy
    assert [p.start_s for p in plan.parts[1:]] == pytest.approx(times, abs=0.5 / float(plan.fps))
    assert {p.start_frame for p in plan.parts} <= keyframes(Path(done.output))


# --------------------------------------------------------------------------- joining
def test_the_parts_as_sent_join_by_copy_without_a_seam(split: Split, media: Any, tmp_path: Path) -> None:
    output = tmp_path / "joined.mp4"
    report = preflight.join_parts(
        [p.video for p in split.parts], split.voice, split.plan, output, preset="ultrafast"
    )

    assert report.video == "copy" and report.notes == ()
    assert report.frames == FRAMES and report.length_s == SECONDS
    frames = media.counted_frames(output)
    assert numbers(frames) == list(range(FRAMES))
    assert_on_time(frames)
    voice = as_float(pcm(split.voice))
    sound = heard(output)
    assert abs(len(sound) - len(voice)) <= AAC_FRAME
    assert lag_of(sound[: len(voice)], voice, 0) == 0
    assert_seamless(sound, voice, seams(split.plan))


def test_a_voice_track_made_ahead_joins_as_seamlessly_as_one_made_at_the_join(
    copied: Split, media: Any, tmp_path: Path
) -> None:
    track = tmp_path / "voice.m4a"
    preflight.encode_voice(copied.voice, copied.plan, track)
    output = tmp_path / "joined.mp4"
    report = preflight.join_parts(
        [p.video for p in copied.parts], copied.voice, copied.plan, output, voice_track=track
    )

    assert report.video == "copy"
    assert numbers(media.counted_frames(output)) == list(range(FRAMES))
    voice = as_float(pcm(copied.voice))
    sound = heard(output)
    assert abs(len(sound) - len(voice)) <= AAC_FRAME
    assert lag_of(sound[: len(voice)], voice, 0) == 0
    assert_seamless(sound, voice, seams(copied.plan))


def test_an_abandoned_voice_track_leaves_nothing(copied: Split, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(preflight.SplitError):
        preflight.encode_voice(copied.voice, copied.plan, tmp_path / "voice.m4a", stop=stop)
    assert leftovers(tmp_path) == [] and not (tmp_path / "voice.m4a").exists()


def test_parts_encoded_with_b_frames_join_by_copy_in_order(
    sparse: Path, voice: Path, media: Any, tmp_path: Path
) -> None:
    """x264's usual settings reorder frames (B-frames): each part's first packets are
    decoded before they are shown, and the joined file must still show every frame once."""
    plan = preflight.plan_split(sparse, voice, max_part_s=12)
    assert not plan.copy
    parts = preflight.write_parts(sparse, voice, plan, tmp_path / "parts", preset="veryfast")
    with av.open(str(parts[1].video)) as container:
        reordered = [(p.pts, p.dts) for p in container.demux(video=0) if p.dts is not None]
    assert any(pts != dts for pts, dts in reordered)  # B-frames indeed
    output = tmp_path / "joined.mp4"
    report = preflight.join_parts([p.video for p in parts], voice, plan, output)

    assert report.video == "copy"
    frames = media.counted_frames(output)
    assert numbers(frames) == list(range(FRAMES))
    assert_on_time(frames)


def test_the_seam_check_catches_a_lost_or_added_aac_frame(copied: Split, tmp_path: Path) -> None:
    """The check above would fail on sound joined from separately encoded parts, where a
    priming block is lost or a gap added at a join: everything after it moves by 1024
    samples, while the file is still within one AAC frame of the voice's length."""
    output = tmp_path / "joined.mp4"
    preflight.join_parts([p.video for p in copied.parts], copied.voice, copied.plan, output)
    voice = as_float(pcm(copied.voice))
    sound = heard(output)
    at = round(seams(copied.plan)[0] * RATE)
    lost = np.delete(sound, np.s_[at : at + AAC_FRAME])
    gap = np.insert(sound, at, np.zeros(AAC_FRAME))
    for doctored, moved in ((lost, -AAC_FRAME), (gap, AAC_FRAME)):
        sides = seam_sides(doctored, voice, seams(copied.plan))
        assert sides[0].lag == 0 and sides[0].snr_db >= MIN_SNR_DB  # before the first join
        assert sides[1].lag == moved and sides[1].snr_db < 0  # after it, off by one frame
        with pytest.raises(AssertionError):
            assert_seamless(doctored, voice, seams(copied.plan))
    assert abs(len(lost) - len(voice)) <= AAC_FRAME


@pytest.mark.parametrize(
    ("codec", "options"),
    [
        ("libx264", {"preset": "veryfast", "crf": "23"}),  # CABAC and B-frames: other headers
        ("libx265", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    ],
)
def test_a_result_encoded_differently_is_joined_by_encoding(
    media: Any, copied: Split, tmp_path: Path, codec: str, options: dict[str, str]
) -> None:
    results = [p.video for p in copied.parts]
    # The last part: the shortest to encode here.
    results[-1] = str(reencode(results[-1], tmp_path / "other.mp4", codec, options))
    output = tmp_path / "joined.mp4"
    report = preflight.join_parts(results, copied.voice, copied.plan, output, preset="ultrafast")

    assert report.video == "encode" and report.frames == FRAMES
    last = len(results)
    assert report.notes == (
        f"the results were joined by encoding: part {last} is encoded differently from part 1",
    )
    frames = media.counted_frames(output)
    assert numbers(frames) == list(range(FRAMES))
    assert_on_time(frames)
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert_seamless(heard(output), as_float(pcm(copied.voice)), seams(copied.plan))


@pytest.mark.parametrize("which", [1, 2])
def test_a_result_a_few_frames_short_has_its_last_frame_held(
    media: Any, copied: Split, tmp_path: Path, which: int
) -> None:
    part = copied.plan.parts[which]
    results = [p.video for p in copied.parts]
    results[which] = str(copy_packets(results[which], tmp_path / "short.mp4", np.s_[:-3]))
    output = tmp_path / "joined.mp4"
    report = preflight.join_parts(results, copied.voice, copied.plan, output, preset="ultrafast")

    assert report.video == "encode" and report.frames == FRAMES
    assert report.notes == (
        f"the results were joined by encoding: part {which + 1} has {part.frames - 3} frames, "
        f"not the {part.frames} it was sent with",
        f"part {which + 1}: the result was 3 frame(s) short; its last was held",
    )
    frames = media.counted_frames(output)
    expected = list(range(FRAMES))
    held = part.end_frame - 4
    expected[part.end_frame - 3 : part.end_frame] = [held] * 3
    assert numbers(frames) == expected
    assert_on_time(frames)  # the next part still starts at its own frame
    assert_seamless(heard(output), as_float(pcm(copied.voice)), seams(copied.plan))


def test_a_result_a_few_frames_long_has_the_extra_ones_dropped(
    media: Any, copied: Split, tmp_path: Path
) -> None:
    results = [p.video for p in copied.parts]
    # Part 2's result runs on into three frames of part 3 (numbered as part 3's).
    results[1] = str(copy_packets(results[1], tmp_path / "long.mp4", np.s_[:], extra=results[2]))
    output = tmp_path / "joined.mp4"
    report = preflight.join_parts(results, copied.voice, copied.plan, output, preset="ultrafast")

    assert report.video == "encode" and report.frames == FRAMES
    part = copied.plan.parts[1]
    assert report.notes == (
        f"the results were joined by encoding: part 2 has {part.frames + 3} frames, "
        f"not the {part.frames} it was sent with",
    )
    frames = media.counted_frames(output)
    assert numbers(frames) == list(range(FRAMES))
    assert_on_time(frames)


# --------------------------------------------------------------------------- atomic outputs
class Stop:
    """An ``on_progress`` that interrupts (as Ctrl-C would) on its ``at``-th call."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls = 0

    def __call__(self, fraction: float) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt


def test_an_interrupted_split_leaves_only_whole_parts(split: Split, media: Any, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    with pytest.raises(KeyboardInterrupt):
        preflight.write_parts(
            split.video, split.voice, split.plan, folder, preset="ultrafast", on_progress=Stop(2)
        )
    # Interrupted once the second part was written: the two are whole, nothing else is
    # there, not even half a file under a hidden name.
    assert sorted(os.listdir(folder)) == ["part-01.mp4", "part-02.mp4"]
    for part in split.plan.parts[:2]:
        frames = media.counted_frames(folder / f"part-{part.index + 1:02d}.mp4")
        assert numbers(frames) == list(range(part.start_frame, part.end_frame))

    # Run again, it writes them all.
    again = preflight.write_parts(split.video, split.voice, split.plan, folder, preset="ultrafast")
    assert sorted(os.listdir(folder)) == sorted(
        name for files in again for name in (Path(files.video).name, Path(files.audio).name)
    )
    assert leftovers(folder) == []


def test_an_interrupted_join_leaves_no_output(copied: Split, tmp_path: Path) -> None:
    output = tmp_path / "joined.mp4"
    stop = Stop(1)
    with pytest.raises(KeyboardInterrupt):
        preflight.join_parts(
            [p.video for p in copied.parts], copied.voice, copied.plan, output, on_progress=stop
        )
    assert stop.calls == 1
    assert os.listdir(tmp_path) == []
