"""How the emulated service runs a task, one at a time, and what the task produces.

A task fetches its inputs (from the emulator's storage or by URL), is judged with
preflight's rules (a rejected input fails the task with the service's ``InvalidFile.*``
code), and produces the input video with the new audio muxed in: clearly not lip-synced.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from preflight import CheckOptions, check_paths, limits

from ._faults import Faults
from ._state import EmulatorState
from ._tasks import EmulatedTask

_log = logging.getLogger("retalk.emulator")

#: How much of an input is copied at a time while it downloads.
COPY_CHUNK = 64 * 1024


class _Stopped(Exception):
    """The emulator stops while a task runs: the task is left RUNNING (run again on restart)."""


class _TaskFailed(Exception):
    """A task ends FAILED with the service's ``code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TaskRunner:
    """Runs the queued tasks of ``state`` in order until ``stopping`` is set (``work``)."""

    def __init__(self, state: EmulatorState, faults: Faults, stopping: threading.Event) -> None:
        self._state = state
        self._faults = faults
        self._stopping = stopping

    def work(self) -> None:
        """The runner thread: each queued task in turn, until a ``None`` or the stop."""
        state = self._state
        while not self._stopping.is_set():
            task_id = state.queue.get()
            if task_id is None:
                return
            task = state.begin(task_id)
            if task is None:  # canceled while it waited
                continue
            try:
                result, usage = self._run(task)
            except _Stopped:
                return
            except _TaskFailed as failure:
                state.end(task, "FAILED", code=failure.code, message=failure.message)
            except Exception as error:  # a bug or a file PyAV chokes on: the task fails, not the runner
                _log.exception("task %s failed", task.task_id)
                message = f"Processing failed: {error}"
                state.end(task, "FAILED", code="InternalError.Algo", message=message)
            else:
                state.end(task, "SUCCEEDED", result=result, usage=usage)

    def _run(self, task: EmulatedTask) -> tuple[Path, dict[str, Any]]:
        folder = self._state.fetched(task.task_id)
        folder.mkdir(parents=True, exist_ok=True)
        video = self._fetch(task.video_url, folder, "video")
        audio = self._fetch(task.audio_url, folder, "audio")
        ref = self._fetch(task.ref_image_url, folder, "ref") if task.ref_image_url else None
        report = check_paths(video=video, audio=audio, ref=ref, options=CheckOptions(fast=True))
        for finding in report.all_findings():
            if finding.code.startswith("InvalidFile.") and str(finding.severity) == "error":
                raise _TaskFailed(finding.code, finding.message)
        target = self._state.results / f"{task.task_id}.mp4"
        usage = mux(video, audio, target, task.video_extension)
        # The service takes its time; so does the emulator, in a way stop() can interrupt
        # (a stopped service has not finished the task: it runs again after a restart), and
        # that a test may shorten while the task runs (``faults.task_seconds`` is read anew).
        started = time.monotonic()
        while time.monotonic() - started < self._faults.task_seconds:
            if self._stopping.wait(min(0.05, self._faults.task_seconds)):
                raise _Stopped()
        if self._faults.fail_tasks:
            raise _TaskFailed(*self._faults.fail_with)
        return target, usage

    def _fetch(self, url: str, folder: Path, role: str) -> Path:
        """An input: a file in the emulator's storage (``oss://``), or downloaded into ``folder``."""
        refused = _TaskFailed(
            "InvalidURL.ConnectionRefused", f"Connection to {url} refused, please provide avaiable URL"
        )
        if url.startswith("oss://"):
            parts = url.removeprefix("oss://").split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise refused
            stored = self._state.uploads / Path(*parts)
            if not stored.is_file():
                raise refused
            return stored
        name = Path(urllib.parse.urlsplit(url).path).name or role
        target = folder / f"{role}-{name}"
        timed_out = _TaskFailed(
            "InvalidURL.Timeout", f"Download {url} timeout, please check network connection."
        )
        # The service gives up downloading an input after a while, and says so.
        timeout = float(limits.INPUT_DOWNLOAD_TIMEOUT_S)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer, target.open("wb") as out:
                shutil.copyfileobj(answer, out, COPY_CHUNK)
        except TimeoutError:
            raise timed_out from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            if isinstance(getattr(error, "reason", None), TimeoutError):
                raise timed_out from None
            raise refused from None
        return target


def mux(video: Path, audio: Path, target: Path, extend: bool) -> dict[str, Any]:
    """The input video's picture (packets copied) with the new audio as AAC, in an MP4.

    Without ``video_extension`` the longer input is cut to the shorter one, as the service
    does. With it, the service plays the video forward then backward to cover the audio; the
    emulator keeps both whole instead (its result is not meant to be watched).
    Returns the task's ``usage``.
    """
    partial = target.with_suffix(".part.mp4")
    with av.open(str(video)) as picture, av.open(str(audio)) as sound:
        in_video = picture.streams.video[0]
        in_audio = sound.streams.audio[0]
        limit = None if extend else min(_duration(picture, in_video), _duration(sound, in_audio))
        width, height = in_video.codec_context.width, in_video.codec_context.height
        rate = in_video.average_rate or in_video.guessed_rate or Fraction(25)
        with av.open(str(partial), "w", format="mp4") as out:
            out_video = out.add_stream_from_template(in_video)
            sample_rate = in_audio.codec_context.sample_rate or 44100
            out_audio = out.add_stream("aac", rate=sample_rate, layout="mono")
            time_base = in_video.time_base or Fraction(1, 90000)
            for packet in picture.demux(in_video):
                if packet.dts is None:
                    continue  # the demuxer's empty flush packet
                # Stop at the first frame past the cut (decode order), so no kept frame
                # refers to a dropped one.
                if limit is not None and packet.pts is not None and packet.pts * time_base >= limit:
                    break
                packet.stream = out_video
                out.mux(packet)
            _mux_audio(sound.decode(in_audio), out, out_audio, sample_rate, limit)
    partial.replace(target)
    with av.open(str(target)) as result:
        seconds = (result.duration or 0) / 1_000_000
    return {
        "video_duration": round(seconds, 3),
        "size": f"{width}*{height}",
        "fps": round(float(rate)),
        "video_ratio": "standard",
    }


def _mux_audio(frames: Any, out: Any, out_audio: Any, sample_rate: int, limit: float | None) -> None:
    """The decoded new audio (``frames``) into ``out_audio``, mono AAC at ``sample_rate``,
    cut at ``limit`` seconds if one is given."""
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
    budget = None if limit is None else round(limit * sample_rate)
    written = 0
    for frame in frames:
        for chunk in resampler.resample(frame):
            samples = chunk.to_ndarray()
            if budget is not None:
                samples = samples[:, : max(0, budget - written)]
            if samples.shape[1] == 0:
                continue
            piece = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            piece.sample_rate = sample_rate
            piece.pts = written
            piece.time_base = Fraction(1, sample_rate)
            written += samples.shape[1]
            for packet in out_audio.encode(piece):
                out.mux(packet)
    for packet in out_audio.encode(None):
        out.mux(packet)


def _duration(container: Any, stream: Any) -> float:
    """A stream's duration in seconds, or its container's when the stream does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / 1_000_000
