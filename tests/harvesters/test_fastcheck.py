"""harvesters.fastcheck: the same findings as frictionless, which runs here as the oracle."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pytest
from frictionless import Package, Schema

from harvesters import fastcheck, reference
from harvesters.checks import SCHEMAS_DIR, check_table, load_schema
from harvesters.fastcheck import FastResult, fast_check, typed_chunks
from harvesters.tables import open_resource, read_typed_rows

ROOT = Path(__file__).resolve().parents[2]
PENDUDUK = load_schema("penduduk-per-kelurahan")
HEADER = [field["name"] for field in PENDUDUK["fields"]]
GOOD = [
    "61.71.01",
    "Pontianak Selatan",
    "61.71.01.1002",
    "Benuamelayu Laut",
    "Laki-laki",
    "7938",
    "Jiwa",
    "1",
    "2024",
]
#: A schema with every constraint and type the city schemas use, plus unique and boolean.
MIXED: dict[str, Any] = {
    "fields": [
        {
            "name": "kode",
            "type": "string",
            "constraints": {"required": True, "unique": True, "minLength": 3, "maxLength": 6},
        },
        {"name": "jumlah", "type": "integer", "constraints": {"minimum": 0, "maximum": 500}},
        {"name": "harga", "type": "number", "constraints": {"minimum": 0.5}},
        {"name": "aktif", "type": "boolean"},
        {"name": "tanggal", "type": "date", "constraints": {"minimum": "2020-01-01"}},
        {"name": "tahun", "type": "year", "constraints": {"enum": [2023, 2024]}},
        {"name": "kategori", "type": "string", "constraints": {"pattern": "[A-C]-\\d"}},
    ],
    "missingValues": ["", "-"],
}
MIXED_POOLS = {
    "kode": ["abc", "abcd", "ab", "abcdefg", "", "x1y2", "-", "zzz"],
    "jumlah": ["1", "500", "501", "-1", "1.5", "x", "", " 7 ", "+3", "0"],
    "harga": ["1.5", "0.4", "abc", "", "NaN", "1e3", "2,5", "-"],
    "aktif": ["true", "False", "1", "yes", "", "TRUE"],
    "tanggal": ["2024-06-01", "2019-12-31", "2024-13-01", "01/06/2024", ""],
    "tahun": ["2024", "2023", "2022", "24", "20x4", ""],
    "kategori": ["A-1", "C-9", "D-1", "A-12", "", "a-1"],
}


def write_rows(path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER if header is None else header)
        writer.writerows(rows)
    return path


def references(schema: dict[str, Any]) -> list[Any]:
    return [
        reference.build_resource(name, reference.DEFAULT_REFERENCE_DIR)
        for name in sorted(reference.referenced_resources(schema))
    ]


def oracle(path: Path, schema: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Row count and errors of frictionless itself, as check_table runs it."""
    resource = open_resource(path, Schema.from_descriptor(schema), name="tabel")
    refs = references(schema)
    if refs:
        Package(resources=[resource, *refs])
    rows = 0

    def count(_: Any) -> None:
        nonlocal rows
        rows += 1

    report = resource.validate(limit_errors=0, on_row=count)
    found = [e.to_descriptor() for e in report.errors]
    found += [e.to_descriptor() for task in report.tasks for e in task.errors]
    return rows, found


def fast(path: Path, schema: dict[str, Any], chunk_rows: int = 7) -> FastResult:
    result = fast_check(path, schema, references=references(schema), chunk_rows=chunk_rows)
    assert result is not None, "the fast path fell back"
    return result


def findings(errors: list[dict[str, Any]]) -> set[tuple[Any, Any, str]]:
    return {(e.get("rowNumber"), e.get("fieldName"), e["type"]) for e in errors}


def assert_same(
    path: Path, schema: dict[str, Any], chunk_sizes: tuple[int, ...] = (7,)
) -> list[dict[str, Any]]:
    """Same row count, same (row, field, type) set, and in fact the same errors in order."""
    rows, expected = oracle(path, schema)
    for chunk_rows in chunk_sizes:
        result = fast(path, schema, chunk_rows)
        got = [error.to_descriptor() for error in result.errors]
        assert result.row_count == rows
        assert findings(got) == findings(expected)
        assert got == expected
    return expected


