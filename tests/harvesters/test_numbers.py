from __future__ import annotations

from pathlib import Path

import pytest

from harvesters.checks import check_table
from harvesters.numbers import normalise_numbers

SCHEMA = {
    "fields": [
        {"name": "kecamatan", "type": "string"},
        {"name": "jumlah", "type": "integer"},
        {"name": "rata_rata", "type": "number"},
    ]
}


def _write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("kecamatan,jumlah,rata_rata\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_indonesian_thousands_and_decimals_are_converted(tmp_path):
    src = _write(tmp_path, ['Selatan,"1.234.567","12,5"', 'Timur,987,"3,25"', 'Barat,"12.000","7"'])
    dest = tmp_path / "out.csv"
    assert normalise_numbers(src, dest, SCHEMA) == ["jumlah", "rata_rata"]
    assert dest.read_text().splitlines()[1:] == [
        "Selatan,1234567,12.5",
        "Timur,987,3.25",
        "Barat,12000,7",
    ]
    report = check_table(dest, SCHEMA)
    assert report.valid, report.issues
    assert not check_table(src, SCHEMA).valid  # what frictionless says without the conversion


@pytest.mark.parametrize(
    "rows",
    [
        ["Selatan,1234,12.5", "Timur,987,3.25"],  # canonical already
        ['Selatan,12,"1.234"', "Timur,1,2.5"],  # 1.234 among canonical decimals: ambiguous
    ],
)
def test_canonical_or_ambiguous_columns_are_left_alone(tmp_path, rows):
    src = _write(tmp_path, rows)
    assert normalise_numbers(src, tmp_path / "out.csv", SCHEMA) == []
    assert not (tmp_path / "out.csv").exists()


def test_declared_separators_win(tmp_path):
    schema = {
        "fields": [
            {"name": "kecamatan", "type": "string"},
            {"name": "jumlah", "type": "integer", "groupChar": "."},
            {"name": "rata_rata", "type": "number"},
        ]
    }
    src = _write(tmp_path, ['Selatan,"1.234","1"'])
    assert normalise_numbers(src, tmp_path / "out.csv", schema) == []


def test_evidence_late_in_the_file_and_in_ragged_rows_is_seen(tmp_path):
    plain = [f"Selatan,{i},{i}" for i in range(9_000)]
    # a short row and a late Indonesian value, past the first chunks of rows read
    src = _write(tmp_path, [*plain, "Timur", 'Barat,"1.234.567","2,5"'])
    dest = tmp_path / "out.csv"
    assert normalise_numbers(src, dest, SCHEMA) == ["jumlah", "rata_rata"]
    assert dest.read_text().splitlines()[-2:] == ["Timur", "Barat,1234567,2.5"]


def test_only_type_errors_in_candidate_columns_call_for_conversion():
    from harvesters.numbers import may_need_converting

    assert may_need_converting(["jumlah"], SCHEMA)
    assert may_need_converting([None, "rata_rata"], SCHEMA)
    assert not may_need_converting([], SCHEMA)
    assert not may_need_converting(["kecamatan", None], SCHEMA)  # not numeric
    declared = {"fields": [{"name": "jumlah", "type": "integer", "groupChar": "."}]}
    assert not may_need_converting(["jumlah"], declared)  # its own separators


def test_every_indonesian_value_is_a_type_error_for_the_checks(tmp_path):
    """The premise of checking first: a table needing conversion always fails its first check."""
    from harvesters.numbers import may_need_converting

    for rows in (['Selatan,"1.234","1"'], ['Selatan,"1","12,5"'], ['Selatan,"1","1.234.567"']):
        src = _write(tmp_path, rows)
        report = check_table(src, SCHEMA)
        fields = [i.field for i in report.issues if i.code == "type-error"]
        assert may_need_converting(fields, SCHEMA), rows
        assert normalise_numbers(src, tmp_path / "out.csv", SCHEMA), rows
