"""The CKAN Action API client of :class:`harvesters.ckan.CkanHarvester`, and its errors.

:class:`GuardedCKAN` is ``ckanapi.RemoteCKAN`` (request building, envelope decoding, HTTP 200
with ``success: false`` raised as an error) with its transport replaced by
:meth:`harvesters.http.GuardedFetcher.get_json`, so every request is address-checked,
size-capped and timed out. :meth:`GuardedCKAN.run_action` turns every failure into a
:class:`CkanActionError`, and :func:`pages` reads a paged action (``package_search``,
``package_list``) to its end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from ckanapi import RemoteCKAN
from ckanapi.errors import CKANAPIError, NotAuthorized, NotFound, ServerIncompatibleError

from harvesters.errors import FetchFailed, SourceUnavailable
from harvesters.http import GuardedFetcher

__all__ = ["CkanActionError", "GuardedCKAN", "describe_error", "pages"]


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

    def run_action(self, name: str, **params: Any) -> Any:
        """Call the action ``name`` with the parameters that are not None; return its result.

        :param name: ``package_search``, ``package_list``, ``package_show``...
        :raises CkanActionError: when CKAN answers with an error, or not as CKAN.
        """
        try:
            return self.call_action(name, {k: v for k, v in params.items() if v is not None})
        except (CKANAPIError, ServerIncompatibleError, KeyError) as exc:
            status, payload = self.last
            raise CkanActionError(
                f"CKAN {name} failed: {describe_error(status, payload)}",
                not_found=isinstance(exc, NotFound | NotAuthorized),
            ) from None


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


def pages(
    call: Callable[..., Any],
    action: str,
    params: dict[str, Any],
    offset: str,
    *,
    size: int,
    max_pages: int,
) -> Iterator[list[Any]]:
    """Pages of ``action`` until an empty one; ``start`` advances by the page's length.

    Advancing by what came back rather than by ``rows`` is the same when the server honours
    ``rows``, and skips nothing when it caps them (``ckan.search.rows_max``).

    :param call: calls an action by name with keyword parameters (:meth:`GuardedCKAN.run_action`).
    :param action: ``package_search`` (pages of package dicts) or ``package_list`` (of names).
    :param params: the action's other parameters.
    :param offset: the name of the paging parameter: ``start`` or ``offset``.
    :param size: the page size (``rows``; sent as ``limit`` to ``package_list``).
    :param max_pages: the most pages read.
    :raises CkanActionError: when a page is not what ``action`` returns.
    :raises SourceUnavailable: when a page repeats, or there are more than ``max_pages``.
    """
    start, last = 0, None
    limit = {"limit": size} if action == "package_list" else {}
    for _ in range(max_pages):
        result = call(action, **params, **limit, **{offset: start})
        page = result.get("results") if isinstance(result, dict) else result
        if not isinstance(page, list) or not all(
            isinstance(p, str)
            if action == "package_list"
            else isinstance(p, dict) and isinstance(p.get("id"), str)
            for p in page
        ):
            raise CkanActionError(
                f"CKAN {action} answered an unexpected result at {offset}={start}"
            )
        if not page:
            return
        keys = [p if isinstance(p, str) else p["id"] for p in page]
        if keys == last:
            raise SourceUnavailable(
                f"CKAN returned the same page twice ({action} at "
                f"{offset}={start}); it ignores {offset!r}"
            )
        last = keys
        yield page
        if limit and len(page) > size:  # package_list ignoring limit: that was all of it
            return
        start += len(page)
    raise SourceUnavailable(
        f"CKAN {action} still had results after {max_pages}"
        " pages; raise the option 'max_pages'"
    )
