"""The one guarded HTTP fetcher every harvester uses.

A source URL is typed in by a producer, and any redirect it answers with comes from a server we
do not control, so every request is treated as an attempt to reach the portal's own network.

**Where the check happens.** The address check runs *inside the connection*, not before the
request: :class:`GuardedFetcher` mounts a ``requests`` adapter whose urllib3 connection classes
override ``_new_conn``. That method resolves the host once (:func:`resolve_allowed`), refuses
the request if *any* of the addresses is loopback, private, CGNAT, link-local (including the
cloud metadata service), multicast, reserved or unspecified, and then opens the socket to
exactly those checked IP addresses. There is no second lookup, so a DNS-rebinding server cannot
answer "public" to the check and "127.0.0.1" to the connect. TLS is untouched: urllib3 still
sends SNI and verifies the certificate against the host name of the URL. Because the check
lives in the connection, it covers every redirect hop and every user of
:attr:`GuardedFetcher.session` (for example ``ckanapi.RemoteCKAN(session=...)``); the session
refuses proxies and ignores ``HTTP(S)_PROXY``, since through a proxy we would check the proxy's
address instead of the target's.

Numeric hosts are parsed as ``inet_aton`` does (``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
``127.1``) and IPv4-mapped IPv6 (``[::ffff:127.0.0.1]``) is unwrapped, so neither can dress up a
loopback address; IPv6 addresses embedding IPv4 (6to4, NAT64) are checked for both.

**Allow-list.** ``FetchPolicy.allow_hosts`` holds host names or IPs, optionally ``host:port``
(``[v6]:port`` for IPv6), that skip the address check. It comes from the operator's
``ONEDATA_HARVEST_ALLOW_HOSTS`` (see :func:`parse_allow_hosts`, :func:`set_default_policy`),
never from a source's options, which producers can edit.

**Limits.** Connect and read timeouts go to every socket; the total timeout is a watchdog that
shuts the sockets of the current fetch down, so a server dripping bytes (even headers) cannot
keep a harvest running. Bodies are capped by ``Content-Length`` up front and by counting while
streaming. Only gzip and deflate are accepted, decompressed here in bounded steps with a size
and a ratio limit. Redirects are followed by hand, at most ``max_redirects``.

A fetcher is meant for one thread at a time (``requests.Session`` is not thread-safe): create
one per harvest run, and close it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import ipaddress
import json
import os
import re
import socket
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.connection import create_connection

from harvesters.base import SourceConfig
from harvesters.errors import FileTooLarge, InvalidItem, SourceUnavailable, Unchanged

__all__ = [
    "CompressionBomb",
    "FetchFailed",
    "FetchPolicy",
    "FetchRefused",
    "FetchResult",
    "FetchTimeout",
    "GuardedFetcher",
    "NotModified",
    "ResponseTooLarge",
    "address_problem",
    "check_xlsx",
    "default_policy",
    "parse_allow_hosts",
    "resolve_allowed",
    "set_default_policy",
]

USER_AGENT = "one-data-harvester/0.1 (+https://data.pontianak.go.id)"
ALLOW_HINT = "add the host to ONEDATA_HARVEST_ALLOW_HOSTS if this source is trusted"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_RATIO_FLOOR = 1024 * 1024  # below this, a high ratio is a small repetitive file, not a bomb
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of every request a :class:`GuardedFetcher` makes."""

    #: Hosts (``name``, ``ip``, ``name:port``, ``[v6]:port``) that skip the address check.
    allow_hosts: frozenset[str] = frozenset()
    #: Largest body, in bytes, after decompression.
    max_bytes: int = 200 * 1024 * 1024
    #: Largest JSON document :meth:`GuardedFetcher.get_json` reads into memory.
    max_json_bytes: int = 32 * 1024 * 1024
    #: Largest decompressed/compressed ratio of a gzip or deflate body (and of XLSX entries).
    max_ratio: float = 200.0
    connect_timeout: float = 10.0
    #: Longest wait for any single read from the socket.
    read_timeout: float = 30.0
    #: Longest time one fetch (all redirects and the whole body) may take.
    total_timeout: float = 300.0
    max_redirects: int = 5
    user_agent: str = USER_AGENT
    _allowed: frozenset[tuple[str, int | None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Parsed once; raises ValueError for a malformed entry at configuration time.
        object.__setattr__(self, "_allowed", frozenset(map(_allow_entry, self.allow_hosts)))

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is on the allow-list (host compared in canonical form)."""
        key = _host_key(host)
        return (key, None) in self._allowed or (key, port) in self._allowed


def parse_allow_hosts(setting: str | Iterable[str] | None) -> frozenset[str]:
    """Parse the ``ONEDATA_HARVEST_ALLOW_HOSTS`` setting: entries split on commas or whitespace.

    :param setting: ``"files.opd.local, 10.1.2.3:8080 [fd00::5]:443"`` or a list of entries.
    :raises ValueError: when an entry is malformed (bad port, empty host).
    """
    if setting is None:
        return frozenset()
    items = re.split(r"[,\s]+", setting) if isinstance(setting, str) else list(setting)
    entries = frozenset(item.strip() for item in items if item.strip())
    for entry in entries:
        _allow_entry(entry)
    return entries


def _allow_entry(entry: str) -> tuple[str, int | None]:
    entry = entry.strip()
    host, port = entry, ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"bad allow-list entry {entry!r}: expected host, host:port or [v6]:port")
    return _host_key(host), int(port) if port else None


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse ``host`` as ``inet_aton`` does: 1-4 parts, each decimal, octal (0..) or hex (0x..)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p[2:] or "0", 16)
        if p[:2].lower() == "0x"
        else int(p, 8 if len(p) > 1 and p[0] == "0" else 10)
        for p in parts
    ]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = sum(v << (24 - 8 * i) for i, v in enumerate(head)) + last
    return ipaddress.IPv4Address(number)


def _literal_ip(host: str) -> IPAddress | None:
    """The address a host spells out directly (IPv4-mapped IPv6 unwrapped), else None."""
    host = host.strip("[]").rstrip(".")
    if ":" in host:
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError:
            return None
        return ip6.ipv4_mapped or ip6
    return _numeric_ipv4(host)


def _host_key(host: str) -> str:
    literal = _literal_ip(host)
    return str(literal) if literal is not None else host.strip("[]").rstrip(".").lower()


_default = FetchPolicy()


def set_default_policy(policy: FetchPolicy) -> None:
    """Set the policy harvesters use when none is passed (the portal calls this at start-up).

    :param policy: usually ``FetchPolicy(allow_hosts=parse_allow_hosts(setting))``.
    """
    global _default
    _default = policy


def policy_for(source: SourceConfig, policy: FetchPolicy | None = None) -> FetchPolicy:
    """The policy a harvester of ``source`` fetches with, capped to the source's file size.

    :param source: its ``allow_hosts`` (the operator's setting, never producer options) widens
        the default policy's allow-list when set.
    :param policy: an explicit policy, which wins.
    """
    if policy is None:
        policy = (
            FetchPolicy(allow_hosts=parse_allow_hosts(source.allow_hosts))
            if source.allow_hosts
            else default_policy()
        )
    return dataclasses.replace(policy, max_bytes=min(policy.max_bytes, source.max_file_size))


def default_policy() -> FetchPolicy:
    """The policy set by :func:`set_default_policy`, else the defaults (empty allow-list)."""
    return _default


def address_problem(ip: IPAddress) -> str | None:
    """Why a harvester must not connect to ``ip`` ("a private address"), or None if it may.

    :param ip: an IPv4 or IPv6 address.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and (problem := address_problem(embedded)):
            return f"{problem} (embedded {embedded})"
    checks = (
        (ip in _METADATA, "a link-local address (the cloud metadata service)"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.version == 4 and ip in _CGNAT, "a shared (carrier-grade NAT) address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a public address"),
    )
    return next((reason for failed, reason in checks if failed), None)


def resolve_allowed(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """Resolve ``host`` once and return the addresses to connect to, all of them checked.

    Connect only to the returned addresses: resolving again would reopen the DNS-rebinding window.

    :param host: a host name or an IP literal (any ``inet_aton`` spelling, brackets allowed).
    :param port: the port the connection will use (the allow-list may name ports).
    :param policy: supplies the allow-list.
    :raises FetchRefused: when any address is not public and ``host:port`` is not allow-listed.
    :raises socket.gaierror: when the name does not resolve.
    """
    name = host.strip("[]")
    literal = _literal_ip(name)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        found = (_literal_ip(str(info[4][0]).split("%")[0]) for info in infos)
        addresses = list(dict.fromkeys(ip for ip in found if ip is not None))
    if not policy.allows(name, port):
        for ip in addresses:
            if problem := address_problem(ip):
                if name == str(ip):
                    reason = f"{name} is {problem}"
                elif literal is not None:
                    reason = f"{name} is {ip}, {problem}"
                else:
                    reason = f"{name} resolves to {ip}, {problem}"
                raise FetchRefused(f"refused {name}:{port}: {reason}; {ALLOW_HINT}", reason=reason)
    return [str(ip) for ip in addresses]


class _Guard:
    """Opens sockets for urllib3 connections, only to checked addresses."""

    def __init__(self, policy: FetchPolicy, on_connect: Callable[[socket.socket], None]) -> None:
        self.policy = policy
        self.on_connect = on_connect

    def connect(self, conn: HTTPConnection) -> socket.socket:
        try:
            addresses = resolve_allowed(conn.host, conn.port, self.policy)
        except socket.gaierror as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc
        error: OSError | None = None
        for address in addresses:
            try:
                sock = create_connection(
                    (address, conn.port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except OSError as exc:  # try the next address, as urllib3 does
                error = exc
                continue
            self.on_connect(sock)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(conn, f"connection to {conn.host} timed out") from error
        raise NewConnectionError(conn, f"cannot connect to {conn.host}: {error}") from error


def _pool_classes(guard: _Guard) -> dict[str, type[HTTPConnectionPool]]:
    class Connection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return guard.connect(self)

    class TLSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return guard.connect(self)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    return {"http": Pool, "https": TLSPool}


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, guard: _Guard) -> None:
        super().__init__()
        self.timeouts = (guard.policy.connect_timeout, guard.policy.read_timeout)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(guard)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        # Clients of the bare session (ckanapi) often pass no timeout: never wait forever.
        timeout = self.timeouts if timeout is None else timeout
        return super().send(request, stream, timeout, verify, cert, proxies)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        reason = "a proxy would bypass the address check"
        raise FetchRefused(f"refused proxy {proxy}: {reason}", reason=reason)


class _Deadline:
    """The total timeout: a watchdog that shuts down the sockets opened during one fetch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self._expired:
                _shutdown(sock)

    @property
    def passed(self) -> bool:
        return self._expired or time.monotonic() >= self._at

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv(); close() alone would not
    except OSError:
        pass  # already closed


class _Decoder:
    """Decompresses gzip/deflate in bounded steps, so a bomb never sits in memory whole."""

    def __init__(self, encoding: str, url: str) -> None:
        self.encoding = encoding.strip().lower()
        self.url = url
        self._wbits = {
            "gzip": 16 + zlib.MAX_WBITS,
            "x-gzip": 16 + zlib.MAX_WBITS,
            "deflate": zlib.MAX_WBITS,
        }.get(self.encoding, 0)
        if self.encoding not in ("", "identity") and not self._wbits:
            raise FetchFailed(
                f"{url} uses Content-Encoding {encoding!r}; only gzip and deflate are accepted"
            )
        self._z = zlib.decompressobj(self._wbits) if self._wbits else None
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._z is None:
            yield data
            return
        while data:
            try:
                out = self._z.decompress(data, _CHUNK)
            except zlib.error as exc:
                if self.encoding == "deflate" and not self._started:
                    # "deflate" is often sent raw, without the zlib wrapper the RFC asks for.
                    self._wbits, self._z = -zlib.MAX_WBITS, zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise FetchFailed(f"{self.url}: corrupt {self.encoding} body ({exc})") from exc
            self._started = True
            yield out
            data = self._z.unconsumed_tail
            if self._z.eof and self._z.unused_data.strip(b"\0"):  # another gzip member follows
                data = self._z.unused_data + data
                self._z = zlib.decompressobj(self._wbits)

    def flush(self) -> bytes:
        return self._z.flush() if self._z is not None else b""


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
        self._deadline: _Deadline | None = None
        adapter = _GuardedAdapter(_Guard(self.policy, self._watch))
        self._session = requests.Session()
        self._session.trust_env = False  # no HTTP(S)_PROXY, no .netrc: see the module docstring
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
                        sha, size = self._copy(
                            response, final, out, self.policy.max_bytes, deadline
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
                self._copy(response, final, buffer, self.policy.max_json_bytes, deadline)
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
    def _deadline_scope(self) -> Iterator[_Deadline]:
        deadline = _Deadline(self.policy.total_timeout)
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
        return FetchTimeout(
            f"{url} took longer than the total timeout of {self.policy.total_timeout:g} s"
        )

    def _open(
        self, url: str, headers: dict[str, str], deadline: _Deadline
    ) -> tuple[requests.Response, str]:
        # One connection per request ("Connection: close"), so that every socket of this
        # fetch is opened, hence checked and watched, while this fetch's deadline is current.
        sent: dict[str, str | None] = {**headers, "Connection": "close"}
        origin = _origin(url)
        for _hop in range(self.policy.max_redirects + 1):
            _check_url(url)
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

    def _copy(
        self,
        response: requests.Response,
        url: str,
        out: IO[bytes],
        limit: int,
        deadline: _Deadline,
    ) -> tuple[str, int]:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(
                f"{url} is {int(declared):,} bytes (Content-Length), more than "
                f"the limit of {limit:,} bytes"
            )
        decoder = _Decoder(response.headers.get("Content-Encoding", ""), url)
        digest, raw, size = hashlib.sha256(), 0, 0
        while True:
            if deadline.passed:
                raise self._timeout(url)
            try:
                chunk = response.raw.read1(_CHUNK, decode_content=False)
            except (HTTPError, HTTPException, OSError) as exc:
                if deadline.passed:
                    raise self._timeout(url) from exc
                if isinstance(exc, ReadTimeoutError | TimeoutError):
                    raise FetchTimeout(
                        f"{url} sent nothing for {self.policy.read_timeout:g} s after {raw:,} bytes"
                    ) from exc
                raise FetchFailed(f"{url}: connection broken after {raw:,} bytes ({exc})") from exc
            raw += len(chunk)
            # Lazily: one compressed chunk may hold a thousand times its size.
            for piece in decoder.feed(chunk) if chunk else iter([decoder.flush()]):
                size += len(piece)
                if size > limit:
                    raise ResponseTooLarge(f"{url} is larger than the limit of {limit:,} bytes")
                if size > _RATIO_FLOOR and size > raw * self.policy.max_ratio:
                    raise CompressionBomb(
                        f"{url}: {decoder.encoding} body expands more than "
                        f"{self.policy.max_ratio:g} times ({raw:,} bytes became {size:,})"
                    )
                digest.update(piece)
                out.write(piece)
            if not chunk:
                break
        if deadline.passed:  # the watchdog ends a close-delimited body looking complete
            raise self._timeout(url)
        return digest.hexdigest(), size


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _why(exc: requests.RequestException) -> str:
    """The root cause of a requests error, without urllib3's pool and object reprs."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return str(getattr(reason, "_message", None) or reason or exc)


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise FetchRefused(f"refused {url}: not a valid URL ({exc})", reason=str(exc)) from None
    if parts.scheme.lower() not in ("http", "https"):
        reason = f"only http and https URLs are harvested, not {parts.scheme or 'no scheme'!r}"
        raise FetchRefused(f"refused {url}: {reason}", reason=reason)
    if not parts.hostname:
        raise FetchRefused(f"refused {url}: the URL has no host", reason="the URL has no host")
    if parts.username or parts.password:
        reason = "credentials in the URL are not accepted (they would be stored and logged)"
        raise FetchRefused(
            f"refused {url.replace(parts.netloc, parts.hostname)}: {reason}", reason=reason
        )


def check_xlsx(
    path: Path,
    max_uncompressed: int = 1024 * 1024 * 1024,
    max_ratio: float = 200.0,
    *,
    max_entries: int = 10_000,
) -> None:
    """Refuse an XLSX whose zip directory promises a decompression bomb, before anyone opens it.

    Reading the directory is enough: :mod:`zipfile` (which openpyxl uses) stops each entry at its
    declared size, so the declared sizes bound what a reader can be made to decompress.

    :param path: the downloaded file.
    :param max_uncompressed: largest total of the entries' uncompressed sizes.
    :param max_ratio: largest uncompressed/compressed ratio of one entry (above 1 MiB).
    :param max_entries: most entries in the archive.
    :raises InvalidItem: when the file is not a zip archive.
    :raises CompressionBomb: when a limit is exceeded.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise InvalidItem(f"{path.name} is not a valid XLSX file ({exc})") from exc
    if len(entries) > max_entries:
        raise CompressionBomb(f"{path.name} holds {len(entries):,} entries (limit {max_entries:,})")
    total = sum(entry.file_size for entry in entries)
    if total > max_uncompressed:
        raise CompressionBomb(
            f"{path.name} would expand to {total:,} bytes (limit {max_uncompressed:,})"
        )
    for entry in entries:
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > _RATIO_FLOOR and ratio > max_ratio:
            raise CompressionBomb(
                f"{path.name}: {entry.filename} expands {ratio:,.0f} times (limit {max_ratio:g})"
            )
