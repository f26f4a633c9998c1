"""Small builders shared by the portal tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask

from portal import db
from portal.harvesting import JobSummary, run_one
from portal.services.harvest import create_source
from portal.services.organizations import ensure_organization

PRICE_SCHEMA = {
    "fields": [
        {"name": "tanggal", "type": "date"},
        {"name": "komoditas", "type": "string", "constraints": {"required": True}},
        {"name": "harga", "type": "number", "constraints": {"minimum": 0}},
    ]
}


def write_dataset(folder: Path, slug: str, csv_text: str, **meta: Any) -> Path:
    """Write ``<slug>.csv`` and its sidecar into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}.csv"
    path.write_text(csv_text, encoding="utf-8")
    sidecar = {"title": slug.replace("-", " ").title(), "schema": "harga-uji", **meta}
    (folder / f"{slug}.meta.json").write_text(json.dumps(sidecar), encoding="utf-8")
    return path


def write_schemas(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "harga-uji.schema.json").write_text(json.dumps(PRICE_SCHEMA), encoding="utf-8")
    return folder


def add_folder_source(app: Flask, folder: Path, *, trusted: bool = True, name: str = "uji") -> str:
    with app.app_context(), db.transaction() as session:
        org = ensure_organization(session, name="dinas-uji", title="Dinas Uji")
        source = create_source(
            session, kind="folder", url=str(folder), organization=org, name=name, trusted=trusted
        )
        return source.name


def harvest(app: Flask, source_name: str, *, dry_run: bool = False) -> JobSummary:
    """Run one source to the end in this thread, the way `onedata harvest run` does."""
    return run_one(app, source_name, dry_run=dry_run)


def fetch(client: Any, url: str) -> tuple[int, bytes]:
    """GET ``url`` and close the response (file downloads hold an open file until closed)."""
    response = client.get(url)
    try:
        return response.status_code, response.get_data()
    finally:
        response.close()
