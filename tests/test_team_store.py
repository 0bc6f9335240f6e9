"""The team store (issue 19, "Several machines"): PostgreSQL is the system of record, each ingested file's rows are
Parquet in shared object storage, each machine's DuckDB file is a copy; decisions are byte-identical to the
embedded store's."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dashboard.core import render
from dashboard.core.errors import InputRefused
from dashboard.core.policy import load_policy
from dashboard.service import gate_release
from dashboard.store.db import Store, StoreUnavailable
from tests.conftest import REPO, good_case, write_jsonl

psycopg = pytest.importorskip("psycopg")
RECORDED = json.loads((REPO / "tests" / "fixtures" / "demo_decision_digests.json").read_text())
POLICIES = REPO / "data" / "policies"


@pytest.fixture(autouse=True)
def _private_object_cache(tmp_path, monkeypatch):
    """Each test's machines share one private object cache, never the user's (a verified copy from another test
    would hide a tampered object)."""
    monkeypatch.setenv("READINESS_CACHE_DIR", str(tmp_path / "object-cache"))


def _team(path: Path, pg_url: str, data: Path | str, read_only: bool = False) -> Store:
    from dashboard.store.postgres import open_store

    return open_store(path, read_only=read_only, url=pg_url, data=str(data))


def _decisions(store: Store) -> dict[str, tuple[str, str]]:
    out = {}
    for entry in RECORDED:
        release, policy_file, profile = entry.split("|")
        d = gate_release(store, load_policy(POLICIES / policy_file), release, None,
                         None if profile == "None" else profile, cache=False)
        out[entry] = (d.digest, hashlib.sha256(render.to_json(d).encode()).hexdigest())
    return out


@pytest.fixture(scope="module")
def team_demo(postgres_server, tmp_path_factory):
    """The bundled demo loaded into a team store by machine A: (PostgreSQL URL, data directory, A's copy)."""
    import uuid

    from dashboard.cli import load_bundled_demo

    name = "team_" + uuid.uuid4().hex[:10]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = f"{postgres_server}/{name}"
    root = tmp_path_factory.mktemp("team")
    data = root / "shared-data"
    with _team(root / "a.duckdb", url, data) as a:
        load_bundled_demo(a)
    return url, data, root / "a.duckdb"


def test_a_second_machine_reads_what_the_first_ingested_and_decides_byte_identically(team_demo, demo_store,
                                                                                    tmp_path):
    """Test that machine B, with an empty file, gets every release, run, case, evidence and observation from
    PostgreSQL and the shared Parquet objects, and that every recorded demo decision (digest and JSON bytes) is the
    same on A, on B and on the embedded store."""
    url, data, a_path = team_demo
    with _team(tmp_path / "b.duckdb", url, data, read_only=True) as b:
        counts = b.table_counts()
        assert {**counts, "policies": 0} == {**demo_store.table_counts(), "policies": 0}  # others judge on demo_store
        assert b.manifest_digests() == demo_store.manifest_digests()
        for t in ("observations", "rollout_evidence", "run_stats"):
            assert b.query(f"SELECT count(*) FROM {t}") == demo_store.query(f"SELECT count(*) FROM {t}"), t  # noqa: S608
        on_b = _decisions(b)
    with _team(a_path, url, data, read_only=True) as a:
        on_a = _decisions(a)
    want = {k: tuple(v) for k, v in RECORDED.items()}
    assert on_a == want
    assert on_b == want
    objects = sorted(p.relative_to(data).parts[0] for p in data.rglob("*.parquet"))
    assert set(objects) == {"cases", "observations"}


def test_reingesting_on_another_machine_is_a_no_op_and_writes_nothing(team_demo, tmp_path):
    """Test that machine C ingesting a file machine A already published reports it unchanged and neither
    PostgreSQL nor the data directory changes."""
    url, data, _ = team_demo
    before = sorted(p.name for p in data.rglob("*"))
    with psycopg.connect(url) as con:
        gen = con.execute("SELECT generation FROM team_meta").fetchone()[0]
    r = _cli(tmp_path, url, data, "ingest", str(REPO / "data" / "demo" / "rel-2026.10.0" / "rag_policy_qa.parquet"),
             "--release", "rel-2026.10.0")
    assert r.returncode == 0, r.stderr
    assert "already ingested" in r.stdout
    assert sorted(p.name for p in data.rglob("*")) == before
    with psycopg.connect(url) as con:
        assert con.execute("SELECT generation FROM team_meta").fetchone()[0] == gen


def _cli(tmp: Path, url: str, data: Path, *args: str, db: str = "c.duckdb") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "READINESS_STORE": url, "READINESS_DATA": str(data), "READINESS_DB": str(tmp / db)}
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _release(tmp: Path, rid: str, n: int = 30, manifest_tweak: str = "") -> tuple[Path, Path]:
    """A small release (its manifest and one run file) derived from the demo baseline's manifest."""
    from dashboard import demo

    m = demo.manifest_for(demo.STORIES[0]).model_copy(update={"release_id": rid, "baseline_release_id": None,
                                                               "application_version": rid + manifest_tweak})
    mpath = tmp / f"{rid}{manifest_tweak}.json"
    mpath.write_text(m.model_dump_json())
    ds = next(iter(m.eval_dataset_versions.items()))
    cases = [good_case(case_id=f"c{i}", run_id=f"{rid}-run", dataset=ds[0], dataset_version=ds[1])
             for i in range(n)]
    return mpath, write_jsonl(tmp / f"{rid}{manifest_tweak}.jsonl", cases)


