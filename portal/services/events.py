"""The security event log: the tag catalogue and :func:`record_event`, the one way to write it.

Every record is chained to the one before it (``hash = sha256(prev_hash + canonical)``, see
:mod:`portal.services.events_chain`); writers queue on the log's head row, whose lock is held
until the caller commits: record events last in a unit of work.

Verification and checkpoints live in :mod:`portal.services.events_verify`, exports in
:mod:`portal.services.events_export`, redaction in :mod:`portal.services.events_scrub`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker

from portal.models import Base
from portal.models.events import GENESIS_HASH, EventOutcome, EventSeverity, SecurityEvent
from portal.services.access import Actor
from portal.services.events_chain import (
    CANONICAL_FIELDS,
    append,
    canonical,
    chain_hash,
    format_ts,
)
from portal.services.events_scrub import clean_details, clean_text

__all__ = [
    "CANONICAL_FIELDS",
    "GENESIS_HASH",
    "TAG_DOCS",
    "EventOutcome",
    "EventSeverity",
    "EventTag",
    "RequestInfo",
    "canonical",
    "chain_hash",
    "format_ts",
    "record_event",
    "record_failure_event",
]


class EventTag(StrEnum):
    """``<area>:<subject>:<action>``, kept in alphabetical order; :data:`TAG_DOCS` explains each."""

    ACCESS_GRANT_REVOKE = "access:grant:revoke"
    ACCESS_REQUEST_CREATE = "access:request:create"
    ACCESS_REQUEST_GRANT = "access:request:grant"
    ACCESS_REQUEST_REFUSE = "access:request:refuse"
    ADMIN_ORGANIZATION_CREATE = "admin:organization:create"
    ADMIN_ORGANIZATION_UPDATE = "admin:organization:update"
    ALERT_RULE_RAISE = "alert:rule:raise"
    AUTH_2FA_FAILURE = "auth:2fa:failure"
    AUTH_2FA_SUCCESS = "auth:2fa:success"
    AUTH_LOGIN_FAILURE = "auth:login:failure"
    AUTH_LOGIN_LOCKOUT = "auth:login:lockout"
    AUTH_LOGIN_SUCCESS = "auth:login:success"
    AUTH_OAUTH_CLIENT_CREATE = "auth:oauth_client:create"
    AUTH_OAUTH_CLIENT_REVOKE = "auth:oauth_client:revoke"
    AUTH_PASSWORD_RESET = "auth:password:reset"  # noqa: S105 - a tag, not a secret
    AUTH_SESSION_LOGOUT = "auth:session:logout"
    AUTH_TOKEN_CREATE = "auth:token:create"  # noqa: S105 - a tag, not a secret
    AUTH_TOKEN_REVOKE = "auth:token:revoke"  # noqa: S105 - a tag, not a secret
    AUTHZ_ACCESS_DENY = "authz:access:deny"
    AUTHZ_ROLE_GRANT = "authz:role:grant"
    AUTHZ_ROLE_REVOKE = "authz:role:revoke"
    DATA_DATASET_DOWNLOAD = "data:dataset:download"
    DATA_DATASET_EXPORT = "data:dataset:export"
    HARVEST_FILE_CHANGE = "harvest:file:change"
    HARVEST_PII_DETECT = "harvest:pii:detect"
    HARVEST_RUN_END = "harvest:run:end"
    HARVEST_RUN_START = "harvest:run:start"
    HARVEST_SOURCE_UNREACHABLE = "harvest:source:unreachable"
    HARVEST_VALIDATION_FAILURE = "harvest:validation:failure"
    HARVEST_VERSION_QUARANTINE = "harvest:version:quarantine"
    LOG_INTEGRITY_FAILURE = "log:integrity:failure"
    LOG_INTEGRITY_OK = "log:integrity:ok"
    LOG_RECORD_EXPORT = "log:record:export"
    LOG_RECORD_READ = "log:record:read"
    REVIEW_DATASET_EDIT = "review:dataset:edit"
    REVIEW_DATASET_SUBMIT = "review:dataset:submit"
    REVIEW_DATASET_WITHDRAW = "review:dataset:withdraw"
    REVIEW_VERSION_APPROVE = "review:version:approve"
    REVIEW_VERSION_OVERRIDE = "review:version:override"
    REVIEW_VERSION_PUBLISH = "review:version:publish"
    REVIEW_VERSION_REJECT = "review:version:reject"
    SYSTEM_CONFIG_CHANGE = "system:config:change"
    SYSTEM_ERROR_UNEXPECTED = "system:error:unexpected"
    SYSTEM_RATE_LIMIT_HIT = "system:rate_limit:hit"
    USER_ACCOUNT_CREATE = "user:account:create"
    USER_ACCOUNT_DISABLE = "user:account:disable"
    USER_ACCOUNT_ENABLE = "user:account:enable"


T = EventTag
#: One line per tag: what happened, and what ``details`` holds. README lists these.
TAG_DOCS: dict[EventTag, str] = {
    T.ACCESS_GRANT_REVOKE: "A steward ended a user's access grant before its expiry.",
    T.ACCESS_REQUEST_CREATE: "A user asked for access to a restricted dataset (never the purpose).",
    T.ACCESS_REQUEST_GRANT: "A steward granted an access request (dataset, user, expiry).",
    T.ACCESS_REQUEST_REFUSE: "A steward refused an access request (with a reason).",
    T.ADMIN_ORGANIZATION_CREATE: "An OPD was created.",
    T.ADMIN_ORGANIZATION_UPDATE: "An OPD's title, description or web site changed.",
    T.ALERT_RULE_RAISE: "An alert rule fired and admins were notified (rule, count, window).",
    T.AUTH_2FA_FAILURE: "A wrong or expired second-factor code was entered.",
    T.AUTH_2FA_SUCCESS: "A second-factor code was accepted.",
    T.AUTH_LOGIN_FAILURE: "A login failed: unknown account, wrong password or disabled user.",
    T.AUTH_LOGIN_LOCKOUT: "An account or address was locked out after repeated failures.",
    T.AUTH_LOGIN_SUCCESS: "A user logged in.",
    T.AUTH_OAUTH_CLIENT_CREATE: "An OAuth2 client was registered (client id, scopes).",
    T.AUTH_OAUTH_CLIENT_REVOKE: "An OAuth2 client was revoked.",
    T.AUTH_PASSWORD_RESET: "A password was reset, by reset link or by an admin.",
    T.AUTH_SESSION_LOGOUT: "A user logged out.",
    T.AUTH_TOKEN_CREATE: "An API token was created (id, hashed prefix, scopes; never the token).",
    T.AUTH_TOKEN_REVOKE: "An API token was revoked or expired.",
    T.AUTHZ_ACCESS_DENY: "A request was refused: another OPD's data, a draft, internal data.",
    T.AUTHZ_ROLE_GRANT: "A role or OPD membership was granted to a user.",
    T.AUTHZ_ROLE_REVOKE: "A role or OPD membership was taken from a user.",
    T.DATA_DATASET_DOWNLOAD: (
        "The original file of a restricted or internal dataset was downloaded."
    ),
    T.DATA_DATASET_EXPORT: (
        "A derived export (CSV, …) of a restricted or internal dataset was downloaded."
    ),
    T.HARVEST_FILE_CHANGE: "A harvested file changed size or checksum since its last version.",
    T.HARVEST_PII_DETECT: "Personal data found in a harvested table (column, detector, count).",
    T.HARVEST_RUN_END: "A harvest run finished (status and item counts).",
    T.HARVEST_RUN_START: "A harvest run started.",
    T.HARVEST_SOURCE_UNREACHABLE: "A harvest source could not be reached or listed.",
    T.HARVEST_VALIDATION_FAILURE: "A harvested table failed its Table Schema (error counts).",
    T.HARVEST_VERSION_QUARANTINE: "A harvested version was quarantined and kept from the public.",
    T.LOG_INTEGRITY_FAILURE: "Verification of this log failed (first bad record and reason).",
    T.LOG_INTEGRITY_OK: "Verification of this log passed (records and checkpoints checked).",
    T.LOG_RECORD_EXPORT: "This log was exported (format, number of records).",
    T.LOG_RECORD_READ: "Records of this log were read on the admin page or through the API.",
    T.REVIEW_DATASET_EDIT: (
        "A dataset's metadata was edited (changed fields; old → new for short fields)."
    ),
    T.REVIEW_DATASET_SUBMIT: (
        "A clean version from an untrusted source entered review (actor: the harvester)."
    ),
    T.REVIEW_DATASET_WITHDRAW: (
        "A dataset was withdrawn: by a steward (with reason) or by the harvest after its "
        "grace period."
    ),
    T.REVIEW_VERSION_APPROVE: "A steward approved a version.",
    T.REVIEW_VERSION_OVERRIDE: "A steward published a version despite failed checks (with reason).",
    T.REVIEW_VERSION_PUBLISH: (
        "A version became the public current version (steward, override or trusted source)."
    ),
    T.REVIEW_VERSION_REJECT: "A steward rejected a version (with reason).",
    T.SYSTEM_CONFIG_CHANGE: "A setting was changed (name; values only when not secret).",
    T.SYSTEM_ERROR_UNEXPECTED: "An unexpected error answered 500 (exception type, request id).",
    T.SYSTEM_RATE_LIMIT_HIT: "A client went over a rate limit.",
    T.USER_ACCOUNT_CREATE: "A user account was created.",
    T.USER_ACCOUNT_DISABLE: "A user account was disabled.",
    T.USER_ACCOUNT_ENABLE: "A disabled account was enabled again (revoked tokens stay revoked).",
}

#: Tags whose default outcome is ``failure``.
FAILURE_TAGS = frozenset(
    {
        T.AUTH_2FA_FAILURE,
        T.AUTH_LOGIN_FAILURE,
        T.AUTH_LOGIN_LOCKOUT,
        T.AUTHZ_ACCESS_DENY,
        T.HARVEST_SOURCE_UNREACHABLE,
        T.HARVEST_VALIDATION_FAILURE,
        T.LOG_INTEGRITY_FAILURE,
        T.SYSTEM_ERROR_UNEXPECTED,
        T.SYSTEM_RATE_LIMIT_HIT,
    }
)
_S = EventSeverity
#: Default severity of a tag when the caller gives none; every other tag is ``info``
#: (``warning`` when its outcome is a failure).
TAG_SEVERITY: dict[EventTag, EventSeverity] = {
    T.ALERT_RULE_RAISE: _S.HIGH,
    T.AUTH_LOGIN_LOCKOUT: _S.HIGH,
    T.AUTHZ_ROLE_GRANT: _S.WARNING,
    T.HARVEST_PII_DETECT: _S.HIGH,
    T.HARVEST_VERSION_QUARANTINE: _S.WARNING,
    T.LOG_INTEGRITY_FAILURE: _S.CRITICAL,
    T.REVIEW_VERSION_OVERRIDE: _S.WARNING,
    T.SYSTEM_CONFIG_CHANGE: _S.WARNING,
    T.SYSTEM_ERROR_UNEXPECTED: _S.HIGH,
}


@dataclass(frozen=True)
class RequestInfo:
    """The HTTP context of an event, filled by the web layer (services never import Flask)."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    method: str | None = None
    path: str | None = None
    status: int | None = None


