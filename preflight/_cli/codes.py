"""``preflight codes``: the finding codes, their default severity and meaning."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ..codes import CODES


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("codes", help="list the finding codes")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.format == "json":
        rows = [{"code": c.code, "severity": c.severity.value, "summary": c.summary} for c in CODES.values()]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table = Table("code", "severity", "meaning", box=None, pad_edge=False)
    for c in CODES.values():
        table.add_row(c.code, c.severity.value, c.summary)
    Console(highlight=False).print(table)
    return 0
