"""The selection every page shares: candidate, baseline, policy and profile, chosen once in the sidebar
and mirrored in the URL's query string, so a link reproduces the view."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from dashboard.core.errors import InputRefused
from dashboard.core.policy import GatePolicy
from dashboard.ui import data

MANIFEST_BASELINE = "(as in the manifest)"
NO_BASELINE = "(none)"


@dataclass(frozen=True)
class Selection:
    candidate: str
    baseline: str | None
    policy_label: str
    policy_path: str
    policy: GatePolicy
    profile: str | None
    generation: str

    @property
    def releases(self) -> tuple[str, ...]:
        return (self.candidate, self.baseline) if self.baseline else (self.candidate,)


SELECTION_KEYS = ("candidate", "baseline", "policy", "profile")
_KEPT = "_selection"  # a plain (non-widget) copy of the selection: Streamlit drops widget state on page switches


def _init(key: str, options: list[str], fallback: str) -> None:
    """Seed a widget's state: from the query string when it names a valid value (a link, or a page switch made
    by `go`), else from the kept selection, else the fallback. A value chosen in the widget stays."""
    pending = st.session_state.get("_pending", {})
    if pending.get(key) in options:  # a value set by the app itself (e.g. an uploaded policy), applied once
        st.session_state[key] = pending.pop(key)
    wanted = st.query_params.get(key)
    kept = st.session_state.setdefault(_KEPT, {}).get(key)
    if key not in st.session_state or st.session_state[key] not in options:
        st.session_state[key] = wanted if wanted in options else (kept if kept in options else fallback)
    st.session_state[_KEPT][key] = st.session_state[key]


def selection_params() -> dict[str, str]:
    """The shared selection as query parameters (what every link and page switch carries)."""
    kept = st.session_state.get(_KEPT, {})
    return {k: str(kept[k]) for k in SELECTION_KEYS if kept.get(k) is not None}


def go(page: str, params: dict[str, str | list[str]] | None = None) -> None:
    """The one way to move between pages: keeps candidate, baseline, policy and profile, plus page parameters
    (e.g. the Cases page's filters). The target page reads its parameters from the URL once."""
    query: dict[str, str | list[str]] = {**selection_params(), **(params or {})}
    for key in SELECTION_KEYS:  # a link may change the selection (e.g. Releases -> one candidate's Overview)
        if key in (params or {}):
            st.session_state.setdefault(_KEPT, {})[key] = query[key]
            st.session_state.pop(key, None)
    st.session_state["_from_link"] = page  # the target page applies the URL's filters over its widget state
    st.switch_page(page, query_params=query)


def render_sidebar() -> None:
    """The shared selectors (entry script). Their values live in session state under fixed keys."""
    gen = data.generation()
    rows = data.releases(gen)
    if not rows:
        return
    ids = [r.release_id for r in rows]
    latest = next((r.release_id for r in reversed(rows) if r.baseline_release_id), ids[-1])
    _init("candidate", ids, latest)
    st.selectbox("Candidate release", ids, key="candidate", help="The release being judged.")
    baseline_options = [MANIFEST_BASELINE, NO_BASELINE] + [i for i in ids if i != st.session_state.candidate]
    _init("baseline", baseline_options, MANIFEST_BASELINE)
    st.selectbox("Baseline release", baseline_options, key="baseline",
                 help="Compared with the candidate; by default the one the candidate's manifest names.")
    policies = data.policy_files()
    if not policies:
        st.error("No gate policy found: put one in data/policies or set READINESS_POLICIES.")
        return
    labels = list(policies)
    _init("policy", labels, "case-management.yaml" if "case-management.yaml" in labels else labels[0])
    st.selectbox("Gate policy", labels, key="policy")
    policy = data.load_selected_policy(policies[st.session_state.policy])
    _init("profile", policy.profiles, policy.default_profile or policy.profiles[0])
    st.selectbox("Profile", policy.profiles, key="profile", help="Which of the policy's gates run.")
    _policy_upload()
    st.caption("Trusted reviewers: " + data.trust_root_label())


def _policy_upload() -> None:
    """Upload a policy file: validated as `readiness policy check` does, kept in the store, then selected."""
    with st.expander("Use another policy file"):
        upload = st.file_uploader("Gate policy (YAML or JSON)", type=["yaml", "yml", "json"], key="policy_upload")
        if upload is not None and st.button("Check and use it", key="policy_upload_go"):
            try:
                label = data.add_policy(upload.name, upload.getvalue())
            except InputRefused as e:
                st.error("This policy is not valid:", icon=":material/error:")
                st.code("\n".join(str(p) for p in e.problems), language=None)
                return
            st.session_state["_pending"] = {"policy": label}  # set before the widget exists in the next run
            st.rerun()


def current() -> Selection | None:
    """The selection the sidebar widgets hold (None when nothing can be judged); mirrored into the URL."""
    gen = data.generation()
    rows = data.releases(gen)
    policies = data.policy_files()
    if not rows or not policies:
        return None
    ids = [r.release_id for r in rows]
    candidate = st.session_state.get("candidate")
    label = st.session_state.get("policy")
    if candidate not in ids or label not in policies:
        return None
    policy = data.load_selected_policy(policies[label])
    profile = st.session_state.get("profile")
    if profile not in policy.profiles:
        profile = policy.default_profile or policy.profiles[0]
    choice = st.session_state.get("baseline", MANIFEST_BASELINE)
    manifest_baseline = next(r.baseline_release_id for r in rows if r.release_id == candidate)
    baseline = manifest_baseline if choice == MANIFEST_BASELINE else (None if choice == NO_BASELINE else choice)
    if baseline is not None and (baseline not in ids or baseline == candidate):
        baseline = None
    st.session_state.setdefault(_KEPT, {}).update(
        {"candidate": candidate, "baseline": choice, "policy": label, "profile": profile})
    st.query_params.update({"candidate": candidate, "baseline": choice, "policy": label, "profile": profile})
    return Selection(candidate=candidate, baseline=baseline, policy_label=label, policy_path=policies[label],
                     policy=policy, profile=profile, generation=gen)


def require_selection() -> Selection:
    """The page's selection, or stop the page with an explanation of what is missing."""
    sel = current()
    if sel is None:
        st.info("No release is stored yet. Load a manifest and eval files on the **Load data** page, or run "
                "`readiness demo --db <store>`.", icon=":material/info:")
        st.stop()
    assert sel is not None
    return sel
