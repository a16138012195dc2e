"""The VideoRetalk HTTP protocol: one core that decides (``core.py``) and two thin clients
that run it, ``Client`` (``sync.py``) and ``AsyncClient`` (``aio.py``), shaped like httpx's
``BaseClient`` / ``Client`` / ``AsyncClient``. The rest of ``retalk`` imports from here."""

from __future__ import annotations

from .aio import AsyncClient
from .download import write_problem
from .policies import (
    DEFAULT_BASE_URL,
    MODEL,
    DownloadPolicy,
    PollPolicy,
    RetryPolicy,
    TransferProgress,
    is_local,
    resolve_base_url,
)
from .replies import check_task_id, is_task_id, shown
from .sync import Client

__all__ = [
    "DEFAULT_BASE_URL",
    "MODEL",
    "AsyncClient",
    "Client",
    "DownloadPolicy",
    "PollPolicy",
    "RetryPolicy",
    "TransferProgress",
    "check_task_id",
    "is_local",
    "is_task_id",
    "resolve_base_url",
    "shown",
    "write_problem",
]
