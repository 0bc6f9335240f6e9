"""Eval dataset changes since the baseline, and metric trends across releases."""

import plotly.graph_objects as go
import streamlit as st

from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.state import require_selection

TRENDS = ("pass_rate", "critical_pass_rate", "citation_support_rate", "recall_at_10", "latency_p95_ms",
          "cost_per_successful_task")

sel = require_selection()
st.title("Eval datasets and history")
st.subheader("What changed in the eval datasets")
if not sel.baseline:
    st.info("Choose a baseline in the sidebar to see which eval cases were added, removed or changed.")
else:
    changes = data.dataset_changes(sel.generation, sel.candidate, sel.baseline)
    if not changes:
        st.success("The candidate ran exactly the baseline's eval cases (same ids and content).")
    else:
        critical = [c for c in changes if c["baseline_risk"] == "critical" and c["change"] in ("removed", "downgraded")]
        if critical:
            st.error(f"{len(critical)} critical case(s) removed or downgraded: a team can pass a gate by weakening "
                     "the eval. This blocks by default.", icon=":material/gpp_bad:")
        counts: dict[tuple[str, str], int] = {}
        for c in changes:
            counts[(c["dataset"], c["change"])] = counts.get((c["dataset"], c["change"]), 0) + 1
        ui.show_table([{"dataset": k[0], "change": k[1], "cases": v} for k, v in sorted(counts.items())])
        kind = st.selectbox("List", ["added", "removed", "changed", "downgraded"], key="datasets_kind")
        ui.show_table([{"dataset": c["dataset"], "suite": c["suite"], "case": c["case_id"],
                        "baseline risk": c["baseline_risk"] or "—", "candidate risk": c["candidate_risk"] or "—",
                        "baseline digest": c["baseline_digest"] or "—", "candidate digest": c["candidate_digest"] or "—"}
                       for c in changes if c["change"] == kind])

st.subheader("Metric trends across releases")
rows = data.history(sel.generation, TRENDS)
metric = st.selectbox("Metric", TRENDS, key="history_metric")
fig = go.Figure()
# Release candidates are alternatives, not a time series: one dot per release, no line joining them; the selected
# baseline's value is a reference line and the candidate is marked.
shown = [r for r in rows if r.get(metric) is not None]
fig.add_scatter(x=[ui.label(r["release_id"]) for r in shown], y=[r[metric] for r in shown], mode="markers",
                marker={"size": 14, "color": [ui.CANDIDATE_COLOR if r["release_id"] == sel.candidate
                                              else ui.BASELINE_COLOR for r in shown]},
                name=ui.label(metric), showlegend=False)
base_value = next((r[metric] for r in shown if r["release_id"] == sel.baseline), None)
if base_value is not None:
    fig.add_hline(y=base_value, line={"color": ui.BASELINE_COLOR, "dash": "dash"},
                  annotation_text=f"baseline {ui.label(sel.baseline)}", annotation_position="top left")
fig.update_layout(height=380, font={"size": 14}, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                  yaxis={"title": ui.label(metric), "automargin": True}, xaxis={"title": "release", "automargin": True})
if not shown:
    st.info("No stored release has a value for this metric.")
if shown:
    st.plotly_chart(fig, width="stretch", key="history_chart")
    st.caption("Each dot is one release (the candidate in blue); candidates of one baseline are alternatives, so "
               "no line joins them.")
ui.show_table(rows)
