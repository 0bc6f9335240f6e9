"""Signed readiness reviews: valid reviews verify, and every kind of tampering is caught with a clear reason."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from dashboard.core.errors import InputRefused
from dashboard.core.models import ReleaseEvidence
from dashboard.core.policy import load_policy
from dashboard.core.reviews import Waiver, load_trusted
from dashboard.core.signing import SigningError, load_private_key_file
from dashboard.reviewing import (
    add_review,
    current_root,
    export_bundle,
    make_checkpoint,
    record_governing_policy,
    record_trust_root,
    review_predicate,
    sign_review,
    status,
    verify_bundle,
    verify_store,
)
from dashboard.service import gate_release
from dashboard.store.db import Store
from tests.conftest import REPO
from tests.reviewers import PASS, make_keys, trusted_with

POLICY = load_policy(REPO / "data" / "policies" / "case-management.yaml")
RC3, RC4 = "rel-2026.11.0-rc3", "rel-2026.11.0-rc4"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SETUP = NOW - timedelta(days=1)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def env(demo_store, tmp_path, keys):
    demo_store.query("CHECKPOINT")
    import shutil

    shutil.copy(demo_store.path, tmp_path / "r.duckdb")
    store = Store(tmp_path / "r.duckdb")
    store.query("DROP TABLE review_log")  # the demo's trust root: these tests use their own keys
    store.close()
    store = Store(tmp_path / "r.duckdb")
    trusted = load_trusted(keys[1])
    record_trust_root(store, trusted, keys[0]["admin"], "admin@example.com", SETUP)
    record_governing_policy(store, "gov.case-ai.v3", POLICY, keys[0]["admin"], "admin@example.com", SETUP)
    yield store, keys[0], trusted, keys[1]
    store.close()


def review(store, keys, who, role, release, choice="approve", when=NOW, policy=POLICY, **kw):
    decision = gate_release(store, policy, release)
    root = current_root(store, when)
    predicate = review_predicate(decision, f"{who}@example.com", role, choice, now=when, trust_root=root.digest, **kw)
    return sign_review(store, decision, predicate, keys[who])


def test_valid_reviews_verify_and_reach_quorum(env):
    store, keys, trusted, _ = env
    for who, role in (("eng", "engineering"), ("sec", "security"), ("risk", "risk")):
        add_review(store, review(store, keys, who, role, RC3), trusted, NOW)
    report = verify_store(store, trusted, now=NOW)
    assert report.ok and len(report.reviews) == 3, [str(f) for f in report.findings]
    result, decision, _ = status(store, POLICY, RC3, trusted, now=NOW)
    assert decision.status == "approved_with_warnings"
    assert result.ready, result.reasons


def test_quorum_and_a_block_that_holds_until_superseded(env):
    store, keys, trusted, _ = env
    add_review(store, review(store, keys, "eng", "engineering", RC3), trusted, NOW)
    result, _, _ = status(store, POLICY, RC3, trusted, now=NOW)
    assert not result.ready and "quorum not met: no current approval from security, risk" in result.reasons
    add_review(store, review(store, keys, "sec", "security", RC3, "block", comment="pen test pending"), trusted, NOW)
    add_review(store, review(store, keys, "risk", "risk", RC3), trusted, NOW)
    result, _, _ = status(store, POLICY, RC3, trusted, now=NOW)
    assert not result.ready and any("sec@example.com (security) blocked" in r for r in result.reasons)
    later = NOW + timedelta(minutes=1)
    add_review(store, review(store, keys, "sec", "security", RC3, when=later), trusted, later)
    result, _, _ = status(store, POLICY, RC3, trusted, now=later)
    assert result.ready, result.reasons


def test_blocked_gate_needs_valid_waivers_from_allowed_roles(env):
    store, keys, trusted, _ = env
    decision = gate_release(store, POLICY, RC4)
    assert decision.status == "blocked"
    waivers = [Waiver(gate_id=g, justification="fixed in hotfix 4.13.1", expires_at=NOW + timedelta(days=7),
                      ticket="RISK-42") for g in decision.blockers]
    add_review(store, review(store, keys, "eng", "engineering", RC4), trusted, NOW)
    add_review(store, review(store, keys, "sec", "security", RC4), trusted, NOW)
    result, _, _ = status(store, POLICY, RC4, trusted, now=NOW)
    assert not result.ready and any("has no valid waiver" in r for r in result.reasons)
    add_review(store, review(store, keys, "risk", "risk", RC4, waivers=waivers), trusted, NOW)
    result, _, _ = status(store, POLICY, RC4, trusted, now=NOW)
    assert result.ready, result.reasons
    # the same waivers, a week and a day later, have expired
    much_later = NOW + timedelta(days=8)
    result, _, report = status(store, POLICY, RC4, trusted, now=much_later)
    assert not result.ready and any("waiver expired" in r for r in result.reasons)
    assert any(f.level == "warning" and "expired" in f.message for f in report.findings)


def test_waiver_for_a_gate_that_did_not_fail_is_refused(env):
    store, keys, _trusted, _ = env
    decision = gate_release(store, POLICY, RC3)
    with pytest.raises(InputRefused, match="did not fail"):
        review_predicate(decision, "risk@example.com", "risk", "approve", trust_root="sha256:x",
                         waivers=[Waiver(gate_id="approval_bypass", justification="x", expires_at=NOW, ticket="T")])


def _tamper(store, sql, params=None):
    store.query(sql, params or [])


def _three(store, keys, trusted):
    for who, role in (("eng", "engineering"), ("sec", "security"), ("risk", "risk")):
        add_review(store, review(store, keys, who, role, RC3), trusted, NOW)


def _errors(store, trusted, checkpoints=None):
    report = verify_store(store, trusted, checkpoints, now=NOW)
    return [str(f) for f in report.findings if f.level == "error"]


def test_edited_decision_in_an_envelope_is_detected(env):
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    edited = _edit_payload(store.review_entries()[3].envelope, decision="block")  # entries 1, 2: trust setup
    _tamper(store, "UPDATE review_log SET envelope = ? WHERE seq = 4", [edited])
    errors = _errors(store, trusted)
    assert any("entry 4: the envelope bytes were changed" in e for e in errors)
    assert any("entry 4: the signature does not verify" in e for e in errors)


def _edit_payload(envelope: bytes, **changes) -> bytes:
    import base64
    import json

    outer = json.loads(envelope)
    payload = json.loads(base64.b64decode(outer["payload"]))
    payload["predicate"].update(changes)
    outer["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    return json.dumps(outer).encode()


def _rehash_chain(store, replace: dict[int, bytes]) -> None:
    """What an attacker with database access does: rewrite entries and recompute every hash after them."""
    from dashboard.core.reviews import entry_hash, envelope_hash

    prev = "0" * 64
    for e in store.review_entries():
        env_bytes = replace.get(e.seq, e.envelope)
        h = envelope_hash(env_bytes)
        new = entry_hash(e.seq, prev, h, e.received_at)
        _tamper(store, "UPDATE review_log SET envelope = ?, envelope_hash = ?, prev_hash = ?, entry_hash = ? "
                "WHERE seq = ?", [env_bytes, h, prev, new, e.seq])
        prev = new


def test_edited_entry_with_the_chain_rehashed_is_detected(env):
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    edited = _edit_payload(store.review_entries()[2].envelope, decision="block", comment="edited later")
    _rehash_chain(store, {3: edited})
    errors = _errors(store, trusted)
    assert errors == ["ERROR entry 3: the signature does not verify with any trusted reviewer key (unknown key, a "
                      "log or admin key, or an edited envelope)"]


def test_rewritten_history_is_caught_by_a_checkpoint(env):
    """A validly signed review swapped in, chain re-hashed: only a published checkpoint can catch it."""
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    cp = make_checkpoint(store, keys["log"], NOW)
    _tamper(store, "DELETE FROM checkpoints")  # the attacker controls the server, not the published checkpoint
    _rehash_chain(store, {3: review(store, keys, "eng", "engineering", RC3, "block")})
    assert _errors(store, trusted) == []
    assert any("diverges from the checkpoint" in e for e in _errors(store, trusted, [cp]))


def test_deleted_entry_is_detected(env):
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    _tamper(store, "DELETE FROM review_log WHERE seq = 4")
    errors = _errors(store, trusted)
    assert any("entry 5: expected entry 4 here" in e for e in errors)
    assert any("entry 5: the chain is broken" in e for e in errors)


def test_reordered_entries_are_detected(env):
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    _tamper(store, "UPDATE review_log SET seq = CASE seq WHEN 4 THEN 5 WHEN 5 THEN 4 ELSE seq END")
    assert any("the chain is broken" in e for e in _errors(store, trusted))


def test_truncated_tail_is_detected_against_a_checkpoint(env):
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    cp = make_checkpoint(store, keys["log"], NOW)
    _tamper(store, "DELETE FROM review_log WHERE seq = 5")
    _tamper(store, "DELETE FROM checkpoints")
    assert _errors(store, trusted) == []  # a clean, shorter chain ...
    assert any("the log was truncated: a checkpoint" in e and "covers 5 entries, the log has 4" in e
               for e in _errors(store, trusted, [cp]))  # ... but not against the published checkpoint


def test_unknown_key_is_refused(env, tmp_path):
    store, _keys, trusted, _ = env
    from tests.reviewers import make_keys as other_keys

    strangers, _ = other_keys(tmp_path)
    with pytest.raises(InputRefused, match="does not verify with any trusted reviewer key"):
        add_review(store, review(store, strangers, "eng", "engineering", RC3), trusted, NOW)


def test_revoked_key_is_refused_and_flagged(env):
    store, keys, trusted, path = env
    add_review(store, review(store, keys, "eng", "engineering", RC3), trusted, NOW)
    # a revocation is a new trust-root version, signed by an admin; it covers what the key signed after revoked_at
    revoked = trusted_with(path, next_version=True,
                           **{"eng@example.com": {"revoked_at": (NOW - timedelta(hours=1)).isoformat()}})
    record_trust_root(store, revoked, keys["admin"], "admin@example.com", NOW)
    assert any("entry 3: key" in e and "was revoked at" in e for e in _errors(store, trusted))
    assert any("entry 3: key" in e and "was revoked at" in e for e in _errors(store, revoked))
    with pytest.raises(InputRefused, match="was revoked"):
        add_review(store, review(store, keys, "eng", "engineering", RC3, comment="again", when=NOW + timedelta(seconds=1)),
                   revoked, NOW + timedelta(seconds=1))


def test_principal_mismatch_is_refused(env):
    store, keys, trusted, _ = env
    decision = gate_release(store, POLICY, RC3)
    forged = review_predicate(decision, "sec@example.com", "security", "approve", now=NOW,
                              trust_root=trusted.digest)
    envelope = sign_review(store, decision, forged, keys["eng"])  # eng's key, claiming to be sec
    with pytest.raises(InputRefused, match="signed with eng@example.com's key, but the review claims reviewer "
                                           "sec@example.com"):
        add_review(store, envelope, trusted, NOW)
    with pytest.raises(InputRefused, match="may not sign as security"):
        add_review(store, review(store, keys, "eng", "security", RC3), trusted, NOW)


def test_review_replayed_onto_another_release_is_detected(env):
    store, keys, trusted, _ = env
    add_review(store, review(store, keys, "eng", "engineering", RC3), trusted, NOW)
    _tamper(store, "UPDATE review_log SET release_id = ? WHERE seq = 3", [RC4])
    assert any("replayed onto another release" in e for e in _errors(store, trusted))
    env_bytes = store.query("SELECT envelope FROM review_log WHERE seq = 3")[0][0]
    with pytest.raises(InputRefused, match="already in the log"):
        add_review(store, env_bytes, trusted, NOW)


def test_gate_decision_changed_after_review_is_detected(env):
    store, keys, trusted, _ = env
    add_review(store, review(store, keys, "eng", "engineering", RC3), trusted, NOW)
    digest = store.query("SELECT decision_digest FROM decisions")[0][0]
    _tamper(store, "UPDATE decisions SET decision_json = replace(decision_json, '\"approved_with_warnings\"', "
            "'\"approved\"') WHERE decision_digest = ?", [digest])
    assert any("the stored gate decision was changed after the review" in e for e in _errors(store, trusted))


def test_new_data_makes_old_reviews_stale(env, tmp_path):
    store, keys, trusted, _ = env
    for who, role in (("eng", "engineering"), ("sec", "security"), ("risk", "risk")):
        add_review(store, review(store, keys, who, role, RC3), trusted, NOW)
    store.put_evidence(ReleaseEvidence(release_id=RC3, items=[{"kind": "secrets_scan", "passed": True}]))
    result, _, _ = status(store, POLICY, RC3, trusted, now=NOW)
    assert not result.ready and result.stale_reviews and any("quorum not met" in r for r in result.reasons)


def test_twenty_concurrent_signers_keep_one_chain(env):
    store, keys, trusted, _ = env
    envelopes = []
    for release in ("rel-2026.10.0", "rel-2026.11.0-rc1", "rel-2026.11.0-rc2", RC3, RC4):
        decision = gate_release(store, POLICY, release)
        for who, role in (("eng", "engineering"), ("sec", "security"), ("risk", "risk"), ("prod", "product")):
            predicate = review_predicate(decision, f"{who}@example.com", role, "approve", trust_root=trusted.digest,
                                         now=NOW)
            envelopes.append(sign_review(store, decision, predicate, keys[who]))
    errors: list[BaseException] = []

    def add(e):
        try:
            add_review(store, e, trusted, NOW)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(e,)) for e in envelopes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = verify_store(store, trusted, now=NOW)
    assert report.ok and report.entries == 22 and len(report.reviews) == 20
    assert [e.seq for e in store.review_entries()] == list(range(1, 23))


def test_wrong_passphrase_is_a_clear_error(keys, tmp_path_factory):
    folder = keys[1].parent
    with pytest.raises(SigningError, match="wrong passphrase"):
        load_private_key_file(folder / "eng.key", b"not the passphrase")
    assert load_private_key_file(folder / "eng.key", PASS) is not None


def test_exported_bundle_verifies_offline_and_catches_tampering(env, tmp_path):
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    make_checkpoint(store, keys["log"], NOW)
    bundle = export_bundle(store)
    import json

    copy = json.loads(json.dumps(bundle))  # as if written to disk and read on another machine
    assert verify_bundle(copy, trusted=trusted, now=NOW).ok
    copy["entries"].pop()
    report = verify_bundle(copy, trusted=trusted, now=NOW)
    assert not report.ok and any("truncated" in f.message for f in report.findings)
