"""Rollout safety as gates (issue 17): rollback drills, anti-patterns, flags, A/B, incidents, the release train."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboard import demo
from dashboard.cli import main
from dashboard.core import render
from dashboard.core.errors import InputRefused
from dashboard.core.manifests import ArtifactChange
from dashboard.core.policy import load_policy, parse_policy
from dashboard.core.rollout import (
    RolloutInputs,
    RolloutPolicy,
    judge_rollout,
    parse_rollout,
    train_status,
)
from dashboard.service import gate_release
from dashboard.store.db import Store
from dashboard.store.rollout import put_rollout, rollout_evidence
from tests.conftest import REPO, ingest_story

ROLLOUT_POLICY = load_policy(REPO / "data" / "policies" / "rollout.yaml")
RP = ROLLOUT_POLICY.rollout
assert RP is not None
BASE, RC1, RC2, RC5, RC6 = (demo.STORIES[i] for i in (0, 1, 2, 5, 6))
AS_OF = datetime(2026, 11, 5, 12, tzinfo=UTC)
PROMPT = ArtifactChange(kind="prompts", name="policy_answer", baseline="v7", candidate="v9")
NEW_TOOL = ArtifactChange(kind="tools", name="close_case", baseline=None, candidate="tool.close_case.v1")


def drill(kind: str = "prompts", when: str = "2026-11-01T10:00:00Z", minutes: float = 4, outcome: str = "succeeded",
          method: str = "prompt_version_switch", name: str = "policy_answer") -> dict[str, Any]:
    return {"kind": "rollback_drill", "artifact_kind": kind, "artifact": name, "from_version": "v9",
            "to_version": "v7", "method": method, "performed_at": when, "performed_by": "sre@example.com",
            "minutes_to_rollback": minutes, "outcome": outcome}


def flag(**over: Any) -> dict[str, Any]:
    f = {"kind": "feature_flag", "flag": "close_case_on", "artifact_kind": "tools", "artifact": "close_case",
         "risk": "high", "default": False, "tenants": ["acme"], "owner": "o@example.com", "audited": True,
         "audit_ref": "audit://1"}
    f.update(over)
    return f


def evidence(*records: dict[str, Any], release: str = "rel-x") -> dict[str, Any]:
    return {"release_id": release, "as_of": "2026-11-05T12:00:00Z", "records": list(records)}


def inputs(*records: dict[str, Any], incidents: list[dict[str, Any]] | None = None,
           outcomes: dict[str, tuple[int, int]] | None = None, no_evidence: bool = False,
           digests: list[tuple[str, dict[str, Any]]] | None = None) -> RolloutInputs:
    ev = None if no_evidence else parse_rollout(evidence(*records), "t.yaml")
    return RolloutInputs.model_validate({
        "evidence": ev, "evidence_digest": None if no_evidence else "sha256:x",
        "candidate_created_at": datetime(2026, 11, 5, 9, tzinfo=UTC),
        "baseline_created_at": datetime(2026, 10, 1, 9, tzinfo=UTC),
        "incidents": incidents or [], "artifact_digests": digests or [],
        "case_outcomes": [{"case_id": c, "records": n, "passed": p} for c, (n, p) in (outcomes or {}).items()]})


def judged(policy: RolloutPolicy, inp: RolloutInputs, changes: list[ArtifactChange],
           decided: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    return {r["gate_id"]: r for r in judge_rollout(policy, "release", inp, changes, "rel-x", decided or {})}


def only(kind: str, **params: Any) -> RolloutPolicy:
    return RolloutPolicy.model_validate({"tiers": RP.model_dump()["tiers"],
                                         "gates": [{"id": "g", "kind": kind, **params}]})


# ----- rollback_tested -----------------------------------------------------------------------------------------

def test_rollback_tested_passes_with_a_recent_fast_successful_drill():
    """Test that a changed prompt with a 4-minute drill four days ago passes."""
    r = judged(only("rollback_tested"), inputs(drill()), [PROMPT])["g"]
    assert r["status"] == "pass", r["reason"]


@pytest.mark.parametrize("bad, words", [
    ({"when": "2026-09-19T14:00:00Z"}, "days old"),
    ({"minutes": 38}, "38 min"),
    ({"outcome": "failed"}, "failed"),
    ({"method": "route_config"}, "does not roll back prompts"),
    ({"kind": "model_routes", "method": "route_config"}, "no rollback drill for prompts"),
])
def test_rollback_tested_fails_on_an_old_slow_failed_or_wrong_drill(bad, words):
    """Test that an old, slow, failed, wrong-method or other-kind drill does not count, and the reason says why."""
    r = judged(only("rollback_tested", max_age_days=30, max_minutes=15), inputs(drill(**bad)), [PROMPT])["g"]
    assert r["status"] == "fail" and words in r["reason"], r["reason"]


def test_rollback_tested_fails_closed_without_rollout_evidence():
    """Test that no rollout evidence at all fails the gate (never a pass for missing data)."""
    r = judged(only("rollback_tested"), inputs(no_evidence=True), [PROMPT])["g"]
    assert r["status"] == "fail" and "no rollout evidence" in r["reason"]


# ----- §35 anti-patterns -----------------------------------------------------------------------------------------

def test_index_version_reused_with_different_content_is_a_finding():
    """Test that the same index version with two content digests (overwritten in place) fails the built-in gate."""
    idx = ArtifactChange(kind="indexes", name="policy_index", baseline="v3", candidate="v4")
    d = {"kind": "artifact_digest", "artifact_kind": "indexes", "artifact": "policy_index", "version": "v4"}
    inp = inputs(dict(d, content_digest="sha256:new"),
                 digests=[("rel-a", dict(d, content_digest="sha256:old")), ("rel-x", dict(d, content_digest="sha256:new"))])
    r = judged(only("rollback_tested"), inp, [idx])["rollback.version_reused"]
    assert r["status"] == "fail" and "policy_index v4" in r["reason"]
    same = inputs(dict(d, content_digest="sha256:new"), digests=[("rel-x", dict(d, content_digest="sha256:new"))])
    assert judged(only("rollback_tested"), same, [idx])["rollback.version_reused"]["status"] == "pass"


def test_a_change_with_no_rollback_target_is_a_finding_unless_flagged_or_disable_drilled():
    """Test that an added tool (nothing in the baseline to return to) fails, and passes behind a flag or with a
    tested disable."""
    gid = "rollback.target_in_baseline"
    assert judged(only("rollback_tested"), inputs(), [NEW_TOOL])[gid]["status"] == "fail"
    assert judged(only("rollback_tested"), inputs(flag()), [NEW_TOOL])[gid]["status"] == "pass"
    disable = drill(kind="tools", name="close_case", method="disable_tool")
    assert judged(only("rollback_tested"), inputs(disable), [NEW_TOOL])[gid]["status"] == "pass"
    assert judged(only("rollback_tested"), inputs(), [PROMPT])[gid]["status"] == "pass"


def test_an_eval_dataset_change_presented_as_a_rollback_is_a_finding():
    """Test that a 'drill' on an eval dataset fails the built-in gate."""
    fake = drill(kind="eval_datasets", name="case_policy_golden", method="config_revert")
    r = judged(only("rollback_tested"), inputs(drill(), fake), [PROMPT])["rollback.not_an_eval_change"]
    assert r["status"] == "fail" and "case_policy_golden" in r["reason"]


# ----- feature flags ---------------------------------------------------------------------------------------------

def test_high_risk_change_must_be_behind_a_flag():
    """Test that a new tool without a flag fails high_risk_flagged and passes with one; a changed low-risk tool
    (not listed as high risk) needs none."""
    assert judged(only("high_risk_flagged"), inputs(), [NEW_TOOL])["g"]["status"] == "fail"
    assert judged(only("high_risk_flagged"), inputs(flag()), [NEW_TOOL])["g"]["status"] == "pass"
    changed = ArtifactChange(kind="tools", name="search_cases", baseline="v4", candidate="v5")
    assert judged(only("high_risk_flagged"), inputs(), [changed])["g"]["status"] == "pass"
    listed = only("high_risk_flagged", high_risk_tools=["search_cases"])
    assert judged(listed, inputs(), [changed])["g"]["status"] == "fail"


def test_high_risk_flag_needs_an_audit_trail():
    """Test that a high-risk flag without audit fails, with one passes."""
    assert judged(only("high_risk_flag_audited"), inputs(flag()), [NEW_TOOL])["g"]["status"] == "pass"
    r = judged(only("high_risk_flag_audited"), inputs(flag(audited=False)), [NEW_TOOL])["g"]
    assert r["status"] == "fail" and "close_case_on" in r["reason"]


@pytest.mark.parametrize("over, ok", [
    ({}, True), ({"tenants": [], "percentage": 5, "default": True}, True),
    ({"tenants": [], "percentage": 100, "default": True}, False), ({"tenants": [], "default": True}, False),
    ({"tenants": [], "percentage": 25}, False),
])
def test_high_risk_exposure_starts_limited(over, ok):
    """Test that a tool enabled globally (default on, or 100%) fails; a tenant list or a small percentage passes."""
    r = judged(only("high_risk_exposure_limited", max_percentage=10), inputs(flag(**over)), [NEW_TOOL])["g"]
    assert (r["status"] == "pass") is ok, r["reason"]


# ----- A/B ---------------------------------------------------------------------------------------------------------

def experiment(*exposes: str, safeguard: str | None = None) -> dict[str, Any]:
    return {"kind": "experiment", "experiment_id": "EXP-1", "variants": ["a", "b"], "artifact_kind": "prompts",
            "artifact": "policy_answer", "population": "5%", "exposes": list(exposes), "safeguard": safeguard}


def test_ab_refuses_unsafe_exposure_unless_the_policy_names_the_safeguard():
    """Test that A/B on tool side effects fails without a named safeguard and passes with the policy's one."""
    pol = only("ab_safe", safeguards={"tool_side_effects": "shadow mode"})
    assert judged(pol, inputs(experiment("answer_style")), [PROMPT])["g"]["status"] == "pass"
    assert judged(pol, inputs(experiment("regulated_decision")), [PROMPT])["g"]["status"] == "fail"
    assert judged(pol, inputs(experiment("tool_side_effects")), [PROMPT])["g"]["status"] == "fail"
    ok = judged(pol, inputs(experiment("tool_side_effects", safeguard="shadow mode")), [PROMPT])["g"]
    assert ok["status"] == "pass", ok["reason"]


