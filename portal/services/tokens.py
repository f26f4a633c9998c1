"""Personal API tokens managed by their owner: which scopes a role may hold, events, listing.

:mod:`portal.services.accounts` mints, hashes and resolves tokens; this module adds the owner's
rules on top: a role only gets the scopes it can use, a token never mints a token with more
scopes than it has itself, lifetimes are bounded, and every creation and revocation is logged.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.errors import Forbidden, Invalid
from portal.models import ApiToken, Role, User
from portal.services import accounts
from portal.services.access import Actor, Permission, Scope, can
from portal.services.events import EventTag, RequestInfo, record_event

__all__ = [
    "DEFAULT_DAYS",
    "EXPIRY_CHOICES",
    "allowed_scopes",
    "create_token",
    "list_tokens",
    "revoke_token",
]

#: Lifetimes offered to owners, in days; a token never lives longer than the longest.
EXPIRY_CHOICES = (7, 30, 90, 365)
DEFAULT_DAYS = 90

_ROLE_SCOPES: dict[Role, tuple[Scope, ...]] = {
    Role.PUBLIC: (),
    Role.MEMBER: (Scope.READ, Scope.READ_RESTRICTED),
    Role.PRODUCER: (Scope.READ, Scope.READ_RESTRICTED, Scope.HARVEST),
    Role.STEWARD: tuple(Scope),
    Role.ADMIN: tuple(Scope),
}


def allowed_scopes(actor: Actor) -> tuple[Scope, ...]:
    """The scopes ``actor`` may put on a new token: those of its role, narrowed to the scopes of
    the token it presents (if any).

    :param actor: the token's future owner.
    """
    scopes = _ROLE_SCOPES[actor.role]
    if actor.scopes is not None:
        scopes = tuple(s for s in scopes if s.value in actor.scopes)
    return scopes


def _require_owner(actor: Actor, user: User) -> None:
    # A token may manage its owner's tokens (within its scopes): judge the role, not the scope.
    if actor.user_id != user.id or not can(
        replace(actor, scopes=None), Permission.TOKEN_OWN_MANAGE
    ):
        raise Forbidden("you may only manage your own API tokens")


def create_token(
    session: Session,
    actor: Actor,
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_in_days: int = DEFAULT_DAYS,
    info: RequestInfo | None = None,
) -> accounts.IssuedToken:
    """Create a token for ``user``, who is ``actor``; the secret is only in the result.

    :param actor: the owner acting, through a browser session or one of their tokens.
    :param user: the owner.
    :param name: a label to recognise the token by.
    :param scopes: the scopes wanted (a subset of :func:`allowed_scopes`).
    :param expires_in_days: the lifetime, at most the longest of ``EXPIRY_CHOICES``.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` is not ``user``, or asks for scopes beyond its role or
        beyond the scopes of the token it presents.
    :raises Invalid: when the name is empty, a scope unknown or the lifetime out of range.
    """
    _require_owner(actor, user)
    wanted = sorted(set(scopes))
    known = {s.value for s in Scope}
    allowed = {s.value for s in allowed_scopes(actor)}
    if set(wanted) <= known and not set(wanted) <= allowed:
        raise Forbidden(
            "a token cannot have scopes beyond your role or the token you present: "
            + ", ".join(sorted(set(wanted) - allowed))
        )
    if not 1 <= expires_in_days <= max(EXPIRY_CHOICES):
        message = f"the lifetime must be between 1 and {max(EXPIRY_CHOICES)} days"
        raise Invalid(
            message, [{"field": "expires_in_days", "code": "out_of_range", "message": message}]
        )
    issued = accounts.issue_token(
        session, user, name=name, scopes=wanted, expires_in=timedelta(days=expires_in_days)
    )
    token = issued.token
    record_event(
        session,
        EventTag.AUTH_TOKEN_CREATE,
        actor=actor,
        target=("api_token", token.id),
        details={
            "token_id": token.id,
            "token_prefix": token.prefix,
            "token_scopes": token.scopes,
            "expires_in_days": expires_in_days,
            "via": "session" if actor.scopes is None else "api_token",
        },
        request=info,
    )
    return issued


def revoke_token(
    session: Session,
    actor: Actor,
    user: User,
    token_id: int,
    *,
    info: RequestInfo | None = None,
) -> ApiToken:
    """Revoke one of ``user``'s tokens (revoking a revoked token changes nothing).

    :param actor: the owner acting.
    :param user: the owner.
    :param token_id: the token's id.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` is not ``user``.
    :raises NotFound: when the token is not the user's.
    """
    _require_owner(actor, user)
    already = session.scalar(
        select(ApiToken.revoked_at).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    token = accounts.revoke_token(session, user, token_id)
    if already is None:
        record_event(
            session,
            EventTag.AUTH_TOKEN_REVOKE,
            actor=actor,
            target=("api_token", token.id),
            details={"token_id": token.id, "token_prefix": token.prefix},
            request=info,
        )
    return token


def list_tokens(session: Session, actor: Actor, user: User) -> list[ApiToken]:
    """``user``'s tokens, newest first, revoked and expired ones included.

    :raises Forbidden: when ``actor`` is not ``user``.
    """
    _require_owner(actor, user)
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )
