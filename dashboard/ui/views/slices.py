"""Slices: a heatmap of slice x metric showing candidate - baseline, with sample sizes and significance."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.core.metrics import CATALOGUE
from dashboard.core.numbers import fmt_value
from dashboard.ui import components as ui
from dashboard.ui import data, drill
from dashboard.ui.slices import compare
from dashboard.ui.state import go as go_to
from dashboard.ui.state import require_selection

DEFAULT = ["pass_rate", "citation_support_rate", "groundedness_pass_rate", "recall_at_10", "latency_p95_ms",
           "cost_per_successful_task"]

sel = require_selection()
st.title("Slices")
if not sel.baseline:
    st.info("Choose a baseline in the sidebar: this page compares the candidate with it.")
    st.stop()
dims = data.dimensions(sel.generation, sel.releases)
c1, c2 = st.columns([1, 3])
dimension = c1.selectbox("Slice by", dims, index=dims.index("task") if "task" in dims else 0, key="slices_dim")
metrics = c2.multiselect("Metrics", list(CATALOGUE), default=DEFAULT, key="slices_metrics")
if not metrics:
    st.info("Pick at least one metric.")
    st.stop()
rows = compare(sel, dimension, tuple(metrics))
frame = pd.DataFrame(rows)
slices = sorted(frame["slice"].unique())
z, text = [], []
for s in slices:
    zr, tr = [], []
    for m in metrics:
        r = frame[(frame["slice"] == s) & (frame["metric"] == m)].iloc[0]
        zr.append(None if r["z"] is None or pd.isna(r["z"]) else float(r["z"]))
        if r["delta"] is None or pd.isna(r["delta"]):
            tr.append("" if r["n"] == 0 else f"n/a<br>n={int(r['n'])}")  # blank: the metric does not apply here
            continue
        delta = f"{r['delta'] * 100:+.1f} pts" if CATALOGUE[m].kind == "rate" else f"{r['delta']:+.3g}"
        tr.append(f"{delta} {r['mark']}<br>n={int(r['n'])}")
    z.append(zr)
    text.append(tr)
fig = go.Figure(go.Heatmap(
    z=z, x=[ui.label(m) for m in metrics], y=[ui.label(s) for s in slices], text=text, texttemplate="%{text}",
    textfont={"size": 15}, colorscale=[[0, "#b2182b"], [0.5, "#e6e6e6"], [1, "#2166ac"]], zmin=-4, zmax=4,
    colorbar={"title": "change in<br>std. errors", "tickvals": [-4, -2, 0, 2, 4],
              "ticktext": ["≤ −4 worse", "−2", "not sig.", "+2", "≥ +4 better"]},
    hoverinfo="skip"))
# One transparent point per cell on top of the heatmap: heatmaps emit no selection events, points do.
cells = [(ui.label(m), ui.label(sl), text[i][j]) for i, sl in enumerate(slices) for j, m in enumerate(metrics)]
fig.add_scatter(x=[c[0] for c in cells], y=[c[1] for c in cells], mode="markers", showlegend=False,
                marker={"size": 40, "opacity": 0, "symbol": "square"}, customdata=[c[2] for c in cells],
                hovertemplate="%{y} · %{x}<br>%{customdata}<extra></extra>")
fig.update_layout(height=max(320, 70 * len(slices) + 120), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                  font={"size": 15}, xaxis={"side": "top"})
event = st.plotly_chart(fig, width="stretch", key="slices_heatmap", on_select="rerun", selection_mode="points")
by_label = {ui.label(v): v for v in slices}
clicked = [p for p in (event.selection.points if event else []) if p.get("y") in by_label]
click = (clicked[0]["y"], clicked[0]["x"]) if clicked else None
if click and click != st.session_state.get("slices_last_click"):  # a new click drills into the cell's slice
    st.session_state["slices_pick"] = by_label[click[0]]
st.session_state["slices_last_click"] = click
st.caption("Cells show candidate − baseline (rates in percentage points) and the candidate's sample size. "
           "▲ / ▼: the rate differs significantly (two-proportion test, Benjamini–Hochberg over all cells, 5%). "
           "Colour means the same in every cell: grey when the change is not significant (or no test applies, as "
           "for latency and cost), otherwise blue (better) or red (worse), deeper the more standard errors the "
           "change is.")

st.subheader("Drill into a slice")
st.caption("Click a cell of the heatmap, or choose the slice here.")
pick = st.selectbox(f"{dimension} value", slices, key="slices_pick")
detail = frame[frame["slice"] == pick]
ui.show_table([{"metric": r["metric"], "candidate": fmt_value(r["candidate"]), "baseline": fmt_value(r["baseline"]),
                "delta": fmt_value(r["delta"]), "n": int(r["n"]), "n baseline": int(r["n_baseline"]),
                "significant": r["mark"] or "no"} for r in detail.to_dict("records")])
if st.button("Show this slice's regressions in Cases", key="slices_to_cases", icon=":material/list_alt:"):
    go_to(drill.CASES_PAGE, drill.slice_params(dimension, str(pick)))
