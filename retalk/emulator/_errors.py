"""The error answer the emulated service gives, raised wherever a request is judged.

The state, the request checks and the endpoints find the error; only the HTTP handler
writes it, as the service's JSON error body.
"""

from __future__ import annotations


class ErrorReply(Exception):
    """An error answer: its HTTP status, the service's ``code`` and ``message``, and any
    extra headers (``Retry-After``, ``Content-Range``)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
