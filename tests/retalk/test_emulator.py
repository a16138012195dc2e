"""The VideoRetalk emulator, driven over real HTTP on 127.0.0.1 with plain httpx."""

from __future__ import annotations

import doctest
import functools
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

import retalk.emulator
from retalk.emulator import Emulator, Faults
from tests.conftest import SAMPLE

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its finished task) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_emulator")

KEY = "sk-emulator-test-0123456789"
VIDEO = SAMPLE / "talking_head.mp4"  # 4 s, 720x720, 25 fps
AUDIO = SAMPLE / "voice.wav"  # 4 s
FACE = SAMPLE / "face.jpg"


# --------------------------------------------------------------------------- helpers
def quick(**changes: Any) -> Faults:
    """Faults for tests: no submission spacing, short tasks."""
    options: dict[str, Any] = {"submit_interval_s": 0.0, "task_seconds": 0.1}
    options.update(changes)
    return Faults(**options)


@dataclass
class Service:
    emulator: Emulator
    api: httpx.Client  # carries the key; only ever used against base_url

    def policy(self) -> dict[str, Any]:
        answer = self.api.get("/uploads", params={"action": "getPolicy", "model": "videoretalk"})
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        return data

    def upload(self, path: Path, name: str | None = None) -> str:
        policy = self.policy()
        key = f"{policy['upload_dir']}/{name or path.name}"
        answer = post_form(policy, key, path.read_bytes())
        assert answer.status_code == 200, answer.text
        assert answer.content == b""
        return f"oss://{key}"

    def submit(
        self, video: str, audio: str, ref: str | None = None, parameters: dict[str, Any] | None = None
    ) -> httpx.Response:
        inputs = {"video_url": video, "audio_url": audio}
        if ref is not None:
            inputs["ref_image_url"] = ref
        headers = {"X-DashScope-Async": "enable"}
        if any(url.startswith("oss://") for url in inputs.values()):
            headers["X-DashScope-OssResourceResolve"] = "enable"
        body = {"model": "videoretalk", "input": inputs, "parameters": parameters or {}}
        return self.api.post("/services/aigc/image2video/video-synthesis/", json=body, headers=headers)

    def start(self, video: str, audio: str, **kwargs: Any) -> str:
        answer = self.submit(video, audio, **kwargs)
        assert answer.status_code == 200, answer.text
        output = answer.json()["output"]
        assert output["task_status"] == "PENDING"
        task_id: str = output["task_id"]
        return task_id

    def task(self, task_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/tasks/{task_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def wait(
        self, task_id: str, until: Callable[[str], bool] | None = None, timeout: float = 20
    ) -> dict[str, Any]:
        done = until or (lambda status: status in ("SUCCEEDED", "FAILED", "CANCELED"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.task(task_id)
            if done(body["output"]["task_status"]):
                return body
            time.sleep(0.03)
        raise AssertionError(f"task {task_id} still {body['output']['task_status']} after {timeout} s")


def post_form(policy: dict[str, Any], key: str, data: bytes, *, file_last: bool = True) -> httpx.Response:
    """The temporary-storage POST, as the official SDK sends it (no API key)."""
    fields = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": key,
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
    }
    if file_last:
        # httpx writes the data fields first, then the files.
        return httpx.post(policy["upload_host"], data=fields, files={"file": ("f", data)})
    boundary = "testboundary"
    parts = [("file", data), *((k, v.encode()) for k, v in fields.items())]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in parts
    )
    body += f"--{boundary}--\r\n".encode()
    return httpx.post(
        policy["upload_host"],
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def no_auth_outside_api(emulator: Emulator) -> None:
    """The key reached only the API: never the storage host nor the result download."""
    for method, path, headers in emulator.requests:
        if path.startswith("/api/v1"):
            assert headers.get("authorization") in (None, "Bearer ***"), (method, path)
        else:
            assert "authorization" not in headers, (method, path)
        assert KEY not in repr(headers)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start an emulator (with the given fault options) and an httpx client for its API."""
    started: list[Service] = []

    def start(**faults: Any) -> Service:
        emulator = Emulator(tmp_path / f"root{len(started)}", api_key=KEY, faults=quick(**faults)).start()
        api = httpx.Client(base_url=emulator.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        started.append(Service(emulator, api))
        return started[-1]

    yield start
    for one in started:
        one.api.close()
        one.emulator.stop()


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, media: Any
) -> Iterator[tuple[Service, str, dict[str, Any]]]:
    """One emulator with one SUCCEEDED task: 4 s of video with 3 s of new voice and a face."""
    folder = tmp_path_factory.mktemp("finished")
    short_voice = media.write_audio(folder / "voice3.wav", duration=3.0, sample_rate=16000)
    with Emulator(folder / "root", api_key=KEY, faults=quick()) as emulator:
        api = httpx.Client(base_url=emulator.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        one = Service(emulator, api)
        task_id = one.start(one.upload(VIDEO), one.upload(short_voice), ref=one.upload(FACE))
        body = one.wait(task_id)
        yield one, task_id, body
        api.close()


# --------------------------------------------------------------------------- happy path
def test_upload_submit_wait_download(finished: tuple[Service, str, dict[str, Any]], tmp_path: Path) -> None:
    service, task_id, body = finished
    output = body["output"]
    assert output["task_status"] == "SUCCEEDED", output
    assert output["video_url"] == f"{service.emulator.origin}/results/{task_id}.mp4"
    for name in ("submit_time", "scheduled_time", "end_time"):
        time.strptime(output[name][:-4], "%Y-%m-%d %H:%M:%S")
    usage = body["usage"]
    assert usage["size"] == "720*720" and usage["fps"] == 25 and usage["video_ratio"] == "standard"
    assert usage["video_duration"] == pytest.approx(3.0, abs=0.15)  # the shorter input: the voice

    # The result URL is a signed storage URL in the real service: no key goes there.
    answer = httpx.get(output["video_url"])
    assert answer.status_code == 200
    assert int(answer.headers["content-length"]) == len(answer.content)
    result = tmp_path / "result.mp4"
    result.write_bytes(answer.content)
    with av.open(str(result)) as container:
        assert container.streams.video and container.streams.audio
        assert container.streams.audio[0].codec_context.name == "aac"
        assert (container.duration or 0) / 1e6 == pytest.approx(3.0, abs=0.15)
    no_auth_outside_api(service.emulator)


def test_the_packages_documented_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example a user reads first in ``retalk.emulator``'s docstring (the API docs)."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(VIDEO, "talk.mp4")
    shutil.copy(AUDIO, "voice.wav")
    examples = doctest.DocTestParser().get_examples(retalk.emulator.__doc__ or "")
    assert examples, "the docstring has no example"
    exec(compile("".join(example.source for example in examples), "retalk.emulator", "exec"), {})
    with av.open("out.mp4") as container:
        assert container.streams.video and container.streams.audio
        assert (container.duration or 0) / 1e6 == pytest.approx(4.0, abs=0.15)


def test_result_download_resumes_with_range(finished: tuple[Service, str, dict[str, Any]]) -> None:
    _, _, body = finished
    url = body["output"]["video_url"]
    whole = httpx.get(url).content
    rest = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    assert whole[:1000] + rest.content == whole
    assert httpx.get(url, headers={"Range": f"bytes={len(whole)}-"}).status_code == 416


def test_list_is_newest_first_and_filters(finished: tuple[Service, str, dict[str, Any]]) -> None:
    service, task_id, _ = finished
    second = service.start("oss://nowhere/a.mp4", "oss://nowhere/b.wav")
    service.wait(second)
    listing = service.api.get("/tasks", params={"page_no": 1, "page_size": 10}).json()
    assert [t["task_id"] for t in listing["data"]] == [second, task_id]
    assert listing["total"] == 2 and listing["page_no"] == 1 and listing["page_size"] == 10
    failed = service.api.get("/tasks", params={"status": "FAILED"}).json()
    assert [t["task_id"] for t in failed["data"]] == [second]
    page2 = service.api.get("/tasks", params={"page_no": 2, "page_size": 1}).json()
    assert [t["task_id"] for t in page2["data"]] == [task_id]
    future = service.api.get("/tasks", params={"start_time": "29990101000000"}).json()
    assert future["data"] == [] and future["total"] == 0


def test_video_extension_keeps_the_whole_video(
    service: Callable[..., Service], tmp_path: Path, media: Any
) -> None:
    one = service()
    short_voice = media.write_audio(tmp_path / "voice3.wav", duration=3.0, sample_rate=16000)
    task_id = one.start(one.upload(VIDEO), one.upload(short_voice), parameters={"video_extension": True})
    body = one.wait(task_id)
    assert body["output"]["task_status"] == "SUCCEEDED"
    assert body["usage"]["video_duration"] == pytest.approx(4.0, abs=0.15)


def test_inputs_by_http_url_are_fetched(service: Callable[..., Service]) -> None:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(SAMPLE))
    files = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=files.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        one = service()
        base = f"http://127.0.0.1:{files.server_address[1]}"
        body = one.wait(one.start(f"{base}/talking_head.mp4", f"{base}/voice.wav"))
        assert body["output"]["task_status"] == "SUCCEEDED", body
        assert body["usage"]["video_duration"] == pytest.approx(4.0, abs=0.15)
    finally:
        files.shutdown()
        files.server_close()
        thread.join()


# --------------------------------------------------------------------------- failed tasks
def test_a_10_fps_video_fails_with_the_preflight_code(
    service: Callable[..., Service], tmp_path: Path, media: Any
) -> None:
    one = service()
    slow = media.write_video(tmp_path / "ten.mp4", fps=10, duration=3.0)
    answer = one.api.get(f"/tasks/{one.start(one.upload(slow), one.upload(AUDIO))}")
    assert answer.status_code == 200  # a failed task is still a 200 answer
    body = one.wait(answer.json()["output"]["task_id"])
    output = body["output"]
    assert output["task_status"] == "FAILED"
    assert output["code"] == "InvalidFile.FPS"
    assert "10 fps" in output["message"]
    assert "usage" not in body and "video_url" not in output


@pytest.mark.parametrize(
    "video_url",
    ["oss://dashscope-instant/none/2026-01-01/missing.mp4", "http://127.0.0.1:9/missing.mp4"],
)
def test_an_unreachable_input_fails_the_task(service: Callable[..., Service], video_url: str) -> None:
    one = service()
    body = one.wait(one.start(video_url, one.upload(AUDIO)))
    assert body["output"]["task_status"] == "FAILED"
    assert body["output"]["code"] == "InvalidURL.ConnectionRefused"
    assert video_url in body["output"]["message"]


def test_injected_task_failure(service: Callable[..., Service]) -> None:
    one = service(fail_tasks=True)
    body = one.wait(one.start(one.upload(VIDEO), one.upload(AUDIO)))
    assert body["output"]["task_status"] == "FAILED"
    assert body["output"]["code"] == "InternalError.Algo"


def test_unknown_task_answers_unknown(service: Callable[..., Service]) -> None:
    answer = service().api.get("/tasks/no-such-task")
    assert answer.status_code == 200
    assert answer.json()["output"] == {"task_id": "no-such-task", "task_status": "UNKNOWN"}


def test_a_forgotten_task_answers_unknown_while_it_runs_on(service: Callable[..., Service]) -> None:
    # As the service may for a task it does not know yet or any more: the task is not gone.
    one = service()
    task_id = one.start(one.upload(VIDEO), one.upload(AUDIO))
    one.emulator.forget(task_id)
    assert one.task(task_id)["output"] == {"task_id": task_id, "task_status": "UNKNOWN"}
    time.sleep(0.5)
    one.emulator.forget(task_id, forgotten=False)
    assert one.wait(task_id)["output"]["task_status"] == "SUCCEEDED"


# --------------------------------------------------------------------------- the queue
def test_tasks_run_one_at_a_time_and_only_pending_ones_cancel(service: Callable[..., Service]) -> None:
    one = service(task_seconds=0.6)
    video, audio = one.upload(VIDEO), one.upload(AUDIO)
    first, second, third = (one.start(video, audio) for _ in range(3))
    one.wait(first, until=lambda status: status == "RUNNING")
    assert one.task(second)["output"]["task_status"] == "PENDING"

    canceled = one.api.post(f"/tasks/{third}/cancel")
    assert canceled.status_code == 200
    assert one.task(third)["output"]["task_status"] == "CANCELED"
    refused = one.api.post(f"/tasks/{first}/cancel")
    assert refused.status_code == 400
    assert refused.json()["code"] == "UnsupportedOperation"

    done_first, done_second = one.wait(first)["output"], one.wait(second)["output"]
    assert done_first["task_status"] == done_second["task_status"] == "SUCCEEDED"
    assert done_second["scheduled_time"] >= done_first["end_time"]
    assert one.task(third)["output"]["task_status"] == "CANCELED"
    assert one.emulator.submissions == 3


# --------------------------------------------------------------------------- request rules
def test_submit_rules(service: Callable[..., Service]) -> None:
    one = service()
    video, audio = one.upload(VIDEO), one.upload(AUDIO)
    url = "/services/aigc/image2video/video-synthesis"  # without the trailing slash, too
    body = {"model": "videoretalk", "input": {"video_url": video, "audio_url": audio}}
    resolve = {"X-DashScope-Async": "enable", "X-DashScope-OssResourceResolve": "enable"}

    def error(answer: httpx.Response) -> tuple[int, str]:
        assert set(answer.json()) == {"request_id", "code", "message"}
        return answer.status_code, answer.json()["code"]

    assert one.api.post(url, json=body, headers=resolve).status_code == 200
    no_async = one.api.post(url, json=body, headers={"X-DashScope-OssResourceResolve": "enable"})
    assert error(no_async) == (400, "InvalidParameter")
    no_resolve = one.api.post(url, json=body, headers={"X-DashScope-Async": "enable"})
    assert error(no_resolve) == (400, "InvalidParameter")
    assert "X-DashScope-OssResourceResolve" in no_resolve.json()["message"]
    wrong_model = one.api.post(url, json={**body, "model": "wanx"}, headers=resolve)
    assert error(wrong_model) == (400, "InvalidParameter")
    loose = one.api.post(url, json={**body, "parameters": {"query_face_threshold": 100}}, headers=resolve)
    assert error(loose) == (400, "InvalidParameter")
    no_audio = one.api.post(url, json={**body, "input": {"video_url": video}}, headers=resolve)
    assert error(no_audio) == (400, "InvalidParameter")
    assert no_audio.json()["message"] == "Field required: input.audio_url"

    wrong_key = httpx.post(
        one.emulator.base_url + url, json=body, headers={**resolve, "Authorization": "Bearer x"}
    )
    assert error(wrong_key) == (401, "InvalidApiKey")
    no_key = httpx.get(one.emulator.base_url + "/tasks/abc")
    assert error(no_key) == (401, "InvalidApiKey")
    assert one.emulator.submissions == 1
    no_auth_outside_api(one.emulator)


def test_about_one_submission_per_second(service: Callable[..., Service]) -> None:
    one = service(submit_interval_s=1.0)
    video, audio = one.upload(VIDEO), one.upload(AUDIO)
    assert one.submit(video, audio).status_code == 200
    again = one.submit(video, audio)
    assert again.status_code == 429
    assert again.json()["code"] == "Throttling.RateQuota"
    assert again.headers["retry-after"] == "1"
    assert one.emulator.submissions == 1


def test_storage_rules(service: Callable[..., Service]) -> None:
    one = service()
    policy = one.policy()
    assert policy["upload_host"] == one.emulator.origin + "/oss"
    assert policy["upload_dir"].startswith("dashscope-instant/")
    assert policy["expire_in_seconds"] == 300 and policy["max_file_size_mb"] == 100
    key = f"{policy['upload_dir']}/a.wav"

    misplaced = post_form(policy, key, b"data", file_last=False)
    assert (misplaced.status_code, misplaced.json()["code"]) == (400, "InvalidArgument")
    assert post_form(policy, key, b"data").status_code == 200
    again = post_form(policy, key, b"other")
    assert (again.status_code, again.json()["code"]) == (409, "FileAlreadyExists")
    outside = post_form(policy, "dashscope-instant/elsewhere/b.wav", b"data")
    assert outside.status_code == 403
    forged = post_form({**policy, "signature": "forged"}, f"{policy['upload_dir']}/c.wav", b"data")
    assert forged.status_code == 403
    no_auth_outside_api(one.emulator)


class _Unsized:
    """A file-like with no length to find: httpx then sends the form chunked."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, size: int = -1) -> bytes:
        chunk, self._data = (self._data, b"") if size < 0 else (self._data[:size], self._data[size:])
        return chunk


def test_a_chunked_upload_is_stored_whole(service: Callable[..., Service]) -> None:
    one = service()
    policy = one.policy()
    key = f"{policy['upload_dir']}/voice.wav"
    fields = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": key,
        "success_action_status": "200",
    }
    data = AUDIO.read_bytes()
    files = {"file": ("voice.wav", _Unsized(data), "application/octet-stream")}
    answer = httpx.post(policy["upload_host"], data=fields, files=files)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    assert one.emulator.requests[-1][2].get("transfer-encoding") == "chunked"
    assert (one.emulator.root / "oss" / key).read_bytes() == data


def test_an_expired_policy_is_refused(service: Callable[..., Service]) -> None:
    one = service(policy_ttl_s=0)
    policy = one.policy()
    assert policy["expire_in_seconds"] == 0
    answer = post_form(policy, f"{policy['upload_dir']}/voice.wav", AUDIO.read_bytes())
    assert answer.status_code == 403
    assert answer.json()["code"] == "AccessDenied"
    assert "Policy expired" in answer.json()["message"]


# --------------------------------------------------------------------------- faults
def test_throttling_fault(service: Callable[..., Service]) -> None:
    one = service(throttle_every=2)
    assert one.api.get("/tasks/a").status_code == 200
    throttled = one.api.get("/tasks/a")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "Throttling.RateQuota"
    assert throttled.headers["retry-after"] == "1"
    assert one.api.get("/tasks/a").status_code == 200


def test_server_error_fault(service: Callable[..., Service]) -> None:
    one = service(error_every=2)
    assert one.api.get("/tasks/a").status_code == 200
    failed = one.api.get("/tasks/a")
    assert (failed.status_code, failed.json()["code"]) == (500, "InternalError")


def test_dropped_connection_fault(service: Callable[..., Service]) -> None:
    one = service(drop_every=2)
    assert one.api.get("/tasks/a").status_code == 200
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        one.api.get("/tasks/a")
    assert one.api.get("/tasks/a").status_code == 200


def test_slow_fault_and_faults_spare_storage(service: Callable[..., Service]) -> None:
    # A slow fault of 6 s: a storage POST takes a few ms here (bench/emulator_timing.py
    # measures it), so even a heavily loaded machine answers it well within the fault, and
    # the bound below tells "not slowed" from "slowed" without timing the machine itself.
    one = service(slow_s=6.0, error_every=1)
    began = time.monotonic()
    assert one.api.get("/tasks/a").status_code == 500
    assert time.monotonic() - began >= 6.0
    # Faults are for the API: the storage host answers normally (the policy is made by hand
    # because every API request fails here).
    one.emulator.faults.error_every, one.emulator.faults.slow_s = 0, 0.0
    policy = one.policy()
    one.emulator.faults.error_every, one.emulator.faults.slow_s = 1, 6.0
    began = time.monotonic()
    assert post_form(policy, f"{policy['upload_dir']}/a.wav", b"data").status_code == 200
    assert time.monotonic() - began < 6.0


def test_stop_is_prompt_with_a_task_running(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path, faults=quick(task_seconds=30)).start()
    api = httpx.Client(base_url=emulator.base_url, headers={"Authorization": "Bearer any"})
    one = Service(emulator, api)
    task_id = one.start(one.upload(VIDEO), one.upload(AUDIO))
    one.wait(task_id, until=lambda status: status == "RUNNING")
    began = time.monotonic()
    emulator.stop()
    api.close()
    # Not the 30 s task: a generous bound (bench/emulator_timing.py measures the real figure).
    assert time.monotonic() - began < 20
