"""The dashboard's reruns sharing one store file in one process (issue 19): two sessions asking for the same cold
decision at once must not stall each other (found by benchmarks/team_load.py --team, whose sessions' first loads
all waited for the lock timeout)."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.core.policy import load_policy
from tests.conftest import REPO, demo_copy

POLICY = REPO / "data" / "policies" / "case-management.yaml"
CANDIDATE, BASELINE = "rel-2026.11.0-rc1", "rel-2026.10.0"


def test_two_reruns_judging_the_same_cold_decision_do_not_stall_and_the_decision_is_kept(
        demo_store, tmp_path_factory, monkeypatch):
    """Test that while one rerun judges a decision (inside the cached `decision()`, holding its compute lock),
    another rerun that already holds its read-only view and waits for that decision gets it without delay, and the
    judged decision is kept in the store once, when the judging rerun ends. Before the fix the judging rerun opened
    a writer inside the cached function, which waited for the other rerun's view until the lock timeout (here
    30 s), while that rerun waited for the compute lock; then the decision was not kept at all."""
    from streamlit.runtime.caching import cache_data_api
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager

    from dashboard.service import _cache
    from dashboard.store.db import Store
    from dashboard.ui import data

    db = demo_copy(demo_store, tmp_path_factory, "keep")
    with Store(db) as s:  # the demo file comes with decisions kept: this one must be judged afresh
        s.query("DELETE FROM decision_cache")
    monkeypatch.setenv("READINESS_DB", str(db))
    monkeypatch.setenv("READINESS_LOCK_TIMEOUT", "30")
    monkeypatch.setattr(data, "get_script_run_ctx", lambda: object())  # store() is a rerun's read-only view
    # one cache for the process, as under `streamlit run` (bare mode makes one per call: no shared compute lock)
    shared = MemoryCacheStorageManager()
    monkeypatch.setattr(cache_data_api._data_caches, "get_storage_manager", lambda: shared)
    judging = threading.Event()
    real_gate = data.gate_release

    def slow_gate(*args, **kwargs):  # a big release: judging takes a while
        judging.set()
        time.sleep(2)
        return real_gate(*args, **kwargs)

    monkeypatch.setattr(data, "gate_release", slow_gate)
    kept: list[str] = []

    def counted_cache(w, key, d) -> None:  # gate_release tries it on the read-only view too (a no-op there)
        if not w.read_only:
            kept.append(d.digest)
        _cache(w, key, d)

    monkeypatch.setattr("dashboard.service._cache", counted_cache)
    data.store()
    data.store.clear()  # the file exists: the reruns' views below are plain read-only opens
    data.decision.clear()
    policy = load_policy(POLICY)
    args = ("gen-1", CANDIDATE, BASELINE, str(POLICY), policy.digest, None)
    done: dict[str, float] = {}
    digests: dict[str, str] = {}
    errors: list[BaseException] = []

    def rerun(name: str, wait_for_judging: bool) -> None:
        try:
            start = time.monotonic()
            data.store()  # the rerun's view, opened by the sidebar before the page asks for the decision
            if wait_for_judging:
                assert judging.wait(30)
            digests[name] = data.decision(*args).digest
            data.release()  # the end of the rerun
            done[name] = time.monotonic() - start
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=rerun, args=("judges", False)),
               threading.Thread(target=rerun, args=("waits", True))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    data.decision.clear()
    assert not errors, errors
    assert max(done.values()) < 15, done
    assert digests["judges"] == digests["waits"]
    assert kept == [digests["judges"]]  # kept once, at the end of the judging rerun
    with Store(db, read_only=True) as s:
        assert s.query("SELECT count(*) FROM decision_cache")[0][0] == 1


@pytest.fixture(autouse=True)
def _closed():
    from dashboard.ui import data

    yield
    data.store.clear()
