"""Public catalog pages and downloads."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    render_template,
    request,
    send_file,
    stream_with_context,
)

from portal import datastore
from portal.db import get_session
from portal.errors import NotFound
from portal.identity import request_info
from portal.models import Version
from portal.services import catalog, downloads
from portal.services.access import Permission, can
from portal.storage import get_storage
from portal.views import current_actor

bp = Blueprint("catalog", __name__)


@bp.get("/")
def home() -> str:
    session = get_session()
    latest = catalog.search_datasets(session, current_actor(), page_size=6)
    organizations = catalog.list_organizations(session, current_actor())
    return render_template("home.html", latest=latest, organizations=organizations)


@bp.get("/dataset")
def dataset_list() -> str:
    q = request.args.get("q", "")[:200]
    result = catalog.search_datasets(
        get_session(),
        current_actor(),
        q=q,
        organization=request.args.get("organization") or None,
        tag=request.args.get("tag") or None,
        page=request.args.get("page", 1, type=int) or 1,
        page_size=current_app.config["PAGE_SIZE"],
    )
    return render_template("dataset_list.html", result=result, q=q)


@bp.get("/dataset/<name>")
def dataset_page(name: str) -> str:
    dataset = catalog.get_dataset(get_session(), current_actor(), name)
    # a restricted dataset's page is public, its rows are not: no preview without the right
    readable = can(current_actor(), Permission.CATALOG_DATASET_DOWNLOAD, dataset)
    storage = get_storage()
    previews = {}
    for resource in dataset.resources:
        version = resource.current_version
        if readable and version is not None and version.rows_key:
            previews[resource.id] = datastore.preview(
                storage.path(version.rows_key), current_app.config["PREVIEW_ROWS"]
            )
    return render_template(
        "dataset.html",
        dataset=dataset,
        previews=previews,
        readable=readable,
        public_versions=catalog.public_versions,
    )


@bp.get("/organization")
def organization_list() -> str:
    organizations = catalog.list_organizations(get_session(), current_actor())
    return render_template("organization_list.html", organizations=organizations)


@bp.get("/organization/<name>")
def organization_page(name: str) -> str:
    session = get_session()
    organization = catalog.get_organization(session, name)
    result = catalog.search_datasets(
        session,
        current_actor(),
        organization=name,
        page=request.args.get("page", 1, type=int) or 1,
        page_size=current_app.config["PAGE_SIZE"],
    )
    return render_template("organization.html", organization=organization, result=result)


@bp.get("/dataset/<name>/resource/<resource_id>/download")
def download_original(name: str, resource_id: str) -> Response:
    resource = catalog.get_resource(get_session(), current_actor(), name, resource_id)
    version = catalog.downloadable_version(
        current_actor(), resource, request.args.get("version", type=int)
    )
    _log_access(version, downloads.ORIGINAL)
    return send_file(
        get_storage().path(version.original_key),
        download_name=version.filename,
        as_attachment=True,
        etag=version.sha256,
        conditional=True,
        max_age=3600,
    )


@bp.get("/dataset/<name>/resource/<resource_id>/download.csv")
def download_csv(name: str, resource_id: str) -> Response:
    resource = catalog.get_resource(get_session(), current_actor(), name, resource_id)
    version = catalog.downloadable_version(
        current_actor(), resource, request.args.get("version", type=int)
    )
    if not version.rows_key:
        raise NotFound("this version has no table to export")
    path = get_storage().path(version.rows_key)
    filename = f"{name}-v{version.number}.csv"
    _log_access(version, "csv")
    return Response(
        stream_with_context(datastore.iter_csv(path)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": f'"{version.sha256}-csv"',
        },
    )


def _log_access(version: Version, kind: str) -> None:
    """Log a download of non-public data, committed now: a streamed body must not hold the
    log's head lock (and so every other writer) until the last byte is sent."""
    if downloads.record_data_access(
        get_session(), current_actor(), version, kind, request=request_info(200)
    ):
        get_session().commit()
