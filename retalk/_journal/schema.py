"""The journal file: its SQLite schema, the check that a file is a journal before
anything is written to it, and what to tell the user when it cannot be used.

The schema is the journal's contract with every earlier version: tables and columns
are only ever added (``CREATE ... IF NOT EXISTS``), never changed.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from pathlib import Path

from .records import JournalError, shown

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    inputs TEXT NOT NULL,          -- JSON: {"video": {"path", "sha256", "url"}, ...}
    params TEXT NOT NULL,          -- JSON: video_extension, query_face_threshold
    output TEXT,                   -- where the result goes
    state TEXT NOT NULL,
    task_id TEXT,
    submit_started REAL,
    error TEXT,
    billed_s REAL,
    base_url TEXT NOT NULL DEFAULT '',
    owner TEXT                     -- "host:pid" of the process working on it
);
CREATE INDEX IF NOT EXISTS jobs_fingerprint ON jobs (fingerprint);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_task ON jobs (task_id) WHERE task_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS uploads (
    sha256 TEXT NOT NULL,
    base_url TEXT NOT NULL,        -- storage belongs to one service (and account)
    url TEXT NOT NULL,
    uploaded REAL NOT NULL,
    PRIMARY KEY (sha256, base_url)
);
CREATE TABLE IF NOT EXISTS splits (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    fingerprint TEXT NOT NULL,     -- the original inputs and every setting
    output TEXT NOT NULL,          -- the joined result
    state TEXT NOT NULL,           -- running | joined | failed | canceled
    plan TEXT NOT NULL,            -- JSON: the cuts, each part's files and job id, the voice
    base_url TEXT NOT NULL DEFAULT '',
    error TEXT
);
CREATE INDEX IF NOT EXISTS splits_fingerprint ON splits (fingerprint);
CREATE TABLE IF NOT EXISTS made (
    output TEXT PRIMARY KEY,       -- a result a batch made (absolute path)
    sources TEXT NOT NULL,         -- JSON: {"video": sha256, "audio": ..., "ref": ...} of the originals
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    output TEXT PRIMARY KEY,       -- a result file about to take this name (absolute path)
    sha256 TEXT NOT NULL,          -- its content, recorded before the rename
    updated REAL NOT NULL
);
"""

REQUIRED_COLUMNS = {
    "jobs": {"id", "created", "updated", "fingerprint", "inputs", "params", "output", "state", "task_id"},
    "splits": {"id", "created", "updated", "fingerprint", "output", "state", "plan"},
    "uploads": {"sha256", "base_url", "url", "uploaded"},
}


def check_file(db: sqlite3.Connection) -> None:
    """Raise unless the file is whole and is a journal, or an empty database (a new one).
    A cut-off file can open and fail only later, in the middle of a job: checked now."""
    verdict = [str(r[0]) for r in db.execute("PRAGMA quick_check(3)")]
    if verdict != ["ok"]:
        raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(verdict)}")
    tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and not tables & set(REQUIRED_COLUMNS):
        raise sqlite3.DatabaseError(f"not a retalk journal: its tables are {', '.join(sorted(tables))}")
    for table in tables & set(REQUIRED_COLUMNS):
        have = {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
        if not REQUIRED_COLUMNS[table] <= have:
            missing = ", ".join(sorted(REQUIRED_COLUMNS[table] - have))
            raise sqlite3.DatabaseError(f"not a retalk journal: table {table} lacks {missing}")


def read_only(path: Path) -> bool:
    """The journal cannot be written: its file, its folder (SQLite writes the -wal and
    -shm files beside it) or the file system."""
    for place in (path, path.parent):
        if place.exists() and not os.access(place, os.W_OK):
            return True
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def problem(path: Path, exc: BaseException) -> JournalError:
    """What is wrong with the journal file and what to do, naming it; never a traceback."""
    named = shown(path)
    cause = shown(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
    lowered = cause.lower()
    elsewhere = "or give another journal file with --journal FILE or RETALK_JOURNAL"
    aside = (
        f"it was left as it is: move it aside (e.g. `mv {shlex.quote(named)} "
        f"{shlex.quote(named + '.damaged')}`) and run again with a new, empty journal; the tasks "
        "it recorded are still on the service: `retalk list` lists them and `retalk download "
        "TASK -o FILE` fetches a result"
    )
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        what, todo = (
            "is a folder, not a file",
            "give the journal's file name with --journal FILE or RETALK_JOURNAL",
        )
    elif "locked" in lowered or "busy" in lowered:
        what, todo = (
            "is locked by another process",
            "let the other retalk (or whatever holds the file) finish, then run again",
        )
    elif isinstance(exc, PermissionError) or "readonly" in lowered or read_only(path):
        what, todo = (
            "cannot be written (read-only: the file, its folder or the disk)",
            f"make it writable, {elsewhere}",
        )
    elif "not a retalk journal" in lowered:
        what, todo = (
            "is another program's database, not a retalk journal",
            f"it was left as it is; {elsewhere}",
        )
    elif "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        what, todo = "is damaged (not a SQLite database, or a cut-off one)", aside
    else:
        what, todo = "cannot be used", f"check the file and its folder, {elsewhere}"
    return JournalError(f"the journal {named} {what} ({cause}); {todo}")
