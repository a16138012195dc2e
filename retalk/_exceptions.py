"""The one exception tree of ``retalk`` (shaped like httpx's).

    RetalkError
    ├── ConfigError         no key, a base URL that is not https (or loopback http)
    ├── TransportError      the network failed, after the retries
    ├── ServiceError        the service answered an error: status, code, message, request_id
    │   ├── AuthError       401/403: the key or the account
    │   ├── ThrottledError  429, after the retries
    │   ├── InputError      400 and the like: the request or an input file (``finding``)
    │   └── ServerError     5xx, after the retries
    ├── UploadError         the temporary storage refused a file (policy expired, too big)
    ├── SubmitUncertain     a submit failed in a way that may have created a task anyway
    ├── TaskFailed          the task ended FAILED (``code``, ``message``, ``finding``)
    ├── TaskUnknown         the service answers UNKNOWN for the task: not an end, kept open
    ├── TaskTimeout         ``wait`` gave up; the task goes on
    ├── ProtocolError       an answer outside the protocol: too large, a task id that is not one
    └── DownloadError       the result could not be fetched whole, or written, or was too large
        └── ResultExpired   the result URL no longer works (results are kept 24 h)

No message ever contains the API key: everything is built from service answers and our own
words, and ``redact`` scrubs anything echoed back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight import Finding


class RetalkError(Exception):
    """Base class of every error ``retalk`` raises on purpose."""


class ConfigError(RetalkError):
    """The client cannot be set up as asked."""


class TransportError(RetalkError):
    """The request could not be completed over the network (after retries)."""

    #: The TLS handshake failed (a certificate not trusted, a proxy's own certificate):
    #: a setup problem that waiting does not cure, never taken for an outage.
    tls: bool = False


class ServiceError(RetalkError):
    """The service answered with an error."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        suffix = f" (request {request_id})" if request_id else ""
        super().__init__(f"{status} {code}: {message}{suffix}")

    @property
    def finding(self) -> Finding | None:
        """The preflight finding this error is, for ``InvalidFile.*`` codes."""
        return finding_for(self.code, self.message)


class AuthError(ServiceError):
    """The key is wrong, or the account may not use the model (401/403)."""


class ThrottledError(ServiceError):
    """Too many requests (429), still after the retries."""


class InputError(ServiceError):
    """The request or one of its files was refused (4xx)."""


class ServerError(ServiceError):
    """The service failed (5xx), still after the retries."""


class UploadError(RetalkError):
    """The temporary storage refused the file."""


class SubmitUncertain(RetalkError):
    """A submit failed after it was sent; a task may exist. Nothing was retried blindly."""


class TaskFailed(RetalkError):
    """The task ended FAILED."""

    def __init__(self, task_id: str, code: str, message: str) -> None:
        self.task_id = task_id
        self.code = code
        self.message = message
        super().__init__(f"task {task_id} failed: {code}: {message}")

    @property
    def finding(self) -> Finding | None:
        return finding_for(self.code, self.message)


class TaskUnknown(RetalkError):
    """The service answers ``UNKNOWN`` for the task ("no such task, or it expired"). Not
    taken for a failure: the task may still run, and a failure would free its job to be
    sent (and paid for) again. The job stays open; ``retalk resume`` asks again."""

    def __init__(self, task_id: str, job_id: int | None = None) -> None:
        self.task_id = task_id
        self.job_id = job_id
        text = f"the service answers UNKNOWN for task {task_id} (no such task, or it expired)"
        if job_id is not None:
            text = (
                f"job {job_id}: {text}; the job stays open: `retalk resume` asks again, and the same "
                "inputs are not sent again unless you pass --force (which pays for a new task); "
                f"`retalk forget {job_id}` stops following it"
            )
        super().__init__(text)


class TaskTimeout(RetalkError):
    """``wait`` ran out of time; the task is still running on the service."""


class ProtocolError(RetalkError):
    """The service, or anything between it and us, answered what the protocol does not
    allow: an answer larger than any real one (``Client(max_answer_bytes=...)``), a task id
    that is not one (it could name a file or a URL path). Nothing in that answer was used.
    A submit answered so may still have made a task: its job is kept in the journal as
    ``protocol-error`` and never sent again by itself."""


class DownloadError(RetalkError):
    """The result could not be downloaded whole, or not written where it goes (a full disk)."""


class ResultExpired(DownloadError):
    """The result URL answers 403/404/410: the result has expired (it is kept 24 h after
    the task ends) or the URL is wrong. The task was paid for; nothing is sent again."""


def finding_for(code: str, message: str) -> Finding | None:
    """A service error code as the preflight finding it is (same code, same severity)."""
    from preflight import CODES, Finding

    known = CODES.get(code)
    if known is None or not code.startswith("InvalidFile."):
        return None
    return Finding(
        code, known.severity, f"The service rejected the task: {message}", False, {"source": "service"}
    )


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (and its Bearer form) hidden."""
    if not secret:
        return text
    return text.replace(secret, "***")
