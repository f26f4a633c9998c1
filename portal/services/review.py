"""A steward's decisions beyond approve and reject: override a quarantine, withdraw, edit metadata.

Approving and rejecting live in :mod:`portal.services.publishing`, next to the pointer they flip.
Every decision here is allowed by :func:`portal.services.access.can` and leaves one event in the
security log, in the caller's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.orm import Session

from portal.errors import Conflict, Invalid
from portal.models import AccessLevel, Dataset, DatasetState, Frequency, Tag, Version, VersionStatus
from portal.services.access import Actor, Permission
from portal.services.events import EventTag, RequestInfo, record_event
from portal.services.ingest import TEXT_FIELDS
from portal.services.publishing import REASON_CHARS, make_current, require

__all__ = [
    "EDITABLE_FIELDS",
    "edit_dataset_metadata",
    "latest_quarantined",
    "override_version",
    "quarantined_for_personal_data",
    "withdraw_dataset",
]

#: Metadata a steward may edit (the Satu Data fields a harvest fills in), by their sidecar name.
EDITABLE_FIELDS = (
    *(key for key in TEXT_FIELDS if key != "schema"),  # a new schema means a new check, not an edit
    "access_level",
    "frequency",
    "tags",
)
#: Fields whose old and new values the log keeps; for the others (free text that may name a
#: person, such as ``contact``) only the field name is logged.
LOGGED_VALUES = frozenset(
    {"title", "topic", "license", "coverage", "coverage_code", "period", "unit", "access_level",
     "frequency", "tags"}
)
#: Free text the log keeps of a logged value.
VALUE_CHARS = 120
REQUIRED = frozenset({"title", "license"})
PATTERNS = {
    "license": re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,49}$"),  # an SPDX-style identifier
    "coverage_code": re.compile(r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$"),  # kode wilayah (BPS)
}
TAG_NAME = re.compile(r"^[\w .&/-]{1,100}$")
MAX_TAGS = 20


def quarantined_for_personal_data(version: Version) -> bool:
    """Whether the checks found personal data in ``version`` (the gate no one can override)."""
    report = version.check_report or {}
    codes = set((report.get("error_counts") or {}).keys())
    codes |= {str(issue.get("code", "")) for issue in report.get("issues") or []}
    return bool(report.get("pii")) or any(code.startswith("pii") for code in codes)


def override_version(
    session: Session,
    actor: Actor,
    version: Version,
    reason: str,
    *,
    request: RequestInfo | None = None,
) -> None:
    """Publish a quarantined version despite its check errors, for a stated reason.

    The version is served as its original file only: no rows table is built from data that
    failed its Table Schema. A version quarantined for personal data can never be published.

    :param actor: the steward or admin who takes the decision.
    :param version: a quarantined version.
    :param reason: why the errors are acceptable (kept with the version; the log keeps its start).
    :param request: the HTTP context, when a web request overrides.
    :raises Forbidden: when ``actor`` may not approve and publish this dataset.
    :raises Invalid: when no reason is given.
    :raises Conflict: when the version is not quarantined, or was quarantined for personal data.
    """
    dataset = version.resource.dataset
    require(actor, Permission.REVIEW_VERSION_APPROVE, dataset)
    require(actor, Permission.REVIEW_DATASET_PUBLISH, dataset)
    reason = reason.strip()
    if not reason:
        raise Invalid("an override needs a reason")
    if version.status is not VersionStatus.QUARANTINED:
        raise Conflict(f"version {version.number} is {version.status.value}, not quarantined")
    if quarantined_for_personal_data(version):
        raise Conflict(
            f"version {version.number} of {dataset.name!r} holds personal data and can never be "
            "published; the producer must send an aggregate table instead"
        )
    version.note = reason
    report = version.check_report or {}
    record_event(
        session,
        EventTag.REVIEW_VERSION_OVERRIDE,
        actor=actor,
        target=version,
        details={
            "dataset": dataset.name,
            "resource": version.resource_id,
            "version": version.number,
            "errors": int(report.get("error_count") or 0),
            "by_type": sorted((report.get("error_counts") or {}).items()),
            "reason": reason[:REASON_CHARS],
        },
        request=request,
    )
    make_current(session, actor, version, request=request)


def withdraw_dataset(
    session: Session,
    actor: Actor,
    dataset: Dataset,
    reason: str,
    *,
    request: RequestInfo | None = None,
) -> None:
    """Take a published dataset away from the public (its versions are kept).

    :param actor: the steward or admin who withdraws it.
    :param reason: why (the log keeps its start).
    :param request: the HTTP context, when a web request withdraws.
    :raises Forbidden: when ``actor`` may not withdraw this dataset.
    :raises Invalid: when no reason is given.
    :raises Conflict: when the dataset is not published.
    """
    require(actor, Permission.REVIEW_DATASET_WITHDRAW, dataset)
    reason = reason.strip()
    if not reason:
        raise Invalid("a withdrawal needs a reason")
    if dataset.state is not DatasetState.PUBLISHED:
        raise Conflict(f"dataset {dataset.name!r} is {dataset.state.value}, not published")
    dataset.state = DatasetState.WITHDRAWN
    session.flush()
    record_event(
        session,
        EventTag.REVIEW_DATASET_WITHDRAW,
        actor=actor,
        target=dataset,
        details={"dataset": dataset.name, "reason": reason[:REASON_CHARS]},
        request=request,
    )


def edit_dataset_metadata(
    session: Session,
    actor: Actor,
    dataset: Dataset,
    changes: Mapping[str, str],
    *,
    request: RequestInfo | None = None,
) -> list[str]:
    """Change a dataset's Satu Data metadata; values are text (``tags``: comma-separated).

    Nothing changes unless every value is valid. The log records which fields changed, with old
    and new values only for short fields that cannot hold personal data (:data:`LOGGED_VALUES`).

    :param actor: the steward or admin who edits.
    :param changes: field name (see :data:`EDITABLE_FIELDS`) → new value; ``""`` clears an
        optional field.
    :param request: the HTTP context, when a web request edits.
    :returns: the names of the fields that changed (none: nothing is recorded).
    :raises Forbidden: when ``actor`` may not edit this dataset.
    :raises Invalid: naming every field whose name or value is not valid.
    """
    require(actor, Permission.CATALOG_DATASET_EDIT, dataset)
    values, errors = _parse(changes)
    if errors:
        raise Invalid("the metadata is not valid", errors)
    changed: dict[str, list[Any]] = {}
    for key, value in values.items():
        old = _current(dataset, key)
        new = sorted(value) if key == "tags" else value
        if old == new:
            continue
        changed[key] = [old, new]
        if key == "tags":
            dataset.tags = [_tag(session, name) for name in value]
        else:
            setattr(dataset, _attribute(key), value)
    if not changed:
        return []
    # the steward's word stands: later harvests leave these fields as they are now
    dataset.curated_fields = sorted(set(dataset.curated_fields or ()) | set(changed))
    session.flush()
    record_event(
        session,
        EventTag.REVIEW_DATASET_EDIT,
        actor=actor,
        target=dataset,
        details={
            "dataset": dataset.name,
            "fields": sorted(changed),
            "changes": {
                key: [_short(old), _short(new)]
                for key, (old, new) in sorted(changed.items())
                if key in LOGGED_VALUES
            },
        },
        request=request,
    )
    return sorted(changed)


def _parse(changes: Mapping[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    values: dict[str, Any] = {}
    errors: list[dict[str, str]] = []

    def refuse(key: str, code: str, message: str) -> None:
        errors.append({"field": key, "code": code, "message": message})

    for key, raw in changes.items():
        text = str(raw).strip()
        if key not in EDITABLE_FIELDS:
            refuse(key, "unknown_field", f"{key!r} is not an editable field")
        elif key == "access_level":
            try:
                values[key] = AccessLevel(text)
            except ValueError:
                refuse(key, "invalid_choice", f"one of {', '.join(a.value for a in AccessLevel)}")
        elif key == "frequency":
            try:
                values[key] = Frequency(text) if text else None
            except ValueError:
                refuse(key, "invalid_choice", f"one of {', '.join(f.value for f in Frequency)}")
        elif key == "tags":
            names = list(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
            bad = [n for n in names if not TAG_NAME.match(n)]
            if bad or len(names) > MAX_TAGS:
                refuse(key, "invalid_tags", f"at most {MAX_TAGS} tags of letters and digits")
            else:
                values[key] = names
        elif not text and key in REQUIRED:
            refuse(key, "required", f"{key} cannot be empty")
        elif key in PATTERNS and text and not PATTERNS[key].match(text):
            refuse(key, "invalid_format", f"{key} is not in the expected format")
        elif len(text) > _max_length(key):
            refuse(key, "too_long", f"{key} is longer than {_max_length(key)} characters")
        else:
            values[key] = text if text or key == "description" else None
    return values, errors


def _attribute(key: str) -> str:
    return TEXT_FIELDS.get(key, key)


def _max_length(key: str) -> int:
    column_type = Dataset.__table__.c[_attribute(key)].type
    length = column_type.length if isinstance(column_type, String) else None
    return length or 20_000  # Text columns: a generous bound against abuse


def _current(dataset: Dataset, key: str) -> Any:
    if key == "tags":
        return sorted(tag.name for tag in dataset.tags)
    return getattr(dataset, _attribute(key))


def _short(value: Any) -> Any:
    if isinstance(value, list):
        return [_short(item) for item in value]
    if isinstance(value, str) and len(value) > VALUE_CHARS:
        return value[:VALUE_CHARS] + "…"
    return value


def _tag(session: Session, name: str) -> Tag:
    tag = session.scalars(select(Tag).where(Tag.name == name)).first()
    if tag is None:
        tag = Tag(name=name)
        session.add(tag)
        session.flush()
    return tag


def latest_quarantined(dataset: Dataset) -> list[Version]:
    """For each resource of ``dataset``, its newest version when that one is quarantined.

    Older quarantined versions are left alone: publishing one would roll the data back.
    """
    found = []
    for resource in dataset.resources:
        newest = max(resource.versions, key=lambda v: v.number, default=None)
        if newest is not None and newest.status is VersionStatus.QUARANTINED:
            found.append(newest)
    return found
