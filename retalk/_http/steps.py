"""The I/O the protocol core asks its driver for, one step at a time.

Every decision of the client is made in a generator of the core (``BaseClient``): it yields
one of these steps whenever it needs the network or the clock, and gets the outcome sent
back in (or the exception thrown in). ``Client`` does each step with ``httpx.Client`` and
its ``sleep``, ``AsyncClient`` with ``httpx.AsyncClient`` and an ``await``-ed one: the two
cannot drift, because neither decides anything.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

T = TypeVar("T")


@dataclass(frozen=True)
class Open:
    """Send ``request`` (redirects not followed) and hand back its answer, open to stream.
    ``api``: on the API's connections (the key's), else on the storage and result hosts'."""

    request: httpx.Request
    api: bool


@dataclass(frozen=True)
class Drain:
    """Feed the open ``response``'s body to ``sink`` as it arrives, undecoded."""

    response: httpx.Response
    sink: Callable[[bytes], None]


@dataclass(frozen=True)
class Close:
    """Close an open ``response`` (whatever of its body was not read is dropped)."""

    response: httpx.Response


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` (the client's injected sleep)."""

    seconds: float


@dataclass(frozen=True)
class Exclusive:
    """Run ``steps`` while no other run of this client's holds its lock, and hand back their
    result (uploads running at once share one policy fetch)."""

    steps: Generator[Step, Any, Any]


Step = Open | Drain | Close | Pause | Exclusive
#: A core operation: yields steps, gets their outcomes, returns its result.
Steps = Generator[Step, Any, T]


class Run(Generic[T]):
    """One core operation being run: hands the outcome of each step (or its exception) back
    in and says which step is next, so that the clients' loops only do the steps."""

    #: What the operation returned; set once ``next_step`` returned None.
    result: T

    def __init__(self, steps: Steps[T]) -> None:
        self._steps = steps
        self._outcome: Any = None
        self._failure: BaseException | None = None

    def next_step(self) -> Step | None:
        """The step to do next; None once the operation has returned (see ``result``)."""
        try:
            if self._failure is None:
                return self._steps.send(self._outcome)
            return self._steps.throw(self._failure)
        except StopIteration as done:
            self.result = done.value
            return None

    def did(self, outcome: Any) -> None:
        """The last step's outcome, for the operation to go on with."""
        self._outcome, self._failure = outcome, None

    def failed(self, exc: BaseException) -> None:
        """The last step raised ``exc``: thrown into the operation, which decides."""
        self._outcome, self._failure = None, exc
