"""Organizations (OPD), datasets, resources and their immutable versions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models import Base, enum_type, new_uuid, utcnow

if TYPE_CHECKING:
    from portal.models.harvest import HarvestSource


class AccessLevel(StrEnum):
    """Klasifikasi akses."""

    PUBLIC = "public"  # publik
    RESTRICTED = "restricted"  # terbatas
    INTERNAL = "internal"  # dikecualikan


class DatasetState(StrEnum):
    """Lifecycle: draft → in_review → published → withdrawn."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class VersionStatus(StrEnum):
    QUARANTINED = "quarantined"  # failed a check: stored with its report, never public
    IN_REVIEW = "in_review"  # clean, waiting for a steward
    PUBLISHED = "published"  # approved; the current one is the resource's pointer
    REJECTED = "rejected"  # refused by a steward


class Frequency(StrEnum):
    """Frekuensi pemutakhiran."""

    DAILY = "harian"
    WEEKLY = "mingguan"
    MONTHLY = "bulanan"
    QUARTERLY = "triwulanan"
    SEMIANNUAL = "semesteran"
    ANNUAL = "tahunan"
    IRREGULAR = "tidak_tentu"


dataset_tags = Table(
    "dataset_tag",
    Base.metadata,
    Column("dataset_id", ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
)


class Organization(Base):
    """An OPD (perangkat daerah), the producer of datasets."""

    __tablename__ = "organization"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    datasets: Mapped[list[Dataset]] = relationship(back_populates="organization")


class Tag(Base):
    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Dataset(Base):
    """A dataset with the Satu Data metadata (DOMAIN.md §1.3)."""

    __tablename__ = "dataset"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # slug
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    organization_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    topic: Mapped[str | None] = mapped_column(String(100))
    license_id: Mapped[str] = mapped_column(String(50), default="CC-BY-4.0")
    access_level: Mapped[AccessLevel] = mapped_column(
        enum_type(AccessLevel), default=AccessLevel.PUBLIC
    )
    state: Mapped[DatasetState] = mapped_column(
        enum_type(DatasetState), default=DatasetState.DRAFT, index=True
    )
    frequency: Mapped[Frequency | None] = mapped_column(enum_type(Frequency))
    coverage: Mapped[str | None] = mapped_column(String(200))  # cakupan wilayah
    coverage_code: Mapped[str | None] = mapped_column(String(20))  # kode wilayah
    period: Mapped[str | None] = mapped_column(String(100))  # periode data
    unit: Mapped[str | None] = mapped_column(String(100))  # satuan
    measure: Mapped[str | None] = mapped_column(String(200))  # ukuran
    concept: Mapped[str | None] = mapped_column(Text)  # konsep
    definition: Mapped[str | None] = mapped_column(Text)  # definisi
    classification: Mapped[str | None] = mapped_column(Text)  # klasifikasi
    collection_method: Mapped[str | None] = mapped_column(Text)  # cara pengumpulan
    contact: Mapped[str | None] = mapped_column(String(300))
    schema_name: Mapped[str | None] = mapped_column(String(100))
    extras: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Metadata fields a steward edited: the next harvests leave them as the steward set them.
    curated_fields: Mapped[list[str]] = mapped_column(default=list)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("harvest_source.id"), index=True)
    remote_id: Mapped[str | None] = mapped_column(String(300))  # the item's guid at its source
    #: Last time a harvest saw the item at its source (withdrawal after a grace period).
    last_seen_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column()

    organization: Mapped[Organization] = relationship(back_populates="datasets")
    tags: Mapped[list[Tag]] = relationship(secondary=dataset_tags, order_by="Tag.name")
    resources: Mapped[list[Resource]] = relationship(
        back_populates="dataset", order_by="Resource.position", cascade="all, delete-orphan"
    )
    source: Mapped[HarvestSource | None] = relationship()

    __table_args__ = (UniqueConstraint("source_id", "remote_id"),)


class Resource(Base):
    """One table (or file) of a dataset; its data lives in numbered versions."""

    __tablename__ = "resource"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("dataset.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    remote_id: Mapped[str] = mapped_column(String(300))  # file name or remote resource id
    position: Mapped[int] = mapped_column(Integer, default=0)
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("version.id", use_alter=True, name="fk_resource_current_version_id_version")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="resources")
    versions: Mapped[list[Version]] = relationship(
        back_populates="resource", order_by="Version.number", foreign_keys="Version.resource_id"
    )
    current_version: Mapped[Version | None] = relationship(
        foreign_keys=[current_version_id], post_update=True
    )

    __table_args__ = (UniqueConstraint("dataset_id", "remote_id"),)


class Version(Base):
    """An immutable, content-addressed version of a resource's file."""

    __tablename__ = "version"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[str] = mapped_column(ForeignKey("resource.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[VersionStatus] = mapped_column(enum_type(VersionStatus), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int | None] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(300))
    format: Mapped[str] = mapped_column(String(20))
    table_schema: Mapped[dict[str, Any] | None] = mapped_column()
    check_report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    original_key: Mapped[str] = mapped_column(String(300))  # storage key of the original file
    rows_key: Mapped[str | None] = mapped_column(String(300))  # storage key of the rows SQLite file
    note: Mapped[str] = mapped_column(Text, default="")
    harvest_item_id: Mapped[int | None] = mapped_column(ForeignKey("harvest_item.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column()

    resource: Mapped[Resource] = relationship(back_populates="versions", foreign_keys=[resource_id])

    __table_args__ = (UniqueConstraint("resource_id", "number"),)
