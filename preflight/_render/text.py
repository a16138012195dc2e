"""Render a ``CheckReport`` for people (text, through rich) or programs (JSON)."""

from __future__ import annotations

import json
import re
from typing import IO, Any, Protocol

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .._models import CheckReport, FileReport, Finding, Severity
from .display import plain, printable

FORMATS = ("text", "json")

_SEVERITY_STYLE = {
    Severity.ERROR: "bold red",
    Severity.WARNING: "yellow",
    Severity.INFO: "cyan",
}
_ROLE_NAME = {"video": "video", "audio": "audio", "ref": "reference image"}


# What json.dumps leaves raw with ensure_ascii=False but a terminal may obey (C1 controls
# such as CSI U+009B, DEL) or reorder (bidirectional overrides); each is written as \uXXXX,
# which is the same JSON string. They can only occur inside strings.
_JSON_RAW = re.compile("[\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class _Document(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def render_json(report: _Document, stream: IO[str]) -> None:
    # Built whole, then written once: never a half-written document.
    data = report.to_dict()
    try:
        text = _JSON_RAW.sub(
            lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, indent=2, ensure_ascii=False)
        )
        text += "\n"
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        # File names that are not valid UTF-8 (or a narrow terminal encoding): escape them.
        text = json.dumps(data, indent=2, ensure_ascii=True) + "\n"
    stream.write(text)


def _file_header(report: FileReport) -> Text:
    errors, warnings = report.count(Severity.ERROR), report.count(Severity.WARNING)
    header = Text()
    if errors:
        header.append("✗ ", style="bold red")
    elif warnings:
        header.append("! ", style="yellow")
    else:
        header.append("✓ ", style="bold green")
    header.append(plain(report.path, style="bold"))
    header.append(f"  ({_ROLE_NAME[report.role]})", style="dim")
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' * (errors != 1)}")
    if warnings:
        parts.append(f"{warnings} warning{'s' * (warnings != 1)}")
    header.append("  " + (", ".join(parts) if parts else "ok"), style="dim")
    return header


def _findings_table(findings: tuple[Finding, ...]) -> Padding:
    table = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False, expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("message", overflow="fold", ratio=1)
    for finding in findings:
        message = plain(finding.message)
        if finding.fixable:
            message.append(" [fixable]", style="green")
        table.add_row(
            Text(finding.severity.value, style=_SEVERITY_STYLE[finding.severity]),
            plain(finding.code, style="bold"),
            message,
        )
    return Padding(table, (0, 0, 0, 2))


def _print_findings(console: Console, findings: tuple[Finding, ...]) -> None:
    if not findings:
        return
    if console.is_terminal:
        console.print(_findings_table(findings))
        return
    # Logs and pipes: one unwrapped line per finding, easy to grep.
    code_width = max(len(printable(f.code)) for f in findings)
    for finding in findings:
        line = Text("  ")
        line.append(f"{finding.severity.value:<8}", style=_SEVERITY_STYLE[finding.severity])
        line.append(f"{printable(finding.code):<{code_width}}  ", style="bold")
        line.append(plain(finding.message))
        if finding.fixable:
            line.append(" [fixable]", style="green")
        console.print(line, soft_wrap=True)


def render_text(report: CheckReport, console: Console, *, quiet: bool = False) -> None:
    for file_report in report.files:
        if quiet and not file_report.findings:
            continue
        console.print(_file_header(file_report), soft_wrap=True)
        _print_findings(console, file_report.findings)
    if report.job is not None and report.job.findings:
        console.print(Text("job (across the files given as --video/--audio/--ref)", style="bold"))
        _print_findings(console, report.job.findings)

    errors, warnings = report.errors, report.warnings
    fixable = sum(1 for f in report.all_findings() if f.fixable and f.severity is Severity.ERROR)
    count = len(report.files)
    summary = Text()
    if not report.files:
        summary.append("No media files found.", style="yellow")
    else:
        summary.append(f"Checked {count} file{'s' * (count != 1)}: ")
        summary.append(f"{errors} error{'s' * (errors != 1)}", style="bold red" if errors else "green")
        summary.append(f", {warnings} warning{'s' * (warnings != 1)}.")
        if errors:
            summary.append(
                f" {fixable} of the errors can be fixed with `preflight fix`."
                if fixable
                else " None of the errors can be fixed automatically."
            )
        else:
            summary.append(" The service should accept these files.", style="green")
    console.print(summary, soft_wrap=True)
