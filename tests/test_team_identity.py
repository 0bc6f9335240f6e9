"""Signing from the dashboard as the identity provider's signed-in user (issue 19, "Identity")."""

from __future__ import annotations

import json

import pytest

from dashboard.core.errors import InputRefused
from dashboard.core.reviews import SignInIdentity
from dashboard.core.signing import open_envelope
from dashboard.reviewing import add_review, verify_store
from dashboard.ui.identity import RoleMapping, check_signer, mapped_roles
from tests.test_reviews import NOW, env, keys, review  # noqa: F401 (fixtures)

WHO = SignInIdentity(issuer="https://login.example.com", subject="00u1sec", email="Sec@Example.com")


def test_only_the_keys_principal_may_sign_and_only_in_a_mapped_role():
    check_signer("sec@example.com", "security", WHO, None)  # email matches (case-insensitively), no role mapping
    check_signer("sec@example.com", "security", WHO, ["security", "risk"])
    check_signer("eng@example.com", "engineering", None, None)  # sign-in off: nothing to check
    with pytest.raises(InputRefused, match="signed in as Sec@Example.com, but this key belongs to eng@example.com"):
        check_signer("eng@example.com", "engineering", WHO, None)
    with pytest.raises(InputRefused, match="give you the role.*risk, not security"):
        check_signer("sec@example.com", "security", WHO, ["risk"])
    with pytest.raises(InputRefused, match="none, not security"):
        check_signer("sec@example.com", "security", WHO, [])
    with pytest.raises(InputRefused, match="no email"):
        check_signer("sec@example.com", "security", WHO.model_copy(update={"email": ""}), None)
    with pytest.raises(InputRefused, match="not verified"):
        check_signer("sec@example.com", "security", WHO, None, email_verified=False)


def test_roles_come_from_a_claim_through_the_configured_map():
    mapping = RoleMapping(claim="groups", map={"ai-security": "security", "risk-office": "risk"})
    assert mapped_roles({"groups": ["ai-security", "everyone"]}, mapping) == ["security"]
    assert mapped_roles({"groups": "risk-office"}, mapping) == ["risk"]
    assert mapped_roles({}, mapping) == []
    assert mapped_roles({"groups": ["ai-security"]}, None) is None


def test_the_identity_is_inside_the_signed_statement_and_old_statements_are_unchanged(env):  # noqa: F811
    """Test that a review signed with a sign-in records issuer, subject and email in the signed predicate and
    verifies; one signed without has no identity key at all (the same bytes as before the field existed)."""
    store, keys_, trusted, _ = env
    plain = review(store, keys_, "eng", "engineering", "rel-2026.11.0-rc3")
    assert "identity" not in json.loads(open_envelope(plain).payload)["predicate"]
    signed_in = review(store, keys_, "sec", "security", "rel-2026.11.0-rc3",
                       identity=WHO.model_copy(update={"email": "sec@example.com"}))
    predicate = json.loads(open_envelope(signed_in).payload)["predicate"]
    assert predicate["identity"] == {"issuer": "https://login.example.com", "subject": "00u1sec",
                                     "email": "sec@example.com"}
    add_review(store, plain, trusted, NOW)
    add_review(store, signed_in, trusted, NOW)
    report = verify_store(store, trusted, now=NOW)
    assert not [f for f in report.findings if f.level == "error"], report.findings
    ids = {r.predicate.reviewer: r.predicate.identity for r in report.reviews}
    assert ids["eng@example.com"] is None and ids["sec@example.com"].subject == "00u1sec"


def test_a_review_whose_recorded_sign_in_is_someone_else_is_refused(env):  # noqa: F811
    """Test that the identity inside a statement must be the reviewer's own: a key holder cannot record a sign-in
    by another person (the check runs wherever the statement is verified, not only in the dashboard)."""
    store, keys_, trusted, _ = env
    forged = review(store, keys_, "sec", "security", "rel-2026.11.0-rc3",
                    identity=WHO.model_copy(update={"email": "risk@example.com"}))
    with pytest.raises(InputRefused, match="sign-in as risk@example.com, but the reviewer is sec@example.com"):
        add_review(store, forged, trusted, NOW)


def test_without_auth_the_dashboard_runs_as_before(tmp_path, monkeypatch, demo_store):
    """Test that with no [auth] in secrets.toml there is no sign-in screen and no signed-in identity."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from dashboard.ui import data
    from tests.conftest import REPO

    demo_store.query("CHECKPOINT")
    shutil.copy(demo_store.path, tmp_path / "ui.duckdb")
    monkeypatch.setenv("READINESS_DB", str(tmp_path / "ui.duckdb"))
    data.store.clear()
    at = AppTest.from_file(str(REPO / "dashboard" / "ui" / "app.py"), default_timeout=60).run()
    assert not at.exception
    text = " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.title])
    assert "Sign in with your company account" not in text and "Signed in as" not in text
    assert at.selectbox(key="candidate").options
    data.store.clear()
