"""The rows file of a version: typed, indexed for queries, read-only, whole or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from harvesters.tables import Column
from portal.datastore import RowsWriter, build_rows_file

SCHEMA = {
    "fields": [
        {"name": "kode", "type": "string"},
        {"name": "jumlah", "type": "integer"},
        {"name": "satuan", "type": "string"},
    ]
}


def _indexed_columns(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")]
        return {conn.execute(f"PRAGMA index_info({n})").fetchone()[2] for n in names}
    finally:
        conn.close()


def test_rows_are_typed_indexed_and_read_only(tmp_path):
    source = tmp_path / "t.csv"
    source.write_text(
        "kode,jumlah,satuan\n"
        + "".join(f"61.71.0{i % 6 + 1},{i},Jiwa\n" for i in range(50)),
        encoding="utf-8",
    )
    target = tmp_path / "rows.sqlite"
    assert build_rows_file(source, SCHEMA, target) == 50
    conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT sum(jumlah), count(DISTINCT kode) FROM rows").fetchone() == (
            sum(range(50)),
            6,
        )
        assert conn.execute("SELECT typeof(jumlah) FROM rows LIMIT 1").fetchone() == ("integer",)
    finally:
        conn.close()
    # every column that can narrow or order a query is indexed; the constant one is not
    assert _indexed_columns(target) == {"kode", "jumlah"}
    assert oct(target.stat().st_mode & 0o777) == "0o444"


def test_an_unfinished_file_never_appears(tmp_path):
    target = tmp_path / "rows.sqlite"
    writer = RowsWriter(target)
    writer.start([Column("kode", "string")])
    writer.add([("a",), ("b",)])
    writer.discard()  # e.g. the checks failed half-way
    assert list(tmp_path.iterdir()) == []
