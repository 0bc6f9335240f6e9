"""The per-area pages (Quality & RAG, Agent & tools, Security & privacy): their metrics per slice."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard.core.metrics import CATALOGUE, LABELS
from dashboard.core.numbers import fmt_interval, fmt_value
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.slices import compare
from dashboard.ui.state import require_selection


def _label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " ").capitalize())


def _dot_chart(m: str, mrows: list[dict], candidate: str, baseline: str | None) -> go.Figure:
    """Candidate (blue, with its 95% interval) next to the baseline (grey) per slice, on an axis zoomed to the
    data: dots, not bars, so a zoomed axis does not exaggerate; a 4-point drop is visible."""
    fig = go.Figure()
    x = [ui.label(r["slice"]) for r in mrows]
    hi = [((r["interval"][1] - r["candidate"]) if r["interval"] and r["candidate"] is not None else 0) for r in mrows]
    lo = [((r["candidate"] - r["interval"][0]) if r["interval"] and r["candidate"] is not None else 0) for r in mrows]
    if baseline:
        fig.add_scatter(name=f"baseline {ui.label(baseline)}", x=x, y=[r["baseline"] for r in mrows], mode="markers",
                        marker={"color": ui.BASELINE_COLOR, "size": 16, "symbol": "line-ew-open",
                                "line": {"width": 4, "color": ui.BASELINE_COLOR}})
    fig.add_scatter(name=f"candidate {ui.label(candidate)}", x=x, y=[r["candidate"] for r in mrows], mode="markers",
                    marker={"color": ui.CANDIDATE_COLOR, "size": 11},
                    error_y={"type": "data", "array": hi, "arrayminus": lo, "visible": True, "thickness": 2})
    rate = CATALOGUE[m].kind == "rate"
    fig.update_layout(title={"text": ui.label(_label(m)), "font": {"size": 18}},
                      height=360, margin={"l": 10, "r": 10, "t": 50, "b": 10}, font={"size": 14},
                      legend={"orientation": "h", "y": -0.3}, yaxis={"tickformat": ".1%" if rate else None,
                                                                   "automargin": True},
                      xaxis={"automargin": True, "tickangle": -20})
    return fig


def area_page(title: str, intro: str, metrics: tuple[str, ...], key: str) -> None:
    sel = require_selection()
    st.title(title)
    st.caption(intro)
    dims = data.dimensions(sel.generation, sel.releases)
    dimension = st.selectbox("Slice by", dims, index=dims.index("task") if "task" in dims else 0, key=f"{key}_dim")
    rows = compare(sel, dimension, metrics)
    cols = st.columns(2)
    all_zero, no_value = [], []
    shown = 0
    for m in metrics:
        # Only the slices the metric applies to (a bar of "n/a" is an empty gap).
        mrows = [r for r in rows if r["metric"] == m and (r["candidate"] is not None or r["baseline"] is not None)]
        values = [v for r in mrows for v in (r["candidate"], r["baseline"]) if v is not None]
        if not values:
            no_value.append(m)
            continue
        if all(v == 0 for v in values):
            all_zero.append(m)
            continue
        cols[shown % 2].plotly_chart(_dot_chart(m, mrows, sel.candidate, sel.baseline), width="stretch",
                                     key=f"{key}_{m}")
        shown += 1
    # metric labels come from the catalogue (trusted text)
    if all_zero:
        st.caption("0 in every slice, candidate and baseline: " + ", ".join(_label(m) for m in all_zero) + ".")
    if no_value:
        st.caption("Not computed for these cases (the fields they need are missing): "
                   + ", ".join(_label(m) for m in no_value) + ".")
    st.subheader("Per slice")
    ui.show_table([{"slice": r["slice"], "metric": r["metric"], "candidate": fmt_value(r["candidate"]),
                    "95% interval": fmt_interval(r["interval"]), "baseline": fmt_value(r["baseline"]),
                    "delta": fmt_value(r["delta"]), "significant": r["mark"] or "", "n": r["n"],
                    "definition": CATALOGUE[r["metric"]].description} for r in rows])
