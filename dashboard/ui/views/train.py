"""Release train (seed §7, §27): for each release, which tiers ran, when, with which result; what is missing before
the release can be judged; and the candidate's rollout evidence (rollback drills, flags, experiments, incidents)."""

from typing import Any

import pandas as pd
import streamlit as st

from dashboard.core import render
from dashboard.core.rollout import Experiment, FeatureFlag, Incident, RollbackDrill, RolloutEvidence
from dashboard.train import missing_before_judging, release_train, required_tiers
from dashboard.ui import components as ui
from dashboard.ui import data
from dashboard.ui.state import go, require_selection

STATE_WORDS = {"ok": "✅ ok", "stale": "⏳ stale", "failed": "❌ failed", "missing": "⛔ missing",
               "incomplete": "⚠️ incomplete", "not yet": "· not yet"}


@st.cache_data(show_spinner=False, max_entries=32)
def _train(gen: str, policy_path: str, policy_digest: str) -> list[dict[str, Any]]:
    del gen, policy_digest  # cache key: the data and the policy
    return release_train(data.store(), data.load_selected_policy(policy_path))


@st.cache_data(show_spinner=False, max_entries=64)
def _evidence(gen: str, release_id: str) -> str | None:
    from dashboard.store.rollout import rollout_evidence

    del gen
    got = rollout_evidence(data.store(), release_id)
    return got[0].model_dump_json() if got else None


sel = require_selection()
st.title("Release train")
rollout = sel.policy.rollout
if rollout is None or not rollout.tiers:
    st.info(f"The policy {ui.esc(sel.policy.policy_id)} version {ui.esc(sel.policy.version)} has no release train "
            "(rollout.tiers; docs/policy.md, Rollout safety).", icon=":material/info:")
    with_train = []
    for label, path in data.policy_files().items():
        try:
            rollout_of = data.load_selected_policy(path).rollout
        except Exception:  # noqa: BLE001 (an unreadable policy file is the sidebar's to report)
            continue
        if rollout_of is not None and rollout_of.tiers:
            with_train.append(label)
    for label in with_train:  # one click instead of hunting in the sidebar
        if st.button(f"Use {label}", key=f"train_use_{label}", icon=":material/train:"):
            go("views/train.py", {"policy": label})
    st.stop()

required = required_tiers(sel.policy)
st.caption(f"Tiers of policy {ui.esc(sel.policy.policy_id)} version {ui.esc(sel.policy.version)}. Ages are measured at "
           "each release's rollout evidence `as_of` (or its manifest's created_at), never at today's date, so the "
           "page shows what the gate judged.")
ui.show_table([{"tier": t.name, "cadence": t.cadence, "profile": t.profile or "", "suites": ", ".join(t.suites),
                "max age (days)": t.max_age_days, "required before release": "yes" if t.name in required else "no"}
               for t in rollout.tiers])

rows = _train(sel.generation, sel.policy_path, sel.policy.digest)
st.subheader("Which tiers ran, when, with which result")
matrix: dict[str, dict[str, str]] = {}
for r in rows:
    cell = STATE_WORDS[r["state"]]
    if r["last_run"]:
        cell += f" · {r['last_run'][:10]} ({r['age_days']:g} d)"
    matrix.setdefault(r["release"], {})[r["tier"]] = cell
frame = pd.DataFrame.from_dict(matrix, orient="index")
frame.index.name = "release"
st.dataframe(frame, width="stretch")

st.subheader(f"What {ui.esc(sel.candidate)} still needs before it can be judged")
missing = missing_before_judging(rows, sel.candidate)
if missing:
    st.warning(f"{len(missing)} tier finding(s) for {ui.esc(sel.candidate)}:", icon=":material/schedule:")
    for m in missing:
        st.text(f"• {m}")  # tier and suite names come from files: plain text
else:
    st.success(f"Every required tier ran for {ui.esc(sel.candidate)}, passed and is fresh.",
               icon=":material/check_circle:")

