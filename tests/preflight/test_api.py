"""Other code uses preflight from Python and gets the same data as the JSON."""

from __future__ import annotations

import json

import pytest

import preflight
from preflight import CheckOptions, FileReport, Severity, UsageError, check_paths, check_video
from preflight._cli.main import main
from tests.conftest import BAD, SAMPLE


def test_the_public_api_is_explicit() -> None:
    for name in (
        "check_video",
        "check_audio",
        "check_image",
        "check_paths",
        "CheckReport",
        "FileReport",
        "Finding",
        "Severity",
        "probe",
        "limits",
    ):
        assert name in preflight.__all__ and hasattr(preflight, name)


def test_a_report_object_carries_what_the_json_says(capsys) -> None:
    report = check_paths([BAD / "low fps 480p.avi"])
    assert main(["check", "--format", "json", str(BAD / "low fps 480p.avi")]) == 1
    assert report.to_dict() == json.loads(capsys.readouterr().out)


def test_typed_reports_for_one_file() -> None:
    report = check_video(BAD / "low fps 480p.avi")
    assert isinstance(report, FileReport) and report.role == "video" and not report.ok
    fps = next(f for f in report.findings if f.code == "InvalidFile.FPS")
    assert fps.severity is Severity.ERROR and fps.details["fps"] == 10.0
    assert report.media is not None and report.media.video[0].codec == "mpeg4"


def test_options_filter_and_validate_codes() -> None:
    report = check_video(BAD / "low fps 480p.avi", CheckOptions(ignore=("InvalidFile.FPS",)))
    assert "InvalidFile.FPS" not in [f.code for f in report.findings]
    with pytest.raises(UsageError, match=r"InvalidFile\.Typo"):
        CheckOptions(select=("InvalidFile.Typo",))


def test_a_missing_path_raises_the_documented_error() -> None:
    with pytest.raises(preflight.PreflightError, match="no such file"):
        check_paths(video=SAMPLE / "missing.mp4")
