"""Machine *pemeriksaan*: Table Schema validation, region codes and the personal-data gate.

:func:`check_table` never raises because of the data: a bad row, a wrong encoding or a file that
is not a table at all becomes a :class:`CheckReport` with issues. Frictionless's default cap of
1,000 errors is lifted, so every error is reported. Region-code fields are tied to the reference
list by ``foreignKeys`` in the schema (see :mod:`harvesters.reference`); their violations are
reported with the code ``region-code``. The personal-data scan (:mod:`harvesters.pii`) runs over
the same row stream; when it finds anything, messages never quote cell values.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from frictionless import Error, FrictionlessException, Package, Resource, Row, Schema
from frictionless.resources import TableResource

from harvesters import fastcheck, reference
from harvesters.pii import REDACTED, PiiFinding, PiiScanner, mask_sensitive
from harvesters.tables import open_resource

__all__ = [
    "SCHEMAS_DIR",
    "CheckIssue",
    "CheckReport",
    "PiiFinding",
    "Severity",
    "check_table",
    "load_schema",
]

#: Folder of the ``<type>.schema.json`` files.
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"

# NUL and other C0 controls (tab/CR/LF excepted), U+FFFD and a BOM inside text: what binary
# content or a wrong encoding looks like once decoded.
_BINARY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd\ufeff]")
_NOT_A_TABLE = "Berkas bukan tabel (CSV atau XLSX)."
_SCHEMA_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TABLE = "tabel"

#: Guards the process-wide warning filters that ``catch_warnings`` swaps in and out.
WARNINGS_LOCK = threading.RLock()


class Severity(StrEnum):
    """How bad an issue is: errors block publication, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class CheckIssue:
    """One problem found in a table.

    ``code`` is a frictionless error type (``type-error``, ``constraint-error``…) or one of ours:
    ``region-code``, ``reference-error``, ``source-error``, ``source-warning``, ``pii-<detector>``.
    """

    code: str
    message: str
    field: str | None = None
    row: int | None = None
    severity: Severity = Severity.ERROR


@dataclass
class CheckReport:
    """The outcome of :func:`check_table`; plain data, JSON round-trippable."""

    row_count: int
    issues: list[CheckIssue]
    pii: list[PiiFinding]
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """No error-level issue and no personal data."""
        return self.error_count == 0 and not self.pii

    @property
    def error_count(self) -> int:
        """Number of error-level issues."""
        return sum(1 for issue in self.issues if issue.severity is Severity.ERROR)

    @property
    def error_counts(self) -> dict[str, int]:
        """Error-level issues grouped by code."""
        return dict(Counter(i.code for i in self.issues if i.severity is Severity.ERROR))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (derived counts included for readers that only see JSON)."""
        return {
            "valid": self.valid,
            "row_count": self.row_count,
            "error_count": self.error_count,
            "error_counts": self.error_counts,
            "issues": [{**asdict(i), "severity": i.severity.value} for i in self.issues],
            "pii": [asdict(finding) for finding in self.pii],
            "schema": self.schema,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckReport:
        """Rebuild a report from :meth:`to_dict` output; derived keys are ignored.

        :param data: a dict as produced by :meth:`to_dict`.
        :raises KeyError: when a required key is missing.
        :raises ValueError: when a severity is unknown.
        """
        issues = [
            CheckIssue(
                code=str(item["code"]),
                message=str(item["message"]),
                field=item.get("field"),
                row=item.get("row"),
                severity=Severity(item.get("severity", Severity.ERROR.value)),
            )
            for item in data.get("issues", [])
        ]
        pii = [
            PiiFinding(str(item["column"]), str(item["detector"]), int(item["count"]))
            for item in data.get("pii", [])
        ]
        return cls(int(data["row_count"]), issues, pii, dict(data.get("schema") or {}))


def load_schema(name_or_path: str | Path, schemas_dir: Path | None = None) -> dict[str, Any]:
    """Load a Table Schema by type name (``daftar-sekolah``) or from a JSON file path.

    :param name_or_path: a schema name in ``schemas_dir`` (without ``.schema.json``), or a path.
    :param schemas_dir: where names are looked up; defaults to the repository's ``schemas/``.
    :raises FileNotFoundError: when no such schema file exists.
    :raises ValueError: when the name is malformed, or the file is not a valid Table Schema.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".json") or "/" in text:
        path = Path(name_or_path)
    elif _SCHEMA_NAME.match(text):
        path = (schemas_dir or SCHEMAS_DIR) / f"{text}.schema.json"
    else:
        raise ValueError(f"invalid schema name {text!r}")
    if not path.is_file():
        raise FileNotFoundError(f"schema not found: {path}")
    try:
        descriptor = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"schema {path} is not valid JSON: {exc}") from exc
    if not isinstance(descriptor, dict):
        raise ValueError(f"schema {path} is not a JSON object")
    report = Schema.validate_descriptor(descriptor)
    if not report.valid:
        notes = "; ".join(str(error.message) for error in report.errors)
        raise ValueError(f"schema {path} is not a valid Table Schema: {notes}")
    return descriptor


