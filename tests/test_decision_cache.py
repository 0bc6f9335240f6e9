"""The decision cache (issue 15): keyed by the digest of everything judged, served only when intact."""

from __future__ import annotations

import hashlib
import json

import pytest

from dashboard import demo, service
from dashboard.cli import main
from dashboard.core import render
from dashboard.core.models import ReleaseEvidence
from dashboard.core.policy import load_policy
from dashboard.service import gate_release, judged_key
from dashboard.store.db import Store
from tests.conftest import REPO, ingest_story

POLICIES = REPO / "data" / "policies"
CM = load_policy(POLICIES / "case-management.yaml")
TIERED = load_policy(POLICIES / "tiered.yaml")
BASE, RC2 = demo.STORIES[0], demo.STORIES[2]


@pytest.fixture
def small(tmp_path) -> Store:
    """The baseline (three suites) and rc2 with only its first two suites, 40 cases per run."""
    s = Store(tmp_path / "c.duckdb")
    ingest_story(s, BASE, tmp_path, list(demo.SUITES))
    ingest_story(s, RC2, tmp_path, list(demo.SUITES[:2]))
    yield s
    s.close()


class _Counter:
    """Counts real judgements (cache misses)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = service._judge_release

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(service, "_judge_release", counted)


def _rows(store: Store) -> int:
    return store.query("SELECT count(*) FROM decision_cache")[0][0]


def test_demo_decisions_are_unchanged(demo_store):
    """Test that every demo decision (rc1..rc4, both shipped policies, every profile) keeps its recorded digest and
    JSON bytes: a speed change must not change a decision."""
    recorded = json.loads((REPO / "tests" / "fixtures" / "demo_decision_digests.json").read_text())
    for entry, (want_digest, want_json) in recorded.items():
        release, policy_file, profile = entry.split("|")
        d = gate_release(demo_store, load_policy(POLICIES / policy_file), release, None,
                         None if profile == "None" else profile, cache=False)
        assert d.digest == want_digest, entry
        assert hashlib.sha256(render.to_json(d).encode()).hexdigest() == want_json, entry


def test_cached_decision_is_byte_identical_to_a_fresh_one(small, monkeypatch):
    """Test that the second judgement comes from the cache and is the same bytes and digest as a fresh one."""
    counter = _Counter(monkeypatch)
    first = gate_release(small, CM, RC2.release_id)
    assert counter.calls == 1 and _rows(small) == 1
    again = gate_release(small, CM, RC2.release_id)
    assert counter.calls == 1  # served from the cache
    fresh = gate_release(small, CM, RC2.release_id, cache=False)
    assert counter.calls == 2
    assert again.digest == first.digest == fresh.digest
    assert render.to_json(again) == render.to_json(fresh)
    assert again.model_dump_json() == fresh.model_dump_json()
    assert render.to_markdown(again) == render.to_markdown(fresh)


def test_the_default_profile_named_or_not_is_one_decision(small, monkeypatch):
    """Test that CI's decision without --profile is served to the dashboard, which names the default profile."""
    counter = _Counter(monkeypatch)
    ci = gate_release(small, CM, RC2.release_id)
    shown = gate_release(small, CM, RC2.release_id, profile=CM.default_profile)
    assert counter.calls == 1
    fresh = gate_release(small, CM, RC2.release_id, profile=CM.default_profile, cache=False)
    assert render.to_json(shown) == render.to_json(fresh) == render.to_json(ci)


def test_any_changed_input_misses_the_cache(small, tmp_path, monkeypatch):
    """Test that another policy, profile, comparison policy, baseline, evidence or a newly ingested run each
    judge afresh (a different key), and that the fresh decision is what is served after."""
    counter = _Counter(monkeypatch)
    keys = set()

    def judge(policy=CM, profile=None, previous=None, baseline=None, no_baseline=False):
        before = counter.calls
        d = gate_release(small, policy, RC2.release_id, baseline, profile, no_baseline=no_baseline,
                         previous=previous)
        assert counter.calls == before + 1, "expected a cache miss"
        resolved = d.baseline.release_id if d.baseline else None
        keys.add(judged_key(small, policy, RC2.release_id, resolved, profile, previous))
        return d

    judge()
    judge(policy=TIERED)
    judge(policy=TIERED, profile="pr")
    judge(policy=TIERED, profile="nightly")
    judge(previous=TIERED)
    judge(no_baseline=True)
    small.put_evidence(ReleaseEvidence(release_id=RC2.release_id, items=[{"kind": "rollback_plan", "passed": True}]))
    with_evidence = judge()
    ingest_story(small, RC2, tmp_path, [demo.SUITES[2]])  # a new run of the candidate
    with_run = judge()
    assert len(keys) == 8
    assert len(with_run.data_digests) == len(with_evidence.data_digests) + 1
    assert with_run.digest == gate_release(small, CM, RC2.release_id, cache=False).digest
    before = counter.calls
    assert gate_release(small, CM, RC2.release_id).digest == with_run.digest
    assert counter.calls == before  # the latest inputs are cached now


