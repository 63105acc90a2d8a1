"""Cadence tables: compiles a tone plan, once per plan, into the arrays the tracker kernels
of `dsp.tone_cadence` read.

Owns `CadenceTables` and `build_cadence_tables` (called by `dsp.tones.ToneDetector`): each
cadenced tone's segment windows (+-tolerance and `EDGE_SLACK_MS`), the segments that confirm
it (`confirm_segments`), whether its history's first burst may be cut short, its quick
confirmations on a hang-up watch (`quick_windows`), and the dial-tone hold and the pauses
that end each tone's state. The rules and the tables' layout are `dsp.tone_cadence`'s.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.errors import DspInputError
from dsp.tone_cadence import (
    _C_CODE,
    _C_CONFIRM,
    _C_CUT,
    _C_LEN,
    _C_SIG,
    _CAD_COLS,
    _T_DIAL_HOLD,
    _T_DIAL_SIG,
    _T_GONE,
    _TRACK_PARAM_SLOTS,
    EDGE_SLACK_MS,
    FRAME_MS,
    GONE_PAUSES,
    HISTORY,
    LONG_CYCLE_MS,
    MAX_SEGMENTS,
    QUICK_TONES,
    TONE_GONE_MS,
)
from dsp.tone_plans import TONE_NAMES, TonePlan

DIAL_HOLD_MS = 1000.0  # continuous tone this long is dial tone
WATCH_DIAL_HOLD_MS = 700.0  # ... in a call (`hangup_watch`): the far end is gone. Still longer
# than any cadenced burst on dial tone's frequencies (the longest of any plan is 0.5 s).


@dataclass(frozen=True, slots=True)
class CadenceTables:
    """A plan compiled for the tracker kernels."""

    cad: NDArray[np.int64]  # (cadenced tones, 5): the _C_* columns
    cad_ms: NDArray[np.float64]  # (cadenced tones, 2, length): min, max of each segment
    quick: NDArray[np.int64]  # (cadenced tones, 2, length): see `quick_windows`
    limits: NDArray[np.float64]  # (signatures, 2): longest on and off any cadence allows
    params: NDArray[np.float64]


def confirm_segments(cadence_ms: tuple[int, ...]) -> int:
    """Segments to see before naming a cadence (the last one once it reaches its minimum)."""
    if len(cadence_ms) == 2:
        return 4 if sum(cadence_ms) <= LONG_CYCLE_MS else 3  # two cycles, or on-off-on
    return len(cadence_ms) + 1  # a multi-burst cycle and the next burst


def _cadences(
    plan: TonePlan, sigs: tuple[tuple[float, ...], ...]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    cadenced = [t for t in plan.tones if t.cadence_ms]
    width = max((len(t.cadence_ms) for t in cadenced), default=2)
    cad = np.zeros((len(cadenced), _CAD_COLS), np.int64)
    cad_ms = np.zeros((len(cadenced), 2, width), np.float64)
    limits = np.zeros((len(sigs), 2), np.float64)
    for i, spec in enumerate(cadenced):
        need = confirm_segments(spec.cadence_ms)
        if len(spec.cadence_ms) % 2 or need > min(HISTORY + 1, MAX_SEGMENTS):
            raise DspInputError(
                f"tone plan {plan.name}: {spec.name} cadence {spec.cadence_ms} must be "
                f"on/off pairs, at most {MAX_SEGMENTS - 1} segments"
            )
        sig = sigs.index(spec.freqs_hz)
        cad[i, :4] = (sig, len(spec.cadence_ms), need, TONE_NAMES.index(spec.name))
        for p, ms in enumerate(spec.cadence_ms):
            lo = ms * (1.0 - spec.tolerance) - EDGE_SLACK_MS
            hi = ms * (1.0 + spec.tolerance) + EDGE_SLACK_MS
            cad_ms[i, :, p] = (lo, hi)
            limits[sig, p % 2] = max(limits[sig, p % 2], hi)
    for i in range(len(cadenced)):
        cad[i, _C_CUT] = not any(
            _could_pass_for(cad, cad_ms, i, j) for j in range(len(cadenced)) if j != i
        )
    return cad, cad_ms, limits


def _could_pass_for(cad: NDArray[np.int64], cad_ms: NDArray[np.float64], t: int, u: int) -> bool:
    """Could some run of tone u's segments fill tone t's window after its first burst?
    (Then t's first burst must be whole: UK busy vs UK congestion.)"""
    if cad[t, _C_SIG] != cad[u, _C_SIG]:
        return False
    lt, lu = cad[t, _C_LEN], cad[u, _C_LEN]
    for rt in range(0, lt, 2):  # t's window starts with a burst
        for ru in range(1, lu, 2):  # its second segment is a pause of u
            if all(
                cad_ms[t, 0, (rt + i) % lt] <= cad_ms[u, 1, (ru + i - 1) % lu]
                and cad_ms[u, 0, (ru + i - 1) % lu] <= cad_ms[t, 1, (rt + i) % lt]
                for i in range(1, cad[t, _C_CONFIRM])
            ):
                return True
    return False


def quick_windows(cad: NDArray[np.int64], cad_ms: NDArray[np.float64]) -> NDArray[np.int64]:
    """[t, first, r]: segments that confirm busy or reorder t from a burst at phase r when its
    pauses are quiet (first = 1: the burst opens the history and may be cut short); 0 where
    no count under the usual confirmation leaves out every other cadence on the same
    frequencies."""
    quick = np.zeros(cad_ms.shape, np.int64)
    for t, first in itertools.product(range(cad.shape[0]), range(2)):
        if TONE_NAMES[cad[t, _C_CODE]] not in QUICK_TONES:
            continue
        for r in range(0, cad[t, _C_LEN], 2):
            quick[t, first, r] = next(
                (
                    n
                    for n in range(2, cad[t, _C_CONFIRM])
                    if not _mimicked(cad, cad_ms, t, r, n, first)
                ),
                0,
            )
    return quick


def _mimicked(
    cad: NDArray[np.int64], cad_ms: NDArray[np.float64], t: int, r: int, n: int, first: int
) -> bool:
    """Could another cadence u on t's frequencies show n segments that t's window from
    phase r takes, up to the moment the last reaches its minimum? (With `first`, u's first
    burst may be cut short.)"""
    lt = cad[t, _C_LEN]
    for u in range(cad.shape[0]):
        if u == t or cad[u, _C_SIG] != cad[t, _C_SIG]:
            continue
        lu = cad[u, _C_LEN]
        for q in range(0, lu, 2):
            lo_t, hi_t = cad_ms[t, 0], cad_ms[t, 1]
            lo_u, hi_u = cad_ms[u, 0], cad_ms[u, 1]
            if all(
                hi_u[(q + i) % lu] >= lo_t[(r + i) % lt]
                and (i == n - 1 or (first and i == 0) or lo_u[(q + i) % lu] <= hi_t[(r + i) % lt])
                for i in range(n)
            ):
                return True
    return False


def build_cadence_tables(
    plan: TonePlan, sigs: tuple[tuple[float, ...], ...], hangup_watch: bool = False
) -> CadenceTables:
    """Cadence windows of `plan`'s tones; `sigs` are the tone sets as the frame tables number
    them. `hangup_watch`: confirm busy and reorder early on quiet pauses, and dial tone after
    `WATCH_DIAL_HOLD_MS`."""
    cad, cad_ms, limits = _cadences(plan, sigs)
    quick = quick_windows(cad, cad_ms) if hangup_watch else np.zeros(cad_ms.shape, np.int64)
    dial = [t for t in plan.tones if t.name == "dial" and not t.cadence_ms]
    params = np.zeros(_TRACK_PARAM_SLOTS, np.float64)
    dial_sig = sigs.index(dial[0].freqs_hz) if dial else -1
    params[_T_DIAL_SIG] = dial_sig
    # Dial tone must outlast every burst of a cadenced tone on the same frequencies.
    hold_ms = WATCH_DIAL_HOLD_MS if hangup_watch else DIAL_HOLD_MS
    params[_T_DIAL_HOLD] = max(hold_ms, limits[dial_sig, 0] + FRAME_MS) if dial else np.inf
    params[_T_GONE : _T_GONE + len(TONE_NAMES)] = TONE_GONE_MS
    for t in range(cad.shape[0]):
        longest_pause = float(np.max(cad_ms[t, 1, 1 : cad[t, _C_LEN] : 2]))
        params[_T_GONE + cad[t, _C_CODE]] = max(GONE_PAUSES * longest_pause, TONE_GONE_MS)
    return CadenceTables(cad=cad, cad_ms=cad_ms, quick=quick, limits=limits, params=params)
