"""The client's promises, checked on httpx's mock transport (the emulator tests check the
same over real HTTP): retries that back off and honour Retry-After, a submit that is never
sent twice blindly, the key kept to the API host and out of every message."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from retalk import (
    Client,
    ConfigError,
    DownloadError,
    InputError,
    Quotas,
    RetryPolicy,
    ServerError,
    SubmitUncertain,
    TaskFailed,
    TaskTimeout,
    ThrottledError,
    TransportError,
)

KEY = "sk-test-0123456789abcdef"
BASE = "https://dashscope.example.com/api/v1"
Handler = Callable[[httpx.Request], httpx.Response]


def client_with(handler: Handler, sleeps: list[float] | None = None, attempts: int = 4) -> Client:
    return Client(
        KEY,
        base_url=BASE,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(attempts=attempts, base_s=0.5, cap_s=4.0),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        seed=1,
    )


class CutOff(httpx.SyncByteStream):
    """A result body whose connection is reset after its first ``sent`` bytes."""

    def __init__(self, payload: bytes, sent: int) -> None:
        self._payload, self._sent = payload, sent

    def __iter__(self) -> Iterator[bytes]:
        yield self._payload[: self._sent]
        raise httpx.ReadError("connection reset")


def task_body(task_id: str = "t1", status: str = "PENDING", **output: object) -> dict[str, object]:
    return {"request_id": "r", "output": {"task_id": task_id, "task_status": status, **output}}


def test_the_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="DASHSCOPE_API_KEY"):
        Client()
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:8999/api/v1")
    with Client() as client:
        assert client.base_url == "http://127.0.0.1:8999/api/v1"


@pytest.mark.parametrize(
    "url", ["http://dashscope.aliyuncs.com/api/v1", "ftp://x/y", "http://10.0.0.5/api/v1"]
)
def test_plain_http_is_refused_except_to_this_machine(url: str) -> None:
    with pytest.raises(ConfigError, match="https"):
        Client(KEY, base_url=url)


def test_throttling_is_retried_honouring_retry_after() -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                json={"code": "Throttling.RateQuota", "message": "slow down"},
                headers={"Retry-After": "3"},
            ),
            httpx.Response(503, json={"code": "ModelUnavailable", "message": "busy"}),
            httpx.Response(200, json=task_body(status="RUNNING")),
        ]
    )
    sleeps: list[float] = []
    task = client_with(lambda request: next(answers), sleeps).get("t1")
    assert task.status == "RUNNING"
    assert len(sleeps) == 2 and sleeps[0] >= 3.0 and 0 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("seed", range(12))
def test_a_throttled_submit_comes_back_no_sooner_than_the_submit_quota_window(seed: int) -> None:
    # The service takes about one submission per second: a retry within that second is
    # refused again. Before, full jitter from 0 brought it back within 0.1 s at times.
    answers = iter(
        [
            httpx.Response(429, json={"code": "Throttling.RateQuota", "message": "slow down"}),
            httpx.Response(200, json=task_body("t9")),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"data": []})
        return next(answers)

    sleeps: list[float] = []
    client = Client(
        KEY,
        base_url=BASE,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(attempts=3, base_s=0.5, cap_s=4.0),
        sleep=sleeps.append,
        seed=seed,
    )
    assert client.submit("oss://d/a.mp4", "oss://d/b.wav").task_id == "t9"
    # The window, then jitter on top of it (never from 0), at most the backoff's first step.
    assert 1.0 <= sleeps[0] <= 1.0 + Quotas().margin_s + 0.5


def test_an_async_batch_stays_inside_the_documented_quotas_as_a_whole() -> None:
    # Four jobs at once, each submitting and then asking for its task ten times at once:
    # one limiter paces every request of the client. Before, all of them went at once.
    # Time is virtual (the limiter's clock stands still, the client's sleep returns at
    # once), so the test sees when each request would go, whatever the machine's load.
    import asyncio
    from itertools import pairwise

    from retalk import AsyncClient, Quotas, RateLimiter

    start = 100.0
    wakes: dict[asyncio.Task[Any] | None, float] = {}
    seen: list[tuple[str, float]] = []

    async def sleep(seconds: float) -> None:
        wakes[asyncio.current_task()] = start + seconds

    async def handler(request: httpx.Request) -> httpx.Response:
        # Sent when its coroutine woke from the client's last pause (at once if none).
        seen.append((request.method, wakes.pop(asyncio.current_task(), start)))
        if request.method == "POST":
            return httpx.Response(200, json=task_body(f"t{len(seen)}"))
        if request.url.path.endswith("/tasks"):
            return httpx.Response(200, json={"data": []})
        return httpx.Response(200, json=task_body(request.url.path.rsplit("/", 1)[-1], "RUNNING"))

    async def job(client: AsyncClient) -> None:
        task = await client.submit("oss://d/a.mp4", "oss://d/b.wav")
        await asyncio.gather(*(client.get(task.task_id) for _ in range(10)))

    quotas = Quotas()
    limiter = RateLimiter(quotas, clock=lambda: start)

    async def batch() -> None:
        async with AsyncClient(
            KEY, base_url=BASE, transport=httpx.MockTransport(handler), sleep=sleep, limiter=limiter
        ) as client:
            await asyncio.gather(*(job(client) for _ in range(4)))

    asyncio.run(batch())
    submits = sorted(t for method, t in seen if method == "POST")
    queries = sorted(t for method, t in seen if method == "GET")
    assert len(submits) == 4 and len(queries) == 4 + 40  # the task list before each submit
    gaps = [later - earlier for earlier, later in pairwise(submits)]
    assert min(gaps) >= 1 / quotas.submits_per_s, gaps
    # No second holds more queries than the quota: the 21st after any query is a second on.
    limit = int(quotas.queries_per_s)
    spans = [queries[i + limit] - queries[i] for i in range(len(queries) - limit)]
    assert min(spans) >= 1.0, spans


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_both_clients_take_the_service_clock_and_list_a_time_window(kind: str) -> None:
    # One core decides for both: the async client once had neither the service's clock
    # (its task times are on that clock) nor the list's time window.
    import asyncio
    import email.utils
    import time

    from retalk import AsyncClient

    seen: list[httpx.Request] = []
    ahead = email.utils.formatdate(time.time() + 3600, usegmt=True)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        listed = {"data": [{"task_id": "t1", "task_status": "SUCCEEDED"}]}
        return httpx.Response(200, json=listed, headers={"Date": ahead})

    window = {"start_time": "20260101000000", "end_time": "20260102000000"}
    transport = httpx.MockTransport(handler)
    if kind == "sync":
        with Client(KEY, base_url=BASE, transport=transport) as client:
            tasks = client.list(**window)
            offset = client.clock_offset
    else:

        async def run() -> tuple[list[Any], float | None]:
            async with AsyncClient(KEY, base_url=BASE, transport=transport) as client:
                return await client.list(**window), client.clock_offset

        tasks, offset = asyncio.run(run())
    assert [task.task_id for task in tasks] == ["t1"]
    assert {name: seen[0].url.params[name] for name in window} == window
    assert offset == pytest.approx(3600.0, abs=5.0)


def test_one_limiter_shared_by_threads_gives_each_submit_its_own_second() -> None:
    import threading

    from retalk import Quotas, RateLimiter

    now = [100.0]
    limiter = RateLimiter(Quotas(margin_s=0.0), clock=lambda: now[0])
    slots: list[float] = []
    lock = threading.Lock()

    def submit() -> None:
        wait = limiter.reserve("submit")
        with lock:
            slots.append(now[0] + wait)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(slots) == [100.0 + i for i in range(8)]
    # Queries: twenty in any second, the twenty-first a second after the first.
    assert [limiter.reserve("query") for _ in range(21)] == [0.0] * 20 + [1.0]


def test_retries_give_up_with_the_service_error() -> None:
    sleeps: list[float] = []
    client = client_with(
        lambda r: httpx.Response(500, json={"code": "InternalError", "message": "x", "request_id": "q"}),
        sleeps,
    )
    with pytest.raises(ServerError) as caught:
        client.get("t1")
    assert caught.value.code == "InternalError" and caught.value.request_id == "q"
    assert len(sleeps) == 3  # four attempts
    assert all(s <= 4.0 for s in sleeps)


def test_input_errors_are_not_retried_and_map_to_preflight_findings() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path.endswith("/tasks"):
            return httpx.Response(200, json={"data": []})
        return httpx.Response(400, json={"code": "InvalidFile.FPS", "message": "fps 10", "request_id": "q"})

    with pytest.raises(InputError) as caught:
        client_with(handler).submit("https://x/v.mp4", "https://x/a.wav")
    assert [r.method for r in calls].count("POST") == 1
    finding = caught.value.finding
    assert finding is not None and finding.code == "InvalidFile.FPS" and finding.severity.value == "error"


def unanswered_submits(listed_later: list[dict[str, str]], posts: list[httpx.Request]) -> Handler:
    """A service that takes each submit (kept in ``posts``) but whose answer never comes
    (the read times out); its task list is empty when first read and shows ``listed_later``
    from then on, and each task asked about is running."""
    listed = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal listed
        if request.method == "POST":
            posts.append(request)
            raise httpx.ReadTimeout("no answer", request=request)
        if request.url.path.endswith("/tasks"):
            listed += 1
            return httpx.Response(200, json={"data": [] if listed == 1 else listed_later})
        return httpx.Response(200, json=task_body(request.url.path.rsplit("/", 1)[-1], "RUNNING"))

    return handler


def test_a_submit_that_times_out_after_sending_adopts_the_task_it_created() -> None:
    posts: list[httpx.Request] = []
    handler = unanswered_submits([{"task_id": "new", "task_status": "PENDING"}], posts)
    task = client_with(handler).submit("oss://dir/v.mp4", "oss://dir/a.wav")
    assert task.task_id == "new" and len(posts) == 1


def submits_answered(
    answers: list[httpx.Response | type[httpx.TransportError]], posts: list[httpx.Request]
) -> Handler:
    """A service with no tasks listed that answers each submit (kept in ``posts``) with the
    next of ``answers``: a response, or that error of the connection."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(request)
            answer = answers[len(posts) - 1]
            if isinstance(answer, httpx.Response):
                return answer
            raise answer("refused", request=request)
        return httpx.Response(200, json={"data": []})

    return handler


