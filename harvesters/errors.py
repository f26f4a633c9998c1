"""Harvest errors. A harvester raises these; the base class turns them into item outcomes.

The errors of the guarded fetcher live here too, so that :mod:`harvesters.netguard` and
:mod:`harvesters.http` share them without importing each other; import them from either.
"""

from __future__ import annotations

from typing import Any


class HarvestError(Exception):
    """Base class of every error a harvester reports."""

    #: Short, stable slug used to group errors in reports and the UI.
    code = "harvest-error"


class SourceUnavailable(HarvestError):
    """The source as a whole cannot be read (unreachable, not found, malformed listing)."""

    code = "source-unavailable"


class SourceConfigError(SourceUnavailable):
    """The source's options are invalid."""

    code = "bad-config"


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


# -- the guarded fetcher ------------------------------------------------------------------------


class FetchRefused(SourceUnavailable):
    """The policy forbids this URL: scheme, address, credentials or proxy."""

    code = "fetch-refused"

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        #: The bare reason ("10.0.0.5 is a private address"), without the URL.
        self.reason = reason or message


class FetchTimeout(SourceUnavailable):
    code = "fetch-timeout"


class FetchFailed(SourceUnavailable):
    """The source answered badly: HTTP error, broken connection, too many redirects, bad JSON."""

    code = "fetch-failed"

    def __init__(self, message: str, *, status: int | None = None, payload: Any = None) -> None:
        super().__init__(message)
        self.status = status
        #: The parsed JSON body of an error answer, when there was one (CKAN explains errors there).
        self.payload = payload


class ResponseTooLarge(FileTooLarge):
    """The body is, or says it is, larger than the policy's cap."""


class CompressionBomb(FileTooLarge):
    code = "compression-bomb"


class NotModified(Unchanged):
    """The source answered 304: the item has not changed since the validators were recorded."""

    code = "not-modified"


#: Error codes that mean "the source could not be reached" (as opposed to a bad file).
UNREACHABLE_CODES = frozenset(
    {SourceUnavailable.code, FetchRefused.code, FetchTimeout.code, FetchFailed.code}
)
