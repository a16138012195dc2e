"""The video's own sound track, written beside its picture by the video writer.

Copied packet by packet (cut at the picture's end), or decoded, placed at the instant it
started, cut or padded, and encoded to AAC: either way it stays in step with the picture.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from .plan import AUDIO_BIT_RATE, VideoPlan

#: AAC frames hold this many samples; above this rate the encoder gives up.
AAC_FRAME = 1024
AAC_MAX_RATE = 48000


def shift(packet: Any, start: float) -> None:
    """Move ``packet`` ``start`` seconds earlier: the output's clock starts at 0."""
    offset = round(start / packet.time_base)
    if packet.pts is not None:
        packet.pts -= offset
    if packet.dts is not None:
        packet.dts -= offset


def _mux_audio(out: Any, aout: Any, packet: Any, start: float) -> None:
    shift(packet, start)
    packet.stream = aout
    out.mux(packet)


class SoundTrack:
    """The video's own sound, kept in step with the picture: packets copied (cut at the
    end), or decoded, placed at the instant it started, cut or padded, and encoded to AAC.

    It never runs past the picture (``end``, else the plan's length): whatever a header
    says about where the sound starts, nothing beyond that is held, decoded or written,
    and silence is made a second at a time."""

    def __init__(self, out: Any, stream: Any, plan: VideoPlan, start: float, end: float | None) -> None:
        self._out = out
        self._start = start
        self._end = end if end is not None else plan.length
        self._copy = plan.audio == "copy"
        self._last = 0.0  # seconds of sound read so far
        self._held: list[Any] = []
        if self._copy:
            self._stream = out.add_stream_from_template(stream)
            return
        # AAC takes at most 96 kHz; a voice needs no more than 48.
        self._rate = min(stream.rate or 48000, AAC_MAX_RATE)
        self._layout = "stereo" if (stream.channels or 2) >= 2 else "mono"
        self._stream = out.add_stream("aac", rate=self._rate, layout=self._layout)
        self._stream.bit_rate = AUDIO_BIT_RATE
        self._resampler = av.AudioResampler(format="fltp", layout=self._layout, rate=self._rate)
        self._pending = np.zeros((2 if self._layout == "stereo" else 1, 0), dtype=np.float32)
        self._skip = 0  # samples still to drop (sound that began before the picture)
        self._placed = False
        self._written = 0  # samples encoded

    def past(self, end: float | None) -> bool:
        """True once the sound read reaches half a second beyond ``end``."""
        return end is not None and self._last > end + 0.5

    def _full(self) -> bool:
        """True once the sound has reached the picture's end: the rest is never used."""
        if self._end is None:
            return False
        if self._copy:
            return self._last >= self._end
        return self._written + self._pending.shape[1] >= round(self._end * self._rate)

    def add(self, packet: Any) -> None:
        if packet.dts is None:
            return
        if packet.pts is not None:
            self._last = float(packet.pts * packet.time_base) - self._start
        if self._full():
            return
        if self._copy:
            self._held.append(packet)
            return
        for frame in packet.decode():
            if not self._placed and frame.time is not None:
                # Where the sound starts against the picture: silence before it, or the
                # part before the picture dropped, so the two stay in step.
                offset = round((float(frame.time) - self._start) * self._rate)
                if offset > 0:
                    self._silence(offset)
                else:
                    self._skip = -offset
                self._placed = True
            if self._full():
                return
            for converted in self._resampler.resample(frame):
                self._queue(np.asarray(converted.to_ndarray(), dtype=np.float32))

    def _silence(self, count: int) -> None:
        """``count`` samples of silence, up to the picture's end, a second at a time."""
        if self._end is not None:
            count = min(count, round(self._end * self._rate) - self._written - self._pending.shape[1])
        while count > 0:
            chunk = min(count, self._rate)
            self._queue(np.zeros((self._pending.shape[0], chunk), dtype=np.float32))
            count -= chunk

    def _queue(self, samples: npt.NDArray[np.float32]) -> None:
        if self._skip:
            dropped = min(self._skip, samples.shape[1])
            samples = samples[:, dropped:]
            self._skip -= dropped
        self._pending = np.concatenate([self._pending, samples], axis=1)
        while self._pending.shape[1] >= AAC_FRAME:
            self._emit(self._pending[:, :AAC_FRAME])
            self._pending = self._pending[:, AAC_FRAME:]

    def _emit(self, samples: npt.NDArray[np.float32]) -> None:
        if self._end is not None:
            # Cut to end exactly on time (a whole frame could end 21 ms late).
            samples = samples[:, : max(0, round(self._end * self._rate) - self._written)]
        if not samples.shape[1]:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self._layout)
        frame.sample_rate = self._rate
        frame.pts = self._written
        frame.time_base = Fraction(1, self._rate)
        self._written += frame.samples
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def finish(self, end: float | None) -> None:
        """Write what is left, up to ``end`` (s; None: the picture's end), padding with silence."""
        if end is None or (self._end is not None and end > self._end):
            end = self._end
        if self._copy:
            for packet in self._held:
                begin = float(packet.pts * packet.time_base) - self._start
                length = float((packet.duration or 0) * packet.time_base)
                if end is None or begin + length <= end + 1e-6:
                    _mux_audio(self._out, self._stream, packet, self._start)
            return
        for converted in self._resampler.resample(None):
            self._queue(np.asarray(converted.to_ndarray(), dtype=np.float32))
        if end is not None:
            # Pad with silence to the picture's end (the service replaces this track anyway).
            self._end = end
            self._silence(round(end * self._rate) - self._written - self._pending.shape[1])
        if self._pending.shape[1]:
            self._emit(self._pending)  # AAC takes a short last frame
        for packet in self._stream.encode(None):
            self._out.mux(packet)
