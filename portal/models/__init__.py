"""SQLAlchemy 2 typed models. Every state is an enum stored by value."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Enum, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata: ClassVar[MetaData] = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


def enum_type(cls: type[enum.Enum], length: int = 32) -> Enum:
    """Store an enum by its value in a plain string column (portable across SQLite/PostgreSQL)."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


from portal.models.accounts import (  # noqa: E402
    AccessRequest,
    ApiToken,
    PasswordReset,
    RequestStatus,
    Role,
    User,
)
from portal.models.catalog import (  # noqa: E402
    AccessLevel,
    Dataset,
    DatasetState,
    Frequency,
    Organization,
    Resource,
    Tag,
    Version,
    VersionStatus,
)
from portal.models.events import (  # noqa: E402
    EventOutcome,
    EventSeverity,
    SecurityCheckpoint,
    SecurityEvent,
    SecurityLogHead,
)
from portal.models.harvest import (  # noqa: E402
    HarvestItem,
    HarvestJob,
    HarvestSource,
    JobStatus,
)
from portal.models.oauth import (  # noqa: E402
    OAuth2AuthorizationCode,
    OAuth2Client,
    OAuth2Token,
)
from portal.models.throttle import ThrottleHit  # noqa: E402

__all__ = [
    "AccessLevel",
    "AccessRequest",
    "ApiToken",
    "Base",
    "Dataset",
    "DatasetState",
    "EventOutcome",
    "EventSeverity",
    "Frequency",
    "HarvestItem",
    "HarvestJob",
    "HarvestSource",
    "JobStatus",
    "OAuth2AuthorizationCode",
    "OAuth2Client",
    "OAuth2Token",
    "Organization",
    "PasswordReset",
    "RequestStatus",
    "Role",
    "Resource",
    "SecurityCheckpoint",
    "SecurityEvent",
    "SecurityLogHead",
    "Tag",
    "ThrottleHit",
    "User",
    "Version",
    "VersionStatus",
    "enum_type",
    "new_uuid",
    "utcnow",
]
