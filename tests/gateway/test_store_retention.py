"""gateway.store retention: finished calls older than the age limit go, with their voicemail
and capture files when those lie under the data directory (never a file outside it, never an
active call); over the size limit the oldest calls go until the database is back under it,
and the file on disk shrinks (incremental vacuum)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.store import CallStore
from gateway.store_retention import Retention, db_bytes
from tests.gateway.store_rig import T0, at, begun, finished

DAY_S = 86400.0


def test_calls_older_than_the_age_limit_go_with_their_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "voicemail").mkdir(parents=True)
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(b"RIFF")
    files = {name: data / "voicemail" / f"{name}.wav" for name in ("old", "new")}
    for path in files.values():
        path.write_bytes(b"RIFF")
    store = CallStore.open(data / "calls.db")
    old, stuck, new = begun("old", 0.0), begun("stuck", 1.0), begun("new", 40 * DAY_S)
    store.apply([
        old, finished(old, 60.0, (("caller", "hi"),), str(files["old"]),
                      (str(outside), "voicemail/gone.wav", "../elsewhere.wav")),
        stuck,  # still active after 40 days (a stuck call): never deleted
        new, finished(new, 40 * DAY_S + 60, (), str(files["new"])),
    ])  # fmt: skip
    pruned = store.prune(Retention(max_age_days=30, max_db_bytes=None, data_dir=data),
                         at(41 * DAY_S))  # fmt: skip
    assert (pruned.calls, pruned.files) == (1, 1)
    assert [c.call_id for c in store.recent(None)] == ["new", "stuck"]
    assert store._conn.execute("SELECT count(*) FROM transcript").fetchone()[0] == 0
    assert store._conn.execute("SELECT count(*) FROM tool_calls").fetchone()[0] == 1
    store.close()
    assert not files["old"].exists()
    assert files["new"].exists()
    assert outside.exists()  # listed by the call, but outside the data directory


def test_without_a_data_directory_files_are_kept(tmp_path: Path) -> None:
    wav = tmp_path / "vm.wav"
    wav.write_bytes(b"RIFF")
    store = CallStore.open(tmp_path / "calls.db")
    call = begun("c1")
    store.apply([call, finished(call, 10.0, (), str(wav))])
    pruned = store.prune(Retention(max_age_days=1, max_db_bytes=None), T0 + timedelta(days=2))
    store.close()
    assert (pruned.calls, pruned.files) == (1, 0)
    assert wav.exists()


def test_over_the_size_limit_the_oldest_calls_go_and_the_file_shrinks(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    store = CallStore.open(db)
    for k in range(300):
        call = begun(f"c{k:03d}", start_s=60.0 * k)
        lines = tuple(("caller", f"call {k} sentence {n} " + "blah " * 40) for n in range(8))
        store.apply([call, finished(call, 60.0 * k + 30, lines)])
    store.apply([begun("live", start_s=0.0)])  # the oldest start, but active
    store.prune(Retention(max_age_days=None, max_db_bytes=None), at(0))  # checkpoint: baseline
    full = db.stat().st_size
    limit = 200_000
    assert full > 3 * limit

    pruned = store.prune(Retention(max_age_days=None, max_db_bytes=limit), at(60.0 * 300))
    kept = [c.call_id for c in store.recent(None)]
    assert pruned.db_bytes <= limit
    assert db_bytes(store._conn) == pruned.db_bytes
    store.close()
    assert db.stat().st_size <= limit  # the pages went back to the filesystem
    assert "live" in kept
    finished_kept = sorted(k for k in kept if k != "live")
    assert finished_kept == [f"c{k:03d}" for k in range(300 - len(finished_kept), 300)]
    assert pruned.calls == 300 - len(finished_kept)
    assert 30 < len(finished_kept) < 100  # down to ~90 % of the limit, not much further


def test_under_the_limits_nothing_goes(tmp_path: Path) -> None:
    store = CallStore.open(tmp_path / "calls.db")
    call = begun("c1")
    store.apply([call, finished(call, 10.0)])
    pruned = store.prune(Retention(max_age_days=30, max_db_bytes=10 << 20), at(DAY_S))
    assert pruned.calls == 0
    assert store.counts().finished == 1
    store.close()
