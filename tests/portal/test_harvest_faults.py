"""Faults at the source, through the portal's real harvest run, and what they leave behind.

Each test publishes version 1 of a dataset from a trusted source on a real local HTTP server,
then switches the server to a fault (it hangs; it drops the connection mid-file; it serves
"2 GB"; its data changes between pages) and harvests again through ``run_one`` / ``run_many``.
The job must end (never stay "running") with the right item outcome and a precise error, and
version 1 must still be current and served byte for byte: the original through
``/dataset/<name>/resource/<id>/download``, the rows file through its CSV export and on disk.

Short timeouts come from the operator's settings (``ONEDATA_HARVEST_CONNECT_TIMEOUT``,
``…_READ_TIMEOUT``, ``…_TOTAL_TIMEOUT``), with the local servers in
``ONEDATA_HARVEST_ALLOW_HOSTS``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from harvesters.errors import UNREACHABLE_CODES
from portal import db
from portal.harvesting import JobSummary, run_many
from portal.models import HarvestItem, HarvestJob, JobStatus, Version
from portal.models.events import SecurityEvent
from portal.services.events import EventTag
from portal.services.harvest import create_source
from portal.services.organizations import ensure_organization
from portal.storage import get_storage
from tests.harvesters.test_ckan import DATA as CKAN_DATA
from tests.harvesters.test_ckan import LINKS, REC, UPLOADS, ReplayCkan
from tests.harvesters.test_http import LocalServer, hang, respond
from tests.portal.helpers import fetch, harvest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "datasets" / "disdukcapil" / "penduduk-per-kelurahan-2024-s1.csv"
META = json.loads(SAMPLE.with_name(SAMPLE.stem + ".meta.json").read_text("utf-8"))
FILE = "/penduduk-per-kelurahan-2024-s1.csv"
API = "/api/v1/penduduk"
#: The largest file a harvester may store in these tests (``MAX_FILE_SIZE``).
CAP = 64 * 1024
TWO_GB = 2 * 1024**3
READ_TIMEOUT = 1.0
#: Far above what a one-second timeout needs, far below the default 30 s read timeout.
PATIENCE = 20.0


# -- servers, apps, sources --------------------------------------------------------------------


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    local = LocalServer(tmp_path_factory.mktemp("www"))
    (local.root / FILE.lstrip("/")).write_bytes(SAMPLE.read_bytes())
    yield local
    local.close()


#: Settings of every app here: loopback allowed, one-second read timeout.
SHORT_TIMEOUTS: dict[str, Any] = {
    "HARVEST_ALLOW_HOSTS": "127.0.0.1",
    "HARVEST_CONNECT_TIMEOUT": 2,
    "HARVEST_READ_TIMEOUT": READ_TIMEOUT,
    "HARVEST_TOTAL_TIMEOUT": 10,
}


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory(MAX_FILE_SIZE=CAP, **SHORT_TIMEOUTS)


def add_source(app: Flask, kind: str, url: str, name: str, **config: Any) -> str:
    with app.app_context(), db.transaction() as session:
        org = ensure_organization(session, name="disdukcapil", title="Disdukcapil")
        return create_source(
            session,
            kind=kind,
            url=url,
            organization=org,
            name=name,
            trusted=True,
            config={"metadata": META, **config},
        ).name


def records() -> list[dict[str, str]]:
    lines = SAMPLE.read_text("utf-8").splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]


PER_PAGE = 8


def paged_api(pages: Callable[[int], list[dict[str, str]]]) -> Callable[..., None]:
    """A SatuData-shaped endpoint: ``?page=N&per_page=8`` → ``{"data": {"items": [...]}}``."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        query = dict(parse_qsl(urlsplit(handler.path).query))
        body = json.dumps({"data": {"items": pages(int(query.get("page", "1")))}}).encode()
        respond(200, body, Content_Type="application/json", Content_Length=str(len(body)))(
            handler
        )

    return route


def honest(page: int) -> list[dict[str, str]]:
    data = records()
    return data[(page - 1) * PER_PAGE : page * PER_PAGE]


JSONAPI_OPTIONS = {
    "records_path": "data.items",
    "page_param": "page",
    "page_size_param": "per_page",
    "page_size": PER_PAGE,
}


# -- what was published, and what the run left --------------------------------------------------


@dataclass(frozen=True)
class Published:
    """Version 1 as the public sees it, and its files as stored."""

    dataset: str
    resource: str
    current: int | None
    public_versions: list[int]
    sha256: str
    original: bytes
    export: bytes
    rows_file: str


