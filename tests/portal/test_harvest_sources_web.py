"""Harvest source management on the web and in the CLI, and the health page's failed items.

Real parts only: forms posted with their CSRF token, a real local HTTP server serving
``datasets/``, runs started by "run now" in this process, the real CLI.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal import db
from portal.errors import Forbidden
from portal.models import HarvestSource, Organization, Role
from portal.services.access import Actor
from portal.services.harvest_sources import add_source
from portal.services.organizations import ensure_organization
from tests.portal.access_fixtures import client_for, make_user
from tests.portal.auth_helpers import events, submit, token_of
from tests.portal.cli_helpers import command_runner
from tests.portal.helpers import add_folder_source, harvest, write_dataset, write_schemas
from tests.portal.test_queue import redis_url  # noqa: F401 - a fixture
from tests.portal.test_url_source import FILE, datasets_server  # noqa: F401 - a fixture

SOURCES = "/harvest/sources"
META = {"metadata": {"title": "Harga Bahan Pokok", "schema": "harga-bahan-pokok"}}
CSV = "tanggal,komoditas,harga\n2024-01-02,Beras,13000\n"


@pytest.fixture
def server(datasets_server: str) -> str:  # noqa: F811 - the fixture of test_url_source
    """The base URL of a local HTTP server serving ``datasets/``."""
    return datasets_server


@pytest.fixture
def portal(app_factory: Any, tmp_path: Path) -> Flask:
    """An app with two OPDs whose local test server (127.0.0.1) is allow-listed."""
    app: Flask = app_factory(HARVEST_ALLOW_HOSTS="127.0.0.1")
    _orgs(app)
    return app


def _orgs(app: Flask) -> None:
    with app.app_context(), db.transaction() as session:
        ensure_organization(session, name="dinas-uji", title="Dinas Uji")
        ensure_organization(session, name="dinas-lain", title="Dinas Lain")


def _client(app: Flask, username: str, role: Role, orgs: tuple[str, ...] = ()) -> FlaskClient:
    client = client_for(app, make_user(app, username, role, orgs))
    client.set_cookie("lang", "en")  # assertions read the English messages
    return client


def _producer(app: Flask, org: str = "dinas-uji") -> FlaskClient:
    return _client(app, f"produsen-{org}", Role.PRODUCER, (org,))


def _form(url: str, **extra: str) -> dict[str, str]:
    return {
        "organization": "dinas-uji",
        "kind": "url",
        "url": url,
        "name": "harga-web",
        "title": "Harga dari web",
        "frequency": "harian",
        "config": json.dumps(META),
        **extra,
    }


def _source(app: Flask, name: str) -> HarvestSource | None:
    with app.app_context(), db.transaction() as session:
        source = session.scalars(select(HarvestSource).where(HarvestSource.name == name)).first()
        if source is not None:
            session.expunge(source)
        return source


def _changes(app: Flask) -> list[dict[str, Any]]:
    return [e.details for e in events(app) if e.tag == "system:config:change"]


def _post(client: FlaskClient, url: str) -> Any:
    """An action button: POST with the CSRF token of the form page."""
    return client.post(url, data={"csrf_token": token_of(client, f"{SOURCES}/new")})


def _text(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _wait(client: FlaskClient, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result: dict[str, Any] = client.get(f"/api/v1/harvest/jobs/{job_id}").get_json()["result"]
        if result["status"] in ("done", "failed"):
            return result
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_producer_adds_edits_tests_runs_pauses_and_resumes(portal, server):
    client = _producer(portal)
    assert "harga-web" not in _text(client, SOURCES)
    url = f"{server}/{FILE}"
    response = submit(client, f"{SOURCES}/new", _form(url, trusted="y"))
    assert response.status_code == 302, response.get_data(as_text=True)
    source = _source(portal, "harga-web")
    assert source is not None and source.kind == "url" and source.config == META
    assert source.trusted is False  # a producer's "trusted" is never read
    page = _text(client, SOURCES)
    assert "harga-web" in page and "Source harga-web added." in page

    response = submit(
        client,
        f"{SOURCES}/harga-web/edit",
        {"kind": "url", "url": url, "title": "Harga baru", "frequency": "mingguan", "config": "{}"},
    )
    assert response.status_code == 302
    source = _source(portal, "harga-web")
    assert source is not None and (source.title, source.frequency.value) == (
        "Harga baru",
        "mingguan",
    )
    assert source.config == {}

    assert _post(client, f"{SOURCES}/harga-web/test").status_code == 302
    assert "harga-web is reachable: 1 items found in" in _text(client, SOURCES)
    assert _post(client, f"{SOURCES}/harga-web/pause").status_code == 302
    assert _source(portal, "harga-web").active is False  # type: ignore[union-attr]
    assert "paused" in _text(client, SOURCES)
    assert _post(client, f"{SOURCES}/harga-web/resume").status_code == 302
    assert _source(portal, "harga-web").active is True  # type: ignore[union-attr]

    created, edited, paused, resumed = _changes(portal)
    assert (created["action"], created["source"], created["values"]["url"]) == (
        "create",
        "harga-web",
        url,
    )
    assert created["values"]["trusted"] is False and created["config_keys"] == ["metadata"]
    assert edited["action"] == "update"
    assert edited["changed"] == ["config", "frequency", "title"]
    assert edited["values"] == {"title": "Harga baru", "frequency": "mingguan"}
    assert (paused["changed"], resumed["action"]) == (["active"], "resume")
    assert all(
        e.actor_role == "producer" and e.object_type == "harvest_source"
        for e in events(portal)
        if e.tag == "system:config:change"
    )


def test_run_now_redirects_to_the_job_page_and_needs_review(portal, server):
    client = _producer(portal)
    url = f"{server}/{FILE}"
    form = _form(
        url, config=json.dumps({"metadata": {"title": "Harga", "schema": "harga-bahan-pokok"}})
    )
    assert submit(client, f"{SOURCES}/new", form).status_code == 302
    response = _post(client, f"{SOURCES}/harga-web/run")
    assert response.status_code == 302 and "/harvest/job/" in response.location
    job_id = int(response.location.rsplit("/", 1)[1])
    result = _wait(client, job_id)
    assert (result["status"], result["counts"]["added"], result["source"]) == (
        "done",
        1,
        "harga-web",
    )
    page = _text(client, f"/harvest/job/{job_id}")
    assert "Harvest job" in page and 'data-field="status"' in page
    # untrusted: the new version waits for a steward; the public sees nothing yet
    assert portal.test_client().get("/api/v1/datasets").get_json()["count"] == 0
    # a second click while nothing waits starts a new run, claimed by the same mechanism
    again = _post(client, f"{SOURCES}/harga-web/run")
    second = int(again.location.rsplit("/", 1)[1])
    assert second != job_id and _wait(client, second)["counts"]["unchanged"] == 1


def test_connection_test_refuses_a_loopback_host_not_allow_listed(app_factory, server):
    app = app_factory()  # no ONEDATA_HARVEST_ALLOW_HOSTS
    _orgs(app)
    client = _producer(app)
    assert submit(client, f"{SOURCES}/new", _form(f"{server}/{FILE}")).status_code == 302
    assert _post(client, f"{SOURCES}/harga-web/test").status_code == 302
    page = _text(client, SOURCES)
    assert "harga-web is not reachable" in page
    assert "127.0.0.1 is a loopback address" in page and "ONEDATA_HARVEST_ALLOW_HOSTS" in page
    with app.app_context(), db.transaction() as session:  # a test stores no job
        assert session.get(HarvestSource, _source(app, "harga-web").id).jobs == []  # type: ignore[union-attr]


def test_connection_test_reports_http_status(portal, server):
    client = _producer(portal)
    form = _form(f"{server}/tidak-ada.csv")
    assert submit(client, f"{SOURCES}/new", form).status_code == 302
    _post(client, f"{SOURCES}/harga-web/test")
    assert "answered HTTP 404" in _text(client, SOURCES)


def test_producer_of_another_opd_is_refused(portal, server):
    owner = _producer(portal)
    assert submit(owner, f"{SOURCES}/new", _form(f"{server}/{FILE}")).status_code == 302
    other = _producer(portal, "dinas-lain")
    assert "harga-web" not in _text(other, SOURCES)
    assert other.get(f"{SOURCES}/harga-web/edit").status_code == 403
    for action in ("test", "run", "pause", "resume"):
        assert _post(other, f"{SOURCES}/harga-web/{action}").status_code == 403, action
    edit = {"kind": "url", "url": "https://example.org/x.csv", "title": "x", "frequency": "harian"}
    response = submit(other, f"{SOURCES}/harga-web/edit", edit, page=f"{SOURCES}/new")
    assert response.status_code == 403
    # nor can they add a source for the other OPD
    response = submit(other, f"{SOURCES}/new", _form("https://example.org/y.csv", name="curang"))
    assert response.status_code == 400 and _source(portal, "curang") is None
    source = _source(portal, "harga-web")
    assert source is not None and source.active and source.title == "Harga dari web"
    assert len(_changes(portal)) == 1  # the owner's creation only


def test_members_and_visitors_are_refused(portal):
    visitor = portal.test_client()
    response = visitor.get(SOURCES)
    assert response.status_code == 302 and "/login" in response.location
    assert visitor.post(f"{SOURCES}/x/run").status_code == 400  # no CSRF token, no session
    member = _client(portal, "warga", Role.MEMBER)
    assert member.get(SOURCES).status_code == 403
    assert member.get(f"{SOURCES}/new").status_code == 403
    health = member.get("/harvest").get_data(as_text=True)
    assert f'href="{SOURCES}"' not in health
    assert f'href="{SOURCES}"' in _text(_producer(portal), "/harvest")


def test_post_without_csrf_token_is_refused(portal, server):
    client = _producer(portal)
    response = client.post(f"{SOURCES}/new", data=_form(f"{server}/{FILE}"))
    assert response.status_code == 400 and _source(portal, "harga-web") is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "The configuration is not valid JSON: look at line 1, column 2."),
        ('{\n  "a": 1,\n}', "The configuration is not valid JSON: look at line 3, column 1."),
        ("[1, 2]", "The configuration must be a JSON object, written {…}."),
    ],
)
def test_invalid_json_config_is_a_form_error(portal, config, message):
    client = _producer(portal)
    response = submit(client, f"{SOURCES}/new", _form("https://example.org/a.csv", config=config))
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert message in body.replace("&#39;", "'")
    # the field says it is wrong, and which text explains why, to assistive technology too
    assert 'aria-describedby="config-errors" aria-invalid="true"' in body
    assert '<span id="config-errors" class="bad" role="alert">' in body
    assert _source(portal, "harga-web") is None


def test_trust_is_for_stewards_and_a_producer_change_drops_it(portal):
    steward = _client(portal, "walidata", Role.STEWARD)
    form = _form("https://data.example.org/harga.csv", trusted="y")
    assert submit(steward, f"{SOURCES}/new", form).status_code == 302
    assert _source(portal, "harga-web").trusted is True  # type: ignore[union-attr]
    producer = _producer(portal)
    edit = {"kind": "url", "url": "https://lain.example.org/harga.csv", "frequency": "harian"}
    assert submit(producer, f"{SOURCES}/harga-web/edit", edit).status_code == 302
    source = _source(portal, "harga-web")
    assert source is not None and source.trusted is False and source.url.startswith("https://lain")
    change = _changes(portal)[-1]
    assert change["changed"] == ["trusted", "url"]
    assert change["values"]["trusted"] is False


def test_producers_cannot_trust_or_read_this_servers_files(portal, tmp_path):
    actor = Actor(id="7", role=Role.PRODUCER, org_ids=frozenset({_org_id(portal, "dinas-uji")}))
    cases = [
        {"kind": "url", "url": "https://data.example.org/a.csv", "trusted": True},
        {"kind": "folder", "url": str(tmp_path)},
        {"kind": "sql", "url": f"sqlite:///{tmp_path}/onedata.sqlite"},
    ]
    with portal.app_context():
        session = db.new_session()
        org = session.scalars(select(Organization).where(Organization.name == "dinas-uji")).one()
        for case in cases:
            with pytest.raises(Forbidden):
                add_source(session, actor, organization=org, **case)
        other = session.scalars(select(Organization).where(Organization.name == "dinas-lain")).one()
        with pytest.raises(Forbidden):
            add_source(session, actor, organization=other, kind="url", url="https://x.org/a.csv")
        session.rollback()
        session.close()
    page = _text(_producer(portal), f"{SOURCES}/new")
    assert '<option value="folder"' not in page and 'name="trusted"' not in page


def test_sql_password_is_masked_in_pages_and_the_log(portal):
    steward = _client(portal, "walidata", Role.STEWARD)
    url = "postgresql+psycopg://opd:s3kr1t-pw@db.example.org/opd"
    config = {"datasets": [{"remote_id": "a", "query": "SELECT 1"}]}
    form = _form(url, kind="sql", config=json.dumps(config))
    assert submit(steward, f"{SOURCES}/new", form).status_code == 302
    edit_page = _text(steward, f"{SOURCES}/harga-web/edit")
    assert "s3kr1t-pw" not in edit_page and "opd:***@db.example.org" in edit_page
    assert "s3kr1t-pw" not in _text(steward, SOURCES)
    edit = {
        "kind": "sql",
        "url": "postgresql+psycopg://opd:***@db.example.org/opd",
        "title": "SQL",
        "frequency": "harian",
        "config": json.dumps(config),
    }
    assert submit(steward, f"{SOURCES}/harga-web/edit", edit).status_code == 302
    assert _source(portal, "harga-web").url == url  # type: ignore[union-attr]  # password kept
    assert "s3kr1t-pw" not in json.dumps(_changes(portal))
    assert _changes(portal)[-1]["changed"] == ["title"]
    # the stored password never follows the URL to another server
    edit["url"] = "postgresql+psycopg://opd:***@evil.example.org/opd"
    assert submit(steward, f"{SOURCES}/harga-web/edit", edit).status_code == 302
    assert _source(portal, "harga-web").url == edit["url"]  # type: ignore[union-attr]


def _org_id(app: Flask, name: str) -> str:
    with app.app_context(), db.transaction() as session:
        return session.scalars(select(Organization.id).where(Organization.name == name)).one()


def test_failed_items_column(app_factory, tmp_path):
    app = app_factory(SCHEMAS_PATH=str(write_schemas(tmp_path / "schemas")))
    folder = tmp_path / "src"
    write_dataset(folder, "harga-a", CSV)
    write_dataset(folder, "harga-b", CSV)
    (folder / "harga-b.meta.json").write_text("{broken", encoding="utf-8")
    name = add_folder_source(app, folder)
    visitor = app.test_client()
    assert visitor.get("/api/v1/harvest/sources").get_json()["results"][0]["failed_items"] is None
    job = harvest(app, name)
    assert job.counts["failed"] == 1
    public = visitor.get("/api/v1/harvest/sources").get_json()["results"][0]
    assert public["failed_items"] == 1 and public["last_errors_by_type"] is None
    steward = _client(app, "walidata", Role.STEWARD)
    staff = steward.get("/api/v1/harvest/sources").get_json()["results"][0]
    assert staff["failed_items"] == 1 and staff["last_errors_by_type"] == {"invalid-item": 1}
    page = visitor.get("/harvest").get_data(as_text=True)
    assert 'data-failed-items="1"' in page and "invalid-item" not in page
    assert "invalid-item × 1" in _text(steward, "/harvest")


@pytest.fixture
def cli(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``onedata harvest …`` against this test's database."""
    from portal.cli_harvest import harvest as harvest_group

    with command_runner(app, tmp_path, monkeypatch, harvest_group) as invoke:
        yield invoke


