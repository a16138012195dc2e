"""A local emulator of the DashScope VideoRetalk HTTP API, for offline development and tests.

It serves, on loopback, the documented endpoints (submit, task query, cancel, list, upload
policy), the temporary-storage POST (``/oss``) and the result download (``/results``). Tasks
run one at a time, like the service; their inputs are judged with preflight's rules, so a
rejected task fails with the same ``InvalidFile.*`` code the service would give. The
"result" is the input video with the new audio muxed in: it is clearly not lip-synced.

The server is standard library only (``http.server``); PyAV makes the result.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import logging
import os
import queue
import secrets
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import av

from preflight import CheckOptions, check_paths, limits

__all__ = ["HOLD_POINTS", "Emulator", "Faults", "Hold"]

_log = logging.getLogger("retalk.emulator")

API_PREFIX = "/api/v1"
SUBMIT_PATH = API_PREFIX + "/services/aigc/image2video/video-synthesis"
MODEL = "videoretalk"
MAX_FILE_SIZE_MB = 100
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_LIST_TIME_FORMAT = "%Y%m%d%H%M%S"
_CHUNK = 64 * 1024
_DOWNLOAD_TIMEOUT_S = 60.0  # the service gives up downloading an input after 60 s
#: The task table (and the key that signs upload policies), kept under the root so that an
#: emulator restarted on the same root knows its tasks, as the service does.
STATE_FILE = "state.json"
#: Where a request can be held (``Emulator.hold``): the storage POST before the file is
#: stored; the task list and a task query before they are answered; a submit after its task
#: is created, before the answer; a result download after its first chunk.
HOLD_POINTS = ("storage", "list", "query", "submit", "result")


@dataclass
class Faults:
    """Fault injection; everything is off by default except the service's own rate limit."""

    #: Every Nth API request answers 429 ``Throttling.RateQuota`` with ``Retry-After: 1``.
    throttle_every: int = 0
    #: Every Nth API request answers 500 ``InternalError``.
    error_every: int = 0
    #: Every API response is delayed this long (seconds).
    slow_s: float = 0.0
    #: Every Nth API request: the connection is closed without a response.
    drop_every: int = 0
    #: Tasks end FAILED with ``output.code`` ``InternalError.Algo``.
    fail_tasks: bool = False
    #: The ``code`` and ``message`` such a task ends with (the service's text is free
    #: text: tests give it markup and control characters).
    fail_with: tuple[str, str] = ("InternalError.Algo", "Injected failure: the algorithm failed.")
    #: ``expire_in_seconds`` of upload policies; a storage POST after that answers 403.
    policy_ttl_s: int = 300
    #: How long a task stays RUNNING once started (plus the real muxing time).
    task_seconds: float = 2.0
    #: The service accepts about one submission per second; 0 turns the limit off.
    submit_interval_s: float = 1.0
    #: How long a result URL works after its task ended (the service's: 24 h); after
    #: that the download answers 403 and the task query still gives the same URL.
    result_ttl_s: float = float(limits.RESULT_URL_TTL_S)
    #: The service's clock minus this machine's (seconds): its task times, its Date
    #: header and its upload policies' expiry are stated on that clock.
    clock_offset_s: float = 0.0
    #: A hostile service (or anything between): the submit's answer names this task id
    #: instead of the task it created (which runs, and is listed, as usual).
    submit_task_id: str | None = None


