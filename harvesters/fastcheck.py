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
"""

from __future__ import annotations

import csv
import gc
import io
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from frictionless import Error, Package, Resource, Row, Schema, errors
from frictionless.formats import CsvControl
from frictionless.resources import TableResource
from frictionless.table.row import create_cell_handlers

from harvesters import tables
from harvesters.tables import Column, TableReadError, open_resource, table_format

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
#: Formats read by the fast path; anything else falls back to frictionless.
FAST_FORMATS = frozenset({"csv", "tsv"})
#: Distinct values cached per column before the cache is emptied (keeps memory flat).
CACHE_LIMIT = 50_000
#: Distinct raw values counted per column before the counts go to ``on_values``.
FLUSH_DISTINCT = 20_000
_TABLE = "tabel"
_UNHASHABLE_TYPES = frozenset({"object", "array", "list", "geojson"})

#: ``on_values(column_index, counts)``: counts of raw cells of one column, over some rows.
ValueHook = Callable[[int, Mapping[str, int]], None]


class RowSink(Protocol):
    """Where :func:`fast_check` puts the typed rows (e.g. ``portal.datastore.RowsWriter``)."""

    def start(self, columns: list[Column]) -> None:
        """The table's columns, before any row."""

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """The next rows, in file order."""

    def done(self) -> None:
        """Every row was added (not called when the file had to go to frictionless)."""


class _Unsupported(Exception):
    """This file or schema needs the full frictionless path."""


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
    resource = _open(path, schema, references)
    if resource is None:
        return None
    try:
        checker = _Checker(resource, on_values, flag, rows)
        with _gc_paused():
            for numbers, cells in _chunks(resource, chunk_rows):
                checker.add_chunk(numbers, cells)
            checker.flush()
        if checker.rows is not None:
            checker.rows.done()
    except Exception:  # _Unsupported, or a parse error mid-file that frictionless reports
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
    resource = _open(path, {**kept, "fields": fields}, (), quiet=False)
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
        chunks = _chunks(resource, chunk_rows)
        while True:
            with _gc_paused():
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


def _open(
    path: Path,
    schema: Schema | dict[str, Any],
    references: Sequence[Resource],
    *,
    quiet: bool = True,
) -> TableResource | None:
    """Let frictionless open the file (detection, header, lookups), then close it again.

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


def _chunks(
    resource: TableResource, chunk_rows: int
) -> Iterator[tuple[Sequence[int], list[list[Any]]]]:
    """Row numbers and cells, chunk by chunk, parsed as frictionless's CSV parser parses them.

    Same bytes (a plain local file), same decoding (the detected encoding, ``newline=""`` for
    CSV), same ``csv`` dialect (the control frictionless filled in while sniffing), same row
    numbers; only the per-row Python wrappers around ``csv.reader`` are left out.
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
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic collector: chunks make many containers but no cycles, so a collection
    would only re-scan them (a third of the time spent on a chunk)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _columns(rows: list[list[Any]], width: int) -> list[list[Any]]:
    """Transpose rows to ``width`` columns; missing cells are ``None``, extra cells dropped."""
    if set(map(len, rows)) != {width}:
        pad = [None] * width
        rows = [cells if len(cells) == width else (cells + pad)[:width] for cells in rows]
    return [[cells[j] for cells in rows] for j in range(width)]


