"""The limits of every request: :class:`FetchPolicy`, and the default one the portal sets.

The allow-list, ``FetchPolicy.allow_hosts``, comes from the operator's
``ONEDATA_HARVEST_ALLOW_HOSTS`` (see :func:`harvesters.netguard.parse_allow_hosts`,
:func:`set_default_policy`), never from a source's options, which producers can edit. Every name
here can be imported from :mod:`harvesters.http` too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from harvesters.base import SourceConfig
from harvesters.netguard_address import allow_entry, host_key, parse_allow_hosts

__all__ = [
    "USER_AGENT",
    "FetchPolicy",
    "allow_policy",
    "default_policy",
    "policy_for",
    "set_default_policy",
]

USER_AGENT = "one-data-harvester/0.1 (+https://data.pontianak.go.id)"


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of every request a :class:`~harvesters.http.GuardedFetcher` makes."""

    #: Hosts (``name``, ``ip``, ``name:port``, ``[v6]:port``) that skip the address check.
    allow_hosts: frozenset[str] = frozenset()
    #: Largest body, in bytes, after decompression.
    max_bytes: int = 200 * 1024 * 1024
    #: Largest JSON document :meth:`~harvesters.http.GuardedFetcher.get_json` reads into memory.
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
        object.__setattr__(self, "_allowed", frozenset(map(allow_entry, self.allow_hosts)))

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is on the allow-list (host compared in canonical form)."""
        key = host_key(host)
        return (key, None) in self._allowed or (key, port) in self._allowed


_default = FetchPolicy()


def set_default_policy(policy: FetchPolicy) -> None:
    """Set the policy harvesters use when none is passed (the portal calls this at start-up).

    :param policy: usually ``FetchPolicy(allow_hosts=parse_allow_hosts(setting))``.
    """
    global _default
    _default = policy


def allow_policy(source: SourceConfig, policy: FetchPolicy | None = None) -> FetchPolicy:
    """The policy for ``source``: an explicit one, else the default widened by the source's
    ``allow_hosts`` and with its ``timeouts`` (the operator's settings, never producer options)."""
    if policy is not None:
        return policy
    chosen = default_policy()
    if source.allow_hosts:
        hosts = chosen.allow_hosts | parse_allow_hosts(source.allow_hosts)
        chosen = dataclasses.replace(chosen, allow_hosts=hosts)
    if source.timeouts is not None:
        connect, read, total = source.timeouts
        chosen = dataclasses.replace(
            chosen, connect_timeout=connect, read_timeout=read, total_timeout=total
        )
    return chosen


def policy_for(source: SourceConfig, policy: FetchPolicy | None = None) -> FetchPolicy:
    """:func:`allow_policy`, with downloads capped to the source's largest file.

    :param source: the source being harvested.
    :param policy: an explicit policy, which wins over the source's allow-list.
    """
    chosen = allow_policy(source, policy)
    return dataclasses.replace(chosen, max_bytes=min(chosen.max_bytes, source.max_file_size))


def default_policy() -> FetchPolicy:
    """The policy set by :func:`set_default_policy`, else the defaults (empty allow-list)."""
    return _default
