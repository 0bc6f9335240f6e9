"""The release report (seed §21) as Markdown and as one self-contained HTML file (inline CSS, inline SVG).

Pure: `ReportData` is gathered by dashboard.reporting. No timestamps of its own, so the same store gives
the same bytes. All untrusted text is escaped (html.escape for HTML, core.plain.md_text for Markdown).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from dashboard.core.gates import GateDecision
from dashboard.core.manifests import ROLLBACK_METHOD, ArtifactChange
from dashboard.core.models import ReleaseManifest
from dashboard.core.numbers import fmt_interval, fmt_percent, fmt_value
from dashboard.core.plain import md_text
from dashboard.core.render import STATUS_WORDS
from dashboard.core.reviews import StatusReport, VerifiedReview
from dashboard.core.rollout_report import RolloutReport, rollback_rows
from dashboard.core.rollout_report import sections as rollout_sections

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
    for kind, attr in ARTIFACT_KINDS.items():
        new = getattr(data.candidate_manifest, attr)
        old = getattr(data.baseline_manifest, attr) if data.baseline_manifest else None
        if isinstance(new, dict):
            for name in sorted(set(new) | set(old or {})):
                rows.append((kind, name, (old or {}).get(name, "–"), new.get(name, "–"), (kind, name) in changed))
        else:
            rows.append((kind, attr, old or "–", new, (kind, attr) in changed))
    return rows


# ----- The report's sections: one model, two renderers --------------------------------------------------
@dataclass(frozen=True)
class Text:
    """Untrusted text (ids, versions, reasons, comments): escaped by each renderer; `style` says how it shows."""

    value: str
    style: Literal["plain", "mono", "status", "warning"] = "plain"


@dataclass(frozen=True)
class Strong:
    """Trusted emphasised text."""

    value: str


# A cell or inline piece: a plain str is trusted text (numbers, catalogue labels, words of this module).
Inline = str | Text | Strong


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Inline]]
    numeric: frozenset[int] = frozenset()  # right-aligned columns (HTML)
    empty: str = ""  # said instead of an empty table


@dataclass(frozen=True)
class Items:
    """A bulleted list; each item is a run of inline pieces."""

    items: list[list[Inline]]


@dataclass(frozen=True)
class Alert:
    """A line that must not be missed."""

    lead: str
    rest: list[Inline] = field(default_factory=list)


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    title: str


@dataclass(frozen=True)
class Para:
    """A paragraph of inline pieces."""

    pieces: list[Inline]


@dataclass(frozen=True)
class Bars:
    """Pass rate per slice, baseline vs candidate (drawn in HTML; the table beside it carries the numbers)."""

    bars: list[SliceBar]
    title: str


@dataclass(frozen=True)
class Judged:
    """What the report judged, by digest."""

    lines: list[tuple[str, str]]


Block = Table | Items | Alert | Heading | Para | Bars | Judged


@dataclass(frozen=True)
class Section:
    title: str
    readers: str | None
    blocks: list[Block]


def _joined(texts: list[str], sep: str = "; ") -> list[Inline]:
    out: list[Inline] = []
    for i, t in enumerate(texts):
        out += ([sep] if i else []) + [Text(t)]
    return out


def _rollout_blocks(d: GateDecision, rollout: RolloutReport) -> list[Block]:
    ev = rollout.evidence
    blocks: list[Block] = [
        Alert("No rollout evidence is attached to this release: its rollout gates fail closed.") if ev is None
        else Para([f"Rollout evidence as of {ev.as_of.isoformat()}, {len(ev.records)} record(s)."])]
    for title, headers, rows in rollout_sections(d, rollout):
        blocks += [Heading(title), Table(headers, [[Text(x) for x in row] for row in rows], empty="None.")]
    return blocks


def sections(data: ReportData) -> list[Section]:
    """The report after its masthead, in reading order: what both renderers show."""
    d = data.decision
    out = [Section("Decision", "everyone", [Table(
        ["severity", "gate", "why"], [[g.severity, Text(g.gate_id), Text(g.reason)] for g in d.failed()],
        empty="No blocker or warning failed.")])]
    out.append(Section("Release and artifacts", "engineering", [Table(
        ["artifact", "name", "baseline", "candidate", "changed"],
        [[Text(k), Text(n), Text(o, "mono"), Text(v, "mono"), Strong("yes") if c else ""]
         for k, n, o, v, c in _artifact_rows(data)])]))
    for area, (title, readers) in AREAS.items():
        blocks: list[Block] = []
        if area == "quality":
            blocks.append(Bars(data.pass_rate_by_task, "Pass rate per task: baseline (grey) vs candidate (blue)"))
        blocks.append(Table(["metric", "candidate", "95% interval", "baseline", "change", "n"],
                            [[r.label, _value(r, r.candidate), _interval(r), _value(r, r.baseline), _delta(r), str(r.n)]
                             for r in data.areas.get(area, [])], numeric=frozenset({1, 3, 5})))
        out.append(Section(title, readers, blocks))
    notes: list[list[Inline]] = [[Text(n, "warning")] for n in d.comparability] or [
        ["Baseline and candidate were judged on the same datasets, judges and scorers."]]
    notes += [[Text(c.dataset), f": {c.added} added, {c.removed} removed, {c.changed} changed, {c.downgraded} "
               "downgraded"] for c in d.dataset_changes]
    notes += [[Text(n)] for n in d.notes]
    out.append(Section("Comparability and eval-dataset governance", "governance", [Items(notes)]))
    if data.rollout is None:
        out.append(Section("Rollback plan", "engineering and on-call", [Table(
            ["artifact", "name", "roll back to", "how"],
            [[Text(c.kind), Text(c.name), Text(c.baseline or "remove it", "mono"), ROLLBACK_METHOD[c.kind]]
             for c in data.changes], empty="Nothing changed since the baseline.")]))
    else:  # with a rollout policy: each change's latest rollback drill, then rollout safety
        out.append(Section("Rollback plan", "engineering and on-call", [Table(
            ["artifact", "name", "roll back to", "how", "latest drill"],
            [[Text(x) for x in row] for row in rollback_rows(d, data.rollout)],
            empty="Nothing changed since the baseline.")]))
        out.append(Section("Rollout safety", "engineering, on-call and governance", _rollout_blocks(d, data.rollout)))
    reviews: list[Block] = []
    if data.status is not None and data.status.demo_keys:
        reviews.append(Alert("Trust root: DEMO KEYS", [" (their passphrase is public; not for real releases)"]))
    if data.log_ok is False:
        reviews.append(Alert("The review log does not verify:", [" ", *_joined(data.log_findings)]))
    reviews.append(Table(["entry", "reviewer", "role", "decision", "reviewed at", "comment"],
                         [[str(r.seq), Text(r.predicate.reviewer), Text(r.predicate.role), Text(r.predicate.decision),
                           r.predicate.reviewed_at.isoformat(), Text(r.predicate.comment)] for r in data.reviews],
                         empty="No signed review yet."))
    out.append(Section("Signed reviews", "governance", reviews))
    out.append(Section("All gates", None, [Table(
        ["status", "severity", "gate", "observed", "baseline", "threshold", "n", "reason"],
        [[Text(g.status, "status"), g.severity, Text(g.gate_id), fmt_value(g.observed, g.threshold),
          fmt_value(g.baseline), fmt_value(g.threshold, g.observed) if g.threshold is not None else "–", str(g.n),
          Text(g.reason)] for g in d.gates], numeric=frozenset({3, 4, 5, 6}))]))
    out.append(Section("What this report judged", None, [Judged(d.judged())]))
    return out


# ----- Markdown ------------------------------------------------------------------------------------------
def _md(piece: Inline, cell: bool = False) -> str:
    if isinstance(piece, Strong):
        return f"**{piece.value}**"
    if isinstance(piece, Text):
        if piece.style == "status":  # pass / fail / skipped: a word of this product
            return piece.value
        return ("⚠️ " if piece.style == "warning" else "") + md_text(piece.value, table_cell=cell)
    return piece


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Table):
        if not block.rows and block.empty:
            return [block.empty]
        return (["| " + " | ".join(block.headers) + " |", "|" + "---|" * len(block.headers)]
                + ["| " + " | ".join(_md(c, cell=True) for c in row) + " |" for row in block.rows])
    if isinstance(block, Items):
        return ["- " + "".join(_md(p) for p in item) for item in block.items]
    if isinstance(block, Alert):
        return [f"**{block.lead}**" + "".join(_md(p) for p in block.rest), ""]
    if isinstance(block, Judged):
        return [f"- {k}: {md_text(v)}" for k, v in block.lines]
    if isinstance(block, Heading):
        return ["", f"### {block.title}", ""]
    if isinstance(block, Para):
        return ["".join(_md(p) for p in block.pieces), ""]
    return []  # Bars: the table that follows carries the numbers


def to_markdown(data: ReportData) -> str:
    d = data.decision

    def e(x: object) -> str:  # untrusted text in prose
        return md_text(x)

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
    for section in sections(data):
        out += ["", f"## {section.title}", ""][1 if out[-1] == "" else 0:]
        if section.readers:
            out += [f"_For {section.readers}._", ""]
        for block in section.blocks:
            lines = _md_block(block)
            out += lines[1:] if lines and not lines[0] and not out[-1] else lines  # one blank line between blocks
    return "\n".join(out + [""])


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


def _html(piece: Inline) -> str:
    if isinstance(piece, Strong):
        return f"<strong>{_h(piece.value)}</strong>"
    if isinstance(piece, Text):
        if piece.style == "mono":
            return f'<span class="mono">{_h(piece.value)}</span>'
        if piece.style == "status":
            return f'<span class="{_h(piece.value)}">{_h(piece.value)}</span>'
        return _h(piece.value)
    return _h(piece)


def _html_block(block: Block) -> str:
    if isinstance(block, Table):
        if not block.rows and block.empty:
            return f"<p>{_h(block.empty)}</p>"
        return _table(block.headers, [[_html(c) for c in row] for row in block.rows], set(block.numeric))
    if isinstance(block, Items):
        return "<ul>" + "".join(
            ("<li class='fail'>" if any(isinstance(p, Text) and p.style == "warning" for p in item) else "<li>")
            + "".join(_html(p) for p in item) + "</li>" for item in block.items) + "</ul>"
    if isinstance(block, Alert):
        return f"<p class='fail'>{_h(block.lead)}{''.join(_html(p) for p in block.rest)}</p>"
    if isinstance(block, Heading):
        return f"<h3>{_h(block.title)}</h3>"
    if isinstance(block, Para):
        return "<p>" + "".join(_html(p) for p in block.pieces) + "</p>"
    if isinstance(block, Bars):
        return (_svg_bars(block.bars, block.title) + f'<div class="legend"><span style="background:{BASELINE}">'
                f'</span>baseline<span style="background:{CANDIDATE}"></span>candidate</div>')
    return "<pre class='mono'>" + _h("\n".join(f"{k:<9} {v}" for k, v in block.lines)) + "</pre>"


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
    for section in sections(data):
        body.append(f"<h2>{_h(section.title)}</h2>")
        if section.readers:
            body.append(f"<div class='for'>For {_h(section.readers)}</div>")
        body += [_html_block(b) for b in section.blocks]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>AI release report: {_h(d.candidate.release_id)}</title>"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
