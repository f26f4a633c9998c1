"""Harvest errors. A harvester raises these; the base class turns them into item outcomes."""

from __future__ import annotations


class HarvestError(Exception):
    """Base class of every error a harvester reports."""

    #: Short, stable slug used to group errors in reports and the UI.
    code = "harvest-error"


class SourceUnavailable(HarvestError):
    """The source as a whole cannot be read (unreachable, not found, malformed listing)."""

    code = "source-unavailable"


class SkipItem(HarvestError):
    """The item is deliberately not harvested (unsupported format, filtered out)."""

    code = "skipped"


class Unchanged(SkipItem):
    """The item has not changed at the source since the last harvest (nothing was fetched)."""

    code = "unchanged"


class InvalidItem(HarvestError):
    """The item was reached but its content or metadata is unusable."""

    code = "invalid-item"


class FileTooLarge(InvalidItem):
    code = "file-too-large"
