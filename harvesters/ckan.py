"""The CKAN harvester: the datasets of a CKAN site, through its Action API.

**Listing** follows ckanext-harvest: ``package_search?q=*:*&sort=id asc&rows=1000&start=…&fq=…``,
``start`` advancing (by the results received) until a page comes back empty, a page identical
to the one before it is an error (the server ignores ``start``), and an id seen twice is kept
once, its newest copy. ``fq`` holds the
organization and group filters and, when the portal passes ``since``, ``metadata_modified:[<since
− 1 h>Z TO *]``. The search results are full package dicts and become the items' ``raw``. When
CKAN answers ``package_search`` with an error (its search index is down: Solr unreachable),
the harvester lists ``package_list`` (``limit``/``offset``) and calls ``package_show`` per name.

**Transport.** Actions go through ``ckanapi.RemoteCKAN`` (request building, envelope decoding,
HTTP 200 with ``success: false`` raised as an error), whose transport is replaced by
:meth:`harvesters.http.GuardedFetcher.get_json` (:mod:`harvesters.ckan_api`): every request is
address-checked, size-capped and timed out. An ``api_key`` is sent as ``Authorization`` to the
API only, which must then answer without redirects; resource files are fetched by a second
fetcher that never has it.

**Withdrawals.** After :meth:`CkanHarvester.gather`, ``seen_ids`` holds every public dataset at
the source that matches the filters (incremental runs list the ids in a second, ``fl=id``
pass). Local datasets of the source missing from it were deleted or made private remotely.

**Unchanged resources** are not downloaded: see :class:`CkanItem`.

The options are read by :class:`~harvesters.ckan_config.CkanConfig` and the package dicts mapped
to our metadata by :mod:`harvesters.ckan_metadata`; both names are importable from here too. The
Action API calls and their paging are in :mod:`harvesters.ckan_api`.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from harvesters.base import (
    HarvestedItem,
    Harvester,
    HarvestResult,
    Processor,
    SourceConfig,
    attach_table,
)
from harvesters.ckan_api import CkanActionError, GuardedCKAN, pages
from harvesters.ckan_config import CkanConfig
from harvesters.ckan_metadata import (
    EXTRA_KEYS,
    FORMATS,
    frequency,
    harvestable,
    map_metadata,
    naive_utc,
    newer,
    resource_format,
)
from harvesters.encoding import normalise_csv
from harvesters.errors import (
    HarvestError,
    InvalidItem,
    SkipItem,
    SourceConfigError,
)
from harvesters.http import FetchPolicy, GuardedFetcher, check_xlsx, policy_for
from harvesters.url import json_to_csv

__all__ = [
    "EXTRA_KEYS",
    "FORMATS",
    "CkanActionError",
    "CkanConfig",
    "CkanHarvester",
    "CkanItem",
    "SourceConfigError",
    "frequency",
    "map_metadata",
    "resource_format",
]

#: Overlap of incremental searches, against clock skew and transactions committed late.
OVERLAP = timedelta(hours=1)


@dataclasses.dataclass
class CkanItem(HarvestedItem):
    """A CKAN dataset. Files not downloaded because unchanged are *absent* from ``files``.

    The portal must therefore keep (not withdraw) the resources in ``unchanged_files``, store
    ``state`` and pass it back as ``previous[remote_id]``; ``raw`` is the package dict.
    """

    #: Remote resource ids not downloaded (or downloaded, but identical): keep their versions.
    unchanged_files: list[str] = dataclasses.field(default_factory=list)
    #: Remote resource id → why it is not harvested (format, no URL, not a JSON table).
    skipped_files: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Nothing changed: same ``metadata_modified`` as ``previous`` and no file staged.
    unchanged: bool = False
    #: What to pass back next time as ``previous[remote_id]``.
    state: dict[str, Any] = dataclasses.field(default_factory=dict)


class CkanHarvester(Harvester):
    kind = "ckan"

    def __init__(
        self, source: SourceConfig, *, staging_dir: Path, policy: FetchPolicy | None = None
    ) -> None:
        """:param policy: the fetch policy; defaults to :func:`harvesters.http.default_policy`."""
        super().__init__(source, staging_dir=staging_dir)
        self.policy = policy_for(source, policy)
        self.site = re.sub(r"(/api(/3)?(/action)?)?/*$", "", source.url.strip())
        #: Every public remote dataset id matching the filters, filled by :meth:`gather`.
        self.seen_ids: set[str] = set()
        #: Why ``package_search`` was not used (``None`` when it was).
        self.fallback_reason: str | None = None
        self._config: CkanConfig | None = None
        self._packages: dict[str, dict[str, Any]] = {}
        self._api: GuardedCKAN | None = None
        self._files: GuardedFetcher | None = None

    @property
    def config(self) -> CkanConfig:
        """The parsed options. :raises SourceConfigError: when they are invalid."""
        if self._config is None:
            self._config = CkanConfig.from_options(self.source.options)
        return self._config

    def run(self, process: Processor, **kwargs: Any) -> HarvestResult:
        """:meth:`Harvester.run`, closing the connections at the end.

        :param process: the processor; ``kwargs`` (``dry_run``, ``max_items``, ``on_item``) are
            passed on.
        """
        try:
            return super().run(process, **kwargs)
        finally:
            self.close()

    def close(self) -> None:
        """Close both fetchers (idempotent)."""
        if self._api is not None:
            self._api.fetcher.close()
        if self._files is not None:
            self._files.close()
        self._api, self._files = None, None

    def gather(self) -> list[str]:
        """List the ids of the public datasets to harvest, modified since ``since`` if set.

        :raises SourceConfigError: when the options are invalid.
        :raises CkanActionError: when both ``package_search`` and the fallback fail.
        :raises SourceUnavailable: when the source is unreachable, or pages repeat.
        """
        self.seen_ids, self._packages, self.fallback_reason = set(), {}, None
        try:
            self._packages = self._gather_search()
        except CkanActionError as exc:
            self.fallback_reason = str(exc)
            try:
                self._packages = self._gather_listing()
            except CkanActionError as again:
                raise CkanActionError(
                    f"{exc}; fallback to package_list failed too: {again}",
                    not_found=again.not_found,
                ) from again
        self.seen_ids |= set(self._packages)
        return list(self._packages)

    def fetch(self, remote_id: str) -> CkanItem:
        """Map the package's metadata and stage its CSV/XLSX/JSON resources that changed.

        A dataset harvested before is returned even when none of its resources is left, so
        that the portal can withdraw the resources missing from ``item.state["resources"]``.

        :raises SkipItem: when the dataset is private, or was never harvested and has no
            resource to harvest.
        :raises InvalidItem: when the dataset is gone or a resource cannot be staged.
        :raises SourceUnavailable: when a download fails or is refused by the fetch policy.
        """
        package = self._packages.get(remote_id)
        if package is None:
            try:
                package = self._show(remote_id)
            except CkanActionError as exc:
                if exc.not_found:
                    raise InvalidItem(f"dataset {remote_id} is no longer at the source") from exc
                raise
        if not harvestable(package):
            raise SkipItem(f"dataset {remote_id} is private, deleted or not a dataset")
        config = self.config
        before = {} if config.force_all else dict(config.previous.get(remote_id) or {})
        item = CkanItem(remote_id, map_metadata(package, self.site), [], raw=package)
        item.state = {"metadata_modified": package.get("metadata_modified"), "resources": {}}
        errors: list[HarvestError] = []
        for resource in package.get("resources") or []:
            try:
                if isinstance(resource, dict):
                    self._resource(item, resource, dict(before.get("resources") or {}))
            except HarvestError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise InvalidItem("; ".join(str(e) for e in errors))
        if not item.files and not item.unchanged_files and not before.get("resources"):
            found = ", ".join(sorted(set(item.skipped_files.values()))) or "no resources"
            raise SkipItem(f"no {'/'.join(config.formats).upper()} resource to harvest ({found})")
        item.unchanged = (
            not item.files
            and bool(before)
            and (before.get("metadata_modified") == package.get("metadata_modified"))
        )
        return item

    # -- listing --------------------------------------------------------------------------------

    def _gather_search(self) -> dict[str, dict[str, Any]]:
        config, filters = self.config, self.config.filter_terms()
        incremental = config.since is not None and not config.force_all
        terms = list(filters)
        if incremental and config.since is not None:
            cutoff = (config.since - OVERLAP).strftime("%Y-%m-%dT%H:%M:%S")
            terms.append(f"metadata_modified:[{cutoff}Z TO *]")
        found: dict[str, dict[str, Any]] = {}
        for package in self._search(terms):
            if harvestable(package) and newer(package, found.get(package["id"])):
                found[package["id"]] = package
        if incremental:  # the datasets not modified lately exist too: list their ids
            self.seen_ids = {package["id"] for package in self._search(filters, fl="id")}
        return found

    def _search(self, terms: list[str], fl: str | None = None) -> Iterator[dict[str, Any]]:
        params = {
            "q": "*:*",
            "fq": " ".join(terms) or None,
            "sort": "id asc",
            "rows": self.config.page_size,
            "fl": fl,
        }
        for page in self._pages("package_search", params, "start"):
            yield from page

    def _gather_listing(self) -> dict[str, dict[str, Any]]:
        config = self.config
        cutoff = None if config.since is None or config.force_all else config.since - OVERLAP
        found: dict[str, dict[str, Any]] = {}
        names = dict.fromkeys(n for page in self._pages("package_list", {}, "offset") for n in page)
        for name in names:
            try:
                package = self._show(str(name))
            except CkanActionError as exc:
                if exc.not_found:  # deleted or made private since the listing
                    continue
                raise
            if not harvestable(package) or not self.config.matches_filters(package):
                continue
            self.seen_ids.add(package["id"])
            modified = naive_utc(package.get("metadata_modified"))
            if cutoff is None or modified is None or modified >= cutoff:
                found[package["id"]] = package
        return found

    def _pages(self, action: str, params: dict[str, Any], offset: str) -> Iterator[list[Any]]:
        config = self.config
        return pages(
            self._action, action, params, offset, size=config.page_size, max_pages=config.max_pages
        )

    # -- actions and files ----------------------------------------------------------------------

    def _action(self, name: str, **params: Any) -> Any:
        if self._api is None:
            policy = self.policy
            if self.config.api_key:  # the key must not follow a redirect to another host
                policy = dataclasses.replace(policy, max_redirects=0)
            fetcher = GuardedFetcher(policy)
            if self.config.api_key:
                fetcher.session.headers["Authorization"] = self.config.api_key
            self._api = GuardedCKAN(self.site, fetcher)
        return self._api.run_action(name, **params)

    def _show(self, name: str) -> dict[str, Any]:
        package = self._action("package_show", id=name)
        if not isinstance(package, dict) or not isinstance(package.get("id"), str):
            raise CkanActionError(f"CKAN package_show {name}: the result is not a dataset")
        return package

    def _resource(self, item: CkanItem, resource: dict[str, Any], before: dict[str, Any]) -> None:
        rid, fmt = str(resource.get("id") or ""), resource_format(resource)
        if not rid or resource.get("state", "active") != "active":
            return
        if fmt not in self.config.formats:
            item.skipped_files[rid] = f"format {resource.get('format') or 'unknown'}"
            return
        url = urljoin(self.site + "/", str(resource.get("url") or "").strip())
        if not urlsplit(url).path.strip("/"):
            item.skipped_files[rid] = "no URL"
            return
        old = dict(before.get(rid) or {}) if before.get(rid, {}).get("url", url) == url else {}
        state = {
            "url": url,
            "last_modified": resource.get("last_modified"),
            "hash": resource.get("hash") or "",
            "sha256": old.get("sha256"),
            "etag": old.get("etag"),
            "http_last_modified": old.get("http_last_modified"),
        }
        item.state["resources"][rid] = state
        if _same_file(state, old):
            item.unchanged_files.append(rid)
            return
        if self._files is None:
            self._files = GuardedFetcher(self.policy)
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        title = str(resource.get("name") or item.metadata.get("title") or rid)
        with tempfile.TemporaryDirectory(dir=self.staging_dir, prefix="ckan-") as work:
            got = self._files.fetch_to_file(
                url, Path(work), etag=state["etag"], last_modified=state["http_last_modified"]
            )
            if not got.not_modified:
                state.update(etag=got.etag, http_last_modified=got.last_modified)
            if got.not_modified or got.path is None or got.sha256 == old.get("sha256"):
                item.unchanged_files.append(rid)
                return
            state["sha256"] = got.sha256
            table, detected = Path(work) / "table.csv", dict[str, Any]()
            try:
                if fmt == "xlsx":
                    check_xlsx(got.path, max_ratio=self.policy.max_ratio)
                elif fmt == "json":
                    json_to_csv(got.path, table)
                else:
                    detected = normalise_csv(got.path, table)
            except InvalidItem as exc:
                if fmt != "json":
                    raise InvalidItem(f"resource {title!r}: {exc}") from exc
                item.skipped_files[rid] = f"JSON that is not a table ({exc})"
                del item.state["resources"][rid]
                return
            stem = Path(unquote(urlsplit(got.url).path)).stem or rid
            with got.path.open("rb") as stream:  # the original, byte for byte
                staged = self.stage_stream(
                    stream, remote_id=rid, title=title, filename=f"{stem}.{fmt}", fmt=fmt
                )
            if fmt == "json" or detected.get("rewritten"):
                staged = attach_table(staged, table)
            item.files.append(staged)


def _same_file(state: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Unchanged without downloading: the same hash, else the same ``last_modified``."""
    if not old.get("sha256"):
        return False
    if state["hash"] and old.get("hash"):
        return bool(state["hash"] == old["hash"])
    return bool(state["last_modified"]) and state["last_modified"] == old.get("last_modified")
