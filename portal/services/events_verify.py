"""Signed checkpoints and verification of the security event log.

:func:`verify` walks the chain in ``seq`` order, in batches of plain rows (a million records in
seconds), and stops at the first bad record with the reason:

- **field edited**: a record's content no longer matches its hash;
- **record deleted**: a gap in ``seq``;
- **records reordered**: a record links to a record that sits after it;
- **forged record inserted**: records sit between a record and the one it links to, or a record
  links to nothing, or records exist past the head;
- **tail dropped**: a checkpoint or the head points past the last record;
- **log rewritten**: the chain holds together but no longer matches a signed checkpoint;
- **checkpoint HMAC invalid**: a checkpoint was not signed with the key.

A checkpoint signs ``f"{seq}:{hash}"`` with HMAC-SHA256 under ``ONEDATA_LOG_HMAC_KEY``, a key the
web application does not need. Records after the newest checkpoint are protected by the chain
alone: keep checkpoints frequent (``onedata security checkpoint`` from cron).

When the retention job removes old records it must keep the checkpoint at the last removed
``seq``: the chain then starts from that anchor.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from hashlib import sha256
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.errors import Conflict
from portal.models.events import GENESIS_HASH, SecurityCheckpoint, SecurityEvent, SecurityLogHead
from portal.services.events_chain import (
    CANONICAL_TEMPLATE,
    HEAD_ID,
    SORTED_FIELDS,
    encode_value,
    ensure_head,
    format_ts,
)

BATCH_SIZE = 20_000
# Plain rows, in canonical key order; details as the text stored, which is its canonical JSON.
_COLUMNS = ", ".join(
    "CAST(details AS TEXT)" if name == "details" else name
    for name in (*SORTED_FIELDS, "prev_hash", "hash")
)
_BATCH_SQL = (
    f"SELECT {_COLUMNS} FROM security_event"  # noqa: S608 - fixed column names
    " WHERE seq > {mark} AND seq <= {mark} ORDER BY seq LIMIT {mark}"
)
if (SORTED_FIELDS[3], SORTED_FIELDS[10], SORTED_FIELDS[15]) != ("details", "seq", "ts"):
    raise RuntimeError(
        "the verify loop unpacks the canonical fields by position"
    )  # pragma: no cover


class Problem(StrEnum):
    EDITED = "field edited"
    DELETED = "record deleted"
    REORDERED = "records reordered"
    FORGED = "forged record inserted"
    TRUNCATED = "tail dropped"
    REWRITTEN = "log rewritten"
    CHECKPOINT_INVALID = "checkpoint HMAC invalid"
    HEAD_MISSING = "head row missing"


@dataclass
class VerifyResult:
    """The outcome of :func:`verify`."""

    ok: bool
    records: int = 0
    checkpoints: int = 0
    signatures_checked: bool = False
    first_bad_seq: int | None = None
    problem: Problem | None = None
    message: str = ""
    last_seq: int = 0
    last_hash: str = GENESIS_HASH

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact: {self.records} records, {self.checkpoints} checkpoints"
        where = f"record {self.first_bad_seq}" if self.first_bad_seq is not None else "log"
        return f"{where}: {self.problem}: {self.message}"


class _Bad(Exception):
    def __init__(self, seq: int | None, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.seq, self.problem, self.message = seq, problem, message


def sign(key: bytes, seq: int, hash_: str) -> str:
    """HMAC-SHA256 of ``f"{seq}:{hash}"`` (hex).

    :param key: the checkpoint key (``ONEDATA_LOG_HMAC_KEY``).
    :param seq: the last ``seq`` covered.
    :param hash_: that record's hash.
    """
    return hmac.new(key, f"{seq}:{hash_}".encode("ascii"), sha256).hexdigest()


def write_checkpoint(session: Session, key: bytes) -> SecurityCheckpoint:
    """Sign the current end of the chain (flushes, never commits).

    :param session: the caller's session.
    :param key: the checkpoint key; not the app secret.
    :raises Conflict: when the head does not match the record it points at (verify first).
    """
    stmt = (
        update(SecurityLogHead)  # takes the writers' lock: the end cannot move meanwhile
        .where(SecurityLogHead.id == HEAD_ID)
        .values(seq=SecurityLogHead.seq)
        .returning(SecurityLogHead.seq, SecurityLogHead.hash)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        ensure_head(session)
        row = session.execute(stmt).one()
    seq, hash_ = int(row[0]), str(row[1])
    if seq:
        stored = session.scalar(select(SecurityEvent.hash).where(SecurityEvent.seq == seq))
        if stored != hash_:
            raise Conflict(f"the log head ({seq}) does not match its record; run verify")
    checkpoint = SecurityCheckpoint(seq=seq, hash=hash_, hmac=sign(key, seq, hash_))
    session.add(checkpoint)
    session.flush()
    return checkpoint


def verify(
    session: Session,
    key: bytes | None,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> VerifyResult:
    """Walk the chain and the checkpoints; name the first bad record.

    Read-only. Records appended while it runs are left for the next run.

    :param session: any session on the log's database.
    :param key: the checkpoint key; ``None`` checks hashes but not signatures.
    :param progress: called as ``progress(records_done, records_total)`` after each batch.
    :param batch_size: rows fetched per query.
    """
    cps: _Checkpoints = defaultdict(list)
    query = select(
        SecurityCheckpoint.id,
        SecurityCheckpoint.seq,
        SecurityCheckpoint.hash,
        SecurityCheckpoint.hmac,
    ).order_by(SecurityCheckpoint.seq, SecurityCheckpoint.id)
    for cp_id, cp_seq, cp_hash, cp_hmac in session.execute(query):
        cps[int(cp_seq)].append((int(cp_id), str(cp_hash), str(cp_hmac)))
    result = VerifyResult(
        ok=True, checkpoints=sum(map(len, cps.values())), signatures_checked=key is not None
    )
    head = session.execute(
        select(SecurityLogHead.seq, SecurityLogHead.hash).where(SecurityLogHead.id == HEAD_ID)
    ).one_or_none()
    first, last = session.execute(
        select(func.min(SecurityEvent.seq), func.max(SecurityEvent.seq))
    ).one()
    bound = int(head[0]) if head is not None else int(last or 0)
    try:
        if head is None and last is not None:
            raise _Bad(None, Problem.HEAD_MISSING, "records exist but the head row is gone")
        if key is not None:
            for cp_seq, items in sorted(cps.items()):
                for cp in items:
                    _check_signature(key, cp, cp_seq)
        walker = _Walker(session, cps, result, progress, batch_size)
        if first is not None and first <= bound:
            walker.walk(int(first), bound)
        _check_end(session, cps, result, head)
    except _Bad as bad:
        result.ok = False
        result.first_bad_seq, result.problem, result.message = bad.seq, bad.problem, bad.message
    return result


_Checkpoints = dict[int, list[tuple[int, str, str]]]


def _check_signature(key: bytes, cp: tuple[int, str, str], seq: int) -> None:
    cp_id, cp_hash, cp_hmac = cp
    if not hmac.compare_digest(sign(key, seq, cp_hash), cp_hmac):
        raise _Bad(
            seq,
            Problem.CHECKPOINT_INVALID,
            f"checkpoint #{cp_id} at seq {seq} is not signed with this key",
        )


class _Walker:
    """One pass over the records, batch by batch, with the state that links them."""

    def __init__(
        self,
        session: Session,
        cps: _Checkpoints,
        result: VerifyResult,
        progress: Callable[[int, int], None] | None,
        batch_size: int,
    ) -> None:
        self.session, self.cps, self.result = session, cps, result
        self.progress, self.batch_size = progress, batch_size
        self.prev, self.expected, self.last_cp = GENESIS_HASH, 1, 0

    def walk(self, first: int, bound: int) -> None:
        if first > 1:  # older records were archived: the checkpoint at first - 1 anchors the chain
            first_prev = self.session.scalar(
                select(SecurityEvent.prev_hash).where(SecurityEvent.seq == first)
            )
            if not any(cp[1] == first_prev for cp in self.cps.get(first - 1, ())):
                raise _Bad(
                    1,
                    Problem.DELETED,
                    f"records 1–{first - 1} are missing (no checkpoint anchors seq {first})",
                )
            self.prev = str(first_prev)
        self.expected, self.last_cp = first, first - 1
        # The driver's own cursor: plain tuples, no result objects, for a million rows.
        mark = "?" if self.session.get_bind().dialect.paramstyle == "qmark" else "%s"
        sql = _BATCH_SQL.format(mark=mark)
        with closing(self.session.connection().connection.cursor()) as cursor:
            while True:
                cursor.execute(sql, (self.expected - 1, bound, self.batch_size))
                rows = cursor.fetchall()
                if not rows:
                    break
                self._check(rows)
                self.result.records = self.expected - first
                self.result.last_seq, self.result.last_hash = self.expected - 1, self.prev
                if self.progress is not None:
                    self.progress(self.result.records, bound - first + 1)

    def _check(self, rows: Sequence[Any]) -> None:
        prev, expected = self.prev, self.expected
        cps, template, digest = self.cps, CANONICAL_TEMPLATE, sha256
        eb, int_repr, enc, fmt = encode_basestring_ascii, int.__repr__, encode_value, format_ts
        # Unrolled on purpose: this loop runs once per record, a million times in seconds.
        for (
            actor_id, actor_org, actor_role, details, method, object_id, object_type,
            outcome, path, request_id, seq, severity, src_ip, status, tag, ts, user_agent,
            row_prev, row_hash,
        ) in rows:  # fmt: skip
            if seq != expected:
                raise _Bad(expected, Problem.DELETED, f"records {expected}–{seq - 1} are missing")
            try:
                if ts.__class__ is str and len(ts) == 26 and ts[10] == " ":
                    ts_text = f'"{ts[:10]}T{ts[11:23]}Z"'  # SQLite's stored format
                else:
                    ts_text = f'"{fmt(ts)}"'
                # What encode_value() gives for the types these columns hold (str or None,
                # int for seq and status); any other type raises and marks the row as edited.
                body = template % (
                    "null" if actor_id is None else eb(actor_id),
                    "null" if actor_org is None else eb(actor_org),
                    "null" if actor_role is None else eb(actor_role),
                    details if details.__class__ is str else enc(details),
                    "null" if method is None else eb(method),
                    "null" if object_id is None else eb(object_id),
                    "null" if object_type is None else eb(object_type),
                    eb(outcome),
                    "null" if path is None else eb(path),
                    "null" if request_id is None else eb(request_id),
                    int_repr(seq),
                    eb(severity),
                    "null" if src_ip is None else eb(src_ip),
                    "null" if status is None else int_repr(status),
                    eb(tag),
                    ts_text,
                    "null" if user_agent is None else eb(user_agent),
                )
                computed: str | None = digest((row_prev + body).encode("ascii")).hexdigest()
            except (TypeError, ValueError, AttributeError):
                computed = None  # unreadable content: certainly not what was hashed
            if row_prev != prev:
                _diagnose_link(self.session, seq, row_prev, row_hash, computed)
            if computed != row_hash:
                raise _Bad(seq, Problem.EDITED, "its content does not match its hash (edited)")
            if seq in cps:
                self._at_checkpoint(seq, row_hash)
            prev = row_hash
            expected += 1
        self.prev, self.expected = prev, expected

    def _at_checkpoint(self, seq: int, row_hash: str) -> None:
        for cp_id, cp_hash, _hmac in self.cps[seq]:
            if cp_hash != row_hash:
                since = self.last_cp + 1  # a rewrite started after the previous good checkpoint
                raise _Bad(
                    since,
                    Problem.REWRITTEN,
                    f"records {since}–{seq} were rewritten: record {seq} no longer matches"
                    f" checkpoint #{cp_id}",
                )
        self.last_cp = seq


def _diagnose_link(
    session: Session, seq: int, row_prev: str, row_hash: str, computed: str | None
) -> None:
    """Record ``seq`` does not link to the record before it: say why."""
    linked = session.scalar(
        select(SecurityEvent.seq).where(SecurityEvent.hash == row_prev).limit(1)
    )
    if linked is not None and linked < seq - 1:
        raise _Bad(
            linked + 1,
            Problem.FORGED,
            f"records {linked + 1}–{seq - 1} were inserted: record {seq} links to record {linked}",
        )
    if linked is not None:
        raise _Bad(seq, Problem.REORDERED, f"seq {seq} holds the record that followed seq {linked}")
    if computed == row_hash:
        after = session.scalar(select(SecurityEvent.prev_hash).where(SecurityEvent.seq == seq + 1))
        if after is None or after == row_hash:
            raise _Bad(
                seq - 1,
                Problem.EDITED,
                f"it was altered and its hash recomputed: record {seq} no longer links to it",
            )
    raise _Bad(seq, Problem.FORGED, "it links to no record of the log (a forged record)")


def _check_end(session: Session, cps: _Checkpoints, result: VerifyResult, head: Any) -> None:
    """After the walk: checkpoints or a head past the end, records past the head."""
    last, last_hash = result.last_seq, result.last_hash
    for cp_seq in sorted(s for s in cps if s > last):
        cp_id = cps[cp_seq][0][0]
        raise _Bad(
            last + 1,
            Problem.TRUNCATED,
            f"records {last + 1}–{cp_seq} are missing: checkpoint #{cp_id} covers seq {cp_seq}",
        )
    for cp_id, cp_hash, _hmac in cps.get(0, ()):
        if cp_hash != GENESIS_HASH:
            raise _Bad(None, Problem.REWRITTEN, f"checkpoint #{cp_id} at seq 0 is not the genesis")
    if head is None:
        return
    head_seq, head_hash = int(head[0]), str(head[1])
    if head_seq > last:
        raise _Bad(
            last + 1,
            Problem.TRUNCATED,
            f"records {last + 1}–{head_seq} are missing: the head is at seq {head_seq}",
        )
    if head_hash != last_hash:
        raise _Bad(
            last,
            Problem.EDITED,
            "it was altered and its hash recomputed: the head holds another hash",
        )
    now_head, now_last = session.execute(
        select(
            select(SecurityLogHead.seq).where(SecurityLogHead.id == HEAD_ID).scalar_subquery(),
            select(func.max(SecurityEvent.seq)).scalar_subquery(),
        )
    ).one()
    if now_last is not None and now_head is not None and now_last > now_head:
        raise _Bad(
            int(now_head) + 1,
            Problem.FORGED,
            f"records {int(now_head) + 1}–{now_last} were not written through the log"
            f" (the head is at {now_head})",
        )
