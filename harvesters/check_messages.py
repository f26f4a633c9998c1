"""The messages of the checks, in Bahasa Indonesia, for the producer and the steward.

Frictionless errors, personal-data findings and unreadable files become :class:`CheckIssue`
items; with ``redact`` (a table holding personal data) no cell value or label is quoted.
"""

from __future__ import annotations

import re

from frictionless import Error

from harvesters import reference
from harvesters.check_report import CheckIssue
from harvesters.pii import REDACTED, PiiFinding, mask_sensitive


def binary_issue(rows: list[int]) -> CheckIssue:
    where = f"{len(rows)} baris, pertama baris {rows[0]}" if rows else "baris judul"
    return CheckIssue(
        "encoding-error",
        f"Berkas memuat karakter kendali atau biner ({where}): bukan teks, atau pengodean "
        "karakternya salah.",
        row=rows[0] if rows else None,
    )


def unopenable(exc: OSError) -> CheckIssue:
    return CheckIssue("scheme-error", f"Berkas tidak dapat dibuka ({type(exc).__name__}).")


def unreadable(exc: Exception) -> CheckIssue:
    return CheckIssue("source-error", f"Berkas tidak dapat dibaca ({type(exc).__name__}).")


_TEMPLATES = {
    "type-error": 'Baris {row}, kolom "{field}": nilai "{cell}" tidak sesuai tipe data ({note}).',
    "constraint-error": 'Baris {row}, kolom "{field}": nilai "{cell}" melanggar batasan ({note}).',
    "missing-cell": 'Baris {row}: sel untuk kolom "{field}" tidak ada.',
    "extra-cell": "Baris {row}: ada sel tambahan di kolom ke-{position}.",
    "blank-row": "Baris {row} kosong.",
    "unique-error": 'Baris {row}, kolom "{field}": nilai harus unik ({note}).',
    "primary-key": "Baris {row}: kunci utama kosong atau ganda ({note}).",
    "duplicate-row": "Baris {row} sama persis dengan baris lain ({note}).",
    "missing-label": 'Kolom "{field}" yang diwajibkan skema tidak ada di baris judul.',
    "extra-label": 'Baris judul memuat kolom tambahan "{label}" (kolom ke-{position}).',
    "incorrect-label": 'Judul kolom ke-{position} adalah "{label}"; skema mengharapkan "{field}".',
    "duplicate-label": 'Judul kolom "{label}" muncul lebih dari sekali (kolom ke-{position}).',
    "blank-label": "Judul kolom ke-{position} kosong.",
    "encoding-error": "Pengodean karakter berkas tidak dapat dibaca: {note}",
    "source-error": "Sumber data tidak dapat dibaca: {note}",
    "format-error": "Format berkas tidak dapat diurai: {note}",
    "scheme-error": "Berkas tidak dapat dibuka: {note}",
    "schema-error": "Skema tidak valid: {note}",
}


def issue(error: Error, *, redact: bool) -> CheckIssue:
    """Translate a frictionless error; with ``redact`` no cell value or label is quoted."""
    code = str(error.type)
    row = getattr(error, "row_number", None)
    row = row if isinstance(row, int) else None
    field_name = str(getattr(error, "field_name", "") or "") or None
    cell = str(getattr(error, "cell", "") or "")
    label = str(getattr(error, "label", "") or "")
    if code == "foreign-key":
        names = [str(n) for n in getattr(error, "field_names", [])]
        cells = [REDACTED if redact else str(c) for c in getattr(error, "field_cells", [])]
        ref_name = str(getattr(error, "reference_name", ""))
        field_name = names[0] if names else field_name
        if reference.parse_reference_name(ref_name) is not None:
            pairs = ", ".join(f'{n} "{c}"' for n, c in zip(names, cells, strict=False))
            message = f"Baris {row}: kode wilayah {pairs} tidak ada dalam " + (
                f"{reference.describe(ref_name)}."
            )
            return CheckIssue("region-code", mask_sensitive(message), field_name, row)
    template = _TEMPLATES.get(code)
    if template is not None:
        message = template.format(
            row=row,
            field=field_name,
            note=error.note,
            position=getattr(error, "field_number", ""),
            cell=REDACTED if redact else cell,
            label=shown_label(label, redact),
        )
    else:
        message = str(error.message)
        for value, shown in ((cell, REDACTED), (label, shown_label(label, redact))):
            if redact and value:
                message = message.replace(f'"{value}"', f'"{shown}"')
    return CheckIssue(code, mask_sensitive(message), field_name, row)


_HEADER_STYLE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def shown_label(label: str, redact: bool) -> str:
    """A snake_case header is never a personal value; anything else is hidden when redacting.

    A file without a header row turns its first data row into labels.
    """
    return label if not redact or _HEADER_STYLE.fullmatch(label) else REDACTED


_PII_LABELS = {
    "nik": "NIK",
    "no_kk": "Nomor Kartu Keluarga",
    "npwp": "NPWP",
    "nip": "NIP",
    "phone": "nomor telepon seluler",
    "email": "alamat surel pribadi",
}


def pii_issue(finding: PiiFinding) -> CheckIssue:
    what = _PII_LABELS.get(finding.detector)
    if what is None:
        message = (
            f'Nama kolom "{finding.column}" menunjukkan data pribadi ({finding.count} sel terisi); '
            "publikasikan data agregat saja."
        )
    else:
        message = (
            f'Kolom "{finding.column}" memuat {finding.count} nilai berstruktur {what} '
            "(data pribadi); publikasikan data agregat saja."
        )
    code = "pii-" + finding.detector.replace("_", "-")
    return CheckIssue(code, message, finding.column)