def types_of(errors: list[dict[str, Any]]) -> set[str]:
    return {e["type"] for e in errors}


# --- equivalence ----------------------------------------------------------------------------


def test_a_valid_file_has_no_findings(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "ok.csv", [GOOD, [*GOOD[:4], "Perempuan", *GOOD[5:]]])
    assert assert_same(path, PENDUDUK) == []


def test_every_kind_of_row_error_in_the_penduduk_schema(tmp_path: Path) -> None:
    rows = [
        GOOD,
        [*GOOD[:5], "banyak", *GOOD[6:]],  # text in a number column
        [*GOOD[:4], "Perempuan", "-27", *GOOD[6:]],  # negative count
        [*GOOD[:4], "L", *GOOD[5:]],  # bad enum
        ["61.71.9", *GOOD[1:]],  # bad pattern, and not a region code
        [GOOD[0], "", *GOOD[2:7], "2", "2024"],  # missing required
        GOOD,  # duplicate primary key
        [*GOOD[:7], "1", "2025", "extra"],  # extra cell
        [*GOOD[:4], "Laki-laki", "5"],  # missing cells
        [""] * 9,  # blank row
        [],  # empty line
        [GOOD[0], GOOD[1], "61.71.01.1999", *GOOD[3:7], "2", "2023"],  # unknown kelurahan
        ["61.71.02", GOOD[1], GOOD[2], *GOOD[3:7], "1", "2022"],  # kelurahan elsewhere
        [*GOOD[:7], "3", "24"],  # bad enum semester, year not a year
        [*GOOD[:7], "1", "1999"],  # year below minimum
        GOOD,  # duplicate again: points at the previous duplicate
    ]
    errors = assert_same(write_rows(tmp_path / "bad.csv", rows), PENDUDUK)
    assert types_of(errors) >= {
        "type-error",
        "constraint-error",
        "primary-key",
        "foreign-key",
        "extra-cell",
        "missing-cell",
        "blank-row",
    }


def test_header_errors(tmp_path: Path) -> None:
    labels = ["kode_kecamatan", "nama", "kode_kelurahan", "kode_kelurahan", *HEADER[4:], "x"]
    errors = assert_same(write_rows(tmp_path / "h.csv", [[*GOOD, "1"]], labels), PENDUDUK)
    assert {"incorrect-label", "duplicate-label", "extra-label"} <= types_of(errors)
    errors = assert_same(write_rows(tmp_path / "m.csv", [GOOD[:7]], HEADER[:7]), PENDUDUK)
    assert "missing-label" in types_of(errors)


def test_unique_boolean_date_length_and_missing_values(tmp_path: Path) -> None:
    rows = [
        ["abc", "1", "1.5", "true", "2024-06-01", "2024", "A-1"],
        ["abc", "501", "0.4", "yes", "2019-12-31", "2022", "D-1"],
        ["ab", "-1", "abc", "", "2024-13-01", "24", "A-12"],
        ["abcdefg", "x", "", "1", "", "", ""],
        ["-", "-", "-", "-", "-", "-", "-"],
        ["", "", "", "", "", "", ""],
        ["abcd", " 7 ", "1e3", "False", "2024-06-01", "2023", "C-9"],
        ["abc", "+3", "2,5", "TRUE", "01/06/2024", "20x4", "a-1"],
    ]
    header = [f["name"] for f in MIXED["fields"]]
    errors = assert_same(write_rows(tmp_path / "m.csv", rows, header), MIXED)
    assert {"unique-error", "type-error", "constraint-error", "blank-row"} <= types_of(errors)


