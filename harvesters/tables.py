"""Reading a checked table for the data plane: rows typed from the Table Schema, streamed.

The file is read with the same frictionless machinery as :mod:`harvesters.checks` (same encoding
and dialect detection, same casting rules), one row at a time. Only casting is kept: unique,
primary and foreign keys are dropped, since they would keep every key in memory and the version
has already passed the checks.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from frictionless import FrictionlessException, Resource, Schema

__all__ = ["Column", "TableReadError", "read_typed_rows", "table_format"]

#: File extensions read as tables, by frictionless format name.
TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".xlsx": "xlsx"}

_ZIP_MAGIC = b"PK\x03\x04"


class TableReadError(Exception):
    """The file could not be read as a table (raised while iterating the rows)."""


@dataclass(frozen=True)
class Column:
    """A column of the table: its schema name and Table Schema type."""

    name: str
    type: str


def table_format(path: Path) -> str | None:
    """Format of a table file: from its extension; without one, ``xlsx`` for a ZIP container,
    else ``csv``. ``None`` for other extensions (frictionless then decides, e.g. not a table).

    Staged or stored copies may lose their extension; the content still tells XLSX from CSV.

    :param path: the table file.
    :raises OSError: when the file cannot be opened to sniff its first bytes.
    """
    suffix = path.suffix.lower()
    if suffix:
        return TABLE_FORMATS.get(suffix)
    with path.open("rb") as handle:
        return "xlsx" if handle.read(4) == _ZIP_MAGIC else "csv"


def open_resource(path: Path, schema: Schema | None = None, *, name: str = "tabel") -> Resource:
    """A frictionless resource for ``path`` with the safe relative-path form frictionless needs.

    :param path: the table file.
    :param schema: the schema to cast with; ``None`` lets frictionless infer one.
    :param name: the resource name (foreign keys refer to other resources by name).
    :raises OSError: when the file cannot be opened to sniff its format.
    """
    options: dict[str, Any] = {"basepath": str(path.parent)}
    fmt = table_format(path)
    if fmt is not None:
        options["format"] = fmt
    if schema is not None:
        options["schema"] = schema
    return Resource(path.name, name=name, **options)


def _iso(value: Any) -> str:
    return str(value.isoformat())


def _number(value: Any) -> float:
    return float(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _yearmonth(value: Any) -> str:
    year, month = value
    return f"{int(year):04d}-{int(month):02d}"


def _geopoint(value: Any) -> str:
    lon, lat = value
    return f"{lon},{lat}"


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "integer": int,
    "year": int,
    "number": _number,
    "boolean": bool,
    "date": _iso,
    "datetime": _iso,
    "time": _iso,
    "yearmonth": _yearmonth,
    "geopoint": _geopoint,
    "object": _json,
    "array": _json,
    "list": _json,
    "geojson": _json,
}


def _to_plain(value: Any, convert: Callable[[Any], Any]) -> Any:
    if value is None:
        return None
    try:
        return convert(value)
    except (TypeError, ValueError, ArithmeticError):
        return None


def _to_str(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _casting_schema(schema: dict[str, Any]) -> dict[str, Any]:
    fields = [
        {k: v for k, v in field.items() if k != "constraints"}
        for field in schema.get("fields") or []
    ]
    kept = {k: v for k, v in schema.items() if k not in ("foreignKeys", "primaryKey", "fields")}
    return {**kept, "fields": fields}


def read_typed_rows(
    path: Path, schema: dict[str, Any]
) -> tuple[list[Column], Iterator[tuple[Any, ...]]]:
    """Columns and a lazy iterator of rows cast by the schema, for CSV and XLSX.

    Values are ``int``, ``float``, ``bool`` or ``str``; dates, datetimes and times are ISO
    strings; a cell that fails to cast (or is missing) is ``None``. The file is opened when
    iteration starts and closed when it ends or the iterator is closed.

    :param path: the table file (a version that passed :func:`harvesters.checks.check_table`).
    :param schema: the Table Schema descriptor the version was checked against.
    :raises ValueError: when the schema is not a valid Table Schema or has no fields.
    :raises FileNotFoundError: when ``path`` does not exist.
    :raises TableReadError: while iterating, when the file cannot be parsed.
    """
    try:
        table_schema = Schema.from_descriptor(_casting_schema(schema))
    except FrictionlessException as exc:
        raise ValueError(f"not a valid Table Schema: {exc}") from exc
    if not table_schema.fields:
        raise ValueError("the schema has no fields")
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    columns = [Column(str(f.name), str(f.type)) for f in table_schema.fields]
    converters = [_CONVERTERS.get(c.type, _to_str) for c in columns]
    return columns, _rows(path, table_schema, converters)


def _rows(
    path: Path, schema: Schema, converters: list[Callable[[Any], Any]]
) -> Iterator[tuple[Any, ...]]:
    resource = open_resource(path, schema)
    try:
        with resource:
            for row in resource.row_stream:  # type: ignore[attr-defined]
                values = row.to_list()
                yield tuple(
                    _to_plain(value, convert)
                    for value, convert in zip(values, converters, strict=False)
                )
    except FrictionlessException as exc:
        raise TableReadError(f"{path.name}: {exc}") from exc