def test_cli_add_with_config_title_pause_and_resume(app, cli, tmp_path):
    _orgs(app)
    common = ["add", "--kind", "url", "--org", "dinas-uji"]
    result = cli(
        *common,
        "--url",
        "https://data.example.org/a.csv",
        "--name",
        "cli-a",
        "--title",
        "Harga A",
        "--config",
        json.dumps(META),
    )
    assert result.exit_code == 0, result.output
    source = _source(app, "cli-a")
    assert source is not None and source.title == "Harga A" and source.config == META
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"records_path": "data"}), encoding="utf-8")
    result = cli(
        *common,
        "--url",
        "https://data.example.org/b.json",
        "--name",
        "cli-b",
        "--config",
        f"@{path}",
    )
    assert result.exit_code == 0, result.output
    assert _source(app, "cli-b").config == {"records_path": "data"}  # type: ignore[union-attr]

    bad = cli(*common, "--url", "https://x.org/c.csv", "--name", "cli-c", "--config", "{nope")
    assert bad.exit_code == 2 and "--config" in bad.output and "not valid JSON" in bad.output
    listed = cli(*common, "--url", "https://x.org/c.csv", "--name", "cli-c", "--config", "[]")
    assert listed.exit_code == 2 and "must be a JSON object" in listed.output
    missing = cli(*common, "--url", "https://x.org/c.csv", "--config", f"@{tmp_path}/none.json")
    assert missing.exit_code == 2 and "cannot read" in missing.output
    assert _source(app, "cli-c") is None

    assert cli("pause", "cli-a").exit_code == 0
    assert _source(app, "cli-a").active is False  # type: ignore[union-attr]
    assert "already paused" in cli("pause", "cli-a").output
    assert cli("resume", "cli-a").exit_code == 0
    assert _source(app, "cli-a").active is True  # type: ignore[union-attr]
    unknown = cli("pause", "tidak-ada")
    assert unknown.exit_code == 1 and "no harvest source named" in unknown.output
    actions = [(c["action"], c["source"]) for c in _changes(app)]
    assert actions == [
        ("create", "cli-a"),
        ("create", "cli-b"),
        ("pause", "cli-a"),
        ("resume", "cli-a"),
    ]
    assert "failed items" in cli("list").output


