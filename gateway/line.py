"""`gateway.line`: one actor per telephone port, between the port (`firmware_bridge.port.LinePort`)
and the calls on it. Owns the hook, ring, caller ID, digit and hang-up state machines; starts
each call through a `CallStarter` (the call pipeline) and ends it when the line hangs up.

Who talks to it: the app builds one with `line_actor(port, config, starter)` per port and runs
it (`await nursery.start(line.run)`), supervised like the link; the console calls
`place_call` and `end_call`. The pieces:

- `gateway.line_call`: the call-starter Protocol and what a call gets (`CallSpec`,
  `CallLine`, `HangupWatch`), outbound requests (`OutboundCall`, `DialResult`);
- `gateway.line_fxo` (`FxoLine`: the box on a PSTN line; it places calls with
  `gateway.line_fxo_dial`, its states in `gateway.line_fxo_state`) and `gateway.line_fxs`
  (`FxsLine`: a phone plugged into the box), both on `gateway.line_base.LineActor` (its
  running call: `gateway.line_running`);
- `gateway.line_config` (`LineConfig.from_config`) and `gateway.line_rules` (caller rules,
  business hours, dial plan); `gateway.line_progress` (tone or voice while a call rings out).
"""

from __future__ import annotations

import numpy as np

from dsp.callerid import CallerIdDecoder
from dsp.dtmf import DtmfDetector
from dsp.frame import FRAME_SAMPLES
from dsp.levels import LevelMeter
from dsp.tones import ToneDetector, ToneGenerator
from firmware_bridge.port import LinePort, PortKind
from gateway.line_base import LineActor, LineStats, WallClock, utc_now
from gateway.line_call import (
    CALL_CLEANUP_S,
    CallLine,
    CallSignal,
    CallSpec,
    CallStarter,
    DialOutcome,
    DialResult,
    HangupWatch,
    OutboundCall,
)
from gateway.line_config import FxoConfig, FxsConfig, LineConfig
from gateway.line_fxo import FxoLine, FxoState
from gateway.line_fxs import FxsLine, FxsState
from gateway.line_rules import CallerRule, DialRule

__all__ = [
    "CALL_CLEANUP_S",
    "CallLine",
    "CallSignal",
    "CallSpec",
    "CallStarter",
    "CallerRule",
    "DialOutcome",
    "DialResult",
    "DialRule",
    "FxoConfig",
    "FxoLine",
    "FxoState",
    "FxsConfig",
    "FxsLine",
    "FxsState",
    "HangupWatch",
    "LineActor",
    "LineConfig",
    "LineStats",
    "OutboundCall",
    "line_actor",
    "warm_line_kernels",
]


def line_actor(port: LinePort, config: LineConfig, starter: CallStarter,
               *, wall_clock: WallClock = utc_now) -> FxoLine | FxsLine:  # fmt: skip
    """The line actor for `port`, by its kind, with `config.for_port(port.port)`. `wall_clock`
    (timezone-aware now) is what the FXO business hours are read against."""
    if port.kind is PortKind.FXO:
        return FxoLine(port, config, starter, wall_clock=wall_clock)
    return FxsLine(port, config, starter, wall_clock=wall_clock)


def warm_line_kernels() -> None:
    """Compile (or load from numba's cache) the kernels a line runs per frame, so that no
    line stalls the event loop compiling once audio flows; the app calls it before ready."""
    pcm = np.zeros(FRAME_SAMPLES, np.int16)
    CallerIdDecoder().feed(pcm)
    ToneDetector().feed(pcm)
    DtmfDetector().feed(pcm)
    LevelMeter().process(pcm)
    ToneGenerator("us", "dial").frame()
