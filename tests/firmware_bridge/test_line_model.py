"""firmware_bridge.sim.line (+ echo_paths, line_core): the echo paths against known answers
(ERL on white noise, exact bulk delay, streaming = one convolution, path change), FXO
ringing with caller ID on the GR-30 timing, answer, every far-end hang-up, an outgoing
call, the FXS phone's hook, digits and caller ID, the noise floor, determinism and the
errors for commands a port kind cannot do."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from dsp.callerid import CallerId, CallerIdDecoder, Standard, encode
from dsp.dtmf import DtmfDetector
from dsp.dtmf import generate as dtmf_generate
from dsp.levels import rms_to_dbm0
from dsp.tones import ToneDetector
from firmware_bridge.errors import CommandFailed, PortUnsupported
from firmware_bridge.port import (
    HookChanged,
    HookFlashed,
    LineEvent,
    LineVoltageMeasured,
    LoopCurrentDropped,
    PolarityReversed,
    PortKind,
    RingStarted,
    RingStopped,
)
from firmware_bridge.sim.echo_paths import G168_MODELS, EchoFilter, EchoPath
from firmware_bridge.sim.line import LineModel, LineState
from tests.signals import speech, speech_names, white_noise

FRAME = 160
FRAME_MS = 20.0
CID = CallerId(number="5551234567", name="ALICE SMITH", when="11251015")
ERL_TOLERANCE_DB = 0.5
NOISE_TOLERANCE_DB = 1.0
Timed = list[tuple[float, LineEvent]]


def _level_db(x: NDArray[np.float64]) -> float:
    return 10.0 * math.log10(float(np.mean(np.square(x, dtype=np.float64))))


def _run(
    line: LineModel, ms: float, tx: NDArray[np.int16] | None = None
) -> tuple[NDArray[np.int16], NDArray[np.float64], Timed]:
    """Step `line` for `ms` (sending `tx`, then silence): rx, far_audio and (ms, event)s."""
    frames = math.ceil(ms / FRAME_MS)
    sent = np.zeros(frames * FRAME, np.int16)
    if tx is not None:
        sent[: tx.size] = tx[: sent.size]
    rx, far, timed = [], [], []
    for f in range(frames):
        at = line.now_ms
        pcm, events = line.step(sent[f * FRAME : (f + 1) * FRAME])
        rx.append(pcm)
        far.append(line.far_audio)
        timed += [(at, e) for e in events]
    return np.concatenate(rx), np.concatenate(far), timed


def _connected_fxo(**kwargs: object) -> LineModel:
    line = LineModel(PortKind.FXO, **kwargs)  # type: ignore[arg-type]
    line.incoming_call(None)
    _run(line, 100.0)
    line.host_off_hook()
    _run(line, 100.0)
    return line


def _tones(plan: str, rx: NDArray[np.int16]) -> list[str]:
    det = ToneDetector(plan)
    return [t.tone for t in det.feed(rx)]


# --- echo paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", range(1, 9))
def test_g168_model_erl_on_white_noise_is_the_requested_erl(model: int) -> None:
    tx = white_noise(3.0, -10.0, seed=model).astype(np.float64)
    worst = 0.0
    for delay_ms in (0.0, 8.0, 32.0, 64.0):
        for erl_db in (6.0, 10.0, 15.0, 20.0):
            filt = EchoFilter(EchoPath.g168(model, delay_ms, erl_db))
            echo = np.concatenate(
                [filt.process(tx[i : i + FRAME]) for i in range(0, tx.size, FRAME)]
            )
            skip = filt.path.span_samples  # the echo's start-up
            measured = _level_db(tx[: tx.size - skip]) - _level_db(echo[skip:])
            worst = max(worst, abs(measured - erl_db))
            assert abs(measured - erl_db) <= ERL_TOLERANCE_DB, (delay_ms, erl_db, measured)
    taps = len(G168_MODELS[model - 1])
    print(f"G.168 model {model} ({taps} taps): worst |ERL error| {worst:.3f} dB "
          f"(bound {ERL_TOLERANCE_DB} dB), delays 0-64 ms, ERL 6-20 dB")  # fmt: skip


@pytest.mark.parametrize("delay_ms", [0.0, 0.125, 5.0, 64.0, 250.0])
def test_bulk_delay_is_exact(delay_ms: float) -> None:
    impulse = np.zeros(3000, np.float64)
    impulse[7] = 10000.0
    out = EchoFilter(EchoPath.pure_delay(delay_ms, erl_db=6.0)).process(impulse)
    want_at = 7 + round(delay_ms * 8)
    assert np.flatnonzero(out).tolist() == [want_at]
    assert out[want_at] == pytest.approx(10000.0 * 10 ** (-6.0 / 20))
    path = EchoPath.g168(5, delay_ms, 12.0)
    out = EchoFilter(path).process(impulse)
    np.testing.assert_allclose(out[7 : 7 + path.span_samples], 10000.0 * path.response())
    print(f"pure delay {delay_ms} ms: impulse at sample 7 came out at {want_at} (exact)")


@given(
    model=st.integers(1, 8),
    delay_ms=st.floats(0.0, 64.0),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
def test_streaming_echo_is_one_convolution_for_any_split(
    model: int, delay_ms: float, cuts: list[int]
) -> None:
    path = EchoPath.g168(model, delay_ms, 9.0)
    x = white_noise(0.25, -10.0, seed=model).astype(np.float64)
    bounds = [0, *sorted(c for c in cuts if c <= x.size), x.size]
    filt = EchoFilter(path)
    got = np.concatenate([filt.process(x[a:b]) for a, b in itertools.pairwise(bounds)])
    np.testing.assert_allclose(got, np.convolve(x, path.response())[: x.size], atol=1e-9)


def test_echo_path_change_applies_the_new_path_to_audio_already_sent() -> None:
    old, new = EchoPath.g168(1, 4.0, 6.0), EchoPath.g168(7, 20.0, 10.0)
    x = white_noise(1.0, -10.0, seed=3).astype(np.float64)
    filt = EchoFilter(old)
    first = filt.process(x[:4000])
    filt.set_path(new)
    second = filt.process(x[4000:])
    np.testing.assert_allclose(first, np.convolve(x, old.response())[:4000], atol=1e-9)
    np.testing.assert_allclose(second, np.convolve(x, new.response())[4000 : x.size], atol=1e-9)


def test_echo_reaches_the_host_only_while_the_hybrid_is_connected() -> None:
    line = LineModel(PortKind.FXO, echo=EchoPath.pure_delay(1.0, 6.0), noise_dbm0=None)
    tx = white_noise(1.0, -10.0, seed=1)
    rx, _, _ = _run(line, 1000.0, tx)
    assert not rx.any()  # on-hook: nothing sent, nothing returned
    line.host_off_hook()
    rx, far, _ = _run(line, 1000.0, tx)
    echo = rx.astype(np.float64) - far
    measured = _level_db(tx[8:].astype(np.float64)) - _level_db(echo[16:])
    print(f"off-hook echo through the line: ERL {measured:.2f} dB (want 6 +- 0.5)")
    assert abs(measured - 6.0) <= ERL_TOLERANCE_DB
    line.host_on_hook()
    _run(line, 40.0)
    assert not _run(line, 500.0, tx)[0].any()


def test_line_echo_output_is_the_rounded_sum_and_tx_log_is_bit_exact() -> None:
    line = LineModel(PortKind.FXS, seed=5)
    line.phone_off_hook()
    tx = white_noise(0.4, -12.0, seed=9)
    for i in range(0, tx.size, FRAME):
        rx, _ = line.step(tx[i : i + FRAME])
        total = line.far_audio + line.true_echo + line.line_noise
        assert np.array_equal(rx, np.clip(np.rint(total), -32768, 32767).astype(np.int16))
    line.step(None)
    assert np.array_equal(line.tx_log, np.concatenate([tx, np.zeros(FRAME, np.int16)]))


# --- FXO: incoming calls -----------------------------------------------------------------


@pytest.mark.parametrize("standard", ["bell202", "v23"])
def test_incoming_call_rings_on_cadence_with_callerid_between_rings(standard: Standard) -> None:
    line = LineModel(PortKind.FXO, callerid_standard=standard)
    line.incoming_call(CID, rings=3)
    rx, far, timed = _run(line, 20000.0)
    rings = [(t, type(e).__name__) for t, e in timed if isinstance(e, RingStarted | RingStopped)]
    want = [(t, n) for on in (0.0, 6000.0, 12000.0)
            for t, n in ((on, "RingStarted"), (on + 2000.0, "RingStopped"))]  # fmt: skip
    assert rings == want
    burst = np.flatnonzero(far) / 8.0
    print(f"{standard}: burst {burst[0]:.1f}-{burst[-1]:.1f} ms; GR-30 wants >= 2500 and <= 5800")
    assert burst[0] >= 2500.0
    assert burst[-1] <= 5800.0
    decoder, got = CallerIdDecoder(standard), []
    for i in range(0, rx.size, FRAME):
        got += [(i / 8.0, r) for r in decoder.feed(rx[i : i + FRAME])]
    assert [r for _, r in got] == [CID]
    assert 2000.0 < got[0][0] < 6000.0
    assert line.state is LineState.IDLE
    assert line.rings == 3


def test_answer_stops_ringing_and_connects_the_far_party() -> None:
    line = LineModel(PortKind.FXO, noise_dbm0=None, echo=None)
    line.incoming_call(CID)
    hello = speech(speech_names()[0])[:8000]
    line.play(hello)  # waits for the answer
    _run(line, 7000.0)  # into the second ring
    assert line.ring_on
    line.host_off_hook()
    rx, _, timed = _run(line, 12000.0)
    events = [e for _, e in timed]
    assert events[:2] == [RingStopped(0), LineVoltageMeasured(0, 8.0)]
    assert not any(isinstance(e, RingStarted) for e in events)
    assert line.state is LineState.CONNECTED
    assert np.array_equal(rx[: hello.size], hello)  # from the first frame after the answer


def test_host_flash_opens_the_loop_and_digits_in_a_call_reach_the_far_party() -> None:
    line = _connected_fxo(echo=EchoPath.pure_delay(0.0, 6.0), noise_dbm0=None)
    line.host_flash(200.0)
    tx = white_noise(0.6, -10.0, seed=4)
    rx, _, _ = _run(line, 600.0, tx)
    assert line.host_flashes_ms == [200.0]
    assert not rx[:1600].any()  # loop open: nothing sent, no echo
    assert rx[1600:].any()
    _run(line, 500.0, dtmf_generate("7", 100, 100, -10.0))
    assert line.digits_heard == "7"
    assert line.dialed_digits == ""


def test_caller_hanging_up_before_the_answer_stops_the_ringing() -> None:
    line = LineModel(PortKind.FXO)
    line.incoming_call(None)
    _run(line, 1000.0)
    line.hang_up()
    _, _, timed = _run(line, 10000.0)
    assert [e for _, e in timed] == [RingStopped(0)]
    assert line.state is LineState.IDLE


@pytest.mark.parametrize("method", ["loop_drop", "polarity", "busy", "reorder", "dial_tone"])
def test_far_end_hang_up_gives_its_signal(method: str) -> None:
    line = _connected_fxo()
    line.silence(300.0)
    line.hang_up(method, drop_ms=450.0)  # type: ignore[arg-type]
    rx, _, timed = _run(line, 5000.0)
    events = [(t - timed[0][0] if timed else 0.0, e) for t, e in timed]
    tones = _tones("us", rx)
    print(f"{method}: events {events}, tones {tones}")
    assert line.state is LineState.FAR_HUNG_UP
    if method == "loop_drop":
        assert [e for _, e in events] == [
            LineVoltageMeasured(0, 0.0), LoopCurrentDropped(0, 450.0), LineVoltageMeasured(0, 8.0)
        ]  # fmt: skip
        assert events[1][0] == 440.0  # 450 ms later, on the 20 ms frame grid
    elif method == "polarity":
        assert [e for _, e in events] == [PolarityReversed(0)]
    else:
        assert not events
        assert tones == [{"dial_tone": "dial"}.get(method, method)]


def test_far_end_leaving_quietly_leaves_only_the_noise_floor() -> None:
    line = _connected_fxo(noise_dbm0=-60.0)
    line.play(white_noise(0.5, -20.0))
    line.hang_up("silence")
    _, _, timed = _run(line, 600.0)
    rx, _, more = _run(line, 3000.0)
    assert not timed
    assert not more
    assert line.state is LineState.FAR_HUNG_UP
    level = rms_to_dbm0(float(np.sqrt(np.mean(rx.astype(np.float64) ** 2))))
    print(f"after a quiet hang-up: {level:.2f} dBm0 (noise floor -60)")
    assert abs(level + 60.0) <= NOISE_TOLERANCE_DB


# --- FXO: outgoing calls -------------------------------------------------------------------


def test_outgoing_call_dial_tone_digits_ringback_answer() -> None:
    line = LineModel(PortKind.FXO)
    line.expect_outgoing(answer_after_rings=2, reverse_polarity_on_answer=True)
    line.host_off_hook()
    rx, _, _ = _run(line, 1500.0)
    assert _tones("us", rx) == ["dial"]
    rx2, _, timed = _run(line, 16000.0, dtmf_generate("5551234", 100, 100, -10.0))
    assert line.dialed_digits == "5551234"
    assert "ringback" in _tones("us", rx2)
    answered = [t for t, e in timed if isinstance(e, PolarityReversed)]
    print(f"dialled {line.dialed_digits!r}; answered at {answered} ms (after 2 rings)")
    assert line.state is LineState.CONNECTED
    assert len(answered) == 1
    line.play(white_noise(0.5, -20.0))
    _, far, _ = _run(line, 500.0)
    assert rms_to_dbm0(float(np.sqrt(np.mean(far**2)))) == pytest.approx(-20.0, abs=0.2)


def test_outgoing_call_to_a_busy_number_gives_busy_tone() -> None:
    line = LineModel(PortKind.FXO)
    line.expect_outgoing(answer_after_rings=None, number_digits=3)
    line.host_off_hook()
    _run(line, 300.0)
    rx, _, _ = _run(line, 5000.0, dtmf_generate("411", 80, 80, -8.0))
    assert line.dialed_digits == "411"
    assert line.state is LineState.BUSY
    assert _tones("us", rx) == ["busy"]


# --- FXS -----------------------------------------------------------------------------------


def test_fxs_phone_hook_flash_and_digits() -> None:
    line = LineModel(PortKind.FXS)
    line.phone_off_hook()
    line.phone_dials("159#", on_ms=80.0, off_ms=80.0)
    line.phone_flash(600.0)
    line.silence(200.0)
    line.phone_on_hook()
    rx, _, timed = _run(line, 2500.0)
    print(f"FXS events: {timed}")
    assert [e for _, e in timed] == [
        HookChanged(0, True),
        HookFlashed(0, 600.0),
        HookChanged(0, False),
    ]
    assert timed[1][0] - timed[0][0] == pytest.approx(640.0 + 600.0, abs=FRAME_MS)
    assert [e.digit for e in DtmfDetector().feed(rx)] == list("159#")
    assert line.state is LineState.IDLE
    assert line.script_empty


def test_fxs_host_ring_with_callerid_then_the_phone_answers() -> None:
    line = LineModel(PortKind.FXS)
    line.answer_when_rung(after_rings=2)
    line.host_ring((2000, 4000), CID)
    _, _, timed = _run(line, 10000.0)
    assert line.received_callerid == [CID]
    print(f"phone decoded {line.received_callerid}; answered at {timed}")
    assert [e for _, e in timed] == [HookChanged(0, True)]
    assert timed[0][0] == pytest.approx(6500.0, abs=FRAME_MS)
    assert line.state is LineState.CONNECTED
    assert line.rings == 2
    assert not line.ring_on


def test_fxs_phone_decodes_callerid_the_host_sends_as_audio() -> None:
    line = LineModel(PortKind.FXS, callerid_standard="v23")
    line.host_ring((2000, 4000))
    tx = np.zeros(8 * 6000, np.int16)
    burst = encode(CID, "v23")
    tx[8 * 2600 : 8 * 2600 + burst.size] = burst
    _run(line, 6000.0, tx)
    line.host_stop_ring()
    assert line.received_callerid == [CID]
    assert line.state is LineState.IDLE


# --- noise, determinism, errors ------------------------------------------------------------


@pytest.mark.parametrize("noise_dbm0", [-70.0, -65.0, -50.0])
def test_noise_floor_is_the_configured_level(noise_dbm0: float) -> None:
    rx, _, _ = _run(LineModel(PortKind.FXO, noise_dbm0=noise_dbm0), 10000.0)
    level = rms_to_dbm0(float(np.sqrt(np.mean(rx.astype(np.float64) ** 2))))
    print(f"noise floor {level:.2f} dBm0 (want {noise_dbm0} +- {NOISE_TOLERANCE_DB})")
    assert abs(level - noise_dbm0) <= NOISE_TOLERANCE_DB


def test_same_seed_same_line_other_seed_other_noise() -> None:
    def call(seed: int) -> NDArray[np.int16]:
        line = LineModel(PortKind.FXO, seed=seed)
        line.incoming_call(CID, rings=2)
        line.play(speech(speech_names()[0])[:4000])
        rx, _, _ = _run(line, 3000.0)
        line.host_off_hook()
        return np.concatenate([rx, _run(line, 1000.0, white_noise(1.0, -15.0))[0]])

    assert np.array_equal(call(1), call(1))
    assert not np.array_equal(call(1), call(2))


def test_commands_the_port_kind_cannot_do_raise_clear_errors() -> None:
    fxo, fxs = LineModel(PortKind.FXO), LineModel(PortKind.FXS)
    for command in (fxo.host_ring, fxo.host_stop_ring, fxs.host_off_hook, fxs.host_on_hook):
        with pytest.raises(PortUnsupported, match="not possible on an"):
            command()
    with pytest.raises(PortUnsupported):
        fxs.host_flash(600.0)
    with pytest.raises(CommandFailed, match="on-hook"):
        fxo.host_flash(600.0)
    with pytest.raises(ValueError, match="is for fxo lines"):
        fxs.incoming_call(CID)
    with pytest.raises(ValueError, match="is for fxs lines"):
        fxo.phone_off_hook()
    with pytest.raises(ValueError, match="FXS phone"):
        fxo.hang_up("on_hook")
    fxs.phone_off_hook()
    fxs.step()
    with pytest.raises(CommandFailed, match="off-hook"):
        fxs.host_ring()
