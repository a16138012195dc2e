"""The cut: each part's video (MP4, no sound) and voice (16-bit WAV) written from the
job's files, as a ``SplitPlan`` says.

The video is cut by copying packets when every cut falls on a clean keyframe; otherwise
(or when the stream is not what its index promised) each part is encoded, x264 at the
fixer's quality. Every file appears whole under its name or not at all.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

from ..._atomic import atomic_output
from ..._local_file import local_file
from ..._probe.frames import Prefetch
from ..media import PIXEL_FORMAT, open_mp4, pcm_blocks
from ..model import Progress
from .model import SplitError, SplitPlan


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
                out = part_files.enter_context(open_mp4(temporary))
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
                out = part_files.enter_context(open_mp4(temporary))
                vout = out.add_stream("libx264", rate=fps)
                vout.width, vout.height = frame.width, frame.height
                vout.pix_fmt = PIXEL_FORMAT
                vout.thread_type = "AUTO"  # x264's frame threads (see video.write)
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


def _write_audio_parts(source: str, plan: SplitPlan, names: list[PartFiles]) -> None:
    rate, layout, blocks = pcm_blocks(source)
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
