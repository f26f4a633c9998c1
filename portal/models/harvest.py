"""Harvest sources, their jobs and the per-item outcomes of each job."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from harvesters.base import ItemOutcome
from portal.models import Base, enum_type, utcnow
from portal.models.catalog import Frequency, Organization


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"  # finished; items may still have failed (see counts)
    FAILED = "failed"  # the source could not be gathered, or the worker died


class HarvestSource(Base):
    __tablename__ = "harvest_source"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(30))
    url: Mapped[str] = mapped_column(String(1000))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    trusted: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    frequency: Mapped[Frequency] = mapped_column(enum_type(Frequency), default=Frequency.DAILY)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: What the harvester needs from its previous runs (e.g. the last successful gather time).
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    organization: Mapped[Organization] = relationship()
    jobs: Mapped[list[HarvestJob]] = relationship(
        back_populates="source", order_by="HarvestJob.id.desc()"
    )


class HarvestJob(Base):
    __tablename__ = "harvest_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("harvest_source.id"), index=True)
    status: Mapped[JobStatus] = mapped_column(enum_type(JobStatus), default=JobStatus.PENDING)
    dry_run: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    deadline_at: Mapped[datetime | None] = mapped_column()
    #: Items to process (known once the source is listed) and items processed so far.
    total: Mapped[int | None] = mapped_column()
    done: Mapped[int] = mapped_column(default=0)
    #: Seconds the source took to list its items: its response time.
    gather_seconds: Mapped[float | None] = mapped_column()
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)

    source: Mapped[HarvestSource] = relationship(back_populates="jobs")
    items: Mapped[list[HarvestItem]] = relationship(back_populates="job", order_by="HarvestItem.id")


class HarvestItem(Base):
    """One remote item seen by one job, with its outcome and the raw metadata fetched."""

    __tablename__ = "harvest_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("harvest_job.id"), index=True)
    remote_id: Mapped[str] = mapped_column(String(300))
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("dataset.id"), index=True)
    outcome: Mapped[ItemOutcome] = mapped_column(enum_type(ItemOutcome))
    error_type: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[HarvestJob] = relationship(back_populates="items")
