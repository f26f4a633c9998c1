"""The security log's page ``/admin/security-log``: filter, read one record, export CSV, verify.

Stewards and admins (``security:log:read``) read it; only admins (``security:log:verify``) run
"verify now". Every read records ``log:record:read`` and every export ``log:record:export``,
each with the filter used (ISO 27002 8.15: reads of the log are themselves logged).

:func:`init_app` also wires what runs after events commit (:mod:`portal.services.log_forward`):
forwarding to ``ONEDATA_SYSLOG_URL`` and the alert rules of :mod:`portal.services.alerts`.
"""

from __future__ import annotations

import csv
import io
import json
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    has_request_context,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from portal import db
from portal.errors import Invalid, NotFound
from portal.identity import request_info
from portal.mail import send_mail, send_mail_later
from portal.models import Organization
from portal.models.events import CANONICAL_JSON, EventOutcome, SecurityEvent
from portal.services import alerts, log_forward
from portal.services.access import Permission, can
from portal.services.events import EventTag, canonical, chain_hash, format_ts, record_event
from portal.services.events_verify import VerifyResult, verify
from portal.views.guards import FlaskForm, require, submitted
from portal.views.security_log_filter import SEVERITIES, LogFilter

bp = Blueprint("security_log", __name__, url_prefix="/admin/security-log")

PAGE_SIZE = 50
CSV_BATCH = 1_000
#: The integrity badge turns to "stale" after this long without a verification.
STALE_AFTER = timedelta(hours=26)
CSV_COLUMNS = (
    "seq", "ts", "tag", "outcome", "severity", "actor_id", "actor_role", "actor_org", "src_ip",
    "user_agent", "request_id", "method", "path", "status", "object_type", "object_id",
    "details", "prev_hash", "hash",
)  # fmt: skip
class VerifyForm(FlaskForm):
    """The "verify now" button: a POST with its CSRF token and nothing else."""


def _query(flt: LogFilter) -> Any:
    return select(SecurityEvent).where(*flt.conditions())


def _page(
    session: Session, flt: LogFilter, before: int | None, after: int | None
) -> tuple[list[SecurityEvent], int | None, int | None]:
    """One page, newest first, keyed by ``seq``; and the cursors of the newer and older pages."""
    query = _query(flt)
    if after is not None:  # back towards the newest records
        newer = query.where(SecurityEvent.seq > after).order_by(SecurityEvent.seq)
        rows = list(session.scalars(newer.limit(PAGE_SIZE + 1)))
        if len(rows) > PAGE_SIZE:
            rows = rows[:PAGE_SIZE][::-1]
            return rows, rows[0].seq, rows[-1].seq
        before = None  # reached the newest: show the first page
    if before is not None:
        query = query.where(SecurityEvent.seq < before)
    rows = list(session.scalars(query.order_by(SecurityEvent.seq.desc()).limit(PAGE_SIZE + 1)))
    older = rows[PAGE_SIZE - 1].seq if len(rows) > PAGE_SIZE else None
    rows = rows[:PAGE_SIZE]
    return rows, rows[0].seq if rows and before is not None else None, older


def _chain_status(session: Session) -> dict[str, Any]:
    """The last verification of the log: its record, and whether it passed or is stale."""
    last = session.scalars(
        select(SecurityEvent)
        .where(SecurityEvent.tag.in_([EventTag.LOG_INTEGRITY_OK, EventTag.LOG_INTEGRITY_FAILURE]))
        .order_by(SecurityEvent.seq.desc())
        .limit(1)
    ).first()
    if last is None:
        return {"event": None, "state": "never"}
    ts = last.ts if last.ts.tzinfo else last.ts.replace(tzinfo=UTC)
    if last.tag == EventTag.LOG_INTEGRITY_FAILURE:
        state = "failure"
    else:
        state = "stale" if datetime.now(UTC) - ts > STALE_AFTER else "ok"
    return {"event": last, "state": state}


def _organizations(session: Session) -> dict[str, str]:
    rows = session.execute(select(Organization.id, Organization.title).order_by(Organization.title))
    return {str(ident): str(title) for ident, title in rows}


def _record(event: SecurityEvent) -> dict[str, Any]:
    record = {name: getattr(event, name) for name in CSV_COLUMNS}
    record.update(ts=format_ts(event.ts), outcome=str(event.outcome), severity=str(event.severity))
    return record


@bp.get("")
def index() -> str:
    actor = require(Permission.SECURITY_LOG_READ)
    flt = LogFilter.from_args(request.args)
    before = request.args.get("before", type=int)
    after = request.args.get("after", type=int)
    session = db.get_session()
    rows, newer, older = _page(session, flt, before, after)
    page = render_template(
        "security_log/list.html",
        rows=rows,
        newer=newer,
        older=older,
        filters=flt.as_args(),
        flt=flt,
        status=_chain_status(session),
        organizations=_organizations(session),
        outcomes=list(EventOutcome),
        severities=SEVERITIES,
        tags=sorted({t.value.split(":")[0] + ":" for t in EventTag} | {t.value for t in EventTag}),
        can_verify=can(actor, Permission.SECURITY_LOG_VERIFY),
        verify_form=VerifyForm(),
        format_ts=format_ts,
    )
    cursor = {"before": before} if before is not None else {}
    cursor.update({"after": after} if after is not None else {})
    record_event(
        session,
        EventTag.LOG_RECORD_READ,
        actor=actor,
        details={"view": "list", "filter": flt.as_args(), "records": len(rows), **cursor},
        request=request_info(200),
    )
    return page


