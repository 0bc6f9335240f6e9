"""Releases: every candidate of a baseline side by side (decision, blockers, release status, key deltas), so a
review meeting sees the whole release train at once."""

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard.core import render
from dashboard.core.policy import SliceSpec
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.sentences import _fmt
from dashboard.ui.state import go, require_selection

KEY_METRICS = {"pass_rate": "pass rate", "critical_pass_rate": "critical pass",
               "latency_p95_ms": "p95 latency", "cost_per_successful_task": "cost per success"}

sel = require_selection()
st.title("Releases")
rows = data.releases(sel.generation)
baselines = sorted({r.baseline_release_id for r in rows if r.baseline_release_id})
if not baselines:
    st.info("No stored release names a baseline in its manifest, so there is no release train to compare.")
    st.stop()
current = next((r.baseline_release_id for r in rows if r.release_id == sel.candidate), None)
baseline = st.selectbox("Baseline", baselines, index=baselines.index(current) if current in baselines else 0,
                        key="releases_baseline", help="Every stored candidate whose manifest names this baseline.")
candidates = [r for r in rows if r.baseline_release_id == baseline]
st.caption(f"{len(candidates)} candidate(s) judged with policy {ui.esc(sel.policy.policy_id)} "
           f"v{ui.esc(sel.policy.version)}" + (f", profile {ui.esc(sel.profile)}" if sel.profile else "")
           + " — the policy and profile chosen in the sidebar.")

spec = SliceSpec().model_dump_json()
base_values = data.slice_metrics(sel.generation, baseline, spec, tuple(KEY_METRICS)).get("", {})
hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
table = []
failed_blockers: dict[str, list[str]] = {}
progress = st.progress(0.0, text="Judging the candidates ...")
for i, r in enumerate(candidates):
    progress.progress(i / len(candidates), text=f"Judging {r.release_id} ({i + 1} of {len(candidates)})")
    d = data.decision(sel.generation, r.release_id, baseline, sel.policy_path, sel.policy.digest, sel.profile)
    try:
        status, _log = data.readiness_status(sel.generation, r.release_id, baseline, sel.policy_path,
                                             sel.policy.digest, sel.profile, hour)
        ready = "READY" if status.ready else "not ready"
    except Exception:  # noqa: BLE001 - e.g. no readable trust root: the train still shows the gate decisions
        ready = "unknown"
    values = data.slice_metrics(sel.generation, r.release_id, spec, tuple(KEY_METRICS)).get("", {})
    row = {"candidate": r.release_id, "decision": f"{render.STATUS_ICONS[d.status]} {render.STATUS_WORDS[d.status]}",
           "reviews": ready, "blockers": len(d.blockers), "warnings": len(d.warnings)}
    for m, label in KEY_METRICS.items():
        c, b = values.get(m), base_values.get(m)
        cv, bv = (c.value if c else None), (b.value if b else None)
        change = "" if cv is None or bv is None else (f"{(cv - bv) * 100:+.2f} pts" if m.endswith("rate")
                                                      else f"{(cv / bv - 1) * 100:+.1f}%" if bv else "")
        row[label] = f"{_fmt(m, cv)} ({change})" if change else _fmt(m, cv)
    table.append(row)
    if d.blockers:
        failed_blockers[r.release_id] = d.blockers
progress.empty()
# Candidates side by side: one column per candidate, one row per fact.
side_by_side = pd.DataFrame(table).set_index("candidate").astype(str).T
side_by_side.index.name = "candidate"
st.dataframe(side_by_side, width="stretch")
for rid, blockers in failed_blockers.items():
    st.text(f"{rid} is blocked by: {', '.join(blockers)}")  # plain text: ids and slice values come from data
st.caption(f"Changes are against the baseline {ui.esc(baseline)}: pass rates in percentage points, latency and "
           "cost in percent.")

st.subheader("Open a candidate")
cols = st.columns(min(len(candidates), 6) or 1)
for i, r in enumerate(candidates):
    if cols[i % len(cols)].button(r.release_id, key=f"releases_open_{i}", icon=":material/open_in_new:"):
        go("views/overview.py", {"candidate": r.release_id, "baseline": "(as in the manifest)"})
