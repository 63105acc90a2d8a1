"""dsp.tones with `hangup_watch` (an FXO line in a call): busy and reorder confirmed on fewer
segments when their pauses are quiet. The quick windows per plan, kernels against the numpy
reference, the decision delays, every tone still named as itself (joined at any phase, at any
level, offset, in noise, through mu-law, after speech), and no busy or reorder on speech,
music, noise, DTMF, ringback, dial tone or a single tone burst inside speech."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from dsp import dtmf
from dsp.tone_cadence_tables import build_cadence_tables
from dsp.tone_frames import build_frame_tables
from dsp.tone_plans import PLANS, TONE_NAMES, TonePlan, get_plan
from dsp.tones import ToneDetected, ToneDetector, ToneGenerator, generate
from tests.dsp.reference.tones import RefDetector
from tests.dsp.test_tones import _bound_ms, _impair, _mix, _run_ms, _scaled
from tests.signals import (
    HUM_KINDS,
    all_speech,
    music,
    pink_noise,
    scale_to_dbm0,
    speech,
    speech_names,
    white_noise,
    with_hum,
)

PLAN_NAMES = list(PLANS)
HANGUP = ("busy", "reorder")
OFFSETS = (0.985, 1.0, 1.015)  # the brief: +-1.5 %
# From the first sample of a clean tone (ms): a whole burst and a quiet pause reaching its
# minimum where no other cadence on the same frequencies could show them (US busy), else one
# more burst or pause (a cut ringback burst on 425 Hz can pass for DE/ETSI busy's first).
QUICK_MS = {
    "us": {"busy": 900, "reorder": 680},
    "uk": {"busy": 1060, "reorder": 1420},
    "de": {"busy": 1340, "reorder": 660},
    "etsi": {"busy": 1400, "reorder": 680},
}
Row = tuple[str, int, int, float, tuple[int, ...]]


def _watch(plan: str | TonePlan, x: NDArray[np.int16], chunk: int = 160) -> list[ToneDetected]:
    det = ToneDetector(plan, hangup_watch=True)
    return [e for i in range(0, x.size, chunk) for e in det.feed(x[i : i + chunk])]


def _rows(events: list[ToneDetected]) -> list[Row]:
    return [(e.tone, e.at_ms, e.onset_ms, e.level_dbm0, e.segments_ms) for e in events]


def _ref_rows(plan: str, x: NDArray[np.int16]) -> list[Row]:
    ref = RefDetector(get_plan(plan), hangup_watch=True)
    return [(t, at, on, round(lv, 1), s) for t, at, on, lv, s in ref.feed(x)]


def _burst(plan: str, tone: str, ms: int, level: float | None = None) -> NDArray[np.int16]:
    """One burst of `tone`'s frequencies lasting `ms`."""
    p = PLANS[plan]
    spec = dataclasses.replace(p.tone(tone), cadence_ms=())
    return ToneGenerator(dataclasses.replace(p, tones=(spec,)), tone, level_dbm0=level).read(ms * 8)


def _no_hangup_tone(plan: str, x: NDArray[np.int16], where: str) -> None:
    named = [e.tone for e in _watch(plan, x)]
    assert not set(named) & set(HANGUP), f"{plan}: {where}: {named}"


# --- tables and reference ---------------------------------------------------------------


