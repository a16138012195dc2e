"""What a download decides, apart from the requests it sends: the result's bounds as it
arrives (size, deadline, pace), what a result host's answer means. Used by the core's
download steps (the temporary file the result is written to is preflight's ``AtomicFile``)."""

from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path
from typing import IO

import httpx

from .._exceptions import DownloadError, ResultExpired
from .policies import DownloadPolicy, TransferProgress
from .replies import shown


class Retryable(Exception):
    """A result host's 429 or 5xx, or a stalled download: worth another try."""


class Meter:
    """A download's bounds as it goes: its size, its deadline, its pace."""

    def __init__(self, policy: DownloadPolicy) -> None:
        self.policy = policy
        self._started = time.monotonic()
        self._window = self._started
        self._window_bytes = 0

    def _left(self) -> float:
        return self.policy.deadline_s - (time.monotonic() - self._started)

    def _check_deadline(self, have: int, total: int | None) -> None:
        if self._left() <= 0:
            of = f" of {total}" if total is not None else ""
            raise DownloadError(
                f"the download took longer than its {self.policy.deadline_s:g} s (--download-timeout) "
                f"and was given up at {have}{of} bytes"
            )

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """The request's timeouts: no read waits longer than the stall time, and nothing
        past the deadline."""
        left = max(0.001, self._left())

        def bounded(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx.Timeout(
            connect=bounded(base.connect),
            read=bounded(self.policy.stall_s),
            write=bounded(base.write),
            pool=bounded(base.pool),
        )

    def total(self, total: int | None) -> int | None:
        """The size the host states, refused before a byte when over the cap."""
        if total is not None and total > self.policy.max_bytes:
            raise DownloadError(_too_large(total, self.policy, "stated by the result host"))
        return total

    def begin(self, have: int) -> None:
        self._window, self._window_bytes = time.monotonic(), 0
        self._check_deadline(have, None)

    def feed(self, size: int, have: int, total: int | None) -> None:
        if have + size > self.policy.max_bytes:
            raise DownloadError(_too_large(have + size, self.policy, "received"))
        now = time.monotonic()
        self._window_bytes += size
        if now - self._window >= self.policy.stall_s:
            if self._window_bytes < self.policy.stall_bytes:
                raise Retryable(
                    f"stalled: {self._window_bytes} bytes in {now - self._window:.1f} s, under "
                    f"{self.policy.stall_bytes} bytes per {self.policy.stall_s:g} s (--stall-timeout)"
                )
            self._window, self._window_bytes = now, 0
        self._check_deadline(have + size, total)

    def pause(self, delay: float, have: int, total: int | None) -> float:
        """A retry's pause, never past the deadline (which ends the download instead)."""
        self._check_deadline(have, total)
        return min(delay, max(0.0, self._left()))


class Received:
    """The result's bytes so far, written to its open temporary file as they arrive (a
    dropped connection loses nothing), metered and reported."""

    def __init__(self, out: IO[bytes], meter: Meter, on_progress: TransferProgress | None) -> None:
        self.out, self.meter, self.on_progress = out, meter, on_progress
        self.have = 0
        self.total: int | None = None

    def start(self, response: httpx.Response) -> None:
        """Take up ``response``: from where we were when it resumes there, else from 0."""
        if self.have and (response.status_code != 206 or _range_start(response) != self.have):
            self.out.seek(0)
            self.out.truncate()
            self.have = 0  # the server sent it all again
        self.total = self.meter.total(_total_size(response, self.have, self.total))
        self.meter.begin(self.have)

    def feed(self, chunk: bytes) -> None:
        self.meter.feed(len(chunk), self.have, self.total)
        self.out.write(chunk)
        self.have += len(chunk)
        if self.on_progress is not None:
            self.on_progress(self.have, self.total)

    def whole(self) -> bool:
        return self.total is None or self.have == self.total


def write_problem(target: Path, exc: OSError) -> DownloadError:
    """A result that could not be written here (a full disk, no permission) as a
    ``DownloadError`` naming the file and the cause."""
    name = errno.errorcode.get(exc.errno or 0)
    return DownloadError(
        f"cannot write the result to {target}: {exc.strerror or exc}" + (f" [{name}]" if name else "")
    )


def _too_large(size: int, policy: DownloadPolicy, how: str) -> str:
    return (
        f"the result is larger than the {policy.max_bytes / 2**20:.4g} MiB a result can be ({size} bytes "
        f"{how}); not downloaded further (--max-result-size raises the cap)"
    )


def too_many_redirects(url: str, policy: DownloadPolicy) -> str:
    return f"the result URL {shown(url)} redirected more than {policy.max_redirects} times (a loop?)"


def why(exc: BaseException, policy: DownloadPolicy | None = None) -> str:
    """Why a try failed, in a few words."""
    if isinstance(exc, Retryable):
        return str(exc)
    if isinstance(exc, httpx.ReadTimeout) and policy is not None:
        return f"stalled: no byte for {policy.stall_s:g} s (--stall-timeout)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def download_target(url: object, path: str | os.PathLike[str]) -> Path:
    """Where the result goes (a file name, not a folder), once its URL is one to fetch."""
    target = Path(path)
    if target.is_dir() or not target.name or target.name in (".", ".."):
        raise DownloadError(f"{path}: is a folder; give a file name for the result")
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise DownloadError(f"the result URL {shown(url)} is not an http(s) URL; nothing downloaded")
    return target


def judge_result(response: httpx.Response) -> None:
    """The result host's status and encoding, before a byte of the body is read."""
    status = response.status_code
    if status in (403, 404, 410):
        raise ResultExpired(
            f"the result URL answered {status}: it has expired (results are kept 24 h) or is wrong"
        )
    if status == 429 or status >= 500:
        raise Retryable(f"the result host answered {status}")
    if status >= 300:  # a redirect without a usable Location is no result either
        raise DownloadError(f"the result URL answered {status}")
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for the bytes as they are: a packed body can unpack to any size.
        raise DownloadError(
            f"the result host sent the result {shown(encoding, 40, bare=True)}-encoded although asked for it "
            "as it is; refused (a packed body can unpack to any size)"
        )


def _range_start(response: httpx.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _total_size(response: httpx.Response, have: int, known: int | None) -> int | None:
    """The full size: from Content-Range on a resumed answer, else Content-Length."""
    content_range = response.headers.get("Content-Range", "")
    match = re.match(r"bytes \d+-\d+/(\d+)", content_range)
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit():
        return int(length) + (have if response.status_code == 206 else 0)
    return known