@pytest.mark.parametrize("seed", range(4))
def test_random_tables_across_chunks(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    header = [f["name"] for f in MIXED["fields"]]
    rows = []
    for _ in range(300):
        row = [rnd.choice(MIXED_POOLS[name]) for name in header]
        if rnd.random() < 0.05:
            row = row[: rnd.randrange(len(row))]
        elif rnd.random() < 0.05:
            row.append("tambahan")
        rows.append(row)
    assert_same(write_rows(tmp_path / "r.csv", rows, header), MIXED, (1, 13, 10_000))


@pytest.mark.parametrize("seed", range(4))
def test_random_penduduk_tables_across_chunks(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    codes = reference.load_rows("wilayah-kelurahan", reference.DEFAULT_REFERENCE_DIR)
    rows = []
    for _ in range(400):
        kel = rnd.choice(codes)
        row = [
            rnd.choice([kel["induk"], kel["induk"], "61.71.07", ""]),
            "Kec",
            rnd.choice([kel["kode"], kel["kode"], "61.71.01.1999"]),
            kel["nama"],
            rnd.choice(["Laki-laki", "Perempuan", "P"]),
            rnd.choice(["0", "12", "-3", "dua", ""]),
            rnd.choice(["Jiwa", "jiwa"]),
            rnd.choice(["1", "2", "3"]),
            rnd.choice(["2023", "2024", "1999", "x"]),
        ]
        rows.append(row)
    assert_same(write_rows(tmp_path / "p.csv", rows), PENDUDUK, (17, 1000))


def test_key_memory_matches_a_dict_across_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sorted-array memory answers what frictionless's dict of last rows answers."""
    monkeypatch.setattr(fastcheck._KeyMemory, "MERGE_AT", 5)
    rnd = random.Random(3)
    memory, last_seen = fastcheck._KeyMemory(), {}
    row = 2
    for _ in range(40):
        keys = [rnd.randrange(30) - 15 for _ in range(rnd.randrange(1, 12))]
        rows = list(range(row, row + len(keys)))
        row += len(keys)
        got = memory.add(np.array(keys, dtype=np.int64), np.array(rows, dtype=np.int64))
        expected = []
        for key, number in zip(keys, rows, strict=True):
            expected.append(last_seen.get(key, 0))
            last_seen[key] = number
        assert got.tolist() == expected


@pytest.mark.parametrize("merge_at", [3, 50])
def test_duplicates_across_many_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, merge_at: int
) -> None:
    monkeypatch.setattr(fastcheck._KeyMemory, "MERGE_AT", merge_at)
    rnd = random.Random(merge_at)
    header = [f["name"] for f in MIXED["fields"]]
    rows = [[rnd.choice(MIXED_POOLS[name]) for name in header] for _ in range(300)]
    assert_same(write_rows(tmp_path / "d.csv", rows, header), MIXED, (4, 9))


def test_the_broken_sample_in_datasets() -> None:
    """datasets/dinsos/bansos-per-kelurahan-2024 is the sample meant to fail its schema."""
    meta = json.loads((ROOT / "datasets/dinsos/bansos-per-kelurahan-2024.meta.json").read_text())
    assert "rusak" in meta["description"]
    schema = load_schema(meta["schema"])
    errors = assert_same(ROOT / "datasets/dinsos/bansos-per-kelurahan-2024.csv", schema)
    assert {"type-error", "constraint-error", "foreign-key"} <= types_of(errors)


def test_every_sample_csv_in_datasets() -> None:
    for meta_path in sorted((ROOT / "datasets").glob("*/*.meta.json")):
        table = meta_path.with_name(meta_path.name.replace(".meta.json", ".csv"))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if table.is_file() and meta.get("schema"):
            assert_same(table, load_schema(meta["schema"], SCHEMAS_DIR))


@pytest.mark.parametrize("flush_at", [2, fastcheck.FLUSH_DISTINCT])
def test_raw_cell_counts_and_flagged_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush_at: int
) -> None:
    """What check_table's row callback sees (PII scan, binary scan), column by column."""
    monkeypatch.setattr(fastcheck, "FLUSH_DISTINCT", flush_at)
    rows = [
        GOOD,
        [*GOOD[:3], "Benua\x00melayu", *GOOD[4:]],
        [*GOOD, "tambahan\x07"],
        GOOD[:4],
        [*GOOD[:5], "\ufffd", *GOOD[6:]],
    ] * 3
    path = write_rows(tmp_path / "raw.csv", rows)
    control = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd\ufeff]")
    expected: dict[int, Counter[str]] = {}
    expected_flagged: list[int] = []

    def on_row(row: Any) -> None:
        for index, cell in enumerate(row.cells):
            expected.setdefault(index, Counter())[cell] += 1
        if control.search("".join(row.cells)):
            expected_flagged.append(row.row_number)

    resource = open_resource(path, Schema.from_descriptor(PENDUDUK), name="tabel")
    Package(resources=[resource, *references(PENDUDUK)])
    resource.validate(limit_errors=0, on_row=on_row)
    got: dict[int, Counter[str]] = {}

    def on_values(index: int, counts: Mapping[str, int]) -> None:
        got.setdefault(index, Counter()).update(counts)

    result = fast_check(
        path,
        PENDUDUK,
        references=references(PENDUDUK),
        on_values=on_values,
        flag=control,
        chunk_rows=4,
    )
    assert result is not None
    assert got == expected
    assert result.flagged_rows == expected_flagged == [3, 4, 6, 8, 9, 11, 13, 14, 16]