def check_table(
    path: Path,
    schema: dict[str, Any] | None,
    *,
    reference_dir: Path | None = None,
    rows: fastcheck.RowSink | None = None,
) -> CheckReport:
    """Validate a CSV/XLSX table against a Table Schema and scan it for personal data.

    :param path: the table file (format from its extension, encoding detected).
    :param schema: a Table Schema descriptor, or ``None`` to infer one from the data.
    :param reference_dir: folder of the reference lists; defaults to ``schemas/reference``.
    :param rows: receives the typed rows in the same pass when the bulk path reads the file
        (``rows.done()`` then says every row came); otherwise it gets nothing or a part.
    :raises FileNotFoundError: when the schema needs a reference list whose file is missing.
    """
    ref_dir = reference_dir or reference.DEFAULT_REFERENCE_DIR
    was_inferred = schema is None
    if schema is None:
        inferred, problems = _infer_schema(path)
        if inferred is None:
            return CheckReport(0, problems, [], {})
        schema = inferred
    descriptor, unknown, extra_resources = reference.resolve(schema, ref_dir, own_name=_TABLE)
    issues = [
        CheckIssue(
            "reference-error",
            f'Skema merujuk sumber "{name}" yang tidak dikenal; kunci asingnya dilewati.',
        )
        for name in unknown
    ]
    try:
        table_schema = Schema.from_descriptor(descriptor)
    except FrictionlessException as exc:
        issues += [_issue(error, redact=False) for error in exc.to_errors()]
        return CheckReport(0, issues, [], schema)

    checked = _fast_validate(path, table_schema, extra_resources, rows) or _validate(
        path, table_schema, extra_resources
    )
    if isinstance(checked, CheckIssue):
        return CheckReport(0, [*issues, checked], [], schema)
    issues += checked.problems
    row_count, binary_rows, labels = checked.row_count, checked.binary_rows, checked.labels
    errors, notes, scanner = checked.errors, checked.notes, checked.scanner

    if binary_rows or _BINARY.search("".join(labels)):
        issues.append(_binary_issue(binary_rows))
    findings = scanner.findings(labels)
    issues += [_issue(error, redact=bool(findings)) for error in errors]
    issues += [
        CheckIssue("source-warning", mask_sensitive(note), severity=Severity.WARNING)
        for note in dict.fromkeys(notes)
    ]
    issues += [_pii_issue(finding) for finding in findings]
    if findings and was_inferred:
        schema = _redacted_fields(schema)
    return CheckReport(row_count, issues, findings, schema)


@dataclass
class _Validation:
    """One pass over the rows: frictionless's errors and what the row scans found."""

    row_count: int
    errors: list[Error]
    labels: list[str]
    notes: list[str]
    binary_rows: list[int]
    scanner: PiiScanner
    problems: list[CheckIssue] = field(default_factory=list)


def _fast_validate(
    path: Path,
    table_schema: Schema,
    extra_resources: list[Resource],
    rows: fastcheck.RowSink | None,
) -> _Validation | None:
    """The bulk path for plain CSV files; ``None`` when frictionless must read the file."""
    scanner = PiiScanner()
    with WARNINGS_LOCK:
        fast = fastcheck.fast_check(
            path,
            table_schema,
            references=extra_resources,
            on_values=scanner.add_counts,
            flag=_BINARY,
            rows=rows,
        )
    if fast is None:
        return None
    return _Validation(fast.row_count, fast.errors, fast.labels, [], fast.flagged_rows, scanner)


