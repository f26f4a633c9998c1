"""What happens around a sign-in: the security log of each step, and registration checks.

Passwords, codes and tokens never reach these records: ``details`` hold only reasons and steps.
"""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from portal.models import User, utcnow
from portal.services.access import Actor
from portal.services.accounts import LoginRefused, actor_for
from portal.services.events import EventTag, RequestInfo, record_event, record_failure_event
from portal.services.throttle import Limit

__all__ = ["record_rate_limit", "record_refusal", "registration_conflicts", "signed_in"]


def signed_in(
    session: Session,
    user: User,
    *,
    second_factor: str | None,
    info: RequestInfo | None,
    enrolled: bool = False,
) -> Actor:
    """Stamp the sign-in and log it (and the accepted second factor); return the user's actor.

    :param session: the request's unit of work; the events commit with it.
    :param user: who signed in.
    :param second_factor: ``totp`` or ``recovery_code`` when one was checked, else ``None``.
    :param info: the HTTP context.
    :param enrolled: True when the second factor was set up in this very step.
    """
    user.last_login_at = utcnow()
    session.flush()
    actor = actor_for(session, user)
    if second_factor:
        details: dict[str, object] = {"method": second_factor}
        if enrolled:
            details["step"] = "enrolled"
        if second_factor == "recovery_code":
            details["recovery_codes_left"] = len(user.recovery_codes)
        record_event(
            session,
            EventTag.AUTH_2FA_SUCCESS,
            actor=actor,
            target=user,
            details=details,
            request=info,
        )
    record_event(
        session,
        EventTag.AUTH_LOGIN_SUCCESS,
        actor=actor,
        target=user,
        details={"second_factor": second_factor or "none"},
        request=info,
    )
    return actor


def record_refusal(
    bind: Engine, refusal: LoginRefused, *, stage: str, info: RequestInfo | None
) -> None:
    """Log a refused password login in a transaction of its own (the request may roll back).

    :param bind: the engine.
    :param refusal: the error :func:`portal.services.accounts.authenticate` raised.
    :param stage: which form: ``login`` or ``password_change``.
    :param info: the HTTP context.
    """
    locked = refusal.reason == "lockout"
    tag = EventTag.AUTH_LOGIN_LOCKOUT if locked else EventTag.AUTH_LOGIN_FAILURE
    record_failure_event(
        bind,
        tag,
        target=refusal.user,
        details={"reason": refusal.reason, "stage": stage},
        request=info,
    )


def record_rate_limit(bind: Engine, limit: Limit, *, info: RequestInfo | None) -> None:
    """Log that an address reached a throttle (once per time the limit is reached).

    :param bind: the engine.
    :param limit: the throttle reached.
    :param info: the HTTP context (its address is the throttled one).
    """
    record_failure_event(
        bind,
        EventTag.SYSTEM_RATE_LIMIT_HIT,
        details={
            "limit": limit.scope,
            "max_hits": limit.max_hits,
            "window_seconds": int(limit.window.total_seconds()),
        },
        request=info,
    )


def registration_conflicts(session: Session, username: str, email: str) -> list[str]:
    """Which of ``username`` and ``email`` another account already has (``username``, ``email``).

    :param session: any session.
    :param username: the wanted username, normalised (lower case).
    :param email: the address, normalised (lower case).
    """
    taken = []
    if session.scalars(select(User.id).where(User.username == username)).first():
        taken.append("username")
    if session.scalars(select(User.id).where(User.email == email)).first():
        taken.append("email")
    return taken
