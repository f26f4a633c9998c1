"""Accounts: passwords (argon2), lockout, users for operators, API tokens, the actor of a user."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.errors import Conflict, Forbidden, Invalid, NotFound
from portal.models import (
    AccessRequest,
    ApiToken,
    Organization,
    RequestStatus,
    Role,
    User,
    utcnow,
)
from portal.services.access import Actor, Scope
from portal.services.harvest_schedule import aware

HASHER = PasswordHasher()
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,79}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "od_"  # noqa: S105 - marks our tokens, for secret scanners
#: Failed logins before a temporary lockout, and how long it lasts.
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
#: A dummy hash, verified when the user does not exist so timing does not reveal who exists.
_DUMMY_HASH = HASHER.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """argon2id hash of ``password``.

    :raises Invalid: when the password is shorter than ``MIN_PASSWORD``.
    """
    if len(password) < MIN_PASSWORD:
        raise Invalid(
            f"the password must have at least {MIN_PASSWORD} characters",
            [
                {
                    "field": "password",
                    "code": "too_short",
                    "message": f"at least {MIN_PASSWORD} characters",
                }
            ],
        )
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-time check of ``password`` against an argon2 hash (``None`` never matches)."""
    try:
        return HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def create_user(
    session: Session,
    *,
    username: str,
    password: str | None,
    email: str | None = None,
    role: Role = Role.MEMBER,
    display_name: str = "",
) -> User:
    """Create an account.

    :raises Invalid: when the username or password is unacceptable.
    :raises Conflict: when the username or e-mail is taken.
    """
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise Invalid(
            "the username must be 3-80 lower-case letters, digits, dots, hyphens or underscores",
            [{"field": "username", "code": "invalid", "message": "invalid username"}],
        )
    email = email.strip().lower() if email else None
    if session.scalars(select(User.id).where(User.username == username)).first():
        raise Conflict(f"the username {username!r} is taken")
    if email and session.scalars(select(User.id).where(User.email == email)).first():
        raise Conflict("an account with this e-mail address already exists")
    user = User(
        username=username,
        email=email,
        role=role,
        display_name=display_name or username,
        password_hash=hash_password(password) if password is not None else None,
        recovery_codes=[],
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, username: str) -> User:
    """:raises NotFound: when there is no such user."""
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


