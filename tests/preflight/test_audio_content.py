"""Is the voice the "clear, loud human voice" the service asks for?

Voices are synthesised on the fly (glottal buzz through vowel formants, four syllables a
second, pauses between words, a quiet room under it) and mixed with noise, silence and
gain changes; real speech from ../shared/media checks that clean voices stay quiet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest

from preflight import CheckOptions, FileReport, check_audio, check_paths
from preflight._probe.voice import analyse_audio, speech_ranges
from preflight._rules.voice import AUDIO_CONTENT_CODES
from tests.conftest import FIXTURES, SAMPLE
from tests.corpus.make_corpus import voice_stamped_late

RATE = 16000
TTS = FIXTURES / "tts"
CONTENT = tuple(code for code in AUDIO_CONTENT_CODES if code != "Audio.Unchecked")


def content_codes(report: FileReport) -> list[str]:
    return [f.code for f in report.findings if f.code in CONTENT]


def room(seconds: float, level_db: float = -66.0, rate: int = RATE, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 10 ** (level_db / 20), round(seconds * rate))


@pytest.fixture()
def voice_file(media, tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, signal: np.ndarray, rate: int = RATE) -> Path:
        return media.write_audio(tmp_path / name, signal=signal, sample_rate=rate)

    return write


def finding(report: FileReport, code: str):  # type: ignore[no-untyped-def]
    return next(f for f in report.findings if f.code == code)


def test_a_clean_voice_has_nothing_to_report() -> None:
    report = check_audio(SAMPLE / "voice.wav")
    assert report.findings == ()
    assert report.speech is not None
    assert -24 < (report.speech.loudness_lufs or 0) < -14
    assert report.speech.speech_share > 0.6 and (report.speech.snr_db or 0) > 40


def test_a_quiet_voice_is_too_quiet(media, voice_file) -> None:
    report = check_audio(voice_file("quiet.wav", media.voice_like(4.0, RATE, level_db=-30.0)))
    assert content_codes(report) == ["Audio.Quiet"]
    details = finding(report, "Audio.Quiet").details
    assert details["loudness_lufs"] < -38 and details["min_lufs"] == -28.0


def test_an_overdriven_voice_clips(media, voice_file) -> None:
    hot = np.clip(media.voice_like(4.0, RATE) * 6, -1, 1)
    report = check_audio(voice_file("hot.wav", hot))
    assert "Audio.Clipping" in content_codes(report)
    assert finding(report, "Audio.Clipping").details["clipped_runs"] > 10


def test_a_voice_whose_peaks_go_over_between_samples_is_hot_but_fixable(media, voice_file) -> None:
    rate = 48000
    voice = media.voice_like(4.0, rate, level_db=-10.0)
    # 50 ms of a 12 kHz tone sampled 45 degrees off its crests: every sample at 0.92, the
    # wave itself at 1.3 (+2.3 dBTP). Nothing is flat-topped: lowering it loses nothing.
    t = np.arange(int(0.05 * rate)) / rate
    start = int(2.0 * rate)
    voice[start : start + len(t)] = 1.3 * np.sin(2 * np.pi * 12000 * t + np.pi / 4)
    report = check_audio(voice_file("overs.wav", voice, rate))
    hot = finding(report, "Audio.Clipping")
    assert hot.details["clipped_runs"] == 0 and hot.details["true_peak_dbtp"] > 1.0
    assert hot.fixable and "preflight fix limits the peaks" in hot.message


@pytest.mark.parametrize(("clip_at", "runs"), [(1.0, True), (None, False)], ids=["clipped", "overs kept"])
def test_a_float_wav_clips_at_full_scale_but_its_overs_are_only_hot(
    media, tmp_path: Path, clip_at: float | None, runs: bool
) -> None:
    voice = media.voice_like(4.0, RATE, level_db=4.0)  # peaks 4 dB over full scale
    if clip_at is not None:
        voice = np.clip(voice, -clip_at, clip_at)
    path = media.write_float_wav(tmp_path / "float.wav", voice, RATE)
    hot = finding(check_audio(path), "Audio.Clipping")
    assert (hot.details["clipped_runs"] > 10) is runs and hot.fixable is not runs


def test_a_voice_over_loud_hiss_is_noisy(media, voice_file) -> None:
    noisy = media.voice_like(4.0, RATE, room_db=None) + room(4.0, level_db=-24.0)
    report = check_audio(voice_file("noisy.wav", noisy))
    assert content_codes(report) == ["Audio.Noisy"]
    details = finding(report, "Audio.Noisy").details
    assert details["snr_db"] < 20 and details["noise_floor_db"] == pytest.approx(-24, abs=3)


def test_music_under_the_voice_is_heard_in_the_pauses(media, voice_file) -> None:
    voice = media.voice_like(12.0, RATE)
    report = check_audio(voice_file("with music.wav", voice + media.music_like(12.0, RATE, level_db=-30.0)))
    assert "Audio.Music" in content_codes(report)
    music = finding(report, "Audio.Music")
    assert music.severity == "warning" and not music.fixable
    assert music.details["music_share"] >= 0.3
    assert music.details["music_level_db"] == pytest.approx(-30, abs=6)


@pytest.mark.parametrize(
    "hum",
    [
        pytest.param(
            lambda t: 10 ** (-40 / 20) * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8)),
            id="mains hum",
        ),
        pytest.param(lambda t: 10 ** (-45 / 20) * np.sin(2 * np.pi * 440 * t), id="whine"),
    ],
)
def test_a_steady_hum_or_whine_is_not_music(media, voice_file, hum) -> None:  # type: ignore[no-untyped-def]
    voice = media.voice_like(12.0, RATE)
    t = np.arange(len(voice)) / RATE
    report = check_audio(voice_file("hum.wav", voice + hum(t)))
    assert report.speech is not None and (report.speech.music_share or 0.0) < 0.1
    assert "Audio.Music" not in content_codes(report)


def test_faint_music_far_under_the_voice_is_let_be(media, voice_file) -> None:
    voice = media.voice_like(12.0, RATE)
    report = check_audio(voice_file("faint.wav", voice + media.music_like(12.0, RATE, level_db=-60.0)))
    assert "Audio.Music" not in content_codes(report)


def test_a_voice_turned_down_halfway_is_judged_on_the_whole(media, voice_file) -> None:
    voice = media.voice_like(8.0, RATE)
    ride = np.where(np.arange(len(voice)) < len(voice) // 2, 1.0, 10 ** (-30 / 20))
    report = check_audio(voice_file("fader.wav", voice * ride))
    # Integrated loudness is gated: the loud half carries it, so not quiet; the quiet half
    # is still speech, so neither silence nor noise.
    assert content_codes(report) == []
    assert report.speech is not None and report.speech.speech_share > 0.6
    assert report.speech.loudness_lufs == pytest.approx(
        reference_loudness(voice_file("fader.wav", voice * ride)), abs=0.5
    )
    down = check_audio(voice_file("down.wav", voice * 10 ** (-30 / 20)))
    assert content_codes(down) == ["Audio.Quiet"]


def test_room_sound_alone_is_no_speech(voice_file) -> None:
    report = check_audio(voice_file("room.wav", room(4.0, level_db=-50.0)))
    assert content_codes(report) == ["Audio.NoSpeech"]


def test_a_short_line_in_a_long_silence_is_mostly_silence(media, voice_file) -> None:
    signal = np.concatenate([room(1.5), media.voice_like(1.5, RATE), room(3.0, seed=4)])
    report = check_audio(voice_file("sparse.wav", signal))
    assert content_codes(report) == ["Audio.MostlySilence"]
    details = finding(report, "Audio.MostlySilence").details
    assert details["speech_share"] < 0.4
    assert details["leading_s"] == pytest.approx(1.5, abs=0.3) and details["trailing_s"] == pytest.approx(
        3.0, abs=0.3
    )


def test_a_pause_of_six_seconds_is_a_long_silence(media, voice_file) -> None:
    signal = np.concatenate([media.voice_like(5.0, RATE), room(6.0), media.voice_like(5.0, RATE, seed=8)])
    report = check_audio(voice_file("pause.wav", signal))
    assert content_codes(report) == ["Audio.LongSilence"]
    ((start, end),) = finding(report, "Audio.LongSilence").details["ranges"]
    assert start == pytest.approx(5.0, abs=0.4) and end == pytest.approx(11.0, abs=0.4)


def test_pauses_gated_to_digital_zero_are_measured_but_not_warned_about(media, voice_file) -> None:
    gated = media.voice_like(4.0, RATE, room_db=None)  # nothing at all between words
    report = check_audio(voice_file("gated.wav", gated))
    assert report.findings == ()
    # Still a fact in the JSON's speech section, for whoever wants to know.
    assert report.speech is not None and report.speech.digital_silence


TTS_VOICES = sorted(TTS.glob("espeak_*.*"))


def test_the_committed_tts_voices_are_all_there() -> None:
    assert [p.name for p in TTS_VOICES] == [
        f"espeak_{rate}.{ext}" for rate in ("16k", "22k") for ext in ("aac", "mp3", "wav")
    ]


@pytest.mark.parametrize("path", TTS_VOICES, ids=[p.name for p in TTS_VOICES])
def test_a_clean_tts_voice_gets_no_warning_at_all(path: Path) -> None:
    """espeak-ng's speech, whose pauses are exact zeros, as WAV, MP3 and ADTS AAC at 16 and
    22.05 kHz: dubbing with such voices is one of the service's main uses."""
    report = check_audio(path)
    assert [(f.code, f.message) for f in report.findings] == []
    speech = report.speech
    assert speech is not None and speech.speech_share > 0.7
    assert speech.sample_rate == (16000 if "16k" in path.name else 22050)
    # What made the old warning fire is there: stretches of exact zero between words
    # (a lossy codec's output may hold none, its decoder's rounding fills them in).
    if path.suffix == ".wav":
        assert any(b < speech.speech_ranges[-1][1] for _, b in speech.digital_silence)


