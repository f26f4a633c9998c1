"""OPD administration for the admin pages: list with counts, create, edit.

:func:`portal.services.organizations.ensure_organization` holds the naming rule; this module
adds who may do it, the difference between creating and editing, and the security log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.errors import Conflict, Forbidden, Invalid, NotFound
from portal.models import Dataset, Organization
from portal.models.accounts import organization_members
from portal.services.access import Actor, Permission, can
from portal.services.events import EventTag, RequestInfo, record_event
from portal.services.organizations import ensure_organization

__all__ = [
    "OrganizationRow",
    "create_organization",
    "get_organization",
    "list_organizations",
    "update_organization",
]


@dataclass(frozen=True)
class OrganizationRow:
    organization: Organization
    datasets: int
    members: int


def _require(actor: Actor) -> None:
    if not can(actor, Permission.ADMIN_ORGANIZATION_MANAGE):
        raise Forbidden("only administrators manage organizations")


def _tag(change: str) -> EventTag:
    # ``admin:organization:<change>`` is proposed for the catalogue; until it is there, an OPD
    # counts as configuration of the portal.
    try:
        return EventTag(f"admin:organization:{change}")
    except ValueError:
        return EventTag.SYSTEM_CONFIG_CHANGE


def _record(
    session: Session, actor: Actor, org: Organization, change: str, info: RequestInfo | None
) -> None:
    record_event(
        session,
        _tag(change),
        actor=actor,
        target=org,
        details={"setting": "organization", "change": change, "name": org.name},
        request=info,
    )


def list_organizations(session: Session, actor: Actor) -> list[OrganizationRow]:
    """Every OPD with its number of datasets (all states) and members.

    :raises Forbidden: when ``actor`` may not manage organizations.
    """
    _require(actor)
    datasets = (
        select(Dataset.organization_id, func.count().label("n"))
        .group_by(Dataset.organization_id)
        .subquery()
    )
    members = (
        select(organization_members.c.organization_id, func.count().label("n"))
        .group_by(organization_members.c.organization_id)
        .subquery()
    )
    rows = session.execute(
        select(Organization, func.coalesce(datasets.c.n, 0), func.coalesce(members.c.n, 0))
        .outerjoin(datasets, datasets.c.organization_id == Organization.id)
        .outerjoin(members, members.c.organization_id == Organization.id)
        .order_by(Organization.title)
    )
    return [OrganizationRow(org, int(d), int(m)) for org, d, m in rows]


def get_organization(session: Session, actor: Actor, name: str) -> Organization:
    """One OPD by name.

    :raises Forbidden: when ``actor`` may not manage organizations.
    :raises NotFound: when there is none.
    """
    _require(actor)
    org = session.scalars(select(Organization).where(Organization.name == name)).first()
    if org is None:
        raise NotFound(f"organization {name!r} not found")
    return org


def _clean(title: str, url: str | None) -> tuple[str, str | None]:
    title = title.strip()
    if not title:
        message = "an organization needs a title"
        raise Invalid(message, [{"field": "title", "code": "required", "message": message}])
    url = (url or "").strip() or None
    if url is not None and not url.startswith(("https://", "http://")):
        message = "the web address must start with https:// or http://"
        raise Invalid(message, [{"field": "url", "code": "invalid", "message": message}])
    return title[:300], url


def create_organization(
    session: Session,
    actor: Actor,
    *,
    name: str,
    title: str,
    description: str = "",
    url: str | None = None,
    info: RequestInfo | None = None,
) -> Organization:
    """Create an OPD.

    :param actor: an administrator.
    :param name: the URL slug (lower-case letters, digits, hyphens).
    :param title: the full name.
    :param description: what the OPD produces.
    :param url: its web site.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` may not manage organizations.
    :raises Conflict: when the name is taken.
    :raises Invalid: when the name, title or URL is unacceptable.
    """
    _require(actor)
    name = name.strip().lower()
    if session.scalars(select(Organization.id).where(Organization.name == name)).first():
        raise Conflict(f"an organization named {name!r} already exists")
    title, url = _clean(title, url)
    org = ensure_organization(
        session, name=name, title=title, description=description.strip(), url=url
    )
    _record(session, actor, org, "create", info)
    return org


def update_organization(
    session: Session,
    actor: Actor,
    org: Organization,
    *,
    title: str,
    description: str = "",
    url: str | None = None,
    info: RequestInfo | None = None,
) -> Organization:
    """Change an OPD's title, description and web site (its name, used in URLs, stays).

    :param actor: an administrator.
    :param org: the OPD.
    :param title: the full name.
    :param description: what the OPD produces.
    :param url: its web site.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` may not manage organizations.
    :raises Invalid: when the title or URL is unacceptable.
    """
    _require(actor)
    title, url = _clean(title, url)
    ensure_organization(
        session, name=org.name, title=title, description=description.strip(), url=url
    )
    _record(session, actor, org, "update", info)
    return org
