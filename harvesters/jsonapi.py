"""The JSON API harvester: one dataset from a paged JSON endpoint (regional "SatuData" APIs).

The source URL is the endpoint; each page is ``GET url?<params>&<page_param>=<n>`` (plus
``&<page_size_param>=<k>`` when set) and its records are the list at ``records_path``
(``data.items``). Paging stops at an empty page, at a page shorter than ``page_size``, and
fails past ``max_pages``. A page identical to the one before it fails the item (the endpoint
ignores the page parameter): harvesting it would publish the first page over and over.

All records become one staged CSV: columns are the union of the records' keys in order of
first appearance, with the URL harvester's cell conventions (:func:`harvesters.url.json_to_csv`).
The metadata comes from ``source.options["metadata"]``, with the folder harvester's keys.
Requests go through :class:`harvesters.http.GuardedFetcher`, under the ``policy`` given, else
:func:`harvesters.http.policy_for`. Nothing is fetched in :meth:`JsonApiHarvester.gather`,
so an unreachable endpoint fails the source's one item, with the reason (as the URL harvester).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harvesters.base import HarvestedItem, Harvester, SourceConfig
from harvesters.errors import FileTooLarge, SourceConfigError, SourceUnavailable
from harvesters.http import FetchPolicy, GuardedFetcher, policy_for
from harvesters.url import MAX_JSON_FILE, json_to_csv

__all__ = ["JsonApiConfig", "JsonApiHarvester", "UnexpectedResponse"]


class UnexpectedResponse(SourceUnavailable):
    """The endpoint answered JSON, but not in the configured shape."""

    code = "unexpected-response"


@dataclasses.dataclass(frozen=True)
class JsonApiConfig:
    """Options of a JSON API source (``source.options``)."""

    records_path: str = ""
    """Dotted path of the list of records in each page (``data.items``); empty: the page is
    the list."""
    page_param: str | None = "page"
    """Query parameter carrying the page number or offset; ``None``: one request, no paging."""
    page_start: int = 1
    """Value of ``page_param`` for the first page (0 or 1 for page numbers; offsets start at 0
    unless set)."""
    paging: str = "page"
    """``page``: ``page_param`` counts pages (+1 per page); ``offset``: it counts records
    (+ the number of records received)."""
    page_size_param: str | None = None
    """Query parameter for the page size (``per_page``, ``limit``); ``None``: not sent."""
    page_size: int | None = None
    """Records per page, sent in ``page_size_param`` (default 100 when that is set); a shorter
    page is the last one. Without ``page_size_param``: the endpoint's own fixed page size."""
    max_pages: int = 1000
    """Fail when the endpoint still returns records after this many pages."""
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Fixed query parameters sent with every page (``{"tahun": "2024"}``)."""
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The dataset's metadata: title, description, schema, topic, tags, license, ..."""
    dataset_id: str | None = None
    """Remote id of the source's one dataset; default: the source's name."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> JsonApiConfig:
        """Read and check the options; unknown keys are ignored.

        :param options: ``source.options``.
        :raises SourceConfigError: when an option has the wrong type or value.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in options.items() if k in fields and v is not None}
        for name in ("records_path", "page_param", "page_size_param", "dataset_id"):
            if not isinstance(values.get(name, ""), str):
                raise SourceConfigError(f"option {name!r} must be a string")
        for name, minimum in (("page_start", 0), ("page_size", 1), ("max_pages", 1)):
            number = values.get(name, minimum)
            if not isinstance(number, int) or isinstance(number, bool) or number < minimum:
                raise SourceConfigError(f"option {name!r} must be an integer ≥ {minimum}")
        if values.get("paging", "page") not in ("page", "offset"):
            raise SourceConfigError("option 'paging' must be 'page' or 'offset'")
        for name in ("params", "metadata"):
            if not isinstance(values.get(name, {}), Mapping):
                raise SourceConfigError(f"option {name!r} must be an object")
        if "page_param" in options and options["page_param"] is None:
            values["page_param"] = None  # explicitly not paged
        if values.get("paging") == "offset" and "page_start" not in values:
            values["page_start"] = 0
        if values.get("page_size_param") and "page_size" not in values:
            values["page_size"] = 100
        values["params"] = {str(k): str(v) for k, v in values.get("params", {}).items()}
        return cls(**values)


