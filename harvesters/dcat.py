"""DCAT catalogs: DCAT-AP in Turtle, JSON-LD or RDF/XML (kind ``dcat``) and DCAT-US 1.1
``data.json`` (kind ``datajson``).

Both read the whole catalog in :meth:`gather` (every page of a ``hydra`` paged catalog), keep the
parsed datasets for :meth:`fetch`, and list the dataset ids in ``seen_ids``. A catalog that
cannot be read completely (a page fails, paging loops or exceeds ``max_pages``) fails the source
instead of listing part of it, because the datasets missing from a listing get withdrawn.

Every request (catalog pages, remote JSON-LD contexts, distributions) goes through the guarded
fetcher. rdflib would fetch a JSON-LD ``@context`` URL by itself with urllib, past the address
check, so contexts are fetched here and inlined before rdflib sees the document.

The catalogs are read into records by :mod:`harvesters.dcat_parse`, whose public names
(:func:`frequency`, :func:`license_id`, :func:`data_format`, :func:`rdf_format`) can be imported
from here as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from rdflib import Graph
from rdflib.namespace import DCAT, RDF

from harvesters.base import HarvestedItem, Harvester, SourceConfig, StagedFile
from harvesters.dcat_parse import (
    HYDRA,
    RDF_FORMATS,
    Distribution,
    Entry,
    data_format,
    frequency,
    inline_contexts,
    json_entry,
    license_id,
    rdf_entry,
    rdf_format,
    rdf_id,
)
from harvesters.errors import HarvestError, InvalidItem, SkipItem, SourceUnavailable
from harvesters.http import (
    FetchPolicy,
    FetchResult,
    GuardedFetcher,
    allow_policy,
    check_xlsx,
)

__all__ = ["CatalogOptions", "DataJsonHarvester", "DcatHarvester", "data_format", "frequency",
           "license_id", "rdf_format"]

_MAX_CONTEXTS = 10  # remote JSON-LD contexts fetched per catalog page


@dataclass(frozen=True)
class CatalogOptions:
    """``source.options`` of a ``dcat`` or ``datajson`` source."""

    #: RDF serialisation of a DCAT catalog (turtle, json-ld, xml, nt, n3), for servers that
    #: announce a wrong Content-Type; detected from Content-Type, extension and content if unset.
    format: str | None = None
    #: Distribution formats downloaded; the others are ignored.
    formats: tuple[str, ...] = ("csv", "xlsx", "json")
    #: Most catalog pages (``hydra:nextPage``) read; a longer catalog fails the source.
    max_pages: int = 100
    #: Most distributions downloaded per dataset.
    max_files: int = 20

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CatalogOptions:
        """Build and check the options of a source.

        :param options: ``source.options``.
        :raises SourceUnavailable: when a value is malformed.
        """
        try:
            made = cls(
                format=options.get("format") or None,
                formats=tuple(str(f).lower() for f in options.get("formats", cls.formats)),
                max_pages=int(options.get("max_pages", cls.max_pages)),
                max_files=int(options.get("max_files", cls.max_files)),
            )
        except (TypeError, ValueError) as exc:
            raise SourceUnavailable(f"options: {exc}") from None
        if made.format is not None and made.format not in RDF_FORMATS:
            raise SourceUnavailable(f"options.format must be one of {sorted(RDF_FORMATS)}")
        return made


class _CatalogHarvester(Harvester):
    """Shared by both kinds: read the catalog once, then download each dataset's files."""

    def __init__(
        self, source: SourceConfig, *, staging_dir: Path, policy: FetchPolicy | None = None
    ) -> None:
        """:param policy: allow-list and limits; defaults to :func:`default_policy`."""
        super().__init__(source, staging_dir=staging_dir)
        self.policy = allow_policy(source, policy)
        # source.max_file_size caps the data files, not the catalog.
        self._file_policy = dataclasses.replace(
            self.policy, max_bytes=min(self.policy.max_bytes, source.max_file_size)
        )
        #: The dataset ids the last :meth:`gather` listed; empty when it failed, so a caller that
        #: withdraws the datasets missing from it must only do so after a successful gather.
        self.seen_ids: list[str] = []
        self._entries: dict[str, Entry] | None = None

    def gather(self) -> Iterable[str]:
        """Read the whole catalog and list its datasets.

        :raises SourceUnavailable: when the catalog cannot be fetched or read completely.
        """
        self.seen_ids = []
        options = CatalogOptions.from_options(self.source.options)
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        # The catalog is parsed in memory: it gets the policy's cap for documents read whole.
        limit = min(self.policy.max_bytes, self.policy.max_json_bytes)
        with GuardedFetcher(dataclasses.replace(self.policy, max_bytes=limit)) as fetcher:
            self._entries = self._read_catalog(fetcher, options)
        self.seen_ids = list(self._entries)
        return list(self.seen_ids)

    def fetch(self, remote_id: str) -> HarvestedItem:
        """Download the CSV/XLSX/JSON distributions of one dataset.

        :raises InvalidItem: when the dataset left the catalog or a file is not what it claims.
        :raises SkipItem: when the dataset has no distribution in a harvested format.
        :raises SourceUnavailable: when a download fails or is refused (``FetchRefused``...).
        """
        entries = self._entries if self._entries is not None else self._gathered()
        entry = entries.get(remote_id)
        if entry is None:
            raise InvalidItem(f"{remote_id} is no longer in the catalog")
        if entry.problem:
            raise SkipItem(entry.problem)
        options = CatalogOptions.from_options(self.source.options)
        wanted = [d for d in entry.distributions if d.format in options.formats]
        if not wanted:
            raise SkipItem(f"no {'/'.join(options.formats).upper()} distribution")
        files: list[StagedFile] = []
        with GuardedFetcher(self._file_policy) as fetcher:
            try:
                for distribution in wanted[: options.max_files]:
                    files.append(self._download(fetcher, distribution))
            except BaseException:
                for staged in files:
                    staged.path.unlink(missing_ok=True)
                raise
        return HarvestedItem(remote_id, dict(entry.metadata), files, raw=entry.raw)

    def _gathered(self) -> dict[str, Entry]:
        self.gather()
        return self._entries or {}

    def _download(self, fetcher: GuardedFetcher, dist: Distribution) -> StagedFile:
        result = fetcher.fetch_to_file(dist.url, self.staging_dir)
        path = _body(result)
        try:
            if result.content_type in ("text/html", "application/xhtml+xml"):
                raise InvalidItem(f"{result.url} is a web page, not a {dist.format} file")
            if dist.format == "xlsx":
                check_xlsx(path, max_ratio=self.policy.max_ratio)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        name = Path(urlsplit(result.url).path).name
        if not name.lower().endswith(f".{dist.format}"):
            name = f"{re.sub(r'[^A-Za-z0-9]+', '-', dist.title).strip('-')[:80]}.{dist.format}"
        return StagedFile(dist.remote_id, dist.title, path, name, str(dist.format),
                          result.sha256 or "", result.size)

    @abstractmethod
    def _read_catalog(self, fetcher: GuardedFetcher, options: CatalogOptions) -> dict[str, Entry]:
        """The catalog's datasets by remote id; raise SourceUnavailable rather than list part."""

    @staticmethod
    def _add(entries: dict[str, Entry], remote_id: str | None, title: str, entry: Entry) -> None:
        if not remote_id:  # a blank node or no identifier: nothing stable to follow between runs
            entry.problem = "the dataset has no IRI or identifier to follow between runs"
            remote_id = f"blank:{hashlib.sha256(title.encode()).hexdigest()[:16]}"
        entries.setdefault(remote_id, entry)