class _KeyMemory:
    """Hashes of the keys seen so far, each with the last row it was seen in.

    Two sorted arrays: a small one that takes this chunk's keys and is merged into the large one
    when it passes :data:`MERGE_AT`, so a chunk costs O(chunk + small), not O(keys so far).
    """

    MERGE_AT = 1 << 16

    def __init__(self) -> None:
        # Row numbers fit 32 bits: 12 bytes a key.
        empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32))
        self.big: tuple[np.ndarray, np.ndarray] = empty
        self.small: tuple[np.ndarray, np.ndarray] = empty

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each key (rows ascending), the row where it was last seen before, or 0."""
        order = np.argsort(hashes, kind="stable")
        keys, numbers = hashes[order], rows[order]
        same = np.zeros(len(keys), dtype=bool)
        same[1:] = keys[1:] == keys[:-1]
        previous = np.where(same, np.roll(numbers, 1), 0)
        recent, in_small = _lookup(self.small, keys)
        older, _ = _lookup(self.big, keys)
        previous[~same] = np.where(in_small, recent, older)[~same]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = ~same[1:]
        self.small = _upsert(self.small, keys[last], numbers[last])
        if len(self.small[0]) > self.MERGE_AT:
            self.big = _upsert(self.big, *self.small)
            self.small = (self.small[0][:0], self.small[1][:0])
        result = np.empty_like(previous)
        result[order] = previous
        return result


def _lookup(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """The rows stored for sorted ``keys`` in a sorted table (0 when absent), and a found mask."""
    stored, rows = table
    if not len(stored):
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(stored, keys), len(stored) - 1)
    found = stored[pos] == keys
    return np.where(found, rows[pos], 0), found


def _upsert(
    table: tuple[np.ndarray, np.ndarray], keys: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``table`` with the distinct sorted ``keys`` set to ``rows`` (updated or inserted).

    Updates are made in place; only the insertion copies the arrays.
    """
    stored, values = table
    pos = np.searchsorted(stored, keys)
    found = np.zeros(len(keys), dtype=bool)
    if len(stored):
        found = stored[np.minimum(pos, len(stored) - 1)] == keys
    values[pos[found]] = rows[found]
    new = ~found
    return np.insert(stored, pos[new], keys[new]), np.insert(values, pos[new], rows[new])


def _hashes(values: Iterable[Any], count: int) -> np.ndarray:
    return np.fromiter(map(hash, values), dtype=np.int64, count=count)


class _ColumnCache:
    """Frictionless's cell reader applied once per distinct raw cell of a column.

    Besides the typed values it keeps the raw cells that have a note (type or constraint), that
    are blank, that read as null, and that read as NaN, so a chunk is classified with set
    intersections instead of a loop over its distinct values.
    """

    def __init__(self, reader: Callable[[Any], Any]) -> None:
        self.reader = reader
        self._reset()

    def _reset(self) -> None:
        self.typed: dict[Any, Any] = {}
        self.noted: set[Any] = set()
        self.blank: set[Any] = set()
        self.null: set[Any] = set()
        self.nan: set[Any] = set()
        self.plains: dict[Any, Any] = {}
        self.identity = True  # every typed value is its raw cell (plain strings)

    def learn(self, values: set[Any]) -> None:
        """Read the cells of ``values`` not seen yet."""
        if len(self.typed) > CACHE_LIMIT:
            self._reset()
        for value in values.difference(self.typed):
            target, notes = self.reader(value)
            self.typed[value] = target
            if notes:
                self.noted.add(value)
            if target is None:
                self.null.add(value)
                if "type" not in (notes or {}):
                    self.blank.add(value)
            elif target != target:
                self.nan.add(value)
            if target is not value:
                self.identity = False

    def values(self, column: list[Any]) -> list[Any]:
        """The typed values of ``column`` (all learnt)."""
        return column if self.identity else list(map(self.typed.__getitem__, column))

    def plain(self, column: list[Any], convert: Callable[[Any], Any]) -> dict[Any, Any]:
        """Raw cell → the value ``read_typed_rows`` stores, for the cells of ``column``."""
        plain = self.plains
        for value in set(column).difference(plain):
            plain[value] = tables._to_plain(self.typed[value], convert)
        return plain


