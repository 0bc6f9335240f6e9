"""The release report (seed §21) as Markdown and as one self-contained HTML file (inline CSS, inline SVG).

Pure: `ReportData` is gathered by dashboard.reporting. No timestamps of its own, so the same store gives
the same bytes. All untrusted text is escaped (html.escape for HTML, core.plain.md_text for Markdown).
"""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel

from dashboard.core.gates import GateDecision
from dashboard.core.manifests import ArtifactChange
from dashboard.core.models import ReleaseManifest
from dashboard.core.numbers import fmt_interval, fmt_percent, fmt_value
from dashboard.core.plain import md_text
from dashboard.core.render import STATUS_WORDS
from dashboard.core.reviews import StatusReport, VerifiedReview
from dashboard.core.rollout_report import RolloutReport, rollback_rows
from dashboard.core.rollout_report import markdown as rollout_markdown
from dashboard.core.rollout_report import sections as rollout_sections

# Seed §25: how each kind of artifact is rolled back.
ROLLBACK_METHOD = {
    "code": "deploy the previous image", "image": "deploy the previous image",
    "prompts": "switch the prompt version back", "model_routes": "switch the route config back",
    "indexes": "promote the previous active index", "tools": "disable or revert the tool version",
    "workflows": "route new runs to the previous workflow version", "eval_datasets": "no rollback: review the gate change",
    "config": "revert the config version", "governance_policy": "revert the governance policy version",
}
AREAS = {
    "quality": ("Quality", "product, engineering"),
    "rag": ("RAG", "engineering"),
    "agent": ("Agent and tools", "engineering, security"),
    "security": ("Security and privacy", "security, governance"),
    "performance": ("Performance and cost", "engineering, product"),
}


class MetricRow(BaseModel):
    metric: str
    label: str
    kind: str
    candidate: float | None
    baseline: float | None
    interval: tuple[float, float] | None
    n: int
    higher_is_better: bool


class SliceBar(BaseModel):
    slice: str
    candidate: float | None
    baseline: float | None


class ReportData(BaseModel):
    decision: GateDecision
    candidate_manifest: ReleaseManifest
    baseline_manifest: ReleaseManifest | None
    changes: list[ArtifactChange]
    areas: dict[str, list[MetricRow]]
    pass_rate_by_task: list[SliceBar]
    status: StatusReport | None
    reviews: list[VerifiedReview]
    log_ok: bool | None
    log_findings: list[str]
    rollout: RolloutReport | None = None  # set when the policy has a rollout section (issue 17)


def _value(row: MetricRow, x: float | None) -> str:
    return fmt_percent(x) if row.kind == "rate" else fmt_value(x)


def _interval(row: MetricRow) -> str:
    if row.interval is None:
        return ""
    if row.kind == "rate":
        return f"[{fmt_percent(row.interval[0])}, {fmt_percent(row.interval[1])}]"
    return fmt_interval(row.interval)


def _delta(row: MetricRow) -> str:
    if row.candidate is None or row.baseline is None:
        return "–"
    d = row.candidate - row.baseline
    if d == 0:
        return "no change"
    text = f"{d * 100:+.2f} pts" if row.kind == "rate" else f"{d:+.4g}"
    better = (d > 0) == row.higher_is_better
    return f"{text} ({'better' if better else 'worse'})"


def _artifact_rows(data: ReportData) -> list[tuple[str, str, str, str, bool]]:
    """(kind, name, baseline version, candidate version, changed) for every artifact of the candidate."""
    from dashboard.core.models import ARTIFACT_KINDS

    rows = []
    changed = {(c.kind, c.name) for c in data.changes}
    for kind, field in ARTIFACT_KINDS.items():
        new = getattr(data.candidate_manifest, field)
        old = getattr(data.baseline_manifest, field) if data.baseline_manifest else None
        if isinstance(new, dict):
            for name in sorted(set(new) | set(old or {})):
                rows.append((kind, name, (old or {}).get(name, "–"), new.get(name, "–"), (kind, name) in changed))
        else:
            rows.append((kind, field, old or "–", new, (kind, field) in changed))
    return rows


