"""A clean 10 s mono 48 kHz 16-bit WAV voice, as the probe describes it: the facts the audio
findings and the audio planner's word tests change one at a time."""

from __future__ import annotations

from preflight import AudioStreamInfo, MediaInfo

SOUND = AudioStreamInfo(
    index=0,
    codec="pcm_s16le",
    profile=None,
    sample_rate=48000,
    channels=1,
    channel_layout="mono",
    sample_format="s16",
    bit_depth=16,
    duration=10.0,
    start_time=0.0,
    bit_rate=768_000,
)
VOICE = MediaInfo(
    path="/voices/me.wav",
    size=960_044,
    container="wav",
    duration=10.0,
    start_time=0.0,
    bit_rate=768_000,
    audio=(SOUND,),
)