def test_ab_of_retrieval_ranking_needs_the_offline_safety_gates_passed_first():
    """Test that a retrieval-ranking experiment fails when a security gate failed or none ran."""
    pol = only("ab_safe")
    exp = inputs(experiment("retrieval_ranking"))
    assert judged(pol, exp, [PROMPT], {"injection": "pass|security"})["g"]["status"] == "pass"
    assert judged(pol, exp, [PROMPT], {"injection": "fail|security"})["g"]["status"] == "fail"
    assert judged(pol, exp, [PROMPT], {"style": "pass|quality"})["g"]["status"] == "fail"


# ----- incidents -----------------------------------------------------------------------------------------------------

INC = {"kind": "incident", "incident_id": "INC-1", "occurred_at": "2026-10-14T00:00:00Z", "artifact_kind": "prompts",
       "artifact": "policy_answer", "description": "bad answer", "case_ids": ["C-1"]}


@pytest.mark.parametrize("outcomes, ok, words", [
    ({"C-1": (1, 1)}, True, "covered"), ({"C-1": (2, 1)}, False, "fail in the candidate"),
    ({}, False, "is in the candidate's eval data"), ({"C-9": (1, 1)}, False, "none of its cases"),
])
def test_every_incident_since_the_baseline_is_covered_by_a_passing_case(outcomes, ok, words):
    """Test that an incident's case must be in the candidate's eval data and pass (every record)."""
    r = judged(only("incidents_covered"), inputs(incidents=[INC], outcomes=outcomes), [PROMPT])["g"]
    assert (r["status"] == "pass") is ok and words in r["reason"] + ("covered" if ok else ""), r["reason"]


