"""Gates: every gate by category, observed vs baseline vs threshold with intervals, and the cases behind it."""

import streamlit as st

from dashboard.core.policy import CATEGORIES
from dashboard.ui import components as ui
from dashboard.ui import data, drill
from dashboard.ui.state import go, require_selection

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
    failed_first = sorted(with_cases, key=lambda g: g.status != "fail")
    choice = st.selectbox("Gate", [g.gate_id for g in failed_first], key="gate_cases_pick")
    gate = next(g for g in with_cases if g.gate_id == choice)
    st.caption(ui.esc(drill.gate_explanation(gate, bool(sel.baseline))))
    if st.button("Show the cases behind this gate", key="gate_cases_go", icon=":material/list_alt:"):
        go(drill.CASES_PAGE, drill.gate_params(gate, bool(sel.baseline)))
