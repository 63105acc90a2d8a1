"""DTMF receiver against ITU-T Q.24 limits, talk-off, and the plain numpy reference.

Twist convention: high-group tone level minus low-group tone level (dB); Q.24 limits +4 / -8.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from dsp import dtmf
from dsp.dtmf import DIGITS, DtmfDetector, DtmfEvent, generate
from dsp.errors import DspInputError
from dsp.g711 import ulaw_decode, ulaw_encode
from tests.dsp.reference.dtmf import ref_dtmf_detect, ref_dtmf_window
from tests.signals import (
    HUM_KINDS,
    add_noise,
    all_speech,
    music,
    pink_noise,
    scale_to_dbm0,
    speech,
    speech_names,
    white_noise,
    with_hum,
)

LEAD = 400  # samples of silence before the first tone (50 ms)


def detect(pcm: NDArray[np.int16], frame: int = 160) -> list[DtmfEvent]:
    det = DtmfDetector()
    return [ev for at in range(0, pcm.size, frame) for ev in det.feed(pcm[at : at + frame])]


def keyed(digits: str, lead: int = LEAD, tail: int = 800, **kw: object) -> NDArray[np.int16]:
    """`generate(digits, **kw)` with `lead` samples of silence before and `tail` after."""
    body = generate(digits, **kw)  # type: ignore[arg-type]
    return np.concatenate([np.zeros(lead, np.int16), body, np.zeros(tail, np.int16)])


def found(pcm: NDArray[np.int16]) -> str:
    return "".join(ev.digit for ev in detect(pcm))


def ulaw_round_trip(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    """What the line does to the tones: G.711 mu-law encode then decode."""
    return ulaw_decode(ulaw_encode(pcm))


# --- kernels against the reference -------------------------------------------------------------


@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.0, 1.0, 300.0, 32767.0]),
    start=st.integers(0, 40),
)
def test_window_kernel_matches_reference(seed: int, scale: float, start: int) -> None:
    buf = np.random.default_rng(seed).uniform(-1.0, 1.0, 240) * scale
    out = np.zeros(25)
    dtmf._dtmf_window_kernel(buf, start, dtmf.analysis_table(), out)
    spec, energy = ref_dtmf_window(buf[start : start + 160])
    tol = 1e-9 * max(scale, 1.0) * 160
    np.testing.assert_allclose(out[0:8], spec.real, atol=tol)
    np.testing.assert_allclose(out[8:16], spec.imag, atol=tol)
    np.testing.assert_allclose(out[24], energy, rtol=1e-12, atol=tol * tol)


@pytest.mark.parametrize(
    "buf",
    [
        np.full(160, 32767.0),
        np.full(160, -32768.0),
        np.tile([32767.0, -32768.0], 80),
        np.eye(1, 160, 80)[0] * 32767.0,
        generate("D", 20.0, 0.0, 3.14, twist_db=0.0).astype(np.float64),
    ],
    ids=["dc+", "dc-", "nyquist", "impulse", "full-scale-D"],
)
def test_window_kernel_matches_reference_on_edge_inputs(buf: NDArray[np.float64]) -> None:
    out = np.zeros(25)
    dtmf._dtmf_window_kernel(buf, 0, dtmf.analysis_table(), out)
    spec, energy = ref_dtmf_window(buf)
    np.testing.assert_allclose(out[0:8] + 1j * out[8:16], spec, atol=1e-6)
    np.testing.assert_allclose(out[24], energy, rtol=1e-12)


def _random_keying(rng: np.random.Generator) -> NDArray[np.int16]:
    """A few digits with random timing, level, twist and frequency error, some in noise:
    many sit on a threshold, so both accepted and rejected keys and every state are hit."""
    parts = [np.zeros(int(rng.integers(0, 300)), np.int16)]
    for _ in range(int(rng.integers(1, 5))):
        parts.append(
            generate(
                DIGITS[int(rng.integers(16))],
                on_ms=float(rng.uniform(10, 80)),
                off_ms=float(rng.uniform(5, 60)),
                level_dbm0=float(rng.uniform(-46, -6)),
                twist_db=float(rng.uniform(-12, 8)),
                freq_offset=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04))),
            )
        )
    x = np.concatenate(parts)
    return (
        add_noise(x, float(rng.uniform(3, 30)), seed=int(rng.integers(1000)))
        if rng.random() < 0.5
        else x
    )


def _assert_same_as_reference(pcm: NDArray[np.int16]) -> int:
    """Feed 40 samples (one hop) at a time; compare events and the state after every window."""
    ref_events, ref_trace = ref_dtmf_detect(pcm)
    det = DtmfDetector()
    events: list[DtmfEvent] = []
    trace: list[tuple[int, bool]] = []
    for at in range(0, pcm.size, 40):
        events += det.feed(pcm[at : at + 40])
        key = int(det._is[dtmf.I_KEY])  # the open keypress, qualified or not
        trace.append((key, det.active_digit is not None))
        assert det.active_digit in (None, DIGITS[key])
        assert det.tone_present == (key >= 0)
    # after the m-th hop the newest complete window is m - 1
    assert trace[1 : len(ref_trace) + 1] == ref_trace
    assert [ev.digit for ev in events] == [DIGITS[k] for k, _, _ in ref_events]
    for ev, (_, start, end) in zip(events, ref_events, strict=True):
        assert ev.start_ms == pytest.approx(start / 8, abs=1e-6)
        assert ev.duration_ms == pytest.approx((end - start) / 8, abs=1e-6)
    return len(events)


@given(seed=st.integers(0, 2**32 - 1))
def test_feed_kernel_matches_reference_on_random_keying(seed: int) -> None:
    _assert_same_as_reference(_random_keying(np.random.default_rng(seed)))


def test_feed_kernel_reference_comparison_covers_accepted_keys() -> None:
    # the random cases above are only worth something if keys get accepted too
    n = sum(_assert_same_as_reference(_random_keying(np.random.default_rng(s))) for s in range(40))
    print(f"reference comparison: {n} accepted keys in 40 random keyings (want >= 5)")
    assert n >= 5


@pytest.mark.parametrize(
    "pcm",
    [
        np.zeros(4000, np.int16),
        np.tile(np.array([32767, -32768], np.int16), 2000),
        np.tile(np.repeat(np.array([32767, -32768], np.int16), 3), 700),
        np.clip(
            keyed("1D5#", on_ms=60.0, off_ms=40.0, level_dbm0=6.0).astype(np.int32), -32768, 32767
        ).astype(np.int16),
        keyed("88", on_ms=45.0, off_ms=40.0, level_dbm0=-36.0, lead=0, tail=0),
        np.zeros(0, np.int16),
    ],
    ids=["silence", "nyquist", "square", "overloaded", "no-lead-no-tail", "empty"],
)
def test_feed_kernel_matches_reference_on_edge_inputs(pcm: NDArray[np.int16]) -> None:
    _assert_same_as_reference(pcm)


@given(cuts=st.lists(st.integers(0, 9000), max_size=12), seed=st.integers(0, 50))
def test_events_do_not_depend_on_how_the_stream_is_split(cuts: list[int], seed: int) -> None:
    pcm = add_noise(keyed("147*2580369#ABCD", on_ms=45.0, off_ms=42.0, level_dbm0=-20.0), 25, seed)
    whole = DtmfDetector().feed(pcm)
    det = DtmfDetector()
    bounds = [0, *sorted(c % (pcm.size + 1) for c in cuts), pcm.size]
    parts = [ev for a, b in itertools.pairwise(bounds) for ev in det.feed(pcm[a:b])]
    assert parts == whole
    assert "".join(ev.digit for ev in whole) == "147*2580369#ABCD"


def test_one_long_block_equals_frame_by_frame() -> None:
    pcm = keyed("0123456789" * 3, on_ms=50.0, off_ms=50.0)  # 3.1 s: several kernel chunks
    assert DtmfDetector().feed(pcm) == detect(pcm)
    assert len(detect(pcm)) == 30
    pcm.setflags(write=False)  # e.g. np.frombuffer over a received frame
    assert DtmfDetector().feed(pcm) == detect(pcm)


# --- Q.24 reception limits ---------------------------------------------------------------------


@pytest.mark.parametrize("level_dbm0", [-3.0, -10.0, -20.0, -30.0, -36.0])
def test_every_digit_detected_over_the_q24_level_range(level_dbm0: float) -> None:
    for offset in (0, 13, 27):  # where the tones fall on the 40-sample window grid
        got = found(
            keyed(DIGITS, on_ms=50.0, off_ms=50.0, level_dbm0=level_dbm0, lead=LEAD + offset)
        )
        print(f"{level_dbm0:+.0f} dBm0 per tone, offset {offset}: {got!r} (want {DIGITS!r})")
        assert got == DIGITS


def test_tones_below_the_level_floor_are_ignored() -> None:
    # not a Q.24 requirement: our floor is MIN_TONE_DBM0 = -42 dBm0 per tone (spandsp's too)
    got = {
        lv: found(keyed(DIGITS, on_ms=60.0, off_ms=60.0, level_dbm0=lv)) for lv in (-40.0, -46.0)
    }
    print(f"-40 dBm0: {got[-40.0]!r} (want all 16), -46 dBm0: {got[-46.0]!r} (want none)")
    assert got == {-40.0: DIGITS, -46.0: ""}


CORNERS = list(itertools.product((4.0, -8.0), (0.015, -0.015), (0.015, -0.015)))


@pytest.mark.parametrize(("twist_db", "row_offset", "col_offset"), CORNERS)
def test_twist_and_frequency_error_at_the_q24_limits_together(
    twist_db: float, row_offset: float, col_offset: float
) -> None:
    # the quieter tone at -36 dBm0 (the Q.24 floor), then both tones well up
    low_levels = (-36.0, -3.0 - twist_db) if twist_db > 0 else (-28.0, -6.0)
    for low in low_levels:
        got = found(
            keyed(
                DIGITS,
                on_ms=45.0,
                off_ms=45.0,
                level_dbm0=low,
                twist_db=twist_db,
                freq_offset=(row_offset, col_offset),
            )
        )
        print(
            f"twist {twist_db:+} dB, low group {low} dBm0, offsets {row_offset:+.1%} "
            f"{col_offset:+.1%}: {got!r}"
        )
        assert got == DIGITS


@pytest.mark.parametrize("twist_db", [4.0, -8.0])
def test_q24_twist_limits_accepted_and_margin_measured(twist_db: float) -> None:
    assert (
        found(keyed(DIGITS, on_ms=50.0, off_ms=50.0, level_dbm0=-20.0, twist_db=twist_db)) == DIGITS
    )
    # how far beyond the limit keys still pass (informative; the design margin is 2 dB)
    step = 0.5 if twist_db > 0 else -0.5
    beyond = twist_db
    while found(keyed("159D", on_ms=50.0, level_dbm0=-20.0, twist_db=beyond + step)) == "159D":
        beyond += step
    print(f"twist limit {twist_db:+} dB: all keys still pass at {beyond:+} dB")
    assert abs(beyond - twist_db) <= 3.0


@pytest.mark.parametrize("offset", [0.015, -0.015])
@pytest.mark.parametrize("group", ["row", "column", "both"])
def test_frequency_error_of_1_5_percent_accepted(offset: float, group: str) -> None:
    pair = {"row": (offset, 0.0), "column": (0.0, offset), "both": (offset, offset)}[group]
    for level in (-10.0, -36.0):
        got = found(keyed(DIGITS, on_ms=45.0, off_ms=45.0, level_dbm0=level, freq_offset=pair))
        print(f"{group} {offset:+.1%} at {level} dBm0: {got!r} (want {DIGITS!r})")
        assert got == DIGITS


@pytest.mark.parametrize("offset", [0.035, -0.035, 0.04, -0.04, 0.05, -0.05])
@pytest.mark.parametrize("group", ["row", "column", "both"])
def test_frequency_error_of_3_5_percent_or_more_rejected(offset: float, group: str) -> None:
    # up to 5 % every shifted tone is still >= 3.5 % from every nominal frequency
    pair = {"row": (offset, 0.0), "column": (0.0, offset), "both": (offset, offset)}[group]
    for level in (-10.0, -36.0):
        got = found(keyed(DIGITS, on_ms=100.0, off_ms=60.0, level_dbm0=level, freq_offset=pair))
        print(f"{group} {offset:+.1%} at {level} dBm0: {got!r} (want nothing)")
        assert got == ""


def test_frequency_acceptance_boundary_lies_between_the_q24_limits() -> None:
    accepted = {}
    for pct in (2.0, 2.5, 2.75, 3.0):
        for sign in (1, -1):
            off = sign * pct / 100
            x = keyed(DIGITS, on_ms=45.0, off_ms=45.0, freq_offset=(off, off))
            accepted[off] = len(found(x))
    print("keys of 16 accepted per offset:", accepted)
    assert accepted[0.02] == accepted[-0.02] == 16
    assert accepted[0.03] == accepted[-0.03] == 0


# --- Q.24 timing -------------------------------------------------------------------------------


@pytest.mark.parametrize("level_dbm0", [-3.0, -36.0])
@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_40_ms_tones_detected_and_20_ms_tones_rejected(
    level_dbm0: float, snr_db: float | None
) -> None:
    for on_ms, want in ((40.0, 1), (20.0, 0)):
        durations = []
        for offset, digit in itertools.product(range(0, 40, 3), "1D*9"):
            x = keyed(digit, on_ms=on_ms, off_ms=60.0, level_dbm0=level_dbm0, lead=LEAD + offset)
            x = x if snr_db is None else add_noise(x, snr_db, seed=offset)
            events = detect(x)
            assert [ev.digit for ev in events] == [digit] * want, (on_ms, offset, digit, events)
            durations += [ev.duration_ms for ev in events]
        shown = f"{min(durations):.1f}-{max(durations):.1f} ms" if durations else "none"
        print(
            f"{on_ms:.0f} ms tones at {level_dbm0} dBm0, SNR {snr_db}: {shown} (want {want} each)"
        )


def _gated(
    digit: str, segments_ms: list[tuple[float, float]], level_dbm0: float
) -> NDArray[np.int16]:
    """One phase-continuous tone pair switched off for the gaps: a key bouncing or a line
    dropout, not a new keypress."""
    x = generate(digit, sum(on + off for on, off in segments_ms), 0.0, level_dbm0)
    t = 0.0
    for on, off in segments_ms:
        t += on
        x[round(t * 8) : round((t + off) * 8)] = 0
        t += off
    return np.concatenate([np.zeros(LEAD, np.int16), x, np.zeros(800, np.int16)])


@pytest.mark.parametrize("level_dbm0", [-3.0, -36.0])
def test_pause_of_40_ms_separates_two_presses_of_the_same_key(level_dbm0: float) -> None:
    for offset, digit in itertools.product(range(0, 40, 4), "1D"):
        restarted = keyed(
            digit * 2, on_ms=40.0, off_ms=40.0, level_dbm0=level_dbm0, lead=LEAD + offset
        )
        gated = np.roll(_gated(digit, [(40.0, 40.0), (40.0, 60.0)], level_dbm0), offset)
        for x in (restarted, add_noise(restarted, 20.0, seed=offset), gated):
            assert found(x) == digit * 2, (offset, digit)
    print(f"40 ms on / 40 ms off / 40 ms on at {level_dbm0} dBm0: two events at every offset")


@pytest.mark.parametrize("level_dbm0", [-3.0, -36.0])
def test_dropout_of_10_ms_does_not_split_a_key(level_dbm0: float) -> None:
    durations = []
    for offset, digit in itertools.product(range(0, 40, 4), "1D"):
        gated = np.roll(_gated(digit, [(60.0, 10.0), (60.0, 60.0)], level_dbm0), offset)
        for x in (gated, add_noise(gated, 20.0, seed=offset)):
            events = detect(x)
            assert [ev.digit for ev in events] == [digit], (offset, events)
            durations.append(events[0].duration_ms)
    print(
        f"60 + 10 ms dropout + 60 ms at {level_dbm0} dBm0: one key, "
        f"{min(durations):.1f}-{max(durations):.1f} ms (true 130)"
    )
    assert min(durations) > 125.0
    assert max(durations) < 135.0


@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_start_and_duration_are_accurate(snr_db: float | None) -> None:
    rng = np.random.default_rng(7)
    worst = 0.0
    for digit in DIGITS:
        on_ms, lead = float(rng.uniform(40, 200)), int(rng.integers(0, 4000))
        x = keyed(
            digit, on_ms=on_ms, off_ms=60.0, level_dbm0=float(rng.uniform(-36, -3)), lead=lead
        )
        x = x if snr_db is None else add_noise(x, snr_db, seed=lead)
        (ev,) = detect(x)
        err = max(abs(ev.start_ms - lead / 8), abs(ev.duration_ms - on_ms))
        worst = max(worst, err)
    print(f"SNR {snr_db}: worst start / duration error {worst:.2f} ms (bound 2 ms; brief asks ~10)")
    assert worst <= 2.0


# --- talk-off and interference -----------------------------------------------------------------


def _replayed(pcm: NDArray[np.int16], speed: float) -> NDArray[np.float64]:
    """The clip played `speed` times faster (pitch and formants move with it)."""
    t = np.arange(0.0, pcm.size - 1, speed)
    return np.asarray(np.interp(t, np.arange(pcm.size), pcm.astype(np.float64)), np.float64)


@pytest.mark.parametrize("level_dbm0", [-10.0, -15.0, -20.0, -25.0, -30.0])
def test_no_digits_from_speech_music_or_noise(level_dbm0: float) -> None:
    sources: dict[str, NDArray[np.int16] | NDArray[np.float64]] = {
        n: speech(n) for n in speech_names()
    }
    sources |= {f"speech x{s}": _replayed(all_speech(), s) for s in (0.8, 0.9, 1.1, 1.25)}
    sources |= {
        "music": music(30.0),
        "pink": pink_noise(10.0, -20.0),
        "white": white_noise(10.0, -20.0),
    }
    total_s = 0.0
    for name, pcm in sources.items():
        x = scale_to_dbm0(pcm, level_dbm0)
        total_s += x.size / 8000
        events = DtmfDetector().feed(x)
        assert events == [], (name, events)
    print(f"talk-off at {level_dbm0} dBm0: 0 digits in {total_s:.0f} s (want 0)")


@pytest.mark.parametrize("level_dbm0", [-6.0, -20.0, -30.0])
def test_digits_through_speech_or_noise_20_db_down(level_dbm0: float) -> None:
    keys = keyed(DIGITS, on_ms=50.0, off_ms=50.0, level_dbm0=level_dbm0)
    interferer_dbm0 = level_dbm0 + 3.0 - 20.0  # two tones: the pair is 3 dB above each tone
    for name in [*speech_names(), "pink", "white"]:
        if name == "pink":
            other = pink_noise(keys.size / 8000, interferer_dbm0)
        elif name == "white":
            other = white_noise(keys.size / 8000, interferer_dbm0)
        else:
            other = scale_to_dbm0(np.resize(speech(name), keys.size), interferer_dbm0)
        x = np.clip(keys.astype(np.int32) + other, -32768, 32767).astype(np.int16)
        assert found(x) == DIGITS, name
        assert found(ulaw_round_trip(x)) == DIGITS, f"{name} + mu-law"
    print(f"tones at {level_dbm0} dBm0 with speech / noise 20 dB down, also mu-law: all 16 keys")


@pytest.mark.parametrize(
    ("low_dbm0", "twist_db", "offset"),
    [
        (-3.0, 0.0, 0.0),
        (-20.0, 0.0, 0.0),
        (-36.0, 0.0, 0.0),
        (-3.0, -8.0, 0.015),
        (-28.0, -8.0, 0.015),  # high group at -36 dBm0
        (-7.0, 4.0, -0.015),  # high group at -3 dBm0
        (-36.0, 4.0, -0.015),
    ],
)
def test_mu_law_at_the_q24_corners(low_dbm0: float, twist_db: float, offset: float) -> None:
    x = keyed(
        DIGITS, on_ms=45.0, off_ms=45.0, level_dbm0=low_dbm0, twist_db=twist_db, freq_offset=offset
    )
    got = found(ulaw_round_trip(x))
    print(f"mu-law, low group {low_dbm0} dBm0, twist {twist_db:+}, error {offset:+.1%}: {got!r}")
    assert got == DIGITS


# --- mains hum and DC offset ------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(HUM_KINDS))
@pytest.mark.parametrize(("level_dbm0", "hum_dbm0"), [(-20.0, -20.0), (-36.0, -30.0)])
def test_every_digit_detected_over_hum_or_dc_offset(
    kind: str, level_dbm0: float, hum_dbm0: float
) -> None:
    # before dsp.hum: 0/16 keys at -20 dBm0 from 50 Hz hum at -20 dBm0 or DC 1500 on
    for offset in (0, 13, 27):
        x = keyed(DIGITS, on_ms=50.0, off_ms=50.0, level_dbm0=level_dbm0, lead=LEAD + offset)
        got = found(with_hum(x, kind, hum_dbm0))
        print(f"{level_dbm0} dBm0 per tone, {kind} at {hum_dbm0} dBm0, offset {offset}: {got!r}")
        assert got == DIGITS


@pytest.mark.parametrize("kind", list(HUM_KINDS))
@pytest.mark.parametrize(("twist_db", "row_offset", "col_offset"), CORNERS)
def test_q24_corners_at_the_level_floor_over_hum(
    kind: str, twist_db: float, row_offset: float, col_offset: float
) -> None:
    # the quieter tone at -36 dBm0, hum 6 dB above it
    low = -36.0 if twist_db > 0 else -36.0 - twist_db
    x = keyed(
        DIGITS, on_ms=45.0, off_ms=45.0, level_dbm0=low, twist_db=twist_db,
        freq_offset=(row_offset, col_offset),
    )  # fmt: skip
    got = found(with_hum(x, kind, -30.0))
    print(f"twist {twist_db:+}, offsets {row_offset:+.1%} {col_offset:+.1%}, {kind}: {got!r}")
    assert got == DIGITS


def test_hum_that_comes_on_mid_call_is_left_out_a_second_later() -> None:
    keys = keyed(DIGITS, on_ms=50.0, off_ms=50.0, level_dbm0=-36.0, lead=8000 + LEAD)
    x = np.concatenate([np.zeros(8000, np.int16), with_hum(keys, "50 Hz", -30.0)])
    got = found(x)
    print(f"-36 dBm0 keys from 1.05 s after 50 Hz hum at -30 dBm0 came on: {got!r}")
    assert got == DIGITS


@pytest.mark.parametrize("kind", list(HUM_KINDS))
def test_no_digits_from_speech_or_music_over_hum(kind: str) -> None:
    sources: dict[str, NDArray[np.int16] | NDArray[np.float64]] = {
        n: speech(n) for n in speech_names()
    }
    sources |= {f"speech x{s}": _replayed(all_speech(), s) for s in (0.8, 1.25)}
    sources |= {"music": music(30.0)}
    total_s = 0.0
    for (name, pcm), level in itertools.product(sources.items(), (-10.0, -20.0, -30.0)):
        x = with_hum(scale_to_dbm0(pcm, level), kind, -20.0)
        total_s += x.size / 8000
        events = DtmfDetector().feed(x)
        assert events == [], (name, level, events)
    print(f"talk-off over {kind} (hum -20 dBm0): 0 digits in {total_s:.0f} s (want 0)")


def _random_hum(rng: np.random.Generator, pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    kind = list(HUM_KINDS)[int(rng.integers(len(HUM_KINDS)))]
    return with_hum(pcm, kind, float(rng.uniform(-45, -10)))


@given(seed=st.integers(0, 2**32 - 1))
def test_feed_kernel_matches_reference_over_hum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    _assert_same_as_reference(_random_hum(rng, _random_keying(rng)))


def test_reference_comparison_over_hum_covers_accepted_keys() -> None:
    n = 0
    for s in range(30):
        rng = np.random.default_rng(s)
        n += _assert_same_as_reference(_random_hum(rng, _random_keying(rng)))
    print(f"reference comparison over hum: {n} accepted keys in 30 random keyings (want >= 5)")
    assert n >= 5


# --- API ---------------------------------------------------------------------------------------


def test_active_digit_and_tone_present_follow_a_key() -> None:
    det = DtmfDetector()
    assert det.feed(np.zeros(800, np.int16)) == []
    assert (det.active_digit, det.tone_present) == (None, False)
    tone = generate("7", on_ms=200.0, off_ms=0.0)
    assert det.feed(tone[:120]) == []  # 15 ms in: seen, not yet qualified
    assert (det.active_digit, det.tone_present) == (None, True)
    assert det.feed(tone[120:400]) == []  # 50 ms in
    assert (det.active_digit, det.tone_present) == ("7", True)
    (ev,) = det.feed(np.concatenate([tone[400:], np.zeros(400, np.int16)]))
    print(f"key 7, 100-300 ms: reported {ev.start_ms:.2f} ms + {ev.duration_ms:.2f} ms")
    assert ev.digit == "7"
    assert ev.start_ms == pytest.approx(100.0, abs=1)
    assert ev.duration_ms == pytest.approx(200.0, abs=1)
    assert (det.active_digit, det.tone_present) == (None, False)


def test_reset_forgets_the_open_key_and_restarts_the_clock() -> None:
    det = DtmfDetector()
    det.feed(np.zeros(1600, np.int16))
    det.feed(generate("3", on_ms=100.0, off_ms=0.0))
    det.reset()
    assert det.tone_present is False
    events = det.feed(keyed("9", on_ms=60.0, lead=80))
    assert [(ev.digit, round(ev.start_ms)) for ev in events] == [("9", 10)]


def test_event_is_a_frozen_value() -> None:
    ev = DtmfEvent("5", 10.0, 50.0)
    assert ev == DtmfEvent("5", 10.0, 50.0)
    with pytest.raises(AttributeError):
        ev.digit = "6"  # type: ignore[misc]


def test_generate_puts_each_tone_at_its_level_and_frequency() -> None:
    x = generate(
        "a", on_ms=1000.0, off_ms=500.0, level_dbm0=-12.0, twist_db=3.0, freq_offset=(0.01, -0.02)
    )
    assert x.dtype == np.int16
    assert x.size == 12000
    assert not x[8000:].any()
    n = np.arange(8000)
    spectrum = np.abs(np.fft.rfft(x[:8000].astype(np.float64)))  # 1 Hz bins
    peaks = sorted(np.argsort(spectrum)[-2:].tolist())
    freqs = [697 * 1.01, 1633 * 0.98]
    assert peaks == [round(f) for f in freqs]
    # amplitude by a DFT at the exact frequency over the whole second (other tone: < -60 dB)
    amps = [2 * abs(np.sum(x[:8000] * np.exp(-2j * np.pi * f * n / 8000))) / 8000 for f in freqs]
    levels = [20 * np.log10(a / 32768) + 3.14 for a in amps]
    print(f"generated 'A': {freqs} Hz at {levels[0]:.3f} / {levels[1]:.3f} dBm0 (want -12 / -9)")
    assert levels == [pytest.approx(-12.0, abs=0.01), pytest.approx(-9.0, abs=0.01)]


def test_generate_and_detector_reject_bad_input() -> None:
    with pytest.raises(DspInputError, match="'E' is not a DTMF digit"):
        generate("12E")
    with pytest.raises(DspInputError):
        generate("1", sample_rate=11025)
    with pytest.raises(DspInputError, match="16000"):
        DtmfDetector(sample_rate=16000)
    with pytest.raises(DspInputError):
        DtmfDetector().feed(np.zeros(160, np.float32))
    with pytest.raises(DspInputError):
        DtmfDetector().feed(np.zeros((2, 160), np.int16))
    assert generate("").size == 0
