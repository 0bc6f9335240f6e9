"""Property-based fuzzing of every input reader this side owns (issue 12 item 10, issue 11 "names are data").

For any input the only outcomes are success or a clear refusal (`InputRefused`, a `ReadinessError`), in bounded
time: never another exception (a traceback). Inputs are valid files with one node replaced by an arbitrary JSON
value (the way wrong types reach the readers in practice), arbitrary bytes, and hostile names.

Deterministic in CI: `derandomize=True` (the examples depend only on the test), small `max_examples`; the whole
module runs in well under 60 s. Set READINESS_FUZZ_EXAMPLES to run more examples locally.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import demo
from dashboard.core.errors import InputRefused, ReadinessError
from dashboard.core.manifests import load_manifest, load_structured
from dashboard.core.models import ReleaseEvidence
from dashboard.core.policy import load_policy
from dashboard.core.render import to_junit, to_markdown, to_text
from dashboard.importers.native import diagnose
from dashboard.importers.tools import READERS, ImportContext, detect_tool
from dashboard.ingesting import ingest
from dashboard.store.db import Store
from tests.conftest import REPO, good_case
from tests.test_importers import DEEPEVAL, INSPECT_EVAL, INSPECT_JSON, LM_EVAL, PROMPTFOO

EXAMPLES = int(os.environ.get("READINESS_FUZZ_EXAMPLES", "0"))


def fuzz(n: int):
    """Deterministic settings: `n` examples (more with READINESS_FUZZ_EXAMPLES), no per-example deadline (the
    CI host is shared; bounded time is asserted by the dedicated resource tests)."""
    return settings(max_examples=EXAMPLES or n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


CTX = ImportContext(dataset="case_policy_golden", dataset_version="eval.case_policy_golden.v9")
BASE = demo.manifest_for(demo.STORIES[0])

# Scalars that break naive readers: wrong types, NaN/inf, huge ints, control characters, surrogates.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "C", "I", "P", "N", "risk:critical", "\x1b]8;;https://x\x07", "\ud800", "1e999", "-1",
                     "true", "{", "[]", "$default_run", "a,b", "'; DROP TABLE cases; --"]),
)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c,
                                                                                         max_size=3), max_leaves=8)
hostile_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=24)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):  # a few elements per list keep the space small
            out.extend(_paths(v, (*prefix, i)))
    return out


def _replace(doc: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    doc = copy.deepcopy(doc)
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = new
    return doc


@st.composite
def mutated(draw, doc: Any) -> Any:
    """`doc` with one node (anywhere, the root included) replaced by an arbitrary JSON value, or deleted."""
    paths = _paths(doc)
    path = draw(st.sampled_from(paths))
    if path and draw(st.booleans()) and isinstance(path[-1], str):
        doc = copy.deepcopy(doc)
        node = doc
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
        return doc
    return _replace(doc, path, draw(json_values))


def only_success_or_refusal(fn, *args) -> Any:
    """Run a reader: it returns, or refuses with the project's error and a message. Anything else fails."""
    try:
        return fn(*args)
    except ReadinessError as e:
        assert str(e).strip(), "a refusal must say what is wrong"
        return e


