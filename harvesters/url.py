"""The URL harvester: one file at an http(s) URL, as a CSV, an XLSX or a JSON array of records.

The source URL is the file; the item's remote id is the file name's stem, slugified
(``.../Jumlah%20Penduduk%202023.csv`` → ``jumlah-penduduk-2023``).

Options (``source.options``):

``metadata``
    The dataset's metadata, with the keys of the folder harvester's sidecar (title,
    description, schema, topic, tags, licence, ...). The title falls back to the file name.
``format``
    ``csv``, ``xlsx`` or ``json``, when neither the URL, the Content-Type nor the content tells.
``records_path``
    Dotted path to the list of records inside a JSON object (``"data.rows"``).
``etag``, ``last_modified``
    The validators recorded by the previous harvest (``item.raw["etag"]`` and
    ``item.raw["last_modified"]``). They are sent as ``If-None-Match`` / ``If-Modified-Since``;
    a 304 answer raises :class:`~harvesters.http.NotModified` (code ``not-modified``).

The fetch policy is **not** an option: options are edited by producers, and the allow-list
must stay the operator's. The harvester uses the ``policy`` it is given, else
:func:`harvesters.http.default_policy` (set by the portal from ``ONEDATA_HARVEST_ALLOW_HOSTS``),
with the size cap lowered to ``source.max_file_size``.

What is staged: a CSV is normalised to UTF-8 with commas
(:func:`harvesters.encoding.normalise_csv`); a JSON array becomes a CSV; an XLSX is staged
as is, once its zip directory passes :func:`harvesters.http.check_xlsx`.
``StagedFile.sha256`` is the hash of the *staged* bytes, because the portal stores files under
that hash; normalisation is deterministic, so that hash still changes exactly when the source
does. The original's hash and size, what was detected and the response validators go into
``item.raw``.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from harvesters.base import HarvestedItem, Harvester, SourceConfig, attach_table
from harvesters.encoding import normalise_csv
from harvesters.errors import InvalidItem
from harvesters.http import (
    FetchPolicy,
    FetchResult,
    GuardedFetcher,
    NotModified,
    check_xlsx,
    policy_for,
)

__all__ = ["NotModified", "UrlHarvester", "json_to_csv"]

FORMATS = ("csv", "xlsx", "json")
_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".json": "json"}
_CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/json": "json",
    "text/json": "json",
}
#: Largest JSON file converted to CSV; it is parsed in memory, which takes several times its size.
MAX_JSON_FILE = 64 * 1024 * 1024


class UrlHarvester(Harvester):
    kind = "url"

    def __init__(
        self, source: SourceConfig, *, staging_dir: Path, policy: FetchPolicy | None = None
    ) -> None:
        """:param policy: the fetch policy; defaults to :func:`harvesters.http.default_policy`."""
        super().__init__(source, staging_dir=staging_dir)
        self.policy = policy_for(source, policy)

    def gather(self) -> Iterable[str]:
        """Yield the one remote id of the source: its file name's stem, slugified.

        Nothing is fetched here, so an unreachable source fails its one item, with the reason.
        """
        parts = urlsplit(self.source.url)
        stem = Path(unquote(parts.path)).stem
        yield _slug(stem) or _slug(parts.hostname or "") or "data"

    def fetch(self, remote_id: str) -> HarvestedItem:
        """Download the file (conditionally) and stage it as CSV or XLSX.

        :raises NotModified: when the source answers 304 to the recorded validators.
        :raises FetchRefused: when the URL or a redirect is not allowed by the policy.
        :raises SourceUnavailable: when the download fails or times out.
        :raises InvalidItem: when the file is too large, a zip bomb, or unreadable.
        """
        options = self.source.options
        metadata = options.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidItem("option 'metadata' must be a JSON object")
        metadata = dict(metadata)
        metadata.setdefault("title", remote_id.replace("-", " ").replace("_", " ").title())
        # A private folder for the download and its conversions: only the staged copy remains.
        with tempfile.TemporaryDirectory(dir=self.staging_dir, prefix="url-") as work:
            with GuardedFetcher(self.policy) as fetcher:
                result = fetcher.fetch_to_file(
                    self.source.url,
                    Path(work),
                    etag=options.get("etag"),
                    last_modified=options.get("last_modified"),
                )
            if result.not_modified or result.path is None:
                raise NotModified(f"{self.source.url} has not changed since the last harvest")
            fmt = self._format(result, result.path)
            name = Path(unquote(urlsplit(self.source.url).path)).stem or remote_id
            with result.path.open("rb") as stream:  # the original, byte for byte
                staged = self.stage_stream(
                    stream,
                    remote_id=remote_id,
                    title=str(metadata.get("resource_title") or metadata["title"]),
                    filename=f"{name}.{fmt}",
                    fmt=fmt,
                )
            table, detected = self._prepare(result.path, fmt)
            if table != result.path and (fmt == "json" or detected.get("rewritten")):
                staged = attach_table(staged, table)
        raw = {
            "url": self.source.url,
            "final_url": result.url,
            "etag": result.etag,
            "last_modified": result.last_modified,
            "content_type": result.content_type,
            "format": fmt,
            "original_sha256": result.sha256,
            "original_size": result.size,
            **detected,
            "metadata": metadata,
        }
        return HarvestedItem(remote_id, metadata, [staged], raw=raw)

    def _format(self, result: FetchResult, path: Path) -> str:
        forced = self.source.options.get("format")
        if forced:
            if forced not in FORMATS:
                raise InvalidItem(f"option 'format' must be one of {', '.join(FORMATS)}")
            return str(forced)
        for url in (self.source.url, result.url):
            suffix = Path(urlsplit(url).path).suffix.lower()
            if suffix == ".xls":
                raise InvalidItem(
                    f"{url}: legacy .xls files are not supported; ask the source for CSV or XLSX"
                )
            if suffix in _EXTENSIONS:
                return _EXTENSIONS[suffix]
        if result.content_type in _CONTENT_TYPES:
            return _CONTENT_TYPES[result.content_type]
        with path.open("rb") as handle:
            head = handle.read(512)
        if head.startswith(b"PK\x03\x04"):
            return "xlsx"
        if head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"[", b"{"):
            return "json"
        return "csv"

    def _prepare(self, path: Path, fmt: str) -> tuple[Path, dict[str, Any]]:
        """Turn the download into the file to stage; return it and what was detected."""
        if fmt == "xlsx":
            check_xlsx(path, max_ratio=self.policy.max_ratio)
            return path, {}
        if fmt == "json":
            converted = path.with_name("converted.csv")
            rows = json_to_csv(path, converted, self.source.options.get("records_path"))
            return converted, {"records": rows}
        normalised = path.with_name("normalised.csv")
        return normalised, normalise_csv(path, normalised)


def json_to_csv(src: Path, dest: Path, records_path: str | None = None) -> int:
    """Write the JSON array of records in ``src`` as a UTF-8 CSV; return the number of rows.

    Columns are the union of the records' keys, in order of first appearance. Nested objects
    and lists become JSON text; ``null`` becomes an empty cell; booleans ``true``/``false``.

    :param src: a JSON file: an array of objects, or an object holding one at ``records_path``.
    :param dest: the CSV to write.
    :param records_path: dotted path of the array inside the document (``"data.rows"``).
    :raises InvalidItem: when the file is too large, not JSON, or not an array of objects.
    """
    if src.stat().st_size > MAX_JSON_FILE:
        raise InvalidItem(
            f"JSON file of {src.stat().st_size:,} bytes is too large to convert "
            f"(limit {MAX_JSON_FILE:,}); ask the source for CSV"
        )
    try:
        data: Any = json.loads(src.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    except ValueError as exc:
        raise InvalidItem(f"not valid JSON ({exc})") from exc
    for key in records_path.split(".") if records_path else ():
        if not isinstance(data, dict) or key not in data:
            raise InvalidItem(f"records_path {records_path!r}: no key {key!r} in the JSON")
        data = data[key]
    if not isinstance(data, list) or not all(isinstance(record, dict) for record in data):
        where = f" at {records_path!r}" if records_path else ""
        raise InvalidItem(
            f"expected a JSON array of objects{where}; set the option "
            "'records_path' if the records are inside an object"
        )
    if not data:
        raise InvalidItem("the JSON array holds no records")
    columns = list(dict.fromkeys(key for record in data for key in record))
    with dest.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([_cell(record.get(column)) for column in columns] for record in data)
    return len(data)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:100]