def sample_tables() -> list[tuple[Path, str]]:
    found = []
    for meta_path in sorted((ROOT / "datasets").glob("*/*.meta.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        for table in sorted(meta_path.parent.glob(meta_path.name.replace(".meta.json", ".*"))):
            if table.suffix in (".csv", ".xlsx") and meta.get("schema"):
                found.append((table, str(meta["schema"])))
    return found


def test_check_table_reports_the_same_whichever_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check_table's report (issues, messages, PII findings) does not depend on the path taken."""
    personal = [
        [
            "61.71.01",
            "6171011708859901",
            "61.71.01.1002",
            "Ani",
            "Perempuan",
            "1",
            "Jiwa",
            "1",
            "2024",
        ],
        ["61.71.01", "081234567890", "61.71.01.1003", "Budi\x00", "L", "-2", "Jiwa", "1", "x"],
    ] * 5
    generated = write_rows(tmp_path / "personal.csv", personal)
    tables = [*sample_tables(), (generated, "penduduk-per-kelurahan")]
    used: list[bool] = []
    real = fastcheck.fast_check

    def spy(*args: Any, **kwargs: Any) -> FastResult | None:
        result = real(*args, **kwargs)
        used.append(result is not None)
        return result

    monkeypatch.setattr(fastcheck, "fast_check", spy)
    reports = [check_table(path, load_schema(schema)).to_dict() for path, schema in tables]
    if used:  # check_table takes the fast path: it must have been taken for every CSV
        assert used == [path.suffix == ".csv" for path, _ in tables]
    monkeypatch.setattr(fastcheck, "fast_check", lambda *args, **kwargs: None)
    assert reports == [check_table(path, load_schema(schema)).to_dict() for path, schema in tables]
    assert reports[-1]["pii"] and reports[-1]["error_count"]


# --- dialects and encodings that frictionless detects ---------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bom.csv", b"\xef\xbb\xbf"),
        ("crlf.csv", None),
        ("semicolon.csv", None),
        ("latin1.csv", None),
        ("quoted.csv", None),
    ],
)
def test_dialects_and_encodings(tmp_path: Path, name: str, data: bytes | None) -> None:
    lines = [
        HEADER,
        GOOD,
        [*GOOD[:3], "Benuamelayu\nLaut, lama", "Perempuan", *GOOD[5:]],
        [*GOOD[:4], "Perempuan", "x", *GOOD[6:]],
    ]
    buffer = io.StringIO()
    delimiter = ";" if name == "semicolon.csv" else ","
    terminator = "\r\n" if name == "crlf.csv" else "\n"
    quoting = csv.QUOTE_ALL if name == "quoted.csv" else csv.QUOTE_MINIMAL
    csv.writer(buffer, delimiter=delimiter, lineterminator=terminator, quoting=quoting).writerows(
        lines
    )
    text = buffer.getvalue()
    if name == "latin1.csv":
        text = text.replace("Benuamelayu Laut", "Benuamélayu Laut")
    raw = (data or b"") + text.encode("latin-1" if name == "latin1.csv" else "utf-8")
    path = tmp_path / name
    path.write_bytes(raw)
    assert_same(path, PENDUDUK)


# --- what falls back --------------------------------------------------------------------------


