"""Short-lived authentication marks: counted attempts (per address, per account), used TOTP steps.

Kept in the database, not in process memory, so that every gunicorn worker sees the same counts;
with ``ONEDATA_REDIS_URL`` set, :mod:`portal.services.throttle` keeps them in Redis instead.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.models import Base, utcnow

# BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the fast rowid key.
_IdType = BigInteger().with_variant(Integer(), "sqlite")


class ThrottleHit(Base):
    """One counted event in a throttle bucket; rows are deleted once they expire.

    ``key_hash`` is an HMAC of the bucket's key (an IP address, a user id): the table never holds
    the address itself.
    """

    __tablename__ = "throttle_hit"
    __table_args__ = (Index("ix_throttle_hit_bucket", "scope", "key_hash", "created_at"),)

    id: Mapped[int] = mapped_column(_IdType, primary_key=True, autoincrement=True)
    #: The kind of bucket: ``login``, ``forgot``, ``register``, ``2fa``, ``totp-step``.
    scope: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


__all__ = ["ThrottleHit"]
