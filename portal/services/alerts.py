"""Alert rules over the security log (ISO 27001 A.8.16): evaluated right after events commit.

The rules:

- ``login_failures_account`` / ``login_failures_ip``: ``ONEDATA_ALERT_LOGIN_FAILURES``
  ``auth:login:failure`` events for one account or from one address within
  ``ONEDATA_ALERT_WINDOW_MINUTES``;
- ``pii_detected``: any ``harvest:pii:detect`` (one alert per harvested resource);
- ``integrity_failure``: any ``log:integrity:failure``.

A rule that fires records ``alert:rule:raise`` about its subject (the account, the address, the
resource, the log) and admins are told by e-mail. A rule fires at most once per subject per
window — a brute-force run of a thousand attempts makes one alert, not a thousand — and two
processes evaluating at once cannot both raise it: the check is repeated under the log's writer
lock. :func:`raise_alerts` runs from :func:`portal.services.log_forward.on_commit`, after the
events' transaction committed, so a rolled-back action raises nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.models import Role, User
from portal.models.events import SecurityEvent
from portal.services.access import OPERATOR
from portal.services.events import EventSeverity, EventTag, record_event

__all__ = [
    "TRIGGER_TAGS",
    "Alert",
    "AlertRule",
    "AlertSettings",
    "candidates",
    "commit_handler",
    "message",
    "notify_admins",
    "raise_alerts",
    "recipients",
]

logger = logging.getLogger("portal.security.alerts")
Record = dict[str, Any]
#: ``send(to, subject, body)``: how :func:`notify_admins` sends one e-mail.
Send = Callable[[str, str, str], object]


class AlertRule(StrEnum):
    """The rules, as named in ``alert:rule:raise`` details and the SOP."""

    INTEGRITY_FAILURE = "integrity_failure"
    LOGIN_FAILURES_ACCOUNT = "login_failures_account"
    LOGIN_FAILURES_IP = "login_failures_ip"
    PII_DETECTED = "pii_detected"


#: ``object_type`` of a failed login's account (``record_event`` names a User by its table).
ACCOUNT_TYPES = ("user_account", "user")
LOGIN_RULES = frozenset({AlertRule.LOGIN_FAILURES_ACCOUNT, AlertRule.LOGIN_FAILURES_IP})
#: Severity of the alert record when not the tag's default (``high``).
SEVERITY = {AlertRule.INTEGRITY_FAILURE: EventSeverity.CRITICAL}
#: The tags that can make a rule fire; other events cost the rules nothing.
TRIGGER_TAGS = frozenset(
    {EventTag.AUTH_LOGIN_FAILURE, EventTag.HARVEST_PII_DETECT, EventTag.LOG_INTEGRITY_FAILURE}
)


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds: ``ONEDATA_ALERT_LOGIN_FAILURES`` within ``ONEDATA_ALERT_WINDOW_MINUTES``."""

    login_failures: int = 10
    window: timedelta = timedelta(minutes=15)
    #: The portal's public address (``ONEDATA_BASE_URL``), to make the e-mailed link absolute.
    base_url: str = ""

    @property
    def minutes(self) -> int:
        """The window in whole minutes."""
        return int(self.window.total_seconds() // 60)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AlertSettings:
        """:param config: the app's config (``ALERT_LOGIN_FAILURES``, ``ALERT_WINDOW_MINUTES``,
            ``BASE_URL``).

        :raises ValueError: when a number is not a positive whole number.
        """
        failures = int(config.get("ALERT_LOGIN_FAILURES", 10))
        minutes = int(config.get("ALERT_WINDOW_MINUTES", 15))
        if failures < 1 or minutes < 1:
            raise ValueError("ONEDATA_ALERT_LOGIN_FAILURES and _WINDOW_MINUTES must be >= 1")
        base_url = str(config.get("BASE_URL") or "").rstrip("/")
        return cls(failures, timedelta(minutes=minutes), base_url)


@dataclass
class Alert:
    """A rule that fired for a subject; ``seq`` is its ``alert:rule:raise`` record once raised."""

    rule: AlertRule
    subject_type: str
    subject_id: str
    count: int
    trigger_seq: int
    facts: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None


def _failures_since(session: Session, since: datetime, **where: str) -> int:
    query = select(func.count()).where(
        SecurityEvent.tag == EventTag.AUTH_LOGIN_FAILURE.value, SecurityEvent.ts >= since
    )
    for column, value in where.items():
        query = query.where(getattr(SecurityEvent, column) == value)
    return int(session.scalar(query) or 0)


def candidates(
    session: Session, records: Iterable[Record], settings: AlertSettings, *, now: datetime
) -> list[Alert]:
    """The alerts ``records`` (just committed) call for, before de-duplication.

    :param session: reads the log (login-failure counts).
    :param records: committed events, as :func:`portal.services.events_export.iter_records`.
    :param settings: thresholds and window.
    :param now: the end of the counting window (UTC).
    """
    since = now - settings.window
    found: dict[tuple[AlertRule, str, str], Alert] = {}
    for record in records:
        tag, seq = record["tag"], int(record["seq"])
        if tag == EventTag.AUTH_LOGIN_FAILURE:
            subjects: list[tuple[AlertRule, str, str, dict[str, str]]] = []
            kind = str(record.get("object_type") or "")
            if kind in ACCOUNT_TYPES and record.get("object_id"):
                ident = str(record["object_id"])
                where = {"object_type": kind, "object_id": ident}
                subjects.append((AlertRule.LOGIN_FAILURES_ACCOUNT, kind, ident, where))
            if record.get("src_ip"):
                ip = str(record["src_ip"])
                subjects.append((AlertRule.LOGIN_FAILURES_IP, "ip", ip, {"src_ip": ip}))
            for rule, kind, ident, where in subjects:
                if (rule, kind, ident) in found:
                    continue
                count = _failures_since(session, since, **where)
                if count >= settings.login_failures:
                    found[(rule, kind, ident)] = Alert(rule, kind, ident, count, seq)
        elif tag == EventTag.HARVEST_PII_DETECT:
            kind = str(record.get("object_type") or "event")
            ident = str(record.get("object_id") or seq)
            details = record.get("details") or {}
            alert = found.setdefault(
                (AlertRule.PII_DETECTED, kind, ident),
                Alert(AlertRule.PII_DETECTED, kind, ident, 0, seq, {"findings": []}),
            )
            alert.count += 1
            alert.facts["findings"].append(
                {key: details.get(key) for key in ("column", "detector", "count")}
            )
        elif tag == EventTag.LOG_INTEGRITY_FAILURE:
            details = record.get("details") or {}
            facts = {k: details[k] for k in ("first_bad_seq", "problem") if k in details}
            found.setdefault(
                (AlertRule.INTEGRITY_FAILURE, "log", "security_event"),
                Alert(AlertRule.INTEGRITY_FAILURE, "log", "security_event", 1, seq, facts),
            )
    return list(found.values())


def _raised_since(session: Session, alert: Alert, since: datetime, before_seq: int | None) -> bool:
    query = select(SecurityEvent.details).where(
        SecurityEvent.tag == EventTag.ALERT_RULE_RAISE.value,
        SecurityEvent.object_type == alert.subject_type,
        SecurityEvent.object_id == alert.subject_id,
        SecurityEvent.ts >= since,
    )
    if before_seq is not None:
        query = query.where(SecurityEvent.seq < before_seq)
    return any((d or {}).get("rule") == alert.rule.value for d in session.scalars(query))


def _raise_one(
    factory: sessionmaker[Session], alert: Alert, settings: AlertSettings, since: datetime
) -> bool:
    with factory() as session:
        if _raised_since(session, alert, since, None):
            return False
        session.rollback()  # end the read: the record below must see what others committed
        raised = record_event(
            session,
            EventTag.ALERT_RULE_RAISE,
            actor=OPERATOR,
            target=(alert.subject_type, alert.subject_id),
            severity=SEVERITY.get(alert.rule),
            details={
                "rule": alert.rule.value,
                "count": alert.count,
                "threshold": settings.login_failures if alert.rule in LOGIN_RULES else 1,
                "window_minutes": settings.minutes,
                "trigger_seq": alert.trigger_seq,
                **alert.facts,
            },
        )
        # Holding the writers' lock now: another process may have raised it meanwhile.
        if _raised_since(session, alert, since, raised.seq):
            session.rollback()
            return False
        alert.seq = raised.seq
        session.commit()
    return True


def raise_alerts(
    factory: sessionmaker[Session],
    records: Iterable[Record],
    settings: AlertSettings,
    *,
    now: datetime | None = None,
) -> list[Alert]:
    """Evaluate the rules over committed ``records``; record each new alert; return them.

    Each alert is recorded and committed in a transaction of its own (``alert:rule:raise``,
    actor ``cli``: the system), unless the same rule fired for the same subject within the window.

    :param factory: makes sessions on the log's database.
    :param records: events that just committed.
    :param settings: thresholds and window.
    :param now: the current time (tests); default: now, UTC.
    :raises sqlalchemy.exc.SQLAlchemyError: when the database refuses a read or the write.
    """
    records = [r for r in records if r.get("tag") in TRIGGER_TAGS]
    if not records:
        return []
    now = now or datetime.now(UTC)
    since = now - settings.window
    with factory() as session:
        found = candidates(session, records, settings, now=now)
    return [alert for alert in found if _raise_one(factory, alert, settings, since)]


def recipients(session: Session) -> list[str]:
    """E-mail addresses of the active admins, sorted.

    :param session: any session.
    """
    query = select(User.email).where(
        User.role == Role.ADMIN, User.active.is_(True), User.email.is_not(None)
    )
    return sorted({str(email) for email in session.scalars(query) if email})


_RULE_TEXT = {
    AlertRule.LOGIN_FAILURES_ACCOUNT: (
        "{count} login gagal untuk akun #{subject} dalam {window} menit",
        "{count} failed logins for account #{subject} within {window} minutes",
    ),
    AlertRule.LOGIN_FAILURES_IP: (
        "{count} login gagal dari alamat {subject} dalam {window} menit",
        "{count} failed logins from address {subject} within {window} minutes",
    ),
    AlertRule.PII_DETECTED: (
        "data pribadi terdeteksi pada hasil panen {subject}",
        "personal data detected in harvested {subject}",
    ),
    AlertRule.INTEGRITY_FAILURE: (
        "verifikasi log keamanan GAGAL",
        "security log verification FAILED",
    ),
}


def message(alert: Alert, settings: AlertSettings) -> tuple[str, str]:
    """The subject and plain-text body of the e-mail about ``alert`` (Indonesian, then English).

    Only what the log holds: rule, subject id, counts, record numbers; never personal data.

    :param alert: a raised alert.
    :param settings: for the window length and the portal's address.
    :raises KeyError: when the rule has no text.
    """
    subject_text = (
        alert.subject_id
        if alert.subject_type in (*ACCOUNT_TYPES, "ip")
        else (f"{alert.subject_type} {alert.subject_id}")
    )
    values = {
        "count": alert.count,
        "subject": subject_text,
        "window": settings.minutes,
    }
    indonesian, english = (text.format(**values) for text in _RULE_TEXT[alert.rule])
    link = settings.base_url + "/admin/security-log" + (f"/{alert.seq}" if alert.seq else "")
    facts = "\n".join(f"  {key}: {value}" for key, value in sorted(alert.facts.items()))
    body = (
        f"Peringatan keamanan portal Satu Data: {indonesian}.\n\n"
        f"Aturan: {alert.rule.value}\nCatatan pemicu: seq {alert.trigger_seq}\n"
        f"Catatan peringatan: seq {alert.seq}\n"
        + (f"Rincian:\n{facts}\n" if facts else "")
        + f"\nPeriksa di portal: {link}\n"
        "Tangani sesuai SOP keamanan informasi (docs/sop-keamanan-informasi.md, bagian 5).\n\n"
        f"-- \nSecurity alert: {english}. Review it at {link}.\n"
    )
    return f"[Satu Data] Peringatan keamanan: {indonesian}", body


def notify_admins(
    session: Session, alerts: Iterable[Alert], settings: AlertSettings, send: Send
) -> int:
    """E-mail each raised alert to every active admin; return the number of messages sent.

    :param session: reads the admins' addresses.
    :param alerts: alerts :func:`raise_alerts` returned.
    :param settings: for the message text.
    :param send: ``send(to, subject, body)``, e.g. :func:`portal.mail.send_mail` bound to the app.
    :raises OSError: when ``send`` cannot deliver (the SMTP server is unreachable).
    :raises ValueError: when ``send`` refuses an address or header.
    """
    alerts = list(alerts)
    if not alerts:
        return 0
    to = recipients(session)
    sent = 0
    for alert in alerts:
        subject, body = message(alert, settings)
        for address in to:
            send(address, subject, body)
            sent += 1
    return sent


def commit_handler(settings: AlertSettings, send: Send) -> Callable[[Engine, list[Record]], None]:
    """A :func:`portal.services.log_forward.on_commit` handler: raise alerts, e-mail admins.

    A failed e-mail is logged (its error type only); the alert stays recorded.

    :param settings: thresholds and window.
    :param send: ``send(to, subject, body)``, e.g. :func:`portal.mail.send_mail_later` bound to
        the app.
    """

    def handle(engine: Engine, records: list[Record]) -> None:
        if not any(r.get("tag") in TRIGGER_TAGS for r in records):
            return
        factory = sessionmaker(engine, expire_on_commit=False)
        raised = raise_alerts(factory, records, settings)
        if not raised:
            return
        with factory() as session:
            try:
                sent = notify_admins(session, raised, settings, send)
            except (OSError, ValueError) as exc:
                logger.error("could not e-mail a security alert: %s", type(exc).__name__)
                return
        if not sent:
            logger.warning("a security alert was raised but no active admin has an e-mail address")

    return handle
