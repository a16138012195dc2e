"""The emulated service's HTTP side: routes, request bodies, and the answers written back.

Standard library only (``http.server``), on loopback. Three kinds of address: the API under
``/api/v1`` (where the injected faults and the key check apply), the temporary storage's
POST (``/oss``) and the result downloads (``/results/...``, with ``Range``).
"""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._endpoints import Endpoints
from ._errors import ErrorReply
from ._tasks import new_id
from ._validation import REQUEST_MAX_BYTES, UPLOAD_MAX_MB

_log = logging.getLogger("retalk.emulator")

API_PREFIX = "/api/v1"
SUBMIT_PATH = API_PREFIX + "/services/aigc/image2video/video-synthesis"
#: How much of a result is sent at a time (a held download has sent one such chunk).
SEND_CHUNK = 64 * 1024


class _Drop(Exception):
    """Close the connection without answering (an injected fault)."""


class HttpServer(ThreadingHTTPServer):
    """The threaded server of one emulator, answering with ``endpoints``; ``stopping`` is set
    when the emulator stops (a slowed answer stops waiting)."""

    # Handler threads must not keep the process alive, nor make server_close() wait on an
    # idle keep-alive connection.
    daemon_threads = True

    def __init__(self, host: str, port: int, endpoints: Endpoints, stopping: threading.Event) -> None:
        self.endpoints = endpoints
        self.stopping = stopping
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__((host, port), _Handler)
        #: ``http://HOST:PORT`` (for the storage host and result URLs).
        self.origin = f"http://{host}:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (killed, timed out) is not the server's error.
        _log.debug("connection from %s ended badly", client_address, exc_info=True)

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """End the open connections: idle keep-alive ones would linger in their threads."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    server: HttpServer
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect
    timeout = 60  # an idle connection is closed after this long

    @property
    def endpoints(self) -> Endpoints:
        return self.server.endpoints

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header on the service's clock (skewed on demand).
        moment = time.time() if timestamp is None else timestamp
        return email.utils.formatdate(moment + self.endpoints.faults.clock_offset_s, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only (never headers, so never the key), and quietly.
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ routes
    def _dispatch(self, method: str) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        logged = dict(headers)
        if "authorization" in logged:
            logged["authorization"] = "Bearer ***"
        self.endpoints.state.record(method, self.path, logged)
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        try:
            body = self._read_body(headers)
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._api(method, path, urllib.parse.parse_qs(url.query), headers, body)
            elif path.rstrip("/") == "/oss" and method == "POST":
                self.endpoints.holds.gate("storage")
                fields = parse_multipart(headers.get("content-type", ""), body)
                ok_200 = self.endpoints.store(fields)
                self._send(200 if ok_200 else 204, b"", "text/plain")
            elif path.startswith("/results/") and method in ("GET", "HEAD"):
                self._result(path.removeprefix("/results/"), headers, method == "HEAD")
            else:
                raise ErrorReply(404, "NotFound", f"No such endpoint: {method} {path}")
        except ErrorReply as reply:
            self._send_error(reply)
        except _Drop:
            self.close_connection = True

    def _api(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> None:
        endpoints = self.endpoints
        faults = endpoints.faults
        number = endpoints.state.next_api_number()
        if faults.slow_s > 0:
            self.server.stopping.wait(faults.slow_s)
        if faults.drop_every and number % faults.drop_every == 0:
            raise _Drop()
        if faults.throttle_every and number % faults.throttle_every == 0:
            raise ErrorReply(
                429, "Throttling.RateQuota", "Requests rate limit exceeded (injected).", {"Retry-After": "1"}
            )
        if faults.error_every and number % faults.error_every == 0:
            raise ErrorReply(500, "InternalError", "An internal error has occurred (injected).")
        endpoints.state.check_key(headers.get("authorization"))
        route = path.removeprefix(API_PREFIX).rstrip("/")
        parts = route.split("/")  # "", "tasks", id, "cancel"
        origin = self.server.origin
        answer: dict[str, Any]
        if method == "POST" and API_PREFIX + route == SUBMIT_PATH:
            answer = endpoints.submit(headers, body)
        elif method == "GET" and route == "/tasks":
            answer = endpoints.list_tasks(query, origin)
        elif method == "GET" and len(parts) == 3 and parts[1] == "tasks":
            answer = endpoints.query(parts[2], origin)
        elif method == "POST" and len(parts) == 4 and parts[1] == "tasks" and parts[3] == "cancel":
            answer = endpoints.cancel(parts[2])
        elif method == "GET" and route == "/uploads":
            answer = endpoints.policy(query, origin)
        else:
            raise ErrorReply(404, "NotFound", f"No such endpoint: {method} {path}")
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _result(self, name: str, headers: dict[str, str], head_only: bool) -> None:
        stored = self.endpoints.result_file(name)
        if stored is None or not stored.is_file():
            raise ErrorReply(404, "NoSuchKey", "The specified key does not exist.")
        size = stored.stat().st_size
        start, end = 0, size - 1
        status = 200
        extra: dict[str, str] = {"Accept-Ranges": "bytes"}
        wanted = headers.get("range")
        if wanted:
            span = parse_range(wanted, size)
            if span is None:
                raise ErrorReply(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable.",
                    {"Content-Range": f"bytes */{size}"},
                )
            start, end = span
            status = 206
            extra["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(length))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if head_only:
            return
        with stored.open("rb") as source:
            source.seek(start)
            left = length
            first = True
            while left > 0:
                chunk = source.read(min(SEND_CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
                if first:
                    first = False
                    self.wfile.flush()
                    self.endpoints.holds.gate("result")  # part of the file is on its way

    # ------------------------------------------------------------------ request bodies
    def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            # httpx streams a form whose file has no known length this way.
            return self._read_chunked()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise ErrorReply(400, "InvalidParameter", "Bad Content-Length.") from None
        if length > REQUEST_MAX_BYTES:
            self.close_connection = True  # the rest of the body is not read
            raise _too_large()
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        pieces: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise ErrorReply(400, "InvalidArgument", "Bad chunked encoding.") from None
            if size == 0:
                # Trailers, if any, end with an empty line.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(pieces)
            total += size
            if total > REQUEST_MAX_BYTES:
                self.close_connection = True
                raise _too_large()
            pieces.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after each chunk

    # ------------------------------------------------------------------ answers
    def _send_error(self, reply: ErrorReply) -> None:
        body = {"request_id": new_id(), "code": reply.code, "message": reply.message}
        self._send(reply.status, json.dumps(body).encode(), "application/json", reply.headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _too_large() -> ErrorReply:
    return ErrorReply(400, "EntityTooLarge", f"The request is larger than {UPLOAD_MAX_MB} MB.")


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The (name, value) fields of a multipart/form-data body, in order (parsed by hand:
    the ``cgi`` module is gone, and ``email`` is not safe with binary parts)."""
    kind, _, params = content_type.partition(";")
    boundary = ""
    for param in params.split(";"):
        key, _, text = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = text.strip().strip('"')
    if kind.strip().lower() != "multipart/form-data" or not boundary:
        raise ErrorReply(
            400, "InvalidArgument", "The storage POST must be multipart/form-data with a boundary."
        )
    delimiter = b"\r\n--" + boundary.encode()
    chunks = (b"\r\n" + body).split(delimiter)
    fields: list[tuple[str, bytes]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, separator, value = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise ErrorReply(400, "InvalidArgument", "A form part has no header.")
        name = _part_name(head)
        if name is None:
            raise ErrorReply(400, "InvalidArgument", "A form part has no name.")
        fields.append((name, value))
    return fields


def _part_name(head: bytes) -> str | None:
    """The ``name`` of a form part's Content-Disposition header, if it has one."""
    name: str | None = None
    for line in head.decode("utf-8", "replace").split("\r\n"):
        header, _, rest = line.partition(":")
        if header.strip().lower() != "content-disposition":
            continue
        for param in rest.split(";"):
            key, _, raw = param.strip().partition("=")
            if key.lower() == "name":
                name = raw.strip().strip('"')
    return name


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``bytes=N-``, ``bytes=N-M`` or ``bytes=-N`` as an inclusive span; None if unsatisfiable."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            count = int(last)
            return (max(0, size - count), size - 1) if count > 0 and size > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)
