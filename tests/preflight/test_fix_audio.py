"""Fixing the voice: each story builds a file the service (or the lip-sync model) would
choke on, lets the fixer plan and write it, and checks the output with a probe that is not preflight's
(``tests/oracle.py``: ffprobe, else a bare PyAV reading) against the input and the service's
written limits, then with a fresh ``check_audio``, plus the property the story is about.

Voices are synthesised by the fixture script (``voice_like``) unless the story needs real
speech, which comes from ../shared/media (skipped when absent).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import av
import av.filter
import numpy as np
import numpy.typing as npt
import pyloudnorm  # type: ignore[import-untyped]
import pytest

from preflight import FileReport, FixOptions, check_audio, fix_paths, limits
from preflight._fix.audio import AudioPlan, plan_audio, write_audio
from tests.conftest import FIXTURES
from tests.oracle import assert_audio_accepted, probe

RATE = 16000
Samples = npt.NDArray[np.float64]


def fix(
    path: Path, options: FixOptions | None = None, *, duration: float | None = None
) -> tuple[AudioPlan, Path, FileReport]:
    """Plan, write to a ``.part`` name, rename to the planned extension, check again."""
    plan = plan_audio(check_audio(path), options or FixOptions(), duration=duration)
    assert plan.unfixable is None and plan.actions, plan
    out_dir = path.parent / "fixed"
    out_dir.mkdir(exist_ok=True)
    part = out_dir / f".{path.name}.part"
    write_audio(plan, str(path), part)
    final = out_dir / f"{path.stem}{plan.extension}"
    part.rename(final)
    fresh = check_audio(final)
    assert fresh.ok, [(f.code, f.message) for f in fresh.findings]
    assert_judged_from_outside(path, final, plan, fresh, duration)
    return plan, final, fresh


def assert_judged_from_outside(
    source: Path, output: Path, plan: AudioPlan, fresh: FileReport, duration: float | None
) -> None:
    """The output as ffprobe (or a bare PyAV reading) sees it, not preflight: accepted by the
    service's written limits; the same rate, channels and length as the input unless an
    action of the plan changed them; and preflight's own reading agreeing with it."""
    before, after = probe(source), probe(output)
    assert_audio_accepted(after)
    done = set(names(plan))
    if not done & {"resample", "extract"}:
        assert after.sample_rate == before.sample_rate
    if not done & {"downmix", "mono", "extract"}:
        assert after.channels == before.channels
    if duration is None and not done & {"trim", "pad", "extract"}:
        # An MP3 source's length is counted with its encoder delay and padding by some
        # readers (ffprobe 5.1: 6.034 s for 6.000 s of sound), not by others: two frames.
        slack = 0.06 if before.audio_codec == "mp3" else 0.03
        assert after.duration == pytest.approx(before.duration, abs=slack)
    if duration is not None:
        assert after.duration == pytest.approx(duration, abs=0.03)
    assert stream_facts(fresh) == (after.container, after.audio_codec, after.sample_rate, after.channels)
    # (within two MP3 frames: the encoder delay is counted by some readers, not others)
    assert fresh.media is not None and fresh.media.duration == pytest.approx(after.duration, abs=0.06)  # type: ignore[union-attr]


def names(plan: AudioPlan) -> list[str]:
    return [action.name for action in plan.actions]


def codes(report: FileReport) -> list[str]:
    return [f.code for f in report.findings]


def stream_facts(report: FileReport) -> tuple[str | None, str | None, int | None, int | None]:
    info = report.media
    assert info is not None and not isinstance(info, str)
    stream = info.audio[0]  # type: ignore[union-attr]
    return info.container, stream.codec, stream.sample_rate, stream.channels  # type: ignore[union-attr]


