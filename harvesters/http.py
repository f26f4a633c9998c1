"""The one guarded HTTP fetcher every harvester uses.

A source URL is typed in by a producer, and any redirect it answers with comes from a server we
do not control, so every request is treated as an attempt to reach the portal's own network.

**Address check.** :class:`GuardedFetcher` mounts the adapter of :mod:`harvesters.netguard`,
which checks the addresses *inside the connection*: the host is resolved once, refused if any
address is not public (unless allow-listed), and the socket opens to exactly the checked
addresses. That covers every redirect hop and every user of :attr:`GuardedFetcher.session`
(for example ``ckanapi.RemoteCKAN(session=...)``); the session refuses proxies and ignores
``HTTP(S)_PROXY``, since through a proxy we would check the proxy's address instead of the
target's. The allow-list, ``FetchPolicy.allow_hosts``, comes from the operator's
``ONEDATA_HARVEST_ALLOW_HOSTS`` (see :func:`parse_allow_hosts`, :func:`set_default_policy`),
never from a source's options, which producers can edit.

**Limits.** Connect and read timeouts go to every socket; the total timeout is a watchdog that
shuts the sockets of the current fetch down, so a server dripping bytes (even headers) cannot
keep a harvest running. Bodies are capped by ``Content-Length`` up front and by counting while
streaming. Only gzip and deflate are accepted, decompressed in bounded steps with a size and a
ratio limit. Redirects are followed by hand, at most ``max_redirects``.

The address policy's names (:func:`address_problem`, :func:`resolve_allowed`...), the fetch
errors (defined in :mod:`harvesters.errors`), the policy (:mod:`harvesters.http_policy`) and the
body guards (:func:`check_xlsx`, in :mod:`harvesters.http_body`) can be imported from here as
before.

A fetcher is meant for one thread at a time (``requests.Session`` is not thread-safe): create
one per harvest run, and close it.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from harvesters.errors import (
    CompressionBomb,
    FetchFailed,
    FetchRefused,
    FetchTimeout,
    NotModified,
    ResponseTooLarge,
)
from harvesters.http_body import Deadline, check_xlsx, copy_body, total_timeout
from harvesters.http_policy import (
    USER_AGENT,
    FetchPolicy,
    allow_policy,
    default_policy,
    policy_for,
    set_default_policy,
)
from harvesters.netguard import (
    ALLOW_HINT,
    IPAddress,
    address_problem,
    check_url,
    guarded_adapter,
    parse_allow_hosts,
    resolve_allowed,
)

__all__ = [
    "ALLOW_HINT",
    "USER_AGENT",
    "CompressionBomb",
    "FetchFailed",
    "FetchPolicy",
    "FetchRefused",
    "FetchResult",
    "FetchTimeout",
    "GuardedFetcher",
    "IPAddress",
    "NotModified",
    "ResponseTooLarge",
    "address_problem",
    "allow_policy",
    "check_xlsx",
    "default_policy",
    "parse_allow_hosts",
    "policy_for",
    "resolve_allowed",
    "set_default_policy",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchResult:
    """What one fetch produced: the body on disk, or "not modified"."""

    #: The final URL, after redirects.
    url: str
    status: int
    headers: Mapping[str, str]
    #: The body, streamed to a file in ``dest_dir``; None when not modified.
    path: Path | None = None
    not_modified: bool = False
    #: sha256 of the (decompressed) body as written to ``path``.
    sha256: str | None = None
    size: int = 0

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("Last-Modified")

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()


class GuardedFetcher:
    """Fetches URLs under a :class:`FetchPolicy`; use as a context manager, or call close()."""

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or default_policy()
        self._deadline: Deadline | None = None
        adapter = guarded_adapter(self.policy, self._watch)
        self._session = requests.Session()
        self._session.trust_env = False  # no HTTP(S)_PROXY, no .netrc: see harvesters.netguard
        self._session.max_redirects = self.policy.max_redirects
        self._session.headers.update(
            {"User-Agent": self.policy.user_agent, "Accept-Encoding": "gzip, deflate"}
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    @property
    def session(self) -> requests.Session:
        """The address-checked session, for clients that need one (``ckanapi``).

        Every connection it opens is address-checked and, unless the caller passes its own,
        gets the policy's connect and read timeouts; requests follows redirects itself, at most
        ``max_redirects``. The size caps and the total timeout apply only through
        :meth:`fetch_to_file` and :meth:`get_json`.
        """
        return self._session

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GuardedFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch_to_file(
        self, url: str, dest_dir: Path, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """Download ``url`` into a new file in ``dest_dir``, following checked redirects.

        :param url: an http(s) URL.
        :param dest_dir: an existing folder; the file gets a fresh name there.
        :param etag: the previous ``ETag``, sent as ``If-None-Match``.
        :param last_modified: the previous ``Last-Modified``, sent as ``If-Modified-Since``.
        :raises FetchRefused: when the URL, or a redirect, is forbidden by the policy.
        :raises FetchTimeout: when a timeout expires.
        :raises FetchFailed: on an HTTP error, a broken connection or too many redirects.
        :raises ResponseTooLarge: when the body exceeds ``policy.max_bytes``.
        :raises CompressionBomb: when the body decompresses beyond ``policy.max_ratio``.
        """
        headers = {"If-None-Match": etag, "If-Modified-Since": last_modified}
        conditional = {k: v for k, v in headers.items() if v}
        with self._deadline_scope() as deadline:
            response, final = self._open(url, conditional, deadline)
            with response:
                status, got = response.status_code, response.headers
                if status == 304 and conditional:
                    return FetchResult(final, status, got, not_modified=True)
                if not 200 <= status < 300:
                    raise FetchFailed(
                        f"{final} answered HTTP {status} {response.reason}", status=status
                    )
                suffix = Path(urlsplit(final).path).suffix[:10]
                fd, name = tempfile.mkstemp(prefix="fetch-", suffix=suffix, dir=dest_dir)
                path = Path(name)
                try:
                    with os.fdopen(fd, "wb") as out:
                        sha, size = copy_body(
                            response, final, out, self.policy.max_bytes, deadline, self.policy
                        )
                except BaseException:
                    path.unlink(missing_ok=True)
                    raise
        return FetchResult(final, status, got, path=path, sha256=sha, size=size)

    def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``url`` and parse its JSON body, under the same guards and ``max_json_bytes``.

        :param url: an http(s) URL.
        :param params: query parameters added to the URL.
        :raises FetchFailed: on an HTTP error (with the JSON error body as ``payload``) or a body
            that is not JSON; see :meth:`fetch_to_file` for the other errors.
        """
        if params:
            url = requests.Request("GET", url, params=params).prepare().url or url
        buffer = io.BytesIO()
        with self._deadline_scope() as deadline:
            response, final = self._open(url, {"Accept": "application/json"}, deadline)
            with response:
                status = response.status_code
                copy_body(
                    response, final, buffer, self.policy.max_json_bytes, deadline, self.policy
                )
        try:
            payload = json.loads(buffer.getvalue().removeprefix(b"\xef\xbb\xbf"))
        except ValueError as exc:
            if 200 <= status < 300:
                raise FetchFailed(f"{final} is not JSON ({exc})", status=status) from exc
            payload = None
        if not 200 <= status < 300:
            raise FetchFailed(f"{final} answered HTTP {status}", status=status, payload=payload)
        return payload

    @contextmanager
    def _deadline_scope(self) -> Iterator[Deadline]:
        deadline = Deadline(self.policy.total_timeout)
        self._deadline = deadline
        try:
            yield deadline
        finally:
            deadline.cancel()
            self._deadline = None

    def _watch(self, sock: socket.socket) -> None:
        if self._deadline is not None:
            self._deadline.watch(sock)

    def _timeout(self, url: str) -> FetchTimeout:
        return total_timeout(url, self.policy)

    def _open(
        self, url: str, headers: dict[str, str], deadline: Deadline
    ) -> tuple[requests.Response, str]:
        # One connection per request ("Connection: close"), so that every socket of this
        # fetch is opened, hence checked and watched, while this fetch's deadline is current.
        sent: dict[str, str | None] = {**headers, "Connection": "close"}
        origin = _origin(url)
        for _hop in range(self.policy.max_redirects + 1):
            check_url(url)
            if _origin(url) != origin:  # credentials set on the session stay with their host
                sent.update({"Authorization": None, "Cookie": None})
            if deadline.passed:
                raise self._timeout(url)
            try:
                response = self._session.get(
                    url,
                    headers=sent,
                    stream=True,
                    allow_redirects=False,
                    timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                )
            except FetchRefused as exc:
                raise FetchRefused(
                    f"refused {url}: {exc.reason}; {ALLOW_HINT}", reason=exc.reason
                ) from None
            except requests.RequestException as exc:
                if deadline.passed or isinstance(exc, requests.Timeout):
                    raise FetchTimeout(f"{url} timed out: {_why(exc)}") from exc
                raise FetchFailed(f"cannot fetch {url}: {_why(exc)}") from exc
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                return response, url
            response.close()
            url = urljoin(url, location)
        raise FetchFailed(f"{url}: more than {self.policy.max_redirects} redirects")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


#: urllib3's prefix naming its connection pool, noise in a message meant for an operator.
_POOL = re.compile(r"\w*ConnectionPool\(host=[^)]*\): ")


def _why(exc: requests.RequestException) -> str:
    """The root cause of a requests error, without urllib3's pool and object reprs."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    text = str(getattr(reason, "_message", None) or reason or exc)
    return _POOL.sub("", text)  # "HTTPConnectionPool(host='…', port=…): Read timed out."
