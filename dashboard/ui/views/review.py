"""Review: the gate decision and its digest, the release status, the signed reviews, and signing a new one.

The reviewer's key is read from the uploaded file and used in memory for one signature; it is never stored.
"""

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dashboard.core.errors import InputRefused
from dashboard.core.gates import GateDecision
from dashboard.core.reviews import REVIEW_ROLES, TrustedReviewers, make_waiver
from dashboard.core.signing import SigningError, load_private_key
from dashboard.reviewing import add_review, current_root, review_predicate, sign_review
from dashboard.ui import components as ui
from dashboard.ui import data, identity
from dashboard.ui.state import require_selection


def _waiver_frame(failed_gates: list[str]) -> pd.DataFrame:
    """One editable row per failed gate; a row with a justification becomes a waiver."""
    return pd.DataFrame({"gate_id": failed_gates, "justification": [""] * len(failed_gates),
                         "expires": [datetime.now(UTC).date() + timedelta(days=14)] * len(failed_gates),
                         "ticket": [""] * len(failed_gates)})


FROM_KEY = "(from your key)"
DECISIONS = {"approve": "approve", "approve_with_conditions": "approve with conditions", "block": "block"}


def _identity(key: Ed25519PrivateKey, trusted_keys: TrustedReviewers, typed: str,
              chosen_role: str | None) -> tuple[str, str]:
    """The reviewer's principal and role from the chosen key's trusted-reviewers entry (typed values must match)."""
    from dashboard.core.signing import key_id

    kid = key_id(key.public_key())
    entry = next((k for k in trusted_keys.reviewers if k.key_id == kid), None)
    if entry is None:
        raise InputRefused("this key is not in the trusted-reviewers file, so it cannot sign a review")
    if typed and typed != entry.principal:
        raise InputRefused(f"this key belongs to {entry.principal}, not {typed}")
    roles = [r for r in entry.roles if r in REVIEW_ROLES]
    if chosen_role in (None, FROM_KEY):
        if len(roles) != 1:
            raise InputRefused(f"{entry.principal} may sign as {', '.join(roles) or 'no review role'}: choose the role")
        return entry.principal, roles[0]
    return entry.principal, str(chosen_role)


def _sign(decision: GateDecision, failed_gates: list[str], trusted_keys: TrustedReviewers, trust_root: str) -> None:
    """Form callback: sign with the uploaded key in memory, record the review, then forget the passphrase."""
    state = st.session_state
    try:
        key_file = state.get("rv_key")
        if key_file is None:
            raise InputRefused("choose your private key file")
        passphrase = state.get("rv_passphrase") or ""
        key = load_private_key(key_file.getvalue(), passphrase.encode() if passphrase else None)
        waivers = []
        edited = state.get("rv_waivers")
        if failed_gates and edited is not None:
            rows = _waiver_frame(failed_gates)
            for index, change in (edited.get("edited_rows") or {}).items():
                for column, value in change.items():
                    rows.at[int(index), column] = value
            for row in rows.to_dict("records"):
                if str(row["justification"]).strip():
                    expires = row["expires"]  # a day from the date column
                    day = expires.date() if isinstance(expires, datetime) else expires
                    waivers.append(make_waiver(row["gate_id"], str(row["justification"]),
                                               day if hasattr(day, "year") else str(day), str(row["ticket"])))
        lines = lambda name: [x.strip() for x in (state.get(name) or "").splitlines() if x.strip()]  # noqa: E731
        if state.get("rv_choice") is None:
            raise InputRefused("choose a decision: approve, approve with conditions, or block")
        reviewer, role = _identity(key, trusted_keys, (state.get("rv_reviewer") or "").strip(), state.get("rv_role"))
        signer = identity.check_current_signer(reviewer, role)  # signed in as the key's principal (if sign-in is on)
        predicate = review_predicate(
            decision, reviewer, role, str(state.get("rv_choice")),
            trust_root=trust_root, comment=state.get("rv_comment") or "", conditions=lines("rv_conditions"),
            accepted_risks=lines("rv_risks"), release_owner=state.get("rv_release_owner") or None,
            rollback_owner=state.get("rv_rollback_owner") or None, waivers=waivers, identity=signer)
        with data.writer() as store:  # opened for this one write (other processes wait, bounded)
            envelope = sign_review(store, decision, predicate, key)
            del key  # used for this one signature only
            entry = add_review(store, envelope, trusted_keys)
    except (SigningError, InputRefused, ValueError) as e:
        state["rv_outcome"] = (False, "Not signed: " + ui.esc(str(e).lstrip(": ")), b"", 0)
    else:
        st.cache_data.clear()
        state["rv_outcome"] = (True, f"Recorded as entry {entry.seq}. Receipt (keep it): entry hash {entry.entry_hash}",
                               envelope, entry.seq)
    finally:
        state["rv_passphrase"] = ""  # never kept beyond this one attempt


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
    st.error("No trust root: set READINESS_TRUSTED to the trusted-reviewers file you trust. " + ui.esc(e))
    st.stop()