class JsonApiHarvester(Harvester):
    kind = "jsonapi"

    def __init__(
        self, source: SourceConfig, *, staging_dir: Path, policy: FetchPolicy | None = None
    ) -> None:
        """:param policy: the fetch policy; defaults to :func:`harvesters.http.policy_for`."""
        super().__init__(source, staging_dir=staging_dir)
        self.policy = policy_for(source, policy)

    def gather(self) -> list[str]:
        """The one remote id of the source: option ``dataset_id``, else the source's name.

        :raises SourceConfigError: when the options are invalid.
        """
        return [JsonApiConfig.from_options(self.source.options).dataset_id or self.source.name]

    def fetch(self, remote_id: str) -> HarvestedItem:
        """Read every page and stage the records as one CSV.

        :raises SourceConfigError: when the options are invalid.
        :raises UnexpectedResponse: when a page has no list of records at ``records_path``,
            or none at all.
        :raises SourceUnavailable: when a request fails or is refused, a page repeats, or pages
            exceed ``max_pages``.
        :raises FileTooLarge: when the records exceed the source's size limit.
        """
        config = JsonApiConfig.from_options(self.source.options)
        metadata = dict(config.metadata)
        metadata.setdefault("title", self.source.name.replace("-", " ").replace("_", " ").title())
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        limit = min(self.source.max_file_size, MAX_JSON_FILE)
        with tempfile.TemporaryDirectory(dir=self.staging_dir, prefix="jsonapi-") as work:
            records_file, table = Path(work) / "records.json", Path(work) / "records.csv"
            count = pages = written = 0
            with (
                GuardedFetcher(self.policy) as fetcher,
                records_file.open("w", encoding="utf-8") as out,
            ):
                out.write("[")
                for page in self._pages(fetcher, config):
                    pages += 1
                    for record in page:
                        text = ("," if count else "") + json.dumps(record, ensure_ascii=False)
                        written += len(text.encode("utf-8"))
                        if written > limit:
                            raise FileTooLarge(
                                f"the records of {self.source.url} exceed {limit:,} bytes"
                            )
                        out.write(text)
                        count += 1
                out.write("]")
            if not count:
                raise UnexpectedResponse(f"{self.source.url} returned no records")
            json_to_csv(records_file, table)
            with table.open("rb") as stream:
                staged = self.stage_stream(
                    stream,
                    remote_id=remote_id,
                    filename=f"{remote_id}.csv",
                    fmt="csv",
                    title=str(metadata.get("resource_title") or metadata["title"]),
                )
        with staged.path.open(encoding="utf-8", newline="") as head:
            columns = next(csv.reader(head))
        raw = {
            "url": self.source.url,
            "params": dict(config.params),
            "pages": pages,
            "records": count,
            "columns": columns,
            "metadata": metadata,
        }
        return HarvestedItem(remote_id, metadata, [staged], raw=raw)

    def _pages(self, fetcher: GuardedFetcher, config: JsonApiConfig) -> Iterator[list[Any]]:
        value, last = config.page_start, None
        for number in range(config.max_pages):
            params: dict[str, Any] = dict(config.params)
            if config.page_param:
                params[config.page_param] = value
            if config.page_size_param:
                params[config.page_size_param] = config.page_size
            payload = fetcher.get_json(self.source.url, params=params)
            records = _records(payload, config.records_path, first=number == 0)
            if not records:
                return
            if not all(isinstance(record, dict) for record in records):
                raise UnexpectedResponse(
                    f"page {value} of {self.source.url}: the records are not all JSON objects"
                )
            digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
            if digest == last:
                raise SourceUnavailable(
                    f"{self.source.url} returned the same page twice (at "
                    f"{config.page_param}={value}); it ignores the parameter"
                )
            last = digest
            yield records
            if not config.page_param or (config.page_size and len(records) < config.page_size):
                return
            value += 1 if config.paging == "page" else len(records)
        raise SourceUnavailable(
            f"{self.source.url} still returned records after "
            f"{config.max_pages} pages; raise the option 'max_pages'"
        )


def _records(payload: Any, path: str, *, first: bool) -> list[Any]:
    """The list at ``path``; past the first page, a missing or null list is the end."""
    data = payload
    for key in path.split(".") if path else ():
        data = data.get(key) if isinstance(data, dict) else None
        if data is None:
            if not first:
                return []
            keys = ", ".join(map(str, payload)) if isinstance(payload, dict) else "none"
            raise UnexpectedResponse(
                f"the answer has nothing at records_path {path!r} (top-level"
                f" keys: {keys}); set the option 'records_path'"
            )
    if not isinstance(data, list):
        where = f"at {path!r}" if path else "at the top level (set the option 'records_path')"
        raise UnexpectedResponse(f"expected a list of records {where}, got {type(data).__name__}")
    return data
