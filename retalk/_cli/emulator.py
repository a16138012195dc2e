"""``retalk emulator``: the local stand-in for the service, for offline work and tests."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from preflight import limits

from ..emulator import Emulator, Faults


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run a local emulator of the service (not lip-synced: its result is the video "
        "with the new voice)",
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 picks one)"
    )
    parser.add_argument(
        "--root",
        help="folder for uploads, results and the task table; an emulator started again on the same "
        "root knows its tasks (default: a temporary one)",
    )
    parser.add_argument("--api-key", help="accept only this key (default: any key)")
    parser.add_argument(
        "--throttle-every", type=int, default=0, metavar="N", help="answer 429 to every Nth request"
    )
    parser.add_argument(
        "--error-every", type=int, default=0, metavar="N", help="answer 500 to every Nth request"
    )
    parser.add_argument("--drop-every", type=int, default=0, metavar="N", help="drop every Nth connection")
    parser.add_argument(
        "--slow", type=float, default=0.0, metavar="S", help="delay every answer by S seconds"
    )
    parser.add_argument("--fail-tasks", action="store_true", help="every task ends FAILED")
    parser.add_argument("--task-seconds", type=float, default=2.0, metavar="S", help="how long a task runs")
    parser.add_argument(
        "--result-ttl",
        type=float,
        default=float(limits.RESULT_URL_TTL_S),
        metavar="S",
        help="result URLs expire S seconds after their task ends (default 24 h, as the service's)",
    )
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="S",
        help="run the service's clock S seconds ahead of this machine's (negative: behind)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    faults = Faults(
        throttle_every=args.throttle_every,
        error_every=args.error_every,
        drop_every=args.drop_every,
        slow_s=args.slow,
        fail_tasks=args.fail_tasks,
        task_seconds=args.task_seconds,
        result_ttl_s=args.result_ttl,
        clock_offset_s=args.clock_offset,
    )
    with tempfile.TemporaryDirectory(prefix="retalk-emulator-") as scratch:
        root = Path(args.root) if args.root else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        emulator = Emulator(root, port=args.port, api_key=args.api_key, faults=faults).start()
        print(
            f"retalk emulator on {emulator.base_url} (files in {root}); use it with\n"
            f"  DASHSCOPE_HTTP_BASE_URL={emulator.base_url} DASHSCOPE_API_KEY=any retalk ...\n"
            "Ctrl-C stops it.",
            file=sys.stderr,
        )
        try:
            emulator.serve_forever()
        finally:
            emulator.stop()
    return 0
