"""Ingest: every record validated, one transaction, idempotent, and clear errors that name file, line, field."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from dashboard import demo
from dashboard.core.errors import InputRefused
from dashboard.store.db import Store
from tests.conftest import BASELINE, good_case, write_jsonl

BAD_INPUTS = {
    "malformed JSON line": ([good_case(), '{"case_id": "c2", '], "line 2", "malformed JSON"),
    "wrong type": ([good_case(), good_case(case_id="c2", latency_ms="fast")], "line 2: latency_ms", "number"),
    "missing required field": ([good_case(), {k: v for k, v in good_case(case_id="c2").items() if k != "risk"}],
                               "line 2: risk", "Field required"),
    "duplicate case_id": ([good_case(), good_case()], "line 2: case_id", "duplicate case_id 'c1'"),
    "unknown enum value": ([good_case(risk="severe")], "line 1: risk", "'critical'"),
    "NaN number": ([good_case(), json.dumps(good_case(case_id="c2")).replace("1200.5", "NaN")],
                   "line 2: latency_ms", "finite"),
    "NaN in a score": ([good_case(scores={"groundedness": "NaN"})], "line 1: scores.groundedness", "finite"),
    "inf number": ([good_case(cost_usd=1e999)], "line 1: cost_usd", "finite"),
    "negative counter": ([good_case(counters={"unauthorized_retrieval": -1})], "counters.unauthorized_retrieval",
                         "greater than or equal to 0"),
    "unknown field": ([good_case(latencyms=3)], "line 1: latencyms", "unknown field"),
    "unknown trajectory status": ([good_case(trajectory={"final_status": "done"})],
                                  "line 1: trajectory.final_status", "completed"),
    "empty file": ([], "", "holds no records"),
    "manifest mismatch": ([good_case(dataset_version="eval.case_policy_golden.v8")], "dataset_version",
                          "does not match the manifest"),
    "dataset not in manifest": ([good_case(dataset="other_golden")], "dataset_version", "does not list"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_clearly_and_nothing_is_written(store, tmp_path, name):
    """Test that each bad-input class names file, line and field, and leaves every table unchanged."""
    records, where, what = BAD_INPUTS[name]
    ok = write_jsonl(tmp_path / "ok.jsonl", [good_case(case_id="ok-1", run_id="ok-run")])
    bad = write_jsonl(tmp_path / "bad.jsonl", records)
    before = store.table_counts()
    with pytest.raises(InputRefused) as err:
        store.ingest([ok, bad], BASELINE)  # the good file is rolled back with the bad one
    message = str(err.value)
    assert str(bad) in message
    assert where in message
    assert what in message
    assert store.table_counts() == before


def test_good_file_is_stored_with_runs_and_digests(store, tmp_path):
    """Test that a valid file lands with per-run counts, a source digest and computed content digests."""
    recs = [good_case(case_id=f"c{i}", passed=i % 4 != 0) for i in range(20)]
    path = write_jsonl(tmp_path / "run.jsonl", recs)
    report = store.ingest([path], BASELINE)
    assert report.files[0].status == "ingested" and report.files[0].records == 20
    runs = store.runs(BASELINE)
    assert len(runs) == 1
    assert (runs[0].cases, runs[0].passed, runs[0].failed) == (20, 15, 5)
    assert runs[0].run_id.startswith("rag_policy_qa@")
    assert runs[0].source_digest == report.files[0].source_digest
    digests = store.query("SELECT count(DISTINCT content_digest) FROM cases WHERE content_digest LIKE 'sha256:%'")
    assert digests[0][0] == 1  # identical input/expected (none) -> identical content digest


def test_reingesting_the_same_file_is_a_no_op(store, tmp_path):
    """Test that the same bytes ingested twice are stored once and reported as unchanged."""
    path = write_jsonl(tmp_path / "run.jsonl", [good_case()])
    store.ingest([path], BASELINE)
    counts = store.table_counts()
    again = store.ingest([path], BASELINE)
    assert again.files[0].status == "unchanged"
    assert store.table_counts() == counts


def test_a_changed_file_for_a_stored_run_is_refused(store, tmp_path):
    """Test that a different file claiming an already stored run id is refused as a conflict."""
    store.ingest([write_jsonl(tmp_path / "a.jsonl", [good_case(run_id="r1")])], BASELINE)
    counts = store.table_counts()
    with pytest.raises(InputRefused, match="already stored from another file"):
        store.ingest([write_jsonl(tmp_path / "b.jsonl", [good_case(run_id="r1", passed=False)])], BASELINE)
    assert store.table_counts() == counts


def test_a_different_manifest_for_a_stored_release_is_refused(store):
    """Test that a release's manifest can never be silently replaced."""
    changed = demo.manifest_for(demo.STORIES[0]).model_copy(update={"code_commit": "deadbee"})
    with pytest.raises(InputRefused, match="different manifest"):
        store.put_manifest(changed)
    assert store.put_manifest(demo.manifest_for(demo.STORIES[0])) == "unchanged"


