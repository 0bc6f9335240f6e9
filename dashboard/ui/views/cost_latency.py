"""Cost & latency: latency distributions, percentiles with intervals, tokens and cost per successful task."""

import plotly.graph_objects as go
import streamlit as st

from dashboard.core.numbers import fmt_interval, fmt_value
from dashboard.core.policy import SliceSpec
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.state import require_selection

METRICS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "avg_input_tokens", "avg_output_tokens",
           "cost_per_successful_task", "total_cost_usd", "retry_rate", "error_rate")

sel = require_selection()
st.title("Cost & latency")
suites = ["all suites", *data.dimension_values(sel.generation, sel.releases, "suite")]
suite = st.selectbox("Suite", suites, key="cost_suite")
spec = (SliceSpec() if suite == "all suites" else SliceSpec(suite=[suite])).model_dump_json()

fig = go.Figure()
probs = [i / 100 for i in range(101)]
x_max = 0.0
for release, color, dash in ((sel.baseline, ui.BASELINE_COLOR, "dash"), (sel.candidate, ui.CANDIDATE_COLOR, "solid")):
    if release:
        curve = data.quantile_curve(sel.generation, release, spec, "latency_ms")
        if curve:
            who = "candidate" if release == sel.candidate else "baseline"
            x_max = max(x_max, curve[99] * 1.1)  # up to just past p99: the far tail would squash the curve
            fig.add_scatter(x=curve, y=probs, mode="lines", name=f"{who} {ui.label(release)}",
                            line={"color": color, "width": 3, "dash": dash})
if not fig.data:
    st.info("No case in this selection has a latency.")
fig.update_layout(title={"text": "Latency distribution (ECDF), up to just past p99", "font": {"size": 18}},
                  height=420, font={"size": 14}, xaxis_title="latency (ms)", yaxis_title="share of cases at or below",
                  yaxis={"tickformat": ".0%", "automargin": True}, xaxis={"range": [0, x_max or None],
                                                                          "automargin": True},
                  margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2})
# p95 and p99 are 4% apart: one label above its line, one below, at opposite ends, so they never overlap.
for q, position in ((0.5, "top left"), (0.95, "bottom right"), (0.99, "top left")):
    fig.add_hline(y=q, line={"color": "#cccccc", "width": 1}, annotation_text=f"p{int(q * 100)}",
                  annotation_position=position, annotation_font={"size": 12, "color": "#666666"})
st.plotly_chart(fig, width="stretch", key="latency_ecdf")

cand = data.metrics_with_intervals(sel.generation, sel.candidate, spec, METRICS).get("", {})
base = data.metrics_with_intervals(sel.generation, sel.baseline, spec, METRICS).get("", {}) if sel.baseline else {}
cols = st.columns(3)
for col, m in zip(cols, ("latency_p95_ms", "cost_per_successful_task", "avg_input_tokens"), strict=True):
    c, b = cand.get(m), base.get(m)
    col.metric(m.replace("_", " "), fmt_value(c.value if c else None),
               ui.delta_text(c.value if c else None, b.value if b else None, points=False), delta_color="inverse",
               help=f"95% interval {fmt_interval(c.interval) if c else ''} ({c.interval_method if c else ''})")
ui.show_table([{
    "metric": m, "candidate": fmt_value(cand[m].value) if m in cand else "n/a",
    "95% interval": fmt_interval(cand[m].interval) if m in cand else "",
    "interval method": (cand[m].interval_method or "") if m in cand else "",
    "baseline": fmt_value(base[m].value) if m in base else "n/a",
    "change": ui.pct_change(cand[m].value if m in cand else None, base[m].value if m in base else None),
} for m in METRICS])
st.caption("Cost per successful task divides spend by passed cases: a release that spends less because it fails "
           "more is not cheaper. Percentile intervals are exact bootstrap intervals; cost intervals come from a "
           "seeded bootstrap, so they never change between runs.")
