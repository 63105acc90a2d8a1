"""Detector comparison for `tipring bench dsp`: our DTMF, caller ID and call-progress detectors
against Debian's spandsp 0.0.6 (bound in `tests.bench.spandsp`), on identical signals.

The signals are built here from the standards (Q.23/Q.24 DTMF pairs, Bell 202 / V.23 FSK with
GR-30 MDMF framing, E.180 cadences), independently of our own generators, so a shared
misconception between our generator and our detector cannot hide. Each check yields a row:

    {"group": "dtmf", "check": "16 digits at -36 dBm0", "expect": "16/16",
     "tipring": 16, "spandsp": 16, "of": 16, "unit": "",
     "tipring_pass": True, "spandsp_pass": True}

`tipring`/`spandsp` hold the measured value (int, float, str, or None for "never"); `of` the
denominator of a count (else None); `unit` a suffix for display. A detector that is missing or
raises shows `"missing: ..."` / `"error: ..."` and fails the row. Our detectors are fed 20 ms
frames, as the gateway does; spandsp gets the whole signal. Both are flushed with 500 ms of silence.

Run: `python -m tests.bench.dsp_compare [--json] [--quick]`.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib
import json
import logging
import operator
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp.levels import sine_amplitude, tone
from tests.bench import spandsp
from tests.signals import HUM_KINDS, all_speech, frames, music, scale_to_dbm0, with_hum

log = logging.getLogger(__name__)

RATE_HZ = 8000
SIDES = ("tipring", "spandsp")
FLUSH = np.zeros(RATE_HZ // 2, np.int16)
Row = dict[str, Any]

DIGITS = "123A456B789C*0#D"
_LOW_HZ, _HIGH_HZ = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
DTMF_HZ = {d: (_LOW_HZ[i // 4], _HIGH_HZ[i % 4]) for i, d in enumerate(DIGITS)}
KEY_ON_MS, KEY_OFF_MS = 80, 80  # comfortably inside Q.24 timing, for the non-timing checks

FSK_HZ = {"bell202": (1200.0, 2200.0), "v23": (1300.0, 2100.0)}  # (mark, space)
FSK_BAUD = 1200
FSK_LEVEL_DBM0 = -20.0
NUMBER, NAME, WHEN = "5551234567", "TIPRING BENCH", "03141559"

# (frequencies, dBm0 per frequency, cadence on/off/... ms): E.180 / ES 201 970 / SIN 350.
Cadenced = tuple[tuple[int, ...], float, tuple[int, ...]]
PROGRESS: dict[str, dict[str, Cadenced]] = {
    "us": {"busy": ((480, 620), -24.0, (500, 500)), "reorder": ((480, 620), -24.0, (250, 250))},
    "uk": {"busy": ((400,), -20.0, (375, 375)), "reorder": ((400,), -20.0, (400, 350, 225, 525))},
    "de": {"busy": ((425,), -20.0, (480, 480)), "reorder": ((425,), -20.0, (240, 240))},
    "etsi": {"busy": ((425,), -20.0, (500, 500)), "reorder": ((425,), -20.0, (250, 250))},
}


def _silence(ms: float) -> NDArray[np.int16]:
    return np.zeros(round(ms * RATE_HZ / 1000), np.int16)


def dtmf_keys(
    keys: str,
    on_ms: float = KEY_ON_MS,
    off_ms: float = KEY_OFF_MS,
    level_dbm0: float = -20.0,
    twist_db: float = 0.0,
    offset_pct: float = 0.0,
    dropout_ms: float = 0.0,
) -> NDArray[np.int16]:
    """Keys separated by `off_ms`; `level_dbm0` is the low tone, the high tone is `twist_db`
    above it; both frequencies are scaled by `offset_pct`; `dropout_ms` zeroes mid-key."""
    scale = 1.0 + offset_pct / 100.0
    parts = [_silence(off_ms)]
    for key in keys:
        low, high = DTMF_HZ[key]
        burst = tone((low * scale, high * scale), on_ms, (level_dbm0, level_dbm0 + twist_db))
        if dropout_ms:
            gap = round(dropout_ms * RATE_HZ / 1000)
            start = (burst.size - gap) // 2
            burst[start : start + gap] = 0
        parts += [burst, _silence(off_ms)]
    return np.concatenate(parts)


def mdmf_message(number: str = NUMBER, name: str = NAME, when: str = WHEN) -> bytes:
    """GR-30 / EN 300 659-3 MDMF call set-up message (0x80) with its checksum byte."""
    body = b"".join(
        bytes([kind, len(value)]) + value.encode("ascii")
        for kind, value in ((0x01, when), (0x02, number), (0x07, name))
    )
    msg = bytes([0x80, len(body)]) + body
    return msg + bytes([-sum(msg) & 0xFF])


def fsk_burst(
    message: bytes, standard: str, level_dbm0: float = FSK_LEVEL_DBM0, twist_db: float = 0.0
) -> NDArray[np.int16]:
    """Phase-continuous 1200 baud FSK: 300 seizure bits, 180 marks, 8N1 bytes, 10 marks, with
    100/300 ms of silence around. `level_dbm0` is the mean of the mark and space levels (dB) and
    `twist_db` mark minus space, as `dsp.callerid.encode` defines them."""
    bits = [i % 2 for i in range(300)] + [1] * 180
    for byte in message:
        bits += [0, *((byte >> k) & 1 for k in range(8)), 1]
    bits += [1] * 10
    n = int(np.ceil(len(bits) * RATE_HZ / FSK_BAUD))
    bit = np.asarray(bits)[np.arange(n) * FSK_BAUD // RATE_HZ]
    mark_hz, space_hz = FSK_HZ[standard]
    phase = np.cumsum(2 * np.pi * np.where(bit == 1, mark_hz, space_hz) / RATE_HZ)
    mark, space = (
        sine_amplitude(level_dbm0 + twist_db / 2),
        sine_amplitude(level_dbm0 - twist_db / 2),
    )
    amp = np.where(bit == 1, mark, space)
    pcm = np.clip(np.round(amp * np.sin(phase)), -32768, 32767).astype(np.int16)
    return np.concatenate([_silence(100), pcm, _silence(300)])


def with_noise(pcm: NDArray[np.int16], snr_db: float, seed: int = 0) -> NDArray[np.int16]:
    """White noise whose power is `snr_db` below the power of the non-silent part of `pcm`."""
    x = pcm.astype(np.float64)
    signal_power = float(np.mean(x[x != 0] ** 2))
    noise = np.random.default_rng(seed).standard_normal(x.size)
    y = x + noise * np.sqrt(signal_power / 10 ** (snr_db / 10))
    out: NDArray[np.int16] = np.clip(np.round(y), -32768, 32767).astype(np.int16)
    return out


def hum_label(kind: str, level_dbm0: float) -> str:
    """How a row names the hum of `tests.signals.HUM_KINDS[kind]` at `level_dbm0`."""
    return kind if HUM_KINDS[kind][2] else f"{kind} hum at {level_dbm0:g} dBm0"


def _hum_kinds(quick: bool) -> list[str]:
    return [k for k in HUM_KINDS if not quick or k != "49.9+149.7 Hz"]


def progress_tone(plan: str, name: str, cycles: int) -> NDArray[np.int16]:
    """`cycles` periods of a plan's cadenced tone (on, off, on, off, ... ms)."""
    freqs, level, cadence = PROGRESS[plan][name]
    parts = [tone(freqs, ms, level) if i % 2 == 0 else _silence(ms) for i, ms in enumerate(cadence)]
    return np.tile(np.concatenate(parts), cycles)


