"""What the emulated service remembers: its tasks, uploads, key and queue, kept on a root.

One lock guards it all. The task table and the key that signs upload policies are written
under the root after every change, so that an emulator started again on the same root
knows its tasks, as the service does after a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ._errors import ErrorReply
from ._tasks import EmulatedTask, new_id
from ._validation import Submission

#: The task table (and the key that signs upload policies), kept under the root.
STATE_FILE = "state.json"
#: The statuses of a task that will not change any more.
FINISHED = ("SUCCEEDED", "FAILED", "CANCELED")


class EmulatorState:
    """The service's memory on ``root``. Hold ``lock`` to read or change ``tasks``.

    ``clock`` is the service's time (its task times are stated on it), read under the lock.

    ``queue`` holds the ids of the tasks to run, in order: the task runner takes one at a
    time, like the service (``None`` tells it to stop).
    """

    def __init__(self, root: Path, api_key: str | None, clock: Callable[[], datetime]) -> None:
        self.root = root
        self._clock = clock
        self.lock = threading.Lock()
        self.tasks: dict[str, EmulatedTask] = {}
        self.queue: queue.Queue[str | None] = queue.Queue()
        #: (method, path, headers) of every request; Authorization shows as "Bearer ***".
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: How many tasks were created.
        self.submissions = 0
        self._api_key = api_key
        self._secret = secrets.token_bytes(32)  # signs upload policies
        self._api_count = 0
        self._last_submit = float("-inf")
        self._forgotten: set[str] = set()  # answered UNKNOWN (``forget``)

    # ------------------------------------------------------------------ folders
    @property
    def uploads(self) -> Path:
        """The temporary storage: the files of storage POSTs, by key."""
        return self.root / "oss"

    @property
    def results(self) -> Path:
        return self.root / "results"

    def fetched(self, task_id: str) -> Path:
        """Where a task's inputs fetched by URL go."""
        return self.root / "fetched" / task_id

    # ------------------------------------------------------------------ the state file
    def load(self) -> None:
        """Make the root's folders, and read the tasks of an emulator that ran on this root
        before (killed or stopped): the service forgets no task when it restarts, and runs
        on those it had not finished."""
        for folder in (self.uploads, self.results, self.root / "fetched"):
            folder.mkdir(parents=True, exist_ok=True)
        state = self.root / STATE_FILE
        if not state.exists():
            self.save()
            return
        data = json.loads(state.read_text(encoding="utf-8"))
        self._secret = bytes.fromhex(data["secret"])
        tasks = [EmulatedTask.from_dict(item) for item in data.get("tasks", [])]
        with self.lock:
            self.tasks = {task.task_id: task for task in tasks}
            for task in sorted(tasks, key=lambda t: t.submitted):
                if task.status in ("PENDING", "RUNNING"):
                    task.status, task.scheduled = "PENDING", None  # run again from the start
                    self.queue.put(task.task_id)
            self.save()

    def save(self) -> None:
        """Write the task table under the root, whole (a temporary file renamed); called
        with the lock held, or before the server runs."""
        document = {"secret": self._secret.hex(), "tasks": [t.to_dict() for t in self.tasks.values()]}
        target = self.root / STATE_FILE
        partial = target.with_name(f".{STATE_FILE}.{os.getpid()}.part")
        partial.write_text(json.dumps(document), encoding="utf-8")
        os.replace(partial, target)

    # ------------------------------------------------------------------ requests and the key
    def record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append((method, path, headers))

    def next_api_number(self) -> int:
        """Count an API request (faults fall on every Nth)."""
        with self.lock:
            self._api_count += 1
            return self._api_count

    def check_key(self, authorization: str | None) -> None:
        """A bearer key, and the emulator's own if it was given one."""
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        good = scheme.lower() == "bearer" and bool(key)
        if good and self._api_key is not None:
            good = hmac.compare_digest(key.encode(), self._api_key.encode())
        if not good:
            # Never echo the key that was sent.
            raise ErrorReply(401, "InvalidApiKey", "Invalid API-key provided.")

    def sign(self, policy: str) -> str:
        """An upload policy's signature (the storage checks it on every POST)."""
        return base64.b64encode(hmac.new(self._secret, policy.encode(), hashlib.sha1).digest()).decode()

    # ------------------------------------------------------------------ tasks
    def create(self, submission: Submission, submit_interval_s: float) -> EmulatedTask:
        """A new PENDING task, saved and queued; 429 within ``submit_interval_s`` of the last."""
        with self.lock:
            moment = time.monotonic()
            if moment - self._last_submit < submit_interval_s:
                raise ErrorReply(
                    429,
                    "Throttling.RateQuota",
                    "Requests rate limit exceeded, please try again later.",
                    {"Retry-After": "1"},
                )
            self._last_submit = moment
            task = EmulatedTask(
                task_id=new_id(),
                request_id=new_id(),
                video_url=submission.video_url,
                audio_url=submission.audio_url,
                ref_image_url=submission.ref_image_url,
                video_extension=submission.video_extension,
                submitted=self._clock(),
            )
            self.tasks[task.task_id] = task
            self.submissions += 1
            self.save()
        self.queue.put(task.task_id)
        return task

    def known(self, task_id: str) -> EmulatedTask | None:
        """The task the service answers for (not one it was told to ``forget``); lock held."""
        return self.tasks.get(task_id) if task_id not in self._forgotten else None

    def forget(self, task_id: str, forgotten: bool) -> None:
        with self.lock:
            if forgotten:
                self._forgotten.add(task_id)
            else:
                self._forgotten.discard(task_id)

    def cancel(self, task_id: str) -> None:
        """Cancel a PENDING task (the only kind the service cancels)."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                raise ErrorReply(400, "UnsupportedOperation", f"Task {task_id} does not exist.")
            if task.status != "PENDING":
                raise ErrorReply(
                    400,
                    "UnsupportedOperation",
                    f"Only PENDING tasks can be canceled; task {task_id} is {task.status}.",
                )
            task.status = "CANCELED"
            task.ended = self._clock()
            self.save()

    def begin(self, task_id: str) -> EmulatedTask | None:
        """Mark a queued task RUNNING; None if it is no longer PENDING (canceled while it waited)."""
        with self.lock:
            task = self.tasks[task_id]
            if task.status != "PENDING":
                return None
            task.status = "RUNNING"
            task.scheduled = self._clock()
            self.save()
            return task

    def end(
        self,
        task: EmulatedTask,
        status: str,
        *,
        code: str | None = None,
        message: str | None = None,
        result: Path | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        """A task ended with ``status``: its failure's code and message, or its result and usage."""
        with self.lock:
            task.status = status
            task.code, task.message = code, message
            task.result, task.usage = result, usage
            task.ended = self._clock()
            self.save()

    # ------------------------------------------------------------------ files
    def store_upload(self, parts: list[str], data: bytes) -> None:
        """Keep an upload under its key's ``parts``; the storage forbids overwriting."""
        target = self.uploads / Path(*parts)
        with self.lock:
            if target.exists():
                raise ErrorReply(409, "FileAlreadyExists", "The object exists and overwrite is forbidden.")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def discard(self, task_id: str) -> None:
        """Delete a finished task's result and the inputs it fetched."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.status not in FINISHED:
                return
            result = task.result
        if result is not None:
            result.unlink(missing_ok=True)
        shutil.rmtree(self.fetched(task_id), ignore_errors=True)
