"""The options of a CKAN source, read and checked once: :class:`CkanConfig`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from harvesters.ckan_metadata import FORMATS, naive_utc
from harvesters.errors import SourceConfigError

__all__ = ["CkanConfig"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # CKAN names; anything else could rewrite the fq


@dataclasses.dataclass(frozen=True)
class CkanConfig:
    """Options of a CKAN source (``source.options``); ckanext-harvest's names are accepted too."""

    organizations: tuple[str, ...] = ()
    """Harvest only datasets of these organizations (names). Empty: all."""
    exclude_organizations: tuple[str, ...] = ()
    """Never harvest datasets of these organizations."""
    groups: tuple[str, ...] = ()
    """Harvest only datasets in one of these groups (names). Empty: all."""
    exclude_groups: tuple[str, ...] = ()
    """Never harvest datasets in these groups."""
    since: datetime | None = None
    """Start of the last successful gather (UTC), set by the portal: only datasets modified
    since one hour before it are fetched. ``None``: everything."""
    force_all: bool = False
    """Ignore ``since`` and ``previous``: list and download everything."""
    page_size: int = 1000
    """``rows`` of ``package_search`` and ``limit`` of ``package_list`` (CKAN caps rows at 1000)."""
    max_pages: int = 10_000
    """Give up after this many pages: a server that never returns an empty page."""
    api_key: str | None = dataclasses.field(default=None, repr=False)
    """CKAN API token, sent as ``Authorization`` to the API (never to file hosts, never logged)."""
    formats: tuple[str, ...] = FORMATS
    """Resource formats to download, among csv, xlsx and json; other resources are listed in
    ``CkanItem.skipped_files``."""
    previous: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    """Set by the portal: remote dataset id → the ``CkanItem.state`` of its last harvest,
    ``{"metadata_modified", "resources": {id: {"last_modified", "hash", "sha256", ...}}}``."""

    _ALIASES: ClassVar[dict[str, str]] = {
        "organizations_filter_include": "organizations",
        "organizations_filter_exclude": "exclude_organizations",
        "groups_filter_include": "groups",
        "groups_filter_exclude": "exclude_groups",
    }

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CkanConfig:
        """Read and check the options; unknown keys are ignored (the portal adds its own).

        :param options: ``source.options``.
        :raises SourceConfigError: when an option has the wrong type or value.
        """
        values = {cls._ALIASES.get(k, k): v for k, v in options.items() if v is not None}
        kwargs: dict[str, Any] = {}
        for name in ("organizations", "exclude_organizations", "groups", "exclude_groups"):
            names = values.get(name, ())
            if isinstance(names, str) or not all(
                isinstance(n, str) and _NAME.match(n) for n in names
            ):
                raise SourceConfigError(f"option {name!r} must be a list of CKAN names")
            kwargs[name] = tuple(names)
        formats = values.get("formats", FORMATS)
        formats = () if isinstance(formats, str) else tuple(str(f).lower() for f in formats)
        if not formats or not set(formats) <= set(FORMATS):
            raise SourceConfigError(f"option 'formats' may hold only {', '.join(FORMATS)}")
        for name in ("page_size", "max_pages"):
            number = values.get(name, getattr(cls, name))
            if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                raise SourceConfigError(f"option {name!r} must be a positive integer")
            kwargs[name] = number
        if not isinstance(values.get("previous", {}), Mapping):
            raise SourceConfigError("option 'previous' must be an object")
        if not isinstance(values.get("force_all", False), bool):
            raise SourceConfigError("option 'force_all' must be true or false")
        if not isinstance(values.get("api_key", ""), str):
            raise SourceConfigError("option 'api_key' must be a string")
        return cls(
            **kwargs,
            formats=formats,
            since=_parse_since(values.get("since")),
            force_all=values.get("force_all", False),
            api_key=values.get("api_key") or None,
            previous=values.get("previous", {}),
        )

    def filter_terms(self) -> list[str]:
        """The ``fq`` terms of ``package_search`` for the organization and group filters."""
        terms: list[str] = []
        for field, include, exclude in (
            ("organization", self.organizations, self.exclude_organizations),
            ("groups", self.groups, self.exclude_groups),
        ):
            if include:
                terms.append("(" + " OR ".join(f"{field}:{name}" for name in include) + ")")
            terms += [f"-{field}:{name}" for name in exclude]
        return terms

    def matches_filters(self, package: Mapping[str, Any]) -> bool:
        """Whether a package passes the organization and group filters (as ``fq`` would).

        :param package: a ``package_show`` result.
        """
        org = (package.get("organization") or {}).get("name")
        groups = {g.get("name") for g in package.get("groups") or [] if isinstance(g, dict)}
        return (
            (not self.organizations or org in self.organizations)
            and org not in self.exclude_organizations
            and (not self.groups or bool(groups & set(self.groups)))
            and not groups & set(self.exclude_groups)
        )


def _parse_since(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    moment = naive_utc(value)
    if moment is None:
        raise SourceConfigError(f"option 'since' must be an ISO 8601 time, not {value!r}")
    return moment
