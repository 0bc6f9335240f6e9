"""Overview: the decision, why, what changed, headline numbers with intervals, and the digests."""

from datetime import UTC, datetime

import streamlit as st

from dashboard.core import render
from dashboard.core.errors import InputRefused
from dashboard.core.metrics import CATALOGUE
from dashboard.core.numbers import fmt_interval, fmt_percent, fmt_value
from dashboard.core.policy import SliceSpec
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.sentences import plain_reason
from dashboard.ui.state import require_selection

HEADLINE = {"pass_rate": "Pass rate", "critical_pass_rate": "Critical pass rate",
            "citation_support_rate": "Citation support", "recall_at_10": "Recall@10",
            "approval_bypasses": "Approval bypasses", "latency_p95_ms": "p95 latency (ms)",
            "cost_per_successful_task": "Cost / successful task ($)", "trace_completeness": "Trace completeness"}

sel = require_selection()
st.title("Release readiness")
# The banner first: the decision comes from the store's decision cache when CI (or anyone) judged this selection
# already; every heavier section below is computed after the banner is on screen.
d = data.decision(sel.generation, sel.candidate, sel.baseline, sel.policy_path, sel.policy.digest, sel.profile)
ui.decision_banner(d)
try:
    status, _log = data.readiness_status(sel.generation, sel.candidate, sel.baseline, sel.policy_path,
                                         sel.policy.digest, sel.profile, datetime.now(UTC).strftime("%Y-%m-%dT%H"))
    ui.readiness_banner(status, sel.policy.review.required_roles())
except InputRefused as e:
    st.warning("Release status unavailable: the trusted-reviewers file cannot be read (" + ui.esc(e) + ")")
for note in d.comparability:
    st.warning("**Comparability:** " + ui.esc(note), icon=":material/compare_arrows:")
for note in d.notes:
    st.warning(ui.esc(note), icon=":material/info:")

failed = d.failed()
st.subheader(f"Blockers and warnings ({len(failed)})")
if not failed:
    st.write("No blocker or warning failed.")
for g in failed:
    icon = ":material/block:" if g.severity == "blocker" else ":material/warning:"
    with st.container(border=True):
        st.markdown(f"{icon} **{ui.esc(g.severity.upper())} · {ui.esc(g.gate_id)}** — {ui.esc(g.name)}")
        st.text(plain_reason(g))  # the plain sentence first (untrusted slice values: plain text)
        st.caption("Statistics: " + ui.esc(g.reason))

st.subheader("What changed since the baseline")
changes = d.changed_artifacts
if changes:
    ui.show_table([{"artifact": c.kind, "name": c.name, "baseline": c.baseline or "—",
                    "candidate": c.candidate or "—", "rollback to": c.baseline or "remove it"} for c in changes])
else:
    st.write("No artifact version changed." if d.baseline else "No baseline to compare with.")

st.subheader("Headline metrics")
spec = SliceSpec().model_dump_json()
names = tuple(HEADLINE)
cand = data.metrics_with_intervals(sel.generation, sel.candidate, spec, names).get("", {})
base = data.slice_metrics(sel.generation, sel.baseline, spec, names).get("", {}) if sel.baseline else {}
cols = [c for _row in range(2) for c in st.columns(4)]
for col, name in zip(cols, names, strict=True):
    mv, bv = cand.get(name), base.get(name)
    kind = CATALOGUE[name].kind
    value = mv.value if mv else None
    shown = fmt_percent(value) if kind == "rate" else fmt_value(value)
    delta = ui.delta_text(value, bv.value if bv else None, points=kind == "rate")
    helptext = f"{CATALOGUE[name].description} 95% interval: {fmt_interval(mv.interval) if mv else ''}; " \
               f"baseline {fmt_value(bv.value) if bv else 'n/a'}; n={mv.n_eligible if mv else 0}."
    with col.container(border=True):
        st.metric(HEADLINE[name], shown, delta,
                  delta_color="normal" if CATALOGUE[name].higher_is_better else "inverse", help=helptext)
        interval = mv.interval if mv else None
        shown_interval = ("95% " + (f"[{fmt_percent(interval[0])}, {fmt_percent(interval[1])}]" if kind == "rate"
                                    else fmt_interval(interval)) + " · ") if interval else ""
        st.caption(f"{shown_interval}n={mv.n_eligible if mv else 0} · baseline "
                   f"{fmt_percent(bv.value) if kind == 'rate' and bv else fmt_value(bv.value if bv else None)}")

if d.policy_comparison and (d.policy_comparison.loosened or d.policy_comparison.outcome_changes):
    pc = d.policy_comparison
    st.warning(f"This policy is compared with version {ui.esc(pc.previous_version)} of the same policy: under it the "
               f"decision is **{render.STATUS_WORDS[pc.previous_status]}**.", icon=":material/policy:")
    ui.show_table([{"gate": x.gate_id, "loosened": x.change} for x in pc.loosened])

st.subheader("What was judged")
st.caption("Anyone can recompute these: the same inputs always give the same decision digest.")
st.code(d.judged_block(), language=None)
st.subheader("Reports")
today = datetime.now(UTC).date().isoformat()
args = (sel.generation, sel.candidate, sel.baseline, sel.policy_path, sel.policy.digest, sel.profile)
c1, c2, c3, c4 = st.columns(4)
c1.download_button("Release report (HTML)", lambda: data.report(*args, "html", today), icon=":material/description:",
                   file_name=f"{d.candidate.release_id}-release-report.html", mime="text/html", key="dl_html")
c2.download_button("Release report (Markdown)", lambda: data.report(*args, "md", today), icon=":material/article:",
                   file_name=f"{d.candidate.release_id}-release-report.md", mime="text/markdown", key="dl_md")
from dashboard.reporting import find_chromium  # noqa: E402 (after the banner: issue 15)

if find_chromium():
    c3.download_button("Release report (PDF)", lambda: data.report(*args, "pdf", today),
                       icon=":material/picture_as_pdf:", file_name=f"{d.candidate.release_id}-release-report.pdf",
                       mime="application/pdf", key="dl_pdf")
else:
    c3.caption("PDF needs chromium on the server.")
c4.download_button("Decision (JSON)", render.to_json(d), file_name=f"{d.candidate.release_id}-decision.json",
                   mime="application/json", icon=":material/data_object:", key="dl_json")
