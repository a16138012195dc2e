"""What the service says: tasks, their usage, upload policies. Parsed leniently (numbers
may come as strings) and kept as plain frozen dataclasses."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Any

from preflight import limits

#: Statuses after which a task never changes again.
FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})
#: "No such task, or it expired" (the API page). Not an end: the task may still run (a
#: query routed before the task is known, an answer from a lagging replica), and taking it
#: for a failure frees the job to be sent, and paid for, again. ``wait`` stops on it; the
#: job stays open for ``resume``.
UNKNOWN = "UNKNOWN"
#: Statuses the documentation names; any other one is treated as still running.
KNOWN_STATUSES = FINAL_STATUSES | {
    UNKNOWN,
    "PENDING",
    "RUNNING",
    "SUSPENDED",
    "PRE-PROCESSING",
    "POST-PROCESSING",
}


#: The service is in Beijing and states its times there, without a zone.
BEIJING = timezone(timedelta(hours=8))


def face_threshold_problem(threshold: int) -> str | None:
    """Why the service would refuse this ``query_face_threshold`` (the API page: an
    integer 120-200); None when it takes it."""
    low, high = limits.QUERY_FACE_THRESHOLD_MIN, limits.QUERY_FACE_THRESHOLD_MAX
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not low <= threshold <= high:
        return f"must be {low}-{high}"
    return None


def _float(value: Any) -> float | None:
    """A number of an answer, finite; anything else (text, a list, NaN, an integer of 400
    digits, which float() refuses with OverflowError) is not one."""
    try:
        number = None if value is None or value == "" else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if number is None or not math.isfinite(number) else number


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None or number != number or abs(number) == float("inf") else int(number)


def _text(value: Any) -> str | None:
    """A text field of an answer: text (or a number, as text); anything else is not one."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _object(value: Any) -> dict[str, Any]:
    """A JSON object of an answer; anything else (an answer is not trusted) is empty."""
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Usage:
    """What a finished task is billed for."""

    video_duration: float | None = None
    size: str | None = None
    fps: int | None = None
    video_ratio: str | None = None

    @classmethod
    def parse(cls, data: Any) -> Usage | None:
        if not data or not isinstance(data, dict):
            return None
        return cls(
            _float(data.get("video_duration")),
            _text(data.get("size")),
            _int(data.get("fps")),
            _text(data.get("video_ratio")),
        )


@dataclass(frozen=True)
class Task:
    task_id: str
    status: str
    video_url: str | None = None
    #: Why a FAILED task failed.
    code: str | None = None
    message: str | None = None
    submit_time: str | None = None
    scheduled_time: str | None = None
    end_time: str | None = None
    usage: Usage | None = None
    request_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def unknown(self) -> bool:
        """The service says it has no such task (or it expired): not an end, see ``UNKNOWN``."""
        return self.status == UNKNOWN

    def raise_for_status(self) -> Task:
        """This task if it succeeded (or is still going); ``TaskFailed`` if it ended otherwise,
        ``TaskUnknown`` if the service does not know it."""
        from ._exceptions import TaskFailed, TaskUnknown

        if self.unknown:
            raise TaskUnknown(self.task_id)
        if self.finished and not self.succeeded:
            default = {"CANCELED": "canceled"}.get(self.status, "")
            raise TaskFailed(self.task_id, self.code or self.status, self.message or default)
        return self

    @classmethod
    def parse(cls, body: dict[str, Any], task_id: str | None = None) -> Task:
        # Every field checked for its type: the answer is not trusted (ids are checked
        # by the client, before any is stored or used).
        output = _object(body.get("output"))
        return cls(
            task_id=str(output.get("task_id") or task_id or ""),
            # An answer that states no status is not an end: it counts as running.
            status=str(output.get("task_status") or ""),
            video_url=_text(output.get("video_url")),
            code=_text(output.get("code")),
            message=_text(output.get("message")),
            submit_time=_text(output.get("submit_time")),
            scheduled_time=_text(output.get("scheduled_time")),
            end_time=_text(output.get("end_time")),
            usage=Usage.parse(body.get("usage")),
            request_id=_text(body.get("request_id")),
        )


@dataclass(frozen=True)
class UploadPolicy:
    """A temporary-storage upload permit (valid ``expire_in_seconds`` after it was got)."""

    policy: str
    signature: str
    upload_dir: str
    upload_host: str
    expire_in_seconds: int
    max_file_size_mb: float
    oss_access_key_id: str
    x_oss_object_acl: str
    x_oss_forbid_overwrite: str
    #: ``time.monotonic()`` when it was received.
    received: float = field(default=0.0, compare=False)

    @classmethod
    def parse(cls, body: dict[str, Any], received: float) -> UploadPolicy:
        data = _object(body.get("data"))
        return cls(
            policy=str(data["policy"]),
            signature=str(data["signature"]),
            upload_dir=str(data["upload_dir"]).rstrip("/"),
            upload_host=str(data["upload_host"]),
            expire_in_seconds=_int(data.get("expire_in_seconds")) or 300,
            max_file_size_mb=_float(data.get("max_file_size_mb")) or 100.0,
            oss_access_key_id=str(data["oss_access_key_id"]),
            x_oss_object_acl=str(data.get("x_oss_object_acl") or "private"),
            x_oss_forbid_overwrite=str(data.get("x_oss_forbid_overwrite") or "true"),
            received=received,
        )

    def expired(self, now: float, margin: float = 10.0) -> bool:
        return now >= self.received + self.expire_in_seconds - margin
