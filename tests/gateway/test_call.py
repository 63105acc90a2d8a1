"""gateway.call end to end: one call on a simulated line (the caller's speech, the echo of what
the box sent through a G.168 hybrid, line noise, mu-law) against the local realtime server over
a real websocket (`tests/gateway/pipeline_rig.py`). Figures are printed (pytest -s)."""

from __future__ import annotations

import json

import numpy as np

from dsp.dtmf import generate as dtmf_generate
from firmware_bridge.sim.echo_paths import EchoPath
from gateway.call_config import GREETING, CallConfig
from gateway.realtime.local import Script
from tests.gateway.pipeline_rig import LOUD, loudest, pcm_of, pipeline_rig

SHORT = slice(640, 4800)  # 0.52 s of a prompt: a caller's short utterance


def exact_run(sent: np.ndarray, clip: np.ndarray, near: int) -> bool:
    """`clip` (past its first 100 ms) is in `sent` bit for bit, starting near `near`."""
    lead = int(np.flatnonzero(np.abs(clip) > LOUD)[0])
    piece = clip[lead + 800 :]
    return any(np.array_equal(sent[near + 800 + d : near + 800 + d + piece.size], piece)
               for d in range(-320, 321))  # fmt: skip


REPORT_KEYS = {"turn_latency_ms", "barge_in_stop_ms", "added_latency_ms", "erle_db",
               "frames_late", "transcript", "ended_by"}  # fmt: skip


async def test_a_full_turn_caller_speaks_agent_answers() -> None:
    async with pipeline_rig(Script(default=("anything_else",))) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        first = await rig.agent_talking()
        await rig.agent_done(first)
        sent = rig.port.sent_pcm()
    record = rig.record
    report = record.as_json()
    print(f"turn latency {record.turn_latency_ms} ms, added latency "
          f"{report['added_latency_ms']}, ERLE {record.erle_db} dB")  # fmt: skip
    answer = pcm_of("anything_else")
    lead = int(np.flatnonzero(np.abs(answer) > LOUD)[0])
    assert exact_run(sent, answer[: lead + 8000], first)  # the answer reached the line as it came
    assert len(record.turn_latency_ms) == 1
    assert 300.0 <= record.turn_latency_ms[0] <= 600.0  # the server's 300 ms of silence + ~1 frame
    assert [t.who for t in record.transcript] == ["caller", "agent"]
    assert record.transcript[1].text == "Is there anything else I can help you with?"
    assert record.ended_by == "caller hung up (phone on-hook)"
    assert record.barge_ins == {"paused": 0, "confirmed": 0, "resumed": 0, "cloud_only": 0}
    assert set(report) >= REPORT_KEYS
    assert set(report["added_latency_ms"]) == {"uplink_p50", "uplink_p99", "downlink_p50",
                                               "downlink_p99"}  # fmt: skip
    assert report["transcript"][1] == {"who": "agent", "text": record.transcript[1].text}
    assert json.loads(json.dumps(report)) == report
    assert record.frames == len(rig.port.sent)  # one frame sent per frame received


async def test_barge_in_during_a_long_answer_stops_the_agent_within_50_ms() -> None:
    script = Script.from_mapping({"turn": [{"turn": 1, "say": "order_shipped"}],
                                  "default": ["anything_else"]})  # fmt: skip
    async with pipeline_rig(script) as rig:
        await rig.connected()
        rig.say(pcm_of("sorry")[SHORT])
        first = await rig.agent_talking()
        answer = pcm_of("order_shipped")
        lead = int(np.flatnonzero(np.abs(answer) > LOUD)[0])  # the answer's first loud sample
        target = first + loudest(answer, 1.2, 2.5) - lead  # a loud moment of the answer
        onset = rig.port.say_at(pcm_of("booked")[SHORT], target + 160)
        await rig.until(lambda: bool(rig.session.received_of("conversation.item.truncate")))
        next_answer = await rig.agent_talking(onset + 8 * 200 - 160)
        # and the next answer is not cut off by its own echo (a canceller thrown off by the
        # caller's words over the agent must not make the box or the cloud hear a caller)
        await rig.until(lambda: len(rig.port.sent) * 160 > next_answer + 12000)
        sent = rig.port.sent_pcm()
        truncate = rig.session.received_of("conversation.item.truncate")[0]
    record = rig.record
    at = onset - 160  # the sent sample on the line at the onset
    heard = at - first + lead  # the answer's sample there
    assert np.array_equal(sent[at - 320 : at], answer[heard - 320 : heard])  # as it came
    assert np.abs(answer[heard : heard + 480]).max() > 1500  # and it would have gone on
    loud = np.flatnonzero(np.abs(sent[at:next_answer]) > LOUD)
    stop_ms = loud[-1] / 8 if loud.size else 0.0
    print(
        f"barge-in: agent stopped {stop_ms:.1f} ms after the caller's onset (the box's own "
        f"figure: {record.barge_in_stop_ms[0]:.1f} ms); truncated at "
        f"{truncate['audio_end_ms']} ms, next answer {(next_answer - at) / 8:.0f} ms later"
    )
    assert stop_ms <= 50.0
    assert abs(truncate["audio_end_ms"] - (at + loud[-1] - first + lead) / 8) <= 30  # played
    assert (next_answer - at) / 8 >= 500  # nothing of the cancelled answer in between
    assert exact_run(sent, pcm_of("anything_else")[:12000], next_answer)
    assert record.barge_ins == {"paused": 1, "confirmed": 1, "resumed": 0, "cloud_only": 0}
    assert len(record.barge_in_stop_ms) == 1
    assert record.barge_in_stop_ms[0] <= 50.0


async def test_the_agents_own_echo_never_triggers_a_barge_in() -> None:
    worst = EchoPath.g168(5, delay_ms=8.0, erl_db=6.0)  # the loudest echo G.168 allows
    script = Script(default=("greeting", "order_shipped"))
    async with pipeline_rig(script, greeting=GREETING, echo=worst) as rig:
        first = await rig.agent_talking()
        await rig.agent_done(first)
    record = rig.record
    print(f"agent alone over a 6 dB echo path: ERLE {record.erle_db} dB, "
          f"pauses {record.barge_ins['paused']}")  # fmt: skip
    assert record.barge_ins == {"paused": 0, "confirmed": 0, "resumed": 0, "cloud_only": 0}
    assert rig.session.sent_of("input_audio_buffer.speech_started") == []
    assert record.erle_db is not None
    assert record.erle_db >= 20.0
    assert record.transcript[0].who == "agent"


async def test_the_callers_digits_reach_the_agent_as_one_text_message() -> None:
    config = CallConfig(dtmf_gap_s=0.3)
    async with pipeline_rig(Script(default=("anything_else",)), config=config) as rig:
        await rig.connected()
        rig.say(np.concatenate([dtmf_generate("5#", level_dbm0=-12.0),
                                dtmf_generate("7", level_dbm0=-12.0)]))  # fmt: skip
        await rig.until(lambda: len(rig.session.item_texts()) >= 2)
        texts = rig.session.item_texts()
    record = rig.record
    assert texts == [("user", "[caller pressed 5#]"), ("user", "[caller pressed 7]")]
    assert record.dtmf == "5#7"
    assert rig.session.sent_of("input_audio_buffer.speech_started") == []  # the tones are muted
    assert record.barge_ins["paused"] == 0