class OursMissing(RuntimeError):
    """One of our detector modules has not landed yet."""


_OURS = {
    "dtmf": ("dsp.dtmf", "DtmfDetector"),
    "callerid": ("dsp.callerid", "CallerIdDecoder"),  # first argument: the standard
    "tones": ("dsp.tones", "ToneDetector"),  # first argument: the plan
}
_SPANDSP = {"dtmf": spandsp.SpandspDtmfRx, "callerid": spandsp.SpandspCallerIdRx}


def _ours(kind: str, arg: str | None) -> Any:
    module, name = _OURS[kind]
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise OursMissing(f"{module}: {exc}") from exc
    return getattr(mod, name)(*[arg] if arg else [], sample_rate=RATE_HZ)


def detect(side: str, kind: str, arg: str | None, pcm: NDArray[np.int16]) -> list[Any]:
    """Run one fresh detector of `kind` ("dtmf", "callerid", "tones") over `pcm` plus flush."""
    if side == "tipring":
        det = _ours(kind, arg)
        return [e for f in frames(np.concatenate([pcm, FLUSH])) for e in det.feed(f)]
    with _SPANDSP.get(kind, spandsp.SpandspToneRx)(*[arg] if arg else []) as det:
        return list(spandsp.run(det.feed, pcm))


