"""The video writer: carries out a ``VideoPlan`` with PyAV.

A copy or a rename copies the file; a remux copies the packets into MP4; an encode runs
one FFmpeg filter graph (through PyAV) that does every picture change in one pass: turn
upright, crop, scale, pad, constant frame rate, freeze-pad, and x264 encodes the result
(yuv420p, constant quality, or a bit rate that lands under the size limit). The video's
own sound is copied when MP4 can carry it and the timing is unchanged, else re-encoded to
AAC; either way it stays in sync with the picture (``sound``).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import av
import av.filter
from av.video.frame import PictureType

from ..._local_file import local_file
from ..._probe.frames import Prefetch
from ..media import PIXEL_FORMAT, open_mp4
from ..model import Progress
from .plan import VideoPlan
from .sound import SoundTrack, shift

#: Highest rate ceiling given to x264 (far above any talking head; fits FFmpeg's int).
MAX_CEILING = 400_000_000


def write_video(plan: VideoPlan, source: str, target: Path, on_progress: Progress | None = None) -> None:
    """Carry out ``plan`` from ``source`` into ``target`` (a temporary name)."""
    if plan.mode in ("copy", "rename"):
        shutil.copyfile(source, target)
    elif plan.mode == "remux":
        _remux(plan, source, target, on_progress)
    else:
        _encode(plan, source, target, on_progress)


def _start(container: Any, stream: Any, sound: Any | None) -> float:
    """Where the streams' shared clock starts (seconds): the picture's own start when its
    sound is not kept (a dropped track's start must not hold the picture back)."""
    if sound is None and stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    if container.start_time is not None:
        return float(container.start_time) / av.time_base
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _remux(plan: VideoPlan, source: str, target: Path, on_progress: Progress | None) -> None:
    with av.open(local_file(source)) as inp, open_mp4(target) as out:
        vin = inp.streams[plan.video_index]
        keep_audio = plan.audio in ("copy", "aac") and plan.audio_index is not None
        ain = inp.streams[plan.audio_index] if keep_audio else None
        vout = out.add_stream_from_template(vin)
        if plan.rotation % 360:
            vout.set_display_rotation(plan.rotation)  # the flag is not part of the template
        if vin.codec_context.name == "hevc":
            vout.codec_tag = "hvc1"  # what QuickTime and Safari need to play HEVC in MP4
        start = _start(inp, vin, ain)
        audio = SoundTrack(out, ain, plan, start, plan.trim_to) if ain is not None else None
        total = plan.trim_to or (inp.duration / av.time_base if inp.duration else 0.0)
        video_end: float | None = None
        # Matroska keeps milliseconds: a 66.67 ms frame is stored as 66, and 30 frames at
        # 15 fps (2.000 s) would come out 1.998 s long, under the service's minimum. The
        # last frame's duration sets the MP4's length: one tick short of a frame is a frame.
        rate = vin.average_rate or vin.guessed_rate
        frame_ticks = math.ceil(1 / (rate * vin.time_base)) if rate and vin.time_base else 0
        streams = [s for s in (vin, ain) if s is not None]
        for packet in _with_decode_times(_whole_frames(inp.demux(streams), vin, frame_ticks), vin):
            if packet.dts is None or packet.size == 0:
                continue
            if packet.stream is not vin:
                if audio is not None:
                    audio.add(packet)
                continue
            when = float(packet.pts * packet.time_base) - start if packet.pts is not None else None
            if plan.trim_to is not None and (
                video_end is not None or (when is not None and when >= plan.trim_to)
            ):
                # Stop at the first frame past the cut, in decoding order: every frame kept
                # then has all its references.
                video_end = video_end if video_end is not None else when
                continue
            shift(packet, start)
            packet.stream = vout
            out.mux(packet)
            if on_progress is not None and when is not None and total:
                on_progress(min(1.0, when / total))
        if audio is not None:
            end = plan.trim_to if video_end is None else min(video_end, plan.trim_to or video_end)
            audio.finish(end)


def _whole_frames(packets: Iterator[Any], video: Any, frame_ticks: int) -> Iterator[Any]:
    """The packets, a video frame stored one tick short of the frame interval lengthened
    to it (see ``_remux``)."""
    for packet in packets:
        if frame_ticks and packet.stream is video and packet.duration == frame_ticks - 1:
            packet.duration = frame_ticks
        yield packet


def _with_decode_times(packets: Iterator[Any], video: Any) -> Iterator[Any]:
    """The packets, every video packet with a decode time. Matroska stores presentation
    times only, and FFmpeg's demuxer gives none to the first frames of a stream with B
    frames (the key frame among them): they get decode times counted back from the first
    one known, a frame apart, as FFmpeg's command line does. (Dropped, they took the key
    frame with them: an MP4 whose every frame referred to one that was not there.)"""
    held: list[Any] = []
    for packet in packets:
        if packet.stream is video and packet.dts is None and packet.pts is not None and packet.size:
            held.append(packet)
            continue
        if held and packet.stream is video and packet.dts is not None:
            yield from _dated(held, packet.dts, packet.duration)
            held = []
        yield packet
    if held:  # no decode time anywhere: presentation order is all there is
        held.sort(key=lambda p: p.pts)
        yield from _dated(held, held[-1].pts + (held[-1].duration or 1), held[-1].duration)


def _dated(held: list[Any], next_dts: int, step: int | None) -> list[Any]:
    """``held`` with decode times one ``step`` apart, ending a step before ``next_dts``,
    and never after a packet's own presentation time."""
    interval = max(1, step or max((p.duration or 0) for p in held) or 1)
    for back, packet in enumerate(reversed(held), start=1):
        packet.dts = next_dts - back * interval
    excess = max(p.dts - p.pts for p in held)
    if excess > 0:
        for packet in held:
            packet.dts -= excess
    return held


def _graph(stream: Any, plan: VideoPlan) -> tuple[Any, Any]:
    graph = av.filter.Graph()
    source = graph.add_buffer(template=stream)
    chain = [source]
    steps = list(plan.filters)
    # start_time=0: a picture that starts after the sound gets its first frame held from 0.
    steps.append(("fps", f"fps={plan.fps}:start_time=0"))
    if plan.pad_to is not None:
        steps.append(("tpad", f"stop_mode=clone:stop_duration={plan.pad_to:.3f}"))
    steps.append(("format", PIXEL_FORMAT))
    steps.append(("setsar", "1"))
    for name, args in steps:
        node = graph.add(name, args) if args else graph.add(name)
        chain[-1].link_to(node)
        chain.append(node)
    sink = graph.add("buffersink")
    chain[-1].link_to(sink)
    graph.configure()
    return graph, source


def _pull(graph: Any) -> Iterator[Any]:
    while True:
        try:
            yield graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return


def _encode(plan: VideoPlan, source: str, target: Path, on_progress: Progress | None) -> None:
    if plan.fps is None:
        raise ValueError("an encode plan needs a frame rate")
    fps = plan.fps
    with av.open(local_file(source)) as inp, open_mp4(target) as out:
        vin = inp.streams[plan.video_index]
        vin.thread_type = "AUTO"
        keep_audio = plan.audio in ("copy", "aac") and plan.audio_index is not None
        ain = inp.streams[plan.audio_index] if keep_audio else None
        start = _start(inp, vin, ain)
        total = plan.trim_to or plan.pad_to or (inp.duration / av.time_base if inp.duration else 0.0)
        end = plan.trim_to if plan.trim_to is not None else plan.pad_to

        vout = out.add_stream("libx264", rate=fps)
        vout.width, vout.height = plan.width, plan.height
        vout.pix_fmt = PIXEL_FORMAT
        # PyAV asks for slice threads; FFmpeg's libx264 then gives x264 sliced threads,
        # 20-25% slower than its own frame threads, which FFmpeg's command line gets.
        vout.thread_type = "AUTO"
        # Kept apart: the stream's own time base changes to the muxer's once writing starts.
        frame_time_base = 1 / fps
        vout.time_base = frame_time_base
        # A keyframe asked for is an IDR: nothing after it refers to a frame before.
        options = {"preset": plan.preset, "forced-idr": "1"}
        if plan.bit_rate:
            vout.bit_rate = plan.bit_rate
        else:
            options["crf"] = str(plan.crf)
        if plan.max_rate:
            # A short clip's ceiling is huge; FFmpeg keeps the buffer size in an int.
            ceiling = min(plan.max_rate if not plan.bit_rate else int(plan.bit_rate * 1.05), MAX_CEILING)
            # A one-second buffer: x264 can overshoot the ceiling by at most that much.
            options |= {"maxrate": str(ceiling), "bufsize": str(ceiling)}
        vout.options = options

        audio = SoundTrack(out, ain, plan, start, end) if ain is not None else None
        index = 0

        def emit(frame: Any) -> bool:
            """Encode one filtered frame; False once the output is long enough."""
            nonlocal index
            when = float(frame.time) if frame.time is not None else index / float(fps)
            if end is not None and when >= end - 1e-6:
                return False
            index = round(when * fps)
            frame.pts = index
            frame.time_base = frame_time_base
            # The decoder's frame type would force x264's hand (as FFmpeg does, let the
            # encoder choose).
            # (Except where a keyframe was asked for: a later cut.)
            frame.pict_type = PictureType.I if index in plan.keyframes else PictureType.NONE
            index += 1
            for packet in vout.encode(frame):
                out.mux(packet)
            if on_progress is not None and total:
                on_progress(min(1.0, when / total))
            return True

        # Demuxing, decoding and filtering run in a second thread while x264 encodes (as
        # FFmpeg's own command line does): FFmpeg releases the GIL, so the two overlap.
        going = True
        with Prefetch(_decoded(inp, vin, ain, plan, start), depth=8) as items:
            for kind, item in items:
                if kind == "audio":
                    if audio is not None:
                        audio.add(item)
                    if not going and audio is not None and audio.past(end):
                        break
                elif going:
                    going = emit(item)
                    if not going and audio is None:
                        break
        for packet in vout.encode(None):
            out.mux(packet)
        if audio is not None:
            length = float(index / fps)
            audio.finish(min(end, length) if end is not None else length)


def _decoded(
    inp: Any, vin: Any, ain: Any | None, plan: VideoPlan, start: float
) -> Generator[tuple[str, Any], None, None]:
    """Filtered video frames and raw audio packets, in the file's order."""
    graph, buffer = _graph(vin, plan)
    shift = None
    streams = [s for s in (vin, ain) if s is not None]
    for packet in inp.demux(streams):
        if packet.stream is not vin:
            if packet.dts is not None:
                yield "audio", packet
            continue
        for frame in packet.decode():
            if frame.pts is None:
                continue
            if shift is None:
                shift = round(start / frame.time_base)
            frame.pts -= shift
            buffer.push(frame)
            for filtered in _pull(graph):
                yield "video", filtered
    buffer.push(None)
    for filtered in _pull(graph):
        yield "video", filtered