# ----- eval-tool importers ----------------------------------------------------------------------------------
def _json_doc(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


PROMPTFOO_DOC = _json_doc(PROMPTFOO)
DEEPEVAL_DOC = _json_doc(DEEPEVAL)
INSPECT_DOC = _json_doc(INSPECT_JSON)
for _doc, _key in ((PROMPTFOO_DOC["results"], "results"), (DEEPEVAL_DOC, "testCases"), (INSPECT_DOC, "samples")):
    _doc[_key] = _doc[_key][:2]  # two records are enough to reach every code path, and keep examples fast


@pytest.mark.parametrize("fmt, doc, name", [("promptfoo", PROMPTFOO_DOC, "results.json"),
                                            ("deepeval", DEEPEVAL_DOC, "test_run_1.json"),
                                            ("inspect", INSPECT_DOC, "log.json")])
def test_tool_json_files_with_any_node_replaced_are_read_or_refused(fmt, doc, name, tmp_path):
    @fuzz(150)
    @given(mutated(doc))
    def check(bad):
        path = tmp_path / name
        path.write_text(json.dumps(bad), encoding="utf-8")
        only_success_or_refusal(READERS[fmt], path, CTX)

    check()


LM_LINES = [json.loads(line) for line in LM_EVAL.read_text(encoding="utf-8").splitlines()[:2]]


@fuzz(150)
@given(mutated(LM_LINES))
def test_lm_eval_samples_with_any_node_replaced_are_read_or_refused(tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("lm")
    path = folder / LM_EVAL.name
    body = "\n".join(json.dumps(x) for x in lines) if isinstance(lines, list) else json.dumps(lines)
    path.write_text(body + "\n", encoding="utf-8")
    only_success_or_refusal(READERS["lm-eval"], path, CTX)


INSPECT_MEMBERS = {}
with zipfile.ZipFile(INSPECT_EVAL) as _zf:
    for _info in _zf.infolist():
        if _info.filename == "header.json" or _info.filename.startswith("samples/"):
            from dashboard.importers.tools import _zip_members  # noqa: E402 (the reader's own zstd support)

            INSPECT_MEMBERS = {k: json.loads(v) for k, v in _zip_members(INSPECT_EVAL).items()
                               if k == "header.json" or k.startswith("samples/")}
            break


@fuzz(80)
@given(st.data())
def test_inspect_eval_zips_with_any_node_replaced_are_read_or_refused(tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(INSPECT_MEMBERS)[:3]))
    members = {**INSPECT_MEMBERS, name: data.draw(mutated(INSPECT_MEMBERS[name]))}
    path = tmp_path_factory.mktemp("inspect") / "log.eval"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in members.items():
            zf.writestr(k, json.dumps(v))
    only_success_or_refusal(READERS["inspect"], path, CTX)


@fuzz(60)
@given(st.data())
def test_corrupted_eval_zip_bytes_are_refused(tmp_path_factory, data):
    raw = bytearray(INSPECT_EVAL.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path_factory.mktemp("zip") / "log.eval"
    path.write_bytes(bytes(raw))
    only_success_or_refusal(READERS["inspect"], path, CTX)


@fuzz(100)
@given(st.binary(max_size=300), st.sampled_from(sorted(READERS)))
def test_arbitrary_bytes_are_refused_by_every_tool_reader(tmp_path_factory, raw, fmt):
    path = tmp_path_factory.mktemp("bytes") / "file.json"
    path.write_bytes(raw)
    detect_tool(path)
    only_success_or_refusal(READERS[fmt], path, CTX)


# ----- native files, through the real ingest path (DuckDB bulk pass, then the record-level diagnosis) -------------
@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("fuzzstore") / "f.duckdb")
    s.put_manifest(BASE)
    yield s
    s.close()


def _ingest(store: Store, path: Path) -> Any:
    result = only_success_or_refusal(ingest, store, [path], BASE.release_id)
    if not isinstance(result, ReadinessError):  # keep the store small: forget what was stored
        store.query("DELETE FROM cases"), store.query("DELETE FROM runs"), store.query("DELETE FROM sources")
    return result


GOOD = good_case(run_id="r1", checks={"grounded": True}, counters={"x": 1}, input="q", expected="a",
                 trace={"request_id": "q1", "evidence_ids": ["D1"]},
                 retrieval={"retrieved_ids": ["D1"], "relevant_ids": ["D1"]},
                 trajectory={"steps": [{"tool": "t", "approved": True}], "final_status": "completed"})


@fuzz(120)
@given(mutated([GOOD, good_case(case_id="c2", run_id="r1")]))
def test_native_jsonl_with_any_node_replaced_is_ingested_or_refused(fuzz_store, tmp_path_factory, records):
    path = tmp_path_factory.mktemp("jsonl") / "cases.jsonl"
    lines = records if isinstance(records, list) else [records]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    _ingest(fuzz_store, path)
    only_success_or_refusal(diagnose, path, "jsonl", "sha256:" + "0" * 64)


@fuzz(60)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_native_files_are_refused(fuzz_store, tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("raw")
    for name in ("x.jsonl", "x.csv", "x.parquet"):
        (folder / name).write_bytes(raw)
        _ingest(fuzz_store, folder / name)


@fuzz(100)
@given(st.dictionaries(st.text(max_size=14), st.text(max_size=10), max_size=4), st.booleans(),
       st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
def test_native_csv_with_hostile_columns_and_cells_is_ingested_or_refused(fuzz_store, tmp_path_factory, extra,
                                                                        keep_required, encoding):
    row = {"case_id": "c1", "suite": "s", "dataset": "case_policy_golden",
           "dataset_version": "eval.case_policy_golden.v9", "risk": "low", "passed": "true"}
    if not keep_required:
        row.pop("risk")
    row.update(extra)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(row))
    w.writeheader()
    w.writerow(row)
    path = tmp_path_factory.mktemp("csv") / "cases.csv"
    try:
        path.write_bytes(buf.getvalue().encode(encoding))
    except UnicodeEncodeError:
        path.write_bytes(buf.getvalue().encode("utf-8"))
    _ingest(fuzz_store, path)


@fuzz(40)
@given(mutated([GOOD]))
def test_native_parquet_with_any_node_replaced_is_ingested_or_refused(fuzz_store, tmp_path_factory, records):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = records if isinstance(records, list) and all(isinstance(r, dict) for r in records) else [GOOD]
    path = tmp_path_factory.mktemp("pq") / "cases.parquet"
    try:
        pq.write_table(pa.Table.from_pylist(rows), path)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return  # not representable in Parquet: nothing to read
    _ingest(fuzz_store, path)


# ----- manifest, policy, evidence ----------------------------------------------------------------------------
MANIFEST = BASE.model_dump(mode="json")
POLICY = yaml.safe_load((REPO / "data" / "policies" / "tiered.yaml").read_text(encoding="utf-8"))
EVIDENCE = {"release_id": BASE.release_id, "release_owner": "a@x", "items": [
    {"kind": "secrets_scan", "passed": True, "ref": "r", "accepted_exceptions": ["CVE-1"]}]}


def _dump(value: Any, suffix: str) -> str:
    return json.dumps(value) if suffix == ".json" else yaml.safe_dump(value, allow_unicode=True)


@fuzz(120)
@given(mutated(MANIFEST), st.sampled_from([".json", ".yaml"]))
def test_manifests_with_any_node_replaced_are_loaded_or_refused(tmp_path_factory, doc, suffix):
    path = tmp_path_factory.mktemp("m") / f"manifest{suffix}"
    path.write_text(_dump(doc, suffix), encoding="utf-8")
    only_success_or_refusal(load_manifest, path)


@fuzz(120)
@given(mutated(POLICY))
def test_policies_with_any_node_replaced_are_loaded_or_refused(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("p") / "policy.yaml"
    path.write_text(_dump(doc, ".yaml"), encoding="utf-8")
    only_success_or_refusal(load_policy, path)


def _load_evidence(path: Path) -> Any:
    from pydantic import ValidationError

    data = load_structured(path)
    try:
        return ReleaseEvidence.model_validate(data)
    except ValidationError as e:
        raise InputRefused(str(e)) from e


@fuzz(100)
@given(mutated(EVIDENCE), st.sampled_from([".json", ".yaml"]))
def test_evidence_with_any_node_replaced_is_loaded_or_refused(tmp_path_factory, doc, suffix):
    path = tmp_path_factory.mktemp("e") / f"evidence{suffix}"
    path.write_text(_dump(doc, suffix), encoding="utf-8")
    only_success_or_refusal(_load_evidence, path)


@fuzz(100)
@given(st.binary(max_size=300), st.sampled_from([".json", ".yaml"]))
def test_arbitrary_bytes_as_manifest_policy_or_evidence_are_refused(tmp_path_factory, raw, suffix):
    path = tmp_path_factory.mktemp("b") / f"doc{suffix}"
    path.write_bytes(raw)
    for fn in (load_manifest, load_policy, _load_evidence):
        only_success_or_refusal(fn, path)


# ----- names are data: ingest, gate and every rendering with hostile names -------------------------------------
@fuzz(12)
@given(suite=hostile_names, run=hostile_names, slice_key=hostile_names, slice_value=hostile_names,
       release=hostile_names)
def test_hostile_names_survive_ingest_gate_and_reports(tmp_path_factory, suite, run, slice_key, slice_value,
                                                       release):
    from dashboard.core.policy import parse_policy
    from dashboard.service import gate_release

    folder = tmp_path_factory.mktemp("names")
    manifest = BASE.model_copy(update={"release_id": release, "baseline_release_id": None})
    store = Store(folder / "n.duckdb")
    try:
        cases = [good_case(case_id=f"c{i}", suite=suite, run_id=run, slices={slice_key: slice_value, "task": "t"},
                           passed=i % 3 != 0) for i in range(6)]
        path = folder / "cases.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
        report = ingest(store, [path], release, manifest)
        assert report.files[0].runs == [run]
        assert [r.suite for r in store.runs(release)] == [suite]
        policy = parse_policy(yaml.safe_dump({
            "policy_id": "names", "version": "1", "gates": [
                {"id": "pass-rate", "name": "pass rate", "category": "quality", "metric": "pass_rate", "condition": ">= 0.5", "severity": "blocker",
                 "slice": {"suite": [suite], "for_each": slice_key}}]}))
        decision = gate_release(store, policy, release, None, None, no_baseline=True)
        from dashboard.reporting import render, report_data

        data = report_data(store, policy, release, None, None, None, no_baseline=True, decision=decision)
        render(data, "md"), render(data, "html")  # the release report (HTML escaping is tested in test_report)
    finally:
        store.close()
    text = to_text(decision)
    assert not any(c in text for c in "\x1b\x07\x9b\x9d\r")
    ET.fromstring(to_junit(decision))  # well-formed XML whatever the names hold
    to_markdown(decision)


@fuzz(40)
@given(st.sampled_from(["promptfoo", "deepeval", "inspect"]), st.data())
def test_tool_files_through_the_whole_ingest_are_stored_or_refused(fuzz_store, tmp_path_factory, fmt, data):
    """Detection, conversion and the DuckDB pass together: a refusal names the tool's file, never the temporary
    JSONL it was converted to."""
    doc = {"promptfoo": PROMPTFOO_DOC, "deepeval": DEEPEVAL_DOC, "inspect": INSPECT_DOC}[fmt]
    path = tmp_path_factory.mktemp("tool") / f"{fmt}.json"
    path.write_text(json.dumps(data.draw(mutated(doc))), encoding="utf-8")
    result = only_success_or_refusal(ingest, fuzz_store, [path], BASE.release_id, None, False, "auto",
                                     "case_policy_golden")
    if isinstance(result, ReadinessError):
        assert "converted.jsonl" not in str(result)
    else:
        fuzz_store.query("DELETE FROM cases"), fuzz_store.query("DELETE FROM runs")
        fuzz_store.query("DELETE FROM sources")


@fuzz(30)
@given(hostile_names, st.sampled_from(["runs", "gate", "status", "evidence"]))
def test_any_release_id_on_the_command_line_is_answered_without_a_traceback(tmp_path_factory, capsys, release,
                                                                           command):
    from dashboard.cli import main

    db = str(tmp_path_factory.mktemp("cli") / "c.duckdb")
    Store(db).close()
    policy = str(REPO / "data" / "policies" / "tiered.yaml")
    argv = {"runs": ["runs", f"--release={release}"],  # `=`: an id may start with '-'
            "gate": ["gate", f"--candidate={release}", "--policy", policy],
            "status": ["status", f"--release={release}", "--policy", policy],
            "evidence": ["evidence", policy, f"--release={release}"]}[command]
    code = main([*argv, "--db", db])
    out, err = capsys.readouterr()
    assert code in (1, 2) and "internal error" not in err and "Traceback" not in err
    assert not any(c in out + err for c in "\x1b\x07\x9b\x9d\r\u202e")
