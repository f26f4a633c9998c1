"""The security log in use: its admin page, alert rules, syslog forwarding and retention.

Every test runs on SQLite and PostgreSQL (the ``app_factory`` fixture).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update

from portal import db
from portal.cli_security import security
from portal.mail import outbox_path
from portal.models import Role, User
from portal.models.events import SecurityCheckpoint, SecurityEvent
from portal.services import accounts, log_forward
from portal.services.access import Actor
from portal.services.events import EventTag, RequestInfo, record_event, record_failure_event
from portal.services.events_export import iter_records, syslog_line
from portal.services.events_verify import verify
from portal.views import security_log
from tests.portal.cli_helpers import command_runner
from tests.portal.helpers import add_folder_source, harvest, write_dataset, write_schemas

PASSWORD = "correct horse battery"  # noqa: S105 - a test password
KEY = "h" * 40
SEQ_LINK = re.compile(r'<td><a href="/admin/security-log/(\d+)">')


# --- fixtures and helpers --------------------------------------------------------------------


def with_security_log(app: Flask) -> Flask:
    """Wire the page and hooks when ``create_app`` does not (yet) call ``security_log.init_app``."""
    if "security_log" not in app.blueprints:
        security_log.init_app(app)
    return app


@pytest.fixture
def web(app_factory: Callable[..., Flask]) -> Iterator[Callable[..., Flask]]:
    built: list[Flask] = []

    def make(**config: Any) -> Flask:
        config.setdefault("WTF_CSRF_ENABLED", False)
        app = with_security_log(app_factory(**config))
        built.append(app)
        return app

    yield make
    for app in built:
        forwarder = app.extensions.get("onedata.syslog")
        if forwarder is not None:
            forwarder.close()
        log_forward.remove_handlers(app.extensions["onedata.engine"])


def make_user(app: Flask, username: str, role: Role, email: str | None = None) -> int:
    with app.app_context(), db.transaction() as session:
        user = accounts.create_user(
            session, username=username, password=PASSWORD, role=role, email=email
        )
        session.flush()
        return user.id


def signed_in(app: Flask, user_id: int | None) -> FlaskClient:
    client = app.test_client()
    if user_id is None:
        return client
    with app.app_context():
        session = db.new_session()
        user = session.get(User, user_id)
        assert user is not None
        version = user.session_version
        session.close()
    with client.session_transaction() as s:
        s["uid"], s["uver"], s["mfa"] = user_id, version, True
    return client


def events(app: Flask, tag: str | None = None) -> list[SecurityEvent]:
    with app.app_context(), db.transaction() as session:
        query = select(SecurityEvent).order_by(SecurityEvent.seq)
        if tag is not None:
            query = query.where(SecurityEvent.tag == tag)
        return list(session.scalars(query))


def record(app: Flask, tag: EventTag, **kwargs: Any) -> int:
    with app.app_context(), db.transaction() as session:
        return record_event(session, tag, **kwargs).seq


def shown(response: Any) -> list[int]:
    assert response.status_code == 200, response.status_code
    return [int(seq) for seq in SEQ_LINK.findall(response.get_data(as_text=True))]


def outbox(app: Flask) -> list[Message]:
    folder = outbox_path(app)
    files = sorted(folder.glob("*.eml")) if folder.exists() else []
    return [message_from_bytes(path.read_bytes()) for path in files]


# --- who may see the page --------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(web):
    app = web()
    client = app.test_client()
    for url in (
        "/admin/security-log?tag=auth:",
        "/admin/security-log/1",
        "/admin/security-log/export.csv",
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        where = urlsplit(response.location)
        assert (where.path, parse_qs(where.query)["next"]) == ("/login", [url])
    assert client.post("/admin/security-log/verify").status_code == 302
    assert events(app, EventTag.LOG_RECORD_READ) == []


@pytest.mark.parametrize("role", [Role.MEMBER, Role.PRODUCER])
def test_members_and_producers_are_refused_and_the_refusal_is_logged(web, role):
    app = web()
    uid = make_user(app, "bukan-walidata", role)
    client = signed_in(app, uid)
    for url in ("/admin/security-log", "/admin/security-log/1", "/admin/security-log/export.csv"):
        assert client.get(url).status_code == 403, url
    denied = events(app, EventTag.AUTHZ_ACCESS_DENY)
    assert [e.object_id for e in denied] == [
        "security_log.index",
        "security_log.detail",
        "security_log.export_csv",
    ]
    assert all(e.actor_id and e.actor_role == role.value for e in denied)
    assert denied[0].details == {"permission": ["security:log:read"]}
    assert events(app, EventTag.LOG_RECORD_READ) == []


def test_stewards_read_the_log_but_only_admins_verify(web):
    app = web()
    steward = signed_in(app, make_user(app, "walidata", Role.STEWARD))
    page = steward.get("/admin/security-log")
    assert page.status_code == 200
    assert "/admin/security-log/verify" not in page.get_data(as_text=True)
    assert steward.post("/admin/security-log/verify").status_code == 403
    [denied] = events(app, EventTag.AUTHZ_ACCESS_DENY)
    assert denied.details == {"permission": ["security:log:verify"]}
    assert events(app, EventTag.LOG_INTEGRITY_OK) == []

    admin = signed_in(app, make_user(app, "operator", Role.ADMIN))
    assert "/admin/security-log/verify" in admin.get("/admin/security-log").get_data(as_text=True)


def test_api_tokens_cannot_read_the_log(web):
    app = web()
    uid = make_user(app, "admin-token", Role.ADMIN)
    with app.app_context(), db.transaction() as session:
        user = session.get(User, uid)
        token = accounts.issue_token(session, user, name="t", scopes=["read", "steward"]).secret
    response = app.test_client().get(
        "/admin/security-log", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403


# --- filters, paging, detail -----------------------------------------------------------------


def fill_variety(app: Flask) -> dict[str, int]:
    """Records of several areas, actors, OPDs, outcomes and severities; name → seq."""
    dinkes = Actor(id="11", role=Role.PRODUCER, org_ids=frozenset({"org-dinkes"}))
    both = Actor(id="12", role=Role.PRODUCER, org_ids=frozenset({"org-bpkad", "org-dinkes_2"}))
    web_req = RequestInfo(ip="10.1.2.3", user_agent="=HYPERLINK(evil)", method="GET", path="/x")
    seqs = {
        "login_ok": record(app, EventTag.AUTH_LOGIN_SUCCESS, actor=dinkes, request=web_req),
        "login_bad": record(app, EventTag.AUTH_LOGIN_FAILURE, request=web_req),
        "oauth": record(app, EventTag.AUTH_OAUTH_CLIENT_CREATE, actor=both),
        "authz": record(app, EventTag.AUTHZ_ACCESS_DENY, actor=dinkes),
        "pii": record(app, EventTag.HARVEST_PII_DETECT, actor=both, target=("resource", "r1")),
    }
    seqs["alert"] = seqs["pii"] + 1  # personal data found: an alert follows at once
    seqs["run"] = record(app, EventTag.HARVEST_RUN_START, actor=dinkes)
    return seqs


def test_filters_by_tag_prefix_actor_opd_outcome_severity_and_time(web):
    app = web()
    seqs = fill_variety(app)
    client = signed_in(app, make_user(app, "walidata", Role.STEWARD))
    base = "/admin/security-log"

    everything = sorted(seqs.values())

    def query(**args: str) -> list[int]:
        found = shown(client.get(base, query_string=args))
        return sorted(s for s in found if s in everything)  # not the steward's own reads

    assert shown(client.get(base)) == everything[::-1]
    assert events(app)[seqs["alert"] - 1].tag == EventTag.ALERT_RULE_RAISE
    assert query(tag="auth:") == [seqs["login_ok"], seqs["login_bad"], seqs["oauth"]]
    assert query(tag="authz:") == [seqs["authz"]]
    assert query(tag="auth:oauth_client:") == [seqs["oauth"]]
    assert query(tag="auth_") == []  # "_" is a character here, not a LIKE wildcard
    assert query(tag="", actor="12") == [seqs["oauth"], seqs["pii"]]
    assert query(tag="", opd="org-dinkes") == [
        seqs["login_ok"], seqs["authz"], seqs["run"],
    ]  # fmt: skip
    assert query(tag="", opd="org-dinkes_2") == [seqs["oauth"], seqs["pii"]]
    assert query(tag="", opd="org-bpkad") == [seqs["oauth"], seqs["pii"]]
    assert query(tag="h", outcome="failure") == []
    assert query(tag="", outcome="failure") == [seqs["login_bad"], seqs["authz"]]
    assert query(tag="", severity="high") == [seqs["pii"], seqs["alert"]]
    assert query(tag="", severity="warning") == [
        seqs["login_bad"], seqs["authz"], seqs["pii"], seqs["alert"],
    ]  # fmt: skip

    today = datetime.now(UTC).date()
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)
    assert query(tag="", since=str(tomorrow)) == []
    assert query(tag="", until=str(yesterday)) == []
    assert query(tag="", since=str(yesterday), until=str(today)) == everything
    with app.app_context(), db.transaction() as session:
        times = {e.seq: e.ts for e in session.scalars(select(SecurityEvent))}
    cut = times[seqs["pii"]].replace(tzinfo=None)  # to the second, as typed
    cut_text = cut.strftime("%Y-%m-%dT%H:%M:%S")
    floor = cut.replace(microsecond=0)
    assert query(tag="", since=cut_text) == [
        s for s in everything if times[s].replace(tzinfo=None) >= floor
    ]
    for bad in ({"outcome": "maybe"}, {"severity": "loud"}, {"since": "kemarin"}, {"tag": "a%"}):
        assert client.get(base, query_string=bad).status_code == 400, bad


def test_pages_are_keyed_by_seq_newest_first(web, monkeypatch):
    monkeypatch.setattr(security_log, "PAGE_SIZE", 3)
    app = web()
    for i in range(8):
        record(app, EventTag.HARVEST_RUN_START, details={"i": i})
    client = signed_in(app, make_user(app, "walidata", Role.STEWARD))
    url = "/admin/security-log?tag=harvest:"
    first = client.get(url)
    assert shown(first) == [8, 7, 6]
    html = first.get_data(as_text=True)
    assert "before=6" in html and "after=" not in html
    assert shown(client.get(url + "&before=6")) == [5, 4, 3]
    last = client.get(url + "&before=3")
    assert shown(last) == [2, 1]
    assert "before=" not in last.get_data(as_text=True) and "after=2" in last.get_data(as_text=True)
    assert shown(client.get(url + "&after=2")) == [5, 4, 3]
    assert shown(client.get(url + "&after=5")) == [8, 7, 6]  # back at the newest page
    reads = events(app, EventTag.LOG_RECORD_READ)
    assert [r.details.get("before") for r in reads] == [None, 6, 3, None, None]
    assert [r.details.get("after") for r in reads] == [None, None, None, 2, 5]
    assert all(r.details["filter"] == {"tag": "harvest:"} for r in reads)


def test_a_records_detail_and_its_read_are_logged(web):
    app = web()
    seqs = fill_variety(app)
    uid = make_user(app, "walidata", Role.STEWARD)
    client = signed_in(app, uid)
    page = client.get(f"/admin/security-log/{seqs['pii']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    [pii] = events(app, EventTag.HARVEST_PII_DETECT)
    assert pii.hash in html and pii.prev_hash in html and "harvest:pii:detect" in html
    assert 'class="good"' in html  # its content matches its hash
    assert client.get("/admin/security-log/999").status_code == 404
    [read] = events(app, EventTag.LOG_RECORD_READ)
    assert (read.object_type, read.object_id) == ("security_event", str(seqs["pii"]))
    assert read.actor_id == str(uid) and read.actor_role == "steward"
    assert read.details == {"view": "detail"}
    assert (read.method, read.path, read.status) == (
        "GET",
        f"/admin/security-log/{seqs['pii']}",
        200,
    )


def test_list_reads_are_logged_with_their_filter(web):
    app = web()
    fill_variety(app)
    uid = make_user(app, "walidata", Role.STEWARD)
    client = signed_in(app, uid)
    client.get("/admin/security-log", query_string={"tag": "auth:", "outcome": "failure"})
    [read] = events(app, EventTag.LOG_RECORD_READ)
    assert read.actor_id == str(uid)
    assert read.details == {
        "view": "list",
        "filter": {"tag": "auth:", "outcome": "failure"},
        "records": 1,
    }


# --- CSV export --------------------------------------------------------------------------------


def test_csv_export_streams_the_filtered_view_and_is_logged(web):
    app = web()
    seqs = fill_variety(app)
    uid = make_user(app, "operator", Role.ADMIN)
    client = signed_in(app, uid)
    response = client.get("/admin/security-log/export.csv", query_string={"tag": "auth:"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(r["seq"]) for r in rows] == [seqs["login_ok"], seqs["login_bad"], seqs["oauth"]]
    by_seq = {e.seq: e for e in events(app)}
    first = rows[0]
    event = by_seq[int(first["seq"])]
    assert (first["tag"], first["hash"], first["prev_hash"]) == (
        event.tag,
        event.hash,
        event.prev_hash,
    )
    assert first["src_ip"] == "10.1.2.3"
    assert first["user_agent"] == "'=HYPERLINK(evil)"  # never a live formula in a spreadsheet
    assert json.loads(first["details"]) == event.details
    [export] = events(app, EventTag.LOG_RECORD_EXPORT)
    assert export.actor_id == str(uid)
    assert export.details == {"format": "csv", "filter": {"tag": "auth:"}}


# --- verify now and the chain badge -----------------------------------------------------------


def test_admins_verify_now_and_the_badge_shows_the_result(web):
    app = web()
    fill_variety(app)
    admin_id = make_user(app, "operator", Role.ADMIN, email="operator@pontianak.go.id")
    client = signed_in(app, admin_id)
    assert "never verified" in client.get("/admin/security-log?lang=en").get_data(as_text=True)
    response = client.post("/admin/security-log/verify")
    assert response.status_code == 303 and response.location == "/admin/security-log"
    [ok] = events(app, EventTag.LOG_INTEGRITY_OK)
    assert ok.actor_id == str(admin_id)
    assert ok.details["signatures_checked"] is False  # the web server holds no HMAC key
    assert ok.details["records"] >= 6
    html = client.get("/admin/security-log?lang=en").get_data(as_text=True)
    assert "The chain is intact" in html and '<span class="good">intact</span>' in html

    engine = app.extensions["onedata.engine"]
    with engine.begin() as conn:  # an attacker edits a record, triggers off
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("ALTER TABLE security_event DISABLE TRIGGER USER"))
        conn.execute(update(SecurityEvent).where(SecurityEvent.seq == 2).values(src_ip="1.1.1.1"))
        if postgres:
            conn.execute(text("ALTER TABLE security_event ENABLE TRIGGER USER"))
    client.post("/admin/security-log/verify")
    [failure] = events(app, EventTag.LOG_INTEGRITY_FAILURE)
    assert failure.details["first_bad_seq"] == 2 and failure.details["problem"] == "field edited"
    html = client.get("/admin/security-log?lang=en").get_data(as_text=True)
    assert "verification FAILED" in html
    # and an integrity failure is an alert, mailed to the admins
    [alert] = [
        a
        for a in events(app, EventTag.ALERT_RULE_RAISE)
        if a.details["rule"] == "integrity_failure"
    ]
    assert alert.severity.value == "critical"
    [mail] = [m for m in outbox(app) if "verifikasi log keamanan GAGAL" in m["Subject"]]
    assert mail["To"] == "operator@pontianak.go.id"
    assert f"/admin/security-log/{alert.seq}" in mail.get_payload()


def test_verify_now_uses_the_servers_key_when_it_has_one(web):
    app = web(LOG_HMAC_KEY=KEY)
    client = signed_in(app, make_user(app, "operator", Role.ADMIN))
    client.post("/admin/security-log/verify")
    [ok] = events(app, EventTag.LOG_INTEGRITY_OK)
    assert ok.details["signatures_checked"] is True


# --- alert rules -------------------------------------------------------------------------------


def test_repeated_failed_logins_raise_one_alert_per_account_and_address(web):
    app = web(ALERT_LOGIN_FAILURES=3, BASE_URL="https://data.pontianakkota.go.id/")
    make_user(app, "operator", Role.ADMIN, email="operator@pontianak.go.id")
    make_user(app, "bukan-admin", Role.STEWARD, email="walidata@pontianak.go.id")
    target = make_user(app, "anggota", Role.MEMBER)
    client = app.test_client()
    for attempt in range(4):
        response = client.post(
            "/login", data={"username": "anggota", "password": f"salah-{attempt}"}
        )
        assert response.status_code == 200
        if attempt < 2:
            assert events(app, EventTag.ALERT_RULE_RAISE) == []
    raised = events(app, EventTag.ALERT_RULE_RAISE)
    assert sorted((a.details["rule"], a.object_type, a.object_id) for a in raised) == [
        ("login_failures_account", "user_account", str(target)),
        ("login_failures_ip", "ip", "127.0.0.1"),
    ]
    assert all(a.details["count"] == 3 and a.details["window_minutes"] == 15 for a in raised)
    mails = outbox(app)
    assert len(mails) == 2 and {m["To"] for m in mails} == {"operator@pontianak.go.id"}
    assert any(f"akun #{target}" in m["Subject"] for m in mails)
    links = {a.seq: f"https://data.pontianakkota.go.id/admin/security-log/{a.seq}" for a in raised}
    assert all(any(link in m.get_payload() for m in mails) for link in links.values())
    assert all(PASSWORD not in m.as_string() and "salah-" not in m.as_string() for m in mails)

    # more failures in the same window: no new alert, no new mail
    record_failure_event(
        app.extensions["onedata.engine"],
        EventTag.AUTH_LOGIN_FAILURE,
        target=("user_account", target),
        request=RequestInfo(ip="127.0.0.1"),
    )
    assert len(events(app, EventTag.ALERT_RULE_RAISE)) == 2 and len(outbox(app)) == 2


def test_alerts_count_only_the_window_and_fire_again_after_it(web):
    from portal.services import alerts

    app = web(ALERT_LOGIN_FAILURES=2, ALERT_WINDOW_MINUTES=1)
    engine = app.extensions["onedata.engine"]
    failure = [{"tag": "auth:login:failure", "seq": 1, "src_ip": "10.9.9.9", "object_type": None}]
    factory = app.extensions["onedata.sessionmaker"]
    settings = alerts.AlertSettings(2, timedelta(minutes=1))
    for _ in range(2):
        record_failure_event(
            engine, EventTag.AUTH_LOGIN_FAILURE, request=RequestInfo(ip="10.9.9.9")
        )
    assert len(events(app, EventTag.ALERT_RULE_RAISE)) == 1
    later = datetime.now(UTC) + timedelta(minutes=2)  # the failures have left the window
    assert alerts.raise_alerts(factory, failure, settings, now=later) == []
    assert (
        alerts.raise_alerts(factory, failure, alerts.AlertSettings(2, timedelta(minutes=5))) == []
    )


def test_concurrent_evaluations_raise_an_alert_once(web):
    from portal.services import alerts

    app = web()
    factory = app.extensions["onedata.sessionmaker"]
    finding = {"column": "nik", "detector": "nik", "count": 3}
    trigger = [
        {"tag": "harvest:pii:detect", "seq": 1, "object_type": "resource", "object_id": "r-race",
         "details": finding}
    ]  # fmt: skip
    raised: list[Any] = []
    start = threading.Barrier(4)

    def evaluate() -> None:
        start.wait()
        raised.extend(alerts.raise_alerts(factory, trigger, alerts.AlertSettings()))

    workers = [threading.Thread(target=evaluate) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    [alert] = events(app, EventTag.ALERT_RULE_RAISE)
    assert [a.seq for a in raised] == [alert.seq]
    assert alert.details["findings"] == [finding]
    with app.app_context(), db.transaction() as session:
        assert verify(session, None).ok  # the losers rolled back without a gap


def test_a_failing_commit_hook_never_breaks_the_committed_work(web, caplog):
    app = web()

    def broken(engine: Any, records: list[dict[str, Any]]) -> None:
        raise RuntimeError(f"boom {records[0]['details']}")

    log_forward.on_commit(app.extensions["onedata.engine"], broken)
    seq = record(app, EventTag.HARVEST_RUN_START, details={"marker": "jangan-dicatat"})
    assert [e.seq for e in events(app)] == [seq]
    assert "commit handler failed: RuntimeError" in caplog.text
    assert "jangan-dicatat" not in caplog.text


def test_personal_data_found_by_a_harvest_raises_an_alert(web, tmp_path):
    schemas = write_schemas(tmp_path / "schemas")
    app = web(SCHEMAS_PATH=str(schemas))
    make_user(app, "operator", Role.ADMIN, email="operator@pontianak.go.id")
    rows = "".join(f"2024-01-0{i},Beras,1300{i},617101010190000{i}\n" for i in range(1, 6))
    write_dataset(tmp_path / "src", "warga", "tanggal,komoditas,harga,nik\n" + rows)
    harvest(app, add_folder_source(app, tmp_path / "src"))
    [pii] = events(app, EventTag.HARVEST_PII_DETECT)
    [alert] = events(app, EventTag.ALERT_RULE_RAISE)
    assert (alert.object_type, alert.object_id) == ("resource", pii.object_id)
    assert alert.details["rule"] == "pii_detected"
    assert alert.details["findings"] == [{"column": "nik", "detector": "nik", "count": 5}]
    assert alert.details["trigger_seq"] == pii.seq
    [mail] = outbox(app)
    assert "6171010101900001" not in mail.as_string()  # counts and columns, never a value
    assert "nik" in mail.get_payload()


def test_an_event_that_rolls_back_raises_no_alert(web):
    app = web()
    with app.app_context():
        session = db.new_session()
        record_event(session, EventTag.HARVEST_PII_DETECT, target=("resource", "r9"))
        session.rollback()
        session.close()
        session = db.new_session()
        record_event(session, EventTag.HARVEST_PII_DETECT, target=("resource", "r9"))
        session.close()  # closed without commit
        with db.transaction() as session:
            record_event(session, EventTag.HARVEST_RUN_START)
            savepoint = session.begin_nested()
            record_event(session, EventTag.HARVEST_PII_DETECT, target=("resource", "r9"))
            savepoint.rollback()
    assert events(app, EventTag.ALERT_RULE_RAISE) == []


# --- syslog forwarding ------------------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def add(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.lines) >= n:
                    return list(self.lines)
            time.sleep(0.01)
        return list(self.lines)


@pytest.fixture
def syslog_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, _Collector]]:
    """A real syslog listener on 127.0.0.1 (UDP, or TCP with octet-counting framing)."""
    collector = _Collector()

    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            collector.add(self.request[0].decode("utf-8"))

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while True:
                length = b""
                while (char := self.rfile.read(1)) not in (b" ", b""):
                    length += char
                if not length:
                    return
                collector.add(self.rfile.read(int(length)).decode("utf-8"))

    transport = request.param
    server: socketserver.BaseServer
    if transport == "udp":
        server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
    else:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tcp)
        server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"{transport}://{host}:{port}", collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("syslog_server", ["udp", "tcp"], indirect=True)
def test_committed_events_are_forwarded_to_syslog(web, syslog_server):
    url, collector = syslog_server
    app = web(SYSLOG_URL=url)
    forwarder = app.extensions["onedata.syslog"]
    committed = [record(app, EventTag.HARVEST_RUN_START, details={"i": i}) for i in range(3)]
    with app.app_context():
        session = db.new_session()  # rolled back: never forwarded
        record_event(session, EventTag.HARVEST_RUN_END, details={"rolled": "back"})
        session.rollback()
        session.close()
    uid = make_user(app, "walidata", Role.STEWARD)
    assert signed_in(app, uid).get("/admin/security-log").status_code == 200  # a logged read
    assert forwarder.flush(5)
    lines = collector.wait_for(4)
    assert len(lines) == 4, lines
    with app.app_context(), db.transaction() as session:
        stored = list(iter_records(session))
    assert [r["seq"] for r in stored] == [*committed, 4]  # the rolled-back seq was reused
    assert lines == [syslog_line(r, hostname=forwarder.hostname) for r in stored]
    assert lines[-1].split(" ")[5] == "log:record:read"
    assert "rolled" not in "".join(lines)
    assert (forwarder.sent, forwarder.failed, forwarder.dropped) == (4, 0, 0)


def test_a_dead_syslog_server_never_breaks_a_request(web, caplog):
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as probe:
        port = probe.server_address[1]  # free once closed: nothing listens there
    app = web(SYSLOG_URL=f"tcp://127.0.0.1:{port}")
    forwarder = app.extensions["onedata.syslog"]
    client = signed_in(app, make_user(app, "walidata", Role.STEWARD))
    started = time.monotonic()
    assert client.get("/admin/security-log").status_code == 200
    record(app, EventTag.HARVEST_RUN_START, details={"marker": "rahasia-tidak-boleh-bocor"})
    assert time.monotonic() - started < 2
    assert forwarder.flush(5)
    assert forwarder.sent == 0 and forwarder.failed == 2
    assert "syslog forwarding to tcp://127.0.0.1" in caplog.text
    assert "rahasia" not in caplog.text and "log:record:read" not in caplog.text
    assert len(events(app)) == 2  # the log itself is complete


def test_malformed_settings_stop_the_app(app_factory):
    with pytest.raises(RuntimeError, match="udp://host:514"):
        with_security_log(app_factory(SYSLOG_URL="http://logs.example:514"))
    with pytest.raises(RuntimeError, match="ALERT_LOGIN_FAILURES"):
        with_security_log(app_factory(ALERT_LOGIN_FAILURES=0))


# --- retention -------------------------------------------------------------------------------


@pytest.fixture
def cli(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:

    env = {"ONEDATA_LOG_HMAC_KEY": KEY}
    with command_runner(app, tmp_path, monkeypatch, security, env) as invoke:
        yield invoke


def read_archive(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="ascii") as fh:
        return [json.loads(line) for line in fh]


def test_archive_moves_old_records_to_a_file_and_verify_still_passes(app, cli, tmp_path):
    for i in range(5):
        record(app, EventTag.HARVEST_RUN_START, details={"i": i})
    time.sleep(0.01)
    cut = datetime.now(UTC).replace(tzinfo=None)
    time.sleep(0.01)
    for i in range(5, 8):
        record(app, EventTag.HARVEST_RUN_END, details={"i": i})
    with app.app_context(), db.transaction() as session:
        before = list(iter_records(session))
    target = tmp_path / "arsip" / "log-1.jsonl.gz"
    target.parent.mkdir()

    result = cli(
        "archive", "--before", cut.strftime("%Y-%m-%dT%H:%M:%S.%f"), "--output", str(target)
    )
    assert result.exit_code == 0, result.output
    assert "archived 5 records (seq 1–5)" in result.output
    assert read_archive(target) == before[:5]  # exactly the removed records, as exported
    remaining = events(app)
    assert [e.seq for e in remaining] == [6, 7, 8, 9]
    assert remaining[-1].tag == EventTag.LOG_RECORD_EXPORT
    assert remaining[-1].details["purpose"] == "archive" and remaining[-1].details["records"] == 5
    with app.app_context(), db.transaction() as session:
        [checkpoint] = session.scalars(select(SecurityCheckpoint)).all()
        assert (checkpoint.seq, checkpoint.hash) == (5, before[4]["hash"])
        result = verify(session, KEY.encode())
    assert result.ok and result.records == 4, str(result)
    assert cli("verify").exit_code == 0

    # a second archive continues the chain; the default cut-off is the retention setting
    again = tmp_path / "arsip" / "log-2.jsonl.gz"
    result = cli("archive", "--output", str(again), ONEDATA_LOG_RETENTION_DAYS="0")
    assert result.exit_code == 0, result.output
    second = read_archive(again)
    assert second[0]["seq"] == 6 and second[0]["prev_hash"] == before[4]["hash"]
    assert cli("verify").exit_code == 0
    assert cli("archive", "--output", str(again)).exit_code != 0  # never overwrites


def test_archive_refuses_a_broken_chain_and_needs_the_key(app, cli, tmp_path):
    for i in range(3):
        record(app, EventTag.HARVEST_RUN_START, details={"i": i})
    target = tmp_path / "a.jsonl.gz"
    result = cli("archive", "--output", str(target), ONEDATA_LOG_HMAC_KEY=None)
    assert result.exit_code != 0 and "ONEDATA_LOG_HMAC_KEY" in result.output
    engine = app.extensions["onedata.engine"]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE security_event DISABLE TRIGGER USER"))
        conn.execute(update(SecurityEvent).where(SecurityEvent.seq == 2).values(tag="x:y:z"))
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE security_event ENABLE TRIGGER USER"))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    result = cli("archive", "--before", now, "--output", str(target))
    assert result.exit_code == 1 and "Not archiving a broken chain" in result.output
    assert not target.exists() and len(events(app)) == 3


def test_rotate_key_re_signs_the_checkpoints(app, cli, tmp_path):
    for i in range(3):
        record(app, EventTag.HARVEST_RUN_START, details={"i": i})
    assert cli("checkpoint").exit_code == 0
    record(app, EventTag.HARVEST_RUN_END)
    assert cli("checkpoint").exit_code == 0
    old_file = tmp_path / "old-key"
    old_file.write_text(KEY + "\n")
    new_key = "n" * 40
    wrong = tmp_path / "wrong-key"
    wrong.write_text("w" * 40)
    result = cli("rotate-key", "--old-key-file", str(wrong), ONEDATA_LOG_HMAC_KEY=new_key)
    assert result.exit_code == 1 and "checkpoint HMAC invalid" in result.output

    result = cli("rotate-key", "--old-key-file", str(old_file), ONEDATA_LOG_HMAC_KEY=new_key)
    assert result.exit_code == 0, result.output
    assert "2 checkpoints re-signed" in result.output
    assert cli("verify", ONEDATA_LOG_HMAC_KEY=new_key).exit_code == 0
    result = cli("verify")  # the old key no longer matches any checkpoint
    assert result.exit_code == 1 and "checkpoint HMAC invalid" in result.output
    [change] = events(app, EventTag.SYSTEM_CONFIG_CHANGE)
    assert change.details == {"setting": "LOG_HMAC_KEY", "action": "rotate"}
    with app.app_context(), db.transaction() as session:
        assert [c.seq for c in session.scalars(select(SecurityCheckpoint))] == [3, 4]
