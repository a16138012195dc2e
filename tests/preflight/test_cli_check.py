"""`preflight check` from the command line: output, JSON contract and exit statuses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preflight._cli.main import main
from tests.conftest import BAD, ROOT, SAMPLE

JOB = [
    "--video",
    str(SAMPLE / "talking_head.mp4"),
    "--audio",
    str(SAMPLE / "voice.wav"),
    "--ref",
    str(SAMPLE / "face.jpg"),
]


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    status = main(["check", "--format", "json", *args])
    out = capsys.readouterr().out
    return status, json.loads(out)


def test_a_good_job_exits_0_with_a_job_section(capsys) -> None:
    status, data = run_json(capsys, *JOB)
    assert status == 0
    assert data["schema"] == "preflight.check/1"
    assert [f["role"] for f in data["files"]] == ["video", "audio", "ref"]
    assert all(f["ok"] and f["findings"] == [] for f in data["files"])
    # The reference is the video's own face, and the video's sound will be replaced: the
    # job says so, as information.
    replaced, match = data["job"]["findings"]
    assert (replaced["code"], replaced["severity"]) == ("Pair.VideoAudioReplaced", "info")
    assert (match["code"], match["severity"]) == ("Face.RefMatch", "info")
    assert match["details"]["distance"] < match["details"]["threshold"]
    assert data["summary"] == {"files": 3, "errors": 0, "warnings": 0}


def test_one_role_alone_has_no_job_section(capsys) -> None:
    status, data = run_json(capsys, "--video", str(SAMPLE / "talking_head.mp4"))
    assert status == 0 and data["job"] is None


def test_a_folder_of_bad_files_exits_1_and_lists_every_finding(capsys) -> None:
    status, data = run_json(capsys, str(BAD))
    assert status == 1
    by_name = {Path(f["path"]).name: f for f in data["files"]}
    assert sorted(by_name) == sorted(p.name for p in BAD.iterdir())
    assert [f["code"] for f in by_name["low fps 480p.avi"]["findings"]] == [
        "InvalidFile.Format",
        "InvalidFile.Resolution",
        "InvalidFile.FPS",
    ]
    assert by_name["notes.mp4"]["findings"][0]["code"] == "InvalidFile.Openerror"
    assert by_name["phone_rotated.mp4"]["ok"] is True
    finding = by_name["low fps 480p.avi"]["findings"][2]
    assert set(finding) == {"code", "severity", "message", "fixable", "details"}
    assert finding["details"]["fps"] == 10.0 and finding["severity"] == "error"
    assert data["summary"] == {"files": 5, "errors": 7, "warnings": 1}


def test_text_output_groups_findings_by_file_with_a_summary(capsys) -> None:
    status = main(["check", str(BAD / "low fps 480p.avi"), str(SAMPLE / "voice.wav")])
    out = capsys.readouterr().out
    assert status == 1
    assert "low fps 480p.avi" in out and "InvalidFile.FPS" in out and "10 fps" in out
    assert "✓" in out and "voice.wav" in out
    assert "Checked 2 files: 3 errors" in out
    # Piped output keeps each finding on one line, for grep and CI logs.
    fps_lines = [line for line in out.splitlines() if "InvalidFile.FPS" in line]
    assert len(fps_lines) == 1 and "15-60 fps" in fps_lines[0] and fps_lines[0].endswith("[fixable]")


def test_select_and_ignore_filter_findings_by_code_or_prefix(capsys) -> None:
    status, data = run_json(capsys, "--select", "InvalidFile.FPS", str(BAD / "low fps 480p.avi"))
    assert status == 1 and [f["code"] for f in data["files"][0]["findings"]] == ["InvalidFile.FPS"]
    status, data = run_json(capsys, "--ignore", "InvalidFile,Video", str(BAD))
    assert status == 0 and data["summary"]["errors"] == 0


def test_an_unknown_code_in_select_is_bad_usage(capsys) -> None:
    assert main(["check", "--select", "InvalidFile.Fps", str(SAMPLE)]) == 2
    assert "unknown finding code" in capsys.readouterr().err


def test_a_video_passed_as_audio_is_a_format_error_not_a_crash(capsys) -> None:
    status, data = run_json(capsys, "--audio", str(SAMPLE / "talking_head.mp4"))
    assert status == 1
    assert data["files"][0]["role"] == "audio"
    assert data["files"][0]["findings"][0]["code"] == "InvalidFile.Format"


def test_a_missing_path_is_bad_usage_with_a_clear_message(capsys, tmp_path: Path) -> None:
    assert main(["check", str(tmp_path / "nope.mp4")]) == 2
    err = capsys.readouterr().err
    assert "nope.mp4: no such file" in err and "Traceback" not in err


def test_nothing_to_check_is_bad_usage(capsys) -> None:
    assert main(["check"]) == 2
    assert "nothing to check" in capsys.readouterr().err


def test_an_unknown_option_is_bad_usage(capsys) -> None:
    assert main(["check", "--frobnicate"]) == 2


def test_a_file_whose_kind_cannot_be_told_is_bad_usage(capsys, tmp_path: Path) -> None:
    path = tmp_path / "readme.txt"
    path.write_text("hello")
    assert main(["check", str(path)]) == 2
    assert "cannot tell what" in capsys.readouterr().err
    # ...but naming its role makes it a finding.
    status, data = run_json(capsys, "--video", str(path))
    assert status == 1 and data["files"][0]["findings"][0]["code"] == "InvalidFile.Openerror"


def test_folders_are_searched_recursively_skipping_hidden_and_non_media(capsys, tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    shutil.copy(SAMPLE / "voice.wav", tmp_path / "a" / "b" / "voice.wav")
    shutil.copy(SAMPLE / "face.jpg", tmp_path / ".cache" / "face.jpg")
    shutil.copy(SAMPLE / "face.jpg", tmp_path / "a" / "photo_without_extension")
    (tmp_path / "a" / "notes.txt").write_text("not media")
    status, data = run_json(capsys, str(tmp_path))
    paths = [Path(f["path"]).relative_to(tmp_path).as_posix() for f in data["files"]]
    roles = [f["role"] for f in data["files"]]
    # Sorted, a folder's own files before its subfolders: a stable order.
    assert paths == ["a/photo_without_extension", "a/b/voice.wav"]
    assert roles == ["ref", "audio"]
    # A file without an accepted extension is still judged: the service wants one.
    assert status == 1


def test_names_with_spaces_quotes_and_non_ascii_work(capsys, tmp_path: Path) -> None:
    path = tmp_path / 'vidéo d\'essai "ü" 日本.mp4'
    shutil.copy(SAMPLE / "talking_head.mp4", path)
    status, data = run_json(capsys, str(path))
    assert status == 0 and data["files"][0]["path"] == str(path)


@pytest.mark.parametrize(
    ("args", "expected_status"),
    [
        (["check", str(SAMPLE)], 0),
        (["check", str(BAD / "notes.mp4")], 1),
        (["check", "/no/such/file.mp4"], 2),
    ],
)
def test_the_installed_command_exits_0_1_2_without_tracebacks(args: list[str], expected_status: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
        timeout=120,
    )
    assert result.returncode == expected_status, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_json_output_puts_nothing_else_on_stdout() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "preflight", "check", "--format", "json", str(BAD)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1
    json.loads(result.stdout)  # the whole of stdout is one JSON document


def test_codes_lists_every_code(capsys) -> None:
    assert main(["codes", "--format", "json"]) == 0
    listed = {row["code"] for row in json.loads(capsys.readouterr().out)}
    assert {"InvalidFile.Openerror", "InvalidFile.FPS", "Video.Rotated", "Video.HeaderLength"} <= listed


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_pipes_in_folders_are_skipped_and_broken_links_reported(capsys, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.mp4")  # opening it to read would block forever
    (tmp_path / "link to pipe.mp4").symlink_to(tmp_path / "pipe.mp4")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "missing.wav")
    shutil.copy(SAMPLE / "voice.wav", tmp_path / "voice.wav")
    status, data = run_json(capsys, str(tmp_path))
    assert [Path(f["path"]).name for f in data["files"]] == ["gone.wav", "voice.wav"]
    assert data["files"][0]["findings"][0]["code"] == "InvalidFile.Openerror"
    assert status == 1
    for name in ("pipe.mp4", "link to pipe.mp4"):
        assert main(["check", "--video", str(tmp_path / name)]) == 2
        assert "not a regular file" in capsys.readouterr().err


def test_text_that_starts_like_a_bitmap_is_not_taken_for_one(capsys, tmp_path: Path) -> None:
    (tmp_path / "README").write_text("BMW service notes\n" * 3)
    shutil.copy(SAMPLE / "voice.wav", tmp_path / "voice.wav")
    status, data = run_json(capsys, str(tmp_path))
    assert status == 0 and [Path(f["path"]).name for f in data["files"]] == ["voice.wav"]


def test_typescript_is_not_taken_for_mpeg_ts_video(capsys, tmp_path: Path, media) -> None:
    # .ts and .mts are MPEG transport streams and TypeScript alike: the content decides.
    (tmp_path / "app.ts").write_text("Generated by tsc\nexport const answer: number = 42;\n" * 20)
    (tmp_path / "module.mts").write_text("export default {};\n")
    media.write_video(tmp_path / "broadcast.ts", width=640, height=640, duration=2.5,
                      container_format="mpegts")  # fmt: skip
    _, data = run_json(capsys, str(tmp_path), "--fast")
    assert [Path(f["path"]).name for f in data["files"]] == ["broadcast.ts"]
    assert data["files"][0]["role"] == "video"
    assert main(["check", str(tmp_path / "app.ts")]) == 2
    assert "cannot tell what" in capsys.readouterr().err


def test_one_damaged_file_does_not_cost_the_report_on_the_others(capsys, tmp_path: Path) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(
        buffer, format="GIF", save_all=True, append_images=[Image.new("RGB", (64, 64), "blue")]
    )
    (tmp_path / "cut.gif").write_bytes(buffer.getvalue()[:173])
    shutil.copy(SAMPLE / "talking_head.mp4", tmp_path / "clip.mp4")
    status, data = run_json(capsys, str(tmp_path))
    assert status == 1 and len(data["files"]) == 2
    assert [f["ok"] for f in data["files"]] == [True, False]


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root reads every folder, so none can be made unreadable"
)
def test_an_unreadable_folder_is_bad_usage_not_a_silent_pass(capsys, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        assert main(["check", str(tmp_path)]) == 2
        assert "cannot read the folder" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)


def test_a_file_named_in_a_role_and_found_in_a_folder_is_checked_once(capsys) -> None:
    status, data = run_json(capsys, "--video", str(SAMPLE / "talking_head.mp4"), str(SAMPLE))
    assert status == 0
    assert [Path(f["path"]).name for f in data["files"]] == ["talking_head.mp4", "face.jpg", "voice.wav"]


def test_the_exit_status_survives_a_reader_that_stops_early() -> None:
    # `preflight check ... | head -c0`: the reader is gone before the report is written.
    producer = subprocess.Popen(
        [sys.executable, "-m", "preflight", "check", "--format", "json", str(BAD)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert producer.stdout is not None and producer.stderr is not None
    producer.stdout.close()
    assert producer.wait(timeout=120) == 1
    assert "Traceback" not in producer.stderr.read().decode()
