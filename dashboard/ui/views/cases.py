"""Cases: regressions, fixes and failures, filtered and paginated in the store; one case side by side."""

import json

import streamlit as st

from dashboard.core.policy import SliceSpec
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.state import require_selection

PAGE_SIZE = 50
KINDS = {"regressions": "Regressions (baseline passed, candidate failed)",
         "fixes": "Fixes (baseline failed, candidate passed)", "failed": "Candidate failures", "all": "All cases"}

sel = require_selection()
st.title("Cases")
preset = st.session_state.pop("cases_filter", None)
if preset:
    st.session_state["cases_kind"] = preset["kind"] if sel.baseline or preset["kind"] not in ("regressions", "fixes") \
        else "failed"
    st.session_state["cases_risk"] = preset.get("risk") or []
    st.session_state["cases_suite"] = preset.get("suite") or []
    where = preset.get("where") or {}
    st.session_state["cases_task"] = where.get("task", [])
    st.session_state["cases_check"] = preset.get("check") or "(any)"
    st.session_state["cases_page"] = 1
    if preset.get("from_gate"):
        st.info(f"Cases behind gate {ui.esc(preset['from_gate'])}.", icon=":material/filter_alt:")

kinds = list(KINDS) if sel.baseline else ["failed", "all"]
if st.session_state.get("cases_kind") not in kinds:
    st.session_state["cases_kind"] = kinds[0]
c1, c2, c3, c4, c5 = st.columns([2, 1, 1, 1, 1])
kind = str(c1.selectbox("Show", kinds, format_func=lambda k: KINDS[k], key="cases_kind"))
risk = c2.multiselect("Risk", ["critical", "high", "medium", "low"], key="cases_risk")
suite = c3.multiselect("Suite", data.dimension_values(sel.generation, sel.releases, "suite"), key="cases_suite")
tasks = data.dimension_values(sel.generation, sel.releases, "task") if "task" in data.dimensions(
    sel.generation, sel.releases) else []
task = c4.multiselect("Task", tasks, key="cases_task")
failed_check = c5.selectbox("Failed check", ["(any)", *data.check_names(sel.generation, sel.releases)],
                            key="cases_check", help="Only cases where this named check is false in the candidate.")
check = None if failed_check in (None, "(any)") else str(failed_check)
spec = SliceSpec(risk=risk or None, suite=suite or None, where={"task": task} if task else {})
total, _first = data.cases_page(sel.generation, sel.candidate, sel.baseline, spec.model_dump_json(), kind, 1, 0,
                                check)
pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(f"Page (of {pages}; {total:,} cases)", min_value=1, max_value=pages, step=1, key="cases_page")
_total, rows = data.cases_page(sel.generation, sel.candidate, sel.baseline, spec.model_dump_json(), kind, PAGE_SIZE,
                               (int(page) - 1) * PAGE_SIZE, check)
if not rows:
    st.info("No case matches these filters.")
    st.stop()
table = [{"case": r["case_id"], "suite": r["suite"], "risk": r["risk"], "task": r["task"],
          "baseline": {True: "pass", False: "fail", None: "—"}[r["baseline_passed"]],
          "candidate": "pass" if r["candidate_passed"] else "fail", "runs": r["repeats"],
          "latency ms": round(r["latency_ms"], 1) if r["latency_ms"] is not None else None,
          "error": r["error"] or ""} for r in rows]
st.caption("Select a row to compare the case side by side.")
event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                     key="cases_table")
picked = event.selection.rows[0] if event and event.selection.rows else None
options = [f"{r['suite']} / {r['case_id']}" for r in rows]
chosen = st.selectbox("Case", options, index=picked if picked is not None else 0, key="cases_pick")
suite_name, case_id = chosen.split(" / ", 1)

st.subheader(f"Case {case_id}")
left, right = st.columns(2)
for col, release, who in ((left, sel.baseline, "Baseline"), (right, sel.candidate, "Candidate")):
    with col:
        st.markdown(f"#### {who}: {ui.esc(release) if release else 'none'}")
        if not release:
            st.write("No baseline selected.")
            continue
        records = data.case_records(sel.generation, release, suite_name, case_id)
        if not records:
            st.write("This release did not run this case.")
            continue
        for rec in records:
            verdict = "✅ passed" if rec["passed"] else "❌ failed"
            st.markdown(f"**{verdict}** · run {ui.esc(rec['run_id'])} · risk {ui.esc(rec['risk'])}")
            ui.plain("Input", rec["input"])
            ui.plain("Output", rec["output"])
            ui.plain("Expected", rec["expected"])
            if rec["error"]:
                ui.plain("Error", rec["error"])
            st.caption("Scores, checks and counters")
            st.code(json.dumps({"scores": rec["scores"], "checks": rec["checks"], "counters": rec["counters"],
                                "judge_model": rec["judge_model"], "scorer_version": rec["scorer_version"],
                                "latency_ms": rec["latency_ms"], "cost_usd": rec["cost_usd"]},
                               indent=2, default=str), language="json")
            if rec["retrieval"]:
                st.caption("Retrieved evidence (rank order) and relevant ids")
                ret = rec["retrieval"]
                relevant = set(ret.get("relevant_ids") or [])
                ui.show_table([{"rank": i + 1, "evidence id": e, "relevant": "yes" if e in relevant else ""}
                               for i, e in enumerate(ret.get("retrieved_ids") or [])])
            if rec["trajectory"]:
                traj = rec["trajectory"]
                st.caption(f"Agent trajectory · final status {traj.get('final_status')}")
                ui.show_table([{"step": i + 1, "tool": s["tool"], "authorized": s["authorized"],
                                "forbidden": s["forbidden"], "approval required": s["approval_required"],
                                "approved": s["approved"], "approval id": s["approval_id"] or ""}
                               for i, s in enumerate(traj.get("steps") or [])])
                ui.plain("Required nodes / reached nodes",
                         f"{', '.join(traj.get('required_nodes') or [])}\n{', '.join(traj.get('reached_nodes') or [])}")
