"""A URL source harvested through the portal from a real local HTTP server serving datasets/."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from portal import db
from portal.models import JobStatus
from portal.services.harvest import create_source
from portal.services.organizations import ensure_organization
from tests.portal.helpers import harvest

ROOT = Path(__file__).resolve().parents[2]
FILE = "diskumdag/harga-bahan-pokok-2024-06.csv"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def datasets_server() -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(ROOT / "datasets"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _add(app, url: str) -> str:  # type: ignore[no-untyped-def]
    with app.app_context(), db.transaction() as session:
        org = ensure_organization(session, name="diskumdag", title="Diskumdag")
        meta = {"title": "Harga Bahan Pokok", "schema": "harga-bahan-pokok"}
        return create_source(
            session, kind="url", url=url, organization=org, name="harga-url", trusted=True,
            config={"metadata": meta},
        ).name


def test_url_source_publishes_then_304_is_unchanged(app_factory, datasets_server):
    app = app_factory(HARVEST_ALLOW_HOSTS="127.0.0.1")
    name = _add(app, f"{datasets_server}/{FILE}")
    job = harvest(app, name)
    assert job.status is JobStatus.DONE and job.counts["added"] == 1, job
    client = app.test_client()
    (dataset,) = client.get("/api/v1/datasets").get_json()["results"]
    detail = client.get(f"/api/v1/datasets/{dataset['name']}").get_json()["result"]
    assert detail["resources"][0]["versions"][0]["row_count"] == 1200

    again = harvest(app, name)
    assert again.counts["unchanged"] == 1 and again.counts["added"] == 0


def test_loopback_source_refused_without_allow_list(app_factory, datasets_server):
    app = app_factory()
    job = harvest(app, _add(app, f"{datasets_server}/{FILE}"))
    assert job.counts["failed"] == 1
    ((_, reason),) = job.failures
    assert "loopback" in reason and "ONEDATA_HARVEST_ALLOW_HOSTS" in reason
    assert app.test_client().get("/api/v1/datasets").get_json()["count"] == 0
