"""PESQ (ITU-T P.862, narrowband) of packet loss concealment on the shipped speech clips.

Compares `dsp.plc.Concealer` with zero-fill (a lost frame is silence) and with repeating the
last good frame at half level, on the same seeded loss masks: independent random loss and
bursty loss from a two-state Gilbert-Elliott model. `tests/dsp/test_plc.py` asserts on a
small run; `tipring bench dsp` calls `measure_plc()`. Run as `python -m tests.bench.plc
[--json] [--quick]`. Never asserts anything.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pesq import pesq  # type: ignore[import-untyped]

from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.plc import DELAY_SAMPLES, Concealer
from tests.signals import frames, speech, speech_names

Row = dict[str, float | int | str]
BURST_FRAMES = 2.5  # mean burst length of the bursty patterns (frames of 20 ms)
QUICK_SEEDS = 2
FULL_SEEDS = 10


@dataclass(frozen=True, slots=True)
class LossPattern:
    """One loss condition of the table: its label, mean loss rate, and random or bursty."""

    label: str
    loss_rate: float
    bursty: bool

    def mask(self, n_frames: int, seed: tuple[int, ...]) -> NDArray[np.bool_]:
        """True where a frame is lost; the same `seed` always gives the same mask."""
        rng = np.random.default_rng(list(seed))
        if not self.bursty:
            return rng.random(n_frames) < self.loss_rate
        return gilbert_elliott_mask(rng, n_frames, self.loss_rate, BURST_FRAMES)


PATTERNS = (
    LossPattern("random 5%", 0.05, bursty=False),
    LossPattern("random 10%", 0.10, bursty=False),
    LossPattern("random 20%", 0.20, bursty=False),
    LossPattern("bursty 10%", 0.10, bursty=True),
    LossPattern("bursty 15%", 0.15, bursty=True),
)


def gilbert_elliott_mask(
    rng: np.random.Generator, n_frames: int, loss_rate: float, burst_frames: float
) -> NDArray[np.bool_]:
    """Two-state Gilbert-Elliott losses: every frame lost in the bad state, none in the good.

    Leaving the bad state has probability 1/burst_frames (bursts are geometric with that mean);
    entering it is set so that the stationary loss rate is `loss_rate`.
    """
    to_good = 1.0 / burst_frames
    to_bad = loss_rate * to_good / (1.0 - loss_rate)
    draws = rng.random(n_frames + 1)
    bad = bool(draws[0] < loss_rate)  # start in the stationary distribution
    mask = np.zeros(n_frames, np.bool_)
    for i in range(n_frames):
        mask[i] = bad
        bad = draws[i + 1] >= to_good if bad else draws[i + 1] < to_bad
    return mask


def conceal_plc(pcm: NDArray[np.int16], mask: NDArray[np.bool_]) -> NDArray[np.int16]:
    """Our concealer; the output is shifted back by its delay (flushed with one silent frame)."""
    plc = Concealer()
    parts = [plc.lost() if m else plc.good(f) for f, m in zip(frames(pcm), mask, strict=True)]
    parts.append(plc.good(np.zeros(FRAME_SAMPLES, np.int16)))
    return np.concatenate(parts)[DELAY_SAMPLES : DELAY_SAMPLES + pcm.size]


def conceal_zero_fill(pcm: NDArray[np.int16], mask: NDArray[np.bool_]) -> NDArray[np.int16]:
    """A lost frame is played as silence."""
    silence = np.zeros(FRAME_SAMPLES, np.int16)
    parts = [silence if m else f for f, m in zip(frames(pcm), mask, strict=True)]
    return np.concatenate(parts)[: pcm.size]


def conceal_half_repeat(pcm: NDArray[np.int16], mask: NDArray[np.bool_]) -> NDArray[np.int16]:
    """A lost frame is the last good frame at half amplitude (silence before the first)."""
    last = np.zeros(FRAME_SAMPLES, np.int16)
    parts = []
    for f, m in zip(frames(pcm), mask, strict=True):
        if not m:
            last = f
        parts.append(np.rint(last * 0.5).astype(np.int16) if m else f)
    return np.concatenate(parts)[: pcm.size]


METHODS: dict[str, Callable[[NDArray[np.int16], NDArray[np.bool_]], NDArray[np.int16]]] = {
    "plc_mos": conceal_plc,
    "zero_fill_mos": conceal_zero_fill,
    "half_repeat_mos": conceal_half_repeat,
}


def mos(reference: NDArray[np.int16], degraded: NDArray[np.int16]) -> float:
    """P.862 narrowband MOS-LQO at 8 kHz."""
    return float(pesq(RATE_HZ, reference, degraded, "nb"))


def measure_pattern(pattern: LossPattern, clips: list[str], seeds: int) -> Row:
    """Mean MOS of each method over `clips` x `seeds`, all three on the same masks."""
    scores: dict[str, list[float]] = {key: [] for key in METHODS}
    lost = total = bursts = 0
    for c, name in enumerate(clips):
        pcm = speech(name)
        n_frames = -(-pcm.size // FRAME_SAMPLES)
        for seed in range(seeds):
            mask = pattern.mask(n_frames, (seed, c, PATTERNS.index(pattern)))
            lost, total = lost + int(mask.sum()), total + mask.size
            bursts += int(np.count_nonzero(np.diff(mask.astype(np.int8), prepend=0) == 1))
            for key, method in METHODS.items():
                scores[key].append(mos(pcm, method(pcm, mask)))
    row: Row = {"pattern": pattern.label}
    row.update({key: float(np.mean(v)) for key, v in scores.items()})
    row["worst_margin"] = min(
        p - max(z, h) for p, z, h in zip(*(scores[k] for k in METHODS), strict=True)
    )
    row.update(measured_loss=lost / total, mean_burst_frames=lost / max(bursts, 1))
    row["runs"] = len(scores["plc_mos"])
    return row


def measure_plc(quick: bool) -> list[Row]:
    """One row per loss pattern: mean MOS of ours, zero-fill and half-level repeat over all six
    clips and `QUICK_SEEDS` (quick) or `FULL_SEEDS` masks each; `worst_margin` is the smallest
    per-run lead of ours over the better of the two others."""
    seeds = QUICK_SEEDS if quick else FULL_SEEDS
    return [measure_pattern(p, speech_names(), seeds) for p in PATTERNS]


TIMED_CYCLE = ("good", "good", "good_after_loss", "first_lost", "later_lost", "later_lost")


def measure_plc_timing(cycles: int = 500) -> dict[str, float]:
    """Mean wall time in microseconds of each kind of `Concealer` call (160-sample frames):
    `good` in steady state, `first_lost` of a loss (it runs the pitch search), `later_lost` in
    a loss, and `good_after_loss` (the cross-fade). Calls cycle through `TIMED_CYCLE`."""
    parts = frames(np.resize(speech("en_us_male"), (cycles * len(TIMED_CYCLE) + 1) * FRAME_SAMPLES))
    plc = Concealer()
    plc.good(parts[-1])
    plc.lost()  # the kernels are compiled or loaded from the cache before timing
    spent = dict.fromkeys(TIMED_CYCLE, 0.0)
    for i, kind in enumerate(TIMED_CYCLE * cycles):
        start = time.perf_counter()
        if kind.endswith("lost"):
            plc.lost()
        else:
            plc.good(parts[i])
        spent[kind] += time.perf_counter() - start
    return {
        f"{kind}_us": total * 1e6 / (cycles * TIMED_CYCLE.count(kind))
        for kind, total in spent.items()
    }


def format_table(rows: list[Row]) -> str:
    """The rows as a fixed-width text table."""
    heads = ("loss", "burst", "runs", "PLC", "zero", "half", "worst")
    lines = [f"{'pattern':<12} " + " ".join(f"{h:>6}" for h in heads)]
    for r in rows:
        lines.append(
            f"{r['pattern']!s:<12} {r['measured_loss']:>6.1%} {r['mean_burst_frames']:>6.2f} "
            f"{r['runs']:>6} "
            f"{r['plc_mos']:>6.3f} {r['zero_fill_mos']:>6.3f} {r['half_repeat_mos']:>6.3f} "
            f"{r['worst_margin']:>+6.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print rows and timings as JSON")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SEEDS} seeds, not {FULL_SEEDS}"
    )
    args = parser.parse_args()
    rows = measure_plc(quick=args.quick)
    timing = measure_plc_timing()
    if args.json:
        print(json.dumps({"pesq": rows, "timing_us": timing}, indent=2))
    else:
        print(format_table(rows))
        print("  ".join(f"{k} {v:.1f}" for k, v in timing.items()))


if __name__ == "__main__":
    main()
