"""User administration: find users, create them, change their role and OPDs, disable and
enable them.

The account rules (usernames, password hashing, session ends) live in
:mod:`portal.services.accounts`; this module adds who may do it and the security log.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from portal.errors import Forbidden, Invalid, NotFound
from portal.models import Organization, Role, User
from portal.services import accounts
from portal.services.access import Actor, Permission, can
from portal.services.events import EventTag, RequestInfo, record_event

__all__ = [
    "ROLE_RANK",
    "NewUser",
    "UserPage",
    "change_role",
    "count_by_role",
    "create_user",
    "disable_user",
    "enable_user",
    "get_user",
    "list_users",
    "organizations_by_id",
]

#: Trust order of the roles: moving up is a grant, moving down a revocation.
ROLE_RANK = {role: rank for rank, role in enumerate(Role)}


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class NewUser:
    user: User
    #: The generated password when none was given: shown once, never stored.
    generated_password: str | None


def _require(actor: Actor) -> None:
    if not can(actor, Permission.ADMIN_USER_MANAGE):
        raise Forbidden("only administrators manage users")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_users(
    session: Session,
    actor: Actor,
    *,
    role: Role | None = None,
    organization_id: str | None = None,
    q: str = "",
    page: int = 1,
    page_size: int = 50,
) -> UserPage:
    """Users matching the filters, by username.

    :param role: only users with this role.
    :param organization_id: only members of this OPD.
    :param q: part of the username, e-mail address or display name.
    :param page: 1-based page number.
    :param page_size: users per page.
    :raises Forbidden: when ``actor`` may not manage users.
    """
    _require(actor)
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    if organization_id:
        query = query.where(User.organizations.any(Organization.id == organization_id))
    text = q.strip().lower()[:100]
    if text:
        pattern = f"%{_escape_like(text)}%"
        query = query.where(
            or_(
                User.username.like(pattern, escape="\\"),
                func.lower(User.email).like(pattern, escape="\\"),
                func.lower(User.display_name).like(pattern, escape="\\"),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    users = session.scalars(
        query.options(selectinload(User.organizations))
        .order_by(User.username)
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return UserPage(list(users), total, page, page_size)


def count_by_role(session: Session, actor: Actor) -> dict[Role, int]:
    """How many active accounts each role has (zero included).

    :raises Forbidden: when ``actor`` may not manage users.
    """
    _require(actor)
    counts = dict.fromkeys(role for role in Role if role is not Role.PUBLIC)
    rows = session.execute(
        select(User.role, func.count()).where(User.active.is_(True)).group_by(User.role)
    )
    found = {role: int(n) for role, n in rows}
    return {role: found.get(role, 0) for role in counts}


def get_user(session: Session, actor: Actor, user_id: int) -> User:
    """One user, for the admin pages.

    :raises Forbidden: when ``actor`` may not manage users.
    :raises NotFound: when there is no such user.
    """
    _require(actor)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def organizations_by_id(session: Session, ids: list[str]) -> list[Organization]:
    """The OPDs with these ids, in title order.

    :raises Invalid: when an id names no OPD.
    """
    wanted = set(ids)
    found = list(
        session.scalars(
            select(Organization).where(Organization.id.in_(wanted)).order_by(Organization.title)
        )
    )
    if len(found) != len(wanted):
        raise Invalid("unknown organization")
    return found


def _check_organizations(role: Role, organizations: list[Organization]) -> None:
    if role is Role.PRODUCER and not organizations:
        message = "a producer needs at least one OPD (organization)"
        raise Invalid(message, [{"field": "organizations", "code": "required", "message": message}])


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    email: str | None,
    display_name: str = "",
    role: Role = Role.MEMBER,
    organizations: list[Organization] | None = None,
    password: str | None = None,
    info: RequestInfo | None = None,
) -> NewUser:
    """Create an account; without a password, a random one is generated and returned once.

    :param actor: an administrator.
    :param username: the new login name.
    :param email: the e-mail address, optional.
    :param display_name: the name shown; defaults to the username.
    :param role: the initial role.
    :param organizations: the OPDs (required for producers).
    :param password: the initial password, or ``None`` to generate one.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` may not manage users.
    :raises Invalid: when the username or password is unacceptable, or a producer has no OPD.
    :raises Conflict: when the username or e-mail is taken.
    """
    _require(actor)
    orgs = list(organizations or [])
    _check_organizations(role, orgs)
    generated = None if password else secrets.token_urlsafe(15)
    user = accounts.create_user(
        session,
        username=username,
        password=password or generated,
        email=email or None,
        role=role,
        display_name=display_name.strip(),
    )
    if orgs:
        user.organizations = orgs
        session.flush()
    record_event(
        session,
        EventTag.USER_ACCOUNT_CREATE,
        actor=actor,
        target=user,
        details={
            "role": role.value,
            "organizations": [o.name for o in orgs],
            "by": "admin",
        },
        request=info,
    )
    return NewUser(user, generated)


def change_role(
    session: Session,
    actor: Actor,
    user: User,
    role: Role,
    organizations: list[Organization],
    *,
    info: RequestInfo | None = None,
) -> None:
    """Give ``user`` a role and OPD membership; logs one grant or revocation per change.

    The user's sessions end, so the change takes effect at once.

    :param actor: an administrator.
    :param user: whose role changes.
    :param role: the new role.
    :param organizations: the OPDs the user belongs to afterwards.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` may not manage users, or changes their own role.
    :raises Invalid: when a producer is given no OPD.
    """
    _require(actor)
    if actor.user_id is not None and actor.user_id == user.id and role is not user.role:
        raise Forbidden("you cannot change your own role; ask another administrator")
    _check_organizations(role, organizations)
    old_role = user.role
    old_orgs = {o.id: o.name for o in user.organizations}
    new_orgs = {o.id: o.name for o in organizations}
    accounts.set_role(session, user, role, organizations)
    if role is not old_role:
        up = ROLE_RANK[role] > ROLE_RANK[old_role]
        record_event(
            session,
            EventTag.AUTHZ_ROLE_GRANT if up else EventTag.AUTHZ_ROLE_REVOKE,
            actor=actor,
            target=user,
            details={"role_from": old_role.value, "role_to": role.value},
            request=info,
        )
    added = sorted(name for oid, name in new_orgs.items() if oid not in old_orgs)
    removed = sorted(name for oid, name in old_orgs.items() if oid not in new_orgs)
    if added:
        record_event(
            session,
            EventTag.AUTHZ_ROLE_GRANT,
            actor=actor,
            target=user,
            details={"organizations_added": added, "role": role.value},
            request=info,
        )
    if removed:
        record_event(
            session,
            EventTag.AUTHZ_ROLE_REVOKE,
            actor=actor,
            target=user,
            details={"organizations_removed": removed, "role": role.value},
            request=info,
        )


def disable_user(
    session: Session, actor: Actor, user: User, *, info: RequestInfo | None = None
) -> None:
    """Disable an account: no sign-in, sessions end, tokens revoked.

    :param actor: an administrator.
    :param user: the account to disable.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` may not manage users, or disables their own account.
    """
    _require(actor)
    if actor.user_id is not None and actor.user_id == user.id:
        raise Forbidden("you cannot disable your own account")
    if not user.active:
        return
    revoked = sum(1 for t in user.tokens if t.revoked_at is None)
    accounts.disable_user(session, user)
    record_event(
        session,
        EventTag.USER_ACCOUNT_DISABLE,
        actor=actor,
        target=user,
        details={"revoked_count": revoked},
        request=info,
    )


def enable_user(
    session: Session, actor: Actor, user: User, *, info: RequestInfo | None = None
) -> None:
    """Let a disabled account sign in again, with a clean lockout counter.

    Its API tokens and OAuth tokens revoked at the disabling stay revoked: the user makes new
    ones. An account that is already active is left as it is (no event).

    :param actor: an administrator.
    :param user: the account to enable.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` may not manage users.
    """
    _require(actor)
    if user.active:
        return
    # failures counted before the account was disabled must not lock it at its next sign-in
    was_locked = user.locked_until is not None or user.failed_logins > 0
    user.active = True
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    record_event(
        session,
        EventTag.USER_ACCOUNT_ENABLE,
        actor=actor,
        target=user,
        details={"lockout_cleared": was_locked},
        request=info,
    )
