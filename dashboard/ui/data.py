"""The dashboard's only way to the store: a read-only view opened for one rerun, results cached per selection.

The dashboard never holds the store file between reruns: `store()` opens it read-only on first use in a rerun and
app.py closes it when the rerun ends, so `readiness ingest`, `gate`, `review sign` and CI jobs on the same machine
write while the dashboard is open; the next interaction shows what they wrote. The few writes the dashboard makes
(signing, uploads, keeping a judged decision) go through `writer()`, which opens the file for writing just for them.
Every cached function takes the store's generation, so an ingest invalidates what it changed.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard.core.errors import InputRefused
from dashboard.core.gates import GateDecision
from dashboard.core.manifests import ArtifactChange, diff_manifests
from dashboard.core.metrics import MetricValue
from dashboard.core.policy import GatePolicy, SliceSpec, load_policy
from dashboard.core.reviews import StatusReport, TrustedReviewers, VerifyReport, load_trusted
from dashboard.service import gate_release
from dashboard.store import connections
from dashboard.store.db import ReleaseRow, Store, default_db_path
from dashboard.store.postgres import open_store

BUNDLED_POLICIES = Path(__file__).resolve().parents[2] / "data" / "policies"


DASHBOARD_LOCK_TIMEOUT = 10.0  # seconds a rerun waits for another process's write ($READINESS_LOCK_TIMEOUT)
_local = threading.local()
_ensured: set[str] = set()


def _wait_notice(message: str) -> None:
    if get_script_run_ctx() is not None:
        st.toast("Waiting for the store: another program (an ingest or a CI job) is writing it ...",
                 icon=":material/hourglass_top:")


connections.configure(default_timeout=DASHBOARD_LOCK_TIMEOUT, notice=_wait_notice)


def _ensure(path: str) -> None:
    """Create the store file (and any table a newer version added) once per process, then close it."""
    if path in _ensured:
        return
    if path == ":memory:":
        return
    Store(path).close()
    _ensured.add(path)


class _RerunStore:
    """`store()`: in a rerun, that rerun's read-only view (closed by `release()` at the end of the rerun); outside
    one (tests, scripts), one read-write store per thread until `store.clear()`."""

    def __call__(self) -> Store:
        held: Store | None = getattr(_local, "store", None)
        path = default_db_path()
        if held is not None and held.path == path:
            return held
        self.clear()
        in_rerun = get_script_run_ctx() is not None
        if in_rerun:
            _ensure(path)
        held = open_store(path, read_only=in_rerun)  # + the review log in PostgreSQL with $READINESS_STORE
        _local.store = held
        return held

    def clear(self) -> None:
        """Close this thread's store (the end of a rerun, or a test's cleanup)."""
        held: Store | None = getattr(_local, "store", None)
        _local.store = None
        if held is not None:
            held.close()


store = _RerunStore()


def release() -> None:
    """The end of a rerun: close its store so other processes may write, then keep the decisions it judged."""
    store.clear()
    _write_kept_decisions()


@contextmanager
def writer() -> Iterator[Store]:
    """The store opened for writing just for one change (this thread's read-only view is closed first)."""
    store.clear()
    with open_store(default_db_path()) as w:
        yield w


def generation() -> str:
    return store().generation()


def policy_files() -> dict[str, str]:
    """Label -> path: the bundled policies plus files or folders named in $READINESS_POLICIES."""
    paths: list[Path] = sorted(BUNDLED_POLICIES.glob("*.yaml")) if BUNDLED_POLICIES.is_dir() else []
    for entry in filter(None, os.environ.get("READINESS_POLICIES", "").split(os.pathsep)):
        p = Path(entry)
        paths += sorted(p.glob("*.y*ml")) if p.is_dir() else [p]
    files = {p.name: str(p) for p in paths}
    return {**files, **stored_policy_files()}


STORED_POLICIES = Path(tempfile.gettempdir()) / f"readiness-policies-{os.getuid()}"


def stored_policy_files() -> dict[str, str]:
    """Label -> file for every policy kept in the store (judged before, or uploaded in the sidebar), written once
    to a private cache folder so every page reads a policy the same way (by path)."""
    from dashboard.store.cases import stored_policies

    out = {}
    try:
        rows = stored_policies(store())
    except Exception:  # noqa: BLE001 - a busy store: the bundled policies still work
        return {}
    STORED_POLICIES.mkdir(mode=0o700, exist_ok=True)
    for digest_, policy_id, version, policy_json in rows:
        path = STORED_POLICIES / (digest_.removeprefix("sha256:") + ".json")
        if not path.exists():
            path.write_text(policy_json, encoding="utf-8")
        out[f"{policy_id} v{version} (stored {digest_[7:15]})"] = str(path)
    return out


def add_policy(name: str, content: bytes) -> str:
    """Validate an uploaded policy exactly as `readiness policy check` does, keep it in the store, and return
    its sidebar label; InputRefused with the same messages otherwise."""
    from dashboard.core.errors import read_text
    from dashboard.core.policy import parse_policy

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(content)
        parsed = parse_policy(read_text(path, "policy"), Path(name).name)
    with writer() as w:
        w.remember_policy(parsed.policy_id, parsed.version, parsed.digest, parsed.model_dump_json())
    return f"{parsed.policy_id} v{parsed.version} (stored {parsed.digest[7:15]})"


@st.cache_data(show_spinner=False)
def policy(path: str, mtime: float) -> GatePolicy:
    del mtime  # part of the cache key: an edited policy file is read again
    return load_policy(path)


def load_selected_policy(path: str) -> GatePolicy:
    return policy(path, Path(path).stat().st_mtime)


@st.cache_data(show_spinner=False)
def releases(gen: str) -> list[ReleaseRow]:
    return store().releases()


@st.cache_data(show_spinner="Judging the release (once: the decision is kept in the store for everyone) ...")
def decision(gen: str, candidate: str, baseline: str | None, policy_path: str, policy_digest: str,
             profile: str | None, previous_path: str | None = None,
             previous_digest: str | None = None) -> GateDecision:
    """The key is everything the decision depends on: the data (`gen`), the releases, the policy (by digest),
    the profile and the explicit comparison policy. The store's history of judged policies is not an input.

    gate_release serves the store's cached decision for exactly these inputs when one is intact (`readiness gate`
    in CI writes it), else judges and, when this connection may write, stores it for the next viewer."""
    previous = load_selected_policy(previous_path) if previous_path else None
    if previous is not None and previous.digest != previous_digest:
        raise InputRefused(f"{previous_path} changed since it was chosen: choose it again")
    chosen = load_selected_policy(policy_path)
    if chosen.digest != policy_digest:
        raise InputRefused(f"{policy_path} changed since it was chosen: choose it again")
    judged = gate_release(store(), chosen, candidate, baseline, profile, no_baseline=baseline is None,
                          previous=previous)
    _keep_decision(judged, chosen, candidate, baseline, profile, previous)
    return judged


def _keep_decision(judged: GateDecision, chosen: GatePolicy, candidate: str, baseline: str | None,
                   profile: str | None, previous: GatePolicy | None) -> None:
    """Keep a decision judged on the read-only view (and its policy) in the store for the next viewer, as
    `readiness gate` does, at the end of this rerun (`release()`); skipped quietly when the store stays busy (the
    decision shown is the same either way).

    Never written here: this runs inside the cached `decision()`, whose compute lock other sessions' reruns wait
    on while holding their read-only views, and a writer waits for every reader of the file in this process; a
    write from here waited for them until the lock timeout, on every cold decision two sessions asked for at once."""
    from dashboard.service import judged_key, resolve_baseline

    if not store().read_only:
        return  # a writable store kept it already
    # the key names the data this decision judged (runs, manifests, evidence): taken now, on the same view
    key = judged_key(store(), chosen, candidate, resolve_baseline(store(), candidate, baseline, baseline is None),
                     profile, previous)
    if store().cached_decision(key) is not None:
        return
    pending: list[tuple[str, GateDecision, GatePolicy]] = getattr(_local, "pending", None) or []
    pending.append((key, judged, chosen))
    _local.pending = pending


def _write_kept_decisions() -> None:
    """The end of a rerun: write the decisions this rerun judged and did not find in the store (no lock held)."""
    from dashboard.service import _cache
    from dashboard.store.db import StoreUnavailable

    pending: list[tuple[str, GateDecision, GatePolicy]] = getattr(_local, "pending", None) or []
    _local.pending = []
    if not pending:
        return
    try:
        with writer() as w:  # one write for all of them
            for key, judged, chosen in pending:
                if w.cached_decision(key) is None:
                    w.remember_policy(chosen.policy_id, chosen.version, chosen.digest, chosen.model_dump_json())
                    _cache(w, key, judged)
    except StoreUnavailable:
        pass
    finally:
        store.clear()


@st.cache_data(show_spinner=False)
def manifest_diff(gen: str, candidate: str, baseline: str | None) -> list[ArtifactChange]:
    cand = store().manifest(candidate)
    assert cand is not None
    return diff_manifests(store().manifest(baseline) if baseline else None, cand)


@st.cache_data(show_spinner=False)
def slice_metrics(gen: str, release: str, spec_json: str, metrics: tuple[str, ...]) -> dict[str, dict[str, MetricValue]]:
    return store().slice_metrics(release, SliceSpec.model_validate_json(spec_json), list(metrics))


@st.cache_data(show_spinner=False)
def paired(gen: str, candidate: str, baseline: str, spec_json: str) -> dict[str, Any]:
    return store().paired(candidate, baseline, SliceSpec.model_validate_json(spec_json))


@st.cache_data(show_spinner=False)
def quantile_curve(gen: str, release: str, spec_json: str, column: str) -> list[float]:
    return store().quantile_curve(release, SliceSpec.model_validate_json(spec_json), column)


@st.cache_data(show_spinner=False)
def dimensions(gen: str, release_ids: tuple[str, ...]) -> list[str]:
    """Bounded (store/cases.py): one case with a million slice keys cannot flood a page."""
    from dashboard.store import cases

    return cases.slice_dimensions(store(), list(release_ids))


@st.cache_data(show_spinner=False)
def dimension_values(gen: str, release_ids: tuple[str, ...], dimension: str) -> list[str]:
    from dashboard.store import cases

    return cases.slice_values(store(), list(release_ids), dimension)


@st.cache_data(show_spinner=False)
def check_names(gen: str, release_ids: tuple[str, ...]) -> list[str]:
    return store().check_names(release_ids)


@st.cache_data(show_spinner=False)
def case_records(gen: str, release: str, suite: str, case_id: str) -> list[dict[str, Any]]:
    from dashboard.store import cases

    return cases.case_records(store(), release, suite, case_id)


@st.cache_data(show_spinner=False)
def dataset_changes(gen: str, candidate: str, baseline: str) -> list[dict[str, Any]]:
    return store().dataset_changes(candidate, baseline)


@st.cache_data(show_spinner=False)
def history(gen: str, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Headline metrics of every stored release, oldest first (one aggregate query per release)."""
    rows = []
    for r in store().releases():
        values = store().slice_metrics(r.release_id, SliceSpec(), list(metrics)).get("", {})
        rows.append({"release_id": r.release_id, "created_at": r.created_at,
                     **{m: v.value for m, v in values.items()}})
    return rows


@st.cache_data(show_spinner=False)
def metrics_with_intervals(gen: str, release: str, spec_json: str, metrics: tuple[str, ...]) -> dict[str, dict[str, MetricValue]]:
    """Metrics with bootstrap intervals for percentiles and cost per successful task."""
    from dashboard.service import add_bootstrap_intervals

    spec = SliceSpec.model_validate_json(spec_json)
    values = store().slice_metrics(release, spec, list(metrics))
    add_bootstrap_intervals(store(), release, spec, values)
    return values


def trusted_path() -> str | None:
    """The trust root the operator chose; None means: only a demo store's own demo keys (no default otherwise)."""
    return os.environ.get("READINESS_TRUSTED") or None


@st.cache_data(show_spinner=False)
def trusted(path: str, mtime: float) -> TrustedReviewers:
    del mtime
    return load_trusted(path)


@st.cache_data(show_spinner=False)
def _is_demo_store(gen: str) -> bool:
    from dashboard.reviewing import is_demo_store

    return is_demo_store(store())


def trust_root_label() -> str:
    """Where the trust root in use comes from, for the sidebar (Markdown; the path as plain text)."""
    from dashboard.core.plain import md_text

    path = trusted_path()
    if path:
        return md_text(path)
    if _is_demo_store(store().generation()):
        return "the demo's own keys (**DEMO KEYS**: their passphrase is public; not for real releases)"
    return "none chosen: set `READINESS_TRUSTED` to the trusted-reviewers file you trust"


def load_trusted_reviewers() -> TrustedReviewers:
    from dashboard.reviewing import resolve_trusted

    path = trusted_path()
    if path is None:
        return resolve_trusted(store(), None)[0]  # the demo keys for a demo store; InputRefused otherwise
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as e:
        raise InputRefused(f"READINESS_TRUSTED={path}: cannot read the trusted-reviewers file: {e}") from e
    return trusted(path, mtime)


@st.cache_data(show_spinner="Checking the reviews ...")
def readiness_status(gen: str, candidate: str, baseline: str | None, policy_path: str, policy_digest: str,
                     profile: str | None, hour: str) -> tuple[StatusReport, VerifyReport]:
    """Release status; `hour` keeps waiver expiry honest without recomputing on every rerun."""
    from dashboard.reviewing import status

    del hour
    judged = decision(gen, candidate, baseline, policy_path, policy_digest, profile)  # cached: judged once
    result, _decision, report = status(store(), load_selected_policy(policy_path), candidate,
                                       trusted=load_trusted_reviewers(), baseline_id=baseline, profile=profile,
                                       no_baseline=baseline is None, decision=judged)
    return result, report


@st.cache_data(show_spinner="Writing the report ...")
def report(gen: str, candidate: str, baseline: str | None, policy_path: str, policy_digest: str,
           profile: str | None, fmt: str, day: str) -> bytes:
    from dashboard.reporting import render, report_data

    del day
    try:
        keys: TrustedReviewers | None = load_trusted_reviewers()
    except (InputRefused, OSError):
        keys = None
    judged = decision(gen, candidate, baseline, policy_path, policy_digest, profile)
    data = report_data(store(), load_selected_policy(policy_path), candidate, baseline, profile, keys,
                       no_baseline=baseline is None, decision=judged)
    return render(data, fmt)


@st.cache_data(show_spinner=False, max_entries=256)
def case_list(gen: str, query: Any, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
    """A page of a filtered, sorted case list (dashboard/store/cases.py:CaseQuery)."""
    return store().case_list(query, limit, offset)


def export_cases(query: Any, fmt: str) -> bytes:
    """The whole filtered case list as CSV (formula-safe) or Parquet; not cached (it may be large)."""
    return store().export_cases(query, fmt)


@st.cache_data(show_spinner=False)
def score_names(gen: str, release_ids: tuple[str, ...]) -> list[str]:
    from dashboard.store.cases import score_names as names

    return names(store(), list(release_ids))
