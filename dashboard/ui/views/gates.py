"""Gates: every gate by category, observed vs baseline vs threshold with intervals, and the cases behind it."""

import streamlit as st

from dashboard.core.metrics import CHECK_OF_METRIC
from dashboard.core.policy import CATEGORIES
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.state import require_selection

sel = require_selection()
d = data.decision(sel.generation, sel.candidate, sel.baseline, sel.policy_path, sel.policy.digest, sel.profile)
st.title("Gates")
ui.decision_banner(d)
show = st.segmented_control("Show", ["failed", "all"], default="all", key="gates_show")
for category in [c for c in CATEGORIES if any(g.category == c for g in d.gates)]:
    gates = [g for g in d.gates if g.category == category and (show != "failed" or g.status == "fail")]
    if not gates:
        continue
    n_fail = sum(g.status == "fail" for g in gates)
    title = f"{category.replace('_', ' ')} — {len(gates)} gate(s), {n_fail} failed"
    with st.expander(title, expanded=n_fail > 0):
        ui.show_table(ui.gate_table(gates), column_config=ui.GATE_COLUMNS)

st.subheader("Open the cases behind a gate")
with_cases = [g for g in d.gates if g.evidence_ref is not None]
if with_cases:
    choice = st.selectbox("Gate", [g.gate_id for g in with_cases], key="gate_cases_pick")
    gate = next(g for g in with_cases if g.gate_id == choice)
    if st.button("Show its failed cases", key="gate_cases_go"):
        ref = gate.evidence_ref
        assert ref is not None
        check = CHECK_OF_METRIC.get(gate.metric)
        st.session_state["cases_filter"] = {"risk": ref.risk, "suite": ref.suite, "where": ref.where,
                                            "kind": "failed" if check or not sel.baseline else "regressions",
                                            "check": check, "from_gate": gate.gate_id}
        st.switch_page("views/cases.py")
