"""The journal: every job, written down before and after each step that costs money or
time, so a crash or Ctrl-C never loses a paid task and the same inputs are not paid twice.

SQLite from the standard library, one file (``RETALK_JOURNAL``, else
``$XDG_STATE_HOME/retalk/journal.sqlite``), WAL mode so several processes can share it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ._exceptions import ConfigError, RetalkError

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

_SCHEMA = """
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
            f"the journal {_shown(path)}: {what} {_shown(row_id)} is damaged ({_shown(reason)}); it is "
            "left as it is and skipped: look at it (or delete it) with the sqlite3 tool, or move "
            "the journal aside; its task, if it had one, is on the service (`retalk list`)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "id": _shown(self.row_id), "reason": self.reason}

    @property
    def line(self) -> str:
        """One line for a listing, escaped for the terminal."""
        what = "job" if self.table == "jobs" else "split job"
        return f"{what} {_shown(self.row_id)}: damaged in the journal ({_shown(self.reason)})"


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
        return cls(
            _column(row, "id", int),
            _column(row, "created", float),
            _column(row, "fingerprint", str),
            inputs,
            _json(row, "params", dict),
            _column(row, "output", str, optional=True),
            state,
            _column(row, "task_id", str, optional=True),
            _column(row, "submit_started", float, optional=True),
            _column(row, "error", str, optional=True),
            _column(row, "billed_s", float, optional=True),
            _column(row, "base_url", str),
            _column(row, "owner", str, optional=True),
        )


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
        return cls(
            _column(row, "id", int),
            _column(row, "created", float),
            _column(row, "fingerprint", str),
            _column(row, "output", str),
            state,
            plan,
            _column(row, "base_url", str),
            _column(row, "error", str, optional=True),
        )

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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A journal method whose SQLite failures (a file damaged or locked meanwhile) come
    out as a ``JournalError`` naming the file, not as a traceback."""

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            journal = args[0]
            assert isinstance(journal, Journal)
            raise _problem(journal.path, exc) from None

    return guarded


class Journal:
    """The job journal. Every write is its own committed transaction.

    A file that cannot serve as the journal (not a database, cut off, locked for longer
    than ``timeout``, read-only, a folder) is a ``JournalError`` saying so; an empty file
    is a new journal (nothing in it to lose). A damaged row is a ``DamagedRow`` for that
    job alone: listings leave it out (``damaged()`` names it) and it is never rewritten.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _problem(self.path, exc) from None
        if self.path.is_dir():
            raise _problem(self.path, IsADirectoryError(f"{self.path} is a folder"))
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            db.row_factory = sqlite3.Row
            # Looked at before anything is written to it: a damaged file or another
            # program's database is left exactly as it was.
            _check_file(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a task id written is a task id kept
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise _problem(self.path, exc) from None
        self._db = db

    def _parse_job(self, row: sqlite3.Row) -> Job:
        try:
            return Job.from_row(row)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise DamagedRow(self.path, "jobs", row["id"], str(exc)) from None

    def _parse_split(self, row: sqlite3.Row) -> Split:
        try:
            return Split.from_row(row)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise DamagedRow(self.path, "splits", row["id"], str(exc)) from None

    def _intact_jobs(self, rows: Iterator[sqlite3.Row]) -> list[Job]:
        """The jobs of ``rows`` that can be read; damaged ones left out (``damaged()``)."""
        jobs = []
        for row in rows:
            try:
                jobs.append(self._parse_job(row))
            except DamagedRow:
                continue
        return jobs

    @_guarded
    def damaged(self) -> list[DamagedRow]:
        """Every row that cannot be read, jobs and split jobs, in order."""
        found: list[DamagedRow] = []
        for table, parse in (("jobs", self._parse_job), ("splits", self._parse_split)):
            for row in self._db.execute(f"SELECT * FROM {table} ORDER BY id"):
                try:
                    parse(row)
                except DamagedRow as exc:
                    found.append(exc)
        return found

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------ jobs
    @_guarded
    def start(
        self,
        inputs: dict[str, str],
        params: dict[str, Any],
        output: str | None,
        *,
        base_url: str = "",
        force: bool = False,
        digests: dict[str, str] | None = None,
    ) -> Job:
        """A job for these files (role -> path). The same contents and parameters already
        submitted (and not failed) raise ``DuplicateJob``; a job for them that never got as
        far as a submit is taken up again instead of starting another."""
        known = digests or {}  # SHA-256 the caller has just computed, by role
        described = {
            role: {"path": os.path.abspath(p), "sha256": known.get(role) or sha256_of(p)}
            for role, p in inputs.items()
        }
        fingerprint = _job_fingerprint(described, params, base_url)
        with self._write() as db:
            if not force:
                row = db.execute(
                    "SELECT * FROM jobs WHERE fingerprint = ? AND state NOT IN ('failed', 'canceled') "
                    "ORDER BY id DESC LIMIT 1",
                    (fingerprint,),
                ).fetchone()
                if row is not None:
                    earlier = self._parse_job(row)
                    if earlier.state not in ("new", "uploaded"):
                        raise DuplicateJob(earlier)
                    if _alive(earlier.owner):
                        raise RetalkError(
                            f"job {earlier.id} for these inputs is being run by process {earlier.owner}"
                        )
                    # Never submitted: taken up again, with this run's output and owner.
                    db.execute(
                        "UPDATE jobs SET output = ?, owner = ?, updated = ? WHERE id = ?",
                        (output, _me(), time.time(), earlier.id),
                    )
                    return self._parse_job(
                        db.execute("SELECT * FROM jobs WHERE id = ?", (earlier.id,)).fetchone()
                    )
            now = time.time()
            cursor = db.execute(
                "INSERT INTO jobs (created, updated, fingerprint, inputs, params, output, state, base_url, "
                "owner) "
                "VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?)",
                (now, now, fingerprint, json.dumps(described), json.dumps(params), output, base_url, _me()),
            )
            job_id = cursor.lastrowid
        assert job_id is not None
        return self.job(job_id)

    @_guarded
    def sent_before(
        self, inputs: dict[str, str], params: dict[str, Any], base_url: str = "", *, any_state: bool = False
    ) -> Job | None:
        """The job these files and parameters already made (``start`` would take it up or
        call it a duplicate): open or done, not failed or canceled (``any_state``: in any
        state); None when there is none."""
        described = {role: {"sha256": sha256_of(p)} for role, p in inputs.items()}
        skipped = () if any_state else ("failed", "canceled")
        marks = ", ".join("?" for _ in skipped)
        row = self._db.execute(
            f"SELECT * FROM jobs WHERE fingerprint = ? AND state NOT IN ({marks}) ORDER BY id DESC LIMIT 1",
            (_job_fingerprint(described, params, base_url), *skipped),
        ).fetchone()
        return None if row is None else self._parse_job(row)

    @_guarded
    def job(self, job_id: int) -> Job:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise RetalkError(f"no job {job_id} in {self.path}")
        return self._parse_job(row)

    @_guarded
    def by_task(self, task_id: str) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE task_id = ?", (task_id,)).fetchone()
        return self._parse_job(row) if row is not None else None

    @_guarded
    def update(self, job_id: int, **fields: Any) -> Job:
        """Set columns of a job (``state``, ``task_id``, ``error``, ``inputs``...)."""
        allowed = {"state", "task_id", "submit_started", "error", "billed_s", "inputs", "output", "owner"}
        self._update("jobs", job_id, fields, allowed, STATES, "inputs")
        return self.job(job_id)

    def _update(
        self,
        table: str,
        row_id: int,
        fields: dict[str, Any],
        allowed: set[str],
        states: Sequence[str],
        json_column: str,
    ) -> None:
        """Set the named columns of one row, each a known column and a known state."""
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not {table} columns: {sorted(unknown)}")
        if "state" in fields and fields["state"] not in states:
            raise ValueError(f"not a state of {table}: {fields['state']}")
        values = {k: json.dumps(v) if k == json_column else v for k, v in fields.items()}
        columns = ", ".join(f"{k} = ?" for k in values)
        with self._write() as db:
            db.execute(
                f"UPDATE {table} SET {columns}, updated = ? WHERE id = ?",
                (*values.values(), time.time(), row_id),
            )

    @_guarded
    def take_up(self, job_id: int, output: str | None) -> Job | None:
        """An unfinished job that a run which ended early (a crash, a kill) left, taken over
        by this process (with this run's output, when it names one); None when it is
        finished or another live process is running it."""
        with self._write() as db:
            row = db.execute("SELECT state, owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] not in UNFINISHED or _alive(row["owner"]):
                return None
            db.execute(
                "UPDATE jobs SET output = COALESCE(?, output), owner = ?, updated = ? WHERE id = ?",
                (output, _me(), time.time(), job_id),
            )
        return self.job(job_id)

    @_guarded
    def claim(self, job_id: int, expected: str, state: str, **fields: Any) -> Job | None:
        """Move a job from ``expected`` to ``state`` only if nobody moved it first (two
        processes never both submit it); None when it was not in ``expected`` any more."""
        with self._write() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] != expected:
                return None
            columns = "".join(f", {k} = ?" for k in fields)
            db.execute(
                f"UPDATE jobs SET state = ?, owner = ?, updated = ?{columns} WHERE id = ?",
                (state, _me(), time.time(), *fields.values(), job_id),
            )
        return self.job(job_id)

    @_guarded
    def forget(self, job_id: int) -> Job:
        """Stop following an unfinished job, on the user's word (never by itself): resume
        leaves it alone from now on, and the same inputs still ask for ``--force``."""
        with self._write() as db:
            row = db.execute("SELECT state, owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise ConfigError(f"no job {job_id} in {_shown(self.path)} (`retalk jobs` lists them)")
            if row["state"] not in UNFINISHED:
                raise ConfigError(f"job {job_id} is {row['state']}, not unfinished: nothing to forget")
            if _alive(row["owner"]):
                raise ConfigError(f"job {job_id} is being run by process {row['owner']}; stop that first")
            db.execute(
                "UPDATE jobs SET state = 'forgotten', error = ?, owner = NULL, updated = ? WHERE id = ?",
                (f"forgotten by the user while {row['state']}", time.time(), job_id),
            )
        return self.job(job_id)

    @_guarded
    def unclaim_submit(self, job_id: int) -> Job | None:
        """A ``submitting`` job whose submit is known not to have got through, back to
        ``uploaded`` to be sent again: only if it is still ``submitting`` and still this
        process's (compare-and-set in one statement). None when another process took it up
        meanwhile (it may have submitted it already: that is not undone)."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE jobs SET state = 'uploaded', updated = ? "
                "WHERE id = ? AND state = 'submitting' AND owner = ?",
                (time.time(), job_id, _me()),
            )
            if cursor.rowcount != 1:
                return None
        return self.job(job_id)

    @_guarded
    def unfinished(self, base_url: str | None = None) -> list[Job]:
        """Jobs not finished, for ``base_url`` (all when None), leaving out those another
        live process on this machine is running."""
        marks = ", ".join("?" for _ in UNFINISHED)
        rows = self._db.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", UNFINISHED)
        jobs = self._intact_jobs(rows)  # a damaged row stops no other job
        return [
            j
            for j in jobs
            if (base_url is None or j.base_url == base_url) and (j.owner == _me() or not _alive(j.owner))
        ]

    @_guarded
    def owned(self) -> list[Job]:
        """Unfinished jobs this process took up or started (Ctrl-C: what it may leave)."""
        marks = ", ".join("?" for _ in UNFINISHED)
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE state IN ({marks}) AND owner = ? ORDER BY id", (*UNFINISHED, _me())
        )
        return self._intact_jobs(rows)

    @_guarded
    def jobs(self, limit: int = 50) -> list[Job]:
        rows = self._db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        return self._intact_jobs(rows)

    @_guarded
    def known_task_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT task_id FROM jobs WHERE task_id IS NOT NULL")}

    # ------------------------------------------------------------------ splits
    @_guarded
    def start_split(self, fingerprint: str, output: str, plan: dict[str, Any], base_url: str = "") -> Split:
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO splits (created, updated, fingerprint, output, state, plan, base_url) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (now, now, fingerprint, output, json.dumps(plan), base_url),
            )
            split_id = cursor.lastrowid
        assert split_id is not None
        return self.split(split_id)

    @_guarded
    def split(self, split_id: int) -> Split:
        row = self._db.execute("SELECT * FROM splits WHERE id = ?", (split_id,)).fetchone()
        if row is None:
            raise RetalkError(f"no split job {split_id} in {self.path}")
        return self._parse_split(row)

    @_guarded
    def find_split(self, fingerprint: str) -> Split | None:
        """The latest split job for these inputs and settings that has not failed (nor been
        closed unpaid)."""
        row = self._db.execute(
            "SELECT * FROM splits WHERE fingerprint = ? AND state NOT IN ('failed', 'canceled') "
            "ORDER BY id DESC LIMIT 1",
            (fingerprint,),
        ).fetchone()
        return self._parse_split(row) if row is not None else None

    @_guarded
    def split_sent_before(self, fingerprint: str, *, any_state: bool = False) -> Split | None:
        """The latest split for these inputs and settings that was sent (running, joined or
        failed: its parts may be paid for), not one closed before anything was submitted
        (``any_state``: that one too)."""
        skipped = "" if any_state else "canceled"
        row = self._db.execute(
            "SELECT * FROM splits WHERE fingerprint = ? AND state != ? ORDER BY id DESC LIMIT 1",
            (fingerprint, skipped),
        ).fetchone()
        return self._parse_split(row) if row is not None else None

    @_guarded
    def splits_holding(self, job_ids: Iterable[int]) -> list[Split]:
        """The splits (in any state) one of whose parts is one of these jobs, in order."""
        wanted = set(job_ids)
        found = []
        for row in self._db.execute("SELECT * FROM splits ORDER BY id"):
            try:
                split = self._parse_split(row)
            except DamagedRow:
                continue  # named by damaged()
            if wanted & {i for i in split.job_ids if i is not None}:
                found.append(split)
        return found

    @_guarded
    def update_split(self, split_id: int, **fields: Any) -> Split:
        allowed = {"state", "plan", "error", "output"}  # output: a new name for a blocked join
        self._update("splits", split_id, fields, allowed, SPLIT_STATES, "plan")
        return self.split(split_id)

    @_guarded
    def running_splits(self, base_url: str | None = None) -> list[Split]:
        rows = self._db.execute("SELECT * FROM splits WHERE state = 'running' ORDER BY id")
        splits = []
        for row in rows:
            try:
                splits.append(self._parse_split(row))
            except DamagedRow:
                continue  # named by damaged(); the other splits go on
        return [s for s in splits if base_url is None or s.base_url == base_url]

    # ------------------------------------------------------------------ results made
    @_guarded
    def record_made(self, output: str, sources: dict[str, str]) -> None:
        """``output`` was made from originals of these SHA-256s (role -> digest): a batch run
        again skips it only while they are the same."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO made (output, sources, updated) VALUES (?, ?, ?)",
                (os.path.abspath(output), json.dumps(sources, sort_keys=True), time.time()),
            )

    @_guarded
    def record_result(self, output: str, finished: str | os.PathLike[str]) -> None:
        """``finished`` (a whole result under its temporary name) is about to be renamed to
        ``output``: recorded first, so that a run killed between the rename and marking its
        job done finds the file it wrote, not one to refuse replacing."""
        digest = sha256_of(finished)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (output, sha256, updated) VALUES (?, ?, ?)",
                (os.path.abspath(output), digest, time.time()),
            )

    @_guarded
    def made_from(self, output: str) -> dict[str, str] | None:
        """The originals' SHA-256s ``output`` was made from, or None when not recorded (or
        the record cannot be read)."""
        row = self._db.execute(
            "SELECT sources FROM made WHERE output = ?", (os.path.abspath(output),)
        ).fetchone()
        if row is None:
            return None
        try:
            sources = json.loads(row[0])
        except (TypeError, ValueError):
            return None
        if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
            return None
        return {str(k): v for k, v in sources.items()}

    @_guarded
    def knows_output(self, output: str) -> bool:
        """``output`` is a result this journal wrote: a made result, a downloaded job's, a
        joined split's, or a result renamed into place by a run killed before it recorded
        so (the same bytes as recorded): an existing file there may be replaced by the same
        job's result."""
        path = os.path.abspath(output)
        for query in (
            "SELECT 1 FROM made WHERE output = ?",
            "SELECT 1 FROM jobs WHERE output = ? AND state = 'downloaded'",
            "SELECT 1 FROM splits WHERE output = ? AND state = 'joined'",
        ):
            if self._db.execute(query, (path,)).fetchone() is not None:
                return True
        row = self._db.execute("SELECT sha256 FROM results WHERE output = ?", (path,)).fetchone()
        if row is None or not os.path.isfile(path):
            return False
        # A result written and then killed before its job was marked done: known only
        # while the file is byte for byte the one written (never a file put there since).
        try:
            return bool(sha256_of(path) == row[0])
        except OSError:
            return False

    # ------------------------------------------------------------------ uploads
    @_guarded
    def cached_upload(
        self, sha256: str, base_url: str = "", now: float | None = None
    ) -> tuple[str, float] | None:
        """An ``oss://`` URL of the same content in this service's storage, still valid for
        a while, and when it was uploaded; None when there is none."""
        row = self._db.execute(
            "SELECT url, uploaded FROM uploads WHERE sha256 = ? AND base_url = ?", (sha256, base_url)
        ).fetchone()
        moment = time.time() if now is None else now
        if row is None or not upload_fresh(row["uploaded"], moment):
            return None
        return str(row["url"]), float(row["uploaded"])

    @_guarded
    def record_upload(self, sha256: str, url: str, base_url: str = "", uploaded: float | None = None) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO uploads (sha256, base_url, url, uploaded) VALUES (?, ?, ?, ?)",
                (sha256, base_url, url, time.time() if uploaded is None else uploaded),
            )


