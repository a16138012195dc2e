"""`prep-and-retalk` guards the user's money: every finding is said before anything is
uploaded, and a finding that means "you will not get what you want" (the voice cut by the
video, no speech, no face, the wrong face) stops the job, paying nothing, unless the user
passes it (`--accept CODE`, `--force`, or the settings' `[prep]` table)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from retalk._cli.prep import main
from retalk._journal import Journal
from retalk.emulator import Emulator
from tests.conftest import SAMPLE, doc_snippet, run_on_terminal
from tests.retalk.conftest import EMULATED_KEY

VIDEO, VOICE = SAMPLE / "talking_head.mp4", SAMPLE / "voice.wav"


def prep(*args: str, fmt: str = "json") -> tuple[int, Any, str]:
    """Run the command in this process: exit status, stdout (parsed when JSON), stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*args, "--format", fmt])
    text = out.getvalue()
    return status, (json.loads(text) if fmt == "json" and text else text), err.getvalue()


def to(service: Emulator, tmp_path: Path) -> list[str]:
    return ["--base-url", service.base_url, "--journal", str(tmp_path / "j.sqlite")]


def journaled(tmp_path: Path) -> list[Any]:
    if not (tmp_path / "j.sqlite").exists():
        return []
    with Journal(tmp_path / "j.sqlite") as journal:
        return list(journal.jobs())


@pytest.fixture()
def silence(tmp_path: Path, media: Any) -> Path:
    """Four seconds of digital silence, as a voice track (Audio.NoSpeech)."""
    return Path(media.write_audio(tmp_path / "silence.wav", signal=np.zeros(4 * 16000), sample_rate=16000))


@pytest.fixture()
def long_voice(tmp_path: Path, media: Any) -> Path:
    """A 12 s speech-like voice: 8 s of it fall after the 4 s sample video ends."""
    return Path(
        media.write_audio(tmp_path / "long.wav", signal=media.voice_like(12.0, 16000), sample_rate=16000)
    )


