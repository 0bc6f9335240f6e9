"""The canary judge: the policy section, `readiness canary judge` verdicts and exit codes on the demo's canaries,
rollback targets from the manifest diff, fail-closed rules, and the pure judge's arithmetic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dashboard.cli import main
from dashboard.core.canary import Moments, judge
from dashboard.core.canary_policy import CanaryPolicy
from dashboard.core.manifests import ArtifactChange
from dashboard.ingesting import observe
from dashboard.store.db import Store
from tests.conftest import REPO, write_jsonl

POLICY = str(REPO / "data" / "policies" / "case-management.yaml")
RC1, RC2, BASE = "rel-2026.11.0-rc1", "rel-2026.11.0-rc2", "rel-2026.10.0"


@pytest.fixture(scope="module")
def demo_db(demo_store, tmp_path_factory) -> str:
    demo_store.query("CHECKPOINT")
    db = str(tmp_path_factory.mktemp("canary") / "demo.duckdb")
    shutil.copy(demo_store.path, db)
    return db


def judge_cli(db: str, *extra: str) -> list[str]:
    return ["canary", "judge", "--baseline", BASE, "--policy", POLICY, "--db", db, *extra]


def test_demo_rc1_canary_is_promoted(demo_db: str, capsys) -> None:
    """Test that rc1's canary (better on errors, citations and refusals) is promoted: exit 0."""
    assert main(judge_cli(demo_db, "--release", RC1, "--format", "json")) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["verdict"] == "promote" and j["exit_code"] == 0 and j["rollback"] == []
    assert j["canary_requests"] == 10_000 and j["score_low"] >= j["pass_score"]
    assert {s["signal"]: s["status"] for s in j["signals"]}["approval_bypass"] == "pass"


def test_demo_rc2_canary_is_rolled_back_on_citation_failures(demo_db: str, capsys) -> None:
    """Test that rc2's canary is rolled back (exit 1) naming the signal, its evidence and every rollback target."""
    assert main(judge_cli(demo_db, "--release", RC2)) == 1
    out = capsys.readouterr().out
    assert out.startswith("ROLLBACK: canary rel-2026.11.0-rc2")
    assert "Critical signal citation_failure breached after 4,000 canary requests" in out
    assert "always-valid interval" in out and "beyond the critical limit +2.00 points" in out
    assert "prompts policy_answer: prompt.policy_answer.v8 -> prompt.policy_answer.v7: switch the prompt version back" \
        in out
    assert "code code_commit: b7720c3 -> 8f3c2a1: deploy the previous image" in out
    assert main(judge_cli(demo_db, "--release", RC2, "--format", "markdown")) == 1
    md = capsys.readouterr().out
    assert md.startswith("## Canary: ROLLBACK") and "| ` prompts policy_answer ` |" in md


def test_continue_when_too_little_traffic_and_since(demo_db: str, capsys) -> None:
    """Test that a canary judged on its last minutes only (--since) has too little evidence: continue, exit 3."""
    assert main(judge_cli(demo_db, "--release", RC1, "--since", "2026-11-16T16:20:00Z", "--format", "json")) == 3
    j = json.loads(capsys.readouterr().out)
    assert j["verdict"] == "continue" and 0 < j["canary_requests"] < 500
    assert all(s["status"] in ("waiting", "ignored") for s in j["signals"])
    assert main(judge_cli(demo_db, "--release", "rel-unknown")) == 3  # no observations: nothing to judge yet
    assert "No canary observations" in capsys.readouterr().out


