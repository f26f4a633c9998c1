"""Harvest sources: connection tests, and the masking of their secrets for pages and logs.

A connection test lists a source's items the way a harvest would, under the operator's
allow-list and short timeouts, and stores nothing. A source's URL may carry a database
password and its config an API key (``api_key`` of CKAN sources): pages and the security log
show them as :data:`MASK`, and an edit that sends :data:`MASK` back keeps the stored secret.
"""

from __future__ import annotations

import inspect
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import requests
from sqlalchemy.orm import Session

from harvesters import get_harvester
from harvesters.base import Harvester, SourceConfig
from harvesters.errors import FetchFailed, FetchRefused, FetchTimeout, HarvestError
from harvesters.http import ALLOW_HINT, FetchPolicy, GuardedFetcher, parse_allow_hosts
from harvesters.netguard import check_url
from portal.errors import Forbidden
from portal.services.access import Actor, Permission, can
from portal.services.events_scrub import is_secret_key
from portal.services.harvest import RunSettings, get_source

#: Longest time a connection test may take, in seconds.
TEST_TIMEOUT = 10.0
#: Shown instead of a password or a secret config value.
MASK = "***"
#: Kinds whose ``gather()`` lists without contacting the source: the test also requests the URL.
PROBED_KINDS = frozenset({"url", "jsonapi"})


@dataclass(frozen=True)
class ConnectionReport:
    """What a connection test found: reachable with N items, or the reason it is not."""

    reachable: bool
    seconds: float
    items: int | None = None
    #: Counting stopped at the time limit: there are at least ``items``.
    partial: bool = False
    reason: str | None = None
    error_type: str | None = None
    http_status: int | None = None


def check_connection(
    session: Session,
    actor: Actor,
    name: str,
    settings: RunSettings,
    *,
    timeout: float = TEST_TIMEOUT,
) -> ConnectionReport:
    """List the items of source ``name`` the way a harvest would, storing nothing.

    The harvester's ``gather()`` runs under the operator's allow-list with short timeouts;
    for kinds that list without contacting the source, the URL is requested too (headers only).
    No job, item, version or event is written.

    :param settings: supplies the allow-list and the size cap.
    :param timeout: the longest the test may take, in seconds.
    :raises NotFound: when there is no such source.
    :raises Forbidden: when ``actor`` may not manage it.
    """
    source = get_source(session, name)
    if not can(actor, Permission.HARVEST_SOURCE_MANAGE, org_id=source.organization_id):
        raise Forbidden("you may not manage the harvest sources of this OPD")
    policy = FetchPolicy(
        allow_hosts=parse_allow_hosts(settings.allow_hosts),
        max_bytes=settings.max_file_size,
        connect_timeout=min(timeout, 5.0),
        read_timeout=timeout,
        total_timeout=timeout,
    )
    options = dict(source.config or {})
    if source.kind == "sql":
        options["connect_timeout"] = timeout
    config = SourceConfig(
        name=source.name,
        url=source.url,
        max_file_size=settings.max_file_size,
        options=options,
        allow_hosts=settings.allow_hosts,
    )
    kind, url = source.kind, source.url
    started = time.monotonic()
    status: int | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="onedata-test-") as staging:
            harvester = _harvester(kind, config, Path(staging), policy)
            if kind in PROBED_KINDS:
                status = probe(url, policy)
            items, partial = _count(harvester.gather(), started + timeout)
    except HarvestError as exc:
        return ConnectionReport(
            False,
            time.monotonic() - started,
            reason=mask_secrets(str(exc), url),
            error_type=exc.code,
            http_status=getattr(exc, "status", None),
        )
    except Exception as exc:  # a broken source or driver: report it, never a 500
        reason = mask_secrets(f"{type(exc).__name__}: {exc}", url)
        return ConnectionReport(
            False, time.monotonic() - started, reason=reason, error_type="gather-error"
        )
    return ConnectionReport(True, time.monotonic() - started, items, partial, http_status=status)


