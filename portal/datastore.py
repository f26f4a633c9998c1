"""The data plane: one read-only, indexed SQLite rows file per version.

Rows are typed from the version's Table Schema. The file is built next to its final place,
then renamed into it, so a reader never sees half a file; readers open it with
``mode=ro&immutable=1`` and need no locks.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any

from harvesters.fastcheck import typed_chunks
from harvesters.tables import Column, read_typed_rows

SQL_TYPES = {
    "integer": "INTEGER",
    "year": "INTEGER",
    "number": "REAL",
    "boolean": "INTEGER",
}
#: Columns beyond this many are not indexed (wide tables would bloat the file).
MAX_INDEXED_COLUMNS = 32
BATCH = 5000


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def build_rows_file(source: Path, schema: dict[str, Any], target: Path) -> int:
    """Write the typed rows of ``source`` into a new SQLite file at ``target``.

    :returns: the number of rows written.
    """
    fast = typed_chunks(source, schema, chunk_rows=BATCH)
    if fast is None:
        columns, rows = read_typed_rows(source, schema)
        chunks: Iterable[Sequence[Sequence[Any]]] = _batched(rows)
    else:
        columns, chunks = fast
    writer = RowsWriter(target)
    try:
        writer.start(columns)
        for chunk in chunks:
            writer.add(chunk)
        writer.done()
        return writer.finish()
    finally:
        writer.discard()


class RowsWriter:
    """A rows file filled chunk by chunk, e.g. while the checks read the table.

    It is a :class:`harvesters.fastcheck.RowSink`: ``check_table(..., rows=writer)`` fills it in
    the same pass when it can. It is written next to ``target`` under a temporary name;
    :meth:`finish` indexes it and renames it into place, :meth:`discard` removes it.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        #: Every row of the table was added.
        self.complete = False
        self.count = 0
        self._tmp: Path | None = None
        self._conn: sqlite3.Connection | None = None
        self._columns: list[Column] = []
        self._insert = ""

    def start(self, columns: list[Column]) -> None:
        """Create the file and its tables for ``columns``."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.target.parent, prefix=".tmp-", suffix=".sqlite")
        os.close(fd)
        self._tmp, self._columns = Path(tmp), columns
        self._conn = conn = sqlite3.connect(tmp)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        defs = ", ".join(f"{quote(c.name)} {SQL_TYPES.get(c.type, 'TEXT')}" for c in columns)
        conn.execute(f"CREATE TABLE rows (_id INTEGER PRIMARY KEY, {defs})")  # noqa: S608
        conn.execute("CREATE TABLE columns (position INTEGER, name TEXT, type TEXT)")
        conn.executemany(
            "INSERT INTO columns VALUES (?, ?, ?)",
            [(i, c.name, c.type) for i, c in enumerate(columns)],
        )
        names = ", ".join(quote(c.name) for c in columns)
        marks = ", ".join("?" for _ in columns)
        self._insert = f"INSERT INTO rows ({names}) VALUES ({marks})"  # noqa: S608

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows, in file order."""
        if self._conn is None:
            raise RuntimeError("RowsWriter.start() was not called")
        self._conn.executemany(self._insert, rows)
        self.count += len(rows)

    def done(self) -> None:
        """Every row has been added."""
        self.complete = True

    def finish(self) -> int:
        """Index the rows, then move the read-only file to ``target``.

        :returns: the number of rows.
        :raises RuntimeError: when not every row was added.
        """
        if self._conn is None or self._tmp is None or not self.complete:
            raise RuntimeError("the rows file is incomplete")
        for i, column in enumerate(self._columns[:MAX_INDEXED_COLUMNS]):
            if not _is_constant(self._conn, column.name):
                self._conn.execute(f"CREATE INDEX ix_{i} ON rows ({quote(column.name)})")
        self._conn.commit()
        self._conn.close()
        self._conn = None
        os.chmod(self._tmp, 0o444)
        os.replace(self._tmp, self.target)
        self._tmp = None
        return self.count

    def discard(self) -> None:
        """Remove the unfinished file, if any (no-op after :meth:`finish`)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _is_constant(conn: sqlite3.Connection, name: str) -> bool:
    """Whether every row holds the same value in ``name`` (an index on it would serve nothing:
    a filter keeps all rows or none, a sort changes no order). Stops at the first other value."""
    column = quote(name)
    first = conn.execute(f"SELECT {column} FROM rows LIMIT 1").fetchone()  # noqa: S608
    if first is None:
        return False
    other = f"SELECT 1 FROM rows WHERE {column} IS NOT ? LIMIT 1"  # noqa: S608
    return conn.execute(other, first).fetchone() is None


def _batched(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    while batch := list(islice(rows, BATCH)):
        yield batch


def connect(path: Path) -> sqlite3.Connection:
    """Open a rows file read-only; immutable files need no locking."""
    return sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)


def columns_of(path: Path) -> list[Column]:
    with closing(connect(path)) as conn:
        return [
            Column(n, t)
            for n, t in conn.execute("SELECT name, type FROM columns ORDER BY position")
        ]


def preview(path: Path, limit: int) -> tuple[list[Column], list[tuple[Any, ...]]]:
    """The first ``limit`` rows, in file order."""
    with closing(connect(path)) as conn:
        cols = [
            Column(n, t)
            for n, t in conn.execute("SELECT name, type FROM columns ORDER BY position")
        ]
        names = ", ".join(quote(c.name) for c in cols)
        rows = conn.execute(f"SELECT {names} FROM rows ORDER BY _id LIMIT ?", (limit,)).fetchall()  # noqa: S608
    return cols, rows


def iter_csv(path: Path) -> Iterator[str]:
    """Stream the rows as CSV text chunks, header first, never holding the table in memory."""
    conn = connect(path)
    try:
        cols = [n for (n,) in conn.execute("SELECT name FROM columns ORDER BY position")]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(cols)
        cursor = conn.execute(f"SELECT {', '.join(quote(c) for c in cols)} FROM rows ORDER BY _id")  # noqa: S608
        while batch := cursor.fetchmany(1000):
            writer.writerows(batch)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()
    finally:
        conn.close()
