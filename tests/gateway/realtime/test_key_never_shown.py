"""The API key never shows: a whole session (turns, a barge-in truncate, a tool call, a
reconnect, a server that echoes the key back) logged at DEBUG on every logger, and the fatal
ends (a refused key, an `invalid_api_key` error), with the key read from a file and from an
environment variable. Every log record (message, arguments, exception text and traceback),
every exception raised and every repr/str of the objects around the key is searched for it.
"""

from __future__ import annotations

import json
import logging
import secrets
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import pytest
import trio

from gateway.errors import ConfigError
from gateway.realtime import (
    AgentAudio,
    ApiKey,
    FunctionCallRequested,
    RealtimeSettings,
    ResponseDone,
    SessionConnected,
    SessionFailed,
    SessionLost,
    Transcription,
    load_api_key,
)
from gateway.realtime.local import Faults, Script
from gateway.realtime.profiles import profile_of
from tests.gateway.realtime.rig import WAIT_S, prompt_pcm, realtime_rig

E = TypeVar("E", bound=BaseException)
KEY_ENV = "TIPRING_TEST_REALTIME_KEY"
SCRIPT = Script.from_mapping({"turn": [
    {"turn": 1, "say": "greeting", "caller": "Hello?"},
    {"turn": 2, "call": "lookup_order", "arguments": {"order_id": "7"},
     "then_say": "order_shipped"},
]})  # fmt: skip


@dataclass(frozen=True)
class KeySource:
    settings: RealtimeSettings
    key: ApiKey
    value: str


@pytest.fixture(params=["file", "env"])
def key_source(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> KeySource:  # fmt: skip
    """A fresh key, from a 0600 file or from an environment variable."""
    value = f"sk-proj-{request.param}-{secrets.token_urlsafe(32)}"
    if request.param == "file":
        path = tmp_path / "realtime.key"
        path.write_text(value + "\n", encoding="ascii")
        path.chmod(0o600)
        settings = RealtimeSettings(provider="local", api_key_file=str(path))
    else:
        monkeypatch.setenv(KEY_ENV, value)
        settings = RealtimeSettings(provider="local", api_key_env=KEY_ENV)
    key = load_api_key(settings)
    assert key is not None
    assert key.reveal() == value  # the key really is the one we look for
    return KeySource(settings, key, value)


@pytest.fixture
def debug_everywhere(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, every record into `caplog` (also from non-propagating loggers)."""
    loggers = [lg for lg in logging.root.manager.loggerDict.values()
               if isinstance(lg, logging.Logger)]  # fmt: skip
    levels = {lg: lg.level for lg in loggers}
    islands = [lg for lg in loggers if not lg.propagate]
    caplog.set_level(logging.DEBUG)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    for lg in islands:
        lg.addHandler(caplog.handler)
    yield caplog
    for lg in islands:
        lg.removeHandler(caplog.handler)
    for lg, level in levels.items():
        lg.setLevel(level)


def record_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Everything a log handler could write of each record."""
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), str(record.msg), repr(record.args), repr(record.__dict__)]
        if record.exc_info and record.exc_info[1] is not None:
            texts.append("".join(traceback.format_exception(record.exc_info[1])))
        texts += [record.exc_text or "", record.stack_info or ""]
    return texts


def leaves(group: BaseExceptionGroup[BaseException], kind: type[E]) -> list[E]:
    """The `kind` exceptions at any depth of a (trio nursery's nested) group."""
    found = group.split(kind)[0]
    out: list[E] = []
    pending: list[BaseException] = [] if found is None else [found]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        elif isinstance(exc, kind):
            out.append(exc)
    return out


def exception_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def assert_hidden(value: str, texts: list[str]) -> None:
    leaks = [t[max(0, t.find(value) - 80) : t.find(value) + 80] for t in texts if value in t]
    assert not leaks, f"the API key shows in {len(leaks)} place(s): {leaks[:3]}"


def error_event(code: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                  "code": code, "message": message}})  # fmt: skip


