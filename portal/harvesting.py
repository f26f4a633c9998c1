"""Running harvests from the app: sessions per source, concurrency, summaries, the RQ queue.

The rules live in ``portal.services.harvest``; this module supplies what they need from the
application (configuration, storage, a session per thread) and turns jobs into summaries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask

from portal import db
from portal.models import HarvestJob, JobStatus
from portal.services.harvest import get_source, run_source, settings_from_config
from portal.services.harvest_schedule import reap_stale_jobs, run_concurrently
from portal.storage import get_storage


@dataclass
class JobSummary:
    """What an operator needs to know about one finished job (no ORM objects)."""

    source: str
    job_id: int
    status: JobStatus
    dry_run: bool
    counts: dict[str, Any]
    error: str | None
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status is JobStatus.FAILED


#: ``(source name, event, value)``: event is "total" (items to do) or "item" (items done).
Progress = Callable[[str, str, int], None]


def summarize(job: HarvestJob) -> JobSummary:
    failures = [
        (item.remote_id, item.error or item.error_type or "")
        for item in job.items
        if item.outcome.value in ("failed", "withdrawn")
    ]
    return JobSummary(
        job.source.name, job.id, job.status, job.dry_run, dict(job.counts), job.error, failures
    )


def reap(app: Flask) -> int:
    """Fail the jobs of dead workers; returns how many."""
    timeout = timedelta(seconds=int(app.config["HARVEST_HEARTBEAT_TIMEOUT"]))
    with app.app_context(), db.transaction() as session:
        return len(reap_stale_jobs(session, timeout))


def run_one(
    app: Flask,
    name: str,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    work_slot: AbstractContextManager[Any] | None = None,
) -> JobSummary:
    """Harvest the source called ``name`` in this thread, with its own session.

    ``work_slot``, when given, is held while each item is checked and published (see
    :mod:`portal.services.harvest_limits`).

    :raises portal.errors.NotFound: when there is no such source.
    """
    with app.app_context():
        session = db.new_session()
        try:
            source = get_source(session, name)
            job = run_source(
                session,
                get_storage(),
                source,
                settings_from_config(app.config),
                dry_run=dry_run,
                on_gathered=(lambda n: progress(name, "total", n)) if progress else None,
                on_item=(lambda _r, i: progress(name, "item", i + 1)) if progress else None,
                work_slot=work_slot,
            )
            return summarize(job)
        finally:
            session.close()


def run_many(
    app: Flask, names: list[str], *, dry_run: bool = False, progress: Progress | None = None
) -> list[JobSummary]:
    """Harvest several sources: up to ``ONEDATA_HARVEST_FETCH_CONCURRENCY`` of them waiting on
    the network, ``ONEDATA_HARVEST_CONCURRENCY`` of them checking and publishing at a time."""
    reap(app)
    concurrency = max(1, int(app.config["HARVEST_CONCURRENCY"]))
    slots = threading.BoundedSemaphore(concurrency)
    return run_concurrently(
        names,
        lambda name: run_one(app, name, dry_run=dry_run, progress=progress, work_slot=slots),
        max(concurrency, int(app.config.get("HARVEST_FETCH_CONCURRENCY", concurrency))),
    )


def enqueue(app: Flask, names: list[str], *, dry_run: bool = False) -> list[str]:
    """Queue the sources on ``ONEDATA_REDIS_URL``; returns the RQ job ids.

    Sources go in batches of ``ONEDATA_HARVEST_FETCH_CONCURRENCY``, and a worker runs a batch as
    :func:`run_many` does: downloads in parallel, checks ``ONEDATA_HARVEST_CONCURRENCY`` at a
    time. An unreachable source then holds one download thread for its timeout, not a worker.
    """
    from redis import Redis
    from rq import Queue

    queue = Queue(app.config["HARVEST_QUEUE"], connection=Redis.from_url(app.config["REDIS_URL"]))
    deadline = int(app.config["HARVEST_JOB_DEADLINE"]) + 600
    size = max(1, int(app.config.get("HARVEST_FETCH_CONCURRENCY", 32)))
    batches = [names[i : i + size] for i in range(0, len(names), size)]
    return [
        queue.enqueue(
            run_sources_task,
            batch,
            dry_run,
            job_timeout=deadline,
            description=", ".join(batch)[:200],
        ).id
        for batch in batches
    ]


def run_sources_task(names: list[str], dry_run: bool = False) -> list[dict[str, Any]]:
    """The RQ job: build the app from ``ONEDATA_*`` and harvest a batch of sources."""
    from portal import create_app

    app = create_app()
    return [
        {"source": s.source, "job_id": s.job_id, "status": s.status.value}
        for s in run_many(app, names, dry_run=dry_run)
    ]


def run_source_task(name: str, dry_run: bool = False) -> dict[str, Any]:
    """One source (the RQ job of earlier versions, kept for jobs still queued)."""
    return run_sources_task([name], dry_run)[0]