def _job_fingerprint(described: dict[str, dict[str, Any]], params: dict[str, Any], base_url: str) -> str:
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


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str | None) -> bool:
    """True when ``owner`` is another process on this machine that still runs."""
    if not owner or owner == _me():
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
    return _alive(job.owner)


def roles_of(job: Job) -> Sequence[str]:
    return [role for role in ("video", "audio", "ref") if role in job.inputs]


# --------------------------------------------------------------------------- damage
_COLUMNS = {
    "jobs": {"id", "created", "updated", "fingerprint", "inputs", "params", "output", "state", "task_id"},
    "splits": {"id", "created", "updated", "fingerprint", "output", "state", "plan"},
    "uploads": {"sha256", "base_url", "url", "uploaded"},
}


def _check_file(db: sqlite3.Connection) -> None:
    """Raise unless the file is whole and is a journal, or an empty database (a new one).
    A cut-off file can open and fail only later, in the middle of a job: checked now."""
    verdict = [str(r[0]) for r in db.execute("PRAGMA quick_check(3)")]
    if verdict != ["ok"]:
        raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(verdict)}")
    tables = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and not tables & set(_COLUMNS):
        raise sqlite3.DatabaseError(f"not a retalk journal: its tables are {', '.join(sorted(tables))}")
    for table in tables & set(_COLUMNS):
        have = {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}
        if not _COLUMNS[table] <= have:
            missing = ", ".join(sorted(_COLUMNS[table] - have))
            raise sqlite3.DatabaseError(f"not a retalk journal: table {table} lacks {missing}")


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


def _shown(value: object) -> str:
    """For a terminal: control characters and undecodable bytes escaped."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return repr(text)[1:-1]


def _read_only(path: Path) -> bool:
    """The journal cannot be written: its file, its folder (SQLite writes the -wal and
    -shm files beside it) or the file system."""
    for place in (path, path.parent):
        if place.exists() and not os.access(place, os.W_OK):
            return True
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _problem(path: Path, exc: BaseException) -> JournalError:
    """What is wrong with the journal file and what to do, naming it; never a traceback."""
    shown = _shown(path)
    cause = _shown(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
    lowered = cause.lower()
    elsewhere = "or give another journal file with --journal FILE or RETALK_JOURNAL"
    aside = (
        f"it was left as it is: move it aside (e.g. `mv {shlex.quote(shown)} "
        f"{shlex.quote(shown + '.damaged')}`) and run again with a new, empty journal; the tasks "
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
    elif isinstance(exc, PermissionError) or "readonly" in lowered or _read_only(path):
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
    return JournalError(f"the journal {shown} {what} ({cause}); {todo}")