def probe(url: str, policy: FetchPolicy) -> int:
    """Request ``url`` through the guarded fetcher and read only the status line and headers.

    :returns: the HTTP status (2xx).
    :raises FetchRefused: when the policy forbids the URL or a redirect.
    :raises FetchTimeout: when the server does not answer in time.
    :raises FetchFailed: on a broken connection or a status other than 2xx.
    """
    check_url(url)
    with GuardedFetcher(policy) as fetcher:
        try:
            response = fetcher.session.get(
                url, stream=True, timeout=(policy.connect_timeout, policy.read_timeout)
            )
        except FetchRefused as exc:
            raise FetchRefused(
                f"refused {url}: {exc.reason}; {ALLOW_HINT}", reason=exc.reason
            ) from None
        except requests.Timeout as exc:
            raise FetchTimeout(f"{url} timed out after {policy.read_timeout:g} s") from exc
        except requests.RequestException as exc:
            raise FetchFailed(f"cannot fetch {url}: {type(exc).__name__}") from exc
        with response:
            status, reason = response.status_code, response.reason
    if not 200 <= status < 300:
        raise FetchFailed(f"{url} answered HTTP {status} {reason}", status=status)
    return status


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by :data:`MASK`.

    Works on the text of the URL (``postgresql+psycopg://user:pw@host/db``, ``https://…``), so
    the rest of it stays exactly as typed.
    """
    userinfo, host = _userinfo(url)
    if userinfo is None or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return url.replace(f"{userinfo}@{host}", f"{user}:{MASK}@{host}", 1)


def restore_masked_url(submitted: str, stored: str) -> str:
    """``submitted`` with a :data:`MASK` password replaced by ``stored``'s password.

    Only for the same scheme and host: a stored password is never sent to another server.
    """
    submitted = submitted.strip()
    new, host = _userinfo(submitted)
    old, old_host = _userinfo(stored)
    if new is None or old is None or new.partition(":")[2] != MASK or ":" not in old:
        return submitted
    if (host, submitted.partition("://")[0]) != (old_host, stored.partition("://")[0]):
        return submitted
    user = new.partition(":")[0]
    password = old.partition(":")[2]
    return submitted.replace(f"{new}@{host}", f"{user}:{password}@{host}", 1)


def _userinfo(url: str) -> tuple[str | None, str]:
    """The raw ``user:password`` part of ``url``'s authority (``None`` without one), its host."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None, ""
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    userinfo, at, host = authority.rpartition("@")
    return (userinfo, host) if at else (None, host)


def mask_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the values of secret keys (``api_key``...) replaced by :data:`MASK`."""
    return {
        key: MASK
        if is_secret_key(key) and value not in (None, "")
        else mask_config(value)
        if isinstance(value, dict)
        else value
        for key, value in config.items()
    }


def restore_masked_config(submitted: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``submitted`` with each :data:`MASK` value of a secret key taken back from ``stored``."""
    restored = {}
    for key, value in submitted.items():
        old = stored.get(key)
        if value == MASK and is_secret_key(key) and key in stored:
            value = old
        elif isinstance(value, dict) and isinstance(old, dict):
            value = restore_masked_config(value, old)
        restored[key] = value
    return restored


def mask_secrets(text: str, url: str) -> str:
    """``text`` without the password of ``url`` (drivers sometimes quote the URL)."""
    userinfo, _host = _userinfo(url)
    if userinfo is None or ":" not in userinfo:
        return text
    password = userinfo.partition(":")[2]
    for form in {password, unquote(password)}:
        if form:
            text = text.replace(form, MASK)
    return text


def _harvester(kind: str, config: SourceConfig, staging: Path, policy: FetchPolicy) -> Harvester:
    cls = get_harvester(kind)
    if "policy" in inspect.signature(cls.__init__).parameters:
        return cls(config, staging_dir=staging, policy=policy)  # type: ignore[call-arg]
    return cls(config, staging_dir=staging)


def _count(ids: Iterable[str], deadline: float) -> tuple[int, bool]:
    seen: set[str] = set()
    for remote_id in ids:
        seen.add(remote_id)
        if time.monotonic() > deadline:
            return len(seen), True
    return len(seen), False


__all__ = [
    "MASK",
    "TEST_TIMEOUT",
    "ConnectionReport",
    "check_connection",
    "mask_config",
    "mask_secrets",
    "mask_url",
    "probe",
    "restore_masked_config",
    "restore_masked_url",
]
