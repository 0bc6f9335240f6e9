"""Pieces every page uses. Untrusted text (model inputs/outputs, eval data, anything from a file) is
shown with st.text / st.code / st.dataframe, or escaped before it reaches Markdown or a chart label."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import streamlit as st

from dashboard.core.gates import GateDecision, GateResult
from dashboard.core.numbers import fmt_interval, fmt_value
from dashboard.core.plain import md_text
from dashboard.core.render import STATUS_WORDS
from dashboard.core.reviews import StatusReport

if TYPE_CHECKING:  # pandas (~0.3 s to import) is loaded by the first table, after the decision banner (issue 15)
    import pandas as pd

CANDIDATE_COLOR = "#1f63b4"  # the same blue for the candidate on every page
BASELINE_COLOR = "#8c8c8c"  # the same grey for the baseline
STATUS_TEXT = {"pass": "✅ pass", "fail": "❌ fail", "skipped": "⏭️ skipped"}


def esc(text: object) -> str:
    """Untrusted text safe inside our own Markdown (no HTML, link, e-mail link or math): core/plain.py."""
    return md_text(text)


def label(text: object) -> str:
    """Text safe as a Plotly label (Plotly renders a subset of HTML in labels)."""
    return html.escape(str(text), quote=True)


BANNER_ICONS = {"approved": ":material/check_circle:", "approved_with_warnings": ":material/warning:",
                "blocked": ":material/block:"}


def decision_banner(d: GateDecision) -> None:
    """The decision, large, with icon and words (never colour alone)."""
    words = STATUS_WORDS[d.status]
    base = esc(d.baseline.release_id) if d.baseline else "no baseline"
    # "&middot;" (rendered as a middle dot) keeps the text ASCII: Streamlit loads its emoji catalogue (~0.1-0.2 s,
    # once per process) to look for a leading emoji in any alert text that is not, before the banner (issue 15)
    body = (f"## {BANNER_ICONS[d.status]} {words}\n\n**{esc(d.candidate.release_id)}** against **{base}** &middot; "
            f"{len(d.blockers)} blocker(s), {len(d.warnings)} warning(s) &middot; policy {esc(d.policy.policy_id)} "
            f"version {esc(d.policy.version)}" + (f", profile {esc(d.profile)}" if d.profile else ""))
    {"approved": st.success, "approved_with_warnings": st.warning, "blocked": st.error}[d.status](body)


def gate_table(gates: list[GateResult]) -> pd.DataFrame:
    """Most telling columns first: status, gate, the numbers, why; then slice, severity and the gate's name."""
    import pandas as pd

    from dashboard.ui.sentences import plain_reason

    return pd.DataFrame([{
        "status": STATUS_TEXT[g.status], "gate": g.gate_id, "why": plain_reason(g),
        "observed": fmt_value(g.observed, g.threshold), "baseline": fmt_value(g.baseline),
        "threshold": fmt_value(g.threshold, g.observed) if g.threshold is not None else "",
        "95% interval": fmt_interval(g.interval), "n": g.n,
        "p-value": (f"{g.paired.p_value:.3g}" + (f" (BH {g.paired.p_adjusted:.3g})" if g.paired.slices_tested > 1 else ""))
        if g.paired and g.paired.p_value is not None else "",
        "statistics": g.reason, "slice": g.slice, "severity": g.severity, "name": g.name,
    } for g in gates])


GATE_COLUMNS = {"why": st.column_config.TextColumn(width="large"),
                "gate": st.column_config.TextColumn(width="medium")}


def show_table(rows: list[dict[str, Any]] | pd.DataFrame, **kwargs: Any) -> None:
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    st.dataframe(frame, hide_index=True, width="stretch", **kwargs)


def plain(label_text: str, value: object) -> None:
    """A labelled block of untrusted text, never interpreted."""
    st.caption(label_text)
    st.text(value if value is not None and value != "" else "—")


def delta_text(cand: float | None, base: float | None, points: bool) -> str | None:
    """A signed change for st.metric; None (no arrow) when there is no baseline or no change."""
    if cand is None or base is None or cand == base:
        return None
    d = cand - base
    return f"{d * 100:+.2f} pts" if points else f"{d:+.4g}"


def pct_change(cand: float | None, base: float | None) -> str:
    if cand is None or base is None or base == 0:
        return ""
    return f"{(cand / base - 1) * 100:+.1f}%"


def readiness_banner(result: StatusReport, required_roles: list[str]) -> None:
    """Release status: the gate decision plus the signed reviews (words and icon, not colour alone)."""
    head = (":material/verified: **READY TO RELEASE**" if result.ready
            else ":material/pending: **NOT READY TO RELEASE**")
    lines = [f"{head} · quorum: {esc(', '.join(required_roles) or 'none')}"]
    if result.demo_keys:
        lines.append("- trust root: **DEMO KEYS** (their passphrase is public; not for real releases)")
    lines += [f"- approved: {esc(a)}" for a in result.approvals]
    lines += [f"- waived: {esc(w)}" for w in result.waived]
    lines += [f"- {esc(r)}" for r in result.reasons]
    (st.success if result.ready else st.info)("\n".join(lines))
