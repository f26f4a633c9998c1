"""The guards of every outbound request: the address policy and the connection machinery.

A source URL is typed in by a producer, and any redirect it answers with comes from a server we
do not control, so every connection is treated as an attempt to reach the portal's own network.

**Where the check happens.** The address check runs *inside the connection*, not before the
request: :func:`guarded_adapter` builds a ``requests`` adapter whose urllib3 connection classes
override ``_new_conn``. That method resolves the host once (:func:`resolve_allowed`), refuses
the request if *any* of the addresses is loopback, private, CGNAT, link-local (including the
cloud metadata service), multicast, reserved or unspecified, and then opens the socket to
exactly those checked IP addresses. There is no second lookup, so a DNS-rebinding server cannot
answer "public" to the check and "127.0.0.1" to the connect. TLS is untouched: urllib3 still
sends SNI and verifies the certificate against the host name of the URL. Because the check
lives in the connection, it covers every redirect hop and every user of a session the adapter
is mounted on (for example ``ckanapi.RemoteCKAN(session=...)``); the adapter refuses proxies,
and :class:`harvesters.http.GuardedFetcher` ignores ``HTTP(S)_PROXY``, since through a proxy we
would check the proxy's address instead of the target's.

Numeric hosts are parsed as ``inet_aton`` does (``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
``127.1``) and IPv4-mapped IPv6 (``[::ffff:127.0.0.1]``) is unwrapped, so neither can dress up a
loopback address; IPv6 addresses embedding IPv4 (6to4, NAT64) are checked for both.

**Allow-list.** ``FetchPolicy.allow_hosts`` holds host names or IPs, optionally ``host:port``
(``[v6]:port`` for IPv6), that skip the address check. It comes from the operator's
``ONEDATA_HARVEST_ALLOW_HOSTS`` (see :func:`parse_allow_hosts`,
:func:`harvesters.http.set_default_policy`), never from a source's options, which producers can
edit.

**Body guards.** :class:`Deadline` is the watchdog of the total timeout: it shuts down the
sockets the adapter opened, so a server dripping bytes cannot keep a fetch alive.
:class:`Decoder` decompresses gzip and deflate in bounded steps, so the caller can count the
output and stop a compression bomb before it sits in memory whole.

This module does not import :mod:`harvesters.http`, which builds on it; the policy it needs is
described by :class:`GuardPolicy`, which :class:`harvesters.http.FetchPolicy` satisfies.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from harvesters.errors import FetchFailed, FetchRefused

__all__ = [
    "ALLOW_HINT",
    "Deadline",
    "Decoder",
    "FetchRefused",
    "GuardPolicy",
    "IPAddress",
    "address_problem",
    "allow_entry",
    "check_url",
    "guarded_adapter",
    "host_key",
    "parse_allow_hosts",
    "resolve_allowed",
]

ALLOW_HINT = "add the host to ONEDATA_HARVEST_ALLOW_HOSTS if this source is trusted"
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_STEP = 64 * 1024  # the most one decompression step may produce

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class GuardPolicy(Protocol):
    """What the guard reads of a policy (:class:`harvesters.http.FetchPolicy` in practice)."""

    @property
    def connect_timeout(self) -> float: ...

    @property
    def read_timeout(self) -> float: ...

    def allows(self, host: str, port: int) -> bool: ...


# -- the address policy ------------------------------------------------------------------------


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
        allow_entry(entry)
    return entries


def allow_entry(entry: str) -> tuple[str, int | None]:
    """One allow-list entry as ``(canonical host, port or None)``.

    :param entry: ``host``, ``ip``, ``host:port`` or ``[v6]:port``.
    :raises ValueError: when the entry is malformed (bad port, empty host).
    """
    entry = entry.strip()
    host, port = entry, ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"bad allow-list entry {entry!r}: expected host, host:port or [v6]:port")
    return host_key(host), int(port) if port else None


def host_key(host: str) -> str:
    """``host`` as the allow-list compares it: an IP in standard form, else the lower-case name.

    :param host: a host name or an IP literal (any ``inet_aton`` spelling, brackets allowed).
    """
    literal = _literal_ip(host)
    return str(literal) if literal is not None else host.strip("[]").rstrip(".").lower()


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


def resolve_allowed(host: str, port: int, policy: GuardPolicy) -> list[str]:
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


def check_url(url: str) -> None:
    """Refuse a URL no harvester may fetch, whatever its address: the check before connecting.

    :param url: the URL of a request or of a redirect.
    :raises FetchRefused: for a malformed URL or port, a scheme other than http(s), a URL
        without a host or with credentials in it.
    """
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


# -- the connection machinery -------------------------------------------------------------------


def guarded_adapter(
    policy: GuardPolicy, on_connect: Callable[[socket.socket], None]
) -> HTTPAdapter:
    """A ``requests`` adapter that connects only to addresses :func:`resolve_allowed` checked.

    Its requests get the policy's timeouts when the caller passes none, and raise
    :class:`FetchRefused` for a refused address or for any proxy.

    :param policy: supplies the allow-list and the connect and read timeouts.
    :param on_connect: called with each socket as soon as it is open (the fetcher's watchdog).
    """
    return _GuardedAdapter(_Guard(policy, on_connect))


class _Guard:
    """Opens sockets for urllib3 connections, only to checked addresses."""

    def __init__(self, policy: GuardPolicy, on_connect: Callable[[socket.socket], None]) -> None:
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


# -- the body guards ----------------------------------------------------------------------------


class Deadline:
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


class Decoder:
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
                out = self._z.decompress(data, _STEP)
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
