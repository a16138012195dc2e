"""The report's plots of a sound over time, as inline SVG: the waveform with the speech
shaded, and the loudness with the quiet line and the integrated level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .._rules.voice import QUIET_LUFS
from .._rules.words import axis_clock
from .timeline import AudioTimeline

#: The loudness plot's floor (LUFS): quieter is drawn on it.
LOUDNESS_FLOOR = -60.0

_PLOT_WIDTH = 1000
_WAVE_HEIGHT = 120
_LOUDNESS_HEIGHT = 150


def _tick_step(duration: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800):
        if duration / step <= 12:
            return float(step)
    return 3600.0


def _time_axis(duration: float, height: int) -> str:
    step = _tick_step(duration)
    parts = []
    for tick in np.arange(0, duration + 1e-9, step):
        x = tick / duration * _PLOT_WIDTH
        anchor = "start" if tick == 0 else ("end" if x > _PLOT_WIDTH - 20 else "middle")
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}"/>'
            f'<text class="tick" x="{x:.1f}" y="{height + 13}" text-anchor="{anchor}">'
            f"{axis_clock(float(tick))}</text>"
        )
    return "".join(parts)


def _speech_bands(timeline: AudioTimeline, height: int) -> str:
    scale = _PLOT_WIDTH / timeline.duration
    return "".join(
        f'<rect class="speech" x="{a * scale:.1f}" y="0" width="{max(0.5, (b - a) * scale):.1f}" '
        f'height="{height}"><title>speech {a:.2f}-{b:.2f} s</title></rect>'
        for a, b in timeline.speech
    )


def waveform_svg(timeline: AudioTimeline) -> str:
    """The waveform (mono mix), speech shaded, silence left bare."""
    height, middle = _WAVE_HEIGHT, _WAVE_HEIGHT / 2
    count = len(timeline.highs)
    step = _PLOT_WIDTH / max(1, count)
    top = [f"{i * step:.1f},{middle - max(0.0, h) * middle:.1f}" for i, h in enumerate(timeline.highs)]
    bottom = [
        f"{i * step:.1f},{middle - min(0.0, low) * middle:.1f}"
        for i, low in reversed(list(enumerate(timeline.lows)))
    ]
    shape = f'<polygon class="wave" points="{" ".join(top + bottom)}"/>' if count else ""
    return (
        f'<svg class="plot" viewBox="-4 -4 {_PLOT_WIDTH + 8} {height + 22}" role="img" '
        f'aria-label="waveform with speech marked">'
        f"{_speech_bands(timeline, height)}{_time_axis(timeline.duration, height)}"
        f'<line class="axis" x1="0" y1="{middle}" x2="{_PLOT_WIDTH}" y2="{middle}"/>{shape}</svg>'
    )


def loudness_svg(timeline: AudioTimeline, quiet_lufs: float = QUIET_LUFS) -> str:
    """Momentary and short-term loudness over time, with the level below which the voice
    is called quiet and the whole file's integrated loudness."""
    height = _LOUDNESS_HEIGHT

    def y(lufs: float) -> float:
        return max(0.0, min(1.0, lufs / LOUDNESS_FLOOR)) * height

    scale = _PLOT_WIDTH / timeline.duration

    def line(values: Iterable[tuple[float, float]], css: str) -> str:
        points = " ".join(f"{t * scale:.1f},{y(v):.1f}" for t, v in values if math.isfinite(v))
        return f'<polyline class="{css}" points="{points}"/>' if points else ""

    levels = "".join(
        f'<line class="grid" x1="0" y1="{y(v):.1f}" x2="{_PLOT_WIDTH}" y2="{y(v):.1f}"/>'
        f'<text class="tick" x="-6" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>'
        for v in range(0, int(LOUDNESS_FLOOR) - 1, -10)
    )
    marks = (
        f'<line class="limit" x1="0" y1="{y(quiet_lufs):.1f}" x2="{_PLOT_WIDTH}" y2="{y(quiet_lufs):.1f}">'
        f"<title>quiet below {quiet_lufs:g} LUFS</title></line>"
        f'<text class="limit-label" x="{_PLOT_WIDTH - 4}" y="{y(quiet_lufs) - 4:.1f}" text-anchor="end">'
        f"quiet below {quiet_lufs:g} LUFS</text>"
    )
    if timeline.integrated_lufs is not None:
        level = timeline.integrated_lufs
        marks += (
            f'<line class="integrated" x1="0" y1="{y(level):.1f}" x2="{_PLOT_WIDTH}" y2="{y(level):.1f}">'
            f"<title>integrated {level:.1f} LUFS</title></line>"
            f'<text class="integrated-label" x="4" y="{y(level) - 4:.1f}">integrated {level:.1f} LUFS</text>'
        )
    return (
        f'<svg class="plot" viewBox="-34 -6 {_PLOT_WIDTH + 40} {height + 24}" role="img" '
        f'aria-label="loudness over time">'
        f"{_speech_bands(timeline, height)}{levels}{_time_axis(timeline.duration, height)}"
        f"{line(((t, m) for t, m, _ in timeline.loudness), 'momentary')}"
        f"{line(((t, s) for t, _, s in timeline.loudness), 'short-term')}{marks}</svg>"
    )
