"""A job longer than the service takes, cut into parts it does take, and the lip-synced
parts joined back into one video.

Voice and video are cut at the same instants: in pauses of the speech (never inside a
word), on video frame boundaries, so both halves of a part last the same. Each part is
sent as its own task. The joined result has the parts' pictures end to end, each placed
at the frame it was cut at, under the whole voice encoded once: the sound runs on across
the joins without a seam, and the picture cannot drift from it.

The video is cut by copying packets when every cut falls on a clean keyframe (the
planner prefers pauses that hold one); otherwise each part is encoded (x264, the
fixer's quality). The results are joined by copying packets when they fit together,
else by encoding once.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import os
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

from .. import limits
from .._atomic import atomic_output
from .._exceptions import PreflightError
from .._local_file import local_file
from .._probe.frames import Prefetch
from .._probe.voice import speech_ranges

#: The longest part: a second under the service's limit, for its own rounding.
MAX_PART_S = limits.MAX_DURATION_S - 1.0
#: The shortest part: a second over the service's minimum.
MIN_PART_S = limits.MIN_DURATION_S + 1.0
#: A cut keeps at least this far from speech.
CUT_MARGIN_S = 0.06
#: Pauses this long or longer are good places to cut; shorter ones only when needed.
GOOD_PAUSE_S = 0.6
#: A long pause (or silence) offers a place to cut about every this many seconds.
SPREAD_S = 1.0
#: Half a frame at the lowest frame rate the service takes, and then some: how far a
#: cut planned in seconds may move once it lands on a frame.
GRID_SLACK_S = 0.05
#: Share of the size limit a copied part may fill (the rest is the container's)...
PART_SIZE_HEADROOM = 0.95
#: ...and an encoded one aims at, when the pictures are that dense.
SIZE_HEADROOM = 0.9
#: The joined voice: AAC at this rate (transparent for speech).
JOIN_AUDIO_BIT_RATE = 192_000
PIXEL_FORMAT = "yuv420p"

Progress = Callable[[float], None]
#: A voice's length (s) and its speech stretches, as ``speech_ranges`` gives them.
Speech = tuple[float, tuple[tuple[float, float], ...]]


class SplitError(PreflightError):
    """The job cannot be cut into parts the service takes (no pause where one is needed,
    a video without a steady frame rate)."""


@dataclass(frozen=True)
class Part:
    """One part: video frames ``[start_frame, end_frame)`` and the voice from ``start_s``
    to ``end_s`` (the same span, except that the last part's voice may run past its video:
    by the service's extension, or by the frames cut so that its video never runs past it)."""

    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    #: The pause (s) the part's end was cut in (None for the last part).
    pause: tuple[float, float] | None = None

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "pause": list(self.pause) if self.pause is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Part:
        pause = data.get("pause")
        return cls(
            int(data["index"]),
            int(data["start_frame"]),
            int(data["end_frame"]),
            float(data["start_s"]),
            float(data["end_s"]),
            (float(pause[0]), float(pause[1])) if pause else None,
        )


@dataclass(frozen=True)
class SplitPlan:
    """Where a long job is cut."""

    fps: Fraction
    #: Length (s) of the joined result: the shorter input, or the voice when extended.
    length_s: float
    parts: tuple[Part, ...]
    #: Every cut falls on a clean keyframe: the video parts are packet copies.
    copy: bool
    #: The last part's video is extended by the service to its voice.
    extend: bool = False
    #: A rate ceiling (bit/s) for encoded parts whose pictures would not fit otherwise.
    max_rate: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fps": [self.fps.numerator, self.fps.denominator],
            "length_s": self.length_s,
            "copy": self.copy,
            "extend": self.extend,
            "max_rate": self.max_rate,
            "parts": [p.to_dict() for p in self.parts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitPlan:
        num, den = data["fps"]
        return cls(
            Fraction(int(num), int(den)),
            float(data["length_s"]),
            tuple(Part.from_dict(p) for p in data["parts"]),
            bool(data["copy"]),
            bool(data.get("extend", False)),
            data.get("max_rate"),
        )


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class _Timeline:
    """The video's frames as the demuxer lists them (no decoding)."""

    fps: Fraction
    frames: int
    #: Frames a part can start at when packets are copied: keyframes that no packet
    #: decoded before shows after, and none decoded after shows before.
    clean: frozenset[int]
    copyable: bool
    #: Bytes of each frame's packet, in display order (what a copied part weighs).
    sizes: tuple[int, ...] = ()
    #: Frame counts a copied part can end at: the packets of the frames before are the
    #: first ones decoded, so the part carries no frame of after its end as a reference.
    ends: frozenset[int] = frozenset()


def _timeline(path: str) -> _Timeline:
    with av.open(local_file(path)) as container:
        if not container.streams.video:
            raise SplitError(f"{path}: no video stream to cut")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise SplitError(f"{path}: the video's frame rate is unknown; it cannot be cut into parts")
        fps = Fraction(rate)
        # Packets an edit list discards are never shown: they are not frames of the video.
        entries = [
            (int(p.pts), bool(p.is_keyframe), p.size)
            for p in container.demux(stream)
            if p.dts is not None and p.pts is not None and not p.is_discard
        ]
        time_base = stream.time_base or Fraction(1, 90000)
        copyable = stream.codec_context.name in limits.VIDEO_CODECS and container.format.name in (
            limits.VIDEO_CONTAINERS
        )
    if not entries:
        raise SplitError(f"{path}: the video has no frames with timestamps; it cannot be cut")
    shown = sorted(pts for pts, _, _ in entries)
    first = shown[0]
    # A part's length is its frame count over the rate: the frames must come evenly.
    worst = max(abs(float((pts - first) * time_base) - i / float(fps)) for i, pts in enumerate(shown))
    if worst > 0.5 / float(fps):
        raise SplitError(
            f"{path}: the frame rate is not constant (a frame is {worst * 1000:.0f} ms off the "
            f"{float(fps):.3f} fps grid); fix the video first (preflight fix makes it constant)"
        )
    rank = {pts: i for i, pts in enumerate(shown)}
    # Clean keyframe at decode position k: every earlier packet shows before it, every
    # later one at or after it (no open-GOP leading pictures across the cut).
    count = len(entries)
    before_max = [-math.inf] * count
    running = -math.inf
    for k, (pts, _, _) in enumerate(entries):
        before_max[k] = running
        running = max(running, pts)
    after_min = [math.inf] * count
    running = math.inf
    for k in range(count - 1, -1, -1):
        running = min(running, entries[k][0])
        after_min[k] = running
    clean = frozenset(
        rank[pts]
        for k, (pts, key, _) in enumerate(entries)
        if key and before_max[k] < pts and after_min[k] == pts
    )
    sizes = [0] * len(shown)
    for pts, _, size in entries:
        sizes[rank[pts]] = size
    ends = set()
    latest = -1
    for k, (pts, _, _) in enumerate(entries, start=1):
        latest = max(latest, rank[pts])
        if latest == k - 1:
            ends.add(k)
    return _Timeline(fps, len(shown), clean, copyable, tuple(sizes), frozenset(ends))


def _end_frame(timeline: _Timeline, length_s: float, start: int, copy: bool) -> int:
    """Where the last part's video ends: at the job's end, never past it (a video longer
    than its voice comes back cut short by the service, and the results no longer join
    by copying); when copied, at a frame no earlier packet refers past."""
    whole = math.floor(length_s * float(timeline.fps) + 1e-6)
    if whole >= timeline.frames:
        return timeline.frames
    if not copy:
        return max(whole, start + 1)
    return max((f for f in timeline.ends if start < f <= whole), default=max(whole, start + 1))


@dataclass(frozen=True)
class _Cut:
    frame: int
    seconds: float
    clean: bool
    pause: tuple[float, float]


def _candidates(pauses: Sequence[tuple[float, float]], timeline: _Timeline, before_s: float) -> list[_Cut]:
    """Places to cut: in each pause, the frame nearest its middle and the clean keyframe
    nearest its middle (they are often the same), and in a long pause a frame every
    second or so as well (with a keyframe near each when there is one), all before
    ``before_s``."""
    fps = float(timeline.fps)
    cuts: dict[int, _Cut] = {}
    for start, stop in pauses:
        first = math.ceil((start + CUT_MARGIN_S) * fps)
        last = math.floor((stop - CUT_MARGIN_S) * fps)
        last = min(last, math.ceil(before_s * fps) - 1)
        first = max(first, 1)
        if first > last:
            continue
        keys = [f for f in range(first, last + 1) if f in timeline.clean]
        middle = (start + stop) / 2 * fps
        spots = {min(max(round(middle), first), last)}
        step = max(1, round(SPREAD_S * fps))
        spots.update(range(first, last + 1, step))
        for spot in spots:
            cuts.setdefault(spot, _Cut(spot, spot / fps, spot in timeline.clean, (start, stop)))
            if keys:
                # The keyframe nearest the spot (keys are sorted).
                at = bisect.bisect_left(keys, spot)
                key = min(keys[max(0, at - 1) : at + 1], key=lambda f: abs(f - spot))
                if abs(key - spot) <= step:
                    cuts[key] = _Cut(key, key / fps, True, (start, stop))
    return [cuts[f] for f in sorted(cuts)]


def _choose(
    cuts: list[_Cut], end_s: float, video_end_s: float, max_part_s: float, prefer_clean: bool
) -> list[_Cut] | None:
    """The cuts that make the fewest parts; among those, the most clean keyframes (when
    ``prefer_clean``), then the longest pauses and the most even parts. None when no set
    of cuts keeps every part within limits."""
    count = math.ceil(end_s / max_part_s)
    even = end_s / count
    times = [0.0] + [c.seconds for c in cuts]
    Cost = tuple[int, int, float]
    best: list[Cost | None] = [None] * (len(cuts) + 1)
    back: list[int] = [-1] * (len(cuts) + 1)
    best[0] = (0, 0, 0.0)

    def shape(length: float) -> float:
        return ((length - even) / even) ** 2

    for j, cut in enumerate(cuts, start=1):
        lo = bisect.bisect_left(times, cut.seconds - max_part_s, 0, j)
        hi = bisect.bisect_right(times, cut.seconds - MIN_PART_S, 0, j)
        short = max(0.0, GOOD_PAUSE_S - (cut.pause[1] - cut.pause[0])) / GOOD_PAUSE_S
        for i in range(lo, hi):
            before = best[i]
            if before is None:
                continue
            cost = (
                before[0] + 1,
                before[1] + (0 if cut.clean or not prefer_clean else 1),
                before[2] + short + shape(cut.seconds - times[i]),
            )
            current = best[j]
            if current is None or cost < current:
                best[j], back[j] = cost, i
    final: Cost | None = None
    last = -1
    for i, start in enumerate(times):
        before = best[i]
        if before is None or end_s - start > max_part_s:
            continue
        if end_s - start < MIN_PART_S or video_end_s - start < MIN_PART_S:
            continue
        cost = (before[0] + 1, before[1], before[2] + shape(end_s - start))
        if final is None or cost < final:
            final, last = cost, i
    if final is None:
        return None
    chosen: list[_Cut] = []
    while last > 0:
        chosen.append(cuts[last - 1])
        last = back[last]
    return chosen[::-1]


def _no_way_to_cut(cuts: list[_Cut], end_s: float, max_part_s: float, heard_speech: bool) -> str:
    if not heard_speech:
        return f"no speech was heard in the voice, and {end_s:.1f} s of it cannot be cut into parts"
    times = [0.0] + [c.seconds for c in cuts] + [end_s]
    for a, b in itertools.pairwise(times):
        if b - a > max_part_s:
            return (
                f"the speech runs from {a:.1f} s to {b:.1f} s without a pause to cut at (a part "
                f"may last at most {max_part_s:.0f} s, and a cut never falls inside a word)"
            )
    return (
        f"no set of cuts at the pauses gives parts of {MIN_PART_S:.0f}-{max_part_s:.0f} s over {end_s:.1f} s"
    )


def plan_split(
    video: str | os.PathLike[str],
    audio: str | os.PathLike[str],
    *,
    extend: bool = False,
    max_part_s: float = MAX_PART_S,
    speech: Speech | None = None,
) -> SplitPlan:
    """Where to cut ``video`` and ``audio`` (ready for the service but for their length)
    into parts of at most ``max_part_s``. A job that fits is one part. ``extend``: the
    service extends the video to a longer voice (``video_extension``), so the result
    lasts as long as the voice. ``speech``: ``speech_ranges(audio)``, when known."""
    if not MIN_PART_S < max_part_s <= limits.MAX_DURATION_S:
        raise SplitError(f"a part must last {MIN_PART_S:.0f}-{limits.MAX_DURATION_S:.0f} s")
    timeline = _timeline(os.fspath(video))
    audio_s, ranges = speech if speech is not None else speech_ranges(audio)
    if audio_s <= 0:
        raise SplitError(f"{os.fspath(audio)}: no audio could be decoded")
    return _plan(timeline, audio_s, ranges, extend, max_part_s)


def cut_times(
    audio: str | os.PathLike[str],
    video_s: float,
    *,
    extend: bool = False,
    max_part_s: float = MAX_PART_S,
    speech: Speech | None = None,
) -> tuple[float, ...]:
    """Where a job would be cut (s), from the voice alone and the video's length: an
    encoder that puts keyframes there lets ``plan_split`` cut its output by copying."""
    grid = Fraction(1000)  # a millisecond grid stands in for the frames, yet unknown
    timeline = _Timeline(grid, math.floor(video_s * 1000), frozenset(), copyable=False)
    audio_s, ranges = speech if speech is not None else speech_ranges(audio)
    if audio_s <= 0:
        return ()
    # Planned a little short, and each cut moved a little further from the speech: on
    # the video's own frames the cut moves by up to half a frame.
    plan = _plan(timeline, audio_s, ranges, extend, max_part_s - 2 * GRID_SLACK_S)
    times = []
    for part in plan.parts[:-1]:
        start, stop = part.pause or (part.end_s, part.end_s)
        low, high = start + CUT_MARGIN_S + GRID_SLACK_S, stop - CUT_MARGIN_S - GRID_SLACK_S
        times.append(min(max(part.end_s, low), high) if low <= high else (start + stop) / 2)
    return tuple(times)


def _plan(
    timeline: _Timeline,
    audio_s: float,
    speech: tuple[tuple[float, float], ...],
    extend: bool,
    max_part_s: float,
) -> SplitPlan:
    fps = timeline.fps
    video_s = timeline.frames / float(fps)
    longer_voice = extend and audio_s > video_s
    length = audio_s if longer_voice else min(video_s, audio_s)
    # A job the service takes whole is one part (its own limit, not the parts' margin).
    if length <= max_part_s + (limits.MAX_DURATION_S - MAX_PART_S):
        whole_copy = timeline.copyable and 0 in timeline.clean
        only = Part(0, 0, _end_frame(timeline, length, 0, whole_copy), 0.0, length)
        return SplitPlan(fps, length, (only,), copy=whole_copy, extend=extend)
    if longer_voice and audio_s - video_s > max_part_s - MIN_PART_S:
        raise SplitError(
            f"the voice runs {audio_s - video_s:.1f} s past the video's end; only the last part can be "
            f"extended (--extend-video), so it may run at most {max_part_s - MIN_PART_S:.0f} s past it"
        )
    pauses = [(a[1], b[0]) for a, b in itertools.pairwise(speech)]
    # Silence before the first word and after the last is a pause too.
    if speech:
        pauses = [(0.0, speech[0][0]), *pauses, (speech[-1][1], audio_s)]
    else:
        pauses = [(0.0, audio_s)]
    cuts = _candidates(pauses, timeline, min(video_s, length))
    # Packets are copied only when the first frame is a clean keyframe too (an edit list
    # can hide the stream's own first keyframe).
    copyable = timeline.copyable and 0 in timeline.clean
    chosen = _choose(cuts, length, video_s, max_part_s, prefer_clean=copyable)
    if chosen is None:
        raise SplitError(_no_way_to_cut(cuts, length, max_part_s, bool(speech)))
    starts = [0, *(c.frame for c in chosen)]
    ends = [*(c.frame for c in chosen), _end_frame(timeline, length, starts[-1], copyable)]
    heaviest = (
        max(sum(timeline.sizes[a:b]) for a, b in zip(starts, ends, strict=True)) if timeline.sizes else 0
    )
    too_big = heaviest > limits.VIDEO_MAX_BYTES * PART_SIZE_HEADROOM
    copy = copyable and all(c.clean for c in chosen) and not too_big
    if not copy and copyable:
        # Encoded anyway: pick the best pauses, keyframes or not.
        chosen = _choose(cuts, length, video_s, max_part_s, prefer_clean=False) or chosen
    parts: list[Part] = []
    starts = [0, *(c.frame for c in chosen)]
    end_frame = _end_frame(timeline, length, starts[-1], copy)
    for index, start in enumerate(starts):
        if index == len(starts) - 1:
            parts.append(Part(index, start, end_frame, start / float(fps), length, None))
        else:
            cut = chosen[index]
            parts.append(Part(index, start, cut.frame, start / float(fps), cut.seconds, cut.pause))
    # Pictures too dense for a part to fit the size limit get a rate ceiling.
    max_rate = int(limits.VIDEO_MAX_BYTES * 8 * SIZE_HEADROOM / max_part_s) if too_big else None
    return SplitPlan(fps, length, tuple(parts), copy=copy, extend=extend, max_rate=max_rate)


# --------------------------------------------------------------------------- cutting
@dataclass(frozen=True)
class PartFiles:
    video: str
    audio: str


def part_names(folder: str | os.PathLike[str], count: int) -> list[PartFiles]:
    """Where the parts go: ``part-01.mp4`` and ``part-01.wav``..."""
    width = max(2, len(str(count)))
    base = Path(folder)
    return [
        PartFiles(str(base / f"part-{i + 1:0{width}d}.mp4"), str(base / f"part-{i + 1:0{width}d}.wav"))
        for i in range(count)
    ]


def write_parts(
    video: str | os.PathLike[str],
    audio: str | os.PathLike[str],
    plan: SplitPlan,
    folder: str | os.PathLike[str],
    *,
    preset: str = "medium",
    crf: int = 18,
    on_progress: Progress | None = None,
) -> list[PartFiles]:
    """Write each part's video (MP4, no sound) and voice (16-bit WAV) into ``folder``;
    every file appears whole under its name or not at all."""
    os.makedirs(folder, exist_ok=True)
    names = part_names(folder, len(plan.parts))
    total = max(1, sum(p.frames for p in plan.parts))

    def video_progress(frames: float) -> None:
        if on_progress is not None:
            on_progress(0.9 * min(1.0, frames / total))

    copied = False
    if plan.copy:
        try:
            _copy_video_parts(os.fspath(video), plan, names, video_progress)
            copied = True
        except SplitError:
            # The stream is not what its index promised: encode the parts instead (every
            # part written so far is rewritten).
            pass
    if not copied:
        _encode_video_parts(os.fspath(video), plan, names, preset, crf, video_progress)
    _write_audio_parts(os.fspath(audio), plan, names)
    if on_progress is not None:
        on_progress(1.0)
    return names


def _open_mp4(target: Path) -> Any:
    return av.open(local_file(target), "w", format="mp4", options={"movflags": "+faststart"})


def _copy_video_parts(source: str, plan: SplitPlan, names: list[PartFiles], progress: Progress) -> None:
    """Each part's packets, copied. Every part starts on a clean keyframe; the last one
    also keeps the packets decoded before its last frame that show after it (B-frames
    refer to them), so a picture in it never misses a reference."""

    def usable(packet: Any) -> bool:
        return packet.dts is not None and packet.pts is not None and not packet.is_discard

    # First pass, timestamps only: which frame each packet shows.
    with av.open(local_file(source)) as inp:
        order = [int(p.pts) for p in inp.demux(inp.streams.video[0]) if usable(p)]
    shown = sorted(order)
    rank = {pts: i for i, pts in enumerate(shown)}
    owner = [_part_of(rank[pts], plan) for pts in order]
    final = plan.parts[-1]
    last_needed = max(
        (k for k, pts in enumerate(order) if final.start_frame <= rank[pts] < final.end_frame), default=-1
    )
    # Second pass: the packets, streamed into one part's file at a time.
    current = -1
    with av.open(local_file(source)) as inp, ExitStack() as part_files:
        vin = inp.streams.video[0]
        out: Any = None
        vout: Any = None
        offset = 0
        position = 0
        for packet in inp.demux(vin):
            if not usable(packet):
                continue
            k, position = position, position + 1
            if k > last_needed:
                break
            part = owner[k]
            if part != current:
                if part < current:  # shown in an earlier part, decoded in a later one
                    raise SplitError(f"{source}: part {part + 1} does not end on a clean cut")
                part_files.close()
                if current >= 0:
                    progress(plan.parts[current].end_frame)
                current = part
                first = plan.parts[part]
                if rank[int(packet.pts)] != first.start_frame or not packet.is_keyframe:
                    raise SplitError(f"{source}: part {part + 1} does not start on a keyframe")
                temporary = part_files.enter_context(atomic_output(names[part].video))
                out = part_files.enter_context(_open_mp4(temporary))
                vout = out.add_stream_from_template(vin)
                # Timestamps from the part's first frame: it shows at 0.
                offset = shown[first.start_frame] - shown[0]
            packet.pts -= offset
            packet.dts -= offset
            packet.stream = vout
            out.mux(packet)
    if current != len(plan.parts) - 1:
        raise SplitError(f"{source}: the video ended before part {current + 2} of {len(plan.parts)}")
    progress(final.end_frame)


def _part_of(frame: int, plan: SplitPlan) -> int:
    """The part a frame belongs to; -1 before the first, the last part after its end (the
    frames the last part keeps only as references)."""
    starts = [p.start_frame for p in plan.parts]
    return bisect.bisect_right(starts, frame) - 1


def _decoded_frames(source: str) -> Generator[Any, None, None]:
    with av.open(local_file(source)) as inp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        yield from inp.decode(vin)


def _encode_video_parts(
    source: str, plan: SplitPlan, names: list[PartFiles], preset: str, crf: int, progress: Progress
) -> None:
    """Decode once, encode each part from its first frame (a keyframe by construction)."""
    fps = plan.fps
    frame_time_base = 1 / fps
    part_index = 0
    out: Any = None
    vout: Any = None
    # Leaving the stack closes the part's file, then renames it (or, on an error,
    # removes it): the container is entered after its temporary name.
    with Prefetch(_decoded_frames(source), depth=8) as frames, ExitStack() as part_files:

        def finish_part() -> None:
            nonlocal out, vout
            if out is not None:
                for packet in vout.encode(None):
                    out.mux(packet)
                part_files.close()
                out = vout = None

        for number, frame in enumerate(frames):
            while part_index < len(plan.parts) and number >= plan.parts[part_index].end_frame:
                finish_part()
                progress(number)
                part_index += 1
            if part_index >= len(plan.parts):
                break
            part = plan.parts[part_index]
            if out is None:
                temporary = part_files.enter_context(atomic_output(names[part_index].video))
                out = part_files.enter_context(_open_mp4(temporary))
                vout = out.add_stream("libx264", rate=fps)
                vout.width, vout.height = frame.width, frame.height
                vout.pix_fmt = PIXEL_FORMAT
                vout.thread_type = "AUTO"  # x264's frame threads (see _fix_video)
                vout.time_base = frame_time_base
                options = {"preset": preset, "crf": str(crf)}
                if plan.max_rate:
                    # One second of buffer: the part overshoots its ceiling by that at most.
                    options |= {"maxrate": str(plan.max_rate), "bufsize": str(plan.max_rate)}
                vout.options = options
            picture = frame.reformat(format=PIXEL_FORMAT) if frame.format.name != PIXEL_FORMAT else frame
            picture.pts = number - part.start_frame
            picture.time_base = frame_time_base
            picture.pict_type = PictureType.NONE  # the encoder chooses (its first is a keyframe)
            for packet in vout.encode(picture):
                out.mux(packet)
        finish_part()
    if part_index < len(plan.parts) - 1:
        raise SplitError(f"{source}: the video ended before part {part_index + 2} of {len(plan.parts)}")
    progress(sum(p.frames for p in plan.parts))


def _pcm_frames(source: str) -> tuple[int, str, Generator[np.ndarray, None, None]]:
    """The voice as interleaved 16-bit blocks (one row), with its rate and layout."""
    container = av.open(local_file(source))
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate
    # By count: a WAV without a channel mask names its layout "1 channels", which AAC refuses.
    layout = "stereo" if stream.channels == 2 else "mono"
    resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)

    def blocks() -> Generator[np.ndarray, None, None]:
        try:
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    yield converted.to_ndarray()
            for converted in resampler.resample(None):
                yield converted.to_ndarray()
        finally:
            container.close()

    return rate, layout, blocks()


def _write_audio_parts(source: str, plan: SplitPlan, names: list[PartFiles]) -> None:
    rate, layout, blocks = _pcm_frames(source)
    try:
        _write_audio_ranges(rate, layout, blocks, plan, names)
    finally:
        blocks.close()  # the input is closed now, not when collected


def _write_audio_ranges(
    rate: int, layout: str, blocks: Iterator[np.ndarray], plan: SplitPlan, names: list[PartFiles]
) -> None:
    channels = 2 if layout == "stereo" else 1
    bounds = [(round(p.start_s * rate), round(p.end_s * rate)) for p in plan.parts]
    pending = np.zeros((1, 0), dtype=np.int16)
    position = 0  # samples before ``pending``
    for (first, last), name in zip(bounds, names, strict=True):
        with atomic_output(name.audio) as temporary:
            with av.open(local_file(temporary), "w", format="wav") as out:
                aout = out.add_stream("pcm_s16le", rate=rate, layout=layout)
                written = first
                while written < last:
                    if position + pending.shape[1] // channels <= written:
                        try:
                            block = next(blocks)
                        except StopIteration:
                            break
                        position += pending.shape[1] // channels
                        pending = block
                        continue
                    begin = (written - position) * channels
                    stop = (min(last, position + pending.shape[1] // channels) - position) * channels
                    chunk = np.ascontiguousarray(pending[:, begin:stop])
                    frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
                    frame.sample_rate = rate
                    frame.pts = written - first
                    for packet in aout.encode(frame):
                        out.mux(packet)
                    written += chunk.shape[1] // channels
                for packet in aout.encode(None):
                    out.mux(packet)


# --------------------------------------------------------------------------- joining
@dataclass(frozen=True)
class JoinReport:
    #: ``copy``: the results' packets end to end; ``encode``: decoded and encoded once.
    video: str
    frames: int
    length_s: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Result:
    path: str
    codec: str
    width: int
    height: int
    extradata: bytes | None
    time_base: Fraction
    fps: Fraction | None
    packets: int


def _describe(path: str) -> _Result:
    with av.open(local_file(path)) as container:
        if not container.streams.video:
            raise SplitError(f"{path}: the result has no video")
        stream = container.streams.video[0]
        count = sum(1 for p in container.demux(stream) if p.dts is not None)
        ctx = stream.codec_context
        return _Result(
            path,
            ctx.name,
            ctx.width,
            ctx.height,
            bytes(ctx.extradata) if ctx.extradata else None,
            stream.time_base or Fraction(1, 90000),
            Fraction(stream.average_rate) if stream.average_rate else None,
            count,
        )


def join_parts(
    results: Sequence[str | os.PathLike[str]],
    audio: str | os.PathLike[str],
    plan: SplitPlan,
    output: str | os.PathLike[str],
    *,
    preset: str = "medium",
    crf: int = 18,
    on_progress: Progress | None = None,
    voice_track: str | os.PathLike[str] | None = None,
    before_publish: Callable[[Path], None] | None = None,
) -> JoinReport:
    """Join the lip-synced parts into ``output`` (MP4): each part's picture from the frame
    it was cut at, under ``audio`` (the whole voice that was sent) encoded once, or under
    ``voice_track`` when given (``encode_voice``'s output for this plan, made while the
    parts were away). ``before_publish(path)`` sees the whole joined file just before it
    takes its name."""
    if len(results) != len(plan.parts):
        raise SplitError(f"{len(results)} results for {len(plan.parts)} parts")
    described = [_describe(os.fspath(r)) for r in results]
    reason = _why_not_copy(described, plan)
    track = os.fspath(voice_track) if voice_track is not None else None

    def joined(notes: list[str] | None) -> JoinReport:
        return _join(
            described, os.fspath(audio), track, plan, output, notes, preset, crf, on_progress, before_publish
        )

    if reason is None:
        try:
            return joined(None)
        except _CopyFailed as exc:  # nothing is left of the attempt (an atomic output)
            reason = str(exc)
    return joined([f"the results were joined by encoding: {reason}"])


class _CopyFailed(SplitError):
    """The results' packets cannot be put end to end after all."""


def _join(
    described: list[_Result],
    audio: str,
    voice_track: str | None,
    plan: SplitPlan,
    output: str | os.PathLike[str],
    notes: list[str] | None,
    preset: str,
    crf: int,
    on_progress: Progress | None,
    before_publish: Callable[[Path], None] | None = None,
) -> JoinReport:
    """Copy the results' packets (``notes`` None), or encode them (``notes`` collects what
    was done to them)."""
    voice_s = plan.length_s
    with (
        av.open(local_file(described[0].path)) as template,
        atomic_output(output, before_publish) as temporary,
        _open_mp4(temporary) as out,
    ):
        counted = [0]
        if notes is None:
            vout = out.add_stream_from_template(template.streams.video[0])
            vout.time_base = described[0].time_base
            video_packets = _copied_packets(described, plan, vout)
            counted[0] = sum(d.packets for d in described)
        else:
            vout = out.add_stream("libx264", rate=plan.fps)
            vout.width, vout.height = described[0].width, described[0].height
            vout.pix_fmt = PIXEL_FORMAT
            vout.thread_type = "AUTO"
            vout.time_base = 1 / plan.fps
            vout.options = {"preset": preset, "crf": str(crf)}
            video_packets = _encoded_packets(described, plan, vout, counted, notes)
        if voice_track is not None:
            audio_packets = _track_packets(voice_track, out)
        else:
            _, audio_packets = _voice_packets(audio, out, voice_s)
        total = voice_s or 1.0

        def when(packet: Any) -> float:
            return float(packet.dts * packet.time_base) if packet.dts is not None else 0.0

        shown = 0.0
        for packet in heapq.merge(video_packets, audio_packets, key=when):
            moment = when(packet)
            out.mux(packet)
            if on_progress is not None and moment - shown > 1.0:
                shown = moment
                on_progress(min(1.0, moment / total))
    if on_progress is not None:
        on_progress(1.0)
    return JoinReport("copy" if notes is None else "encode", counted[0], voice_s, tuple(notes or ()))


def _why_not_copy(described: list[_Result], plan: SplitPlan) -> str | None:
    first = described[0]
    for part, result in zip(plan.parts, described, strict=True):
        name = f"part {part.index + 1}"
        if result.codec not in limits.VIDEO_CODECS:
            return f"{name} is {result.codec}"
        if (result.codec, result.width, result.height, result.extradata) != (
            first.codec,
            first.width,
            first.height,
            first.extradata,
        ):
            return f"{name} is encoded differently from part 1"
        if result.fps is None or abs(float(result.fps) - float(plan.fps)) > 0.01:
            return f"{name} has {float(result.fps or 0):.3f} fps, not {float(plan.fps):.3f}"
        last_extended = plan.extend and part.index == len(plan.parts) - 1
        if result.packets != part.frames and not last_extended:
            return f"{name} has {result.packets} frames, not the {part.frames} it was sent with"
    return None


def _copied_packets(described: list[_Result], plan: SplitPlan, vout: Any) -> Iterator[Any]:
    """Every result's packets, shifted to the instant its part starts at."""
    time_base = described[0].time_base
    last_dts: int | None = None
    for part, result in zip(plan.parts, described, strict=True):
        with av.open(local_file(result.path)) as container:
            stream = container.streams.video[0]
            scale = Fraction(stream.time_base) / time_base
            packets = [p for p in container.demux(stream) if p.dts is not None and p.pts is not None]
            first = min(int(p.pts) for p in packets)
            offset = round(Fraction(part.start_frame) / plan.fps / time_base)
            for packet in packets:
                pts = round((int(packet.pts) - first) * scale) + offset
                dts = round((int(packet.dts) - first) * scale) + offset
                if last_dts is not None and dts <= last_dts:
                    dts = last_dts + 1  # B-frame delay of a part that starts a frame early
                if dts > pts:
                    raise _CopyFailed(f"part {part.index + 1}'s timestamps overlap the part before")
                last_dts = dts
                packet.pts, packet.dts = pts, dts
                packet.stream = vout
                packet.time_base = time_base
                yield packet


def _encoded_packets(
    described: list[_Result], plan: SplitPlan, vout: Any, counted: list[int], notes: list[str]
) -> Iterator[Any]:
    """Each output frame from the part that covers it: the result frame shown at that
    instant, the last one held if a result is short, extra ones dropped."""
    fps = plan.fps
    step = 1 / float(fps)
    size = (described[0].width, described[0].height)
    index = 0
    for number, (part, result) in enumerate(zip(plan.parts, described, strict=True)):
        last = number == len(plan.parts) - 1
        wanted = part.frames
        if last and plan.extend:
            wanted = max(part.frames, round((plan.length_s - part.start_s) * float(fps)))
        held = 0
        with av.open(local_file(result.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            decoded = (f for f in container.decode(stream) if f.time is not None)
            current = next(decoded, None)
            if current is None:
                raise SplitError(f"{result.path}: no picture could be decoded")
            start = float(current.time)
            # Read before the frame is re-stamped below (reformat may return it unchanged).
            shown = start
            upcoming = next(decoded, None)
            for k in range(wanted):
                moment = start + k * step + step / 2
                while upcoming is not None and float(upcoming.time) <= moment:
                    current, upcoming = upcoming, next(decoded, None)
                    shown = float(current.time)
                # Held: the last frame again, in a slot that starts after its own.
                if upcoming is None and shown + step / 2 < start + k * step:
                    held += 1
                picture = current.reformat(width=size[0], height=size[1], format=PIXEL_FORMAT)
                picture.pts = index
                picture.time_base = 1 / fps
                picture.pict_type = PictureType.NONE
                index += 1
                yield from vout.encode(picture)
        if held:
            notes.append(f"part {part.index + 1}: the result was {held} frame(s) short; its last was held")
    counted[0] = index
    yield from vout.encode(None)


def _voice_packets(source: str, out: Any, length_s: float) -> tuple[Any, Iterator[Any]]:
    """The whole voice, cut at ``length_s``, as AAC packets (one encode: no seams)."""
    rate, layout, blocks = _pcm_frames(source)
    aout = out.add_stream("aac", rate=rate, layout=layout)
    aout.bit_rate = JOIN_AUDIO_BIT_RATE
    # FFmpeg's default coder (two-loop search) takes 8x longer on speech for no audible gain
    # at this rate.
    aout.options = {"aac_coder": "fast"}
    channels = 2 if layout == "stereo" else 1
    budget = round(length_s * rate)

    def packets() -> Iterator[Any]:
        written = 0
        for block in blocks:
            take = min(block.shape[1] // channels, budget - written)
            if take <= 0:
                continue  # drain the input (it closes when the blocks end)
            chunk = np.ascontiguousarray(block[:, : take * channels])
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = written
            frame.time_base = Fraction(1, rate)
            written += take
            yield from aout.encode(frame)
        yield from aout.encode(None)

    return aout, packets()


def encode_voice(
    audio: str | os.PathLike[str],
    plan: SplitPlan,
    target: str | os.PathLike[str],
    *,
    stop: threading.Event | None = None,
) -> None:
    """The joined result's sound, made ahead: the whole voice, cut at the plan's length,
    as one AAC track in an MP4 (``join_parts(voice_track=...)`` copies it). ``stop`` set
    abandons it (nothing is left under ``target``)."""
    with atomic_output(target) as temporary, av.open(local_file(temporary), "w", format="mp4") as out:
        _, packets = _voice_packets(os.fspath(audio), out, plan.length_s)
        for packet in packets:
            if stop is not None and stop.is_set():
                raise SplitError("the voice track was abandoned")
            out.mux(packet)


def _track_packets(path: str, out: Any) -> Iterator[Any]:
    """The packets of a voice track made by ``encode_voice``, for ``out``."""
    container = av.open(local_file(path))
    stream = container.streams.audio[0]
    aout = out.add_stream_from_template(stream)

    def packets() -> Iterator[Any]:
        with container:
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue
                packet.stream = aout
                yield packet

    return packets()
