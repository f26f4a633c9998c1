"""Source health: reachable or not, last success and error, failures in a row, staleness.

Staleness compares the last time a source brought a new version with the update frequency it
declares: a daily source with nothing new for a week is stale. Sources of irregular frequency
are never called stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.models import (
    Dataset,
    Frequency,
    HarvestJob,
    HarvestSource,
    JobStatus,
    Resource,
    Version,
    utcnow,
)
from portal.services.harvest import failed_count
from portal.services.harvest_schedule import INTERVALS, aware

#: A source is stale when nothing changed for this many of its declared periods.
STALE_AFTER_PERIODS = 1.5
RECENT_JOBS = 20


@dataclass(frozen=True)
class SourceHealth:
    name: str
    title: str
    kind: str
    organization: str
    organization_title: str
    trusted: bool
    active: bool
    frequency: Frequency
    last_run_at: datetime | None
    last_status: JobStatus | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    #: ``None`` until the source has been run.
    reachable: bool | None
    response_seconds: float | None
    last_change_at: datetime | None
    stale: bool
    running_job_id: int | None
    #: Items that failed in the last finished job (``None`` until the source has been run).
    failed_items: int | None = None
    #: Item errors (failed or skipped) of the last finished job by type: for stewards only.
    last_errors_by_type: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OrganizationHealth:
    name: str
    title: str
    sources: int
    healthy: int
    unreachable: int
    stale: int


def source_health(session: Session, now: datetime | None = None) -> list[SourceHealth]:
    """Health of every harvest source, by name.

    :param now: the reference time (default: now).
    """
    now = now or utcnow()
    changes = dict(
        session.execute(
            select(Dataset.source_id, func.max(Version.created_at))
            .join(Resource, Resource.dataset_id == Dataset.id)
            .join(Version, Version.resource_id == Resource.id)
            .group_by(Dataset.source_id)
        ).all()
    )
    result = []
    for source in session.scalars(select(HarvestSource).order_by(HarvestSource.name)):
        jobs = list(
            session.scalars(
                select(HarvestJob)
                .where(HarvestJob.source_id == source.id, HarvestJob.dry_run.is_(False))
                .order_by(HarvestJob.id.desc())
                .limit(RECENT_JOBS)
            )
        )
        result.append(_health(source, jobs, changes.get(source.id), now))
    return result


def _health(
    source: HarvestSource, jobs: list[HarvestJob], last_change: datetime | None, now: datetime
) -> SourceHealth:
    finished = [j for j in jobs if j.status in (JobStatus.DONE, JobStatus.FAILED)]
    running = next((j for j in jobs if j.status is JobStatus.RUNNING), None)
    last = finished[0] if finished else None
    success = next((j for j in finished if j.status is JobStatus.DONE), None)
    error = next((j for j in finished if j.status is JobStatus.FAILED), None)
    failures = 0
    for job in finished:
        if job.status is not JobStatus.FAILED:
            break
        failures += 1
    last_change = aware(last_change) if last_change else None
    interval = INTERVALS[source.frequency]
    stale = False
    if source.frequency is not Frequency.IRREGULAR and success is not None:
        reference = last_change or aware(success.started_at or success.created_at)
        stale = now - reference > interval * STALE_AFTER_PERIODS
    return SourceHealth(
        name=source.name,
        title=source.title,
        kind=source.kind,
        organization=source.organization.name,
        organization_title=source.organization.title,
        trusted=source.trusted,
        active=source.active,
        frequency=source.frequency,
        last_run_at=_a(last.started_at) if last else None,
        last_status=last.status if last else None,
        last_success_at=_a(success.finished_at) if success else None,
        last_error=error.error if error else None,
        last_error_at=_a(error.finished_at) if error else None,
        consecutive_failures=failures,
        reachable=None if last is None else last.status is JobStatus.DONE,
        response_seconds=last.gather_seconds if last else None,
        last_change_at=last_change,
        stale=stale,
        running_job_id=running.id if running else None,
        failed_items=failed_count(last) if last else None,
        last_errors_by_type=dict((last.counts or {}).get("errors_by_type") or {}) if last else {},
    )


def organization_health(sources: list[SourceHealth]) -> list[OrganizationHealth]:
    """Roll source health up per OPD.

    :param sources: the result of :func:`source_health`.
    """
    by_org: dict[str, list[SourceHealth]] = {}
    for health in sources:
        by_org.setdefault(health.organization, []).append(health)
    return [
        OrganizationHealth(
            name=name,
            title=items[0].organization_title,
            sources=len(items),
            healthy=sum(1 for h in items if h.reachable and not h.stale),
            unreachable=sum(1 for h in items if h.reachable is False),
            stale=sum(1 for h in items if h.stale),
        )
        for name, items in sorted(by_org.items())
    ]


def _a(value: datetime | None) -> datetime | None:
    return aware(value) if value else None


__all__ = ["OrganizationHealth", "SourceHealth", "organization_health", "source_health"]