def _digits(side: str, pcm: NDArray[np.int16]) -> str:
    return "".join(e.digit for e in detect(side, "dtmf", None, pcm))


def _matched(sent: str, got: str) -> int:
    blocks = difflib.SequenceMatcher(None, sent, got, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks)


def _row(
    group: str,
    check: str,
    expect: str,
    passes: Callable[[Any], bool],
    measure: Callable[[str], Any],
    of: int | None = None,
    unit: str = "",
) -> Row:
    row: Row = {"group": group, "check": check, "expect": expect, "of": of, "unit": unit}
    for side in SIDES:
        try:
            value = measure(side)
            ok = passes(value)
        except OursMissing as exc:
            value, ok = f"missing: {exc}", False
        except Exception as exc:  # a row supervisor: one broken detector must not end the bench
            log.warning("%s / %s: %s raised", group, check, side, exc_info=True)
            value, ok = f"error: {type(exc).__name__}: {exc}", False
        row[side], row[f"{side}_pass"] = value, bool(ok)
    return row


def _is(expected: object) -> Callable[[Any], bool]:
    return functools.partial(operator.eq, expected)


def _at_most(bound: float) -> Callable[[Any], bool]:
    return lambda value: value is not None and value <= bound


def _digit_count(side: str, pcm: NDArray[np.int16]) -> int:
    return len(_digits(side, pcm))


def _digits_matched(side: str, pcm: NDArray[np.int16], sent: str) -> int:
    return _matched(sent, _digits(side, pcm))


def _dtmf_count_row(check: str, pcm: NDArray[np.int16], reject: bool = False) -> Row:
    """16 keys sent: detected count (16/16 expected), or if `reject` false detections (0/16)."""
    if reject:
        return _row("dtmf", check, "0/16", _is(0), functools.partial(_digit_count, pcm=pcm), 16)
    measure = functools.partial(_digits_matched, pcm=pcm, sent=DIGITS)
    return _row("dtmf", check, "16/16", _is(16), measure, 16)


def _dtmf_rows(quick: bool) -> list[Row]:
    rows = [
        _dtmf_count_row("16 digits at -36 dBm0", dtmf_keys(DIGITS, level_dbm0=-36)),
        _dtmf_count_row("16 digits at -3 dBm0", dtmf_keys(DIGITS, level_dbm0=-3)),
    ]
    for twist in (4.0, -8.0):
        pcm = dtmf_keys(DIGITS, twist_db=twist)
        rows.append(_dtmf_count_row(f"twist {twist:+.0f} dB (high - low group)", pcm))
    for pct, reject in ((1.5, False), (-1.5, False), (3.5, True), (-3.5, True)):
        verb = "rejected" if reject else "detected"
        pcm = dtmf_keys(DIGITS, offset_pct=pct)
        rows.append(_dtmf_count_row(f"frequencies {pct:+.1f} % {verb}", pcm, reject))
    rows.append(_dtmf_count_row("40 ms keys detected", dtmf_keys(DIGITS, 40, 100)))
    rows.append(_dtmf_count_row("20 ms keys rejected", dtmf_keys(DIGITS, 20, 100), True))
    pauses = np.concatenate([dtmf_keys(d + d, 60, 40) for d in DIGITS])
    doubled = functools.partial(_digits_matched, pcm=pauses, sent="".join(d + d for d in DIGITS))
    rows.append(_row("dtmf", "40 ms pause: 2 keys each", "32/32", _is(32), doubled, 32))
    dropout = functools.partial(_digit_count, pcm=dtmf_keys(DIGITS, 100, 100, dropout_ms=10))
    rows.append(_row("dtmf", "10 ms dropout mid 100 ms key: events", "16", _is(16), dropout))
    for level in (-20,) if quick else (-10, -20, -30):
        talk = functools.partial(_digit_count, pcm=scale_to_dbm0(all_speech(), level))
        rows.append(_row("dtmf", f"talk-off: speech at {level} dBm0", "0", _is(0), talk))
    return rows + _dtmf_hum_rows(quick)


