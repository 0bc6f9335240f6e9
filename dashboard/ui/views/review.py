"""Review: the gate decision and its digest, the release status, the signed reviews, and signing a new one.

The reviewer's key is read from the uploaded file and used in memory for one signature; it is never stored.
"""

from datetime import UTC, datetime, time, timedelta

import pandas as pd
import streamlit as st

from dashboard.core.errors import InputRefused
from dashboard.core.reviews import ROLES, Waiver
from dashboard.core.signing import SigningError, load_private_key
from dashboard.reviewing import add_review, review_predicate, sign_review
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.state import require_selection

sel = require_selection()
d = data.decision(sel.generation, sel.candidate, sel.baseline, sel.policy_path, sel.policy.digest, sel.profile)
st.title("Readiness review")
ui.decision_banner(d)
st.caption("You are reviewing exactly this gate decision; your signature binds these digests.")
st.code(f"gate decision  {d.digest}\ncandidate      {d.candidate.release_id}  manifest {d.candidate.manifest_digest}\n"
        f"policy         {d.policy.policy_id} v{d.policy.version}  {d.policy.digest}", language=None)

try:
    trusted = data.load_trusted_reviewers()
except InputRefused as e:
    st.error("The trusted-reviewers file cannot be read; set READINESS_TRUSTED. " + ui.esc(e))
    st.stop()
result, report = data.readiness_status(sel.generation, sel.candidate, sel.baseline, sel.policy_path,
                                       sel.policy.digest, sel.profile, datetime.now(UTC).strftime("%Y-%m-%dT%H"))
ui.readiness_banner(result, sel.policy.review.required_roles())

st.subheader("Signed reviews")
mine = [r for r in report.reviews if r.predicate.candidate_release_id == sel.candidate]
bad = [f for f in report.findings if f.level == "error"]
if bad:
    st.error("The review log does not verify:", icon=":material/gpp_bad:")
    st.code("\n".join(str(f) for f in bad), language=None)
if mine:
    ui.show_table([{"entry": r.seq, "reviewer": r.predicate.reviewer, "role": r.predicate.role,
                    "decision": r.predicate.decision, "reviewed at": r.predicate.reviewed_at.isoformat(),
                    "verifies": "✅ signature, key and bindings" ,
                    "current decision": "yes" if r.predicate.gate_decision_digest == d.digest else "no (stale)",
                    "comment": r.predicate.comment, "conditions": "; ".join(r.predicate.conditions),
                    "waivers": "; ".join(f"{w.gate_id} until {w.expires_at.date()} ({w.ticket})"
                                         for w in r.predicate.waivers)} for r in mine])
else:
    st.write("No signed review of this release yet.")

st.subheader("Sign a review")
failed = d.blockers + d.warnings
with st.form("review_form"):
    c1, c2, c3 = st.columns([2, 1, 2])
    reviewer = c1.text_input("Your principal (email, as in the trusted-reviewers file)", key="rv_reviewer")
    role = c2.selectbox("Role", [r for r in ROLES if r != "log"], key="rv_role")
    choice = c3.radio("Decision", ["approve", "approve_with_conditions", "block"], horizontal=True, key="rv_choice")
    comment = st.text_area("Comment", key="rv_comment")
    c4, c5 = st.columns(2)
    conditions = c4.text_area("Conditions (one per line)", key="rv_conditions")
    risks = c5.text_area("Accepted residual risks (one per line)", key="rv_risks")
    c6, c7 = st.columns(2)
    release_owner = c6.text_input("Release owner", key="rv_release_owner")
    rollback_owner = c7.text_input("Rollback owner", key="rv_rollback_owner")
    waivers_df = None
    if failed:
        st.caption("Waivers for failed gates (leave the justification empty for gates you do not waive)")
        default = pd.DataFrame({"gate_id": failed, "justification": [""] * len(failed),
                                "expires": [datetime.now(UTC).date() + timedelta(days=14)] * len(failed),
                                "ticket": [""] * len(failed)})
        waivers_df = st.data_editor(default, hide_index=True, disabled=["gate_id"], key="rv_waivers",
                                    column_config={"expires": st.column_config.DateColumn("expires (UTC)")})
    key_file = st.file_uploader("Your private key (OpenSSH, encrypted)", type=None, key="rv_key")
    passphrase = st.text_input("Key passphrase", type="password", key="rv_passphrase")
    submitted = st.form_submit_button("Sign and record", type="primary")

if submitted:
    try:
        if key_file is None:
            raise InputRefused("choose your private key file")
        key = load_private_key(key_file.getvalue(), passphrase.encode() if passphrase else None)
        waivers = []
        if waivers_df is not None:
            for row in waivers_df.to_dict("records"):
                if str(row["justification"]).strip():
                    if not str(row["ticket"]).strip():
                        raise InputRefused(f"waiver for {row['gate_id']}: give a ticket")
                    waivers.append(Waiver(gate_id=row["gate_id"], justification=str(row["justification"]),
                                          expires_at=datetime.combine(row["expires"], time(23, 59, 59), tzinfo=UTC),
                                          ticket=str(row["ticket"])))
        predicate = review_predicate(
            d, reviewer.strip(), role, choice, comment=comment,
            conditions=[x.strip() for x in conditions.splitlines() if x.strip()],
            accepted_risks=[x.strip() for x in risks.splitlines() if x.strip()],
            release_owner=release_owner or None, rollback_owner=rollback_owner or None, waivers=waivers)
        envelope = sign_review(data.store(), d, predicate, key)
        del key  # used for this one signature only
        entry = add_review(data.store(), envelope, trusted)
    except (SigningError, InputRefused, ValueError) as e:
        st.error("Not signed: " + ui.esc(e), icon=":material/error:")
    else:
        st.cache_data.clear()
        st.success(f"Recorded as entry {entry.seq}. Receipt (keep it): entry hash {entry.entry_hash}",
                   icon=":material/verified:")
        st.download_button("Download your signed envelope", envelope, file_name=f"review-{entry.seq}.dsse.json",
                           mime="application/json")

st.subheader("Add a review signed offline")
st.caption("`readiness review sign ... --out review.dsse.json` on your machine, then upload it here.")
uploaded = st.file_uploader("Signed envelope", type=["json"], key="rv_envelope")
if uploaded is not None and st.button("Verify and record", key="rv_add"):
    try:
        entry = add_review(data.store(), uploaded.getvalue(), trusted)
    except InputRefused as e:
        st.error(ui.esc(e), icon=":material/error:")
    else:
        st.cache_data.clear()
        st.success(f"Recorded as entry {entry.seq} (entry hash {entry.entry_hash}).", icon=":material/verified:")
