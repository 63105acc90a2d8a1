"""`ConversationLog` on its own: its bounds (one server text, the whole log) and function calls
carried over only together with their outputs."""

from __future__ import annotations

import logging

import pytest

from gateway.realtime.conversation import (
    CARRY_ENTRIES,
    CUT_MARK,
    MAX_ENTRIES,
    MAX_ITEM_CHARS,
    MAX_LOG_CHARS,
    ConversationLog,
    Entry,
)

SERVER = 1  # the generation of the connection the server entries come from


def carried(log: ConversationLog, generation: int = 2) -> list[Entry]:
    """What a brand-new connection is given."""
    start = log.carry_start()
    return log.entries_since(start, generation, start)[1]


def test_a_server_text_is_cut_to_the_item_cap_and_noted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    log = ConversationLog()
    log.add(Entry("caller", "x" * 10_000, origin=SERVER))
    log.add(Entry("agent", "y" * (MAX_ITEM_CHARS + 1), origin=SERVER))
    log.add(Entry("function_call", '{"a": "' + "z" * 5000 + '"}', call_id="c", origin=SERVER))
    log.add(Entry("agent", "w" * MAX_ITEM_CHARS, origin=SERVER))  # at the cap: kept whole
    texts = [e.text for e in carried(log)]
    assert texts == ["x" * (MAX_ITEM_CHARS - 1) + CUT_MARK, "y" * (MAX_ITEM_CHARS - 1) + CUT_MARK,
                     "{}", "w" * MAX_ITEM_CHARS]  # fmt: skip
    assert log.items_cut == 3
    assert [r.getMessage() for r in caplog.records] == [
        "realtime: a caller text of 10000 characters from the server is kept as its first "
        f"{MAX_ITEM_CHARS} for carrying over (further cuts are counted)"
    ]


def test_our_own_texts_are_not_cut_to_the_item_cap() -> None:
    log = ConversationLog()
    output = '{"rows": "' + "r" * 20_000 + '"}'  # a tool result: the model must read it all
    log.add(Entry("function_call", "{}", call_id="c", origin=SERVER))
    log.add(Entry("function_output", output, call_id="c"))
    assert log.entries_since(0, SERVER)[1][0].text == output


def test_the_log_keeps_its_newest_text_within_the_cap_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.realtime")
    log = ConversationLog()
    for n in range(200):
        log.add(Entry("caller", f"{n:03d} " + "w" * 2000, origin=SERVER))
    assert log.chars <= MAX_LOG_CHARS
    kept = [e.text[:3] for e in carried(log)]
    assert kept == [f"{n:03d}" for n in range(200 - len(kept), 200)]
    assert len(kept) == MAX_LOG_CHARS // 2004
    assert log.dropped == 200 - len(kept)
    drops = [r.getMessage() for r in caplog.records]
    assert drops[0] == ("realtime: the conversation log is past 400 entries or 65536 characters: "
                        "dropped its 1 oldest (1 so far); a new session gets the rest")  # fmt: skip
    assert len(drops) == 2  # the first drop, then the 100th


def test_the_log_keeps_at_most_max_entries_and_always_the_newest() -> None:
    log = ConversationLog()
    for n in range(MAX_ENTRIES + 50):
        log.add(Entry("user_text", str(n)))
    assert len(log) == MAX_ENTRIES
    assert log.end == MAX_ENTRIES + 50
    huge = "o" * (MAX_LOG_CHARS + 10)  # ours, over the whole cap alone: still kept, alone
    log.add(Entry("function_output", huge, call_id="c"))
    assert len(log) == 1
    assert log.entries_since(0, SERVER)[1][0].text == huge


def test_a_truncation_heard_keeps_the_size_count_right() -> None:
    log = ConversationLog()
    log.add(Entry("agent", "one two three four five six seven eight", item_id="i", origin=SERVER))
    log.heard("i", 0.5)
    assert log.entries_since(0, 2)[1][0].text == "one two three four" + CUT_MARK
    assert log.chars == len("one two three four" + CUT_MARK)


def test_an_output_whose_call_dropped_off_goes_to_its_session_but_is_not_carried() -> None:
    log = ConversationLog()
    log.add(Entry("function_call", '{"order": 7}', call_id="c1", name="lookup", origin=SERVER))
    synced = log.end  # the session that made the call has everything so far
    for n in range(40):  # a slow tool; the talk goes on past the log's text cap
        log.add(Entry("caller", f"{n:02d} " + "w" * 2000, origin=SERVER))
    log.add(Entry("function_output", "shipped", call_id="c1"))
    assert "function_call" not in [e.kind for e in log.entries_since(0, SERVER)[1]]
    mine = log.entries_since(synced, SERVER)[1]
    assert [(e.kind, e.text) for e in mine] == [("function_output", "shipped")]
    assert "function_output" not in [e.kind for e in carried(log)]


def test_a_call_and_its_output_are_carried_together_or_not_at_all() -> None:
    log = ConversationLog()
    log.add(Entry("function_call", "{}", call_id="early", name="f", origin=SERVER))
    log.add(Entry("function_output", "early result", call_id="early"))
    for n in range(CARRY_ENTRIES - 3):
        log.add(Entry("caller", str(n), origin=SERVER))
    log.add(Entry("function_call", "{}", call_id="late", name="f", origin=SERVER))
    log.add(Entry("function_output", "late result", call_id="late"))
    # The carried window starts at the early output: its call lies before it, so it stays.
    assert log.carry_start() == 1
    kinds = [(e.kind, e.call_id) for e in carried(log) if e.call_id]
    assert kinds == [("function_call", "late"), ("function_output", "late")]
    # The call's own session had it; a session that synced from before it got it too.
    assert [e.text for e in log.entries_since(1, SERVER)[1]][:1] == ["early result"]
    assert [e.text for e in log.entries_since(0, 3, 0)[1]][:2] == ["{}", "early result"]


def test_an_output_for_a_call_the_log_never_saw_is_sent() -> None:
    log = ConversationLog()
    log.add(Entry("function_output", "result", call_id="unknown"))
    assert [e.text for e in carried(log)] == ["result"]
