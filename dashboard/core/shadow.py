"""Shadow comparison (seed §23): a new version answered real requests beside production without showing its
answers; compare the two request by request. The store pairs and aggregates (store/observations.py); this module
turns the aggregates into intervals, findings and renderings. Pure: no SQL, no Streamlit.

Measures per pair: exact agreement of the answer text; normalised agreement (case, punctuation and whitespace
ignored); answer similarity (Jaccard of the normalised words); retrieval overlap as Jaccard of the retrieved id
sets and as rank-biased overlap (Webber, Moffat & Zobel 2010; p = 0.9, truncated at the longer list and
normalised so identical lists score 1); latency and cost deltas (shadow − production) with 95% intervals
(paired mean ± 1.96 sd/√n); evaluator score deltas for every score both carry.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from dashboard.core.models import EvidenceItem
from dashboard.core.plain import md_text
from dashboard.core.stats import Z95, wilson_interval

DEFAULT_MIN_AGREEMENT = 0.9


class Measure(BaseModel):
    """A mean with its 95% interval."""

    n: int = Field(description="Pairs that carry the measure.")
    value: float | None = Field(description="The mean (null without pairs).")
    low: float | None = Field(default=None, description="Lower end of the 95% interval.")
    high: float | None = Field(default=None, description="Upper end of the 95% interval.")


class ShadowSlice(BaseModel):
    """The comparison on one slice value (or on all pairs)."""

    dimension: str = Field(description="Slice dimension (tenant, task, ...); 'all' for every pair.")
    value: str = Field(description="The slice's value.")
    pairs: int = Field(description="Requests answered by both.")
    exact: Measure = Field(description="Share of identical answers.")
    normalised: Measure = Field(description="Share of answers identical once case, punctuation and spacing are "
                                "ignored.")
    answer_similarity: float | None = Field(description="Mean Jaccard similarity of the answers' normalised words.")
    jaccard: Measure = Field(description="Mean Jaccard overlap of the retrieved id sets.")
    rbo: Measure = Field(description="Mean rank-biased overlap (p = 0.9) of the retrieved ids.")
    latency_delta_ms: Measure = Field(description="Mean shadow − production latency (ms).")
    latency_relative: float | None = Field(description="Mean latency delta / production's mean latency.")
    cost_delta_usd: Measure = Field(description="Mean shadow − production cost (USD).")
    cost_relative: float | None = Field(description="Mean cost delta / production's mean cost.")


class ShadowFinding(BaseModel):
    """Something the shadow comparison found that matters for the release."""

    severity: Literal["blocker", "warning"] = Field(description="blocker or warning.")
    message: str = Field(description="What was found, in plain words.")
    request_ids: list[str] = Field(default_factory=list, description="The requests concerned (first 50).")


class ShadowReport(BaseModel):
    """`readiness shadow compare`: a shadow release against production, request by request."""

    shadow_release: str = Field(description="The shadow's release id (observations of variant shadow).")
    baseline_release: str = Field(description="The production release (observations of variant baseline).")
    shadow_requests: int = Field(description="Shadow requests stored.")
    unpaired_shadow_requests: int = Field(description="Shadow requests with no production request of the same id.")
    min_agreement: float = Field(description="A slice whose normalised agreement is shown below this (its 95% "
                                "interval's upper end) is a warning.")
    overall: ShadowSlice = Field(description="All pairs.")
    slices: list[ShadowSlice] = Field(description="Per slice dimension and value.")
    scores: list[dict[str, Any]] = Field(description="Evaluator score deltas (shadow − production): score, n, "
                                         "delta, low, high.")
    findings: list[ShadowFinding] = Field(description="Blockers and warnings.")
    most_disagreeing: list[dict[str, Any]] = Field(description="The pairs that disagree most (answer first, then "
                                                   "retrieval).")

    @property
    def blocked(self) -> bool:
        return any(f.severity == "blocker" for f in self.findings)


def _mean(n: Any, mean: Any, sd: Any, clip: tuple[float, float] | None = None) -> Measure:
    n = int(n or 0)
    if n == 0 or mean is None:
        return Measure(n=n, value=None)
    m = float(mean)
    if clip:
        m = min(max(m, clip[0]), clip[1])
    if n < 2 or sd is None or not math.isfinite(float(sd)):
        return Measure(n=n, value=m)
    half = Z95 * float(sd) / math.sqrt(n)
    lo, hi = m - half, m + half
    if clip:
        lo, hi = max(lo, clip[0]), min(hi, clip[1])
    return Measure(n=n, value=m, low=lo, high=hi)


def _share(n: Any, share: Any) -> Measure:
    n = int(n or 0)
    if n == 0 or share is None:
        return Measure(n=n, value=None)
    ci = wilson_interval(float(share) * n, n)
    return Measure(n=n, value=float(share), low=ci[0] if ci else None, high=ci[1] if ci else None)


def _ratio(delta: Any, base: Any) -> float | None:
    return float(delta) / float(base) if delta is not None and base else None


def _slice(row: dict[str, Any], dimension: str, value: str) -> ShadowSlice:
    return ShadowSlice(
        dimension=dimension, value=value, pairs=int(row["pairs"] or 0),
        exact=_share(row["answered"], row["exact"]), normalised=_share(row["answered"], row["normalised"]),
        answer_similarity=None if row["answer_similarity"] is None else float(row["answer_similarity"]),
        jaccard=_mean(row["jaccard_n"], row["jaccard"], row["jaccard_sd"], (0.0, 1.0)),
        rbo=_mean(row["rbo_n"], row["rbo"], row["rbo_sd"], (0.0, 1.0)),
        latency_delta_ms=_mean(row["latency_n"], row["latency_delta"], row["latency_sd"]),
        latency_relative=_ratio(row["latency_delta"], row["prod_latency"]),
        cost_delta_usd=_mean(row["cost_n"], row["cost_delta"], row["cost_sd"]),
        cost_relative=_ratio(row["cost_delta"], row["prod_cost"]))


def build_report(raw: dict[str, Any], shadow_release: str, baseline_release: str,
                 min_agreement: float = DEFAULT_MIN_AGREEMENT) -> ShadowReport:
    """The report from the store's aggregates (store/observations.py:shadow_comparison)."""
    overall = _slice(raw["overall"], "all", "all")
    slices = [_slice(r, str(r["dimension"]), str(r["value"])) for r in raw["slices"]]
    findings: list[ShadowFinding] = []
    if raw["side_effects"]:
        ids = [r for r, _ in raw["side_effects"]]
        tools = sorted({t for _, ts in raw["side_effects"] for t in ts})
        findings.append(ShadowFinding(
            severity="blocker", request_ids=ids[:50],
            message=f"Shadow output must not cause side effects: {len(ids)} shadow request(s) ran a tool with side "
                    f"effects ({', '.join(tools)}). Make the shadow's tools read-only or stubbed before running it "
                    "again."))
    if overall.pairs == 0:
        findings.append(ShadowFinding(severity="blocker", message="No shadow request could be paired with a "
                                      "production request by request id: nothing was compared (fails closed)."))
    for s in [overall, *slices]:
        # A warning only when the 95% interval lies below the bar: a small slice's noise is not a finding.
        agree, upper = s.normalised.value, s.normalised.high
        if agree is not None and upper is not None and upper < min_agreement:
            where = "all requests" if s.dimension == "all" else f"{s.dimension}={s.value}"
            findings.append(ShadowFinding(
                severity="warning",
                message=f"Answers agree on {100 * agree:.0f}% of {where} ({s.pairs} pairs; normalised "
                        f"text, 95% interval up to {100 * upper:.0f}%), below {100 * min_agreement:.0f}%; "
                        "retrieval overlap (RBO) "
                        f"{'n/a' if s.rbo.value is None else f'{s.rbo.value:.2f}'}."))
    scores = []
    for r in raw["scores"]:
        m = _mean(r["n"], r["delta"], r["sd"])
        scores.append({"score": r["score"], "n": m.n, "delta": m.value, "low": m.low, "high": m.high})
    worst = []
    for w in raw["worst"]:
        worst.append({**w, "rbo": None if w["rbo"] is None else min(1.0, float(w["rbo"]))})
    return ShadowReport(
        shadow_release=shadow_release, baseline_release=baseline_release, shadow_requests=raw["shadow_requests"],
        unpaired_shadow_requests=raw["shadow_requests"] - overall.pairs, min_agreement=min_agreement,
        overall=overall, slices=slices, scores=scores, findings=findings, most_disagreeing=worst)


