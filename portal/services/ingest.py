"""Turn one harvested item into catalog rows: dataset metadata, checks, versions, publication.

This is the processor the harvester template calls for each item (``harvesters.base.Processor``).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from harvesters.base import HarvestedItem, ItemOutcome, ItemResult, StagedFile, attach_table
from harvesters.checks import CheckReport, check_table, load_schema
from harvesters.numbers import may_need_converting, normalise_numbers
from portal.datastore import RowsWriter
from portal.models import (
    AccessLevel,
    Dataset,
    DatasetState,
    Frequency,
    HarvestItem,
    HarvestJob,
    HarvestSource,
    Resource,
    Tag,
    Version,
    VersionStatus,
    utcnow,
)
from portal.services.access import Actor
from portal.services.events import EventTag, record_event
from portal.services.publishing import (
    latest_version,
    publish_version,
    rows_key,
    store_version,
)
from portal.storage import LocalStorage

#: The actor of everything a harvest does on its own.
HARVESTER = Actor(id="harvester")
SCHEMA_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
#: Sidecar / remote metadata key → Dataset attribute, for plain text fields.
TEXT_FIELDS = {
    "title": "title",
    "description": "description",
    "topic": "topic",
    "license": "license_id",
    "coverage": "coverage",
    "coverage_code": "coverage_code",
    "period": "period",
    "unit": "unit",
    "measure": "measure",
    "concept": "concept",
    "definition": "definition",
    "classification": "classification",
    "collection_method": "collection_method",
    "contact": "contact",
    "schema": "schema_name",
}


def slugify(text: str, max_length: int = 90) -> str:
    """A URL-safe dataset name: lower case, digits and single hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "dataset"