class DcatHarvester(_CatalogHarvester):
    """A DCAT-AP catalog in Turtle, JSON-LD, RDF/XML, N-Triples or N3, paged or not."""

    kind = "dcat"

    def _read_catalog(self, fetcher: GuardedFetcher, options: CatalogOptions) -> dict[str, Entry]:
        graph, url, pages = Graph(), self.source.url, [self.source.url]
        while True:
            page = self._read_page(fetcher, url, options)
            graph += page
            links = {*page.objects(None, HYDRA.nextPage), *page.objects(None, HYDRA.next)}
            if not links:
                break
            url = urljoin(url, str(min(links, key=str)))
            if url in pages:
                raise SourceUnavailable(f"catalog paging loops back to {url}")
            if len(pages) >= options.max_pages:
                raise SourceUnavailable(f"the catalog has more than {options.max_pages} pages "
                                        "(options.max_pages)")
            pages.append(url)
        datasets = sorted(set(graph.subjects(RDF.type, DCAT.Dataset)), key=str)
        if not datasets and (None, RDF.type, DCAT.Catalog) not in graph:
            raise SourceUnavailable(f"{self.source.url} holds no dcat:Catalog or dcat:Dataset")
        entries: dict[str, Entry] = {}
        for node in datasets:
            entry = rdf_entry(graph, node)
            self._add(entries, rdf_id(graph, node), entry.metadata["title"], entry)
        return entries

    def _read_page(self, fetcher: GuardedFetcher, url: str, options: CatalogOptions) -> Graph:
        result = fetcher.fetch_to_file(url, self.staging_dir)
        try:
            body = _body(result).read_bytes()
        finally:
            _body(result).unlink(missing_ok=True)
        fmt = options.format or rdf_format(result.content_type, result.url, body)
        if fmt == "xml" and b"<!ENTITY" in body:
            # Entity expansion ("billion laughs") keeps rdflib's RDF/XML handler busy for hours.
            raise SourceUnavailable(f"{result.url}: RDF/XML with entity declarations is refused")
        page = Graph()
        try:
            if fmt == "json-ld":
                cache: dict[str, Any] = {}

                def load(ref: str) -> Any:
                    if ref not in cache:
                        if len(cache) >= _MAX_CONTEXTS:
                            raise SourceUnavailable(f"more than {_MAX_CONTEXTS} JSON-LD contexts")
                        cache[ref] = fetcher.get_json(ref)
                    return cache[ref]

                document = inline_contexts(json.loads(body.decode("utf-8-sig")), url, load)
                page.parse(data=json.dumps(document), format="json-ld", publicID=result.url)
            else:
                page.parse(data=body, format=fmt, publicID=result.url)
        except HarvestError:
            raise
        except Exception as exc:  # rdflib raises a different type per parser
            raise SourceUnavailable(f"{result.url} is not valid {fmt}: {type(exc).__name__}: "
                                    f"{exc}") from None
        return page


def _body(result: FetchResult) -> Path:
    if result.path is None:  # only a conditional request (never made here) has no body
        raise SourceUnavailable(f"{result.url} answered without a body (HTTP {result.status})")
    return result.path


class DataJsonHarvester(_CatalogHarvester):
    """A DCAT-US 1.1 ``data.json`` catalog (or a bare list of datasets, as in DCAT-US 1.0)."""

    kind = "datajson"

    def _read_catalog(self, fetcher: GuardedFetcher, options: CatalogOptions) -> dict[str, Entry]:
        document = fetcher.get_json(self.source.url)
        datasets = document.get("dataset") if isinstance(document, dict) else document
        if not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
            raise SourceUnavailable(f"{self.source.url} is not a data.json catalog")
        entries: dict[str, Entry] = {}
        for dataset in datasets:
            entry = json_entry(dataset, self.source.url)
            self._add(entries, str(dataset.get("identifier") or "").strip(),
                      str(dataset.get("title")), entry)
        return entries

