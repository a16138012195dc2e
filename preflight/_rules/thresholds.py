"""The thresholds of the face and voice findings a team may tune: ``CheckOptions.thresholds``,
or the ``[thresholds.face]`` and ``[thresholds.audio]`` tables of a settings file.

Every threshold here is ours, not the service's (its page says only "close-up,
front-facing", "a clear, loud human voice"); each default is justified where it is
defined. Detector internals (frame sizes, tone and silence detection) are not tunable.

Face boxes are BlazeFace's, which run from the brows to the chin: about three quarters of
the head's height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from .._exceptions import UsageError


@dataclass(frozen=True)
class _Bounds:
    """The values a threshold may take (both ends included), and its unit."""

    low: float
    high: float
    unit: str
    integer: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None."""
        kind = int if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            return f"must be {'a whole number' if self.integer else 'a number'} ({self.unit}), not {value!r}"
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return f"{value!r} is out of range: must be {self.low:g} to {self.high:g} ({self.unit})"
        return None


def _threshold(default: float, low: float, high: float, unit: str, integer: bool = False) -> Any:
    return field(default=default, metadata={"bounds": _Bounds(low, high, unit, integer)})


def bounds(kind: type[Any]) -> dict[str, _Bounds]:
    """Each threshold of a group and the values it takes."""
    return {f.name: f.metadata["bounds"] for f in fields(kind)}


def _validate(group: Any, name: str) -> None:
    for key, allowed in bounds(type(group)).items():
        value = getattr(group, key)
        problem = allowed.problem(value)
        if problem is not None:
            raise UsageError(f"thresholds.{name}.{key}: {problem}")
        if not allowed.integer and isinstance(value, int):
            object.__setattr__(group, key, float(value))  # -30 and -30.0 are one setting


@dataclass(frozen=True)
class FaceThresholds:
    """When a face finding fires (``[thresholds.face]`` in a settings file)."""

    #: ``Face.TooSmall`` (video): the target face box is lower than this many displayed
    #: pixels (median over the samples). Lip-sync generators redraw the mouth in a face crop
    #: of 256 px (MuseTalk, LatentSync; Wav2Lip uses 96 px); below 128 px the crop is
    #: upscaled more than twofold and the new mouth comes out visibly soft. LatentSync's own
    #: data filter drops faces under 256 px.
    min_px: int = _threshold(128, 1, 4096, "pixels", integer=True)
    #: ``Face.TooSmall`` (video): the face box is a smaller share (0-1) of the frame height
    #: than this. In a close-up the box is a third of the height or more (the four close-up
    #: clips in shared/media: 51-65%); at 15% the shot is a medium shot (a seated half-body
    #: clip there measures 15%, a full-length one 8%), and the service asks for a close-up.
    min_share: float = _threshold(0.15, 0.0, 1.0, "share of the frame height, 0-1")
    #: ``Face.NotFrontal`` (video and reference): the head is turned sideways further than
    #: this (degrees from facing the camera). Past about 30 degrees the far mouth corner
    #: starts to hide behind the cheek and lip-sync models, trained on mostly frontal talk
    #: footage, lose it. Real talking-head clips in shared/media stay within 22 degrees.
    max_yaw_deg: float = _threshold(30.0, 0.0, 90.0, "degrees")
    #: ``Face.NotFrontal``: the head is tilted up or down further than this (degrees): the
    #: mouth foreshortens. Real talking heads nod more than they turn: the clips in
    #: shared/media reach 24 degrees.
    max_pitch_deg: float = _threshold(30.0, 0.0, 90.0, "degrees")
    #: ``Face.TooSmall`` (reference image): the face box is lower than this many pixels.
    #: Face matchers (ArcFace, SFace) compare 112 px crops of the whole head, of which the
    #: box is about three quarters.
    ref_min_px: int = _threshold(80, 1, 4096, "pixels", integer=True)
    #: A second face counts as another person (``Face.Multiple``; in a reference image,
    #: ``InvalidFile.Content``) when its box is at least this share (0-1) of the largest
    #: face's height; a smaller one is a poster or somebody far in the background (in a
    #: reference image: a warning).
    other_person_share: float = _threshold(0.35, 0.0, 1.0, "share of the largest face's height, 0-1")

    def __post_init__(self) -> None:
        _validate(self, "face")