# ----- Markdown ------------------------------------------------------------------------------------------
def to_markdown(data: ReportData) -> str:
    d = data.decision

    def e(x: object) -> str:  # untrusted text in prose
        return md_text(x)

    def et(x: object) -> str:  # untrusted text in a table cell
        return md_text(x, table_cell=True)

    out = [f"# AI release report: {e(d.candidate.release_id)}", "",
           f"**Decision: {STATUS_WORDS[d.status]}** · {len(d.blockers)} blocker(s), {len(d.warnings)} warning(s)  ",
           f"Baseline: {e(d.baseline.release_id) if d.baseline else 'none'} · policy {e(d.policy.policy_id)} "
           f"v{e(d.policy.version)}" + (f" · profile {e(d.profile)}" if d.profile else "") + "  ",
           f"Decision digest: `{d.digest}`", ""]
    if data.status is not None:
        out.append(f"**Release status: {'READY' if data.status.ready else 'NOT READY'}**"
                   + ("" if data.status.ready else " — " + "; ".join(e(r) for r in data.status.reasons)))
        out.append("")
    out += ["Reading guide: engineering → artifacts, RAG, agent, performance, rollback; product → decision, quality, "
            "cost; security → security and privacy, agent; governance → decision, dataset governance, reviews.", ""]
    out += ["## Decision", ""]
    for g in d.failed():
        out.append(f"- **{g.severity}** {e(g.gate_id)}: {e(g.reason)}")
    if not d.blockers and not d.warnings:
        out.append("- No blocker or warning failed.")
    out += ["", "## Release and artifacts", "", "| artifact | name | baseline | candidate | changed |",
            "|---|---|---|---|---|"]
    for kind, name, old, new, changed in _artifact_rows(data):
        out.append(f"| {et(kind)} | {et(name)} | {et(old)} | {et(new)} | {'**yes**' if changed else ''} |")
    for area, (title, readers) in AREAS.items():
        out += ["", f"## {title}", "", f"_For {readers}._", "", "| metric | candidate | 95% interval | baseline | change | n |",
                "|---|---|---|---|---|---|"]
        for r in data.areas.get(area, []):
            out.append(f"| {r.label} | {_value(r, r.candidate)} | {_interval(r)} | {_value(r, r.baseline)} "
                       f"| {_delta(r)} | {r.n} |")
    out += ["", "## Comparability and eval-dataset governance", ""]
    out += [f"- ⚠️ {e(n)}" for n in d.comparability] or ["- Baseline and candidate were judged on the same datasets, "
                                                          "judges and scorers."]
    for ch in d.dataset_changes:
        out.append(f"- {e(ch.dataset)}: {ch.added} added, {ch.removed} removed, {ch.changed} changed, "
                   f"{ch.downgraded} downgraded")
    out += [f"- {e(n)}" for n in d.notes]
    if data.rollout is not None:  # with rollout evidence: each change's latest rollback drill, then rollout safety
        out += ["", "## Rollback plan", "", "| artifact | name | roll back to | how | latest drill |",
                "|---|---|---|---|---|"]
        out += ["| " + " | ".join(et(x) for x in row) + " |" for row in rollback_rows(d, data.rollout, ROLLBACK_METHOD)]
        if not data.changes:
            out.append("| – | – | – | nothing changed | – |")
        out += rollout_markdown(d, data.rollout, et)
    else:
        out += ["", "## Rollback plan", "", "| artifact | name | roll back to | how |", "|---|---|---|---|"]
        for c in data.changes:
            out.append(f"| {et(c.kind)} | {et(c.name)} | {et(c.baseline or 'remove it')} | {ROLLBACK_METHOD[c.kind]} |")
        if not data.changes:
            out.append("| – | – | – | nothing changed |")
    out += ["", "## Signed reviews", ""]
    if data.status is not None and data.status.demo_keys:
        out.append("**Trust root: DEMO KEYS** (their passphrase is public; not for real releases)\n")
    if data.log_ok is False:
        out.append("**The review log does not verify:** " + "; ".join(e(f) for f in data.log_findings))
    if data.reviews:
        out += ["| entry | reviewer | role | decision | reviewed at | comment |", "|---|---|---|---|---|---|"]
        out += [f"| {r.seq} | {et(r.predicate.reviewer)} | {et(r.predicate.role)} | {et(r.predicate.decision)} | "
                f"{r.predicate.reviewed_at.isoformat()} | {et(r.predicate.comment)} |" for r in data.reviews]
    else:
        out.append("No signed review yet.")
    out += ["", "## All gates", "", "| status | severity | gate | observed | baseline | threshold | n | reason |",
            "|---|---|---|---|---|---|---|---|"]
    out += [f"| {g.status} | {g.severity} | {et(g.gate_id)} | {fmt_value(g.observed, g.threshold)} | "
            f"{fmt_value(g.baseline)} | {fmt_value(g.threshold, g.observed) if g.threshold is not None else '–'} | "
            f"{g.n} | {et(g.reason)} |" for g in d.gates]
    out += ["", "## What this report judged", ""] + [f"- {k}: {e(v)}" for k, v in d.judged()] + [""]
    return "\n".join(out)


