"""A hostile or broken server: whatever frames it sends in the middle of a reply (random JSON,
text that is not JSON, binary frames, deltas of several MB, audio that is not base64, unknown
types, known types with fields of the wrong type or missing, beta-era names), the session does
not crash, logs a line that names what was wrong, keeps playing the reply it was streaming and
answers the caller's next turn on the same connection. Frames come from the local server's
`Faults.inject`, right after the first audio delta of the first reply."""

from __future__ import annotations

import binascii
import json
import logging
import string
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.realtime import (
    AgentAudio,
    ResponseDone,
    SessionConnected,
    SessionLost,
)
from gateway.realtime import events as ev
from gateway.realtime.errors import MalformedEvent
from gateway.realtime.local import Faults
from gateway.realtime.websocket import MAX_MESSAGE_BYTES
from tests.gateway.realtime.rig import Rig, prompt_pcm, realtime_rig
from tests.gateway.realtime.test_schema import SERVER_SAMPLES, sample

AUDIO_DELTA = "response.output_audio.delta"
FAST = 100.0  # x real time: a reply streams in ~40 ms, the hostile frames land inside it


@dataclass(frozen=True)
class Hostile:
    """One frame and the fragment the client's log must then hold ("" if nothing is wrong
    with it from the client's side: a lean but usable event)."""

    frame: str | bytes
    expect: str

    def __repr__(self) -> str:  # several MB of frame would drown a failure report
        shown = self.frame if len(self.frame) <= 200 else f"<{len(self.frame)} chars/bytes>"
        return f"Hostile({shown!r}, expect={self.expect!r})"


def _oracle(frame: str | bytes) -> str:
    """What `events.parse` has to say about a frame of random content ("" if it parses)."""
    try:
        ev.parse(frame)
    except MalformedEvent as exc:
        return str(exc)
    return ""


# --- strategies -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip
# Known types a random event may take; `error` is left out (its codes decide fatal or not,
# tested on their own: a random one cannot end the session by accident here).
KNOWN = sorted(set(ev.HANDLED) - {"error"})


def _is(value: object, want: type) -> bool:
    return isinstance(value, want) and not (isinstance(value, bool) and want is not bool)


@st.composite
def random_json(draw: st.DrawFn) -> Hostile:
    """Any JSON value, or an object of a known or random type with random fields."""
    value = draw(
        json_values
        | st.builds(lambda kind, rest: {**rest, "type": kind},
                    st.sampled_from(KNOWN) | st.text(max_size=20),
                    st.dictionaries(st.text(max_size=10), json_values, max_size=4))
    )  # fmt: skip
    if isinstance(value, dict) and value.get("type") == "error":
        value["type"] = "tipring.not_error"
    frame = json.dumps(value)
    return Hostile(frame, _oracle(frame))


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


@st.composite
def cut_short(draw: st.DrawFn) -> str:
    """A valid event's frame cut before its end (every proper prefix of an object is broken)."""
    whole = json.dumps(sample(draw(st.sampled_from(sorted(SERVER_SAMPLES)))))
    return whole[: draw(st.integers(1, len(whole) - 1))]


not_json = st.one_of(st.text(min_size=1, max_size=200).filter(_not_json), cut_short()).map(
    lambda text: Hostile(text, "not JSON")
)

binary = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(sorted(SERVER_SAMPLES)).map(lambda k: json.dumps(sample(k)).encode()),
).map(lambda data: Hostile(data, "a binary frame"))

not_an_object = (
    json_values.filter(lambda v: not isinstance(v, dict))
    .map(json.dumps)
    .map(lambda text: Hostile(text, "not an object"))
)
no_type = st.builds(
    lambda fields, kind: json.dumps({**fields, **({} if kind is None else {"type": kind})}),
    st.dictionaries(st.text(max_size=10).filter(lambda k: k != "type"), json_values,
                    max_size=3),
    st.none() | json_values.filter(lambda v: v is not None and not isinstance(v, str)),
).map(lambda text: Hostile(text, "no string 'type'"))  # fmt: skip


