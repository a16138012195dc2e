"""The last part of a job sent in parts ends with its voice: a real talking-head clip
(with B-frames, so copied parts could carry pictures past their end as references) under
a real voice that ends between two frames. Its video never runs past its voice, so the
service's result keeps every frame sent, and the results join by copying packets."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from preflight._fix.parts import join_parts, plan_split, write_parts

FPS = 25
VIDEO_S = 40
#: Ends a quarter of a frame after a frame boundary: the last part's video must not round up.
VOICE_S = 36.29


def frames_of(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def length_of(path: Path, kind: str) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        assert stream.duration is not None and stream.time_base is not None
        return float(stream.duration * stream.time_base)


@pytest.fixture(scope="module", params=[10, 250], ids=["copied", "encoded"])
def clip_and_voice(
    request: pytest.FixtureRequest, shared_media: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, bool]:
    """A real 8 s face clip looped to 40 s (x264 with B-frames; a keyframe every 0.4 s, so
    the parts are packet copies, or every 10 s, so they are encoded), the first 36.29 s of
    a real English voice, and whether the parts are copies."""
    gop: int = request.param
    folder = tmp_path_factory.mktemp("last-part")
    with av.open(str(shared_media / "SadTalker__ref_video__WDA_KatieHill_000.mp4")) as source:
        pictures = [frame.to_ndarray(format="yuv420p") for frame in source.decode(video=0)]
    video = folder / "talk.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height = pictures[0].shape[1], pictures[0].shape[0] * 2 // 3
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(gop), "sc_threshold": "0", "bf": "3", "preset": "veryfast", "crf": "30"}
        for number in range(VIDEO_S * FPS):
            frame = av.VideoFrame.from_ndarray(pictures[number % len(pictures)], format="yuv420p")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with av.open(str(shared_media / "MuseTalk__audio__eng.wav")) as source:
        rate = source.streams.audio[0].rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        blocks = [f.to_ndarray()[0] for frame in source.decode(audio=0) for f in resampler.resample(frame)]
    samples = np.concatenate(blocks)[: round(VOICE_S * rate)]
    voice = folder / "voice.wav"
    with av.open(str(voice), "w") as out:
        track = out.add_stream("pcm_s16le", rate=rate)
        track.layout = "mono"
        block = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        block.sample_rate = rate
        out.mux(track.encode(block))
        out.mux(track.encode())
    return video, voice, gop == 10


def test_the_last_parts_video_ends_with_its_voice_and_the_results_join_by_copying(
    clip_and_voice: tuple[Path, Path, bool], tmp_path: Path
) -> None:
    video, voice, copied = clip_and_voice
    plan = plan_split(video, voice, max_part_s=25)
    assert len(plan.parts) == 2 and plan.copy == copied
    files = write_parts(video, voice, plan, tmp_path / "parts")
    last, sent = plan.parts[-1], files[-1]
    video_s, voice_s = length_of(Path(sent.video), "video"), length_of(Path(sent.audio), "audio")
    # Not a frame past the voice (the service would cut it, and the join would encode)...
    assert video_s <= voice_s + 1e-3, (video_s, voice_s)
    # ...and the part holds the frames the plan says, no reference picture of after its end...
    assert frames_of(Path(sent.video)) == last.frames
    # ...cut at most a few frames before the voice ends (the B-frames' run).
    assert voice_s - video_s < 5 / FPS
    # The parts as their own results (a service that keeps every frame): copied end to end.
    joined = join_parts([f.video for f in files], voice, plan, tmp_path / "joined.mp4")
    assert joined.video == "copy" and joined.notes == ()
    assert frames_of(tmp_path / "joined.mp4") == sum(p.frames for p in plan.parts)
