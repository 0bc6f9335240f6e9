"""Ingest: every record validated, one transaction, idempotent, and clear errors that name file, line, field."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from dashboard import demo
from dashboard.core.errors import InputRefused
from dashboard.ingesting import ingest
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
    "too many slice keys": ([good_case(), good_case(case_id="c2", slices={f"k{i}": "v" for i in range(65)})],
                            "line 2: slices", "at most 64"),
    "too many score keys": ([good_case(scores={f"s{i}": 0.5 for i in range(1001)})], "line 1: scores", "at most 1000"),
    "count beyond 64 bits": ([good_case(), good_case(case_id="c2", input_tokens=2**64)], "line 2: input_tokens",
                             "less than or equal to 9223372036854775807"),
    "deep nesting": ([good_case(), '{"case_id": ' + "[" * 50_000], "line 2", "malformed JSON"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_clearly_and_nothing_is_written(store, tmp_path, name):
    """Test that each bad-input class names file, line and field, and leaves every table unchanged."""
    records, where, what = BAD_INPUTS[name]
    ok = write_jsonl(tmp_path / "ok.jsonl", [good_case(case_id="ok-1", run_id="ok-run")])
    bad = write_jsonl(tmp_path / "bad.jsonl", records)
    before = store.table_counts()
    with pytest.raises(InputRefused) as err:
        ingest(store, [ok, bad], BASELINE)  # the good file is rolled back with the bad one
    message = str(err.value)
    assert str(bad) in message
    assert where in message
    assert what in message
    assert store.table_counts() == before


def test_good_file_is_stored_with_runs_and_digests(store, tmp_path):
    """Test that a valid file lands with per-run counts, a source digest and computed content digests."""
    recs = [good_case(case_id=f"c{i}", passed=i % 4 != 0) for i in range(20)]
    path = write_jsonl(tmp_path / "run.jsonl", recs)
    report = ingest(store, [path], BASELINE)
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
    ingest(store, [path], BASELINE)
    counts = store.table_counts()
    again = ingest(store, [path], BASELINE)
    assert again.files[0].status == "unchanged"
    assert store.table_counts() == counts


def test_a_changed_file_for_a_stored_run_is_refused(store, tmp_path):
    """Test that a different file claiming an already stored run id is refused as a conflict."""
    ingest(store, [write_jsonl(tmp_path / "a.jsonl", [good_case(run_id="r1")])], BASELINE)
    counts = store.table_counts()
    with pytest.raises(InputRefused, match="already stored from another file"):
        ingest(store, [write_jsonl(tmp_path / "b.jsonl", [good_case(run_id="r1", passed=False)])], BASELINE)
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
        ingest(store, [path], "rel-unknown")


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
        ingest(s, [path], manifest.release_id)
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
        ingest(store, [path], BASELINE)
    assert store.table_counts()["cases"] == 0


def test_unreadable_parquet_is_refused(store, tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(InputRefused, match="broken.parquet"):
        ingest(store, [path], BASELINE)
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


# ----- hostile input (issue 12 items 5, 7, 8, 9; issue 11 "names are data") ---------------------------------------
CSV_HEADER = "case_id,suite,dataset,dataset_version,risk,passed"
CSV_ROW = "c1,rag_policy_qa,case_policy_golden,eval.case_policy_golden.v9,high,true"


def test_a_utf8_bom_in_a_csv_is_accepted(store, tmp_path):
    """Excel writes a byte-order mark: the first column is `case_id`, not `\\ufeffcase_id`."""
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + CSV_HEADER + "\n" + CSV_ROW + "\n").encode("utf-8"))
    assert ingest(store, [path], BASELINE).files[0].records == 1
    from dashboard.importers.native import diagnose

    assert diagnose(path, "csv", "sha256:" + "0" * 64) == []


@pytest.mark.parametrize("encoding, where, what", [("utf-16", "", "UTF-16"), ("latin-1", "line 2", "not UTF-8")])
def test_a_csv_in_another_encoding_is_refused_clearly(store, tmp_path, encoding, where, what):
    path = tmp_path / "legacy.csv"
    path.write_bytes((CSV_HEADER + "\n" + CSV_ROW.replace("c1", "café") + "\n").encode(encoding))
    with pytest.raises(InputRefused) as e:
        ingest(store, [path], BASELINE)
    assert str(path) in str(e.value) and where in str(e.value) and what in str(e.value)
    assert store.table_counts()["cases"] == 0


def test_names_are_data_commas_quotes_and_dollars(store, tmp_path):
    """A suite name with a comma (promptfoo's description) is one suite; a CSV column `scores.$default_run` is a
    score, not a piece of SQL."""
    path = write_jsonl(tmp_path / "comma.jsonl", [good_case(suite="support bot (baseline, prompt v1)", run_id=None),
                                                  good_case(case_id="c2", suite="support bot (baseline, prompt v1)")])
    report = ingest(store, [path], BASELINE)
    assert [r.suite for r in store.runs(BASELINE)] == ["support bot (baseline, prompt v1)"]
    assert report.files[0].runs[0].startswith("support bot (baseline, prompt v1)@")
    csv_path = tmp_path / "dollar.csv"
    csv_path.write_text(CSV_HEADER.replace("case_id", "run_id,case_id") + ',scores.$default_run,slices.a"b\'c\n'
                        + "r-csv," + CSV_ROW + ",0.25,x\n", encoding="utf-8")
    ingest(store, [csv_path], BASELINE)
    assert store.query("SELECT scores['$default_run'], slices['a\"b''c'] FROM cases WHERE run_id = 'r-csv'") == [
        (0.25, "x")]
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [good_case(run_id="m", suite="a"),
                                                   good_case(run_id="m", case_id="c2", suite="b")])
    with pytest.raises(InputRefused, match="mixes suites"):
        ingest(store, [mixed], BASELINE)


def test_distinct_keys_per_file_are_capped(store, tmp_path, monkeypatch):
    from dashboard.store import db

    monkeypatch.setattr(db, "MAX_DISTINCT_KEYS", 5)
    path = write_jsonl(tmp_path / "many.jsonl", [good_case(case_id=f"c{i}", slices={f"d{i}": "v"}) for i in range(6)])
    with pytest.raises(InputRefused, match="slices: the file names 6 distinct slice dimensions, more than the limit of 5"):
        ingest(store, [path], BASELINE)
    assert store.table_counts()["cases"] == 0


def _cli(*args: str, timeout: float = 30):
    import subprocess
    import sys

    def limit_memory() -> None:  # the old behaviour (reading /dev/zero whole) fails here instead of exhausting RAM
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit_memory)


@pytest.mark.parametrize("args", [("policy", "check", "{}"),
                                  ("ingest", "x.jsonl", "--release", "r", "--manifest", "{}", "--db", "s.duckdb"),
                                  ("status", "--release", "r", "--trusted", "{}", "--db", "s.duckdb"),
                                  ("review", "verify", "--bundle", "{}", "--trusted",
                                   "data/reviewers/trusted_reviewers.yaml", "--db", "s.duckdb"),
                                  ("review", "add", "{}", "--db", "s.duckdb")])
def test_devices_and_fifos_are_refused_not_read_forever(tmp_path, args):
    """`/dev/zero` would be read until memory runs out, a FIFO would block forever: only regular files are read.
    (In a subprocess with a timeout, so the old behaviour fails the test instead of hanging it.)"""
    import os
    import time

    from dashboard.store.db import Store

    Store(tmp_path / "s.duckdb").close()  # an existing store, so the command gets as far as reading the file
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for target, kind in (("/dev/zero", "a device"), (str(fifo), "a pipe (FIFO)")):
        t0 = time.perf_counter()
        done = _cli(*[a.replace("{}", target).replace("s.duckdb", str(tmp_path / "s.duckdb")) for a in args])
        assert done.returncode in (1, 2) and f"it is {kind}; only regular files are read" in done.stderr
        assert "Traceback" not in done.stderr and time.perf_counter() - t0 < 25


def test_eval_and_evidence_files_must_be_regular_files(store, tmp_path):
    import os

    from dashboard.core.manifests import load_structured

    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    for target, kind in (("/dev/zero", "a device"), (str(fifo), "a pipe (FIFO)"), (str(tmp_path), "a directory")):
        with pytest.raises(InputRefused) as e:
            ingest(store, [target], BASELINE)
        assert f"{target}: cannot read eval file: it is {kind}; only regular files are read" in str(e.value)
        with pytest.raises(InputRefused) as e:
            load_structured(target)
        assert f"it is {kind}" in str(e.value)


def test_oversized_documents_are_refused_with_the_limit(tmp_path):
    from dashboard.core.errors import MAX_DOCUMENT_BYTES
    from dashboard.core.manifests import load_manifest, load_structured

    big = tmp_path / "evidence.yaml"
    with open(big, "wb") as f:
        f.truncate(MAX_DOCUMENT_BYTES + 1)  # sparse: no disk, no memory
    for fn in (load_structured, load_manifest):
        with pytest.raises(InputRefused, match="more than the limit of 16,777,216 bytes"):
            fn(big)
    from dashboard.core.policy import load_policy

    with pytest.raises(InputRefused, match="more than the limit"):
        load_policy(big)


@pytest.mark.parametrize("suffix, text", [(".yaml", "a: " + "[" * 100_000), (".json", "[" * 100_000),
                                          (".yaml", "a: &a [x]\n" + "".join(f"b{i}: &b{i} [*{'a' if i == 0 else f'b{i - 1}'}"
                                                                           f"{f', *b{i - 1}' * 9 if i else ''}]\n"
                                                                           for i in range(9))),
                                          (".yaml", "a: &a [*a]\n")])
def test_deep_nesting_and_alias_bombs_in_documents_are_refused(tmp_path, suffix, text):
    """Manifest, policy and evidence: RecursionError on deep nesting (and alias bombs) becomes a clear refusal."""
    from dashboard.core.manifests import load_manifest, load_structured
    from dashboard.core.policy import load_policy

    path = tmp_path / f"doc{suffix}"
    path.write_text(text, encoding="utf-8")
    for fn in (load_structured, load_manifest, load_policy):
        with pytest.raises(InputRefused, match="nested more than 64 levels deep, or more than 2,000,000 values"):
            fn(path)


def test_a_parquet_struct_with_an_empty_key_is_refused_and_the_store_survives(store, tmp_path):
    """Found by fuzzing: casting such a struct to a MAP is an INTERNAL error in DuckDB that invalidates the whole
    database (every later query fails until a restart): a DoS of the dashboard by one uploaded file."""
    import pyarrow.parquet as pq

    path = tmp_path / "empty-key.parquet"
    pq.write_table(pa.Table.from_pylist([good_case(counters={"": 1, "x": None})]), path)
    with pytest.raises(InputRefused, match="empty-key.parquet"):  # named by the record-level diagnosis
        ingest(store, [path], BASELINE)
    ok = write_jsonl(tmp_path / "ok.jsonl", [good_case()])
    assert ingest(store, [ok], BASELINE).files[0].records == 1  # the store still works


@pytest.mark.parametrize("raw", [b"\r\x00", b"a\x00b\n1\n", b'"\n'])
def test_a_csv_header_the_csv_module_rejects_is_refused(store, tmp_path, raw):
    path = tmp_path / "odd.csv"
    path.write_bytes(raw)
    with pytest.raises(InputRefused, match="odd.csv"):
        ingest(store, [path], BASELINE)
