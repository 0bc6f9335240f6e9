"""Cases: search, filter and sort the candidate's cases in the store (regressions, fixes, failures, the cases
behind a gate); export the whole filtered list; one case side by side with a text diff of the outputs.

The URL keeps the filters and the open case, so a link opens exactly this view."""

import json

import streamlit as st

from dashboard.core.metrics import CHECK_TRUE_IS_GOOD
from dashboard.core.policy import SliceSpec
from dashboard.store.cases import SORTS, CaseQuery
from dashboard.ui import components as ui
from dashboard.ui import data, drill
from dashboard.ui.state import require_selection
from dashboard.ui.textdiff import show_text_diff

PAGE_SIZE = 50
KINDS = {"regressions": "Regressions (baseline passed, candidate failed)",
         "fixes": "Fixes (baseline failed, candidate passed)", "failed": "Candidate failures", "all": "All cases"}
RISKS = ["critical", "high", "medium", "low"]
ANY = "(any)"

sel = require_selection()
st.title("Cases")
qp = st.query_params
from_link = st.session_state.pop("_from_link", None) == drill.CASES_PAGE  # a drill-down into this page


def seed(key: str, value: object) -> None:
    """A widget's first value comes from the URL (a pasted link, or another page's drill-down)."""
    if from_link or key not in st.session_state:
        st.session_state[key] = value


kinds = list(KINDS) if sel.baseline else ["failed", "all"]
suites = data.dimension_values(sel.generation, sel.releases, "suite")
dims = data.dimensions(sel.generation, sel.releases)
tasks = data.dimension_values(sel.generation, sel.releases, "task") if "task" in dims else []
checks = data.check_names(sel.generation, sel.releases)
# Each named check as "the value that shows a failure" (the catalogue's polarity); unknown checks both ways.
check_options = [ANY]
for c in checks:
    if c in CHECK_TRUE_IS_GOOD:
        check_options.append(f"{c}={'false' if CHECK_TRUE_IS_GOOD[c] else 'true'}")
    else:
        check_options += [f"{c}=false", f"{c}=true"]
scores = data.score_names(sel.generation, sel.releases)

seed("cases_kind", qp.get("kind") if qp.get("kind") in kinds else kinds[0])
seed("cases_risk", [r for r in qp.get_all("risk") if r in RISKS])
seed("cases_suite", [s for s in qp.get_all("suite") if s in suites])
seed("cases_task", [t for t in qp.get_all("task") if t in tasks])
seed("cases_check", qp.get("check") if qp.get("check") in check_options else ANY)
seed("cases_q", (qp.get("q") or "")[:200])
seed("cases_sort", qp.get("sort") if qp.get("sort") in SORTS else "risk")
seed("cases_desc", qp.get("desc") == "1")
seed("cases_score", qp.get("score") if qp.get("score") in scores else (scores[0] if scores else None))
seed("cases_gate", qp.get("gate") or "")
seed("cases_slice", qp.get("slice") or "")
try:
    seed("cases_page", max(1, int(qp.get("page") or 1)))
except ValueError:
    seed("cases_page", 1)
if st.session_state.get("cases_kind") not in kinds:
    st.session_state["cases_kind"] = kinds[0]

# The cases behind a gate: its slice, outcome and predicate, from the decision the other pages show.
gate = None
gate_id = st.session_state.get("cases_gate") or ""
if gate_id:
    d = data.decision(sel.generation, sel.candidate, sel.baseline, sel.policy_path, sel.policy.digest, sel.profile)
    gate = next((g for g in d.gates if g.gate_id == gate_id), None)
    with st.container(border=True):
        if gate is None:
            st.warning("The gate named in the link is not part of this decision; showing all cases.")
        else:
            st.markdown(f":material/filter_alt: **Cases behind gate {ui.esc(gate.gate_id)}** "
                        f"({ui.esc(gate.status)}) — {ui.esc(drill.gate_explanation(gate, bool(sel.baseline)))}")
        if st.button("Clear the gate filter", key="cases_gate_clear", icon=":material/filter_alt_off:"):
            st.session_state["cases_gate"] = ""
            st.rerun()
