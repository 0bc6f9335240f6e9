"""The `readiness` command line: outputs and exit codes (0 ok, 1 refused, 2 usage)."""

from __future__ import annotations

import json

import pytest

from dashboard.cli import main
from dashboard.core.models import EvalCase
from dashboard.store.schema import CASE_COLUMNS
from tests.conftest import REPO, good_case, write_jsonl

MANIFEST = REPO / "data" / "demo" / "rel-2026.10.0" / "manifest.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_store_columns_mirror_the_native_record():
    """Test that the cases table and the Pydantic record stay in lock-step."""
    assert list(CASE_COLUMNS) == list(EvalCase.model_fields)


def test_ingest_releases_runs_round_trip(capsys, tmp_path):
    db = str(tmp_path / "s.duckdb")
    path = write_jsonl(tmp_path / "r.jsonl", [good_case(case_id=f"c{i}", passed=i != 0) for i in range(5)])
    code, out, _ = run(capsys, "ingest", str(path), "--release", "rel-2026.10.0", "--manifest", str(MANIFEST),
                       "--db", db)
    assert code == 0 and "ingested 5 cases" in out
    code, out, _ = run(capsys, "ingest", str(path), "--release", "rel-2026.10.0", "--db", db)
    assert code == 0 and "already ingested" in out
    code, out, _ = run(capsys, "runs", "--release", "rel-2026.10.0", "--format", "json", "--db", db)
    runs = json.loads(out)
    assert code == 0 and len(runs) == 1
    assert set(runs[0]) == {"run_id", "suite", "dataset_version", "cases", "passed", "failed", "source_digest"}
    assert (runs[0]["cases"], runs[0]["passed"], runs[0]["failed"]) == (5, 4, 1)
    code, out, _ = run(capsys, "releases", "--format", "json", "--db", db)
    assert json.loads(out)[0]["manifest_digest"].startswith("sha256:")


def test_refused_input_exits_1_with_the_location(capsys, tmp_path):
    db = str(tmp_path / "s.duckdb")
    bad = write_jsonl(tmp_path / "bad.jsonl", [good_case(), good_case(case_id="c2", risk="severe")])
    code, _, err = run(capsys, "ingest", str(bad), "--release", "rel-2026.10.0", "--manifest", str(MANIFEST),
                       "--db", db)
    assert code == 1
    assert "bad.jsonl:line 2: risk" in err and "nothing was written" in err


def test_usage_errors_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["ingest"])
    assert e.value.code == 2
    code, _, err = run(capsys, "runs", "--release", "x", "--db", str(tmp_path / "missing.duckdb"))
    assert code == 2 and "no store" in err


def test_schema_is_valid_json_schema(capsys):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and "case_id" in schema["properties"] and schema["additionalProperties"] is False


def test_validate_reports_nested_unknown_fields(capsys, tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [good_case(trajectory={"steps": [{"tool": "x", "oops": 1}]})])
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1 and "trajectory.steps.0.oops: unknown field" in err


def test_demo_out_writes_manifests_and_runs(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path / "d"), "--cases", "50")
    assert code == 0
    assert len(list((tmp_path / "d").rglob("*.jsonl"))) == 15
    assert len(list((tmp_path / "d").rglob("manifest.yaml"))) == 5
