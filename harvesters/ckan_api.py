"""The CKAN Action API client of :class:`harvesters.ckan.CkanHarvester`, and its errors.

:class:`GuardedCKAN` is ``ckanapi.RemoteCKAN`` (request building, envelope decoding, HTTP 200
with ``success: false`` raised as an error) with its transport replaced by
:meth:`harvesters.http.GuardedFetcher.get_json`, so every request is address-checked,
size-capped and timed out.
"""

from __future__ import annotations

import json
from typing import Any

from ckanapi import RemoteCKAN

from harvesters.errors import FetchFailed, SourceUnavailable
from harvesters.http import GuardedFetcher

__all__ = ["CkanActionError", "GuardedCKAN", "describe_error"]


class CkanActionError(SourceUnavailable):
    """CKAN answered an action with an error envelope, a bare error string or a non-CKAN body."""

    code = "ckan-error"

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


class GuardedCKAN(RemoteCKAN):  # type: ignore[misc]  # ckanapi has no type hints
    """``RemoteCKAN`` whose GET transport is the guarded fetcher; remembers the last answer."""

    base_url = "api/3/action/"

    def __init__(self, address: str, fetcher: GuardedFetcher) -> None:
        super().__init__(
            address, user_agent=fetcher.policy.user_agent, get_only=True, session=fetcher.session
        )
        self.fetcher = fetcher
        self.last: tuple[int, Any] = (0, None)

    def _request_fn_get(
        self, url: str, data_dict: dict[str, Any] | None, headers: Any, requests_kwargs: Any
    ) -> tuple[int, str]:
        params = {
            k: str(v).lower() if isinstance(v, bool) else v for k, v in (data_dict or {}).items()
        }
        try:
            self.last = (200, self.fetcher.get_json(url, params=params))
        except FetchFailed as exc:
            if exc.status is None:  # no answer at all: not CKAN's error to decode
                raise
            self.last = (exc.status, exc.payload)
        return self.last[0], json.dumps(self.last[1])


def describe_error(status: int, payload: Any) -> str:
    """A readable account of a CKAN error answer.

    :param status: the HTTP status of the answer.
    :param payload: its parsed JSON body, or None when it was not JSON.
    """
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            message = error.get("message") or "; ".join(
                f"{k}: {v}" for k, v in error.items() if k != "__type"
            )
            text = f"{error.get('__type', 'error')}: {message}"
        else:
            text = "no result in the answer" if payload.get("success") else f"error {error!r}"
        if status == 200 and payload.get("success") is not True:
            return f"HTTP 200 with success: false ({text})"
        return f"HTTP {status} ({text})"
    if isinstance(payload, str):
        return f"HTTP {status} ({payload[:300]})"
    if payload is None:
        return f"HTTP {status}, not a CKAN Action API answer"
    return f"HTTP {status}, an unexpected {type(payload).__name__} instead of a CKAN answer"
