"""Production observations: the record, `readiness observe` (JSONL, Parquet), errors, one transaction, idempotence."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboard.cli import main
from dashboard.core.errors import InputRefused
from dashboard.ingesting import observe
from dashboard.store.db import Store
from dashboard.store.observations import observation_counts
from tests.conftest import write_jsonl


def obs(i: int, **kw) -> dict:
    rec = {"request_id": f"req-{i}", "time": f"2026-11-20T10:{i % 60:02d}:00Z", "tenant": "acme",
           "slices": {"task": "policy_qa"}, "error": False, "latency_ms": 1000.0 + i, "cost_usd": 0.01,
           "citation_failure": i % 5 == 0, "approval_bypass": False, "scores": {"groundedness": 0.9},
           "answer": f"Answer {i}", "retrieved_ids": ["DOC-1", "DOC-2"],
           "tool_calls": [{"name": "search_cases", "side_effect": False}]}
    rec.update(kw)
    return rec


def test_schema_lists_observation(capsys) -> None:
    """Test that `readiness schema observation` prints the record's JSON Schema with field descriptions."""
    assert main(["schema", "observation"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "request_id" in schema["required"] and "time" in schema["required"]
    assert "approval bypass" in schema["properties"]["approval_bypass"]["description"].lower() or \
        "approval" in schema["properties"]["approval_bypass"]["description"]


def test_observe_jsonl_and_parquet_idempotent(tmp_path: Path, capsys) -> None:
    """Test that JSONL and Parquet files are stored once, and a second call with the same bytes changes nothing."""
    db = str(tmp_path / "s.duckdb")
    a = write_jsonl(tmp_path / "a.jsonl", [obs(i) for i in range(10)])
    rows = [obs(i, variant="canary") for i in range(10, 15)]
    for r in rows:
        r["slices"] = list(r["slices"].items())
        r["scores"] = list(r["scores"].items())
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("request_id", pa.string()), ("time", pa.string()), ("tenant", pa.string()),
        ("slices", pa.map_(pa.string(), pa.string())), ("error", pa.bool_()), ("latency_ms", pa.float64()),
        ("cost_usd", pa.float64()), ("citation_failure", pa.bool_()), ("approval_bypass", pa.bool_()),
        ("scores", pa.map_(pa.string(), pa.float64())), ("answer", pa.string()),
        ("retrieved_ids", pa.list_(pa.string())),
        ("tool_calls", pa.list_(pa.struct([("name", pa.string()), ("side_effect", pa.bool_())]))),
        ("variant", pa.string())]))
    b = tmp_path / "b.parquet"
    pq.write_table(table, b)
    assert main(["observe", str(a), "--release", "rel-1", "--variant", "baseline", "--db", db]) == 0
    assert main(["observe", str(b), "--release", "rel-1", "--db", db]) == 0
    assert "5 canary" in capsys.readouterr().out
    assert main(["observe", str(a), str(b), "--release", "rel-1", "--variant", "baseline", "--db", db]) == 1
    # b's records say canary, --variant says baseline: refused, nothing written
    capsys.readouterr()
    assert main(["observe", str(a), "--release", "rel-1", "--variant", "baseline", "--db", db]) == 0
    assert "already ingested" in capsys.readouterr().out
    with Store(db) as s:
        counts = {(c["release_id"], c["variant"]): c["requests"] for c in observation_counts(s)}
        stored = s.query("SELECT slices['task'], scores['groundedness'], retrieved_ids, tool_calls[1].name "
                         "FROM observations WHERE request_id = 'req-12'")
    assert counts == {("rel-1", "baseline"): 10, ("rel-1", "canary"): 5}
    assert stored == [("policy_qa", 0.9, ["DOC-1", "DOC-2"], "search_cases")]