class LoginRefused(Forbidden):
    """Wrong credentials, a disabled or a locked account; the message says only what may be told."""

    code = "login_refused"

    def __init__(self, message: str, reason: str, user: User | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.user = user


def authenticate(session: Session, username: str, password: str) -> User:
    """Check a password login, counting failures and locking the account after too many.

    The caller commits even when this raises, so that failures are counted.

    :raises LoginRefused: with ``reason`` one of ``unknown``, ``password``, ``locked``,
        ``disabled``; the message never says whether the account exists.
    """
    generic = "wrong username or password"
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    now = utcnow()
    if user is None:
        verify_password(None, password)  # same work as for a real account
        raise LoginRefused(generic, "unknown")
    if user.locked_until is not None and aware(user.locked_until) > now:
        raise LoginRefused(
            "too many failed attempts: this account is locked for a few minutes", "locked", user
        )
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            session.flush()
            raise LoginRefused(
                "too many failed attempts: this account is locked for a few minutes",
                "lockout",
                user,
            )
        session.flush()
        raise LoginRefused(generic, "password", user)
    if not user.active:
        raise LoginRefused(generic, "disabled", user)
    user.failed_logins = 0
    user.locked_until = None
    if HASHER.check_needs_rehash(user.password_hash or ""):
        user.password_hash = HASHER.hash(password)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Change a password and end the user's other sessions.

    :raises Invalid: when the password is too short.
    """
    user.password_hash = hash_password(password)
    user.session_version += 1
    user.failed_logins = 0
    user.locked_until = None
    session.flush()


def set_role(session: Session, user: User, role: Role, organizations: list[Organization]) -> None:
    """Give ``user`` a role and, for producers, their OPDs.

    :raises Invalid: when a producer is given no OPD.
    """
    if role is Role.PRODUCER and not organizations:
        raise Invalid("a producer needs at least one OPD (organization)")
    user.role = role
    user.organizations = list(organizations)
    user.session_version += 1  # a role change takes effect at once
    session.flush()


def disable_user(session: Session, user: User) -> None:
    """Disable an account: it cannot sign in, its sessions end and its tokens stop working."""
    user.active = False
    user.session_version += 1
    now = utcnow()
    for token in user.tokens:
        if token.revoked_at is None:
            token.revoked_at = now
    session.flush()


def actor_for(session: Session, user: User, scopes: frozenset[str] | None = None) -> Actor:
    """The :class:`Actor` a signed-in ``user`` acts as (their OPDs and current grants).

    :param scopes: a token's or OAuth client's scopes; ``None`` for a browser session.
    """
    now = utcnow()
    grants = frozenset(
        dataset_id
        for dataset_id, expires in session.execute(
            select(AccessRequest.dataset_id, AccessRequest.expires_at).where(
                AccessRequest.user_id == user.id, AccessRequest.status == RequestStatus.GRANTED
            )
        )
        if expires is None or aware(expires) > now
    )
    orgs = (
        frozenset(o.id for o in user.organizations) if user.role is Role.PRODUCER else frozenset()
    )
    return Actor(
        id=str(user.id),
        role=user.role,
        org_ids=orgs,
        grants=grants,
        scopes=scopes,
        user_id=user.id,
    )


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    #: The secret, shown once to its owner and never stored.
    secret: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def issue_token(
    session: Session,
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_in: timedelta | None = timedelta(days=90),
) -> IssuedToken:
    """Create an API token for ``user``; only its hash is stored.

    :raises Invalid: when a scope is unknown or the name is empty.
    """
    unknown = sorted(set(scopes) - {s.value for s in Scope})
    if unknown or not scopes:
        raise Invalid(
            f"unknown or missing scopes: {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(s.value for s in Scope)}"
        )
    if not name.strip():
        raise Invalid("give the token a name, to recognise it later")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name.strip()[:100],
        prefix=secret[:10],
        token_hash=_digest(secret),
        scopes=sorted(set(scopes)),
        expires_at=utcnow() + expires_in if expires_in else None,
    )
    session.add(token)
    session.flush()
    return IssuedToken(token, secret)


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s tokens.

    :raises NotFound: when the token is not theirs.
    """
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("no such token")
    token.revoked_at = token.revoked_at or utcnow()
    session.flush()
    return token


class TokenRefused(Forbidden):
    status = 401
    code = "invalid_token"


def resolve_token(session: Session, secret: str) -> tuple[User, ApiToken]:
    """The user and token behind a presented API token; stamps its last use.

    :raises TokenRefused: when the token is unknown, revoked, expired or its user disabled.
    """
    token = session.scalars(select(ApiToken).where(ApiToken.token_hash == _digest(secret))).first()
    now = utcnow()
    if token is None or token.revoked_at is not None:
        raise TokenRefused("the API token is not valid (unknown or revoked)")
    if token.expires_at is not None and aware(token.expires_at) <= now:
        raise TokenRefused("the API token has expired; create a new one")
    if not token.user.active:
        raise TokenRefused("the API token's account is disabled")
    last = token.last_used_at
    if last is None or now - aware(last) > timedelta(minutes=1):  # not a write per request
        token.last_used_at = now
    session.flush()
    return token.user, token


__all__ = [
    "IssuedToken",
    "LoginRefused",
    "TokenRefused",
    "actor_for",
    "authenticate",
    "create_user",
    "disable_user",
    "get_user",
    "hash_password",
    "issue_token",
    "resolve_token",
    "revoke_token",
    "set_password",
    "set_role",
    "verify_password",
]