@st.composite
def unknown_type(draw: st.DrawFn) -> Hostile:
    kind = draw(st.text(min_size=1, max_size=100).filter(lambda t: t not in ev.HANDLED))
    fields = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3))
    frame = json.dumps({**fields, "type": kind})
    return Hostile(frame, f"ignoring server event type {kind[: ev.MAX_TYPE_CHARS]!r}")


# Top-level fields the parsers type-check, and the type they want.
TYPED_FIELDS: dict[str, dict[str, type]] = {
    AUDIO_DELTA: {"delta": str, "item_id": str, "response_id": str},
    "response.output_audio_transcript.delta": {"delta": str, "item_id": str},
    "response.output_audio_transcript.done": {"transcript": str},
    "input_audio_buffer.speech_started": {"audio_start_ms": int, "item_id": str},
    "input_audio_buffer.speech_stopped": {"audio_end_ms": int},
    "conversation.item.truncated": {"audio_end_ms": int},
    "conversation.item.input_audio_transcription.completed": {"transcript": str},
    "response.created": {"response": dict},
    "response.done": {"response": dict},
    "response.output_item.added": {"item": dict},
    "response.function_call_arguments.done": {"call_id": str, "arguments": str},
    "rate_limits.updated": {"rate_limits": list},
    "session.updated": {"session": dict},
    "error": {"error": dict},
}


@st.composite
def wrong_field_type(draw: st.DrawFn) -> Hostile:
    kind = draw(st.sampled_from(sorted(TYPED_FIELDS)))
    key, want = draw(st.sampled_from(sorted(TYPED_FIELDS[kind].items(), key=str)))
    value = draw(json_values.filter(lambda v: v is not None and not _is(v, want)))
    event = {**_quiet_sample(kind), key: value}
    return Hostile(json.dumps(event), f"server event {kind}: '{key}' is {type(value).__name__}")


REQUIRED = {(AUDIO_DELTA, "delta"), ("response.function_call_arguments.done", "call_id")}


@st.composite
def missing_field(draw: st.DrawFn) -> Hostile:
    """A sample without one of its fields: required ones are named, the rest are lean events
    (Inworld leaves ids and offsets out) and must simply be taken."""
    kind = draw(st.sampled_from(sorted(SERVER_SAMPLES)))
    event = _quiet_sample(kind)
    keys = sorted(k for k in event if k != "type")
    if not keys:
        return Hostile(json.dumps(event), "")
    key = draw(st.sampled_from(keys))
    del event[key]
    expect = f"server event {kind}: '{key}' is missing" if (kind, key) in REQUIRED else ""
    return Hostile(json.dumps(event), expect)


def _quiet_sample(kind: str) -> dict[str, Any]:
    """A valid sample that cannot end the session: its error answers no event of ours."""
    event = sample(kind)
    if kind == "error":
        event["error"] = {k: v for k, v in event["error"].items() if k != "event_id"}
    return event


huge_delta = st.integers(2_000_000, 6_000_000).map(
    lambda n: Hostile(json.dumps({**sample(AUDIO_DELTA), "delta": "A" * (n - n % 4)}),
                      "delta is over 60 s of audio")
)  # fmt: skip


def _bad_base64(text: str) -> bool:
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return True
    return False


bad_base64 = (
    st.text(alphabet=string.ascii_letters + string.digits + "+/=-_ .!\n\u00e9", min_size=1,
            max_size=64)
    .filter(_bad_base64)
    .map(lambda text: Hostile(json.dumps({**sample(AUDIO_DELTA), "delta": text}),
                              "audio is not valid base64"))
)  # fmt: skip
beta_named = st.sampled_from(sorted(ev.BETA_ALIASES)).map(
    lambda beta: Hostile(json.dumps({**sample(ev.BETA_ALIASES[beta]), "type": beta}),
                         "the server uses beta event names")
)  # fmt: skip

