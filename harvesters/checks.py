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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frictionless import Error, FrictionlessException, Package, Resource, Row, Schema
from frictionless.resources import TableResource

from harvesters import fastcheck, reference
from harvesters.check_messages import (
    binary_issue,
    issue,
    pii_issue,
    shown_label,
    unopenable,
    unreadable,
)
from harvesters.check_report import CheckIssue, CheckReport, Severity
from harvesters.pii import PiiFinding, PiiScanner, mask_sensitive
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
        issues += [issue(error, redact=False) for error in exc.to_errors()]
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
        issues.append(binary_issue(binary_rows))
    findings = scanner.findings(labels)
    issues += [issue(error, redact=bool(findings)) for error in errors]
    issues += [
        CheckIssue("source-warning", mask_sensitive(note), severity=Severity.WARNING)
        for note in dict.fromkeys(notes)
    ]
    issues += [pii_issue(finding) for finding in findings]
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
        return unopenable(exc)
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
            checked.problems.append(unreadable(exc))
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
        return None, [unopenable(exc)]
    if not isinstance(resource, TableResource):
        return None, [CheckIssue("format-error", _NOT_A_TABLE)]
    try:
        with WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            resource.infer()
        descriptor = resource.schema.to_descriptor()
    except FrictionlessException as exc:
        return None, [issue(error, redact=False) for error in exc.to_errors()]
    except Exception as exc:  # see check_table: parsers raise anything on hostile input
        return None, [unreadable(exc)]
    if not descriptor.get("fields"):
        return None, [CheckIssue("source-error", "Berkas tidak memuat kolom yang dapat dibaca.")]
    return descriptor, []


def _redacted_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """An inferred schema names its fields after the first line, which may be a data row."""
    fields = []
    for index, field_ in enumerate(schema.get("fields", []), start=1):
        name = str(field_.get("name", ""))
        shown = name if shown_label(name, redact=True) == name else f"kolom_{index}"
        fields.append({**field_, "name": shown})
    return {**schema, "fields": fields}
