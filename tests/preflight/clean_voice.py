"""A clean 10 s mono 48 kHz 16-bit WAV voice, as the probe describes it and as the analysis
hears it: the facts the audio findings, the voice findings and the audio planner's word
tests change one at a time."""

from __future__ import annotations

from preflight import AudioStreamInfo, MediaInfo
from preflight._probe.voice import AudioAnalysis

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
#: -20 LUFS, peaks at -6 dBTP, speech 40 dB over the room from 0.2 s to 9.8 s.
HEARD = AudioAnalysis(
    duration=10.0,
    sample_rate=48000,
    channels=1,
    loudness_lufs=-20.0,
    sample_peak_dbfs=-6.5,
    true_peak_dbtp=-6.0,
    clipped_runs=0,
    channel_levels_db=(-25.0,),
    speech_share=0.8,
    speech_ranges=((0.2, 9.8),),
    noise_floor_db=-65.0,
    speech_level_db=-25.0,
)
