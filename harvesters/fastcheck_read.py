"""How :mod:`harvesters.fastcheck` reads a CSV file: frictionless opens it, ``csv`` parses it.

:func:`open_table` lets frictionless do the detection (encoding, dialect, header, lookups of
foreign keys) and says whether the fast path may read the file at all; :func:`read_chunks` then
yields its rows in chunks, parsed exactly as frictionless's CSV parser parses them.
"""

from __future__ import annotations

import csv
import gc
import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from itertools import islice
from pathlib import Path
from typing import Any

from frictionless import Package, Resource, Schema
from frictionless.formats import CsvControl
from frictionless.resources import TableResource

from harvesters.tables import open_resource, table_format

__all__ = ["FAST_FORMATS", "gc_paused", "open_table", "read_chunks", "to_columns"]

#: Formats read by the fast path; anything else falls back to frictionless.
FAST_FORMATS = frozenset({"csv", "tsv"})
_TABLE = "tabel"


def open_table(
    path: Path,
    schema: Schema | dict[str, Any],
    references: Sequence[Resource],
    *,
    quiet: bool = True,
) -> TableResource | None:
    """Let frictionless open the file (detection, header, lookups), then close it again.

    :param path: the table file.
    :param schema: the Table Schema (object or descriptor) the file is read with.
    :param references: the resources its foreign keys point at (as for a Package).
    :param quiet: require that opening raised no warning (check_table reports warnings as
        issues; the fast path does not reproduce them). ``catch_warnings`` is process-global:
        call it under ``checks.WARNINGS_LOCK``.
    :returns: ``None`` when only frictionless can read this file.
    """
    try:
        if table_format(path) not in FAST_FORMATS:
            return None
        table_schema = schema if isinstance(schema, Schema) else Schema.from_descriptor(schema)
        resource = open_resource(path, table_schema, name=_TABLE)
    except Exception:
        return None
    if not isinstance(resource, TableResource):
        return None
    if references:
        Package(resources=[resource, *references])
    with warnings.catch_warnings(record=True) if quiet else nullcontext() as caught:
        if quiet:
            warnings.simplefilter("always")
        try:
            resource.to_descriptor(validate=True)
            resource.open()  # type: ignore[no-untyped-call]
        except Exception:
            return None
        finally:
            resource.close()
    plain = resource.scheme == "file" and not resource.compression and not resource.multipart
    noisy = any(not issubclass(w.category, DeprecationWarning) for w in caught or ())
    empty = not (resource.labels or resource.fragment)
    if not plain or noisy or empty or not resource.dialect.header_case:
        return None
    return resource


def read_chunks(
    resource: TableResource, chunk_rows: int
) -> Iterator[tuple[Sequence[int], list[list[Any]]]]:
    """Row numbers and cells, chunk by chunk, parsed as frictionless's CSV parser parses them.

    Same bytes (a plain local file), same decoding (the detected encoding, ``newline=""`` for
    CSV), same ``csv`` dialect (the control frictionless filled in while sniffing), same row
    numbers; only the per-row Python wrappers around ``csv.reader`` are left out.

    :param resource: a table :func:`open_table` accepted.
    :param chunk_rows: rows per chunk.
    """
    dialect = resource.dialect
    python_dialect = CsvControl.from_dialect(dialect).to_python()
    newline = "" if resource.format == "csv" else None
    with (
        open(str(resource.normpath), "rb") as raw,
        io.TextIOWrapper(raw, str(resource.encoding), newline=newline) as text,
    ):
        reader = csv.reader(text, dialect=python_dialect)
        simple = (
            dialect.header
            and dialect.header_rows == [1]
            and not (dialect.comment_char or dialect.comment_rows or dialect.skip_blank_rows)
        )
        if simple:
            next(reader, None)
            number = 2
            while rows := list(islice(reader, chunk_rows)):
                yield range(number, number + len(rows)), rows
                number += len(rows)
            return
        stream = dialect.read_enumerated_content_stream(reader)
        while chunk := list(islice(stream, chunk_rows)):
            yield [n for n, _ in chunk], [cells for _, cells in chunk]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector: chunks make many containers but no cycles, so a collection
    would only re-scan them (a third of the time spent on a chunk)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_columns(rows: list[list[Any]], width: int) -> list[list[Any]]:
    """Transpose rows to ``width`` columns; missing cells are ``None``, extra cells dropped.

    :param rows: a chunk of rows, as :func:`read_chunks` gives them.
    :param width: the number of columns.
    """
    if set(map(len, rows)) != {width}:
        pad = [None] * width
        rows = [cells if len(cells) == width else (cells + pad)[:width] for cells in rows]
    return [[cells[j] for cells in rows] for j in range(width)]

