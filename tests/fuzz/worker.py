"""The fuzzer's worker: probes and checks the files it is sent, one at a time.

``python -m tests.fuzz.worker`` reads one JSON request per line on stdin and answers each
with one JSON line on the stdout it was started with (fd 1 itself then points at stderr,
so that nothing a C library prints can garble the answers). A request is
``{"path": ..., "mode": "fast" | "full" | "job", "simulate": null}``; the answer says
``"ok"`` with the findings' codes and messages, or ``"exception"`` with the traceback of whatever escaped
``probe``, ``check_file``/``check_paths`` or the renderers: each one a preflight bug.

It also watches for "masked" exceptions: a ``TypeError``, ``IndexError``,
``ZeroDivisionError``... raised in preflight's own code and caught there by a catch-all
(which turns it into a vague finding). Those are listed with where they were raised, so
that the run's summary shows them.

``simulate: "crash"`` or ``"hang"`` is the harness's self-test: the worker kills itself
(SIGSEGV) or sleeps before the file, as an FFmpeg crash or endless loop would.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

import preflight
from preflight import CheckOptions, CheckReport, LazyEngine, check_file, check_paths, guess_role, probe
from preflight._render.text import render_json, render_text

SEEDS = Path(__file__).resolve().parent / "seeds"
PREFLIGHT_DIR = os.path.dirname(os.path.abspath(preflight.__file__)) + os.sep
#: Exception types that mean a mistake in the code, not a strange file.
BUG_TYPES: tuple[type[BaseException], ...] = (
    TypeError,
    AttributeError,
    ZeroDivisionError,
    IndexError,
    KeyError,
    NameError,
    AssertionError,
    RecursionError,
    UnboundLocalError,
)
#: The partners of a mutant checked as a job (the other roles), unchanged.
PARTNERS = {"video": SEEDS / "video.mp4", "audio": SEEDS / "voice.wav", "ref": SEEDS / "face.jpg"}


class MaskedExceptions:
    """Records bug-type exceptions that pass from one of preflight's frames into another
    (sys.settrace, line events off, so only calls and exceptions cost anything). One caught
    where it was raised (``try: d[k] except KeyError``) is deliberate and not recorded."""

    def __init__(self) -> None:
        #: id -> (the exception, kept alive so that its id stays its own; frames it went through)
        self._seen: dict[int, tuple[BaseException, int]] = {}

    def __enter__(self) -> MaskedExceptions:
        self._seen.clear()
        threading.settrace(self._call)  # Prefetch decodes in a thread of its own
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type, unused-ignore]

    @property
    def found(self) -> list[dict[str, str]]:
        masked = []
        for exc, frames in self._seen.values():
            if frames >= 2:
                origin = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
                where = f"{os.path.relpath(origin.filename)}:{origin.lineno}" if origin else "?"
                masked.append({"type": type(exc).__name__, "message": str(exc)[:200], "origin": where})
        return masked

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_filename.startswith(PREFLIGHT_DIR):
            frame.f_trace_lines = False
            return self._local
        return None

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "exception" and isinstance(arg[1], BUG_TYPES):
            exc = arg[1]
            _, frames = self._seen.get(id(exc), (exc, 0))
            self._seen[id(exc)] = (exc, frames + 1)
        return self._local


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"JSON output has {constant}, which JSON does not allow")

    return json.loads(text, parse_constant=refuse)


def check_one(path: str, mode: str, engine: LazyEngine) -> list[tuple[str, str]]:
    """Everything a user's run would do with this file; returns the findings (code and
    message; a job's own findings' codes start with ``job:``)."""
    probe(path)
    role = guess_role(path)
    if mode == "job" and role is not None:
        given = {other: str(file) for other, file in PARTNERS.items() if other != role}
        given[role] = path
        checked = check_paths(video=given["video"], audio=given["audio"], ref=given["ref"], engine=engine)
    else:
        checked = CheckReport(
            files=(check_file(path, options=CheckOptions(fast=mode == "fast"), engine=engine),), job=None
        )
    out = io.StringIO()
    render_json(checked, out)
    _strict_json(out.getvalue())
    render_text(checked, Console(file=io.StringIO(), width=100, highlight=False))
    findings = [(f.code, f.message) for r in checked.files for f in r.findings]
    if checked.job is not None:
        findings += [(f"job:{f.code}", f.message) for f in checked.job.findings]
    return findings


def main() -> int:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray output of C libraries goes to stderr, never into the answers
    engine = LazyEngine()
    watch = MaskedExceptions()
    # Load mediapipe and warm every path up on the unchanged seeds, so that a file's time
    # bound measures the file, not the start (``fast``: a run of fast checks only).
    warm_up = sys.argv[1] if len(sys.argv) > 1 else "full"
    for seed in sorted(SEEDS.iterdir()):
        check_one(str(seed), warm_up, engine)
    answers.write(json.dumps({"status": "ready"}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("simulate") == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if request.get("simulate") == "hang":
            time.sleep(24 * 3600)
        started = time.perf_counter()
        answer: dict[str, Any]
        try:
            with watch:
                findings = check_one(request["path"], request["mode"], engine)
        except Exception:
            answer = {"status": "exception", "traceback": traceback.format_exc()}
        else:
            answer = {"status": "ok", "codes": [c for c, _ in findings], "messages": [m for _, m in findings]}
        answer["elapsed"] = time.perf_counter() - started
        answer["masked"] = watch.found
        answers.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
