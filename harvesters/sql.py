"""The SQL harvester: read-only SELECT queries against an OPD database, streamed to CSV.

The source URL is a SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db`` or
``sqlite:////srv/opd/data.sqlite``); ``source.options`` lists the datasets, one query each.

Three guards stand between a query and a write, and none is enough alone:

1. :func:`check_query` accepts one ``SELECT``/``WITH`` statement and refuses anything that
   could write or reach outside the database. It is lexical and deliberately conservative: when
   two SQL dialects would read a text differently (``#``, nested comments, backslashes in
   strings) it takes the reading that exposes more text to the check, or refuses.
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
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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

#: Query parameters a PostgreSQL URL may carry; the others (``host``, ``hostaddr``, ``service``,
#: ``options``...) could send the connection somewhere other than the checked host.
PG_QUERY_PARAMS = frozenset({"sslmode", "application_name", "connect_timeout"})
_T = TypeVar("_T")
_ONE_STATEMENT = "only one SELECT or WITH statement is accepted"
_DENIED_WORDS = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|UPSERT|TRUNCATE|DROP|ALTER|CREATE|GRANT|REVOKE|COPY|CALL"
    r"|EXEC|EXECUTE|ATTACH|DETACH|PRAGMA|VACUUM|REINDEX|INTO|LOCK|SET|REFRESH|LOAD|OUTFILE"
    r"|DUMPFILE|FOR\s+(?:KEY\s+)?SHARE)\b",
    re.IGNORECASE,
)
# Functions that act outside the query's own read: other sessions, server files, settings.
_DENIED_CALLS = re.compile(
    r"\b(dblink\w*|lo_\w+|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile"
    r"|pg_switch_wal|pg_promote|pg_create_\w+|pg_drop_\w+|pg_(?:try_)?advisory\w*|pg_notify"
    r"|pg_read_\w*file|pg_ls_\w+|pg_stat_file|pg_file_\w+|set_config|query_to_xml\w*"
    r"|cursor_to_xml\w*|load_extension|load_file)\s*\(",
    re.IGNORECASE,
)


class QueryRefused(InvalidItem):
    """The query is not one read-only SELECT, or the session could not be made read-only."""

    code = "query-refused"


class QueryTimeout(InvalidItem):
    code = "query-timeout"


class QueryFailed(InvalidItem):
    """The database refused or failed the query (syntax error, missing table, permission)."""

    code = "query-failed"


class TooManyRows(FileTooLarge):
    code = "too-many-rows"


class SqlConfigError(SourceUnavailable):
    """``source.url`` or ``source.options`` cannot be used."""

    code = "invalid-config"


@dataclass(frozen=True)
class SqlDataset:
    """One dataset of an SQL source: a query and the metadata of its result."""

    #: Stable id of the dataset at this source; renaming it withdraws the old dataset.
    remote_id: str
    #: One ``SELECT`` (or ``WITH ... SELECT``) statement; see :func:`check_query`.
    query: str
    #: Dataset metadata, with the folder harvester's keys (title, description, schema, ...).
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SqlOptions:
    """``source.options`` of an SQL source."""

    #: The datasets to harvest, one query each.
    datasets: tuple[SqlDataset, ...]
    #: Longest time, in seconds, for one statement and for reading the whole result.
    statement_timeout: float = 60.0
    #: Rows read from the database and written to the CSV at a time.
    chunk_size: int = 10_000
    #: Most rows one query may return; more fails the item (None: no row cap, only the size cap).
    max_rows: int | None = 1_000_000
    #: Longest wait, in seconds, for the database connection.
    connect_timeout: float = 10.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SqlOptions:
        """Build and check the options of a source.

        :param options: ``source.options``.
        :raises SqlConfigError: when a field is missing or has the wrong type.
        """
        entries = options.get("datasets")
        if not isinstance(entries, list) or not entries:
            raise SqlConfigError("options.datasets must be a non-empty list")
        datasets = []
        for n, entry in enumerate(entries):
            entry = entry if isinstance(entry, dict) else {}
            remote_id, query = entry.get("remote_id"), entry.get("query")
            metadata = entry.get("metadata", {})
            if not (isinstance(remote_id, str) and remote_id.strip() and isinstance(query, str)
                    and isinstance(metadata, dict)):
                raise SqlConfigError(f"options.datasets[{n}] needs remote_id and query (strings) "
                                     "and metadata (an object)")
            datasets.append(SqlDataset(remote_id.strip(), query, metadata))
        try:
            max_rows = options.get("max_rows", cls.max_rows)
            made = cls(
                tuple(datasets),
                statement_timeout=float(options.get("statement_timeout", cls.statement_timeout)),
                chunk_size=int(options.get("chunk_size", cls.chunk_size)),
                max_rows=None if max_rows is None else int(max_rows),
                connect_timeout=float(options.get("connect_timeout", cls.connect_timeout)),
            )
        except (TypeError, ValueError) as exc:
            raise SqlConfigError(f"options: {exc}") from None
        if min(made.statement_timeout, made.chunk_size, made.connect_timeout) <= 0:
            raise SqlConfigError("options: timeouts and chunk_size must be positive")
        return made


def check_query(query: str) -> str:
    """Accept one read-only ``SELECT``/``WITH`` statement; return it without a trailing ``;``.

    :param query: the SQL text of a dataset.
    :raises QueryRefused: with the reason, for anything else.
    """
    skeleton = _skeleton(query).rstrip()
    if skeleton.endswith(";"):  # the skeleton keeps offsets, so this cuts a trailing comment too
        skeleton, query = skeleton[:-1], query[: len(skeleton) - 1]
    if ";" in skeleton:
        raise QueryRefused(f"{_ONE_STATEMENT}; the query holds several statements")
    first = re.match(r"[\s(]*([A-Za-z]+)", skeleton)
    if first is None or first.group(1).upper() not in ("SELECT", "WITH"):
        raise QueryRefused(f"{_ONE_STATEMENT}; the query does not start with SELECT or WITH")
    if found := _DENIED_WORDS.search(skeleton):
        word = " ".join(found.group(0).split()).upper()
        raise QueryRefused(f"{_ONE_STATEMENT}; {word} is not allowed (quote a column of that "
                           "name as an identifier)")
    if found := _DENIED_CALLS.search(skeleton):
        raise QueryRefused(f"{_ONE_STATEMENT}; calling {found.group(1)}() is not allowed")
    return query


def _skeleton(query: str) -> str:
    """The query with comments and quoted text blanked (same length), leaving only code."""
    out, i, n = [], 0, len(query)
    while i < n:
        char, pair = query[i], query[i : i + 2]
        if pair == "--" and (i + 2 == n or query[i + 2].isspace()):
            # MySQL needs the space after "--": "1--1; DROP" would be code there, so without it
            # the text stays code here too. "#" is never a comment for the same reason.
            end = query.find("\n", i)
            out.append(" " * ((n if end < 0 else end) - i))
            i = n if end < 0 else end
        elif pair == "/*":
            if query.startswith(("/*!", "/*+"), i):
                raise QueryRefused("MySQL executable comments (/*! */) are not accepted")
            end = query.find("*/", i + 2)  # not nested: the first "*/" ends it in every dialect
            if end < 0:
                raise QueryRefused("the query has an unterminated comment")
            out.append(" " * (end + 2 - i))
            i = end + 2
        elif char in "'\"`":
            end = i + 1
            while True:
                end = query.find(char, end)
                if end < 0:
                    raise QueryRefused("the query has an unterminated quoted string or name")
                if query.startswith(char * 2, end):
                    end += 2
                    continue
                break
            if "\\" in query[i:end]:
                # MySQL reads \' as an escaped quote, PostgreSQL does not: the two would end
                # the string in different places, and the check could inspect the wrong text.
                raise QueryRefused("backslashes inside quoted text are not accepted (use chr())")
            out.append(char + " " * (end - i - 1) + char)
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


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