@dataclass
class Ingestor:
    """Process the items of one harvest job. Each item is committed (or rolled back) alone."""

    session: Session
    storage: LocalStorage
    job: HarvestJob
    schemas_dir: Path
    reference_dir: Path | None = None
    actor: Actor = field(default_factory=lambda: HARVESTER)
    #: Remote ids for which a HarvestItem row has been written.
    recorded: set[str] = field(default_factory=set)

    @property
    def source(self) -> HarvestSource:
        return self.job.source

    def __call__(self, item: HarvestedItem, *, dry_run: bool) -> ItemResult:
        try:
            result = self._process(item, dry_run)
            if dry_run:
                self.session.rollback()
            else:
                self.session.commit()
                self.recorded.add(item.remote_id)
            return result
        except BaseException:
            self.session.rollback()
            raise

    def _process(self, item: HarvestedItem, dry_run: bool) -> ItemResult:
        dataset = self.session.scalars(
            select(Dataset).where(
                Dataset.source_id == self.source.id, Dataset.remote_id == item.remote_id
            )
        ).first()
        created = dataset is None
        if dataset is None:
            dataset = Dataset(
                name=self._unique_name(slugify(item.remote_id)),
                title=item.remote_id,
                organization_id=self.source.organization_id,
                source_id=self.source.id,
                remote_id=item.remote_id,
                state=DatasetState.DRAFT,
                extras={},
            )
            self.session.add(dataset)
        changed = self._apply_metadata(dataset, item.metadata)
        dataset.last_seen_at = utcnow()
        self._remember_validators(item)
        self.session.flush()
        record = HarvestItem(
            job_id=self.job.id,
            remote_id=item.remote_id,
            dataset_id=dataset.id,
            outcome=ItemOutcome.UNCHANGED,
            raw=item.raw,
        )
        self.session.add(record)
        self.session.flush()
        new_versions = 0
        failures: list[str] = []
        for position, staged in enumerate(item.files):
            outcome = self._ingest_file(dataset, staged, position, record.id, dry_run)
            if outcome is None:
                continue
            new_versions += 1
            if not outcome.valid:
                failures.append(f"{staged.filename}: {_summary(outcome)}")
        if failures:
            result = ItemResult(
                item.remote_id, ItemOutcome.FAILED, "check-failed", "; ".join(failures)
            )
        elif created:
            result = ItemResult(item.remote_id, ItemOutcome.ADDED)
        elif new_versions or changed:
            result = ItemResult(item.remote_id, ItemOutcome.UPDATED)
        else:
            result = ItemResult(item.remote_id, ItemOutcome.UNCHANGED)
        record.outcome, record.error_type, record.error = (
            result.outcome,
            result.error_type,
            result.error,
        )
        self.session.flush()
        return result

    def _remember_validators(self, item: HarvestedItem) -> None:
        """Keep what lets the next run skip unchanged downloads.

        ETag / Last-Modified of a single-file source, and the per-item state a harvester hands
        back (CKAN: ``metadata_modified`` and resource hashes), passed back as ``previous``.
        """
        state = dict(self.source.state or {})
        validators = {k: item.raw[k] for k in ("etag", "last_modified") if item.raw.get(k)}
        state.update(validators)
        item_state = getattr(item, "state", None)
        if item_state:
            state["previous"] = {**state.get("previous", {}), item.remote_id: item_state}
        if validators or item_state:
            self.source.state = state

    def _ingest_file(
        self, dataset: Dataset, staged: StagedFile, position: int, item_id: int, dry_run: bool
    ) -> CheckReport | None:
        """Check and store one file; ``None`` when it is unchanged since the last version."""
        resource = None
        if dataset.id is not None:
            resource = self.session.scalars(
                select(Resource).where(
                    Resource.dataset_id == dataset.id, Resource.remote_id == staged.remote_id
                )
            ).first()
        if resource is None:
            resource = Resource(
                dataset=dataset, name=staged.title, remote_id=staged.remote_id, position=position
            )
            self.session.add(resource)
            self.session.flush()
        else:
            resource.name = staged.title
            last = latest_version(self.session, resource)
            if last is not None and last.sha256 == staged.sha256:
                return None
        schema = load_schema(dataset.schema_name, self.schemas_dir) if dataset.schema_name else None
        rows = None if dry_run else self._rows_writer(staged, schema)
        try:
            report = check_table(
                staged.table_path, schema, reference_dir=self.reference_dir, rows=rows
            )
            converted = _with_canonical_numbers(staged, schema, report)
            if converted is not staged:  # Indonesian numbers: check the canonical copy instead
                staged = converted
                if rows is not None:
                    rows.discard()
                    rows = self._rows_writer(staged, schema)
                report = check_table(
                    staged.table_path, schema, reference_dir=self.reference_dir, rows=rows
                )
            if dry_run:
                return report
            self._record_checks(resource, staged, report)
            if not report.valid:
                status = VersionStatus.QUARANTINED
            elif self.source.trusted and dataset.state is not DatasetState.WITHDRAWN:
                # a withdrawn dataset comes back only through a steward, not by its source alone
                status = VersionStatus.PUBLISHED
            else:
                status = VersionStatus.IN_REVIEW
            version = store_version(
                self.session,
                self.storage,
                resource,
                staged,
                report,
                status=status,
                harvest_item_id=item_id,
                rows=rows,
            )
            if status is VersionStatus.PUBLISHED:
                publish_version(self.session, self.actor, version)
            elif status is VersionStatus.IN_REVIEW:
                if dataset.state is DatasetState.DRAFT:
                    dataset.state = DatasetState.IN_REVIEW
                self._record_submit(version)
            return report
        finally:
            if rows is not None:
                rows.discard()  # quarantined, failed, or already finished: nothing left behind

    def _rows_writer(self, staged: StagedFile, schema: dict[str, Any] | None) -> RowsWriter | None:
        """A rows file for the checks to fill in the same pass (store_version finishes it)."""
        if schema is None:
            return None
        key = rows_key(staged.sha256, schema)
        return None if self.storage.exists(key) else RowsWriter(self.storage.path(key))

    def _record_submit(self, version: Version) -> None:
        """A clean version of an untrusted source now waits for a steward."""
        record_event(
            self.session,
            EventTag.REVIEW_DATASET_SUBMIT,
            actor=self.actor,
            target=version,
            details={
                "dataset": version.resource.dataset.name,
                "resource": version.resource_id,
                "version": version.number,
                "source": self.source.name,
                "job": self.job.id,
            },
        )

    def _record_checks(self, resource: Resource, staged: StagedFile, report: CheckReport) -> None:
        """Security events for what the checks found: changes, schema errors, personal data."""
        target = ("resource", resource.id)
        last = latest_version(self.session, resource)
        if last is not None:
            record_event(
                self.session,
                EventTag.HARVEST_FILE_CHANGE,
                actor=self.actor,
                target=target,
                details={
                    "from_version": last.number,
                    "old_size": last.size,
                    "new_size": staged.size,
                    "old_sha256": last.sha256[:16],
                    "new_sha256": staged.sha256[:16],
                },
            )
        if report.error_count:
            record_event(
                self.session,
                EventTag.HARVEST_VALIDATION_FAILURE,
                actor=self.actor,
                target=target,
                details={"errors": report.error_count,
                         # pairs, not a dict: codes such as "pii-nik" are not secret keys
                         "by_type": sorted(report.error_counts.items())},
            )
        for finding in report.pii:  # column, detector and count only: never a value
            record_event(
                self.session,
                EventTag.HARVEST_PII_DETECT,
                actor=self.actor,
                target=target,
                details={
                    "column": finding.column,
                    "detector": finding.detector,
                    "count": finding.count,
                },
            )
        if not report.valid:
            record_event(
                self.session,
                EventTag.HARVEST_VERSION_QUARANTINE,
                actor=self.actor,
                target=target,
                details={"file": staged.filename},
            )

    def _apply_metadata(self, dataset: Dataset, source_metadata: dict[str, Any]) -> bool:
        """Apply the source's metadata, except the fields a steward edited (``curated_fields``)."""
        before = _snapshot(dataset)
        curated = set(dataset.curated_fields or ())
        metadata = {k: v for k, v in source_metadata.items() if k not in curated}
        for key, attr in TEXT_FIELDS.items():
            value = metadata.get(key)
            if value is None:
                continue
            if key == "schema" and not SCHEMA_NAME.match(str(value)):
                raise ValueError(f"schema name {value!r} is not a plain schema name")
            setattr(dataset, attr, str(value))
        if "access_level" in metadata:
            dataset.access_level = AccessLevel(metadata["access_level"])
        if "frequency" in metadata:
            dataset.frequency = Frequency(metadata["frequency"])
        if "tags" in metadata:
            dataset.tags = [self._tag(str(name)) for name in dict.fromkeys(metadata["tags"])]
        known = set(TEXT_FIELDS) | {"access_level", "frequency", "tags", "resource_title"}
        extras = {k: v for k, v in source_metadata.items() if k not in known}
        if extras != (dataset.extras or {}):
            dataset.extras = extras
        return _snapshot(dataset) != before

    def _tag(self, name: str) -> Tag:
        name = name.strip().lower()[:100]
        tag = self.session.scalars(select(Tag).where(Tag.name == name)).first()
        if tag is None:
            tag = Tag(name=name)
            self.session.add(tag)
            self.session.flush()
        return tag

    def _unique_name(self, base: str) -> str:
        name, n = base, 1
        while self.session.scalars(select(Dataset.id).where(Dataset.name == name)).first():
            n += 1
            name = f"{base}-{n}"
        return name


