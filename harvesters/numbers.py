"""Indonesian number formats in numeric columns: ``1.234.567`` and ``12,5``.

OPD spreadsheets often write thousands with dots and decimals with a comma. Where the Table
Schema says a column is numeric, a column whose values only make sense in that convention is
rewritten to the canonical form (``1234567``, ``12.5``) before checking, so the numbers are
neither rejected nor misread. A column is converted only when the evidence is unambiguous:
``1.234`` alone in a ``number`` column could be either, and is left alone.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NUMERIC = {"integer", "number"}
_ID_GROUPED = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")  # 1.234.567 or 1.234,5
_ID_DECIMAL = re.compile(r"^[+-]?\d+,\d+$")  # 12,5
_PLAIN_INT = re.compile(r"^[+-]?\d+$")


def _candidates(schema: dict[str, Any]) -> dict[str, str]:
    """Numeric fields that do not declare their own separators."""
    return {
        f["name"]: f["type"]
        for f in schema.get("fields", [])
        if f.get("type") in NUMERIC and "decimalChar" not in f and "groupChar" not in f
    }


def may_need_converting(type_errors: Iterable[str | None], schema: dict[str, Any]) -> bool:
    """Whether :func:`normalise_numbers` could help a table whose checks found these type errors.

    Every value that makes a column "Indonesian" (``1.234``, ``1.234.567``, ``12,5``) is a type
    error for the schema's own number parsing, so a table checked without a ``type-error`` in a
    candidate column needs no conversion, and the (whole-file) conversion is only tried for the
    few tables that fail that way: check first, convert and check again only then.

    :param type_errors: the field of each ``type-error`` the checks reported.
    :param schema: the Table Schema the table was checked against.
    """
    candidates = _candidates(schema)
    return any(name in candidates for name in type_errors)


def _decide(kind: str, values: set[str]) -> bool:
    """Whether a column's distinct values say "Indonesian convention"."""
    values = {v.strip() for v in values if v.strip()}
    if not values:
        return False
    indonesian = {v for v in values if _ID_GROUPED.match(v) or _ID_DECIMAL.match(v)}
    if not indonesian:
        return False
    others = values - indonesian
    if any(not _PLAIN_INT.match(v) for v in others):
        return False  # mixed with canonical decimals like 12.5: not ours to guess
    if kind == "integer":
        return True
    # number: "1.234" alone is ambiguous; a comma, or several dot groups, is not
    return any("," in v or v.count(".") > 1 for v in indonesian)


def _canonical(value: str) -> str:
    text = value.strip()
    if _ID_GROUPED.match(text) or _ID_DECIMAL.match(text):
        return text.replace(".", "").replace(",", ".")
    return value


def normalise_numbers(src: Path, dest: Path, schema: dict[str, Any]) -> list[str]:
    """Rewrite numeric columns written the Indonesian way; return the columns converted.

    ``src`` must be UTF-8, comma-separated (see :func:`harvesters.encoding.normalise_csv`).
    Nothing is written when no column needs converting.

    :param src: the table to read.
    :param dest: where the converted copy goes.
    :param schema: the Table Schema that says which columns are numeric.
    :raises OSError: when a file cannot be read or written.
    """
    candidates = _candidates(schema)
    if not candidates:
        return []
    seen: dict[str, set[str]] = {name: set() for name in candidates}
    with src.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        index = {name: header.index(name) for name in candidates if name in header}
        for row in reader:
            for name, i in index.items():
                if i < len(row) and len(seen[name]) < 10_000:
                    seen[name].add(row[i])
    convert = [name for name, i in index.items() if _decide(candidates[name], seen[name])]
    if not convert:
        return []
    positions = [index[name] for name in convert]
    with (
        src.open(encoding="utf-8-sig", newline="") as handle,
        dest.open("w", encoding="utf-8", newline="") as out,
    ):
        reader = csv.reader(handle)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(next(reader, []))
        for row in reader:
            for i in positions:
                if i < len(row):
                    row[i] = _canonical(row[i])
            writer.writerow(row)
    return convert
