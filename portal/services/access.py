"""Who may do what, decided in one place.

Every view, API, CKAN action, export, feed, search query, facet count and download asks this
module: :func:`visible_datasets` for anything that lists or counts datasets, :func:`can` for
anything done to one object. Roles, OPD membership, access grants and token scopes all meet
here, so a new endpoint cannot invent its own rule.

Dataset access levels (klasifikasi akses):

- ``public``: everyone sees the metadata and the data once published;
- ``restricted`` (terbatas): everyone sees the metadata once published; the data only people
  with a grant, the owning OPD and stewards;
- ``internal`` (dikecualikan): never outside the owning OPD and stewards.

Unpublished datasets (draft, in review, withdrawn) are seen only by the owning OPD and stewards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, false, or_, true

from portal.models import AccessLevel, Dataset, DatasetState, Role

__all__ = [
    "ANONYMOUS",
    "OPERATOR",
    "Actor",
    "Permission",
    "Role",
    "Scope",
    "can",
    "visible_datasets",
]


class Permission(StrEnum):
    """``<scope>:<resource>:<action>``, kept in alphabetical order."""

    ACCESS_REQUEST_CREATE = "access:request:create"
    ACCESS_REQUEST_DECIDE = "access:request:decide"
    ADMIN_OAUTH_CLIENT_MANAGE = "admin:oauth_client:manage"
    ADMIN_ORGANIZATION_MANAGE = "admin:organization:manage"
    ADMIN_USER_MANAGE = "admin:user:manage"
    CATALOG_DATASET_DOWNLOAD = "catalog:dataset:download"
    CATALOG_DATASET_EDIT = "catalog:dataset:edit"
    CATALOG_DATASET_VIEW = "catalog:dataset:view"
    HARVEST_SOURCE_MANAGE = "harvest:source:manage"
    HARVEST_SOURCE_VIEW_ERRORS = "harvest:source:view_errors"
    REVIEW_DATASET_PUBLISH = "review:dataset:publish"
    REVIEW_DATASET_SUBMIT = "review:dataset:submit"
    REVIEW_DATASET_WITHDRAW = "review:dataset:withdraw"
    REVIEW_VERSION_APPROVE = "review:version:approve"
    SECURITY_LOG_READ = "security:log:read"
    SECURITY_LOG_VERIFY = "security:log:verify"
    TOKEN_OWN_MANAGE = "token:own:manage"  # noqa: S105 - a permission name


class Scope(StrEnum):
    """What an API token or OAuth client may do on its owner's behalf."""

    READ = "read"  # public data, as the owner sees it without grants
    READ_RESTRICTED = "read-restricted"  # also data the owner may read through grants or OPD
    HARVEST = "harvest"  # the owner's OPD harvest sources
    STEWARD = "steward"  # review, publish, withdraw, grant access


#: The scope a token needs for each permission (permissions absent here need a browser session).
SCOPE_OF: dict[Permission, Scope] = {
    Permission.CATALOG_DATASET_VIEW: Scope.READ,
    Permission.CATALOG_DATASET_DOWNLOAD: Scope.READ,
    Permission.ACCESS_REQUEST_CREATE: Scope.READ,
    Permission.HARVEST_SOURCE_MANAGE: Scope.HARVEST,
    Permission.HARVEST_SOURCE_VIEW_ERRORS: Scope.HARVEST,
    Permission.REVIEW_DATASET_SUBMIT: Scope.HARVEST,
    Permission.CATALOG_DATASET_EDIT: Scope.STEWARD,
    Permission.REVIEW_DATASET_PUBLISH: Scope.STEWARD,
    Permission.REVIEW_DATASET_WITHDRAW: Scope.STEWARD,
    Permission.REVIEW_VERSION_APPROVE: Scope.STEWARD,
    Permission.ACCESS_REQUEST_DECIDE: Scope.STEWARD,
}

#: Permissions each role has regardless of the object (object rules come on top, in ``can``).
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.PUBLIC: frozenset({Permission.CATALOG_DATASET_VIEW, Permission.CATALOG_DATASET_DOWNLOAD}),
    Role.MEMBER: frozenset(
        {
            Permission.CATALOG_DATASET_VIEW,
            Permission.CATALOG_DATASET_DOWNLOAD,
            Permission.ACCESS_REQUEST_CREATE,
            Permission.TOKEN_OWN_MANAGE,
        }
    ),
}
ROLE_PERMISSIONS[Role.PRODUCER] = ROLE_PERMISSIONS[Role.MEMBER] | {
    Permission.HARVEST_SOURCE_MANAGE,
    Permission.HARVEST_SOURCE_VIEW_ERRORS,
    Permission.REVIEW_DATASET_SUBMIT,
}
ROLE_PERMISSIONS[Role.STEWARD] = ROLE_PERMISSIONS[Role.PRODUCER] | {
    Permission.ACCESS_REQUEST_DECIDE,
    Permission.CATALOG_DATASET_EDIT,
    Permission.REVIEW_DATASET_PUBLISH,
    Permission.REVIEW_DATASET_WITHDRAW,
    Permission.REVIEW_VERSION_APPROVE,
    Permission.SECURITY_LOG_READ,
}
ROLE_PERMISSIONS[Role.ADMIN] = frozenset(Permission)