def _dtmf_hum_rows(quick: bool) -> list[Row]:
    """Keys and talk-off over mains hum and DC offset (a cheap DAA, a USB modem)."""
    rows = [
        _dtmf_count_row(f"16 digits at -20 dBm0 over {hum_label(kind, -20)}", pcm)
        for kind in _hum_kinds(quick)
        for pcm in [with_hum(dtmf_keys(DIGITS), kind, -20.0)]
    ]
    floor = with_hum(dtmf_keys(DIGITS, level_dbm0=-36), "50 Hz", -30.0)
    rows.append(_dtmf_count_row(f"16 digits at -36 dBm0 over {hum_label('50 Hz', -30)}", floor))
    kind = "60+120+180 Hz"
    talk = functools.partial(_digit_count, pcm=with_hum(scale_to_dbm0(all_speech(), -20), kind))
    check = f"talk-off: speech at -20 dBm0 over {hum_label(kind, -20)}"
    rows.append(_row("dtmf", check, "0", _is(0), talk))
    return rows


def _callerid_outcome(results: Sequence[Any]) -> str:
    """'decoded', 'error reported', 'nothing', or 'wrong: ...' for one burst's results."""
    records = [r for r in results if hasattr(r, "number")]
    errors = [r for r in results if not hasattr(r, "number") and hasattr(r, "reason")]
    if len(records) == 1 and not errors:
        got = (records[0].number, records[0].name, records[0].when)
        return "decoded" if got == (NUMBER, NAME, WHEN) else f"wrong: {got}"
    if records:
        return f"wrong: {len(records)} records, {len(errors)} errors"
    return "error reported" if errors else "nothing"


def _cid(side: str, standard: str, pcm: NDArray[np.int16]) -> str:
    return _callerid_outcome(detect(side, "callerid", standard, pcm))


def _lowest_level(side: str, standard: str, levels: Sequence[int]) -> int | None:
    """Walk down the sweep; the last level that still decoded before the first failure."""
    lowest = None
    for level in levels:
        if _cid(side, standard, fsk_burst(mdmf_message(), standard, level)) != "decoded":
            break
        lowest = level
    return lowest


def _callerid_rows(quick: bool) -> list[Row]:
    levels = (-20, -28, -36) if quick else (-20, -24, -28, -32, -36, -40)
    corrupt = bytearray(mdmf_message())
    corrupt[15] ^= 0x01  # second digit of the number: a plausible record, bad checksum
    speech_and_music = np.concatenate([all_speech(), music(15.0 if quick else 60.0)])
    rows = []
    for std in FSK_HZ:
        group = f"callerid {std}"
        sweep = functools.partial(_lowest_level, standard=std, levels=levels)
        rows.append(
            _row(group, "lowest level decoded", "<= -36", _at_most(-36), sweep, unit=" dBm0")
        )
        cases = [
            ("twist -6 dB (mark - space)", fsk_burst(mdmf_message(), std, twist_db=-6.0)),
            ("twist +10 dB (mark - space)", fsk_burst(mdmf_message(), std, twist_db=10.0)),
            ("20 dB SNR", with_noise(fsk_burst(mdmf_message(), std), 20.0)),
        ]
        for name, pcm in cases:
            outcome = functools.partial(_cid, standard=std, pcm=pcm)
            rows.append(_row(group, name, "decoded", _is("decoded"), outcome))
        outcome = functools.partial(_cid, standard=std, pcm=fsk_burst(bytes(corrupt), std))
        check = "corrupt burst (checksum)"
        rows.append(_row(group, check, "error reported", _is("error reported"), outcome))
        count = functools.partial(_reports, standard=std, pcm=speech_and_music)
        rows.append(_row(group, "reports on speech + music", "0", _is(0), count))
    return rows