def test_quick_windows_leave_out_every_other_cadence() -> None:
    """[whole burst, first burst of a history] segments per burst phase; 0: no quick window."""
    want = {
        "us": {"busy": ([2, 0], [2, 0]), "reorder": ([2, 0], [3, 0])},
        "uk": {"busy": ([3, 0], [3, 0]), "reorder": ([4, 0, 2, 0], [4, 0, 0, 0])},
        "de": {"busy": ([2, 0], [3, 0]), "reorder": ([2, 0], [3, 0])},
        "etsi": {"busy": ([2, 0], [3, 0]), "reorder": ([2, 0], [3, 0])},
    }
    for plan, p in PLANS.items():
        sigs = build_frame_tables(p).signatures
        watch = build_cadence_tables(p, sigs, hangup_watch=True)
        assert not build_cadence_tables(p, sigs).quick.any()
        for t in range(watch.cad.shape[0]):
            name = TONE_NAMES[watch.cad[t, 3]]
            got = [list(watch.quick[t, first, : watch.cad[t, 1]]) for first in (0, 1)]
            assert got == list(want[plan].get(name, ([0] * watch.cad[t, 1],) * 2)), (plan, name)


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_detector_matches_reference_on_a_call(plan: str) -> None:
    talk = scale_to_dbm0(speech("fr_male"), -20)
    quiet = np.zeros(16000, np.int16)
    parts = [talk[:6000], _burst(plan, "busy", 500, -24), talk[6000:12000], quiet]
    for tone, ms in (("busy", 2500), ("dial", 1500), ("reorder", 2500), ("ringback", 7000)):
        parts += [generate(plan, tone, ms, level_dbm0=-30.0), quiet]
    parts += [talk[:4000], generate(plan, "reorder", 2000)]
    x = with_hum(np.concatenate(parts), list(HUM_KINDS)[PLAN_NAMES.index(plan)], -35.0)
    got = _rows(_watch(plan, x))
    print(plan, got)
    assert got == _ref_rows(plan, x)
    assert [e[0] for e in got][:2] == ["busy", "dial"]


@settings(max_examples=25)
@given(
    plan=st.sampled_from(PLAN_NAMES),
    tone=st.sampled_from(("ringback", "busy", "reorder")),
    jitter=st.lists(st.floats(0.7, 1.3), min_size=9, max_size=9),
    cut_ms=st.integers(0, 400),
    lead=st.sampled_from(("silence", "speech", "noise")),
    noise_db=st.floats(-60, -30),
)
def test_detector_matches_reference_on_jittered_cadences(
    plan: str, tone: str, jitter: list[float], cut_ms: int, lead: str, noise_db: float
) -> None:
    p = PLANS[plan]
    spec = p.tone(tone)
    parts = []
    for i, j in enumerate(jitter):
        n = round(spec.cadence_ms[i % len(spec.cadence_ms)] * j)
        parts.append(_burst(plan, tone, n) if i % 2 == 0 else np.zeros(n * 8, np.int16))
    before = {
        "silence": np.zeros(4000, np.int16),
        "speech": scale_to_dbm0(speech("de_female"), -20)[:8000],
        "noise": white_noise(0.5, noise_db, 1),
    }[lead]
    x = np.concatenate([before, np.concatenate(parts)[cut_ms * 8 :]])
    x = _mix(x, white_noise(x.size / 8000, noise_db, 2))
    got = _rows(_watch(plan, x))
    assert got == _ref_rows(plan, x)
    if all(0.87 <= j <= 1.13 for j in jitter):
        assert [e[0] for e in got] == [tone]