def test_a_run_takes_over_the_queued_job_and_an_abandoned_one_is_failed(app_factory, tmp_path):
    from datetime import timedelta

    from portal.models import HarvestJob, JobStatus, utcnow
    from portal.services.access import OPERATOR
    from portal.services.harvest_sources import queue_run

    app = app_factory(SCHEMAS_PATH=str(write_schemas(tmp_path / "schemas")))
    folder = tmp_path / "src"
    write_dataset(folder, "harga-a", CSV)
    name = add_folder_source(app, folder)
    wait = timedelta(minutes=5)
    with app.app_context(), db.transaction() as session:
        source = session.scalars(select(HarvestSource)).one()
        job, new = queue_run(session, OPERATOR, source, abandon_after=wait)
        assert new and job.status is JobStatus.PENDING
        assert queue_run(session, OPERATOR, source, abandon_after=wait) == (job, False)
        queued = job.id
    summary = harvest(app, name)  # what `onedata harvest run`, a worker or "run now" does
    assert summary.job_id == queued and summary.counts["added"] == 1
    with app.app_context(), db.transaction() as session:
        source = session.scalars(select(HarvestSource)).one()
        stale, _ = queue_run(session, OPERATOR, source, abandon_after=wait)
        stale.created_at = utcnow() - timedelta(minutes=10)
        session.flush()
        fresh, new = queue_run(session, OPERATOR, source, abandon_after=wait)
        assert new and fresh.id != stale.id
        assert stale.status is JobStatus.FAILED and "no worker" in (stale.error or "")
        assert session.get(HarvestJob, queued).status is JobStatus.DONE  # type: ignore[union-attr]


