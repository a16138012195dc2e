"""Sampling a video's frames for content analysis, decoding as little as possible.

Sample times are a regular grid over the clip, always starting with the first frame.
A grid point with a key frame within half a step is moved onto that key frame, which
decodes alone after a seek. Other points need their group of pictures decoded from its
key frame, but only the frames that other frames refer to: the rest are skipped
(FFmpeg's ``skip_frame=NONREF``), and deblocked only on key frames. Skipping all B frames
would halve that again, but some encoders predict P frames from B frames, and the
pictures then fall apart (seen on a real clip here), so it is not done.
Frames are downscaled in the decoder's scaler before leaving it, then turned upright.
Only a few frames are alive at a time: memory stays flat however long the clip.
"""

from __future__ import annotations

import bisect
import math
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import av
import numpy as np
import numpy.typing as npt

from .._local_file import local_file

#: A decoded picture as the face engines take it: height x width x 3, uint8 RGB.
RGBImage = npt.NDArray[np.uint8]

#: Seconds between samples: at least this...
MIN_STEP_S = 0.5
#: ...and at most this many samples per clip: every 0.5 s up to 20 s, every 1.5 s at
#: 60 s, every 3 s at the service's 120 s limit. Detection costs ~30 ms a sample.
MAX_SAMPLES = 40
#: Longest side of the picture handed to the face engine. BlazeFace sees the whole frame
#: at 192 px anyway; this keeps enough pixels for the face mesh crop.
ANALYSIS_MAX_SIDE = 640


def sample_step(duration: float) -> float:
    return max(MIN_STEP_S, duration / MAX_SAMPLES)


@dataclass(frozen=True)
class SampledFrame:
    #: Seconds from the start of the video stream.
    time: float
    #: Displayed orientation, longest side at most ``ANALYSIS_MAX_SIDE``.
    rgb: RGBImage


@dataclass
class SamplingResult:
    """Filled in while sampling: what could not be read, if anything."""

    #: The first decoding error, or why the file could not be read at all.
    error: str | None = None
    #: Sample times (seconds) skipped because their frames could not be decoded.
    damaged: list[float] = field(default_factory=list)
    #: Frames decoded in all (the sampled ones included), for the benchmark's account.
    decoded: int = 0


