"""Test signals: the shipped speech clips, and music-like and noise signals made in code.

Everything is 8 kHz int16 unless said otherwise. Generators take a seed so every test
signal is reproducible.
"""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dsp.levels import dbm0_to_rms

DATA_DIR = Path(__file__).parent / "data"
SPEECH_DIR = DATA_DIR / "speech"
RATE_HZ = 8000


@functools.cache
def _read_wav(path: Path) -> NDArray[np.int16]:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (RATE_HZ, 2, 1), path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    data.setflags(write=False)
    return data


def speech_names() -> list[str]:
    """Names of the shipped speech clips (several voices and languages)."""
    return sorted(p.stem for p in SPEECH_DIR.glob("*.wav"))


def speech(name: str) -> NDArray[np.int16]:
    """One shipped clip, 8 kHz int16, about -20 dBm0 RMS (read-only: copy to modify)."""
    return _read_wav(SPEECH_DIR / f"{name}.wav")


def all_speech() -> NDArray[np.int16]:
    """Every clip back to back, with 200 ms of silence between them."""
    gap = np.zeros(RATE_HZ // 5, np.int16)
    return np.concatenate([part for n in speech_names() for part in (speech(n), gap)])


def scale_to_dbm0(
    pcm: NDArray[np.int16] | NDArray[np.float64], level_dbm0: float
) -> NDArray[np.int16]:
    """Scale a signal so its RMS over the active part (> -50 dB of peak) is `level_dbm0`."""
    x = np.asarray(pcm, np.float64)
    active = x[np.abs(x) > np.max(np.abs(x)) * 10 ** (-50 / 20)] if x.any() else x
    rms = float(np.sqrt(np.mean(active**2))) if active.size else 0.0
    gain = dbm0_to_rms(level_dbm0) / rms if rms > 0 else 0.0
    return np.clip(np.round(x * gain), -32768, 32767).astype(np.int16)


def white_noise(seconds: float, level_dbm0: float, seed: int = 0) -> NDArray[np.int16]:
    """Gaussian white noise at `level_dbm0`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(round(seconds * RATE_HZ)) * dbm0_to_rms(level_dbm0)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def pink_noise(seconds: float, level_dbm0: float, seed: int = 0) -> NDArray[np.int16]:
    """1/f noise (shaped in the frequency domain) at `level_dbm0`: closer to line noise."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE_HZ)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE_HZ)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    x *= dbm0_to_rms(level_dbm0) / np.sqrt(np.mean(x**2))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def music(seconds: float, level_dbm0: float = -18.0, seed: int = 0) -> NDArray[np.int16]:
    """Music-like signal: chords of harmonic notes with envelopes, a bass line and sustained
    pads, notes often landing on call-progress frequencies (350-620 Hz, 425 Hz) on purpose."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE_HZ)
    out = np.zeros(n)
    t_note = 0
    scale = 440.0 * 2 ** (np.array([-12, -10, -9, -7, -5, -4, -2, 0, 2, 3, 5, 7]) / 12)
    while t_note < n:
        dur = int(rng.choice([0.25, 0.5, 0.5, 1.0, 2.0]) * RATE_HZ)
        chord = rng.choice(scale, size=int(rng.integers(1, 4)), replace=False)
        t = np.arange(min(dur, n - t_note)) / RATE_HZ
        env = np.exp(-t * rng.uniform(0.3, 3.0)) * np.minimum(1.0, t * 200)
        vib = 1 + 0.003 * np.sin(2 * np.pi * 5.5 * t) * rng.integers(0, 2)
        for f0 in chord:
            for h in range(1, 6):
                if f0 * h < 3600:
                    out[t_note : t_note + t.size] += env * np.sin(2 * np.pi * f0 * h * vib * t) / h
        bass = scale[int(rng.integers(0, 5))] / 4
        out[t_note : t_note + t.size] += 0.7 * env * np.sin(2 * np.pi * bass * t)
        t_note += dur
    return scale_to_dbm0(out, level_dbm0)


def add_noise(pcm: NDArray[np.int16], snr_db: float, seed: int = 0) -> NDArray[np.int16]:
    """Add white Gaussian noise so that signal power / noise power = `snr_db` (whole array)."""
    rng = np.random.default_rng(seed)
    x = pcm.astype(np.float64)
    p = float(np.mean(x**2))
    noise = rng.standard_normal(x.size) * np.sqrt(p / 10 ** (snr_db / 10))
    return np.clip(np.round(x + noise), -32768, 32767).astype(np.int16)


def frames(pcm: NDArray[np.int16], size: int = 160) -> list[NDArray[np.int16]]:
    """Split into whole frames of `size` samples (a short tail is zero-padded)."""
    pad = (-pcm.size) % size
    x = np.concatenate([pcm, np.zeros(pad, np.int16)]) if pad else pcm
    return [x[i : i + size] for i in range(0, x.size, size)]


# Hum as a cheap DAA or USB voice modem adds it: mains Hz, levels of harmonics 2, 3, ...
# relative to the fundamental (dB), DC offset (int16 units). 60 Hz with its 2nd and 3rd
# harmonics 6 and 10 dB down; 50 Hz running 0.1 Hz slow with its 3rd harmonic 10 dB down.
HUM_KINDS: dict[str, tuple[float, tuple[float, ...], float]] = {
    "50 Hz": (50.0, (), 0.0),
    "60+120+180 Hz": (60.0, (-6.0, -10.0), 0.0),
    "49.9+149.7 Hz": (49.9, (-np.inf, -10.0), 0.0),
    "DC 3000": (0.0, (), 3000.0),
}


def with_hum(pcm: NDArray[np.int16], kind: str, level_dbm0: float = -20.0) -> NDArray[np.int16]:
    """`pcm` plus the hum of `HUM_KINDS[kind]` from its first sample, the fundamental at
    `level_dbm0` (ignored for a DC offset), clipped to int16."""
    mains_hz, harmonics_db, dc = HUM_KINDS[kind]
    t = np.arange(pcm.size) / RATE_HZ
    x = pcm.astype(np.float64) + dc
    for k, rel_db in enumerate((0.0, *harmonics_db), start=1):
        if mains_hz and rel_db > -np.inf:
            amp = dbm0_to_rms(level_dbm0 + rel_db) * np.sqrt(2.0)
            x += amp * np.sin(2 * np.pi * k * mains_hz * t + 0.3 + k)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