@pytest.mark.parametrize("name", ["espeak_22k.mp3", "espeak_16k.aac"])
def test_a_tts_voice_dubbing_a_silent_clip_of_its_length_is_a_job_without_warnings(
    media, tmp_path: Path, engine, name: str
) -> None:
    voice = TTS / name
    length = check_audio(voice).media.audio[0].duration  # type: ignore[union-attr]
    clip = media.write_video(
        tmp_path / "talking head.mp4", duration=round(length * 25) / 25, source="face", audio=False
    )
    report = check_paths(video=clip, audio=voice, engine=engine)
    assert [(r.role, f.code) for r in report.files for f in r.findings] == []
    assert report.job is not None and report.job.findings == ()


def test_telephone_audio_is_band_limited(media, voice_file) -> None:
    report = check_audio(voice_file("phone.wav", media.voice_like(4.0, 8000), rate=8000))
    assert content_codes(report) == ["Audio.LowSampleRate"]


def test_a_dead_channel_in_stereo_is_found(media, voice_file) -> None:
    voice = media.voice_like(4.0, RATE)
    report = check_audio(voice_file("one side.wav", np.vstack([voice, np.zeros_like(voice)])))
    assert content_codes(report) == ["Audio.SilentChannel"]
    levels = finding(report, "Audio.SilentChannel").details["channel_levels_db"]
    assert levels[0] > -30 and levels[1] < -100