async def test_a_whole_session_never_shows_the_key(
    key_source: KeySource, debug_everywhere: pytest.LogCaptureFixture
) -> None:
    value = key_source.value
    settings = replace(key_source.settings, transcription=Transcription("whisper-1"))
    # With the tool call of turn 2: the server echoes the key in an error and as an event
    # type, then expires the session; the call's output goes to the next session.
    echoes = (
        error_event("invalid_value", f"Incorrect API key provided: {value}."),
        json.dumps({"type": value}),
        error_event("session_expired", "Your session hit the maximum duration of 60 minutes."),
    )
    faults = Faults(audio_speed=4.0, first_connections=1, inject=echoes,
                    inject_after="response.function_call_arguments.done")  # fmt: skip
    async with realtime_rig(settings, key=key_source.key, script=SCRIPT, faults=faults) as rig:
        await rig.speak("sorry")
        first = await rig.next(AgentAudio)
        await rig.session.cancel_response()  # the caller barges in
        await rig.session.truncate(first.item_id, 60.0)
        assert (await rig.next(ResponseDone)).status == "cancelled"
        await rig.speak("sorry")
        call = await rig.next(FunctionCallRequested)
        lost = await rig.next(SessionLost)
        assert lost.retrying
        assert (await rig.next(SessionConnected)).connects == 2
        await rig.session.send_function_output(call.call_id, '{"status": "shipped"}')
        follow = await rig.next(ResponseDone)
        follow_item = next(a.item_id for a in rig.of(AgentAudio)
                           if a.response_id == follow.response_id)  # fmt: skip
        assert (rig.audio(follow_item) == prompt_pcm(rig.server, "order_shipped")).all()
        records = rig.server.sessions
        assert [r.auth_scheme for r in records] == ["Bearer", "Bearer"]  # the key was sent
        assert records[0].truncations == [(first.item_id, 60)]
        shown = [repr(settings), str(settings), repr(key_source.key), str(key_source.key),
                 f"{key_source.key}", repr(profile_of(settings)), repr(rig.session),
                 repr(rig.session.stats), repr(records), repr(rig.seen)]  # fmt: skip
    assert_hidden(value, shown + record_texts(debug_everywhere))
    # The echoes arrived, and were cut out before anything logged them.
    log = debug_everywhere.text
    assert "Incorrect API key provided: <redacted key>." in log
    assert "ignoring server event type '<redacted key>'" in log
    assert len(debug_everywhere.records) > 100  # DEBUG really was on
    assert {"trio-websocket", "gateway.realtime.dispatch"} <= {
        r.name for r in debug_everywhere.records
    }


async def test_a_refused_key_and_an_echoed_invalid_key_error_end_the_session_unshown(
    key_source: KeySource, debug_everywhere: pytest.LogCaptureFixture
) -> None:
    value = key_source.value
    echoed = error_event("invalid_api_key", f"Incorrect API key provided: {value}.")
    ends = [
        Faults(audio_speed=50.0, reject_status=401),  # refused at the websocket upgrade
        Faults(audio_speed=50.0, inject=(echoed,)),  # accepted, then a fatal error
    ]
    failures: list[SessionFailed] = []
    for faults in ends:
        with (
            trio.fail_after(WAIT_S),
            pytest.RaisesGroup(SessionFailed, flatten_subgroups=True) as caught,
        ):
            async with realtime_rig(key_source.settings, key=key_source.key,
                                    faults=faults) as rig:  # fmt: skip
                await rig.next(SessionLost)
                await trio.sleep_forever()  # run() raises: the rig ends with it
        assert_hidden(value, exception_texts(caught.value))
        failures += leaves(caught.value, SessionFailed)
    assert [f.code for f in failures] == ["http_401", "invalid_api_key"]
    assert "Incorrect API key provided: <redacted key>." in failures[1].reason
    texts = [t for f in failures for t in exception_texts(f)]
    assert_hidden(value, texts + record_texts(debug_everywhere))


def test_key_errors_name_the_source_never_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = f"sk-proj-{secrets.token_urlsafe(32)}"
    path = tmp_path / "realtime.key"
    path.write_text(value, encoding="ascii")
    path.chmod(0o644)  # others can read it: refused
    monkeypatch.delenv(KEY_ENV, raising=False)
    texts: list[str] = []
    for settings in (RealtimeSettings(provider="openai", api_key_file=str(path)),
                     RealtimeSettings(provider="openai", api_key_env=KEY_ENV)):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            load_api_key(settings)
        texts += exception_texts(caught.value)
    path.chmod(0o600)
    path.write_text(value[:10] + " " + value[10:], encoding="ascii")  # a key with a space
    with pytest.raises(ConfigError) as caught:
        load_api_key(RealtimeSettings(provider="openai", api_key_file=str(path)))
    texts += exception_texts(caught.value)
    assert_hidden(value, texts)
    assert_hidden(value[10:], texts)
    assert str(path) in texts[0]
    assert KEY_ENV in texts[3]
