"""What became of each item of a harvest job: for the people who manage its source.

The public sees a job's counts; the source's producers, stewards and admins also see each item,
why it failed, and which dataset version it became (published, waiting for review, quarantined):
what an operator needs when a harvest goes wrong, without opening a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import Dataset, HarvestItem, HarvestJob, Version
from portal.services.access import Actor, Permission, can


@dataclass(frozen=True)
class ItemLine:
    """One item of a job, as its source's managers see it."""

    remote_id: str
    outcome: str
    error_type: str | None
    error: str | None
    dataset_name: str | None
    dataset_title: str | None
    version: int | None
    version_status: str | None


def job_items(session: Session, actor: Actor, job: HarvestJob) -> list[ItemLine] | None:
    """The items of ``job`` in the order they were harvested; ``None`` when ``actor`` may not
    manage its source (they see the counts only).

    :param actor: who is looking.
    :param job: the harvest job.
    """
    if not can(actor, Permission.HARVEST_SOURCE_MANAGE, org_id=job.source.organization_id):
        return None
    items = list(
        session.scalars(
            select(HarvestItem).where(HarvestItem.job_id == job.id).order_by(HarvestItem.id)
        )
    )
    ids = [i.id for i in items]
    versions = {
        v.harvest_item_id: v
        for v in session.scalars(select(Version).where(Version.harvest_item_id.in_(ids)))
    }
    dataset_ids = sorted({i.dataset_id for i in items if i.dataset_id})
    datasets = {
        d.id: d for d in session.scalars(select(Dataset).where(Dataset.id.in_(dataset_ids)))
    }
    lines = []
    for item in items:
        version = versions.get(item.id)
        dataset = datasets.get(item.dataset_id or "")
        lines.append(
            ItemLine(
                remote_id=item.remote_id,
                outcome=item.outcome.value,
                error_type=item.error_type,
                error=item.error,
                dataset_name=dataset.name if dataset else None,
                dataset_title=dataset.title if dataset else None,
                version=version.number if version else None,
                version_status=version.status.value if version else None,
            )
        )
    return lines
