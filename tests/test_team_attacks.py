"""Attacks on the team store (issue 19 under issue 12's "hold under attack", docs/security.md).

The attacker is an insider with write access to PostgreSQL or to the shared data directory, but not to a reviewer's
key; or an outsider feeding hostile locations. The first group reproduces the weaknesses an outside review found
(each fixed since, see docs/security.md "Team store"); the rest are attacks that were refused from the start. All
must stay refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dashboard.core.errors import ReadinessError
from dashboard.core.policy import load_policy, parse_policy
from dashboard.service import gate_release
from dashboard.store.db import Store, StoreUnavailable
from tests.conftest import REPO, good_case, write_jsonl
from tests.test_team_store import _manifest, _release, _team

psycopg = pytest.importorskip("psycopg")
POLICY = REPO / "data" / "policies" / "case-management.yaml"
SIMPLE = ("policy_id: t\nversion: '1'\ngates:\n  - {id: overall, name: Overall pass rate, category: quality, "
          "severity: blocker, metric: pass_rate, condition: '>= 0.95'}\n")


@pytest.fixture(autouse=True)
def _private_object_cache(tmp_path, monkeypatch):
    """Each test's machines share one private object cache, never the user's (a verified copy from another test
    would hide a tampered object)."""
    monkeypatch.setenv("READINESS_CACHE_DIR", str(tmp_path / "object-cache"))


def _pass_rate(store: Store, release_id: str) -> list[tuple]:
    return store.query("SELECT count(*), count(*) FILTER (WHERE passed) FROM cases WHERE release_id = ?",
                       [release_id])


def _fingerprint(store: Store, release_id: str) -> list[tuple]:
    return store.query("SELECT count(*), min(risk), max(risk), count(*) FILTER (WHERE passed), "
                       "sum(hash(c))::VARCHAR FROM cases c WHERE release_id = ?", [release_id])


def _two_releases(tmp: Path, pg_url: str, data: Path) -> None:
    """rel-good: 30 passing cases; rel-bad: the same 30 case ids, same run id, all failing (same row count)."""
    from dashboard.ingesting import ingest

    m_good, f_good = _release(tmp, "rel-good")
    m_bad, _ = _release(tmp, "rel-bad")
    man = _manifest(m_bad)
    ds = next(iter(man.eval_dataset_versions.items()))
    f_bad = write_jsonl(tmp / "bad.jsonl", [good_case(case_id=f"c{i}", run_id="rel-good-run", dataset=ds[0],
                                                      dataset_version=ds[1], passed=False) for i in range(30)])
    with _team(tmp / "a.duckdb", pg_url, data) as a:
        ingest(a, [str(f_good)], "rel-good", _manifest(m_good))
        ingest(a, [str(f_bad)], "rel-bad", man)


# ----- findings of the outside review (fixed) --------------------------------------------------------------------------------

def test_a_sources_row_pointed_at_another_releases_object_is_refused(pg_url, tmp_path):
    """PostgreSQL insider: point rel-good's sources row at rel-bad's object (same row count). A new machine must
    refuse it, or at least read the cases rel-good was ingested with; today it silently judges rel-bad's failing
    cases as rel-good's, under rel-good's unchanged data digest (which a signed review names)."""
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with _team(tmp_path / "a.duckdb", pg_url, data, read_only=True) as a:
        want = _pass_rate(a, "rel-good")
        digests = [r.data_digest for r in a.runs("rel-good")]
    assert want == [(30, 30)]
    with psycopg.connect(pg_url) as con:
        n = con.execute(
            "UPDATE sources s SET object_name = b.object_name, object_sha256 = b.object_sha256, "
            "object_size = b.object_size FROM sources b WHERE s.release_id = 'rel-good' AND b.release_id = 'rel-bad'"
        ).rowcount
        assert n == 1
    try:
        b = _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)
    except StoreUnavailable:
        return  # refused: the fix
    with b:
        assert [r.data_digest for r in b.runs("rel-good")] == digests  # the digest a review would check is unchanged
        assert _pass_rate(b, "rel-good") == want  # ... but the cases judged are not the ones ingested


def test_a_runs_row_with_edited_counts_is_refused(pg_url, tmp_path):
    """PostgreSQL insider: rewrite a run's passed/failed counts (data_digest untouched). A new machine must refuse
    the row (its counts disagree with the object's cases); today it copies it and `runs` shows the forged counts."""
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        assert con.execute("UPDATE runs SET passed = 30, failed = 0 WHERE release_id = 'rel-bad'").rowcount == 1
    try:
        b = _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)
    except StoreUnavailable:
        return
    with b:
        (run,) = b.runs("rel-bad")
        assert (run.passed, run.failed) == (0, 30)


