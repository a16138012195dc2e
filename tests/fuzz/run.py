"""The fuzzer: thousands of mutated small media files through ``probe`` and ``check``.

    python -m tests.fuzz.run --inputs 100000 --seed 7          # a long run, with progress
    python -m tests.fuzz.run --seed 7 --only 4711               # input 4711 of that run again
    python -m tests.fuzz.run --file fuzz-failures/x.mp4 --mode full   # a saved input again

Each input is a seed file (``tests/fuzz/seeds``) with a few seeded mutations
(``tests/fuzz/mutate.py``): the same (seed, number) always gives the same bytes. It is
checked in a long-lived worker process (``tests/fuzz/worker.py``; restarted when it dies):
``--fast`` for most inputs, a full check (faces, speech) for ``--full-share`` of them, a
job with unchanged partners for some of those. Every ``--cli-every`` inputs, that batch's
fast inputs also go through ``preflight check --isolate --fast --format json`` in a
subprocess, whose output must be strict JSON with the same findings, and whose error
output must hold no traceback.

What counts against preflight, each saved to ``--out`` (the input, and a JSON note with
its seed, number, mutations and what happened):

- an **exception** escaping ``probe``, ``check_file``/``check_paths`` or the renderers;
- a **timeout**: an input still being checked after ``--bound`` seconds (its worker is
  killed);
- a **crash** of the worker (FFmpeg or mediapipe failing hard). It is run again in a fresh
  worker (reproducible or not), and then checked with the CLI in a folder beside a seed,
  where it must be reported as ``InvalidFile.Openerror`` while the seed is checked as usual;
- a **CLI failure**: a traceback, an internal error, an exit status other than 0 or 1,
  JSON that is not strict, or findings other than the worker's.

"Masked" exceptions (a ``TypeError``, ``IndexError``... raised in preflight and turned into
a vague finding by a catch-all) are listed in the summary, not counted as failures.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzz.mutate import Mutant, load_seeds, mutant

ROOT = Path(__file__).resolve().parent.parent.parent
SEEDS = Path(__file__).resolve().parent / "seeds"
#: A worker that has not loaded and warmed up in this time (s) is broken.
STARTUP_LIMIT_S = 180.0
#: Bound of one CLI batch run (s).
CLI_LIMIT_S = 300.0
#: The product's test-only crash trigger (see preflight/_check/workers.py).
TEST_CRASH_ENV = "PREFLIGHT_TEST_CRASH_ON"


@dataclass
class Failure:
    kind: str  # exception, timeout, crash, cli
    number: int
    name: str
    mode: str
    operations: tuple[str, ...]
    detail: str
    saved: str | None = None


@dataclass
class Summary:
    seed: int
    inputs: int = 0
    seconds: float = 0.0
    by_code: collections.Counter[str] = field(default_factory=collections.Counter)
    by_mode: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[Failure] = field(default_factory=list)
    #: (type, where raised) -> how many inputs.
    masked: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    masked_example: dict[tuple[str, str], str] = field(default_factory=dict)
    cli_runs: int = 0
    cli_files: int = 0
    #: CLI batches not compared with the worker: preflight's code changed under the run.
    code_changes: int = 0
    worker_starts: int = 0
    slowest: tuple[float, str, str] = (0.0, "", "")
    #: CLI confirmations of crashers: (name, finding message) once confirmed.
    confirmed: list[tuple[str, str]] = field(default_factory=list)

    def of(self, kind: str) -> list[Failure]:
        return [f for f in self.failures if f.kind == kind]

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0

    def text(self) -> str:
        lines = [
            f"fuzz run seed {self.seed}: {self.inputs} inputs in {self.seconds:.1f} s "
            f"({self.rate:.1f} inputs/s; {dict(self.by_mode)}), worker started {self.worker_starts}x",
            f"  exceptions {len(self.of('exception'))}, crashes {len(self.of('crash'))}, "
            f"timeouts {len(self.of('timeout'))}, CLI failures {len(self.of('cli'))} "
            f"(CLI runs {self.cli_runs}, {self.cli_files} files"
            + (
                f"; {self.code_changes} not compared: preflight changed during the run)"
                if self.code_changes
                else ")"
            ),
            f"  slowest input: {self.slowest[1]} ({self.slowest[2]}) {self.slowest[0]:.2f} s",
            "  findings by code: "
            + ", ".join(f"{code} {count}" for code, count in sorted(self.by_code.items())),
        ]
        for (kind, where), count in self.masked.most_common():
            lines.append(
                f"  masked {kind} at {where}: {count} inputs (e.g. {self.masked_example[(kind, where)]})"
            )
        for name, message in self.confirmed:
            lines.append(f"  crasher {name} confirmed by the CLI: {message}")
        for failure in self.failures:
            lines.append(
                f"  {failure.kind.upper()} input {failure.number} of seed {self.seed} ({failure.mode}) "
                f"saved as {failure.saved}\n    reproduce: python -m tests.fuzz.run --file {failure.saved} "
                f"--mode {failure.mode}\n    mutations: {'; '.join(failure.operations)}\n    "
                + failure.detail.strip().replace("\n", "\n    ")
            )
        return "\n".join(lines)


class Worker:
    """The worker process, and reading its answers with a deadline."""

    def __init__(self, log: Path, warm_up: str) -> None:
        self.log = log
        with open(log, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fuzz.worker", warm_up],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=ROOT,
            )
        self._buffer = b""
        ready = self._read(STARTUP_LIMIT_S)
        if not isinstance(ready, dict) or ready.get("status") != "ready":
            self.stop()
            raise RuntimeError(f"the fuzz worker did not start ({ready}); see {log}")

    def ask(self, request: dict[str, Any], bound: float) -> dict[str, Any] | str:
        """The answer, or "died" / "timeout" (the worker is then gone)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            return "died"
        answer = self._read(bound)
        if answer == "timeout":
            self.stop()
        return answer

    def _read(self, bound: float) -> dict[str, Any] | str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + bound
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.process.wait()
                return "died"
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    @property
    def exit_description(self) -> str:
        code = self.process.poll()
        if code is not None and code < 0:
            return f"signal {-code} {signal.Signals(-code).name}"
        return f"exit status {code}"

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def _mode(seed: int, number: int, full_share: float) -> str:
    draw = random.Random(f"preflight-fuzz-mode:{seed}:{number}").random()
    if draw < full_share / 3:
        return "job"
    return "full" if draw < full_share else "fast"