@bp.get("/<int:seq>")
def detail(seq: int) -> str:
    actor = require(Permission.SECURITY_LOG_READ)
    session = db.get_session()
    event = session.get(SecurityEvent, seq)
    if event is None:
        raise NotFound(_("There is no record with this number."))
    record = _record(event)
    intact = chain_hash(event.prev_hash, canonical(record)) == event.hash
    page = render_template(
        "security_log/detail.html",
        event=event,
        record=record,
        intact=intact,
        details=json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=True),
        organizations=_organizations(session),
    )
    record_event(
        session,
        EventTag.LOG_RECORD_READ,
        actor=actor,
        target=("security_event", seq),
        details={"view": "detail"},
        request=request_info(200),
    )
    return page


def _csv_cell(value: object) -> object:
    # Spreadsheets run cells starting with = + - @ as formulas; log fields come from clients.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_rows(flt: LogFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    session = db.new_session()
    query = _query(flt).order_by(SecurityEvent.seq).limit(CSV_BATCH)
    try:
        last = 0
        while True:
            batch = list(session.scalars(query.where(SecurityEvent.seq > last)))
            if not batch:
                return
            buffer.seek(0)
            buffer.truncate()
            for event in batch:
                record = _record(event)
                record["details"] = CANONICAL_JSON.encode(event.details)
                writer.writerow([_csv_cell(record[name]) for name in CSV_COLUMNS])
            yield buffer.getvalue()
            last = batch[-1].seq
            session.expunge_all()
    finally:
        session.close()


@bp.get("/export.csv")
def export_csv() -> Response:
    actor = require(Permission.SECURITY_LOG_READ)
    flt = LogFilter.from_args(request.args)
    # Its own transaction, committed before streaming: the log's writer lock is not held
    # while a long export is downloaded.
    with db.transaction() as session:
        record_event(
            session,
            EventTag.LOG_RECORD_EXPORT,
            actor=actor,
            details={"format": "csv", "filter": flt.as_args()},
            request=request_info(200),
        )
    name = f"security-log-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv"
    return Response(
        stream_with_context(_csv_rows(flt)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def _server_key() -> bytes | None:
    """The checkpoint key, if this server holds it (it should not: see ``ONEDATA_LOG_HMAC_KEY``)."""
    raw = current_app.config.get("LOG_HMAC_KEY")
    if not raw or len(raw) < 32 or raw == current_app.config.get("SECRET_KEY"):
        return None
    return str(raw).encode("utf-8")


def _result_details(result: VerifyResult) -> dict[str, Any]:
    details: dict[str, Any] = {
        "records": result.records,
        "checkpoints": result.checkpoints,
        "signatures_checked": result.signatures_checked,
        "via": "web",
    }
    if not result.ok:
        details.update(
            first_bad_seq=result.first_bad_seq, problem=str(result.problem), message=result.message
        )
    return details


@bp.post("/verify")
def verify_now() -> ResponseReturnValue:
    actor = require(Permission.SECURITY_LOG_VERIFY)
    if not submitted(VerifyForm()):
        raise Invalid(_("The form has expired. Reload the page and try again."))
    session = db.get_session()
    result = verify(session, _server_key())
    record_event(
        session,
        EventTag.LOG_INTEGRITY_OK if result.ok else EventTag.LOG_INTEGRITY_FAILURE,
        actor=actor,
        details=_result_details(result),
        request=request_info(303),
    )
    if result.ok:
        flash(_("The chain is intact: %(n)d records checked.", n=result.records), "good")
    else:
        flash(_("Verification FAILED: %(problem)s.", problem=str(result)), "bad")
    return redirect(url_for("security_log.index"), 303)


# --- after commit: syslog forwarding and alert rules ------------------------------------------


def _mailer(app_ref: weakref.ref[Flask]) -> alerts.Send:
    # A weak reference: the hook registry must not keep test apps (and their engines) alive.
    def send(to: str, subject: str, body: str) -> None:
        app = app_ref()
        if app is None:
            return
        if has_request_context():  # never make a visitor wait for the SMTP server
            send_mail_later(app, to, subject, body)
        else:  # a command (cron's verify) or a worker: a background thread would die with it
            send_mail(app, to, subject, body)

    return send


def init_app(app: Flask) -> None:
    """Register the page; forward committed events to syslog; evaluate the alert rules.

    :raises RuntimeError: when ``ONEDATA_SYSLOG_URL`` or an alert setting is malformed.
    """
    app.register_blueprint(bp)
    engine: Engine = app.extensions["onedata.engine"]
    try:
        settings = alerts.AlertSettings.from_config(app.config)
        url = app.config.get("SYSLOG_URL")
        if url:
            forwarder = log_forward.SyslogForwarder(str(url))
            app.extensions["onedata.syslog"] = forwarder
            log_forward.on_commit(engine, forwarder.handle)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
    log_forward.on_commit(engine, alerts.commit_handler(settings, _mailer(weakref.ref(app))))


__all__ = ["LogFilter", "bp", "init_app"]