def test_usage_and_input_errors_exit_2(demo_db: str, tmp_path: Path, capsys) -> None:
    """Test that a bad --since, a policy without a canary section and a missing store exit 2, never 1."""
    assert main(judge_cli(demo_db, "--release", RC2, "--since", "yesterday")) == 2
    assert "not an ISO 8601 time" in capsys.readouterr().err
    assert main(judge_cli(demo_db, "--release", RC2, "--since", "2026-11-18T08:00:00")) == 2
    no_canary = tmp_path / "p.yaml"
    no_canary.write_text("policy_id: p\nversion: '1'\ngates:\n  - {id: g, name: g, category: quality, severity: "
                         "blocker, metric: pass_rate, condition: '>= 0.5'}\n")
    assert main(["canary", "judge", "--release", RC2, "--baseline", BASE, "--policy", str(no_canary),
                 "--db", demo_db]) == 2
    assert "has no `canary` section" in capsys.readouterr().err
    assert main(["canary", "judge", "--release", RC2, "--baseline", BASE, "--policy", POLICY,
                 "--db", str(tmp_path / "none.duckdb")]) == 2


@pytest.mark.parametrize(("section", "message"), [
    ("  signals:\n    - {signal: nonsense, allowed: 0.01}\n", "canary.signals.0: unknown signal 'nonsense'"),
    ("  signals:\n    - {signal: error, allowed: -1}\n", "canary.signals.0.allowed: Input should be greater than"),
    ("  pass_score: 40\n  marginal_score: 60\n  signals:\n    - {signal: error, allowed: 0.01}\n",
     "marginal_score must not be above pass_score"),
    ("  signals:\n    - {signal: error, allowed: 0.01, group: safety}\n", "names unknown group 'safety'"),
    ("  signals:\n    - {signal: error, allowed: 0.01}\n    - {signal: error, allowed: 0.02}\n", "listed twice"),
    ("  signals:\n    - {signal: error, allowd: 0.01}\n", "canary.signals.0.allowd: unknown key"),
])
def test_policy_section_is_validated_with_line_and_field(tmp_path: Path, capsys, section: str, message: str) -> None:
    """Test that a bad canary section is refused like the rest of the policy: file, line and field."""
    p = tmp_path / "p.yaml"
    p.write_text("policy_id: p\nversion: '1'\ngates:\n  - {id: g, name: g, category: quality, severity: blocker, "
                 "metric: pass_rate, condition: '>= 0.5'}\ncanary:\n" + section)
    assert main(["policy", "check", str(p)]) == 1
    err = capsys.readouterr().err
    assert f"{p}:line " in err and message in err


def test_canary_section_leaves_the_gate_policy_digest_alone() -> None:
    """Test that the canary section is not part of the gate policy's digest (no decision digest changes)."""
    from dashboard.core.policy import load_policy

    policy = load_policy(POLICY)
    assert policy.canary is not None
    assert policy.digest == policy.model_copy(update={"canary": None}).digest
    assert "canary" not in policy.model_dump()


def _policy(**kw) -> CanaryPolicy:
    return CanaryPolicy.model_validate({"signals": [{"signal": "error", "allowed": 0.01, "critical": 0.05}], **kw})


def test_no_data_fails_closed_and_missing_manifest_is_said() -> None:
    """Test that a must-have signal without data cannot be promoted, and unknown rollback targets are said."""
    p = CanaryPolicy.model_validate({"signals": [{"signal": "error", "allowed": 0.01},
                                                 {"signal": "citation_failure", "allowed": 0.01}],
                                     "pass_score": 50, "marginal_score": 50})
    good = Moments(n=5000, total=5, squares=5)
    none = Moments(n=0, total=0, squares=0)
    j = judge(p, {"error": (good, good), "citation_failure": (none, none)}, "c", "b", 5000, 5000, None)
    statuses = {s.signal: s.status for s in j.signals}
    assert statuses == {"error": "pass", "citation_failure": "no data"}
    assert j.verdict == "promote"  # 1 of 2 passes: score 50 >= 50; the no-data signal counts as failed
    p2 = p.model_copy(update={"pass_score": 80.0})
    j2 = judge(p2, {"error": (good, good), "citation_failure": (none, none)}, "c", "b", 5000, 5000, None)
    assert j2.verdict == "continue" and j2.score_high == 50.0
    bad = Moments(n=5000, total=1000, squares=1000)
    j3 = judge(_policy(), {"error": (bad, good)}, "c", "b", 5000, 5000, None)
    assert j3.verdict == "rollback" and j3.exit_code == 1 and not j3.manifests_known
    assert any("Rollback targets unknown" in r for r in j3.reasons)
    change = ArtifactChange(kind="indexes", name="policy_index", baseline=None, candidate="idx-v4")
    j4 = judge(_policy(), {"error": (bad, good)}, "c", "b", 5000, 5000, [change])
    assert j4.rollback[0].method.startswith("remove it (new in the canary); promote the previous active index")