def _validate(
    path: Path, table_schema: Schema, extra_resources: list[Resource]
) -> _Validation | CheckIssue:
    """Frictionless's own row stream; a file that cannot be opened as a table is one issue."""
    try:
        resource = open_resource(path, table_schema, name=_TABLE)
    except OSError as exc:
        return _unopenable(exc)
    if not isinstance(resource, TableResource):
        return CheckIssue("format-error", _NOT_A_TABLE)
    checked = _Validation(0, [], [], [], [], PiiScanner())

    def on_row(row: Row) -> None:
        checked.row_count += 1
        checked.scanner.add_row(row.cells)
        if _BINARY.search("".join(c for c in row.cells if isinstance(c, str))):
            checked.binary_rows.append(row.row_number)

    # Hostile files make the parsers (csv, openpyxl, zipfile, codecs) raise or warn in any way;
    # both become issues. catch_warnings is process-global, so concurrent checks (harvest
    # threads) take turns here rather than restore each other's filters.
    with WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if extra_resources:  # the package is what lets frictionless resolve the references
                Package(resources=[resource, *extra_resources])
            report = resource.validate(limit_errors=0, on_row=on_row)
        except Exception as exc:
            checked.problems.append(_unreadable(exc))
        else:
            checked.errors = list(report.errors)
            for task in report.tasks:
                checked.errors += task.errors
                checked.labels = list(task.labels)
                checked.notes += task.warnings
    checked.notes += [
        str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)
    ]
    return checked


def _infer_schema(path: Path) -> tuple[dict[str, Any] | None, list[CheckIssue]]:
    try:
        resource = open_resource(path)
    except OSError as exc:
        return None, [_unopenable(exc)]
    if not isinstance(resource, TableResource):
        return None, [CheckIssue("format-error", _NOT_A_TABLE)]
    try:
        with WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            resource.infer()
        descriptor = resource.schema.to_descriptor()
    except FrictionlessException as exc:
        return None, [_issue(error, redact=False) for error in exc.to_errors()]
    except Exception as exc:  # see check_table: parsers raise anything on hostile input
        return None, [_unreadable(exc)]
    if not descriptor.get("fields"):
        return None, [CheckIssue("source-error", "Berkas tidak memuat kolom yang dapat dibaca.")]
    return descriptor, []


def _redacted_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """An inferred schema names its fields after the first line, which may be a data row."""
    fields = []
    for index, field_ in enumerate(schema.get("fields", []), start=1):
        name = str(field_.get("name", ""))
        shown = name if _shown_label(name, redact=True) == name else f"kolom_{index}"
        fields.append({**field_, "name": shown})
    return {**schema, "fields": fields}


def _binary_issue(rows: list[int]) -> CheckIssue:
    where = f"{len(rows)} baris, pertama baris {rows[0]}" if rows else "baris judul"
    return CheckIssue(
        "encoding-error",
        f"Berkas memuat karakter kendali atau biner ({where}): bukan teks, atau pengodean "
        "karakternya salah.",
        row=rows[0] if rows else None,
    )


def _unopenable(exc: OSError) -> CheckIssue:
    return CheckIssue("scheme-error", f"Berkas tidak dapat dibuka ({type(exc).__name__}).")


def _unreadable(exc: Exception) -> CheckIssue:
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


def _issue(error: Error, *, redact: bool) -> CheckIssue:
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
            label=_shown_label(label, redact),
        )
    else:
        message = str(error.message)
        for value, shown in ((cell, REDACTED), (label, _shown_label(label, redact))):
            if redact and value:
                message = message.replace(f'"{value}"', f'"{shown}"')
    return CheckIssue(code, mask_sensitive(message), field_name, row)


_HEADER_STYLE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _shown_label(label: str, redact: bool) -> str:
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


def _pii_issue(finding: PiiFinding) -> CheckIssue:
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