def decode(path: Path) -> tuple[Samples, int]:
    """All samples (channels x n) as floats, and the rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        # Planar floats: exact for 16-bit samples (k / 32768), one row per channel.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
        planes = [f.to_ndarray() for frame in container.decode(stream) for f in resampler.resample(frame)]
        rate = stream.rate
    return np.concatenate(planes, axis=1).astype(np.float64), rate


def fixed_by(path: Path, step: str, because: str) -> tuple[FileReport, Samples, Samples]:
    """``path`` fixed by one step, ``step``, for the finding ``because``: the output's fresh
    check, and the samples (channels x n) before and after."""
    plan, out, fresh = fix(path)
    assert names(plan) == [step] and plan.actions[0].because == (because,)
    before, _ = decode(path)
    after, _ = decode(out)
    return fresh, before, after


def reference_loudness(path: Path) -> float:
    data, rate = decode(path)
    return float(pyloudnorm.Meter(rate).integrated_loudness(data.T))


def lag_ms(out: Samples, reference: Samples, rate: int) -> float:
    """How late ``out`` is against ``reference`` (FFT cross-correlation, within 100 ms)."""
    n = min(len(out), len(reference))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(out[:n], size) * np.conj(np.fft.rfft(reference[:n], size)), size)
    reach = rate // 10
    window = np.concatenate([corr[-reach:], corr[: reach + 1]])
    return 1000 * (int(np.argmax(window)) - reach) / rate


def longest_zero_run(samples: Samples) -> int:
    zero = np.concatenate([[False], samples == 0.0, [False]])
    edges = np.flatnonzero(zero[1:] != zero[:-1])
    return int((edges[1::2] - edges[::2]).max(initial=0))


def real_speech(shared_media: Path, seconds: float) -> Samples:
    data, _ = decode(shared_media / "MuseTalk__audio__eng.wav")
    return data[0, : round(seconds * RATE)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- format
def test_a_file_that_already_passes_is_left_alone(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "voice.mp3", duration=3.0, sample_rate=44100)
    plan = plan_audio(check_audio(path), FixOptions())
    assert plan.actions == () and plan.extension == ".mp3" and plan.unfixable is None


def test_telephone_audio_is_resampled_to_16_khz(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "call.wav", duration=3.0, sample_rate=8000)
    before = digest(path)
    plan, _out, fresh = fix(path)
    assert names(plan) == ["resample"] and plan.actions[0].because == ("Audio.LowSampleRate",)
    assert stream_facts(fresh) == ("wav", "pcm_s16le", 16000, 1)
    assert "Audio.LowSampleRate" not in codes(fresh)
    assert fresh.media.duration == pytest.approx(3.0, abs=1e-3)  # type: ignore[union-attr]
    assert digest(path) == before  # the input is never touched


def test_96_khz_surround_flac_becomes_48_khz_mono_wav(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "master.flac", duration=3.0, sample_rate=96000, channels=6)
    plan, out, fresh = fix(path)
    assert names(plan) == ["convert", "resample", "downmix"]
    assert stream_facts(fresh) == ("wav", "pcm_s16le", 48000, 1)
    assert out.suffix == ".wav"
    assert "Audio.Clipping" not in codes(fresh)  # six copies of the voice added up, scaled back


@pytest.mark.parametrize("name", ["voice.flac", "voice.ogg"])
def test_flac_and_ogg_become_wav(media: Any, tmp_path: Path, name: str) -> None:
    path = media.write_audio(tmp_path / name, duration=3.0, sample_rate=48000)
    plan, _out, fresh = fix(path)
    assert names(plan) == ["convert"] and plan.actions[0].because == ("InvalidFile.Format",)
    assert stream_facts(fresh) == ("wav", "pcm_s16le", 48000, 1)
    assert fresh.media.duration == pytest.approx(3.0, abs=0.01)  # type: ignore[union-attr]


def test_a_video_given_as_audio_has_its_voice_extracted_sample_exact(media: Any, tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "talk.mp4", width=640, height=640, duration=2.5)
    plan, out, fresh = fix(path)
    assert names(plan) == ["extract", "convert"] and plan.extension == ".wav"
    assert stream_facts(fresh) == ("wav", "pcm_s16le", 44100, 1)
    # Decoded through MP4's edit list, the voice starts exactly where it did: copying the
    # AAC packets into raw ADTS would have added the encoder's 1024 priming samples.
    original, _ = decode(path)
    extracted, _ = decode(out)
    assert extracted.shape[1] == original.shape[1]
    assert np.abs(extracted - original).max() < 2 / 32768


def test_a_video_with_opus_audio_is_extracted_to_wav(media: Any, tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "clip.mkv", width=640, height=640, duration=2.5, audio=False)
    with av.open(str(path), "w", format="matroska") as out:  # a video with an Opus track
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 640, 640, "yuv420p"
        voice = out.add_stream("libopus", rate=48000, layout="mono")
        frame = av.VideoFrame.from_ndarray(np.zeros((640, 640, 3), np.uint8), format="rgb24")
        for i in range(60):
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        media._encode_audio_into(out, voice, media.voice_like(2.4, 48000), 48000)
    plan, _out_path, fresh = fix(path)
    assert names(plan) == ["extract", "convert"]
    assert stream_facts(fresh) == ("wav", "pcm_s16le", 48000, 1)


def test_an_m4a_becomes_wav_and_a_raw_aac_misnamed_keeps_its_packets(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "memo.m4a", duration=3.0, sample_rate=44100)
    plan, out, fresh = fix(path)
    assert names(plan) == ["convert"] and out.suffix == ".wav"
    assert stream_facts(fresh) == ("wav", "pcm_s16le", 44100, 1)
    raw = media.write_audio(
        tmp_path / "memo.mp3", duration=3.0, sample_rate=44100, codec="aac", container_format="adts"
    )
    plan, out, fresh = fix(raw)
    assert names(plan) == ["remux"] and out.suffix == ".aac"
    assert stream_facts(fresh) == ("aac", "aac", 44100, 1)


def test_an_mp3_named_wav_gets_its_own_extension(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(
        tmp_path / "voice.wav", duration=3.0, sample_rate=44100, codec="libmp3lame", container_format="mp3"
    )
    plan, out, fresh = fix(path)
    assert names(plan) == ["remux"] and plan.actions[0].because == ("Audio.ExtensionMismatch",)
    assert out.suffix == ".mp3" and stream_facts(fresh)[:2] == ("mp3", "mp3")
    assert "Audio.ExtensionMismatch" not in codes(fresh)


def test_an_oversized_24_bit_surround_wav_fits_under_the_limit(media: Any, tmp_path: Path) -> None:
    seconds = 31.0  # 96 kHz x 6 channels x 3 bytes: 53 MB
    voice = np.tile(media.voice_like(1.0, 96000), round(seconds))
    path = media.write_audio(
        tmp_path / "stems.wav", signal=np.vstack([voice] * 6), sample_rate=96000, codec="pcm_s24le"
    )
    assert "InvalidFile.Size" in codes(check_audio(path))
    plan, out, fresh = fix(path)
    assert names(plan)[0] == "reencode" and "InvalidFile.Size" in plan.actions[0].because
    assert out.stat().st_size < limits.AUDIO_MAX_BYTES / 4
    assert stream_facts(fresh) == ("wav", "pcm_s16le", 48000, 1)


def test_audio_without_an_audio_stream_cannot_be_fixed(media: Any, tmp_path: Path) -> None:
    path = media.write_video(tmp_path / "silent.mp4", width=640, height=640, duration=2.5, audio=False)
    plan = plan_audio(check_audio(path), FixOptions())
    assert plan.actions == () and plan.unfixable is not None and "no audio stream" in plan.unfixable


# --------------------------------------------------------------------------- length
def test_an_overlong_voice_is_trimmed_to_120_s_keeping_the_rest_as_it_was(media: Any, tmp_path: Path) -> None:
    voice = np.tile(media.voice_like(10.0, RATE), 13)  # 130 s
    path = media.write_audio(tmp_path / "lecture.wav", signal=voice, sample_rate=RATE)
    fresh, before, after = fixed_by(path, "trim", "InvalidFile.Duration")
    assert fresh.media.duration == limits.MAX_DURATION_S  # type: ignore[union-attr]
    assert after.shape[1] == limits.MAX_DURATION_S * RATE
    keep = after.shape[1] - int(0.01 * RATE)  # all but the fade-out
    assert np.array_equal(after[:, :keep], before[:, :keep])


@pytest.mark.parametrize(("room_db", "tone_db"), [(-60.0, -60.0), (None, -72.0)])
def test_a_short_voice_is_padded_with_room_tone_not_digital_silence(
    media: Any, tmp_path: Path, room_db: float | None, tone_db: float
) -> None:
    voice = media.voice_like(1.0, RATE, room_db=room_db)
    path = media.write_audio(tmp_path / "hi.wav", signal=voice, sample_rate=RATE)
    fresh, before, after = fixed_by(path, "pad", "InvalidFile.Duration")
    assert fresh.media.duration == limits.MIN_DURATION_S  # type: ignore[union-attr]
    assert np.array_equal(after[:, :RATE], before)  # the voice itself is untouched
    tone = after[0, RATE:]
    assert longest_zero_run(tone) < 5  # a faint hiss, never exact zeros
    level = 10 * np.log10((tone**2).mean())
    assert level == pytest.approx(tone_db, abs=3)


@pytest.mark.parametrize("seconds", [7.3, 3.21])
def test_a_requested_duration_is_met_to_the_sample(media: Any, tmp_path: Path, seconds: float) -> None:
    path = media.write_audio(tmp_path / "line.mp3", duration=5.0, sample_rate=44100)
    plan, out, _fresh = fix(path, duration=seconds)
    assert names(plan) == ["convert", "pad" if seconds > 5 else "trim"]
    samples, rate = decode(out)
    assert rate == 44100 and abs(samples.shape[1] - seconds * rate) <= 1


def test_a_requested_duration_already_met_changes_nothing(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "line.wav", duration=4.0)
    assert plan_audio(check_audio(path), FixOptions(), duration=4.0).actions == ()


# --------------------------------------------------------------------------- channels
def test_a_dead_right_channel_leaves_the_live_left_one_at_its_level(media: Any, tmp_path: Path) -> None:
    voice = media.voice_like(3.0, 48000)
    path = media.write_audio(
        tmp_path / "lav.wav", signal=np.vstack([voice, np.zeros_like(voice)]), sample_rate=48000
    )
    fresh, before, after = fixed_by(path, "downmix", "Audio.SilentChannel")
    assert stream_facts(fresh)[2:] == (48000, 1)
    assert np.array_equal(after[0], before[0])  # the live channel itself, not a half-level mix


def test_stereo_carrying_one_voice_twice_becomes_mono_when_re_encoded(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "both.flac", duration=3.0, sample_rate=44100, channels=2)
    plan, _out, fresh = fix(path)
    assert names(plan) == ["convert", "downmix"]
    assert stream_facts(fresh)[2:] == (44100, 1)
    stereo = check_audio(path).speech
    assert stereo is not None and stereo.loudness_lufs is not None and fresh.speech is not None
    # The same voice, once: BS.1770 sums the channels' power, so 3 dB less than the pair.
    assert fresh.speech.loudness_lufs == pytest.approx(stereo.loudness_lufs - 3.0, abs=0.3)


# --------------------------------------------------------------------------- level
@pytest.mark.parametrize(
    ("rate", "spikes"), [pytest.param(44100, False, id="plain"), pytest.param(48000, True, id="peaky")]
)
def test_a_quiet_voice_is_brought_to_minus_16_lufs_under_the_true_peak_ceiling(
    media: Any, tmp_path: Path, rate: int, spikes: bool
) -> None:
    voice = media.voice_like(6.0, rate, level_db=-36.0, room_db=-90.0)
    if spikes:  # clicks 20 dB over the voice's peaks: the gain alone would clip them
        for at in (1.0, 2.5, 4.0):
            start = int(at * rate)
            voice[start : start + 40] += 0.2 * np.hanning(40)
    path = media.write_audio(tmp_path / "whisper.wav", signal=voice, sample_rate=rate)
    assert "Audio.Quiet" in codes(check_audio(path))
    options = FixOptions()
    plan, out, fresh = fix(path, options)
    assert names(plan) == ["loudnorm"]
    assert fresh.speech is not None and fresh.speech.sample_rate == rate
    assert fresh.speech.loudness_lufs == pytest.approx(options.target_lufs, abs=1.0)
    assert reference_loudness(out) == pytest.approx(options.target_lufs, abs=1.0)
    assert fresh.speech.true_peak_dbtp is not None and fresh.speech.true_peak_dbtp <= options.true_peak_dbtp
    assert "Audio.Quiet" not in codes(fresh) and "Audio.Clipping" not in codes(fresh)
    before, _ = decode(path)
    after, _ = decode(out)
    assert lag_ms(after[0], before[0], rate) == 0.0


def test_normalising_can_be_turned_off(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(
        tmp_path / "quiet.wav", signal=media.voice_like(3.0, RATE, level_db=-36.0, room_db=-90.0)
    )
    assert plan_audio(check_audio(path), FixOptions(normalize=False)).actions == ()


def ebur128(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) of a file by FFmpeg's ebur128 filter,
    run here on the file as decoded (not through the fixer's own meter)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        graph = av.filter.Graph()
        source = graph.add_abuffer(template=stream)
        meter = graph.add("ebur128", "metadata=1:peak=true")
        sink = graph.add("abuffersink")
        source.link_to(meter)
        meter.link_to(sink)
        graph.configure()
        totals: dict[str, str] = {}
        for frame in [*container.decode(stream), None]:
            graph.push(frame)
            while True:
                try:
                    out = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    break
                totals = dict(out.metadata) or totals
    return float(totals["lavfi.r128.I"]), 20 * np.log10(float(totals["lavfi.r128.true_peak"]))


def oversampled_peak(path: Path) -> float:
    """True peak (dBTP) as the band-limited signal reaches between samples: each channel
    interpolated eightfold by zero-padding its spectrum (an ideal reconstruction filter,
    stricter than the 4x FIR of BS.1770's meters)."""
    data, _ = decode(path)
    spectrum = np.fft.rfft(data, axis=1)
    n = data.shape[1]
    fine = np.fft.irfft(spectrum, n=8 * n, axis=1) * 8
    return float(20 * np.log10(np.abs(fine).max()))


def hot_voices(media: Any, tmp_path: Path) -> dict[str, Path]:
    rate = 44100
    # Saturated: loud (about -9 LUFS), and its MP3 overshoots full scale between samples.
    loud = np.tanh(4 * media.voice_like(6.0, rate, level_db=0.0))
    # A voice at an ordinary -22 LUFS with a few clicks reaching full scale.
    peaky = media.voice_like(6.0, rate, level_db=-10.0)
    for at in (1.0, 2.5, 4.0):
        start = int(at * rate)
        peaky[start : start + 40] += 0.9 * np.hanning(40)
    # A 32-bit float export whose peaks go 3.9 dB over full scale (a float WAV keeps them).
    overs = media.voice_like(6.0, rate, level_db=3.9)
    return {
        "loud": media.write_audio(tmp_path / "loud.mp3", signal=loud, sample_rate=rate),
        "peaky": media.write_audio(tmp_path / "peaky.wav", signal=peaky, sample_rate=rate),
        "overs": media.write_float_wav(tmp_path / "overs.wav", overs, rate),
    }


@pytest.mark.parametrize("kind", ["loud", "peaky", "overs"])
def test_a_hot_voice_is_brought_down_with_its_true_peak_under_minus_1_dbtp(
    media: Any, tmp_path: Path, kind: str
) -> None:
    path = hot_voices(media, tmp_path)[kind]
    loudness_before, peak_before = ebur128(path)
    assert peak_before > -1.0 or loudness_before > -10.0
    if kind == "overs":  # hot, but nothing flat-topped: the float file kept every peak
        hot = next(f for f in check_audio(path).findings if f.code == "Audio.Clipping")
        assert hot.details["clipped_runs"] == 0 and hot.fixable
    options = FixOptions()
    plan, out, fresh = fix(path, options)
    assert names(plan)[-1] == "loudnorm"
    wanted = options.target_lufs if kind != "peaky" else loudness_before  # never made louder
    detail = plan.actions[-1].detail
    assert f"true peak {peak_before:+.2f} -> {options.true_peak_dbtp:.1f} dBTP" in detail
    assert (f"-> {options.target_lufs:.1f} LUFS" if kind != "peaky" else "LUFS kept") in detail
    # Two meters that are not the fixer's: pyloudnorm and ebur128 on the decoded file; and
    # the true peak as an ideal reconstruction reaches it (16-bit rounding: +0.05 dB).
    loudness, peak = ebur128(out)
    assert loudness == pytest.approx(wanted, abs=1.0)
    assert reference_loudness(out) == pytest.approx(wanted, abs=1.0)
    assert peak <= options.true_peak_dbtp + 0.05
    assert oversampled_peak(out) <= -1.0
    assert stream_facts(fresh) == ("wav", "pcm_s16le", 44100, 1)  # no 192 kHz
    assert "Audio.Clipping" not in codes(fresh)
    before, _ = decode(path)
    after, _ = decode(out)
    assert after.shape == before.shape or kind == "loud"  # MP3 decodes with its padding
    assert lag_ms(after[0], before[0], 44100) == 0.0


def test_a_voice_within_range_is_copied_and_no_normalize_leaves_a_hot_one(media: Any, tmp_path: Path) -> None:
    calm = media.write_audio(
        tmp_path / "calm.mp3", signal=media.voice_like(4.0, 44100, level_db=-3.0), sample_rate=44100
    )
    loudness, peak = ebur128(calm)
    assert -4.0 < peak <= -1.0 and loudness < -10.0
    assert plan_audio(check_audio(calm), FixOptions()).actions == ()
    hot = hot_voices(media, tmp_path)["loud"]
    assert plan_audio(check_audio(hot), FixOptions(normalize=False)).actions == ()


def test_a_voice_that_clipped_is_brought_down_and_still_warned_about(media: Any, tmp_path: Path) -> None:
    clipped = np.clip(media.voice_like(6.0, 44100, level_db=0.0) * 3, -1.0, 1.0)
    path = media.write_audio(tmp_path / "overdriven.wav", signal=clipped, sample_rate=44100)
    before = check_audio(path)
    runs = next(f for f in before.findings if f.code == "Audio.Clipping").details["clipped_runs"]
    assert runs > 10
    report = fix_paths(audio=path, out_dir=tmp_path / "fixed")
    (fixed,) = report.files
    assert [(a.name, a.because) for a in fixed.actions] == [("loudnorm", ("Audio.Clipping",))]
    assert fixed.ok and fixed.output is not None
    _, peak = ebur128(Path(fixed.output))
    assert peak <= -1.0
    (left,) = fixed.findings
    assert left.code == "Audio.Clipping" and left.severity == "warning" and not left.fixable
    assert left.details["clipped_runs"] == runs
    assert "no fix undoes distortion" in left.message


def test_tts_voices_come_out_of_the_fix_without_a_warning(tmp_path: Path) -> None:
    """The committed espeak-ng voices: the 22.05 kHz ones peak at -0.1 to +0.1 dBTP, so
    their peaks are limited and their loudness kept; the 16 kHz ones are copied."""
    report = fix_paths([FIXTURES / "tts"], out_dir=tmp_path / "fixed")
    assert len(report.files) == 6
    for fixed in report.files:
        assert fixed.ok and fixed.findings == (), (fixed.path, fixed.findings)
        assert fixed.output is not None and check_audio(fixed.output).findings == ()
    steps = {Path(f.path).name: [a.name for a in f.actions] for f in report.files}
    assert steps["espeak_16k.wav"] == ["copy"]
    assert steps["espeak_22k.wav"] == ["loudnorm"]


# --------------------------------------------------------------------------- noise
def noisy_voice(speech: Samples, snr_db: float, seed: int = 11) -> tuple[Samples, Samples]:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, len(speech))
    noise *= np.sqrt((speech**2).mean() / (noise**2).mean()) * 10 ** (-snr_db / 20)
    return speech + noise, noise


