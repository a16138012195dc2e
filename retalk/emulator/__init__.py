"""A local emulator of the DashScope VideoRetalk HTTP API, for offline development and tests.

    >>> from pathlib import Path
    >>> from retalk import Client
    >>> from retalk.emulator import Emulator, Faults
    >>> with Emulator(Path("emulator"), faults=Faults(task_seconds=0.5)) as emulator:
    ...     with Client("any-key", base_url=emulator.base_url) as client:
    ...         task = client.submit(client.upload("talk.mp4"), client.upload("voice.wav"))
    ...         done = client.wait(task.task_id)
    ...         client.download(done.video_url, "out.mp4")

The same from a shell: ``retalk emulator`` (see ``retalk emulator --help``), or
``prep-and-retalk --emulator``.

What it serves, on loopback: the documented endpoints (submit, task query, cancel, list,
upload policy), the temporary storage's POST (``/oss``: policy signature and expiry, no
overwrite, the file last) and the result download (``/results``, with ``Range``).
Like the service, it runs one task at a time and accepts about one submission per second;
it judges a task's inputs with preflight's rules, so a rejected task fails with the same
``InvalidFile.*`` code the service would give. The "result" is the input video with the new
audio muxed in: it is clearly not lip-synced.

``root`` keeps the uploads, the results and the task table: an emulator started again on
the same root knows its tasks and finishes those that were running, as the service does
after a restart.

For tests:

- ``Faults`` injects throttling, errors, dropped connections, slow answers, failed tasks,
  expired URLs, a skewed clock or a hostile task id; its fields may change while it runs.
- ``Emulator.hold(point)`` holds the next request at one of ``HOLD_POINTS`` until the
  returned ``Hold`` is released, so a client can be stopped (or killed) at a chosen step.
- ``Emulator.forget(task_id)`` answers ``UNKNOWN`` for a task that goes on running.
- ``Emulator.state`` is what the service remembers (``EmulatedTask`` records by id); hold
  ``state.lock`` to change a task by hand. ``service_now()`` is the service's clock.

The server is standard library only (``http.server``); PyAV makes the result.
"""

from __future__ import annotations

from ._faults import HOLD_POINTS, Faults, Hold
from ._server import Emulator
from ._state import EmulatorState
from ._tasks import EmulatedTask, service_now

__all__ = [
    "HOLD_POINTS",
    "EmulatedTask",
    "Emulator",
    "EmulatorState",
    "Faults",
    "Hold",
    "service_now",
]