hostile = st.one_of(
    random_json(),
    not_json,
    binary,
    not_an_object,
    no_type,
    unknown_type(),
    wrong_field_type(),
    missing_field(),
    huge_delta,
    bad_base64,
    beta_named,
)


# --- the tests --------------------------------------------------------------------------------


async def _turn_is_played_whole(rig: Rig, prompt: str) -> None:
    """The caller speaks; the server's own reply (ids `resp_0...`: no hostile frame uses them)
    completes, and its audio arrived whole, bit for bit."""
    await rig.speak("goodbye")
    done = await rig.next(ResponseDone, where=lambda e: e.response_id.startswith("resp_0"))
    assert (done.status, done.reason) == ("completed", "")
    items = {a.item_id for a in rig.of(AgentAudio) if a.response_id == done.response_id}
    assert len(items) == 1, items
    assert (rig.audio(items.pop()) == prompt_pcm(rig.server, prompt)).all()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(frames=st.lists(hostile, min_size=1, max_size=5))
async def test_hostile_frames_mid_reply_are_logged_and_the_call_goes_on(
    frames: list[Hostile], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    faults = Faults(audio_speed=FAST, inject=tuple(h.frame for h in frames),
                    inject_after=AUDIO_DELTA)  # fmt: skip
    async with realtime_rig(faults=faults) as rig:
        await _turn_is_played_whole(rig, "greeting")
        assert len(rig.server.sessions[0].sent_of(AUDIO_DELTA)) > 1  # frames came mid-reply
        await _turn_is_played_whole(rig, "anything_else")
        assert rig.of(SessionLost) == []
        assert rig.session.stats.connects == 1
    for h in frames:
        assert h.expect in caplog.text, h
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_server_speaking_beta_names_is_understood_and_named_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    async with realtime_rig(faults=Faults(audio_speed=FAST, beta_names=True)) as rig:
        await _turn_is_played_whole(rig, "greeting")
        sent = {e["type"] for e in rig.server.sessions[0].sent}
        assert {"response.audio.delta", "response.audio_transcript.done"} <= sent
        assert AUDIO_DELTA not in sent
        assert rig.session.stats.malformed == 0
    lines = [r.getMessage() for r in caplog.records if "beta event names" in r.getMessage()]
    assert lines == ["realtime #1: the server uses beta event names (response.audio.delta for "
                     "response.output_audio.delta); taken as their GA names"]  # fmt: skip


async def test_garbage_before_session_updated_does_not_stop_the_set_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    garbage = ("{not json", b"\x00\x01binary", "[1, 2]", '{"type": 7}')
    faults = Faults(audio_speed=FAST, inject=garbage, inject_after="session.created")
    async with realtime_rig(faults=faults) as rig:
        await _turn_is_played_whole(rig, "greeting")
        assert rig.session.stats.connects == 1
    for fragment in ("not JSON", "a binary frame (8 bytes)", "a JSON list, not an object",
                     "no string 'type' (got int)"):  # fmt: skip
        assert fragment in caplog.text


async def test_a_frame_over_the_message_limit_ends_the_connection_and_the_call_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    monster = json.dumps({**sample(AUDIO_DELTA), "delta": "A" * (MAX_MESSAGE_BYTES + 4)})
    faults = Faults(audio_speed=FAST, inject=(monster,), inject_after=AUDIO_DELTA,
                    first_connections=1)  # fmt: skip
    async with realtime_rig(faults=faults) as rig:
        await rig.speak("goodbye")
        lost = await rig.next(SessionLost)
        assert lost.retrying
        assert "1009" in lost.reason
        assert (await rig.next(SessionConnected)).connects == 2
        await _turn_is_played_whole(rig, "greeting")  # the new session's first reply
    assert ("connection lost: a message over the size limit closed the socket: 1009 "
            "MESSAGE_TOO_BIG") in caplog.text  # fmt: skip
