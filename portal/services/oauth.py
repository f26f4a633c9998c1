"""The OAuth 2 provider's rules: codes and tokens (hashes only), revocation, and who a token is.

:mod:`portal.oauth` wires these into Authlib. A user's token acts as that user narrowed to the
token's scopes (:func:`portal.services.accounts.actor_for`); a client-credentials token acts as
the client itself: a ``member`` with the client's scopes and no grants or OPD, so it reads what
any signed-in member reads and nothing more. The owner's role is deliberately not lent to the
client: a machine credential would then carry a steward's or producer's power without their
second factor, and would keep it after the owner's role changes.

Authorization codes are single use: the first exchange marks the code used, and a second one
revokes every token issued from it (RFC 6749 §4.1.2). Refresh tokens rotate: each refresh ends
the old pair, and presenting an ended refresh token again revokes the whole grant (RFC 9700
§4.14.2), since only a thief or a broken client would do that.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.models import Role, User, utcnow
from portal.models.oauth import (
    GrantType,
    OAuth2AuthorizationCode,
    OAuth2Client,
    OAuth2Token,
    aware,
    digest,
)
from portal.services.access import Actor, Scope
from portal.services.accounts import TokenRefused, actor_for
from portal.services.events import EventSeverity, EventTag, RequestInfo, record_event

__all__ = [
    "ACCESS_PREFIX",
    "CODE_LIFETIME",
    "REFRESH_PREFIX",
    "TokenKind",
    "active_client",
    "actor_for_token",
    "claim_code",
    "client_actor",
    "find_refresh_token",
    "find_token",
    "introspection",
    "new_secret",
    "retire_token",
    "revoke_grant",
    "revoke_token",
    "save_code",
    "save_token",
]

#: Our tokens carry a prefix, for secret scanners and to tell them from personal API tokens.
ACCESS_PREFIX = "odo_"
REFRESH_PREFIX = "odr_"
CODE_LIFETIME = timedelta(minutes=10)
SCOPE_VALUES = frozenset(s.value for s in Scope)


class TokenKind(StrEnum):
    """The ``token_type_hint`` values of RFC 7009 and RFC 7662."""

    ACCESS = "access_token"  # noqa: S105 - a token type, not a secret
    REFRESH = "refresh_token"  # noqa: S105 - a token type, not a secret


def new_secret(prefix: str) -> str:
    """A fresh random token (256 bits) with our prefix."""
    return prefix + secrets.token_urlsafe(32)


def active_client(session: Session, client_id: str | None) -> OAuth2Client | None:
    """The registered, unrevoked client with this ``client_id``.

    :param client_id: the public client id (``None`` finds nothing).
    """
    if not client_id:
        return None
    return session.scalars(
        select(OAuth2Client).where(
            OAuth2Client.client_id == client_id, OAuth2Client.revoked_at.is_(None)
        )
    ).first()


def client_actor(client: OAuth2Client, scopes: frozenset[str] | None = None) -> Actor:
    """The actor a client is when it acts for itself (client credentials, the security log).

    :param scopes: the token's scopes; the client's own scopes when ``None``.
    """
    granted = frozenset(client.scopes) if scopes is None else scopes
    return Actor(
        id=f"oauth-client:{client.client_id}",
        role=Role.MEMBER,
        scopes=granted & frozenset(client.scopes) & SCOPE_VALUES,
    )


def save_code(
    session: Session,
    *,
    client: OAuth2Client,
    user: User,
    code: str,
    redirect_uri: str | None,
    scopes: list[str],
    code_challenge: str,
    code_challenge_method: str,
) -> OAuth2AuthorizationCode:
    """Store an authorization code (its hash) after the user's consent.

    :param code: the code Authlib generated; only its sha256 is kept.
    :param redirect_uri: the redirect URI the request named, which the exchange must repeat.
    :param code_challenge: the PKCE challenge (S256).
    """
    now = utcnow()
    row = OAuth2AuthorizationCode(
        code_hash=digest(code),
        oauth_client_id=client.id,
        user_id=user.id,
        redirect_uri=redirect_uri,
        scopes=sorted(set(scopes) & SCOPE_VALUES),
        code_challenge=code_challenge,
        code_challenge_method=code_challenge_method,
        grant_id=str(uuid.uuid4()),
        created_at=now,
        expires_at=now + CODE_LIFETIME,
    )
    session.add(row)
    session.flush()
    return row


def claim_code(session: Session, client: OAuth2Client, code: str) -> OAuth2AuthorizationCode | None:
    """The code ``client`` presents, marked used at once (single use, even if checks fail later).

    A code presented a second time revokes every token issued from it.

    :param client: the authenticated client; another client's code is not found.
    """
    row = session.scalars(
        select(OAuth2AuthorizationCode).where(
            OAuth2AuthorizationCode.code_hash == digest(code),
            OAuth2AuthorizationCode.oauth_client_id == client.id,
        )
    ).first()
    if row is None:
        return None
    if row.used_at is not None:
        revoke_grant(session, row.grant_id)
        return None
    if row.is_expired():
        return None
    # A compare-and-set, so two exchanges racing for one code cannot both win.
    claimed = session.execute(
        update(OAuth2AuthorizationCode)
        .where(OAuth2AuthorizationCode.id == row.id, OAuth2AuthorizationCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    session.refresh(row)
    return row


def save_token(
    session: Session,
    *,
    client: OAuth2Client,
    user: User | None,
    token: Mapping[str, Any],
    grant_type: GrantType,
    grant_id: str | None,
    refresh_lifetime: int,
    request: RequestInfo | None = None,
) -> OAuth2Token:
    """Store a token response from Authlib: hashes of the access and refresh tokens only.

    A new user grant (authorization code) is written to the security log.

    :param token: the response Authlib will send (``access_token``, ``expires_in``, ...).
    :param grant_id: the grant the token descends from; a new one when ``None``.
    :param refresh_lifetime: seconds the refresh token lives.
    :param request: the HTTP context, for the security log.
    """
    now = utcnow()
    refresh = token.get("refresh_token")
    row = OAuth2Token(
        oauth_client_id=client.id,
        user_id=user.id if user else None,
        grant_type=grant_type,
        grant_id=grant_id or str(uuid.uuid4()),
        token_type=str(token.get("token_type", "Bearer")),
        access_token_hash=digest(str(token["access_token"])),
        refresh_token_hash=digest(str(refresh)) if refresh else None,
        scopes=sorted(set(str(token.get("scope", "")).split()) & SCOPE_VALUES),
        issued_at=now,
        expires_in=int(token["expires_in"]),
        refresh_expires_at=now + timedelta(seconds=refresh_lifetime) if refresh else None,
    )
    session.add(row)
    session.flush()
    if grant_type is GrantType.AUTHORIZATION_CODE and user is not None:
        record_event(
            session,
            EventTag.AUTH_TOKEN_CREATE,
            actor=actor_for(session, user, frozenset(row.scopes)),
            target=("oauth2_client", client.client_id),
            details={"kind": "oauth", "token_id": row.id, "token_scopes": row.scopes},
            request=request,
        )
    return row


def find_token(
    session: Session, secret: str, hint: str | None = None
) -> tuple[OAuth2Token, TokenKind] | None:
    """The token row an access or refresh token belongs to, and which of the two it is.

    :param hint: a ``token_type_hint``; both kinds are tried when absent.
    """
    hashed = digest(secret)
    kinds = [TokenKind(hint)] if hint in set(TokenKind) else list(TokenKind)
    for kind in kinds:
        column = (
            OAuth2Token.access_token_hash
            if kind is TokenKind.ACCESS
            else OAuth2Token.refresh_token_hash
        )
        row = session.scalars(select(OAuth2Token).where(column == hashed)).first()
        if row is not None:
            return row, kind
    return None


def find_refresh_token(
    session: Session,
    client: OAuth2Client,
    secret: str,
    *,
    request: RequestInfo | None = None,
) -> OAuth2Token | None:
    """The live token pair whose refresh token ``client`` presents.

    An ended refresh token presented again revokes the whole grant and is logged.

    :param request: the HTTP context, for the security log.
    """
    row = session.scalars(
        select(OAuth2Token).where(
            OAuth2Token.refresh_token_hash == digest(secret),
            OAuth2Token.oauth_client_id == client.id,
        )
    ).first()
    if row is None or row.is_refresh_expired():
        return None
    if row.revoked_at is not None:
        ended = revoke_grant(session, row.grant_id)
        record_event(
            session,
            EventTag.AUTH_TOKEN_REVOKE,
            severity=EventSeverity.WARNING,
            actor=client_actor(client),
            target=("oauth2_client", client.client_id),
            details={"kind": "oauth", "reason": "refresh_token_reuse", "revoked": ended},
            request=request,
        )
        return None
    return row


def retire_token(session: Session, token: OAuth2Token) -> None:
    """End a token pair that a refresh has replaced (routine; not logged)."""
    token.revoked_at = token.revoked_at or utcnow()
    session.flush()


def revoke_token(
    session: Session, token: OAuth2Token, *, actor: Actor, request: RequestInfo | None = None
) -> None:
    """Revoke a token pair on its client's request (RFC 7009) and log it.

    :param actor: who revokes: the client.
    :param request: the HTTP context, for the security log.
    """
    if token.revoked_at is not None:
        return
    token.revoked_at = utcnow()
    session.flush()
    record_event(
        session,
        EventTag.AUTH_TOKEN_REVOKE,
        actor=actor,
        target=("oauth2_client", token.client.client_id),
        details={"kind": "oauth", "token_id": token.id},
        request=request,
    )


def revoke_grant(session: Session, grant_id: str) -> int:
    """Revoke every live token descending from one consent; returns how many.

    :param grant_id: the grant shared by a code and the tokens issued from it.
    """
    result = session.execute(
        update(OAuth2Token)
        .where(OAuth2Token.grant_id == grant_id, OAuth2Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def actor_for_token(session: Session, token: OAuth2Token) -> Actor:
    """Who a valid access token acts as; stamps its last use.

    The scopes are those of the token that the client still holds (an admin may have narrowed
    the client since).

    :param token: an access token already checked for expiry and revocation.
    :raises TokenRefused: when its client is revoked or its user disabled.
    """
    client = token.client
    if client.revoked_at is not None:
        raise TokenRefused("the OAuth client of this token has been revoked")
    scopes = frozenset(token.scopes) & frozenset(client.scopes) & SCOPE_VALUES
    now = utcnow()
    if token.last_used_at is None or now - aware(token.last_used_at) > timedelta(minutes=1):
        token.last_used_at = now  # not a write per request
        session.flush()
    user = token.user
    if user is None:
        return client_actor(client, scopes)
    if not user.active:
        raise TokenRefused("the account of this OAuth token is disabled")
    return actor_for(session, user, scopes)


def introspection(token: OAuth2Token, kind: TokenKind, issuer: str) -> dict[str, Any]:
    """The RFC 7662 answer for a token the caller may introspect.

    :param kind: which token of the pair was presented.
    :param issuer: this portal's base URL.
    """
    if kind is TokenKind.REFRESH:
        live = token.revoked_at is None and not token.is_refresh_expired()
        expires = aware(token.refresh_expires_at) if token.refresh_expires_at else None
    else:
        live = not token.is_revoked() and not token.is_expired()
        expires = token.expires_at
    client = token.client
    if not live or client.revoked_at is not None or (token.user and not token.user.active):
        return {"active": False}
    body: dict[str, Any] = {
        "active": True,
        "scope": token.get_scope(),
        "client_id": client.client_id,
        "token_type": token.token_type if kind is TokenKind.ACCESS else kind.value,
        "iat": int(aware(token.issued_at).timestamp()),
        "iss": issuer,
        "sub": str(token.user_id) if token.user_id else f"oauth-client:{client.client_id}",
    }
    if expires is not None:
        body["exp"] = int(expires.timestamp())
    if token.user is not None:
        body["username"] = token.user.username
    return body