def check_denoised(path: Path, clean: Samples, options: FixOptions | None = None) -> None:
    report = check_audio(path)
    assert "Audio.Noisy" in codes(report)
    plan, out, fresh = fix(path, options)
    assert "denoise" in names(plan)
    assert report.speech is not None and fresh.speech is not None
    improved = (fresh.speech.snr_db or 0.0) - (report.speech.snr_db or 0.0)
    assert "Audio.Noisy" not in codes(fresh) or improved > 10
    noisy, _ = decode(path)
    after, _ = decode(out)
    assert after.shape == noisy.shape
    # Sample-aligned with the input and with the voice in it: lips do not drift.
    assert abs(lag_ms(after[0], noisy[0], RATE)) <= 1.0
    assert abs(lag_ms(after[0], clean, RATE)) <= 1.0
    error_before = ((noisy[0] - clean) ** 2).sum()
    error_after = ((after[0] - clean) ** 2).sum()
    assert 10 * np.log10(error_before / error_after) > 3  # closer to the clean voice


def test_a_synthetic_voice_in_hiss_is_denoised_in_place(media: Any, tmp_path: Path) -> None:
    clean = media.voice_like(6.0, RATE, room_db=None)
    noisy, _ = noisy_voice(clean, 8.0)
    check_denoised(media.write_audio(tmp_path / "hiss.wav", signal=noisy, sample_rate=RATE), clean)


def test_real_speech_in_noise_is_denoised_in_place(shared_media: Path, media: Any, tmp_path: Path) -> None:
    clean = real_speech(shared_media, 12.0)
    noisy, _ = noisy_voice(clean, 5.0)
    check_denoised(media.write_audio(tmp_path / "street.wav", signal=noisy, sample_rate=RATE), clean)


def test_denoising_can_be_turned_off(media: Any, tmp_path: Path) -> None:
    noisy, _ = noisy_voice(media.voice_like(3.0, RATE, room_db=None), 8.0)
    path = media.write_audio(tmp_path / "hiss.wav", signal=noisy, sample_rate=RATE)
    assert plan_audio(check_audio(path), FixOptions(denoise=False)).actions == ()


# --------------------------------------------------------------------------- progress
def test_progress_rises_to_one(media: Any, tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "voice.flac", duration=4.0)
    seen: list[float] = []
    plan = plan_audio(check_audio(path), FixOptions())
    write_audio(plan, str(path), tmp_path / "out.part", on_progress=seen.append)
    assert seen and seen == sorted(seen) and seen[-1] == 1.0 and 0.0 <= seen[0] < 1.0
