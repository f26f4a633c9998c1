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
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

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
    columns, rows = read_typed_rows(source, schema)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".sqlite")
    os.close(fd)
    try:
        count = _write(Path(tmp), columns, rows)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return count


def _write(path: Path, columns: list[Column], rows: Iterator[tuple[Any, ...]]) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        defs = ", ".join(f"{quote(c.name)} {SQL_TYPES.get(c.type, 'TEXT')}" for c in columns)
        conn.execute(f"CREATE TABLE rows (_id INTEGER PRIMARY KEY, {defs})")  # noqa: S608
        conn.execute("CREATE TABLE columns (position INTEGER, name TEXT, type TEXT)")
        conn.executemany(
            "INSERT INTO columns VALUES (?, ?, ?)",
            [(i, c.name, c.type) for i, c in enumerate(columns)],
        )
        marks = ", ".join("?" for _ in columns)
        insert = f"INSERT INTO rows ({', '.join(quote(c.name) for c in columns)}) VALUES ({marks})"  # noqa: S608
        count = 0
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                conn.executemany(insert, batch)
                count += len(batch)
                batch.clear()
        conn.executemany(insert, batch)
        count += len(batch)
        for i, column in enumerate(columns[:MAX_INDEXED_COLUMNS]):
            conn.execute(f"CREATE INDEX ix_{i} ON rows ({quote(column.name)})")
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()
    return count


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
