"""The one loudness meter: FFmpeg's ``ebur128`` filter (EBU R 128 / ITU-R BS.1770), run
through PyAV on frames as they are decoded.

A reference implementation in C, so the voice analysis, the report's loudness plot and
the fixer's check of its own output all read the same meter, with the same gate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import av
import av.filter

#: ebur128's absolute gate (LUFS): it reports this when nothing passed the gate (silence,
#: or a voice shorter than one 400 ms block), which is no loudness at all.
GATE_LUFS = -70.0


def reading(metadata: Mapping[str, str], key: str) -> float | None:
    """One of the meter's readings (``lavfi.r128.M``, ``.S``, ``.I``, ``.sample_peak``,
    ``.true_peak``) from a frame's metadata; None when absent or not a finite number."""
    try:
        value = float(metadata[key])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _amplitude_db(value: float | None) -> float | None:
    if value is None or value <= 0:
        return None
    return 20 * math.log10(value)


class LoudnessMeter:
    """Frames in, readings out: each frame the filter passes on carries the readings so
    far in its metadata (every 100 ms); the last one's are the totals.

    ``source`` describes the input as PyAV's ``add_abuffer`` takes it (``template=`` a
    decoded stream, or ``format``, ``sample_rate``, ``layout`` and ``time_base``);
    ``peak`` is ebur128's ``peak`` option (``"sample+true"``, ``"true"``; None measures no
    peak, which is faster).
    """

    def __init__(self, *, peak: str | None = "sample+true", **source: Any) -> None:
        self._graph = av.filter.Graph()
        buffer = self._graph.add_abuffer(**source)
        meter = self._graph.add("ebur128", "metadata=1" + (f":peak={peak}" if peak else ""))
        sink = self._graph.add("abuffersink")
        buffer.link_to(meter)
        meter.link_to(sink)
        self._graph.configure()
        self.totals: dict[str, str] = {}

    def push(self, frame: Any) -> list[Any]:
        """Measure ``frame`` (None: the end of the sound) and give back the frames the
        filter passed on since, with their readings in ``metadata``."""
        self._graph.push(frame)
        passed: list[Any] = []
        while True:
            try:
                out = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return passed
            if out.metadata:
                self.totals = dict(out.metadata)
            passed.append(out)

    @property
    def integrated_lufs(self) -> float | None:
        """The whole sound's loudness (LUFS); None when nothing passed the gate."""
        value = reading(self.totals, "lavfi.r128.I")
        return None if value is None or value <= GATE_LUFS else value

    @property
    def sample_peak_dbfs(self) -> float | None:
        return _amplitude_db(reading(self.totals, "lavfi.r128.sample_peak"))

    @property
    def true_peak_dbtp(self) -> float | None:
        """The true (4x oversampled) peak (dBTP); None when not measured or silent."""
        return _amplitude_db(reading(self.totals, "lavfi.r128.true_peak"))
