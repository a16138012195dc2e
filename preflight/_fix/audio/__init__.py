"""Fixing the voice: plan the least change that makes an audio file pass, then write it.

``plan`` decides from the check's findings, ``write`` carries a plan out with PyAV, and
the steps on the samples live apart: ``samples`` (decode, cut or pad with room tone, 16-bit
WAV), ``noise`` (denoise) and ``loudness`` (measure, normalise, limit).
"""

from .plan import AudioPlan, plan_audio
from .write import write_audio

__all__ = ["AudioPlan", "plan_audio", "write_audio"]
