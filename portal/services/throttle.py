"""Counting attempts across processes: per-address throttles, per-account second-factor limits.

A bucket is a ``(scope, key)`` pair, e.g. ``("login", "203.0.113.7")``; a :class:`Limit` allows
``max_hits`` hits in a sliding ``window``. Hits live in the ``throttle_hit`` table
(:class:`DatabaseThrottle`, in the caller's transaction) or, when the portal has Redis, in one
sorted set per bucket (:class:`RedisThrottle`). Either way every gunicorn worker sees the same
counts, and keys are stored only as an HMAC, so the table never holds an address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portal.models import utcnow
from portal.models.throttle import ThrottleHit
from portal.services.harvest_schedule import aware

__all__ = ["DatabaseThrottle", "Limit", "RedisThrottle", "Throttle", "bucket_hash"]


@dataclass(frozen=True)
class Limit:
    """At most ``max_hits`` hits per bucket of ``scope`` in any ``window``."""

    scope: str
    max_hits: int
    window: timedelta


def bucket_hash(pepper: bytes, scope: str, key: str) -> str:
    """The stored form of a bucket key: HMAC-SHA256 with the app's secret, hex.

    :param pepper: a secret of the deployment (the app's secret key), so hashes of the small
        IPv4 space cannot be reversed by brute force, and two portals sharing a Redis never mix.
    :param scope: the bucket's scope.
    :param key: the bucket's key (an address, a user id).
    """
    return hmac.new(pepper, f"{scope}\x00{key}".encode(), hashlib.sha256).hexdigest()


class Throttle(Protocol):
    """Where hits are counted."""

    def hit(self, limit: Limit, key: str) -> int:
        """Count one hit; return the number of hits in the window, this one included."""
        ...

    def retry_after(self, limit: Limit, key: str) -> int | None:
        """Seconds until the bucket accepts another attempt; ``None`` when it does now."""
        ...

    def seen(self, limit: Limit, key: str) -> bool:
        """Whether the bucket holds any hit in the window (used-once markers)."""
        ...


def _wait(stamps: list[datetime], limit: Limit, now: datetime) -> int | None:
    """Seconds until fewer than ``max_hits`` of ``stamps`` (ascending) are inside the window."""
    if len(stamps) < limit.max_hits:
        return None
    freed_at = stamps[len(stamps) - limit.max_hits] + limit.window
    return max(1, math.ceil((freed_at - now).total_seconds()))


class DatabaseThrottle:
    """Hits as rows of ``throttle_hit``, written in the caller's transaction."""

    def __init__(self, session: Session, pepper: bytes) -> None:
        """:param session: the unit of work the hits commit with.
        :param pepper: see :func:`bucket_hash`.
        """
        self.session = session
        self.pepper = pepper

    def _stamps(self, limit: Limit, key: str, now: datetime) -> list[datetime]:
        rows = self.session.scalars(
            select(ThrottleHit.created_at)
            .where(
                ThrottleHit.scope == limit.scope,
                ThrottleHit.key_hash == bucket_hash(self.pepper, limit.scope, key),
                ThrottleHit.created_at > now - limit.window,
            )
            .order_by(ThrottleHit.created_at)
        )
        return [aware(stamp) for stamp in rows]

    def hit(self, limit: Limit, key: str) -> int:
        """Add a row and drop every expired one (of any bucket), so the table stays small."""
        now = utcnow()
        self.session.execute(delete(ThrottleHit).where(ThrottleHit.expires_at <= now))
        self.session.add(
            ThrottleHit(
                scope=limit.scope,
                key_hash=bucket_hash(self.pepper, limit.scope, key),
                created_at=now,
                expires_at=now + limit.window,
            )
        )
        self.session.flush()
        return len(self._stamps(limit, key, now))

    def retry_after(self, limit: Limit, key: str) -> int | None:
        """See :meth:`Throttle.retry_after`."""
        now = utcnow()
        return _wait(self._stamps(limit, key, now), limit, now)

    def seen(self, limit: Limit, key: str) -> bool:
        """See :meth:`Throttle.seen`."""
        return bool(self._stamps(limit, key, utcnow()))


class RedisThrottle:
    """Hits as members of one sorted set per bucket (score: the time), expiring with the window."""

    def __init__(self, client: Any, pepper: bytes, prefix: str = "onedata:throttle:") -> None:
        """:param client: a ``redis.Redis`` connection.
        :param pepper: see :func:`bucket_hash`.
        :param prefix: prepended to every key.
        """
        self.client = client
        self.pepper = pepper
        self.prefix = prefix

    def _key(self, limit: Limit, key: str) -> str:
        return f"{self.prefix}{limit.scope}:{bucket_hash(self.pepper, limit.scope, key)}"

    def _stamps(self, limit: Limit, key: str, now: datetime) -> list[datetime]:
        name = self._key(limit, key)
        pipe = self.client.pipeline()
        pipe.zremrangebyscore(name, "-inf", (now - limit.window).timestamp())
        pipe.zrange(name, 0, -1, withscores=True)
        _removed, members = pipe.execute()
        return [datetime.fromtimestamp(score, now.tzinfo) for _member, score in members]

    def hit(self, limit: Limit, key: str) -> int:
        """See :meth:`Throttle.hit`."""
        now = utcnow()
        name = self._key(limit, key)
        pipe = self.client.pipeline()
        pipe.zadd(name, {uuid.uuid4().hex: now.timestamp()})
        pipe.zremrangebyscore(name, "-inf", (now - limit.window).timestamp())
        pipe.zcard(name)
        pipe.expire(name, math.ceil(limit.window.total_seconds()))
        _added, _removed, count, _expire = pipe.execute()
        return int(count)

    def retry_after(self, limit: Limit, key: str) -> int | None:
        """See :meth:`Throttle.retry_after`."""
        now = utcnow()
        return _wait(self._stamps(limit, key, now), limit, now)

    def seen(self, limit: Limit, key: str) -> bool:
        """See :meth:`Throttle.seen`."""
        return bool(self._stamps(limit, key, utcnow()))
