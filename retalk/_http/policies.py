"""The client's settings that are decisions, not I/O: where the service is, which key, how
to retry, poll and download, and how large an answer may be. Shared by ``Client`` and
``AsyncClient`` through the protocol core, so the two never differ in them."""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._exceptions import ConfigError

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
MODEL = "videoretalk"
SUBMIT_PATH = "/services/aigc/image2video/video-synthesis/"
#: A service clock further off ours than this (by its Date header) is not believed.
MAX_CLOCK_OFFSET_S = 86400.0
#: TransferProgress callback: (bytes done, bytes in all or None when unknown).
TransferProgress = Callable[[int, int | None], None]
#: API answers are a few KB (a page of 50 tasks about 25 KB): one past this is not an answer.
MAX_ANSWER_BYTES = 1 << 20
#: The storage host answers an upload with nothing, or an error of a few hundred bytes.
MAX_STORAGE_ANSWER_BYTES = 64 << 10
#: While ``wait`` rides out an outage, it says so this often (a log warning: on stderr
#: when logging is not set up).
OUTAGE_REPORT_S = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, honouring ``Retry-After``."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    #: A ``Retry-After`` longer than this is taken as this (a day-long pause helps nobody).
    max_retry_after_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random, floor: float = 0.0) -> float:
        """Full jitter; after a ``Retry-After``, or with a ``floor`` (a throttled call's
        quota window: sooner is refused again), the jitter comes on top of the longer of
        the two, so that clients told the same moment do not all come back at that moment."""
        backoff = rng.uniform(0, min(self.cap_s, self.base_s * 2**attempt))
        told = 0.0 if retry_after is None else min(retry_after, self.max_retry_after_s)
        return max(told, floor) + backoff


@dataclass(frozen=True)
class PollPolicy:
    """How ``wait`` polls: the SDK's 1, 1, 2, 2, 2, 4... s steps up to ``cap_s``, each
    jittered by a fifth so that many waiters do not query in step."""

    steps: tuple[float, ...] = (1, 1, 2, 2, 2, 4, 4, 4)
    cap_s: float = 5.0
    jitter: float = 0.2
    #: How long ``wait`` goes on polling a service it cannot reach (or that answers 5xx
    #: or 429 after every retry): the task runs on regardless, so an outage or a restart
    #: of the service is waited out, not taken for the task's failure.
    outage_s: float = 300.0

    def delays(self, rng: random.Random) -> Iterator[float]:
        index = 0
        while True:
            base = self.steps[index] if index < len(self.steps) else self.cap_s
            index += 1
            yield base * rng.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass(frozen=True)
class DownloadPolicy:
    """Bounds on fetching a result, whoever serves it."""

    #: The largest result taken (bytes). The largest input the service takes is 300 MiB for
    #: at most 120 s (20 Mbit/s), and a result is at most 120 s, re-encoded by the service:
    #: 2 GiB (143 Mbit/s for 120 s) is far above any real result, and bounds a disk filled
    #: by an endless body.
    max_bytes: int = 2 << 30
    #: The whole download, its retries and redirects included (s): a 2 GiB result at
    #: 5 Mbit/s still fits in an hour.
    deadline_s: float = 3600.0
    #: A download that gets fewer than ``stall_bytes`` in any ``stall_s`` (no byte at all,
    #: or a trickle) is stalled: tried again from where it was, within the deadline.
    stall_s: float = 30.0
    stall_bytes: int = 16 << 10
    #: Redirects followed to the result; their bodies are never read.
    max_redirects: int = 5


def resolve_key(api_key: str | None) -> str:
    key = (api_key if api_key is not None else os.environ.get("DASHSCOPE_API_KEY", "")).strip()
    if not key:
        raise ConfigError(
            "no API key: set DASHSCOPE_API_KEY to your DashScope key (or, to try it all offline "
            "without one, `prep-and-retalk --emulator`, or `retalk emulator`)"
        )
    # A header cannot carry anything else, and an HTTP library's complaint would quote it.
    if not all(33 <= ord(c) <= 126 for c in key):
        raise ConfigError("the API key has characters no key has (spaces, control or non-ASCII); check it")
    return key


def resolve_base_url(base_url: str | None) -> str:
    """The API base URL: https, or plain http only to this machine (the emulator)."""
    url = (base_url or os.environ.get("DASHSCOPE_HTTP_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url
    raise ConfigError(f"base URL {url!r}: must be https (plain http only to localhost)")


def is_local(url: str) -> bool:
    """``url`` is on this machine (an emulator), not a service."""
    host = urlsplit(url).hostname
    return host is not None and _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
