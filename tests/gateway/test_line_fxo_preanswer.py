"""FXO: deciding before the answer (#8 item 1), on a fake port with trio's virtual clock. The
caller ID (0.5 s after ring 1) decides; an answered call is started at once, with its line
not yet answered, and the line answers on ring N as before; a caller who gives up leaves an
"unanswered" hang-up; a declined call is let ring or answered by a local message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trio
from trio.testing import MockClock

from dsp.frame import FRAME_SAMPLES
from gateway.line import CallerRule, FxoState
from gateway.line_message import MESSAGE_TAIL_S
from tests.gateway.line_rig import RecordingStarter, line_rig
from tests.gateway.test_line_fxo import FXO, fxo, ring

CID_AT_S = 2.5  # ring 1 (2 s) + 0.5 s: the caller ID arrives


async def test_the_call_starts_on_the_caller_id_and_is_answered_on_ring_n(
    autojump_clock: MockClock,
) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=3)) as rig:
        start = trio.current_time()
        rig.nursery.start_soon(ring, rig.port, 6)
        call = await rig.call_started(answered=False)
        assert trio.current_time() - start == pytest.approx(CID_AT_S, abs=0.05)
        assert not call.line.answered.is_set()
        assert rig.port.names() == []  # still on-hook: it rings on
        assert rig.line.state is FxoState.RINGING
        assert call.spec.callerid is not None
        assert call.spec.callerid.number == "5551234567"
        await call.line.answered.wait()
        answered_s = trio.current_time() - start
        assert answered_s == pytest.approx(6.0 * 2 + 2.0, abs=0.05)  # ring 3 ended
        assert rig.port.names() == ["off_hook"]
        assert rig.line.state is FxoState.CONNECTED
        assert rig.line.call is not None
        assert rig.line.call.connected_s - start == pytest.approx(answered_s, abs=0.01)
        assert len(rig.starter.calls) == 1  # the same call, not a second one


async def test_without_pre_answer_the_call_starts_at_the_answer(
    autojump_clock: MockClock,
) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=3, pre_answer=False)) as rig:
        start = trio.current_time()
        rig.nursery.start_soon(ring, rig.port, 6)
        call = await rig.call_started(answered=False)
        assert trio.current_time() - start == pytest.approx(14.0, abs=0.05)
        assert call.line.answered.is_set()


async def test_no_caller_id_decides_on_ring_two(autojump_clock: MockClock) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=3)) as rig:
        start = trio.current_time()
        rig.nursery.start_soon(lambda: ring(rig.port, 6, callerid=None))
        call = await rig.call_started(answered=False)
        assert trio.current_time() - start == pytest.approx(6.0, abs=0.05)  # ring 2 began
        assert call.spec.callerid is None
        await call.line.answered.wait()


async def test_a_caller_who_gives_up_ends_the_prepared_call_unanswered(
    autojump_clock: MockClock,
) -> None:
    async with line_rig(FXO, fxo(answer_after_rings=4)) as rig:
        rig.nursery.start_soon(ring, rig.port, 2)  # two rings, then nothing
        call = await rig.call_started(answered=False)
        await call.over.wait()
        assert call.hangup_reason == "the caller gave up while it rang"
        assert call.line.hangup.signal == "unanswered"
        assert not call.line.answered.is_set()
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == []  # never off-hook


async def test_a_prepared_call_that_ends_itself_lets_the_line_ring(
    autojump_clock: MockClock,
) -> None:
    starter = RecordingStarter(fail_with=RuntimeError("pipeline bug"), fail_after_s=0.5)
    async with line_rig(FXO, fxo(answer_after_rings=3), starter=starter) as rig:
        rig.nursery.start_soon(ring, rig.port, 6)
        call = await rig.call_started(answered=False)
        await call.over.wait()
        await rig.until(lambda: rig.line.state is FxoState.LETTING_RING)
        assert rig.port.names() == []
        await rig.until(lambda: rig.line.state is FxoState.IDLE)  # the ringing stopped
        assert len(rig.starter.calls) == 1


async def test_a_declined_caller_is_let_ring_without_a_call(autojump_clock: MockClock) -> None:
    deny = fxo(answer_after_rings=2, deny=("555*",))
    async with line_rig(FXO, deny) as rig:
        await ring(rig.port, 4)
        await rig.until(lambda: rig.line.state is FxoState.IDLE, 30.0)
        assert rig.starter.calls == []
        assert rig.port.names() == []


async def test_a_declined_caller_hears_the_local_message(autojump_clock: MockClock) -> None:
    rules = (CallerRule(numbers=("555*",), answer=False),)
    config = fxo(answer_after_rings=2, rules=rules, decline="message")
    async with line_rig(FXO, config) as rig:
        start = trio.current_time()
        rig.nursery.start_soon(ring, rig.port, 6)
        await rig.until(lambda: rig.line.state is FxoState.MESSAGE)
        # Answered by the message, not let ring to the end (6 rings: 36 s). Its first use
        # reads the file in a worker thread, and trio's virtual clock jumps on meanwhile by
        # as much as it likes (13 s seen on a cold disk), so no tighter bound holds here.
        assert CID_AT_S <= trio.current_time() - start < 6 * 6.0
        assert rig.port.names() == ["off_hook"]
        await rig.until(lambda: rig.line.state is FxoState.IDLE)
        assert rig.port.names() == ["off_hook", "on_hook"]
        off, on = (c.at_s for c in rig.port.commands)
        sent = rig.port.sent_audio(off)
        assert rig.starter.calls == []
    from gateway.call_fallback import load_prompts

    goodbye = load_prompts()["goodbye"]
    assert on - off == pytest.approx(len(goodbye) / 8000 + MESSAGE_TAIL_S, abs=0.05)
    n = len(goodbye) // FRAME_SAMPLES * FRAME_SAMPLES
    assert np.array_equal(sent[:n], goodbye[:n])  # the prompt, frame by frame


async def test_decline_must_be_ring_or_message() -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=r"line\.fxo\.decline 'hangup' is not one of ring"):
        fxo(decline="hangup")


def test_the_decline_audio_is_read_with_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.call_wav import write_wav
    from gateway.config import load_config
    from gateway.errors import ConfigError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = tmp_path / "tipring.toml"
    config.write_text('[line.fxo]\ndecline = "message"\ndecline_audio = "closed.wav"\n'
                      '[line.ports.1.fxo]\ndecline_audio = "nothing.wav"\n')  # fmt: skip
    (tmp_path / "closed.wav").write_text("not a wav")
    with pytest.raises(ConfigError, match=r"line\.fxo\.decline_audio: .*closed\.wav"):
        load_config(config)
    write_wav(tmp_path / "closed.wav", np.full(800, 1000, np.int16))
    with pytest.raises(ConfigError, match=r"line\.ports\.1\.fxo\.decline_audio: .*nothing"):
        load_config(config)
    config.write_text('[line.fxo]\ndecline = "message"\ndecline_audio = "closed.wav"\n')
    loaded = load_config(config).line.fxo.decline_audio
    assert loaded == str((tmp_path / "closed.wav").resolve())
