"""harvesters.checks: schema loading, validation, region codes and the personal-data gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from harvesters import pii
from harvesters.checks import (
    SCHEMAS_DIR,
    CheckIssue,
    CheckReport,
    PiiFinding,
    Severity,
    check_table,
    load_schema,
)

REGION_FIELDS = {"kode_kelurahan": "wilayah-kelurahan", "kode_kecamatan": "wilayah-kecamatan"}
BANSOS_HEADER = (
    "kode_kecamatan,kode_kelurahan,nama_kelurahan,jenis_bantuan,jumlah_penerima,satuan,tahun\n"
)
# Synthetic, structurally valid NIKs (serials 99xx are never issued in practice).
NIK_MAN = "6171011708859901"  # Pontianak Selatan, born 17-08-1985
NIK_WOMAN = "6171035708859902"  # day 17 + 40


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def codes(report: CheckReport) -> set[str]:
    return {issue.code for issue in report.issues}


# --- schemas ------------------------------------------------------------------------------------


def test_every_schema_loads_and_documents_its_fields() -> None:
    paths = sorted(SCHEMAS_DIR.glob("*.schema.json"))
    assert len(paths) >= 7
    for path in paths:
        schema = load_schema(path.name.removesuffix(".schema.json"))
        assert schema["name"] == path.name.removesuffix(".schema.json")
        for field in schema["fields"]:
            assert field["title"] and field["description"], (path.name, field["name"])


def test_every_region_code_field_is_tied_to_the_reference_list() -> None:
    for path in SCHEMAS_DIR.glob("*.schema.json"):
        schema = load_schema(path)
        tied = {
            (fk["fields"][0], fk["reference"]["resource"]) for fk in schema.get("foreignKeys", [])
        }
        for field in schema["fields"]:
            if field["name"] in REGION_FIELDS:
                assert (field["name"], REGION_FIELDS[field["name"]]) in tied, path.name


def test_load_schema_accepts_a_path_and_a_schemas_dir(tmp_path: Path) -> None:
    descriptor = {"fields": [{"name": "a", "type": "integer"}]}
    path = write(tmp_path, "x.schema.json", json.dumps(descriptor))
    assert load_schema(path) == descriptor
    assert load_schema(str(path)) == descriptor
    assert load_schema("x", tmp_path) == descriptor


@pytest.mark.parametrize("name", ["../etc/passwd", "Bad Name", ""])
def test_load_schema_rejects_malformed_names(name: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError)):
        load_schema(name)


def test_load_schema_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_schema("does-not-exist")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_schema(write(tmp_path, "a.json", "{nope"))
    with pytest.raises(ValueError, match="Table Schema"):
        load_schema(write(tmp_path, "b.json", '{"fields": [{"name": "a", "type": "nope"}]}'))


# --- validation ---------------------------------------------------------------------------------


def test_valid_table_has_no_issues(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.csv", BANSOS_HEADER + "61.71.01,61.71.01.1002,X,PKH,10,KPM,2024\n")
    report = check_table(path, load_schema("bansos-per-kelurahan"))
    assert report.valid and report.issues == [] and report.pii == []
    assert report.row_count == 1
    assert report.schema["name"] == "bansos-per-kelurahan"


def test_non_existent_region_code_is_an_error(tmp_path: Path) -> None:
    rows = (
        "61.71.01,61.71.01.1001,X,PKH,10,KPM,2024\n"  # matches the pattern, does not exist
        "61.71.01,61.71.02.1001,X,PKH,10,KPM,2024\n"  # exists, but in Pontianak Timur
    )
    report = check_table(
        write(tmp_path, "r.csv", BANSOS_HEADER + rows), load_schema("bansos-per-kelurahan")
    )
    region = [i for i in report.issues if i.code == "region-code"]
    assert [(i.row, i.field) for i in region] == [(2, "kode_kelurahan"), (3, "kode_kelurahan")]
    assert "61.71.01.1001" in region[0].message
    assert not report.valid


def test_region_code_uses_the_given_reference_dir(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "wilayah_pontianak.csv").write_text(
        "kode,nama,level,induk\n61.71.01,A,kecamatan,61.71\n61.71.01.1001,B,kelurahan,61.71.01\n",
        encoding="utf-8",
    )
    path = write(tmp_path, "r.csv", BANSOS_HEADER + "61.71.01,61.71.01.1001,X,PKH,1,KPM,2024\n")
    report = check_table(path, load_schema("bansos-per-kelurahan"), reference_dir=ref)
    assert report.valid, report.issues


def test_unknown_reference_resource_is_reported_not_raised(tmp_path: Path) -> None:
    schema = {
        "fields": [{"name": "kode", "type": "string"}, {"name": "n", "type": "integer"}],
        "foreignKeys": [
            {"fields": ["kode"], "reference": {"resource": "sekolah", "fields": ["x"]}}
        ],
    }
    report = check_table(write(tmp_path, "t.csv", "kode,n\na,x\n"), schema)
    assert codes(report) == {"reference-error", "type-error"}


def test_type_and_constraint_errors_never_raise(tmp_path: Path) -> None:
    rows = "61.71.01,61.71.01.1002,X,PKH,-1,KPM,2024\n61.71.01,61.71.01.1003,X,BLT,abc,KPM,20x\n"
    report = check_table(
        write(tmp_path, "t.csv", BANSOS_HEADER + rows), load_schema("bansos-per-kelurahan")
    )
    assert report.error_counts == {"constraint-error": 1, "type-error": 2}
    assert {(i.row, i.field) for i in report.issues} == {
        (2, "jumlah_penerima"),
        (3, "jumlah_penerima"),
        (3, "tahun"),
    }


def test_invalid_schema_becomes_an_issue(tmp_path: Path) -> None:
    report = check_table(write(tmp_path, "t.csv", "a\n1\n"), {"fields": [{"name": "a"}] * 2})
    assert not report.valid and report.error_count >= 1


def test_xlsx_is_validated(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["kode_kecamatan", "nama_puskesmas", "tahun", "bulan", "jumlah_kasus", "satuan"])
    sheet.append(["61.71.01", "Puskesmas A", 2024, 1, 3, "Kasus"])
    sheet.append(["61.71.09", "Puskesmas A", 2024, 13, 3, "Kasus"])
    book.save(tmp_path / "dbd.xlsx")
    report = check_table(tmp_path / "dbd.xlsx", load_schema("kasus-dbd-puskesmas-bulanan"))
    assert report.error_counts == {"constraint-error": 2, "region-code": 1}
    # the same workbook without its extension is still recognised as XLSX
    (tmp_path / "dbd.xlsx").rename(tmp_path / "blob")
    again = check_table(tmp_path / "blob", load_schema("kasus-dbd-puskesmas-bulanan"))
    assert again.error_counts == report.error_counts


def test_not_a_table_is_a_format_error(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", "hello")
    assert codes(check_table(path, None)) == {"format-error"}


def test_schema_none_is_inferred(tmp_path: Path) -> None:
    report = check_table(write(tmp_path, "t.csv", "a,b\n1,x\n2,y\n"), None)
    assert report.valid
    assert [f["name"] for f in report.schema["fields"]] == ["a", "b"]
    assert report.schema["fields"][0]["type"] == "integer"


# --- report -------------------------------------------------------------------------------------


def test_report_round_trips_through_json() -> None:
    report = CheckReport(
        3,
        [
            CheckIssue("type-error", "m", "a", 2),
            CheckIssue("source-warning", "w", severity=Severity.WARNING),
            CheckIssue("type-error", "m", "a", 3),
        ],
        [PiiFinding("nik", "nik", 3)],
        {"fields": []},
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["error_counts"] == {"type-error": 2} and data["error_count"] == 2
    assert data["valid"] is False
    again = CheckReport.from_dict(data)
    assert again == report


def test_warnings_do_not_invalidate() -> None:
    report = CheckReport(1, [CheckIssue("x", "w", severity=Severity.WARNING)], [], {})
    assert report.valid and report.error_count == 0
    assert not CheckReport(1, [], [PiiFinding("nama", "header", 1)], {}).valid


def test_checks_do_not_import_flask_or_portal() -> None:
    imports = "import json, sys, harvesters.checks, harvesters.tables"
    code = f"{imports}; print(json.dumps([*sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not {"flask", "portal", "werkzeug"} & loaded


# --- personal data ------------------------------------------------------------------------------


def test_structure_checks() -> None:
    assert pii.is_nik(NIK_MAN) and pii.is_nik(NIK_WOMAN)
    assert not pii.is_nik("6171013708859901")  # day 37: neither 01-31 nor 41-71
    assert not pii.is_nik("6171011708850000")  # serial 0000
    assert not pii.is_nik("9971011708859901")  # no such province
    assert pii.is_no_kk("6171010503129901")  # entered 05-03-2012
    assert not pii.is_no_kk(NIK_WOMAN)  # day 57 is not a date
    assert pii.is_nip("198508172010011001")
    assert not pii.is_nip("198513172010011001")


def person_table(tmp_path: Path, header: str, row: str, n: int = 5) -> CheckReport:
    return check_table(write(tmp_path, "p.csv", header + "\n" + (row + "\n") * n), None)


def detectors(report: CheckReport) -> dict[str, str]:
    return {f.column: f.detector for f in report.pii}


def test_public_names_and_addresses_are_not_personal(tmp_path: Path) -> None:
    header = "npsn,nama_sekolah,nama_kelurahan,alamat,telepon,email"
    row = "30100001,SD Negeri 01,Akcaya,Jl. Gajah Mada 1,(0561) 732101,sdn01@disdik.pontianak.go.id"
    assert person_table(tmp_path, header, row).pii == []
    assert person_table(tmp_path, "kode,nama,level", "61.71,Kota Pontianak,kota").pii == []
    assert person_table(tmp_path, "nama_paket,nama_ppk,pagu", "ATK,Kepala Bagian,1000").pii == []
    assert person_table(tmp_path, "jenis_kelamin,jumlah_kk,jumlah", "Laki-laki,10,20").pii == []
    # an institution's own mobile number or webmail address is public too
    school = person_table(tmp_path, "nama_sekolah,hp,email", "SD X,081234567890,sdx@gmail.com")
    assert school.pii == []


def test_contacts_next_to_a_person_are_personal(tmp_path: Path) -> None:
    header = "nama_sekolah,nama_siswa,hp,email"
    report = person_table(tmp_path, header, "SD X,Contoh,081234567890,ortu@gmail.com")
    assert detectors(report) == {"nama_siswa": "header", "hp": "phone", "email": "email"}


def test_person_headers_are_flagged(tmp_path: Path) -> None:
    report = person_table(tmp_path, "nama,alamat,jenis_bantuan", "Contoh Satu,Jl. Contoh 1,PKH")
    assert detectors(report) == {"nama": "header", "alamat": "header"}
    assert "pii-header" in codes(report) and not report.valid
    assert detectors(person_table(tmp_path, "nama_penerima,jumlah", "Contoh,1")) == {
        "nama_penerima": "header"
    }
    assert detectors(person_table(tmp_path, "nip_ppk,tgl_lahir", "x,y")) == {
        "nip_ppk": "header",
        "tgl_lahir": "header",
    }


def test_identifiers_are_found_by_value_whatever_the_header(tmp_path: Path) -> None:
    report = person_table(
        tmp_path,
        "a,b,c,keterangan",
        f"{NIK_WOMAN},+62 812-3456-7890,warga@gmail.com,nomor {NIK_MAN} pindah",
    )
    assert detectors(report) == {"a": "nik", "b": "phone", "c": "email", "keterangan": "nik"}
    assert {"pii-nik", "pii-phone", "pii-email"} <= codes(report)


def test_unrelated_16_digit_ids_are_not_niks(tmp_path: Path) -> None:
    ids = "".join(f"{1000000000000000 + i * 7919}\n" for i in range(200))
    assert check_table(write(tmp_path, "ids.csv", "id_transaksi\n" + ids), None).pii == []


def test_messages_never_quote_personal_values(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", f"nik,jumlah\n{NIK_MAN},x\n{NIK_WOMAN},2\n")
    schema = {"fields": [{"name": "nik", "type": "integer"}, {"name": "jumlah", "type": "integer"}]}
    report = check_table(path, schema)
    dumped = json.dumps(report.to_dict())
    assert "type-error" in codes(report) and report.pii
    assert NIK_MAN not in dumped and NIK_WOMAN not in dumped


def test_headerless_file_does_not_leak_through_labels(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "".join(f"{NIK_MAN[:-1]}{i},Contoh\n" for i in range(1, 6)))
    for schema in (load_schema("bansos-per-kelurahan"), None):
        report = check_table(path, schema)
        dumped = json.dumps(report.to_dict())
        assert report.pii and "kolom 1" in {f.column for f in report.pii}
        assert NIK_MAN[:-1] not in dumped and "Contoh" not in dumped


def test_mask_sensitive() -> None:
    text = f'cell "{NIK_MAN}" and 0812-3456-7890, orang@yahoo.co.id, humas@pontianak.go.id, 2024'
    masked = pii.mask_sensitive(text)
    assert NIK_MAN not in masked and "0812" not in masked and "yahoo" not in masked
    assert "humas@pontianak.go.id" in masked and "2024" in masked
