"""Sign-in with the company's identity provider (Streamlit's OIDC login, `st.login`).

Off unless `.streamlit/secrets.toml` has an `[auth]` section (Streamlit's own format: `redirect_uri` ending in
`/oauth2callback`, `cookie_secret`, `client_id`, `client_secret`, `server_metadata_url`; or named providers
`[auth.<name>]`). With it, every page asks the user to sign in first; a review signed in the dashboard records the
provider's issuer and the user's subject and email inside the signed statement, and is refused when the key's
principal (from the trusted-reviewers file) is not the signed-in user's email. Optionally, reviewer roles come from
an ID-token claim:

    [reviewer_roles]
    claim = "groups"                 # the ID-token claim that lists the user's groups
    [reviewer_roles.map]
    "ai-security-reviewers" = "security"
    "risk-office" = "risk"

Then a user may sign only as a role one of their groups maps to (and which the trusted-reviewers file grants the
key: that file still decides whose review counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st
from pydantic import BaseModel, Field

from dashboard.core.errors import InputRefused
from dashboard.core.reviews import REVIEW_ROLES, SignInIdentity


class RoleMapping(BaseModel):
    """`[reviewer_roles]` in secrets.toml: which ID-token claim holds the user's groups, and group -> role."""

    claim: str = Field(min_length=1, description="The ID-token claim listing the user's groups (e.g. groups).")
    map: dict[str, str] = Field(default_factory=dict, description="Group name -> reviewer role.")


def _secrets() -> Mapping[str, Any]:
    try:
        return {k: st.secrets[k] for k in st.secrets}
    except Exception:  # noqa: BLE001 - no secrets file (or an unreadable one): no sign-in
        return {}


def auth_configured() -> bool:
    """True when secrets.toml has an `[auth]` section: the dashboard then requires sign-in."""
    return "auth" in _secrets()


def providers() -> list[str | None]:
    """The login providers: [None] for a single unnamed `[auth]`, else the names of `[auth.<name>]` sections."""
    auth = _secrets().get("auth") or {}
    named = [k for k, v in auth.items() if isinstance(v, Mapping)]
    return named or [None]


def role_mapping() -> RoleMapping | None:
    """The configured claim-to-role mapping; None when roles come from the trusted-reviewers file alone."""
    raw = _secrets().get("reviewer_roles")
    if not raw:
        return None
    mapping = RoleMapping.model_validate({"claim": raw.get("claim", ""), "map": dict(raw.get("map") or {})})
    unknown = sorted(r for r in mapping.map.values() if r not in REVIEW_ROLES)
    if unknown:
        raise InputRefused(f"secrets.toml [reviewer_roles.map]: {', '.join(unknown)} is not a reviewer role "
                           f"({', '.join(REVIEW_ROLES)})")
    return mapping


def _claims() -> Mapping[str, Any]:
    try:
        return st.user.to_dict()
    except Exception:  # noqa: BLE001 - no user info outside a session
        return {}


def signed_in() -> SignInIdentity | None:
    """Who is signed in (None when sign-in is off or nobody is)."""
    claims = _claims()
    if not auth_configured() or not claims.get("is_logged_in"):
        return None
    return SignInIdentity(issuer=str(claims.get("iss") or ""), subject=str(claims.get("sub") or ""),
                          email=str(claims.get("email") or ""))


def mapped_roles(claims: Mapping[str, Any], mapping: RoleMapping | None) -> list[str] | None:
    """The reviewer roles the user's groups map to; None when no mapping is configured."""
    if mapping is None:
        return None
    value = claims.get(mapping.claim)
    groups = [value] if isinstance(value, str) else [str(v) for v in value or []]
    return sorted({mapping.map[g] for g in groups if g in mapping.map})


def check_signer(principal: str, role: str, who: SignInIdentity | None, roles: list[str] | None,
                 email_verified: object = None) -> None:
    """Refuse a dashboard signature by someone other than the key's principal, or in a role the identity provider
    does not give them. `who` None: sign-in is off, nothing to check."""
    if who is None:
        return
    if not who.email:
        raise InputRefused("the identity provider gave no email for you, so your key's principal cannot be matched: "
                           "ask for the email scope")
    if email_verified is False:
        raise InputRefused(f"the identity provider has not verified {who.email}: a review cannot be signed as it")
    if who.email.casefold() != principal.casefold():
        raise InputRefused(f"you are signed in as {who.email}, but this key belongs to {principal}: "
                           "sign with your own key")
    if roles is not None and role not in roles:
        raise InputRefused(f"your identity provider groups give you the role(s) {', '.join(roles) or 'none'}, "
                           f"not {role}")


def check_current_signer(principal: str, role: str) -> SignInIdentity | None:
    """check_signer for the user of this session; the identity to record in the statement (None: sign-in off)."""
    who = signed_in()
    if auth_configured() and who is None:
        raise InputRefused("sign in first")
    claims = _claims()
    check_signer(principal, role, who, mapped_roles(claims, role_mapping()) if who else None,
                 claims.get("email_verified"))
    return who


def require_login() -> None:
    """With `[auth]` configured, show a sign-in screen (and nothing else) until the user has signed in."""
    if not auth_configured() or _claims().get("is_logged_in"):
        return
    st.title("Readiness")
    st.write("Sign in with your company account to see release readiness and sign reviews.")
    for provider in providers():
        label = "Sign in" if provider is None else f"Sign in with {provider}"
        if st.button(label, type="primary", key=f"login_{provider or 'default'}"):
            if provider is None:
                st.login()
            else:
                st.login(provider)
    st.stop()


def sidebar() -> None:
    """Who is signed in, and a way out (only with sign-in configured)."""
    who = signed_in()
    if who is None:
        return
    from dashboard.ui.components import esc

    st.caption(f"Signed in as {esc(who.email or who.subject)}")
    if st.button("Sign out", key="logout"):
        st.logout()
