"""What a bad serial link does to bytes: `Faults`, applied by the simulated adapter.

`firmware_bridge.sim.adapter.AdapterSimulator` passes every chunk it reads from the host and
every chunk it writes to the host through `Faults.damage`, so the host's deframer, CRC check,
resync and reliable channel meet the faults of a real UART over jumper wires: flipped bits,
lost bytes (a FIFO overrun), and late delivery. Seeded, so a failing test replays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Faults:
    """Per-byte damage rates, both directions, changeable at any time. `corrupt_rate`: one
    random bit of the byte flipped; `drop_rate`: the byte lost; `delay_s`: added before each
    chunk the device writes. The counters say how much damage was done."""

    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    delay_s: float = 0.0
    seed: int = 0
    corrupted: int = 0
    dropped: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        for name in ("corrupt_rate", "drop_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"Faults.{name} {rate} is not a probability in 0..1")
        if self.delay_s < 0.0:
            raise ValueError(f"Faults.delay_s {self.delay_s} is negative")

    @property
    def active(self) -> bool:
        return self.corrupt_rate > 0.0 or self.drop_rate > 0.0

    def damage(self, data: bytes) -> bytes:
        """`data` as the other end receives it."""
        if not data or not self.active:
            return data
        buf = np.frombuffer(data, np.uint8).copy()
        flip = self._rng.random(buf.size) < self.corrupt_rate
        if flip.any():
            bits = self._rng.integers(0, 8, int(flip.sum()))
            buf[flip] ^= (1 << bits).astype(np.uint8)
            self.corrupted += int(flip.sum())
        keep = self._rng.random(buf.size) >= self.drop_rate
        self.dropped += int(buf.size - keep.sum())
        return buf[keep].tobytes()
