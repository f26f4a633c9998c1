"""Streaming exports of the security event log: JSON Lines and RFC 5424 syslog.

Both carry every hashed field plus ``prev_hash`` and ``hash``, so a copy kept outside the portal
(ASVS 16.4.3) can be checked against the chain on its own: a JSON line without ``prev_hash`` and
``hash``, encoded canonically, is exactly what was hashed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models.events import EventSeverity, SecurityEvent
from portal.services.events_chain import CANONICAL_FIELDS, format_ts

BATCH_SIZE = 5_000
APP_NAME = "onedata"
#: The SD-ID of the structured data (32473 is the enterprise number RFC 5424 reserves for examples).
SD_ID = "onedata@32473"
#: syslog facility 13, "log audit".
FACILITY = 13
SYSLOG_SEVERITY = {
    EventSeverity.INFO: 6,  # informational
    EventSeverity.WARNING: 4,  # warning
    EventSeverity.HIGH: 3,  # error
    EventSeverity.CRITICAL: 2,  # critical
}
_COLUMNS = [getattr(SecurityEvent, name) for name in (*CANONICAL_FIELDS, "prev_hash", "hash")]
_NAMES = (*CANONICAL_FIELDS, "prev_hash", "hash")
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def iter_records(
    session: Session, *, since: datetime | None = None, after_seq: int = 0
) -> Iterator[dict[str, Any]]:
    """Yield records in ``seq`` order as plain dicts (``ts`` formatted), fetching in batches.

    :param session: any session on the log's database.
    :param since: only records at or after this time (a naive time is taken as UTC).
    :param after_seq: only records with a greater ``seq``.
    """
    if since is not None:
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    while True:
        query = select(*_COLUMNS).where(SecurityEvent.seq > after_seq)
        if since is not None:
            query = query.where(SecurityEvent.ts >= since)
        rows = session.execute(query.order_by(SecurityEvent.seq).limit(BATCH_SIZE)).all()
        if not rows:
            return
        for row in rows:
            record = dict(zip(_NAMES, row, strict=True))
            record["ts"] = format_ts(record["ts"])
            record["outcome"] = str(record["outcome"])
            record["severity"] = str(record["severity"])
            yield record
        after_seq = rows[-1][0]


def export_jsonl(
    session: Session, out: TextIO, since: datetime | None = None, *, after_seq: int = 0
) -> int:
    """Write one JSON object per line; return the number of records written.

    :param session: any session on the log's database.
    :param out: a text stream.
    :param since: only records at or after this time.
    :param after_seq: only records with a greater ``seq`` (for archiving segments).
    """
    count = 0
    for record in iter_records(session, since=since, after_seq=after_seq):
        out.write(_JSON.encode(record))
        out.write("\n")
        count += 1
    return count


def _sd_escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_line(record: dict[str, Any], *, hostname: str | None = None) -> str:
    """One record as an RFC 5424 message (without the trailing newline).

    ``MSGID`` is the tag; the structured element ``[onedata@32473 …]`` holds seq, outcome,
    severity, actor, request fields, target, ``prev_hash`` and ``hash``; ``MSG`` is the record's
    canonical JSON.

    :param record: a record from :func:`iter_records`.
    :param hostname: the HOSTNAME field (default: this machine's name).
    :raises KeyError: when the record lacks a field.
    """
    severity = SYSLOG_SEVERITY[EventSeverity(record["severity"])]
    host = (hostname or socket.gethostname() or "-").replace(" ", "")[:255] or "-"
    params = " ".join(
        f'{name}="{_sd_escape(record[name])}"'
        for name in _NAMES
        if name not in ("ts", "tag", "details") and record[name] is not None
    )
    msg = _CANONICAL_JSON.encode({name: record[name] for name in CANONICAL_FIELDS})
    msgid = str(record["tag"])[:32]
    return (
        f"<{FACILITY * 8 + severity}>1 {record['ts']} {host} {APP_NAME} - {msgid}"
        f" [{SD_ID} {params}] {msg}"
    )


def export_syslog(
    session: Session, out: TextIO, since: datetime | None = None, *, hostname: str | None = None
) -> int:
    """Write records as RFC 5424 lines; return the number of records written.

    :param session: any session on the log's database.
    :param out: a text stream.
    :param since: only records at or after this time.
    :param hostname: the HOSTNAME field (default: this machine's name).
    """
    host = hostname or socket.gethostname() or "-"
    count = 0
    for record in iter_records(session, since=since):
        out.write(syslog_line(record, hostname=host))
        out.write("\n")
        count += 1
    return count