def test_a_submit_that_failed_ambiguously_with_no_new_task_is_reported_not_sent_again() -> None:
    posts: list[httpx.Request] = []
    handler = submits_answered([httpx.Response(502, json={"code": "BadGateway", "message": "?"})], posts)
    with pytest.raises(SubmitUncertain, match="not sent again"):
        client_with(handler).submit("oss://dir/v.mp4", "oss://dir/a.wav")
    assert len(posts) == 1


def test_two_new_tasks_after_an_ambiguous_submit_are_not_guessed_between() -> None:
    posts: list[httpx.Request] = []
    handler = unanswered_submits([{"task_id": "a", "task_status": "PENDING"}, {"task_id": "b"}], posts)
    with pytest.raises(SubmitUncertain):
        client_with(handler).submit("oss://dir/v.mp4", "oss://dir/a.wav")
    assert len(posts) == 1  # not sent again: a second task would be paid for twice


def test_keys_that_no_header_can_carry_are_refused_without_being_shown() -> None:
    for bad in ("sk-abc\ndef-secret", "sk-clé-secret", "sk abc"):
        with pytest.raises(ConfigError) as caught:
            Client(bad, base_url=BASE)
        assert "secret" not in str(caught.value) and "abc" not in str(caught.value)


def test_a_refused_connection_is_safe_to_retry_even_for_a_submit() -> None:
    posts: list[httpx.Request] = []
    handler = submits_answered([httpx.ConnectError, httpx.Response(200, json=task_body("t9"))], posts)
    assert client_with(handler).submit("https://x/v.mp4", "https://x/a.wav").task_id == "t9"
    assert len(posts) == 2