def published(app: Flask) -> Published:
    client = app.test_client()
    (summary,) = client.get("/api/v1/datasets").get_json()["results"]
    detail = client.get(f"/api/v1/datasets/{summary['name']}").get_json()["result"]
    (resource,) = detail["resources"]
    base = f"/dataset/{summary['name']}/resource/{resource['id']}"
    status, original = fetch(client, f"{base}/download")
    assert status == 200
    status, export = fetch(client, f"{base}/download.csv")
    assert status == 200
    with app.app_context():
        session = db.new_session()
        try:
            version = session.scalars(
                select(Version).where(
                    Version.resource_id == resource["id"],
                    Version.number == resource["current_version"],
                )
            ).one()
            assert version.rows_key is not None
            rows = get_storage().path(version.rows_key).read_bytes()
            sha = version.sha256
        finally:
            session.close()
    return Published(
        summary["name"],
        resource["id"],
        resource["current_version"],
        [v["number"] for v in resource["versions"]],
        sha,
        original,
        export,
        hashlib.sha256(rows).hexdigest(),
    )


def items_of(app: Flask, job: JobSummary) -> list[HarvestItem]:
    with app.app_context():
        session = db.new_session()
        try:
            query = select(HarvestItem).where(HarvestItem.job_id == job.job_id)
            return list(session.scalars(query.order_by(HarvestItem.id)))
        finally:
            session.close()


def events_of(app: Flask, job: JobSummary) -> dict[str, SecurityEvent]:
    with app.app_context():
        session = db.new_session()
        try:
            found = {}
            for event in session.scalars(select(SecurityEvent).order_by(SecurityEvent.seq)):
                if event.details.get("job") == job.job_id:
                    found[event.tag] = event
            return found
        finally:
            session.close()


def publish_v1(app: Flask, name: str) -> Published:
    first = harvest(app, name)
    assert first.status is JobStatus.DONE and first.counts["added"] == 1, first
    before = published(app)
    assert before.current == 1 and before.public_versions == [1]
    return before


def assert_one_failed_item(
    app: Flask, job: JobSummary, error_type: str, *messages: str
) -> HarvestItem:
    """The job finished, its one item failed with ``error_type``; the log says so.

    When the file could not be fetched at all (timeout, dropped connection), the source was
    unreachable: the job is failed and ``harvest:source:unreachable`` recorded; a bad file
    (too large) leaves the source reachable and the job done.
    """
    unreachable = error_type in UNREACHABLE_CODES
    status = JobStatus.FAILED if unreachable else JobStatus.DONE
    assert job.status is status, job  # finished, not "running", not lost
    assert job.counts["failed"] == 1 and job.counts["added"] == job.counts["updated"] == 0, job
    assert job.counts["errors_by_type"] == {error_type: 1}
    (item,) = items_of(app, job)
    assert item.outcome.value == "failed" and item.error_type == error_type
    for message in messages:
        assert message in (item.error or ""), item.error
    events = events_of(app, job)
    end = events[EventTag.HARVEST_RUN_END.value]
    assert end.details["status"] == status.value and end.details["counts"]["failed"] == 1
    assert (EventTag.HARVEST_SOURCE_UNREACHABLE.value in events) is unreachable
    return item


# -- one file over HTTP (url sources) ------------------------------------------------------------


