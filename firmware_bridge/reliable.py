"""The reliable channel of the adapter protocol (`docs/adapter-protocol.md` §6), one direction
each: `ReliableSender` numbers, windows and retransmits; `ReliableReceiver` accepts in order,
suppresses duplicates and remembers its answers.

The host's link (`firmware_bridge.link`: commands out, events in) and the simulated adapter
(`firmware_bridge.sim.adapter`: events out, commands in) each own one of both. Pure: no I/O,
no trio, no clock of its own; the caller passes `now` (seconds) and writes the frames it is
handed, ahead of any queued audio.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from firmware_bridge.messages import (
    ANSWER_TIMEOUT_S,
    RELIABLE_WINDOW,
    RETRANSMIT_S,
    Ack,
    Nak,
    NakReason,
    Reliable,
)
from firmware_bridge.protocol import encode

SEQ_MOD = 1 << 16  # seq is a u16 and wraps

Answer = NakReason | None  # None: accepted (ACK)
Done = Callable[["Sent"], None]


@dataclass(eq=False, slots=True)
class Sent:
    """One reliable message on its way: the message with its seq, its wire bytes, how often
    it went out, and, once answered, the answer. `on_done` runs when it is answered (or the
    channel is torn down: `answered` stays False)."""

    msg: Reliable
    wire: bytes
    on_done: Done | None
    sends: int = 0
    first_sent_s: float = 0.0
    last_sent_s: float = 0.0
    answered: bool = False
    answer: Answer = None


class ChannelDead(Exception):
    """A message went unanswered for `ANSWER_TIMEOUT_S`: the link is down (spec §6.1)."""

    def __init__(self, msg: Reliable, sends: int) -> None:
        super().__init__(
            f"{type(msg).__name__} seq {msg.seq} unanswered after {sends} sends "
            f"in {ANSWER_TIMEOUT_S:g} s"
        )
        self.msg = msg
        self.sends = sends


class ReliableSender:
    """Numbers reliable messages from 0 and sends seq s only while s is less than
    `RELIABLE_WINDOW` past the oldest unanswered one (the receiver remembers that many
    answers, so any repeat it gets is one it can answer again); resends every unanswered one
    (go-back-N) when the oldest has waited `RETRANSMIT_S`."""

    def __init__(self) -> None:
        self._next_seq = 0
        self._queue: deque[tuple[Reliable, Done | None]] = deque()
        self._window: dict[int, Sent] = {}  # seq -> Sent, in send order (dicts keep order)
        self.retransmits = 0  # messages sent again

    @property
    def in_flight(self) -> int:
        """Unanswered messages plus those waiting for room in the window."""
        return len(self._window) + len(self._queue)

    def submit(self, msg: Reliable, on_done: Done | None = None) -> None:
        """Queue `msg`; its `seq` is replaced by the channel's next one when it is sent."""
        self._queue.append((msg, on_done))

    def pump(self, now_s: float) -> list[bytes]:
        """Move queued messages into the window while it has room; their first sends."""
        out = []
        while self._queue and self._span() < RELIABLE_WINDOW:
            msg, on_done = self._queue.popleft()
            msg = dataclasses.replace(msg, seq=self._next_seq)
            self._next_seq = (self._next_seq + 1) % SEQ_MOD
            sent = Sent(msg, encode(msg), on_done, 1, now_s, now_s)
            self._window[msg.seq] = sent
            out.append(sent.wire)
        return out

    def _span(self) -> int:
        """Seqs from the oldest unanswered message up to the next one to send."""
        if not self._window:
            return 0
        return (self._next_seq - next(iter(self._window))) % SEQ_MOD

    def on_answer(self, answer: Ack | Nak) -> Sent | None:
        """Complete the message `answer` is for (None: not one of ours in flight, a late or
        stray answer) and run its `on_done`. Call `pump` afterwards: the window has room."""
        sent = self._window.pop(answer.seq, None)
        if sent is None:
            return None
        sent.answered = True
        sent.answer = answer.reason if isinstance(answer, Nak) else None
        if sent.on_done is not None:
            sent.on_done(sent)
        return sent

    def next_deadline_s(self) -> float | None:
        """When the oldest unanswered message is due for a resend (None: nothing in flight)."""
        if not self._window:
            return None
        return min(s.last_sent_s for s in self._window.values()) + RETRANSMIT_S

    def due(self, now_s: float) -> list[bytes]:
        """The resends due at `now_s`: every unanswered message, in seq order, if the oldest
        has waited `RETRANSMIT_S`. Raises `ChannelDead` once one has waited
        `ANSWER_TIMEOUT_S`."""
        deadline = self.next_deadline_s()
        if deadline is None or now_s < deadline:
            return []
        first = next(iter(self._window.values()))
        if now_s - first.first_sent_s >= ANSWER_TIMEOUT_S:
            raise ChannelDead(first.msg, first.sends)
        for sent in self._window.values():
            sent.sends += 1
            sent.last_sent_s = now_s
        self.retransmits += len(self._window)
        return [s.wire for s in self._window.values()]

    def abandon(self) -> list[Sent]:
        """Tear the channel down (link lost): every message in flight or queued, unanswered,
        with its `on_done` run; the next message is numbered from 0 again."""
        gone = list(self._window.values())
        gone += [Sent(msg, b"", done) for msg, done in self._queue]
        self._window.clear()
        self._queue.clear()
        self._next_seq = 0
        for sent in gone:
            if sent.on_done is not None:
                sent.on_done(sent)
        return gone


class Verdict(Enum):
    """How a receiver treats a reliable message's seq (spec §6.2)."""

    NEW = "new"  # act on it, then `accept` it with the answer
    DUPLICATE = "duplicate"  # our answer was lost: send `remembered` again, do not act
    AHEAD = "ahead"  # an earlier one was lost: drop it, no answer


class ReliableReceiver:
    """Accepts reliable messages in seq order from 0 and remembers the last
    `RELIABLE_WINDOW` answers, so a duplicate gets its answer again and is never acted on."""

    def __init__(self) -> None:
        self.expected = 0
        self._answers: dict[int, Answer] = {}
        self.duplicates = 0
        self.ahead = 0

    def classify(self, seq: int) -> Verdict:
        d = (seq - self.expected) % SEQ_MOD
        if d == 0:
            return Verdict.NEW
        if d >= SEQ_MOD - RELIABLE_WINDOW and seq in self._answers:
            self.duplicates += 1
            return Verdict.DUPLICATE
        self.ahead += 1
        return Verdict.AHEAD

    def accept(self, seq: int, answer: Answer) -> Ack | Nak:
        """Record the answer to the NEW message `seq` and move on; the frame to send."""
        if seq != self.expected:
            raise ValueError(f"accept({seq}): the next new seq is {self.expected}")
        self._answers[seq] = answer
        self._answers.pop((seq - RELIABLE_WINDOW) % SEQ_MOD, None)
        self.expected = (seq + 1) % SEQ_MOD
        return reply(seq, answer)

    def remembered(self, seq: int) -> Ack | Nak:
        """The answer given to `seq` (a DUPLICATE), to send again."""
        return reply(seq, self._answers[seq])

    def reset(self) -> None:
        """A new session: expect seq 0, forget every answer."""
        self.expected = 0
        self._answers.clear()


def reply(seq: int, answer: Answer) -> Ack | Nak:
    """ACK(seq), or NAK(seq, reason)."""
    return Ack(seq) if answer is None else Nak(seq, answer)
