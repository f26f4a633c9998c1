"""JSON API v1: parse → service → serialise. Errors take the one shape of ``portal.errors``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request, url_for

from portal.db import get_session
from portal.errors import Invalid
from portal.models import Dataset, Organization, Resource, Version
from portal.services import catalog
from portal.views import current_actor

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE_SIZE = 100


def _int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(
            f"{name} must be an integer",
            [{"field": name, "code": "invalid_integer", "message": f"{name} must be an integer"}],
        ) from None
    if not minimum <= value <= maximum:
        message = f"{name} must be between {minimum} and {maximum}"
        raise Invalid(message, [{"field": name, "code": "out_of_range", "message": message}])
    return value


@bp.get("/datasets")
def datasets() -> dict[str, Any]:
    result = catalog.search_datasets(
        get_session(),
        current_actor(),
        q=request.args.get("q", "")[:200],
        organization=request.args.get("organization") or None,
        tag=request.args.get("tag") or None,
        page=_int_arg("page", 1, 1, 100_000),
        page_size=_int_arg("page_size", current_app.config["PAGE_SIZE"], 1, MAX_PAGE_SIZE),
    )
    return {
        "ok": True,
        "count": result.total,
        "page": result.page,
        "page_size": result.page_size,
        "results": [dataset_summary(d) for d in result.datasets],
    }


@bp.get("/datasets/<name>")
def dataset(name: str) -> dict[str, Any]:
    found = catalog.get_dataset(get_session(), current_actor(), name)
    return {"ok": True, "result": dataset_detail(found)}


@bp.get("/organizations")
def organizations() -> dict[str, Any]:
    rows = catalog.list_organizations(get_session(), current_actor())
    return {
        "ok": True,
        "count": len(rows),
        "results": [{**organization_dict(org), "dataset_count": n} for org, n in rows],
    }


def organization_dict(org: Organization) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "title": org.title,
        "description": org.description,
        "url": org.url,
    }


def dataset_summary(d: Dataset) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "title": d.title,
        "organization": d.organization.name,
        "topic": d.topic,
        "tags": [t.name for t in d.tags],
        "access_level": d.access_level.value,
        "state": d.state.value,
        "published_at": d.published_at.isoformat() if d.published_at else None,
        "url": url_for("catalog.dataset_page", name=d.name, _external=True),
        "api_url": url_for("api.dataset", name=d.name, _external=True),
    }


def dataset_detail(d: Dataset) -> dict[str, Any]:
    return {
        **dataset_summary(d),
        "description": d.description,
        "organization": organization_dict(d.organization),
        "license": d.license_id,
        "frequency": d.frequency.value if d.frequency else None,
        "coverage": d.coverage,
        "coverage_code": d.coverage_code,
        "period": d.period,
        "unit": d.unit,
        "measure": d.measure,
        "concept": d.concept,
        "definition": d.definition,
        "classification": d.classification,
        "collection_method": d.collection_method,
        "contact": d.contact,
        "schema": d.schema_name,
        "extras": d.extras,
        "created_at": d.created_at.isoformat(),
        "updated_at": d.updated_at.isoformat(),
        "resources": [resource_dict(d, r) for r in d.resources],
    }


def resource_dict(d: Dataset, r: Resource) -> dict[str, Any]:
    current = r.current_version
    return {
        "id": r.id,
        "name": r.name,
        "current_version": current.number if current else None,
        "versions": [version_dict(d, r, v) for v in catalog.public_versions(r)],
    }


def version_dict(d: Dataset, r: Resource, v: Version) -> dict[str, Any]:
    args: dict[str, Any] = {"name": d.name, "resource_id": r.id, "version": v.number}
    return {
        "number": v.number,
        "sha256": v.sha256,
        "size": v.size,
        "row_count": v.row_count,
        "format": v.format,
        "filename": v.filename,
        "created_at": v.created_at.isoformat(),
        "published_at": v.published_at.isoformat() if v.published_at else None,
        "schema": v.table_schema,
        "download_url": url_for("catalog.download_original", _external=True, **args),
        "csv_url": url_for("catalog.download_csv", _external=True, **args) if v.rows_key else None,
    }
