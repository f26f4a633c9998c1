"""Demo accounts for ``onedata demo``: a steward, an admin and a producer of Disdukcapil.

Their passwords are random and returned once, for the command to print; only argon2 hashes are
stored. Accounts that already exist are left alone (and not returned), so a second
``onedata demo`` neither prints nor changes a password.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import Organization, Role, User
from portal.services import accounts
from portal.services.access import OPERATOR
from portal.services.events import EventTag, record_event

#: (username, role, display name, OPD name or ``None``)
DEMO_ACCOUNTS = (
    ("walidata", Role.STEWARD, "Walidata Diskominfo (demo)", None),
    ("admin", Role.ADMIN, "Administrator (demo)", None),
    ("produsen-disdukcapil", Role.PRODUCER, "Produsen Data Disdukcapil (demo)", "disdukcapil"),
)


def create_demo_accounts(
    session: Session, organizations: list[Organization]
) -> list[tuple[str, Role, str]]:
    """Create the demo steward, admin and producer that do not exist yet.

    :param session: flushed, not committed.
    :param organizations: the sample OPDs; the producer joins the one named ``disdukcapil``.
    :returns: ``(username, role, password)`` of each account created now.
    :raises LookupError: when the producer's OPD is not among ``organizations``.
    """
    by_name = {org.name: org for org in organizations}
    created = []
    for username, role, display_name, org_name in DEMO_ACCOUNTS:
        if session.scalars(select(User.id).where(User.username == username)).first():
            continue
        orgs = []
        if org_name is not None:
            if org_name not in by_name:
                raise LookupError(f"the demo producer needs the OPD {org_name!r}")
            orgs = [by_name[org_name]]
        password = secrets.token_urlsafe(12)
        user = accounts.create_user(
            session, username=username, password=password, role=role, display_name=display_name
        )
        if orgs:
            accounts.set_role(session, user, role, orgs)
        record_event(
            session,
            EventTag.USER_ACCOUNT_CREATE,
            actor=OPERATOR,
            target=user,
            details={"role": role.value, "organizations": [o.name for o in orgs], "by": "demo"},
        )
        created.append((username, role, password))
    return created
