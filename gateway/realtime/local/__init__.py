"""The local realtime server: the OpenAI Realtime GA schema from the server side, on loopback.

`LocalRealtimeServer` (server), `Faults` and `InjectedError` (faults), `Script` (script),
`SessionRecord` (record). Its parts: `session` (one connection), `config` (session.update),
`items` (conversation items, truncation), `responses` (streaming replies), `vad` (energy VAD),
`prompts` (the bundled mu-law prompts, made once by `make_prompts.sh`), `server_events`.
"""

from gateway.realtime.local.faults import Faults, InjectedError
from gateway.realtime.local.record import SessionRecord
from gateway.realtime.local.script import Script, Turn
from gateway.realtime.local.server import LocalRealtimeServer

__all__ = ["Faults", "InjectedError", "LocalRealtimeServer", "Script", "SessionRecord", "Turn"]
