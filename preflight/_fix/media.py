"""What every writer of the fixer opens and reads the same way: the MP4 it writes, the
picture's pixel format, and a voice as 16-bit PCM blocks.

The video writer, the cut of a long job into parts and the join of the results all write
MP4 that the service reads while downloading, and cut and join read the voice alike: one
definition each, so the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import av
import numpy as np

from .._local_file import local_file

#: Output pixel format: 8-bit 4:2:0, what every H.264 decoder takes.
PIXEL_FORMAT = "yuv420p"


def open_mp4(target: Path) -> Any:
    """``target`` opened for writing MP4."""
    # faststart: the index goes first, so the service can read the file while downloading.
    return av.open(local_file(target), "w", format="mp4", options={"movflags": "+faststart"})


def pcm_blocks(source: str) -> tuple[int, str, Generator[np.ndarray, None, None]]:
    """The voice as interleaved 16-bit blocks (one row), with its rate and layout."""
    container = av.open(local_file(source))
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate
    # By count: a WAV without a channel mask names its layout "1 channels", which AAC refuses.
    layout = "stereo" if stream.channels == 2 else "mono"
    resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)

    def blocks() -> Generator[np.ndarray, None, None]:
        try:
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    yield converted.to_ndarray()
            for converted in resampler.resample(None):
                yield converted.to_ndarray()
        finally:
            container.close()

    return rate, layout, blocks()
