"""How a CKAN package dict becomes our metadata: fields, licences, extras, frequency, format.

:func:`map_metadata` maps the core fields of a package (``package_show`` / ``package_search``
result), translates CKAN licence ids to SPDX-style ones, and picks our keys out of the extras
(and out of the top-level fields of ckanext-scheming sites) by :data:`EXTRA_KEYS`; the extras it
does not use stay in ``ckan_extras``. :func:`resource_format` decides the format of a resource,
and :func:`naive_utc` reads CKAN's timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "EXTRA_KEYS",
    "FORMATS",
    "frequency",
    "harvestable",
    "map_metadata",
    "naive_utc",
    "newer",
    "resource_format",
]

FORMATS = ("csv", "xlsx", "json")
_SKIPPED_TYPES = frozenset({"harvest"})  # ckanext-harvest stores its sources as packages
_FORMAT_ALIASES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/json": "json",
    "text/json": "json",
}
_LICENSES = {
    "cc-by": "CC-BY-4.0",
    "cc-by-sa": "CC-BY-SA-4.0",
    "cc-zero": "CC0-1.0",
    "cc-nc": "CC-BY-NC-4.0",
    "odc-by": "ODC-By-1.0",
    "odc-odbl": "ODbL-1.0",
    "odc-pddl": "PDDL-1.0",
    "uk-ogl": "OGL-UK-3.0",
    "gfdl": "GFDL-1.3-or-later",
}
#: Extras (and top-level fields of ckanext-scheming sites), normalised to snake case → our key.
#: In order of preference: the first one present wins, the others stay in ``ckan_extras``.
EXTRA_KEYS = {
    "cakupan_wilayah": "coverage",
    "cakupan": "coverage",
    "wilayah": "coverage",
    "kode_wilayah": "coverage_code",
    "periode_update_data": "frequency",
    "frekuensi_pemutakhiran": "frequency",
    "frekuensi": "frequency",
    "frequency": "frequency",
    "update_frequency": "frequency",
    "cara_pengumpulan_data": "collection_method",
    "metode_pengumpulan_data": "collection_method",
    "tahun": "period",
    "periode_data": "period",
    "tahun_anggaran": "period",
    "periode_pelaksanaan_pengumpulan_data": "period",
    "satuan": "unit",
    "ukuran": "measure",
    "konsep": "concept",
    "definisi": "definition",
    "klasifikasi": "classification",
    "topik": "topic",
    "kontak": "contact",
}
_FREQUENCIES = (  # substring → our value; tested in this order ("3 bulan" before "bulan")
    ("tidak_tentu", ("tidak tentu", "tidak menentu", "sewaktu", "insidental", "irregular")),
    ("triwulanan", ("triwulan", "kuartal", "quarter", "3 bulan", "tiga bulan", "p3m")),
    ("semesteran", ("semester", "6 bulan", "enam bulan", "semiannual", "biannual", "p6m")),
    ("harian", ("harian", "hari", "daily", "p1d")),
    ("mingguan", ("mingguan", "minggu", "pekan", "weekly", "p1w")),
    ("bulanan", ("bulan", "monthly", "p1m")),
    ("tahunan", ("tahun", "annual", "yearly", "p1y")),
)


def map_metadata(package: Mapping[str, Any], site: str) -> dict[str, Any]:
    """Map a CKAN package dict to our metadata keys; what has no key of ours goes to extras.

    :param package: a ``package_show`` / ``package_search`` result.
    :param site: the CKAN site's root URL, for the dataset's ``remote_url``.
    """
    name = str(package.get("name") or package.get("id"))
    org: Mapping[str, Any] = package.get("organization") or {}
    org = org if isinstance(org, Mapping) else {}
    groups = [g for g in package.get("groups") or [] if isinstance(g, dict)]
    meta: dict[str, Any] = {
        "title": package.get("title") or name,
        "description": package.get("notes") or None,
        "tags": [
            str(t["name"])
            for t in package.get("tags") or []
            if isinstance(t, dict) and t.get("name")
        ],
        "remote_name": name,
        "remote_url": f"{site}/dataset/{name}",
        "metadata_modified": package.get("metadata_modified"),
        "organization": org.get("name"),
        "organization_title": org.get("title"),
        "groups": [g.get("name") for g in groups] or None,
        "author": package.get("author") or None,
        "maintainer": package.get("maintainer") or None,
    }
    license_id = str(package.get("license_id") or "").strip()
    if license_id and license_id != "notspecified":
        meta["license"] = _LICENSES.get(license_id.lower(), license_id)[:50]
    pairs = [
        (str(e.get("key")), e.get("value"))
        for e in package.get("extras") or []
        if isinstance(e, dict)
    ]
    given = {_snake(key): (key, value) for key, value in reversed(pairs)}
    for key, value in package.items():  # ckanext-scheming puts extra fields at the top level
        if _snake(key) in EXTRA_KEYS and isinstance(value, str | int | float):
            given.setdefault(_snake(key), (key, value))
    used: set[str] = set()
    for snake, target in EXTRA_KEYS.items():
        if snake not in given or meta.get(target) is not None:
            continue
        text = str(given[snake][1] or "").strip()
        value = frequency(text) if target == "frequency" else text
        if value:
            meta[target] = value
            used.add(snake)
    if meta.get("topic") is None and groups:
        meta["topic"] = groups[0].get("title") or groups[0].get("name")
    if meta.get("contact") is None:
        email = package.get("maintainer_email") or package.get("author_email")
        who = package.get("maintainer") or package.get("author")
        meta["contact"] = ", ".join(str(p) for p in (who, email) if p) or None
    extras = {key: value for key, value in pairs if _snake(key) not in used}
    meta["ckan_extras"] = extras or None
    return {key: value for key, value in meta.items() if value is not None}


def frequency(text: str) -> str | None:
    """Our update frequency for a free-text one ("Tahunan", "Setiap 3 bulan", "R/P1Y").

    :param text: the value of a frequency extra.
    """
    lowered = text.lower().replace("_", " ").replace("-", " ")
    for value, needles in _FREQUENCIES:
        if any(needle in lowered for needle in needles):
            return value
    return None


def resource_format(resource: Mapping[str, Any]) -> str | None:
    """``csv``, ``xlsx``, ``json`` or another lower-case format, from the format field or URL.

    :param resource: a CKAN resource dict.
    """
    declared = str(resource.get("format") or "").strip().lower().lstrip(".")
    declared = _FORMAT_ALIASES.get(declared, declared)
    if declared in FORMATS:
        return declared
    suffix = Path(urlsplit(str(resource.get("url") or "")).path).suffix.lower().lstrip(".")
    if declared in ("", "excel", "file", "data") and suffix in FORMATS:
        return suffix
    return declared or None


def _snake(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


def naive_utc(value: Any) -> datetime | None:
    """A naive UTC datetime (CKAN's convention) from an ISO string or datetime, else None.

    :param value: an ISO 8601 string (``metadata_modified``) or a datetime, naive or aware.
    """
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def harvestable(package: Mapping[str, Any]) -> bool:
    """Whether a package is a public, active dataset (not, say, a ckanext-harvest source).

    :param package: a ``package_show`` / ``package_search`` result.
    """
    return (
        package.get("private") is not True
        and package.get("state", "active") == "active"
        and package.get("type") not in _SKIPPED_TYPES
    )


def newer(package: Mapping[str, Any], other: Mapping[str, Any] | None) -> bool:
    """Whether ``package`` was modified no earlier than ``other``, the copy seen before.

    :param package: a ``package_search`` result.
    :param other: another result with the same id, or None when there was none.
    """
    return other is None or str(package.get("metadata_modified") or "") >= str(
        other.get("metadata_modified") or ""
    )