def test_oss_urls_get_the_resolve_header_and_the_body_is_as_documented() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET":
            return httpx.Response(200, json={"data": []})
        return httpx.Response(200, json=task_body())

    client_with(handler).submit(
        "oss://d/v.mp4", "https://x/a.wav", "oss://d/f.jpg", video_extension=True, query_face_threshold=150
    )
    (post,) = [r for r in seen if r.method == "POST"]  # exactly one submit: one task, paid once
    assert post.headers["X-DashScope-OssResourceResolve"] == "enable"
    assert post.headers["X-DashScope-Async"] == "enable"
    assert post.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(post.content) == {
        "model": "videoretalk",
        "input": {
            "video_url": "oss://d/v.mp4",
            "audio_url": "https://x/a.wav",
            "ref_image_url": "oss://d/f.jpg",
        },
        "parameters": {"video_extension": True, "query_face_threshold": 150},
    }


def test_upload_sends_the_file_last_and_never_the_key_to_storage(tmp_path: Path) -> None:
    file = tmp_path / "my voice.wav"
    file.write_bytes(b"RIFF" + bytes(2000))
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "storage.example.com":
            return httpx.Response(200)
        policy = {
            "policy": "p", "signature": "s", "upload_dir": "dashscope-instant/abc", "upload_host": "https://storage.example.com",
            "expire_in_seconds": "300", "max_file_size_mb": "100", "oss_access_key_id": "id",
            "x_oss_object_acl": "private", "x_oss_forbid_overwrite": "true",
        }  # fmt: skip
        return httpx.Response(200, json={"request_id": "r", "data": policy})

    progress: list[int] = []
    url = client_with(handler).upload(file, on_progress=lambda done, total: progress.append(done))
    assert url.startswith("oss://dashscope-instant/abc/") and url.endswith("-my_voice.wav")
    storage = next(r for r in seen if r.url.host == "storage.example.com")
    assert "Authorization" not in storage.headers
    body = storage.read()
    assert body.index(b'name="key"') < body.index(b'name="file"')
    assert body.rstrip().endswith(b"--")  # nothing after the file but the closing boundary
    assert progress and progress[-1] == file.stat().st_size


