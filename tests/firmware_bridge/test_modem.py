"""firmware_bridge.modem against the voice-modem simulator on a real pty (fast clock: command
state at 10x, streams in lock-step with the driver): identify every profile, ring with caller
ID in both vendors' line formats, answer, full-duplex audio both ways bit-exact through
mu-law (DLE bytes included), every far-end hang-up signal, DTMF once per key, a clean hang-up
that re-arms caller ID, the half-duplex fallback, in-band dialling, the device vanishing, a
firmware reset and an unsolicited end of stream mid-call, and garbage on the wire.

Real I/O: the real clock, every wait bounded by `trio.fail_after` (`tests.firmware_bridge.
modem_rig`)."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import trio

from dsp.callerid import CallerId
from firmware_bridge.errors import PortUnsupported
from firmware_bridge.modem import VoiceModem
from firmware_bridge.modem_identity import Chipset, find_format
from firmware_bridge.port import (
    CallerIdReported,
    Codec,
    DtmfReported,
    LineEvent,
    LoopCurrentDropped,
    PolarityReversed,
    PortLost,
    PortReady,
    RingStarted,
    RingStopped,
    ToneReported,
)
from firmware_bridge.sim.line import HangUpMethod, LineState
from firmware_bridge.sim.modem import ModemSimulator
from firmware_bridge.sim.modem_profiles import CX93001, CX93010, USR5637, ModemProfile, SimFormat
from firmware_bridge.sim.modem_state import SimMode
from tests.firmware_bridge.modem_rig import (
    CID,
    READY_S,
    RECOVER_S,
    WAIT_S,
    first_nonzero,
    modem_rig,
    quiet_line,
    through_mulaw,
    with_dle_codes,
)
from tests.signals import white_noise

DETECT_S = 1.0  # the issue: a firmware reset mid-call is detected within 1 s


# --- identify --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "chipset", "alaw_code"),
    [
        (CX93001, Chipset.CX93001, 132),
        (CX93010, Chipset.CX93010, 132),
        (USR5637, Chipset.USR5637, 130),  # 130 is unsigned PCM on Conexant
    ],
)
async def test_identifies_each_profile_and_finds_mulaw_by_name(
    tmp_path: Path, profile: ModemProfile, chipset: Chipset, alaw_code: int
) -> None:
    async with modem_rig(tmp_path, profile) as rig:
        ident = rig.modem.identity
        assert ident is not None
        codes = {f.name: f.code for f in ident.formats}
        assert (ident.chipset, ident.ati0, ident.ati3) == (chipset, profile.ati0, profile.ati3)
        assert (ident.manufacturer, ident.model, ident.firmware) == (
            profile.manufacturer, profile.model, profile.revision,
        )  # fmt: skip
        assert codes == {f.name: f.code for f in profile.formats}
        assert ident.voice_format.code == 131
        assert ident.codec == Codec.ULAW
        alaw = find_format(ident.formats, Codec.ALAW)  # A-law by name, at the vendor's number
        assert alaw is not None
        assert alaw.code == alaw_code
        assert "8" in ident.fclasses
        assert rig.sim.commands[-1] == "AT+VCID=1"
        assert rig.sim.at.state.vcid == 1
        assert rig.sim.at.state.fclass == "0"
        assert not rig.sim.at.state.echo
        print(f"{profile.name}: {ident.chipset}, mu-law {ident.voice_format}, formats {codes}")


async def test_mulaw_is_taken_from_its_name_wherever_it_is_numbered(tmp_path: Path) -> None:
    odd = dataclasses.replace(  # mu-law at V.253's 4; 131 (mu-law elsewhere) is A-law here
        CX93001,
        formats=(SimFormat(4, "G.711 u-Law", "ulaw"), SimFormat(131, "ALAW", "alaw")),
        default_format=131,
    )
    async with modem_rig(tmp_path, odd) as rig:
        await rig.answer_call()
        assert "AT+VSM=4,8000" in rig.sim.commands
        assert rig.sim.at.state.vsm == 4


async def test_a_modem_without_voice_class_is_unsupported(tmp_path: Path) -> None:
    data_only = dataclasses.replace(CX93001, fclasses="0,1,1.0,2")
    sim = ModemSimulator(data_only, quiet_line(), link=tmp_path / "m", fast=True)
    with pytest.RaisesGroup(PortUnsupported, flatten_subgroups=True), trio.fail_after(READY_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.run)
            await nursery.start(VoiceModem(str(tmp_path / "m")).run)


# --- ringing and caller ID -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "callerid"),
    [
        (CX93001, CID),  # NMBR = 5551234567
        (USR5637, CID),  # NMBR=5551234567
        (CX93001, CallerId(when="01020304", number_reason="private", name_reason="unavailable")),
        (USR5637, CallerId(number="0123", name_reason="private")),
    ],
)
async def test_ring_with_callerid_reports_number_name_and_reasons(
    tmp_path: Path, profile: ModemProfile, callerid: CallerId
) -> None:
    async with modem_rig(tmp_path, profile) as rig:
        rig.line.incoming_call(callerid, rings=3)
        got = await rig.event(CallerIdReported)
        assert got.callerid == callerid
        await rig.until(lambda: len(rig.of(RingStarted)) == 2)
        kinds = [type(e) for e in rig.events if not isinstance(e, PortReady)]
        assert kinds[:4] == [RingStarted, RingStopped, CallerIdReported, RingStarted]
        assert len(rig.of(CallerIdReported)) == 1


# --- a call ----------------------------------------------------------------------------------


async def test_full_duplex_audio_is_bit_exact_both_ways_with_dle_bytes(tmp_path: Path) -> None:
    far = with_dle_codes(white_noise(1.0, -12.0, seed=1))
    ours = with_dle_codes(white_noise(1.2, -12.0, seed=2))
    async with modem_rig(tmp_path) as rig:
        await rig.answer_call()
        rig.line.play(far)  # scripted once the stream runs: see `answer_call`
        rig.send(ours)  # audio before off_hook() would be for no call: dropped, counted
        started = time.perf_counter()
        await rig.until(lambda: len(rig.frames) >= 90)
        took_s = time.perf_counter() - started
        assert rig.modem.full_duplex is True
        rx = rig.received()
        at = first_nonzero(rx)
        np.testing.assert_array_equal(rx[at : at + far.size], through_mulaw(far))
        tx = rig.line.tx_log
        at = first_nonzero(tx)
        np.testing.assert_array_equal(tx[at : at + ours.size], through_mulaw(ours))
        await rig.modem.on_hook()
        assert rig.modem.stats.tx_dropped == rig.modem.stats.underruns == 0
        assert rig.sim.stats.host_codes == {"^": 1}  # our 0x10 samples went shielded
        print(
            f"lock-step stream: 90 frames in {took_s * 1000:.1f} ms ({90 / took_s:.0f} "
            "frames/s); DLE codes in both directions round-tripped"
        )


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("loop_drop", LoopCurrentDropped(0, 0.0)),
        ("busy", ToneReported(0, "busy")),
        ("reorder", ToneReported(0, "busy")),  # V.253 has one code, `b`, for both
        ("dial_tone", ToneReported(0, "dial")),
        ("polarity", PolarityReversed(0)),
    ],
)
async def test_every_far_end_hang_up_signal_becomes_an_event(
    tmp_path: Path, method: HangUpMethod, expected: LineEvent
) -> None:
    async with modem_rig(tmp_path) as rig:
        await rig.answer_call()
        mark = len(rig.events)
        rig.line.silence(200.0)
        rig.line.hang_up(method)
        got = await rig.event(type(expected), mark)
        assert got == expected
        assert rig.line.state is LineState.FAR_HUNG_UP
        await rig.modem.on_hook()


@pytest.mark.parametrize("profile", [CX93001, USR5637])
async def test_far_end_dtmf_is_reported_once_per_key(tmp_path: Path, profile: ModemProfile) -> None:
    async with modem_rig(tmp_path, profile) as rig:
        await rig.answer_call()
        rig.line.press("1123#*0D", on_ms=120.0, off_ms=100.0)
        await rig.until(lambda: len(rig.of(DtmfReported)) >= 8)
        await rig.until(lambda: rig.line.script_empty)
        mark = len(rig.frames)  # 200 ms more: a repeated code of the last key would be in
        await rig.until(lambda: len(rig.frames) >= mark + 10)
        assert "".join(e.digit for e in rig.of(DtmfReported)) == "1123#*0D"
        await rig.modem.on_hook()


async def test_on_hook_hangs_up_cleanly_and_rearms_callerid(tmp_path: Path) -> None:
    async with modem_rig(tmp_path) as rig:
        await rig.answer_call()
        await rig.until(lambda: len(rig.frames) >= 10)
        await rig.modem.on_hook()
        assert rig.sim.commands[-4:] == ["AT+VLS=0", "ATH", "AT+FCLASS=0", "AT+VCID=1"]
        assert rig.line.state is LineState.IDLE
        assert rig.sim.mode is SimMode.COMMAND
        assert rig.sim.at.state.vcid == 1  # this chip forgets it after a call: re-asserted
        mark = len(rig.events)
        rig.line.incoming_call(CallerId(number="5550000"))
        second = await rig.event(CallerIdReported, mark)
        assert second.callerid.number == "5550000"


async def test_half_duplex_fallback_is_reported_and_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    far = with_dle_codes(white_noise(0.6, -12.0, seed=3))
    ours = with_dle_codes(white_noise(0.4, -12.0, seed=4))
    async with modem_rig(tmp_path, USR5637) as rig:
        with caplog.at_level(logging.WARNING, logger="firmware_bridge.modem"):
            await rig.answer_call()
        rig.line.play(far)
        assert rig.modem.full_duplex is False
        assert "usr5637 refuses +VTR" in caplog.text
        await rig.until(lambda: len(rig.frames) >= 40)
        rx = rig.received()
        at = first_nonzero(rx)
        np.testing.assert_array_equal(rx[at : at + far.size], through_mulaw(far))
        mark = len(rig.frames)
        with trio.fail_after(WAIT_S):
            await rig.send_on_clock(ours)  # the turn starts on the first frame
        await rig.until(lambda: any(f.concealed for f in rig.frames[mark:]))
        await rig.until(lambda: not rig.frames[-1].concealed and rig.sim.mode is SimMode.RECEIVE)
        tx = rig.line.tx_log
        at = first_nonzero(tx)
        np.testing.assert_array_equal(tx[at : at + ours.size], through_mulaw(ours))
        assert rig.sim.commands[-3:] == ["AT+VRX", "AT+VTX", "AT+VRX"]  # one turn, unbroken
        assert rig.modem.stats.tx_dropped == 0
        await rig.modem.on_hook()
        assert rig.line.state is LineState.IDLE


async def test_dial_plays_the_digits_in_band(tmp_path: Path) -> None:
    async with modem_rig(tmp_path) as rig:
        rig.line.expect_outgoing(answer_after_rings=None, number_digits=7)
        await rig.modem.dial("5551234")
        assert rig.line.dialed_digits == "5551234"
        await rig.event(ToneReported)  # dial tone on seizing the line
        await rig.modem.on_hook()


async def test_what_a_voice_modem_cannot_do_is_unsupported(tmp_path: Path) -> None:
    async with modem_rig(tmp_path) as rig:
        for attempt in (rig.modem.ring(), rig.modem.stop_ring(), rig.modem.flash()):
            with pytest.raises(PortUnsupported):
                await attempt
        await rig.modem.set_gains(0.0, 0.0)
        with pytest.raises(PortUnsupported):
            await rig.modem.set_gains(3.0, 0.0)
        with pytest.raises(ValueError, match="160"):
            rig.modem.send_audio(np.zeros(80, np.int16))


# --- faults ----------------------------------------------------------------------------------


async def test_device_vanishing_mid_call_recovers_for_a_second_call(tmp_path: Path) -> None:
    async with modem_rig(tmp_path) as rig:
        await rig.answer_call()
        await rig.until(lambda: len(rig.frames) >= 10)
        mark = len(rig.events)
        rig.sim.vanish()
        lost = await rig.event(PortLost, mark)
        assert "went away" in lost.reason or "read failed" in lost.reason
        await trio.sleep(0.3)  # unplugged for a while: reopening fails and backs off
        rig.sim.reappear()
        await rig.event(PortReady, mark, RECOVER_S)
        frames = len(rig.frames)
        await rig.answer_call()
        await rig.until(lambda: len(rig.frames) >= frames + 10)
        await rig.modem.on_hook()


async def test_firmware_reset_mid_call_is_detected_and_recovered(tmp_path: Path) -> None:
    async with modem_rig(tmp_path) as rig:
        await rig.answer_call()
        await rig.until(lambda: len(rig.frames) >= 10)
        mark, sent = len(rig.events), len(rig.sim.commands)
        reset_at = trio.current_time()
        rig.sim.firmware_reset()
        lost = await rig.event(PortLost, mark, DETECT_S)
        detect_ms = (trio.current_time() - reset_at) * 1000.0
        assert "no audio" in lost.reason
        await rig.event(PortReady, mark, RECOVER_S)
        assert "AT+VCID=1" in rig.sim.commands[sent:]
        assert rig.sim.at.state.vcid == 1
        assert not rig.sim.at.state.echo
        frames = len(rig.frames)
        await rig.answer_call()
        await rig.until(lambda: len(rig.frames) >= frames + 10)
        await rig.modem.on_hook()
        print(f"firmware reset detected after {detect_ms:.0f} ms: {lost.reason}")


async def test_unsolicited_end_of_stream_is_a_lost_port_not_a_hang_up(tmp_path: Path) -> None:
    async with modem_rig(tmp_path) as rig:
        await rig.answer_call()
        await rig.until(lambda: len(rig.frames) >= 10)
        mark = len(rig.events)
        rig.sim.leave_stream()
        lost = await rig.event(PortLost, mark)
        assert "left the audio stream" in lost.reason
        await rig.event(PortReady, mark, RECOVER_S)
        assert rig.line.state is LineState.IDLE  # the reconnect left the line on-hook
        await rig.answer_call()


async def test_garbage_from_the_modem_does_not_crash_the_driver(tmp_path: Path) -> None:
    async with modem_rig(tmp_path) as rig:
        rig.sim.inject(b"\xff\xfe\x00\x81garbage\x10\r\n\xc3\x28NMBR = \r\nNAME\r\nRI")
        rig.sim.inject(bytes(range(256)) + b"x" * 2000 + b"\r\n\x10")
        await rig.answer_call()
        await rig.until(lambda: len(rig.frames) >= 5)
        rig.sim.corrupt_bytes(64)
        rig.sim.inject(b"\x10\x10\x10Z\x10\xfe")  # unknown DLE codes mid-stream
        mark = len(rig.frames)
        await rig.until(lambda: len(rig.frames) >= mark + 20)
        await rig.modem.on_hook()
        assert not rig.of(PortLost)
