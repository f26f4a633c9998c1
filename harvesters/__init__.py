"""The harvester library: one module per source kind. Never imports Flask or ``portal``."""

from __future__ import annotations

from harvesters.base import Harvester
from harvesters.ckan import CkanHarvester
from harvesters.dcat import DataJsonHarvester, DcatHarvester
from harvesters.folder import FolderHarvester
from harvesters.jsonapi import JsonApiHarvester
from harvesters.sql import SqlHarvester
from harvesters.url import UrlHarvester

#: Every harvester kind the portal knows, by name.
REGISTRY: dict[str, type[Harvester]] = {
    CkanHarvester.kind: CkanHarvester,
    DataJsonHarvester.kind: DataJsonHarvester,
    DcatHarvester.kind: DcatHarvester,
    FolderHarvester.kind: FolderHarvester,
    JsonApiHarvester.kind: JsonApiHarvester,
    SqlHarvester.kind: SqlHarvester,
    UrlHarvester.kind: UrlHarvester,
}


def get_harvester(kind: str) -> type[Harvester]:
    """Return the harvester class of ``kind``.

    :raises KeyError: when ``kind`` is unknown.
    """
    try:
        return REGISTRY[kind]
    except KeyError:
        raise KeyError(
            f"unknown harvester kind {kind!r}; known: {', '.join(sorted(REGISTRY))}"
        ) from None
