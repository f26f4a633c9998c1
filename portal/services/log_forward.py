"""A second copy of the security log outside the portal (ASVS 16.4.3), and the commit hook.

**The hook.** :func:`on_commit` registers a function called with the security events a
transaction added, right after that transaction commits on a given engine — never for work that
rolled back (a savepoint's events are dropped with the savepoint). Events are collected when
:func:`portal.services.events.record_event` adds them to its session (SQLAlchemy's
``after_attach``), so neither the services nor ``record_event`` need to know about it. A
handler's error is logged and swallowed: the work it follows is already committed.

**Forwarding.** :class:`SyslogForwarder` sends each event as an RFC 5424 line
(:func:`portal.services.events_export.syslog_line`) to ``udp://host:port`` (one datagram per
event, RFC 5426) or ``tcp://host:port`` (octet-counting framing, RFC 6587 §3.4.1). It never
blocks a request: the commit hook only queues the events (bounded; overflow is counted and
dropped), one background thread sends them with a bounded socket timeout. When the server is
down the thread counts the loss, logs it once without any event's content, and waits
``retry_after`` seconds before trying again. Missed records can be sent later with
``onedata security export --format syslog --since …``: the database stays the reference copy.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, SessionTransaction

from portal.models.events import SecurityEvent
from portal.services.events_chain import CANONICAL_FIELDS, format_ts
from portal.services.events_export import syslog_line

__all__ = [
    "CommitHandler",
    "Record",
    "SyslogForwarder",
    "SyslogTarget",
    "on_commit",
    "parse_syslog_url",
    "remove_handlers",
]

logger = logging.getLogger("portal.security.forward")

#: One event as :func:`portal.services.events_export.iter_records` yields it.
Record = dict[str, Any]
#: Called after a commit on ``engine`` with the events that transaction added, in ``seq`` order.
CommitHandler = Callable[[Engine, list[Record]], None]

_FIELDS = (*CANONICAL_FIELDS, "prev_hash", "hash")
_PENDING = "onedata.security_events"
_handlers: weakref.WeakKeyDictionary[Engine, list[CommitHandler]] = weakref.WeakKeyDictionary()
_installed = False
_install_lock = threading.Lock()


def on_commit(engine: Engine, handler: CommitHandler) -> None:
    """Call ``handler(engine, records)`` after each commit on ``engine`` that recorded events.

    :param engine: the log's engine; sessions bound to it (or to its connections) are watched.
    :param handler: keep it quick; it runs in the committing thread. Its errors are logged.
    """
    global _installed
    with _install_lock:
        if not _installed:
            event.listen(Session, "after_attach", _collect)
            event.listen(Session, "after_commit", _committed)
            event.listen(Session, "after_soft_rollback", _rolled_back)
            event.listen(Session, "after_transaction_end", _ended)
            _installed = True
        _handlers.setdefault(engine, []).append(handler)


def remove_handlers(engine: Engine) -> None:
    """Stop calling the handlers registered for ``engine``.

    :param engine: as given to :func:`on_commit`.
    """
    _handlers.pop(engine, None)


def _engine_of(session: Session) -> Engine | None:
    try:
        bind = session.get_bind()
    except Exception:  # noqa: BLE001 - an unbound session records nothing we forward
        return None
    if isinstance(bind, Connection):
        return bind.engine
    return bind if isinstance(bind, Engine) else None


def _snapshot(instance: SecurityEvent) -> Record:
    values = instance.__dict__  # the values record_event stored; reading them emits no SQL
    record: Record = {name: values.get(name) for name in _FIELDS}
    record["ts"] = format_ts(values["ts"])
    record["outcome"] = str(record["outcome"])
    record["severity"] = str(record["severity"])
    return record


def _collect(session: Session, instance: object) -> None:
    if type(instance) is not SecurityEvent or "hash" not in instance.__dict__:
        return
    engine = _engine_of(session)
    if engine is None or engine not in _handlers:
        return
    pending = session.info.setdefault(_PENDING, [])
    pending.append((session.get_nested_transaction(), engine, _snapshot(instance)))


def _committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released: wait for the real commit
        return
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    by_engine: dict[Engine, list[Record]] = {}
    for _tx, engine, record in pending:
        by_engine.setdefault(engine, []).append(record)
    for engine, records in by_engine.items():
        records.sort(key=lambda r: int(r["seq"]))
        for handler in list(_handlers.get(engine, ())):
            try:
                handler(engine, records)
            except Exception as exc:  # noqa: BLE001 - the work is committed: never undo a request
                # The type only: database errors quote their parameters, i.e. the records.
                logger.error("a security-log commit handler failed: %s", type(exc).__name__)


def _inside(tx: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while tx is not None:
        if tx is ended:
            return True
        tx = tx.parent
    return False


def _rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)
        return
    session.info[_PENDING] = [p for p in pending if not _inside(p[0], previous_transaction)]


def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_PENDING, None)  # closed without commit: nothing happened


@dataclass(frozen=True)
class SyslogTarget:
    """Where :class:`SyslogForwarder` sends: ``udp`` or ``tcp``, a host and a port."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.transport}://{self.host}:{self.port}"


