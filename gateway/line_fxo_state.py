"""The states and timers of the FXO line actor (`FxoState`, `FxoTimer`): the names that its state
machine (`gateway.line_fxo`, with the diagram) and its outgoing calls (`gateway.line_fxo_dial`)
share. Import them from `gateway.line_fxo` or `gateway.line`.
"""

from __future__ import annotations

from enum import StrEnum


class FxoState(StrEnum):
    DOWN = "down"  # no PortReady since start or PortLost
    IDLE = "idle"  # on-hook, quiet
    RINGING = "ringing"  # counting rings, reading caller ID
    LETTING_RING = "letting_ring"  # not answering this one: until the ringing stops
    MESSAGE = "message"  # not answering this one: off-hook for a local message, then on-hook
    SEIZED = "seized"  # placing a call: off-hook, waiting for dial tone
    DIALING = "dialing"  # the port sends the digits
    PROGRESS = "progress"  # listening for ringback, busy, the answer
    CONNECTED = "connected"  # a call runs
    EMERGENCY = "emergency"  # a phone's emergency call (gateway.emergency): ends on loop drop


class FxoTimer(StrEnum):
    RING_GAP = "ring_gap"  # RINGING / LETTING_RING: the caller gave up
    CALLERID = "callerid"  # RINGING, answering on ring 1: stop waiting for caller ID
    DIAL_TONE = "dial_tone"  # SEIZED: dial (blind) or give up
    NO_ANSWER = "no_answer"  # PROGRESS
    RINGBACK_GONE = "ringback_gone"  # PROGRESS: ringback heard, then stopped: answered
    SILENCE = "silence"  # CONNECTED: pushed on by every frame above silence_dbm0
    MESSAGE_END = "message_end"  # MESSAGE: the message has played: on-hook
