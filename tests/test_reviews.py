"""Signed readiness reviews: valid reviews verify, and every kind of tampering is caught with a clear reason."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from dashboard.core.errors import InputRefused
from dashboard.core.models import ReleaseEvidence
from dashboard.core.policy import load_policy
from dashboard.core.reviews import Waiver, load_trusted, trusted_entry
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
from tests.reviewers import PASS, SINCE, make_keys, trusted_with

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
    for pinned in (trusted, revoked):  # the review stops counting (a warning); the log itself still verifies
        report = verify_store(store, pinned, now=NOW)
        assert report.ok and not report.reviews, [str(f) for f in report.findings]
        assert any(str(f).startswith("WARNING entry 3: key") and "was revoked at" in str(f) for f in report.findings)
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


# ----- issue 11 "Trust is explicit" and issue 12.1-12.3: each attack is a test --------------------------------
def _bundle_of(store):
    import json

    return json.loads(json.dumps(export_bundle(store)))


def test_a_forged_bundle_with_its_own_keys_does_not_verify(env, demo_store, tmp_path):
    """The attacker builds a whole log of their own (their trust root, their admin, their reviewers)."""
    import shutil

    store, keys, trusted, _ = env
    evil_keys, evil_path = make_keys(tmp_path)
    demo_store.query("CHECKPOINT")
    shutil.copy(demo_store.path, tmp_path / "evil.duckdb")
    evil = Store(tmp_path / "evil.duckdb")
    evil.query("DROP TABLE review_log")
    evil.close()
    evil = Store(tmp_path / "evil.duckdb")
    evil_root = load_trusted(evil_path)
    record_trust_root(evil, evil_root, evil_keys["admin"], "admin@example.com", SETUP)
    record_governing_policy(evil, "gov.case-ai.v3", POLICY, evil_keys["admin"], "admin@example.com", SETUP)
    _three(evil, evil_keys, evil_root)
    forged = _bundle_of(evil)
    evil.close()
    assert verify_bundle(forged, trusted=evil_root, now=NOW).ok  # it verifies only for whoever trusts its keys
    report = verify_bundle(forged, trusted=trusted, now=NOW)
    assert not report.ok and any("is not in this log's trust-root history" in f.message for f in report.findings)
    with pytest.raises(InputRefused, match="never trusted"):
        verify_bundle(forged, now=NOW)


def test_a_forged_trusted_reviewers_file_gains_nothing(env, tmp_path):
    """Attacker keys added under real principals: as the verifier's file, as a trust-root change signed by the
    attacker, and written straight into the log."""
    from dashboard.core.signing import new_key, public_key_text

    store, keys, trusted, path = env
    _data, public = new_key(PASS)
    extra = [trusted_entry("eng@example.com", ["engineering"], public_key_text(public), SINCE)]
    forged = trusted_with(path, name="forged.yaml", extra=extra)
    _three(store, keys, trusted)
    assert any("is not in this log's trust-root history" in e for e in _errors(store, forged))
    with pytest.raises(InputRefused, match="not in this store's trust-root history"):
        add_review(store, review(store, keys, "sec", "security", RC4), forged, NOW)
    # as the next version, signed by a reviewer key instead of an admin key
    forged_next = trusted_with(path, name="forged_next.yaml", next_version=True, extra=extra)
    with pytest.raises(InputRefused, match="does not verify with an admin key"):
        record_trust_root(store, forged_next, keys["eng"], "eng@example.com", NOW)
    # straight into the log (store write access): the entry is flagged, the root never takes effect
    from dashboard.core.canonical import canonical_json
    from dashboard.core.reviews import AdminEvent
    from dashboard.core.signing import ADMIN_PAYLOAD_TYPE, open_envelope, sign_envelope, statement_id

    event = AdminEvent(schema_version=2, kind="trust_root", issuer="eng@example.com", issued_at=NOW,
                       log_id=store.log_id(), previous_entry=store.review_entries()[-1].entry_hash,
                       under_trust_root=trusted.digest, trusted_reviewers=forged_next)
    raw = sign_envelope(canonical_json(event.model_dump(mode="json")), ADMIN_PAYLOAD_TYPE, keys["eng"])
    store.append_review("", raw, NOW, kind="admin", statement_id=statement_id(open_envelope(raw)))
    errors = _errors(store, trusted)
    assert any("entry 6: admin event: the admin event's signature does not verify" in e for e in errors)


def test_log_admin_and_reviewer_keys_are_disjoint(env, tmp_path):
    store, keys, trusted, path = env
    # the log key cannot sign a review, whatever role the review claims
    decision = gate_release(store, POLICY, RC4)
    with pytest.raises(InputRefused, match="role"):
        review_predicate(decision, "log@example.com", "log", "block", trust_root=trusted.digest, now=NOW)
    predicate = review_predicate(decision, "log@example.com", "security", "block", trust_root=trusted.digest, now=NOW)
    with pytest.raises(InputRefused, match="does not verify with any trusted reviewer key"):
        add_review(store, sign_review(store, decision, predicate, keys["log"]), trusted, NOW)
    # one key cannot be both a reviewer key and the log key
    with pytest.raises(InputRefused, match="log, admin and reviewer keys are disjoint"):
        trusted_with(path, name="both.yaml", **{"log@example.com": {"roles": ["log", "security"]}})
    import yaml

    data = yaml.safe_load(path.read_text())
    log_entry = next(e for e in data["reviewers"] if e["principal"] == "log@example.com")
    with pytest.raises(InputRefused, match="must be different keys"):
        trusted_with(path, name="both2.yaml", extra=[{**log_entry, "principal": "sec@example.com",
                                                      "roles": ["security"]}])


def test_naive_timestamps_are_refused_with_file_and_field(env, tmp_path):
    import base64
    import json

    from dashboard.core.signing import IN_TOTO_PAYLOAD_TYPE, REVIEW_PREDICATE_TYPE, sign_envelope, statement

    store, keys, trusted, path = env
    for field, value in (("revoked_at", "2026-06-01"), ("valid_from", "2026-01-01T00:00:00"),
                         ("valid_until", "2027-01-01 10:00")):
        bad = tmp_path / f"naive_{field}.yaml"
        bad.write_text(path.read_text().replace("revoked_at: null", f"{field}: {value}", 1)
                       if field == "revoked_at" else path.read_text().replace(
                           "valid_from: '2026-01-01T00:00:00+00:00'", f"valid_from: '{value}'", 1)
                       if field == "valid_from" else path.read_text().replace("valid_until: null",
                                                                              f"valid_until: {value}", 1))
        with pytest.raises(InputRefused) as caught:
            load_trusted(bad)
        assert f"naive_{field}.yaml: reviewers.0.{field}:" in str(caught.value), str(caught.value)
    # a signed reviewed_at (and a waiver expiry) without a zone: refused, named, no TypeError
    decision = gate_release(store, POLICY, RC3)
    good = review_predicate(decision, "eng@example.com", "engineering", "approve", trust_root=trusted.digest, now=NOW)
    for change in ({"reviewed_at": "2026-11-26T12:00:00"},
                   {"waivers": [{"gate_id": "x", "justification": "j", "expires_at": "2026-12-01", "ticket": "T"}]}):
        body = {**good.model_dump(mode="json"), **change}
        payload = statement(RC3, good.candidate_manifest_digest.removeprefix("sha256:"), REVIEW_PREDICATE_TYPE, body)
        raw = sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, keys["eng"])
        with pytest.raises(InputRefused, match="timezone|time zone") as caught:
            add_review(store, raw, trusted, NOW)
        assert next(iter(change)) in str(caught.value)
    assert json.loads(base64.b64decode(json.loads(raw)["payload"]))  # the envelope itself was well formed


def test_a_reindented_copy_of_an_earlier_approval_cannot_lift_a_later_block(env):
    """Issue 12.1: approve, then block; a re-indented copy of the approval is a replay, and even written straight
    into the log it never supersedes the newer block."""
    import json

    store, keys, trusted, _ = env
    for who, role in (("sec", "security"), ("risk", "risk")):
        add_review(store, review(store, keys, who, role, RC3), trusted, NOW)
    approval = review(store, keys, "eng", "engineering", RC3)
    add_review(store, approval, trusted, NOW)
    assert status(store, POLICY, RC3, trusted, now=NOW)[0].ready
    later = NOW + timedelta(hours=1)
    add_review(store, review(store, keys, "eng", "engineering", RC3, "block", when=later, comment="regression"),
               trusted, later)
    assert not status(store, POLICY, RC3, trusted, now=later)[0].ready
    copy = json.dumps(json.loads(approval), indent=2).encode()
    assert copy != approval
    with pytest.raises(InputRefused, match="replay refused: this signed statement is already in the log as entry 5"):
        add_review(store, copy, trusted, later)
    # an older approval that was never logged (held back) is not newer than the block either
    held = review(store, keys, "eng", "engineering", RC3, when=NOW + timedelta(minutes=30), comment="held back")
    with pytest.raises(InputRefused, match="is not newer and cannot supersede it"):
        add_review(store, held, trusted, later)
    # with store write access: both appended anyway
    from dashboard.core.signing import open_envelope, statement_id

    store.append_review(RC3, copy, later, statement_id="sha256:fake", kind="review")
    store.append_review(RC3, held, later, statement_id=statement_id(open_envelope(held)), kind="review")
    result, _, report = status(store, POLICY, RC3, trusted, now=later)
    assert not result.ready and any("eng@example.com (engineering) blocked" in r for r in result.reasons)
    assert any("replays entry 5" in str(f) for f in report.findings)
    assert any("does not supersede it" in str(f) for f in report.findings if f.level == "warning")


def test_a_reviewer_cannot_choose_the_policy_that_judges_the_release(env, tmp_path):
    """Issue 12.2: a product reviewer signs blocked rc4 against a self-written one-gate policy whose quorum is
    just `product`: it stays NOT READY, and status says why."""
    from dashboard.core.policy import parse_policy

    store, keys, trusted, _ = env
    own = parse_policy("policy_id: my-policy\nversion: '1'\ngates:\n  - {id: ok, name: ok, category: quality, "
                       "severity: blocker, metric: pass_rate, condition: '>= 0'}\nreview:\n  risk_level: low\n  "
                       "quorum: {low: [product]}\n")
    assert gate_release(store, own, RC4).status == "approved"
    add_review(store, review(store, keys, "prod", "product", RC4, policy=own), trusted, NOW)
    result, decision, _ = status(store, None, RC4, trusted, now=NOW)  # no policy named: the governing one
    assert decision.policy.digest == POLICY.digest and decision.status == "blocked"
    assert not result.ready
    assert any("signed against policy my-policy v1" in s and "does not count toward quorum" in s
               for s in result.stale_reviews)
    result, _, _ = status(store, own, RC4, trusted, now=NOW)  # naming the self-written policy does not help
    assert not result.ready and any("is not the governing policy" in r for r in result.reasons)


def test_no_governing_policy_means_not_ready(env):
    store, keys, trusted, _ = env
    store.query("UPDATE releases SET manifest_json = replace(manifest_json, 'gov.case-ai.v3', 'gov.other') "
                "WHERE release_id = ?", [RC3])
    with pytest.raises(InputRefused, match="no governing policy is registered for gov.other"):
        status(store, None, RC3, trusted, now=NOW)
    result, _, _ = status(store, POLICY, RC3, trusted, now=NOW)
    assert not result.ready and any("no governing policy is registered" in r for r in result.reasons)


def test_a_trust_root_change_is_an_admin_signed_logged_event_and_binds_reviews(env):
    store, keys, trusted, path = env
    add_review(store, review(store, keys, "eng", "engineering", RC3), trusted, NOW)
    signed_under_v1 = review(store, keys, "sec", "security", RC3)
    v2 = trusted_with(path, name="v2.yaml", next_version=True, **{"risk@example.com": {"roles": ["risk", "product"]}})
    import yaml

    skip = yaml.safe_load(path.read_text())
    skip.update(version=3, previous=trusted.digest)
    (path.parent / "skip.yaml").write_text(yaml.safe_dump(skip))
    with pytest.raises(InputRefused, match="does not follow version 1"):
        record_trust_root(store, load_trusted(path.parent / "skip.yaml"), keys["admin"], "admin@example.com", NOW)
    with pytest.raises(InputRefused, match="does not name the root in effect"):
        record_trust_root(store, trusted_with(path, name="nolink.yaml", previous=None), keys["admin"],
                          "admin@example.com", NOW)
    record_trust_root(store, v2, keys["admin"], "admin@example.com", NOW)
    with pytest.raises(InputRefused, match="signed under trust root"):
        add_review(store, signed_under_v1, trusted, NOW)
    add_review(store, review(store, keys, "sec", "security", RC3), trusted, NOW)  # re-signed under v2
    report = verify_store(store, trusted, now=NOW)  # anchored at v1, the log carries v2
    assert report.ok and report.trust_roots == [trusted.digest, v2.digest], [str(f) for f in report.findings]
    assert verify_store(store, v2, now=NOW).ok
    cp = make_checkpoint(store, keys["log"], NOW)
    import base64
    import json

    assert json.loads(base64.b64decode(json.loads(cp)["payload"]))["trusted_reviewers_digest"] == v2.digest


def test_checkpoint_keys_are_checked_when_they_signed(env):
    store, keys, trusted, path = env
    _three(store, keys, trusted)
    cp = make_checkpoint(store, keys["log"], NOW)
    v2 = trusted_with(path, name="v2.yaml", next_version=True,
                      **{"log@example.com": {"revoked_at": (NOW - timedelta(days=1)).isoformat()}})
    record_trust_root(store, v2, keys["admin"], "admin@example.com", NOW)
    assert any("checkpoint" in e and "was revoked" in e for e in _errors(store, trusted, [cp]))
    with pytest.raises(InputRefused, match="was revoked"):
        make_checkpoint(store, keys["log"], NOW)


def test_received_at_must_not_go_backwards(env):
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    from dashboard.core.reviews import entry_hash

    prev = "0" * 64
    for e in store.review_entries():  # the attacker moves entry 4 back in time and re-hashes the chain
        when = e.received_at - timedelta(days=2) if e.seq == 4 else e.received_at
        new = entry_hash(e.seq, prev, e.envelope_hash, when)
        _tamper(store, "UPDATE review_log SET received_at = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
                [when, prev, new, e.seq])
        prev = new
    assert any("entry 4: received_at" in e and "before the previous entry" in e for e in _errors(store, trusted))


def test_every_published_checkpoint_is_checked_and_they_must_agree(env):
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    older = make_checkpoint(store, keys["log"], NOW)  # covers 5 entries
    _tamper(store, "DELETE FROM review_log WHERE seq = 5")  # rolled back ...
    _tamper(store, "DELETE FROM checkpoints")
    newer = make_checkpoint(store, keys["log"], NOW + timedelta(minutes=1))  # ... and the server signs the shorter log
    _tamper(store, "DELETE FROM checkpoints")
    errors = _errors(store, trusted, [newer, older])
    assert any("covers 5 entries, the log has 4" in e for e in errors)
    assert any("covers 4 entries, fewer than the earlier checkpoint" in e and "rolled back" in e for e in errors)


def test_verification_reports_bad_input_as_findings(env, tmp_path, capsys):
    """An edited stored decision that is no longer JSON, an unknown bundle version, garbage checkpoints and
    bundles: findings and exit 1, never a traceback."""
    import json

    from dashboard.cli import main

    store, keys, trusted, path = env
    _three(store, keys, trusted)
    _tamper(store, "UPDATE decisions SET decision_json = '{\"truncated'")
    assert any("the stored gate decision was changed after the review" in e for e in _errors(store, trusted))
    assert any("checkpoint: not a DSSE envelope" in e for e in _errors(store, trusted, [b"\xff\x00garbage"]))
    bundle = json.loads(json.dumps(export_bundle(store)))
    report = verify_bundle({**bundle, "format": "readiness.review-bundle/v9"}, trusted=trusted, now=NOW)
    assert not report.ok and "is not 'readiness.review-bundle/v2'" in report.findings[0].message
    report = verify_bundle({**bundle, "surprise": 1}, trusted=trusted, now=NOW)
    assert not report.ok and "bundle: surprise: Extra inputs are not permitted" in report.findings[0].message
    del bundle["entries"][0]["entry_hash"]
    report = verify_bundle(bundle, trusted=trusted, now=NOW)
    assert not report.ok and "bundle: entries.0.entry_hash: Field required" in report.findings[0].message
    (tmp_path / "b.json").write_bytes(b'{"format": "readiness.review-bundle/v2", "entries": [')
    code = main(["review", "verify", "--bundle", str(tmp_path / "b.json"), "--trusted", str(path)])
    out = capsys.readouterr().out
    assert code == 1 and "ERROR log: bundle: not JSON" in out and "INVALID" in out
    with pytest.raises(InputRefused, match="schema_version: Input should be 2"):
        from dashboard.core.reviews import parse_trusted

        parse_trusted({"schema_version": 3, "version": 1, "reviewers": []}, "t.yaml")


def test_a_later_revocation_of_an_admin_key_covers_what_it_signed_after_revoked_at(env):
    """Admin keys too are checked at the time they signed: a second admin revokes the first (compromised an hour
    ago); the governing-policy registration the first signed since then is flagged."""
    from dashboard.core.signing import new_key, public_key_text

    store, keys, trusted, path = env
    data, public = new_key(PASS)
    from dashboard.core.signing import load_private_key

    second = load_private_key(data, PASS)
    v2 = trusted_with(path, name="v2.yaml", next_version=True,
                      extra=[trusted_entry("admin2@example.com", ["admin"], public_key_text(public), SINCE)])
    record_trust_root(store, v2, keys["admin"], "admin@example.com", NOW - timedelta(hours=2))
    record_governing_policy(store, "gov.case-ai.v3", POLICY, keys["admin"], "admin@example.com", NOW)
    assert verify_store(store, trusted, now=NOW).ok
    v3 = trusted_with(path.parent / "v2.yaml", name="v3.yaml", next_version=True,
                      **{"admin@example.com": {"revoked_at": (NOW - timedelta(hours=1)).isoformat()}})
    record_trust_root(store, v3, second, "admin2@example.com", NOW + timedelta(minutes=1))
    errors = _errors(store, trusted)
    assert any("entry 4: admin event: key" in e and "was revoked at" in e for e in errors), errors
    assert not any("entry 3:" in e for e in errors)  # v2 was signed before the compromise


def test_old_statement_format_is_refused_with_a_clear_message(env):
    from dashboard.core.signing import IN_TOTO_PAYLOAD_TYPE, sign_envelope, statement

    store, keys, trusted, _ = env
    decision = gate_release(store, POLICY, RC3)
    body = review_predicate(decision, "eng@example.com", "engineering", "approve", trust_root=trusted.digest,
                            now=NOW).model_dump(mode="json")
    del body["trusted_reviewers_digest"]
    payload = statement(RC3, decision.candidate.manifest_digest.removeprefix("sha256:"),
                        "https://readiness.dev/readiness-review/v1", body)
    with pytest.raises(InputRefused, match="readiness-review/v1 statement .older format, not bound to a trust root.: "
                                           "sign the review again"):
        add_review(store, sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, keys["eng"]), trusted, NOW)


def test_a_format_1_review_log_is_refused_and_an_empty_one_upgraded(tmp_path):
    old_table = ("CREATE TABLE review_log (seq BIGINT PRIMARY KEY, release_id VARCHAR NOT NULL, prev_hash VARCHAR "
                 "NOT NULL, envelope BLOB NOT NULL, envelope_hash VARCHAR NOT NULL UNIQUE, received_at TIMESTAMPTZ NOT "
                 "NULL, entry_hash VARCHAR NOT NULL)")
    for rows in (0, 1):
        path = tmp_path / f"old{rows}.duckdb"
        store = Store(path)
        store.query("DROP TABLE review_log")
        store.query(old_table)
        if rows:
            store.query("INSERT INTO review_log VALUES (1, 'r', ?, 'x', 'h', ?, 'e')", ["0" * 64, NOW])
        store.close()
        store = Store(path)
        if rows:
            with pytest.raises(InputRefused, match="the review log is in format 1"):
                store.review_entries()
        else:
            assert store.review_entries() == []
        store.close()


def test_an_edited_governance_version_in_the_stored_manifest_is_caught(env):
    """Store write access: point the release at another governance version without touching its digest column."""
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    assert status(store, None, RC3, trusted, now=NOW)[0].ready
    weak = POLICY.model_copy(update={"version": "weak"})
    record_governing_policy(store, "gov.weak", weak, keys["admin"], "admin@example.com", NOW)
    store.query("UPDATE releases SET manifest_json = replace(manifest_json, 'gov.case-ai.v3', 'gov.weak') "
                "WHERE release_id = ?", [RC3])
    result, _, _ = status(store, None, RC3, trusted, now=NOW)
    assert not result.ready and "no longer has its digest" in result.reasons[0]


def _staging(demo_store, tmp_path, keys, trusted):
    """A second store (its own log) under the same trust root, as a staging environment would be."""
    import shutil

    demo_store.query("CHECKPOINT")
    shutil.copy(demo_store.path, tmp_path / "staging.duckdb")
    stg = Store(tmp_path / "staging.duckdb")
    stg.query("DROP TABLE review_log")
    stg.query("DELETE FROM log_meta")
    stg.close()
    stg = Store(tmp_path / "staging.duckdb")
    record_trust_root(stg, trusted, keys["admin"], "admin@example.com", SETUP)
    return stg


def test_an_admin_event_signed_for_another_log_is_refused_here(env, demo_store, tmp_path):
    """Red team: a governing policy / trust root legitimately signed on a staging store with the same trust root
    was appended to the production log by a store writer, and status said READY with no reviews."""
    from dashboard.core.policy import GatePolicy
    from dashboard.core.signing import open_envelope, statement_id

    store, keys, trusted, path = env
    stg = _staging(demo_store, tmp_path, keys, trusted)
    assert stg.log_id() != store.log_id()
    data = POLICY.model_dump(mode="json")
    data["version"] = data["version"] + "-staging"
    data["gates"] = [dict(g, severity="warning") for g in data["gates"]]
    data["review"] = dict(data.get("review") or {}, risk_level="low", quorum={"low": []})
    lax = GatePolicy.model_validate(data)
    record_governing_policy(stg, "gov.case-ai.v3", lax, keys["admin"], "admin@example.com", NOW)
    v2 = trusted_with(path, name="v2.yaml", next_version=True)
    record_trust_root(stg, v2, keys["admin"], "admin@example.com", NOW)
    for e in stg.review_entries()[1:]:
        store.append_review("", e.envelope, NOW, kind="admin", statement_id=statement_id(open_envelope(e.envelope)))
    stg.close()
    report = verify_store(store, trusted, now=NOW)
    errors = [str(f) for f in report.findings if f.level == "error"]
    assert any("entry 3: admin event: signed for log" in e and "another log" in e for e in errors), errors
    assert report.governing_policy("gov.case-ai.v3").digest == POLICY.digest  # the staging policy never governs
    assert report.trust_roots == [trusted.digest]
    result, _, _ = status(store, None, RC4, trusted, now=NOW)
    assert not result.ready and "does not verify" in result.reasons[0]
    assert result.trust_root_in_effect == f"version 1 ({trusted.digest})"


def test_an_admin_event_is_valid_only_where_it_was_signed_in_its_log(env):
    """Moved to another place of the same log (deleted and re-appended later), an admin event is refused."""
    from dashboard.core.signing import open_envelope, statement_id

    store, keys, trusted, _ = env
    gov = store.review_entries()[1]
    add_review(store, review(store, keys, "eng", "engineering", RC3), trusted, NOW)
    store.query("DELETE FROM review_log WHERE seq = 2")
    store.query("UPDATE review_log SET seq = 2, prev_hash = ? WHERE seq = 3", [store.review_entries()[0].entry_hash])
    store.append_review("", gov.envelope, NOW, kind="admin", statement_id=statement_id(open_envelope(gov.envelope)))
    assert any("valid only where it was signed" in str(f) for f in verify_store(store, trusted, now=NOW).findings)


def _delete_and_rechain(store, seq: int) -> None:
    """A store writer deletes one entry from the middle, renumbers the ones after it and re-hashes the chain."""
    last = store.review_entries()[-1].seq
    _tamper(store, "DELETE FROM review_log WHERE seq = ?", [seq])
    for s in range(seq + 1, last + 1):
        _tamper(store, "UPDATE review_log SET seq = ? WHERE seq = ?", [s - 1, s])
    _rehash_chain(store, {})
    _tamper(store, "DELETE FROM checkpoints")


def test_status_checks_the_published_checkpoints_it_is_given(env, tmp_path, capsys, monkeypatch):
    """Red team: a block deleted from the middle of the log (chain re-hashed, stored checkpoints deleted) gave
    READY from `status` while `review verify --checkpoint` said INVALID: status now takes the checkpoints."""
    from dashboard.cli import main

    store, keys, trusted, path = env
    _three(store, keys, trusted)
    add_review(store, review(store, keys, "sec", "security", RC3, "block", when=NOW + timedelta(minutes=1),
                             comment="no"), trusted, NOW + timedelta(minutes=1))
    add_review(store, review(store, keys, "eng", "engineering", RC4), trusted, NOW + timedelta(minutes=2))
    cp = make_checkpoint(store, keys["log"], NOW + timedelta(minutes=3))
    assert not status(store, None, RC3, trusted, now=NOW + timedelta(minutes=4))[0].ready
    _delete_and_rechain(store, 6)  # the block
    later = NOW + timedelta(minutes=4)
    assert status(store, None, RC3, trusted, now=later)[0].ready  # undetectable without a published checkpoint
    result = status(store, None, RC3, trusted, now=later, checkpoints=[cp])[0]
    assert not result.ready and "does not verify: ERROR log: the log was truncated" in result.reasons[0]
    (tmp_path / "cp.dsse").write_bytes(cp)
    db = str(store.path)
    store.close()
    args = ["status", "--db", db, "--release", RC3, "--trusted", str(path)]
    assert main([*args, "--checkpoint", str(tmp_path / "cp.dsse")]) == 1
    assert "the log was truncated" in capsys.readouterr().out
    monkeypatch.setenv("READINESS_CHECKPOINTS", str(tmp_path / "cp.dsse"))
    assert main(args) == 1
    monkeypatch.delenv("READINESS_CHECKPOINTS")
    main(args)
    assert "no published checkpoint given" in capsys.readouterr().out


def test_a_root_with_any_demo_key_is_labelled_demo_keys(env):
    """Red team: a real root that copies the demo admin entry (public passphrase) was not labelled."""
    import yaml

    from dashboard.reviewing import DEMO_TRUSTED, uses_demo_keys

    store, keys, trusted, path = env
    demo_admin = next(k for k in yaml.safe_load(DEMO_TRUSTED.read_text())["reviewers"] if "admin" in k["roles"])
    assert not status(store, None, RC3, trusted, now=NOW)[0].demo_keys
    mixed = trusted_with(path, name="mixed.yaml", next_version=True, extra=[demo_admin])
    record_trust_root(store, mixed, keys["admin"], "admin@example.com", NOW)
    for pinned in (trusted, mixed):
        assert status(store, None, RC3, pinned, now=NOW)[0].demo_keys
        assert uses_demo_keys(pinned, verify_store(store, pinned, now=NOW))
    from dashboard.reviewing import resolve_trusted

    assert resolve_trusted(None, str(path.with_name("mixed.yaml")))[1]


def test_a_trust_root_in_an_admin_event_gets_the_key_id_check_of_a_file(env):
    """Red team: a root recorded through the API listed the log key as a reviewer under a made-up key id."""
    import yaml

    from dashboard.core.reviews import TrustedReviewers

    store, keys, trusted, path = env
    doc = yaml.safe_load(path.read_text())
    log = next(k for k in doc["reviewers"] if k["roles"] == ["log"])
    doc.update(version=2, previous=trusted.digest)
    doc["reviewers"].append({**log, "key_id": "sha256:" + "ab" * 32, "roles": ["engineering"],
                             "principal": "log-as-eng@example.com"})
    with pytest.raises(InputRefused, match="key_id: does not match the public key"):
        record_trust_root(store, TrustedReviewers.model_validate(doc), keys["admin"], "admin@example.com", NOW)


def test_a_block_in_the_same_second_as_the_approval_is_accepted_and_wins(env):
    """Red team: a block signed in the same second as the reviewer's approval was refused as a 'replay'."""
    store, keys, trusted, _ = env
    _three(store, keys, trusted)
    add_review(store, review(store, keys, "sec", "security", RC3, "block", comment="tie"), trusted, NOW)
    report = verify_store(store, trusted, now=NOW)
    assert report.ok and not [f for f in report.findings if "supersede" in f.message]
    result = status(store, None, RC3, trusted, now=NOW)[0]
    assert not result.ready and any("tie" in b for b in result.blocks)
    with pytest.raises(InputRefused, match=r"review refused \(out of order\).*is not newer") as info:
        add_review(store, review(store, keys, "sec", "security", RC3, comment="again"), trusted, NOW)
    assert "replay" not in str(info.value)


