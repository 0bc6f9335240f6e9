"""The release report: gather what it shows through the store (shared by the CLI and the dashboard),
then render it with dashboard.core.report; PDF through headless chromium's print-to-PDF."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from dashboard.core.errors import InputRefused
from dashboard.core.gates import GateDecision
from dashboard.core.metrics import CATALOGUE, LABELS
from dashboard.core.policy import GatePolicy, SliceSpec
from dashboard.core.report import MetricRow, ReportData, SliceBar, to_html, to_markdown
from dashboard.core.reviews import TrustedReviewers
from dashboard.reviewing import status
from dashboard.service import add_bootstrap_intervals, gate_release
from dashboard.store.db import Store

AREA_METRICS = {
    "quality": ("pass_rate", "critical_pass_rate", "groundedness_pass_rate", "citation_support_rate",
                "unsupported_critical_claims", "over_refusal_rate", "under_refusals"),
    "rag": ("recall_at_10", "mrr", "exact_identifier_hit_rate", "unauthorized_retrievals", "stale_source_failures",
            "no_result_rate", "metadata_completeness"),
    "agent": ("trajectory_success_rate", "approval_bypasses", "forbidden_tool_calls", "unauthorized_tool_calls",
              "max_step_failure_rate", "required_node_completion_rate", "avg_agent_steps"),
    "security": ("prompt_injection_critical_failures", "cross_tenant_failures", "redaction_failures",
                 "trace_completeness", "approval_trace_completeness"),
    "performance": ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "avg_input_tokens", "avg_output_tokens",
                    "cost_per_successful_task", "retry_rate"),
}
CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def report_data(store: Store, policy: GatePolicy, candidate: str, baseline: str | None = None,
                profile: str | None = None, trusted: TrustedReviewers | None = None,
                no_baseline: bool = False, decision: GateDecision | None = None,
                previous: GatePolicy | None = None) -> ReportData:
    """Everything the report shows; pass `decision` when the caller already judged the release (`previous`: an
    explicit earlier policy to compare with)."""
    if decision is None:
        decision = gate_release(store, policy, candidate, baseline, profile, no_baseline=no_baseline,
                                previous=previous)
    if trusted is not None:
        result, decision, log = status(store, policy, candidate, trusted, baseline, profile, decision=decision)
        mine = [r for r in log.reviews if r.predicate.candidate_release_id == candidate]
        log_ok, findings = log.ok, [str(f) for f in log.findings if f.level == "error"]
    else:
        result, mine, log_ok, findings = None, [], None, []
    base_id = decision.baseline.release_id if decision.baseline else None
    spec = SliceSpec()
    names = [m for ms in AREA_METRICS.values() for m in ms]
    cand = store.slice_metrics(candidate, spec, names)
    add_bootstrap_intervals(store, candidate, spec, cand)
    base = store.slice_metrics(base_id, spec, names) if base_id else {}
    c, b = cand.get("", {}), base.get("", {})
    areas = {area: [MetricRow(metric=m, label=LABELS.get(m, m), kind=CATALOGUE[m].kind,
                              candidate=c[m].value if m in c else None, baseline=b[m].value if m in b else None,
                              interval=c[m].interval if m in c else None, n=c[m].n_eligible if m in c else 0,
                              higher_is_better=CATALOGUE[m].higher_is_better) for m in ms]
             for area, ms in AREA_METRICS.items()}
    by_task_c = store.slice_metrics(candidate, SliceSpec(for_each="task"), ["pass_rate"])
    by_task_b = store.slice_metrics(base_id, SliceSpec(for_each="task"), ["pass_rate"]) if base_id else {}
    bars = [SliceBar(slice=t, candidate=by_task_c.get(t, {}).get("pass_rate").value if t in by_task_c else None,  # type: ignore[union-attr]
                     baseline=by_task_b.get(t, {}).get("pass_rate").value if t in by_task_b else None)  # type: ignore[union-attr]
            for t in sorted(set(by_task_c) | set(by_task_b))]
    manifest = store.manifest(candidate)
    assert manifest is not None
    rollout = None
    if policy.rollout is not None:  # issue 17: the report's rollout and rollback sections
        from dashboard.core.rollout_report import RolloutReport
        from dashboard.store.rollout import rollout_evidence
        from dashboard.train import release_train

        ev = rollout_evidence(store, candidate)
        rollout = RolloutReport(evidence=ev[0] if ev else None,
                                train=[r for r in release_train(store, policy) if r["release"] == candidate])
    return ReportData(rollout=rollout, decision=decision, candidate_manifest=manifest,
                      baseline_manifest=store.manifest(base_id) if base_id else None,
                      changes=decision.changed_artifacts, areas=areas, pass_rate_by_task=bars, status=result,
                      reviews=mine, log_ok=log_ok, log_findings=findings)


def render(data: ReportData, fmt: str) -> bytes:
    if fmt == "md":
        return to_markdown(data).encode()
    if fmt == "html":
        return to_html(data).encode()
    if fmt == "pdf":
        return html_to_pdf(to_html(data), data.candidate_manifest.created_at.strftime("%Y%m%d%H%M%S"))
    raise InputRefused(f"unknown report format {fmt!r} (md, html or pdf)")


def find_chromium() -> str | None:
    for name in CHROMIUM:
        path = shutil.which(name) or (name if Path(name).exists() else None)
        if path:
            return path
    return None


def html_to_pdf(html_text: str, stamp: str) -> bytes:
    """Print the HTML with headless chromium; its timestamps are replaced by `stamp` (YYYYmmddHHMMSS, the same
    length) so the same report gives the same PDF bytes."""
    chromium = find_chromium()
    if chromium is None:
        raise InputRefused("PDF output needs chromium (Debian: apt-get install chromium); md and html need nothing")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html_text, encoding="utf-8")
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-pdf-header-footer",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp}/profile", f"--print-to-pdf={out}", src.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not out.exists():
            raise InputRefused(f"chromium could not print the report: {proc.stderr.strip()[-400:]}")
        pdf = out.read_bytes()
    return re.sub(rb"\(D:\d{14}", b"(D:" + stamp.encode(), pdf)
