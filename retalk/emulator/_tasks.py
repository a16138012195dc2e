"""A task as the emulated service keeps it, and the service's clock.

Kept apart because the state, the task runner and the HTTP answers all speak of tasks and
of the service's time, which is Beijing time written without a zone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .._models import BEIJING

#: How the service writes a moment (plus milliseconds, see ``stamp``).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def service_now(offset_s: float = 0.0) -> datetime:
    """The service's time in Beijing, without a zone (``offset_s``: its clock's skew)."""
    return (datetime.now(BEIJING) + timedelta(seconds=offset_s)).replace(tzinfo=None)


def stamp(moment: datetime) -> str:
    """A moment as the service writes it: ``TIME_FORMAT`` and milliseconds."""
    return moment.strftime(TIME_FORMAT) + f".{moment.microsecond // 1000:03d}"


def new_id() -> str:
    """A task or request id, shaped like the service's."""
    return str(uuid.uuid4())


@dataclass
class EmulatedTask:
    """One submitted task: what was asked, where it stands, and what it produced."""

    task_id: str
    request_id: str
    video_url: str
    audio_url: str
    ref_image_url: str | None
    video_extension: bool
    submitted: datetime
    status: str = "PENDING"
    scheduled: datetime | None = None
    ended: datetime | None = None
    code: str | None = None
    message: str | None = None
    result: Path | None = None
    usage: dict[str, Any] | None = None

    def output(self, base: str) -> dict[str, Any]:
        """The task's ``output`` object in a query or list answer (``base``: the origin)."""
        out: dict[str, Any] = {"task_id": self.task_id, "task_status": self.status}
        out["submit_time"] = stamp(self.submitted)
        if self.scheduled is not None:
            out["scheduled_time"] = stamp(self.scheduled)
        if self.ended is not None:
            out["end_time"] = stamp(self.ended)
        if self.status == "SUCCEEDED":
            # Good until a fixed moment after the task ended (``expires``), like the service's
            # signed URL: asking again gives the same URL, not a fresh one.
            out["video_url"] = f"{base}/results/{self.task_id}.mp4"
        if self.code is not None:
            out["code"] = self.code
            out["message"] = self.message or ""
        return out

    def expires(self, result_ttl_s: float) -> float:
        """When the result URL stops working, on the service's clock (a timestamp)."""
        ended = self.ended or self.submitted
        return ended.replace(tzinfo=BEIJING).timestamp() + result_ttl_s

    def to_dict(self) -> dict[str, Any]:
        """The task as the state file keeps it."""
        return {
            "task_id": self.task_id,
            "request_id": self.request_id,
            "video_url": self.video_url,
            "audio_url": self.audio_url,
            "ref_image_url": self.ref_image_url,
            "video_extension": self.video_extension,
            "submitted": stamp(self.submitted),
            "status": self.status,
            "scheduled": stamp(self.scheduled) if self.scheduled else None,
            "ended": stamp(self.ended) if self.ended else None,
            "code": self.code,
            "message": self.message,
            "result": str(self.result) if self.result else None,
            "usage": self.usage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatedTask:
        """A task read back from the state file (``to_dict``)."""

        def moment(text: str | None) -> datetime | None:
            return datetime.strptime(text, TIME_FORMAT + ".%f") if text else None

        submitted = moment(data["submitted"])
        assert submitted is not None
        return cls(
            task_id=data["task_id"],
            request_id=data["request_id"],
            video_url=data["video_url"],
            audio_url=data["audio_url"],
            ref_image_url=data.get("ref_image_url"),
            video_extension=bool(data.get("video_extension")),
            submitted=submitted,
            status=data["status"],
            scheduled=moment(data.get("scheduled")),
            ended=moment(data.get("ended")),
            code=data.get("code"),
            message=data.get("message"),
            result=Path(data["result"]) if data.get("result") else None,
            usage=data.get("usage"),
        )
