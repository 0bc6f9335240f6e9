"""The store shared by several processes on one machine (issue 19): bounded waits, no held file, turn-taking."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from dashboard.store import connections
from dashboard.store.db import Store, StoreUnavailable

HOLD = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro'); "
        "print('held', flush=True); time.sleep(float(sys.argv[3]))")


def _hold(path, seconds: float, mode: str = "rw") -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), mode, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_a_writer_waits_for_another_process_and_then_writes(tmp_path, monkeypatch):
    """Test that a store opened while another process writes waits (with one notice) and opens once it is free."""
    db = tmp_path / "s.duckdb"
    Store(db).close()
    notices: list[str] = []
    connections.configure(notice=notices.append)
    monkeypatch.setenv("READINESS_LOCK_TIMEOUT", "30")
    holder = _hold(db, 1.5)
    try:
        start = time.monotonic()
        with Store(db) as s:
            waited = time.monotonic() - start
            assert s.table_counts()["releases"] == 0
    finally:
        holder.wait()
    assert 0.5 < waited < 30
    assert len(notices) == 1 and "in use by another process" in notices[0] and "READINESS_LOCK_TIMEOUT" in notices[0]


def test_the_wait_is_bounded_and_says_how_to_wait_longer(tmp_path, monkeypatch):
    db = tmp_path / "s.duckdb"
    Store(db).close()
    monkeypatch.setenv("READINESS_LOCK_TIMEOUT", "0.5")
    holder = _hold(db, 30)
    try:
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="open in another process.*READINESS_LOCK_TIMEOUT"):
            Store(db)
        assert time.monotonic() - start < 5
        with pytest.raises(StoreUnavailable):
            Store(db, read_only=True)  # a writer excludes readers too
    finally:
        holder.kill()
        holder.wait()


def test_readers_in_other_processes_do_not_block_readers(tmp_path, monkeypatch):
    db = tmp_path / "s.duckdb"
    Store(db).close()
    monkeypatch.setenv("READINESS_LOCK_TIMEOUT", "0")
    holder = _hold(db, 30, "ro")
    try:
        with Store(db, read_only=True) as s:
            assert s.table_counts()["cases"] == 0
    finally:
        holder.kill()
        holder.wait()


def test_readers_and_writers_of_one_process_take_turns(tmp_path, monkeypatch):
    """Test that a writer in one thread waits for another thread's read-only store (DuckDB cannot mix the two in one
    process) and a reader joins an open writer."""
    db = tmp_path / "s.duckdb"
    Store(db).close()
    monkeypatch.setenv("READINESS_LOCK_TIMEOUT", "20")
    reader = Store(db, read_only=True)
    done: list[float] = []

    def write() -> None:
        with Store(db) as w:
            w.log_id()
            done.append(time.monotonic())

    t = threading.Thread(target=write)
    t.start()
    time.sleep(0.5)
    assert not done  # still waiting for the reader
    closed = time.monotonic()
    reader.close()
    t.join(20)
    assert done and done[0] >= closed
    with Store(db) as w, Store(db, read_only=True) as r:  # a reader joins the open writer's instance
        assert r.query("SELECT count(*) FROM log_meta")[0][0] == 1
        assert w.read_only is False and r.read_only is True


def test_concurrent_writers_of_one_process_never_fork_the_review_log(tmp_path):
    """Test that two sessions appending at once get consecutive entries (one write lock per file per process)."""
    from dashboard.core.reviews import GENESIS

    db = tmp_path / "s.duckdb"
    Store(db).close()
    errors: list[BaseException] = []

    def append(i: int) -> None:
        try:
            with Store(db) as s:
                s.append_review("r", f"envelope {i}".encode(), statement_id=f"s{i}")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    with Store(db, read_only=True) as s:
        entries = s.review_entries()
    assert [e.seq for e in entries] == list(range(1, 9))
    assert entries[0].prev_hash == GENESIS and all(b.prev_hash == a.entry_hash for a, b in zip(entries, entries[1:], strict=False))


def test_the_dashboard_holds_no_store_between_reruns(tmp_path, monkeypatch, demo_store):
    """Test that after a rerun another process can write the store at once, and the next rerun shows it."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from dashboard.ui import data
    from tests.conftest import REPO

    demo_store.query("CHECKPOINT")
    db = tmp_path / "ui.duckdb"
    shutil.copy(demo_store.path, db)
    monkeypatch.setenv("READINESS_DB", str(db))
    data.store.clear()
    at = AppTest.from_file(str(REPO / "dashboard" / "ui" / "app.py"), default_timeout=60).run()
    assert not at.exception
    code = ("import sys; from dashboard.store.db import Store; s = Store(sys.argv[1]); "
            "s.put_manifest(s.manifest('rel-2026.10.0').model_copy(update={'release_id': 'rel-other-process'})); "
            "s.close()")
    out = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True,
                         env={"READINESS_LOCK_TIMEOUT": "0", "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    at.run()
    options = at.selectbox(key="candidate").options
    assert "rel-other-process" in options, options
    data.store.clear()