@pytest.mark.parametrize("corrupt", [
    "UPDATE decision_cache SET decision_json = replace(decision_json, '\"status\":\"blocked\"', "
    "'\"status\":\"approved\"')",
    "UPDATE decision_cache SET decision_json = '{not json'",
    "UPDATE decision_cache SET decision_digest = 'sha256:' || repeat('0', 64)",
    "UPDATE decision_cache SET decision_json = replace(decision_json, ' ', '  ')",
])
def test_a_corrupt_cache_row_is_ignored_and_replaced(small, monkeypatch, corrupt):
    """Test that a cached row whose JSON does not match its digest (or is not the canonical JSON) is never
    served: the release is judged afresh and the row replaced."""
    good = gate_release(small, CM, RC2.release_id)
    small.query(corrupt)
    counter = _Counter(monkeypatch)
    again = gate_release(small, CM, RC2.release_id)
    assert counter.calls == 1
    assert render.to_json(again) == render.to_json(good)
    gate_release(small, CM, RC2.release_id)
    assert counter.calls == 1  # the replaced row is served


def test_a_row_of_other_inputs_is_not_served(small, monkeypatch):
    """Test that an intact decision stored under the wrong key (e.g. copied from another selection) is ignored."""
    other = gate_release(small, TIERED, RC2.release_id)
    key = judged_key(small, CM, RC2.release_id, BASE.release_id, None)
    small.cache_decision(key, other.digest, other.model_dump_json())
    counter = _Counter(monkeypatch)
    d = gate_release(small, CM, RC2.release_id)
    assert counter.calls == 1 and d.policy.digest == CM.digest


def test_read_only_store_reads_the_cache_and_computes_without_it(small, tmp_path, monkeypatch):
    """Test that a read-only connection serves a cached decision, and computes (without writing) on a miss or on
    a store older than the cache table."""
    written = gate_release(small, CM, RC2.release_id)
    path = small.path
    small.close()
    counter = _Counter(monkeypatch)
    ro = Store(path, read_only=True)
    try:
        assert gate_release(ro, CM, RC2.release_id).digest == written.digest
        assert counter.calls == 0
        gate_release(ro, TIERED, RC2.release_id)
        assert counter.calls == 1
        assert not ro.cache_decision("k", "d", "{}")
    finally:
        ro.close()
    rw = Store(path)
    rw.query("DROP TABLE decision_cache")
    rw.close()
    old = Store(path, read_only=True)
    try:
        assert gate_release(old, CM, RC2.release_id).digest == written.digest
        assert counter.calls == 2
    finally:
        old.close()


def test_cli_gate_writes_the_cache_and_status_report_read_it(small, tmp_path, monkeypatch, capsys):
    """Test that `readiness gate` stores its decision and `readiness report` is served it without judging."""
    path = small.path
    small.close()
    policy = str(POLICIES / "case-management.yaml")
    counter = _Counter(monkeypatch)
    assert main(["gate", "--db", path, "--candidate", RC2.release_id, "--policy", policy, "--format", "json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert counter.calls == 1
    out = tmp_path / "r.md"
    assert main(["report", "--db", path, "--release", RC2.release_id, "--policy", policy, "--format", "md",
                 "--out", str(out)]) == 0
    assert counter.calls == 1
    assert printed["digest"] in capsys.readouterr().out


def test_cli_gate_json_skips_the_regression_list(small, monkeypatch, capsys):
    """Test that `readiness gate --format json` (which shows no regression list) does not run the paired join, so a
    cached decision is served without reading the cases; the text format still lists them."""
    path = small.path
    small.close()
    policy = str(POLICIES / "case-management.yaml")

    def refuse(*_args, **_kwargs):
        raise AssertionError("regressions computed for json")

    with monkeypatch.context() as m:
        m.setattr(Store, "regressions", refuse)
        main(["gate", "--db", path, "--candidate", RC2.release_id, "--policy", policy, "--format", "json"])
    capsys.readouterr()
    main(["gate", "--db", path, "--candidate", RC2.release_id, "--policy", policy])
    assert "paired cases:" in capsys.readouterr().out


def test_other_judging_code_misses_the_cache(small, monkeypatch):
    """Test that a decision cached by other judging code (another version's source or libraries) is not served."""
    gate_release(small, CM, RC2.release_id)
    monkeypatch.setattr(service, "code_fingerprint", lambda: "sha256:" + "1" * 64)
    counter = _Counter(monkeypatch)
    gate_release(small, CM, RC2.release_id)
    assert counter.calls == 1
