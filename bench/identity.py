"""What telling who a face is adds to a full `preflight check --video V --ref R`.

    python bench/identity.py [--rounds N]

Each round runs, as fresh processes (Python start-up, mediapipe's import and dlib's model
loading included), the whole check of a job with a reference image, against the same
command with the reference-match codes ignored (`--ignore Face.RefMatch,Face.RefMismatch`),
which checks the same files without describing any face. Clips: the sample talking head
(the face photo as reference) and, when ../shared/media is there, a real 8 s clip with a
frame of it as reference. Rounds interleaved; medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import time_check
from _figures import record

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "fixtures" / "sample"
SHARED = ROOT.parent / "shared" / "media"
WITHOUT_IDENTITY = ["--ignore", "Face.RefMatch,Face.RefMismatch"]


def jobs(folder: Path) -> list[tuple[str, Path, Path]]:
    found = [("sample talking head, 4 s 640x360", SAMPLE / "talking_head.mp4", SAMPLE / "face.jpg")]
    clip = SHARED / "SadTalker__ref_video__WDA_KatieHill_000.mp4"
    if clip.is_file():
        import av

        with av.open(str(clip)) as container:
            frame = next(f for f in container.decode(video=0) if f.time is not None and f.time >= 2.23)
            frame.to_image().save(folder / "frame.png")
        found.append(("real clip, 8 s 512x512", clip, folder / "frame.png"))
    return found


def timed(video: Path, ref: Path, extra: list[str]) -> float:
    return time_check(["--no-cache", "--format", "json", "--video", str(video), "--ref", str(ref), *extra])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per job (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="preflight-bench-") as folder:
        for name, video, ref in jobs(Path(folder)):
            timed(video, ref, [])  # warm the page cache and the libraries
            with_identity, without = [], []
            for _ in range(args.rounds):
                with_identity.append(timed(video, ref, []))
                without.append(timed(video, ref, WITHOUT_IDENTITY))
            ours, peer = statistics.median(with_identity), statistics.median(without)
            print(
                f"{name}: check --video --ref {ours:.2f} s, without identity {peer:.2f} s, "
                f"identity adds {ours - peer:+.2f} s ({(ours / peer - 1) * 100:+.0f}%)"
            )
            record(
                "identity",
                f"check --video V --ref R, {name}",
                ours,
                "s",
                "the same check without identity (ref-match codes ignored)",
                peer,
                goal="adds under 0.5 s",
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
