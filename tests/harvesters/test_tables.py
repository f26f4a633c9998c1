"""harvesters.tables: rows typed from the schema, streamed, for CSV and XLSX."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from harvesters.checks import load_schema
from harvesters.tables import Column, TableReadError, read_typed_rows

SCHEMA: dict[str, Any] = {
    "fields": [
        {"name": "kode", "type": "string"},
        {"name": "jumlah", "type": "integer", "constraints": {"minimum": 0}},
        {"name": "harga", "type": "number"},
        {"name": "aktif", "type": "boolean"},
        {"name": "tanggal", "type": "date"},
        {"name": "waktu", "type": "datetime"},
        {"name": "tahun", "type": "year"},
    ],
    "primaryKey": ["kode"],
    "foreignKeys": [{"fields": ["kode"], "reference": {"resource": "wilayah", "fields": ["kode"]}}],
}
HEADER = "kode,jumlah,harga,aktif,tanggal,waktu,tahun\n"


def test_csv_rows_are_typed_from_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER
        + "61.71,12,1500.50,true,2024-06-01,2024-06-01T08:30:00,2024\n"
        + "007,-3,abc,maybe,2024-13-01,,20x\n",
        encoding="utf-8",
    )
    columns, rows = read_typed_rows(path, SCHEMA)
    assert columns == [
        Column("kode", "string"),
        Column("jumlah", "integer"),
        Column("harga", "number"),
        Column("aktif", "boolean"),
        Column("tanggal", "date"),
        Column("waktu", "datetime"),
        Column("tahun", "year"),
    ]
    first, second = list(rows)
    assert first == ("61.71", 12, 1500.5, True, "2024-06-01", "2024-06-01T08:30:00", 2024)
    assert [type(v) for v in first] == [str, int, float, bool, str, str, int]
    # constraints are not re-checked; failed casts become None
    assert second == ("007", -3, None, None, None, None, None)


def test_xlsx_rows_are_typed(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER.strip().split(","))
    sheet.append(["61.71", 12, 1500.5, True, dt.date(2024, 6, 1), dt.datetime(2024, 6, 1, 8), 2024])
    sheet.append(["61.72", "x", 2, False, "2024-06-02", None, 2025])
    book.save(tmp_path / "t.xlsx")
    _, rows = read_typed_rows(tmp_path / "t.xlsx", SCHEMA)
    assert list(rows) == [
        ("61.71", 12, 1500.5, True, "2024-06-01", "2024-06-01T08:00:00", 2024),
        ("61.72", None, 2.0, False, "2024-06-02", None, 2025),
    ]


def test_rows_are_streamed_lazily(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(HEADER)
        for i in range(50_000):
            handle.write(f"k{i},{i},1.5,false,2024-01-01,2024-01-01T00:00:00,2024\n")
    _, rows = read_typed_rows(path, SCHEMA)
    assert isinstance(rows, Iterator) and not isinstance(rows, list)
    head = list(itertools.islice(rows, 3))
    assert [row[1] for row in head] == [0, 1, 2]
    rows.close()  # type: ignore[attr-defined]  # a generator: closing releases the file


def test_file_without_extension(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["kode", "jumlah"])
    sheet.append(["a", 1])
    book.save(tmp_path / "t.xlsx")
    (tmp_path / "t.xlsx").rename(tmp_path / "blob")
    schema = {"fields": SCHEMA["fields"][:2]}
    assert list(read_typed_rows(tmp_path / "blob", schema)[1]) == [("a", 1)]


def test_sample_dataset_reads(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    columns, rows = read_typed_rows(
        root / "datasets/disdikbud/daftar-sekolah-2024.xlsx", load_schema("daftar-sekolah")
    )
    data = list(rows)
    lintang = [c.name for c in columns].index("lintang")
    assert len(data) > 40 and all(isinstance(row[lintang], float) for row in data)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_typed_rows(tmp_path / "missing.csv", SCHEMA)
    with pytest.raises(ValueError):
        read_typed_rows(tmp_path / "missing.csv", {"fields": []})
    with pytest.raises(ValueError):
        read_typed_rows(tmp_path / "missing.csv", {"fields": [{"name": "a", "type": "nope"}]})
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a workbook")
    _, rows = read_typed_rows(bad, SCHEMA)
    with pytest.raises(TableReadError):
        list(rows)
