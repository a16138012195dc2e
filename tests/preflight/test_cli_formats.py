"""`preflight check` speaking the formats CI tools read: GitHub workflow annotations, SARIF
2.1.0 (validated against its schema), JUnit XML, and counts by code (`--statistics`)."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

import jsonschema
import pytest

from tests.conftest import BAD, ROOT, SAMPLE, run_cli

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its findings of the bad fixtures) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_cli_formats")

SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def findings() -> list[dict[str, Any]]:
    """Every finding of the bad fixtures, as the JSON report gives them (with their file)."""
    status, out = run_cli("check", str(BAD), "--fast", "--format", "json")
    assert status == 1
    report = json.loads(out)
    return [{**f, "path": file["path"]} for file in report["files"] for f in file["findings"]]


def test_sarif_output_is_valid_sarif_with_every_finding_as_a_result(findings: list[dict[str, Any]]) -> None:
    status, out = run_cli("check", str(BAD), "--fast", "--format", "sarif")
    document = json.loads(out)

    assert status == 1
    jsonschema.Draft4Validator(SCHEMA).validate(document)
    (run,) = document["runs"]
    results = run["results"]
    assert sorted(r["ruleId"] for r in results) == sorted(f["code"] for f in findings)
    rules = run["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    levels = {"error": "error", "warning": "warning", "info": "note"}
    assert Counter(r["level"] for r in results) == Counter(levels[f["severity"]] for f in findings)
    # Locations are the files, relative and percent-encoded ("low fps 480p.avi").
    uris = {unquote(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for r in results}
    assert uris == {str(Path(f["path"]).resolve().relative_to(Path.cwd())) for f in findings}
    assert any("%20" in r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results)


def test_a_job_the_service_accepts_is_valid_sarif_without_errors() -> None:
    status, out = run_cli(
        "check", "--video", str(SAMPLE / "talking_head.mp4"), "--audio", str(SAMPLE / "voice.wav"),
        "--fast", "--format", "sarif",
    )  # fmt: skip
    document = json.loads(out)
    assert status == 0
    jsonschema.Draft4Validator(SCHEMA).validate(document)
    assert all(r["level"] != "error" for r in document["runs"][0]["results"])


def test_github_annotations_one_per_finding_with_names_escaped(tmp_path: Path) -> None:
    odd = tmp_path / "take 1, scene: 2.avi"
    shutil.copy(BAD / "low fps 480p.avi", odd)
    status, out = run_cli("check", str(odd), "--fast", "--format", "github")

    assert status == 1
    lines = out.splitlines()
    assert len(lines) == 3  # format, resolution, frame rate
    pattern = re.compile(r"^::(error|warning|notice) file=([^,]+),title=([A-Za-z.]+)::(.+)$")
    for line in lines:
        match = pattern.match(line)
        assert match, line
        assert match.group(2) == str(odd).replace(",", "%2C").replace(":", "%3A")
    assert {pattern.match(line).group(3) for line in lines} == {  # type: ignore[union-attr]
        "InvalidFile.Format",
        "InvalidFile.Resolution",
        "InvalidFile.FPS",
    }


def test_junit_has_a_case_per_file_failing_with_its_errors(findings: list[dict[str, Any]]) -> None:
    status, out = run_cli("check", str(BAD), "--fast", "--format", "junit")
    root = ElementTree.fromstring(out)

    assert status == 1
    cases = root.findall("./testsuite/testcase")
    paths = {f["path"] for f in findings} | {c.get("name") for c in cases}
    assert len(cases) == len(paths)
    for case in cases:
        mine = [f for f in findings if f["path"] == case.get("name")]
        errors = sorted(f["code"] for f in mine if f["severity"] == "error")
        assert sorted(x.get("type") or "" for x in case.findall("failure")) == errors
        warned = [f["code"] for f in mine if f["severity"] != "error"]
        out_text = case.findtext("system-out") or ""
        assert all(code in out_text for code in warned)
    failing = sum(1 for c in cases if c.find("failure") is not None)
    assert root.get("failures") == str(failing) and failing >= 1


def test_junit_stays_well_formed_for_names_with_characters_xml_forbids(tmp_path: Path) -> None:
    # U+FFFE and U+FFFF are valid in a Linux file name and forbidden in XML 1.0.
    for name in ("a\uffffb.m4a", "c\ufffed.m4a"):
        shutil.copy(SAMPLE / "voice.wav", tmp_path / name)
    status, out = run_cli("check", str(tmp_path), "--fast", "--format", "junit")

    root = ElementTree.fromstring(out)
    names = sorted(c.get("name") or "" for c in root.findall("./testsuite/testcase"))
    assert status == 1 and len(names) == 2
    assert names[0].endswith("a\\uffffb.m4a") and names[1].endswith("c\\ufffed.m4a")


def test_statistics_count_the_findings_by_code(findings: list[dict[str, Any]]) -> None:
    status, out = run_cli("check", str(BAD), "--fast", "--statistics", "--format", "json")
    rows = json.loads(out)

    assert status == 1
    assert {r["code"]: r["count"] for r in rows} == dict(Counter(f["code"] for f in findings))
    assert [r["count"] for r in rows] == sorted((r["count"] for r in rows), reverse=True)
    status, text = run_cli("check", str(BAD), "--fast", "--statistics")
    assert status == 1
    assert text.splitlines()[0].split()[:2] == [str(rows[0]["count"]), rows[0]["code"]]


def test_statistics_in_a_ci_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run_cli("check", str(BAD), "--fast", "--statistics", "--format", "sarif")
    assert status == 2
    assert "--statistics prints text or json" in capsys.readouterr().err


def test_json_writes_c1_controls_and_bidi_overrides_as_escapes_and_keeps_the_name(tmp_path: Path) -> None:
    """A valid UTF-8 name with C1 controls (U+009B is CSI: ``\\x9b31m`` turns a terminal
    red) and a right-to-left override: JSON keeps the name whole, with no raw control."""
    from tests.conftest import make_fixtures

    name = tmp_path / "c1-\x9b31mred-\x85-\u202egnp.wav"
    make_fixtures.write_audio(name, duration=3.0, sample_rate=16000)
    status, out = run_cli("check", str(name), "--fast", "--no-cache", "--format", "json")
    assert status == 0
    assert not re.search("[\x7f-\x9f\u202e]", out), out
    assert "\\u009b31mred-\\u0085-\\u202egnp.wav" in out
    (file,) = json.loads(out)["files"]
    assert file["path"] == str(name)