def test_a_forged_decision_in_the_shared_cache_is_not_served(pg_url, tmp_path):
    """PostgreSQL insider (no reviewer key): replace the cached decision of a blocked release with an 'approved'
    one carrying a correct self-digest. CI's `gate` on another machine must not return it: each machine keeps its own
    decision cache in its own file."""
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    policy = load_policy(POLICY)
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        real = gate_release(a, policy, "rel-bad", None, None, no_baseline=True)
    assert real.status == "blocked"
    forged = real.model_copy(update={
        "status": "approved", "blockers": [], "warnings": [],
        "gates": [g.model_copy(update={"status": "pass"}) for g in real.gates]}).with_digest()
    with psycopg.connect(pg_url) as con:  # there is no shared cache: the insider plants one
        assert con.execute("SELECT to_regclass('decision_cache')").fetchone()[0] is None
        con.execute("CREATE TABLE decision_cache (judged_key TEXT PRIMARY KEY, decision_digest TEXT, "
                    "decision_json TEXT, stored_at TIMESTAMPTZ)")
        con.execute("INSERT INTO decision_cache SELECT k, %s, %s, now() FROM unnest(%s::text[]) k",
                    [forged.digest, forged.model_dump_json(), ["*"]])
    with _team(tmp_path / "ci.duckdb", pg_url, data) as ci:
        served = gate_release(ci, policy, "rel-bad", None, None, no_baseline=True)
    assert served.status == "blocked"


def test_an_object_rewritten_in_place_with_its_mtime_restored_is_never_read(tmp_path):
    """Data-directory insider: overwrite an object's bytes in place (same size, same inode) and restore its mtime
    with utime, in the shared directory and in the process's private copy. Fetch must give the recorded bytes or
    refuse, never the rewritten ones (the private copy is re-verified: ctime, which utime cannot restore, is in the
    key of a remembered hash)."""
    from dashboard.store.objects import ObjectCorrupt, open_objects

    objs = open_objects(str(tmp_path / "data"), cache_dir=tmp_path / "cache")
    src = tmp_path / "x.bin"
    src.write_bytes(b"A" * 4096)
    ref = objs.put("cases/abc/x.parquet", src)
    shared = tmp_path / "data" / "cases" / "abc" / "x.parquet"
    old = time.time_ns() - 10_000_000_000
    os.utime(shared, ns=(old, old))  # an object written a while ago
    private = objs.fetch(ref)
    assert private != shared and private.read_bytes() == b"A" * 4096
    os.utime(private, ns=(old, old))
    assert objs.fetch(ref) == private  # verified and remembered
    for path in (private, shared):
        st = path.stat()
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:  # same inode, same size
            f.write(b"B" * 4096)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    try:
        got = objs.fetch(ref).read_bytes()
    except ObjectCorrupt:
        return
    assert got == b"A" * 4096


