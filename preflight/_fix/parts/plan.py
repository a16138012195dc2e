"""Where a long job is cut: in pauses of the speech (never inside a word), on video frame
boundaries, so both halves of a part last the same; at clean keyframes when there are
enough of them, so that the video parts can be cut by copying packets.

The video's frames are read from its packets (no decoding); the speech ranges are the
voice analysis's (``speech_ranges``). Among the cuts that make the fewest parts, the
planner prefers clean keyframes, long pauses and even parts.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av

from ... import limits
from ..._local_file import local_file
from ..._probe.voice import speech_ranges
from .model import Part, Speech, SplitError, SplitPlan

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