root = current_root(data.store())
if root is None:
    st.error("This store has no trust root yet: an administrator records one with `readiness trust set`.")
    st.stop()
result, report = data.readiness_status(sel.generation, sel.candidate, sel.baseline, sel.policy_path,
                                       sel.policy.digest, sel.profile, datetime.now(UTC).strftime("%Y-%m-%dT%H"))
ui.readiness_banner(result, sel.policy.review.required_roles())
if result.demo_keys:
    st.warning("This store uses the **DEMO KEYS** (data/reviewers, passphrase `readiness-demo`): anyone can sign "
               "with them. Never use them for a real release.", icon=":material/key:")
if result.governing_policy is None or sel.policy.digest not in result.governing_policy:
    st.warning("The selected policy is not this release's governing policy ("
               + ui.esc(result.governing_policy or "none registered") + "): a review signed against it does not "
               "count toward quorum.", icon=":material/policy:")

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
                    "signed in as": (f"{r.predicate.identity.email} ({r.predicate.identity.issuer})"
                                     if r.predicate.identity else ""),
                    "comment": r.predicate.comment, "conditions": "; ".join(r.predicate.conditions),
                    "waivers": "; ".join(f"{w.gate_id} until {w.expires_at.date()} ({w.ticket})"
                                         for w in r.predicate.waivers)} for r in mine])
else:
    st.write("No signed review of this release yet.")

st.subheader("Sign a review")
failed = d.blockers + d.warnings
signed_in = identity.signed_in()
if signed_in is not None:
    st.caption(f"Signed in as {ui.esc(signed_in.email or signed_in.subject)}: sign with your own key (its principal "
               "must be this email); your sign-in (issuer, subject, email) is recorded inside the signed review.")
with st.form("review_form"):
    c1, c2, c3 = st.columns([2, 1, 2])
    c1.text_input("Your principal (email, as in the trusted-reviewers file)", key="rv_reviewer",
                  placeholder="taken from your key when empty")
    c2.selectbox("Role", [FROM_KEY, *REVIEW_ROLES], key="rv_role")
    c3.radio("Decision", list(DECISIONS), format_func=DECISIONS.get, horizontal=True, index=None, key="rv_choice")
    st.text_area("Comment", key="rv_comment")
    c4, c5 = st.columns(2)
    c4.text_area("Conditions (one per line)", key="rv_conditions")
    c5.text_area("Accepted residual risks (one per line)", key="rv_risks")
    c6, c7 = st.columns(2)
    c6.text_input("Release owner", key="rv_release_owner")
    c7.text_input("Rollback owner", key="rv_rollback_owner")
    if failed:
        st.caption("Waivers for failed gates (leave the justification empty for gates you do not waive)")
        st.data_editor(_waiver_frame(failed), hide_index=True, disabled=["gate_id"], key="rv_waivers",
                       column_config={"expires": st.column_config.DateColumn("expires (UTC)")})
    st.file_uploader("Your private key (OpenSSH, encrypted)", type=None, key="rv_key")
    st.text_input("Key passphrase", type="password", key="rv_passphrase")
    st.form_submit_button("Sign and record", type="primary", on_click=_sign, args=(d, failed, trusted, root.digest))

outcome = st.session_state.pop("rv_outcome", None)
if outcome is not None:
    ok, message, envelope, seq = outcome
    if ok:
        st.success(message, icon=":material/verified:")
        st.download_button("Download your signed envelope", envelope, file_name=f"review-{seq}.dsse.json",
                           mime="application/json")
    else:
        st.error(message, icon=":material/error:")

st.subheader("Add a review signed offline")
st.caption("`readiness review sign ... --out review.dsse.json` on your machine, then upload it here.")
uploaded = st.file_uploader("Signed envelope", type=["json"], key="rv_envelope")
if uploaded is not None and st.button("Verify and record", key="rv_add"):
    try:
        with data.writer() as store:
            entry = add_review(store, uploaded.getvalue(), trusted)
    except InputRefused as e:
        st.error(ui.esc(e), icon=":material/error:")
    else:
        st.cache_data.clear()
        st.success(f"Recorded as entry {entry.seq} (entry hash {entry.entry_hash}).", icon=":material/verified:")
