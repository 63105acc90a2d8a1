"""Test signals for `dsp.line_signals`: each line signal as its standard describes it, line
noise, and the repo's recorded voices. 8 kHz int16 unless said otherwise.

Levels are per frequency (a sine's level, `dsp.levels`); ANSam's level is its mean power.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dsp.g711 import ulaw_decode
from dsp.levels import sine_amplitude, tone
from gateway.simcall_scenario import load_caller_voice
from tests.signals import white_noise

RATE_HZ = 8000
LINE_NOISE_DBM0 = -65.0
PROMPTS_DIR = Path(__file__).resolve().parents[2] / "gateway" / "realtime" / "local" / "prompts"
ANSAM_DEPTH = 0.2  # V.8: 15 Hz amplitude modulation, envelope 0.8..1.2
ANSAM_HZ = 15.0
REVERSAL_MS = 450.0  # V.25: a phase reversal every 450 +- 25 ms


def silence(ms: float) -> NDArray[np.int16]:
    return np.zeros(round(ms * RATE_HZ / 1000), np.int16)


def cng(level_dbm0: float, freq_hz: float = 1100.0, bursts: int = 1) -> NDArray[np.int16]:
    """T.30 calling tone: `bursts` of 0.5 s at `freq_hz`, each followed by 3 s off."""
    burst = tone([freq_hz], 500.0, level_dbm0)
    return np.concatenate([part for _ in range(bursts) for part in (burst, silence(3000.0))])


def ced(
    level_dbm0: float,
    freq_hz: float = 2100.0,
    ms: float = 3300.0,
    *,
    am: bool = False,
    reversals: bool = False,
) -> NDArray[np.int16]:
    """V.25 ANS (plain), /ANS (`reversals`), ANSam (`am`) or /ANSam (both) at `freq_hz`."""
    t = np.arange(round(ms * RATE_HZ / 1000)) / RATE_HZ
    depth = ANSAM_DEPTH if am else 0.0
    envelope = 1.0 + depth * np.cos(2 * np.pi * ANSAM_HZ * t)
    phase = np.pi * np.floor(t * 1000.0 / REVERSAL_MS) if reversals else 0.0
    amp = sine_amplitude(level_dbm0) / np.sqrt(1.0 + depth**2 / 2.0)  # mean power: the level
    x: NDArray[np.float64] = amp * envelope * np.sin(2 * np.pi * freq_hz * t + phase)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def sas(level_dbm0: float, freq_hz: float = 440.0, ms: float = 300.0) -> NDArray[np.int16]:
    """GR-506 subscriber alerting signal: one 440 Hz burst."""
    return tone([freq_hz], ms, level_dbm0)


def cas(level_dbm0: float, offset: float = 0.0, ms: float = 80.0) -> NDArray[np.int16]:
    """CPE alerting signal: 2130 + 2750 Hz (each `offset` relative off) for `ms`."""
    return tone([2130.0 * (1 + offset), 2750.0 * (1 + offset)], ms, level_dbm0)


def beep(level_dbm0: float, freq_hz: float = 1000.0, ms: float = 500.0) -> NDArray[np.int16]:
    return tone([freq_hz], ms, level_dbm0)


def on_line(*parts: NDArray[np.int16], seed: int = 0) -> NDArray[np.int16]:
    """`parts` back to back over line noise at LINE_NOISE_DBM0, clipped to int16."""
    x = np.concatenate(parts).astype(np.float64)
    x += white_noise(x.size / RATE_HZ, LINE_NOISE_DBM0, seed)[: x.size]
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def caller_voice() -> dict[str, NDArray[np.int16]]:
    """The simulated caller's utterances (gateway/simcall_data)."""
    voice = load_caller_voice()
    return {"request": voice.request, "interruption": voice.interruption}


def prompts() -> dict[str, NDArray[np.int16]]:
    """The local realtime server's recorded prompts (mu-law files), decoded."""
    return {
        p.stem: ulaw_decode(np.frombuffer(p.read_bytes(), np.uint8))
        for p in sorted(PROMPTS_DIR.glob("*.ulaw"))
    }