def test_relative_effect_and_decreasing_direction() -> None:
    """Test that a relative effect is resolved against the baseline and a score's bad direction is a decrease."""
    p = CanaryPolicy.model_validate({"signals": [
        {"signal": "cost_usd", "effect": "relative", "allowed": 0.1},
        {"signal": "score.groundedness", "allowed": 0.02, "critical": 0.05}]})
    n = 4000.0

    def m(mean: float, sd: float) -> Moments:
        return Moments(n=n, total=mean * n, squares=n * (sd * sd + mean * mean))

    j = judge(p, {"cost_usd": (m(0.0125, 0.002), m(0.0100, 0.002)),
                  "score.groundedness": (m(0.70, 0.1), m(0.86, 0.1))}, "c", "b", 4000, 4000, [])
    by = {s.signal: s for s in j.signals}
    assert by["cost_usd"].allowed == pytest.approx(0.001) and by["cost_usd"].status == "fail"
    assert by["score.groundedness"].worse_by == pytest.approx(0.16) and by["score.groundedness"].status == "critical"
    assert j.verdict == "rollback"


def test_synthetic_canary_through_the_store(tmp_path: Path) -> None:
    """Test that observations stored with `observe` reach the judge: same window, baseline variant only."""
    recs_b = [{"request_id": f"b{i}", "time": f"2026-11-20T10:{i // 100:02d}:{i % 60:02d}Z", "error": i % 50 == 0}
              for i in range(3000)]
    recs_c = [{"request_id": f"c{i}", "time": f"2026-11-20T10:{i // 100:02d}:{i % 60:02d}Z", "error": i % 5 == 0}
              for i in range(3000)]
    with Store(tmp_path / "s.duckdb") as s:
        observe(s, [write_jsonl(tmp_path / "b.jsonl", recs_b)], "base", "baseline")
        observe(s, [write_jsonl(tmp_path / "c.jsonl", recs_c)], "cand", "canary")
        from dashboard.canarying import judge_canary

        j, looks = judge_canary(s, _policy(), "cand", "base", look_every=500)
    assert j.verdict == "rollback" and j.signals[0].canary == pytest.approx(0.2)
    assert j.signals[0].baseline == pytest.approx(0.02) and j.baseline_requests == 3000
    assert [row["requests"] for row in looks] == [500, 1000, 1500, 2000, 2500, 3000]
    assert looks[0]["status"] == "critical" and looks[-1]["critical_line"] == pytest.approx(0.07)


def test_missing_baseline_waits_missing_canary_signal_fails() -> None:
    """Test that a baseline without data keeps signals waiting (no rollback), while a canary that stopped reporting a
    must-have signal fails it (fail closed)."""
    p = CanaryPolicy.model_validate({"signals": [{"signal": "error", "allowed": 0.01}], "marginal_score": 50})
    good = Moments(n=5000, total=5, squares=5)
    none = Moments(n=0, total=0, squares=0)
    j = judge(p, {"error": (good, none)}, "c", "b", 5000, 0, [])
    assert j.signals[0].status == "waiting" and j.verdict == "continue"
    assert any("No baseline observations of b" in r for r in j.reasons)
    j2 = judge(p, {"error": (none, good)}, "c", "b", 5000, 5000, [])
    assert j2.signals[0].status == "no data" and j2.verdict == "rollback"