def test_a_download_resumes_with_range_and_is_renamed_only_when_whole(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if "Range" in request.headers:
            start = int(request.headers["Range"].split("=")[1].rstrip("-"))
            return httpx.Response(
                206,
                content=payload[start:],
                headers={"Content-Range": f"bytes {start}-{len(payload) - 1}/{len(payload)}"},
            )
        return httpx.Response(
            200, stream=CutOff(payload, 100_000), headers={"Content-Length": str(len(payload))}
        )

    out = client_with(handler).download("https://results.example.com/x.mp4", tmp_path / "out.mp4")
    assert out.read_bytes() == payload
    assert calls[1].headers["Range"] == "bytes=100000-"
    assert all("Authorization" not in r.headers for r in calls)
    assert not list(tmp_path.glob(".*.part"))


def test_a_result_name_near_the_length_limit_in_bytes_still_gets_a_temporary_name(tmp_path: Path) -> None:
    # 83 three-byte characters: 253 bytes, a legal name, but 100 *characters* of it in the
    # temporary name would pass the file system's 255-byte limit.
    name = "\u20ac" * 83 + ".mp4"
    client = client_with(lambda r: httpx.Response(200, content=b"video"))
    out = client.download("https://results.example.com/x.mp4", tmp_path / name)
    assert out.name == name and out.read_bytes() == b"video"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_an_expired_result_url_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    client = client_with(lambda r: httpx.Response(403, text="<Error>Request has expired</Error>"))
    with pytest.raises(DownloadError, match="expired"):
        client.download("https://results.example.com/x.mp4", tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_wait_polls_until_final_treating_unknown_statuses_as_running() -> None:
    statuses = iter(["PENDING", "PRE-PROCESSING", "SOMETHING-NEW", "RUNNING", "SUCCEEDED"])
    sleeps: list[float] = []
    client = client_with(
        lambda r: httpx.Response(200, json=task_body("t", next(statuses), video_url="https://r/x.mp4")),
        sleeps,
    )
    seen: list[str] = []
    task = client.wait("t", on_status=lambda t, waited: seen.append(t.status))
    assert task.succeeded and seen[-1] == "SUCCEEDED" and len(seen) == 5
    assert 0.8 <= sleeps[0] <= 1.2 and all(s <= 6.0 for s in sleeps)


def test_wait_times_out_and_a_failed_task_raises_its_finding() -> None:
    client = client_with(lambda r: httpx.Response(200, json=task_body("t", "RUNNING")))
    with pytest.raises(TaskTimeout, match="still RUNNING"):
        client.wait("t", timeout=3.0)
    failed = client_with(
        lambda r: httpx.Response(
            200, json=task_body("t", "FAILED", code="InvalidFile.Content", message="no face")
        )
    ).wait("t")
    with pytest.raises(TaskFailed) as caught:
        failed.raise_for_status()
    assert caught.value.finding is not None and caught.value.finding.code == "InvalidFile.Content"


def test_the_key_is_in_no_error_message(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="retalk")

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"echo {request.headers['Authorization']}", request=request)

    with pytest.raises(TransportError, match="ConnectError") as caught:
        client_with(handler, attempts=2).get("t1")
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert KEY not in caplog.text
    throttled = client_with(
        lambda r: httpx.Response(429, json={"code": "Throttling", "message": KEY}), attempts=1
    )
    with pytest.raises(ThrottledError) as again:
        throttled.get("t1")
    assert KEY not in str(again.value)


def test_a_result_host_that_fails_then_ignores_range_still_gives_the_whole_file(tmp_path: Path) -> None:
    payload = bytes(range(200)) * 500
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503)
        if len(calls) == 2:
            return httpx.Response(
                200, stream=CutOff(payload, 30_000), headers={"Content-Length": str(len(payload))}
            )
        return httpx.Response(200, content=payload)  # Range ignored: the whole file again

    out = client_with(handler).download("https://results.example.com/x.mp4", tmp_path / "out.mp4")
    assert out.read_bytes() == payload and len(calls) == 3
    assert calls[2].headers["Range"] == "bytes=30000-" and calls[0].headers["Accept-Encoding"] == "identity"
    with pytest.raises(DownloadError, match="folder"):
        client_with(handler).download("https://results.example.com/x.mp4", tmp_path)