class Fuzzer:
    def __init__(
        self,
        seed: int,
        out: Path,
        bound: float,
        full_share: float,
        cli_every: int,
        simulate: dict[int, str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.seed = seed
        self.out = out
        self.bound = bound
        self.full_share = full_share
        self.cli_every = cli_every
        #: Input number -> "crash" or "hang": the harness's self-test (the worker fakes it).
        self.simulate = simulate or {}
        self.progress = progress
        self.seeds = load_seeds(SEEDS)
        self.summary = Summary(seed=seed)
        self.work = Path(tempfile.mkdtemp(prefix="preflight-fuzz-"))
        self.log = self.work / "worker-stderr.log"
        self.worker: Worker | None = None
        #: preflight's source as the worker loaded it (see ``_code_stamp``).
        self.worker_code: tuple[tuple[str, int], ...] = ()
        #: This batch's fast inputs for the CLI: path -> (number, the worker's codes).
        self.batch: dict[str, tuple[int, Mutant, list[str]]] = {}

    # ------------------------------------------------------------------ the run
    def run(self, numbers: range | list[int]) -> Summary:
        started = time.monotonic()
        last_note = started
        try:
            for count, number in enumerate(numbers, start=1):
                self.one(
                    number, mutant(self.seeds, self.seed, number), _mode(self.seed, number, self.full_share)
                )
                if self.cli_every and len(self.batch) >= self.cli_every:
                    self.cli_batch()
                now = time.monotonic()
                if self.progress is not None and now - last_note >= 10:
                    last_note = now
                    self.summary.seconds = now - started
                    self.progress(self._progress_line(count, len(numbers)))
            if self.batch:
                self.cli_batch()
        finally:
            self.summary.seconds = time.monotonic() - started
            self.close()
        return self.summary

    def close(self) -> None:
        """Stop the worker and remove the run's folder (failures are kept in ``out``)."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        shutil.rmtree(self.work, ignore_errors=True)

    def _progress_line(self, count: int, total: int) -> str:
        s = self.summary
        return (
            f"[{count:>7}/{total}] {s.rate:6.1f} inputs/s  exceptions {len(s.of('exception'))}  "
            f"crashes {len(s.of('crash'))}  timeouts {len(s.of('timeout'))}  CLI failures "
            f"{len(s.of('cli'))}  masked {sum(s.masked.values())}  slowest {s.slowest[0]:.2f} s"
        )

    def _worker(self) -> Worker:
        if self.worker is None or self.worker.process.poll() is not None:
            self.worker_code = _code_stamp()
            self.worker = Worker(self.log, "full" if self.full_share > 0 else "fast")
            self.summary.worker_starts += 1
        return self.worker

    def one(self, number: int, made: Mutant, mode: str) -> dict[str, Any] | str:
        """Check one input; its failure, if any, is recorded. The worker's answer, or "died"
        or "timeout"."""
        path = self.work / made.name
        path.write_bytes(made.data)
        simulate = self.simulate.get(number)
        answer = self._worker().ask({"path": str(path), "mode": mode, "simulate": simulate}, self.bound)
        self.summary.inputs += 1
        self.summary.by_mode[mode] += 1
        keep = False
        if answer == "timeout":
            self.worker = None
            self._fail("timeout", number, made, mode, f"still being checked after {self.bound:g} s")
        elif answer == "died":
            self._crashed(number, made, mode, path, simulate == "crash")
        else:
            assert isinstance(answer, dict)
            if answer["elapsed"] > self.summary.slowest[0]:
                self.summary.slowest = (answer["elapsed"], made.name, mode)
            for masked in answer["masked"]:
                key = (masked["type"], masked["origin"])
                self.summary.masked[key] += 1
                self.summary.masked_example.setdefault(key, f"{made.name}: {masked['message']}")
            if answer["status"] == "exception":
                self._fail("exception", number, made, mode, answer["traceback"])
            else:
                self.summary.by_code.update(answer["codes"])
                if mode == "fast" and self.cli_every:
                    self.batch[str(path)] = (number, made, answer["codes"])
                    keep = True
        if not keep:
            path.unlink(missing_ok=True)
        return answer

    # ------------------------------------------------------------------ failures
    def _save(self, kind: str, number: int, made: Mutant, mode: str, detail: str) -> str:
        self.out.mkdir(parents=True, exist_ok=True)
        stem = f"{kind}-seed{self.seed}-{made.name}"
        (self.out / stem).write_bytes(made.data)
        note = {
            "kind": kind,
            "seed": self.seed,
            "number": number,
            "seed_file": made.seed,
            "mode": mode,
            "operations": list(made.operations),
            "detail": detail,
        }
        (self.out / (stem + ".json")).write_text(json.dumps(note, indent=2) + "\n")
        return str(self.out / stem)

    def _fail(self, kind: str, number: int, made: Mutant, mode: str, detail: str) -> Failure:
        failure = Failure(kind, number, made.name, mode, made.operations, detail)
        failure.saved = self._save(kind, number, made, mode, detail)
        self.summary.failures.append(failure)
        if self.progress is not None:
            self.progress(f"{kind.upper()} at input {number} ({made.name}), saved as {failure.saved}")
        return failure

    def _crashed(self, number: int, made: Mutant, mode: str, path: Path, simulated: bool) -> None:
        assert self.worker is not None
        how, tail = self.worker.exit_description, self.worker.stderr_tail()
        self.worker = None
        # Once more, in a fresh worker: does this file crash it every time?
        request = {"path": str(path), "mode": mode, "simulate": "crash" if simulated else None}
        again = self._worker().ask(request, self.bound)
        if again in ("died", "timeout"):
            self.worker = None
        reproducible = (
            "reproducible"
            if again == "died"
            else f"not reproducible (then: {again if isinstance(again, str) else again['status']})"
        )
        failure = self._fail("crash", number, made, mode, f"the worker died ({how}), {reproducible}\n{tail}")
        if again == "died":
            confirmed = self._confirm_with_cli(path, mode, simulated)
            if confirmed is None:
                failure.detail += (
                    "\nthe CLI reported it as InvalidFile.Openerror, the seed beside it as usual"
                )
            else:
                self._fail("cli", number, made, mode, f"confirming the crasher with the CLI: {confirmed}")

    def _confirm_with_cli(self, path: Path, mode: str, simulated: bool) -> str | None:
        """Check the crasher beside an unchanged seed with ``preflight check --isolate``: the
        crasher must get InvalidFile.Openerror, the seed its usual report. None when so."""
        folder = self.work / "confirm"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        crasher = folder / path.name
        shutil.copy(path, crasher)
        shutil.copy(SEEDS / "voice.wav", folder / "voice.wav")
        env = dict(os.environ)
        if simulated:
            env[TEST_CRASH_ENV] = path.name  # the product's worker crashes on it too
        args = ["--isolate", "--format", "json", "--no-cache", "--isolated"]
        if mode == "fast":
            args.append("--fast")
        run = _cli(folder, args, env)
        if isinstance(run, str):
            return run
        files = {Path(f["path"]).name: f for f in run["files"]}
        found = files.get(crasher.name, {}).get("findings", [])
        crash = [
            f
            for f in found
            if f["code"] == "InvalidFile.Openerror" and f["details"].get("isolation") == "crash"
        ]
        if not crash:
            return f"the crasher's findings are {found}"
        if any(f["details"].get("isolation") for f in files.get("voice.wav", {}).get("findings", [])):
            return "the seed beside the crasher was not checked"
        self.summary.confirmed.append((crasher.name, crash[0]["message"]))
        return None

    def cli_batch(self) -> None:
        """The batch's fast inputs through ``preflight check`` in a subprocess."""
        folder = self.work / f"batch{self.summary.cli_runs}"
        folder.mkdir()
        for name in self.batch:
            os.replace(name, folder / Path(name).name)
        batch, self.batch = self.batch, {}
        self.summary.cli_runs += 1
        self.summary.cli_files += len(batch)
        run = _cli(
            folder, ["--isolate", "--fast", "--format", "json", "--no-cache", "--isolated"], dict(os.environ)
        )
        problems: list[tuple[int, Mutant, str]] = []
        changed = _code_stamp() != self.worker_code
        if isinstance(run, str):
            problems = [(number, made, run) for number, made, _ in batch.values()]
        elif changed:
            # preflight was edited during the run: the worker and the CLI ran different code,
            # so their findings may differ. A new worker loads the new code.
            self.summary.code_changes += 1
            if self.worker is not None:
                self.worker.stop()
                self.worker = None
        else:
            reported = {Path(f["path"]).name: [x["code"] for x in f["findings"]] for f in run["files"]}
            for number, made, codes in batch.values():
                if reported.get(made.name) != codes:
                    problems.append(
                        (number, made, f"the CLI reported {reported.get(made.name)}, the worker {codes}")
                    )
        for number, made, why in problems[:20]:  # one broken run is one problem, not hundreds
            self._fail("cli", number, made, "fast", why)
        shutil.rmtree(folder, ignore_errors=True)


def _code_stamp() -> tuple[tuple[str, int], ...]:
    """preflight's source files and their modification times."""
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in (ROOT / "preflight").rglob("*.py")))


