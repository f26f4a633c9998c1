"""Reading the catalog: search, dataset pages, organizations. Always through the access rules."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from portal.errors import NotFound
from portal.models import Dataset, Organization, Resource, Tag, Version, VersionStatus
from portal.services.access import Actor, Permission, can, visible_datasets


@dataclass(frozen=True)
class SearchResult:
    datasets: list[Dataset]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def search_datasets(
    session: Session,
    actor: Actor,
    *,
    q: str = "",
    organization: str | None = None,
    tag: str | None = None,
    page: int = 1,
    page_size: int = 20,
) -> SearchResult:
    """Datasets ``actor`` may see that match ``q`` (every word, in title, description or tags).

    :param q: free text; words are matched case-insensitively.
    :param organization: an OPD name to filter on.
    :param tag: a tag name to filter on.
    :param page: 1-based page number.
    :param page_size: datasets per page.
    """
    query = select(Dataset).where(visible_datasets(actor))
    for word in q.split()[:10]:
        pattern = f"%{_escape_like(word.lower())}%"
        query = query.where(
            or_(
                func.lower(Dataset.title).like(pattern, escape="\\"),
                func.lower(Dataset.description).like(pattern, escape="\\"),
                Dataset.tags.any(Tag.name.like(pattern, escape="\\")),
            )
        )
    if organization:
        query = query.join(Organization).where(Organization.name == organization)
    if tag:
        query = query.where(Dataset.tags.any(Tag.name == tag.lower()))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    rows = session.scalars(
        query.options(selectinload(Dataset.organization), selectinload(Dataset.tags))
        .order_by(Dataset.published_at.desc(), Dataset.title)
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return SearchResult(list(rows), total, page, page_size)


def get_dataset(session: Session, actor: Actor, name: str) -> Dataset:
    """The dataset called ``name`` if ``actor`` may see it.

    :raises NotFound: when it does not exist or is hidden from ``actor`` (same answer, no leak).
    """
    dataset = session.scalars(
        select(Dataset)
        .where(Dataset.name == name)
        .options(selectinload(Dataset.resources).selectinload(Resource.versions))
    ).first()
    if dataset is None or not can(actor, Permission.CATALOG_DATASET_VIEW, dataset):
        raise NotFound(f"dataset {name!r} not found")
    return dataset


def get_resource(session: Session, actor: Actor, dataset_name: str, resource_id: str) -> Resource:
    """A resource of a visible dataset.

    :raises NotFound: when the dataset or the resource is missing or hidden.
    """
    dataset = get_dataset(session, actor, dataset_name)
    for resource in dataset.resources:
        if resource.id == resource_id:
            return resource
    raise NotFound(f"resource {resource_id!r} not found in dataset {dataset_name!r}")


def downloadable_version(actor: Actor, resource: Resource, number: int | None = None) -> Version:
    """The version of ``resource`` that ``actor`` may download: the current one, or ``number``.

    Only published versions are ever served; quarantined, rejected and in-review ones are not.

    :raises NotFound: when there is no such published version or the data is not public to actor.
    """
    if not can(actor, Permission.CATALOG_DATASET_DOWNLOAD, resource.dataset):
        raise NotFound("no downloadable version")
    if number is None:
        version = resource.current_version
    else:
        version = next((v for v in resource.versions if v.number == number), None)
    if version is None or version.status is not VersionStatus.PUBLISHED:
        raise NotFound("no downloadable version")
    return version


def public_versions(resource: Resource) -> list[Version]:
    """Published versions, newest first."""
    return sorted(
        (v for v in resource.versions if v.status is VersionStatus.PUBLISHED),
        key=lambda v: v.number,
        reverse=True,
    )


def list_organizations(session: Session, actor: Actor) -> list[tuple[Organization, int]]:
    """Every OPD with the number of datasets ``actor`` may see."""
    counts = (
        select(Dataset.organization_id, func.count().label("n"))
        .where(visible_datasets(actor))
        .group_by(Dataset.organization_id)
        .subquery()
    )
    rows = session.execute(
        select(Organization, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.organization_id == Organization.id)
        .order_by(Organization.title)
    )
    return [(org, int(n)) for org, n in rows]


def get_organization(session: Session, name: str) -> Organization:
    """:raises NotFound: when no OPD has that name."""
    org = session.scalars(select(Organization).where(Organization.name == name)).first()
    if org is None:
        raise NotFound(f"organization {name!r} not found")
    return org


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
