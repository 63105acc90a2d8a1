"""Ringing and caller ID of the voice modem as line events: `RingReporter`.

`firmware_bridge.modem.VoiceModem` owns one per connection and hands it the unsolicited lines
its `AtChannel` reader routes to it (`RING`, `DATE`/`TIME`/`NMBR`/`NAME`/...). A modem reports
only the start of a ring burst, so `RingStopped` is synthesised: `RING_ON_S` after the RING, at
the first caller ID line (the FSK is sent in the silent interval, GR-30-CORE, and printed once
decoded), at the next RING, or when the call is answered. Caller ID lines become one
`CallerIdReported` when NAME arrives, `CID_COMPLETE_S` after the last line, or at the next RING
(a partial delivery: UK caller ID has no NAME). Timers run in the connection's nursery.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from firmware_bridge.modem_events import CallerIdLines
from firmware_bridge.port import CallerIdReported, LineEvent, RingStarted, RingStopped

RING_ON_S = 2.0  # GR-506 US ringing is 2 s on; a modem reports only the start (RING)
CID_COMPLETE_S = 1.0  # caller ID lines come back to back; 1 s after the last, it is all there


class RingReporter:
    """RING and caller ID lines of one connection -> `RingStarted`, `RingStopped`,
    `CallerIdReported` for `port`, passed to `emit` (which must not block)."""

    def __init__(self, port: int, emit: Callable[[LineEvent], None], nursery: trio.Nursery):
        self._port, self._emit, self._nursery = port, emit, nursery
        self._cid = CallerIdLines()
        self._ring_id = self._cid_gen = 0
        self._ring_on = False

    def on_line(self, text: str) -> None:
        """One unsolicited line: RING (or `RING A`, distinctive ring) or a caller ID line."""
        if text.startswith("RING"):
            self._ring()
            return
        self.end_ring()  # caller ID is sent between rings: this burst is over
        if self._cid.add(text):
            self._flush_cid()
        else:
            self._cid_gen += 1
            self._nursery.start_soon(self._cid_timeout, self._cid_gen)

    def end_ring(self) -> None:
        """The ring burst is over (or the call was answered): `RingStopped` if it was on."""
        self._ring_id += 1
        if self._ring_on:
            self._ring_on = False
            self._emit(RingStopped(self._port))

    def _ring(self) -> None:
        if self._cid.pending:
            self._flush_cid()  # the next RING completes a partial caller ID (UK: before ring 1)
        self.end_ring()
        self._ring_on = True
        self._emit(RingStarted(self._port))
        self._nursery.start_soon(self._ring_timeout, self._ring_id)

    async def _ring_timeout(self, ring_id: int) -> None:
        await trio.sleep(RING_ON_S)
        if ring_id == self._ring_id:
            self.end_ring()

    async def _cid_timeout(self, generation: int) -> None:
        await trio.sleep(CID_COMPLETE_S)
        if generation == self._cid_gen:
            self._flush_cid()

    def _flush_cid(self) -> None:
        self._cid_gen += 1
        callerid = self._cid.take()
        if callerid is not None:
            self._emit(CallerIdReported(self._port, callerid))
