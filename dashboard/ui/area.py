"""The per-area pages (Quality & RAG, Agent & tools, Security & privacy): their metrics per slice."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard.core.metrics import CATALOGUE
from dashboard.core.numbers import fmt_interval, fmt_value
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.slices import compare
from dashboard.ui.state import require_selection


def area_page(title: str, intro: str, metrics: tuple[str, ...], key: str) -> None:
    sel = require_selection()
    st.title(title)
    st.caption(intro)
    dims = data.dimensions(sel.generation, sel.releases)
    dimension = st.selectbox("Slice by", dims, index=dims.index("task") if "task" in dims else 0, key=f"{key}_dim")
    rows = compare(sel, dimension, metrics)
    cols = st.columns(2)
    for i, m in enumerate(metrics):
        mrows = [r for r in rows if r["metric"] == m]
        if all(r["candidate"] is None and r["baseline"] is None for r in mrows):
            continue
        fig = go.Figure()
        x = [ui.label(r["slice"]) for r in mrows]
        cand_err = [((r["interval"][1] - r["candidate"]) if r["interval"] and r["candidate"] is not None else 0)
                    for r in mrows]
        cand_err_lo = [((r["candidate"] - r["interval"][0]) if r["interval"] and r["candidate"] is not None else 0)
                       for r in mrows]
        if sel.baseline:
            fig.add_bar(name=f"baseline {ui.label(sel.baseline)}", x=x, y=[r["baseline"] for r in mrows],
                        marker_color=ui.BASELINE_COLOR)
        fig.add_bar(name=f"candidate {ui.label(sel.candidate)}", x=x, y=[r["candidate"] for r in mrows],
                    marker_color=ui.CANDIDATE_COLOR,
                    error_y={"type": "data", "array": cand_err, "arrayminus": cand_err_lo, "visible": True})
        fig.update_layout(title={"text": ui.label(m.replace("_", " ")), "font": {"size": 18}}, barmode="group",
                          height=340, margin={"l": 10, "r": 10, "t": 50, "b": 10}, font={"size": 14},
                          legend={"orientation": "h", "y": -0.25})
        cols[i % 2].plotly_chart(fig, width="stretch", key=f"{key}_{m}")
    st.subheader("Per slice")
    ui.show_table([{"slice": r["slice"], "metric": r["metric"], "candidate": fmt_value(r["candidate"]),
                    "95% interval": fmt_interval(r["interval"]), "baseline": fmt_value(r["baseline"]),
                    "delta": fmt_value(r["delta"]), "significant": r["mark"] or "", "n": r["n"],
                    "definition": CATALOGUE[r["metric"]].description} for r in rows])
