"""Plain numpy reference for `dsp.tones` (with `dsp.tone_frames`, `dsp.tone_cadence`,
`dsp.tone_sit`, `dsp.tone_gen`): the same decisions, written independently of the kernels'
tables and slots.

- Frame analysis fits each tone set together with the low band's Slepian sequences by
  `np.linalg.lstsq` on the frame itself (the kernels use correlations with columns that have
  the low band taken out, and precomputed Gram matrices); hum is what of a frame's low-band
  coefficients a list of every frame's shows one hum cycle back.
- The tracker keeps Python lists of segments and level samples (the kernels use a ring
  buffer and running sums in int64/float64 slots) and rebuilds the cadence windows from the
  plan's milliseconds; with `hangup_watch` it finds the quick confirmations by trying every
  phase of every other cadence on the window's segments, and keeps each frame's loudness.
- The generator computes each sample's phase and cadence position in closed form (the kernel
  accumulates them).
Thresholds and tolerances are the modules' public constants: the reference checks the
arithmetic and the state machine, not the choice of constants.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dsp import hum
from dsp import tone_cadence as tc
from dsp import tone_cadence_tables as tct
from dsp import tone_frames as tf
from dsp import tone_sit as ts
from dsp.levels import sine_amplitude
from dsp.tone_plans import TONE_NAMES, TonePlan, get_plan

N = 160
FS = 8000
FLOOR = N * sine_amplitude(tf.ENERGY_FLOOR_DBM0) ** 2 / 2.0


def ref_low_band() -> NDArray[np.float64]:
    """(160, LOW_BAND_VECTORS): the leading eigenvectors of the band-limiting (sinc) matrix."""
    d = np.arange(N)[:, None] - np.arange(N)[None, :]
    w = tf.LOW_BAND_HZ / FS
    kernel = 2 * w * np.sinc(2 * w * d)
    values, vectors = np.linalg.eigh(kernel)
    return vectors[:, np.argsort(values)[::-1][: tf.LOW_BAND_VECTORS]]


LOW = ref_low_band()


def ref_correlate(
    frame: NDArray[np.int16], basis: NDArray[np.float64]
) -> tuple[NDArray[np.float64], float]:
    """Reference for `_correlate_kernel`: correlations with every basis column, and energy."""
    x = frame.astype(np.float64)
    return basis.T @ x, float(x @ x)


def _joint_fit(frame: NDArray[np.int16], freqs_hz: list[float]) -> tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]
]:  # fmt: skip
    """Least-squares fit of sinusoids at `freqs_hz` together with the low band: the plain
    cos/sin columns, the sinusoids' coefficients and the whole fitted frame."""
    n = np.arange(N)
    cols = []
    for f in freqs_hz:
        cols += [np.cos(2 * np.pi * f * n / FS), np.sin(2 * np.pi * f * n / FS)]
    b = np.column_stack([*cols, LOW])
    coef = np.linalg.lstsq(b, frame.astype(np.float64), rcond=None)[0]
    return b[:, : len(cols)], coef[: len(cols)], b @ coef


def ref_fit(frame: NDArray[np.int16], freqs_hz: list[float]) -> tuple[float, NDArray[np.float64]]:
    """Reference for `_fit_kernel`: what fitting sinusoids at `freqs_hz` adds to the fit of
    the low band alone (energy), and each sinusoid's amplitude."""
    _, tones, fitted = _joint_fit(frame, freqs_hz)
    low = LOW @ (LOW.T @ frame.astype(np.float64))
    return float(fitted @ fitted - low @ low), np.hypot(tones[0::2], tones[1::2])


def ref_tone_energy(frame: NDArray[np.int16], freqs_hz: list[float]) -> float:
    """Reference for `_tone_energy_kernel`: the energy of the fitted sinusoids themselves."""
    cols, tones, _ = _joint_fit(frame, freqs_hz)
    wave = cols @ tones
    return float(wave @ wave)


