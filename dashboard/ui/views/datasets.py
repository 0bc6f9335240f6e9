"""Eval dataset changes since the baseline (seed §28), and metric trends across releases."""

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
fig.add_scatter(x=[ui.label(r["release_id"]) for r in rows], y=[r.get(metric) for r in rows], mode="lines+markers",
                line={"color": ui.CANDIDATE_COLOR, "width": 3}, marker={"size": 10}, name=ui.label(metric))
for r in rows:
    if r["release_id"] in (sel.candidate, sel.baseline):
        fig.add_annotation(x=ui.label(r["release_id"]), y=r.get(metric),
                           text="candidate" if r["release_id"] == sel.candidate else "baseline", showarrow=True)
fig.update_layout(height=380, font={"size": 14}, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                  yaxis_title=ui.label(metric), xaxis_title="release (oldest first)")
st.plotly_chart(fig, width="stretch", key="history_chart")
ui.show_table(rows)
