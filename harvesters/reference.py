"""Reference lists (Kode Referensi) that Table Schema ``foreignKeys`` may point at.

A schema ties a region-code field to the official list with a standard foreign key whose
``reference.resource`` names a reference resource instead of a resource of the same package::

    {"fields": ["kode_kelurahan", "kode_kecamatan"],
     "reference": {"resource": "wilayah-kelurahan", "fields": ["kode", "induk"]}}

``wilayah`` is ``schemas/reference/wilayah_pontianak.csv`` (columns ``kode, nama, level, induk``);
a ``-<level>`` suffix keeps only the rows of that level (``provinsi``, ``kota``, ``kecamatan``,
``kelurahan``). The checker adds these resources, built from the CSV, to a package next to the
table, so frictionless performs the lookup itself.
"""

from __future__ import annotations

import copy
import csv
import re
from pathlib import Path
from typing import Any

from frictionless import Resource, Schema

#: Default folder of the reference CSV files.
DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parent.parent / "schemas" / "reference"

#: Reference resource base name → file in the reference folder.
REFERENCE_FILES: dict[str, str] = {"wilayah": "wilayah_pontianak.csv"}

#: Values of the ``level`` column of the region list.
LEVELS = ("provinsi", "kota", "kecamatan", "kelurahan")

_NAME = re.compile(r"^(?P<base>[a-z]+)(?:-(?P<level>[a-z]+))?$")


def parse_reference_name(name: str) -> tuple[str, str | None] | None:
    """Split ``wilayah-kelurahan`` into ``("wilayah", "kelurahan")``.

    :param name: a foreign key's ``reference.resource``.
    :returns: ``None`` when the name is not a known reference resource.
    """
    match = _NAME.match(name)
    if not match or match["base"] not in REFERENCE_FILES:
        return None
    level = match["level"]
    if level is not None and level not in LEVELS:
        return None
    return match["base"], level


def referenced_resources(schema: dict[str, Any]) -> set[str]:
    """Names of the other resources the schema's foreign keys point at (self-references excluded).

    :param schema: a Table Schema descriptor.
    """
    names: set[str] = set()
    for fk in schema.get("foreignKeys") or []:
        reference = fk.get("reference") if isinstance(fk, dict) else None
        name = reference.get("resource") if isinstance(reference, dict) else None
        if isinstance(name, str) and name:
            names.add(name)
    return names


def load_rows(name: str, reference_dir: Path) -> list[dict[str, str]]:
    """Rows of a reference resource, filtered by level when the name has a suffix.

    :param name: e.g. ``wilayah`` or ``wilayah-kecamatan``.
    :param reference_dir: folder holding the reference CSV files.
    :raises KeyError: when ``name`` is not a reference resource.
    :raises FileNotFoundError: when its CSV file is missing (a deployment error).
    """
    parsed = parse_reference_name(name)
    if parsed is None:
        raise KeyError(f"not a reference resource: {name!r}")
    base, level = parsed
    with (reference_dir / REFERENCE_FILES[base]).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row for row in rows if level is None or row.get("level") == level]


def build_resource(name: str, reference_dir: Path) -> Resource:
    """An inline frictionless resource holding a reference list (all columns typed string).

    :param name: e.g. ``wilayah-kelurahan``.
    :param reference_dir: folder holding the reference CSV files.
    :raises KeyError: when ``name`` is not a reference resource.
    :raises FileNotFoundError: when its CSV file is missing.
    """
    rows = load_rows(name, reference_dir)
    columns = list(rows[0]) if rows else ["kode"]
    data: list[list[Any]] = [columns, *([row.get(c, "") for c in columns] for row in rows)]
    schema = Schema.from_descriptor(
        {"fields": [{"name": column, "type": "string"} for column in columns]}
    )
    return Resource(name=name, data=data, schema=schema)


def describe(name: str) -> str:
    """Human label of a reference resource, in Bahasa Indonesia.

    :param name: e.g. ``wilayah-kelurahan``.
    """
    parsed = parse_reference_name(name)
    if parsed is None:
        return name
    base, level = parsed
    label = "daftar referensi wilayah" if base == "wilayah" else f"daftar referensi {base}"
    return f"{label} tingkat {level}" if level else label


def resolve(
    schema: dict[str, Any], reference_dir: Path, *, own_name: str = ""
) -> tuple[dict[str, Any], list[str], list[Resource]]:
    """Reference resources for a schema's foreign keys.

    :param schema: a Table Schema descriptor (not modified).
    :param reference_dir: folder holding the reference CSV files.
    :param own_name: the table's resource name (a foreign key to it is a self-reference).
    :returns: the descriptor without keys to unknown resources, those unknown names, and the
        reference resources to put in a package next to the table.
    :raises FileNotFoundError: when a reference list's CSV file is missing.
    """
    descriptor = copy.deepcopy(schema)
    unknown: list[str] = []
    resources: list[Resource] = []
    for name in sorted(referenced_resources(descriptor) - {own_name}):
        if parse_reference_name(name) is None:
            unknown.append(name)
        else:
            resources.append(build_resource(name, reference_dir))
    if unknown:
        descriptor["foreignKeys"] = [
            fk
            for fk in descriptor.get("foreignKeys", [])
            if fk.get("reference", {}).get("resource") not in unknown
        ]
    return descriptor, unknown, resources