def _pct(m: Measure) -> str:
    if m.value is None:
        return "n/a"
    ci = f" [{100 * m.low:.1f}–{100 * m.high:.1f}]" if m.low is not None and m.high is not None else ""
    return f"{100 * m.value:.1f}%{ci}"


def _num(m: Measure, fmt: str = "{:+.4g}") -> str:
    if m.value is None:
        return "n/a"
    ci = f" [{fmt.format(m.low)}, {fmt.format(m.high)}]" if m.low is not None and m.high is not None else ""
    return fmt.format(m.value) + ci


def _line(s: ShadowSlice) -> str:
    return (f"pairs {s.pairs}; agreement exact {_pct(s.exact)}, normalised {_pct(s.normalised)}; retrieval Jaccard "
            f"{_num(s.jaccard, '{:.3f}')}, RBO {_num(s.rbo, '{:.3f}')}; latency {_num(s.latency_delta_ms, '{:+.0f}')} "
            f"ms; cost {_num(s.cost_delta_usd, '{:+.5f}')} USD")


def to_text(r: ShadowReport) -> str:
    head = "BLOCKED" if r.blocked else "OK"
    lines = [f"{head}: shadow {r.shadow_release} against production {r.baseline_release}",
             f"{r.shadow_requests} shadow requests, {r.overall.pairs} paired by request id, "
             f"{r.unpaired_shadow_requests} unpaired", "", f"all: {_line(r.overall)}"]
    for f in r.findings:
        lines.append(f"{f.severity}: {f.message}" + (f" Requests: {', '.join(f.request_ids[:10])}"
                                                      if f.request_ids else ""))
    if r.scores:
        lines += ["", "evaluator scores (shadow - production):"]
        lines += [f"  {s['score']}: {s['delta']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}] over {s['n']} pairs"
                  if s["low"] is not None else f"  {s['score']}: {s['delta']} over {s['n']} pairs" for s in r.scores]
    lines += ["", "per slice:"]
    lines += [f"  {s.dimension}={s.value}: {_line(s)}" for s in r.slices]
    lines += ["", "most disagreeing requests:"]
    for w in r.most_disagreeing:
        sim = "n/a" if w["answer_similarity"] is None else f"{w['answer_similarity']:.2f}"
        rbo = "n/a" if w["rbo"] is None else f"{w['rbo']:.2f}"
        lines.append(f"  {w['request_id']}: answer similarity {sim}, RBO {rbo}, slices {w['slices']}")
    return "\n".join(lines) + "\n"