def reference_loudness(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
        planes = [f.to_ndarray() for frame in container.decode(stream) for f in resampler.resample(frame)]
        rate = stream.rate
    data = np.concatenate(planes, axis=1).T.astype(np.float64)
    return float(pyloudnorm.Meter(rate).integrated_loudness(data))


@pytest.mark.parametrize(
    ("rate", "channels", "level"), [(16000, 1, -6.0), (48000, 2, -20.0), (44100, 2, -3.0)]
)
def test_loudness_agrees_with_a_reference_meter(
    media, tmp_path: Path, rate: int, channels: int, level: float
) -> None:
    path = media.write_audio(
        tmp_path / "v.wav", duration=6.0, sample_rate=rate, channels=channels, level_db=level
    )
    ours = analyse_audio(path)
    assert ours is not None and ours.loudness_lufs is not None
    assert ours.loudness_lufs == pytest.approx(reference_loudness(path), abs=0.5)


def test_fast_and_container_selections_do_not_listen() -> None:
    assert check_audio(SAMPLE / "voice.wav", CheckOptions(fast=True)).speech is None
    assert check_audio(SAMPLE / "voice.wav", CheckOptions(select=("InvalidFile",))).speech is None
    assert check_audio(SAMPLE / "voice.wav", CheckOptions(select=("Audio.Quiet",))).speech is not None


@pytest.mark.parametrize("name", ["MuseTalk__audio__eng.wav", "SadTalker__driven_audio__japanese.wav"])
def test_real_clean_speech_stays_quiet(shared_media: Path, name: str) -> None:
    report = check_audio(shared_media / name)
    assert content_codes(report) == []
    assert report.speech is not None and report.speech.speech_share > 0.7
    assert report.speech.loudness_lufs == pytest.approx(reference_loudness(shared_media / name), abs=0.5)


def real_speech(shared_media: Path, seconds: float) -> np.ndarray:
    with av.open(str(shared_media / "MuseTalk__audio__eng.wav")) as container:
        speech = np.concatenate(
            [f.to_ndarray().astype(np.float64).ravel() for f in container.decode(audio=0)]
        )
    return speech[: round(seconds * RATE)] / 32768.0


def test_real_speech_over_music_is_music(shared_media: Path, media, tmp_path: Path) -> None:
    speech = real_speech(shared_media, 30.0)
    mixed = speech + media.music_like(len(speech) / RATE, RATE, level_db=-32.0)
    report = check_audio(media.write_audio(tmp_path / "vlog.wav", signal=mixed, sample_rate=RATE))
    assert "Audio.Music" in content_codes(report)


def test_real_speech_mixed_with_noise_is_noisy(shared_media: Path, media, tmp_path: Path) -> None:
    speech = real_speech(shared_media, 20.0)
    noisy = speech + room(len(speech) / RATE, level_db=-28.0)
    report = check_audio(media.write_audio(tmp_path / "street.wav", signal=noisy, sample_rate=RATE))
    assert "Audio.Noisy" in content_codes(report)


def test_a_voice_stamped_3000_s_late_is_still_analysed(tmp_path: Path) -> None:
    """The analysis counts seconds from the first sound, not from time zero: a voice whose
    first sample is stamped 3000 s late was "not analysed: no audio could be decoded"."""
    path = tmp_path / "late voice.mka"
    voice_stamped_late(3000.0)(path)
    analysis = analyse_audio(path)
    assert analysis is not None and analysis.duration == pytest.approx(3.0, abs=0.05)
    report = check_audio(path, CheckOptions())
    assert not [f.code for f in report.findings if f.code in AUDIO_CONTENT_CODES], report.findings


def test_the_first_seconds_of_a_late_stamped_voice_are_its_own(tmp_path: Path) -> None:
    """``speech_ranges`` (cutting a long job at pauses) reads "the first 2 s" from the first
    sound too: from time zero, a voice stamped 3000 s late had none."""
    path = tmp_path / "late voice.mka"
    voice_stamped_late(3000.0)(path)
    length, ranges = speech_ranges(path, max_seconds=2.0)
    assert length == pytest.approx(2.0, abs=0.1) and ranges
