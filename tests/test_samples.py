"""The sample sources of ``datasets/`` against their schemas and the personal-data gate."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from harvesters.checks import CheckReport, check_table, load_schema

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "datasets"
REFERENCE = ROOT / "schemas" / "reference" / "wilayah_pontianak.csv"
BROKEN = "dinsos/bansos-per-kelurahan-2024"
PERSONAL = "dinsos/penerima-bansos-2024"
#: The samples that show the access levels working; every other sample is public.
ACCESS_LEVELS = {
    "dinkes/kunjungan-puskesmas-2024": "restricted",
    "disdukcapil/rekap-perekaman-ktp-el-2024": "internal",
}
SIDECAR_KEYS = {
    "title",
    "description",
    "schema",
    "topic",
    "tags",
    "license",
    "access_level",
    "frequency",
    "coverage",
    "coverage_code",
    "period",
    "unit",
    "measure",
    "concept",
    "definition",
    "classification",
    "collection_method",
    "contact",
    "resource_title",
}
FREQUENCIES = {
    "harian",
    "mingguan",
    "bulanan",
    "triwulanan",
    "semesteran",
    "tahunan",
    "tidak_tentu",
}
SIDECARS = sorted(DATASETS.glob("*/*.meta.json"))
SAMPLES = [p.relative_to(DATASETS).as_posix().removesuffix(".meta.json") for p in SIDECARS]
VALID = [s for s in SAMPLES if s not in (BROKEN, PERSONAL)]


def data_file(sample: str) -> Path:
    (path,) = [p for p in DATASETS.glob(f"{sample}.*") if p.suffix in (".csv", ".xlsx")]
    return path


def sidecar(sample: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (DATASETS / f"{sample}.meta.json").read_text(encoding="utf-8")
    )
    return loaded


def check(sample: str) -> CheckReport:
    return check_table(data_file(sample), load_schema(sidecar(sample)["schema"]))


def kelurahan_codes() -> set[str]:
    with REFERENCE.open(encoding="utf-8") as handle:
        return {row["kode"] for row in csv.DictReader(handle) if row["level"] == "kelurahan"}


def test_layout() -> None:
    organizations = json.loads((DATASETS / "organizations.json").read_text(encoding="utf-8"))
    names = {org["name"] for org in organizations}
    for org in organizations:
        assert set(org) == {"name", "title", "description", "url"}
        assert org["url"].startswith("https://") and org["url"].endswith(".pontianak.go.id")
    folders = {p.name for p in DATASETS.iterdir() if p.is_dir()}
    assert folders <= names and len(folders) == 6
    assert len(VALID) == 8 and BROKEN in SAMPLES and PERSONAL in SAMPLES
    assert set(ACCESS_LEVELS) <= set(VALID)
    assert data_file("disdikbud/daftar-sekolah-2024").suffix == ".xlsx"


@pytest.mark.parametrize("sample", SAMPLES)
def test_sidecar_is_well_formed(sample: str) -> None:
    meta = sidecar(sample)
    assert set(meta) == SIDECAR_KEYS
    assert meta["frequency"] in FREQUENCIES
    assert meta["license"] == "CC-BY-4.0"
    assert meta["access_level"] == ACCESS_LEVELS.get(sample, "public")
    assert meta["coverage_code"] == "61.71"
    assert isinstance(meta["tags"], list) and all(isinstance(t, str) for t in meta["tags"])
    assert all(isinstance(meta[k], str) and meta[k] for k in SIDECAR_KEYS - {"tags"})
    assert "pontianak.go.id" in meta["contact"]
    load_schema(meta["schema"])


@pytest.mark.parametrize("sample", VALID)
def test_valid_sample_passes_with_zero_issues(sample: str) -> None:
    report = check(sample)
    assert report.issues == [] and report.pii == []
    assert report.valid and report.row_count > 0


def test_sample_sizes() -> None:
    assert check("disdukcapil/penduduk-per-kelurahan-2024-s1").row_count == 58
    with data_file("disdukcapil/penduduk-per-kelurahan-2024-s1").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["kode_kelurahan"] for r in rows} == kelurahan_codes()
    assert check("dinkes/kasus-dbd-puskesmas-2024").row_count == 23 * 12
    assert 50 <= check("ukpbj/rup-paket-penyedia-2024").row_count <= 70
    assert 45 <= check("disdikbud/daftar-sekolah-2024").row_count <= 60
    assert 35 <= check("dinkes/fasilitas-kesehatan-2024").row_count <= 45
    with data_file("ukpbj/rup-paket-penyedia-2024").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert "nip_ppk" not in header and "username_ppk" not in header


def test_broken_sample_yields_the_three_error_kinds() -> None:
    report = check(BROKEN)
    assert not report.valid and report.pii == []
    found = {(i.code, i.row, i.field) for i in report.issues}
    assert found == {
        ("constraint-error", 5, "jumlah_penerima"),
        ("region-code", 7, "kode_kelurahan"),
        ("type-error", 9, "jumlah_penerima"),
    }
    region = next(i for i in report.issues if i.code == "region-code")
    assert "61.71.01.1001" in region.message


def test_personal_sample_is_rejected_without_quoting_values() -> None:
    report = check(PERSONAL)
    assert not report.valid
    by_column = {f.column: f for f in report.pii}
    assert by_column["nik"].detector == "nik" and by_column["nik"].count == 30
    assert by_column["no_kk"].detector == "no_kk"
    assert by_column["no_hp"].detector == "phone"
    assert {"nama", "alamat"} <= set(by_column)
    assert {"pii-nik", "pii-no-kk", "pii-phone", "pii-header"} <= set(report.error_counts)

    with data_file(PERSONAL).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    secrets = [r[k] for r in rows for k in ("nik", "no_kk", "no_hp", "nama")]
    dumped = json.dumps(report.to_dict(), ensure_ascii=False)
    for value in secrets:
        assert value not in dumped
    for issue in report.issues:
        assert not any(row["nik"] in issue.message for row in rows)
    # the same holds when no schema is given
    inferred = check_table(data_file(PERSONAL), None)
    assert {f.column for f in inferred.pii} >= {"nik", "no_kk", "no_hp"}
    assert not any(v in json.dumps(inferred.to_dict()) for v in secrets)


def test_more_than_a_thousand_errors_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    lines = [data_file(BROKEN).read_text(encoding="utf-8").splitlines()[0]]
    lines += [f"61.71.01,61.71.01.1002,X,PKH,-{i + 1},KPM,{2000 + i % 50}" for i in range(1500)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = check_table(path, load_schema("bansos-per-kelurahan"))
    assert report.error_counts["constraint-error"] == 1500
    assert report.error_count > 1000 and report.row_count == 1500


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(4096),
        b"\xff\xfe\x00garbage\x00\x81\x8d" * 50,
        b"kode,jumlah\n" + b"a,1\n" * 3000 + "Caf\xe9,\xff\n".encode("latin-1"),
    ],
    ids=["random-bytes", "binary", "wrong-encoding-late"],
)
def test_unreadable_file_gives_a_report_not_an_exception(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    for schema in (None, load_schema("bansos-per-kelurahan")):
        report = check_table(path, schema)
        assert isinstance(report, CheckReport) and not report.valid
        assert report.error_count >= 1
        json.dumps(report.to_dict())


@pytest.mark.parametrize("name", ["broken.xlsx", "empty.csv"])
def test_broken_containers_give_a_report(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 truncated" if name.endswith(".xlsx") else b"")
    report = check_table(path, load_schema("bansos-per-kelurahan"))
    assert not report.valid and report.issues[0].code in {"format-error", "source-error"}
