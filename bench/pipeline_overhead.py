"""Benchmark: what ``prep-and-retalk`` adds to the fix and transfer steps it runs.

    python bench/pipeline_overhead.py [--runs 2] [--only single|split|split-fix]

For each job, in the same run, alternately:
- the peer: the steps done by hand, ``fix_paths`` (the check and the fix) then ``run_job``
  (upload, submit, wait, download) for each file sent (for a split job: each part the
  pipeline cut, sent as its own job);
- the pipeline: ``prepare_and_retalk`` on the same inputs, which also plans, cuts, checks
  the parts, joins and verifies.

Both talk to the emulator over loopback with no task delay, so the service's own time
(minutes, in reality) does not hide the overhead. Prints each stage of the pipeline, the
two wall times (median of ``--runs``), the pipeline against the peer ("vs hand": two
separate runs, so the fix's own run-to-run noise is in it), and what the pipeline adds in
the same run ("adds": its wall time less its own media and transfer stages, that is the
fix, the cut and the join of a split job, and the upload, submit, wait and download, as
a share of those stages; what remains is the checks of the parts, the planning, the
journal and the verification).

Jobs: ``single``, 60 s of 480p at 10 fps in MKV with a quiet MP3 voice in M4A (fps,
scale, loudness fixed); ``split``, 200 s of compliant 640x640 H.264 and a WAV voice (the
fix only checks: the worst case for the pipeline's share); ``split-fix``, 200 s of 480p
at 10 fps in MKV with an MP3 voice in M4A, fixed then sent in parts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures"))
import make_fixtures  # noqa: E402
from _figures import record  # noqa: E402  (bench/, beside this script)

from preflight import CheckOptions, FixOptions, check_paths, fix_paths  # noqa: E402
from preflight._fix.parts import part_names  # noqa: E402
from retalk import Client, PollPolicy  # noqa: E402
from retalk._journal import Journal  # noqa: E402
from retalk._run.job import run_job  # noqa: E402
from retalk._run.pipeline import SPLIT_IGNORES, prepare_and_retalk  # noqa: E402
from retalk.emulator import Emulator, Faults  # noqa: E402

CACHE = ROOT / "bench" / ".cache" / "pipeline"
KEY = "sk-bench"
POLL = PollPolicy(steps=(0.05,), cap_s=0.1, jitter=0.0)


def inputs(job: str) -> tuple[Path, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    if job == "split":
        video, audio = CACHE / "long 640.mp4", CACHE / "long voice.wav"
        if not video.exists():
            make_fixtures.write_video(video, width=640, height=640, duration=200, audio=False, gop=25)
        if not audio.exists():
            make_fixtures.write_audio(audio, duration=200, sample_rate=44100)
        return video, audio
    seconds = 60 if job == "single" else 200
    video, audio = CACHE / f"{job} 480p10.mkv", CACHE / f"{job} quiet.m4a"
    if not video.exists():
        make_fixtures.write_video(video, width=854, height=480, fps=10, duration=seconds, audio=False)
    if not audio.exists():
        voice = make_fixtures.voice_like(seconds, 44100, level_db=-30)
        make_fixtures.write_audio(
            audio, signal=voice, sample_rate=44100, codec="libmp3lame", container_format="mp4"
        )
    return video, audio


def client(emulator: Emulator) -> Client:
    return Client(KEY, base_url=emulator.base_url, poll=POLL)


def by_hand(job: str, video: Path, audio: Path, emulator: Emulator, work: Path) -> tuple[float, float]:
    """The fix, then each file the pipeline sends, sent as its own job: (fix, transfer) s."""
    split = job != "single"
    start = time.perf_counter()
    fixed = fix_paths(
        video=video,
        audio=audio,
        out_dir=work / "fixed",
        options=FixOptions(max_duration_s=None) if split else FixOptions(),
        check_options=CheckOptions(ignore=SPLIT_IGNORES) if split else CheckOptions(),
    )
    assert fixed.ok, fixed.to_dict()
    outputs = {f.role: f.output for f in fixed.files}
    fixed_at = time.perf_counter()
    if split:
        # The same parts the pipeline sends (cut by the pipeline's run, kept in its folder).
        (folder,) = (work.parent / "pipeline.work").glob("parts-*")
        count = len(list(folder.glob("part-*.mp4")))
        assert count >= 2, folder
        parts = [(p.video, p.audio) for p in part_names(folder, count)]
    else:
        parts = [(outputs["video"], outputs["audio"])]
    with client(emulator) as api, Journal(work / "journal.sqlite") as journal:
        for number, (part_video, part_audio) in enumerate(parts):
            assert part_video and part_audio
            run_job(api, journal, part_video, part_audio, output=str(work / f"r{number}.mp4"), force=True)
    return fixed_at - start, time.perf_counter() - fixed_at


def pipeline(
    job: str, video: Path, audio: Path, emulator: Emulator, work: Path
) -> tuple[float, float, list[str]]:
    """The pipeline's wall time, the time of its own fix and transfer stages, its stages."""
    start = time.perf_counter()
    with client(emulator) as api, Journal(work / "journal.sqlite") as journal:
        result = prepare_and_retalk(
            api,
            journal,
            str(video),
            str(audio),
            None,
            str(work / "pipeline.mp4"),
            split=job != "single",
            force=True,
        )
    wall = time.perf_counter() - start
    assert result.ok, result.error
    lines = [f"    {s.name:32} {s.seconds:7.2f} s  {s.detail[:70]}" for s in result.stages]
    # The media and transfer steps: the fix, the cut and the join (for a split job), and
    # the upload, submit, wait and download. The rest is the pipeline's own work.
    media = ("check and fix", "cut into parts", "upload, submit, wait, download", "join")
    steps = sum(s.seconds for s in result.stages if s.name in media)
    return wall, steps, lines


