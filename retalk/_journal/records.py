"""The journal's records: a job, a job sent in parts, their states, and the errors that
name them. Apart from the store so that callers reading a job need not know SQLite's
connection, and so that reading a row (every column checked) is one place.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError, RetalkError

#: Uploaded files live this long in the temporary storage; reuse them until a margin
#: before (an hour: enough for a task to be queued, downloaded and run).
UPLOAD_TTL_S = 48 * 3600
UPLOAD_REUSE_MARGIN_S = 3600

#: Job states, in order. ``submitting`` is written before the submit is sent: a job left
#: there by a crash may have a task the journal has not heard of (resume looks for it).
#: ``expired``: the task succeeded (and was paid for) but its result can no longer be had.
#: ``protocol-error``: the submit was answered with no usable task id (the error keeps the
#: answer): a task may exist and be billed, so it is never sent again without --force.
#: ``forgotten``: the user stopped following it (``retalk forget``), e.g. a task the service
#: answers UNKNOWN for; as it may have run and been paid, the same inputs still ask --force.
STATES = (
    "new",
    "uploaded",
    "submitting",
    "submitted",
    "downloaded",
    "failed",
    "canceled",
    "expired",
    "protocol-error",
    "forgotten",
)
UNFINISHED = ("new", "uploaded", "submitting", "submitted")

#: States of a job sent in parts: its parts are being sent; joined into its output; a
#: part failed; ``canceled``: stopped (Ctrl-C) before any part was submitted, closed with
#: its parts (nothing paid: resume leaves it, the same command starts afresh).
SPLIT_STATES = ("running", "joined", "failed", "canceled")


class JournalError(ConfigError):
    """The journal file cannot be used (not a database, cut off, locked, read-only, a
    folder). Said with the file, what is wrong and what to do; never rewritten or deleted."""


class DamagedRow(JournalError):
    """One row of the journal cannot be read (broken JSON, wrong types). The other jobs are
    listed and resumed without it; the row is left as it is for the user to look at."""

    def __init__(self, path: Path, table: str, row_id: object, reason: str) -> None:
        self.table = table
        self.row_id = row_id
        self.reason = reason
        what = "job" if table == "jobs" else "split job"
        super().__init__(
            f"the journal {shown(path)}: {what} {shown(row_id)} is damaged ({shown(reason)}); it is "
            "left as it is and skipped: look at it (or delete it) with the sqlite3 tool, or move "
            "the journal aside; its task, if it had one, is on the service (`retalk list`)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "id": shown(self.row_id), "reason": self.reason}

    @property
    def line(self) -> str:
        """One line for a listing, escaped for the terminal."""
        what = "job" if self.table == "jobs" else "split job"
        return f"{what} {shown(self.row_id)}: damaged in the journal ({shown(self.reason)})"


class DuplicateJob(RetalkError):
    """The same inputs and parameters were submitted before; ``--force`` submits again."""

    def __init__(self, job: Job) -> None:
        self.job = job
        what = f"task {job.task_id}" if job.task_id else f"job {job.id}"
        super().__init__(
            f"these inputs were already submitted ({what}, {job.state}); pass --force to pay for them again"
        )


class DuplicateSplit(RetalkError):
    """These inputs, with these settings, were already sent in parts and joined."""

    def __init__(self, split: Split) -> None:
        self.split = split
        super().__init__(
            f"these inputs were already sent in parts and joined into {split.output} (split "
            f"{split.id}); pass --force to pay for them again"
        )


@dataclass(frozen=True)
class Job:
    id: int
    created: float
    fingerprint: str
    inputs: dict[str, dict[str, Any]]
    params: dict[str, Any]
    output: str | None
    state: str
    task_id: str | None
    submit_started: float | None
    error: str | None
    billed_s: float | None
    base_url: str = ""
    owner: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """The job a row holds; ``ValueError`` saying what is wrong with a damaged one
        (SQLite keeps any type in any column, and a hand edit can break the JSON)."""
        inputs = _json(row, "inputs", dict)
        for role, described in inputs.items():
            if not isinstance(described, dict) or not isinstance(described.get("path"), str):
                raise ValueError(f"inputs: {role!r} has no file path")
            if not isinstance(described.get("sha256"), str):
                raise ValueError(f"inputs: {role!r} has no SHA-256")
            if not isinstance(described.get("url", ""), str):
                raise ValueError(f"inputs: {role!r} has a URL that is not text")
            if not isinstance(described.get("uploaded", 0.0), int | float):
                raise ValueError(f"inputs: {role!r} has an upload time that is not a number")
        if not {"video", "audio"} <= set(inputs):
            raise ValueError("inputs: the video or the voice is missing")
        state = _column(row, "state", str)
        if state not in STATES:
            raise ValueError(f"state {state!r} is not a job state")
        return cls(inputs=inputs, state=state, **_fields(row, _JOB_COLUMNS))


@dataclass(frozen=True)
class Split:
    """A job sent in parts (``prep-and-retalk --split``); each part is a ``Job``."""

    id: int
    created: float
    fingerprint: str
    output: str
    state: str
    plan: dict[str, Any]
    base_url: str = ""
    error: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Split:
        """The split a row holds; ``ValueError`` saying what is wrong with a damaged one."""
        plan = _json(row, "plan", dict)
        parts = plan.get("parts", [])
        if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
            raise ValueError("plan: its parts are not a list of parts")
        if not all(isinstance(p.get("job"), int | None) for p in parts):
            raise ValueError("plan: a part's job is not a job number")
        state = _column(row, "state", str)
        if state not in SPLIT_STATES:
            raise ValueError(f"state {state!r} is not a split state")
        return cls(state=state, plan=plan, **_fields(row, _SPLIT_COLUMNS))

    @property
    def job_ids(self) -> list[int | None]:
        return [part.get("job") for part in self.plan.get("parts", [])]


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_path() -> Path:
    override = os.environ.get("RETALK_JOURNAL")
    if override:
        return Path(override)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "retalk" / "journal.sqlite"


def job_fingerprint(described: dict[str, dict[str, Any]], params: dict[str, Any], base_url: str) -> str:
    """What makes two jobs the same: the files' contents, the parameters, the service."""
    return hashlib.sha256(
        json.dumps(
            {"files": {r: d["sha256"] for r, d in described.items()}, "params": params, "service": base_url},
            sort_keys=True,
        ).encode()
    ).hexdigest()