@pytest.mark.parametrize(("record", "where"), [
    ({"time": "2026-11-20T10:00:00Z"}, "line 2: request_id: Field required"),
    (obs(1, latency_ms=-3), "line 2: latency_ms: Input should be greater than or equal to 0"),
    (obs(1, time="2026-11-20T10:00:00"), "line 2: time: Value error, needs a time zone"),
    (obs(1, surprise=1), "line 2: surprise: unknown field"),
    (obs(1, approval_bypass="maybe"), "line 2: approval_bypass: Input should be a valid boolean"),
    (obs(1, release_id="rel-other"), "line 2: release_id: 'rel-other' is not the release being loaded"),
    (obs(0), "line 2: request_id: 'req-0' (baseline) already appears at line 1"),
    (obs(1, tool_calls=[{"name": "x", "side_effect": "sometimes"}]), "line 2: tool_calls.0.side_effect"),
    ("{not json", "line 2: invalid JSON"),
])
def test_bad_records_name_file_line_field(tmp_path: Path, record, where: str) -> None:
    """Test that every bad record is refused naming the file, its line and the field, and nothing is written."""
    f = write_jsonl(tmp_path / "bad.jsonl", [obs(0), record])
    with Store(tmp_path / "s.duckdb") as s:
        with pytest.raises(InputRefused) as e:
            observe(s, [f], "rel-1", "baseline")
        assert f"{f}:{where}" in str(e.value)
        assert s.query("SELECT count(*) FROM observations") == [(0,)]


def test_one_transaction_and_stored_request_never_changes(tmp_path: Path) -> None:
    """Test that a bad second file leaves the first unstored, and a request id stored from another file is refused."""
    good = write_jsonl(tmp_path / "good.jsonl", [obs(i) for i in range(3)])
    bad = write_jsonl(tmp_path / "bad.jsonl", [obs(7), obs(8, cost_usd="free")])
    with Store(tmp_path / "s.duckdb") as s:
        with pytest.raises(InputRefused, match="bad.jsonl:line 2: cost_usd"):
            observe(s, [good, bad], "rel-1", "baseline")
        assert s.query("SELECT count(*) FROM observations") == [(0,)]
        observe(s, [good], "rel-1", "baseline")
        again = write_jsonl(tmp_path / "again.jsonl", [obs(5), obs(2, latency_ms=1.0)])
        with pytest.raises(InputRefused, match=r"again.jsonl:line 2: request_id: 'req-2' \(baseline\) is already stored"):
            observe(s, [again], "rel-1", "baseline")
        assert s.query("SELECT count(*) FROM observations") == [(3,)]


def test_missing_variant_and_unreadable_files(tmp_path: Path, capsys) -> None:
    """Test that a record without a variant (and no --variant), a FIFO and an empty file are refused clearly."""
    f = write_jsonl(tmp_path / "a.jsonl", [obs(1)])
    db = str(tmp_path / "s.duckdb")
    assert main(["observe", str(f), "--release", "rel-1", "--db", db]) == 1
    assert "a.jsonl:line 1: variant: missing" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["observe", str(empty), "--release", "rel-1", "--variant", "canary", "--db", db]) == 1
    assert "no observations" in capsys.readouterr().err
    assert main(["observe", str(tmp_path / "nope.jsonl"), "--release", "rel-1", "--variant", "canary",
                 "--db", db]) == 1
    assert "no such file" in capsys.readouterr().err


def test_serve_loads_demo_observations_into_an_older_demo_store(demo_store, tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    """Test that `readiness serve` on a demo store made before observations existed loads them (and only then)."""
    import shutil

    demo_store.query("CHECKPOINT")
    db = str(tmp_path / "old.duckdb")
    shutil.copy(demo_store.path, db)
    with Store(db) as s:
        s.query("DELETE FROM observations")
        s.query("DELETE FROM observation_sources")
    started: list[list[str]] = []
    monkeypatch.setattr("os.execvpe", lambda exe, cmd, env: started.append(cmd))
    main(["serve", "--db", db])
    assert "loading them" in capsys.readouterr().out and started
    with Store(db) as s:
        assert s.query("SELECT count(DISTINCT release_id || variant) FROM observations") == [(4,)]
    main(["serve", "--db", db])
    assert "loading them" not in capsys.readouterr().out
