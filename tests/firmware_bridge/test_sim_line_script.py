"""firmware_bridge.sim.line_script and host_voice through `LineModel`: the far side's reactive
script against a fake host that talks (white noise at -20 dBm0) at known line ms.
`wait_for_voice` / `wait_for_silence` go on at the first frame boundary after their condition
held (exact to the frame), time out into the record, wait for the call; marks and plays are
logged to the sample; `host_voice_after` / `host_quiet_after` find the agent's start and stop
at the line to the ms."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.errors import DspInputError
from firmware_bridge.port import PortKind
from firmware_bridge.sim.host_voice import first_run, voiced_ms
from firmware_bridge.sim.line import LineModel, LineState
from firmware_bridge.sim.line_script import HostWait, Played
from tests.signals import white_noise

FRAME = 160
FRAME_MS = 20.0
TALK_DBM0 = -20.0  # the shipped prompts' level
COMFORT_DBM0 = -65.0  # gateway.playout's comfort noise between the agent's words


def frame_ceil(ms: float) -> float:
    return math.ceil(ms / FRAME_MS) * FRAME_MS


def host_talk(
    total_ms: int, spans_ms: Sequence[tuple[int, int]], floor_dbm0: float | None = None
) -> NDArray[np.int16]:
    """What the fake host sends: voice-like noise in each [start, end) span, digital silence
    (or comfort noise at `floor_dbm0`) around it."""
    voice = white_noise(total_ms / 1000.0, TALK_DBM0, seed=7)
    out = np.zeros(total_ms * 8, np.int16)
    if floor_dbm0 is not None:
        out = white_noise(total_ms / 1000.0, floor_dbm0, seed=8)
    for start, end in spans_ms:
        out[start * 8 : end * 8] = voice[start * 8 : end * 8]
    return out


def drive(line: LineModel, tx: NDArray[np.int16]) -> NDArray[np.int16]:
    """Step `line` through `tx` (whole frames): what the host received."""
    assert tx.size % FRAME == 0
    return np.concatenate([line.step(tx[i : i + FRAME])[0] for i in range(0, tx.size, FRAME)])


def phone_up() -> LineModel:
    """An FXS phone off-hook from line ms 0: the call is up from the first frame."""
    line = LineModel(PortKind.FXS, echo=None, noise_dbm0=None)
    line.phone_off_hook()
    return line


def clip(ms: int, seed: int = 1) -> NDArray[np.int16]:
    return white_noise(ms / 1000.0, TALK_DBM0, seed=seed)


# --- wait_for_voice ----------------------------------------------------------------------


@pytest.mark.parametrize("onset_ms", [300, 305, 319, 320])
def test_wait_for_voice_goes_on_at_the_frame_after_min_ms_of_voice(onset_ms: int) -> None:
    line = phone_up()
    line.wait_for_voice(200.0)
    line.mark("heard")
    reply = clip(100)
    line.play(reply, "reply")
    rx = drive(line, host_talk(1200, [(onset_ms, 1200)]))
    met = onset_ms + 200.0
    go = frame_ceil(met)
    print(f"host talks from {onset_ms} ms: met at {met}, script went on at {line.marks}")
    assert line.host_waits == [HostWait("voice", 200.0, 10_000.0, 0.0, met, go, "met")]
    assert line.marks == [("heard", go)]
    assert line.played == [Played("reply", go, go + 100.0, go, go + 100.0)]
    at = int(go * 8)
    assert not rx[:at].any()
    assert np.array_equal(rx[at : at + reply.size], reply)  # the caller's reply, to the sample


def test_wait_for_voice_adds_up_voice_across_pauses_between_words() -> None:
    line = phone_up()
    line.wait_for_voice(200.0)
    line.wait_for_silence(300.0)
    drive(line, host_talk(1500, [(100, 200), (500, 650)]))
    voice, quiet = line.host_waits
    assert (voice.met_ms, voice.end_ms) == (600.0, 600.0)  # 100 + 100 ms of voice
    assert (quiet.start_ms, quiet.met_ms, quiet.end_ms) == (600.0, 950.0, 960.0)


# --- wait_for_silence --------------------------------------------------------------------


def test_wait_for_silence_wants_min_ms_of_unbroken_quiet_counted_from_its_start() -> None:
    line = phone_up()
    line.silence(200.0)  # the host is quiet meanwhile: that does not count
    line.wait_for_silence(500.0)
    line.mark("done")
    drive(line, host_talk(2000, [(200, 600), (900, 1000)]))  # a 300 ms pause inside
    assert line.host_waits == [HostWait("silence", 500.0, 10_000.0, 200.0, 1500.0, 1500.0, "met")]
    assert line.marks == [("done", 1500.0)]


def test_comfort_noise_is_silence_and_speech_level_is_voice() -> None:
    line = phone_up()
    line.wait_for_silence(400.0)
    line.wait_for_voice(100.0)
    drive(line, host_talk(1400, [(0, 300), (1000, 1400)], floor_dbm0=COMFORT_DBM0))
    assert [(w.kind, w.met_ms) for w in line.host_waits] == [("silence", 700.0), ("voice", 1100.0)]


# --- timeouts, the call --------------------------------------------------------------------


def test_host_waits_time_out_into_the_record_and_the_script_goes_on() -> None:
    line = phone_up()
    line.wait_for_voice(200.0, timeout_ms=1000.0)  # a mute agent
    line.mark("gave up waiting for voice")
    line.wait_for_silence(300.0, timeout_ms=710.0)  # an agent that never stops
    line.play(clip(40), "anyway")
    drive(line, host_talk(2400, [(1000, 2400)]))
    assert [(w.kind, w.met_ms, w.end_ms, w.outcome) for w in line.host_waits] == [
        ("voice", 1000.0, 1000.0, "timed_out"),
        ("silence", 1710.0, 1720.0, "timed_out"),
    ]
    assert line.marks == [("gave up waiting for voice", 1000.0)]
    assert line.played[0].start_ms == 1720.0


def test_host_waits_wait_for_the_answer_and_hear_only_what_reaches_the_line() -> None:
    line = LineModel(PortKind.FXO, echo=None, noise_dbm0=None)
    line.incoming_call(None)
    line.wait_for_voice(100.0, timeout_ms=500.0)
    drive(line, host_talk(3000, [(0, 3000)]))  # on-hook: the line carries none of it
    assert line.host_waits == []
    line.host_off_hook()
    drive(line, host_talk(1000, []))
    assert line.host_waits == [HostWait("voice", 100.0, 500.0, 3000.0, 3500.0, 3500.0,
                                        "timed_out")]  # fmt: skip


def test_a_call_ending_mid_play_or_mid_wait_records_the_cut() -> None:
    line = LineModel(PortKind.FXO, echo=None, noise_dbm0=None)
    line.incoming_call(None)
    line.play(clip(2000), "long")
    line.wait_for_voice(100.0)
    drive(line, host_talk(100, []))
    line.host_off_hook()
    drive(line, host_talk(1000, []))
    line.host_on_hook()
    assert line.played == [Played("long", 100.0, 1100.0, 100.0, 1100.0, cut=True)]
    assert line.script_empty
    line.incoming_call(None)
    line.wait_for_voice(100.0)
    line.host_off_hook()
    drive(line, host_talk(500, [(0, 40)]))
    line.host_on_hook()
    assert line.host_waits == [HostWait("voice", 100.0, 10_000.0, 1100.0, 1600.0, 1600.0, "cut")]
    assert line.state is LineState.IDLE


# --- marks and plays -----------------------------------------------------------------------


def test_marks_and_plays_are_logged_to_the_sample_with_their_voice() -> None:
    line = phone_up()
    spoken = np.zeros(1003, np.int16)
    spoken[80:800] = clip(90)  # voice from 10 ms to 100 ms into it
    line.mark("start")
    line.play(spoken, "a")
    line.mark("after a")
    line.press("5")
    line.mark("after 5")
    drive(line, host_talk(400, []))
    end_a = 1003 / 8
    assert line.marks == [("start", 0.0), ("after a", end_a), ("after 5", end_a + 200.0)]
    assert line.played == [
        Played("a", 0.0, end_a, 10.0, 100.0),
        Played("press 5", end_a, end_a + 100.0, end_a, end_a + 100.0),  # the tone, not the gap
    ]


def test_silence_and_waits_are_not_logged_and_unvoiced_audio_has_no_voice() -> None:
    line = phone_up()
    line.silence(50.0)
    line.wait(30.0)
    line.play(np.zeros(400, np.int16), "hush")
    drive(line, host_talk(200, []))
    assert line.played == [Played("hush", 80.0, 130.0, None, None)]


# --- the agent's start and stop at the line ------------------------------------------------


def test_host_voice_after_and_quiet_after_find_the_agent_to_the_ms() -> None:
    line = phone_up()
    spans = [(1234, 1500), (1550, 2345)]  # a 50 ms pause between words, then it stops
    drive(line, host_talk(3000, spans, floor_dbm0=COMFORT_DBM0))
    assert line.host_voice_after(1000.0) == 1234.0
    assert line.host_voice_after(1234.9) == 1234.0  # the ms that holds it
    assert line.host_voice_after(1500.0) == 1550.0
    assert line.host_quiet_after(1300.0) == 2345.0  # the pause is not the stop
    assert line.host_quiet_after(1300.0, quiet_ms=10.0) == 1500.0
    assert line.host_voice_after(2400.0) is None  # comfort noise only
    assert line.host_quiet_after(2900.0) is None  # quiet, but not for 200 ms yet
    assert line.host_quiet_after(0.0) == 0.0


def test_host_measurements_keep_line_time_when_the_tx_log_is_capped() -> None:
    line = LineModel(PortKind.FXS, echo=None, noise_dbm0=None, tx_log_frames=50)
    line.phone_off_hook()
    drive(line, host_talk(5000, [(4321, 4700)]))
    assert line.tx_log.size == 50 * FRAME
    assert line.host_voice_after(0.0) == 4321.0
    assert line.host_quiet_after(4400.0) == 4700.0


def test_first_run_and_voiced_ms_on_known_input() -> None:
    flags = np.array([0, 1, 1, 0, 1, 1, 1, 0], bool)
    assert first_run(flags, 0, 2, True) == 1
    assert first_run(flags, 2, 2, True) == 4
    assert first_run(flags, 0, 2.5, True) == 4  # rounded up to 3
    assert first_run(flags, 0, 4, True) is None
    assert first_run(flags, -5, 1, False) == 0
    assert first_run(flags, 8, 1, False) is None
    pcm = np.zeros(8 * 4 + 3, np.int16)
    pcm[8:16] = 90  # -45 dBm0 is 90.77 rms: just under
    pcm[16:24] = 91
    assert voiced_ms(pcm).tolist() == [False, False, True, False]


def test_bad_host_waits_and_plays_are_refused() -> None:
    line = phone_up()
    for bad in ({"min_ms": 0.0}, {"timeout_ms": -1.0}, {"timeout_ms": math.inf}):
        with pytest.raises(ValueError, match="wait_for_voice wants min_ms and timeout_ms > 0"):
            line.wait_for_voice(**bad)
    with pytest.raises(DspInputError, match=r"LineModel\.play wants a 1-D int16"):
        line.play(np.zeros(10, np.float32))
