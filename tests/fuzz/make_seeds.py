"""Write the fuzzer's seed files: tiny valid media of every kind preflight reads.

Run ``python -m tests.fuzz.make_seeds`` to regenerate ``tests/fuzz/seeds``. The files are
committed, so that a (seed, input number) pair names the same mutated bytes on every
machine, whatever FFmpeg build would encode them today. They are made with the fixture
writers (``fixtures/make_fixtures.py``) and kept small, so that a random change is likely
to land in the structure (headers, boxes, tables) rather than deep in the pixels.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds"
sys.path.insert(0, str(HERE.parent.parent / "fixtures"))

import make_fixtures as media  # noqa: E402  (the fixture script doubles as the writers' library)

#: Seed file name -> how to write it. The videos are 2 s, with sound.
WRITERS: dict[str, Callable[[Path], Path]] = {
    # A face big enough to be found, so that the face rules run too.
    "video.mp4": lambda p: media.write_video(
        p, width=128, height=128, fps=25, duration=2.0, source="portrait", quality=40
    ),
    "video.mkv": lambda p: media.write_video(
        p, width=64, height=64, fps=25, duration=2.0, source="face", quality=40
    ),
    "video.avi": lambda p: media.write_video(
        p, width=64, height=64, fps=25, duration=2.0, source="face", quality=40
    ),
    "voice.wav": lambda p: media.write_audio(p, duration=2.0, sample_rate=8000),
    "voice.mp3": lambda p: media.write_audio(p, duration=2.0, sample_rate=16000),
    "voice.m4a": lambda p: media.write_audio(p, duration=2.0, sample_rate=16000),
    "face.jpg": lambda p: media.write_image(p, width=96, height=96, quality=60),
    "face.png": lambda p: media.write_image(p, width=48, height=48),
    "face.webp": lambda p: media.write_image(p, width=96, height=96, quality=60),
}


def seed_files(folder: Path = SEEDS) -> list[Path]:
    """The committed seeds, in a fixed order."""
    return [folder / name for name in WRITERS]


def main() -> int:
    SEEDS.mkdir(exist_ok=True)
    for name, write in WRITERS.items():
        path = write(SEEDS / name)
        print(f"{path.stat().st_size:>8,}  {path.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
