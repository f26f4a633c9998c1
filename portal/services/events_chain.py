"""The chain's mechanics: the canonical form of a record, its hash, and appending under the lock.

``hash = sha256(prev_hash + canonical)``, where ``canonical`` is the record without
``prev_hash`` and ``hash`` as JSON with sorted keys, no whitespace and ASCII only, ``ts`` as
ISO-8601 UTC with milliseconds and ``Z``. Writers queue on the single
:class:`~portal.models.events.SecurityLogHead` row: ``UPDATE … SET seq = seq + 1`` takes its row
lock on PostgreSQL and the write lock on SQLite, so concurrent writers cannot fork the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portal.models.events import CANONICAL_JSON, GENESIS_HASH, SecurityEvent, SecurityLogHead

HEAD_ID = 1

#: The fields hashed, in the order verification selects them.
CANONICAL_FIELDS = (
    "seq",
    "ts",
    "tag",
    "outcome",
    "severity",
    "actor_id",
    "actor_role",
    "actor_org",
    "src_ip",
    "user_agent",
    "request_id",
    "method",
    "path",
    "status",
    "object_type",
    "object_id",
    "details",
)
#: The same fields in key order: the canonical JSON is this template filled with encoded values.
SORTED_FIELDS = tuple(sorted(CANONICAL_FIELDS))
CANONICAL_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in SORTED_FIELDS) + "}"


def format_ts(value: datetime | str) -> str:
    """``ts`` as hashed and exported: ISO-8601 UTC with milliseconds and ``Z``.

    :param value: an aware datetime, a naive one taken as UTC, or SQLite's stored text.
    :raises ValueError: when ``value`` is text that is not a timestamp.
    """
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":  # SQLite's own format
            return f"{value[:10]}T{value[11:23]}Z"
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def encode_value(value: object) -> str:
    """One value as canonical JSON (what ``json.dumps(..., ensure_ascii=True)`` writes, compact).

    :param value: a string, an integer, ``None`` or any JSON-able value.
    :raises TypeError: when ``value`` is not JSON-able.
    """
    if value.__class__ is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value.__class__ is int:
        return int.__repr__(value)
    return CANONICAL_JSON.encode(value)


def canonical(record: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a record: its :data:`CANONICAL_FIELDS` as sorted, compact JSON.

    Equal to ``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``.

    :param record: the fields, ``ts`` already formatted by :func:`format_ts`; ``details`` a
        mapping or its canonical JSON text, as stored.
    :raises KeyError: when a field is missing.
    :raises TypeError: when a value is not JSON-able.
    """
    parts = []
    for name in SORTED_FIELDS:
        value = record[name]
        if name == "details" and isinstance(value, str):
            parts.append(value)
        else:
            parts.append(encode_value(value))
    return (CANONICAL_TEMPLATE % tuple(parts)).encode("ascii")


def chain_hash(prev_hash: str, canonical_bytes: bytes) -> str:
    """``sha256(prev_hash + canonical)`` as hex.

    :param prev_hash: the previous record's hash (hex).
    :param canonical_bytes: this record's :func:`canonical` form.
    """
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_bytes).hexdigest()


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def ensure_head(session: Session) -> None:
    """Re-create a missing head row (after ``TRUNCATE``), continuing from the last record.

    Safe against concurrent callers (``INSERT … ON CONFLICT DO NOTHING``).

    :param session: the caller's session.
    """
    last = session.execute(
        select(SecurityEvent.seq, SecurityEvent.hash).order_by(SecurityEvent.seq.desc()).limit(1)
    ).one_or_none()
    values = {
        "id": HEAD_ID,
        "seq": last[0] if last else 0,
        "hash": last[1] if last else GENESIS_HASH,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(SecurityLogHead).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(SecurityLogHead).values(values).on_conflict_do_nothing())
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        if session.get(SecurityLogHead, HEAD_ID) is None:
            session.add(SecurityLogHead(**values))
            session.flush()


_HEAD = cast(Table, SecurityLogHead.__table__)
_EVENTS = cast(Table, SecurityEvent.__table__)
# Built once: statements are the bulk of an event's cost.
_ADVANCE = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(seq=_HEAD.c.seq + 1)
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_SET_HASH = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=bindparam("new_hash"))
_INSERT = insert(_EVENTS)


def append(session: Session, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Append a record of already-cleaned ``fields``; return every stored column's value.

    Takes the writers' lock (held until the caller's transaction ends), then the next ``seq``,
    the time, the hash; inserts the row and moves the head.

    :param session: the caller's session.
    :param fields: the :data:`CANONICAL_FIELDS` but ``seq`` and ``ts``, as stored.
    :raises sqlalchemy.exc.SQLAlchemyError: when the database refuses the write.
    """
    # Core statements on the session's connection, not a unit-of-work flush: a fraction of
    # the cost, and this runs in every request that records an event.
    conn = session.connection()
    row = conn.execute(_ADVANCE).one_or_none()
    if row is None:
        ensure_head(session)
        row = conn.execute(_ADVANCE).one()
    seq, prev_hash = int(row[0]), str(row[1])
    ts = _now_ms()  # after the lock, so time order follows seq order
    digest = chain_hash(prev_hash, canonical({**fields, "seq": seq, "ts": format_ts(ts)}))
    values = {**fields, "seq": seq, "ts": ts, "prev_hash": prev_hash, "hash": digest}
    conn.execute(_INSERT, values)
    conn.execute(_SET_HASH, {"new_hash": digest})
    return values