def _level(amps: NDArray[np.float64]) -> float:
    """Mean dBm0 if every component is in range and the twist is bounded, else nan."""
    lv = 20 * np.log10(np.maximum(amps, 1e-9) / 32768.0) + 3.14
    if lv.min() < tf.TONE_MIN_DBM0 or lv.max() > tf.TONE_MAX_DBM0:
        return math.nan
    return math.nan if lv.max() - lv.min() > tf.TWIST_MAX_DB else float(lv.mean())


def ref_classify(
    frame: NDArray[np.int16],
    sigs: list[tuple[float, ...]],
    hold_sig: int,
    hold_level: float,
    energy: float | None = None,
) -> tuple[int, float, float]:
    """Reference for `_classify_kernel`: (signature or -1, its level, its purity); `energy`
    is what purity divides by (default: the frame's)."""
    if energy is None:
        energy = float(frame.astype(np.float64) @ frame.astype(np.float64))
    if energy < FLOOR:
        return -1, 0.0, 0.0
    best = (-1, 0.0, 0.0)
    for s, sig in enumerate(sigs):
        mixes = [[f * o for f, o in zip(sig, mix, strict=True)] for mix in
                 itertools.product(tf.OFFSETS, repeat=len(sig))]  # fmt: skip
        fits = [ref_fit(frame, freqs) for freqs in mixes]
        pick = max(range(len(fits)), key=lambda i: fits[i][0])  # the first of equal fits
        amps = fits[pick][1]
        purity = ref_tone_energy(frame, mixes[pick]) / energy
        held = s == hold_sig
        level = _level(amps)
        if purity < (tf.HOLD_PURITY if held else tf.PURITY_MIN) or math.isnan(level):
            continue
        clean = purity >= tf.PURITY_MIN
        if held and (clean or abs(level - hold_level) <= tf.HOLD_DB):
            return s, level, purity
        if clean and not held and purity > best[2]:
            best = (s, level, purity)
    return best


def ref_sit_band(
    frame: NDArray[np.int16], bins: list[list[float]], energy: float | None = None
) -> tuple[int, float]:
    """Reference for `_sit_band_kernel`: (SIT band or -1, its level); `energy` as above."""
    if energy is None:
        energy = float(frame.astype(np.float64) @ frame.astype(np.float64))
    best, best_purity, best_level = -1, -1.0, 0.0
    if energy < FLOOR:
        return best, best_level
    for b, band in enumerate(bins):
        for f in band:
            amps = ref_fit(frame, [f])[1]
            level = _level(amps)
            purity = ref_tone_energy(frame, [f]) / energy
            if purity >= tf.SIT_PURITY_MIN and purity > best_purity and not math.isnan(level):
                best, best_purity, best_level = b, purity, level
    return best, best_level


@dataclass
class _Cadence:
    sig: int
    code: int
    windows: list[tuple[float, float]]  # (min, max) ms per segment, on first
    need: int
    cut: bool = True  # may the first burst of a history be cut short?
    quick: dict[tuple[bool, int], int] = field(default_factory=dict)  # (opens, phase): n


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _cadences(plan: TonePlan, sigs: list[tuple[float, ...]]) -> list[_Cadence]:
    out = []
    for t in plan.tones:
        if t.cadence_ms:
            slack = tc.EDGE_SLACK_MS
            windows = [
                (ms * (1 - t.tolerance) - slack, ms * (1 + t.tolerance) + slack)
                for ms in t.cadence_ms
            ]
            need = len(t.cadence_ms) + 1
            if len(t.cadence_ms) == 2:
                need = 4 if sum(t.cadence_ms) <= tc.LONG_CYCLE_MS else 3
            out.append(_Cadence(sigs.index(t.freqs_hz), TONE_NAMES.index(t.name), windows, need))
    for a in out:  # cut short only if no other cadence could fill the rest of the window
        for b in out:
            if b is a or b.sig != a.sig:
                continue
            la, lb = len(a.windows), len(b.windows)
            for ra, rb in itertools.product(range(0, la, 2), range(1, lb, 2)):
                rest = range(1, a.need)
                if all(
                    _overlap(a.windows[(ra + i) % la], b.windows[(rb + i - 1) % lb]) for i in rest
                ):
                    a.cut = False
    return out


