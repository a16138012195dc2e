"""Machine formats of a ``CheckReport`` for the tools people already run: GitHub workflow
annotations, SARIF 2.1.0 (code scanning), JUnit XML (CI test reports), and counts by
code (``--statistics``). Each is built whole, then written once."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote
from xml.etree import ElementTree

from .._models import CheckReport, Finding, Severity
from ..codes import CODES
from .display import printable

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://help.aliyun.com/zh/model-studio/videoretalk-api"

_GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _located(report: CheckReport) -> Iterator[tuple[str | None, Finding]]:
    """Every finding with the file it is about; the job's own findings (voice against
    video) are placed on the job's video, else on no file."""
    for file_report in report.files:
        for finding in file_report.findings:
            yield file_report.path, finding
    if report.job is not None:
        video = next((f.path for f in report.files if f.role == "video"), None)
        for finding in report.job.findings:
            yield video, finding


# --------------------------------------------------------------------------- GitHub
def _escape_data(text: str) -> str:
    # GitHub's own escapes first (the runner decodes them, so a file's name still matches);
    # every other control character has none and is shown escaped.
    return printable(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: CheckReport, stream: IO[str]) -> None:
    """One workflow command per finding (``::error file=...,title=CODE::message``)."""
    lines = []
    for path, finding in _located(report):
        properties = [f"title={_escape_property(finding.code)}"]
        if path is not None:
            properties.insert(0, f"file={_escape_property(_shown(path))}")
        command = _GITHUB_COMMAND[finding.severity]
        lines.append(f"::{command} {','.join(properties)}::{_escape_data(finding.message)}\n")
    stream.write("".join(lines))


# --------------------------------------------------------------------------- SARIF
def _shown(path: str) -> str:
    """A file's path relative to the working folder (the repository, in CI) when it is
    inside it, else absolute: how annotations and code scanning find the file."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return relative if not relative.startswith(os.pardir) else absolute


def _uri(path: str) -> str:
    """A file's path as a SARIF artifact URI (see ``_shown``), percent-encoded."""
    shown = _shown(path)
    encoded = quote(shown.replace(os.sep, "/"), safe="/", errors="surrogateescape")
    return encoded if not os.path.isabs(shown) else "file://" + encoded


def sarif_document(report: CheckReport, version: str) -> dict[str, Any]:
    used = sorted({finding.code for _, finding in _located(report)})
    index = {code: i for i, code in enumerate(used)}
    rules = [
        {
            "id": code,
            "shortDescription": {"text": CODES[code].summary if code in CODES else code},
            "defaultConfiguration": {
                "level": _SARIF_LEVEL[CODES[code].severity] if code in CODES else "warning"
            },
        }
        for code in used
    ]
    results = []
    for path, finding in _located(report):
        result: dict[str, Any] = {
            "ruleId": finding.code,
            "ruleIndex": index[finding.code],
            "level": _SARIF_LEVEL[finding.severity],
            "message": {"text": finding.message},
            "properties": {"fixable": finding.fixable},
        }
        if path is not None:
            result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": _uri(path)}}}]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "preflight",
                        "version": version,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def render_sarif(report: CheckReport, stream: IO[str], version: str) -> None:
    stream.write(json.dumps(sarif_document(report, version), indent=2, ensure_ascii=True) + "\n")


# --------------------------------------------------------------------------- JUnit
def render_junit(report: CheckReport, stream: IO[str]) -> None:
    """One test case per file (and one for the job): it fails with each error finding;
    warnings and notes go to its standard output. Names and messages are shown printable:
    XML 1.0 cannot carry most control characters, nor a name's bytes that are not UTF-8."""
    suite = ElementTree.Element("testsuite", name="preflight")
    cases: list[tuple[str, str, tuple[Finding, ...]]] = [(f.role, f.path, f.findings) for f in report.files]
    if report.job is not None:
        cases.append(("job", "video, voice and reference image together", report.job.findings))
    failures = 0
    for role, name, findings in cases:
        case = ElementTree.SubElement(suite, "testcase", classname=role, name=printable(name))
        errors = [f for f in findings if f.severity is Severity.ERROR]
        for finding in errors:
            code, message = printable(finding.code), printable(finding.message)
            failure = ElementTree.SubElement(case, "failure", type=code, message=message)
            failure.text = f"{code}: {message}"
        failures += bool(errors)
        others = [f for f in findings if f.severity is not Severity.ERROR]
        if others:
            out = ElementTree.SubElement(case, "system-out")
            out.text = "\n".join(
                f"{f.severity.value} {printable(f.code)}: {printable(f.message)}" for f in others
            )
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    root = ElementTree.Element("testsuites", tests=str(len(cases)), failures=str(failures))
    root.append(suite)
    ElementTree.indent(root)
    stream.write('<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, "unicode") + "\n")


# --------------------------------------------------------------------------- statistics
def statistics(report: CheckReport) -> list[dict[str, Any]]:
    """How many findings of each code, most frequent first (then by code)."""
    counts = Counter(finding.code for _, finding in _located(report))
    fixable = Counter(finding.code for _, finding in _located(report) if finding.fixable)
    return [
        {
            "code": code,
            "count": count,
            "severity": CODES[code].severity.value if code in CODES else "warning",
            "fixable": fixable[code],
            "summary": CODES[code].summary if code in CODES else "",
        }
        for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def render_statistics(report: CheckReport, stream: IO[str], as_json: bool) -> None:
    rows = statistics(report)
    if as_json:
        stream.write(json.dumps(rows, indent=2, ensure_ascii=True) + "\n")
        return
    width = max((len(str(r["count"])) for r in rows), default=1)
    code_width = max((len(r["code"]) for r in rows), default=0)
    lines = [
        f"{r['count']:>{width}}  {r['code']:<{code_width}}  {r['severity']:<7}  {r['summary']}"
        + (f" [{r['fixable']} fixable]" if r["fixable"] else "")
        for r in rows
    ]
    stream.write("".join(line + "\n" for line in lines))


__all__ = [
    "render_github",
    "render_junit",
    "render_sarif",
    "render_statistics",
    "sarif_document",
    "statistics",
]
