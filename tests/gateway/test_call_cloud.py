"""gateway.call when the cloud goes away: hold beeps while the session reconnects, then the
call goes on; past the hold timeout (or when the session cannot start) the fallback prompt, a
voicemail saved on the box, a goodbye and the end of the call. Real websocket, real clock."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from dsp.frame import RATE_HZ
from gateway.call_config import CallConfig
from gateway.call_fallback import load_prompts
from gateway.realtime.local import Faults, Script
from tests.gateway.pipeline_rig import FAST, LOUD, pcm_of, pipeline_rig

SHORT = slice(640, 4800)
DROP = Faults(audio_speed=20.0, disconnect_after_s=0.4, first_connections=1)
REFUSE = Faults(audio_speed=20.0, reject_status=503)  # the server is down: retry later


def short_prompts() -> dict[str, np.ndarray]:
    """The fallback's prompts cut to 0.5 s each: the sequence, not the words, is under test."""
    shipped = load_prompts()
    return {"sorry": shipped["sorry"][:4000], "goodbye": shipped["goodbye"][:4000]}


def peak_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * RATE_HZ / pcm.size)


async def test_a_dropped_cloud_gets_hold_beeps_then_the_call_goes_on() -> None:
    async with pipeline_rig(Script(default=("anything_else",)), DROP) as rig:
        await rig.connected()
        rig.local.faults = REFUSE
        await rig.until(lambda: rig.session.closed != "")
        dropped = len(rig.port.sent) * 160
        await rig.until(lambda: len(rig.port.sent) * 160 > dropped + int(1.0 * RATE_HZ))
        rig.local.faults = FAST
        await rig.until(lambda: any(s.sent_of("session.updated") for s in rig.local.sessions[1:]))
        back = len(rig.port.sent) * 160
        rig.say(pcm_of("sorry")[SHORT])
        first = await rig.agent_talking(back)
        await rig.until(lambda: bool(rig.local.sessions[-1].sent_of("response.done")))
        sent = rig.port.sent_pcm()
    record = rig.record
    hold = sent[dropped:back]
    beeps = np.flatnonzero(np.abs(hold) > LOUD)
    print(f"cloud away {(back - dropped) / 8:.0f} ms: beeps from {beeps[0] / 8:.0f} ms, "
          f"reconnects {record.reconnects}; answer {(first - back) / 8:.0f} ms after")  # fmt: skip
    assert beeps.size
    assert 400 <= beeps[0] / 8 <= 700
    assert abs(peak_hz(hold[beeps[0] : beeps[0] + 1600]) - 440.0) < 10.0
    assert record.reconnects == 1
    assert record.ended_by == "caller hung up (phone on-hook)"
    assert [t.who for t in record.transcript] == ["caller", "agent"]  # the call went on


async def test_a_dead_cloud_gets_the_fallback_and_a_voicemail_then_the_call_ends(
    tmp_path: Path,
) -> None:
    config = CallConfig(hold_timeout_s=0.8, voicemail_dir=tmp_path, voicemail_silence_s=1.0)
    prompts = short_prompts()
    async with pipeline_rig(Script(), DROP, config=config, prompts=prompts) as rig:
        await rig.connected()
        rig.local.faults = REFUSE
        await rig.until(lambda: rig.session.closed != "")
        dropped = len(rig.port.sent) * 160
        message = pcm_of("booked")[:8000]
        fallback_s = (prompts["sorry"].size + 3200) / RATE_HZ  # the prompt and the beep
        rig.port.say_at(message, dropped + int((0.8 + fallback_s + 0.3) * RATE_HZ))
        await rig.until(rig.done.is_set)
    record = rig.record
    print(f"voicemail: {record.voicemail}; {record.ended_by}; {record.timeline}")
    assert record.ended_by == "cloud unavailable"
    assert record.voicemail == str(tmp_path / "call-1.wav")
    with wave.open(record.voicemail, "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)
        saved = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert 1.2 <= saved.size / RATE_HZ <= 2.5  # the message and the silence that ended it
    loud = np.flatnonzero(np.abs(saved) > LOUD)
    assert loud.size
    assert (loud[-1] - loud[0]) / RATE_HZ >= 0.6
    ended_s = record.timeline[-1][0]
    assert ended_s <= 0.4 + 0.8 + 0.5 + 0.4 + 1.0 + 1.0 + 0.5 + 0.5  # no more than it takes


async def test_a_cloud_that_refuses_the_call_gets_the_fallback_at_once() -> None:
    refused = Faults(audio_speed=20.0, reject_status=401)  # the key is refused: no retry
    async with pipeline_rig(Script(), refused, prompts=short_prompts()) as rig:
        await rig.until(rig.done.is_set)
    record = rig.record
    assert record.ended_by == "cloud unavailable"
    assert record.voicemail is None  # no voicemail directory: the prompt and goodbye only
    assert any("HTTP 401" in what for _, what in record.timeline)
    assert record.timeline[-1][0] < 2.0  # the prompt and the goodbye, 0.5 s each