def _with_canonical_numbers(
    staged: StagedFile, schema: dict[str, Any] | None, report: CheckReport
) -> StagedFile:
    """Rewrite Indonesian-style numbers (``1.234.567``, ``12,5``) in numeric CSV columns.

    Only tables whose checks found type errors in numeric columns can need it (see
    :func:`harvesters.numbers.may_need_converting`); the others are returned as they are.
    """
    if schema is None or (staged.format != "csv" and staged.table is None):
        return staged  # XLSX cells carry their own numeric types
    type_errors = (issue.field for issue in report.issues if issue.code == "type-error")
    if not may_need_converting(type_errors, schema):
        return staged
    converted = staged.path.with_name(staged.path.name + ".numbers.csv")
    try:
        columns = normalise_numbers(staged.table_path, converted, schema)
    except (OSError, UnicodeDecodeError, csv.Error):
        return staged  # the checks will report what is wrong with the file
    return attach_table(staged, converted) if columns else staged


def _snapshot(dataset: Dataset) -> tuple[Any, ...]:
    return (
        *(getattr(dataset, attr) for attr in TEXT_FIELDS.values()),
        dataset.access_level,
        dataset.frequency,
        tuple(sorted(tag.name for tag in dataset.tags)),
        repr(sorted((dataset.extras or {}).items())),
    )


def _summary(report: CheckReport) -> str:
    parts = [f"{code}×{n}" for code, n in sorted(report.error_counts.items())]
    if report.pii:
        parts.append("personal data in " + ", ".join(sorted({f.column for f in report.pii})))
    return f"quarantined ({', '.join(parts)})"
