"""CSV encodings and delimiters as agencies produce them, normalised to UTF-8 with commas."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pytest

from harvesters.encoding import detect_delimiter, detect_encoding, normalise_csv
from harvesters.errors import InvalidItem

ROWS = [
    ["kecamatan", "nama_kelurahan", "luas_km2", "keterangan"],
    ["Pontianak Selatan", "Benua Melayu Darat", "12,5", "pusat kota; pasar"],
    ["Pontianak Timur", "Tanjung Hulu", "3,1", "tepian Kapuas, “kampung lama”"],
    ["Pontianak Utara", "Siantan Hulu", "9,4", "Café € 5"],
]


def write(path: Path, rows: list[list[str]], *, delimiter: str, encoding: str) -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        csv.writer(out, delimiter=delimiter).writerows(rows)
    return path


def read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def normalise(tmp_path: Path):
    def run(src: Path) -> tuple[dict[str, object], Path]:
        dest = tmp_path / f"{src.stem}.out.csv"
        return normalise_csv(src, dest), dest

    return run


def test_utf8_with_commas_is_copied_byte_for_byte(tmp_path: Path, normalise):
    src = write(tmp_path / "a.csv", ROWS, delimiter=",", encoding="utf-8")
    info, dest = normalise(src)
    assert info == {"encoding": "utf-8", "bom": False, "delimiter": ",", "rewritten": False}
    assert dest.read_bytes() == src.read_bytes()


def test_utf8_bom_is_dropped(tmp_path: Path, normalise):
    src = write(tmp_path / "a.csv", ROWS, delimiter=",", encoding="utf-8-sig")
    info, dest = normalise(src)
    assert info["encoding"] == "utf-8-sig" and info["bom"] and info["rewritten"]
    assert not dest.read_bytes().startswith(codecs.BOM_UTF8)
    assert read(dest) == ROWS


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_with_bom_and_tabs(tmp_path: Path, normalise, encoding: str):
    src = tmp_path / "a.csv"
    text = "\r\n".join("\t".join(row) for row in ROWS) + "\r\n"
    bom = codecs.BOM_UTF16_BE if encoding == "utf-16-be" else b""
    src.write_bytes(bom + text.encode(encoding))
    info, dest = normalise(src)
    assert info["encoding"] == "utf-16" and info["bom"] and info["delimiter"] == "\t"
    assert read(dest) == ROWS


def test_utf16_without_bom(tmp_path: Path, normalise):
    src = tmp_path / "a.csv"
    src.write_bytes("a;b\r\n1;2\r\n".encode("utf-16-le"))
    info, dest = normalise(src)
    assert info["encoding"] == "utf-16-le" and not info["bom"] and info["delimiter"] == ";"
    assert read(dest) == [["a", "b"], ["1", "2"]]


def test_windows_1252_with_semicolons_and_decimal_commas(tmp_path: Path, normalise):
    src = write(tmp_path / "a.csv", ROWS, delimiter=";", encoding="cp1252")
    info, dest = normalise(src)
    assert info == {"encoding": "windows-1252", "bom": False, "delimiter": ";", "rewritten": True}
    assert read(dest) == ROWS  # "12,5" survives as one (quoted) cell
    assert '"12,5"' in dest.read_text(encoding="utf-8")


def test_windows_1252_found_late_in_the_file(tmp_path: Path, normalise):
    rows = [["id", "nama"], *([str(i), "Budi Santoso"] for i in range(80_000))]
    rows.append(["x", "Sekolah Café"])
    src = write(tmp_path / "a.csv", rows, delimiter=",", encoding="cp1252")
    assert src.stat().st_size > 1024 * 1024  # beyond the first chunk read
    info, dest = normalise(src)
    assert info["encoding"] == "windows-1252" and info["rewritten"]
    assert read(dest)[-1] == ["x", "Sekolah Café"]


def test_windows_1252_undefined_bytes_do_not_fail(tmp_path: Path, normalise):
    src = tmp_path / "a.csv"
    src.write_bytes(b"a,b\n\x81x,\x80\n")
    info, dest = normalise(src)
    assert info["encoding"] == "windows-1252"
    assert read(dest) == [["a", "b"], ["\x81x", "€"]]


def test_tab_separated(tmp_path: Path, normalise):
    src = write(tmp_path / "a.tsv", ROWS, delimiter="\t", encoding="utf-8")
    info, dest = normalise(src)
    assert info["delimiter"] == "\t" and info["rewritten"]
    assert read(dest) == ROWS


def test_quoted_newlines_and_delimiters_survive(tmp_path: Path, normalise):
    rows = [["a", "b"], ["baris\nkedua", "x;y"], ["1", "2"]]
    src = write(tmp_path / "a.csv", rows, delimiter=";", encoding="utf-8")
    info, dest = normalise(src)
    assert info["delimiter"] == ";" and read(dest) == rows


def test_single_column_defaults_to_comma(tmp_path: Path, normalise):
    src = tmp_path / "a.csv"
    src.write_text("nama\nBudi\nSiti\n", encoding="utf-8")
    info, dest = normalise(src)
    assert info["delimiter"] == "," and not info["rewritten"]


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("a,b,c\n1,2,3\n", ","),
        ("a;b\n1,5;2\n3,0;4\n", ";"),
        ("nama;nilai\nA;12,5\nB;13\n", ";"),
        ('name,desc\nA,"x; y; z"\nB,"p; q"\n', ","),
        ("a\tb\n1\t2\n", "\t"),
        ("", ","),
    ],
)
def test_detect_delimiter(sample: str, expected: str):
    assert detect_delimiter(sample) == expected


def test_detect_delimiter_ignores_a_cut_last_row():
    assert detect_delimiter("a;b;c\n1;2;3\n4;5", truncated=True) == ";"


def test_detect_encoding_reports_bom(tmp_path: Path):
    path = tmp_path / "a.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"a\n")
    assert detect_encoding(path) == ("utf-8-sig", True)


def test_broken_utf16_is_an_invalid_item(tmp_path: Path, normalise):
    src = tmp_path / "a.csv"
    src.write_bytes(codecs.BOM_UTF16_LE + "a;b\n".encode("utf-16-le") + b"\x00\xd8")
    with pytest.raises(InvalidItem, match="cannot be read as utf-16 CSV"):
        normalise(src)
