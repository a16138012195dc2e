"""``retalk emulator``: the local stand-in for the service, for offline work and tests."""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..emulator import Emulator, Faults


@dataclass(frozen=True)
class _FaultOption:
    """A command-line option that sets one field of ``Faults``, with the field's default."""

    flag: str
    field: str
    #: None: a switch (``store_true``).
    metavar: str | None
    help: str


#: The faults the emulator is told to make, in the order ``--help`` lists them.
_FAULT_OPTIONS = (
    _FaultOption("--throttle-every", "throttle_every", "N", "answer 429 to every Nth request"),
    _FaultOption("--error-every", "error_every", "N", "answer 500 to every Nth request"),
    _FaultOption("--drop-every", "drop_every", "N", "drop every Nth connection"),
    _FaultOption("--slow", "slow_s", "S", "delay every answer by S seconds"),
    _FaultOption("--fail-tasks", "fail_tasks", None, "every task ends FAILED"),
    _FaultOption("--task-seconds", "task_seconds", "S", "how long a task runs"),
    _FaultOption(
        "--result-ttl",
        "result_ttl_s",
        "S",
        "result URLs expire S seconds after their task ends (default 24 h, as the service's)",
    ),
    _FaultOption(
        "--clock-offset",
        "clock_offset_s",
        "S",
        "run the service's clock S seconds ahead of this machine's (negative: behind)",
    ),
)


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
    defaults = Faults()
    for option in _FAULT_OPTIONS:
        if option.metavar is None:
            parser.add_argument(option.flag, dest=option.field, action="store_true", help=option.help)
            continue
        default = getattr(defaults, option.field)
        parser.add_argument(
            option.flag,
            dest=option.field,
            type=type(default),
            default=default,
            metavar=option.metavar,
            help=option.help,
        )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    faults = Faults(**{option.field: getattr(args, option.field) for option in _FAULT_OPTIONS})
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