class _Reply(Exception):
    """An error answer, raised from deep in a handler and written by the dispatcher."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class _Stopped(Exception):
    """The emulator stops while a task runs: the task is left RUNNING (run again on restart)."""


class _TaskFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Task:
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
        out: dict[str, Any] = {"task_id": self.task_id, "task_status": self.status}
        out["submit_time"] = _stamp(self.submitted)
        if self.scheduled is not None:
            out["scheduled_time"] = _stamp(self.scheduled)
        if self.ended is not None:
            out["end_time"] = _stamp(self.ended)
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
            "submitted": _stamp(self.submitted),
            "status": self.status,
            "scheduled": _stamp(self.scheduled) if self.scheduled else None,
            "ended": _stamp(self.ended) if self.ended else None,
            "code": self.code,
            "message": self.message,
            "result": str(self.result) if self.result else None,
            "usage": self.usage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Task:
        def moment(text: str | None) -> datetime | None:
            return datetime.strptime(text, _TIME_FORMAT + ".%f") if text else None

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


#: The service is in Beijing and states its times there, without a zone.
BEIJING = timezone(timedelta(hours=8))


def _now(offset_s: float = 0.0) -> datetime:
    """The service's time in Beijing, without a zone (``offset_s``: its clock's skew)."""
    return (datetime.now(BEIJING) + timedelta(seconds=offset_s)).replace(tzinfo=None)


def _stamp(moment: datetime) -> str:
    return moment.strftime(_TIME_FORMAT) + f".{moment.microsecond // 1000:03d}"


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Hold:
    """A request held at a point (``Emulator.hold``) until ``release()`` or the emulator stops."""

    point: str
    #: Set when a request got to the point and waits there.
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class _Server(ThreadingHTTPServer):
    # Handler threads must not keep the process alive, nor make server_close() wait on an
    # idle keep-alive connection.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (killed, timed out) is not the server's error.
        _log.debug("connection from %s ended badly", client_address, exc_info=True)


class Emulator:
    """The VideoRetalk API on loopback. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.root = Path(root)
        self.host = host
        self.port = port
        self.faults = faults or Faults()
        self._api_key = api_key
        #: (method, path, headers) of every request; Authorization shows as "Bearer ***".
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: How many tasks were created.
        self.submissions = 0
        self._secret = secrets.token_bytes(32)  # signs upload policies
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._api_count = 0
        self._last_submit = float("-inf")
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._holds: dict[str, Hold] = {}
        self._forgotten: set[str] = set()  # answered UNKNOWN (``forget``)

    # ------------------------------------------------------------------ lifecycle
    @property
    def origin(self) -> str:
        """``http://HOST:PORT`` (for the storage host and result URLs)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.origin + API_PREFIX

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        (self.root / "oss").mkdir(parents=True, exist_ok=True)
        (self.root / "results").mkdir(parents=True, exist_ok=True)
        (self.root / "fetched").mkdir(parents=True, exist_ok=True)
        self._load()
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="emulator-http"
            ),
            threading.Thread(target=self._work, name="emulator-worker"),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        self._queue.put(None)
        server.shutdown()
        # Idle keep-alive connections would otherwise linger in their handler threads.
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        self._server = None

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (for the CLI)."""
        self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def hold(self, point: str) -> Hold:
        """Make the next request that gets to ``point`` (one of ``HOLD_POINTS``) wait there
        until the returned hold is released: for tests that stop a client at a chosen step."""
        if point not in HOLD_POINTS:
            raise ValueError(f"no hold point {point!r}; one of {', '.join(HOLD_POINTS)}")
        hold = Hold(point)
        with self._lock:
            self._holds[point] = hold
        return hold

    def forget(self, task_id: str, forgotten: bool = True) -> None:
        """Answer ``UNKNOWN`` for this task's queries (as the service does for a task it does
        not know, or no longer knows) while it goes on running; ``forgotten=False`` answers
        for it again (a lagging replica caught up)."""
        with self._lock:
            if forgotten:
                self._forgotten.add(task_id)
            else:
                self._forgotten.discard(task_id)

    def _gate(self, point: str) -> None:
        with self._lock:
            hold = self._holds.pop(point, None)
        if hold is None:
            return
        hold.reached.set()
        while not hold.released.wait(0.05) and not self._stopping.is_set():
            pass

    # ------------------------------------------------------------------ state
    def _now(self) -> datetime:
        return _now(self.faults.clock_offset_s)

    def _load(self) -> None:
        """The tasks of an emulator that ran on this root before (killed or stopped): the
        service forgets no task when it restarts, and runs on those it had not finished."""
        state = self.root / STATE_FILE
        if not state.exists():
            self._save()
            return
        data = json.loads(state.read_text(encoding="utf-8"))
        self._secret = bytes.fromhex(data["secret"])
        tasks = [_Task.from_dict(item) for item in data.get("tasks", [])]
        with self._lock:
            self._tasks = {task.task_id: task for task in tasks}
            for task in sorted(tasks, key=lambda t: t.submitted):
                if task.status in ("PENDING", "RUNNING"):
                    task.status, task.scheduled = "PENDING", None  # run again from the start
                    self._queue.put(task.task_id)
            self._save()

    def _save(self) -> None:
        """Write the task table under the root, whole (a temporary file renamed); called
        with the lock held, or before the server runs."""
        document = {"secret": self._secret.hex(), "tasks": [t.to_dict() for t in self._tasks.values()]}
        target = self.root / STATE_FILE
        partial = target.with_name(f".{STATE_FILE}.{os.getpid()}.part")
        partial.write_text(json.dumps(document), encoding="utf-8")
        os.replace(partial, target)

    # ------------------------------------------------------------------ bookkeeping
    def _record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path, headers))

    def _track(self, connection: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _next_api_number(self) -> int:
        with self._lock:
            self._api_count += 1
            return self._api_count

    def _check_key(self, authorization: str | None) -> None:
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        good = scheme.lower() == "bearer" and bool(key)
        if good and self._api_key is not None:
            good = hmac.compare_digest(key.encode(), self._api_key.encode())
        if not good:
            # Never echo the key that was sent.
            raise _Reply(401, "InvalidApiKey", "Invalid API-key provided.")

    # ------------------------------------------------------------------ API
    def submit(self, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        if headers.get("x-dashscope-async", "").lower() != "enable":
            raise _Reply(
                400,
                "InvalidParameter",
                "current user api does not support synchronous calls; send X-DashScope-Async: enable",
            )
        try:
            request = json.loads(body or b"null")
        except ValueError:
            raise _Reply(400, "InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(request, dict):
            raise _Reply(400, "InvalidParameter", "The request body must be a JSON object.")
        model = request.get("model")
        if model is None:
            raise _Reply(400, "InvalidParameter", "Field required: model")
        if model != MODEL:
            raise _Reply(400, "InvalidParameter", f"Model not supported by this endpoint: {model!r}.")
        inputs = request.get("input")
        if not isinstance(inputs, dict):
            raise _Reply(400, "InvalidParameter", "Field required: input")
        urls: dict[str, str] = {}
        for name in ("video_url", "audio_url", "ref_image_url"):
            value = inputs.get(name)
            if value in (None, "") and name == "ref_image_url":
                continue  # optional; the documented sample sends ""
            if not isinstance(value, str) or not value:
                raise _Reply(400, "InvalidParameter", f"Field required: input.{name}")
            if not value.startswith(("http://", "https://", "oss://")):
                raise _Reply(400, "InvalidParameter", f"input.{name} must be an http(s):// or oss:// URL.")
            urls[name] = value
        parameters = request.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise _Reply(400, "InvalidParameter", "parameters must be a JSON object.")
        extension = parameters.get("video_extension", False)
        if not isinstance(extension, bool):
            raise _Reply(400, "InvalidParameter", "parameters.video_extension must be a boolean.")
        threshold = parameters.get("query_face_threshold")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or not 120 <= threshold <= 200
        ):
            raise _Reply(
                400, "InvalidParameter", "parameters.query_face_threshold must be an integer 120-200."
            )
        if any(url.startswith("oss://") for url in urls.values()) and (
            headers.get("x-dashscope-ossresourceresolve", "").lower() != "enable"
        ):
            raise _Reply(400, "InvalidParameter", "oss:// URLs need X-DashScope-OssResourceResolve: enable")
        with self._lock:
            now = time.monotonic()
            if now - self._last_submit < self.faults.submit_interval_s:
                raise _Reply(
                    429,
                    "Throttling.RateQuota",
                    "Requests rate limit exceeded, please try again later.",
                    {"Retry-After": "1"},
                )
            self._last_submit = now
            task = _Task(
                task_id=_new_id(),
                request_id=_new_id(),
                video_url=urls["video_url"],
                audio_url=urls["audio_url"],
                ref_image_url=urls.get("ref_image_url"),
                video_extension=extension,
                submitted=self._now(),
            )
            self._tasks[task.task_id] = task
            self.submissions += 1
            self._save()
        self._queue.put(task.task_id)
        self._gate("submit")  # created and listed; the answer not sent yet
        named = task.task_id if self.faults.submit_task_id is None else self.faults.submit_task_id
        return {"output": {"task_id": named, "task_status": "PENDING"}, "request_id": task.request_id}

    def query(self, task_id: str) -> dict[str, Any]:
        self._gate("query")
        with self._lock:
            task = self._tasks.get(task_id) if task_id not in self._forgotten else None
            if task is None:
                # The real API answers 200 UNKNOWN for a task it does not know (or forgot).
                return {"request_id": _new_id(), "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
            answer: dict[str, Any] = {
                "request_id": _new_id(),
                "output": task.output(self.origin),
            }
            if task.status == "SUCCEEDED" and task.usage is not None:
                answer["usage"] = dict(task.usage)
            return answer

    def cancel(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise _Reply(400, "UnsupportedOperation", f"Task {task_id} does not exist.")
            if task.status != "PENDING":
                raise _Reply(
                    400,
                    "UnsupportedOperation",
                    f"Only PENDING tasks can be canceled; task {task_id} is {task.status}.",
                )
            task.status = "CANCELED"
            task.ended = self._now()
            self._save()
        return {"request_id": _new_id()}

    def list_tasks(self, query: dict[str, list[str]]) -> dict[str, Any]:
        self._gate("list")

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        try:
            page_no = int(one("page_no") or 1)
            page_size = int(one("page_size") or 10)
            start = datetime.strptime(one("start_time") or "19700101000000", _LIST_TIME_FORMAT)
            end_text = one("end_time")
            end = datetime.strptime(end_text, _LIST_TIME_FORMAT) if end_text else None
        except ValueError:
            raise _Reply(
                400,
                "InvalidParameter",
                "page_no and page_size must be integers; start_time and end_time YYYYMMDDhhmmss.",
            ) from None
        if page_no < 1 or not 1 <= page_size <= 100:
            raise _Reply(400, "InvalidParameter", "page_no must be >= 1 and page_size 1-100.")
        status = one("status")
        model = one("model_name")
        with self._lock:
            chosen = [
                task
                for task in self._tasks.values()
                if task.submitted >= start
                and (end is None or task.submitted <= end)
                and (status is None or task.status == status)
                and (model is None or model == MODEL)
            ]
            chosen.sort(key=lambda task: task.submitted, reverse=True)
            page = chosen[(page_no - 1) * page_size : page_no * page_size]
            data = [
                {
                    **task.output(self.origin),
                    "model_name": MODEL,
                    "request_id": task.request_id,
                }
                for task in page
            ]
        return {
            "request_id": _new_id(),
            "data": data,
            "total": len(chosen),
            "page_no": page_no,
            "page_size": page_size,
        }

    def policy(self, query: dict[str, list[str]]) -> dict[str, Any]:
        if query.get("action") != ["getPolicy"]:
            raise _Reply(400, "InvalidParameter", "action must be getPolicy.")
        if query.get("model") != [MODEL]:
            raise _Reply(400, "InvalidParameter", f"model must be {MODEL}.")
        ttl = self.faults.policy_ttl_s
        expiry = datetime.now(timezone.utc) + timedelta(seconds=ttl + self.faults.clock_offset_s)
        upload_dir = f"dashscope-instant/{secrets.token_hex(16)}/{self._now():%Y-%m-%d}"
        document = {
            "expiration": expiry.strftime("%Y-%m-%dT%H:%M:%S.") + f"{expiry.microsecond // 1000:03d}Z",
            "conditions": [
                ["content-length-range", 0, MAX_FILE_SIZE_MB * 1024 * 1024],
                ["starts-with", "$key", upload_dir],
            ],
        }
        policy = base64.b64encode(json.dumps(document).encode()).decode()
        return {
            "request_id": _new_id(),
            "data": {
                "policy": policy,
                "signature": self._sign(policy),
                "upload_dir": upload_dir,
                "upload_host": self.origin + "/oss",
                "expire_in_seconds": ttl,
                "max_file_size_mb": MAX_FILE_SIZE_MB,
                "capacity_limit_mb": 999999999,
                "oss_access_key_id": "emulator",
                "x_oss_object_acl": "private",
                "x_oss_forbid_overwrite": "true",
            },
        }

    def _sign(self, policy: str) -> str:
        return base64.b64encode(hmac.new(self._secret, policy.encode(), hashlib.sha1).digest()).decode()

    # ------------------------------------------------------------------ storage
    def store(self, content_type: str, body: bytes) -> bool:
        """The storage POST; True when success_action_status asked for 200 (else 204)."""
        fields = _parse_multipart(content_type, body)
        names = [name for name, _ in fields]
        if "file" not in names:
            raise _Reply(400, "InvalidArgument", "The form has no file field.")
        if names[-1] != "file":
            raise _Reply(400, "InvalidArgument", "The file field must be the last field of the form.")
        form = {name: value for name, value in fields[:-1]}
        data = fields[-1][1]
        for required in ("OSSAccessKeyId", "Signature", "policy", "key"):
            if required not in form:
                raise _Reply(400, "InvalidArgument", f"The form has no {required} field.")
        policy = form["policy"].decode("ascii", "replace")
        if not hmac.compare_digest(self._sign(policy), form["Signature"].decode("ascii", "replace")):
            raise _Reply(403, "SignatureDoesNotMatch", "The request signature does not match the policy.")
        document = json.loads(base64.b64decode(policy))
        expiry = datetime.strptime(document["expiration"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=timezone.utc
        )
        if datetime.now(timezone.utc) + timedelta(seconds=self.faults.clock_offset_s) >= expiry:
            raise _Reply(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = form["key"].decode("utf-8", "replace")
        prefix = next(c[2] for c in document["conditions"] if c[0] == "starts-with")
        parts = key.split("/")
        if not key.startswith(prefix + "/") or any(p in ("", ".", "..") for p in parts):
            raise _Reply(403, "AccessDenied", "Invalid according to Policy: the key is outside upload_dir.")
        if len(data) > MAX_FILE_SIZE_MB * 1024 * 1024:
            raise _Reply(400, "EntityTooLarge", f"The file is larger than {MAX_FILE_SIZE_MB} MB.")
        target = self.root / "oss" / Path(*parts)
        with self._lock:
            if target.exists():
                raise _Reply(409, "FileAlreadyExists", "The object exists and overwrite is forbidden.")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return form.get("success_action_status", b"") == b"200"

    def discard(self, task_id: str) -> None:
        """Delete a finished task's result and the inputs it fetched (its client has the
        result): the folder does not keep every result forever. Its URL then answers 404."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.status not in ("SUCCEEDED", "FAILED", "CANCELED"):
                return
            result = task.result
        if result is not None:
            result.unlink(missing_ok=True)
        shutil.rmtree(self.root / "fetched" / task_id, ignore_errors=True)

    def result_path(self, name: str) -> Path | None:
        """The result file of a task by its URL's name; ``_Reply`` 403 once its URL expired."""
        task_id = name.removesuffix(".mp4")
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.status != "SUCCEEDED":
                return None
            if time.time() + self.faults.clock_offset_s >= task.expires(self.faults.result_ttl_s):
                raise _Reply(403, "AccessDenied", "Request has expired.")
            return task.result

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        while not self._stopping.is_set():
            task_id = self._queue.get()
            if task_id is None:
                return
            with self._lock:
                task = self._tasks[task_id]
                if task.status != "PENDING":  # canceled while it waited
                    continue
                task.status = "RUNNING"
                task.scheduled = self._now()
                self._save()
            try:
                result, usage = self._run(task)
            except _Stopped:
                return
            except _TaskFailed as failure:
                self._finish(task, "FAILED", code=failure.code, message=failure.message)
            except Exception as error:  # a bug or a file PyAV chokes on: the task fails, not the worker
                _log.exception("task %s failed", task.task_id)
                self._finish(task, "FAILED", code="InternalError.Algo", message=f"Processing failed: {error}")
            else:
                self._finish(task, "SUCCEEDED", result=result, usage=usage)

    def _finish(
        self,
        task: _Task,
        status: str,
        *,
        code: str | None = None,
        message: str | None = None,
        result: Path | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        with self._lock:
            task.status = status
            task.code, task.message = code, message
            task.result, task.usage = result, usage
            task.ended = self._now()
            self._save()

    def _run(self, task: _Task) -> tuple[Path, dict[str, Any]]:
        folder = self.root / "fetched" / task.task_id
        folder.mkdir(parents=True, exist_ok=True)
        video = self._fetch(task.video_url, folder, "video")
        audio = self._fetch(task.audio_url, folder, "audio")
        ref = self._fetch(task.ref_image_url, folder, "ref") if task.ref_image_url else None
        report = check_paths(video=video, audio=audio, ref=ref, options=CheckOptions(fast=True))
        for finding in report.all_findings():
            if finding.code.startswith("InvalidFile.") and str(finding.severity) == "error":
                raise _TaskFailed(finding.code, finding.message)
        target = self.root / "results" / f"{task.task_id}.mp4"
        usage = _mux(video, audio, target, task.video_extension)
        # The service takes its time; so does the emulator, in a way stop() can interrupt
        # (a stopped service has not finished the task: it runs again after a restart), and
        # that a test may shorten while the task runs (``faults.task_seconds`` is read anew).
        started = time.monotonic()
        while time.monotonic() - started < self.faults.task_seconds:
            if self._stopping.wait(min(0.05, self.faults.task_seconds)):
                raise _Stopped()
        if self.faults.fail_tasks:
            raise _TaskFailed(*self.faults.fail_with)
        return target, usage

    def _fetch(self, url: str, folder: Path, role: str) -> Path:
        refused = _TaskFailed(
            "InvalidURL.ConnectionRefused", f"Connection to {url} refused, please provide avaiable URL"
        )
        if url.startswith("oss://"):
            parts = url.removeprefix("oss://").split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise refused
            stored = self.root / "oss" / Path(*parts)
            if not stored.is_file():
                raise refused
            return stored
        name = Path(urllib.parse.urlsplit(url).path).name or role
        target = folder / f"{role}-{name}"
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as answer, target.open("wb") as out:
                shutil.copyfileobj(answer, out, _CHUNK)
        except TimeoutError:
            raise _TaskFailed(
                "InvalidURL.Timeout", f"Download {url} timeout, please check network connection."
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            if isinstance(getattr(error, "reason", None), TimeoutError):
                raise _TaskFailed(
                    "InvalidURL.Timeout", f"Download {url} timeout, please check network connection."
                ) from None
            raise refused from None
        return target


def _mux(video: Path, audio: Path, target: Path, extend: bool) -> dict[str, Any]:
    """The input video's picture (packets copied) with the new audio as AAC, in an MP4.

    Without ``video_extension`` the longer input is cut to the shorter one, as the service
    does. With it, the service plays the video forward then backward to cover the audio; the
    emulator keeps both whole instead (its result is not meant to be watched).
    Returns the task's ``usage``.
    """
    partial = target.with_suffix(".part.mp4")
    with av.open(str(video)) as picture, av.open(str(audio)) as sound:
        in_video = picture.streams.video[0]
        in_audio = sound.streams.audio[0]
        video_s = _duration(picture, in_video)
        audio_s = _duration(sound, in_audio)
        limit = None if extend else min(video_s, audio_s)
        width, height = in_video.codec_context.width, in_video.codec_context.height
        rate = in_video.average_rate or in_video.guessed_rate or Fraction(25)
        with av.open(str(partial), "w", format="mp4") as out:
            out_video = out.add_stream_from_template(in_video)
            sample_rate = in_audio.codec_context.sample_rate or 44100
            out_audio = out.add_stream("aac", rate=sample_rate, layout="mono")
            time_base = in_video.time_base or Fraction(1, 90000)
            for packet in picture.demux(in_video):
                if packet.dts is None:
                    continue  # the demuxer's empty flush packet
                # Stop at the first frame past the cut (decode order), so no kept frame
                # refers to a dropped one.
                if limit is not None and packet.pts is not None and packet.pts * time_base >= limit:
                    break
                packet.stream = out_video
                out.mux(packet)
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
            budget = None if limit is None else round(limit * sample_rate)
            written = 0
            for frame in sound.decode(in_audio):
                for chunk in resampler.resample(frame):
                    samples = chunk.to_ndarray()
                    if budget is not None:
                        samples = samples[:, : max(0, budget - written)]
                    if samples.shape[1] == 0:
                        continue
                    piece = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                    piece.sample_rate = sample_rate
                    piece.pts = written
                    piece.time_base = Fraction(1, sample_rate)
                    written += samples.shape[1]
                    for packet in out_audio.encode(piece):
                        out.mux(packet)
            for packet in out_audio.encode(None):
                out.mux(packet)
    partial.replace(target)
    with av.open(str(target)) as result:
        seconds = (result.duration or 0) / 1_000_000
    return {
        "video_duration": round(seconds, 3),
        "size": f"{width}*{height}",
        "fps": round(float(rate)),
        "video_ratio": "standard",
    }


def _duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / 1_000_000


def _parse_multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The (name, value) fields of a multipart/form-data body, in order (parsed by hand:
    the ``cgi`` module is gone, and ``email`` is not safe with binary parts)."""
    kind, _, params = content_type.partition(";")
    boundary = ""
    for param in params.split(";"):
        key, _, text = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = text.strip().strip('"')
    if kind.strip().lower() != "multipart/form-data" or not boundary:
        raise _Reply(400, "InvalidArgument", "The storage POST must be multipart/form-data with a boundary.")
    delimiter = b"\r\n--" + boundary.encode()
    chunks = (b"\r\n" + body).split(delimiter)
    fields: list[tuple[str, bytes]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, separator, value = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise _Reply(400, "InvalidArgument", "A form part has no header.")
        name: str | None = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header, _, rest = line.partition(":")
            if header.strip().lower() != "content-disposition":
                continue
            for param in rest.split(";"):
                key, _, raw = param.strip().partition("=")
                if key.lower() == "name":
                    name = raw.strip().strip('"')
        if name is None:
            raise _Reply(400, "InvalidArgument", "A form part has no name.")
        fields.append((name, value))
    return fields


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect
    timeout = 60  # an idle connection is closed after this long

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    def setup(self) -> None:
        super().setup()
        self.emulator._track(self.connection, True)

    def finish(self) -> None:
        self.emulator._track(self.connection, False)
        super().finish()

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header on the service's clock (skewed on demand).
        moment = time.time() if timestamp is None else timestamp
        return email.utils.formatdate(moment + self.emulator.faults.clock_offset_s, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only (never headers, so never the key), and quietly.
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ plumbing
    def _dispatch(self, method: str) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        logged = dict(headers)
        if "authorization" in logged:
            logged["authorization"] = "Bearer ***"
        self.emulator._record(method, self.path, logged)
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        try:
            body = self._read_body(headers)
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                self._api(method, path, urllib.parse.parse_qs(url.query), headers, body)
            elif path.rstrip("/") == "/oss" and method == "POST":
                self.emulator._gate("storage")
                ok_200 = self.emulator.store(headers.get("content-type", ""), body)
                self._send(200 if ok_200 else 204, b"", "text/plain")
            elif path.startswith("/results/") and method in ("GET", "HEAD"):
                self._result(path.removeprefix("/results/"), headers, method == "HEAD")
            else:
                raise _Reply(404, "NotFound", f"No such endpoint: {method} {path}")
        except _Reply as reply:
            self._send_error(reply)
        except _Drop:
            self.close_connection = True

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            # httpx streams a form whose file has no known length this way.
            return self._read_chunked()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _Reply(400, "InvalidParameter", "Bad Content-Length.") from None
        if length > (MAX_FILE_SIZE_MB + 1) * 1024 * 1024:
            self.close_connection = True  # the rest of the body is not read
            raise _Reply(400, "EntityTooLarge", f"The request is larger than {MAX_FILE_SIZE_MB} MB.")
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        limit = (MAX_FILE_SIZE_MB + 1) * 1024 * 1024
        pieces: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise _Reply(400, "InvalidArgument", "Bad chunked encoding.") from None
            if size == 0:
                # Trailers, if any, end with an empty line.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(pieces)
            total += size
            if total > limit:
                self.close_connection = True
                raise _Reply(400, "EntityTooLarge", f"The request is larger than {MAX_FILE_SIZE_MB} MB.")
            pieces.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _api(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> None:
        emulator = self.emulator
        faults = emulator.faults
        number = emulator._next_api_number()
        if faults.slow_s > 0:
            emulator._stopping.wait(faults.slow_s)
        if faults.drop_every and number % faults.drop_every == 0:
            raise _Drop()
        if faults.throttle_every and number % faults.throttle_every == 0:
            raise _Reply(
                429, "Throttling.RateQuota", "Requests rate limit exceeded (injected).", {"Retry-After": "1"}
            )
        if faults.error_every and number % faults.error_every == 0:
            raise _Reply(500, "InternalError", "An internal error has occurred (injected).")
        emulator._check_key(headers.get("authorization"))
        route = path.removeprefix(API_PREFIX).rstrip("/")
        parts = route.split("/")  # "", "tasks", id, "cancel"
        answer: dict[str, Any]
        if method == "POST" and API_PREFIX + route == SUBMIT_PATH:
            answer = emulator.submit(headers, body)
        elif method == "GET" and route == "/tasks":
            answer = emulator.list_tasks(query)
        elif method == "GET" and len(parts) == 3 and parts[1] == "tasks":
            answer = emulator.query(parts[2])
        elif method == "POST" and len(parts) == 4 and parts[1] == "tasks" and parts[3] == "cancel":
            answer = emulator.cancel(parts[2])
        elif method == "GET" and route == "/uploads":
            answer = emulator.policy(query)
        else:
            raise _Reply(404, "NotFound", f"No such endpoint: {method} {path}")
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _result(self, name: str, headers: dict[str, str], head_only: bool) -> None:
        stored = self.emulator.result_path(name)
        if stored is None or not stored.is_file():
            raise _Reply(404, "NoSuchKey", "The specified key does not exist.")
        size = stored.stat().st_size
        start, end = 0, size - 1
        status = 200
        extra: dict[str, str] = {"Accept-Ranges": "bytes"}
        wanted = headers.get("range")
        if wanted:
            span = _parse_range(wanted, size)
            if span is None:
                raise _Reply(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable.",
                    {"Content-Range": f"bytes */{size}"},
                )
            start, end = span
            status = 206
            extra["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(length))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if head_only:
            return
        with stored.open("rb") as source:
            source.seek(start)
            left = length
            first = True
            while left > 0:
                chunk = source.read(min(_CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
                if first:
                    first = False
                    self.wfile.flush()
                    self.emulator._gate("result")  # part of the file is on its way

    def _send_error(self, reply: _Reply) -> None:
        body = {"request_id": _new_id(), "code": reply.code, "message": reply.message}
        self._send(reply.status, json.dumps(body).encode(), "application/json", reply.headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Drop(Exception):
    """Close the connection without answering (an injected fault)."""


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``bytes=N-``, ``bytes=N-M`` or ``bytes=-N`` as an inclusive span; None if unsatisfiable."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            count = int(last)
            return (max(0, size - count), size - 1) if count > 0 and size > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)
