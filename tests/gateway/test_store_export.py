"""`tipring calls`: the records as JSON (every call whole, newest first) and CSV (one row per
call, the transcript in one cell), run as the user runs it; --limit, --since, the table; a
missing or foreign database is a clear error naming the file."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.store import CallStore
from gateway.store_types import call_finished
from tests.gateway.store_rig import begun, call_record, line

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three calls: one interrupted (the oldest), one finished from a `CallRecord`, one active."""
    path = tmp_path_factory.mktemp("export") / "calls.db"
    store = CallStore.open(path)
    store.apply([begun("c-old", 0.0), line("c-old", "is anyone there?", 3.0)])
    store.close()
    store = CallStore.open(path)  # c-old is now interrupted
    store.finish(call_finished(call_record("c-rec", start_s=3600.0)))
    live = begun("c-live", 7200.0, port=3)
    store.apply([live, line("c-live", "hello", 7201.0)])
    store.close()
    return path


def tipring(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)  # fmt: skip


def test_json_export_has_every_call_whole_newest_first(db: Path) -> None:
    done = tipring("calls", "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    calls = json.loads(done.stdout)
    assert [(c["call_id"], c["status"]) for c in calls] == [
        ("c-live", "active"), ("c-rec", "finished"), ("c-old", "interrupted")
    ]  # fmt: skip
    live, rec, old = calls
    assert (live["ended_at"], live["duration_s"], live["port"]) == (None, None, 3)
    assert [t["text"] for t in live["transcript"]] == ["hello"]
    assert rec["caller_id"] == {"number": "5550100", "name": "GRACE H"}
    assert (rec["duration_s"], rec["ended_by"], rec["dtmf"]) == (42.5, "the agent hung up", "1#")
    assert [t["who"] for t in rec["transcript"]] == ["agent", "caller"]
    assert [t["name"] for t in rec["tool_calls"]] == ["book_table", "transfer"]
    assert rec["metrics"]["turn_latency_ms"] == [410.2, 388.0]
    assert old["ended_by"] == "interrupted: the appliance stopped during the call"
    assert old["ended_at"] == old["transcript"][0]["at"]  # ended at its last update


def test_csv_export_is_one_row_per_call(db: Path) -> None:
    done = tipring("calls", "--db", str(db), "--csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["call_id"] for r in rows] == ["c-live", "c-rec", "c-old"]
    rec = rows[1]
    assert (rec["status"], rec["duration_s"], rec["caller_number"], rec["caller_name"]) == (
        "finished", "42.5", "5550100", "GRACE H"
    )  # fmt: skip
    assert rec["transcript"] == "agent: Hello, tipring shop.\ncaller: I'd like to book a table."
    assert rec["tool_calls"] == "book_table:ok transfer:timeout"
    assert (rec["transcript_lines"], rec["erle_db"], rec["frames_late"]) == ("2", "", "0")
    assert rows[0]["ended_at"] == rows[0]["duration_s"] == ""


def test_limit_and_since_pick_the_calls(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calls", "--db", str(db), "--json", "--limit", "1"]) == 0
    assert [c["call_id"] for c in json.loads(capsys.readouterr().out)] == ["c-live"]
    assert main(["calls", "--db", str(db), "--csv", "--since", "2025-03-01T09:30:00+00:00"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["call_id"] for r in rows] == ["c-live", "c-rec"]


def test_the_table_is_one_line_per_call(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calls", "--db", str(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("started (UTC)")
    assert out[1].startswith("2025-03-01 11:00:00   active     3  inbound   5551234")
    assert out[2].endswith("the agent hung up")
    assert "interrupted: the appliance stopped during the call" in out[3]


def test_a_missing_or_foreign_database_is_a_clear_error(tmp_path: Path) -> None:
    done = tipring("calls", "--db", str(tmp_path / "nope.db"), "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"{tmp_path / 'nope.db'}: no call database here" in done.stderr
    assert "--db PATH" in done.stderr
    foreign = tmp_path / "other.db"
    CallStore.open(foreign).close()
    conn = sqlite3.connect(foreign)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    done = tipring("calls", "--db", str(foreign), "--csv")
    assert done.returncode == 1
    assert "other.db: schema version 7, this tipring reads 3" in done.stderr