#: What an event is about: ``(object_type, object_id)`` or a model instance.
Target = tuple[str, object] | Base


def _target(target: Target | None) -> tuple[str | None, str | None]:
    if target is None:
        return None, None
    if isinstance(target, tuple):
        kind, ident = target
        return kind, None if ident is None else str(ident)
    identity = inspect(target).identity
    ident = ",".join(str(part) for part in identity) if identity else getattr(target, "id", None)
    return str(type(target).__tablename__), None if ident is None else str(ident)


def record_event(
    session: Session,
    tag: EventTag | str,
    *,
    outcome: EventOutcome | str | None = None,
    severity: EventSeverity | str | None = None,
    actor: Actor | None = None,
    target: Target | None = None,
    details: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> SecurityEvent:
    """Append one event to the chain, in the caller's transaction (writes, never commits).

    Secrets and personal data in ``details`` and in every text field are redacted, control
    characters encoded, long values truncated (:mod:`portal.services.events_scrub`). Call it last
    in a unit of work: the head row stays locked until the caller commits.

    :param session: the caller's session; the event commits or rolls back with its work.
    :param tag: a catalogued :class:`EventTag`.
    :param outcome: ``success`` or ``failure``; defaults from the tag (see :data:`FAILURE_TAGS`).
    :param severity: defaults from :data:`TAG_SEVERITY`, raised to ``warning`` on failure.
    :param actor: who acted (``None``: anonymous or the system).
    :param target: what was acted on: ``(object_type, object_id)`` or a model instance.
    :param details: extra facts as JSON; never values of personal data.
    :param request: the HTTP context, when there is one.
    :raises ValueError: when the tag, outcome or severity is not in its catalogue.
    """
    tag = EventTag(tag)
    outcome = EventOutcome(outcome) if outcome is not None else _default_outcome(tag)
    if severity is None:
        severity = TAG_SEVERITY.get(tag, EventSeverity.INFO)
        if severity is EventSeverity.INFO and outcome is EventOutcome.FAILURE:
            severity = EventSeverity.WARNING
    severity = EventSeverity(severity)
    req = request or RequestInfo()
    object_type, object_id = _target(target)
    fields: dict[str, Any] = {
        "tag": tag.value,
        "outcome": outcome.value,
        "severity": severity.value,
        "actor_id": clean_text(actor.id if actor else None, 64),
        "actor_role": clean_text(actor.role.value if actor else None, 32),
        "actor_org": clean_text(",".join(sorted(actor.org_ids)) or None if actor else None, 100),
        "src_ip": clean_text(req.ip, 64),
        "user_agent": clean_text(req.user_agent, 512),
        "request_id": clean_text(req.request_id, 64),
        "method": clean_text(req.method.upper() if req.method else None, 16),
        "path": clean_text(req.path, 1024),
        "status": int(req.status) if req.status is not None else None,
        "object_type": clean_text(object_type, 64),
        "object_id": clean_text(object_id, 128),
        "details": clean_details(details),
    }
    values = append(session, fields)
    event = SecurityEvent(**{**values, "outcome": outcome, "severity": severity})
    make_transient_to_detached(event)  # the row exists: attach it as loaded, without a flush
    session.add(event)
    return event


def _default_outcome(tag: EventTag) -> EventOutcome:
    return EventOutcome.FAILURE if tag in FAILURE_TAGS else EventOutcome.SUCCESS


def record_failure_event(
    bind: Engine | sessionmaker[Session],
    tag: EventTag | str,
    *,
    outcome: EventOutcome | str | None = EventOutcome.FAILURE,
    severity: EventSeverity | str | None = None,
    actor: Actor | None = None,
    target: Target | None = None,
    details: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> SecurityEvent:
    """Record an event in a transaction of its own and commit it.

    For failures whose request rolls back (a failed login, a refused request, a 500): call it
    once the request's own transaction has ended, or before it has recorded events, since that
    transaction would hold the head lock this one waits for.

    :param bind: an engine or a session factory.
    :param tag: see :func:`record_event`; so are the other parameters.
    :param outcome: defaults to ``failure``.
    :param severity: see :func:`record_event`.
    :param actor: see :func:`record_event`.
    :param target: see :func:`record_event`.
    :param details: see :func:`record_event`.
    :param request: see :func:`record_event`.
    :raises ValueError: when the tag, outcome or severity is not in its catalogue.
    :raises sqlalchemy.exc.SQLAlchemyError: when the database refuses the write.
    """
    factory = bind if isinstance(bind, sessionmaker) else sessionmaker(bind)
    with factory(expire_on_commit=False) as session:
        event = record_event(
            session,
            tag,
            outcome=outcome,
            severity=severity,
            actor=actor,
            target=target,
            details=details,
            request=request,
        )
        session.commit()
    return event


def catalogue_markdown() -> str:
    """The tag catalogue as a Markdown table, for README.md.

    :raises KeyError: when a tag has no entry in :data:`TAG_DOCS`.
    """
    lines = ["| tag | meaning |", "|---|---|"]
    lines += [f"| `{tag.value}` | {TAG_DOCS[tag]} |" for tag in EventTag]
    return "\n".join(lines)