def parse_syslog_url(url: str) -> SyslogTarget:
    """``udp://host:514`` or ``tcp://host:601`` (IPv6 hosts in brackets).

    :param url: the ``ONEDATA_SYSLOG_URL`` setting.
    :raises ValueError: when the scheme is neither udp nor tcp, or the host or port is missing.
    """
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("ONEDATA_SYSLOG_URL has an invalid port") from exc
    if parts.scheme not in ("udp", "tcp") or not parts.hostname or port is None:
        raise ValueError("ONEDATA_SYSLOG_URL must look like udp://host:514 or tcp://host:601")
    return SyslogTarget(parts.scheme, parts.hostname, port)


class SyslogForwarder:
    """Queue records and send them from one background thread; see the module docstring.

    ``sent``, ``failed`` (not delivered because the server was unreachable) and ``dropped``
    (the queue was full) count records.
    """

    def __init__(
        self,
        url: str,
        *,
        hostname: str | None = None,
        timeout: float = 2.0,
        max_queue: int = 10_000,
        retry_after: float = 5.0,
    ) -> None:
        """Check the URL; nothing is opened or started until the first record comes.

        :param url: ``udp://host:port`` or ``tcp://host:port``.
        :param hostname: the HOSTNAME field of each line (default: this machine's name).
        :param timeout: seconds a connect or send may take.
        :param max_queue: records waiting at most; more are dropped and counted.
        :param retry_after: seconds to wait after a failure before sending again.
        :raises ValueError: when ``url`` is not a syslog URL.
        """
        self.target = parse_syslog_url(url)
        self.hostname = hostname or socket.gethostname() or "-"
        self.timeout, self.max_queue, self.retry_after = timeout, max_queue, retry_after
        self.sent = self.failed = self.dropped = 0
        self._cond = threading.Condition()
        self._queue: deque[Record] = deque()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._sock: socket.socket | None = None
        self._down_until = 0.0
        atexit.register(self.close, 2.0)

    def handle(self, engine: Engine, records: list[Record]) -> None:
        """A :data:`CommitHandler`: queue the committed records.

        :param engine: the engine they were committed on (unused: one forwarder per app).
        :param records: the committed records.
        """
        self.submit(records)

    def submit(self, records: Iterable[Record]) -> None:
        """Queue records for sending; never blocks on the network.

        :param records: records as :func:`portal.services.events_export.iter_records` yields.
        """
        with self._cond:
            if self._closed:
                return
            for record in records:
                if len(self._queue) >= self.max_queue:
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 1000 == 0:
                        logger.warning("syslog queue full: %d record(s) dropped", self.dropped)
                    continue
                self._queue.append(record)
            self._ensure_thread()
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record was sent or given up; ``False`` on timeout.

        :param timeout: seconds to wait at most.
        """
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (waiting ``timeout`` seconds at most) and stop the thread.

        :param timeout: seconds to wait for the queue to drain.
        """
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._close_socket()

    def _ensure_thread(self) -> None:
        # Started on first use and again after a fork (gunicorn workers): threads do not survive it.
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._sock = None
        self._thread = threading.Thread(target=self._run, name="onedata-syslog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                self._send_batch(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _send_batch(self, batch: list[Record]) -> None:
        for index, record in enumerate(batch):
            if time.monotonic() < self._down_until:
                self.failed += len(batch) - index
                return
            try:
                data = syslog_line(record, hostname=self.hostname).encode("utf-8")
            except (KeyError, TypeError, ValueError):  # not a record of the log: skip it
                self.failed += 1
                logger.warning("a record could not be formatted for syslog and was skipped")
                continue
            try:
                self._send(data)
            except OSError as first:
                if first.errno == errno.EMSGSIZE:  # this record only: too big for one datagram
                    self.failed += 1
                    logger.warning("a record too large for one UDP datagram was not forwarded")
                    continue
                self._close_socket()
                try:  # a TCP server that restarted: the old connection is dead, a new one works
                    self._send(data)
                except OSError:
                    self.failed += len(batch) - index
                    self._down_until = time.monotonic() + self.retry_after
                    logger.warning(
                        "syslog forwarding to %s failed (%s): %d record(s) not forwarded,"
                        " retrying in %ss",
                        self.target,
                        type(first).__name__,
                        len(batch) - index,
                        self.retry_after,
                    )
                    return
            self.sent += 1

    def _send(self, data: bytes) -> None:
        target = self.target
        if self._sock is None:
            if target.transport == "udp":
                family, _type, _proto, _name, address = socket.getaddrinfo(
                    target.host, target.port, type=socket.SOCK_DGRAM
                )[0]
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.settimeout(self.timeout)
                sock.connect(address)
            else:
                sock = socket.create_connection((target.host, target.port), self.timeout)
                sock.settimeout(self.timeout)
            self._sock = sock
        if target.transport == "udp":
            self._sock.send(data)
        else:
            self._sock.sendall(f"{len(data)} ".encode("ascii") + data)

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:  # pragma: no cover - closing a broken socket
                pass