slice_filter = st.session_state.get("cases_slice") or ""
extra = SliceSpec()
if "=" in slice_filter:
    dim, value = slice_filter.split("=", 1)
    extra = SliceSpec(where={dim: [value]})
    c_info, c_clear = st.columns([4, 1])
    c_info.info(f"Slice {ui.esc(dim)} = {ui.esc(value)}", icon=":material/filter_alt:")
    if c_clear.button("Clear the slice filter", key="cases_slice_clear"):
        st.session_state["cases_slice"] = ""
        st.rerun()

c1, c2, c3, c4, c5 = st.columns([2, 1, 1, 1, 1])
kind = str(c1.selectbox("Show", kinds, format_func=lambda k: KINDS[k], key="cases_kind"))
risk = c2.multiselect("Risk", RISKS, key="cases_risk")
suite = c3.multiselect("Suite", suites, key="cases_suite")
task = c4.multiselect("Task", tasks, key="cases_task")
failed_check = c5.selectbox("Check shows a failure", check_options, key="cases_check",
                            format_func=lambda o: o if o == ANY else o.replace("=", " is "),
                            help="Only cases where this named check has the value that means a failure "
                                 "(e.g. injection_succeeded is true, citation_supported is false).")
s1, s2, s3, s4 = st.columns([3, 1, 1, 1])
search = s1.text_input("Search case ids, inputs, outputs and expected answers (the whole release)", key="cases_q",
                       max_chars=200, placeholder="e.g. POL-0156 or a phrase from an answer")
sort = str(s2.selectbox("Sort by", list(SORTS), key="cases_sort"))
score_options: list[str | None] = [*scores] if scores else [None]
score = s3.selectbox("Score", score_options, key="cases_score", format_func=lambda s: s or "(none)",
                     help="The score shown, and sorted by with 'score' and 'score change'.")
descending = s4.toggle("Descending", key="cases_desc")

spec = SliceSpec(risk=risk or None, suite=suite or None, where={"task": task} if task else {})
spec = drill.merge(drill.merge(spec, extra), drill.gate_spec(gate) if gate else SliceSpec())
check = None if failed_check in (None, ANY) else str(failed_check)
query = CaseQuery(candidate=sel.candidate, baseline=sel.baseline, spec=spec, kind=kind,
                  check=check.split("=")[0] if check else None, check_value=bool(check and check.endswith("=true")),
                  search=search.strip() or None, gate_metric=gate.metric if gate else None,
                  gate_threshold=gate.threshold if gate else None, score=score, sort=sort, descending=descending)
