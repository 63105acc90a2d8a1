"""The downlink playout buffer of one call: agent audio deltas in, one 20 ms frame out per tick.

Owns `PlayoutBuffer`. The call's downlink actor is its only user: it `push`es every
`AgentAudio` delta of the realtime session, calls `end_response` on `ResponseDone`, and on the
adapter's clock pulls one frame every 20 ms with `next_frame(now)`, which always returns 160
int16 samples. Barge-in drives `pause`/`resume` (the local VAD heard the caller) and `flush`
(the cloud confirmed), and reads `played_ms(item_id)` for `conversation.item.truncate`. Pure
logic, no trio, no clock of its own: times are the caller's (`trio.current_time()`).

The frame `next_frame` returns is exactly what goes to the line, comfort noise and fades
included, so it is also the echo canceller's reference: hand the same samples to the encoder
and to the canceller.

How it sounds:
- The cloud sends faster than real time (seconds of speech in a few hundred ms), so the buffer
  takes whatever comes, up to `max_buffered_s`; past that the rest of the item is dropped
  (tail drop keeps what is playing continuous), logged once per item and counted.
- Agent audio passes through a gain that moves by 1/`FADE_SAMPLES` per sample (0 to 1 in
  5 ms); comfort noise at the line's level fills the complement, `g * agent + (1 - g) * noise`.
  At full gain the frame is the agent's samples, bit for bit.
- When the buffer runs dry while the agent is audible (an underrun, the end of a response, a
  flush), the fade-out is the last 5 ms of agent audio mirrored in time: no jump, and no
  sample of the agent's that was not played is heard. Audio that comes back fades in once
  that fade-out is over (up to 5 ms later), so the gain never moves faster than 1/40 a sample.
- `pause()` fades the agent's own next samples out (at most `FADE_SAMPLES`, each counted as
  played) and holds the position; `resume()` plays on from the next sample with a fade-in, so
  nothing is played twice or skipped. `flush()` drops everything buffered.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from dsp.comfort_noise import ComfortNoise
from dsp.frame import FRAME_SAMPLES, RATE_HZ
from dsp.levels import MAX_SINE_DBM0
from gateway.errors import GatewayError

log = logging.getLogger(__name__)
F64 = NDArray[np.float64]

FADE_SAMPLES = 40  # 5 ms at 8 kHz: the longest a barge-in fade may take (issue 6)
MAX_BUFFERED_S = 120.0  # far beyond any answer; bounds memory (1.9 MB) if the cloud misbehaves
# A quiet analog line's idle noise (the simulated line's default, `firmware_bridge.sim.line`);
# set it to the measured floor of the line so the agent's silences sound like the line.
COMFORT_NOISE_DBM0 = -65.0
_STEPS = np.arange(FRAME_SAMPLES + 1)  # 0, 1, ..., 160: level paths of one frame


class PlayoutInputError(GatewayError, ValueError):
    """Bad input to the playout (wrong dtype or shape, empty id): a bug in the caller."""


@dataclass(slots=True)
class PlayoutStats:
    """Counters of one call's playout. `first_audio_ms`: per response, from the `push` of its
    first delta (`received_at`) to the `next_frame(now)` that emitted its first sample."""

    frames: int = 0
    underrun_frames: int = 0  # not filled with agent audio while a started item was unfinished
    first_audio_ms: list[float] = field(default_factory=list)
    dropped_samples: int = 0  # over `max_buffered_s`
    flushed_samples: int = 0
    refused_samples: int = 0  # late deltas of responses already flushed


@dataclass(frozen=True, slots=True)
class FlushedItem:
    """One item a `flush` touched: `played_ms` reached the line (the truncate point),
    `dropped_samples` were buffered and are gone."""

    response_id: str
    item_id: str
    played_ms: int
    dropped_samples: int


@dataclass(slots=True, eq=False)
class _Response:
    response_id: str
    first_push_at: float
    started: bool = False  # its first sample went out
    flushed: bool = False
    refused_samples: int = 0


@dataclass(slots=True, eq=False)
class _Item:
    response: _Response
    item_id: str
    accepted_samples: int = 0
    played_samples: int = 0
    finished: bool = False  # no more audio expected: response done, a later item, flushed
    overflowed: bool = False  # lost its tail to the cap: later deltas are dropped too


@dataclass(slots=True, eq=False)
class _Chunk:
    pcm: NDArray[np.int16]
    item: _Item
    offset: int = 0


def _real_gains(level: int, real: int, falling: bool, gain: F64) -> int:
    """Gains of `real` samples of agent audio into `gain` (`real` long), starting
    from `level` (0..FADE_SAMPLES), rising (falling: `real <= level`) one step per sample;
    a sample between levels a and b gets (a + b) / 2 / FADE_SAMPLES. Returns the end level."""
    steps = _STEPS[: real + 1]
    levels = level - steps if falling else np.minimum(level + steps, FADE_SAMPLES)
    gain[:real] = (levels[:-1] + levels[1:]) * (0.5 / FADE_SAMPLES)
    return int(levels[-1])


def _mirror_fade(history: F64, level: int) -> tuple[F64, F64]:
    """Fade-out from `level` once the agent audio has run out: the last `FADE_SAMPLES` samples
    played (`history`, oldest first) mirrored in time, so the wave goes on without a jump.
    Returns (gain * samples, gain), `level` samples each."""
    gain = (level - _STEPS[:level] - 0.5) / FADE_SAMPLES
    return gain * history[::-1][:level], gain


class PlayoutBuffer:
    """Paces one call's agent audio onto the line; see the module docstring.

    `comfort_noise_dbm0`: level of the noise in the agent's silences (the line's noise floor);
    `max_buffered_s`: the most audio held; `seed`: the comfort noise's sequence."""

    def __init__(
        self,
        comfort_noise_dbm0: float = COMFORT_NOISE_DBM0,
        max_buffered_s: float = MAX_BUFFERED_S,
        seed: int = 12345,
    ) -> None:
        if not (math.isfinite(comfort_noise_dbm0) and comfort_noise_dbm0 <= MAX_SINE_DBM0):
            raise PlayoutInputError(
                f"playout: comfort_noise_dbm0 must be a finite level up to {MAX_SINE_DBM0} "
                f"dBm0, got {comfort_noise_dbm0}"
            )
        if not (math.isfinite(max_buffered_s) and max_buffered_s > 0.0):
            raise PlayoutInputError(f"playout: max_buffered_s must be > 0, got {max_buffered_s}")
        self._max_samples = max(FRAME_SAMPLES, round(max_buffered_s * RATE_HZ))
        self._noise = ComfortNoise(comfort_noise_dbm0, seed)
        self._chunks: deque[_Chunk] = deque()
        self._buffered = 0
        self._items: dict[str, _Item] = {}
        self._responses: dict[str, _Response] = {}
        self._open: _Item | None = None  # the item deltas are arriving for
        self._current: _Item | None = None  # the item of the last sample played
        self._paused = False
        self._level = 0  # agent gain, in steps of 1/FADE_SAMPLES
        self._last_real = 0  # agent samples in the last frame
        self._history = np.zeros(FADE_SAMPLES)  # the last agent samples played, oldest first
        # A frame is built on FRAME_SAMPLES + FADE_SAMPLES: a mirrored fade-out may run past
        # the frame it starts in, and its overhang (weighted samples, gains) is carried over.
        self._fade_sig = np.zeros(FRAME_SAMPLES + FADE_SAMPLES)
        self._fade_gain = np.zeros(FRAME_SAMPLES + FADE_SAMPLES)  # agent audio's gains too
        self._fade_left = 0  # samples of that overhang; `_level` is 0 while any is left
        self._noise_buf = np.zeros(FRAME_SAMPLES)
        self._stats = PlayoutStats()

    # --- input ----------------------------------------------------------------------------

    def push(
        self, pcm: NDArray[np.int16], response_id: str, item_id: str, received_at: float
    ) -> None:
        """Queue an agent audio delta: `pcm` 1-D int16 at 8 kHz, any length (copied);
        `received_at` when it arrived, on the clock of `next_frame`'s `now`. Raises
        `PlayoutInputError` on bad input, with nothing buffered changed."""
        samples = self._checked(pcm, response_id, item_id, received_at)
        if samples.shape[0] == 0:
            return
        count = samples.shape[0]
        response = self._responses.get(response_id)
        if response is not None and response.flushed:  # in flight when we flushed
            if response.refused_samples == 0:
                log.debug("playout: refusing late audio of flushed response %s", response_id)
            response.refused_samples += count
            self._stats.refused_samples += count
            return
        item = self._item(response_id, item_id, received_at)
        keep = 0 if item.overflowed else min(count, self._max_samples - self._buffered)
        if keep < count:
            if not item.overflowed:
                log.warning(
                    "playout: buffer full (%d s), dropping the rest of item %s of response %s",
                    self._max_samples // RATE_HZ, item_id, response_id,
                )  # fmt: skip
            item.overflowed = True
            self._stats.dropped_samples += count - keep
        if keep:
            self._chunks.append(_Chunk(samples[:keep], item))
            self._buffered += keep
            item.accepted_samples += keep

    def _checked(
        self, pcm: object, response_id: str, item_id: str, received_at: object
    ) -> NDArray[np.int16]:
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            got = f"{pcm.dtype} {pcm.shape}" if isinstance(pcm, np.ndarray) else type(pcm).__name__
            raise PlayoutInputError(f"playout.push: pcm must be a 1-D int16 array, got {got}")
        for name, value in (("response_id", response_id), ("item_id", item_id)):
            if not isinstance(value, str) or not value:
                raise PlayoutInputError(
                    f"playout.push: {name} must be a non-empty str, got {value!r}"
                )
        if not isinstance(received_at, int | float) or not math.isfinite(received_at):
            raise PlayoutInputError(
                f"playout.push: received_at must be a finite time, got {received_at!r}"
            )
        known = self._items.get(item_id)
        if known is not None and known.response.response_id != response_id:
            raise PlayoutInputError(
                f"playout.push: item {item_id} belongs to response "
                f"{known.response.response_id}, got {response_id}"
            )
        return np.array(pcm, dtype=np.int16)

    def _item(self, response_id: str, item_id: str, received_at: float) -> _Item:
        item = self._items.get(item_id)
        if item is None:
            response = self._responses.get(response_id)
            if response is None:
                response = self._responses[response_id] = _Response(response_id, received_at)
            item = self._items[item_id] = _Item(response, item_id)
        if item is not self._open:
            if self._open is not None:  # the cloud streams items one after the other
                self._open.finished = True
            self._open = item
        return item

    def end_response(self, response_id: str) -> None:
        """The cloud sent all audio of `response_id` (`ResponseDone`): running dry after its
        last sample is the end of speech, not an underrun."""
        if not isinstance(response_id, str) or not response_id:
            raise PlayoutInputError(
                f"playout.end_response: response_id must be a non-empty str, got {response_id!r}"
            )
        if self._open is not None and self._open.response.response_id == response_id:
            self._open.finished = True
            self._open = None

    # --- barge-in -------------------------------------------------------------------------

    def pause(self) -> None:
        """Local barge-in: the next frame fades the agent out within `FADE_SAMPLES`, then
        comfort noise; the position is held. Idempotent."""
        self._paused = True

    def resume(self) -> None:
        """No barge-in after all: play on from the sample after the last one played, with a
        fade-in. Idempotent."""
        self._paused = False

    def flush(self) -> list[FlushedItem]:
        """The cloud confirmed the barge-in: drop everything buffered (and later deltas of the
        responses it belonged to), end any pause. Returns the items touched, the one being
        played first, with what was played of each (for truncate) and what was dropped."""
        dropped: dict[str, int] = {}
        if self._current is not None:
            dropped[self._current.item_id] = 0
        for chunk in self._chunks:
            key = chunk.item.item_id
            dropped[key] = dropped.get(key, 0) + chunk.pcm.shape[0] - chunk.offset
        flushed = [
            FlushedItem(self._items[key].response.response_id, key, self.played_ms(key), count)
            for key, count in dropped.items()
        ]
        for key in dropped:
            self._items[key].finished = True
            self._items[key].response.flushed = True
        if self._open is not None and self._open.response.flushed:
            self._open = None
        self._stats.flushed_samples += self._buffered
        log.debug("playout: flushed %d samples of %d items", self._buffered, len(dropped))
        self._chunks.clear()
        self._buffered = 0
        self._current = None
        self._paused = False
        return flushed

    # --- output ---------------------------------------------------------------------------

    def next_frame(self, now: float) -> NDArray[np.int16]:
        """The next 20 ms for the line (new int16 array of 160, the caller's): agent audio,
        fades and comfort noise. Call once per frame tick; `now` is the tick's time."""
        start = self._fade_left  # a fade-out in flight ends before audio fades back in
        # Paused: only the pause fade, which plays the agent's own next `_level` samples.
        room = self._level if self._paused else FRAME_SAMPLES - start
        agent = self._take(min(self._buffered, room), now)
        real = agent.shape[0]
        if real == FRAME_SAMPLES and self._level == FADE_SAMPLES:
            self._history[:] = agent[-FADE_SAMPLES:]
            frame = agent  # full gain: the agent's samples as they came
        else:
            frame = self._render(agent, start)
        self._count(real)
        return frame

    def _take(self, count: int, now: float) -> NDArray[np.int16]:
        """The next `count` buffered samples, accounted as played at `now`."""
        out = np.empty(count, np.int16)
        pos = 0
        while pos < count:
            chunk = self._chunks[0]
            n = min(count - pos, chunk.pcm.shape[0] - chunk.offset)
            out[pos : pos + n] = chunk.pcm[chunk.offset : chunk.offset + n]
            chunk.offset += n
            pos += n
            item = chunk.item
            item.played_samples += n
            if not item.response.started:
                item.response.started = True
                self._stats.first_audio_ms.append((now - item.response.first_push_at) * 1e3)
            self._current = item
            if chunk.offset == chunk.pcm.shape[0]:
                self._chunks.popleft()
        self._buffered -= count
        return out

    def _render(self, agent: NDArray[np.int16], start: int) -> NDArray[np.int16]:
        """One frame with fades: the rest of a fade-out (`start` samples), then the agent
        audio at its gain and a mirrored fade-out if it ran out while audible; comfort noise
        fills what the gain leaves. At most one fade-out is in flight."""
        real = agent.shape[0]
        end = start + real
        samples = agent.astype(np.float64)
        sig, gain = self._fade_sig, self._fade_gain  # [:start]: the fade carried over
        level = _real_gains(self._level, real, self._paused, gain[start:end])
        if real >= FADE_SAMPLES:
            self._history[:] = samples[-FADE_SAMPLES:]
        elif real:
            self._history[:] = np.concatenate((self._history[real:], samples))
        if level and end < FRAME_SAMPLES:  # ran out while audible
            sig[end : end + level], gain[end : end + level] = _mirror_fade(self._history, level)
            self._fade_left = max(0, end + level - FRAME_SAMPLES)
            level = 0
        else:
            self._fade_left = 0
        self._level = level
        self._noise.fill(self._noise_buf)
        mix = sig[:FRAME_SAMPLES] + self._noise_buf * (1.0 - gain[:FRAME_SAMPLES])
        mix[start:end] += gain[start:end] * samples
        for arr in (sig, gain):  # carry the fade-out's overhang to the next frame
            arr[:FADE_SAMPLES] = arr[FRAME_SAMPLES:]
            arr[FADE_SAMPLES:] = 0.0
        return np.clip(np.rint(mix), -32768, 32767).astype(np.int16)

    def _count(self, real: int) -> None:
        self._stats.frames += 1
        self._last_real = real
        item = self._current
        if item is not None and not item.finished:
            self._stats.underrun_frames += real < FRAME_SAMPLES and not self._paused
        elif item is not None and item.played_samples == item.accepted_samples:
            self._current = None  # played out

    # --- state ----------------------------------------------------------------------------

    def played_samples(self, item_id: str) -> int:
        """Samples of `item_id` that went to the line (faded ones too); 0 if never pushed."""
        item = self._items.get(item_id)
        return 0 if item is None else item.played_samples

    def played_ms(self, item_id: str) -> int:
        """Whole ms of `item_id`'s samples that went to the line (faded ones too, rounded
        down), for `conversation.item.truncate` `audio_end_ms`; 0 if never pushed."""
        return self.played_samples(item_id) * 1000 // RATE_HZ

    @property
    def current_item(self) -> tuple[str, str] | None:
        """(response_id, item_id) of the item on the line: the last one played from, kept
        through a pause or an underrun; None once it has played out or was flushed."""
        item = self._current
        return None if item is None else (item.response.response_id, item.item_id)

    @property
    def speaking(self) -> bool:
        """True when the last frame carried agent audio (faded or not)."""
        return self._last_real > 0

    @property
    def paused(self) -> bool:  # between pause() and resume() or flush()
        return self._paused

    @property
    def buffered_samples(self) -> int:
        """Agent samples held, not yet played."""
        return self._buffered

    @property
    def stats(self) -> PlayoutStats:
        """A copy of the counters."""
        return replace(self._stats, first_audio_ms=list(self._stats.first_audio_ms))
