"""Shadow comparison: pairing by request id, agreement, retrieval overlap (Jaccard, RBO), deltas with intervals,
per slice, the most-disagreeing pairs, and side effects as a blocker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dashboard.canarying import compare_shadow
from dashboard.cli import main
from dashboard.ingesting import observe
from dashboard.store.db import Store
from dashboard.store.observations import shadow_pair
from tests.conftest import write_jsonl

SHADOW, BASE = "rel-2026.11.0-index-v4", "rel-2026.10.0"


def rec(i: int, answer: str, ids: list[str], **kw) -> dict:
    return {"request_id": f"r{i}", "time": "2026-11-20T10:00:00Z", "tenant": "acme",
            "slices": {"task": "qa" if i < 3 else "lookup"}, "answer": answer, "retrieved_ids": ids,
            "latency_ms": 1000.0, "cost_usd": 0.01, **kw}


@pytest.fixture
def small(tmp_path: Path) -> Store:
    prod = [rec(0, "Yes, per POL-1.", ["A", "B", "C"], scores={"g": 0.9}),
            rec(1, "No.", ["A", "B", "C"]),
            rec(2, "Maybe", ["A", "B"]),
            rec(3, "Closed per POL-9", ["X", "Y", "Z"]),
            rec(9, "only in production", ["A"])]
    shadow = [rec(0, "Yes, per POL-1.", ["A", "B", "C"], latency_ms=1100.0, scores={"g": 0.8}),
              rec(1, "  NO ", ["B", "A", "C"], latency_ms=1200.0),
              rec(2, "Maybe", ["A", "B"], latency_ms=1300.0, tool_calls=[{"name": "update_case_status",
                                                                          "side_effect": True}]),
              rec(3, "Open per POL-2", ["Q", "Z", "Y"], latency_ms=900.0, cost_usd=0.02),
              rec(7, "unpaired", ["A"])]
    s = Store(tmp_path / "s.duckdb")
    observe(s, [write_jsonl(tmp_path / "p.jsonl", prod)], BASE, "baseline")
    observe(s, [write_jsonl(tmp_path / "s.jsonl", shadow)], SHADOW, "shadow")
    yield s
    s.close()


def test_measures_on_known_pairs(small: Store) -> None:
    """Test every measure against values worked out by hand."""
    r = compare_shadow(small, SHADOW, BASE)
    o = r.overall
    assert o.pairs == 4 and r.unpaired_shadow_requests == 1
    assert o.exact.value == pytest.approx(2 / 4) and o.normalised.value == pytest.approx(3 / 4)
    # r3: {X,Y,Z} vs {Q,Z,Y}: Jaccard 2/4; RBO@3 = (1-p)/(1-p^3) * (0/1 + p*0/2 + p^2*2/3)
    rbo3 = 0.1 / (1 - 0.9 ** 3) * (0.81 * 2 / 3)
    rbo1 = 0.1 / (1 - 0.9 ** 3) * (0 + 0.9 * 1 + 0.81 * 1)  # r1: B,A,C vs A,B,C
    assert o.jaccard.value == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert o.rbo.value == pytest.approx((1 + rbo1 + 1 + rbo3) / 4)
    assert o.latency_delta_ms.value == pytest.approx((100 + 200 + 300 - 100) / 4)
    assert o.latency_delta_ms.low < o.latency_delta_ms.value < o.latency_delta_ms.high
    assert r.scores == [{"score": "g", "n": 1, "delta": pytest.approx(-0.1), "low": None, "high": None}]
    by = {(s.dimension, s.value): s for s in r.slices}
    assert by[("task", "lookup")].normalised.value == 0.0 and by[("task", "qa")].pairs == 3
    assert by[("tenant", "acme")].pairs == 4
    assert r.most_disagreeing[0]["request_id"] == "r3"
    blockers = [f for f in r.findings if f.severity == "blocker"]
    assert len(blockers) == 1 and blockers[0].request_ids == ["r2"]
    assert "must not cause side effects" in blockers[0].message and "update_case_status" in blockers[0].message
    pair = shadow_pair(small, SHADOW, BASE, "r3")
    assert pair["production"]["answer"] == "Closed per POL-9" and pair["shadow"]["retrieved_ids"] == ["Q", "Z", "Y"]


def test_nothing_paired_fails_closed_and_no_shadow_is_input_error(tmp_path: Path, capsys) -> None:
    """Test that a shadow with no production counterpart is a blocker, and a release without shadow rows exit 2."""
    db = str(tmp_path / "s.duckdb")
    with Store(db) as s:
        observe(s, [write_jsonl(tmp_path / "s.jsonl", [rec(1, "a", ["A"])])], SHADOW, "shadow")
    assert main(["shadow", "compare", "--release", SHADOW, "--baseline", BASE, "--db", db]) == 1
    assert "No shadow request could be paired" in capsys.readouterr().out
    assert main(["shadow", "compare", "--release", "nope", "--baseline", BASE, "--db", db]) == 2
    assert "no shadow observations for release 'nope'" in capsys.readouterr().err


def test_demo_shadow_of_the_new_index(demo_store, tmp_path: Path, capsys) -> None:
    """Test that the demo's shadow shows retrieval diverging on German policy questions, and the side effects."""
    demo_store.query("CHECKPOINT")
    db = str(tmp_path / "demo.duckdb")
    shutil.copy(demo_store.path, db)
    assert main(["shadow", "compare", "--release", SHADOW, "--baseline", BASE, "--db", db, "--format", "json"]) == 1
    r = json.loads(capsys.readouterr().out)
    by = {(s["dimension"], s["value"]): s for s in r["slices"]}
    assert r["overall"]["pairs"] == 1200
    assert by[("language", "de")]["rbo"]["value"] < 0.8 < by[("language", "en")]["rbo"]["value"]
    assert by[("language", "en")]["normalised"]["value"] == 1.0
    warnings = [f["message"] for f in r["findings"] if f["severity"] == "warning"]
    assert any("language=de" in w for w in warnings) and not any("tenant=" in w for w in warnings)
    assert r["findings"][0]["severity"] == "blocker" and len(r["findings"][0]["request_ids"]) == 3
    assert all(w["slices"]["language"] == "de" for w in r["most_disagreeing"])
    assert main(["shadow", "compare", "--release", SHADOW, "--baseline", BASE, "--db", db,
                 "--format", "markdown"]) == 1
    assert capsys.readouterr().out.startswith("## Shadow: BLOCKED")


