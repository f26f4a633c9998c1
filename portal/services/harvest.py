"""Harvest sources and runs: create a job, run the source's harvester, record every item."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
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
from portal.services.events import EventTag, record_event
from portal.services.harvest_limits import InSlot, unreachable_error
from portal.services.harvest_withdraw import withdraw_missing
from portal.services.ingest import HARVESTER, Ingestor, slugify
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


@dataclass(frozen=True)
class RunSettings:
    """Operator settings for one run (from ``ONEDATA_HARVEST_*``)."""

    schemas_dir: Path
    reference_dir: Path | None
    max_file_size: int
    allow_hosts: tuple[str, ...] = ()
    #: Connect, read and total timeouts of each request (``None``: the fetcher's defaults).
    timeouts: tuple[float, float, float] | None = None
    deadline_seconds: float = 3600
    heartbeat_seconds: float = 30
    withdraw_grace: timedelta = timedelta(days=7)


def run_source(
    session: Session,
    storage: LocalStorage,
    source: HarvestSource,
    settings: RunSettings,
    *,
    dry_run: bool = False,
    on_item: ItemCallback | None = None,
    on_gathered: Callable[[int], None] | None = None,
    work_slot: AbstractContextManager[Any] | None = None,
) -> HarvestJob:
    """Run one harvest of ``source`` to the end; commits the job and each item as it goes.

    A job queued for this source ("run now", :func:`claim_pending_job`) is taken over, so the
    page that queued it follows this run; otherwise a new job is created.

    Never raises for a failing source or item: the job records what happened. While it runs,
    a heartbeat thread stamps the job so that a dead worker's job can be told apart (see
    :func:`portal.services.harvest_schedule.reap_stale_jobs`).

    :param session: a session this function may commit (not a request's session).
    :param settings: schemas, limits, deadline and withdrawal grace.
    :param dry_run: compute each item's outcome without storing anything.
    :param on_item: progress callback, after each item.
    :param on_gathered: called with the number of items once the source is listed.
    :param work_slot: held while each item is checked and published (not while it downloads),
        shared by the runs of :func:`portal.harvesting.run_many`.
    """
    now = utcnow()
    deadline_at = now + timedelta(seconds=settings.deadline_seconds)
    job = claim_pending_job(session, source, dry_run=dry_run, deadline_at=deadline_at)
    if job is None:
        job = HarvestJob(
            source_id=source.id,
            status=JobStatus.RUNNING,
            dry_run=dry_run,
            started_at=now,
            heartbeat_at=now,
            deadline_at=deadline_at,
        )
        session.add(job)
        session.flush()
    record_event(
        session,
        EventTag.HARVEST_RUN_START,
        actor=HARVESTER,
        target=source,
        details={"job": job.id, "kind": source.kind, "dry_run": dry_run},
    )
    session.commit()
    staging = storage.staging_dir()
    ingestor = Ingestor(session, storage, job, settings.schemas_dir, settings.reference_dir)
    heartbeat = _Heartbeat(session.get_bind(), job.id, settings.heartbeat_seconds)

    def gathered(total: int) -> None:
        job.total = total
        session.commit()
        if on_gathered is not None:
            on_gathered(total)

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
        job.done = index + 1
        job.heartbeat_at = utcnow()
        session.commit()
        if on_item is not None:
            on_item(result, index)

    unreachable: str | None = None
    heartbeat.start()
    try:
        harvester = get_harvester(source.kind)(
            SourceConfig(
                name=source.name,
                url=source.url,
                max_file_size=settings.max_file_size,
                options=_options(source),
                allow_hosts=settings.allow_hosts,
                timeouts=settings.timeouts,
            ),
            staging_dir=staging,
        )
        result = harvester.run(
            ingestor if work_slot is None else InSlot(ingestor, work_slot),
            dry_run=dry_run,
            on_item=item_done,
            on_gathered=gathered,
            deadline=time.monotonic() + settings.deadline_seconds,
        )
        unreachable = unreachable_error(result)
        result.error = result.error or unreachable
        withdrawn = 0
        if not dry_run and result.error is None:
            withdrawn = withdraw_missing(
                session, source, job, result.seen_ids, settings.withdraw_grace
            )
            source.state = {**(source.state or {}), "last_success_started_at": now.isoformat()}
        job.counts = {**result.counts, "errors_by_type": result.errors_by_type}
        job.counts[ItemOutcome.WITHDRAWN.value] = withdrawn
        if dry_run:
            job.counts["items"] = [
                {"remote_id": i.remote_id, "outcome": i.outcome.value, "error": i.error}
                for i in result.items
            ]
        job.gather_seconds = result.gather_seconds
        job.error = result.error
        job.status = JobStatus.FAILED if result.error else JobStatus.DONE
    except Exception as exc:  # the job must end, whatever happened
        session.rollback()
        job.status = JobStatus.FAILED
        job.error = f"{type(exc).__name__}: {exc}"
    finally:
        heartbeat.stop()
        shutil.rmtree(staging, ignore_errors=True)
    job.finished_at = utcnow()
    _record_end(session, source, job, unreachable=unreachable is not None)
    session.commit()
    return job


def claim_pending_job(
    session: Session, source: HarvestSource, *, dry_run: bool, deadline_at: datetime
) -> HarvestJob | None:
    """Take the oldest pending job of ``source`` and mark it running, if there is one.

    The claim is one conditional ``UPDATE``: of two workers racing for the same pending job,
    exactly one gets it and the other creates a job of its own.

    :param dry_run: claim only a job of this mode.
    :param deadline_at: when the claimed job must stop taking items.
    :returns: the claimed job (flushed, running), or ``None``.
    """
    pending = session.scalars(
        select(HarvestJob.id)
        .where(
            HarvestJob.source_id == source.id,
            HarvestJob.status == JobStatus.PENDING,
            HarvestJob.dry_run.is_(dry_run),
        )
        .order_by(HarvestJob.id)
    ).all()
    for job_id in pending:
        now = utcnow()
        claimed = session.execute(
            update(HarvestJob)
            .where(HarvestJob.id == job_id, HarvestJob.status == JobStatus.PENDING)
            .values(
                status=JobStatus.RUNNING,
                started_at=now,
                heartbeat_at=now,
                deadline_at=deadline_at,
            )
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], claimed).rowcount == 1:
            return session.get(HarvestJob, job_id, populate_existing=True)
    return None


def _record_end(
    session: Session, source: HarvestSource, job: HarvestJob, *, unreachable: bool = False
) -> None:
    counts = {k: v for k, v in job.counts.items() if isinstance(v, int)}
    if job.status is JobStatus.FAILED and job.error and (job.done == 0 or unreachable):
        record_event(
            session,
            EventTag.HARVEST_SOURCE_UNREACHABLE,
            actor=HARVESTER,
            target=source,
            details={"job": job.id, "error": (job.error or "")[:500]},
        )
    record_event(
        session,
        EventTag.HARVEST_RUN_END,
        actor=HARVESTER,
        target=source,
        outcome="failure" if job.status is JobStatus.FAILED else "success",
        details={
            "job": job.id,
            "status": job.status.value,
            "counts": counts,
            "dry_run": job.dry_run,
        },
    )


def _options(source: HarvestSource) -> dict[str, Any]:
    """The harvester's options: the source's config plus what the portal knows at run time."""
    state = source.state or {}
    return {
        **(source.config or {}),
        "since": state.get("last_success_started_at"),
        "etag": state.get("etag"),
        "last_modified": state.get("last_modified"),
        "previous": state.get("previous", {}),
    }


class _Heartbeat:
    """Stamps ``heartbeat_at`` from a thread on its own connection while the job runs."""

    def __init__(self, bind: Any, job_id: int, interval: float) -> None:
        self.engine = bind.engine if hasattr(bind, "engine") else bind
        self.job_id = job_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        update(HarvestJob)
                        .where(HarvestJob.id == self.job_id, HarvestJob.status == JobStatus.RUNNING)
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # noqa: S112 - a missed beat is retried; the reaper is lenient
                continue


def failed_count(job: HarvestJob) -> int:
    return int(job.counts.get(ItemOutcome.FAILED.value, 0))


def _clip(text: str | None, limit: int = 4000) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit] + "…"


def settings_from_config(config: Any) -> RunSettings:
    """Build :class:`RunSettings` from the app's configuration mapping.

    :param config: ``app.config`` (or any mapping with the same keys).
    """
    schemas = Path(config["SCHEMAS_PATH"])
    hosts = tuple(
        h.strip() for h in str(config.get("HARVEST_ALLOW_HOSTS") or "").split(",") if h.strip()
    )
    return RunSettings(
        schemas_dir=schemas,
        reference_dir=schemas / "reference",
        max_file_size=int(config["MAX_FILE_SIZE"]),
        allow_hosts=hosts,
        timeouts=(
            float(config.get("HARVEST_CONNECT_TIMEOUT", 10)),
            float(config.get("HARVEST_READ_TIMEOUT", 30)),
            float(config.get("HARVEST_TOTAL_TIMEOUT", 300)),
        ),
        deadline_seconds=float(config.get("HARVEST_JOB_DEADLINE", 3600)),
        withdraw_grace=timedelta(days=float(config.get("HARVEST_WITHDRAW_GRACE_DAYS", 7))),
    )
