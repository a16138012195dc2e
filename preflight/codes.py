"""The stable finding codes, their default severity and what each means.

``InvalidFile.*`` codes are the service's own error codes, used when the service would
reject the file. The other codes are advice, prefixed by what they are about.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._models import Severity


@dataclass(frozen=True)
class Code:
    code: str
    severity: Severity
    summary: str


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

CODES: dict[str, Code] = {
    c.code: c
    for c in (
        Code("InvalidFile.Openerror", _E, "cannot be opened, or has no stream of the needed kind"),
        Code("InvalidFile.Format", _E, "container, extension or codec not accepted"),
        Code("InvalidFile.Size", _E, "file larger than the service accepts"),
        Code("InvalidFile.Resolution", _E, "a video side outside 640-2048 px"),
        Code("InvalidFile.FPS", _E, "video frame rate outside 15-60 fps"),
        Code("InvalidFile.Duration", _E, "video or audio shorter than 2 s or longer than 120 s"),
        Code("InvalidFile.ImageSize", _E, "image aspect ratio above 2 or a side above 4096 px"),
        Code("InvalidFile.Content", _E, "reference image with no person or several"),
        Code("InvalidFile.FaceNotMatch", _E, "reference face not found in the video"),
        Code("Video.ExtensionMismatch", _W, "extension names another accepted container"),
        Code("Video.VariableFrameRate", _W, "frame intervals vary; lips may drift"),
        Code("Video.Rotated", _W, "stored sideways with a rotation flag"),
        Code("Video.PixelFormat", _W, "pixel format that many H.264/H.265 decoders reject"),
        Code("Video.MultipleStreams", _I, "more than one video stream; the first is used"),
        Code("Video.DurationUnknown", _W, "the container does not say how long the video is"),
        Code("Video.AudioOffset", _W, "the video's own sound track plays at no moment of its picture"),
        Code("Video.FrameRateUnknown", _W, "the container does not say the frame rate"),
        Code("Video.HeaderLength", _W, "the MP4 header claims a length outside 2-120 s; the tracks do not"),
        Code("Audio.ExtensionMismatch", _W, "extension names another accepted format"),
        Code("Audio.MultipleStreams", _I, "more than one audio stream; the first is used"),
        Code("Audio.DurationUnknown", _W, "the container does not say how long the audio is"),
        Code("Audio.Quiet", _W, "voice quieter than -28 LUFS"),
        Code("Audio.Clipping", _W, "voice clips (flat-topped samples or a hot true peak)"),
        Code("Audio.NoSpeech", _W, "no speech found in the voice track"),
        Code("Audio.MostlySilence", _W, "speech fills less than 40% of the voice track"),
        Code("Audio.LongSilence", _I, "a single silence longer than 5 s"),
        Code("Audio.Noisy", _W, "speech less than 20 dB above the noise floor"),
        Code("Audio.Music", _W, "tonal sound (likely music) fills the pauses between speech"),
        Code("Audio.LowSampleRate", _W, "sample rate below 16 kHz (telephone quality)"),
        Code("Audio.SilentChannel", _W, "a dead channel in a multi-channel voice"),
        Code("Audio.Unchecked", _W, "the voice could not be analysed (decoding failed)"),
        Code("Image.ExtensionMismatch", _W, "extension names another accepted format"),
        Code("Image.Rotated", _W, "EXIF orientation tag rotates or mirrors the image"),
        Code("Image.Animated", _W, "animated image; only one frame can be used"),
        Code("Image.ColorMode", _W, "colour mode that face detectors read badly"),
        Code("Face.NotFound", _W, "no face anywhere in the video: nothing would be lip-synced"),
        Code("Face.NotInFirstFrame", _W, "no face in the first frame, where the service picks its target"),
        Code("Face.Missing", _W, "no face in part of the clip: those frames stay unsynced"),
        Code("Face.Multiple", _W, "more than one face: the service syncs one (say which with --ref)"),
        Code("Face.TooSmall", _W, "face too small for a good close-up"),
        Code("Face.NotFrontal", _W, "face turned away from the camera"),
        Code("Face.CutOff", _W, "face cut off by the frame edge"),
        Code("Face.RefMismatch", _W, "reference face looks like none of the video's faces"),
        Code("Face.RefMatch", _I, "reference face found in the video, with its embedding distance"),
        Code("Pair.DurationMismatch", _W, "voice and video lengths differ: the service cuts the longer"),
        Code("Pair.SpeechCut", _W, "words fall after the video's end and would be cut"),
        Code("Pair.VideoAudioReplaced", _I, "the video's own sound track will be replaced"),
        Code(
            "Face.Unchecked", _W, "faces could not be checked (damaged frames, no duration, engine failure)"
        ),
    )
}


#: Codes no longer reported, and why. Settings and ``--select``/``--ignore`` that name them
#: still load (codes are stable): they select nothing.
RETIRED: dict[str, str] = {
    "Audio.DigitalSilence": (
        "pauses of exact digital zero are how every text-to-speech voice sounds, and the "
        "service documents closed-mouth frames for silent segments; no evidence that they "
        "harm lip-sync was found"
    ),
}


def matches(code: str, selectors: tuple[str, ...] | list[str]) -> bool:
    """True when ``code`` equals a selector or starts with it as a dotted prefix.

    ``"InvalidFile"`` and ``"InvalidFile."`` both select every ``InvalidFile.*`` code;
    ``"ALL"`` selects everything.
    """
    for selector in selectors:
        if selector == "ALL" or code == selector:
            return True
        prefix = selector if selector.endswith(".") else selector + "."
        if code.startswith(prefix):
            return True
    return False


def unknown_selectors(selectors: tuple[str, ...] | list[str]) -> list[str]:
    """The selectors that match no known or retired code (a typo the user should hear about)."""
    return [s for s in selectors if not any(matches(code, [s]) for code in (*CODES, *RETIRED))]
