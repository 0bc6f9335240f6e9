"""Release scenarios built from the demo generator's story knobs (seed §36)."""

from __future__ import annotations

from dataclasses import replace

from dashboard import demo
from dashboard.core.models import ReleaseEvidence
from dashboard.ingesting import ingest
from dashboard.store.db import Store

BASE = demo.STORIES[0]

SCENARIOS: dict[str, demo.Story] = {
    "prompt_breaks_citation": replace(demo.STORIES[2], release_id="sc-prompt"),
    "index_leaks_stale_policy": demo.Story(
        "sc-index", "New index improves recall but leaks a stale policy",
        changes={"index_versions": {"policy_index": "policy-index-2026-11-02-v4"}},
        recall_gain=0.05, stale_leak_rate=0.01, noise_seed=11),
    "model_costs_more": replace(demo.STORIES[3], release_id="sc-model"),
    "tool_description_wrong_tool": demo.Story(
        "sc-tool", "Tool description change makes the agent pick a forbidden tool",
        changes={"tool_versions": {"update_case_status": "tool.update_case_status.v3"}},
        wrong_tool_rate=0.02, noise_seed=12),
    "workflow_bypasses_approval": replace(demo.STORIES[4], release_id="sc-workflow"),
    "dataset_adds_critical_case": demo.Story(
        "sc-dataset", "The eval dataset adds new critical cases",
        added_critical_cases=12, noise_seed=13),
}

# Evidence a team attaches when every required check of its change kind was done and passed.
FULL_EVIDENCE_KINDS = ["secrets_scan", "rollback_plan", "latency_cost_comparison", "metadata_completeness_report",
                       "acl_validation", "stale_policy_check", "rollback_index_retained", "contract_tests",
                       "authorization_tests", "idempotency_tests", "approval_gate_tests", "resume_tests",
                       "eval_dataset_review"]


def load_story(store: Store, story: demo.Story, cases: int, tmp_path, evidence: bool = True) -> None:
    manifest, runs = demo.release_runs(story, cases)
    files = []
    for suite, table in zip(demo.SUITES, runs, strict=True):
        path = tmp_path / f"{story.release_id}-{suite.name}.parquet"
        store.write_table(table, path, "parquet")
        files.append(path)
    ingest(store, files, story.release_id, manifest)
    if evidence:
        store.put_evidence(ReleaseEvidence.model_validate({
            "release_id": story.release_id, "release_owner": "ana@example.com", "rollback_owner": "raj@example.com",
            "items": [{"kind": k, "passed": True, "ref": f"https://ci.example/{k}"} for k in FULL_EVIDENCE_KINDS]}))