def test_incidents_before_the_baseline_and_without_the_candidates_file_are_judged_from_the_store():
    """Test that an incident older than the baseline is not due, and that the gate needs no rollout file."""
    old = dict(INC, occurred_at="2026-09-01T00:00:00Z")
    r = judged(only("incidents_covered"), inputs(incidents=[old], no_evidence=True), [PROMPT])["g"]
    assert r["status"] == "pass" and "no incident since the baseline" in r["reason"]
    r = judged(only("incidents_covered"), inputs(incidents=[INC], no_evidence=True), [PROMPT])["g"]
    assert r["status"] == "fail"


# ----- release train ---------------------------------------------------------------------------------------------

def tier_run(tier: str, when: str = "2026-11-05T06:00:00Z", passed: bool = True,
             suites: list[str] | None = None) -> dict[str, Any]:
    want = {t.name: t.suites for t in RP.tiers}
    return {"kind": "tier_run", "tier": tier, "suites": want[tier] if suites is None else suites, "ran_at": when,
            "passed": passed}


TRAIN = ["pr_fast", "pr_medium", "nightly", "weekly", "release_candidate"]


def test_tier_evidence_fresh_passes_and_reports_stale_failed_missing_and_incomplete_tiers():
    """Test that fresh passing tiers pass; a 9-day-old nightly, a failed weekly, a missing pr_fast and a tier that
    skipped a suite are each a finding."""
    pol = only("tier_evidence_fresh", tiers=TRAIN)
    assert judged(pol, inputs(*[tier_run(t) for t in TRAIN]), [PROMPT])["g"]["status"] == "pass"
    runs = [tier_run("pr_medium", suites=[]), tier_run("nightly", "2026-10-27T06:00:00Z"),
            tier_run("weekly", passed=False), tier_run("release_candidate")]
    r = judged(pol, inputs(*runs), [PROMPT])["g"]
    assert r["status"] == "fail"
    for words in ("nightly evidence is 9.2 days old (max 2)", "weekly: its latest run failed",
                  "pr_fast (per_pr) has no run", "pr_medium: its latest run did not run rag_policy_qa"):
        assert words in r["reason"], r["reason"]
    rows = {row["tier"]: row["state"] for row in train_status(RP.tiers, parse_rollout(evidence(*runs), "t"), AS_OF)}
    assert rows == {"pr_fast": "missing", "pr_medium": "incomplete", "nightly": "stale", "weekly": "failed",
                    "release_candidate": "ok", "canary": "missing", "post_release": "missing"}