@pytest.mark.parametrize("url", [
    "postgresql://nobody@127.0.0.1:1/db?password=S3cretPw&connect_timeout=2",
    "postgresql://nobody:S3cretPw@[::1/db",
    "postgresql://nobody:S3cretPw@127.0.0.1:notaport/db",
])
def test_a_password_in_a_hostile_store_url_is_never_echoed(tmp_path, url):
    """Hostile/mistyped --store: libpq accepts `?password=`; a URL can be malformed. The error must be one plain
    sentence (not 'internal error … this is a bug') that never contains the password."""
    import duckdb

    duckdb.connect(str(tmp_path / "c.duckdb")).close()
    env = {**os.environ, "READINESS_STORE": url, "READINESS_DATA": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "releases", "--db", str(tmp_path / "c.duckdb")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert "S3cretPw" not in r.stdout + r.stderr


def test_a_password_in_the_store_url_userinfo_is_redacted(tmp_path):
    """The well-formed case holds: postgresql://user:PASSWORD@host is shown with ***."""
    import duckdb

    duckdb.connect(str(tmp_path / "c.duckdb")).close()
    env = {**os.environ, "READINESS_STORE": "postgresql://nobody:S3cretPw@127.0.0.1:1/db?connect_timeout=2",
           "READINESS_DATA": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "releases", "--db", str(tmp_path / "c.duckdb")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "cannot reach the shared store" in r.stderr
    assert "S3cretPw" not in r.stdout + r.stderr and "***" in r.stderr


# ----- attacks that are refused today (must stay refused) ----------------------------------------------------------

@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc/passwd", "cases/../../x.parquet", "cases/a\nb"])
def test_a_hostile_object_name_in_postgresql_is_refused_without_reading_it(pg_url, tmp_path, name):
    """PostgreSQL insider: a sources row naming a path outside the data directory is refused, no traceback, and the
    new machine's copy stays empty."""
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        con.execute("UPDATE sources SET object_name = %s WHERE release_id = 'rel-good'", [name])
    with pytest.raises(ReadinessError, match="object name|names object"):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)
    with Store(tmp_path / "b.duckdb", read_only=True) as b:
        assert b.releases() == []


def test_a_swapped_object_file_is_refused(pg_url, tmp_path):
    """Data-directory insider: replace rel-good's object by rel-bad's (a valid Parquet file with the same rows
    count). The recorded sha256 catches it; nothing is copied."""
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        rows = dict(con.execute("SELECT release_id, object_name FROM sources").fetchall())
    good, bad = data / rows["rel-good"], data / rows["rel-bad"]
    good.chmod(0o644)
    good.write_bytes(bad.read_bytes())
    with pytest.raises(ReadinessError, match="damaged or was changed"):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)


def test_a_symlinked_object_pointing_elsewhere_is_refused(pg_url, tmp_path):
    """Data-directory insider: replace an object by a symlink to another Parquet file: refused by digest."""
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        rows = dict(con.execute("SELECT release_id, object_name FROM sources").fetchall())
    good, bad = data / rows["rel-good"], data / rows["rel-bad"]
    good.unlink()
    good.symlink_to(bad)
    with pytest.raises(ReadinessError, match="damaged or was changed|bytes"):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)


def test_a_deleted_object_is_refused(pg_url, tmp_path):
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    for p in (data / "cases").rglob("*.parquet"):
        p.unlink()
    with pytest.raises(ReadinessError, match="missing"):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)


@pytest.mark.parametrize("edit", ["records = records + 1", "records = records - 1"])
def test_a_sources_row_with_an_edited_record_count_is_refused(pg_url, tmp_path, edit):
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        con.execute(f"UPDATE sources SET {edit} WHERE release_id = 'rel-good'")  # noqa: S608
    with pytest.raises(StoreUnavailable, match="rows, PostgreSQL says"):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)


