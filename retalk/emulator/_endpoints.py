"""What each endpoint of the emulated service answers, once its request is parsed.

The HTTP handler routes a request here and writes the answer (a JSON object) or the
``ErrorReply`` raised. ``origin`` (``http://HOST:PORT``) is the address the request came to:
the result URLs and the storage host are named on it.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ._errors import ErrorReply
from ._faults import Faults, Holds
from ._state import EmulatorState
from ._tasks import new_id, service_now
from ._validation import (
    MODEL,
    UPLOAD_MAX_BYTES,
    UPLOAD_MAX_MB,
    check_policy_query,
    check_upload_size,
    read_list_query,
    read_submission,
    read_upload_form,
    upload_key_parts,
)

#: How an upload policy writes its expiry (UTC, with milliseconds).
POLICY_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Endpoints:
    """The service's answers, on ``state``, as ``faults`` say, stopping where ``holds`` say."""

    def __init__(self, state: EmulatorState, faults: Faults, holds: Holds) -> None:
        self.state = state
        self.faults = faults
        self.holds = holds

    def _now(self) -> datetime:
        return service_now(self.faults.clock_offset_s)

    def submit(self, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """``POST .../video-synthesis``: a new task, queued to run."""
        submission = read_submission(headers, body)
        task = self.state.create(submission, self.faults.submit_interval_s)
        self.holds.gate("submit")  # created and listed; the answer not sent yet
        named = task.task_id if self.faults.submit_task_id is None else self.faults.submit_task_id
        return {"output": {"task_id": named, "task_status": "PENDING"}, "request_id": task.request_id}

    def query(self, task_id: str, origin: str) -> dict[str, Any]:
        """``GET /tasks/{id}``: where the task stands (``UNKNOWN`` for a task not known)."""
        self.holds.gate("query")
        with self.state.lock:
            task = self.state.known(task_id)
            if task is None:
                # The real API answers 200 UNKNOWN for a task it does not know (or forgot).
                return {"request_id": new_id(), "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
            answer: dict[str, Any] = {"request_id": new_id(), "output": task.output(origin)}
            if task.status == "SUCCEEDED" and task.usage is not None:
                answer["usage"] = dict(task.usage)
            return answer

    def cancel(self, task_id: str) -> dict[str, Any]:
        """``POST /tasks/{id}/cancel``."""
        self.state.cancel(task_id)
        return {"request_id": new_id()}

    def list_tasks(self, query: dict[str, list[str]], origin: str) -> dict[str, Any]:
        """``GET /tasks``: a page of the tasks submitted in a window, newest first."""
        self.holds.gate("list")
        wanted = read_list_query(query)
        with self.state.lock:
            chosen = [
                task
                for task in self.state.tasks.values()
                if task.submitted >= wanted.start
                and (wanted.end is None or task.submitted <= wanted.end)
                and (wanted.status is None or task.status == wanted.status)
                and (wanted.model is None or wanted.model == MODEL)
            ]
            chosen.sort(key=lambda task: task.submitted, reverse=True)
            first = (wanted.page_no - 1) * wanted.page_size
            page = chosen[first : first + wanted.page_size]
            data = [
                {**task.output(origin), "model_name": MODEL, "request_id": task.request_id} for task in page
            ]
        return {
            "request_id": new_id(),
            "data": data,
            "total": len(chosen),
            "page_no": wanted.page_no,
            "page_size": wanted.page_size,
        }

    def policy(self, query: dict[str, list[str]], origin: str) -> dict[str, Any]:
        """``GET /uploads?action=getPolicy``: a signed policy for one storage POST."""
        check_policy_query(query)
        ttl = self.faults.policy_ttl_s
        expiry = datetime.now(timezone.utc) + timedelta(seconds=ttl + self.faults.clock_offset_s)
        upload_dir = f"dashscope-instant/{secrets.token_hex(16)}/{self._now():%Y-%m-%d}"
        document = {
            "expiration": expiry.strftime("%Y-%m-%dT%H:%M:%S.") + f"{expiry.microsecond // 1000:03d}Z",
            "conditions": [
                ["content-length-range", 0, UPLOAD_MAX_BYTES],
                ["starts-with", "$key", upload_dir],
            ],
        }
        policy = base64.b64encode(json.dumps(document).encode()).decode()
        return {
            "request_id": new_id(),
            "data": {
                "policy": policy,
                "signature": self.state.sign(policy),
                "upload_dir": upload_dir,
                "upload_host": origin + "/oss",
                "expire_in_seconds": ttl,
                "max_file_size_mb": UPLOAD_MAX_MB,
                "capacity_limit_mb": 999999999,
                "oss_access_key_id": "emulator",
                "x_oss_object_acl": "private",
                "x_oss_forbid_overwrite": "true",
            },
        }

    def store(self, fields: list[tuple[str, bytes]]) -> bool:
        """The storage POST's form fields; True when success_action_status asked for 200
        (else 204). The policy must be ours, unexpired, and the key under its folder."""
        form = read_upload_form(fields)
        policy = form.text("policy")
        if not hmac.compare_digest(self.state.sign(policy), form.text("Signature")):
            raise ErrorReply(403, "SignatureDoesNotMatch", "The request signature does not match the policy.")
        document = json.loads(base64.b64decode(policy))
        expiry = datetime.strptime(document["expiration"], POLICY_TIME_FORMAT).replace(tzinfo=timezone.utc)
        if datetime.now(timezone.utc) + timedelta(seconds=self.faults.clock_offset_s) >= expiry:
            raise ErrorReply(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        upload_dir = next(c[2] for c in document["conditions"] if c[0] == "starts-with")
        parts = upload_key_parts(form.text("key", "utf-8"), upload_dir)
        check_upload_size(form.data)
        self.state.store_upload(parts, form.data)
        return form.wants_200

    def result_file(self, name: str) -> Path | None:
        """The result file of a task by its URL's name; 403 once its URL expired."""
        task_id = name.removesuffix(".mp4")
        with self.state.lock:
            task = self.state.tasks.get(task_id)
            if task is None or task.status != "SUCCEEDED":
                return None
            if time.time() + self.faults.clock_offset_s >= task.expires(self.faults.result_ttl_s):
                raise ErrorReply(403, "AccessDenied", "Request has expired.")
            return task.result