def test_ages_are_measured_at_as_of_or_the_manifest_never_the_wall_clock():
    """Test that ages count from the later of the file's as_of and the candidate's created_at (the tests run a year
    after these dates: a wall clock would make every drill stale), so an early as_of cannot hide an old run."""
    pol = only("tier_evidence_fresh", tiers=["nightly"])
    assert judged(pol, inputs(tier_run("nightly", "2026-11-04T06:00:00Z")), [PROMPT])["g"]["status"] == "pass"
    early = inputs(tier_run("nightly", "2026-10-30T06:00:00Z"))
    early = early.model_copy(update={"evidence": early.evidence.model_copy(
        update={"as_of": datetime(2026, 10, 30, 7, tzinfo=UTC)})})
    assert early.as_of == datetime(2026, 11, 5, 9, tzinfo=UTC)  # the manifest is later
    r = judged(pol, early, [PROMPT])["g"]
    assert r["status"] == "fail" and "6.1 days old" in r["reason"], r["reason"]


# ----- policy --------------------------------------------------------------------------------------------------------

def test_policy_without_rollout_keeps_its_digest_and_a_bad_rollout_section_is_refused():
    """Test that the shipped policies' digests do not see the new optional section, and unknown kinds, profiles,
    tiers and safeguards are refused with the line."""
    text = (REPO / "data" / "policies" / "case-management.yaml").read_text()
    assert "rollout" not in parse_policy(text).model_dump()
    for bad, words in [("  gates: [{id: x, kind: nope}]", "kind"),
                       ("  gates: [{id: x, kind: ab_safe, safeguards: {style: y}}]", "safeguards names"),
                       ("  gates: [{id: x, kind: ab_safe, profiles: [nightly]}]", "unknown profile"),
                       ("  gates: [{id: x, kind: tier_evidence_fresh}]", "needs rollout.tiers"),
                       ("  tiers: [{name: n, cadence: nightly, max_age_days: 1, profile: zzz}]", "unknown profile")]:
        with pytest.raises(InputRefused) as e:
            parse_policy(text + "\nrollout:\n" + bad + "\n", "p.yaml")
        assert words in str(e.value) and "p.yaml" in str(e.value), str(e.value)


