"""The review log shared through a real PostgreSQL server by several machines (issue 19, subset of "Several
machines"): concurrent signers on two machines never fork the chain, and both machines verify it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.browser import free_port
from tests.conftest import REPO

psycopg = pytest.importorskip("psycopg")
KEYS = REPO / "data" / "reviewers"


def _machine(demo_store, tmp_path: Path, name: str) -> Path:
    """One machine's embedded store: the same ingested releases (the demo), its own file."""
    demo_store.query("CHECKPOINT")
    db = tmp_path / f"{name}.duckdb"
    shutil.copy(demo_store.path, db)
    from dashboard.store.db import Store

    with Store(db) as s:  # the demo's own log is local: a shared store starts from the PostgreSQL one
        s.query("DELETE FROM review_log")
        s.query("DELETE FROM checkpoints")
        s.query("DELETE FROM decision_cache")  # what other tests judged on the shared demo store
    return db


def test_concurrent_appends_never_fork_the_chain(pg_url):
    """Test that 12 appenders at once (separate connections, as separate machines would be) get consecutive
    entries, each linked to the one before."""
    from dashboard.core.reviews import GENESIS
    from dashboard.store.postgres import PostgresReviewLog

    errors: list[BaseException] = []

    def append(i: int) -> None:
        log = PostgresReviewLog(pg_url)
        try:
            log.append("rel", f"envelope {i}".encode(), None, kind="review", statement_id=f"s{i}",
                       reviewer=None, reviewed_at=None, expect_previous=None, block=False)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            log.close()

    threads = [threading.Thread(target=append, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    log = PostgresReviewLog(pg_url)
    entries = log.entries()
    log.close()
    assert [e.seq for e in entries] == list(range(1, 13))
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in zip(entries, entries[1:], strict=False))


def test_a_newer_schema_is_refused(pg_url):
    from dashboard.store.db import StoreUnavailable
    from dashboard.store.postgres import PostgresReviewLog

    PostgresReviewLog(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("INSERT INTO readiness_schema VALUES (99)")
    with pytest.raises(StoreUnavailable, match="schema version 99"):
        PostgresReviewLog(pg_url)


def test_an_unreachable_server_is_a_sentence_without_the_password(tmp_path, capsys):
    from dashboard.cli import main
    from dashboard.store.db import Store

    Store(tmp_path / "x.duckdb").close()

    env_before = os.environ.get("READINESS_STORE")
    os.environ["READINESS_STORE"] = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/x"
    try:
        code = main(["releases", "--db", str(tmp_path / "x.duckdb")])
    finally:
        if env_before is None:
            os.environ.pop("READINESS_STORE", None)
        else:
            os.environ["READINESS_STORE"] = env_before
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the shared store at postgresql://nobody:***@127.0.0.1" in err, err
    assert "secret" not in err


def test_reviewers_on_two_machines_sign_at_once_into_one_chain(demo_store, tmp_path, pg_url):
    """Test that 8 CLI `review sign` + `review add` runs at once, half on each of two machines (own DuckDB file,
    one PostgreSQL), all land in one unforked chain that `readiness review verify` accepts on both machines."""
    from dashboard.reviewing import install_demo_trust
    from dashboard.store.postgres import SharedLogStore

    machines = [_machine(demo_store, tmp_path, "a"), _machine(demo_store, tmp_path, "b")]
    with SharedLogStore(machines[0], pg_url) as s:
        install_demo_trust(s)  # the admin records the trust root and governing policy once, in PostgreSQL
    base = {**os.environ, "READINESS_STORE": pg_url, "READINESS_LOCK_TIMEOUT": "180",
            "DEMO_PASSPHRASE": "readiness-demo"}
    jobs = []
    for i, (who, release) in enumerate((who, release) for who in ("eng", "sec", "risk", "product")
                                       for release in ("rel-2026.11.0-rc1", "rel-2026.11.0-rc3")):
        db = machines[i % 2]
        out = tmp_path / f"{who}-{release}.dsse.json"
        sign = [sys.executable, "-m", "dashboard.cli", "review", "sign", "--db", str(db), "--release", release,
                "--decision", "approve", "--key", str(KEYS / f"{who}_example.com.key"),
                "--passphrase-env", "DEMO_PASSPHRASE", "--out", str(out)]
        add = [sys.executable, "-m", "dashboard.cli", "review", "add", "--db", str(db), str(out)]
        jobs.append(subprocess.Popen(["sh", "-c", f"{subprocess.list2cmdline(sign)} && {subprocess.list2cmdline(add)}"],
                                     env=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO))
    results = [(j.wait(300), j.stdout.read() if j.stdout else "") for j in jobs]
    assert all(code == 0 for code, _ in results), results
    for db in machines:
        verify = subprocess.run([sys.executable, "-m", "dashboard.cli", "review", "verify", "--db", str(db)],
                                env=base, capture_output=True, text=True, cwd=REPO)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    with SharedLogStore(machines[1], pg_url, read_only=True) as s:
        entries = s.review_entries()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert all(b.prev_hash == a.entry_hash for a, b in zip(entries, entries[1:], strict=False))
    assert sum(1 for e in entries if e.release_id) == 8  # 8 reviews after the admin events


def test_store_copy_moves_the_log_to_postgresql_and_it_still_verifies(demo_store, tmp_path, pg_url):
    """Test `readiness store migrate` and `store copy`: the demo's log (admin events and its log id) lands in
    PostgreSQL identical, verifies there, refuses a second copy, and the dashboard then reads reviews from it."""
    demo_store.query("CHECKPOINT")
    db = tmp_path / "file.duckdb"
    shutil.copy(demo_store.path, db)
    env = {**os.environ, "READINESS_DB": str(db), "DEMO_PASSPHRASE": "readiness-demo"}
    env.pop("READINESS_STORE", None)

    def cli(*args: str, store: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dashboard.cli", *args],
                              env={**env, **({"READINESS_STORE": pg_url} if store else {})},
                              capture_output=True, text=True, cwd=REPO)

    out = cli("review", "sign", "--release", "rel-2026.11.0-rc1", "--decision", "approve", "--key",
              str(KEYS / "eng_example.com.key"), "--passphrase-env", "DEMO_PASSPHRASE", "--out",
              str(tmp_path / "r.json"), store=False)
    assert out.returncode == 0, out.stderr
    assert cli("review", "add", str(tmp_path / "r.json"), store=False).returncode == 0
    migrated = cli("store", "migrate")
    assert migrated.returncode == 0 and "schema version 2" in migrated.stdout, migrated.stderr
    copied = cli("store", "copy", "--format", "json")
    assert copied.returncode == 0, copied.stderr
    import json

    report = json.loads(copied.stdout)
    from dashboard.store.db import Store

    with Store(db, read_only=True) as s:
        original = s.review_entries()
        log_id = s.log_id()
    assert report["entries"] == len(original) >= 3 and report["head"] == original[-1].entry_hash
    assert report["log_id"] == log_id and report["decisions"] >= 1
    verify = cli("review", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    again = cli("store", "copy")
    assert again.returncode == 1 and "already has a review log" in again.stderr  # refused, nothing written
    # the dashboard, pointed at the same PostgreSQL store, shows the review recorded there
    from streamlit.testing.v1 import AppTest

    from dashboard.ui import data

    os.environ["READINESS_DB"], os.environ["READINESS_STORE"] = str(db), pg_url
    try:
        data.store.clear()
        at = AppTest.from_file(str(REPO / "dashboard" / "ui" / "app.py"), default_timeout=60)
        at.query_params["candidate"] = "rel-2026.11.0-rc1"
        at.run()
        at.switch_page("views/review.py").run()
        assert not at.exception
        frames = [df.value for df in at.dataframe if "reviewer" in df.value.columns]
        assert frames and "eng@example.com" in list(frames[0]["reviewer"])
        # and a review signed in the dashboard is appended to the PostgreSQL chain
        at.radio(key="rv_choice").set_value("approve")
        key = (KEYS / "sec_example.com.key").read_bytes()
        at.file_uploader(key="rv_key").set_value(("sec.key", key, "application/octet-stream"))
        at.text_input(key="rv_passphrase").input("readiness-demo")
        at.button(key="FormSubmitter:review_form-Sign and record").click().run()
        assert not at.exception
        shown = " ".join(str(e.value) for e in at.success)
        assert f"Recorded as entry {len(original) + 1}" in shown, shown
    finally:
        data.store.clear()
        os.environ.pop("READINESS_STORE", None)
        os.environ.pop("READINESS_DB", None)
    verify = cli("review", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    from dashboard.store.postgres import PostgresReviewLog

    log = PostgresReviewLog(pg_url)
    assert len(log.entries()) == len(original) + 1
    log.close()
    with Store(db, read_only=True) as s:
        assert len(s.review_entries()) == len(original)  # the file's own log is untouched


def test_a_decision_cached_on_one_machine_is_never_served_on_another(demo_store, tmp_path, pg_url):
    """Test that the decision cache stays on each machine: `readiness gate` on machine A caches in A's file only, so
    machine B (whose file could differ, e.g. edited by hand on A) judges afresh, to the same digest."""
    from dashboard.core.policy import load_policy
    from dashboard.service import gate_release, judged_key
    from dashboard.store.postgres import SharedLogStore

    policy = load_policy(REPO / "data" / "policies" / "case-management.yaml")
    a, b = _machine(demo_store, tmp_path, "a"), _machine(demo_store, tmp_path, "b")
    with SharedLogStore(a, pg_url) as s:
        first = gate_release(s, policy, "rel-2026.11.0-rc2", cache=True)
        key = judged_key(s, policy, "rel-2026.11.0-rc2", "rel-2026.10.0", None)
        assert s.cached_decision(key) == (first.digest, first.model_dump_json())
    with SharedLogStore(b, pg_url, read_only=True) as s:
        assert s.cached_decision(key) is None
        served = gate_release(s, policy, "rel-2026.11.0-rc2", cache=True)
    assert served.model_dump_json() == first.model_dump_json()
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT to_regclass('decision_cache')").fetchone()[0] is None
    from dashboard.store.db import Store

    with Store(b, read_only=True) as s:
        assert gate_release(s, policy, "rel-2026.11.0-rc2", cache=False).digest == first.digest