def test_concurrent_ingests_from_several_machines_all_land_whole(pg_url, tmp_path):
    """Test that 4 machines ingesting 4 releases at once (separate processes, separate files) each publish
    everything, and a fifth machine sees all four with every case."""
    data = tmp_path / "data"
    files = [_release(tmp_path, f"rel-team-{i}") for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-m", "dashboard.cli", "ingest", str(f), "--release", f"rel-team-{i}",
                               "--manifest", str(m)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "READINESS_STORE": pg_url, "READINESS_DATA": str(data),
                                   "READINESS_DB": str(tmp_path / f"m{i}.duckdb")})
             for i, (m, f) in enumerate(files)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with _team(tmp_path / "e.duckdb", pg_url, data, read_only=True) as e:
        assert sorted(r.release_id for r in e.releases()) == [f"rel-team-{i}" for i in range(4)]
        assert e.query("SELECT count(*) FROM cases")[0][0] == 4 * 30


def test_a_release_published_with_another_manifest_is_refused_and_nothing_is_written(pg_url, tmp_path):
    """Test that machine B, whose copy is behind, cannot publish release X with a different manifest than the one
    machine A published: refused like the embedded store refuses it, and B's copy and PostgreSQL keep A's."""
    data = tmp_path / "data"
    m1, f1 = _release(tmp_path, "rel-x")
    m2, f2 = _release(tmp_path, "rel-x", manifest_tweak="-other")
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        from dashboard.ingesting import ingest

        ingest(a, [str(f1)], "rel-x", _manifest(m1))
    with _team(tmp_path / "b.duckdb", pg_url, data) as b:
        with pytest.raises(InputRefused, match="different manifest"):
            ingest(b, [str(f2)], "rel-x", _manifest(m2))
        assert b.manifest("rel-x") == _manifest(m1)
        assert b.query("SELECT count(*) FROM cases")[0][0] == 30


def test_a_run_published_by_another_machine_between_copy_and_publish_is_refused(pg_url, tmp_path):
    """Test the race the lock decides: B's copy was brought up to date before A published run R from another file;
    B's publish of R is refused naming the run, and B's local transaction rolls back."""
    from dashboard.ingesting import ingest
    from dashboard.store import team

    data = tmp_path / "data"
    m, f1 = _release(tmp_path, "rel-y")
    other = write_jsonl(tmp_path / "other.jsonl", [
        {**json.loads(line), "output": "different"} for line in f1.read_text().splitlines()])
    with _team(tmp_path / "b.duckdb", pg_url, data) as b:
        real_publish = team.TeamStore._publish

        def a_publishes_first(self, cur):  # A's ingest lands after B's copy was brought up to date
            with _team(tmp_path / "a.duckdb", pg_url, data) as a:
                ingest(a, [str(f1)], "rel-y", _manifest(m))
            real_publish(self, cur)

        b._publish = a_publishes_first.__get__(b)  # type: ignore[method-assign]
        with pytest.raises(InputRefused, match="rel-y-run"):
            ingest(b, [str(other)], "rel-y", _manifest(m))
        del b._publish
        assert b.query("SELECT count(*) FROM cases")[0][0] == 0
    with _team(tmp_path / "c.duckdb", pg_url, data, read_only=True) as c:
        assert c.query("SELECT count(*), count(*) FILTER (WHERE output = 'different') FROM cases") == [(30, 0)]


def _manifest(path: Path):
    from dashboard.core.models import ReleaseManifest

    return ReleaseManifest.model_validate_json(path.read_text())


