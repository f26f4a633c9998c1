"""The harvester library: one module per source kind. Never imports Flask or ``portal``."""

from __future__ import annotations

from harvesters.base import Harvester
from harvesters.folder import FolderHarvester
from harvesters.url import UrlHarvester

#: Every harvester kind the portal knows, by name.
REGISTRY: dict[str, type[Harvester]] = {
    FolderHarvester.kind: FolderHarvester,
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