@dataclass(frozen=True)
class Actor:
    """Whoever acts: a visitor, a user (through a session, token or OAuth client), the CLI."""

    id: str | None = None
    role: Role = Role.PUBLIC
    #: OPDs the actor produces data for.
    org_ids: frozenset[str] = field(default_factory=frozenset)
    #: Datasets the actor holds a current access grant for.
    grants: frozenset[str] = field(default_factory=frozenset)
    #: ``None`` for a browser session or the CLI; a token's or OAuth client's scopes otherwise.
    scopes: frozenset[str] | None = None
    #: The internal user id (``None`` for anonymous visitors and the CLI).
    user_id: int | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.role is not Role.PUBLIC

    @property
    def is_staff(self) -> bool:
        """Stewards and admins, acting with their full rights (not through a narrow token)."""
        return self.role in (Role.STEWARD, Role.ADMIN) and self._scoped(Scope.STEWARD)

    def _scoped(self, scope: Scope) -> bool:
        return self.scopes is None or scope.value in self.scopes

    @property
    def sees_restricted(self) -> bool:
        """Whether grants and OPD membership count (a ``read``-only token ignores them)."""
        return self.scopes is None or Scope.READ_RESTRICTED.value in self.scopes

    def has(self, permission: Permission) -> bool:
        """The role has ``permission`` and, for tokens, the scope allows it."""
        if permission not in ROLE_PERMISSIONS[self.role]:
            return False
        if self.scopes is None:
            return True
        needed = SCOPE_OF.get(permission)
        return needed is not None and needed.value in self.scopes


ANONYMOUS = Actor()
#: The operator at the server's console (``onedata`` commands).
OPERATOR = Actor(id="cli", role=Role.ADMIN)


def _owns(actor: Actor, dataset: Dataset) -> bool:
    return actor.sees_restricted and dataset.organization_id in actor.org_ids


def _open_to_anyone(permission: Permission, dataset: Dataset) -> bool:
    """What an anonymous visitor may do to ``dataset``: see it, or download it if public."""
    if dataset.state is not DatasetState.PUBLISHED:
        return False
    if permission is Permission.CATALOG_DATASET_VIEW:
        return dataset.access_level is not AccessLevel.INTERNAL
    if permission is Permission.CATALOG_DATASET_DOWNLOAD:
        return dataset.access_level is AccessLevel.PUBLIC
    return False


def visible_datasets(actor: Actor) -> ColumnElement[bool]:
    """A SQL condition selecting the datasets ``actor`` may see in lists, counts and search.

    Lists follow :func:`can` with ``CATALOG_DATASET_VIEW``: a token without the ``read`` scope
    lists what anyone sees.

    :param actor: who is looking.
    """
    if actor.is_staff and actor.has(Permission.CATALOG_DATASET_VIEW):
        return true()
    public = and_(
        Dataset.state == DatasetState.PUBLISHED, Dataset.access_level != AccessLevel.INTERNAL
    )
    if actor.sees_restricted and actor.org_ids:
        return or_(public, Dataset.organization_id.in_(sorted(actor.org_ids)))
    return public


def readable_data(actor: Actor) -> ColumnElement[bool]:
    """A SQL condition selecting the datasets whose *data* ``actor`` may read (rows, exports)."""
    if actor.is_staff:
        return true()
    conditions = [
        and_(Dataset.state == DatasetState.PUBLISHED, Dataset.access_level == AccessLevel.PUBLIC)
    ]
    if actor.sees_restricted and actor.grants:
        conditions.append(
            and_(
                Dataset.state == DatasetState.PUBLISHED,
                Dataset.access_level == AccessLevel.RESTRICTED,
                Dataset.id.in_(sorted(actor.grants)),
            )
        )
    if actor.sees_restricted and actor.org_ids:
        conditions.append(Dataset.organization_id.in_(sorted(actor.org_ids)))
    return or_(*conditions) if conditions else false()


def can(
    actor: Actor,
    permission: Permission,
    dataset: Dataset | None = None,
    *,
    org_id: str | None = None,
) -> bool:
    """Whether ``actor`` may do ``permission``, to ``dataset`` or within OPD ``org_id``.

    :param actor: who acts.
    :param permission: what they want to do.
    :param dataset: the object, for dataset permissions.
    :param org_id: the OPD, for OPD-wide permissions (harvest sources).
    """
    if dataset is not None and _open_to_anyone(permission, dataset):
        return True  # a narrow token is never less than no token at all
    if not actor.has(permission):
        return False
    if actor.is_staff:
        return True
    if org_id is not None:
        return actor.sees_restricted and org_id in actor.org_ids
    if dataset is None:
        return True
    published = dataset.state is DatasetState.PUBLISHED
    level = dataset.access_level
    if permission is Permission.CATALOG_DATASET_VIEW:
        return (published and level is not AccessLevel.INTERNAL) or _owns(actor, dataset)
    if permission is Permission.CATALOG_DATASET_DOWNLOAD:
        if _owns(actor, dataset):
            return True
        if not published:
            return False
        if level is AccessLevel.PUBLIC:
            return True
        return (
            level is AccessLevel.RESTRICTED and actor.sees_restricted and dataset.id in actor.grants
        )
    if permission is Permission.ACCESS_REQUEST_CREATE:
        return published and level is AccessLevel.RESTRICTED and dataset.id not in actor.grants
    if permission in (Permission.HARVEST_SOURCE_MANAGE, Permission.REVIEW_DATASET_SUBMIT):
        return _owns(actor, dataset)
    return False