profiled = [t for t in rollout.tiers if t.profile]
if profiled:  # tiers are policy profiles: what each tier's gates decide on the candidate's stored eval data
    st.subheader(f"{ui.esc(sel.candidate)} under each tier's profile")
    rows_by_tier = []
    for t in profiled:
        dt = data.decision(sel.generation, sel.candidate, sel.baseline, sel.policy_path, sel.policy.digest, t.profile)
        rows_by_tier.append({"tier": t.name, "profile": t.profile,
                             "decision": f"{render.STATUS_ICONS[dt.status]} {render.STATUS_WORDS[dt.status]}",
                             "blockers": ", ".join(dt.blockers), "warnings": ", ".join(dt.warnings)})
    ui.show_table(rows_by_tier)
    st.caption("The policy's gates of each profile, judged now on the candidate's stored eval data and evidence; "
               "the tier runs above are what CI recorded.")

d = data.decision(sel.generation, sel.candidate, sel.baseline, sel.policy_path, sel.policy.digest, sel.profile)
mine = [g for g in d.gates if g.metric.startswith("rollout.")]
if mine:
    st.subheader("Rollout gates")
    failed = [g for g in mine if g.status == "fail"]
    if failed:
        st.error(f"{len(failed)} rollout gate(s) failed for {ui.esc(sel.candidate)}.", icon=":material/block:")
    for g in failed:
        st.text(f"{g.severity.upper()} · {g.gate_id}: {g.reason}")
    st.dataframe(ui.gate_table(mine)[["status", "gate", "why", "severity", "n"]], width="stretch", hide_index=True)

st.subheader(f"Rollout evidence of {ui.esc(sel.candidate)}")
text = _evidence(sel.generation, sel.candidate)
if text is None:
    st.info(f"No rollout evidence is attached to {ui.esc(sel.candidate)}: its rollout gates fail closed. Attach "
            "one with `readiness evidence rollout.yaml --release ID`.", icon=":material/info:")
else:
    ev = RolloutEvidence.model_validate_json(text)
    st.caption(f"as of {ev.as_of.isoformat()} · {len(ev.records)} record(s)")
    tabs = st.tabs(["Rollback drills", "Feature flags", "Experiments", "Incidents"])
    with tabs[0]:
        ui.show_table([{"artifact": f"{r.artifact_kind}/{r.artifact}", "from → to": f"{r.from_version} → {r.to_version}",
                        "method": r.method, "when": r.performed_at.isoformat()[:16], "by": r.performed_by,
                        "minutes": r.minutes_to_rollback, "outcome": r.outcome} for r in ev.of(RollbackDrill)]
                      or [{"rollback drills": "none"}])
    with tabs[1]:
        ui.show_table([{"flag": f.flag, "controls": f"{f.artifact_kind}/{f.artifact}", "risk": f.risk,
                        "default": "on" if f.default else "off",
                        "percentage": "" if f.percentage is None else f"{f.percentage:g}%",
                        "tenants": ", ".join(f.tenants), "owner": f.owner,
                        "audited": "yes" if f.audited and f.audit_ref else "no"} for f in ev.of(FeatureFlag)]
                      or [{"feature flags": "none"}])
    with tabs[2]:
        ui.show_table([{"experiment": x.experiment_id, "varies": f"{x.artifact_kind}/{x.artifact}",
                        "variants": ", ".join(x.variants), "population": x.population,
                        "exposes": ", ".join(x.exposes), "safeguard": x.safeguard or ""} for x in ev.of(Experiment)]
                      or [{"experiments": "none"}])
    with tabs[3]:
        ui.show_table([{"incident": i.incident_id, "when": i.occurred_at.isoformat()[:16],
                        "artifact": f"{i.artifact_kind}/{i.artifact}", "cases": ", ".join(i.case_ids),
                        "what happened": i.description} for i in ev.of(Incident)] or [{"incidents": "none"}])
