"""What the service (or anything between it and us) sends is not trusted: task ids that
are paths, answers of hundreds of megabytes, result bodies that never end, unpack to
gigabytes, trickle or loop. Each story runs the real client, sync and async, against a
small misbehaving server on 127.0.0.1 (or the emulator told to misbehave), and the command
lines as the user runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from retalk import (
    AsyncClient,
    Client,
    DownloadError,
    DownloadPolicy,
    ProtocolError,
    RetryPolicy,
    ServerError,
    UploadError,
)
from retalk._journal import Journal
from retalk.emulator import Emulator, Faults
from tests.conftest import SAMPLE

KEY = "sk-hostile-0123456789abcdef"
VIDEO, VOICE = str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "voice.wav")
CLI_TIMEOUT_S = 90
#: Ids a service must never get us to use as a path or put in a URL: a way out of the
#: folder, a folder, a quoted dot-dot, one far too long, rich markup, a space, an option,
#: a terminal escape.
HOSTILE_IDS = ["../../x/evil", "a/b", "%2e%2e", "f" * 10240, "[/]x", "a b", "-rf", "a\x1b[2Jb"]
MIB = 1 << 20


# --------------------------------------------------------------------------- a hostile server
def _packed(size: int, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """``prefix``, ``size`` zero bytes... as gzip, made in pieces (never ``size`` in memory)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(prefix)]
    block = b"0" * (1 << 16)
    for _ in range(size // len(block)):
        parts.append(packer.compress(block))
    parts += [packer.compress(suffix), packer.flush()]
    return b"".join(parts)


#: An API answer of 30 MiB: valid JSON, a task padded out.
HUGE_HEAD = b'{"output": {"task_id": "t1", "task_status": "RUNNING", "pad": "'
HUGE_TAIL = b'"}}'
HUGE_SIZE = 30 * MIB
PACKED_ANSWER = _packed(HUGE_SIZE, HUGE_HEAD, HUGE_TAIL)
PACKED_RESULT = _packed(20 * MIB)
GOOD_RESULT = bytes(range(256)) * 1200


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # a body without a length ends when the connection does

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        kind = self.path.strip("/").split("/")[0]
        try:
            getattr(self, "_" + kind.replace("-", "_"))()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: what it should do

    def _head(self, status: int = 200, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def _pour(self, size: int, block: bytes = b"0" * (1 << 16)) -> None:
        sent = 0
        while sent < size:
            self.wfile.write(block)
            sent += len(block)

    def _trickle(self, piece: bytes, every_s: float, for_s: float) -> None:
        ends = time.monotonic() + for_s
        while time.monotonic() < ends:
            self.wfile.write(piece)
            self.wfile.flush()
            time.sleep(every_s)

    # API answers
    def _huge(self) -> None:  # no length: read until the connection ends
        self._head(Content_Type="application/json")
        self.wfile.write(HUGE_HEAD)
        self._pour(HUGE_SIZE)
        self.wfile.write(HUGE_TAIL)

    def _huge_stated(self) -> None:
        self._head(Content_Type="application/json", Content_Length=str(len(HUGE_HEAD) + HUGE_SIZE + 3))
        self.wfile.write(HUGE_HEAD)
        self._pour(HUGE_SIZE)
        self.wfile.write(HUGE_TAIL)

    def _packed(self) -> None:
        self._head(
            Content_Type="application/json", Content_Encoding="gzip", Content_Length=str(len(PACKED_ANSWER))
        )
        self.wfile.write(PACKED_ANSWER)

    # results
    def _endless(self) -> None:  # "endless": 20 MiB, so that a client that never stops ends
        self._head(Content_Type="video/mp4")
        self._pour(20 * MIB)

    def _claims(self) -> None:
        self._head(Content_Type="video/mp4", Content_Length=str(10 << 30))
        self._pour(MIB)

    def _bomb(self) -> None:
        self._head(Content_Type="video/mp4", Content_Encoding="gzip", Content_Length=str(len(PACKED_RESULT)))
        self.wfile.write(PACKED_RESULT)

    def _trickling(self) -> None:  # a byte every 0.1 s, for 6 s
        self._head(Content_Type="video/mp4", Content_Length="100000")
        self._trickle(b"0", 0.1, 6.0)

    def _silent(self) -> None:  # headers, then nothing for 6 s
        self._head(Content_Type="video/mp4", Content_Length="1000")
        time.sleep(6.0)

    def _slow(self) -> None:  # 40 KB/s: never stalled, but 10 MB would take minutes
        self._head(Content_Type="video/mp4", Content_Length=str(10 * MIB))
        self._trickle(b"0" * 4096, 0.1, 5.0)

    def _loop(self) -> None:
        self._head(302, Location=self.path)

    def _hop(self) -> None:
        self._head(302, Location="/good/result.mp4")

    def _good(self) -> None:
        self._head(Content_Type="video/mp4", Content_Length=str(len(GOOD_RESULT)))
        self.wfile.write(GOOD_RESULT)


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    """The origin (``http://127.0.0.1:PORT``) of a server that misbehaves by path."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


QUICK = RetryPolicy(attempts=2, base_s=0.01, cap_s=0.05)


def fetch(kind: str, url: str, out: Path, policy: DownloadPolicy | None = None) -> Path:
    """``download`` with the sync or the async client."""
    if kind == "sync":
        with Client(KEY, base_url="http://127.0.0.1:9/api/v1", retry=QUICK, download_policy=policy) as client:
            return client.download(url, out)

    async def run() -> Path:
        async with AsyncClient(
            KEY, base_url="http://127.0.0.1:9/api/v1", retry=QUICK, download_policy=policy
        ) as client:
            return await client.download(url, out)

    return asyncio.run(run())


def query(kind: str, base_url: str, task_id: str, max_answer_bytes: int) -> Any:
    """``get`` with the sync or the async client."""
    if kind == "sync":
        with Client(KEY, base_url=base_url, retry=QUICK, max_answer_bytes=max_answer_bytes) as client:
            return client.get(task_id)

    async def run() -> Any:
        async with AsyncClient(
            KEY, base_url=base_url, retry=QUICK, max_answer_bytes=max_answer_bytes
        ) as client:
            return await client.get(task_id)

    return asyncio.run(run())


def peak_memory(action: Callable[[], Any]) -> tuple[int, BaseException | None]:
    """The most memory Python held while ``action`` ran (bytes), and what it raised."""
    tracemalloc.start()
    try:
        action()
        raised = None
    except Exception as exc:
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


CLIENTS = ["sync", "async"]


# --------------------------------------------------------------------------- 1. task ids
def ids_client(kind: str, handler: Callable[[httpx.Request], httpx.Response]) -> Any:
    transport: Any = httpx.MockTransport(handler)
    return (Client if kind == "sync" else AsyncClient)(
        KEY, base_url="https://dashscope.example.com/api/v1", transport=transport, retry=QUICK,
        sleep=(lambda s: None) if kind == "sync" else _no_sleep,
    )  # fmt: skip


async def _no_sleep(seconds: float) -> None:
    return None


def call(kind: str, client: Any, method: str, *args: Any) -> Any:
    if kind == "sync":
        with client:
            return getattr(client, method)(*args)

    async def run() -> Any:
        async with client:
            return await getattr(client, method)(*args)

    return asyncio.run(run())


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("task_id", HOSTILE_IDS, ids=lambda t: ascii(t)[:20])
def test_a_submit_answered_with_an_id_that_is_not_a_task_id_is_a_protocol_error(
    kind: str, task_id: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(200, json={"output": {"task_id": task_id, "task_status": "PENDING"}})
        return httpx.Response(200, json={"data": []})

    with pytest.raises(ProtocolError) as caught:
        call(kind, ids_client(kind, handler), "submit", "oss://d/v.mp4", "oss://d/a.wav")
    message = str(caught.value)
    assert "not a task id" in message and "may be billed" in message
    # Shown escaped and bounded, never raw.
    assert len(message) < 2000 and all(c.isprintable() for c in message)
    assert [r.method for r in seen] == ["GET", "POST"]  # the list before, the submit; no query
    assert all(task_id not in str(r.url) and "evil" not in str(r.url) for r in seen)


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_task_list_or_a_query_naming_bad_ids_is_refused(kind: str) -> None:
    def listing(request: httpx.Request) -> httpx.Response:
        data = [{"task_id": "a8532587-fa8c-4ef8-82be-0c46b17950d1"}, {"task_id": "../../x/evil"}]
        return httpx.Response(200, json={"data": data})

    with pytest.raises(ProtocolError, match="task list"):
        call(kind, ids_client(kind, listing), "list")
    # An untrusted list adopts no lost submit: as if there were no list.
    assert call(kind, ids_client(kind, listing), "recent_task_ids") is None

    def other(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"output": {"task_id": "../../x/evil", "task_status": "SUCCEEDED"}})

    with pytest.raises(ProtocolError, match="answered about"):
        call(kind, ids_client(kind, other), "get", "t1")

    asked: list[httpx.Request] = []

    def never(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json={})

    for bad in ("../x", "a/b", "%2e%2e"):
        with pytest.raises(ProtocolError):
            call(kind, ids_client(kind, never), "get", bad)
    assert asked == []


@pytest.mark.parametrize("kind", CLIENTS)
def test_answers_of_the_wrong_shape_are_read_as_nothing_never_as_a_crash(kind: str, tmp_path: Path) -> None:
    def shapeless(request: httpx.Request) -> httpx.Response:
        body = {"output": ["t1"], "usage": "a lot", "request_id": {"x": 1}}
        return httpx.Response(200, json=body)

    task = call(kind, ids_client(kind, shapeless), "get", "t1")
    assert task.task_id == "t1" and task.status == "" and task.usage is None and task.request_id is None

    def odd_fields(request: httpx.Request) -> httpx.Response:
        output = {"task_id": "t1", "task_status": "SUCCEEDED", "video_url": {"href": "x"}, "code": [1]}
        return httpx.Response(200, json={"output": output, "usage": {"fps": "nan", "size": ["1080"]}})

    task = call(kind, ids_client(kind, odd_fields), "get", "t1")
    assert task.video_url is None and task.code is None and task.usage is not None
    assert task.usage.fps is None and task.usage.size is None

    def huge_numbers(request: httpx.Request) -> httpx.Response:
        # float() of a 400-digit integer raises OverflowError, not ValueError.
        output = b'{"task_id": "t1", "task_status": "SUCCEEDED"}'
        usage = b'{"video_duration": ' + b"9" * 400 + b', "fps": 1e999}'
        return httpx.Response(200, content=b'{"output": ' + output + b', "usage": ' + usage + b"}")

    task = call(kind, ids_client(kind, huge_numbers), "get", "t1")
    assert task.usage is not None and task.usage.video_duration is None and task.usage.fps is None

    def nested(request: httpx.Request) -> httpx.Response:  # built to crash a JSON parser
        return httpx.Response(200, content=b"[" * 200_000)

    with pytest.raises(ServerError, match="not JSON"):
        call(kind, ids_client(kind, nested), "get", "t1")

    def no_url_for_a_host(request: httpx.Request) -> httpx.Response:
        policy = {
            "policy": "p", "signature": "s", "upload_dir": "d", "upload_host": "http://a\x00b/",
            "expire_in_seconds": 300, "max_file_size_mb": 100, "oss_access_key_id": "id",
        }  # fmt: skip
        return httpx.Response(200, json={"data": policy})

    voice = tmp_path / "voice.wav"
    voice.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(UploadError, match="not a URL"):
        call(kind, ids_client(kind, no_url_for_a_host), "upload", voice)


def cli_env(base_url: str, journal: Path) -> dict[str, str]:
    return {**os.environ, "DASHSCOPE_API_KEY": KEY, "DASHSCOPE_HTTP_BASE_URL": base_url,
            "RETALK_JOURNAL": str(journal)}  # fmt: skip


def retalk(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "retalk", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert KEY not in done.stdout + done.stderr
    return done


def said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stdout + done.stderr).split())


@pytest.mark.parametrize("task_id", ["../../x/evil", "a/b", "%2e%2e", "f" * 10240], ids=lambda t: t[:12])
def test_retalk_submit_answered_with_a_path_for_a_task_id_writes_nothing_and_keeps_the_job(
    tmp_path: Path, task_id: str
) -> None:
    """No -o: the result would be named after the task id. The id is refused the moment the
    answer comes, before it is stored, used in a path or sent in a URL; the job (the submit
    reached the service and may be billed) is kept, shown, and never sent again by itself."""
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    journal_file = tmp_path / "j.sqlite"
    faults = Faults(task_seconds=0.1, submit_interval_s=0, submit_task_id=task_id)
    with Emulator(tmp_path / "service", api_key=KEY, faults=faults) as emulator:
        env = cli_env(emulator.base_url, journal_file)
        sent = retalk(work, env, "submit", VIDEO, VOICE)
        assert sent.returncode == 3, sent.stderr
        assert "not a task id" in said(sent) and "retalk list" in said(sent), said(sent)
        # Nothing written anywhere but the journal and the service's own folder.
        assert leftovers(work) == [] and leftovers(tmp_path / "work") == ["here"]
        assert not (tmp_path / "x").exists() and not list(tmp_path.rglob("*evil*"))
        # The id never went into a URL.
        assert not [p for _, p, _ in emulator.requests if p.startswith("/api/v1/tasks/")]
        assert all(task_id not in p for _, p, _ in emulator.requests)
        with Journal(journal_file) as journal:
            (job,) = journal.jobs()
        assert job.state == "protocol-error" and job.task_id is None
        assert job.error is not None and "not a task id" in job.error and "(request " in job.error

        shown = retalk(work, env, "jobs")
        assert shown.returncode == 0 and "protocol-error" in said(shown) and "not a task id" in said(shown)
        assert "\x1b" not in shown.stdout
        assert retalk(work, env, "resume").returncode == 0  # nothing for resume to send
        again = retalk(work, env, "submit", VIDEO, VOICE)
        assert again.returncode == 2 and "--force" in said(again) and "protocol-error" in said(again)
        assert emulator.submissions == 1


def test_task_ids_from_the_command_line_and_from_a_tampered_journal_are_checked(tmp_path: Path) -> None:
    journal_file = tmp_path / "j.sqlite"
    with Emulator(tmp_path / "service", api_key=KEY, faults=Faults(task_seconds=0.1)) as emulator:
        env = cli_env(emulator.base_url, journal_file)
        for command in ("status", "wait", "cancel"):
            refused = retalk(tmp_path, env, command, "../../x/evil")
            assert refused.returncode == 2 and "is not a task id" in said(refused), said(refused)
        refused = retalk(tmp_path, env, "download", "a/b", "-o", str(tmp_path / "r.mp4"))
        assert refused.returncode == 2 and "is not a task id" in said(refused)
        # A journal row whose task id was changed by hand (or by anything that can write it).
        with Journal(journal_file) as journal:
            job = journal.start({"video": VIDEO, "audio": VOICE}, {}, None, base_url=emulator.base_url)
            journal.update(job.id, state="submitted", task_id="../../x/evil", owner=None)
        resumed = retalk(tmp_path, env, "resume")
        assert resumed.returncode == 1 and f"job {job.id} in the journal" in said(resumed), said(resumed)
        assert not [p for _, p, _ in emulator.requests if p.startswith("/api/v1/tasks")]
        assert not (tmp_path.parent / "x").exists() and not list(tmp_path.rglob("*evil*"))


# --------------------------------------------------------------------------- 2. API answers
@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("shape", ["huge", "huge-stated", "packed"])
def test_an_api_answer_past_the_cap_is_refused_with_memory_bounded_by_it(
    hostile: str, kind: str, shape: str
) -> None:
    """A 30 MiB answer (as it comes, with its length stated, or gzip-packed into 30 KB) to
    a task query, with the cap at 64 KiB: refused, and memory stays near the cap."""
    cap = 64 << 10
    peak, raised = peak_memory(lambda: query(kind, f"{hostile}/{shape}/api/v1", "t1", cap))
    assert isinstance(raised, ProtocolError), raised
    assert f"larger than {cap} bytes" in str(raised)
    assert peak < 8 * MIB, peak  # the answer is 30 MiB


def test_retalk_status_refuses_an_answer_past_the_default_cap(hostile: str, tmp_path: Path) -> None:
    done = retalk(tmp_path, cli_env(f"{hostile}/huge/api/v1", tmp_path / "j.sqlite"), "status", "t1")
    assert done.returncode == 3, done.stderr
    assert f"larger than {1 << 20} bytes" in said(done), said(done)


# --------------------------------------------------------------------------- 3. results
@pytest.mark.parametrize("kind", CLIENTS)
def test_a_result_that_does_not_end_stops_at_the_cap_and_leaves_nothing(
    hostile: str, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "out.mp4"
    policy = DownloadPolicy(max_bytes=MIB)
    with pytest.raises(DownloadError, match=r"larger than the 1 MiB a result can be .* received"):
        fetch(kind, f"{hostile}/endless/r.mp4", out, policy)
    assert leftovers(tmp_path) == []  # no result, no .part: nothing to resume from a bogus body
    with pytest.raises(DownloadError, match=r"larger than the 1 MiB .* stated"):
        fetch(kind, f"{hostile}/claims/r.mp4", out, policy)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_gzip_bomb_for_a_result_is_refused(hostile: str, tmp_path: Path, kind: str) -> None:
    with pytest.raises(DownloadError, match="gzip-encoded"):
        fetch(kind, f"{hostile}/bomb/r.mp4", tmp_path / "out.mp4")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(
    ("path", "words"),
    [("trickling", "stalled: "), ("silent", "stalled: no byte for 0.5 s")],
    ids=["a byte every 0.1 s", "no byte at all"],
)
def test_a_stalled_result_is_given_up_after_the_stall_timeout(
    hostile: str, tmp_path: Path, kind: str, path: str, words: str
) -> None:
    policy = DownloadPolicy(stall_s=0.5, stall_bytes=1024)
    began = time.monotonic()
    with pytest.raises(DownloadError, match="kept failing") as caught:
        fetch(kind, f"{hostile}/{path}/r.mp4", tmp_path / "out.mp4", policy)
    assert time.monotonic() - began < 4.0  # two tries of half a second, not 2 x 6 s
    assert words in str(caught.value)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_result_slower_than_the_deadline_is_given_up_at_the_deadline(
    hostile: str, tmp_path: Path, kind: str
) -> None:
    policy = DownloadPolicy(deadline_s=1.0, stall_s=0.5, stall_bytes=1024)
    began = time.monotonic()
    with pytest.raises(DownloadError, match="took longer than its 1 s"):
        fetch(kind, f"{hostile}/slow/r.mp4", tmp_path / "out.mp4", policy)
    assert time.monotonic() - began < 3.0
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", CLIENTS)
def test_redirects_are_followed_within_a_bound_and_a_loop_is_a_download_error(
    hostile: str, tmp_path: Path, kind: str
) -> None:
    out = fetch(kind, f"{hostile}/hop/r.mp4", tmp_path / "out.mp4")
    assert out.read_bytes() == GOOD_RESULT
    with pytest.raises(DownloadError, match="redirected more than 5 times"):
        fetch(kind, f"{hostile}/loop/r.mp4", tmp_path / "again.mp4")
    assert leftovers(tmp_path) == ["out.mp4"]


def test_retalk_download_of_a_redirect_loop_is_a_network_failure(hostile: str, tmp_path: Path) -> None:
    env = cli_env("http://127.0.0.1:9/api/v1", tmp_path / "j.sqlite")
    done = retalk(tmp_path, env, "download", f"{hostile}/loop/r.mp4", "-o", str(tmp_path / "out.mp4"))
    assert done.returncode == 3, done.stderr  # before: 2, "internal error ... a bug in retalk"
    assert "redirected more than 5 times" in said(done)
    stalled = retalk(
        tmp_path, env, "download", f"{hostile}/trickling/r.mp4", "-o", str(tmp_path / "out.mp4"),
        "--stall-timeout", "0.5",
    )  # fmt: skip
    assert stalled.returncode == 3 and "stalled" in said(stalled), said(stalled)
    capped = retalk(
        tmp_path, env, "download", f"{hostile}/endless/r.mp4", "-o", str(tmp_path / "out.mp4"),
        "--max-result-size", "1",
    )  # fmt: skip
    assert capped.returncode == 3 and "--max-result-size" in said(capped), said(capped)
    assert leftovers(tmp_path) == []  # the journal is never opened by a download


# --------------------------------------------------------------------------- 4. parts left by a kill
def test_a_part_left_by_a_killed_download_is_removed_and_one_in_use_is_left_alone(
    hostile: str, tmp_path: Path
) -> None:
    orphan = tmp_path / ".out.mp4.abcd1234.part"  # as a kill -9 leaves it: nobody holds it
    orphan.write_bytes(b"half a result")
    held = tmp_path / ".out.mp4.efgh5678.part"  # another download of the same name, running
    held.write_bytes(b"")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         "f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True)\n"
         "time.sleep(60)", str(held)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = fetch("sync", f"{hostile}/good/r.mp4", tmp_path / "out.mp4")
    finally:
        holder.kill()
        holder.wait(10)
    assert out.read_bytes() == GOOD_RESULT
    assert leftovers(tmp_path) == [held.name, "out.mp4"]
