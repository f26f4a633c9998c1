"""Creating and updating OPD records."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.errors import Invalid
from portal.models import Organization

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,99}$")


def ensure_organization(
    session: Session, *, name: str, title: str, description: str = "", url: str | None = None
) -> Organization:
    """Create the OPD called ``name`` or update its title, description and URL.

    :raises Invalid: when ``name`` is not a lower-case slug.
    """
    if not NAME.match(name):
        raise Invalid(f"organization name {name!r} must be lower-case letters, digits and hyphens")
    org = session.scalars(select(Organization).where(Organization.name == name)).first()
    if org is None:
        org = Organization(name=name, title=title, description=description, url=url)
        session.add(org)
    else:
        org.title, org.description, org.url = title, description, url
    session.flush()
    return org
