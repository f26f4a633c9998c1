"""Who is making this request: an API token, an OAuth bearer token, a browser session or nobody.

Tokens are accepted as ``Authorization: Bearer <t>`` and the way CKAN clients send them
(raw ``Authorization: <t>`` and ``X-CKAN-API-Key: <t>``). A token that is presented but not
valid is refused with 401 rather than silently treated as anonymous.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Flask, g, request, session
from sqlalchemy.orm import Session

from portal.db import get_session
from portal.models import User
from portal.services import accounts
from portal.services.access import ANONYMOUS, Actor
from portal.services.events import RequestInfo

#: Extra resolvers for bearer tokens that are not personal API tokens (the OAuth 2 provider).
#: Each returns an Actor, ``None`` when the token is not its kind, or raises TokenRefused.
TokenResolver = Callable[[Session, str], Actor | None]
SESSION_USER = "uid"
SESSION_VERSION = "uver"
SESSION_2FA = "mfa"


def presented_token() -> str | None:
    """The token in the request's headers, if any."""
    header = request.headers.get("Authorization", "").strip()
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    if header and " " not in header:  # CKAN clients send the raw token
        return header
    return request.headers.get("X-CKAN-API-Key", "").strip() or None


def _resolve(app_resolvers: list[TokenResolver]) -> tuple[Actor, User | None]:
    db = get_session()
    token = presented_token()
    if token:
        if token.startswith(accounts.TOKEN_PREFIX):
            user, api_token = accounts.resolve_token(db, token)
            return accounts.actor_for(db, user, frozenset(api_token.scopes)), user
        for resolver in app_resolvers:
            actor = resolver(db, token)
            if actor is not None:
                return actor, None
        raise accounts.TokenRefused("the bearer token is not valid")
    user_id = session.get(SESSION_USER)
    if user_id is None:
        return ANONYMOUS, None
    signed_in = db.get(User, user_id)
    if (
        signed_in is None
        or not signed_in.active
        or session.get(SESSION_VERSION) != signed_in.session_version
        or (signed_in.needs_two_factor and not session.get(SESSION_2FA))
    ):
        session.clear()
        return ANONYMOUS, None
    return accounts.actor_for(db, signed_in), signed_in


def current_actor() -> Actor:
    """The actor of this request, resolved once.

    :raises portal.services.accounts.TokenRefused: when a presented token is not valid.
    """
    if "actor" not in g:
        from flask import current_app

        g.actor, g.user = _resolve(current_app.extensions.get("onedata.token_resolvers", []))
    actor: Actor = g.actor
    return actor


def current_user() -> User | None:
    """The signed-in user (a browser session or a personal token), if any."""
    current_actor()
    user: User | None = g.get("user")
    return user


def login(user: User, *, two_factor_done: bool) -> None:
    """Start a browser session for ``user`` (a new session, against fixation)."""
    session.clear()
    session[SESSION_USER] = user.id
    session[SESSION_VERSION] = user.session_version
    session[SESSION_2FA] = two_factor_done
    session.permanent = True
    g.pop("actor", None)


def logout() -> None:
    session.clear()
    g.pop("actor", None)
    g.pop("user", None)


def init_app(app: Flask) -> None:
    app.extensions.setdefault("onedata.token_resolvers", [])

    @app.context_processor
    def identity() -> dict[str, object]:
        try:
            return {"actor": current_actor(), "user": current_user()}
        except accounts.TokenRefused:
            return {"actor": ANONYMOUS, "user": None}


def request_info(status: int | None = None) -> RequestInfo:
    """The HTTP context of this request, for :func:`portal.services.events.record_event`."""
    if "request_id" not in g:
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
    return RequestInfo(
        ip=request.remote_addr,
        user_agent=request.user_agent.string[:300] if request.user_agent else None,
        request_id=g.request_id,
        method=request.method,
        path=request.path,
        status=status,
    )