@pytest.mark.parametrize("columns", ["case_id, run_id", "* EXCLUDE (passed)", "* RENAME (passed AS ok)"])
def test_a_parquet_object_with_missing_or_renamed_columns_is_refused_without_traceback(pg_url, tmp_path, columns):
    """Insider with both PostgreSQL and the data directory: an object with the wrong columns (and a matching digest
    recorded) is refused as a plain StoreUnavailable, not a DuckDB traceback; the copy stays empty."""
    import duckdb

    from dashboard.store.objects import _sha256_file

    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        name = con.execute("SELECT object_name FROM sources WHERE release_id = 'rel-good'").fetchone()[0]
    obj = data / name
    evil = tmp_path / "evil.parquet"
    duckdb.sql(f"COPY (SELECT {columns} FROM read_parquet('{obj}')) TO '{evil}' (FORMAT parquet)")  # noqa: S608
    obj.chmod(0o644)
    obj.write_bytes(evil.read_bytes())
    with psycopg.connect(pg_url) as con:
        con.execute("UPDATE sources SET object_sha256 = %s, object_size = %s WHERE release_id = 'rel-good'",
                    [_sha256_file(obj), obj.stat().st_size])
    with pytest.raises(StoreUnavailable):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)
    with Store(tmp_path / "b.duckdb", read_only=True) as b:
        assert b.releases() == []


def test_a_garbage_object_with_a_matching_digest_is_refused_without_traceback(pg_url, tmp_path):
    """Insider with both: the 'Parquet' object is random bytes (digest recorded to match): a plain refusal."""
    from dashboard.store.objects import _sha256_file

    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        name = con.execute("SELECT object_name FROM sources WHERE release_id = 'rel-good'").fetchone()[0]
    obj = data / name
    obj.chmod(0o644)
    obj.write_bytes(b"PAR1" + os.urandom(5000) + b"PAR1")
    with psycopg.connect(pg_url) as con:
        con.execute("UPDATE sources SET object_sha256 = %s, object_size = %s WHERE release_id = 'rel-good'",
                    [_sha256_file(obj), obj.stat().st_size])
    with pytest.raises(StoreUnavailable):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)


@pytest.mark.parametrize(("table", "edit"), [
    ("policies", "policy_json = replace(policy_json, 'blocker', 'warning')"),
    ("releases", "release_id = 'rel-other'"),
])
def test_other_edited_rows_are_refused(pg_url, tmp_path, table, edit):
    """PostgreSQL insider: a policy loosened in place, or a release renamed (its manifest names another id)."""
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        gate_release(a, load_policy(POLICY), "rel-good", None, None, no_baseline=True)  # stores the policy
    with psycopg.connect(pg_url) as con:
        assert con.execute(f"UPDATE {table} SET {edit} WHERE "  # noqa: S608
                           + ("release_id = 'rel-good'" if table == "releases" else "true")).rowcount >= 1
    with pytest.raises(StoreUnavailable, match="does not match its digest"):
        _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)


