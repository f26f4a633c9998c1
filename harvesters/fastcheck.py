"""Bulk validation of CSV tables: frictionless's findings without frictionless's per-row cost.

Frictionless stays the authority. It still opens the file (encoding, dialect, header, lookups
of foreign keys), the cells come from the same ``csv`` reader with the dialect it detected, and
its own cell readers decide every type and constraint. What changes is how often work is done:

* rows are read in chunks and handled column by column; a cell is read **once per distinct
  value and column** (a bounded cache), not once per cell: a million-row penduduk file has a
  few thousand distinct cells;
* unique, primary and foreign keys are checked per chunk. Keys seen so far are kept as 64-bit
  hashes of the typed values with their last row, in sorted numpy arrays (12 bytes a key
  instead of a dict of tuples), so memory stays nearly flat;
* only a row with something to report goes through frictionless's ``Row``, with the lookups of
  ``TableResource.row_stream`` in the same order, so the errors are the same objects, notes and
  order as ``resource.validate(limit_errors=0)`` gives.

The same pass can count raw cells (the personal-data scan), flag rows (the binary scan) and hand
the rows, typed as :func:`harvesters.tables.read_typed_rows` types them, to a :class:`RowSink`
(the data plane's rows file). :func:`typed_chunks` gives those rows without a check.

:func:`fast_check` returns ``None`` whenever this path cannot promise identical findings, and the
caller runs frictionless instead: a format other than CSV/TSV, a compressed or remote file, a
file frictionless cannot open or warns about, case-insensitive headers, duplicate field names,
keys over object/array fields or NaN numbers, and any parse error while streaming (frictionless
then reports it as it always does).

The parts live next door: :mod:`harvesters.fastcheck_read` (opening and chunked reading),
:mod:`harvesters.fastcheck_checker` (the column-wise checks and the raw-cell scans) and
:mod:`harvesters.fastcheck_keys` (the key index); the public names are importable from here.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frictionless import Error, Resource, Schema
from frictionless.resources import TableResource

from harvesters import tables
from harvesters.fastcheck_checker import CACHE_LIMIT, Checker, RowSink, ValueHook
from harvesters.fastcheck_keys import KeyMemory as _KeyMemory  # noqa: F401 - tests patch it here
from harvesters.fastcheck_read import FAST_FORMATS, gc_paused, open_table, read_chunks
from harvesters.tables import Column, TableReadError

__all__ = [
    "CHUNK_ROWS",
    "FAST_FORMATS",
    "FastResult",
    "RowSink",
    "fast_check",
    "typed_chunks",
]

#: Rows handled per chunk; bounds the memory of one step whatever the file size.
CHUNK_ROWS = 2_000
#: Distinct raw values counted per column before the counts go to ``on_values``.
FLUSH_DISTINCT = 20_000


@dataclass
class FastResult:
    """What ``resource.validate(limit_errors=0)`` would have reported, in the same order."""

    row_count: int
    labels: list[str]
    errors: list[Error]
    #: Numbers of the rows with a cell matching ``flag``, ascending.
    flagged_rows: list[int] = field(default_factory=list)


def fast_check(
    path: Path,
    schema: Schema | dict[str, Any],
    *,
    references: Sequence[Resource] = (),
    on_values: ValueHook | None = None,
    flag: re.Pattern[str] | None = None,
    rows: RowSink | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> FastResult | None:
    """Validate a CSV file against a Table Schema with frictionless's exact findings.

    :param path: the table file.
    :param schema: the Table Schema (object or descriptor) the file is checked against.
    :param references: the resources the schema's foreign keys point at (as for a Package).
    :param on_values: called with the counts of a column's raw cells, over one or more chunks,
        until every cell is counted (e.g. for a personal-data scan); when the result is
        ``None`` the counts may be incomplete.
    :param flag: a pattern searched in every raw cell; rows with a match are listed in
        :attr:`FastResult.flagged_rows`.
    :param rows: receives the rows typed for the data plane in the same pass (the rows of
        :func:`tables.read_typed_rows`); its ``done()`` is called only when it got every row.
    :param chunk_rows: rows per chunk.
    :returns: ``None`` when the file must be checked by frictionless itself (see module doc).

    Opening the file records warnings, which is process-global: concurrent callers hold
    ``harvesters.checks.WARNINGS_LOCK``, as ``check_table`` does.
    """
    resource = open_table(path, schema, references)
    if resource is None:
        return None
    try:
        checker = Checker(resource, on_values, flag, rows, flush_distinct=FLUSH_DISTINCT)
        with gc_paused():
            for numbers, cells in read_chunks(resource, chunk_rows):
                checker.add_chunk(numbers, cells)
            checker.flush()
        if checker.rows is not None:
            checker.rows.done()
    except Exception:  # Unsupported, or a parse error mid-file that frictionless reports
        return None
    return FastResult(
        checker.row_count, list(resource.labels), checker.errors, checker.flagged_rows
    )


def typed_chunks(
    path: Path, schema: dict[str, Any], *, chunk_rows: int = CHUNK_ROWS
) -> tuple[list[Column], Iterator[list[list[Any]]]] | None:
    """Columns and chunks of typed rows, equal to the rows of :func:`tables.read_typed_rows`.

    Rows are lists (ready for ``executemany``) of ``int``, ``float``, ``bool``, ``str`` or
    ``None``, converted exactly as ``read_typed_rows`` converts them.

    :param path: a CSV file that passed the checks.
    :param schema: the Table Schema descriptor it was checked against.
    :param chunk_rows: rows per chunk.
    :returns: ``None`` when the file must be read by :func:`tables.read_typed_rows`.
    :raises TableReadError: while iterating, when the file cannot be parsed.
    """
    fields = [
        {k: v for k, v in spec.items() if k != "constraints"} for spec in schema.get("fields") or []
    ]
    kept = {k: v for k, v in schema.items() if k not in ("foreignKeys", "primaryKey", "fields")}
    resource = open_table(path, {**kept, "fields": fields}, (), quiet=False)
    if resource is None:
        return None
    expected = resource.header.get_expected_fields()
    columns = [Column(str(f.name), str(f.type)) for f in resource.schema.fields]
    if [c.name for c in columns] != [f.name for f in expected]:
        return None
    casts: list[_Cast | list[str]] = []
    for field_, column in zip(expected, columns, strict=True):
        if field_.type == "string" and field_.format == "default":
            # A plain string cell is its own value unless it is a missing value: no lookup.
            missing = field_.missing_values
            if field_.schema is not None and not field_.has_defined("missing_values"):
                missing = field_.schema.missing_values
            casts.append(list(missing))
        else:
            # read_typed_rows' conversion, applied once per distinct cell.
            convert = tables._CONVERTERS.get(column.type, tables._to_str)
            casts.append(_Cast(field_.create_cell_reader(), convert))
    return columns, _typed(resource, casts, chunk_rows)


class _Cast:
    """Raw cell → the plain value ``read_typed_rows`` stores, memoised per distinct cell."""

    def __init__(self, reader: Callable[[Any], Any], convert: Callable[[Any], Any]) -> None:
        self.reader, self.convert = reader, convert
        self.cache: dict[Any, Any] = {}

    def values(self, column: list[Any]) -> Iterator[Any]:
        if len(self.cache) > CACHE_LIMIT:
            self.cache.clear()
        for value in set(column).difference(self.cache):
            self.cache[value] = tables._to_plain(self.reader(value)[0], self.convert)
        return map(self.cache.__getitem__, column)


def _typed(
    resource: TableResource, casts: list[_Cast | list[str]], chunk_rows: int
) -> Iterator[list[list[Any]]]:
    width = len(casts)
    try:
        chunks = read_chunks(resource, chunk_rows)
        while True:
            with gc_paused():
                chunk = next(chunks, None)
                if chunk is None:
                    return
                rows = chunk[1]
                if set(map(len, rows)) != {width}:
                    pad = [None] * width
                    rows = [(cells + pad)[:width] for cells in rows]
                for j, cast in enumerate(casts):
                    column = [cells[j] for cells in rows]
                    if isinstance(cast, _Cast):
                        for cells, value in zip(rows, cast.values(column), strict=True):
                            cells[j] = value
                    elif missing := {m for m in cast if m in column}:
                        for cells in rows:
                            if cells[j] in missing:
                                cells[j] = None
            yield rows
    except (OSError, UnicodeError, csv.Error) as exc:
        raise TableReadError(f"{resource.path}: {exc}") from exc