def test_unknown_release_without_manifest_is_refused(store, tmp_path):
    path = write_jsonl(tmp_path / "run.jsonl", [good_case()])
    with pytest.raises(InputRefused, match="not in the store"):
        store.ingest([path], "rel-unknown")


def test_csv_and_parquet_hold_the_same_records_as_jsonl(tmp_path):
    """Test that one demo run written as JSONL, CSV and Parquet ingests to identical case rows."""
    manifest, runs = demo.release_runs(demo.STORIES[4], 300)
    table: pa.Table = runs[1]  # the agent suite: trajectories, maps, nulls
    rows = {}
    for fmt in ("jsonl", "csv", "parquet"):
        s = Store(":memory:")
        s.put_manifest(manifest)
        path = tmp_path / f"run.{fmt}"
        s.write_table(table, path, fmt)
        s.ingest([path], manifest.release_id)
        rows[fmt] = s.query("SELECT * EXCLUDE (source_digest) FROM cases ORDER BY case_id")
        s.close()
    assert len(rows["jsonl"]) == 300
    assert rows["csv"] == rows["jsonl"]
    assert rows["parquet"] == rows["jsonl"]


def test_csv_errors_name_the_line_and_field(store, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "case_id,suite,dataset,dataset_version,risk,passed,latency_ms,slices.task\n"
        "c1,rag_policy_qa,case_policy_golden,eval.case_policy_golden.v9,high,true,12,policy_qa\n"
        "c2,rag_policy_qa,case_policy_golden,eval.case_policy_golden.v9,high,true,slow,policy_qa\n"
    )
    with pytest.raises(InputRefused, match=r"bad.csv:line 3: latency_ms"):
        store.ingest([path], BASELINE)
    assert store.table_counts()["cases"] == 0


def test_unreadable_parquet_is_refused(store, tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(InputRefused, match="broken.parquet"):
        store.ingest([path], BASELINE)
    assert store.table_counts()["cases"] == 0


def test_demo_store_holds_every_story(demo_store):
    """Test that the bundled demo has a baseline and four candidates, 3 runs of 2,000 cases each."""
    releases = {r.release_id: r for r in demo_store.releases()}
    assert set(releases) == {s.release_id for s in demo.STORIES}
    assert all(r.runs == 3 and r.cases == 6000 for r in releases.values())
    slices = demo_store.query("SELECT count(DISTINCT slices['task']), count(DISTINCT risk) FROM cases")
    assert slices[0][0] >= 6 and slices[0][1] == 4
    hostile = demo_store.query("SELECT count(*) FROM cases WHERE output LIKE '%<script>%'")
    assert hostile[0][0] > 0


def test_bundled_demo_matches_its_generator(tmp_path):
    """Test that data/demo is exactly what `readiness demo --out ... --file-format parquet` writes today."""
    import filecmp

    from tests.conftest import REPO

    demo.write_demo(tmp_path, 2000, "parquet")
    shipped = REPO / "data" / "demo"
    for path in sorted(shipped.rglob("*")):
        if path.is_file():
            assert filecmp.cmp(path, tmp_path / path.relative_to(shipped), shallow=False), path
