"""`preflight check --jobs N`: a folder checked in several processes gives the very same
report, in the same order, as one process does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import BAD, SAMPLE, run_cli


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("many")
    for source in [*BAD.iterdir(), *SAMPLE.iterdir()]:
        if source.is_file() and not source.name.startswith("."):
            shutil.copy(source, root / source.name)
    return root


def test_several_processes_give_the_same_report_in_the_same_order(folder: Path) -> None:
    one_status, one = run_cli("check", str(folder), "--jobs", "1", "--format", "json")
    two_status, two = run_cli("check", str(folder), "--jobs", "2", "--format", "json")

    assert one_status == two_status == 1
    assert len(json.loads(one)["files"]) >= 8
    assert one == two


def test_a_job_count_below_one_is_a_usage_error(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run_cli("check", str(folder), "--jobs", "0")
    assert status == 2 and "--jobs 0" in capsys.readouterr().err
