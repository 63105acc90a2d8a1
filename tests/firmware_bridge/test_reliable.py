"""firmware_bridge.reliable: in-order, exactly-once delivery over a lossy channel (spec §6)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import messages as m
from firmware_bridge.protocol import FrameDecoder, encode
from firmware_bridge.reliable import (
    SEQ_MOD,
    ChannelDead,
    ReliableReceiver,
    ReliableSender,
    Sent,
    Verdict,
    reply,
)

STEP_S = 0.005


@dataclass
class Pipe:
    """Frames in flight one way, each lost where `losses` says (cycled) or, with
    `loss_rate`, at random; delivered next step."""

    losses: list[bool]
    loss_rate: float = 0.0
    sent: int = 0
    frames: list[bytes] = field(default_factory=list)
    seed: int = 5
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def put(self, frames: list[bytes]) -> None:
        for frame in frames:
            lost = self.losses[self.sent % len(self.losses)] if self.losses else False
            lost = lost or self.rng.random() < self.loss_rate
            self.sent += 1
            if not lost:
                self.frames.append(frame)

    def take(self) -> list[bytes]:
        out, self.frames = self.frames, []
        return out


@dataclass
class Outcome:
    acted: list[int]  # the FLASH durations the receiver acted on, in order
    done: list[Sent]  # the sender's answered messages
    duplicates: int  # duplicates the receiver answered again
    dead: bool  # ChannelDead: a message went unanswered for ANSWER_TIMEOUT_S


def run_channel(count: int, to_rx: Pipe, to_tx: Pipe, steps: int = 4000) -> Outcome:
    """Send `count` FLASH commands (duration = 1, 2, ...) through the lossy pipes."""
    sender, receiver = ReliableSender(), ReliableReceiver()
    rx_dec, tx_dec = FrameDecoder(), FrameDecoder()
    acted: list[int] = []
    done: list[Sent] = []
    for i in range(count):
        sender.submit(m.Flash(0, 0, i + 1), done.append)
    now = 0.0
    for _ in range(steps):
        try:
            to_rx.put(sender.pump(now) + sender.due(now))
        except ChannelDead:
            return Outcome(acted, done, receiver.duplicates, True)
        for msg in rx_dec.feed(b"".join(to_rx.take())):
            assert isinstance(msg, m.Flash)
            verdict = receiver.classify(msg.seq)
            if verdict is Verdict.NEW:
                acted.append(msg.duration_ms)
                to_tx.put([encode(receiver.accept(msg.seq, None))])
            elif verdict is Verdict.DUPLICATE:
                to_tx.put([encode(receiver.remembered(msg.seq))])
        for answer in tx_dec.feed(b"".join(to_tx.take())):
            assert isinstance(answer, m.Ack | m.Nak)
            sender.on_answer(answer)
        if len(done) == count:
            break
        now += STEP_S
    return Outcome(acted, done, receiver.duplicates, False)


@settings(deadline=None, max_examples=150)
@given(
    count=st.integers(1, 40),
    forward=st.lists(st.booleans(), min_size=1, max_size=12).filter(lambda x: not all(x)),
    back=st.lists(st.booleans(), min_size=1, max_size=12).filter(lambda x: not all(x)),
)
def test_every_message_is_acted_on_once_in_order_whatever_is_lost(
    count: int, forward: list[bool], back: list[bool]
) -> None:
    out = run_channel(count, Pipe(forward), Pipe(back))
    # never twice, never out of order; all of them unless the link was declared down
    assert out.acted == list(range(1, len(out.acted) + 1))
    assert len(out.acted) == count or out.dead
    answered = {s.msg.duration_ms for s in out.done if isinstance(s.msg, m.Flash)}
    assert answered <= set(out.acted)  # an answer proves the message was acted on
    assert len(answered) == count or out.dead
    assert all(s.answered and s.answer is None for s in out.done)


@pytest.mark.parametrize("loss", [0.05, 0.2])
def test_random_loss_both_ways_delivers_all_and_repeats_lost_answers(loss: float) -> None:
    out = run_channel(200, Pipe([], loss, seed=1), Pipe([], loss, seed=2))
    print(f"200 commands, {loss:.0%} of frames lost each way: {out.duplicates} answered again")
    assert not out.dead
    assert out.acted == list(range(1, 201))
    assert len(out.done) == 200
    assert out.duplicates >= 200 * loss / 2


def test_a_dead_peer_ends_the_channel_after_the_answer_timeout() -> None:
    sender = ReliableSender()
    sender.submit(m.Flash(0, 0, 5))
    sends = len(sender.pump(0.0))
    now = 0.0
    while now < m.ANSWER_TIMEOUT_S - m.RETRANSMIT_S:
        now += m.RETRANSMIT_S
        sends += len(sender.due(now))
    with pytest.raises(ChannelDead, match="Flash seq 0 unanswered after 34 sends in 1 s"):
        sender.due(now + m.RETRANSMIT_S)
    assert sends == 34  # every RETRANSMIT_S (30 ms) within the second


def test_window_spans_eight_seqs_from_the_oldest_unanswered() -> None:
    sender = ReliableSender()
    for i in range(12):
        sender.submit(m.Flash(0, 0, i + 1))
    assert len(sender.pump(0.0)) == m.RELIABLE_WINDOW
    assert sender.in_flight == 12
    sender.on_answer(m.Ack(3))  # 0 is still unanswered: the window cannot move
    assert sender.pump(0.001) == []
    sender.on_answer(m.Ack(0))  # now 1 is the oldest: seq 8 may go
    assert sender.pump(0.002) == [encode(m.Flash(8, 0, 9))]
    resent = sender.due(m.RETRANSMIT_S)
    seqs = [msg.seq for msg in FrameDecoder().feed(b"".join(resent))]  # type: ignore[union-attr]
    assert seqs == [1, 2, 4, 5, 6, 7, 8]


def test_nak_reason_reaches_the_sender_and_abandon_fails_the_rest() -> None:
    sender = ReliableSender()
    done: list[Sent] = []
    for i in range(3):
        sender.submit(m.Flash(0, 0, i + 1), done.append)
    sender.pump(0.0)
    sender.on_answer(m.Nak(1, m.NakReason.BUSY))
    gone = sender.abandon()
    assert [(s.msg.seq, s.answered, s.answer) for s in done] == [
        (1, True, m.NakReason.BUSY), (0, False, None), (2, False, None),
    ]  # fmt: skip
    assert len(gone) == 2
    assert sender.pump(0.0) == []
    sender.submit(m.Flash(0, 0, 9))
    assert FrameDecoder().feed(sender.pump(0.0)[0]) == [m.Flash(0, 0, 9)]  # numbered from 0


def test_receiver_verdicts_across_the_seq_wrap() -> None:
    rx = ReliableReceiver()
    rx.expected = SEQ_MOD - 2
    assert rx.classify(SEQ_MOD - 2) is Verdict.NEW
    assert rx.accept(SEQ_MOD - 2, None) == m.Ack(SEQ_MOD - 2)
    assert rx.accept(SEQ_MOD - 1, m.NakReason.BUSY) == m.Nak(SEQ_MOD - 1, m.NakReason.BUSY)
    assert rx.expected == 0
    assert rx.classify(SEQ_MOD - 1) is Verdict.DUPLICATE
    assert rx.remembered(SEQ_MOD - 1) == m.Nak(SEQ_MOD - 1, m.NakReason.BUSY)
    assert rx.classify(1) is Verdict.AHEAD
    assert rx.classify(SEQ_MOD - 20) is Verdict.AHEAD  # older than the memory: never answered
    with pytest.raises(ValueError, match="the next new seq is 0"):
        rx.accept(1, None)


def test_reply_is_ack_or_nak() -> None:
    assert reply(7, None) == m.Ack(7)
    assert reply(7, m.NakReason.FAULT) == m.Nak(7, m.NakReason.FAULT)