def _could_be(a: _Cadence, b: _Cadence, ra: int, rb: int, n: int, opens: bool) -> bool:
    """Could b's segments from phase rb show a's n-segment window from phase ra, up to the
    moment its last segment reaches a's minimum (b's first burst cut short if `opens`)?"""
    for i in range(n):
        lo, hi = a.windows[(ra + i) % len(a.windows)]
        b_lo, b_hi = b.windows[(rb + i) % len(b.windows)]
        partial = i == n - 1 or (opens and i == 0)  # b's segment may be any length to b_hi
        if b_hi < lo or (not partial and b_lo > hi):
            return False
    return True


def _quick(cads: list[_Cadence]) -> None:
    """Fill each busy/reorder cadence's quick confirmations (`dsp.tone_cadence`)."""
    for a in cads:
        if TONE_NAMES[a.code] not in tc.QUICK_TONES:
            continue
        for opens, ra in itertools.product((False, True), range(0, len(a.windows), 2)):
            others = [b for b in cads if b is not a and b.sig == a.sig]
            for n in range(2, a.need):
                if not any(
                    _could_be(a, b, ra, rb, n, opens)
                    for b in others
                    for rb in range(0, len(b.windows), 2)
                ):
                    a.quick[opens, ra] = n
                    break


@dataclass
class _Seg:
    frames: int
    on: bool
    start: int
    quiet: bool = False  # a pause without a loud frame


Event = tuple[str, int, int, float, tuple[int, ...]]  # tone, at_ms, onset_ms, level, segments


