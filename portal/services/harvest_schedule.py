"""When sources run: what is due, jobs whose worker died, and running many sources at once."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.models import Frequency, HarvestJob, HarvestSource, JobStatus, utcnow

T = TypeVar("T")

#: How often a source of each declared update frequency is checked.
INTERVALS: dict[Frequency, timedelta] = {
    Frequency.DAILY: timedelta(days=1),
    Frequency.WEEKLY: timedelta(days=7),
    Frequency.MONTHLY: timedelta(days=30),
    Frequency.QUARTERLY: timedelta(days=91),
    Frequency.SEMIANNUAL: timedelta(days=182),
    Frequency.ANNUAL: timedelta(days=365),
    Frequency.IRREGULAR: timedelta(days=7),  # nothing promised: look weekly
}


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def reap_stale_jobs(session: Session, heartbeat_timeout: timedelta) -> list[HarvestJob]:
    """Mark running jobs whose heartbeat stopped as failed, so none stays "running" for ever.

    :param heartbeat_timeout: silence after which a worker is presumed dead.
    :returns: the jobs marked failed.
    """
    now = utcnow()
    reaped = []
    running = session.scalars(select(HarvestJob).where(HarvestJob.status == JobStatus.RUNNING))
    for job in running:
        last = aware(job.heartbeat_at or job.started_at or job.created_at)
        if now - last > heartbeat_timeout:
            job.status = JobStatus.FAILED
            job.finished_at = now
            job.error = (
                f"the worker stopped responding: no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC "
                f"(after {job.done} of {job.total if job.total is not None else '?'} items)"
            )
            reaped.append(job)
    session.flush()
    return reaped


def due_sources(session: Session, now: datetime | None = None) -> list[HarvestSource]:
    """Active sources whose last run started longer ago than their frequency, or never ran.

    A source with a job still running is not due.

    :param now: the reference time (default: now).
    """
    now = now or utcnow()
    last_started = (
        select(HarvestJob.source_id, func.max(HarvestJob.started_at).label("started"))
        .where(HarvestJob.dry_run.is_(False))
        .group_by(HarvestJob.source_id)
        .subquery()
    )
    running = select(HarvestJob.source_id).where(HarvestJob.status == JobStatus.RUNNING)
    rows = session.execute(
        select(HarvestSource, last_started.c.started)
        .outerjoin(last_started, last_started.c.source_id == HarvestSource.id)
        .where(HarvestSource.active.is_(True), HarvestSource.id.not_in(running))
        .order_by(HarvestSource.name)
    )
    due = []
    for source, started in rows:
        if started is None or now - aware(started) >= INTERVALS[source.frequency]:
            due.append(source)
    return due


def run_concurrently(names: list[str], run_one: Callable[[str], T], concurrency: int) -> list[T]:
    """Run ``run_one`` for each source name, ``concurrency`` at a time, keeping input order.

    One slow or dead source only holds its own thread: the others go on.

    :param run_one: runs one source by name (with its own session) and returns its job.
    :param concurrency: how many sources at the same time.
    """
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="harvest") as pool:
        return list(pool.map(run_one, names))
