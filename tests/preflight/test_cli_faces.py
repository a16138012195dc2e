"""Faces from the command line: the JSON face section, the contact sheet, --fast."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from preflight._cli.main import main
from tests.conftest import BAD, ROOT, SAMPLE
from tests.preflight.face_clips import LATE_FACE

# The sheet's colours (see preflight/_render/contact_sheet.py).
TARGET_GREEN = (60, 220, 90)
NO_FACE_RED = (230, 50, 50)
REFERENCE_BLUE = (70, 150, 255)


def has_colour(path: Path, colour: tuple[int, int, int]) -> bool:
    with Image.open(path) as sheet:
        pixels = np.asarray(sheet.convert("RGB")).reshape(-1, 3)
    return bool((pixels == np.array(colour)).all(axis=1).any())


def test_json_carries_the_sampled_faces(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--format", "json", str(SAMPLE / "talking_head.mp4")])
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    faces = data["files"][0]["faces"]
    assert faces["kind"] == "video" and faces["engine"].startswith("mediapipe")
    assert (faces["width"], faces["height"], faces["step"]) == (720, 720, 0.5)
    first = faces["samples"][0]
    assert first["time"] == 0.0 and first["target"] == 0
    (face,) = first["faces"]
    assert set(face) == {"box", "score", "pose"}
    assert set(face["pose"]) == {"yaw", "pitch", "roll"}


def test_fast_leaves_the_face_section_out(capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", "--fast", "--format", "json", str(SAMPLE / "talking_head.mp4"), str(SAMPLE / "face.jpg")])
    data = json.loads(capsys.readouterr().out)
    assert [f["faces"] for f in data["files"]] == [None, None]


def test_a_contact_sheet_shows_the_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "sheet.png"
    status = main(
        [
            "check",
            "--video",
            str(SAMPLE / "talking_head.mp4"),
            "--ref",
            str(SAMPLE / "face.jpg"),
            "--contact-sheet",
            str(sheet),
        ]
    )
    assert status == 0
    assert f"contact sheet written to {sheet}" in capsys.readouterr().err
    with Image.open(sheet) as image:
        assert image.format == "PNG"
        # Reference + 8 samples in rows of 6: two rows.
        assert image.width == 6 * 246 + 6 and image.height == 58 + 2 * 246 + 6
    assert has_colour(sheet, TARGET_GREEN) and has_colour(sheet, REFERENCE_BLUE)
    assert not has_colour(sheet, NO_FACE_RED)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]  # no temporary left behind


def test_a_sheet_marks_frames_without_a_face(
    tmp_path: Path, made: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    video = made("video", "late face.mp4", fps=25, **LATE_FACE)
    sheet = tmp_path / "late.png"
    assert main(["check", str(video), "--contact-sheet", str(sheet)]) == 0
    assert has_colour(sheet, NO_FACE_RED) and has_colour(sheet, TARGET_GREEN)


def test_several_videos_get_one_sheet_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "check",
            str(SAMPLE / "talking_head.mp4"),
            str(BAD / "phone_rotated.mp4"),
            "--contact-sheet",
            str(tmp_path / "faces.png"),
        ]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "faces-phone_rotated.png",
        "faces-talking_head.png",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fast"], "--fast turns off"),
        (["--select", "InvalidFile"], "leave no Face code"),
    ],
)
def test_a_sheet_without_a_face_scan_is_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    status = main(
        ["check", str(SAMPLE / "talking_head.mp4"), "--contact-sheet", str(tmp_path / "s.png"), *extra]
    )
    assert status == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("sheet", "message"),
    [
        ("no/such/folder/s.png", "no folder"),
        ("sheet.jpg", "give a name ending in .png"),
        (".", "is a folder"),
    ],
)
def test_a_sheet_that_cannot_be_written_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sheet: str, message: str
) -> None:
    status = main(["check", str(SAMPLE / "talking_head.mp4"), "--contact-sheet", str(tmp_path / sheet)])
    captured = capsys.readouterr()
    assert status == 2 and message in captured.err
    assert captured.out == ""  # refused before checking anything
    assert list(tmp_path.iterdir()) == []


def test_a_sheet_never_overwrites_a_checked_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "face.png"
    with Image.open(SAMPLE / "face.jpg") as photo:
        photo.save(ref)
    before = ref.read_bytes()
    status = main(
        ["check", "--video", str(SAMPLE / "talking_head.mp4"), "--ref", str(ref), "--contact-sheet", str(ref)]
    )
    captured = capsys.readouterr()
    assert status == 2 and "is one of the checked files" in captured.err
    assert "face.png" in captured.out  # the report itself was still given
    assert ref.read_bytes() == before


def test_videos_with_the_same_name_get_separate_sheets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        shutil.copy(SAMPLE / "talking_head.mp4", tmp_path / "in" / folder / "clip.mp4")
    assert main(["check", str(tmp_path / "in"), "--contact-sheet", str(tmp_path / "sheet.png")]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["sheet-clip-2.png", "sheet-clip.png"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "sheet-clip.png").stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary new file


def test_the_engine_logs_never_reach_the_terminal_or_the_json() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "preflight", "check", "--format", "json", str(SAMPLE / "talking_head.mp4")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0
    json.loads(result.stdout)  # nothing but the document on stdout
    assert result.stderr == ""  # no TFLite/absl chatter, no protobuf warnings
