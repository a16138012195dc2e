"""Study: which denoiser should `preflight fix` use on a noisy voice?

    python bench/denoise.py [--seconds 20] [--snr 0 5 10 20]

Real speech (``../shared/media/MuseTalk__audio__eng.wav``, 16 kHz mono; the fixture
script's synthetic voice when absent) is mixed with white noise, pink noise (20 Hz-8 kHz)
and a recorded-like mains hum (50 Hz and its harmonics, drifting, over a little hiss) at
several signal-to-noise ratios. Each candidate denoises the mixture; its output is
shifted back by the delay it added (measured by cross-correlation with the input, and
shown), then scored against the clean speech:

- ``SNR``: 10 log10(sum clean^2 / sum (out - clean)^2), residual noise and damage to the
  voice together; ``gain`` is its rise over the input's;
- ``segSNR``: the same over 30 ms frames of speech, clamped to -10..35 dB, averaged (how
  much of the voice survives where there is voice);
- ``pauses``: how much quieter the pauses got (dB): frames where the clean speech is
  30 dB under its median level;
- ``loss``: how much quieter the speech frames got than the clean speech (dB; a denoiser
  that eats the voice scores high here);
- ``corr``: correlation with the clean speech;
- ``check``: preflight's own speech-over-noise-floor measure (``Audio.Noisy`` under 20);
- ``lag``: the delay the candidate added (ms) before it was compensated;
- ``ms/s``: processing time per second of audio, on this machine.

Candidates: FFmpeg's afftdn (defaults, and with its noise floor set to the measured one)
and anlmdn through PyAV; noisereduce (spectral gating; stationary with the quietest frames
as the noise clip, and non-stationary) and RNNoise (the ``pyrnnoise`` wheel's library,
through ctypes, at 48 kHz) when installed; and ``preflight._fix.audio.noise.denoise`` (a NumPy
Wiener filter, no dependency), with its gain floor at the chosen -30 dB and at -20/-40 dB.
Missing optional packages are skipped with a note.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import itertools
import math
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures"))

import make_fixtures  # noqa: E402
from _common import REAL_VOICE, decode_mono  # noqa: E402  (bench/, beside this script)

from preflight import AudioThresholds  # noqa: E402
from preflight._fix.audio.noise import DENOISE_FLOOR_DB, denoise  # noqa: E402
from preflight._fix.audio.samples import noise_floor_db, write_wav  # noqa: E402
from preflight._probe.voice import analyse_audio  # noqa: E402

RATE = 16000
FRAME = int(0.03 * RATE)
Denoiser = Callable[[np.ndarray], np.ndarray]
_WIDTHS = {
    "SNR": 6,
    "gain": 6,
    "segSNR": 6,
    "pauses": 6,
    "loss": 5,
    "corr": 5,
    "check": 5,
    "lag": 6,
    "ms/s": 5,
}
COLUMNS = " ".join(f"{name:>{width}}" for name, width in _WIDTHS.items())


# --------------------------------------------------------------------------- material
def clean_speech(seconds: float) -> tuple[np.ndarray, str]:
    if REAL_VOICE.exists():
        voice = decode_mono(REAL_VOICE, RATE, "dbl")
        return voice[: round(seconds * RATE)], f"real speech ({REAL_VOICE.name})"
    return make_fixtures.voice_like(seconds, RATE, room_db=None), "synthetic voice (shared/media absent)"


def noises(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    spectrum = np.fft.rfft(rng.normal(size=n))
    freq = np.fft.rfftfreq(n, 1 / RATE)
    shaped = np.where(freq >= 20, 1 / np.sqrt(np.maximum(freq, 1)), 0.0)
    t = np.arange(n) / RATE
    drift = 2 * np.pi * np.cumsum(50 + 0.2 * np.sin(2 * np.pi * 0.1 * t)) / RATE
    hum = sum(np.sin(k * drift) / k for k in range(1, 12)) * (1 + 0.1 * np.sin(2 * np.pi * 0.3 * t))
    return {
        "white": rng.normal(size=n),
        "pink": np.fft.irfft(spectrum * shaped, n),
        "hum": hum + 0.05 * rng.normal(size=n),
    }


# --------------------------------------------------------------------------- candidates
def ffmpeg_filter(chain: str) -> Denoiser:
    def run(x: np.ndarray) -> np.ndarray:
        graph = av.filter.Graph()
        source = graph.add_abuffer(format="dbl", sample_rate=RATE, layout="mono", time_base=Fraction(1, RATE))
        nodes = [source]
        for part in chain.format(floor=max(-80, min(-20, round(noise_floor_db(x[None], RATE))))).split(","):
            name, _, args = part.partition("=")
            nodes.append(graph.add(name, args))
        nodes.append(graph.add("abuffersink"))
        for a, b in itertools.pairwise(nodes):
            a.link_to(b)
        graph.configure()
        out: list[np.ndarray] = []

        def drain() -> None:
            while True:
                try:
                    out.append(graph.pull().to_ndarray().ravel())
                except (av.BlockingIOError, av.EOFError):
                    return

        for start in range(0, len(x), 1024):
            frame = av.AudioFrame.from_ndarray(
                x[None, start : start + 1024].copy(), format="dbl", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
        return np.concatenate(out)

    return run


def quiet_frames(x: np.ndarray, share: float = 0.15) -> np.ndarray:
    frames = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
    energy = (frames**2).mean(axis=1)
    quiet: np.ndarray = frames[energy <= np.quantile(energy, share)].ravel()
    return quiet


def noisereduce_candidates() -> dict[str, Denoiser]:
    try:
        import noisereduce  # type: ignore[import-not-found]
    except ImportError:
        print("note: noisereduce is not installed (pip install noisereduce): skipped")
        return {}
    return {
        "noisereduce stationary": lambda x: noisereduce.reduce_noise(
            y=x, sr=RATE, stationary=True, y_noise=quiet_frames(x)
        ),
        "noisereduce non-stationary": lambda x: noisereduce.reduce_noise(y=x, sr=RATE),
    }


def rnnoise_candidate() -> dict[str, Denoiser]:
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        print("note: pyrnnoise is not installed (pip install pyrnnoise): RNNoise skipped")
        return {}
    lib = ctypes.CDLL(str(Path(next(iter(spec.submodule_search_locations))) / "librnnoise.so"))
    lib.rnnoise_create.argtypes, lib.rnnoise_create.restype = [ctypes.c_void_p], ctypes.c_void_p
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    pointer = ctypes.POINTER(ctypes.c_float)
    lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, pointer, pointer]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    size = lib.rnnoise_get_frame_size()

    def run(x: np.ndarray) -> np.ndarray:
        up = (resample(x, RATE, 48000) * 32767).astype(np.float32)  # RNNoise: 48 kHz, 16-bit scale
        state = lib.rnnoise_create(None)
        for start in range(0, len(up) - size + 1, size):
            block = np.ascontiguousarray(up[start : start + size])
            lib.rnnoise_process_frame(state, block.ctypes.data_as(pointer), block.ctypes.data_as(pointer))
            up[start : start + size] = block
        lib.rnnoise_destroy(state)
        return resample(up / 32767, 48000, RATE)

    return {"RNNoise (pyrnnoise)": run}


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    resampler = av.AudioResampler(format="dbl", layout="mono", rate=dst)
    frame = av.AudioFrame.from_ndarray(x[None].astype(np.float64), format="dbl", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = src, 0, Fraction(1, src)
    parts = [f.to_ndarray().ravel() for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(parts)


def _wiener_at(floor_db: float) -> Denoiser:
    return lambda x: denoise(x[None], RATE, floor_db=floor_db)[0]


def candidates() -> dict[str, Denoiser]:
    found: dict[str, Denoiser] = {
        "afftdn (defaults)": ffmpeg_filter("afftdn"),
        "afftdn nf=floor nr=30": ffmpeg_filter("afftdn=nr=30:nf={floor}"),
        "anlmdn s=100": ffmpeg_filter("anlmdn=s=100"),
    }
    found.update(noisereduce_candidates())
    found.update(rnnoise_candidate())
    # The fixer's choice (floor DENOISE_FLOOR_DB), and its gain floor moved either way.
    found[f"preflight Wiener ({DENOISE_FLOOR_DB:.0f} dB)"] = lambda x: denoise(x[None], RATE)[0]
    for floor in (-20.0, -40.0):
        found[f"  same, floor {floor:.0f} dB"] = _wiener_at(floor)
    return found


# --------------------------------------------------------------------------- scoring
def lag_of(out: np.ndarray, reference: np.ndarray, reach: int) -> int:
    """Samples by which ``out`` trails ``reference`` (FFT cross-correlation)."""
    size = 1 << math.ceil(math.log2(len(out) + len(reference)))
    corr = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(reference, size)), size)
    window = np.concatenate([corr[-reach:], corr[: reach + 1]])
    return int(np.argmax(window)) - reach


def aligned(out: np.ndarray, lag: int, n: int) -> np.ndarray:
    out = (
        np.concatenate([out[lag:], np.zeros(max(0, lag))])
        if lag >= 0
        else np.concatenate([np.zeros(-lag), out])
    )
    return np.pad(out, (0, max(0, n - len(out))))[:n]


def frames_of(x: np.ndarray) -> np.ndarray:
    return x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)


def check_snr(x: np.ndarray, folder: Path) -> float:
    path = folder / "scored.wav"
    write_wav(x[None], RATE, path)
    analysis = analyse_audio(path)
    return analysis.snr_db if analysis is not None and analysis.snr_db is not None else float("nan")


def score(out: np.ndarray, mix: np.ndarray, clean: np.ndarray, folder: Path) -> dict[str, float]:
    error = out - clean
    clean_f, out_f, mix_f, err_f = (frames_of(a) for a in (clean, out, mix, error))
    level = 10 * np.log10((clean_f**2).mean(axis=1) + 1e-12)
    speech = level > np.median(level) - 15
    pauses = level < np.median(level) - 30
    seg = 10 * np.log10((clean_f**2).sum(axis=1) / ((err_f**2).sum(axis=1) + 1e-12) + 1e-12)
    return {
        "snr": 10 * math.log10((clean**2).sum() / (error**2).sum()),
        "seg": float(np.clip(seg, -10, 35)[speech].mean()),
        "pauses": 10 * math.log10((mix_f[pauses] ** 2).sum() / ((out_f[pauses] ** 2).sum() + 1e-12)),
        "loss": 10 * math.log10((clean_f[speech] ** 2).sum() / ((out_f[speech] ** 2).sum() + 1e-12)),
        "corr": float(np.corrcoef(out, clean)[0, 1]),
        "check": check_snr(out, folder),
    }


# --------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of speech used (default 20)")
    parser.add_argument("--snr", type=float, nargs="+", default=[0.0, 5.0, 10.0, 20.0])
    args = parser.parse_args()

    clean, source = clean_speech(args.seconds)
    n = len(clean)
    rng = np.random.default_rng(1)
    found = candidates()
    print(f"{source}, {n / RATE:.0f} s at {RATE} Hz; Audio.Noisy below {AudioThresholds.min_snr_db:g} dB\n")
    header = f"{'noise':6} {'in':>4}  {'candidate':28} {COLUMNS}"
    print(header)
    print("-" * len(header))
    totals: dict[str, list[dict[str, float]]] = {name: [] for name in found}
    with tempfile.TemporaryDirectory() as folder:
        for noise_name, noise in noises(n, rng).items():
            for snr_in in args.snr:
                scaled = (
                    noise / np.sqrt((noise**2).mean()) * np.sqrt((clean**2).mean()) * 10 ** (-snr_in / 20)
                )
                mix = clean + scaled
                base = score(mix, mix, clean, Path(folder))
                row = f"{base['snr']:6.1f} {0:6.1f} {base['seg']:6.1f} {0:6.1f} {0:5.1f} {base['corr']:5.2f}"
                print(f"{noise_name:6} {snr_in:4.0f}  {'(input)':28} {row} {base['check']:5.1f}")
                for name, run in found.items():
                    started = time.perf_counter()
                    raw = np.asarray(run(mix), dtype=np.float64)
                    elapsed = time.perf_counter() - started
                    lag = lag_of(raw, mix, reach=RATE // 10)
                    result = score(aligned(raw, lag, n), mix, clean, Path(folder))
                    result.update(gain=result["snr"] - base["snr"], lag=1000 * lag / RATE)
                    result["ms"] = 1000 * elapsed / (n / RATE)
                    totals[name].append(result)
                    print(f"{'':6} {'':4}  {name:28} {_row(result)}")
    print("\nMean over all mixtures (higher is better except loss and ms/s):")
    print(f"{'candidate':36} {COLUMNS}")
    ranked = sorted(totals.items(), key=lambda item: -np.mean([r["gain"] for r in item[1]]))
    for name, results in ranked:
        mean = {key: float(np.mean([r[key] for r in results])) for key in results[0]}
        print(f"{name:36} {_row(mean)}")
    return 0


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['snr']:6.1f} {r['gain']:6.1f} {r['seg']:6.1f} {r['pauses']:6.1f} {r['loss']:5.1f} "
        f"{r['corr']:5.2f} {r['check']:5.1f} {r.get('lag', 0):6.1f} {r.get('ms', 0):5.0f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
