"""Datasets that disappear from their source: withdrawn after a grace period, never at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from harvesters.base import ItemOutcome
from portal.models import Dataset, DatasetState, HarvestItem, HarvestJob, HarvestSource, utcnow
from portal.services.events import EventTag, record_event
from portal.services.harvest_schedule import aware
from portal.services.ingest import HARVESTER


def withdraw_missing(
    session: Session,
    source: HarvestSource,
    job: HarvestJob,
    seen_ids: list[str],
    grace: timedelta,
) -> int:
    """Withdraw published datasets missing from ``source`` for longer than the grace period.

    Deletions and datasets made private at the source must not stay published here for ever
    (the failure ckanext-harvest never fixed); a grace period rides out a source's bad day.

    :param seen_ids: the remote ids the source listed in this run.
    :param grace: how long a dataset may be missing before it is withdrawn.
    :returns: the number of datasets withdrawn.
    """
    now = utcnow()
    seen = set(seen_ids)
    cutoff = now - grace
    withdrawn = 0
    datasets = session.scalars(select(Dataset).where(Dataset.source_id == source.id))
    for dataset in datasets:
        if dataset.remote_id in seen:
            dataset.last_seen_at = now
            continue
        last_seen = aware(dataset.last_seen_at or dataset.created_at)
        if dataset.state is DatasetState.PUBLISHED and last_seen < cutoff:
            dataset.state = DatasetState.WITHDRAWN
            session.add(
                HarvestItem(
                    job_id=job.id,
                    remote_id=dataset.remote_id or dataset.name,
                    dataset_id=dataset.id,
                    outcome=ItemOutcome.WITHDRAWN,
                    error_type="missing-at-source",
                    error=f"not at the source since {last_seen:%Y-%m-%d %H:%M} UTC",
                )
            )
            record_event(
                session,
                EventTag.REVIEW_DATASET_WITHDRAW,
                actor=HARVESTER,
                target=dataset,
                details={
                    "dataset": dataset.name,
                    "reason": "missing-at-source",
                    "last_seen": f"{last_seen:%Y-%m-%dT%H:%M}Z",
                    "job": job.id,
                },
            )
            withdrawn += 1
    session.flush()
    return withdrawn