# --- named sooner, and as itself --------------------------------------------------------


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_busy_and_reorder_are_named_sooner_after_silence(plan: str) -> None:
    lead = np.zeros(8000, np.int16)
    for tone in HANGUP:
        x = np.concatenate([lead, generate(plan, tone, 3 * _run_ms(PLANS[plan], tone))])
        events = _watch(plan, x)
        delay = events[0].at_ms - 1000 if events else None
        slow = ToneDetector(plan).feed(x)[0].at_ms - 1000
        print(f"{plan} {tone}: named {delay} ms into the tone (unwatched {slow} ms)")
        assert [e.tone for e in events] == [tone]
        assert events[0].onset_ms == 1000
        assert delay == QUICK_MS[plan][tone]
        assert delay <= slow
    assert QUICK_MS["us"]["busy"] < 1000  # the hang-up target (tests/gateway)


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_dial_tone_is_named_after_700_ms_in_a_call_and_a_shorter_one_is_not(plan: str) -> None:
    lead = np.zeros(8000, np.int16)
    x = np.concatenate([lead, generate(plan, "dial", 2000)])
    [watched] = _watch(plan, x)
    [slow] = ToneDetector(plan).feed(x)
    assert watched.tone == slow.tone == "dial"
    if plan in ("us", "uk"):  # dial tone's frequencies are its own
        assert 700 <= watched.at_ms - 1000 <= 780  # WATCH_DIAL_HOLD_MS and the debounce
        assert 1000 <= slow.at_ms - 1000 <= 1080
    else:  # 425 Hz is ringback's too (1 s bursts): dial tone must outlast one, watched or not
        assert watched.at_ms == slow.at_ms
    assert _rows([watched]) == _ref_rows(plan, x)
    short = np.concatenate([lead, generate(plan, "dial", 600), lead])  # 0.6 s: not yet
    assert _watch(plan, short) == []


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_tones_are_named_at_any_level_offset_noise_and_through_mu_law(plan: str) -> None:
    """-10/-25/-40 dBm0 x 0.985/1/1.015 x white, pink (20 dB SNR), mu-law; after silence."""
    quick = {"busy": 0, "reorder": 0}
    seed = 0
    lead = np.zeros(4000, np.int16)
    for tone, level, factor in itertools.product(TONE_NAMES, (-10.0, -25.0, -40.0), OFFSETS):
        p = _scaled(PLANS[plan], factor)
        clean = np.concatenate([lead, generate(p, tone, _run_ms(p, tone), level_dbm0=level)])
        if tone == "sit":
            clean = np.concatenate([lead, generate(p, tone, _run_ms(p, tone))])
        for kind in ("white", "pink", "ulaw"):
            seed += 1
            events = _watch(plan, _impair(clean, kind, seed))
            where = f"{plan} {tone} {level} dBm0 x{factor} {kind}"
            assert [e.tone for e in events] == [tone], where
            assert events[0].at_ms - 500 <= _bound_ms(p, tone), where
            if tone in quick and events[0].at_ms - 500 <= QUICK_MS[plan][tone] + 20:
                quick[tone] += 1
    print(f"{plan}: named at the quick delay, of 27 each: {quick}")
    assert quick == {"busy": 27, "reorder": 27}  # the noise is ~23 dB under the bursts


@pytest.mark.sweep
@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_a_cadence_joined_at_any_phase_is_named_as_itself(plan: str) -> None:
    """The exchange switches the line onto a running tone source: its first burst may be
    cut short, and must not pass for another tone's."""
    for tone in ("ringback", "busy", "reorder"):
        cadence = PLANS[plan].tone(tone).cadence_ms
        cycle = sum(cadence)
        for join_ms in range(0, cycle, 20):
            x = generate(plan, tone, 3 * cycle + join_ms)[join_ms * 8 :]
            for lead in (np.zeros(4000, np.int16), scale_to_dbm0(speech("en_us_male"), -20)):
                events = _watch(plan, np.concatenate([lead, x]))
                assert [e.tone for e in events] == [tone], f"{plan} {tone} joined at {join_ms}"


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_far_end_hang_up_after_speech_is_named(plan: str) -> None:
    p = PLANS[plan]
    for name, tone in zip(speech_names(), itertools.cycle(HANGUP), strict=False):
        talk = scale_to_dbm0(speech(name), -15)
        for gap_ms in (0, 300, 1000):
            x = np.concatenate([talk, np.zeros(gap_ms * 8, np.int16), generate(plan, tone, 4000)])
            events = _watch(plan, x)
            assert [e.tone for e in events] == [tone], f"{plan}: {name}, {gap_ms} ms, {tone}"
            delay = events[0].at_ms - talk.size // 8 - gap_ms
            print(f"{plan}: {name}, {gap_ms} ms quiet, {tone}: named {delay} ms into it")
            assert 0 < delay <= _bound_ms(p, tone)
            if gap_ms >= 300:
                assert delay == QUICK_MS[plan][tone]


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_tone_under_speech_is_named_once(plan: str) -> None:
    p = PLANS[plan]
    for tone, below_db in itertools.product(TONE_NAMES[:4], (10.0, 6.0)):
        x = generate(p, tone, 14000)
        level = float(np.mean(p.tone(tone).levels_dbm0))
        talk = np.resize(scale_to_dbm0(all_speech(), level - below_db), x.size).astype(np.int16)
        assert [e.tone for e in _watch(plan, _mix(x, talk))] == [tone], (tone, below_db)


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_tones_repeat_and_switch_as_without_watch(plan: str) -> None:
    pause = np.zeros(6000 * 8, np.int16)
    seq = [generate(plan, "busy", 3000), pause, generate(plan, "busy", 3000), pause]
    seq += [generate(plan, "dial", 3000), generate(plan, "reorder", 3000)]
    seq += [generate(plan, "busy", 3000), generate(plan, "reorder", 4000)]
    x = np.concatenate(seq)
    events = _watch(plan, x)
    print(plan, [(e.tone, e.onset_ms, e.at_ms) for e in events])
    assert [e.tone for e in events] == [e.tone for e in ToneDetector(plan).feed(x)]
    assert [e.tone for e in events][:4] == ["busy", "busy", "dial", "reorder"]


