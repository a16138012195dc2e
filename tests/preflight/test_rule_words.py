"""The shared pieces every rule is written with: how numbers read, which length is judged,
which severity a code has, and what the one loudness meter measures."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import numpy as np
import pytest

from preflight import AudioStreamInfo, MediaInfo, VideoStreamInfo
from preflight._probe.loudness import LoudnessMeter
from preflight._rules.finding import finding
from preflight._rules.words import axis_clock, clock, in_seconds, mb, number, percent
from preflight.codes import CODES


def test_a_player_clock_rounds_to_tenths_before_carrying_the_minute() -> None:
    assert clock(59.96) == "1:00.0"
    assert clock(61.25) == "1:01.2"
    assert clock(-3.0) == "0:00.0"


def test_an_axis_tick_reads_seconds_under_a_minute_and_minutes_beyond() -> None:
    assert [axis_clock(t) for t in (0.0, 0.5, 30.0, 60.0, 90.0, 3600.0)] == [
        "0 s",
        "0.5 s",
        "30 s",
        "1:00",
        "1:30",
        "60:00",
    ]


def test_numbers_read_as_precisely_as_they_were_set() -> None:
    assert (number(14.985), number(25.0), in_seconds(1.5)) == ("14.985", "25", "1.5 s")
    assert (percent(0.15), percent(0.125), percent(0.4)) == ("15%", "12.5%", "40%")
    assert mb(100 * 1024 * 1024) == "100.0 MB"


def test_every_code_is_raised_at_its_own_severity() -> None:
    for code, known in CODES.items():
        made = finding(code, "message", fixable=True, extra=1)
        assert (made.severity, made.fixable, made.details) == (known.severity, True, {"extra": 1})


_PICTURE = VideoStreamInfo(
    0, "h264", "High", "yuv420p", 640, 640, 640, 640, 0, 25.0, 25.0, False, 75, None, 0.0, None
)
_SOUND = AudioStreamInfo(1, "aac", "LC", 48000, 1, "mono", "fltp", None, 2.5, 0.0, None)
_FILE = MediaInfo(
    "a.mp4", 1000, "mov,mp4,m4a,3gp,3g2,mj2", 4.0, 0.0, None, video=(_PICTURE,), audio=(_SOUND,)
)


def test_the_judged_length_is_the_streams_own_else_the_containers() -> None:
    assert _FILE.stream_length("audio") == 2.5
    assert _FILE.stream_length("video") == 4.0  # the picture states none: the container's
    assert dataclasses.replace(_FILE, audio=()).stream_length("audio") is None


def _sine(amplitude: float, channels: int, rate: int = 48000, seconds: float = 5.0) -> list[av.AudioFrame]:
    t = np.arange(int(rate * seconds)) / rate
    tone = (amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    planes = np.repeat(tone[None, :], channels, axis=0)
    layout = "mono" if channels == 1 else "stereo"
    frames = []
    for start in range(0, planes.shape[1], 4096):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planes[:, start : start + 4096]), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        frames.append(frame)
    return frames


def test_the_meter_reads_the_ebu_reference_tone_at_minus_23_lufs() -> None:
    # EBU Tech 3341, case 1: a stereo 1 kHz sine at -23 dBFS reads -23.0 +- 0.1 LUFS.
    meter = LoudnessMeter(
        format="fltp", sample_rate=48000, layout="stereo", time_base=Fraction(1, 48000), peak="sample+true"
    )
    readings = 0
    for frame in [*_sine(10 ** (-23 / 20), channels=2), None]:
        readings += len(meter.push(frame))
    assert readings > 40  # one every 100 ms of the 5 s
    assert meter.integrated_lufs == pytest.approx(-23.0, abs=0.1)
    assert meter.true_peak_dbtp == pytest.approx(-23.0, abs=0.2)
    assert meter.sample_peak_dbfs == pytest.approx(-23.0, abs=0.1)


def test_silence_has_no_loudness_and_no_peak() -> None:
    meter = LoudnessMeter(format="fltp", sample_rate=48000, layout="mono", time_base=Fraction(1, 48000))
    for frame in [*_sine(0.0, channels=1, seconds=2.0), None]:
        meter.push(frame)
    assert (meter.integrated_lufs, meter.sample_peak_dbfs, meter.true_peak_dbtp) == (None, None, None)