def test_xlsx_falls_back(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append(GOOD)
    book.save(tmp_path / "t.xlsx")
    assert fast_check(tmp_path / "t.xlsx", PENDUDUK, references=references(PENDUDUK)) is None


def test_compressed_empty_and_undecodable_files_fall_back(tmp_path: Path) -> None:
    text = ",".join(HEADER) + "\n" + ",".join(GOOD) + "\n"
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    broken = tmp_path / "broken.csv"
    # Valid UTF-8 in frictionless's sample, an invalid byte far past it.
    broken.write_bytes((text + ",".join(GOOD) + "\n").encode() * 2000 + b"\xff\xfe,\n")
    refs = references(PENDUDUK)
    assert fast_check(gz, PENDUDUK, references=refs) is None
    assert fast_check(empty, PENDUDUK, references=refs) is None
    assert fast_check(broken, PENDUDUK, references=refs) is None


def test_keys_over_nan_fall_back(tmp_path: Path) -> None:
    schema = {"fields": [{"name": "x", "type": "number", "constraints": {"unique": True}}]}
    path = tmp_path / "nan.csv"
    path.write_text("x\nNaN\nNaN\n1\n", encoding="utf-8")
    assert fast_check(path, schema) is None


def test_unknown_reference_resource_falls_back(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "ok.csv", [GOOD])
    assert fast_check(path, PENDUDUK) is None  # the wilayah resources were not given


# --- typed rows for the data plane --------------------------------------------------------------


def test_typed_chunks_equal_read_typed_rows(tmp_path: Path) -> None:
    rnd = random.Random(7)
    header = [f["name"] for f in MIXED["fields"]]
    rows = [[rnd.choice(MIXED_POOLS[name]) for name in header] for _ in range(200)]
    rows[5] = rows[5][:3]
    rows[9].append("tambahan")
    path = write_rows(tmp_path / "t.csv", rows, header)
    fast_rows = typed_chunks(path, MIXED, chunk_rows=11)
    assert fast_rows is not None
    columns, chunks = fast_rows
    expected_columns, expected = read_typed_rows(path, MIXED)
    assert columns == expected_columns
    # repr, because the "NaN" cells give float nan, which is not equal to itself
    assert repr([tuple(row) for chunk in chunks for row in chunk]) == repr(list(expected))


class Collect:
    def __init__(self) -> None:
        self.columns: list[Any] = []
        self.rows: list[tuple[Any, ...]] = []
        self.complete = False

    def start(self, columns: list[Any]) -> None:
        self.columns = columns

    def add(self, rows: list[list[Any]]) -> None:
        self.rows += [tuple(row) for row in rows]

    def done(self) -> None:
        self.complete = True


def test_rows_in_the_same_pass_equal_read_typed_rows(tmp_path: Path) -> None:
    rnd = random.Random(11)
    header = [f["name"] for f in MIXED["fields"]]
    rows = [[rnd.choice(MIXED_POOLS[name]) for name in header] for _ in range(200)]
    rows[5] = rows[5][:3]
    rows[9].append("tambahan")
    path = write_rows(tmp_path / "t.csv", rows, header)
    sink = Collect()
    assert fast_check(path, MIXED, rows=sink, chunk_rows=7) is not None
    expected_columns, expected = read_typed_rows(path, MIXED)
    assert sink.complete
    assert sink.columns == expected_columns
    assert repr(sink.rows) == repr(list(expected))
    penduduk = write_rows(tmp_path / "p.csv", [GOOD, [*GOOD[:4], "Perempuan", *GOOD[5:]]])
    sink = Collect()
    assert fast_check(penduduk, PENDUDUK, references=references(PENDUDUK), rows=sink)
    assert sink.complete and sink.rows == list(read_typed_rows(penduduk, PENDUDUK)[1])


def test_rows_are_not_done_when_the_file_falls_back(tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    text = ",".join(HEADER) + "\n" + ",".join(GOOD) + "\n"
    broken.write_bytes(text.encode() * 2000 + b"\xff\xfe,\n")
    sink = Collect()
    assert fast_check(broken, PENDUDUK, references=references(PENDUDUK), rows=sink) is None
    assert sink.rows and not sink.complete


def test_typed_chunks_fall_back_for_xlsx(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.save(tmp_path / "t.xlsx")
    assert typed_chunks(tmp_path / "t.xlsx", PENDUDUK) is None