# --- nothing else is busy or reorder ----------------------------------------------------


@pytest.mark.sweep
@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_a_single_burst_inside_speech_is_not_a_hang_up_tone(plan: str) -> None:
    """A burst of busy's or reorder's frequencies and exact length spliced into (or laid
    over) speech at every 200 ms, at the plan's level and 10 dB under or over the speech."""
    talk = scale_to_dbm0(all_speech(), -20)
    checked = 0
    for tone in HANGUP:
        level = float(np.mean(PLANS[plan].tone(tone).levels_dbm0))
        for on_ms, shift in itertools.product(
            sorted(set(PLANS[plan].tone(tone).cadence_ms[0::2])), (0.0, -10.0, 10.0)
        ):
            burst = _burst(plan, tone, on_ms, level + shift)
            for at in range(4000, talk.size - 16000, 1600):  # 2 s of speech either side:
                lo = max(0, at - 16000)  # the detector's memory is far shorter
                spliced = np.concatenate([talk[lo:at], burst, talk[at : at + 16000]])
                _no_hangup_tone(plan, spliced, f"{on_ms} ms {tone} burst spliced at {at // 8}")
                checked += 1
            over = talk.copy()
            over[8000 : 8000 + burst.size] = _mix(over[8000 : 8000 + burst.size], burst)
            _no_hangup_tone(plan, over, f"{on_ms} ms {tone} burst over speech")
    print(f"{plan}: no busy/reorder for {checked} single bursts inside speech")


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_no_event_on_speech_music_or_noise(plan: str) -> None:
    for name, level in itertools.product(speech_names(), (-10.0, -20.0, -30.0)):
        assert _watch(plan, scale_to_dbm0(speech(name), level)) == [], (name, level)
    for level in (-10.0, -20.0, -30.0):
        assert _watch(plan, scale_to_dbm0(all_speech(), level)) == [], level
    for seed in range(6):
        assert _watch(plan, music(30, -18 + 4 * (seed % 3), seed)) == [], f"music {seed}"
    for seed in range(2):
        assert _watch(plan, white_noise(20, -30, seed)) == []
        assert _watch(plan, pink_noise(20, -20, seed)) == []
    for kind, level in itertools.product(HUM_KINDS, (-10.0, -30.0)):
        x = scale_to_dbm0(np.concatenate([all_speech(), music(20, -18)]), level)
        assert _watch(plan, with_hum(x, kind, -20.0)) == [], (kind, level)
    print(f"{plan}: no event on speech, music, noise, or speech and music over hum")


@pytest.mark.parametrize("plan", PLAN_NAMES)
def test_no_hang_up_tone_on_dtmf_ringback_dial_or_other_plans_tones(plan: str) -> None:
    for level, on_ms, twist in itertools.product((-3.0, -10.0, -25.0), (40, 100, 600), (0, 4)):
        x = dtmf.generate(dtmf.DIGITS, on_ms, on_ms, level, twist_db=twist)
        assert _watch(plan, x) == [], (level, on_ms, twist)
    _no_hangup_tone(plan, generate(plan, "dial", 15000), "dial tone")
    cycle = sum(PLANS[plan].tone("ringback").cadence_ms)
    for join_ms in range(0, cycle, 100):
        x = generate(plan, "ringback", 15000 + join_ms)[join_ms * 8 :]
        _no_hangup_tone(plan, x, f"ringback joined at {join_ms} ms")
    for other, tone in itertools.product(PLAN_NAMES, TONE_NAMES[:4]):
        named = {e.tone for e in _watch(plan, generate(other, tone, 14000))}
        assert named <= {tone}, f"{other} {tone} heard by {plan} as {named}"