def test_a_tampered_object_is_refused_when_another_machine_copies_it(pg_url, tmp_path):
    """Test that a Parquet object changed behind the store's back is refused with both digests when a machine
    copies it, and that machine's copy stays without the release."""
    from dashboard.ingesting import ingest

    data = tmp_path / "data"
    m, f = _release(tmp_path, "rel-z")
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        ingest(a, [str(f)], "rel-z", _manifest(m))
    (obj,) = list((data / "cases").rglob("*.parquet"))
    blob = bytearray(obj.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    obj.write_bytes(bytes(blob))
    with pytest.raises(Exception, match=obj.stem[:12]):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)
    with Store(tmp_path / "b.duckdb", read_only=True) as b:
        assert b.releases() == []


def test_an_embedded_file_is_not_taken_for_a_team_copy(demo_store, pg_url, tmp_path):
    """Test that pointing the team store at a file that holds an embedded store's releases is refused with what
    to do (another --db, or `readiness store copy`), and the file is untouched."""
    import shutil

    demo_store.query("CHECKPOINT")
    path = tmp_path / "embedded.duckdb"
    shutil.copy(demo_store.path, path)
    with pytest.raises(StoreUnavailable, match="store copy"):
        _team(path, pg_url, tmp_path / "data")


def test_the_dashboard_reader_sees_a_new_release_on_its_next_open(pg_url, tmp_path):
    """Test that a read-only open (what every dashboard rerun does) brings the copy up to date when PostgreSQL moved
    on, and costs one query when it did not."""
    from dashboard.ingesting import ingest

    data = tmp_path / "data"
    m, f = _release(tmp_path, "rel-r1")
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        ingest(a, [str(f)], "rel-r1", _manifest(m))
    with _team(tmp_path / "b.duckdb", pg_url, data, read_only=True) as b:
        assert [r.release_id for r in b.releases()] == ["rel-r1"]
        g1 = b.generation()
    m2, f2 = _release(tmp_path, "rel-r2")
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        ingest(a, [str(f2)], "rel-r2", _manifest(m2))
    with _team(tmp_path / "b.duckdb", pg_url, data, read_only=True) as b:
        assert [r.release_id for r in b.releases()] == ["rel-r1", "rel-r2"]
        assert b.generation() != g1


def test_concurrent_publishers_in_threads_keep_one_generation_per_publish(pg_url, tmp_path):
    """Test that publishes serialise: 6 threads (6 machines' copies) each ingest a release at once and the
    generation counts exactly 6 publishes."""
    from dashboard.ingesting import ingest

    data = tmp_path / "data"
    made = [_release(tmp_path, f"rel-t{i}", n=5) for i in range(6)]
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            with _team(tmp_path / f"t{i}.duckdb", pg_url, data) as s:
                ingest(s, [str(made[i][1])], f"rel-t{i}", _manifest(made[i][0]))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT generation FROM team_meta").fetchone()[0] == 6
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 6