def test_run_now_queues_to_rq_when_redis_is_set(app_factory, tmp_path, redis_url):  # noqa: F811
    from redis import Redis
    from rq import Queue

    queue = f"onedata-test-{uuid.uuid4().hex[:8]}"
    schemas = write_schemas(tmp_path / "schemas")
    app = app_factory(REDIS_URL=redis_url, HARVEST_QUEUE=queue, SCHEMAS_PATH=str(schemas))
    _orgs(app)
    steward = _client(app, "walidata", Role.STEWARD)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-a", CSV)
    form = _form(str(folder), kind="folder", name="map", config="{}")
    assert submit(steward, f"{SOURCES}/new", form).status_code == 302
    response = _post(steward, f"{SOURCES}/map/run")
    job_id = int(response.location.rsplit("/", 1)[1])
    assert steward.get(f"/api/v1/harvest/jobs/{job_id}").get_json()["result"]["status"] == "pending"
    rq = Queue(queue, connection=Redis.from_url(redis_url))
    try:
        (queued,) = rq.jobs
        assert queued.args == (["map"], False)  # a batch of one source
    finally:
        rq.delete(delete_jobs=True)
    # what the worker's task runs (run_sources_task builds its app from ONEDATA_*; ours is built)
    assert harvest(app, "map").job_id == job_id
    assert _wait(steward, job_id)["counts"]["added"] == 1
