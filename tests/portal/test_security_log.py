"""The security event log, on SQLite and PostgreSQL: chain, tampering, writers, redaction, CLI."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from portal import db
from portal.cli_security import security
from portal.models.events import SecurityCheckpoint, SecurityEvent, SecurityLogHead
from portal.services.access import Actor, Role
from portal.services.events import (
    CANONICAL_FIELDS,
    TAG_DOCS,
    EventTag,
    RequestInfo,
    canonical,
    catalogue_markdown,
    chain_hash,
    format_ts,
    record_event,
    record_failure_event,
)
from portal.services.events_export import export_jsonl, export_syslog
from portal.services.events_verify import Problem, VerifyResult, verify, write_checkpoint
from tests.portal.cli_helpers import command_runner

KEY = b"k" * 32
EVENTS = SecurityEvent.__table__
HEAD = SecurityLogHead.__table__
CHECKPOINTS = SecurityCheckpoint.__table__
LOG_TABLES = ("security_event", "security_log_head", "security_checkpoint")
TAGS = [EventTag.AUTH_LOGIN_SUCCESS, EventTag.HARVEST_RUN_START, EventTag.REVIEW_VERSION_APPROVE]


def fill(app: Flask, n: int, *, checkpoint_at: int | None = None) -> None:
    """``n`` events, one per transaction; a checkpoint after event ``checkpoint_at``."""
    with app.app_context():
        for i in range(1, n + 1):
            with db.transaction() as session:
                record_event(
                    session,
                    TAGS[i % len(TAGS)],
                    actor=Actor(id=f"u{i % 4}", role=Role.PRODUCER, org_ids=frozenset({"dinkes"})),
                    target=("dataset", f"ds-{i}"),
                    details={"i": i, "note": f"event {i}"},
                    request=RequestInfo(ip="10.0.0.7", method="GET", path=f"/x/{i}", status=200),
                )
                if i == checkpoint_at:
                    write_checkpoint(session, KEY)


def check(app: Flask, key: bytes | None = KEY) -> VerifyResult:
    with app.app_context(), db.transaction() as session:
        return verify(session, key, batch_size=7)  # small batches: cross batch edges


@contextmanager
def tamper(app: Flask) -> Iterator[Connection]:
    """A raw connection as an attacker with table-owner rights: PostgreSQL triggers switched off."""
    engine = app.extensions["onedata.engine"]
    with engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            for table in LOG_TABLES:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        yield conn
        if postgres:
            for table in LOG_TABLES:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def rows(conn: Connection) -> dict[int, dict[str, Any]]:
    return {r["seq"]: dict(r) for r in conn.execute(select(EVENTS).order_by("seq")).mappings()}


def rehash(row: dict[str, Any], prev: str) -> str:
    record = {name: row[name] for name in CANONICAL_FIELDS}
    record.update(
        ts=format_ts(row["ts"]), outcome=str(row["outcome"]), severity=str(row["severity"])
    )
    return chain_hash(prev, canonical(record))


def assert_bad(result: VerifyResult, seq: int | None, problem: Problem) -> None:
    assert not result.ok, result
    assert (result.first_bad_seq, result.problem) == (seq, problem), str(result)


# --- the chain --------------------------------------------------------------------------------


def test_untouched_chain_verifies(app):
    fill(app, 40, checkpoint_at=30)
    result = check(app)
    assert result.ok, str(result)
    assert (result.records, result.checkpoints, result.last_seq) == (40, 1, 40)
    assert str(result) == "chain intact: 40 records, 1 checkpoints"
    with app.app_context(), db.transaction() as session:
        events = session.scalars(select(SecurityEvent).order_by(SecurityEvent.seq)).all()
    assert [e.seq for e in events] == list(range(1, 41))
    assert events[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", format_ts(events[0].ts))
    assert (events[0].actor_id, events[0].actor_role, events[0].actor_org) == (
        "u1",
        "producer",
        "dinkes",
    )
    calls: list[tuple[int, int]] = []
    with app.app_context(), db.transaction() as session:
        verify(
            session, KEY, progress=lambda done, total: calls.append((done, total)), batch_size=16
        )
    assert calls == [(16, 40), (32, 40), (40, 40)]


def test_empty_log_verifies(app):
    result = check(app)
    assert result.ok and result.records == 0


def test_record_event_runs_in_the_callers_transaction(app):
    fill(app, 3)
    with app.app_context():
        session = db.new_session()
        record_event(session, EventTag.AUTH_LOGIN_SUCCESS)
        session.rollback()
        session.close()
        with db.transaction() as session:
            assert session.scalar(select(SecurityLogHead.seq)) == 3
        factory = app.extensions["onedata.sessionmaker"]
        session = db.new_session()
        record_event(session, EventTag.SYSTEM_CONFIG_CHANGE, details={"name": "PAGE_SIZE"})
        session.rollback()  # the request fails: its event goes...
        session.close()
        # ...and the failure is recorded once its transaction has ended (it held the head lock)
        failed = record_failure_event(factory, EventTag.AUTH_LOGIN_FAILURE, details={"user": "x"})
    assert failed.seq == 4 and failed.outcome == "failure" and failed.severity == "warning"
    result = check(app)
    assert result.ok and result.records == 4, str(result)


def test_head_row_is_recreated_after_truncate(app):
    fill(app, 5)
    with tamper(app) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE security_log_head"))
        else:
            conn.execute(delete(HEAD))
    assert_bad(check(app), None, Problem.HEAD_MISSING)
    fill(app, 2)
    result = check(app)
    assert result.ok and result.records == 7, str(result)


# --- tampering --------------------------------------------------------------------------------


def test_edited_field_is_named(app):
    fill(app, 30)
    with tamper(app) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq == 17).values(actor_id="someone-else"))
    assert_bad(check(app), 17, Problem.EDITED)


def test_edited_and_rehashed_record_is_named(app):
    fill(app, 30)
    with tamper(app) as conn:
        row = rows(conn)[12]
        row["details"] = {"i": 12, "note": "nothing happened"}
        conn.execute(
            update(EVENTS)
            .where(EVENTS.c.seq == 12)
            .values(details=row["details"], hash=rehash(row, row["prev_hash"]))
        )
    assert_bad(check(app), 12, Problem.EDITED)


def test_deleted_record_is_named(app):
    fill(app, 30)
    with tamper(app) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.seq == 9))
    result = check(app)
    assert_bad(result, 9, Problem.DELETED)
    assert "9" in result.message


def test_reordered_records_are_named(app):
    fill(app, 30)
    with tamper(app) as conn:
        all_rows = rows(conn)
        for a, b in ((8, 21), (21, 8)):
            content = {k: v for k, v in all_rows[b].items() if k != "seq"}
            conn.execute(update(EVENTS).where(EVENTS.c.seq == a).values(**content))
    assert_bad(check(app), 8, Problem.REORDERED)


def test_dropped_tail_is_named_by_the_head(app):
    fill(app, 30)
    with tamper(app) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.seq > 26))
    result = check(app)
    assert_bad(result, 27, Problem.TRUNCATED)
    assert "27–30" in result.message


def test_dropped_tail_is_named_by_a_checkpoint(app):
    """The attacker also winds the head back: the signed checkpoint still knows the end."""
    fill(app, 30, checkpoint_at=28)
    with tamper(app) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.seq > 24))
        last = rows(conn)[24]
        conn.execute(update(HEAD).values(seq=24, hash=last["hash"]))
    result = check(app)
    assert_bad(result, 25, Problem.TRUNCATED)
    assert "checkpoint" in result.message


def test_forged_record_inserted_is_named(app):
    """Records after 5 are shifted up and a well-formed, well-hashed record is put at 6."""
    fill(app, 20)
    with tamper(app) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq > 5).values(seq=-(EVENTS.c.seq + 1)))
        conn.execute(update(EVENTS).where(EVENTS.c.seq < 0).values(seq=-EVENTS.c.seq))
        before = rows(conn)[5]
        forged = {
            **before,
            "seq": 6,
            "actor_id": "attacker",
            "ts": datetime(2026, 1, 1, tzinfo=UTC),
        }
        forged.update(prev_hash=before["hash"], hash=rehash(forged, before["hash"]))
        conn.execute(insert(EVENTS).values(**forged))
        last = rows(conn)[21]
        conn.execute(update(HEAD).values(seq=21, hash=last["hash"]))
    assert_bad(check(app), 6, Problem.FORGED)


def test_forged_record_appended_past_the_head_is_named(app):
    fill(app, 10)
    with tamper(app) as conn:
        last = rows(conn)[10]
        forged = {**last, "seq": 11, "prev_hash": last["hash"], "actor_id": "attacker"}
        forged["hash"] = rehash(forged, last["hash"])
        conn.execute(insert(EVENTS).values(**forged))
    assert_bad(check(app), 11, Problem.FORGED)


def test_rewritten_chain_is_caught_by_the_checkpoint(app):
    """Edit record 5 and recompute every hash after it: only the signed checkpoint notices."""
    fill(app, 20, checkpoint_at=15)
    with tamper(app) as conn:
        all_rows = rows(conn)
        all_rows[5]["actor_id"] = "attacker"
        prev = all_rows[4]["hash"]
        for seq in range(5, 21):
            row = all_rows[seq]
            row["prev_hash"], row["hash"] = prev, rehash(row, prev)
            conn.execute(
                update(EVENTS)
                .where(EVENTS.c.seq == seq)
                .values(actor_id=row["actor_id"], prev_hash=row["prev_hash"], hash=row["hash"])
            )
            prev = row["hash"]
        conn.execute(update(HEAD).values(hash=prev))
    result = check(app)
    assert_bad(result, 1, Problem.REWRITTEN)
    assert "15" in result.message


def test_checkpoint_with_a_bad_signature_is_named(app):
    fill(app, 10, checkpoint_at=6)
    assert check(app, KEY).ok
    assert_bad(check(app, b"another key, not the one used...."), 6, Problem.CHECKPOINT_INVALID)
    with tamper(app) as conn:
        conn.execute(
            insert(CHECKPOINTS).values(
                seq=9, hash="f" * 64, hmac="0" * 64, created_at=datetime.now(UTC)
            )
        )
    assert_bad(check(app, KEY), 9, Problem.CHECKPOINT_INVALID)


def test_postgres_refuses_update_and_delete(app):
    if app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("the append-only triggers exist on PostgreSQL only")
    fill(app, 3, checkpoint_at=3)
    engine = app.extensions["onedata.engine"]
    refused = [
        update(EVENTS).where(EVENTS.c.seq == 2).values(actor_id="x"),
        delete(EVENTS).where(EVENTS.c.seq == 3),
        update(CHECKPOINTS).values(hash="0" * 64),
        delete(CHECKPOINTS),
        delete(HEAD),
        update(HEAD).values(seq=1),
    ]
    for statement in refused:
        with pytest.raises(DBAPIError, match="append-only|only moves forward"):
            with engine.begin() as conn:
                conn.execute(statement)
    with engine.begin() as conn:  # the retention job's way in
        conn.execute(text("SET LOCAL onedata.log_retention = 'on'"))
        conn.execute(delete(EVENTS).where(EVENTS.c.seq == 1))
    with pytest.raises(DBAPIError, match="append-only"):  # the setting was transaction-local
        with engine.begin() as conn:
            conn.execute(delete(EVENTS).where(EVENTS.c.seq == 2))
    assert check(app).ok is False  # seq 1 is gone and no checkpoint anchors seq 2


def test_archived_head_of_the_log_is_anchored_by_a_checkpoint(app):
    fill(app, 12, checkpoint_at=5)
    with tamper(app) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.seq <= 5))
    result = check(app)
    assert result.ok and result.records == 7, str(result)
    with tamper(app) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.seq == 6))
    assert_bad(check(app), 1, Problem.DELETED)


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_writers_leave_one_chain(app):
    factory = app.extensions["onedata.sessionmaker"]
    threads, per_thread = 8, 50
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with factory() as session:
                    record_event(session, EventTag.HARVEST_RUN_START, details={"t": n, "i": i})
                    session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    result = check(app)
    assert result.ok and result.records == threads * per_thread, str(result)
    with app.app_context(), db.transaction() as session:
        seen = [(e.details["t"], e.details["i"]) for e in session.scalars(select(SecurityEvent))]
    assert sorted(seen) == [(t, i) for t in range(threads) for i in range(per_thread)]


# --- what is never logged ---------------------------------------------------------------------

SECRETS = [
    "hunter2-Pa55word",
    "tok_live_8f3a9c2e71d04b5e",
    "sk-secret-api-key-value",
    "sessioncookie-abcdef123456",
    "csrf-abcdef0123456789",
    "6171010101900001",  # NIK
    "6171011203150007",  # No. KK
    "19800101 200501 1 001",  # NIP
    "01.234.567.8-901.000",  # NPWP
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",  # JWT
]


def test_secrets_and_personal_data_never_reach_the_row(app):
    with app.app_context(), db.transaction() as session:
        record_event(
            session,
            EventTag.AUTH_LOGIN_FAILURE,
            target=("user", "42"),
            details={
                "password": SECRETS[0],
                "new-password": SECRETS[0],
                "api_token": SECRETS[1],
                "API-Key": SECRETS[2],
                "Cookie": f"session={SECRETS[3]}",
                "csrf_token": SECRETS[4],
                "nik": SECRETS[5],
                "no_kk": SECRETS[6],
                "nip": SECRETS[7],
                "npwp": SECRETS[8],
                "headers": {"Authorization": f"Bearer {SECRETS[1]}", "X-Jwt": SECRETS[9]},
                "rows": [f"bad NIK {SECRETS[5]} in row 3", int(SECRETS[6]), {"kk": SECRETS[6]}],
                "message": f"login as admin with Bearer {SECRETS[1]}",
                "dsn": "postgresql://app:hunter2-Pa55word@db/onedata",
                "url": "postgresql://app:hunter2-Pa55word@db/onedata",
                "checksum": "ab" + "1" * 30 + "cd" * 16,
                "count": 3,
            },
            request=RequestInfo(
                ip="10.1.2.3",
                user_agent=f"curl/8 {SECRETS[9]}",
                path=f"/api/v1/x?token={SECRETS[1]}&nik={SECRETS[5]}&page=2",
                method="POST",
                status=401,
            ),
        )
    engine = app.extensions["onedata.engine"]
    with engine.connect() as conn:
        stored = " ".join(
            str(v) for row in conn.execute(text("SELECT * FROM security_event")) for v in row
        )
    for secret in SECRETS:
        assert secret not in stored
        assert secret.replace(" ", "") not in stored
    assert "hunter2" not in stored
    with app.app_context(), db.transaction() as session:
        event = session.scalars(select(SecurityEvent)).one()
        assert event.details["count"] == 3
        assert event.details["checksum"] == "ab" + "1" * 30 + "cd" * 16  # a hash is not a NIK
        assert event.details["password"] == "[redacted]"
        assert event.details["rows"][0] == "bad NIK [redacted] in row 3"
        assert event.details["url"] == "postgresql://app:[redacted]@db/onedata"
        assert event.path == "/api/v1/x?token=[redacted]&nik=[redacted]&page=2"
    assert check(app).ok


def test_control_characters_are_encoded(app):
    with app.app_context(), db.transaction() as session:
        event = record_event(
            session,
            EventTag.AUTHZ_ACCESS_DENY,
            details={"q": "a\nb", "k\r\ney": "\x1b[31mred\u202e", "path": "C:\\x"},
            request=RequestInfo(
                path="/dataset/x\r\n2026-11-23 INFO admin logged in",
                user_agent="Mozilla\x00\x1b[2J",
                method="get\n",
                status=403,
            ),
        )
        assert event.path == "/dataset/x\\r\\n2026-11-23 INFO admin logged in"
        assert event.user_agent == "Mozilla\\x00\\x1b[2J"
        assert event.method == "GET\\n"
        assert event.details == {
            "q": "a\\nb",
            "k\\r\\ney": "\\x1b[31mred\\u202e",
            "path": "C:\\\\x",
        }
    out = _export(app, "jsonl")
    assert len(out.splitlines()) == 1
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out)
    assert check(app).ok


def test_long_values_are_truncated(app):
    with app.app_context(), db.transaction() as session:
        event = record_event(
            session,
            EventTag.SYSTEM_ERROR_UNEXPECTED,
            details={"message": "x" * 5000, "items": list(range(500))},
            request=RequestInfo(path="/" + "p" * 5000, user_agent="u" * 5000),
        )
        assert len(event.path or "") == 1024 and len(event.user_agent or "") == 512
        assert len(event.details["message"]) == 1000 and len(event.details["items"]) == 101
        assert event.severity == "high"
    assert check(app).ok


# --- exports ----------------------------------------------------------------------------------


def _export(app: Flask, fmt: str) -> str:
    import io

    out = io.StringIO()
    with app.app_context(), db.transaction() as session:
        (export_jsonl if fmt == "jsonl" else export_syslog)(session, out)
    return out.getvalue()


def test_exports_carry_the_chain(app):
    import json

    fill(app, 5)
    lines = [json.loads(line) for line in _export(app, "jsonl").splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    prev = "0" * 64
    for line in lines:  # an exported copy verifies on its own
        record = {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}
        assert line["prev_hash"] == prev and chain_hash(prev, canonical(record)) == line["hash"]
        prev = line["hash"]
    syslog = _export(app, "syslog").splitlines()
    assert len(syslog) == 5
    assert re.match(
        r'<110>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ onedata - \S+ \[onedata@32473 seq="1" ',
        syslog[0],
    )
    assert f'hash="{lines[0]["hash"]}"' in syslog[0]


# --- the catalogue ----------------------------------------------------------------------------


def test_tag_catalogue_is_sorted_documented_and_shaped():
    values = [tag.value for tag in EventTag]
    assert values == sorted(values)
    assert set(TAG_DOCS) == set(EventTag)
    for tag in EventTag:
        assert re.fullmatch(r"[a-z0-9_]+:[a-z0-9_]+:[a-z0-9_]+", tag.value), tag
        assert tag.name == tag.value.replace(":", "_").upper(), tag
        assert f"`{tag.value}`" in catalogue_markdown()


def test_canonical_form_is_sorted_compact_ascii_json():
    import json

    record = {
        "seq": 12,
        "ts": "2026-11-23T07:00:00.123Z",
        "tag": "auth:login:failure",
        "outcome": "failure",
        "severity": "warning",
        "actor_id": None,
        "actor_role": "steward",
        "actor_org": "Dinas Kependudukan — Pontianak",
        "src_ip": "2001:db8::1",
        "user_agent": 'quote " backslash \\ tab \\t é 日本',
        "request_id": "r-1",
        "method": "POST",
        "path": "/login",
        "status": 401,
        "object_type": "user",
        "object_id": "7",
        "details": {"b": [1, 2.5, None, True], "a": {"z": "ü", "y": False}, "ç": -3},
    }
    expected = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert canonical(record) == expected.encode("ascii")
    text_details = {
        **record,
        "details": json.dumps(record["details"], sort_keys=True, separators=(",", ":")),
    }
    assert canonical(text_details) == canonical(record)


def test_unknown_tag_is_refused(app):
    with app.app_context(), db.transaction() as session, pytest.raises(ValueError):
        record_event(session, "auth:login:maybe")


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli(app, tmp_path, monkeypatch):

    env = {"ONEDATA_LOG_HMAC_KEY": "h" * 40}
    with command_runner(app, tmp_path, monkeypatch, security, env) as invoke:
        yield invoke


def test_cli_verify_checkpoint_and_exit_codes(app, cli, tmp_path):
    fill(app, 12)
    result = cli("checkpoint")
    assert result.exit_code == 0, result.output
    assert "checkpoint at seq 12" in result.output
    result = cli("verify")
    assert result.exit_code == 0, result.output
    assert "chain intact: 12 records, 1 checkpoints" in result.output
    result = cli("verify", "--no-record")  # the first run recorded log:integrity:ok
    assert "chain intact: 13 records, 1 checkpoints" in result.output
    with tamper(app) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.seq == 7).values(path="/nothing-to-see"))
    result = cli("verify")
    assert result.exit_code == 1
    assert "record 7: field edited" in result.output
    result = cli("checkpoint")
    assert result.exit_code == 1 and "Not signing" in result.output
    with app.app_context(), db.transaction() as session:
        last = session.scalars(  # the last verification result (an alert may follow it)
            select(SecurityEvent)
            .where(SecurityEvent.tag.startswith("log:integrity:"))
            .order_by(SecurityEvent.seq.desc())
        ).first()
        assert last is not None and last.tag == EventTag.LOG_INTEGRITY_FAILURE
        assert last.details["first_bad_seq"] == 7 and last.severity == "critical"


def test_cli_checkpoint_needs_a_key_and_verify_names_a_wrong_one(app, cli):
    fill(app, 3)
    result = cli("checkpoint", ONEDATA_LOG_HMAC_KEY=None)
    assert result.exit_code != 0 and "ONEDATA_LOG_HMAC_KEY" in result.output
    assert cli("checkpoint").exit_code == 0
    result = cli("verify", ONEDATA_LOG_HMAC_KEY="w" * 40)
    assert result.exit_code == 1 and "checkpoint HMAC invalid" in result.output


def test_cli_export(app, cli, tmp_path):
    fill(app, 4)
    target = tmp_path / "log.jsonl"
    result = cli("export", "--format", "jsonl", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert len(target.read_text().splitlines()) == 4
    result = cli("export", "--format", "syslog")
    assert result.exit_code == 0
    assert sum(line.startswith("<") for line in result.output.splitlines()) == 5  # + export event
    with app.app_context(), db.transaction() as session:
        tags = [e.tag for e in session.scalars(select(SecurityEvent).order_by(SecurityEvent.seq))]
    assert tags[-2:] == [EventTag.LOG_RECORD_EXPORT] * 2