# ----- through the store, the CLI and the decision -------------------------------------------------------------

@pytest.fixture
def small(tmp_path) -> Store:
    """Baseline, rc5 and rc6 (40 cases per run) with no rollout evidence yet."""
    s = Store(tmp_path / "r.duckdb")
    for story in (BASE, RC5, RC6):
        ingest_story(s, story, tmp_path)
    yield s
    s.close()


def _attach(store: Store, release: str, data: dict[str, Any] | None = None) -> None:
    data = data or demo.ROLLOUT_EVIDENCE[release]
    put_rollout(store, parse_rollout(data, "t.yaml"), "t.yaml")


def test_demo_rc5_is_blocked_by_its_untested_prompt_rollback_and_rc6_by_a_global_high_risk_tool(demo_store):
    """Test the demo's two stories: rc5's only blocker is rollback_tested (prompts), rc6's only blocker is
    exposure_limited (close_case on for everyone); rc1 is approved; rc2 fails its incident case; all name the
    rollout inputs by digest."""
    d5 = gate_release(demo_store, ROLLOUT_POLICY, RC5.release_id, cache=False)
    assert d5.blockers == ["rollout.rollback_tested"], d5.blockers
    assert "prompts changed (policy_answer)" in next(g for g in d5.gates if g.gate_id == "rollout.rollback_tested").reason
    assert "rollout.train_fresh" in d5.warnings
    d6 = gate_release(demo_store, ROLLOUT_POLICY, RC6.release_id, cache=False)
    assert d6.blockers == ["rollout.exposure_limited"], d6.blockers
    assert gate_release(demo_store, ROLLOUT_POLICY, RC1.release_id, cache=False).status == "approved"
    d2 = gate_release(demo_store, ROLLOUT_POLICY, RC2.release_id, cache=False)
    inc = next(g for g in d2.gates if g.gate_id == "rollout.incidents_covered")
    assert inc.status == "fail" and "INC-2026-1014: its cases fail" in inc.reason, inc.reason
    assert d5.rollout_digest and d5.verify_digest() and ("rollout", d5.rollout_digest) in d5.judged()
    # every output format shows the rollout gates
    assert "rollout.rollback_tested" in render.to_text(d5)
    assert "rollout.rollback_tested" in render.to_markdown(d5)
    assert "rollout.rollback_tested" in render.to_junit(d5)
    assert json.loads(render.to_json(d5))["rollout_digest"] == d5.rollout_digest


def test_decision_digest_covers_the_rollout_evidence_and_the_incident_case_outcomes(small, tmp_path):
    """Test that a new incident stored by another release changes the candidate's decision (a store query feeds a
    pure function), and that the same inputs give the same digest."""
    for rel in (BASE.release_id, RC5.release_id):
        _attach(small, rel)
    a = gate_release(small, ROLLOUT_POLICY, RC5.release_id, cache=False)
    assert a.digest == gate_release(small, ROLLOUT_POLICY, RC5.release_id, cache=False).digest
    assert a.digest == gate_release(small, ROLLOUT_POLICY, RC5.release_id).digest  # cached: same bytes
    inc = dict(INC, incident_id="INC-NEW", case_ids=["NOT-A-CASE"])
    _attach(small, RC6.release_id, evidence(inc, release=RC6.release_id))
    b = gate_release(small, ROLLOUT_POLICY, RC5.release_id)  # the cache key sees the new incident too
    assert b.digest != a.digest and b.rollout_digest != a.rollout_digest
    r = next(g for g in b.gates if g.gate_id == "rollout.incidents_covered")
    assert r.status == "fail" and "INC-NEW" in r.reason


