"""Versions: store the files of a new version, then publish, reject or withdraw.

Files are written first (content-addressed, atomically renamed into place); the pointer to the
current version changes only in the caller's transaction, after every file exists. A crash in
between leaves orphan files and the previous version still served.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from harvesters.base import StagedFile
from harvesters.checks import CheckReport
from portal.datastore import RowsWriter, build_rows_file
from portal.errors import Conflict, Forbidden, Invalid
from portal.models import Dataset, DatasetState, Resource, Version, VersionStatus, utcnow
from portal.services.access import Actor, Permission, can
from portal.services.events import EventTag, RequestInfo, record_event
from portal.storage import LocalStorage

#: How much of a reason or note the log keeps (the version keeps it whole).
REASON_CHARS = 300


def original_key(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256}"


def rows_key(sha256: str, schema: dict[str, Any]) -> str:
    fingerprint = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:16]
    return f"rows/{sha256[:2]}/{sha256}-{fingerprint}.sqlite"


def latest_version(session: Session, resource: Resource) -> Version | None:
    """The highest-numbered version of ``resource``, whatever its status."""
    return session.scalars(
        select(Version).where(Version.resource_id == resource.id).order_by(Version.number.desc())
    ).first()


def store_version(
    session: Session,
    storage: LocalStorage,
    resource: Resource,
    staged: StagedFile,
    report: CheckReport,
    *,
    status: VersionStatus,
    harvest_item_id: int | None = None,
    rows: RowsWriter | None = None,
) -> Version:
    """Write the version's files, then add its row (not yet current).

    :param storage: where the original and the rows file go.
    :param resource: the resource the version belongs to.
    :param staged: the harvested file.
    :param report: the checks' report; a quarantined version gets no rows file.
    :param status: the version's initial status.
    :param harvest_item_id: the harvest item that brought it.
    :param rows: the rows file the checks filled in the same pass, when they could; it is
        finished into place instead of reading the table again.
    """
    storage.put_file(original_key(staged.sha256), staged.path)
    key = None
    row_count: int | None = report.row_count
    if status is not VersionStatus.QUARANTINED:
        key = rows_key(staged.sha256, report.schema)
        if not storage.exists(key):
            target = storage.path(key)
            if rows is not None and rows.complete and rows.target == target:
                row_count = rows.finish()
            else:
                row_count = build_rows_file(staged.table_path, report.schema, target)
    number = (
        session.scalar(select(func.max(Version.number)).where(Version.resource_id == resource.id))
        or 0
    ) + 1
    version = Version(
        resource_id=resource.id,
        number=number,
        status=status,
        sha256=staged.sha256,
        size=staged.size,
        row_count=row_count,
        filename=staged.filename,
        format=staged.format,
        table_schema=report.schema,
        check_report=report.to_dict(),
        original_key=original_key(staged.sha256),
        rows_key=key,
        harvest_item_id=harvest_item_id,
    )
    session.add(version)
    session.flush()
    return version


def publish_version(
    session: Session,
    actor: Actor,
    version: Version,
    note: str = "",
    *,
    request: RequestInfo | None = None,
) -> None:
    """Make ``version`` its resource's current version and the dataset published.

    A version waiting in review is approved first (``review:version:approve``); every
    publication records ``review:version:publish``. A version that a trusted source's harvest
    stored as published publishes itself; anything else needs a steward or an admin.

    :param actor: who publishes (the harvest of a trusted source, or a steward).
    :param note: a change note kept with the version.
    :param request: the HTTP context, when a web request publishes.
    :raises Forbidden: when ``actor`` may not approve or publish this dataset.
    :raises Conflict: when the version is quarantined or rejected.
    """
    if version.status in (VersionStatus.QUARANTINED, VersionStatus.REJECTED):
        raise Conflict(
            f"version {version.number} is {version.status.value} and cannot be published"
        )
    dataset = version.resource.dataset
    approving = version.status is VersionStatus.IN_REVIEW
    if approving:
        require(actor, Permission.REVIEW_VERSION_APPROVE, dataset)
    elif not _trusted_harvest(version):
        require(actor, Permission.REVIEW_DATASET_PUBLISH, dataset)
    if note:
        version.note = note
    if approving:
        record_event(
            session,
            EventTag.REVIEW_VERSION_APPROVE,
            actor=actor,
            target=version,
            details=_about(version, note=note),
            request=request,
        )
    make_current(session, actor, version, request=request)


def make_current(
    session: Session, actor: Actor, version: Version, *, request: RequestInfo | None = None
) -> None:
    """Flip the pointers and record ``review:version:publish``; callers check the rules first.

    :param actor: who publishes (already allowed to).
    :param request: the HTTP context, when there is one.
    """
    now = utcnow()
    version.status = VersionStatus.PUBLISHED
    version.published_at = version.published_at or now
    resource = version.resource
    resource.current_version_id = version.id
    dataset = resource.dataset
    dataset.state = DatasetState.PUBLISHED
    dataset.published_at = dataset.published_at or now
    session.flush()
    record_event(
        session,
        EventTag.REVIEW_VERSION_PUBLISH,
        actor=actor,
        target=version,
        details=_about(version),
        request=request,
    )


def reject_version(
    session: Session,
    actor: Actor,
    version: Version,
    reason: str,
    *,
    request: RequestInfo | None = None,
) -> None:
    """Refuse a version waiting for review.

    :param reason: why, for the producer (kept with the version; the log keeps its start).
    :param request: the HTTP context, when a web request rejects.
    :raises Forbidden: when ``actor`` may not review this dataset.
    :raises Invalid: when no reason is given.
    :raises Conflict: when the version is not in review.
    """
    require(actor, Permission.REVIEW_VERSION_APPROVE, version.resource.dataset)
    reason = reason.strip()
    if not reason:
        raise Invalid("a rejection needs a reason")
    if version.status is not VersionStatus.IN_REVIEW:
        raise Conflict(f"version {version.number} is {version.status.value}, not in review")
    version.status = VersionStatus.REJECTED
    version.note = reason
    session.flush()
    record_event(
        session,
        EventTag.REVIEW_VERSION_REJECT,
        actor=actor,
        target=version,
        details=_about(version, reason=reason),
        request=request,
    )


def require(actor: Actor, permission: Permission, dataset: Dataset) -> None:
    """:raises Forbidden: unless :func:`portal.services.access.can` lets ``actor`` do it."""
    if not can(actor, permission, dataset):
        raise Forbidden(f"you may not do {permission.value} on dataset {dataset.name!r}")


def _trusted_harvest(version: Version) -> bool:
    """A version a trusted source's harvest has just stored as published (never published yet)."""
    source = version.resource.dataset.source
    return (
        version.status is VersionStatus.PUBLISHED
        and version.published_at is None
        and version.harvest_item_id is not None
        and source is not None
        and source.trusted
    )


def _about(version: Version, **text: str) -> dict[str, Any]:
    """The facts the review events keep: dataset, resource, number; free text truncated."""
    details: dict[str, Any] = {
        "dataset": version.resource.dataset.name,
        "resource": version.resource_id,
        "version": version.number,
    }
    details.update({key: value[:REASON_CHARS] for key, value in text.items() if value})
    return details


def pending_versions(session: Session) -> list[Version]:
    """Versions waiting for a steward, oldest first."""
    return list(
        session.scalars(
            select(Version)
            .where(Version.status == VersionStatus.IN_REVIEW)
            .order_by(Version.created_at, Version.id)
        )
    )
