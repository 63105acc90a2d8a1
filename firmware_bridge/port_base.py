"""What every `LinePort` implementation shares: `PortChannels`, its two receive channels.

`firmware_bridge.adapter_port.AdapterPort` and `firmware_bridge.modem.VoiceModem` subclass it:
it opens the events and frames channels, answers the `LinePort` properties, and hands events
and frames on without ever blocking the device's reader (a full channel drops and counts).
"""

from __future__ import annotations

import logging

import trio

from firmware_bridge.port import AudioFrame, LineEvent, PortKind, PortLost, PortReady

log = logging.getLogger(__name__)

EVENTS_BUFFER = 64  # line events are rare; a burst after a reconnect fits many times over
FRAMES_BUFFER = 16  # 320 ms: the call's uplink takes each frame at once; a stalled one drops


class PortChannels:
    """Port `port` of `kind` on `device`: its `events` and `frames` receive channels."""

    def __init__(self, device: str, port: int, kind: PortKind) -> None:
        self.device = device
        self._port, self._kind = port, kind
        self._events_send, self._events_recv = trio.open_memory_channel[LineEvent](EVENTS_BUFFER)
        self._frames_send, self._frames_recv = trio.open_memory_channel[AudioFrame](FRAMES_BUFFER)
        self.events_dropped = 0  # nobody read events: the channel was full or closed
        self.frames_dropped = 0  # received frames nobody took
        self.last_ready: PortReady | None = None  # the last PortReady, until a PortLost

    @property
    def port(self) -> int:
        return self._port

    @property
    def kind(self) -> PortKind:
        return self._kind

    @property
    def events(self) -> trio.MemoryReceiveChannel[LineEvent]:
        return self._events_recv

    @property
    def frames(self) -> trio.MemoryReceiveChannel[AudioFrame]:
        return self._frames_recv

    def _emit(self, event: LineEvent) -> None:
        if isinstance(event, PortReady):
            self.last_ready = event
        elif isinstance(event, PortLost):
            self.last_ready = None
        try:
            self._events_send.send_nowait(event)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.events_dropped += 1
            log.warning("%s port %d: event %r dropped: nobody reads events", self.device,
                        self._port, event)  # fmt: skip

    def _deliver(self, frame: AudioFrame) -> None:
        try:
            self._frames_send.send_nowait(frame)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.frames_dropped += 1

    def _close_channels(self) -> None:
        """The device's actor is ending: the receive channels see end of stream."""
        self._events_send.close()
        self._frames_send.close()