def test_other_policies_ignore_rollout_evidence(small):
    """Test that a policy without a rollout section gives the same decision with or without rollout evidence."""
    cm = load_policy(REPO / "data" / "policies" / "case-management.yaml")
    before = gate_release(small, cm, RC5.release_id, cache=False)
    _attach(small, RC5.release_id)
    after = gate_release(small, cm, RC5.release_id, cache=False)
    assert before.digest == after.digest and after.rollout_digest is None
    assert "rollout_digest" not in render.to_json(after)


def _write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False) if path.suffix == ".yaml" else json.dumps(data))
    return path


def test_cli_attaches_rollout_evidence_idempotently_and_prints_its_schema(small, tmp_path, capsys):
    """Test `readiness evidence` with a rollout file: stored, then unchanged; `readiness schema rollout_evidence`."""
    small.close()
    f = _write(tmp_path / "ro.yaml", demo.ROLLOUT_EVIDENCE[RC5.release_id])
    db = str(tmp_path / "r.duckdb")
    assert main(["evidence", str(f), "--release", RC5.release_id, "--db", db]) == 0
    assert "stored" in capsys.readouterr().out
    assert main(["evidence", str(f), "--release", RC5.release_id, "--db", db]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["schema", "rollout_evidence"]) == 0
    schema = json.loads(capsys.readouterr().out)
    drill_schema = schema["$defs"]["RollbackDrill"]["properties"]
    assert all(p.get("description") for p in drill_schema.values())


def _bad_files() -> list[tuple[str, Any, list[str]]]:
    good = demo.ROLLOUT_EVIDENCE["rel-2026.11.0-rc5"]

    def with_record(i: int, **over: Any) -> dict[str, Any]:
        d = copy.deepcopy(good)
        d["records"][i].update(over)
        return d

    drill_at = next(i for i, r in enumerate(good["records"]) if r["kind"] == "rollback_drill")
    no_as_of = {k: v for k, v in good.items() if k != "as_of"}
    dup = copy.deepcopy(good)
    dup["records"].append(copy.deepcopy(good["records"][0]))
    return [
        ("negative minutes", with_record(drill_at, minutes_to_rollback=-1),
         [f"record {drill_at + 1}", "minutes_to_rollback"]),
        ("unknown method", with_record(drill_at, method="pray"), [f"record {drill_at + 1}", "method"]),
        ("naive time", with_record(drill_at, performed_at="2026-11-01T10:00:00"), ["performed_at", "time zone"]),
        ("unknown kind", with_record(0, kind="rollback_dril"), ["record 1", "kind", "rollback_dril"]),
        ("unknown field", with_record(0, severity="high"), ["record 1", "severity", "unknown field"]),
        ("no as_of", no_as_of, ["as_of"]),
        ("duplicate incident", dup, [f"record {len(dup['records'])}", "incident_id", "more than once"]),
        ("not an object", {"records": "x", "release_id": "r", "as_of": "2026-11-01T00:00:00Z"}, ["records"]),
    ]


@pytest.mark.parametrize("name, data, words", _bad_files(), ids=[b[0] for b in _bad_files()])
def test_bad_rollout_files_are_refused_naming_file_record_and_field_and_store_nothing(small, tmp_path, capsys, name,
                                                                                     data, words):
    """Test that a bad rollout evidence file exits non-zero with file, record and field, no traceback, nothing
    stored."""
    small.close()
    f = _write(tmp_path / "bad.yaml", data)
    db = str(tmp_path / "r.duckdb")
    code = main(["evidence", str(f), "--release", RC5.release_id, "--db", db])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert str(f) in err, err
    for w in words:
        assert w in err, err
    with Store(db, read_only=True) as s:
        assert rollout_evidence(s, RC5.release_id) is None