def test_store_copy_publishes_an_embedded_file_and_every_machine_decides_as_it_did(demo_store, postgres_server,
                                                                                    tmp_path):
    """Test `readiness store copy --data`: the demo's embedded file (releases, cases, evidence, observations, its
    review log) goes to PostgreSQL and a data directory, read back through a fresh copy and compared; a new machine
    then judges every recorded demo decision to the same digest and bytes, and the review log verifies there.
    Copying again publishes nothing new and is refused for the log, which is not empty any more."""
    import shutil
    import uuid

    name = "copy_" + uuid.uuid4().hex[:10]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url, data = f"{postgres_server}/{name}", tmp_path / "data"
    demo_store.query("CHECKPOINT")
    source = tmp_path / "embedded.duckdb"
    shutil.copy(demo_store.path, source)
    env = {**os.environ, "READINESS_STORE": url, "READINESS_DATA": str(data)}
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "store", "copy", "--db", str(source), "--format",
                        "json"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["team"]["releases"] == len(demo_store.releases())
    assert report["team"]["cases"] == demo_store.query("SELECT count(*) FROM cases")[0][0]
    assert "cases of every file (count and content hash)" in report["team"]["verified"]
    with _team(tmp_path / "new-machine.duckdb", url, data, read_only=True) as fresh:
        assert _decisions(fresh) == {k: tuple(v) for k, v in RECORDED.items()}
    verify = subprocess.run([sys.executable, "-m", "dashboard.cli", "review", "verify", "--db",
                             str(tmp_path / "new-machine.duckdb"), "--trusted",
                             str(REPO / "data" / "reviewers" / "trusted_reviewers.yaml")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    again = subprocess.run([sys.executable, "-m", "dashboard.cli", "store", "copy", "--db", str(source)],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode != 0 and "already has a review log" in again.stderr


def test_case_data_in_s3_compatible_storage(s3_endpoint, pg_url, tmp_path, monkeypatch):
    """Test the team store with its data in an S3-compatible endpoint (moto's server): machine A ingests, machine
    B (its own object cache) reads the same cases and the same decision digest as A."""
    from dashboard.ingesting import ingest
    from tests.conftest import s3_bucket

    for k, v in s3_endpoint.items():
        monkeypatch.setenv(k, v)
    s3_bucket(s3_endpoint, "team-data")
    m, f = _release(tmp_path, "rel-s3", n=40)
    policy = load_policy(POLICIES / "case-management.yaml")
    monkeypatch.setenv("READINESS_CACHE_DIR", str(tmp_path / "cache-a"))
    with _team(tmp_path / "a.duckdb", pg_url, "s3://team-data/readiness") as a:
        ingest(a, [str(f)], "rel-s3", _manifest(m))
        on_a = gate_release(a, policy, "rel-s3", None, None, cache=False)
    client = s3_bucket(s3_endpoint, "team-data")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="team-data")["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("readiness/cases/") and keys[0].endswith(".parquet")
    monkeypatch.setenv("READINESS_CACHE_DIR", str(tmp_path / "cache-b"))
    with _team(tmp_path / "b.duckdb", pg_url, "s3://team-data/readiness", read_only=True) as b:
        assert b.query("SELECT count(*) FROM cases")[0][0] == 40
        on_b = gate_release(b, policy, "rel-s3", None, None, cache=False)
    assert on_b.digest == on_a.digest
    assert render.to_json(on_b) == render.to_json(on_a)


@pytest.mark.parametrize(("table", "edit"), [
    ("releases", "manifest_json = replace(manifest_json, 'staging', 'production')"),
    ("runs", "data_digest = 'sha256:' || repeat('0', 64)"),
])
def test_a_row_edited_in_postgresql_is_refused_not_copied(pg_url, tmp_path, table, edit):
    """Test that a manifest (or a run's data digest) changed in the database behind readiness is refused when a
    machine copies it, naming the row, and that machine's copy stays without the release."""
    from dashboard.ingesting import ingest

    data = tmp_path / "data"
    m, f = _release(tmp_path, "rel-edit")
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        ingest(a, [str(f)], "rel-edit", _manifest(m))
    with psycopg.connect(pg_url) as con:
        assert con.execute(f"UPDATE {table} SET {edit} WHERE release_id = 'rel-edit'").rowcount == 1  # noqa: S608
    with pytest.raises(StoreUnavailable, match=f"{table} row .*rel-edit.* does not match its digest"):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)
    with Store(tmp_path / "b.duckdb", read_only=True) as b:
        assert b.releases() == []


def test_a_publisher_waits_bounded_for_another_machines_publish_then_says_so(pg_url, tmp_path, monkeypatch):
    """Test that while another machine holds the publish lock, an ingest waits up to READINESS_LOCK_TIMEOUT and then
    stops with a sentence, leaving nothing behind; once the lock is free the same ingest lands."""
    from dashboard.ingesting import ingest

    data = tmp_path / "data"
    m, f = _release(tmp_path, "rel-wait")
    monkeypatch.setenv("READINESS_LOCK_TIMEOUT", "1")
    with psycopg.connect(pg_url) as other, _team(tmp_path / "b.duckdb", pg_url, data) as b:
        other.execute("SELECT pg_advisory_xact_lock(hashtext('readiness-publish'))")  # held until commit
        with pytest.raises(StoreUnavailable, match="busy.*gave up after 1 s"):
            ingest(b, [str(f)], "rel-wait", _manifest(m))
        assert b.releases() == []
        other.commit()
        ingest(b, [str(f)], "rel-wait", _manifest(m))
        assert [r.release_id for r in b.releases()] == ["rel-wait"]


def test_a_fresh_ci_runner_gates_and_verifies_without_ingesting_first(team_demo, tmp_path):
    """Test that read-only commands on a machine with no copy yet (a fresh CI runner) make the copy instead of
    refusing a missing --db file: `readiness gate` judges the demo candidate to its recorded digest."""
    url, data, _ = team_demo
    r = _cli(tmp_path, url, data, "gate", "--candidate", "rel-2026.11.0-rc2", "--policy",
             str(POLICIES / "case-management.yaml"), "--format", "json", db="fresh-runner.duckdb")
    assert r.returncode in (0, 1), r.stderr
    assert json.loads(r.stdout)["digest"] == RECORDED["rel-2026.11.0-rc2|case-management.yaml|None"][0]