#: What each job is, for the table of ``bench/run.py``.
DESCRIBED = {
    "single": "60 s 480p MKV + M4A, fixed, sent whole",
    "split": "200 s compliant job, cut in 2, joined",
    "split-fix": "200 s 480p MKV + M4A, fixed, cut in 2, joined",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", choices=("single", "split", "split-fix"))
    args = parser.parse_args()
    jobs = [args.only] if args.only else ["single", "split", "split-fix"]
    print(f"{'job':10} {'by hand':>9} {'pipeline':>9} {'vs hand':>9} {'adds':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        root = Path(scratch)
        # Warm: the face engine loads once per process, before either side is timed.
        warm = inputs("split")
        check_paths(video=warm[0], audio=warm[1])
        with Emulator(
            root / "service", api_key=KEY, faults=Faults(task_seconds=0.0, submit_interval_s=0)
        ) as emu:
            for job in jobs:
                video, audio = inputs(job)
                hand_times, pipe_times, hand_fix, hand_send, added = [], [], [], [], []
                stages: list[str] = []
                for run in range(args.runs):
                    work = root / f"{job}-{run}"
                    work.mkdir()
                    # The pipeline first: the split peer sends the parts it cut.
                    wall, steps, stages = pipeline(job, video, audio, emu, work)
                    pipe_times.append(wall)
                    added.append((wall - steps) / steps)
                    hand = work / "hand"
                    hand.mkdir()
                    fix_s, send_s = by_hand(job, video, audio, emu, hand)
                    hand_fix.append(fix_s)
                    hand_send.append(send_s)
                    hand_times.append(fix_s + send_s)
                hand_s, pipe_s = statistics.median(hand_times), statistics.median(pipe_times)
                adds = 100 * statistics.median(added)
                print(
                    f"{job:10} {hand_s:8.2f}s {pipe_s:8.2f}s "
                    f"{100 * (pipe_s / hand_s - 1):+8.1f}% {adds:6.1f}%"
                )
                print(
                    f"    by hand: fix {statistics.median(hand_fix):.2f} s, "
                    f"send {statistics.median(hand_send):.2f} s; the pipeline's last run:"
                )
                print("\n".join(stages))
                record("pipeline_overhead", f"prep-and-retalk, {DESCRIBED[job]}", pipe_s, "s",
                       "the same steps by hand (fix_paths, then run_job)", hand_s,
                       goal=f"overhead {adds:.1f}% of its own stages")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