# ----- HTML ----------------------------------------------------------------------------------------------
CSS = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1b1b;max-width:1100px;margin:24px auto;padding:0 24px}
h1{font-size:28px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #e4e4e4;padding-bottom:4px}
.for{color:#666;font-size:13px;margin:-4px 0 8px}
.banner{padding:16px 20px;border-radius:8px;margin:16px 0;font-size:18px}
.banner strong{font-size:26px;display:block}
.blocked{background:#fde8e8;border:2px solid #b3261e}.approved_with_warnings{background:#fff4d6;border:2px solid #a56a00}
.approved{background:#e6f4ea;border:2px solid #1e6b34}.ready{background:#e6f4ea}.notready{background:#eef2f9}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:13.5px}
th,td{border:1px solid #ddd;padding:5px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.fail{color:#b3261e;font-weight:600}.pass{color:#1e6b34}.skipped{color:#777}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}}
"""
CANDIDATE, BASELINE = "#1f63b4", "#8c8c8c"


def _h(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _svg_bars(bars: list[SliceBar], title: str) -> str:
    """Grouped bars (baseline grey, candidate blue) as inline SVG, values 0..1."""
    if not bars:
        return ""
    lo = min([v for b in bars for v in (b.candidate, b.baseline) if v is not None] + [1.0])
    floor = max(0.0, min(0.9, (int(lo * 20) / 20) - 0.05))
    w, h, left, bottom, top = 720, 260, 50, 60, 24
    group = (w - left - 10) / len(bars)
    bw = min(28.0, group / 3)

    def y(v: float) -> float:
        return top + (h - top - bottom) * (1 - (v - floor) / (1 - floor))

    parts = [f'<svg width="{w}" height="{h}" role="img" aria-label="{_h(title)}">',
             f'<text x="{left}" y="16" font-size="14" font-weight="600">{_h(title)}</text>']
    for i in range(6):
        tick = floor + (1 - floor) * i / 5
        parts.append(f'<line x1="{left}" x2="{w - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">{tick:.0%}</text>')
    for i, b in enumerate(bars):
        x0 = left + i * group + group / 2 - bw
        for j, (v, color) in enumerate(((b.baseline, BASELINE), (b.candidate, CANDIDATE))):
            if v is not None:
                parts.append(f'<rect x="{x0 + j * bw:.1f}" y="{y(v):.1f}" width="{bw - 2:.1f}" '
                             f'height="{max(0.0, h - bottom - y(v)):.1f}" fill="{color}"><title>{_h(b.slice)}: '
                             f'{v:.4f}</title></rect>')
        parts.append(f'<text x="{left + i * group + group / 2:.1f}" y="{h - bottom + 16}" font-size="11" '
                     f'text-anchor="middle">{_h(b.slice[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_h(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(data: ReportData) -> str:
    d = data.decision
    body: list[str] = [f"<h1>AI release report: {_h(d.candidate.release_id)}</h1>",
                       f'<div class="for">Baseline {_h(d.baseline.release_id) if d.baseline else "none"} · policy '
                       f"{_h(d.policy.policy_id)} v{_h(d.policy.version)}"
                       + (f" · profile {_h(d.profile)}" if d.profile else "") + "</div>",
                       f'<div class="banner {d.status}"><strong>{_h(STATUS_WORDS[d.status])}</strong>'
                       f"{len(d.blockers)} blocker(s), {len(d.warnings)} warning(s) · decision digest "
                       f'<span class="mono">{_h(d.digest)}</span></div>']
    if data.status is not None:
        s = data.status
        items = ([f"<li>approved: {_h(a)}</li>" for a in s.approvals] + [f"<li>waived: {_h(w)}</li>" for w in s.waived]
                 + [f"<li>{_h(r)}</li>" for r in s.reasons])
        body.append(f'<div class="banner {"ready" if s.ready else "notready"}"><strong>'
                    f'{"READY TO RELEASE" if s.ready else "NOT READY TO RELEASE"}</strong><ul>{"".join(items)}</ul></div>')
    body.append('<p class="for">Reading guide — engineering: artifacts, RAG, agent, performance, rollback · product: '
                "decision, quality, cost · security: security and privacy, agent · governance: decision, dataset "
                "governance, reviews.</p>")
    failed = d.failed()
    body.append("<h2>Decision</h2><div class='for'>For everyone</div>")
    body.append(_table(["severity", "gate", "why"], [[_h(g.severity), _h(g.gate_id), _h(g.reason)] for g in failed])
                if failed else "<p>No blocker or warning failed.</p>")
    body.append("<h2>Release and artifacts</h2><div class='for'>For engineering</div>")
    body.append(_table(["artifact", "name", "baseline", "candidate", "changed"],
                       [[_h(k), _h(n), f'<span class="mono">{_h(o)}</span>', f'<span class="mono">{_h(v)}</span>',
                         "<strong>yes</strong>" if c else ""] for k, n, o, v, c in _artifact_rows(data)]))
    for area, (title, readers) in AREAS.items():
        body.append(f"<h2>{_h(title)}</h2><div class='for'>For {_h(readers)}</div>")
        if area == "quality":
            body.append(_svg_bars(data.pass_rate_by_task, "Pass rate per task: baseline (grey) vs candidate (blue)"))
            body.append(f'<div class="legend"><span style="background:{BASELINE}"></span>baseline'
                        f'<span style="background:{CANDIDATE}"></span>candidate</div>')
        body.append(_table(["metric", "candidate", "95% interval", "baseline", "change", "n"],
                           [[_h(r.label), _value(r, r.candidate), _interval(r), _value(r, r.baseline),
                             _h(_delta(r)), str(r.n)] for r in data.areas.get(area, [])], numeric={1, 3, 5}))
    body.append("<h2>Comparability and eval-dataset governance</h2><div class='for'>For governance</div><ul>")
    body += [f"<li class='fail'>{_h(n)}</li>" for n in d.comparability] or [
        "<li>Baseline and candidate were judged on the same datasets, judges and scorers.</li>"]
    body += [f"<li>{_h(c.dataset)}: {c.added} added, {c.removed} removed, {c.changed} changed, {c.downgraded} "
             "downgraded</li>" for c in d.dataset_changes]
    body += [f"<li>{_h(n)}</li>" for n in d.notes]
    body.append("</ul><h2>Rollback plan</h2><div class='for'>For engineering and on-call</div>")
    if data.rollout is not None:  # with rollout evidence: each change's latest rollback drill, then rollout safety
        body.append(_table(["artifact", "name", "roll back to", "how", "latest drill"],
                           [[_h(x) for x in row] for row in rollback_rows(d, data.rollout, ROLLBACK_METHOD)])
                    if data.changes else "<p>Nothing changed since the baseline.</p>")
        body.append("<h2>Rollout safety</h2><div class='for'>For engineering, on-call and governance</div>")
        if data.rollout.evidence is None:
            body.append("<p class='fail'>No rollout evidence is attached to this release: its rollout gates fail "
                        "closed.</p>")
        for title, headers, rows in rollout_sections(d, data.rollout):
            body.append(f"<h3>{_h(title)}</h3>")
            body.append(_table(headers, [[_h(x) for x in row] for row in rows]) if rows else "<p>None.</p>")
    else:
        body.append(_table(["artifact", "name", "roll back to", "how"],
                           [[_h(c.kind), _h(c.name), f'<span class="mono">{_h(c.baseline or "remove it")}</span>',
                             _h(ROLLBACK_METHOD[c.kind])] for c in data.changes]) if data.changes
                    else "<p>Nothing changed since the baseline.</p>")
    body.append("<h2>Signed reviews</h2><div class='for'>For governance</div>")
    if data.status is not None and data.status.demo_keys:
        body.append("<p class='fail'>Trust root: DEMO KEYS (their passphrase is public; not for real releases)</p>")
    if data.log_ok is False:
        body.append("<p class='fail'>The review log does not verify: " + _h("; ".join(data.log_findings)) + "</p>")
    body.append(_table(["entry", "reviewer", "role", "decision", "reviewed at", "comment"],
                       [[str(r.seq), _h(r.predicate.reviewer), _h(r.predicate.role), _h(r.predicate.decision),
                         _h(r.predicate.reviewed_at.isoformat()), _h(r.predicate.comment)] for r in data.reviews])
                if data.reviews else "<p>No signed review yet.</p>")
    body.append("<h2>All gates</h2>")
    body.append(_table(["status", "severity", "gate", "observed", "baseline", "threshold", "n", "reason"],
                       [[f'<span class="{g.status}">{_h(g.status)}</span>', _h(g.severity), _h(g.gate_id),
                         fmt_value(g.observed, g.threshold), fmt_value(g.baseline),
                         fmt_value(g.threshold, g.observed) if g.threshold is not None else "–", str(g.n),
                         _h(g.reason)] for g in d.gates], numeric={3, 4, 5, 6}))
    body.append("<h2>What this report judged</h2><pre class='mono'>" + _h(d.judged_block()) + "</pre>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>AI release report: {_h(d.candidate.release_id)}</title>"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
