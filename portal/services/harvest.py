"""Harvest sources and runs: create a job, run the source's harvester, record every item."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from harvesters import get_harvester
from harvesters.base import ItemOutcome, ItemResult, SourceConfig
from portal.errors import Conflict, Invalid, NotFound
from portal.models import (
    Frequency,
    HarvestItem,
    HarvestJob,
    HarvestSource,
    JobStatus,
    Organization,
    utcnow,
)
from portal.services.ingest import Ingestor, slugify
from portal.storage import LocalStorage

ItemCallback = Callable[[ItemResult, int], None]


def create_source(
    session: Session,
    *,
    kind: str,
    url: str,
    organization: Organization,
    name: str | None = None,
    title: str | None = None,
    trusted: bool = False,
    frequency: Frequency = Frequency.DAILY,
    config: dict[str, Any] | None = None,
) -> HarvestSource:
    """Register a harvest source for an OPD.

    :raises Invalid: when the kind is unknown.
    :raises Conflict: when the name is taken.
    """
    try:
        get_harvester(kind)
    except KeyError as exc:
        raise Invalid(str(exc.args[0])) from exc
    name = slugify(name or f"{organization.name}-{kind}")
    if session.scalars(select(HarvestSource).where(HarvestSource.name == name)).first():
        raise Conflict(f"a harvest source named {name!r} already exists")
    source = HarvestSource(
        name=name,
        title=title or name,
        kind=kind,
        url=url,
        organization_id=organization.id,
        trusted=trusted,
        frequency=frequency,
        config=config or {},
    )
    session.add(source)
    session.flush()
    return source


def get_source(session: Session, name: str) -> HarvestSource:
    """:raises NotFound: when no source has that name."""
    source = session.scalars(select(HarvestSource).where(HarvestSource.name == name)).first()
    if source is None:
        raise NotFound(f"no harvest source named {name!r}")
    return source


def list_sources(session: Session) -> list[HarvestSource]:
    return list(session.scalars(select(HarvestSource).order_by(HarvestSource.name)))


def run_source(
    session: Session,
    storage: LocalStorage,
    source: HarvestSource,
    *,
    schemas_dir: Path,
    reference_dir: Path | None,
    max_file_size: int,
    dry_run: bool = False,
    on_item: ItemCallback | None = None,
) -> HarvestJob:
    """Run one harvest of ``source`` to the end; commits the job and each item as it goes.

    Never raises for a failing source or item: the job records what happened.

    :param session: a session this function may commit (not a request's session).
    :param dry_run: compute each item's outcome without storing anything.
    :param on_item: progress callback, after each item.
    """
    job = HarvestJob(
        source_id=source.id,
        status=JobStatus.RUNNING,
        dry_run=dry_run,
        started_at=utcnow(),
        heartbeat_at=utcnow(),
    )
    session.add(job)
    session.commit()
    staging = storage.staging_dir()
    ingestor = Ingestor(session, storage, job, schemas_dir, reference_dir)

    def item_done(result: ItemResult, index: int) -> None:
        if result.remote_id not in ingestor.recorded and not dry_run:
            session.add(
                HarvestItem(
                    job_id=job.id,
                    remote_id=result.remote_id,
                    outcome=result.outcome,
                    error_type=result.error_type,
                    error=_clip(result.error),
                    raw={"traceback": result.detail} if result.detail else {},
                )
            )
        job.heartbeat_at = utcnow()
        session.commit()
        if on_item is not None:
            on_item(result, index)

    try:
        harvester = get_harvester(source.kind)(
            SourceConfig(
                name=source.name, url=source.url, max_file_size=max_file_size, options=source.config
            ),
            staging_dir=staging,
        )
        result = harvester.run(ingestor, dry_run=dry_run, on_item=item_done)
        job.counts = {**result.counts, "errors_by_type": result.errors_by_type}
        if dry_run:
            job.counts["items"] = [
                {"remote_id": i.remote_id, "outcome": i.outcome.value, "error": i.error}
                for i in result.items
            ]
        job.error = result.error
        job.status = JobStatus.FAILED if result.error else JobStatus.DONE
    except Exception as exc:  # the job must end, whatever happened
        session.rollback()
        job.status = JobStatus.FAILED
        job.error = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    job.finished_at = utcnow()
    session.commit()
    return job


def failed_count(job: HarvestJob) -> int:
    return int(job.counts.get(ItemOutcome.FAILED.value, 0))


def _clip(text: str | None, limit: int = 4000) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit] + "…"
