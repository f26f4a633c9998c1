"""The guards of every outbound request: checked name resolution and the connection machinery.

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

**Allow-list.** ``FetchPolicy.allow_hosts`` holds host names or IPs, optionally ``host:port``
(``[v6]:port`` for IPv6), that skip the address check. It comes from the operator's
``ONEDATA_HARVEST_ALLOW_HOSTS`` (see :func:`parse_allow_hosts`,
:func:`harvesters.http.set_default_policy`), never from a source's options, which producers can
edit.

The address policy (:func:`address_problem`, :func:`check_url`, the allow-list) lives in
:mod:`harvesters.netguard_address`, the body guards (:class:`Deadline`, :class:`Decoder`) in
:mod:`harvesters.http_body`; their names can be imported from here as before.

This module does not import :mod:`harvesters.http`, which builds on it; the policy it needs is
described by :class:`GuardPolicy`, which :class:`harvesters.http.FetchPolicy` satisfies.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from harvesters.errors import FetchRefused
from harvesters.http_body import Deadline, Decoder
from harvesters.netguard_address import (
    ALLOW_HINT,
    IPAddress,
    address_problem,
    allow_entry,
    check_url,
    host_key,
    literal_ip,
    parse_allow_hosts,
)

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


class GuardPolicy(Protocol):
    """What the guard reads of a policy (:class:`harvesters.http.FetchPolicy` in practice)."""

    @property
    def connect_timeout(self) -> float: ...

    @property
    def read_timeout(self) -> float: ...

    def allows(self, host: str, port: int) -> bool: ...


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
    literal = literal_ip(name)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        found = (literal_ip(str(info[4][0]).split("%")[0]) for info in infos)
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