def stream_past_the_cap(server: LocalServer) -> Callable[[BaseHTTPRequestHandler], None]:
    """A body without Content-Length (HTTP/1.0, ends at close) that would go on for ever."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/csv\r\n\r\n")
        handler.wfile.write(SAMPLE.read_bytes())
        chunk = SAMPLE.read_bytes().splitlines(keepends=True)[1] * 256
        sent = 0
        while sent < 64 * CAP and not server.stop.is_set():  # the client stops long before
            handler.wfile.write(chunk)
            sent += len(chunk)

    return route


FAULTS: dict[str, tuple[Callable[[LocalServer], Any], str, tuple[str, ...]]] = {
    # fault → (server route, item error type, phrases of the error message)
    "hangs": (hang, "fetch-timeout", ("timed out", f"read timeout={READ_TIMEOUT}")),
    "drops mid-file": (
        lambda s: respond(
            200, SAMPLE.read_bytes()[:500], Content_Length=str(len(SAMPLE.read_bytes()))
        ),
        "fetch-failed",
        ("connection broken after",),
    ),
    "declares 2 GB": (
        lambda s: respond(200, SAMPLE.read_bytes(), Content_Length=str(TWO_GB)),
        "file-too-large",
        ("2,147,483,648 bytes (Content-Length)", f"limit of {CAP:,} bytes"),
    ),
    "streams past the cap": (
        stream_past_the_cap,
        "file-too-large",
        (f"is larger than the limit of {CAP:,} bytes",),
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_url_source_fault_keeps_version_1(app: Flask, server: LocalServer, fault: str) -> None:
    name = add_source(app, "url", server.url(FILE), "penduduk-url")
    before = publish_v1(app, name)
    assert before.original == SAMPLE.read_bytes()

    route, error_type, messages = FAULTS[fault]
    server.routes[FILE] = route(server)
    started = time.monotonic()
    job = harvest(app, name)
    elapsed = time.monotonic() - started

    assert_one_failed_item(app, job, error_type, server.url(FILE), *messages)
    assert elapsed < PATIENCE, f"the {fault} source held the run {elapsed:.0f} s"
    assert published(app) == before
    assert [remote_id for remote_id, _ in job.failures] == ["penduduk-per-kelurahan-2024-s1"]


def test_url_source_recovers_after_the_fault(app: Flask, server: LocalServer) -> None:
    name = add_source(app, "url", server.url(FILE), "penduduk-url")
    before = publish_v1(app, name)
    server.routes[FILE] = hang(server)
    assert harvest(app, name).counts["failed"] == 1
    changed = SAMPLE.read_bytes().replace(b",7938,", b",7939,")
    server.routes[FILE] = respond(200, changed, ETag='"v2"', Content_Length=str(len(changed)))
    again = harvest(app, name)
    assert again.status is JobStatus.DONE and again.counts["updated"] == 1, again
    after = published(app)
    assert (after.current, sorted(after.public_versions)) == (2, [1, 2])
    assert after.original == changed and after.sha256 != before.sha256


def test_a_source_whose_only_file_hangs_is_reported_unreachable(
    app: Flask, server: LocalServer
) -> None:
    name = add_source(app, "url", server.url(FILE), "penduduk-url")
    publish_v1(app, name)
    server.routes[FILE] = hang(server)
    job = harvest(app, name)
    assert EventTag.HARVEST_SOURCE_UNREACHABLE.value in events_of(app, job)
    body = app.test_client().get("/api/v1/harvest/sources").get_json()
    (health,) = body["results"]
    assert health["reachable"] is False


# -- paged sources whose data changes between pages --------------------------------------------


def test_jsonapi_page_repeated_fails_the_item_and_keeps_version_1(
    app: Flask, server: LocalServer
) -> None:
    server.routes[API] = paged_api(honest)
    name = add_source(app, "jsonapi", server.url(API), "penduduk-api", **JSONAPI_OPTIONS)
    before = publish_v1(app, name)

    server.routes[API] = paged_api(lambda page: honest(1))  # the endpoint ignores ?page
    job = harvest(app, name)

    assert_one_failed_item(
        app, job, "source-unavailable", "returned the same page twice (at page=2)"
    )
    assert published(app) == before


def test_jsonapi_records_shifting_between_pages_are_quarantined(
    app: Flask, server: LocalServer
) -> None:
    """A record inserted at the source between two page requests shifts page 2 by one: its
    first record is page 1's last again. The harvester cannot tell (the pages differ); the
    schema's primary key catches the duplicate, so the new version is quarantined."""
    server.routes[API] = paged_api(honest)
    name = add_source(app, "jsonapi", server.url(API), "penduduk-api", **JSONAPI_OPTIONS)
    before = publish_v1(app, name)

    data = records()
    shifted = [{**data[0], "jumlah_penduduk": "1"}, *data]  # one more record, at the front

    def pages(page: int) -> list[dict[str, str]]:
        source = data if page == 1 else shifted  # the insert lands after page 1 was read
        return source[(page - 1) * PER_PAGE : page * PER_PAGE]

    server.routes[API] = paged_api(pages)
    job = harvest(app, name)

    item = assert_one_failed_item(app, job, "check-failed", "quarantined")
    assert "primary-key" in (item.error or ""), item.error
    assert published(app) == before  # version 2 exists, quarantined, not public
    with app.app_context():
        session = db.new_session()
        numbers = session.scalars(
            select(Version.number).where(Version.resource_id == before.resource)
        ).all()
        session.close()
    assert sorted(numbers) == [1, 2]