def test_a_silent_voice_stops_the_job_before_any_upload_naming_the_finding_cost_and_flag(
    silence: Path, service: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    status, report, err = prep(str(VIDEO), str(silence), "-o", str(out), *to(service, tmp_path))
    assert status == 1 and not report["ok"], err
    assert [f["code"] for f in report["gated"]] == ["Audio.NoSpeech"]
    assert "nothing uploaded or paid" in report["error"] and "Audio.NoSpeech" in report["error"]
    assert "--accept Audio.NoSpeech" in report["error"] and "--force" in report["error"]
    assert f"about {report['cost_cny']:.2f} CNY" in report["error"] and report["cost_cny"] == pytest.approx(
        0.32
    )
    # Nothing reached the service, nothing was journaled, nothing was written.
    assert service.requests == [] and service.submissions == 0
    assert journaled(tmp_path) == [] and not out.exists()

    # Passed by name (a prefix works too): sent and billed.
    status, report, err = prep(
        str(VIDEO), str(silence), "-o", str(out), "--accept", "Audio", *to(service, tmp_path)
    )
    assert status == 0 and report["ok"] and report["gated"] == [], err
    assert service.submissions == 1 and report["billed_s"] == pytest.approx(4.0, abs=0.1)


def test_words_cut_by_the_video_stop_the_job_and_extend_video_or_force_sends_it(
    long_voice: Path, service: Emulator, tmp_path: Path
) -> None:
    status, report, _ = prep(
        str(VIDEO), str(long_voice), "-o", str(tmp_path / "a.mp4"), *to(service, tmp_path)
    )
    assert status == 1 and [f["code"] for f in report["gated"]] == ["Pair.SpeechCut"]
    cut = report["gated"][0]["details"]["speech_cut_s"]
    assert cut > 2.0 and "speech_cut_s (now 2 s)" in report["error"]
    assert "--extend-video" in report["gated"][0]["message"]
    assert service.requests == []
    # The video extended to the whole voice: no word is cut, nothing gates.
    status, report, err = prep(
        str(VIDEO), str(long_voice), "-o", str(tmp_path / "b.mp4"), "--extend-video", *to(service, tmp_path)
    )
    assert status == 0 and report["ok"] and report["result_duration_s"] == pytest.approx(12.0, abs=0.25), err
    # --force sends anyway (the cut accepted): one more task, the 4 s of the video.
    status, report, err = prep(
        str(VIDEO), str(long_voice), "-o", str(tmp_path / "c.mp4"), "--force", *to(service, tmp_path)
    )
    assert status == 0 and report["billed_s"] == pytest.approx(4.0, abs=0.1), err
    assert service.submissions == 2


def test_a_video_without_a_face_stops_the_job(media: Any, service: Emulator, tmp_path: Path) -> None:
    pattern = media.write_video(tmp_path / "pattern.mp4", duration=4.0, source="pattern")
    status, report, _ = prep(str(pattern), str(VOICE), "-o", str(tmp_path / "o.mp4"), *to(service, tmp_path))
    assert status == 1 and [f["code"] for f in report["gated"]] == ["Face.NotFound"]
    assert service.requests == [] and journaled(tmp_path) == []


def test_the_projects_settings_choose_what_gates(
    silence: Path, long_voice: Path, service: Emulator, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for source in (silence, long_voice):
        (project / source.name).write_bytes(source.read_bytes())
    video = project / "talk.mp4"
    video.write_bytes(VIDEO.read_bytes())

    def run(voice: str, *extra: str) -> tuple[int, Any, str]:
        return prep(
            str(video), str(project / voice), "-o", str(tmp_path / f"{voice}.mp4"), "--dry-run", *extra
        )

    (project / "preflight.toml").write_text('[prep]\ngate = ["Pair.SpeechCut", "Face"]\n')
    status, report, err = run("silence.wav")
    assert status == 0 and report["gated"] == [], err  # Audio.NoSpeech is not in the list
    status, report, _ = run("long.wav")
    assert status == 1 and [f["code"] for f in report["gated"]] == ["Pair.SpeechCut"]
    # The threshold is the finding's own measure: 8 s of speech cut is below 60 s.
    (project / "preflight.toml").write_text("[prep]\nspeech_cut_s = 60\n")
    status, report, _ = run("long.wav")
    assert status == 0 and report["gated"] == []
    assert run("silence.wav", "--isolated")[0] == 1  # the defaults, without the settings
    # A mistake in the table is a usage error before any work.
    (project / "preflight.toml").write_text('[prep]\ngate = ["Pair.Nope"]\n')
    status, _, err = prep(str(video), str(project / "long.wav"), "-o", str(tmp_path / "x.mp4"),
                          *to(service, tmp_path))  # fmt: skip
    assert status == 2 and "prep.gate: unknown code or prefix Pair.Nope" in err
    status, _, err = run("long.wav", "--accept", "Pair.Nope", "--isolated")
    assert status == 2 and "--accept Pair.Nope" in err
    assert service.requests == []


def test_a_gated_row_of_a_batch_is_not_sent_and_the_others_are(
    silence: Path, service: Emulator, tmp_path: Path
) -> None:
    batch = tmp_path / "jobs.csv"
    batch.write_text(
        "video,audio,ref,output,options\n"
        f"{VIDEO},{silence},,{tmp_path / 'silent.mp4'},\n"
        f"{VIDEO},{VOICE},,{tmp_path / 'spoken.mp4'},\n"
    )
    status, report, err = prep("--batch", str(batch), *to(service, tmp_path))
    rows = {Path(j["output"]).name: j for j in report["jobs"]}
    assert status == 1, err
    assert rows["silent.mp4"]["status"] == "gated" and rows["silent.mp4"]["gated"] == ["Audio.NoSpeech"]
    assert rows["spoken.mp4"]["status"] == "done"
    assert report["summary"]["gated"] == 1 and report["summary"]["done"] == 1
    assert service.submissions == 1 and not (tmp_path / "silent.mp4").exists()
    assert "gated: Audio.NoSpeech (nothing sent)" in err
    # The row's own options may pass it.
    batch.write_text(
        "video,audio,ref,output,options\n"
        f"{VIDEO},{silence},,{tmp_path / 'silent.mp4'},--accept Audio.NoSpeech\n"
    )
    status, report, err = prep("--batch", str(batch), *to(service, tmp_path))
    assert status == 0 and report["jobs"][0]["status"] == "done", err


def test_every_finding_is_named_in_text_before_anything_is_sent(long_voice: Path, tmp_path: Path) -> None:
    # --no-fix --dry-run said "2 warnings" and named none of them.
    for extra in (["--no-fix"], []):
        status, text, _ = prep(
            str(VIDEO), str(long_voice), "-o", str(tmp_path / "o.mp4"), "--dry-run", *extra, fmt="text"
        )
        assert status == 1, text
        lines = text.splitlines()
        said = {line.split()[1] for line in lines if line.startswith("  warning ")}
        assert {"Pair.DurationMismatch", "Pair.SpeechCut"} <= said, text
        cut = next(line for line in lines if "Pair.SpeechCut  " in line)
        assert "speech come after the video ends" in cut and "--extend-video" in cut
        assert "gated (stops the job before anything is sent): Pair.SpeechCut" in text


def test_on_a_terminal_the_findings_and_the_gate_are_shown_and_nothing_is_paid(
    silence: Path, service: Emulator, tmp_path: Path
) -> None:
    status, shown = run_on_terminal(
        [sys.executable, "-m", "retalk._cli.prep", str(VIDEO), str(silence), "-o", str(tmp_path / "o.mp4"),
         *to(service, tmp_path)],
        env={**os.environ, "DASHSCOPE_API_KEY": EMULATED_KEY},
    )  # fmt: skip
    text = " ".join(shown.decode(errors="replace").split())
    assert status == 1, text
    assert "warning Audio.NoSpeech" in text and "--accept Audio.NoSpeech" in text
    assert service.requests == []


def test_a_long_voice_under_a_short_video_with_split_is_not_quietly_sent_as_one_part(
    shared_media: Path, service: Emulator, tmp_path: Path
) -> None:
    # The case: a 129 s voice under an 8 s video sent one 8 s part, without a word.
    voice = tmp_path / "long.wav"
    speech = _samples(shared_media / "MuseTalk__audio__eng.wav")
    _write_wav(voice, np.concatenate([speech, speech, speech[: 9 * 16000]]))
    video = shared_media / "LivePortrait__driving__d19.mp4"
    status, report, err = prep(
        str(video), str(voice), "-o", str(tmp_path / "o.mp4"), "--split", *to(service, tmp_path)
    )
    assert status == 1 and [f["code"] for f in report["gated"]] == ["Pair.SpeechCut"], err
    assert report["gated"][0]["details"]["speech_cut_s"] > 100
    assert service.requests == [] and journaled(tmp_path) == []


def test_the_reference_face_not_in_the_video_stops_the_job(
    shared_media: Path, service: Emulator, tmp_path: Path
) -> None:
    ref = shared_media / "face_recognition__obama-1080p.jpg"
    status, report, err = prep(
        str(VIDEO), str(VOICE), "--ref", str(ref), "-o", str(tmp_path / "o.mp4"), *to(service, tmp_path)
    )
    assert status == 1 and [f["code"] for f in report["gated"]] == ["Face.RefMismatch"], err
    assert service.requests == []


def test_an_8_s_video_under_a_60_s_voice_says_so_before_paying(shared_media: Path, tmp_path: Path) -> None:
    # The first case: "checked voice.wav: nothing to report", then "done, billed 8.0 s".
    status, text, _ = prep(
        str(shared_media / "SadTalker__ref_video__WDA_KatieHill_000.mp4"),
        str(shared_media / "MuseTalk__audio__eng.wav"), "-o", str(tmp_path / "o.mp4"), "--dry-run",
        fmt="text",
    )  # fmt: skip
    assert status == 1
    assert "warning Pair.DurationMismatch" in text and "warning Pair.SpeechCut" in text
    assert "47.6 s of speech come after the video ends" in text
    assert "about 0.64 CNY (8.00 s billed)" in text


def _samples(path: Path) -> np.ndarray:
    """The file's sound as 16 kHz mono 16-bit samples."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    return np.concatenate(chunks)


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        for start in range(0, len(samples), 16000):
            frame = av.AudioFrame.from_ndarray(
                samples[start : start + 16000].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_the_gate_settings_of_the_pipeline_page_work_as_written(
    silence: Path, long_voice: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(doc_snippet("prep-gates"), encoding="utf-8")
    for source in (silence, long_voice, VIDEO):
        (project / source.name).write_bytes(source.read_bytes())

    def gated(voice: str) -> list[str]:
        status, report, err = prep(
            str(project / VIDEO.name), str(project / voice), "-o", str(tmp_path / "o.mp4"), "--dry-run"
        )
        assert status == (1 if report["gated"] else 0), err
        return [f["code"] for f in report["gated"]]

    assert gated("silence.wav") == []  # Audio.NoSpeech is not in that list
    assert gated("long.wav") == ["Pair.SpeechCut"]  # 8 s of speech cut, from 5 s on


def test_a_job_sent_with_accept_is_not_gated_again_nor_offered_force_to_pay_twice(
    silence: Path, service: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    args = [str(VIDEO), str(silence), "-o", str(out), *to(service, tmp_path)]
    status, report, err = prep(*args, "--accept", "Audio.NoSpeech")
    assert status == 0 and report["ok"] and service.submissions == 1, err
    # The same command without --accept: the journal's job is found before any gate.
    status, report, err = prep(*args)
    assert status == 0 and report["ok"] and report["gated"] == [], (report, err)
    assert service.submissions == 1
    # Another output for it: said to be sent already, not gated with "nothing paid ... --force".
    status, report, err = prep(
        str(VIDEO), str(silence), "-o", str(tmp_path / "b.mp4"), *to(service, tmp_path)
    )
    assert status != 0 and "nothing uploaded or paid" not in err + json.dumps(report)
    assert "already" in err and service.submissions == 1


def test_align_trim_is_not_gated_but_says_how_much_speech_it_cuts(
    long_voice: Path, service: Emulator, tmp_path: Path
) -> None:
    args = [str(VIDEO), str(long_voice), "-o", str(tmp_path / "a.mp4"), "--align", "trim"]
    status, report, err = prep(*args, *to(service, tmp_path), "--dry-run")
    cut = report["trim_cuts_speech_s"]
    assert status == 0 and report["gated"] == [] and cut > 2.0, err
    status, text, err = prep(*args, *to(service, tmp_path), fmt="text")
    assert status == 0, err
    assert f"--align trim cuts {cut:.1f} s of speech (Pair.SpeechCut of the inputs)" in text
