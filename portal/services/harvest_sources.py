"""Managing harvest sources: who may add, edit, pause, test and run which source.

Producers manage the sources of their own OPDs; stewards and admins manage every source. Only
stewards and admins may mark a source as trusted (its clean versions publish without review),
and a producer who changes where a trusted source's data comes from (kind, URL or config) drops
that trust until a steward gives it again. Sources that read this server's own files (the
``folder`` kind, SQLite files) are for stewards and admins only: a producer could otherwise point
one at the portal's own database.

Every change is a ``system:config:change`` security event naming the source and the changed
fields; a URL's password and the values of ``config`` never reach the log. Connection tests and
the masking of secrets live in :mod:`portal.services.harvest_sources_check`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from harvesters import REGISTRY, get_harvester
from portal.errors import Forbidden, Invalid
from portal.models import Frequency, HarvestJob, HarvestSource, JobStatus, Organization, utcnow
from portal.services.access import Actor, Permission, can
from portal.services.events import EventTag, RequestInfo, record_event
from portal.services.harvest import create_source, get_source
from portal.services.harvest_schedule import aware
from portal.services.harvest_sources_check import (
    mask_url,
    restore_masked_config,
    restore_masked_url,
)

#: Fields whose values may go into the security log (``url`` masked); others by name only.
LOGGED_VALUES = ("kind", "url", "title", "frequency", "trusted", "active")


def may_manage_sources(actor: Actor) -> bool:
    """Whether ``actor`` may manage any harvest source (stewards, admins, producers with an OPD).

    :param actor: who is asking.
    """
    return actor.is_staff or any(
        can(actor, Permission.HARVEST_SOURCE_MANAGE, org_id=org) for org in actor.org_ids
    )


def managed_organizations(session: Session, actor: Actor) -> list[Organization]:
    """The OPDs ``actor`` may register sources for, by title.

    :param actor: who is asking.
    """
    orgs = session.scalars(select(Organization).order_by(Organization.title))
    return [o for o in orgs if can(actor, Permission.HARVEST_SOURCE_MANAGE, org_id=o.id)]


def list_managed_sources(session: Session, actor: Actor) -> list[HarvestSource]:
    """The sources ``actor`` may manage, by name.

    :param actor: who is asking.
    """
    query = select(HarvestSource).order_by(HarvestSource.name)
    if not actor.is_staff:
        query = query.where(HarvestSource.organization_id.in_(sorted(actor.org_ids)))
    return [
        s
        for s in session.scalars(query)
        if can(actor, Permission.HARVEST_SOURCE_MANAGE, org_id=s.organization_id)
    ]


def get_managed_source(session: Session, actor: Actor, name: str) -> HarvestSource:
    """The source called ``name``, when ``actor`` may manage it.

    :raises NotFound: when there is no such source.
    :raises Forbidden: when the source belongs to an OPD ``actor`` does not manage.
    """
    source = get_source(session, name)
    _require(actor, source.organization_id)
    return source


def add_source(
    session: Session,
    actor: Actor,
    *,
    organization: Organization,
    kind: str,
    url: str,
    name: str | None = None,
    title: str | None = None,
    frequency: Frequency = Frequency.DAILY,
    trusted: bool = False,
    config: dict[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> HarvestSource:
    """Register a source for ``organization`` and record the change.

    :param actor: who adds it; must manage ``organization``.
    :param trusted: publish clean versions without review (stewards and admins only).
    :param config: the harvester's options (a JSON object).
    :param request: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` may not manage the OPD, mark the source trusted or use a
        kind that reads this server's files.
    :raises Invalid: when the kind is unknown or a field is malformed.
    :raises Conflict: when the name is taken.
    """
    _require(actor, organization.id)
    if trusted and not actor.is_staff:
        raise Forbidden("only stewards and admins may mark a source as trusted")
    url, title = _check_fields(actor, kind, url, title, config)
    source = create_source(
        session,
        kind=kind,
        url=url,
        organization=organization,
        name=name or None,
        title=title,
        trusted=trusted,
        frequency=frequency,
        config=config,
    )
    created = ["kind", "url", "title", "frequency", "trusted", "config"]
    _record(session, actor, source, "create", created, request)
    return source


def update_source(
    session: Session,
    actor: Actor,
    source: HarvestSource,
    *,
    kind: str | None = None,
    url: str | None = None,
    title: str | None = None,
    frequency: Frequency | None = None,
    trusted: bool | None = None,
    config: dict[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> list[str]:
    """Change the given fields of ``source`` (``None``: unchanged) and record the change.

    A URL password or a secret config value equal to :data:`MASK` keeps the stored secret (edit
    forms show them masked: :func:`mask_url`, :func:`mask_config`).

    :param trusted: stewards and admins only; a producer's change of kind, URL or config drops
        the trust of a trusted source.
    :param request: the HTTP context, for the security log.
    :returns: the names of the fields that changed (empty: nothing was recorded).
    :raises Forbidden: see :func:`add_source`.
    :raises Invalid: when the kind is unknown or a field is malformed.
    """
    _require(actor, source.organization_id)
    if trusted is not None and trusted != source.trusted and not actor.is_staff:
        raise Forbidden("only stewards and admins may change whether a source is trusted")
    new_kind = kind if kind is not None else source.kind
    new_url = restore_masked_url(url, source.url) if url is not None else source.url
    stored = dict(source.config or {})
    new_config = restore_masked_config(config, stored) if config is not None else stored
    new_url, new_title = _check_fields(actor, new_kind, new_url, title or source.title, new_config)
    wanted: dict[str, Any] = {
        "kind": new_kind,
        "url": new_url,
        "title": new_title or source.title,
        "frequency": frequency if frequency is not None else source.frequency,
        "config": new_config,
    }
    if trusted is not None:
        wanted["trusted"] = trusted
    changed = [field for field, value in wanted.items() if getattr(source, field) != value]
    moved = {"kind", "url", "config"} & set(changed)
    if moved and source.trusted and not actor.is_staff:
        wanted["trusted"] = False  # new data from a new place: a steward must trust it again
        changed.append("trusted")
    for field in changed:
        setattr(source, field, wanted[field])
    if changed:
        session.flush()
        _record(session, actor, source, "update", changed, request)
    return changed


def set_active(
    session: Session,
    actor: Actor,
    source: HarvestSource,
    active: bool,
    *,
    request: RequestInfo | None = None,
) -> bool:
    """Pause (``active=False``) or resume a source: paused sources are never due.

    :param request: the HTTP context, for the security log.
    :returns: whether anything changed.
    :raises Forbidden: when ``actor`` may not manage the source.
    """
    _require(actor, source.organization_id)
    if source.active == active:
        return False
    source.active = active
    session.flush()
    _record(session, actor, source, "resume" if active else "pause", ["active"], request)
    return True


def queue_run(
    session: Session, actor: Actor, source: HarvestSource, *, abandon_after: timedelta
) -> tuple[HarvestJob, bool]:
    """A pending job for ``source`` that the next run takes over ("run now").

    The caller commits, then starts the run (RQ or a thread); the run claims this job through
    :func:`portal.services.harvest.claim_pending_job`, so its page shows that run's progress.
    A job already running or waiting is returned instead of a new one; a job left pending
    longer than ``abandon_after`` (no worker took it) is marked failed first.

    :param abandon_after: how long a job may wait for a worker.
    :returns: the job, and whether it is new (so a run must be started).
    :raises Forbidden: when ``actor`` may not manage the source.
    """
    _require(actor, source.organization_id)
    now = utcnow()
    waiting = session.scalars(
        select(HarvestJob)
        .where(
            HarvestJob.source_id == source.id,
            HarvestJob.dry_run.is_(False),
            HarvestJob.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
        )
        .order_by(HarvestJob.id.desc())
    ).all()
    for job in waiting:
        if job.status is JobStatus.PENDING and now - aware(job.created_at) > abandon_after:
            job.status, job.finished_at = JobStatus.FAILED, now
            job.error = "no worker took this job: is `onedata worker` running?"
            continue
        return job, False
    job = HarvestJob(source_id=source.id, status=JobStatus.PENDING, created_at=now)
    session.add(job)
    session.flush()
    return job, True


def parse_config(text: str | None) -> dict[str, Any]:
    """Read a source's ``config`` from JSON text; empty text is ``{}``.

    :raises Invalid: when the text is not JSON or not a JSON object.
    """
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise Invalid(f"config is not valid JSON: {exc}", _field("config", str(exc))) from None
    if not isinstance(value, dict):
        message = f"config must be a JSON object ({{...}}), not {type(value).__name__}"
        raise Invalid(message, _field("config", message))
    return value


def kinds() -> list[str]:
    """Every harvester kind, by name."""
    return sorted(REGISTRY)


def _require(actor: Actor, org_id: str) -> None:
    if not can(actor, Permission.HARVEST_SOURCE_MANAGE, org_id=org_id):
        raise Forbidden("you may not manage the harvest sources of this OPD")


def _field(name: str, message: str) -> list[dict[str, Any]]:
    return [{"field": name, "code": "invalid", "message": message}]


def _check_fields(
    actor: Actor, kind: str, url: str, title: str | None, config: dict[str, Any] | None
) -> tuple[str, str | None]:
    try:
        get_harvester(kind)
    except KeyError as exc:
        raise Invalid(str(exc.args[0]), _field("kind", str(exc.args[0]))) from None
    url = url.strip()
    if not url or len(url) > 1000:
        raise Invalid("the URL must have 1 to 1000 characters", _field("url", "1-1000 characters"))
    title = (title or "").strip() or None
    if title and len(title) > 300:
        raise Invalid("the title must have at most 300 characters", _field("title", "too long"))
    if config is not None and not isinstance(config, dict):
        raise Invalid("config must be a JSON object", _field("config", "a JSON object"))
    if not actor.is_staff and _reads_this_server(kind, url):
        raise Forbidden(
            "only stewards and admins may register sources that read this server's files "
            "(folder sources and SQLite databases)"
        )
    return url, title


def _reads_this_server(kind: str, url: str) -> bool:
    return kind == "folder" or (kind == "sql" and url.lower().startswith("sqlite"))


def _record(
    session: Session,
    actor: Actor,
    source: HarvestSource,
    action: str,
    changed: list[str],
    request: RequestInfo | None,
) -> None:
    values: dict[str, Any] = {}
    for field in changed:
        if field in LOGGED_VALUES:
            value = getattr(source, field)
            values[field] = mask_url(value) if field == "url" else getattr(value, "value", value)
    details: dict[str, Any] = {
        "setting": "harvest_source",
        "action": action,
        "source": source.name,
        "organization": source.organization_id,
        "changed": sorted(changed),
        "values": values,
    }
    if "config" in changed or action == "create":
        details["config_keys"] = sorted(source.config or {})
    record_event(
        session,
        EventTag.SYSTEM_CONFIG_CHANGE,
        actor=actor,
        target=source,
        details=details,
        request=request,
    )


__all__ = [
    "add_source",
    "get_managed_source",
    "list_managed_sources",
    "managed_organizations",
    "may_manage_sources",
    "parse_config",
    "queue_run",
    "set_active",
    "update_source",
]
