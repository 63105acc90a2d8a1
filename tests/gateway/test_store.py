"""gateway.store: begin / append / finish / query round trips, a `CallRecord` kept as the call
pipeline reports it, transcript lines that survive a call that never finished, interrupted
calls marked on the next open, atomic batches, schema migration and refusal, readers
running while the writer writes (WAL), and the durability settings.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.line_health import CallFigures, LineFigures
from gateway.store import CallStore
from gateway.store_schema import MIGRATIONS, SCHEMA_VERSION, StoreError
from gateway.store_types import (
    INTERRUPTED_BY,
    CallCounts,
    LineAlarmChanged,
    TranscriptAppended,
    call_finished,
)
from tests.gateway.store_rig import at, begun, call_record, finished, line


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "calls.db"


def test_a_call_begun_then_finished_reads_back_whole(db: Path) -> None:
    store = CallStore.open(db)
    call = begun("c1", start_s=0.0)
    store.begin(call)
    assert store.call("c1") is not None
    assert store.call("c1").status == "active"  # type: ignore[union-attr]
    store.apply([line("c1", "hello?", 1.0), line("c1", "Hi, tipring shop.", 2.0, "agent")])
    store.finish(finished(call, 30.0, (("caller", "hello?"), ("agent", "Hi, tipring shop."))))
    got = store.call("c1")
    store.close()
    assert got is not None
    assert (got.status, got.ended_by, got.ended_at, got.duration_s) == (
        "finished", "the caller hung up", at(30.0), 30.0
    )  # fmt: skip
    assert (got.port, got.direction, got.profile, got.number, got.name) == (
        1, "inbound", "default", "5551234", "ADA L"
    )  # fmt: skip
    assert [(t.who, t.text, t.at) for t in got.transcript] == [
        ("caller", "hello?", at(1.0)), ("agent", "Hi, tipring shop.", at(2.0))
    ]  # fmt: skip
    assert [(t.name, t.outcome, t.duration_ms, t.delivered) for t in got.tool_calls] == [
        ("lookup", "ok", 12.5, True)
    ]
    assert (got.metrics, got.dtmf) == ({"erle_db": 31.5, "frames": 900}, "12#")


def test_a_call_record_is_kept_as_the_pipeline_reports_it(db: Path) -> None:
    record = call_record("c-rec")
    store = CallStore.open(db)
    store.finish(call_finished(record, dialled=""))  # never begun: finish alone keeps it
    got = store.call("c-rec")
    store.close()
    assert got is not None
    report = record.as_json()
    exported = got.as_json()
    for key in ("call_id", "port", "direction", "profile", "caller_id", "started_at",
                "ended_at", "duration_s", "ended_by", "dtmf", "voicemail", "captures"):  # fmt: skip
        assert exported[key] == report[key], key
    assert [{"who": t["who"], "text": t["text"]} for t in exported["transcript"]] == (
        report["transcript"]
    )
    tools = exported["tool_calls"]
    assert [(t["name"], t["outcome"], t["duration_ms"], t["id"]) for t in tools] == [
        ("book_table", "ok", 250.0, "fc_1"), ("transfer", "timeout", 2000.0, "fc_2")
    ]  # fmt: skip
    assert exported["tool_calls"][1]["error"] == "no answer"
    assert got.metrics["turn_latency_ms"] == [410.2, 388.0]
    assert got.metrics["added_latency_ms"]["uplink_p99"] == 1.9
    assert got.metrics["erle_db"] is None  # NaN is no JSON: kept as null
    assert got.metrics["timeline"][1] == {"t_s": 42.5, "event": "ended: the agent hung up"}


def test_the_line_figures_of_a_record_are_kept_in_their_columns(db: Path) -> None:
    figures = LineFigures(-63.44, 8.0, CallFigures(-22.0, -31.5, 11.25, 28.0, float("nan")),
                          ("echo path changed",))  # fmt: skip
    record = replace(call_record("c-line"), line_health=figures)
    store = CallStore.open(db)
    store.finish(call_finished(record))
    store.finish(call_finished(call_record("c-none")))  # no figures: none read back
    got, none = store.call("c-line"), store.call("c-none")
    store.close()
    assert got is not None
    assert none is not None
    assert got.line_health == {
        "noise_dbm0": -63.4, "loop_volts": 8.0, "send_dbm0": -22.0, "receive_dbm0": -31.5,
        "erl_db": 11.2, "echo_delay_ms": None, "alarms": ["echo path changed"],
    }  # fmt: skip
    assert "line_health" not in got.metrics  # columns, not the metrics JSON
    assert got.as_json()["line_health"]["erl_db"] == 11.2
    assert (none.line_health, none.as_json()["line_health"]) == ({}, None)


def test_line_alarms_are_rows_raised_then_cleared(db: Path) -> None:
    store = CallStore.open(db)
    raised = LineAlarmChanged(1, "line dead", "loop at 0.0 V for 5 s", at(10.0))
    store.apply([raised, LineAlarmChanged(0, "no dial tone", "no dial tone", at(20.0))])
    store.apply([replace(raised, cleared_at=at(70.0))])
    got = store.alarms()
    store.close()
    assert [(a.port, a.alarm, a.raised_at, a.cleared_at) for a in got] == [
        (0, "no dial tone", at(20.0), None), (1, "line dead", at(10.0), at(70.0))
    ]  # fmt: skip
    assert got[1].as_json()["detail"] == "loop at 0.0 V for 5 s"


def test_transcript_lines_written_during_a_call_survive_a_crash(db: Path) -> None:
    store = CallStore.open(db)
    store.begin(begun("c1", start_s=0.0))
    store.begin(begun("c2", start_s=5.0, port=2))
    for k in range(5):
        store.append_transcript(line("c1", f"sentence {k}", 10.0 + k))
    store.finish(finished(begun("c2", 5.0, 2), 20.0))
    store.close()  # no finish for c1: the appliance died

    reopened = CallStore.open(db)
    got = reopened.call("c1")
    assert reopened.interrupted_on_open == ("c1",)
    assert got is not None
    assert (got.status, got.ended_by, got.ended_at) == ("interrupted", INTERRUPTED_BY, at(14.0))
    assert [t.text for t in got.transcript] == [f"sentence {k}" for k in range(5)]
    assert reopened.call("c2").status == "finished"  # type: ignore[union-attr]
    reopened.close()
    again = CallStore.open(db)  # nothing left to mark
    assert again.interrupted_on_open == ()
    assert again.counts() == CallCounts(active=0, finished=1, interrupted=1)
    again.close()


def test_the_final_transcript_keeps_the_times_of_lines_kept_while_it_ran(db: Path) -> None:
    store = CallStore.open(db)
    call = begun("c1")
    store.apply([call, line("c1", "one", 1.0), line("c1", "three", 3.0)])  # "two" was dropped
    final = (("caller", "one"), ("agent", "two"), ("caller", "three"), ("agent", "bye"))
    store.finish(finished(call, 9.0, final))
    got = store.call("c1")
    store.close()
    assert got is not None
    assert [(t.text, t.at) for t in got.transcript] == [
        ("one", at(1.0)), ("two", at(9.0)), ("three", at(3.0)), ("bye", at(9.0))
    ]  # fmt: skip


def test_lines_for_a_call_not_active_are_not_kept(db: Path) -> None:
    store = CallStore.open(db)
    call = begun("c1")
    store.apply([call, finished(call, 5.0, (("caller", "hi"),))])
    store.apply([line("c1", "late line", 6.0), line("nobody", "stray line", 6.0)])
    got = store.call("c1")
    assert got is not None
    assert [t.text for t in got.transcript] == ["hi"]
    assert store.call("nobody") is None
    store.close()


def test_a_batch_that_fails_keeps_none_of_its_changes(db: Path) -> None:
    store = CallStore.open(db)
    bad = TranscriptAppended("c1", None, "who said this?", at(1.0))  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="cannot write 2 change"):
        store.apply([begun("c1"), bad])
    assert store.call("c1") is None
    store.apply([begun("c1")])  # the connection is usable again
    assert store.counts().active == 1
    store.close()


def test_recent_is_newest_first_with_limit_and_since(db: Path) -> None:
    store = CallStore.open(db)
    for k in range(6):
        call = begun(f"c{k}", start_s=60.0 * k)
        store.apply([call] if k == 5 else [call, finished(call, 60.0 * k + 30)])
    assert [c.call_id for c in store.recent(3)] == ["c5", "c4", "c3"]
    assert [c.call_id for c in store.recent(None, since=at(120.0))] == ["c5", "c4", "c3", "c2"]
    assert store.recent(1)[0].transcript == ()  # details only when asked
    assert store.counts() == CallCounts(active=1, finished=5, interrupted=0)
    assert store.counts(since=at(240.0)).total == 2
    store.close()


def _make_v1(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO calls (call_id, port, direction, number, name, profile, started_at, "
        "updated_at, ended_at, ended_by, status, metrics, voicemail) VALUES ('old', 1, "
        "'inbound', '5550000', 'OLD', 'default', '2024-12-01T10:00:00.000000+00:00', "
        "'2024-12-01T10:01:00.000000+00:00', '2024-12-01T10:01:00.000000+00:00', 'hung up', "
        '\'finished\', \'{"frames": 3000, "dtmf": "42", "captures": ["/x/up.wav"]}\', '
        "'/x/vm.wav')"
    )
    conn.execute("INSERT INTO transcript VALUES ('old', 0, 'caller', 'from v1', "
                 "'2024-12-01T10:00:30.000000+00:00')")  # fmt: skip
    conn.execute("INSERT INTO tool_calls VALUES ('old', 0, 'lookup', 'ok', 20.0, NULL)")
    conn.execute("COMMIT")
    conn.close()


def test_a_v1_database_is_migrated_keeping_its_calls(db: Path) -> None:
    db.parent.mkdir()
    _make_v1(db)
    with pytest.raises(StoreError, match="schema version 1, this tipring reads 3; `tipring run"):
        CallStore.open_readonly(db)
    store = CallStore.open(db)
    got = store.call("old")
    store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert got is not None
    assert (got.status, got.dtmf, got.captures, got.voicemail) == (
        "finished", "42", ("/x/up.wav",), "/x/vm.wav"
    )  # fmt: skip
    assert got.metrics == {"frames": 3000}  # dtmf and captures moved to their columns
    assert [t.text for t in got.transcript] == ["from v1"]
    assert [(t.name, t.ref, t.delivered) for t in got.tool_calls] == [("lookup", "", False)]
    reader = CallStore.open_readonly(db)
    assert reader.counts().finished == 1
    reader.close()


def test_a_newer_or_foreign_database_is_refused_naming_the_file(db: Path) -> None:
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match=r"calls\.db: schema version 99 is newer than this"):
        CallStore.open(db)
    garbage = db.with_name("garbage.db")
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db: cannot open the call database"):
        CallStore.open(garbage)
    with pytest.raises(StoreError, match=r"missing\.db: no call database here"):
        CallStore.open_readonly(db.with_name("missing.db"))


def test_the_database_is_wal_with_full_sync(db: Path) -> None:
    CallStore.open(db).close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # kept in the file
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    conn.close()
    store = CallStore.open(db)
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_readers_see_whole_calls_while_the_writer_writes(db: Path) -> None:
    store = CallStore.open(db)
    seen: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    done = threading.Event()

    def read(counts: list[int]) -> None:
        reader = CallStore.open_readonly(db)
        try:
            while not done.is_set():
                calls = reader.recent(None, details=True)
                # a call is read whole: finished calls have both lines and their tool call
                assert all(len(c.transcript) == 2 and len(c.tool_calls) == 1
                           for c in calls if c.status == "finished")  # fmt: skip
                counts.append(len(calls))
        except BaseException as exc:
            errors.append(exc)
        finally:
            reader.close()

    readers = [threading.Thread(target=read, args=(counts,)) for counts in seen]
    for thread in readers:
        thread.start()
    for k in range(150):
        call = begun(f"c{k:03d}", start_s=k)
        lines = (("caller", f"hi {k}"), ("agent", f"hello {k}"))
        store.apply([call, line(call.call_id, f"hi {k}", k + 0.5)])
        store.apply([finished(call, k + 0.9, lines)])
    done.set()
    for thread in readers:
        thread.join(timeout=10)
    store.close()
    assert errors == []  # never "database is locked", never a half-written call
    for counts in seen:
        assert counts == sorted(counts)  # each reader's view only grows
    assert any(0 < n < 150 for counts in seen for n in counts)  # it read while calls came in
