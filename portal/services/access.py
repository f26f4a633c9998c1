"""Who may see what. Every view, API and download asks this module.

This is the first cut for the foundation: anonymous visitors and the operator's CLI. Roles,
OPD membership, grants and tokens arrive with the access-control issue and extend
:class:`Actor` and :func:`can` without changing their callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, and_

from portal.models import AccessLevel, Dataset, DatasetState


class Role(StrEnum):
    PUBLIC = "public"
    MEMBER = "member"
    PRODUCER = "producer"
    STEWARD = "steward"
    ADMIN = "admin"


class Permission(StrEnum):
    """``<scope>:<resource>:<action>``, kept in alphabetical order."""

    CATALOG_DATASET_DOWNLOAD = "catalog:dataset:download"
    CATALOG_DATASET_VIEW = "catalog:dataset:view"
    REVIEW_VERSION_APPROVE = "review:version:approve"


@dataclass(frozen=True)
class Actor:
    """Whoever acts: a visitor, a user or the operator's command line."""

    id: str | None = None
    role: Role = Role.PUBLIC

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.STEWARD, Role.ADMIN)


ANONYMOUS = Actor()
#: The operator at the server's console (``onedata`` commands).
OPERATOR = Actor(id="cli", role=Role.ADMIN)


def visible_datasets(actor: Actor) -> ColumnElement[bool]:
    """A SQL condition selecting the datasets ``actor`` may see in lists, counts and search.

    :param actor: who is looking.
    """
    if actor.is_staff:
        return Dataset.id.is_not(None)
    return and_(
        Dataset.state == DatasetState.PUBLISHED,
        Dataset.access_level != AccessLevel.INTERNAL,
    )


def can(actor: Actor, permission: Permission, dataset: Dataset) -> bool:
    """Whether ``actor`` may do ``permission`` to ``dataset``.

    :param actor: who acts.
    :param permission: what they want to do.
    :param dataset: the object.
    """
    if actor.is_staff:
        return True
    if permission is Permission.CATALOG_DATASET_VIEW:
        return (
            dataset.state is DatasetState.PUBLISHED
            and dataset.access_level is not AccessLevel.INTERNAL
        )
    if permission is Permission.CATALOG_DATASET_DOWNLOAD:
        return (
            dataset.state is DatasetState.PUBLISHED and dataset.access_level is AccessLevel.PUBLIC
        )
    return False
