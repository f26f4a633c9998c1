"""The security event log: an append-only, hash-chained table, its head and signed checkpoints.

Records are written only by :func:`portal.services.events.record_event`; the chain, the head row
that serialises writers, and verification are explained in ``portal/services/events.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Dialect, Integer, String, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column

from portal.models import Base, enum_type, utcnow

#: ``prev_hash`` of the first record, and the head's hash while the log is empty.
GENESIS_HASH = "0" * 64

# BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the fast rowid key.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

#: The canonical JSON form: sorted keys, no whitespace, ASCII only.
CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


class CanonicalJSON(TypeDecorator[Any]):
    """A JSON column whose stored text is the canonical form of its value.

    The bytes kept are then exactly the bytes hashed, and verification reads them as they are
    instead of parsing and re-encoding every record. PostgreSQL's ``json`` type (not ``jsonb``)
    keeps the text it is given.
    """

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        def process(value: Any) -> str | None:
            return None if value is None else CANONICAL_JSON.encode(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        def process(value: Any) -> Any:
            return json.loads(value) if isinstance(value, str) else value

        return process


class EventOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class EventSeverity(StrEnum):
    """Ordered from least to most urgent; maps onto syslog severities in exports."""

    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"


class SecurityEvent(Base):
    """One security-relevant event (DOMAIN.md §6.4). Never updated, never deleted by the app.

    ``hash`` is ``sha256(prev_hash + canonical record)``; PostgreSQL refuses UPDATE and DELETE
    with a trigger (DELETE is allowed only to the retention job).
    """

    __tablename__ = "security_event"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(index=True)  # UTC, milliseconds
    tag: Mapped[str] = mapped_column(String(64), index=True)  # an EventTag value
    outcome: Mapped[EventOutcome] = mapped_column(enum_type(EventOutcome, 16))
    severity: Mapped[EventSeverity] = mapped_column(enum_type(EventSeverity, 16))
    actor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    actor_org: Mapped[str | None] = mapped_column(String(100))
    src_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[int | None] = mapped_column(Integer)
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(CanonicalJSON(), default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class SecurityLogHead(Base):
    """The single row holding the last ``seq`` and ``hash`` of the chain.

    Every writer first runs ``UPDATE security_log_head SET seq = seq + 1``: that takes the row
    lock on PostgreSQL and the write lock on SQLite, so writers queue and the chain cannot fork.
    """

    __tablename__ = "security_log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class SecurityCheckpoint(Base):
    """A signed statement "the chain ended at ``seq`` with ``hash``" (HMAC-SHA256, hex).

    The key (``ONEDATA_LOG_HMAC_KEY``) is not the app secret, so whoever can rewrite the table
    cannot forge a checkpoint; dropping the tail of the log is then detectable.
    """

    __tablename__ = "security_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[str] = mapped_column(String(64))
    hmac: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