def test_an_incident_id_stored_with_other_content_is_refused(small):
    """Test that another release cannot restate an incident differently (one incident, one content)."""
    _attach(small, RC5.release_id)
    changed = dict(demo.INCIDENT_CITATION, case_ids=["POLQA-0000001"])
    with pytest.raises(InputRefused, match="already stored with other content"):
        _attach(small, RC6.release_id, evidence(changed, release=RC6.release_id))
    assert rollout_evidence(small, RC6.release_id) is None


def test_rollout_evidence_is_append_only(small):
    """Test that a second, different rollout file for the same release is refused."""
    _attach(small, RC5.release_id)
    with pytest.raises(InputRefused, match="append-only"):
        _attach(small, RC5.release_id, evidence(release=RC5.release_id))


def test_report_has_rollback_drills_and_a_rollout_section_only_under_a_rollout_policy(demo_store):
    """Test that the report's rollback plan shows each change's latest drill and a Rollout safety section (Markdown
    and HTML) under the rollout policy, and that other policies' reports are as before."""
    from dashboard.core.report import to_html, to_markdown
    from dashboard.reporting import report_data

    d = gate_release(demo_store, ROLLOUT_POLICY, RC5.release_id, cache=False)
    data = report_data(demo_store, ROLLOUT_POLICY, RC5.release_id, decision=d)
    md = to_markdown(data)
    assert "| artifact | name | roll back to | how | latest drill |" in md
    assert "2026-09-16 · 38 min · succeeded" in md
    assert "## Rollout safety" in md and "### Release train" in md and "rollout.rollback_tested" in md
    html_text = to_html(data)
    assert "<h2>Rollout safety</h2>" in html_text and "EXP-answer-style-3" in html_text
    d2 = gate_release(demo_store, ROLLOUT_POLICY, RC2.release_id, cache=False)
    md2 = to_markdown(report_data(demo_store, ROLLOUT_POLICY, RC2.release_id, decision=d2))
    assert "never drilled" in md2 and "No rollout evidence is attached" in md2
    cm = load_policy(REPO / "data" / "policies" / "case-management.yaml")
    plain = to_markdown(report_data(demo_store, cm, RC5.release_id,
                                    decision=gate_release(demo_store, cm, RC5.release_id, cache=False)))
    assert "## Rollout safety" not in plain and "| artifact | name | roll back to | how |" in plain


def test_cli_gate_train_and_policy_check_show_the_rollout_gates(demo_store, tmp_path, capsys):
    """Test `readiness gate` (text, JSON, Markdown, JUnit) exits 1 for rc6 naming its rollout blocker,
    `readiness train` shows rc5's stale nightly, `readiness policy check` lists the rollout gates and tiers."""
    demo_store.query("CHECKPOINT")
    import shutil

    db = str(tmp_path / "copy.duckdb")
    shutil.copy(demo_store.path, db)
    policy = str(REPO / "data" / "policies" / "rollout.yaml")
    for fmt in ("text", "json", "markdown", "junit"):
        code = main(["gate", "--candidate", RC6.release_id, "--policy", policy, "--format", fmt, "--db", db])
        out = capsys.readouterr().out
        assert code == 1 and "rollout.exposure_limited" in out and "close_case_enabled" in out, fmt
    assert main(["train", "--policy", policy, "--release", RC5.release_id, "--db", db]) == 0
    out = capsys.readouterr().out
    assert "stale      nightly" in out and "nightly evidence is 9.3 days old (max 2)" in out
    assert main(["train", "--policy", policy, "--format", "json", "--db", db]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["release"] for r in rows} >= {RC5.release_id, RC6.release_id, BASE.release_id}
    assert main(["train", "--policy", str(REPO / "data" / "policies" / "tiered.yaml"), "--db", db]) != 0
    assert "no release train" in capsys.readouterr().err
    assert main(["policy", "check", policy]) == 0
    out = capsys.readouterr().out
    assert "rollout.rollback_tested: rollback_tested" in out and "tier nightly: nightly" in out


