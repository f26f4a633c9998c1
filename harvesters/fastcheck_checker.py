"""The checker of :mod:`harvesters.fastcheck`: the row-stream checks, column by column.

A chunk's cells are read once per distinct value and column (:class:`ColumnCache`); unique,
primary and foreign keys are checked against the key index (:mod:`harvesters.fastcheck_keys`);
the raw cells are counted for the personal-data scan and searched for the ``flag`` pattern; and
only a row with something to report is replayed through frictionless's ``Row``, so the errors
are the same objects, notes and order as ``resource.validate(limit_errors=0)`` gives.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from frictionless import Error, Row, errors
from frictionless.resources import TableResource
from frictionless.table.row import create_cell_handlers

from harvesters import tables
from harvesters.fastcheck_keys import KeyMemory, hashes
from harvesters.fastcheck_read import to_columns
from harvesters.tables import Column

__all__ = ["CACHE_LIMIT", "Checker", "ColumnCache", "RowSink", "Unsupported", "ValueHook"]

#: Distinct values cached per column before the cache is emptied (keeps memory flat).
CACHE_LIMIT = 50_000
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


class Unsupported(Exception):
    """This file or schema needs the full frictionless path."""


class ColumnCache:
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


class Checker:
    """The integrity part of ``TableResource.row_stream``, column-wise, plus dirty-row replay.

    ``flush_distinct`` is how many distinct raw values of a column are counted before the
    counts go to ``on_values`` (:data:`harvesters.fastcheck.FLUSH_DISTINCT`).
    """

    def __init__(
        self,
        resource: TableResource,
        on_values: ValueHook | None,
        flag: re.Pattern[str] | None,
        rows: RowSink | None = None,
        *,
        flush_distinct: int,
    ) -> None:
        self.on_values = on_values
        self.flush_distinct = flush_distinct
        self.flag = flag
        self.rows = rows
        self.flagged_rows: list[int] = []
        self.pending: dict[int, Counter[Any]] = {}
        self.unflagged: dict[int, set[Any]] = {}  # raw cells known not to match ``flag``
        fields = resource.header.get_expected_fields()
        self.handlers = create_cell_handlers(fields)
        if len(self.handlers) != len(fields):
            raise Unsupported("duplicate field names")
        self.names = list(self.handlers)
        self.caches = [ColumnCache(h.reader) for h in self.handlers.values()]
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
            raise Unsupported("keys over unhashable values")
        self.keyed = {self.names.index(name) for name in keyed}
        self.memories = {name: KeyMemory() for name in [*self.unique, "\0primary"]}
        self.nullable: set[int] = set()  # keyed columns with a null in the current chunk

    def add_chunk(self, numbers: Sequence[int], rows: list[list[Any]]) -> None:
        self.row_count += len(rows)
        width = len(self.names)
        lengths = set(map(len, rows))
        dirty = set() if lengths == {width} else {i for i, c in enumerate(rows) if len(c) != width}
        columns = to_columns(rows, width)
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
                    raise Unsupported("NaN in a key column")
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
        for j, column in enumerate(columns if widest == len(columns) else to_columns(rows, widest)):
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
                if len(pending) > self.flush_distinct:
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
        previous = self.memories[name].add(hashes(values, count), rows)
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