def test_shadow_result_is_evidence_a_gate_uses(demo_store, tmp_path: Path, capsys) -> None:
    """Test that --evidence-out writes a shadow_agreement item a gate judges: passes on English requests of a
    shadow without side effects, fails with the demo's side effects, and fails closed on an unknown slice."""
    from dashboard.core.shadow import evidence_item

    demo_store.query("CHECKPOINT")
    db = str(tmp_path / "demo.duckdb")
    shutil.copy(demo_store.path, db)
    item_path = tmp_path / "item.json"
    assert main(["shadow", "compare", "--release", SHADOW, "--baseline", BASE, "--db", db, "--evidence-out",
                 str(item_path), "--evidence-slice", "language=en"]) == 1
    item = json.loads(item_path.read_text())
    assert item["kind"] == "shadow_agreement" and item["passed"] is False and "side effects" in item["detail"]
    with Store(db) as s:
        report = compare_shadow(s, SHADOW, BASE)
    clean = report.model_copy(update={"findings": [f for f in report.findings if f.severity != "blocker"]})
    assert evidence_item(clean, ("language", "en")).passed
    assert not evidence_item(clean, ("language", "de")).passed  # 42% agreement
    assert not evidence_item(clean, ("language", "xx")).passed  # no pairs: fails closed
    evidence = {"release_id": "rel-2026.11.0-rc1", "items": [item]}
    ev_path = tmp_path / "evidence.json"
    ev_path.write_text(json.dumps(evidence))
    assert main(["evidence", str(ev_path), "--release", "rel-2026.11.0-rc1", "--db", db]) == 0
    policy = tmp_path / "p.yaml"
    policy.write_text("policy_id: shadow\nversion: '1'\ngates:\n  - {id: shadow_agreement, name: Shadow agreement, "
                      "category: quality, severity: blocker, metric: evidence.shadow_agreement, condition: '== 1'}\n")
    capsys.readouterr()
    assert main(["gate", "--candidate", "rel-2026.11.0-rc1", "--policy", str(policy), "--db", db]) == 1
    assert "shadow_agreement failed" in capsys.readouterr().out