def test_s3_credentials_in_the_data_location_are_refused_and_not_echoed(tmp_path):
    import duckdb

    duckdb.connect(str(tmp_path / "c.duckdb")).close()
    env = {**os.environ, "READINESS_STORE": "postgresql://127.0.0.1:1/db?connect_timeout=1",
           "READINESS_DATA": "s3://AKIAEXAMPLE:TopSecretKey@bucket/prefix"}
    r = subprocess.run([sys.executable, "-m", "dashboard.cli", "releases", "--db", str(tmp_path / "c.duckdb")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert "TopSecretKey" not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


# ----- races between machines ---------------------------------------------------------------------------------------

def test_a_race_ingesting_one_file_with_different_options_does_not_leave_two_machines_disagreeing(pg_url, tmp_path):
    """Two CI jobs ingest the same Ragas file into the same release at the same time with different --default-risk
    (low vs critical). Whatever wins, machine B's copy must end up with the cases every other machine reads (or B
    must be refused); B is refused (the file's rows differ from what A published) and its next open reads A's
    'critical' cases like a fresh machine C."""
    from dashboard import demo
    from dashboard.ingesting import ingest
    from dashboard.store import team

    pf = REPO / "tests" / "fixtures" / "tools" / "ragas" / "results.jsonl"
    opts = {"dataset": "case_policy_golden", "pass_if": "non_llm_string_similarity>=0.5"}
    base = demo.manifest_for(demo.STORIES[0])
    rid = base.release_id
    data = tmp_path / "data"
    with _team(tmp_path / "b.duckdb", pg_url, data) as b:
        real_publish = team.TeamStore._publish

        def a_publishes_first(self, cur):  # A's ingest lands after B's copy was brought up to date
            with _team(tmp_path / "a.duckdb", pg_url, data) as a:
                ingest(a, [str(pf)], rid, base, default_risk="critical", **opts)
            real_publish(self, cur)

        b._publish = a_publishes_first.__get__(b)  # type: ignore[method-assign]
        with pytest.raises(ReadinessError, match="published to the team store by another machine with other rows"):
            ingest(b, [str(pf)], rid, base, default_risk="low", **opts)
        del b._publish
    with _team(tmp_path / "b.duckdb", pg_url, data, read_only=True) as b:  # B's next open takes A's rows
        on_b = _fingerprint(b, rid)
    with _team(tmp_path / "c.duckdb", pg_url, data, read_only=True) as c:
        on_c = _fingerprint(c, rid)
        assert on_c[0][0] == 6 and on_c[0][1] == "critical"  # A's ingest landed
    assert on_b == on_c


def test_a_hand_edited_local_copy_cannot_decide_for_every_other_machine(pg_url, tmp_path):
    """Insider with their own machine only (their --db file, the team's ordinary PostgreSQL credentials that every
    CI job has): edit rel-bad's cases in the local copy to passing and run `gate` once. Another machine's `gate`
    must judge its own (correct) copy: the decision cache is never shared, so the edited machine's 'approved' is
    not served."""
    import duckdb

    from dashboard.store import stats

    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    policy = parse_policy(SIMPLE)
    with _team(tmp_path / "x.duckdb", pg_url, data) as x:
        assert gate_release(x, policy, "rel-bad", None, None, no_baseline=True, cache=False).status == "blocked"
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    (src, n), = con.execute("SELECT source_digest, records FROM sources WHERE release_id = 'rel-bad'").fetchall()
    con.execute("UPDATE cases SET passed = true WHERE release_id = 'rel-bad'")
    con.execute("DELETE FROM run_stats WHERE release_id = 'rel-bad'")
    stats.record(con, "rel-bad", src, n)
    con.close()
    with _team(tmp_path / "x.duckdb", pg_url, data) as x:
        assert gate_release(x, policy, "rel-bad", None, None, no_baseline=True).status == "approved"  # cached
    with _team(tmp_path / "y.duckdb", pg_url, data) as y:
        assert gate_release(y, policy, "rel-bad", None, None, no_baseline=True, cache=False).status == "blocked"
        assert gate_release(y, policy, "rel-bad", None, None, no_baseline=True).status == "blocked"


# ----- more PostgreSQL insider edits ----------------------------------------------------------------------------------

def test_a_releases_row_whose_columns_disagree_with_its_manifest_is_refused(pg_url, tmp_path):
    """PostgreSQL insider: leave manifest_json alone, edit the columns: environment 'production', a baseline the
    manifest does not name. The dashboard picks 'the manifest's baseline' from that column, so it would judge
    against the insider's baseline while CI (which reads the manifest) judges against the real one."""
    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        assert con.execute("UPDATE releases SET environment = 'production', baseline_release_id = 'rel-good', "
                           "application_version = 'forged' WHERE release_id = 'rel-bad'").rowcount == 1
    try:
        b = _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)
    except StoreUnavailable:
        return
    with b:
        row = next(r for r in b.releases() if r.release_id == "rel-bad")
        m = b.manifest("rel-bad")
        assert (row.environment, row.baseline_release_id, row.application_version) == (
            m.environment, m.baseline_release_id, m.application_version)


def test_a_run_deleted_in_postgresql_is_noticed(pg_url, tmp_path):
    """PostgreSQL insider: delete the failing file of a release (its sources and runs rows; the object stays).
    A machine whose copy has the run must notice (refuse to go on) rather than keep a second answer for the
    release."""
    from dashboard.ingesting import ingest

    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    m, _ = _release(tmp_path, "rel-bad")
    extra = write_jsonl(tmp_path / "extra.jsonl", [good_case(case_id=f"e{i}", run_id="rel-bad-extra",
                                                             dataset=next(iter(_manifest(m).eval_dataset_versions)),
                                                             dataset_version=next(iter(
                                                                 _manifest(m).eval_dataset_versions.values())))
                                                   for i in range(5)])
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        ingest(a, [str(extra)], "rel-bad")
        on_a = sorted(r.run_id for r in a.runs("rel-bad"))
    assert on_a == ["rel-bad-extra", "rel-good-run"]
    with psycopg.connect(pg_url) as con:
        con.execute("DELETE FROM runs WHERE release_id = 'rel-bad' AND run_id = 'rel-good-run'")
        con.execute("DELETE FROM sources WHERE release_id = 'rel-bad' AND records = 30")
        con.execute("UPDATE team_meta SET generation = generation + 1")
    with pytest.raises(StoreUnavailable, match="no longer has (runs|sources) rows this copy has"):
        _team(tmp_path / "a.duckdb", pg_url, data, read_only=True)  # a copy made before notices
    # A copy made after cannot know (nothing anchors unreviewed runs); a reviewed decision's runs are checked by
    # `review verify` (test_a_reviewed_run_deleted_from_the_store_fails_review_verification).


def test_a_reviewed_run_deleted_from_the_store_fails_review_verification(demo_store, tmp_path):
    """Insider deleting (or re-pointing) a run that a signed review's gate decision judged: `review verify` reports
    it, in any store mode (the signed decision names every run's data digest)."""
    import shutil

    from dashboard.core.reviews import load_trusted
    from dashboard.reviewing import verify_store

    demo_store.query("CHECKPOINT")
    path = tmp_path / "copy.duckdb"
    shutil.copy(demo_store.path, path)
    trusted = load_trusted(REPO / "data" / "reviewers" / "trusted_reviewers.yaml")
    reviewed = "rel-2026.11.0-rc1"
    env = {**os.environ, "DEMO_PASSPHRASE": "readiness-demo", "READINESS_DB": str(path)}
    env.pop("READINESS_STORE", None)
    for args in (["review", "sign", "--release", reviewed, "--decision", "approve", "--key",
                  str(REPO / "data" / "reviewers" / "eng_example.com.key"), "--passphrase-env", "DEMO_PASSPHRASE",
                  "--out", str(tmp_path / "r.json")], ["review", "add", str(tmp_path / "r.json")]):
        done = subprocess.run([sys.executable, "-m", "dashboard.cli", *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    with Store(path) as s:
        assert not [f for f in verify_store(s, trusted).findings if f.level == "error"]
        run = s.query("SELECT run_id FROM runs WHERE release_id = ? ORDER BY run_id LIMIT 1", [reviewed])[0][0]
        s.query("DELETE FROM runs WHERE release_id = ? AND run_id = ?", [reviewed, run])
        errors = [f.message for f in verify_store(s, trusted).findings if f.level == "error"]
    assert any(f"no longer holds run {run} of release {reviewed}" in m for m in errors), errors


def test_an_object_swapped_between_verification_and_read_is_not_loaded(pg_url, tmp_path, monkeypatch):
    """Data-directory insider who wins the window between fetch() (hash checked) and read_parquet (e.g. with
    inotify): the swap is simulated deterministically right after fetch returns. The copy must hold the verified
    bytes (fetch into a private file, hashing while copying) or refuse; today it loads the swapped rows."""
    from dashboard.store import objects

    data = tmp_path / "data"
    _two_releases(tmp_path, pg_url, data)
    with psycopg.connect(pg_url) as con:
        rows = dict(con.execute("SELECT release_id, object_name FROM sources").fetchall())
    good, bad = data / rows["rel-good"], data / rows["rel-bad"]
    real_fetch = objects.DirectoryObjects.fetch

    def fetch_then_swap(self, ref):
        path = real_fetch(self, ref)
        if path == good:
            good.chmod(0o644)
            good.write_bytes(bad.read_bytes())
        return path

    monkeypatch.setattr(objects.DirectoryObjects, "fetch", fetch_then_swap)
    try:
        b = _team(tmp_path / "b.duckdb", pg_url, data, read_only=True)
    except ReadinessError:
        return
    with b:
        assert _pass_rate(b, "rel-good") == [(30, 30)]


# ----- store copy ---------------------------------------------------------------------------------------------------

def _ragas_store(path: Path, risk: str) -> Path:
    from dashboard import demo
    from dashboard.ingesting import ingest

    base = demo.manifest_for(demo.STORIES[0])
    with Store(path) as s:
        ingest(s, [str(REPO / "tests" / "fixtures" / "tools" / "ragas" / "results.jsonl")], base.release_id, base,
               dataset="case_policy_golden", pass_if="non_llm_string_similarity>=0.5", default_risk=risk)
    return path


def test_store_copy_of_the_same_file_read_differently_is_refused_and_copying_twice_is_a_no_op(pg_url, tmp_path):
    """An embedded file holding the same source file (same release, same source digest) read with other options
    than the team store's: the publish keeps the team's rows, and the read-back comparison refuses the copy.
    The team's own file copied twice publishes nothing new the second time."""
    from dashboard.store.team import copy_to_team

    data = tmp_path / "data"
    first = copy_to_team(_ragas_store(tmp_path / "critical.duckdb", "critical"), pg_url, str(data))
    assert first.cases == 6
    with psycopg.connect(pg_url) as con:
        gen = con.execute("SELECT generation FROM team_meta").fetchone()[0]
    again = copy_to_team(tmp_path / "critical.duckdb", pg_url, str(data))
    assert again == first
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT generation FROM team_meta").fetchone()[0] == gen
    with pytest.raises(ReadinessError, match="with other rows|does not read back"):
        copy_to_team(_ragas_store(tmp_path / "low.duckdb", "low"), pg_url, str(data))
    with _team(tmp_path / "c.duckdb", pg_url, data, read_only=True) as c:
        assert c.query("SELECT DISTINCT risk FROM cases") == [("critical",)]


def test_one_file_in_two_releases_shares_one_object_and_reingest_publishes_nothing(pg_url, tmp_path):
    """Idempotency: the same file ingested into two releases (their own manifests) is one object referenced by two
    sources rows; re-ingesting either on another machine writes neither PostgreSQL nor the data directory."""
    from dashboard.ingesting import ingest

    data = tmp_path / "data"
    m1, f = _release(tmp_path, "rel-one")
    m2, _ = _release(tmp_path, "rel-two")
    with _team(tmp_path / "a.duckdb", pg_url, data) as a:
        ingest(a, [str(f)], "rel-one", _manifest(m1))
        ingest(a, [str(f)], "rel-two", _manifest(m2))
    objects = sorted(p for p in data.rglob("*.parquet"))
    assert len(objects) == 1
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT count(DISTINCT object_name), count(*) FROM sources").fetchone() == (1, 2)
        gen = con.execute("SELECT generation FROM team_meta").fetchone()[0]
    with _team(tmp_path / "b.duckdb", pg_url, data) as b:
        assert b.query("SELECT release_id, count(*) FROM cases GROUP BY ALL ORDER BY ALL") == [
            ("rel-one", 30), ("rel-two", 30)]
        for rid in ("rel-one", "rel-two"):
            assert ingest(b, [str(f)], rid).files[0].status == "unchanged"
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT generation FROM team_meta").fetchone()[0] == gen
    assert sorted(p for p in data.rglob("*") if p.is_file()) == objects
