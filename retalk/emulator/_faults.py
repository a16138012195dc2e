"""What a test (or ``retalk emulator``'s flags) can make the emulated service do.

``Faults`` are the service's misbehaviours and timings, read anew at every request and
task (a test may change a field while the emulator runs). ``Holds`` stop a request at a
chosen step until the test lets it go on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from preflight import limits

#: Where a request can be held (``Emulator.hold``): the storage POST before the file is
#: stored; the task list and a task query before they are answered; a submit after its task
#: is created, before the answer; a result download after its first chunk.
HOLD_POINTS = ("storage", "list", "query", "submit", "result")


@dataclass
class Faults:
    """Fault injection; everything is off by default except the service's own rate limit."""

    #: Every Nth API request answers 429 ``Throttling.RateQuota`` with ``Retry-After: 1``.
    throttle_every: int = 0
    #: Every Nth API request answers 500 ``InternalError``.
    error_every: int = 0
    #: Every API response is delayed this long (seconds).
    slow_s: float = 0.0
    #: Every Nth API request: the connection is closed without a response.
    drop_every: int = 0
    #: Tasks end FAILED with ``output.code`` ``InternalError.Algo``.
    fail_tasks: bool = False
    #: The ``code`` and ``message`` such a task ends with (the service's text is free
    #: text: tests give it markup and control characters).
    fail_with: tuple[str, str] = ("InternalError.Algo", "Injected failure: the algorithm failed.")
    #: ``expire_in_seconds`` of upload policies; a storage POST after that answers 403.
    policy_ttl_s: int = 300
    #: How long a task stays RUNNING once started (plus the real muxing time).
    task_seconds: float = 2.0
    #: The service accepts about one submission per second; 0 turns the limit off.
    submit_interval_s: float = 1.0
    #: How long a result URL works after its task ended (the service's: 24 h); after
    #: that the download answers 403 and the task query still gives the same URL.
    result_ttl_s: float = float(limits.RESULT_URL_TTL_S)
    #: The service's clock minus this machine's (seconds): its task times, its Date
    #: header and its upload policies' expiry are stated on that clock.
    clock_offset_s: float = 0.0
    #: A hostile service (or anything between): the submit's answer names this task id
    #: instead of the task it created (which runs, and is listed, as usual).
    submit_task_id: str | None = None


@dataclass
class Hold:
    """A request held at a point (``Emulator.hold``) until ``release()`` or the emulator stops."""

    point: str
    #: Set when a request got to the point and waits there.
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class Holds:
    """The holds set and not yet reached, one per point; ``stopping`` lets every one go."""

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._lock = threading.Lock()
        self._waiting: dict[str, Hold] = {}

    def hold(self, point: str) -> Hold:
        """Hold the next request that gets to ``point`` (one of ``HOLD_POINTS``)."""
        if point not in HOLD_POINTS:
            raise ValueError(f"no hold point {point!r}; one of {', '.join(HOLD_POINTS)}")
        hold = Hold(point)
        with self._lock:
            self._waiting[point] = hold
        return hold

    def gate(self, point: str) -> None:
        """Called by a request at ``point``: wait there if a hold was set for it."""
        with self._lock:
            hold = self._waiting.pop(point, None)
        if hold is None:
            return
        hold.reached.set()
        while not hold.released.wait(0.05) and not self._stopping.is_set():
            pass
