"""Inputs the fuzzer found preflight mishandling, kept: each must now get clear findings,
with no exception escaping, no crash, and none of preflight's own mistakes hidden by a
catch-all. They run through the fuzzer's own worker process, so that a crash that comes
back fails its test instead of ending the test run.

``tests/fuzz/regressions`` holds the saved files; ``EXPECTED`` says what each one was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz.mutate import Mutant
from tests.fuzz.run import Fuzzer

# pytest-xdist (--dist loadgroup): this module's tests on one worker, so that its module and
# session fixtures (its fuzzer and workers) are made once, not once a worker.
pytestmark = pytest.mark.xdist_group("test_regressions")

REGRESSIONS = Path(__file__).resolve().parent / "regressions"

#: File -> words no finding's code or message may hold any more (besides the checks every
#: saved input gets: no exception, crash, hang or masked exception).
EXPECTED = {
    # Fuzz seed 2, input 55: two bytes of the avc1 sample entry changed, so the codec is
    # unknown and FFmpeg has no decoder, hence no codec context. The face scan failed on
    # its settings: "Face.Unchecked ... (AttributeError: 'NoneType' object has no attribute
    # 'skip_frame')", a masked exception.
    "unknown-video-codec.mp4": ("AttributeError", "skip_frame"),
    # Fuzz seed 3, input 12753: one bit of the WAV header flipped, 1 channel became 9. The
    # voice analysis segfaulted (PyAV reads past FFmpeg's plane pointers of a planar frame
    # of 8 channels or more): preflight check died with SIGSEGV.
    "nine-channels.wav": ("Audio.Unchecked",),
}
MODES = ("fast", "full", "job")


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    harness = Fuzzer(seed=0, out=tmp_path_factory.mktemp("failures"), bound=60.0, full_share=1.0, cli_every=0)
    yield harness
    harness.close()


def check(fuzzer: Fuzzer, path: Path, mode: str) -> dict[str, Any]:
    made = Mutant(seed=path.name, name=path.name, data=path.read_bytes(), operations=())
    failures, masked = len(fuzzer.summary.failures), sum(fuzzer.summary.masked.values())
    answer = fuzzer.one(0, made, mode)
    assert len(fuzzer.summary.failures) == failures, fuzzer.summary.text()
    assert sum(fuzzer.summary.masked.values()) == masked, fuzzer.summary.text()
    assert isinstance(answer, dict)
    return answer


def test_every_saved_input_is_listed() -> None:
    assert sorted(p.name for p in REGRESSIONS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_saved_input_gets_clear_findings(fuzzer: Fuzzer, name: str, mode: str) -> None:
    answer = check(fuzzer, REGRESSIONS / name, mode)
    said = " ".join(answer["codes"] + answer["messages"])
    assert answer["codes"] and not [word for word in EXPECTED[name] if word in said], said


@pytest.mark.parametrize(("codec", "channels"), [("wav", 8), ("m4a", 8), ("wav", 12)])
def test_a_voice_of_eight_channels_or_more_is_analysed(
    fuzzer: Fuzzer, media: Any, tmp_path: Path, codec: str, channels: int
) -> None:
    """The crash above, on files a user has: a 7.1 WAV or AAC voice, made by FFmpeg."""
    voice = media.write_audio(tmp_path / f"voice{channels}.{codec}", duration=2.5, channels=channels)
    answer = check(fuzzer, voice, "full")
    assert "Audio.Unchecked" not in answer["codes"], answer
