"""The end of a warm transfer to a phone of the box, on the call's side (`gateway.call.Call`;
`gateway.handoff` rings the phone, `gateway.call_control.CallActions.warm_transfer` runs it):

1. `consult(phone)`: the caller waits in silence (their frames are answered with silence and
   go nowhere: not to the agent, no barge-in), while the call's frame step runs on the
   phone's line instead: the person who picked up hears the agent and the agent hears them;
2. `bridge(phone, ended_by)`: the agent goes and the caller's line and the phone's are
   bridged (`gateway.port_bridge`) until either side hangs up; the call then ends.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

import trio

from firmware_bridge.port import AudioFrame
from gateway.line_call import CALL_FRAMES_BUFFER, CallLine
from gateway.port_bridge import SILENCE, bridge_lines

if TYPE_CHECKING:
    from gateway.call import Call


class Handover:
    """See the module docstring. One per call, used at most once."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self._consult = trio.CancelScope()

    def consult(self, phone: CallLine, nursery: trio.Nursery) -> None:
        """From now on the call talks to `phone`; the caller waits (see the module
        docstring). The phone's frames are read in `nursery` (the call's)."""
        call = self._call
        call.relay = self._hold
        call.audio.port = phone.port
        call.timeline.note(trio.current_time(), f"the caller waits; line {phone.port.port}")
        nursery.start_soon(self._step_phone, phone)

    async def bridge(self, phone: CallLine, ended_by: str) -> None:
        """The agent goes; caller and phone hear each other until one hangs up; the call
        ends with `ended_by`."""
        call = self._call
        self._consult.cancel(reason="bridged")
        call.drop_agent(ended_by, f"handed over to line {phone.port.port}")
        call.audio.port = call.line.port
        send, frames = trio.open_memory_channel[AudioFrame](CALL_FRAMES_BUFFER)

        def relay(frame: AudioFrame) -> None:
            with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                send.send_nowait(frame)

        call.relay = relay
        await bridge_lines(replace(call.line, frames=frames), phone)
        call.end(ended_by)

    def _hold(self, frame: AudioFrame) -> None:
        self._call.line.port.send_audio(SILENCE)

    async def _step_phone(self, phone: CallLine) -> None:
        call = self._call
        with self._consult:
            async for frame in phone.frames:
                call.audio.step(frame, trio.current_time())  # (its keys are not the caller's)
