"""The journal: every job, written down before and after each step that costs money or
time, so a crash or Ctrl-C never loses a paid task and the same inputs are not paid twice.

SQLite from the standard library, one file (``RETALK_JOURNAL``, else
``$XDG_STATE_HOME/retalk/journal.sqlite``), WAL mode so several processes can share it.
The records (``records``), the file's schema and its problems (``schema``) and the
``Journal`` that reads and writes it (``store``) are kept apart; this is their one face.
"""

from __future__ import annotations

from .records import (
    SPLIT_STATES,
    STATES,
    UNFINISHED,
    UPLOAD_REUSE_MARGIN_S,
    UPLOAD_TTL_S,
    DamagedRow,
    DuplicateJob,
    DuplicateSplit,
    Job,
    JournalError,
    Split,
    default_path,
    roles_of,
    running_elsewhere,
    sha256_of,
    upload_fresh,
)
from .store import Journal

__all__ = [
    "SPLIT_STATES",
    "STATES",
    "UNFINISHED",
    "UPLOAD_REUSE_MARGIN_S",
    "UPLOAD_TTL_S",
    "DamagedRow",
    "DuplicateJob",
    "DuplicateSplit",
    "Job",
    "Journal",
    "JournalError",
    "Split",
    "default_path",
    "roles_of",
    "running_elsewhere",
    "sha256_of",
    "upload_fresh",
]