def _reports(side: str, standard: str, pcm: NDArray[np.int16]) -> int:
    return len(detect(side, "callerid", standard, pcm))


def _first_at(side: str, plan: str, name: str, pcm: NDArray[np.int16]) -> float | None:
    hits = [e.at_ms for e in detect(side, "tones", plan, pcm) if e.tone == name]
    return float(hits[0]) if hits else None


def _false_progress(side: str, plan: str, pcm: NDArray[np.int16]) -> int:
    return sum(e.tone in ("busy", "reorder") for e in detect(side, "tones", plan, pcm))


def _tone_rows(quick: bool) -> list[Row]:
    plans = ("us", "de") if quick else tuple(PROGRESS)
    hum = "60+120+180 Hz"
    others = [
        ("speech", all_speech()),
        ("music", music(15.0 if quick else 60.0)),
        (f"speech over {hum_label(hum, -20)}", with_hum(all_speech(), hum)),
    ]
    rows = []
    for plan in plans:
        group = f"tones {plan}"
        busy = progress_tone(plan, "busy", 4)
        cases = [("busy", "", busy), ("busy", " at 20 dB SNR", with_noise(busy, 20.0))]
        cases += [] if quick else [("reorder", "", progress_tone(plan, "reorder", 4))]
        for name in ("busy",) if quick else ("busy", "reorder"):
            tone = progress_tone(plan, name, 4)
            cases += [
                (name, f" over {hum_label(k, -20)}", with_hum(tone, k)) for k in _hum_kinds(quick)
            ]
        for name, how, pcm in cases:
            bound = 2 * sum(PROGRESS[plan][name][2])  # within two cycles
            at = functools.partial(_first_at, plan=plan, name=name, pcm=pcm)
            check, expect = f"{name}{how} detected at", f"<= {bound}"
            rows.append(_row(group, check, expect, _at_most(bound), at, unit=" ms"))
        for what, pcm in others:
            count = functools.partial(_false_progress, plan=plan, pcm=pcm)
            rows.append(_row(group, f"busy/reorder reports on {what}", "0", _is(0), count))
    return rows


def compare_detectors(quick: bool = False) -> list[Row]:
    """Run the whole battery on our detectors and spandsp's; raises `SpandspMissing` first if
    libspandsp is not installed. `quick` is the reduced battery (< ~20 s) the tests run."""
    spandsp.library()
    return _dtmf_rows(quick) + _callerid_rows(quick) + _tone_rows(quick)


def _cell(row: Row, side: str) -> str:
    value = row[side]
    text = "never" if value is None else str(value)
    if row["of"] is not None and isinstance(value, int):
        text = f"{value}/{row['of']}"
    elif isinstance(value, (int, float)):
        text = f"{value:g}{row['unit']}"
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{text} {'ok' if row[f'{side}_pass'] else 'FAIL'}"


def format_table(rows: Sequence[Row]) -> str:
    """Rows as a plain-text table: group, check, expected, tipring, spandsp."""
    head = ("group", "check", "expect", "tipring", "spandsp (defaults)")
    cells = [head]
    for r in rows:
        cells.append((r["group"], r["check"], r["expect"] + r["unit"], *map(_cell, [r] * 2, SIDES)))
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ours = sum(r["tipring_pass"] for r in rows)
    theirs = sum(r["spandsp_pass"] for r in rows)
    lines.append(f"passed: tipring {ours}/{len(rows)}, spandsp {theirs}/{len(rows)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tests.bench.dsp_compare [--json] [--quick]`; exit 2 if spandsp is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--quick", action="store_true", help="the reduced battery (< ~20 s)")
    args = parser.parse_args(argv)
    try:
        rows = compare_detectors(quick=args.quick)
    except spandsp.SpandspMissing as exc:
        print(f"dsp_compare: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