@dataclass(frozen=True)
class AudioThresholds:
    """When a voice finding fires (``[thresholds.audio]`` in a settings file)."""

    #: ``Audio.Quiet``: integrated loudness (LUFS) below this. Broadcast speech sits at -23
    #: LUFS (EBU R128), online speech at -16; at -28 the voice is 5 LU under broadcast level,
    #: and the service asks for a loud voice (its model reads mouth shapes from the voice's
    #: energy). ``preflight fix`` normalises a quiet voice to ``fix.target_lufs``, which must
    #: lie above this.
    quiet_lufs: float = _threshold(-28.0, -70.0, 0.0, "LUFS")
    #: ``Audio.Clipping``: a true peak above this (dBTP) distorts once encoded, even without
    #: flat-topped samples (runs of those are clipping at any setting).
    max_true_peak_dbtp: float = _threshold(1.0, -20.0, 6.0, "dBTP")
    #: ``Audio.Noisy``: speech stands less than this (dB) above the noise floor. At 20 dB,
    #: noise is plainly audible between words, and the model opens the mouth on it.
    min_snr_db: float = _threshold(20.0, 0.0, 90.0, "dB")
    #: ``Audio.NoSpeech``: speech fills less than this share (0-1) of the clip (a cough, a
    #: breath)...
    no_speech_share: float = _threshold(0.05, 0.0, 1.0, "share of the clip, 0-1")
    #: ...``Audio.MostlySilence``: less than this: the face will mostly sit with its mouth
    #: shut.
    mostly_silence_share: float = _threshold(0.4, 0.0, 1.0, "share of the clip, 0-1")
    #: ``Audio.LongSilence``: a single silence longer than this (seconds): a closed mouth
    #: that long looks frozen.
    long_silence_s: float = _threshold(5.0, 0.1, 3600.0, "seconds")
    #: ``Audio.Music``: this share (0-1) of the gaps between speech holds tones that come and
    #: go (clean speech: under 0.1 on our real clips, where breaths and room noise hold
    #: none; music 20-30 dB under the voice: 0.4-1.0).
    music_share: float = _threshold(0.3, 0.0, 1.0, "share of the gaps between speech, 0-1")
    #: ``Audio.LowSampleRate``: sampled at fewer than this many Hz: the voice is band-limited
    #: (8 kHz is telephone audio) and the mouth shapes for s, f and t live in the high
    #: frequencies it has lost. ``preflight fix`` resamples up to it (at most 48 kHz).
    min_sample_rate: int = _threshold(16000, 1000, 48000, "Hz", integer=True)

    def __post_init__(self) -> None:
        _validate(self, "audio")
        if self.no_speech_share > self.mostly_silence_share:
            raise UsageError(
                f"thresholds.audio.no_speech_share: {self.no_speech_share:g} is above "
                f"mostly_silence_share ({self.mostly_silence_share:g}); it must be the smaller "
                "(under it a clip has no speech at all, under the other it is mostly silence)"
            )


@dataclass(frozen=True)
class Thresholds:
    """The thresholds of the face and voice findings; the defaults are preflight's own.

    >>> Thresholds(audio=AudioThresholds(quiet_lufs=-32.0), face=FaceThresholds(min_px=96))
    """

    face: FaceThresholds = FaceThresholds()
    audio: AudioThresholds = AudioThresholds()

    def __post_init__(self) -> None:
        for name, kind in (("face", FaceThresholds), ("audio", AudioThresholds)):
            if not isinstance(getattr(self, name), kind):
                raise UsageError(f"thresholds.{name}: must be a {kind.__name__}")


#: The tables of ``[thresholds]`` and their classes.
GROUPS: dict[str, type[FaceThresholds] | type[AudioThresholds]] = {
    "face": FaceThresholds,
    "audio": AudioThresholds,
}
