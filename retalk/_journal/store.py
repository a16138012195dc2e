"""The journal's store: the ``Journal`` class, every read and write of the SQLite file,
each write its own committed transaction. What a row means is ``records``; what the file
must look like is ``schema``.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from .._exceptions import ConfigError, RetalkError
from .records import (
    SPLIT_STATES,
    STATES,
    UNFINISHED,
    DamagedRow,
    DuplicateJob,
    Job,
    Split,
    default_path,
    job_fingerprint,
    owner_alive,
    sha256_of,
    shown,
    this_process,
    upload_fresh,
)
from .schema import SCHEMA, check_file, problem

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
            raise problem(journal.path, exc) from None

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
            raise problem(self.path, exc) from None
        if self.path.is_dir():
            raise problem(self.path, IsADirectoryError(f"{self.path} is a folder"))
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            db.row_factory = sqlite3.Row
            # Looked at before anything is written to it: a damaged file or another
            # program's database is left exactly as it was.
            check_file(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a task id written is a task id kept
            db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise problem(self.path, exc) from None
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
        fingerprint = job_fingerprint(described, params, base_url)
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
                    if owner_alive(earlier.owner):
                        raise RetalkError(
                            f"job {earlier.id} for these inputs is being run by process {earlier.owner}"
                        )
                    # Never submitted: taken up again, with this run's output and owner.
                    db.execute(
                        "UPDATE jobs SET output = ?, owner = ?, updated = ? WHERE id = ?",
                        (output, this_process(), time.time(), earlier.id),
                    )
                    return self._parse_job(
                        db.execute("SELECT * FROM jobs WHERE id = ?", (earlier.id,)).fetchone()
                    )
            now = time.time()
            cursor = db.execute(
                "INSERT INTO jobs (created, updated, fingerprint, inputs, params, output, state, base_url, "
                "owner) "
                "VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?)",
                (
                    now,
                    now,
                    fingerprint,
                    json.dumps(described),
                    json.dumps(params),
                    output,
                    base_url,
                    this_process(),
                ),
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
            (job_fingerprint(described, params, base_url), *skipped),
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
            if row is None or row["state"] not in UNFINISHED or owner_alive(row["owner"]):
                return None
            db.execute(
                "UPDATE jobs SET output = COALESCE(?, output), owner = ?, updated = ? WHERE id = ?",
                (output, this_process(), time.time(), job_id),
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
                (state, this_process(), time.time(), *fields.values(), job_id),
            )
        return self.job(job_id)

    @_guarded
    def forget(self, job_id: int) -> Job:
        """Stop following an unfinished job, on the user's word (never by itself): resume
        leaves it alone from now on, and the same inputs still ask for ``--force``."""
        with self._write() as db:
            row = db.execute("SELECT state, owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise ConfigError(f"no job {job_id} in {shown(self.path)} (`retalk jobs` lists them)")
            if row["state"] not in UNFINISHED:
                raise ConfigError(f"job {job_id} is {row['state']}, not unfinished: nothing to forget")
            if owner_alive(row["owner"]):
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
                (time.time(), job_id, this_process()),
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
            if (base_url is None or j.base_url == base_url)
            and (j.owner == this_process() or not owner_alive(j.owner))
        ]

    @_guarded
    def owned(self) -> list[Job]:
        """Unfinished jobs this process took up or started (Ctrl-C: what it may leave)."""
        marks = ", ".join("?" for _ in UNFINISHED)
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE state IN ({marks}) AND owner = ? ORDER BY id",
            (*UNFINISHED, this_process()),
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
