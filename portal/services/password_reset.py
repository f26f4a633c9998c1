"""Password reset by e-mailed link: single-use tokens, stored only as sha256, valid for an hour."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.errors import Invalid
from portal.models import PasswordReset, User, utcnow
from portal.services.accounts import set_password
from portal.services.harvest_schedule import aware

__all__ = ["EXPIRY", "IssuedReset", "complete_reset", "find_reset", "request_reset"]

EXPIRY = timedelta(hours=1)


@dataclass(frozen=True)
class IssuedReset:
    user: User
    #: The token for the e-mailed link; never stored.
    token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def request_reset(session: Session, email: str) -> IssuedReset | None:
    """Create a reset token for the active account with ``email``.

    The caller answers the same whether or not an account exists.

    :param session: the unit of work.
    :param email: the address typed in the form.
    :returns: the user and token to e-mail, or ``None`` when there is no such active account.
    """
    address = email.strip().lower()
    if not address:
        return None
    user = session.scalars(select(User).where(User.email == address)).first()
    if user is None or not user.active:
        return None
    token = secrets.token_urlsafe(32)
    session.add(
        PasswordReset(user_id=user.id, token_hash=_digest(token), expires_at=utcnow() + EXPIRY)
    )
    session.flush()
    return IssuedReset(user, token)


def find_reset(session: Session, token: str) -> tuple[PasswordReset, User]:
    """The unused, unexpired reset behind ``token``, and its account.

    :raises Invalid: when the token is unknown, used, expired or its account disabled.
    """
    reset = session.scalars(
        select(PasswordReset).where(PasswordReset.token_hash == _digest(token))
    ).first()
    if reset is None or reset.used_at is not None or aware(reset.expires_at) <= utcnow():
        raise Invalid("this reset link is invalid, already used or expired")
    user = session.get(User, reset.user_id)
    if user is None or not user.active:
        raise Invalid("this reset link is invalid, already used or expired")
    return reset, user


def complete_reset(session: Session, token: str, password: str) -> User:
    """Set a new password through ``token`` and spend it (and every other open token of the user).

    The user's sessions end (:func:`portal.services.accounts.set_password`) and a lockout lifts.

    :raises Invalid: when the token is not usable or the password too short.
    """
    _reset, user = find_reset(session, token)
    set_password(session, user, password)
    now = utcnow()
    session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    session.flush()
    return user
