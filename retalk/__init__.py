"""retalk: the VideoRetalk HTTP client (upload, submit, wait, download) and its emulator.

    >>> from retalk import Client
    >>> with Client() as client:  # the key from DASHSCOPE_API_KEY
    ...     task = client.submit(client.upload("talk.mp4"), client.upload("voice.wav"))
    ...     done = client.wait(task.task_id)
    ...     client.download(done.video_url, "out.mp4")

The client is built on ``preflight`` for input checks; ``preflight`` never imports it.
"""

from __future__ import annotations

from ._exceptions import (
    AuthError,
    ConfigError,
    DownloadError,
    InputError,
    ProtocolError,
    ResultExpired,
    RetalkError,
    ServerError,
    ServiceError,
    SubmitUncertain,
    TaskFailed,
    TaskTimeout,
    TaskUnknown,
    ThrottledError,
    TransportError,
    UploadError,
)
from ._http import DEFAULT_BASE_URL, MODEL, AsyncClient, Client, DownloadPolicy, PollPolicy, RetryPolicy
from ._models import Task, UploadPolicy, Usage
from ._quotas import Quotas, RateLimiter

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "MODEL",
    "AsyncClient",
    "AuthError",
    "Client",
    "ConfigError",
    "DownloadError",
    "DownloadPolicy",
    "InputError",
    "PollPolicy",
    "ProtocolError",
    "Quotas",
    "RateLimiter",
    "ResultExpired",
    "RetalkError",
    "RetryPolicy",
    "ServerError",
    "ServiceError",
    "SubmitUncertain",
    "Task",
    "TaskFailed",
    "TaskTimeout",
    "TaskUnknown",
    "ThrottledError",
    "TransportError",
    "UploadError",
    "UploadPolicy",
    "Usage",
    "__version__",
]
