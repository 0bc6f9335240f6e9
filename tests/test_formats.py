"""The decision and review records are documented, versioned formats (issue 13)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from dashboard.cli import SCHEMA_RECORDS, main
from dashboard.core import render
from dashboard.core.errors import InputRefused, UnknownFormat
from dashboard.core.gates import (
    DECISION_MIGRATIONS,
    DECISION_SCHEMA,
    GateDecision,
    GateResult,
    PairedResult,
    load_decision,
)
from dashboard.core.policy import load_policy
from dashboard.core.reviews import ReviewPredicate
from dashboard.service import gate_release
from tests.conftest import REPO

CM = load_policy(REPO / "data" / "policies" / "case-management.yaml")


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """The model and every model its fields refer to."""
    seen: set[type[BaseModel]] = set()
    todo = [model]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for f in m.model_fields.values():
            for arg in (f.annotation, *getattr(f.annotation, "__args__", ())):
                for inner in (arg, *getattr(arg, "__args__", ())):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        todo.append(inner)
    return seen


@pytest.mark.parametrize("model", [GateDecision, GateResult, PairedResult, ReviewPredicate])
def test_every_field_of_the_decision_and_review_formats_is_described(model):
    """Test that every field of the decision (and the models inside it) and of the signed review has a
    description, so `readiness schema decision|review` documents the format."""
    undocumented = [f"{m.__name__}.{name}" for m in _models(model) for name, f in m.model_fields.items()
                    if not (f.description or "").strip()]
    assert undocumented == []


def test_readiness_schema_prints_each_documented_record(capsys):
    """Test that `readiness schema` knows every record and prints field descriptions for the decision."""
    for record in SCHEMA_RECORDS:
        assert main(["schema", record]) == 0
        schema = json.loads(capsys.readouterr().out)
        assert schema["properties"], record
    main(["schema", "decision"])
    decision = json.loads(capsys.readouterr().out)
    assert decision["properties"]["status"]["description"].startswith("approved, approved_with_warnings")
    assert "description" in decision["$defs"]["GateResult"]["properties"]["observed"]


def test_a_decision_reads_back_as_the_same_bytes(demo_store):
    d = gate_release(demo_store, CM, "rel-2026.11.0-rc2", cache=False)
    back = load_decision(render.to_json(d), "d.json")
    assert back == d and back.verify_digest()


def test_an_unknown_decision_version_is_refused_with_a_clear_message(demo_store):
    d = gate_release(demo_store, CM, "rel-2026.11.0-rc2", cache=False)
    data = json.loads(d.model_dump_json())
    data["schema_version"] = "readiness.decision/v9"
    with pytest.raises(UnknownFormat) as e:
        load_decision(json.dumps(data), "old.json")
    assert "old.json" in str(e.value) and "schema_version" in str(e.value) and "readiness.decision/v9" in str(e.value)
    for bad, field in (("[]", ""), ("{", ""), (json.dumps({**json.loads(d.model_dump_json()), "status": "maybe"}),
                                               "status")):
        with pytest.raises(InputRefused) as e:
            load_decision(bad, "bad.json")
        assert "bad.json" in str(e.value) and field in str(e.value)


def test_an_older_decision_version_is_migrated(demo_store, monkeypatch):
    """Test the migration path: a registered step upgrades an older format before it is validated."""
    d = gate_release(demo_store, CM, "rel-2026.11.0-rc2", cache=False)
    old = json.loads(d.model_dump_json())
    old["schema_version"] = "readiness.decision/v0"
    old["verdict"] = old.pop("status")

    def v0_to_v1(data: dict) -> dict:
        data = dict(data, schema_version=DECISION_SCHEMA)
        data["status"] = data.pop("verdict")
        return data

    monkeypatch.setitem(DECISION_MIGRATIONS, "readiness.decision/v0", v0_to_v1)
    assert load_decision(json.dumps(old)) == d


def test_one_waiver_rule_for_the_cli_and_the_review_page():
    """Test that a day means "through the end of that day, UTC" whichever way it is given, that a time needs its
    zone, and that every field is required (the CLI's --waiver and the Review page both call make_waiver)."""
    from datetime import UTC, date, datetime

    from dashboard.cli import _parse_waiver
    from dashboard.core.reviews import make_waiver

    end_of_day = datetime(2026, 12, 2, tzinfo=UTC)
    assert make_waiver("g", "j", "2026-12-01", "T").expires_at == end_of_day
    assert make_waiver("g", "j", date(2026, 12, 1), "T").expires_at == end_of_day
    assert _parse_waiver("g|j|2026-12-01|T") == make_waiver("g", "j", date(2026, 12, 1), "T")
    assert make_waiver("g", "j", "2026-12-01T12:00:00+02:00", "T").expires_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    for args, field in ((("g", "j", "2026-12-01T12:00:00", "T"), "expires"), (("g", "j", "soon", "T"), "expires"),
                        (("g", "j", "2026-12-01", " "), "ticket"), (("g", " ", "2026-12-01", "T"), "justification")):
        with pytest.raises(InputRefused) as e:
            make_waiver(*args)
        assert field in str(e.value)


def test_judging_branches_on_reason_codes_never_on_their_words(demo_store, monkeypatch):
    """Every reason has words; rewording every reason changes no status (the evaluator reads codes)."""
    from dashboard.core import gates

    assert set(gates.REASON_WORDS) == set(gates.Reason)
    before = {rid: gate_release(demo_store, CM, rid, cache=False) for rid in ("rel-2026.11.0-rc2",
                                                                               "rel-2026.11.0-rc4")}
    monkeypatch.setattr(gates, "REASON_WORDS", {c: "REWORDED " + w for c, w in gates.REASON_WORDS.items()})
    for rid, d in before.items():
        after = gate_release(demo_store, CM, rid, cache=False)
        assert [(g.gate_id, g.status) for g in after.gates] == [(g.gate_id, g.status) for g in d.gates]
        assert after.status == d.status
        assert all(g.reason.startswith("REWORDED ") for g in after.gates)  # every reason comes from the table