def ckan_files(server: ReplayCkan) -> None:
    """Serve the recorded CSV resources (uploads and links) of the recorded CKAN."""
    server.replay(*(f"{REC}/{name}" for name in UPLOADS))
    for path, recorded in LINKS.items():
        server.file(path, (CKAN_DATA / REC / recorded).read_bytes())


def test_ckan_repeated_search_page_fails_the_job_and_withdraws_nothing(
    app_factory: Callable[..., Flask],
) -> None:
    """CKAN ignoring ``start`` (page 2 = page 1): the listing is wrong, so the job fails at
    once, the source is reported unreachable, and nothing missing from the bad listing is
    withdrawn or changed."""
    app = app_factory(HARVEST_WITHDRAW_GRACE_DAYS=0, **SHORT_TIMEOUTS)
    ckan = ReplayCkan()
    try:
        ckan_files(ckan)
        ckan.replay("search-paged.json")
        name = add_source(app, "ckan", ckan.base + "/", "ckan-peer", page_size=2, force_all=True)
        first = harvest(app, name)
        # Four datasets published; the XLSX/JSON one is not served, one quarantined (PII).
        assert first.status is JobStatus.DONE and first.counts["added"] == 4, first
        client = app.test_client()
        before = _catalog(client)
        assert len(before) == first.counts["added"]

        ckan.routes.clear()
        ckan.replay("search-repeated-page.json")
        job = harvest(app, name)
    finally:
        ckan.close()

    assert job.status is JobStatus.FAILED, job
    assert "CKAN returned the same page twice (package_search at start=2)" in (job.error or "")
    assert job.counts["withdrawn"] == 0 and items_of(app, job) == []
    events = events_of(app, job)
    assert EventTag.HARVEST_SOURCE_UNREACHABLE.value in events
    assert "same page twice" in events[EventTag.HARVEST_SOURCE_UNREACHABLE.value].details["error"]
    assert events[EventTag.HARVEST_RUN_END.value].details["status"] == "failed"
    assert _catalog(client) == before


def _catalog(client: Any) -> dict[str, list[tuple[str, int | None, bytes]]]:
    """Every public dataset → its resources' (id, current version, original bytes)."""
    found = {}
    body = client.get("/api/v1/datasets?page_size=100").get_json()
    for summary in body["results"]:
        detail = client.get(f"/api/v1/datasets/{summary['name']}").get_json()["result"]
        found[summary["name"]] = [
            (
                r["id"],
                r["current_version"],
                fetch(client, f"/dataset/{summary['name']}/resource/{r['id']}/download")[1],
            )
            for r in detail["resources"]
        ]
    return found


# -- many sources at once ----------------------------------------------------------------------


def test_a_hanging_source_does_not_hold_up_the_others(
    app_factory: Callable[..., Flask], server: LocalServer
) -> None:
    """Concurrency 2, one source hangs for its whole read timeout: the two healthy sources
    share the other worker and are both done before the hanging one gives up."""
    timeout = 6.0
    app = app_factory(
        HARVEST_CONCURRENCY=2,
        HARVEST_FETCH_CONCURRENCY=2,
        HARVEST_ALLOW_HOSTS=",".join(server.allow),
        HARVEST_CONNECT_TIMEOUT=2,
        HARVEST_READ_TIMEOUT=timeout,
    )
    server.routes["/hang.csv"] = hang(server)
    for name in ("a", "b"):
        (server.root / f"penduduk-{name}.csv").write_bytes(SAMPLE.read_bytes())
    names = [
        add_source(app, "url", server.url("/hang.csv"), "mati"),
        add_source(app, "url", server.url("/penduduk-a.csv"), "hidup-a"),
        add_source(app, "url", server.url("/penduduk-b.csv"), "hidup-b"),
    ]
    started = time.monotonic()
    jobs = run_many(app, names)
    elapsed = time.monotonic() - started

    assert [(j.source, j.status, j.counts["added"], j.counts["failed"]) for j in jobs] == [
        ("mati", JobStatus.FAILED, 0, 1),  # its one file never came: unreachable
        ("hidup-a", JobStatus.DONE, 1, 0),
        ("hidup-b", JobStatus.DONE, 1, 0),
    ]
    assert items_of(app, jobs[0])[0].error_type == "fetch-timeout"
    with app.app_context():
        session = db.new_session()
        finished = {job.source.name: job.finished_at for job in session.scalars(select(HarvestJob))}
        session.close()
    dead, a, b = finished["mati"], finished["hidup-a"], finished["hidup-b"]
    assert dead is not None and a is not None and b is not None
    assert a < dead and b < dead
    assert elapsed < timeout + PATIENCE