def test_the_docs_examples_are_valid():
    """Test that docs/policy.md's rollout policy section and rollout evidence file parse as documented."""
    import re

    doc = (REPO / "docs" / "policy.md").read_text()
    section = doc[doc.index("## Rollout safety"):doc.index("## CI\n")]
    policy_block, evidence_block = re.findall(r"```yaml\n(.*?)```", section, re.S)
    base = (REPO / "data" / "policies" / "case-management.yaml").read_text()
    policy = parse_policy(base.replace("profiles: [release]", "profiles: [pr_fast, nightly, release, canary]")
                          + "\n" + policy_block, "docs")
    assert policy.rollout is not None and len(policy.rollout.gates) == 7
    assert len(parse_rollout(yaml.safe_load(evidence_block), "docs").records) == 6


def test_a_looser_rollout_section_is_named_by_the_policy_comparison():
    """Test that removing the section, dropping or downgrading a rollout gate, allowing older or slower drills, a
    larger starting exposure, a new safeguard or an older tier are each reported as looser."""
    from dashboard.core.gates import loosened_gates

    text = (REPO / "data" / "policies" / "rollout.yaml").read_text()
    old = parse_policy(text, "old")
    assert loosened_gates(old, old) == []
    looser = (text.replace("max_age_days: 30", "max_age_days: 90").replace("max_minutes: 15", "max_minutes: 60")
              .replace("max_percentage: 10", "max_percentage: 100")
              .replace("kind: high_risk_flag_audited", "kind: high_risk_flag_audited\n      severity: warning")
              .replace("tool_side_effects: \"shadow mode: side effects dry-run only\"",
                       "tool_side_effects: \"shadow mode: side effects dry-run only\"\n        regulated_decision: none")
              .replace("suites: [rag_policy_qa, agent_case_actions], max_age_days: 2",
                       "suites: [rag_policy_qa, agent_case_actions], max_age_days: 9"))
    looser = looser.replace("    - id: rollout.incidents_covered\n      kind: incidents_covered\n", "")
    changes = {(g.gate_id, g.change) for g in loosened_gates(old, parse_policy(looser, "new"))}
    text_of = " | ".join(f"{g}: {c}" for g, c in sorted(changes))
    for words in ("rollout.rollback_tested: max_age_days 30 -> 90", "rollout.rollback_tested: max_minutes 15 -> 60",
                  "rollout.exposure_limited: max_percentage 10 -> 100", "rollout.flag_audited: severity blocker -> warning",
                  "rollout.ab_safe: A/B allowed with a safeguard for regulated_decision",
                  "rollout.incidents_covered: rollout gate removed", "(tier nightly): max_age_days 2 -> 9"):
        assert words in text_of, text_of
    cm = parse_policy((REPO / "data" / "policies" / "case-management.yaml").read_text(), "cm")
    gone = [g.change for g in loosened_gates(old, cm)]
    assert "rollout section removed: no rollout gate runs" in gone


def test_hostile_text_in_rollout_evidence_stays_text_in_the_report(small):
    """Test that an incident description, a flag name and a population with HTML, Markdown and links are escaped in
    the Markdown and HTML reports (rollout evidence is untrusted text)."""
    from dashboard.core.report import to_html, to_markdown
    from dashboard.reporting import report_data

    evil = "<script>alert(1)</script> **bold** [x](javascript:alert(1))"
    _attach(small, RC5.release_id, evidence(
        dict(INC, description=evil), flag(flag=evil, artifact="policy_answer", artifact_kind="prompts"),
        experiment("answer_style") | {"population": evil}, release=RC5.release_id))
    d = gate_release(small, ROLLOUT_POLICY, RC5.release_id, cache=False)
    data = report_data(small, ROLLOUT_POLICY, RC5.release_id, decision=d)
    page = to_html(data)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    import re

    outside_code = re.sub(r"(`+) (.*?) \1", "", to_markdown(data))  # untrusted text goes in code spans only
    assert "<script>" not in outside_code and "javascript:" not in outside_code and "**bold**" not in outside_code
