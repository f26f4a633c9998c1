"""OAuth 2 clients: registered by admins, the secret shown once and only its hash kept, revoked.

A client is a research tool or a city app that reads the portal's API on a user's behalf
(authorization code with PKCE) or for itself (client credentials). Its scopes are a subset of
:class:`portal.services.access.Scope`; its redirect URIs are matched exactly and must be HTTPS,
except plain HTTP on the loopback address for tools running on the user's own computer
(RFC 8252 §7.3).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.errors import Forbidden, Invalid, NotFound
from portal.models import User, utcnow
from portal.models.oauth import ClientAuthMethod, GrantType, OAuth2Client, OAuth2Token, digest
from portal.services.access import Actor, Permission, Scope
from portal.services.events import EventTag, RequestInfo, record_event

__all__ = [
    "CLIENT_ID_PREFIX",
    "SECRET_PREFIX",
    "RegisteredClient",
    "find_owner",
    "get_client",
    "list_clients",
    "register_client",
    "revoke_client",
]

CLIENT_ID_PREFIX = "odc_"
SECRET_PREFIX = "ods_"  # noqa: S105 - marks our client secrets, for secret scanners
MAX_REDIRECT_URIS = 10
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class RegisteredClient(NamedTuple):
    client: OAuth2Client
    #: The client secret, shown once to the admin and never stored; ``None`` for public clients.
    secret: str | None


def _require_admin(actor: Actor) -> None:
    if not actor.has(Permission.ADMIN_OAUTH_CLIENT_MANAGE):
        raise Forbidden("only an admin may manage OAuth clients")


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, [{"field": field, "code": "invalid", "message": message}])


def _check_redirect_uri(uri: str) -> str:
    uri = uri.strip()
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    if len(uri) > 2000 or not host or parts.fragment or parts.username or parts.password:
        raise _invalid("redirect_uris", f"not an acceptable redirect URI: {uri!r}")
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return uri
    raise _invalid(
        "redirect_uris",
        f"redirect URIs must use https (http only on 127.0.0.1 or localhost): {uri!r}",
    )


def _check_choices(field: str, values: Iterable[str], allowed: Iterable[str]) -> list[str]:
    chosen = sorted({v.strip() for v in values if v.strip()})
    known = set(allowed)
    unknown = [v for v in chosen if v not in known]
    if unknown or not chosen:
        raise _invalid(
            field,
            f"unknown or missing {field}: {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(sorted(known))}",
        )
    return chosen


def find_owner(session: Session, actor: Actor, username: str) -> User:
    """The active account named ``username``, to be made responsible for a client.

    :param username: the owner's login name.
    :raises Forbidden: when ``actor`` is not an admin.
    :raises Invalid: (field ``owner``) when no active account has that name.
    """
    _require_admin(actor)
    wanted = username.strip().lower()
    user = session.scalars(select(User).where(User.username == wanted)).first()
    if user is None or not user.active:
        raise _invalid("owner", f"no active account named {username.strip()!r}")
    return user


def register_client(
    session: Session,
    actor: Actor,
    *,
    name: str,
    redirect_uris: Iterable[str],
    scopes: Iterable[str],
    grant_types: Iterable[str],
    auth_method: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_BASIC,
    owner: User | None = None,
    may_introspect: bool = False,
    request: RequestInfo | None = None,
) -> RegisteredClient:
    """Register a client; only the hash of its secret is stored.

    :param session: the caller's session (flushed, not committed).
    :param actor: who registers it: an admin.
    :param name: shown to users on the consent page.
    :param redirect_uris: where codes may be sent (authorization code clients only).
    :param scopes: the scopes the client may ask for, values of :class:`Scope`.
    :param grant_types: ``authorization_code``, ``client_credentials``, ``refresh_token``.
    :param auth_method: how the client authenticates; ``none`` makes a public client (PKCE only).
    :param owner: the person responsible for the client (default: the registering admin).
    :param may_introspect: a resource server that may introspect every token.
    :param request: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` is not an admin.
    :raises Invalid: when a field is unacceptable.
    """
    _require_admin(actor)
    name = " ".join(name.split())
    if not name or len(name) > 100:
        raise _invalid("name", "give the client a name of at most 100 characters")
    chosen_scopes = _check_choices("scopes", scopes, (s.value for s in Scope))
    grants = _check_choices("grant_types", grant_types, (g.value for g in GrantType))
    code_flow = GrantType.AUTHORIZATION_CODE.value in grants
    if GrantType.REFRESH_TOKEN.value in grants and not code_flow:
        raise _invalid("grant_types", "refresh_token only comes with authorization_code")
    uris = [_check_redirect_uri(u) for u in redirect_uris if u.strip()]
    if code_flow and not uris:
        raise _invalid("redirect_uris", "an authorization code client needs a redirect URI")
    if len(uris) > MAX_REDIRECT_URIS:
        raise _invalid("redirect_uris", f"at most {MAX_REDIRECT_URIS} redirect URIs")
    public = auth_method is ClientAuthMethod.NONE
    if public and (GrantType.CLIENT_CREDENTIALS.value in grants or may_introspect):
        raise _invalid(
            "token_endpoint_auth_method",
            "a public client (no secret) can neither use client credentials nor introspect",
        )
    if owner is None and actor.user_id is not None:
        owner = session.get(User, actor.user_id)
    secret = None if public else SECRET_PREFIX + secrets.token_urlsafe(32)
    client = OAuth2Client(
        client_id=CLIENT_ID_PREFIX + secrets.token_urlsafe(18),
        client_secret_hash=digest(secret) if secret else None,
        name=name,
        redirect_uris=list(dict.fromkeys(uris)),
        grant_types=grants,
        scopes=chosen_scopes,
        token_endpoint_auth_method=auth_method,
        may_introspect=may_introspect,
        owner_id=owner.id if owner else None,
        created_by_id=actor.user_id,
    )
    session.add(client)
    session.flush()
    record_event(
        session,
        EventTag.AUTH_OAUTH_CLIENT_CREATE,
        actor=actor,
        target=("oauth2_client", client.client_id),
        details={
            "client_name": client.name,
            "scopes": chosen_scopes,
            "grant_types": grants,
            "auth_method": auth_method.value,
            "may_introspect": may_introspect,
            "owner_id": client.owner_id,
        },
        request=request,
    )
    return RegisteredClient(client, secret)


def get_client(session: Session, actor: Actor, client_id: str) -> OAuth2Client:
    """One registered client, revoked or not, for the admin pages.

    :raises Forbidden: when ``actor`` is not an admin.
    :raises NotFound: when there is no such client.
    """
    _require_admin(actor)
    client = session.scalars(
        select(OAuth2Client).where(OAuth2Client.client_id == client_id)
    ).first()
    if client is None:
        raise NotFound(f"no OAuth client {client_id!r}")
    return client


def list_clients(session: Session, actor: Actor) -> list[OAuth2Client]:
    """Every registered client, newest first.

    :raises Forbidden: when ``actor`` is not an admin.
    """
    _require_admin(actor)
    return list(session.scalars(select(OAuth2Client).order_by(OAuth2Client.id.desc())))


def revoke_client(
    session: Session, actor: Actor, client_id: str, *, request: RequestInfo | None = None
) -> OAuth2Client:
    """Revoke a client: it can no longer authenticate, and every token it holds stops working.

    :param client_id: the public ``client_id``.
    :raises Forbidden: when ``actor`` is not an admin.
    :raises NotFound: when there is no such client.
    """
    client = get_client(session, actor, client_id)
    if client.revoked_at is not None:
        return client
    now = utcnow()
    client.revoked_at = now
    session.execute(
        update(OAuth2Token)
        .where(OAuth2Token.oauth_client_id == client.id, OAuth2Token.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.flush()
    record_event(
        session,
        EventTag.AUTH_OAUTH_CLIENT_REVOKE,
        actor=actor,
        target=("oauth2_client", client.client_id),
        details={"client_name": client.name},
        request=request,
    )
    return client
