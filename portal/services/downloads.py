"""Which downloads the security log keeps: those of non-public data.

Restricted and internal data reach only people with a grant, the owning OPD and stewards; each
time they take a copy, who took what is recorded. Public downloads are not logged: there are
many and the city owes no account of them.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from portal.models import AccessLevel, Version
from portal.models.events import SecurityEvent
from portal.services.access import Actor
from portal.services.events import EventTag, RequestInfo, record_event

#: ``kind`` of the original file as harvested; any other kind is a derived export format.
ORIGINAL = "original"


def record_data_access(
    session: Session,
    actor: Actor,
    version: Version,
    kind: str = ORIGINAL,
    *,
    request: RequestInfo | None = None,
) -> SecurityEvent | None:
    """Record a download of ``version`` when its dataset is not public.

    The original file is a ``data:dataset:download``; a derived format (``csv``, …) a
    ``data:dataset:export``. The caller has already checked that ``actor`` may have the data.

    :param actor: who downloads.
    :param version: the version served.
    :param kind: :data:`ORIGINAL` or the export format.
    :param request: the HTTP context.
    :returns: the event, or ``None`` for public data.
    """
    dataset = version.resource.dataset
    if dataset.access_level is AccessLevel.PUBLIC:
        return None
    tag = EventTag.DATA_DATASET_DOWNLOAD if kind == ORIGINAL else EventTag.DATA_DATASET_EXPORT
    return record_event(
        session,
        tag,
        actor=actor,
        target=dataset,
        details={
            "dataset": dataset.name,
            "access_level": dataset.access_level.value,
            "resource": version.resource_id,
            "version": version.number,
            "format": version.format if kind == ORIGINAL else kind,
            "rows": version.row_count,
        },
        request=request,
    )
