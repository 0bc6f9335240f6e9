"""Property-based fuzzing of the review readers (issue 11 "Trust is explicit", issue 12.10): for any bytes, the
bundle and envelope readers give a report or a clear refusal, and the trusted-reviewers reader a clear refusal
naming the file, never a traceback. Bounded: all of them together stay well under 20 s."""

from __future__ import annotations

import base64
import copy
import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.core.errors import InputRefused
from dashboard.core.policy import load_policy
from dashboard.core.reviews import TrustedReviewers, VerifyReport, load_trusted, parse_trusted
from dashboard.core.signing import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from dashboard.reviewing import (
    add_review,
    current_root,
    export_bundle,
    make_checkpoint,
    record_governing_policy,
    record_trust_root,
    review_predicate,
    sign_review,
    verify_bundle,
)
from dashboard.service import gate_release
from dashboard.store.db import Store
from tests.conftest import REPO
from tests.reviewers import make_keys

POLICY = load_policy(REPO / "data" / "policies" / "case-management.yaml")
RC3 = "rel-2026.11.0-rc3"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                    | st.text(max_size=12), lambda c: st.lists(c, max_size=3)
                    | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)


@pytest.fixture(scope="module")
def world(demo_store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    demo_store.query("CHECKPOINT")
    shutil.copy(demo_store.path, folder / "f.duckdb")
    store = Store(folder / "f.duckdb")
    store.query("DROP TABLE review_log")
    store.close()
    store = Store(folder / "f.duckdb")
    keys, path = make_keys(folder)
    trusted = load_trusted(path)
    record_trust_root(store, trusted, keys["admin"], "admin@example.com", NOW - timedelta(days=1))
    record_governing_policy(store, "gov.case-ai.v3", POLICY, keys["admin"], "admin@example.com", NOW - timedelta(days=1))
    decision = gate_release(store, POLICY, RC3)
    root = current_root(store, NOW)
    assert root is not None
    for who, role in (("eng", "engineering"), ("sec", "security")):
        predicate = review_predicate(decision, f"{who}@example.com", role, "approve", trust_root=root.digest, now=NOW)
        add_review(store, sign_review(store, decision, predicate, keys[who]), trusted, NOW)
    make_checkpoint(store, keys["log"], NOW)
    bundle = json.loads(json.dumps(export_bundle(store)))
    assert verify_bundle(bundle, trusted=trusted, now=NOW).ok
    statement = json.loads(base64.b64decode(json.loads(store.review_entries()[2].envelope)["payload"]))
    yield {"store": store, "keys": keys, "trusted": trusted, "path": path, "bundle": bundle, "statement": statement}
    store.close()


def _mutate(doc, data):
    """Replace, delete or extend one node somewhere in a JSON document."""
    doc = copy.deepcopy(doc)
    parent, key, node = None, None, doc
    for _ in range(data.draw(st.integers(0, 5))):
        if isinstance(node, dict) and node:
            parent, key = node, data.draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            parent, key = node, data.draw(st.integers(0, len(node) - 1))
        else:
            break
        node = parent[key]
    action = data.draw(st.sampled_from(["replace", "delete", "extra", "wrap"]))
    if parent is None:
        return data.draw(JSON)
    if action == "replace":
        parent[key] = data.draw(JSON)
    elif action == "delete":
        del parent[key]
    elif action == "extra" and isinstance(node, dict):
        node[data.draw(st.text(min_size=1, max_size=6))] = data.draw(JSON)
    else:
        parent[key] = [node]
    return doc


@FUZZ
@given(data=st.data())
def test_any_bundle_gives_a_report_never_a_traceback(world, data):
    choice = data.draw(st.sampled_from(["mutate", "truncate", "bytes", "deep"]))
    raw = json.dumps(world["bundle"]).encode()
    if choice == "mutate":
        raw = json.dumps(_mutate(world["bundle"], data)).encode()
    elif choice == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif choice == "bytes":
        raw = data.draw(st.binary(max_size=200))
    else:
        raw = b"[" * 100_000 + b"]" * 100_000
    report = verify_bundle(raw, trusted=world["trusted"], now=NOW)
    assert isinstance(report, VerifyReport)
    if choice in ("truncate", "bytes", "deep"):
        assert not report.ok


@FUZZ
@given(data=st.data())
def test_any_envelope_is_refused_clearly(world, data):
    envelope = json.loads(sign_envelope(json.dumps(world["statement"]).encode(), IN_TOTO_PAYLOAD_TYPE,
                                        world["keys"]["risk"]))
    choice = data.draw(st.sampled_from(["envelope", "bytes", "signed-statement"]))
    if choice == "envelope":
        raw = json.dumps(_mutate(envelope, data)).encode()
    elif choice == "bytes":
        raw = data.draw(st.binary(max_size=300))
    else:  # a trusted reviewer signs a malformed statement: parsed after the signature, still only refused
        raw = sign_envelope(json.dumps(_mutate(world["statement"], data)).encode(), IN_TOTO_PAYLOAD_TYPE,
                            world["keys"]["risk"])
    before = len(world["store"].review_entries())
    try:
        add_review(world["store"], raw, world["trusted"], NOW)
    except InputRefused as e:
        assert str(e).startswith(": review refused") or "replay refused" in str(e) or "review refused" in str(e)
    assert len(world["store"].review_entries()) in (before, before + 1)


@FUZZ
@given(data=st.data())
def test_any_trusted_reviewers_file_is_loaded_or_refused_naming_the_file(world, tmp_path_factory, data):
    doc = yaml.safe_load(world["path"].read_text())
    choice = data.draw(st.sampled_from(["mutate", "text", "truncate"]))
    folder = tmp_path_factory.mktemp("tr", numbered=True)
    target = folder / "t.yaml"
    if choice == "mutate":
        target.write_text(json.dumps(_mutate(doc, data), default=str))
    elif choice == "text":
        target.write_bytes(data.draw(st.binary(max_size=200)))
    else:
        text = world["path"].read_text()
        target.write_text(text[:data.draw(st.integers(0, len(text) - 1))])
    try:
        assert isinstance(load_trusted(target), TrustedReviewers)
    except InputRefused as e:
        assert all(p.source == str(target) for p in e.problems)


def test_deeply_nested_trusted_reviewers_file_is_refused(tmp_path):
    target = tmp_path / "deep.yaml"
    target.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(InputRefused, match="deep.yaml"):
        load_trusted(target)
    with pytest.raises(InputRefused, match="schema_version"):
        parse_trusted({"reviewers": []}, "old.yaml")