def upload_fresh(uploaded: float, now: float) -> bool:
    """An upload made at ``uploaded`` still has a while to live at ``now``."""
    return uploaded + UPLOAD_TTL_S - UPLOAD_REUSE_MARGIN_S > now


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """True when ``owner`` is another process on this machine that still runs."""
    if not owner or owner == this_process():
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's: its lease cannot be checked from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_elsewhere(job: Job) -> bool:
    """Another live process on this machine is working on the job."""
    return owner_alive(job.owner)


def roles_of(job: Job) -> Sequence[str]:
    return [role for role in ("video", "audio", "ref") if role in job.inputs]


@dataclass(frozen=True)
class _Column:
    """A column read into the record's field of the same name, checked to be of its
    ``kind`` (JSON text holding one, when ``json``); None passes only when ``optional``."""

    name: str
    kind: type
    optional: bool = False
    json: bool = False

    def read(self, row: sqlite3.Row) -> Any:
        if self.json:
            return _json(row, self.name, self.kind)
        return _column(row, self.name, self.kind, self.optional)


#: The columns every record has, then each table's own, in the order they are checked
#: (the inputs, the plan and the state are checked by ``from_row`` itself, first).
_RECORD_COLUMNS = (_Column("id", int), _Column("created", float), _Column("fingerprint", str))
_JOB_COLUMNS = (
    *_RECORD_COLUMNS,
    _Column("params", dict, json=True),
    _Column("output", str, optional=True),
    _Column("task_id", str, optional=True),
    _Column("submit_started", float, optional=True),
    _Column("error", str, optional=True),
    _Column("billed_s", float, optional=True),
    _Column("base_url", str),
    _Column("owner", str, optional=True),
)
_SPLIT_COLUMNS = (
    *_RECORD_COLUMNS,
    _Column("output", str),
    _Column("base_url", str),
    _Column("error", str, optional=True),
)


def _fields(row: sqlite3.Row, columns: tuple[_Column, ...]) -> dict[str, Any]:
    """The record's fields ``columns`` name, read from ``row``; ``ValueError`` on the first
    that is damaged."""
    return {column.name: column.read(row) for column in columns}


def _column(row: sqlite3.Row, name: str, kind: type, optional: bool = False) -> Any:
    """A column's value, checked to be of its kind (SQLite keeps any type anywhere)."""
    value = row[name]
    if value is None and optional:
        return None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name} is {type(value).__name__}, not {kind.__name__}")
    return value


def _json(row: sqlite3.Row, name: str, kind: type) -> Any:
    text = row[name]
    if not isinstance(text, str | bytes):
        raise ValueError(f"{name} is {type(text).__name__}, not JSON text")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise ValueError(f"{name} is a JSON {type(value).__name__}, not a {kind.__name__}")
    return value


def shown(value: object) -> str:
    """For a terminal: control characters and undecodable bytes escaped."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return repr(text)[1:-1]
