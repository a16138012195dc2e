"""The emulator itself: one root, one HTTP server and one task runner, started and stopped
together. The other modules each do one job; this one wires them and owns the threads.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from types import TracebackType

from ._endpoints import Endpoints
from ._faults import Faults, Hold, Holds
from ._handler import API_PREFIX, HttpServer
from ._runner import TaskRunner
from ._state import EmulatorState
from ._tasks import service_now


class Emulator:
    """The VideoRetalk API on loopback. Use as a context manager, or ``start()``/``stop()``.

    ``root`` keeps the uploads, the results and the task table: an emulator started again
    on the same root knows its tasks and finishes the ones that were running. Without
    ``api_key`` any bearer key is accepted. ``faults`` may be changed while it runs.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.root = Path(root)
        self.host = host
        self.port = port
        self._faults = faults or Faults()
        #: The service's memory: tests that change a task by hand hold ``state.lock``.
        self.state = EmulatorState(self.root, api_key, clock=self._service_time)
        self._stopping = threading.Event()
        self._holds = Holds(self._stopping)
        self._endpoints = Endpoints(self.state, self._faults, self._holds)
        self._runner = TaskRunner(self.state, self._faults, self._stopping)
        self._server: HttpServer | None = None
        self._threads: list[threading.Thread] = []

    def _service_time(self) -> datetime:
        return service_now(self._faults.clock_offset_s)

    @property
    def faults(self) -> Faults:
        """The faults in force (change its fields, not the object: every part reads this one)."""
        return self._faults

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, headers) of every request; Authorization shows as "Bearer ***"."""
        return self.state.requests

    @property
    def submissions(self) -> int:
        """How many tasks were created."""
        return self.state.submissions

    # ------------------------------------------------------------------ lifecycle
    @property
    def origin(self) -> str:
        """``http://HOST:PORT`` (for the storage host and result URLs)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.origin

    @property
    def base_url(self) -> str:
        """The API's base URL, for a client's ``base_url`` or ``DASHSCOPE_HTTP_BASE_URL``."""
        return self.origin + API_PREFIX

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self.state.load()
        self._stopping.clear()
        self._server = HttpServer(self.host, self.port, self._endpoints, self._stopping)
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="emulator-http"
            ),
            threading.Thread(target=self._runner.work, name="emulator-worker"),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        self.state.queue.put(None)
        server.shutdown()
        server.close_connections()
        server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        self._server = None

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (for the CLI)."""
        self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ for tests and the CLI
    def hold(self, point: str) -> Hold:
        """Make the next request that gets to ``point`` (one of ``HOLD_POINTS``) wait there
        until the returned hold is released: for tests that stop a client at a chosen step."""
        return self._holds.hold(point)

    def forget(self, task_id: str, forgotten: bool = True) -> None:
        """Answer ``UNKNOWN`` for this task's queries (as the service does for a task it does
        not know, or no longer knows) while it goes on running; ``forgotten=False`` answers
        for it again (a lagging replica caught up)."""
        self.state.forget(task_id, forgotten)

    def discard(self, task_id: str) -> None:
        """Delete a finished task's result and the inputs it fetched (its client has the
        result): the folder does not keep every result forever. Its URL then answers 404."""
        self.state.discard(task_id)