def test_a_key_is_not_valid_at_its_valid_until(env):
    """Docs say valid_from <= t < valid_until; t == valid_until was accepted."""
    store, keys, trusted, path = env
    ends = trusted_with(path, name="ends.yaml", next_version=True,
                        **{"eng@example.com": {"valid_until": NOW.isoformat()}})
    record_trust_root(store, ends, keys["admin"], "admin@example.com", NOW - timedelta(minutes=1))
    with pytest.raises(InputRefused, match="expired at"):
        add_review(store, review(store, keys, "eng", "engineering", RC3), trusted, NOW)


def test_review_and_trust_readers_refuse_devices_fifos_big_files_and_huge_integers(env, tmp_path, capsys,
                                                                                   monkeypatch):
    import os

    from dashboard.cli import main

    store, keys, trusted, path = env
    db = str(store.path)
    store.close()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(300 * 1024 * 1024)
    huge = tmp_path / "huge.yaml"
    huge.write_text(path.read_text().replace("version: 1", "version: " + "9" * 5000, 1))
    bad = ["/dev/zero", str(fifo), str(big)]
    tk = ["--trusted", str(path)]
    runs = [["review", "verify", "--db", db, "--checkpoint", b, *tk] for b in bad]
    runs += [["review", "verify", "--bundle", b, *tk] for b in bad]
    runs += [["review", "verify", "--db", db, "--trusted", b] for b in [*bad, str(huge)]]
    runs += [["review", "add", "--db", db, b, *tk] for b in bad]
    (tmp_path / "e.dsse").write_text("{}")
    runs += [["review", "add", "--db", db, str(tmp_path / "e.dsse"), "--trusted", str(huge)]]
    monkeypatch.setenv("RT_PP", "a passphrase")
    pp = ["--passphrase-env", "RT_PP", "--issuer", "a@example.com"]
    runs += [["trust", "set", "--db", db, str(path), "--key", b, *pp] for b in bad]
    runs += [["trust", "set", "--db", db, b, "--key", "k", *pp] for b in [*bad, str(huge)]]
    for args in runs:
        assert main(args) in (1, 2), args  # refused (1) or an input error (2), never a crash
        err = capsys.readouterr().err
        assert "Traceback" not in err and any(n in err for n in (*bad, str(huge))), (args, err)
