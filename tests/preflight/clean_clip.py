"""A clean 10 s 1280x720 25 fps H.264 MP4 with stereo AAC, as the probe describes it: the
facts the findings and the video planner's word tests change one at a time."""

from __future__ import annotations

from preflight import AudioStreamInfo, MediaInfo, VideoStreamInfo

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
MIB = 1024 * 1024

PICTURE = VideoStreamInfo(
    index=0,
    codec="h264",
    profile="High",
    pixel_format="yuv420p",
    coded_width=1280,
    coded_height=720,
    width=1280,
    height=720,
    rotation=0,
    avg_fps=25.0,
    nominal_fps=25.0,
    variable_frame_rate=False,
    frame_count=250,
    duration=10.0,
    start_time=0.0,
    bit_rate=2_000_000,
)
SOUND = AudioStreamInfo(
    index=1,
    codec="aac",
    profile="LC",
    sample_rate=48000,
    channels=2,
    channel_layout="stereo",
    sample_format="fltp",
    bit_depth=None,
    duration=10.0,
    start_time=0.0,
    bit_rate=128_000,
)
CLIP = MediaInfo(
    path="/clips/clip.mp4",
    size=2_700_000,
    container=MP4,
    duration=10.0,
    start_time=0.0,
    bit_rate=2_160_000,
    video=(PICTURE,),
    audio=(SOUND,),
)