def to_markdown(r: ShadowReport) -> str:
    lines = [f"## Shadow: {'BLOCKED' if r.blocked else 'OK'}", "",
             f"Shadow {md_text(r.shadow_release)} against production {md_text(r.baseline_release)} · "
             f"{r.overall.pairs} paired requests ({r.unpaired_shadow_requests} unpaired)", ""]
    lines += [f"- **{f.severity}**: {md_text(f.message)}" for f in r.findings]
    lines += ["", "| slice | pairs | exact | normalised | Jaccard | RBO | latency Δ ms | cost Δ USD |",
              "|---|---|---|---|---|---|---|---|"]
    for s in [r.overall, *r.slices]:
        lines.append(f"| {md_text(s.dimension + '=' + s.value, True)} | {s.pairs} | {_pct(s.exact)} | "
                     f"{_pct(s.normalised)} | {_num(s.jaccard, '{:.3f}')} | {_num(s.rbo, '{:.3f}')} | "
                     f"{_num(s.latency_delta_ms, '{:+.0f}')} | {_num(s.cost_delta_usd, '{:+.5f}')} |")
    return "\n".join(lines) + "\n"


def evidence_item(report: ShadowReport, where: tuple[str, str] | None = None) -> EvidenceItem:
    """The shadow result as evidence a gate can use (`metric: evidence.shadow_agreement`, `condition: "== 1"`):
    passed when no blocker was found and the normalised answer agreement on the slice (`where` = (dimension,
    value); default all pairs) is at least the report's min_agreement. A slice without pairs fails (fail closed)."""
    chosen = report.overall if where is None else next(
        (s for s in report.slices if (s.dimension, s.value) == where), None)
    label = "all requests" if where is None else f"{where[0]}={where[1]}"
    blockers = [f for f in report.findings if f.severity == "blocker"]
    if chosen is None or chosen.normalised.value is None:
        passed, detail = False, f"no answered pair in {label}"
    else:
        agree = chosen.normalised.value
        passed = not blockers and agree >= report.min_agreement
        detail = (f"shadow {report.shadow_release} vs production {report.baseline_release}: normalised answer "
                  f"agreement {100 * agree:.1f}% on {label} ({chosen.pairs} pairs; required "
                  f"{100 * report.min_agreement:.0f}%)" + (f"; blocker: {blockers[0].message}" if blockers else ""))
    return EvidenceItem(kind="shadow_agreement", passed=passed, detail=detail,
                        ref=f"readiness shadow compare --release {report.shadow_release} "
                            f"--baseline {report.baseline_release}")
