"""The address policy of every outbound connection: which hosts, addresses and URLs are refused.

:func:`address_problem` says why an IP address must not be reached (loopback, private, CGNAT,
link-local including the cloud metadata service, multicast, reserved, unspecified); numeric hosts
are parsed as ``inet_aton`` does (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) and
IPv4-mapped IPv6 (``[::ffff:127.0.0.1]``) is unwrapped, so neither can dress up a loopback
address; IPv6 addresses embedding IPv4 (6to4, NAT64) are checked for both. :func:`check_url`
refuses what no harvester may fetch whatever its address, and :func:`parse_allow_hosts` reads the
operator's allow-list.

Nothing here opens a socket or resolves a name: :mod:`harvesters.netguard` does, and every name
of this module can be imported from there too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from harvesters.errors import FetchRefused

__all__ = [
    "ALLOW_HINT",
    "IPAddress",
    "address_problem",
    "allow_entry",
    "check_url",
    "host_key",
    "literal_ip",
    "parse_allow_hosts",
]

ALLOW_HINT = "add the host to ONEDATA_HARVEST_ALLOW_HOSTS if this source is trusted"
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    literal = literal_ip(host)
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


def literal_ip(host: str) -> IPAddress | None:
    """The address a host spells out directly (IPv4-mapped IPv6 unwrapped), else None.

    :param host: a host name or an IP literal (any ``inet_aton`` spelling, brackets allowed).
    """
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
