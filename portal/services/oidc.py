"""Accounts of people who sign in through the city's identity provider (OpenID Connect).

The provider's ``sub`` finds the account (``User.oidc_subject``); a first sign-in creates a
member. An account is never linked by e-mail address: an address the provider vouches for today
may belong to someone else's local account. The optional role claim only moves people between
member and producer (of the OPDs it names); steward and admin are given by an admin, never by a
claim, and an admin-given steward or admin role is never changed by one.

The provider's second factor counts only when its ``amr`` claim (RFC 8176) says ``mfa``; a
steward or admin without it still answers our TOTP.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import Organization, Role, User, utcnow
from portal.services import accounts
from portal.services.events import EventTag, RequestInfo, record_event

__all__ = ["OidcSignIn", "claimed_role", "record_login", "sign_in"]

PRODUCER_PREFIX = "producer:"
_NOT_USERNAME = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class OidcSignIn:
    user: User
    #: The account was created by this sign-in.
    created: bool
    #: The provider says the person used more than one factor (``amr`` contains ``mfa``).
    two_factor_done: bool

    @property
    def needs_our_second_factor(self) -> bool:
        """Stewards, admins and anyone who turned TOTP on answer it unless the provider did MFA."""
        needs = self.user.needs_two_factor or self.user.totp_enabled
        return needs and not self.two_factor_done


def _values(raw: object) -> list[str]:
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list | tuple):
        return [str(v) for v in raw]
    return []


def claimed_role(
    session: Session, raw: object
) -> tuple[Role, list[Organization], list[str]] | None:
    """The role a role claim asks for: ``member`` or ``producer:<opd-name>`` values.

    :param raw: the claim's value (a string, space-separated, or a list); ``None`` asks nothing.
    :returns: the role, its OPDs and the values that were ignored; ``None`` when nothing usable
        was asked (no claim, or only values such as ``steward`` that a claim cannot give).
    """
    values = _values(raw)
    names = [v[len(PRODUCER_PREFIX) :] for v in values if v.startswith(PRODUCER_PREFIX)]
    orgs = (
        list(session.scalars(select(Organization).where(Organization.name.in_(names))))
        if names
        else []
    )
    known = {o.name for o in orgs}
    ignored = [
        v
        for v in values
        if v != Role.MEMBER.value
        and not (v.startswith(PRODUCER_PREFIX) and v[len(PRODUCER_PREFIX) :] in known)
    ]
    if orgs:
        return Role.PRODUCER, sorted(orgs, key=lambda o: o.name), ignored
    if Role.MEMBER.value in values:
        return Role.MEMBER, [], ignored
    return None


def _username(session: Session, claims: Mapping[str, Any]) -> str:
    wanted = str(claims.get("preferred_username") or "")
    if not wanted and claims.get("email"):
        wanted = str(claims["email"]).split("@", 1)[0]
    base = _NOT_USERNAME.sub("-", wanted.lower()).strip("._-")[:70] or "pengguna"
    base = base if len(base) >= 3 else f"{base}-sso"
    candidates = [base] + [f"{base}-{n}" for n in range(2, 10)]
    for candidate in candidates:
        if not session.scalars(select(User.id).where(User.username == candidate)).first():
            return candidate
    return f"{base}-{secrets.token_hex(4)}"


def _email(session: Session, claims: Mapping[str, Any]) -> str | None:
    email = str(claims.get("email") or "").strip().lower()
    if not email or claims.get("email_verified") is not True or len(email) > 254:
        return None
    taken = session.scalars(select(User.id).where(User.email == email)).first()
    return None if taken else email


def _apply_role(session: Session, user: User, raw: object, request: RequestInfo | None) -> None:
    if user.role in (Role.STEWARD, Role.ADMIN):
        return  # given by an admin; a claim neither grants nor takes these
    wanted = claimed_role(session, raw)
    if wanted is None:
        return
    role, orgs, ignored = wanted
    before = (user.role, sorted(o.name for o in user.organizations))
    after = (role, sorted(o.name for o in orgs))
    if before == after:
        return
    accounts.set_role(session, user, role, orgs)
    record_event(
        session,
        EventTag.AUTHZ_ROLE_GRANT if role is Role.PRODUCER else EventTag.AUTHZ_ROLE_REVOKE,
        actor=None,
        target=user,
        details={
            "source": "oidc",
            "role": role.value,
            "previous_role": before[0].value,
            "organizations": after[1],
            "ignored_claim_values": ignored[:10],
        },
        request=request,
    )


def sign_in(
    session: Session,
    claims: Mapping[str, Any],
    *,
    role_claim: str | None = None,
    request: RequestInfo | None = None,
) -> OidcSignIn:
    """Find or create the account behind verified ID token claims (the sign-in is logged by
    :func:`record_login`, or by the second step when one is needed).

    :param claims: the ID token's claims, already verified (signature, issuer, audience, nonce).
    :param role_claim: the claim that sets member or producer (``ONEDATA_OIDC_ROLE_CLAIM``).
    :param request: the HTTP context, for the security log.
    :raises accounts.LoginRefused: when the claims have no subject or the account is disabled.
    """
    subject = str(claims.get("sub") or "")
    if not subject or len(subject) > 255:
        raise accounts.LoginRefused("the identity provider sent no usable subject", "unknown")
    user = session.scalars(select(User).where(User.oidc_subject == subject)).first()
    created = user is None
    if user is None:
        user = accounts.create_user(
            session,
            username=_username(session, claims),
            password=None,
            email=_email(session, claims),
            role=Role.MEMBER,
            display_name=str(claims.get("name") or "")[:200],
        )
        user.oidc_subject = subject
        session.flush()
        record_event(
            session,
            EventTag.USER_ACCOUNT_CREATE,
            actor=None,
            target=user,
            details={"source": "oidc", "role": user.role.value},
            request=request,
        )
    if not user.active:
        raise accounts.LoginRefused("this account is disabled", "disabled", user)
    if role_claim:
        _apply_role(session, user, claims.get(role_claim), request)
    return OidcSignIn(user, created, "mfa" in _values(claims.get("amr")))


def record_login(session: Session, sign_in: OidcSignIn, *, request: RequestInfo | None) -> None:
    """Stamp and log a sign-in that starts a session without a second step of ours.

    :param sign_in: what :func:`sign_in` returned.
    :param request: the HTTP context, for the security log.
    """
    user = sign_in.user
    user.last_login_at = utcnow()
    user.failed_logins = 0
    session.flush()
    record_event(
        session,
        EventTag.AUTH_LOGIN_SUCCESS,
        actor=accounts.actor_for(session, user),
        target=user,
        details={
            "method": "oidc",
            "provider_mfa": sign_in.two_factor_done,
            "new_account": sign_in.created,
        },
        request=request,
    )
