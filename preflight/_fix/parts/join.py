"""The join: the lip-synced parts' results put back into one video, each part's picture
at the frame it was cut at, under the whole voice encoded once, so the sound runs on
across the joins without a seam and the picture cannot drift from it.

The results are joined by copying packets when they fit together, else by encoding once.
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

from ... import limits
from ..._atomic import atomic_output
from ..._local_file import local_file
from ..media import PIXEL_FORMAT, open_mp4, pcm_blocks
from ..model import Progress
from .model import SplitError, SplitPlan

#: The joined voice: AAC at this rate (transparent for speech).
JOIN_AUDIO_BIT_RATE = 192_000


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
        open_mp4(temporary) as out,
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
    rate, layout, blocks = pcm_blocks(source)
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
