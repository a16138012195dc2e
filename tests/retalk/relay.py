"""A front door for a service that restarts: a listening socket on a port the OS handed out,
kept for the whole test, forwarding each connection to whichever service runs behind it.

A test that kills a service and starts it again on the same port races every other process
on the machine for that port in between. Here the client only ever knows the front door's
port, which stays taken; each service behind it gets a fresh port of its own. While there
is none (the outage), a connection is accepted and reset unanswered: the client meets a
service that is not there, as it would at a closed port, and no answer ever comes.
"""

from __future__ import annotations

import socket
import struct
import threading
from urllib.parse import urlsplit, urlunsplit


class Relay:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._target: int | None = None
        #: Connections met with nobody behind the door (during an outage).
        self.refused = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)
        self._thread.start()

    def url(self, behind: str) -> str:
        """``behind`` (a service's URL) as reached through this front door."""
        parts = urlsplit(behind)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def forward_to(self, url: str | None) -> None:
        """Send new connections to the service at ``url``; None: to nobody (an outage).
        Connections already relayed are cut, as a dying service cuts them."""
        with self._lock:
            self._target = urlsplit(url).port if url else None
            if url is None:
                for connection in list(self._open):
                    _reset(connection)
                self._open.clear()

    def close(self) -> None:
        self.forward_to(None)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed: the test is over
                return
            with self._lock:
                target = self._target
            if target is None:
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", target))
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open |= {client, server}
            ends = threading.Barrier(2, action=lambda c=client, s=server: self._done(c, s))  # type: ignore[misc]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink, ends), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, ends: threading.Barrier) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            _reset(sink)
        finally:
            ends.wait()

    def _done(self, client: socket.socket, server: socket.socket) -> None:
        with self._lock:
            self._open -= {client, server}
        client.close()
        server.close()


def _reset(connection: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), not a polite end: nothing was answered."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass
