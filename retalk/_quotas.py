"""The service's documented quotas, and the limiter that keeps a client inside them.

A request over a quota costs a round trip and a 429, and for a submit a retry the service
may refuse again; the quotas are per account, so one limiter is shared by every request of
a client (and may be shared by several clients, as a batch's threads do).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Quotas:
    """Requests per second the service takes, per account (each counted over a window of
    ``max(1, rate)`` requests, so "20 per second" is never 21 in any second)."""

    #: VideoRetalk takes "about 1 submission per second" (its API page, rate limits).
    submits_per_s: float = 1.0
    #: Task queries, the task list and cancels: 20 QPS (the same page).
    queries_per_s: float = 20.0
    #: Upload policies: 100 QPS per account and model (the temporary-storage page).
    policies_per_s: float = 100.0
    #: Added to every window: the service counts arrivals, and the network and a busy
    #: machine can bring two requests closer on arrival than they were sent.
    margin_s: float = 0.05

    def __post_init__(self) -> None:
        for name in ("submits_per_s", "queries_per_s", "policies_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Quotas.{name} must be above 0, not {getattr(self, name)}")
        if not self.margin_s >= 0:
            raise ValueError(f"Quotas.margin_s must be 0 or more, not {self.margin_s}")

    def window(self, kind: str) -> tuple[int, float]:
        """How many requests of ``kind`` fit in how many seconds."""
        rates = {"submit": self.submits_per_s, "query": self.queries_per_s, "policy": self.policies_per_s}
        rate = rates[kind]
        count = max(1, int(rate))
        return count, count / rate + self.margin_s


class RateLimiter:
    """Spaces requests so that no window of a quota holds more than it allows.

    Each request reserves the earliest slot that keeps its kind within quota and then
    waits for it; reserving is one short step under a lock (threads may share a client, or
    several clients one limiter), and waiting is the caller's (``time.sleep`` or
    ``asyncio.sleep``), so no one holds the lock while waiting. ``clock`` is monotonic;
    tests give a fake one that their fake sleep moves on.
    """

    def __init__(self, quotas: Quotas | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.quotas = quotas or Quotas()
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: dict[str, deque[float]] = {}

    def reserve(self, kind: str) -> float:
        """Take the next slot for a request of ``kind``; the seconds to wait before sending it."""
        count, window = self.quotas.window(kind)
        with self._lock:
            now = self._clock()
            slots = self._slots.setdefault(kind, deque(maxlen=count))
            # The count-th slot back must have left the window: slots only grow, so this
            # keeps every window within the quota.
            slot = now if len(slots) < count else max(now, slots[0] + window)
            slots.append(slot)
        return slot - now

    def throttled_floor(self, kind: str) -> float:
        """The least wait before retrying a request of ``kind`` the service throttled: its
        quota's whole window (the service counts over it; an earlier retry is refused again)."""
        return self.quotas.window(kind)[1]


def kind_of(method: str, path: str, submit_path: str) -> str:
    """Which quota an API request counts against."""
    if method == "POST" and path.rstrip("/") == submit_path.rstrip("/"):
        return "submit"
    if path.startswith("/uploads"):
        return "policy"
    return "query"
