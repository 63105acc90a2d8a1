"""The simulated voice modem's bookkeeping: `SimMode` (command state or one of the streams),
`SimStats` (what the chip counted, for tests and logs) and `WireFaults` (output bytes to lose
or corrupt). Pure: `firmware_bridge.sim.modem.ModemSimulator` owns one of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from firmware_bridge.sim.modem_at import StreamKind

__all__ = ["STREAM_MODES", "SimMode", "SimStats", "WireFaults"]


class SimMode(StrEnum):
    """Command state (on- or off-hook) or one of the three streams."""

    COMMAND = "command"
    DUPLEX = "duplex"  # +VTR
    RECEIVE = "receive"  # +VRX
    TRANSMIT = "transmit"  # +VTX


STREAM_MODES: dict[StreamKind, SimMode] = {
    "duplex": SimMode.DUPLEX, "receive": SimMode.RECEIVE, "transmit": SimMode.TRANSMIT,
}  # fmt: skip


@dataclass
class SimStats:
    """What the simulated chip counted."""

    ticks: int = 0
    late_ticks: int = 0
    underrun_frames: int = 0  # ticks with less than a frame from the host in a stream
    fifo_dropped: int = 0  # host bytes beyond the FIFO (cannot happen: reads stop first)
    overrun_bytes: int = 0  # output the host did not read in time (pty full): dropped
    host_bytes: int = 0
    host_codes: dict[str, int] = field(default_factory=dict)  # DLE codes from the host
    callerid_errors: int = 0


@dataclass
class WireFaults:
    """Output bytes still to lose (`drop`) and to corrupt (`corrupt`, bits flipped)."""

    drop: int = 0
    corrupt: int = 0

    def apply(self, data: bytes) -> bytes:
        """`data` as it reaches the host, using up the pending faults."""
        if self.drop:
            cut, self.drop = min(self.drop, len(data)), max(0, self.drop - len(data))
            data = data[cut:]
        if self.corrupt:
            n, self.corrupt = min(self.corrupt, len(data)), max(0, self.corrupt - len(data))
            data = bytes(b ^ 0x5A for b in data[:n]) + data[n:]
        return data
