"""What the call does with the line signals `dsp.line_signals` recognises (#8):

- a fax (CNG, CED) or a modem answer tone: with `call.fax_action = "hang_up"` the call ends at
  once (`hangup_signal` "fax" or "modem" in the record) and its cloud session with it; with
  `call.cloud_delay_s` set, a fax that announces itself within that time never gets a session;
- call waiting (SAS, or the CAS before a caller ID on call waiting): the agent is told, so it
  can tell the caller, without answering it; after a CAS, who is waiting when the line sent
  the caller ID (`gateway.call_cwid`: the frame step acknowledged the CAS and decoded it);
- an answering machine's beep on a call the box placed: the agent is told to leave its
  message now (on an inbound call a beep means nothing and is only noted).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from dsp.line_signals import LineSignal
from gateway.call_cwid import CALL_WAITING_NOTE, waiting_note

if TYPE_CHECKING:
    from gateway.call import Call

__all__ = ["BEEP_NOTE", "CALL_WAITING_NOTE", "dispatch_heard", "on_line_signal"]

log = logging.getLogger(__name__)

BEEP_NOTE = "[an answering machine's beep: leave your message now, briefly, then hang up]"


def dispatch_heard(call: Call, nursery: trio.Nursery, now_s: float) -> None:
    """The signals the frame step recognised, each acted on in a task of its own (the frame
    loop does not wait for a session to take a note)."""
    for heard in call.audio.heard:
        nursery.start_soon(on_line_signal, call, heard, now_s)
    call.audio.heard.clear()


async def on_line_signal(call: Call, heard: LineSignal, now_s: float) -> None:
    """Act on one recognised signal (see the module docstring)."""
    what = heard.signal + (f" ({heard.variant})" if heard.variant else "")
    call.timeline.note(now_s, f"line signal: {what}, {heard.level_dbm0:.0f} dBm0")
    if heard.signal in ("cng", "ced"):
        kind = "fax" if heard.signal == "cng" else "modem"  # CED: a fax's or modem's answer
        if call.config.fax_action == "hang_up":
            log.info("call %s: %s tone: a %s, not a person; hanging up", call.spec.call_id,
                     heard.signal.upper(), kind)  # fmt: skip
            call.end_signal = kind
            call.end(f"{kind} tone ({heard.signal.upper()}): declined")
        return
    if heard.signal == "call_waiting":
        note = await waiting_note(call.audio.cwid, heard)
        if note is not None and call.session is not None:
            await call.session.send_text(note, role="system", respond=False)
        return
    session = call.session
    if heard.signal == "am_beep" and call.spec.direction == "outbound" and session is not None:
        await session.send_text(BEEP_NOTE, role="system", respond=True)