@dataclass
class RefDetector:
    """Reference for `_detect_kernel` (and the tracker kernels it runs): whole frames only."""

    plan: TonePlan
    hangup_watch: bool = False
    sigs: list[tuple[float, ...]] = field(init=False)
    cads: list[_Cadence] = field(init=False)
    bins: list[list[float]] = field(init=False)
    frame: int = 0
    committed: int = -1
    cur_len: int = 0
    cur_start: int = 0
    cand: int = -1
    cand_run: int = 0
    hist_sig: int = -1
    hist: list[_Seg] = field(default_factory=list)
    skip: bool = False
    announced: set[int] = field(default_factory=set)
    seg_levels: list[float] = field(default_factory=list)
    tone_levels: list[float] = field(default_factory=list)
    tone_energies: list[float] = field(default_factory=list)
    loud: list[bool] = field(default_factory=list)  # every frame's
    noise: list[float] = field(default_factory=list)  # every frame's energy, 0 if tone
    lead: float = 0.0  # the loudest frame before the history's first burst
    sit: dict[str, int] = field(default_factory=dict)
    sit_levels: list[float] = field(default_factory=list)
    lows: list[NDArray[np.float64]] = field(default_factory=list)  # every frame's low band

    def __post_init__(self) -> None:
        self.plan = get_plan(self.plan)
        self.sigs = list(dict.fromkeys(t.freqs_hz for t in self.plan.tones))
        self.cads = _cadences(self.plan, self.sigs)
        if self.hangup_watch:
            _quick(self.cads)
        tol = self.plan.sit.band_tolerance_hz
        self.bins = []
        for band in self.plan.sit.bands_hz:
            lo, hi = min(band) - tol, max(band) + tol
            self.bins.append(list(np.linspace(lo, hi, math.ceil((hi - lo) / tf.SIT_GRID_HZ) + 1)))
        self.sit = dict(band=-1, len=0, gap=0, stage=0, idle=0, done=0, onset=0, seg0=0, seg1=0)

    def limits(self, sig: int) -> tuple[float, float]:
        """Longest on and off segment any cadence of `sig` allows (0 without cadences)."""
        on = [hi for c in self.cads if c.sig == sig for _, hi in c.windows[0::2]]
        off = [hi for c in self.cads if c.sig == sig for _, hi in c.windows[1::2]]
        return max(on, default=0.0), max(off, default=0.0)

    def feed(self, pcm: NDArray[np.int16]) -> list[Event]:
        events: list[Event] = []
        for i in range(0, pcm.size - N + 1, N):
            frame = pcm[i : i + N]
            hold = (
                (self.committed, float(np.mean(self.seg_levels)))
                if self.committed >= 0 and self.seg_levels
                else (-1, 0.0)
            )
            energy = self._less_hum(frame)
            raw, level, purity = ref_classify(frame, self.sigs, *hold, energy)
            band, sit_level = ref_sit_band(frame, self.bins, energy)
            quiet_energy = self._above_low_band(frame)
            self._tone_step(raw, level, quiet_energy, raw >= 0 and purity >= tf.PURITY_MIN, events)
            self._sit_step(band, sit_level, events)
            self.frame += 1
        return events

    def _above_low_band(self, frame: NDArray[np.int16]) -> float:
        """The frame's energy less its projection on the low band; 0 under the floor."""
        x = frame.astype(np.float64)
        if x @ x < FLOOR:
            return 0.0
        residual = x - LOW @ (LOW.T @ x)
        return float(residual @ residual)

    def _less_hum(self, frame: NDArray[np.int16]) -> float:
        """The frame's energy less the part of its low band that repeats one hum cycle back:
        ||c||^2 - ||c - c'||^2 if positive (quiet frames have c = 0); all of ||c||^2 in the
        first hum cycle."""
        x = frame.astype(np.float64)
        energy = float(x @ x)
        self.lows.append(LOW.T @ x if energy >= FLOOR else np.zeros(LOW.shape[1]))
        cycle = hum.HUM_PERIOD_MS // 20
        c = self.lows[-1]
        before = self.lows[-1 - cycle] if len(self.lows) > cycle else c
        return energy - max(0.0, float(c @ c - (c - before) @ (c - before)))

    # --- the dial / cadence tracker -------------------------------------------------------

    def _reset(self, sig: int, skip: bool) -> None:
        self.hist_sig, self.hist, self.skip, self.tone_levels = sig, [], skip, []
        self.tone_energies = []

    def _tone_step(
        self, raw: int, level: float, energy: float, clean: bool, events: list[Event]
    ) -> None:
        mean = float(np.mean(self.tone_energies)) if self.tone_energies else 0.0
        self.loud.append(raw < 0 and energy > 0.0 and energy > tc.QUIET_RATIO * mean)
        self.noise.append(energy if raw < 0 else 0.0)
        self._debounce(raw)
        self._expire()
        if raw >= 0 and raw == self.committed and clean:
            self.seg_levels.append(level)
        if raw >= 0 and raw == self.hist_sig:
            self.tone_levels.append(level)
            self.tone_energies.append(energy)
        self._dial(level, events)
        self._cadence(level, events)

    def _debounce(self, raw: int) -> None:
        self.cur_len += 1
        if raw == self.committed:
            self.cand, self.cand_run = raw, 0
            return
        self.cand_run = self.cand_run + 1 if raw == self.cand else 1
        self.cand = raw
        run = self.cand_run
        if run < tc.DEBOUNCE_FRAMES:
            return
        if self.hist_sig >= 0 and not self.skip:
            seg = _Seg(self.cur_len - run, self.committed >= 0, self.cur_start)
            seg.quiet = self._quiet(seg, ended=True)
            self.hist.append(seg)
        self.skip = False
        if raw >= 0:
            self.seg_levels = []
            if raw != self.hist_sig:
                self._reset(raw, False)
                start = self.frame - run + 1  # the frame before it may hold its edge
                lead_in = self.noise[max(start - 1 - tc.LEAD_FRAMES, 0) : start - 1]
                self.lead = max([*lead_in, 0.0])
        self.committed, self.cur_len, self.cur_start = raw, run, self.frame - run + 1
        self.cand_run = 0

    def _expire(self) -> None:
        ms = (self.cur_len - self.cand_run) * 20
        off = self.committed < 0
        if off and self.hist_sig >= 0 and ms > self.limits(self.hist_sig)[1]:
            self._reset(-1, False)
        if off and self.announced and ms > max(self._gone_ms(c) for c in self.announced):
            self.announced = set()
        sig = self.hist_sig
        if sig >= 0 and self.committed == sig and not self.skip and ms > self.limits(sig)[0]:
            self._reset(sig, True)

    def _gone_ms(self, code: int) -> float:
        """The pause that ends the state of the tone with `code`."""
        pauses = [hi for c in self.cads if c.code == code for _, hi in c.windows[1::2]]
        return max([tc.TONE_GONE_MS] + [tc.GONE_PAUSES * p for p in pauses])

    def _quiet(self, seg: _Seg, ended: bool) -> bool:
        """A pause without a loud frame but its first one and, once it has ended, its last."""
        end = seg.start + seg.frames - (1 if ended else 0)
        return not seg.on and not any(self.loud[seg.start + 1 : end])

    def _window(self, need: int) -> list[_Seg]:
        current = _Seg(self.cur_len - self.cand_run, self.committed >= 0, self.cur_start)
        current.quiet = self._quiet(current, ended=False)
        return ([*self.hist, current])[-need:]

    def _fits(self, cad: _Cadence, window: list[_Seg], r: int, cut: bool, quiet: bool) -> bool:
        for i, seg in enumerate(window):
            lo, hi = cad.windows[(r + i) % len(cad.windows)]
            ms = seg.frames * 20
            if seg.on != ((r + i) % len(cad.windows) % 2 == 0) or ms > hi:
                return False
            if (ms < lo and not (cut and i == 0 and seg.on)) or (
                quiet and not seg.on and not seg.quiet
            ):
                return False
        return True

    def _quick_need(self, cad: _Cadence) -> int:
        if self.skip:
            return 0
        mean = float(np.mean(self.tone_energies)) if self.tone_energies else 0.0
        for (opens, r), n in sorted(cad.quick.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if len(self.hist) < n - 1 or (len(self.hist) == n - 1) != opens:
                continue
            before_quiet = self.lead <= tc.QUIET_RATIO * mean if opens else self.hist[-n].quiet
            if before_quiet and self._fits(cad, self._window(n), r, False, True):
                return n
        return 0

    def _matches(self, cad: _Cadence, need: int) -> bool:
        if self.skip or len(self.hist) < need - 1:
            return False
        window = self._window(need)
        from_start = len(self.hist) == need - 1 and cad.cut
        return any(self._fits(cad, window, r, from_start, False) for r in range(len(cad.windows)))

    def _dial(self, level: float, events: list[Event]) -> None:
        dial = [t for t in self.plan.tones if t.name == "dial" and not t.cadence_ms]
        if not dial or self.committed != self.sigs.index(dial[0].freqs_hz):
            return
        base_ms = tct.WATCH_DIAL_HOLD_MS if self.hangup_watch else tct.DIAL_HOLD_MS
        hold = max([base_ms, self.limits(self.committed)[0] + 20])
        if tc.DIAL_CODE in self.announced or (self.cur_len - self.cand_run) * 20 < hold:
            return
        self.announced = {tc.DIAL_CODE}
        lvl = float(np.mean(self.seg_levels)) if self.seg_levels else level
        events.append(
            (
                "dial",
                (self.frame + 1) * 20,
                self.cur_start * 20,
                lvl,
                ((self.cur_len - self.cand_run) * 20,),
            )
        )

    def _cadence(self, level: float, events: list[Event]) -> None:
        if self.hist_sig < 0:
            return
        mine = [c for c in self.cads if c.sig == self.hist_sig]
        switching = any(c.code in self.announced for c in mine)
        for cad in mine:
            if cad.code in self.announced:
                continue
            need = min(cad.need + len(cad.windows), tc.HISTORY + 1) if switching else cad.need
            quick = 0 if switching else self._quick_need(cad)
            if quick:
                need = quick
            elif not self._matches(cad, need):
                continue
            self.announced = {cad.code}
            window = self._window(need)
            lvl = float(np.mean(self.tone_levels)) if self.tone_levels else level
            shown = tuple(s.frames * 20 for s in window[-tc.MAX_SEGMENTS :])
            events.append(
                (TONE_NAMES[cad.code], (self.frame + 1) * 20, window[0].start * 20, lvl, shown)
            )

    # --- the SIT tracker ------------------------------------------------------------------

    def _sit_close(self) -> None:
        st = self.sit
        if st["band"] < 0:
            return
        lo = self.plan.sit.segment_min_ms - tc.EDGE_SLACK_MS
        hi = self.plan.sit.segment_max_ms + tc.EDGE_SLACK_MS
        valid = lo <= st["len"] * 20 <= hi
        if valid and st["band"] == st["stage"] < 2:
            st[f"seg{st['stage']}"] = st["len"]
            st["stage"] += 1
        elif valid and st["band"] == 0:
            st["seg0"], st["stage"] = st["len"], 1
        else:
            st["stage"] = 0

    def _sit_step(self, band: int, level: float, events: list[Event]) -> None:
        st = self.sit
        st["idle"] = 0 if band >= 0 else st["idle"] + 1
        if st["done"] and st["idle"] * 20 > ts.SIT_REARM_MS:
            st["done"] = 0
        if band >= 0 and band == st["band"]:
            st["len"] += st["gap"] + 1
            st["gap"] = 0
        elif band >= 0:
            self._sit_close()
            st.update(band=band, len=1, gap=0)
            if band == 0:
                st["onset"], self.sit_levels = self.frame, []
        elif st["band"] >= 0:
            st["gap"] += 1
            if st["gap"] > ts.SIT_GAP_FRAMES:
                self._sit_close()
                st.update(band=-1, stage=0, gap=0)
        if band >= 0:
            self.sit_levels.append(level)
        lo = self.plan.sit.segment_min_ms - tc.EDGE_SLACK_MS
        if st["band"] == 2 and st["stage"] == 2 and not st["done"] and st["len"] * 20 >= lo:
            st["done"] = 1
            lvl = float(np.mean(self.sit_levels)) if self.sit_levels else level
            segs = (st["seg0"] * 20, st["seg1"] * 20, st["len"] * 20)
            events.append(("sit", (self.frame + 1) * 20, st["onset"] * 20, lvl, segs))


def ref_synth(
    freqs_hz: list[float], amps: list[float], seg_len: list[int], seg_mask: list[int],
    ramp: int, n: int, rate_hz: int,
) -> NDArray[np.int16]:  # fmt: skip
    """Reference for `_synth_kernel` from a fresh start: closed-form phase and cadence."""
    t = np.arange(n)
    if seg_len[0] < 0:
        seg = np.zeros(n, np.int64)
        pos, length = t, np.full(n, -1)
    else:
        ends = np.cumsum(seg_len)
        in_cycle = t % ends[-1]
        seg = np.searchsorted(ends, in_cycle, side="right")
        pos = in_cycle - (ends[seg] - np.asarray(seg_len)[seg])
        length = np.asarray(seg_len)[seg]
    masks = np.asarray(seg_mask)[seg]
    x = np.zeros(n)
    for k, (f, a) in enumerate(zip(freqs_hz, amps, strict=True)):
        phase = np.mod(t * (f / rate_hz), 1.0)
        x += np.where(masks & (1 << k), a * np.sin(2 * np.pi * phase), 0.0)
    env = np.minimum(1.0, (pos + 1) / ramp)
    env = np.where(length > 0, np.minimum(env, (length - pos) / ramp), env)
    return np.clip(np.floor(x * env + 0.5), -32768, 32767).astype(np.int16)