# One query gives the count and the page asked for (issue 15); a page past the end is clamped and fetched again.
wanted_page = max(1, int(st.session_state.get("cases_page") or 1))
total, rows = data.case_list(sel.generation, query, PAGE_SIZE, (wanted_page - 1) * PAGE_SIZE)
pages = max(1, -(-total // PAGE_SIZE))
if wanted_page > pages:
    st.session_state["cases_page"] = pages
page = int(st.number_input(f"Page (of {pages}; {total:,} cases)", min_value=1, max_value=pages, step=1,
                           key="cases_page"))
if page != wanted_page:
    total, rows = data.case_list(sel.generation, query, PAGE_SIZE, (page - 1) * PAGE_SIZE)

# Mirror the view into the URL (selection keys are kept by the sidebar).
url = {"kind": kind, "risk": risk, "suite": suite, "task": task, "check": check or "", "q": search.strip(),
       "sort": sort if sort != "risk" else "", "desc": "1" if descending else "", "score": score or "",
       "gate": st.session_state.get("cases_gate") or "", "slice": st.session_state.get("cases_slice") or "",
       "page": str(page) if page > 1 else ""}
for k, v in url.items():
    if v:
        qp[k] = v
    elif k in qp:
        del qp[k]

e1, e2, _e3 = st.columns([1, 1, 1])
e1.download_button("Export the list (CSV)", lambda: data.export_cases(query, "csv"), file_name="cases.csv",
                   mime="text/csv", icon=":material/download:", key="cases_csv", on_click="ignore",
                   help=f"All {total:,} matching cases, not only this page. Formula-like cells are neutralised.")
e2.download_button("Export the list (Parquet)", lambda: data.export_cases(query, "parquet"), file_name="cases.parquet",
                   mime="application/vnd.apache.parquet", icon=":material/download:", key="cases_parquet",
                   on_click="ignore", help=f"All {total:,} matching cases, not only this page.")
if not rows:
    st.info("No case matches these filters.")
    st.stop()


def fmt_score(x: float | None) -> float | None:
    return round(x, 4) if x is not None else None


table = [{"case": r["case_id"], "suite": r["suite"], "risk": r["risk"], "task": r["task"],
          "baseline": {True: "pass", False: "fail", None: "—"}[r["baseline_passed"]],
          "candidate": "pass" if r["candidate_passed"] else "fail", "runs": r["repeats"],
          "latency ms": round(r["latency_ms"], 1) if r["latency_ms"] is not None else None,
          **({f"{score}": fmt_score(r["score"]), f"{score} change": fmt_score(r["score_change"])} if score else {}),
          "error": r["error"] or ""} for r in rows]
options = [f"{r['suite']} / {r['case_id']}" for r in rows]
# The open case: from the URL (a link), else the table row just selected, else the first row.
wanted = f"{qp.get('case_suite')} / {qp.get('case')}" if qp.get("case") else None
if (from_link or "cases_pick" not in st.session_state) and wanted in options:
    st.session_state["cases_pick"] = wanted
if st.session_state.get("cases_pick") not in options:
    st.session_state["cases_pick"] = options[0]
st.caption("Select a row to open the case below; **j** / **k** (or the buttons) open the next / previous case.")
event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                     key="cases_table")
picked = event.selection.rows[0] if event and event.selection.rows else None
if picked is not None and picked < len(options) and picked != st.session_state.get("cases_last_row"):
    st.session_state["cases_pick"] = options[picked]  # a newly selected row opens its case
st.session_state["cases_last_row"] = picked


def step(delta: int) -> None:
    i = options.index(st.session_state["cases_pick"]) + delta
    if 0 <= i < len(options):
        st.session_state["cases_pick"] = options[i]
    elif i >= len(options) and page < pages:
        st.session_state["cases_page"] = page + 1
        st.session_state.pop("cases_pick", None)
    elif i < 0 and page > 1:
        st.session_state["cases_page"] = page - 1
        st.session_state.pop("cases_pick", None)


n1, n2, n3 = st.columns([4, 1, 1])
chosen = n1.selectbox("Case", options, key="cases_pick")
n2.button("Previous case", key="cases_prev", on_click=step, args=(-1,), shortcut="k", icon=":material/arrow_upward:")
n3.button("Next case", key="cases_next", on_click=step, args=(1,), shortcut="j", icon=":material/arrow_downward:")
suite_name, case_id = str(chosen).split(" / ", 1)
qp["case"], qp["case_suite"] = case_id, suite_name

st.subheader(f"Case {ui.esc(case_id)}")
records_of = {release: data.case_records(sel.generation, release, suite_name, case_id) if release else []
              for release in (sel.baseline, sel.candidate)}
base_out = next((r["output"] for r in records_of[sel.baseline]), None) if sel.baseline else None
cand_out = next((r["output"] for r in records_of[sel.candidate]), None)
if sel.baseline and base_out is not None and cand_out is not None:
    with st.expander("Output: baseline → candidate (text diff)", expanded=base_out != cand_out):
        if base_out == cand_out:
            st.write("The outputs are identical.")
        else:
            show_text_diff(base_out, cand_out, "baseline", "candidate")
left, right = st.columns(2)
for col, release, who in ((left, sel.baseline, "Baseline"), (right, sel.candidate, "Candidate")):
    with col:
        st.markdown(f"#### {who}: {ui.esc(release) if release else 'none'}")
        if not release:
            st.write("No baseline selected.")
            continue
        records = records_of[release]
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
                st.caption(f"Agent trajectory · final status {ui.esc(traj.get('final_status'))}")
                ui.show_table([{"step": i + 1, "tool": s["tool"], "authorized": s["authorized"],
                                "forbidden": s["forbidden"], "approval required": s["approval_required"],
                                "approved": s["approved"], "approval id": s["approval_id"] or ""}
                               for i, s in enumerate(traj.get("steps") or [])])
                ui.plain("Required nodes / reached nodes",
                         f"{', '.join(traj.get('required_nodes') or [])}\n{', '.join(traj.get('reached_nodes') or [])}")