class _Checker:
    """The integrity part of ``TableResource.row_stream``, column-wise, plus dirty-row replay."""

    def __init__(
        self,
        resource: TableResource,
        on_values: ValueHook | None,
        flag: re.Pattern[str] | None,
        rows: RowSink | None = None,
    ) -> None:
        self.on_values = on_values
        self.flag = flag
        self.rows = rows
        self.flagged_rows: list[int] = []
        self.pending: dict[int, Counter[Any]] = {}
        self.unflagged: dict[int, set[Any]] = {}  # raw cells known not to match ``flag``
        fields = resource.header.get_expected_fields()
        self.handlers = create_cell_handlers(fields)
        if len(self.handlers) != len(fields):
            raise _Unsupported("duplicate field names")
        self.names = list(self.handlers)
        self.caches = [_ColumnCache(h.reader) for h in self.handlers.values()]
        self.converts = [
            tables._CONVERTERS.get(h.field.type, tables._to_str) for h in self.handlers.values()
        ]
        if rows is not None:
            schema_names = [str(f.name) for f in resource.schema.fields]
            if schema_names == self.names:
                rows.start([Column(str(f.name), str(f.type)) for f in resource.schema.fields])
            else:  # a header that does not match the schema: no rows file for this table
                self.rows = None
        self.errors: list[Error] = list(resource.header.errors)
        self.row_count = 0
        types = {h.field.name: h.field.type for h in self.handlers.values()}
        self.unique = [f.name for f in fields if f.constraints.get("unique")]
        primary = list(resource.schema.primary_key)
        self.primary = primary if primary and set(primary) <= set(self.names) else []
        self.groups: list[tuple[str, tuple[str, ...], tuple[str, ...], set[Any]]] = []
        for fk in resource.schema.foreign_keys if resource.lookup else []:
            target = tuple(fk["fields"])
            if not set(target) <= set(self.names):
                continue
            name, source = fk["reference"]["resource"], tuple(fk["reference"]["fields"])
            lookup = resource.lookup.get(name)
            if lookup:
                self.groups.append((name, source, target, lookup.get(source, set())))
        keyed = {*self.unique, *self.primary, *(n for g in self.groups for n in g[2])}
        if any(types[name] in _UNHASHABLE_TYPES for name in keyed):
            raise _Unsupported("keys over unhashable values")
        self.keyed = {self.names.index(name) for name in keyed}
        self.memories = {name: _KeyMemory() for name in [*self.unique, "\0primary"]}
        self.nullable: set[int] = set()  # keyed columns with a null in the current chunk

    def add_chunk(self, numbers: Sequence[int], rows: list[list[Any]]) -> None:
        self.row_count += len(rows)
        width = len(self.names)
        lengths = set(map(len, rows))
        dirty = set() if lengths == {width} else {i for i, c in enumerate(rows) if len(c) != width}
        columns = _columns(rows, width)
        distinct = self._scan_raw(numbers, rows, columns, max(lengths))
        typed: dict[str, Sequence[Any]] = {}
        blank: set[int] | None = None
        for j, column in enumerate(columns):
            cache = self.caches[j]
            values = distinct.get(j) or set(column)
            cache.learn(values)
            if noted := values & cache.noted:
                dirty.update(i for i, v in enumerate(column) if v in noted)
            blanks = values & cache.blank
            if blank is None:
                blank = {i for i, v in enumerate(column) if v in blanks} if blanks else set()
            elif blank:
                blank = {i for i in blank if column[i] in blanks}
            if j in self.keyed:
                if values & cache.nan:
                    # NaN: frictionless compares per-row objects, which are never equal
                    raise _Unsupported("NaN in a key column")
                if values & cache.null:
                    self.nullable.add(j)
                typed[self.names[j]] = cache.values(column)
        dirty |= blank or set()
        events = self._integrity(typed, np.asarray(numbers, dtype=np.int64))
        for i in sorted(dirty | events.keys()):
            self._replay(rows[i], numbers[i], events.get(i, {}))
        self.nullable.clear()
        if self.rows is not None:
            self.rows.add(self._plain_rows(columns))

    def _plain_rows(self, columns: list[list[Any]]) -> list[tuple[Any, ...]]:
        """The chunk's rows as ``read_typed_rows`` gives them (missing cells ``None``)."""
        plain_columns = []
        for j, column in enumerate(columns):
            cache, convert = self.caches[j], self.converts[j]
            if cache.identity and convert is tables._to_str:
                plain_columns.append(column)
            else:
                plain_columns.append(list(map(cache.plain(column, convert).__getitem__, column)))
        return list(zip(*plain_columns, strict=True))

    def _scan_raw(
        self, numbers: Sequence[int], rows: list[list[Any]], columns: list[list[Any]], widest: int
    ) -> dict[int, set[Any]]:
        """Feed ``on_values`` and find ``flag``ged rows over all cells, extra ones included.

        :returns: the distinct raw cells of each column, when they had to be collected.
        """
        if self.on_values is None and self.flag is None:
            return {}
        distinct: dict[int, set[Any]] = {}
        flagged: set[int] = set()
        for j, column in enumerate(columns if widest == len(columns) else _columns(rows, widest)):
            values = distinct[j] = set(column)
            if self.flag is not None:
                clean = self.unflagged.setdefault(j, set())
                if len(clean) > CACHE_LIMIT:
                    clean.clear()
                search = self.flag.search
                if hits := {v for v in values - clean if isinstance(v, str) and search(v)}:
                    flagged.update(i for i, v in enumerate(column) if v in hits)
                clean |= values - hits
            if self.on_values is not None:
                pending = self.pending.setdefault(j, Counter())
                pending.update(column)  # counted in C; a Counter argument would loop in Python
                if len(pending) > FLUSH_DISTINCT:
                    self.flush(j)
        self.flagged_rows += [numbers[i] for i in sorted(flagged)]
        return distinct

    def flush(self, *columns: int) -> None:
        """Hand the counts gathered so far to ``on_values`` (all columns when none is named)."""
        for j in columns or sorted(self.pending):
            counts = self.pending.pop(j, None)
            if counts is not None and self.on_values is not None:
                counts.pop(None, None)
                self.on_values(j, counts)

    def _integrity(
        self, typed: Mapping[str, Sequence[Any]], numbers: np.ndarray
    ) -> dict[int, dict[str, Any]]:
        """Row index → what the row-stream checks found: previous rows, failed foreign keys."""
        events: dict[int, dict[str, Any]] = {}
        for name in self.unique:
            values, index = typed[name], None
            if self.names.index(name) in self.nullable:
                index = [i for i, v in enumerate(values) if v is not None]
                values = [values[i] for i in index]
            self._duplicates(name, values, len(values), numbers, index, events)
        if self.primary:
            columns = [typed[name] for name in self.primary]
            keys: Iterable[Any] = zip(*columns, strict=True)
            count, index = len(numbers), None
            if all(self.names.index(name) in self.nullable for name in self.primary):
                rows = list(keys)
                nulls = {i for i, key in enumerate(rows) if set(key) == {None}}
                for i in nulls:
                    events.setdefault(i, {})["\0primary-null"] = True
                index = [i for i in range(len(rows)) if i not in nulls]
                keys, count = [rows[i] for i in index], len(index)
            self._duplicates("\0primary", keys, count, numbers, index, events)
        for position, (_, _, target, lookup) in enumerate(self.groups):
            columns = [typed[name] for name in target]
            failed = {k for k in set(zip(*columns, strict=True)) if k not in lookup}
            failed = {k for k in failed if set(k) != {None}}
            for i, key in enumerate(zip(*columns, strict=True)) if failed else ():
                if key in failed:
                    events.setdefault(i, {})[f"\0fk{position}"] = True
        return events

    def _duplicates(
        self,
        name: str,
        values: Iterable[Any],
        count: int,
        numbers: np.ndarray,
        index: list[int] | None,
        events: dict[int, dict[str, Any]],
    ) -> None:
        """Record the rows whose key was seen before; ``index`` maps values to rows (or all)."""
        rows = numbers if index is None else numbers[index]
        previous = self.memories[name].add(_hashes(values, count), rows)
        for k in np.flatnonzero(previous).tolist():
            events.setdefault(k if index is None else index[k], {})[name] = int(previous[k])

    def _replay(self, cells: list[Any], number: int, found: Mapping[str, Any]) -> None:
        """Run one row through frictionless's Row and the row-stream checks, in their order."""
        row = Row(cells, handlers=self.handlers, row_number=number)
        for name in self.unique:
            if row[name] is not None and (match := found.get(name)):
                note = f"the same as in the row at position {match}"
                row.errors.append(errors.UniqueError.from_row(row, note=note, field_name=name))
        if self.primary:
            key = tuple(row[name] for name in self.primary)
            if set(key) == {None}:
                note = 'cells composing the primary keys are all "None"'
                row.errors.append(errors.PrimaryKeyError.from_row(row, note=note))
            elif match := found.get("\0primary"):
                note = f"the same as in the row at position {match}"
                row.errors.append(errors.PrimaryKeyError.from_row(row, note=note))
        for position, (name, source, target, _) in enumerate(self.groups):
            key = tuple(row[field] for field in target)
            if set(key) == {None} or not found.get(f"\0fk{position}"):
                continue
            note = 'for "{}": values "{}" not found in the lookup table "{}" as "{}"'.format(
                ", ".join(target), ", ".join(str(d) for d in key), name, ", ".join(source)
            )
            row.errors.append(
                errors.ForeignKeyError.from_row(
                    row,
                    note=note,
                    field_names=list(target),
                    field_values=list(key),
                    reference_name=name,
                    reference_field_names=list(source),
                )
            )
        self.errors.extend(row.errors)
