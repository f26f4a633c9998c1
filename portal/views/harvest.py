"""Harvest health for everyone, job progress; error details only for stewards and admins."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, current_app, render_template
from flask_babel import gettext as _
from sqlalchemy import select

from portal.db import get_session
from portal.errors import NotFound
from portal.models import HarvestJob
from portal.services.harvest_items import job_items
from portal.services.harvest_schedule import aware
from portal.services.harvest_sources import may_manage_sources
from portal.services.health import SourceHealth, organization_health, source_health
from portal.views import current_actor

bp = Blueprint("harvest", __name__)


@bp.app_template_global()
def job_labels() -> dict[str, str]:
    """Words for a job's status and its item outcomes, in the page's language (also for job.js)."""
    return {
        "pending": _("waiting"),
        "running": _("running"),
        "done": _("done"),
        "failed": _("failed"),
        "added": _("added"),
        "updated": _("updated"),
        "unchanged": _("unchanged"),
        "withdrawn": _("withdrawn"),
        "skipped": _("skipped"),
        "quarantined": _("quarantined"),
        "in_review": _("waiting for review"),
        "published": _("published"),
        "rejected": _("rejected"),
    }


def _health_dict(h: SourceHealth, with_errors: bool) -> dict[str, Any]:
    data = asdict(h)
    for key, value in data.items():
        if hasattr(value, "isoformat"):
            data[key] = value.isoformat()
        elif hasattr(value, "value"):
            data[key] = value.value
    if not with_errors:
        data["last_error"] = None
        data["last_errors_by_type"] = None
    return data


@bp.get("/harvest")
def health_page() -> str:
    sources = source_health(get_session())
    actor = current_actor()
    return render_template(
        "harvest_health.html",
        sources=sources,
        organizations=organization_health(sources),
        show_errors=actor.is_staff,
        can_manage=may_manage_sources(actor),
    )


@bp.get("/harvest/job/<int:job_id>")
def job_page(job_id: int) -> str:
    job = _job(job_id)
    actor = current_actor()
    return render_template(
        "harvest_job.html",
        job=job,
        items=job_items(get_session(), actor, job),
        show_errors=actor.is_staff,
        can_manage=may_manage_sources(actor),
    )


@bp.get("/api/v1/harvest/sources")
def api_sources() -> dict[str, Any]:
    sources = source_health(get_session())
    staff = current_actor().is_staff
    return {
        "ok": True,
        "count": len(sources),
        "results": [_health_dict(h, staff) for h in sources],
        "organizations": [asdict(o) for o in organization_health(sources)],
    }


@bp.get("/api/v1/harvest/sources/<name>")
def api_source(name: str) -> dict[str, Any]:
    for h in source_health(get_session()):
        if h.name == name:
            return {"ok": True, "result": _health_dict(h, current_actor().is_staff)}
    raise NotFound(f"no harvest source named {name!r}")


@bp.get("/api/v1/harvest/jobs/<int:job_id>")
def api_job(job_id: int) -> dict[str, Any]:
    job = _job(job_id)
    staff = current_actor().is_staff
    counts = {k: v for k, v in (job.counts or {}).items() if k != "items"}
    if not staff:
        counts.pop("errors_by_type", None)
    return {
        "ok": True,
        "result": {
            "id": job.id,
            "source": job.source.name,
            "status": job.status.value,
            "dry_run": job.dry_run,
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "heartbeat_at": _iso(job.heartbeat_at),
            "total": job.total,
            "done": job.done,
            "counts": counts,
            "error": job.error if staff else None,
            "poll_seconds": current_app.config.get("JOB_POLL_SECONDS", 2),
        },
    }


def _job(job_id: int) -> HarvestJob:
    job = get_session().scalars(select(HarvestJob).where(HarvestJob.id == job_id)).first()
    if job is None:
        raise NotFound(f"no harvest job {job_id}")
    return job


def _iso(value: Any) -> str | None:
    return aware(value).isoformat() if value else None