def _cli(folder: Path, args: list[str], env: dict[str, str]) -> dict[str, Any] | str:
    """Run ``preflight check FOLDER ARGS``: the strict JSON report, or what went wrong."""
    command = [sys.executable, "-m", "preflight", "check", str(folder), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CLI_LIMIT_S, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"`preflight check` ran longer than {CLI_LIMIT_S:g} s"
    if "Traceback" in done.stderr or "internal error" in done.stderr or done.returncode not in (0, 1):
        return f"`preflight check` exited {done.returncode}:\n{done.stderr[-3000:]}"

    def refuse(constant: str) -> Any:
        raise ValueError(f"the JSON report has {constant}")

    try:
        report: dict[str, Any] = json.loads(done.stdout, parse_constant=refuse)
    except ValueError as exc:
        return f"`preflight check --format json` printed no strict JSON ({exc})"
    listed = sorted(p.name for p in folder.iterdir())
    if sorted(Path(f["path"]).name for f in report["files"]) != listed:
        return f"`preflight check` reported {len(report['files'])} files of {len(listed)}"
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=2000, help="how many inputs (default 2000)")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    parser.add_argument("--start", type=int, default=0, help="the first input's number (default 0)")
    parser.add_argument(
        "--only",
        type=int,
        action="append",
        help="just this input number (repeatable; give the run's --full-share for the same mode)",
    )
    parser.add_argument("--file", type=Path, help="check this one saved file instead")
    parser.add_argument("--mode", choices=("fast", "full", "job"), default="full", help="for --file")
    parser.add_argument("--bound", type=float, default=20.0, help="time bound per input, s (default 20)")
    parser.add_argument("--full-share", type=float, default=0.2, help="share of full checks (default 0.2)")
    parser.add_argument("--cli-every", type=int, default=400, help="CLI batch size, 0 for none (default 400)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"), help="where failures are saved")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.file is not None:
        made = Mutant(seed=args.file.name, name=args.file.name, data=args.file.read_bytes(), operations=())
        fuzzer = Fuzzer(args.seed, args.out, args.bound, 0.0, 0, progress=say)
        try:
            fuzzer.one(0, made, args.mode)
        finally:
            fuzzer.close()
        summary = fuzzer.summary
    else:
        numbers = args.only or range(args.start, args.start + args.inputs)
        fuzzer = Fuzzer(args.seed, args.out, args.bound, args.full_share, args.cli_every, progress=say)
        summary = fuzzer.run(numbers)
    print(summary.text())
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
