"""Checks across the files of one job: does the voice fit the video?

The service "truncates the longer file to match the shorter one" unless the request sets
``video_extension`` to true, in which case a video shorter than the voice is played
forward, then backward, until the voice ends. It bills every second of the output.
"""

from __future__ import annotations

from typing import Any

from .. import limits
from .._models import Finding, MediaInfo
from .._probe.voice import AudioAnalysis
from .finding import finding

#: Voice and video closer than this in length (one frame at 25 fps) count as equal: the
#: service's cut would be invisible.
DURATION_TOLERANCE_S = 0.04
#: Less speech than this (s) past the video's end is a breath or a click, not words.
SPEECH_CUT_MIN_S = 0.2


def _cny(seconds: float) -> str:
    return f"{seconds * limits.PRICE_CNY_PER_SECOND:.2f} CNY"


def pair_findings(
    video: MediaInfo | None, audio: MediaInfo | None, speech: AudioAnalysis | None = None
) -> list[Finding]:
    """``Pair.*`` findings for a job's video and audio (either may be missing or unread);
    ``speech`` is the voice's analysis, when it was listened to."""
    if video is None or audio is None or not video.opened or not audio.opened:
        return []
    findings: list[Finding] = []
    video_s, audio_s = video.stream_length("video"), audio.stream_length("audio")
    if video_s is not None and audio_s is not None:
        findings.extend(_duration_mismatch(video_s, audio_s))
        if speech is not None and audio_s - video_s > DURATION_TOLERANCE_S:
            findings.extend(_speech_cut(speech, video_s))
    if video.audio:
        findings.append(
            finding(
                "Pair.VideoAudioReplaced",
                "The video has its own sound track; the service replaces it with the new voice, "
                "so nothing of it (music, room sound) survives in the result.",
                video_audio_streams=len(video.audio),
            )
        )
    return findings


def _duration_mismatch(video_s: float, audio_s: float) -> list[Finding]:
    gap = audio_s - video_s
    if abs(gap) <= DURATION_TOLERANCE_S:
        return []
    details: dict[str, Any] = {
        "video_s": round(video_s, 3),
        "audio_s": round(audio_s, 3),
        "difference_s": round(gap, 3),
    }
    if gap > 0:
        message = (
            f"The voice ({audio_s:.2f} s) is {gap:.2f} s longer than the video ({video_s:.2f} s). "
            f"By default the service cuts the voice to {video_s:.2f} s, so its last {gap:.2f} s "
            f"are never heard; with video_extension=true (prep-and-retalk --extend-video) it "
            f"plays the video forward, then backward, to cover all {audio_s:.2f} s instead "
            f"(output {audio_s:.2f} s, {_cny(audio_s)} against {_cny(video_s)})."
        )
        details.update(
            output_s=round(video_s, 3),
            output_with_video_extension_s=round(audio_s, 3),
            lost_s=round(gap, 3),
        )
    else:
        message = (
            f"The video ({video_s:.2f} s) is {-gap:.2f} s longer than the voice ({audio_s:.2f} s). "
            f"The service cuts the video to {audio_s:.2f} s: its last {-gap:.2f} s are dropped "
            "(video_extension changes nothing here). Pad the voice with silence to keep them; "
            "the mouth stays closed in silent parts."
        )
        details.update(output_s=round(audio_s, 3), lost_s=round(-gap, 3))
    return [finding("Pair.DurationMismatch", message, **details)]


def _speech_cut(speech: AudioAnalysis, video_s: float) -> list[Finding]:
    """Speech the default cut would drop: the voice after the video's end."""
    lost = [(max(a, video_s), b) for a, b in speech.speech_ranges if b > video_s]
    lost_s = sum(b - a for a, b in lost)
    if lost_s < SPEECH_CUT_MIN_S:
        return []  # only silence (or a breath) is cut
    return [
        finding(
            "Pair.SpeechCut",
            f"{lost_s:.1f} s of speech come after the video ends at {video_s:.2f} s (from "
            f"{lost[0][0]:.1f} s on); the service's default cut drops those words. Send with "
            "--extend-video (prep-and-retalk; the API's video_extension=true), use a longer "
            "video, or shorten the voice.",
            speech_cut_s=round(lost_s, 2),
            first_cut_word_s=round(lost[0][0], 2),
            video_s=round(video_s, 3),
        )
    ]
