"""What `preflight fix` plans for a voice file, step by step in words.

The user story: someone checked a voice for a lip-sync job and runs `preflight fix`. For a
voice the service already takes (WAV, MP3 or AAC, at most 30 MB, 2-120 s) nothing is
written; a voice under the wrong name has its packets copied under the right one; any
other has its samples decoded, changed and written as 16-bit PCM WAV. The plan says, one
step at a time, what changes (container, codec, sample rate, channels, length, noise,
loudness), with the numbers, and which findings each step answers; a file that cannot be
fixed says why. The checked facts are given by hand (a clean 10 s mono 48 kHz WAV voice,
changed one fact at a time) so each number and boundary is exact; where the planner
listens to the file itself (are both stereo channels the same voice?), a short real file
stands behind them. Real fixes of real files are in test_fix_audio.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fixtures.make_fixtures import voice_like
from preflight import (
    Action,
    AudioThresholds,
    FileReport,
    Finding,
    FixOptions,
    ImageInfo,
    MediaInfo,
)
from preflight._fix.audio import AudioPlan, plan_audio
from preflight._fix.audio.plan import _target_length
from preflight._probe.voice import AudioAnalysis
from preflight.codes import CODES
from tests.preflight.clean_clip import MIB, MP4
from tests.preflight.clean_clip import PICTURE as CLEAN_PICTURE
from tests.preflight.clean_voice import HEARD, SOUND, VOICE

OPTIONS = FixOptions()

#: The clean clip's picture at 30 fps (a voice taken from beside a video).
PICTURE = replace(CLEAN_PICTURE, avg_fps=30.0, nominal_fps=30.0, frame_count=300)


def voice(sound: dict[str, Any] | None = None, **changes: Any) -> MediaInfo:
    """The clean voice with some of its facts (and some of its stream's) changed."""
    if sound is not None:
        changes["audio"] = (replace(SOUND, **sound),)
    return replace(VOICE, **changes)


def heard(**changes: Any) -> AudioAnalysis:
    """The clean voice as the analysis hears it, some facts changed."""
    return replace(HEARD, **changes)


def finding(code: str, message: str = "", **details: Any) -> Finding:
    return Finding(code, CODES[code].severity, message or f"{code} said", True, details)


def checked(
    info: MediaInfo | ImageInfo | None,
    *codes: str,
    speech: AudioAnalysis | None = None,
    path: str = "",
    findings: tuple[Finding, ...] = (),
) -> FileReport:
    said = tuple(finding(code) for code in codes) + findings
    where = path or (info.path if info is not None else "/voices/me.wav")
    return FileReport(where, "audio", said, info, None, speech)


def plan(
    report: FileReport,
    options: FixOptions = OPTIONS,
    duration: float | None = None,
    thresholds: AudioThresholds | None = None,
) -> AudioPlan:
    return plan_audio(report, options, duration=duration, thresholds=thresholds or AudioThresholds())


def steps(made: AudioPlan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(a.name, a.detail, a.because) for a in made.actions]


def encoded(actions: list[tuple[str, str, tuple[str, ...]]], **fields: Any) -> AudioPlan:
    """The plan that decodes the voice and writes 16-bit WAV, with these steps."""
    facts: dict[str, Any] = dict(
        extension=".wav",
        mode="encode",
        muxer="wav",
        sample_rate=48000,
        source_duration=10.0,
        true_peak_dbtp=-1.5,
    )
    facts.update(fields)
    return AudioPlan(tuple(Action(*step) for step in actions), **facts)


# --------------------------------------------------------------------------- cannot be fixed
def test_a_file_that_cannot_be_opened_says_why_and_plans_nothing() -> None:
    assert plan(checked(voice(error="moov atom not found"), path="/voices/Me.WAV")) == AudioPlan(
        (), ".wav", unfixable="the file cannot be opened: moov atom not found"
    )
    photo = ImageInfo("/voices/me.jpg", 100, "JPEG", "RGB", 10, 10, None, 10, 10)
    expected = "the file cannot be opened: it is not an audio or video file"
    assert plan(checked(photo)) == AudioPlan((), ".jpg", unfixable=expected)
    assert plan(checked(None, path="/voices/me")) == AudioPlan((), "", unfixable=expected)


def test_a_file_without_sound_cannot_be_given_a_voice() -> None:
    silent_clip = voice(path="/clips/me.mp4", container=MP4, video=(PICTURE,), audio=())
    assert plan(checked(silent_clip)) == AudioPlan((), ".mp4", unfixable="the file has no audio stream")


def test_a_file_the_check_could_not_open_gives_the_checks_words() -> None:
    report = checked(
        voice(),
        "Audio.Quiet",
        findings=(finding("InvalidFile.Openerror", "cannot decode a single packet"),),
    )
    assert plan(report) == AudioPlan((), ".wav", unfixable="cannot decode a single packet")


# --------------------------------------------------------------------------- the bytes kept
@pytest.mark.parametrize(
    ("name", "container", "codec"),
    [
        ("me.wav", "wav", "pcm_s16le"),
        ("ME.WAV", "wav", "pcm_s24le"),
        ("me.mp3", "mp3", "mp3"),
        ("me.aac", "aac", "aac"),
    ],
)
def test_a_voice_the_service_takes_is_kept_as_it_is(name: str, container: str, codec: str) -> None:
    made = plan(checked(voice({"codec": codec}, path=f"/voices/{name}", container=container)))
    assert made == AudioPlan((), Path(name).suffix.lower())


def test_the_longest_shortest_and_largest_voices_the_service_takes_are_kept() -> None:
    for seconds in (2.0, 120.0, 1.9995, 120.0004):
        assert plan(checked(voice({"duration": seconds}))).actions == ()
    assert plan(checked(voice(size=30 * MIB))) == AudioPlan((), ".wav")


def test_a_voice_that_passes_is_kept_at_any_rate_from_16_to_48_khz() -> None:
    for rate in (16000, 22050, 44100, 48000):
        assert plan(checked(voice({"sample_rate": rate}))).actions == ()


@pytest.mark.parametrize(
    ("name", "words"),
    [("me.wav", "the extension .wav is wrong"), ("me", "the extension (none) is wrong")],
)
def test_an_mp3_under_another_name_keeps_its_packets_under_the_right_one(name: str, words: str) -> None:
    info = voice({"codec": "mp3", "index": 2}, path=f"/voices/{name}", container="mp3")
    made = plan(checked(info, "InvalidFile.Format", "Audio.ExtensionMismatch", "Audio.LongSilence"))
    assert steps(made) == [
        (
            "remux",
            f"mp3 into .mp3 (no re-encoding): {words}",
            ("Audio.ExtensionMismatch", "InvalidFile.Format"),
        )
    ]
    assert (made.extension, made.mode, made.muxer, made.stream_index) == (".mp3", "remux", "mp3", 2)
    assert (made.unfixable, made.sample_rate, made.length_s, made.source_duration) == (None, 0, None, None)


def test_a_raw_aac_named_mp3_is_written_as_adts_aac() -> None:
    made = plan(checked(voice({"codec": "aac"}, path="/voices/me.mp3", container="aac")))
    assert steps(made) == [("remux", "aac into .aac (no re-encoding): the extension .mp3 is wrong", ())]
    assert (made.extension, made.mode, made.muxer) == (".aac", "remux", "adts")


@pytest.mark.parametrize(
    ("container", "codec", "ext", "muxer", "words"),
    [
        ("mp3", "aac", ".aac", "adts", "aac stream #1 copied into raw ADTS .aac, no re-encoding"),
        ("aac", "mp3", ".mp3", "mp3", "mp3 stream #1 copied into raw MP3 .mp3, no re-encoding"),
    ],
)
def test_a_raw_stream_in_the_wrong_raw_container_is_copied_out_of_it(
    container: str, codec: str, ext: str, muxer: str, words: str
) -> None:
    info = voice({"codec": codec, "index": 1, "duration": None}, container=container, duration=7.5)
    made = plan(checked(info, "InvalidFile.Format", "Audio.MultipleStreams", "Audio.ExtensionMismatch"))
    assert steps(made) == [
        (
            "remux",
            f"{words} (from audio in {container.upper()})",
            ("Audio.MultipleStreams", "InvalidFile.Format"),
        )
    ]
    fields = (made.extension, made.mode, made.muxer, made.stream_index, made.source_duration)
    assert fields == (ext, "remux", muxer, 1, 7.5)


def test_a_raw_stream_beside_a_picture_is_extracted() -> None:
    info = voice({"codec": "mp3", "index": 1}, container="mp3", video=(PICTURE,))
    made = plan(checked(info))
    assert steps(made) == [
        ("extract", "mp3 stream #1 copied into raw MP3 .mp3, no re-encoding (from video in MP3)", ())
    ]
    assert (made.extension, made.mode, made.source_duration) == (".mp3", "remux", 10.0)


# --------------------------------------------------------------------------- decoded and written as WAV
def test_aac_in_a_video_is_decoded_not_copied() -> None:
    # Packets out of MP4 would lose the encoder's priming: the voice would start late.
    info = voice(
        {"codec": "aac", "index": 1, "sample_rate": 44100},
        path="/clips/me.mp4",
        container=MP4,
        video=(PICTURE,),
    )
    made = plan(checked(info, "InvalidFile.Format"))
    assert made == encoded(
        [
            ("extract", "the first audio stream (aac) of the video in MOV", ("InvalidFile.Format",)),
            ("convert", "aac -> WAV PCM 16-bit", ()),
        ],
        stream_index=1,
        sample_rate=44100,
    )


def test_aac_in_an_audio_only_mp4_is_converted() -> None:
    info = voice({"codec": "aac"}, path="/voices/me.m4a", container=MP4)
    made = plan(checked(info, "InvalidFile.Format", "Audio.ExtensionMismatch"))
    assert steps(made) == [
        ("convert", "mov aac -> WAV PCM 16-bit", ("Audio.ExtensionMismatch", "InvalidFile.Format"))
    ]


@pytest.mark.parametrize(
    ("container", "codec", "words"),
    [
        ("flac", "flac", "flac -> WAV PCM 16-bit"),
        ("ogg", "vorbis", "ogg vorbis -> WAV PCM 16-bit"),
        (None, "opus", "? opus -> WAV PCM 16-bit"),
    ],
)
def test_a_format_the_service_refuses_is_converted_to_wav(
    container: str | None, codec: str, words: str
) -> None:
    made = plan(checked(voice({"codec": codec}, container=container), "InvalidFile.Format"))
    assert steps(made) == [("convert", words, ("InvalidFile.Format",))]


def test_a_wav_of_a_codec_the_service_refuses_is_reencoded() -> None:
    made = plan(checked(voice({"codec": "adpcm_ms"}), "InvalidFile.Format"))
    assert steps(made) == [("reencode", "wav adpcm_ms -> WAV PCM 16-bit", ("InvalidFile.Format",))]


def test_a_wav_over_30_mb_is_written_anew() -> None:
    info = voice({"channels": 2, "sample_rate": 48000, "codec": "pcm_s32le"}, size=30 * MIB + 1)
    made = plan(checked(info, "InvalidFile.Size"))
    assert steps(made) == [("reencode", "wav pcm_s32le -> WAV PCM 16-bit", ("InvalidFile.Size",))]
    sixteen = plan(checked(voice(size=30 * MIB + 1), "InvalidFile.Size"))
    assert sixteen == encoded([("reencode", "WAV PCM 16-bit written anew", ("InvalidFile.Size",))])


def test_a_voice_whose_header_gives_no_length_is_written_anew() -> None:
    info = voice({"duration": None}, duration=None)
    made = plan(checked(info, "Audio.DurationUnknown"))
    assert made == encoded(
        [("reencode", "WAV PCM 16-bit written anew", ("Audio.DurationUnknown",))], source_duration=None
    )
    mp3 = voice({"codec": "mp3", "duration": None}, path="/voices/me.mp3", container="mp3", duration=None)
    assert steps(plan(checked(mp3, "Audio.DurationUnknown"))) == [
        ("convert", "mp3 -> WAV PCM 16-bit", ("Audio.DurationUnknown",))
    ]


def test_the_stream_length_counts_before_the_containers() -> None:
    made = plan(checked(voice({"duration": 130.0}, duration=9.0), "InvalidFile.Duration"))
    assert steps(made) == [("trim", "130.000 s -> 120.000 s", ("InvalidFile.Duration",))]
    assert made.source_duration == 130.0
    from_container = plan(checked(voice({"duration": None}, duration=130.0), "InvalidFile.Duration"))
    assert steps(from_container) == [("trim", "130.000 s -> 120.000 s", ("InvalidFile.Duration",))]
    assert from_container.source_duration == 130.0


# --------------------------------------------------------------------------- length: 2-120 s
@pytest.mark.parametrize(
    ("seconds", "action"),
    [
        (120.001, ("trim", "120.001 s -> 120.000 s", ("InvalidFile.Duration",))),
        (300.0, ("trim", "300.000 s -> 120.000 s", ("InvalidFile.Duration",))),
        (1.999, ("pad", "1.999 s -> 2.000 s with room tone", ("InvalidFile.Duration",))),
        (0.5, ("pad", "0.500 s -> 2.000 s with room tone", ("InvalidFile.Duration",))),
    ],
)
def test_a_voice_outside_2_to_120_s_is_cut_or_padded_to_the_limit(
    seconds: float, action: tuple[str, str, tuple[str, ...]]
) -> None:
    made = plan(checked(voice({"duration": seconds}), "InvalidFile.Duration"))
    length = 120.0 if action[0] == "trim" else 2.0
    assert made == encoded([action], length_s=length, source_duration=seconds)


def test_a_long_voice_sent_in_parts_keeps_its_length() -> None:
    whole = FixOptions(max_duration_s=None)
    assert plan(checked(voice({"duration": 300.0})), whole) == AudioPlan((), ".wav")
    made = plan(checked(voice({"duration": 300.0}), "InvalidFile.Size"), whole)
    assert made == encoded(
        [("reencode", "WAV PCM 16-bit written anew", ("InvalidFile.Size",))],
        source_duration=300.0,
        max_length_s=None,
    )
    shorter = FixOptions(max_duration_s=60.0)
    assert plan(checked(voice({"duration": 90.0})), shorter).length_s == 60.0


@pytest.mark.parametrize(
    ("wanted", "action", "length"),
    [
        (12.5, ("pad", "10.000 s -> 12.500 s with room tone", ()), 12.5),
        (8.0, ("trim", "10.000 s -> 8.000 s", ()), 8.0),
        (1.0, ("trim", "10.000 s -> 2.000 s", ()), 2.0),
        (150.0, ("pad", "10.000 s -> 120.000 s with room tone", ()), 120.0),
        (10.0001, ("pad", "10.000 s -> 10.000 s with room tone", ()), 10.0001),
    ],
)
def test_a_voice_made_as_long_as_its_video_stays_within_2_to_120_s(
    wanted: float, action: tuple[str, str, tuple[str, ...]], length: float
) -> None:
    made = plan(checked(voice()), duration=wanted)
    assert made == encoded([action], length_s=length)


def test_a_voice_already_within_a_sample_of_its_video_is_not_touched() -> None:
    assert plan(checked(voice()), duration=10.0 + 0.9 / 48000).actions == ()
    assert plan(checked(voice()), duration=10.0 - 0.9 / 48000).actions == ()
    assert plan(checked(voice()), duration=10.0 + 1.1 / 48000).length_s == 10.0 + 1.1 / 48000


def test_a_voice_asked_longer_than_the_service_takes_follows_the_chosen_limit() -> None:
    made = plan(checked(voice()), FixOptions(max_duration_s=None), duration=150.0)
    assert steps(made) == [("pad", "10.000 s -> 150.000 s with room tone", ())]
    assert (made.length_s, made.max_length_s) == (150.0, None)


def test_a_voice_of_unknown_length_is_cut_or_padded_to_its_video() -> None:
    info = voice({"duration": None}, duration=None)
    made = plan(checked(info, "Audio.DurationUnknown"), duration=12.0)
    assert made == encoded(
        [
            ("reencode", "WAV PCM 16-bit written anew", ("Audio.DurationUnknown",)),
            ("trim", "cut or padded to 12.000 s (the header gives no length)", ()),
        ],
        length_s=12.0,
        source_duration=None,
    )


@pytest.mark.parametrize(
    ("source", "duration", "rate", "longest", "length"),
    [
        pytest.param(None, None, 48000, 120.0, None, id="unknown and not asked: left"),
        pytest.param(None, 1.0, 48000, 120.0, 2.0, id="unknown, asked too short"),
        pytest.param(10.0, 10.5, 0, 120.0, None, id="no rate: within a second is a sample"),
        pytest.param(10.0, 11.0, 0, 120.0, 11.0, id="no rate: a second off"),
        pytest.param(10.0, 10.0 + 0.99 / 16000, 16000, 120.0, None, id="under a sample at 16 kHz"),
        pytest.param(10.0, 10.0 + 1.01 / 16000, 16000, 120.0, 10.0 + 1.01 / 16000, id="a sample"),
        pytest.param(10.0, 10.0 - 1.01 / 16000, 16000, 120.0, 10.0 - 1.01 / 16000, id="a sample short"),
        pytest.param(2.0, 1.5, 48000, 120.0, None, id="asked too short of a 2 s voice"),
        pytest.param(120.0, 121.0, 48000, 120.0, None, id="asked too long of a 120 s voice"),
        pytest.param(120.0, 121.0, 48000, None, 121.0, id="no limit"),
        pytest.param(1.9994, None, 48000, 120.0, 2.0, id="1.999 s is too short"),
        pytest.param(1.9995, None, 48000, 120.0, None, id="2.000 s as the rules round it"),
        pytest.param(120.0004, None, 48000, 120.0, None, id="120.000 s as the rules round it"),
        pytest.param(120.0006, None, 48000, 120.0, 120.0, id="120.001 s is too long"),
        pytest.param(120.0006, None, 48000, None, None, id="any length with no limit"),
        pytest.param(61.0, None, 48000, 60.0, 60.0, id="a chosen limit"),
    ],
)
def test_the_length_to_write(
    source: float | None, duration: float | None, rate: int, longest: float | None, length: float | None
) -> None:
    assert _target_length(source, duration, rate, longest) == length


# --------------------------------------------------------------------------- sample rate
@pytest.mark.parametrize(
    ("rate", "out", "because"),
    [
        (8000, 16000, ("Audio.LowSampleRate",)),
        (15999, 16000, ("Audio.LowSampleRate",)),
        (96000, 48000, ()),
        (48001, 48000, ()),
    ],
)
def test_the_rate_is_raised_to_16_khz_or_lowered_to_48_khz(
    rate: int, out: int, because: tuple[str, ...]
) -> None:
    codes = ("Audio.LowSampleRate",) if because else ("InvalidFile.Size",)
    made = plan(checked(voice({"sample_rate": rate}), *codes))
    resample = ("resample", f"{rate} Hz -> {out} Hz", because)
    assert made == encoded(
        [*([("reencode", "WAV PCM 16-bit written anew", codes)] if not because else []), resample],
        sample_rate=out,
    )


def test_a_rate_over_48_khz_alone_needs_no_rewrite() -> None:
    assert plan(checked(voice({"sample_rate": 96000}))).actions == ()


@pytest.mark.parametrize(("rate", "out"), [(16000, 22050), (22050, 22050), (44100, 44100), (96000, 48000)])
def test_the_lowest_rate_follows_the_settings(rate: int, out: int) -> None:
    made = plan(
        checked(voice({"sample_rate": rate}), "Audio.LowSampleRate"),
        thresholds=AudioThresholds(min_sample_rate=22050),
    )
    assert made.sample_rate == out
    assert [a.name for a in made.actions] == (["resample"] if rate != out else [])


def test_a_stream_of_no_stated_rate_is_written_at_16_khz() -> None:
    made = plan(checked(voice({"sample_rate": None}), "InvalidFile.Size"))
    assert steps(made)[-1] == ("resample", "0 Hz -> 16000 Hz", ())
    assert made.sample_rate == 16000


# --------------------------------------------------------------------------- channels
def test_a_dead_channel_is_dropped_and_the_live_one_kept() -> None:
    stereo = voice({"channels": 2})
    left = heard(channels=2, channel_levels_db=(-22.0, -91.4))
    made = plan(checked(stereo, "Audio.SilentChannel", speech=left))
    assert made == encoded(
        [
            ("downmix", "keep channel 1 alone (channel 2 is silent: -91 dBFS)", ("Audio.SilentChannel",)),
        ],
        channels=0,
    )
    right = plan(
        checked(stereo, "Audio.SilentChannel", speech=heard(channels=2, channel_levels_db=(-88.6, -20.0)))
    )
    assert steps(right)[-1] == (
        "downmix",
        "keep channel 2 alone (channel 1 is silent: -89 dBFS)",
        ("Audio.SilentChannel",),
    )
    assert right.channels == 1


def test_a_dead_channel_is_found_in_the_checks_words_when_the_voice_was_not_measured() -> None:
    stereo = voice({"channels": 2, "codec": "mp3"}, container="mp3", path="/voices/me.mp3")
    said = (finding("Audio.SilentChannel", channel_levels_db=[-120.0, -30.0]),)
    for speech in (None, heard(channels=2, channel_levels_db=())):
        made = plan(checked(stereo, speech=speech, findings=said))
        assert steps(made) == [
            ("convert", "mp3 -> WAV PCM 16-bit", ()),
            ("downmix", "keep channel 2 alone (channel 1 is silent: -120 dBFS)", ("Audio.SilentChannel",)),
        ]
        assert made.channels == 1
    # Measured levels count before the check's words.
    measured = heard(channels=2, channel_levels_db=(-30.0, -120.0))
    assert plan(checked(stereo, speech=measured, findings=said)).channels == 0


def test_surround_is_mixed_down_to_mono() -> None:
    made = plan(checked(voice({"channels": 6}), "InvalidFile.Size"))
    assert steps(made)[-1] == ("downmix", "6 channels -> mono", ())
    assert made.channels == "mix"
    three = plan(checked(voice({"channels": 3}), "Audio.SilentChannel"))
    assert steps(three) == [
        ("downmix", "3 channels -> mono", ("Audio.SilentChannel",)),
    ]
    assert three.channels == "mix"
    # Three levels, one of them dead: still mixed (which channel to keep is not known).
    dead = plan(
        checked(
            voice({"channels": 3}),
            "Audio.SilentChannel",
            speech=heard(channel_levels_db=(-20.0, -90.0, -20.0)),
        )
    )
    assert dead.channels == "mix"


def test_a_mono_or_unstated_layout_keeps_its_channels() -> None:
    for channels in (1, None):
        made = plan(checked(voice({"channels": channels}), "InvalidFile.Size"))
        assert made.channels is None
        assert [a.name for a in made.actions] == ["reencode"]


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half a second of one voice on both channels of a 16 kHz WAV."""
    from fixtures.make_fixtures import write_audio

    return write_audio(tmp_path_factory.mktemp("voices") / "twice.wav", duration=0.5, channels=2)


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half a second of two different voices, one a channel."""
    from fixtures.make_fixtures import write_audio

    pair = np.stack([voice_like(0.5, 16000, seed=3), voice_like(0.5, 16000, seed=11)])
    return write_audio(tmp_path_factory.mktemp("voices") / "two.wav", signal=pair)


def stereo_at(path: Path, index: int = 0, **sound: Any) -> MediaInfo:
    return voice(
        {"channels": 2, "sample_rate": 16000, "duration": 0.5, "index": index, **sound}, path=str(path)
    )


def test_the_same_voice_on_both_channels_becomes_mono(twice: Path) -> None:
    made = plan(checked(stereo_at(twice), "InvalidFile.Duration"))
    assert made == encoded(
        [
            ("downmix", "stereo -> mono (the channels carry the same voice: correlation 1.00)", ()),
            ("pad", "0.500 s -> 2.000 s with room tone", ("InvalidFile.Duration",)),
        ],
        sample_rate=16000,
        channels="mix",
        length_s=2.0,
        source_duration=0.5,
    )


def test_two_different_voices_keep_both_channels(two_voices: Path) -> None:
    made = plan(checked(stereo_at(two_voices), "InvalidFile.Duration"))
    assert made.channels is None
    assert [a.name for a in made.actions] == ["pad"]


def test_a_stereo_file_that_cannot_be_read_keeps_both_channels(twice: Path) -> None:
    assert plan(checked(stereo_at(twice.parent / "gone.wav"), "InvalidFile.Duration")).channels is None


def test_a_stereo_voice_of_a_dead_channel_with_no_levels_is_listened_to(twice: Path) -> None:
    made = plan(checked(stereo_at(twice), "Audio.SilentChannel"))
    assert steps(made) == [
        ("downmix", "stereo -> mono (the channels carry the same voice: correlation 1.00)", ()),
        ("pad", "0.500 s -> 2.000 s with room tone", ()),
    ]


def test_the_channel_count_not_stated_is_taken_as_mono(twice: Path) -> None:
    made = plan(checked(stereo_at(twice, channels=None), "InvalidFile.Duration"))
    assert made.channels is None


# --------------------------------------------------------------------------- noise
def test_a_noisy_voice_is_denoised() -> None:
    noisy = heard(noise_floor_db=-38.4, speech_level_db=-25.0)
    made = plan(checked(voice(), "Audio.Noisy", speech=noisy))
    assert made == encoded(
        [
            ("denoise", "noise floor -38 dBFS, speech 13 dB over the noise", ("Audio.Noisy",)),
        ],
        denoise=True,
    )
    unheard = plan(checked(voice(), "Audio.Noisy", speech=heard(noise_floor_db=-40.0, speech_level_db=None)))
    assert steps(unheard)[-1] == ("denoise", "noise floor -40 dBFS", ("Audio.Noisy",))


def test_a_noisy_voice_is_left_noisy_when_asked_or_not_measured() -> None:
    noisy = heard(noise_floor_db=-38.0)
    kept = plan(checked(voice(), "Audio.Noisy", speech=noisy), FixOptions(denoise=False))
    assert kept == AudioPlan((), ".wav")
    assert plan(checked(voice(), "Audio.Noisy")) == AudioPlan((), ".wav")
    assert plan(checked(voice(), speech=noisy)) == AudioPlan((), ".wav")


# --------------------------------------------------------------------------- loudness
def test_a_quiet_voice_is_brought_to_the_target_loudness() -> None:
    quiet = heard(loudness_lufs=-34.25, true_peak_dbtp=-20.0)
    made = plan(checked(voice(), "Audio.Quiet", speech=quiet))
    assert made == encoded(
        [
            ("loudnorm", "-34.2 LUFS -> -16.0 LUFS, true peak <= -1.5 dBTP", ("Audio.Quiet",)),
        ],
        loudness_lufs=-16.0,
        true_peak_dbtp=-1.5,
    )
    louder = FixOptions(target_lufs=-14.0, true_peak_dbtp=-2.0)
    again = plan(checked(voice(), "Audio.Quiet", speech=quiet), louder)
    assert steps(again)[-1] == (
        "loudnorm",
        "-34.2 LUFS -> -14.0 LUFS, true peak <= -2.0 dBTP",
        ("Audio.Quiet",),
    )
    assert (again.loudness_lufs, again.true_peak_dbtp, again.loudness_only_down) == (-14.0, -2.0, False)


def test_a_quiet_voice_not_measured_is_still_brought_up() -> None:
    made = plan(checked(voice(), "Audio.Quiet"))
    assert steps(made)[-1] == ("loudnorm", "-16.0 LUFS, true peak <= -1.5 dBTP", ("Audio.Quiet",))
    unheard = plan(checked(voice(), "Audio.Quiet", speech=heard(loudness_lufs=None)))
    assert steps(unheard)[-1] == ("loudnorm", "-16.0 LUFS, true peak <= -1.5 dBTP", ("Audio.Quiet",))


def test_without_normalising_a_quiet_or_hot_voice_keeps_its_level() -> None:
    off = FixOptions(normalize=False)
    assert plan(checked(voice(), "Audio.Quiet", speech=heard(loudness_lufs=-40.0)), off) == AudioPlan(
        (), ".wav"
    )
    hot = heard(loudness_lufs=-8.0, true_peak_dbtp=0.5)
    assert plan(checked(voice(), "Audio.Clipping", speech=hot), off) == AudioPlan((), ".wav")


@pytest.mark.parametrize(
    ("loudness", "peak", "words"),
    [
        (-20.0, -0.99, "loudness -20.0 LUFS kept, true peak -0.99 -> -1.5 dBTP"),
        (-16.0, 0.5, "loudness -16.0 LUFS kept, true peak +0.50 -> -1.5 dBTP"),
        (-15.9, -0.5, "loudness -15.9 -> -16.0 LUFS, true peak -0.50 -> -1.5 dBTP"),
        (-9.9, -1.0, "loudness -9.9 -> -16.0 LUFS, true peak -1.00 -> -1.5 dBTP"),
    ],
)
def test_a_hot_voice_is_brought_down_never_up(loudness: float, peak: float, words: str) -> None:
    hot = heard(loudness_lufs=loudness, true_peak_dbtp=peak)
    made = plan(checked(voice(), "Audio.Clipping", speech=hot))
    assert made == encoded(
        [("loudnorm", words, ("Audio.Clipping",))],
        loudness_lufs=-16.0,
        true_peak_dbtp=-1.5,
        loudness_only_down=True,
    )


def test_a_hot_voice_is_brought_down_even_without_a_clipping_finding() -> None:
    made = plan(checked(voice(), speech=heard(loudness_lufs=-9.0, true_peak_dbtp=-2.0)))
    assert made == encoded(
        [("loudnorm", "loudness -9.0 -> -16.0 LUFS, true peak -2.00 -> -1.5 dBTP", ())],
        loudness_lufs=-16.0,
        true_peak_dbtp=-1.5,
        loudness_only_down=True,
    )


def test_a_hot_voice_has_its_peaks_at_minus_1_dbtp_at_most() -> None:
    loose = FixOptions(true_peak_dbtp=-0.5)
    made = plan(checked(voice(), speech=heard(true_peak_dbtp=0.2)), loose)
    assert steps(made) == [("loudnorm", "loudness -20.0 LUFS kept, true peak +0.20 -> -1.0 dBTP", ())]
    assert (made.true_peak_dbtp, made.loudness_only_down) == (-1.0, True)
    # A voice that is not hot keeps the chosen ceiling.
    quiet = plan(checked(voice(), "Audio.Quiet"), loose)
    assert (quiet.true_peak_dbtp, quiet.loudness_only_down) == (-0.5, False)


def test_a_voice_at_minus_1_dbtp_and_minus_10_lufs_is_not_hot() -> None:
    assert plan(checked(voice(), speech=heard(loudness_lufs=-10.0, true_peak_dbtp=-1.0))).actions == ()
    for unmeasured in (
        heard(loudness_lufs=None, true_peak_dbtp=3.0),
        heard(loudness_lufs=-5.0, true_peak_dbtp=None),
    ):
        assert plan(checked(voice(), speech=unmeasured)).actions == ()


def test_a_quiet_voice_with_a_hot_peak_is_brought_up_not_down() -> None:
    both = heard(loudness_lufs=-35.0, true_peak_dbtp=0.5)
    made = plan(checked(voice(), "Audio.Quiet", "Audio.Clipping", speech=both))
    assert [a.name for a in made.actions] == ["loudnorm"]
    assert steps(made)[-1][2] == ("Audio.Quiet",)
    assert (made.loudness_only_down, made.true_peak_dbtp) == (False, -1.5)


# --------------------------------------------------------------------------- all at once
def test_every_step_in_order_for_a_voice_with_every_problem(twice: Path) -> None:
    info = stereo_at(
        twice,
        index=1,
        codec="aac",
        sample_rate=8000,
        duration=130.0,
    )
    info = replace(info, container=MP4, video=(PICTURE,), path=str(twice))
    speech = heard(
        channels=2,
        loudness_lufs=-35.0,
        noise_floor_db=-30.0,
        speech_level_db=-35.0,
        channel_levels_db=(-30.0, -99.0),
    )
    made = plan(
        checked(
            info,
            "InvalidFile.Format",
            "InvalidFile.Duration",
            "Audio.Noisy",
            "Audio.Quiet",
            "Audio.LowSampleRate",
            "Audio.SilentChannel",
            "Audio.MultipleStreams",
            speech=speech,
        )
    )
    assert made == encoded(
        [
            (
                "extract",
                "the first audio stream (aac) of the video in MOV",
                ("Audio.MultipleStreams", "InvalidFile.Format"),
            ),
            ("convert", "aac -> WAV PCM 16-bit", ()),
            ("resample", "8000 Hz -> 16000 Hz", ("Audio.LowSampleRate",)),
            ("downmix", "keep channel 1 alone (channel 2 is silent: -99 dBFS)", ("Audio.SilentChannel",)),
            ("trim", "130.000 s -> 120.000 s", ("InvalidFile.Duration",)),
            ("denoise", "noise floor -30 dBFS, speech -5 dB over the noise", ("Audio.Noisy",)),
            ("loudnorm", "-35.0 LUFS -> -16.0 LUFS, true peak <= -1.5 dBTP", ("Audio.Quiet",)),
        ],
        stream_index=1,
        sample_rate=16000,
        channels=0,
        length_s=120.0,
        denoise=True,
        loudness_lufs=-16.0,
        source_duration=130.0,
    )