def _upright(rgb: RGBImage, rotation: int) -> RGBImage:
    # ``rotation`` is counter-clockwise display rotation; np.rot90 turns counter-clockwise.
    if rotation % 360 == 0:
        return rgb
    return np.ascontiguousarray(np.rot90(rgb, k=(rotation // 90) % 4))


def _to_rgb(frame: Any, rotation: int, max_side: int) -> RGBImage:
    scale = min(1.0, max_side / max(frame.width, frame.height))
    width, height = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
    small = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    rgb: RGBImage = small.to_ndarray()
    return _upright(rgb, rotation)


def sample_frames(
    path: str,
    *,
    stream_index: int,
    duration: float,
    rotation: int,
    max_side: int = ANALYSIS_MAX_SIDE,
    result: SamplingResult | None = None,
) -> Generator[SampledFrame, None, None]:
    """Yield frames at about every ``sample_step(duration)`` seconds, the first frame first.

    Damaged data never raises: its sample is skipped (``result.damaged``), decoding starts
    afresh for the next one, and ``result.error`` keeps the first error; a file that cannot
    be read at all just yields nothing.
    """
    result = result if result is not None else SamplingResult()
    try:
        with av.open(local_file(path)) as container:
            stream = container.streams[stream_index]
            if stream.codec_context is None:
                # An unknown codec (a damaged codec tag, found by the fuzzer) has no decoder,
                # hence no codec context: say so, instead of an AttributeError on its settings.
                result.error = "FFmpeg has no decoder for its codec"
                return
            yield from _sample(container, stream, duration, rotation, max_side, result)
    except (av.FFmpegError, OSError, ValueError) as exc:
        result.error = str(exc) or type(exc).__name__


def _sample(
    container: Any, stream: Any, duration: float, rotation: int, max_side: int, result: SamplingResult
) -> Iterator[SampledFrame]:
    time_base = stream.time_base
    start = stream.start_time or 0
    step = sample_step(duration)
    frame_pts = (1 / float(stream.average_rate or stream.guessed_rate or 25)) / float(time_base)
    # The index holds decode times; frames carry presentation times. They differ by the
    # decoder's reordering delay, the same for every key frame of a constant-rate stream.
    key_dts = sorted(e.timestamp for e in stream.index_entries if e.is_keyframe)
    shift = _reorder_shift(container, stream) if key_dts else 0
    keys = [k + shift for k in key_dts]
    count = max(1, math.ceil(duration / step - 1e-9))  # never a point at the very end
    grid = [start + round(i * step / time_base) for i in range(count)]
    targets = sorted(set(_snap(grid, keys, step / float(time_base) / 2)))
    # Reference frames only. (Skipping down to key frames for key-frame targets would break
    # the next target's chain: the decoder has already been fed a few packets ahead.)
    stream.codec_context.skip_frame = "NONREF"
    # No deblocking outside key frames: ~30% less decoding, and the frames still came out
    # within 40-48 dB PSNR of the exact ones (real and synthetic clips, 10 s GOPs), which
    # face detection cannot tell apart.
    stream.codec_context.options = {"skip_loop_filter": "nokey"}

    decoded_to = -math.inf  # pts of the last frame decoded
    frames: Iterator[Any] | None = None
    for target in targets:
        # Jump over frames nobody needs when a later key frame precedes the target.
        key_before = keys[bisect.bisect_right(keys, target) - 1] if keys and keys[0] <= target else None
        if frames is None or (key_before is not None and key_before > decoded_to):
            if key_before is not None:
                container.seek(key_before, stream=stream, backward=True, any_frame=False)
            frames = _decoded(container, stream)
        found = None
        try:
            for frame in frames:
                result.decoded += 1
                pts = frame.pts if frame.pts is not None else frame.dts
                if pts is None:
                    continue
                decoded_to = pts
                if pts >= target - frame_pts / 2:
                    found = frame
                    break
            else:
                return  # the stream ended before this target
        except av.FFmpegError as exc:
            # Damaged data: skip this sample, start afresh (from the next key frame, if
            # known) for the next one.
            result.error = result.error or (str(exc) or type(exc).__name__)
            result.damaged.append(float((target - start) * time_base))
            frames = None
            decoded_to = max(decoded_to, target)
            continue
        seconds = float((pts - start) * time_base)
        yield SampledFrame(max(0.0, seconds), _to_rgb(found, rotation, max_side))


def _reorder_shift(container: Any, stream: Any) -> int:
    """Presentation minus decode time of the first key frame (0 when unknown)."""
    shift = 0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.dts is not None and packet.is_keyframe:
            shift = int(packet.pts - packet.dts)
        break
    container.seek(stream.start_time or 0, stream=stream, backward=True, any_frame=False)
    return shift


def _decoded(container: Any, stream: Any) -> Iterator[Any]:
    # The demuxer ends with an empty packet, which drains the frames the decoder holds.
    for packet in container.demux(stream):
        yield from packet.decode()


def _snap(grid: list[int], keys: list[int], tolerance: float) -> list[int]:
    """Move each grid time onto the nearest key frame when one lies within ``tolerance``."""
    if not keys:
        return grid
    snapped = []
    for t in grid:
        i = bisect.bisect_left(keys, t)
        near = [k for k in keys[max(0, i - 1) : i + 1] if abs(k - t) <= tolerance]
        snapped.append(min(near, key=lambda k: abs(k - t)) if near else t)
    return snapped


class _Done:
    """End-of-stream marker, carrying the producer's exception if it failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


_Item = TypeVar("_Item")


class Prefetch(Generic[_Item]):
    """Decode the next frames in a background thread while the caller analyses this one.

    FFmpeg and the face engine both release the GIL, so on two cores decoding overlaps
    detection (and the engine's loading). At most ``depth`` frames wait in between, so
    memory stays flat. Use as a context manager: leaving it stops the thread and closes
    the file, even when the caller stops early.
    """

    def __init__(self, frames: Generator[_Item, None, None], depth: int = 16) -> None:
        self._frames = frames
        self._pending: queue.Queue[_Item | _Done] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._produce, name="preflight-decode", daemon=True)

    def __enter__(self) -> Iterator[_Item]:
        self._worker.start()
        return self._consume()

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._worker.join()
        self._frames.close()  # not running any more: the file closes now, not at collection

    def _offer(self, item: _Item | _Done) -> bool:
        while not self._stop.is_set():
            try:
                self._pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for frame in self._frames:
                if not self._offer(frame):
                    return
        except BaseException as exc:  # handed to the consumer and raised there
            self._offer(_Done(exc))
            return
        self._offer(_Done())

    def _consume(self) -> Iterator[_Item]:
        while True:
            item = self._pending.get()
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                return
            yield item
