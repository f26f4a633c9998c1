"""The SQL harvester: read-only SELECT queries against an OPD database, streamed to CSV.

The source URL is a SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db`` or
``sqlite:////srv/opd/data.sqlite``); ``source.options`` lists the datasets, one query each.

Three guards stand between a query and a write, and none is enough alone:

1. :func:`check_query` (:mod:`harvesters.sql_query`) accepts one ``SELECT``/``WITH``
   statement and refuses anything that could write or reach outside the database. It is
   lexical and deliberately conservative: when two SQL dialects would read a text differently
   (``#``, nested comments, backslashes in strings) it takes the reading that exposes more text
   to the check, or refuses.
2. The connection is read-only: SQLite is opened with ``mode=ro`` and ``PRAGMA query_only``,
   PostgreSQL runs ``SET TRANSACTION READ ONLY``; both are verified before the query runs, and
   the transaction is always rolled back.
3. The operator gives the harvester a database role that may only ``SELECT`` what is meant to be
   published. Nothing here replaces that (``dblink`` or a ``SECURITY DEFINER`` function could
   still write through another session).

Network database hosts go through the same address check as HTTP sources
(:func:`harvesters.http.resolve_allowed`), so a source cannot point the harvester at the portal's
own database unless the operator allow-listed the host. The URL's password never appears in an
error message.

The options are read by :class:`~harvesters.sql_config.SqlOptions`; they and the query guard's
names are importable from here too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

from sqlalchemy import URL, Connection, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from harvesters.base import HarvestedItem, Harvester, SourceConfig, StagedFile
from harvesters.errors import FileTooLarge, InvalidItem, SourceUnavailable
from harvesters.http import FetchPolicy, allow_policy, resolve_allowed
from harvesters.sql_config import SqlConfigError, SqlDataset, SqlOptions
from harvesters.sql_query import QueryRefused, check_query

__all__ = [
    "PG_QUERY_PARAMS",
    "QueryFailed",
    "QueryRefused",
    "QueryTimeout",
    "SqlConfigError",
    "SqlDataset",
    "SqlHarvester",
    "SqlOptions",
    "TooManyRows",
    "check_query",
]

#: Query parameters a PostgreSQL URL may carry; the others (``host``, ``hostaddr``, ``service``,
#: ``options``...) could send the connection somewhere other than the checked host.
PG_QUERY_PARAMS = frozenset({"sslmode", "application_name", "connect_timeout"})
_T = TypeVar("_T")


class QueryTimeout(InvalidItem):
    code = "query-timeout"


class QueryFailed(InvalidItem):
    """The database refused or failed the query (syntax error, missing table, permission)."""

    code = "query-failed"


class TooManyRows(FileTooLarge):
    code = "too-many-rows"


class SqlHarvester(Harvester):
    """One dataset per configured query; see the module docstring for the guards."""

    kind = "sql"

    def __init__(
        self, source: SourceConfig, *, staging_dir: Path, policy: FetchPolicy | None = None
    ) -> None:
        """:param policy: supplies the host allow-list; defaults to :func:`default_policy`."""
        super().__init__(source, staging_dir=staging_dir)
        self.policy = allow_policy(source, policy)
        self.seen_ids: list[str] = []
        try:
            url: URL | None = make_url(source.url)
        except (ArgumentError, ValueError):  # the parser's message may quote the password
            url = None
        self._url = url
        self._masked = url.render_as_string(hide_password=True) if url else "the database"

    def gather(self) -> Iterable[str]:
        """Check that the database opens read-only, then list the configured datasets.

        :raises SqlConfigError: when the URL or the options are malformed.
        :raises SourceUnavailable: when the database cannot be reached read-only.
        """
        options = SqlOptions.from_options(self.source.options)
        with self._connect(options) as conn:
            conn.exec_driver_sql("SELECT 1").close()
        self.seen_ids = [dataset.remote_id for dataset in options.datasets]
        return list(self.seen_ids)

    def fetch(self, remote_id: str) -> HarvestedItem:
        """Run the dataset's query and stage its result as a UTF-8 CSV.

        :raises InvalidItem: when ``remote_id`` is no longer configured.
        :raises QueryRefused: when the query is not a single read-only SELECT.
        :raises QueryTimeout: when the query runs longer than ``statement_timeout``.
        :raises QueryFailed: when the database fails the query.
        :raises TooManyRows: when the result has more than ``max_rows`` rows.
        :raises FileTooLarge: when the CSV grows past ``source.max_file_size``.
        """
        options = SqlOptions.from_options(self.source.options)
        dataset = next((d for d in options.datasets if d.remote_id == remote_id), None)
        if dataset is None:
            raise InvalidItem(f"{remote_id!r} is no longer configured for this source")
        query = check_query(dataset.query)
        target = self.staging_dir / f"sql-{hashlib.sha256(remote_id.encode()).hexdigest()[:16]}.csv"
        try:
            with self._connect(options) as conn:
                columns, rows, chunks, sha, size = self._write_csv(conn, query, target, options)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        metadata = {"title": remote_id.replace("-", " ").replace("_", " ").title(),
                    **dataset.metadata}
        title = str(metadata.get("resource_title") or metadata["title"])
        filename = re.sub(r"[^\w.-]+", "-", remote_id).strip("-.")[:100] + ".csv"
        staged = StagedFile(remote_id, title, target, filename, "csv", sha, size)
        raw = {"query": query, "columns": columns, "rows": rows, "chunks": chunks,
               "metadata": dataset.metadata}
        return HarvestedItem(remote_id, metadata, [staged], raw=raw)

    def _write_csv(
        self, conn: Connection, query: str, target: Path, options: SqlOptions
    ) -> tuple[list[str], int, int, str, int]:
        deadline = time.monotonic() + options.statement_timeout
        if conn.dialect.name == "sqlite":
            # SQLite has no statement timeout: a progress handler returning true interrupts the
            # running statement ("interrupted"), which _guarded reports as a timeout.
            raw: Any = conn.connection.driver_connection
            raw.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        # stream_results: a server-side cursor on PostgreSQL, so only one chunk is in memory.
        streaming = conn.execution_options(stream_results=True)
        result = self._guarded(lambda: streaming.exec_driver_sql(query), options)
        with result, target.open("wb") as out:
            columns = [str(key) for key in result.keys()]
            batches = result.partitions(options.chunk_size)
            digest, size, rows, chunks = hashlib.sha256(), 0, 0, 0
            batch: Sequence[Any] = [columns]
            while batch:
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(map(_row, batch))
                data = buffer.getvalue().encode("utf-8")
                size += len(data)
                if size > self.source.max_file_size:
                    raise FileTooLarge(f"the query result is larger than the limit of "
                                       f"{self.source.max_file_size:,} bytes")
                digest.update(data)
                out.write(data)
                if time.monotonic() > deadline:
                    raise QueryTimeout(f"reading the result took longer than "
                                       f"{options.statement_timeout:g} s")
                batch = self._guarded(lambda: next(batches, ()), options)
                rows, chunks = rows + len(batch), chunks + bool(batch)
                if options.max_rows is not None and rows > options.max_rows:
                    raise TooManyRows(f"the query returns more than {options.max_rows:,} rows")
        return columns, rows, chunks, digest.hexdigest(), size

    def _guarded(self, step: Callable[[], _T], options: SqlOptions) -> _T:
        """Run one database step, turning driver errors into item errors without secrets."""
        try:
            return step()
        except DBAPIError as exc:
            lines = str(exc.orig or exc).strip().splitlines() or [type(exc.orig).__name__]
            message = self._scrub(lines[0])
            state = getattr(exc.orig, "sqlstate", None)
            if state == "57014" or "interrupted" in message:  # query_canceled / SQLite interrupt
                raise QueryTimeout(f"the query ran longer than {options.statement_timeout:g} s "
                                   f"({message})") from None
            if state == "25006" or "readonly database" in message:
                raise QueryRefused(f"the query tried to write: {message}") from None
            raise QueryFailed(f"the database failed the query: {message}") from None

    @contextmanager
    def _connect(self, options: SqlOptions) -> Iterator[Connection]:
        """A verified read-only connection, rolled back and closed at the end."""
        url = self._checked_url()
        engine = create_engine(url, poolclass=NullPool, hide_parameters=True,
                               connect_args=self._connect_args(url, options))
        try:
            try:
                conn = engine.connect()
            except SQLAlchemyError as exc:
                raise self._unavailable(exc) from None
            with conn:
                try:
                    self._make_read_only(conn, options)
                except SQLAlchemyError as exc:
                    raise self._unavailable(exc) from None
                yield conn
                conn.rollback()  # a read-only session has nothing to commit
        finally:
            engine.dispose()

    def _unavailable(self, exc: SQLAlchemyError) -> SourceUnavailable:
        detail = self._scrub(str(getattr(exc, "orig", None) or exc).strip())
        return SourceUnavailable(f"cannot open {self._masked} read-only: {detail}")

    def _make_read_only(self, conn: Connection, options: SqlOptions) -> None:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
            read_only = conn.exec_driver_sql("PRAGMA query_only").scalar() == 1
        else:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # must come first in the transaction
            timeout_ms = max(1, int(options.statement_timeout * 1000))
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {timeout_ms}")
            read_only = conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
        if not read_only:
            raise QueryRefused(f"{self._masked}: the session could not be made read-only")

    def _checked_url(self) -> URL:
        url = self._url
        if url is None:
            raise SqlConfigError("the source URL is not a valid SQLAlchemy database URL")
        backend = url.get_backend_name()
        if backend == "sqlite":
            if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
                raise SqlConfigError("an SQLite source needs the path of a database file, as "
                                     "sqlite:////absolute/path.sqlite")
            path = Path(url.database).resolve()
            # mode=ro: SQLite refuses every write, and never creates a missing file.
            return URL.create("sqlite+pysqlite", database=f"file:{quote(str(path))}",
                              query={"mode": "ro", "uri": "true"})
        if backend != "postgresql":
            raise SqlConfigError(f"{backend} databases are not supported; the SQL harvester "
                                 "reads SQLite and PostgreSQL")
        if url.drivername == "postgresql":  # psycopg2, the default driver, is not installed
            url = url.set(drivername="postgresql+psycopg")
        if not url.host or "," in url.host:
            # Without a host libpq uses a local socket or PGHOST: the portal's own server.
            raise SqlConfigError(f"{self._masked}: the URL must name one database host")
        if extra := sorted(set(url.query) - PG_QUERY_PARAMS):
            raise SqlConfigError(f"{self._masked}: query parameters {', '.join(extra)} are not "
                                 f"accepted (only {', '.join(sorted(PG_QUERY_PARAMS))})")
        return url

    def _connect_args(self, url: URL, options: SqlOptions) -> dict[str, Any]:
        if url.get_backend_name() == "sqlite":
            return {}
        host, port = str(url.host), url.port or 5432
        try:
            addresses = resolve_allowed(host, port, self.policy)
        except socket.gaierror as exc:
            raise SourceUnavailable(f"cannot resolve {host}: {exc}") from None
        # hostaddr: libpq connects to the checked address, with no second DNS lookup.
        return {"hostaddr": addresses[0], "connect_timeout": max(1, int(options.connect_timeout))}

    def _scrub(self, text: str) -> str:
        """``text`` with the URL's password replaced, in case a driver echoes it."""
        password = str(self._url.password or "") if self._url is not None else ""
        for spelling in {password, quote_plus(password), quote(password)} - {""}:
            text = text.replace(spelling, "***")
        return text


def _row(row: Sequence[Any]) -> list[Any]:
    """CSV cells: ISO dates, lower-case booleans, plain decimals, empty for NULL."""
    return [
        "" if value is None
        else ("true" if value else "false") if isinstance(value, bool)
        else value.isoformat() if isinstance(value, datetime | date | dtime)
        else format(value, "f") if isinstance(value, Decimal)
        else bytes(value).hex() if isinstance(value, bytes | bytearray | memoryview)
        else value
        for value in row
    ]
