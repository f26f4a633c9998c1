"""Access requests: a member asks for a restricted dataset, a steward grants or refuses.

A grant is an :class:`~portal.models.AccessRequest` in state ``granted`` with an expiry;
:func:`portal.services.accounts.actor_for` turns the current ones into the actor's ``grants``,
so :func:`portal.services.access.can` honours them (and ignores them once expired or revoked).
Lifecycle: ``pending → granted → revoked`` or ``pending → refused``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from portal.errors import Conflict, Forbidden, Invalid, NotFound
from portal.models import AccessLevel, AccessRequest, Dataset, RequestStatus, User, utcnow
from portal.services.access import Actor, Permission, can, visible_datasets
from portal.services.events import EventTag, RequestInfo, record_event
from portal.services.harvest_schedule import aware

__all__ = [
    "DEFAULT_GRANT",
    "MAX_GRANT",
    "decide",
    "get_request",
    "list_for_user",
    "still_visible",
    "list_grants",
    "list_pending",
    "pending_request",
    "request_access",
    "revoke",
]

#: How long a grant lasts when the steward gives no expiry, and the longest allowed.
DEFAULT_GRANT = timedelta(days=365)
MAX_GRANT = timedelta(days=3 * 365)
MIN_PURPOSE = 20
MAX_TEXT = 2000

#: The tags these events should carry. Until ``portal.services.events`` catalogues them, the
#: nearest catalogued tag is used (``None``: not recorded) and ``details["event"]`` names the
#: intended one.
PROPOSED_TAGS: dict[str, EventTag | None] = {
    "access:grant:revoke": EventTag.AUTHZ_ROLE_REVOKE,
    "access:request:create": None,
    "access:request:grant": EventTag.AUTHZ_ROLE_GRANT,
    "access:request:refuse": EventTag.AUTHZ_ACCESS_DENY,
}


def _tag(name: str) -> EventTag | None:
    try:
        return EventTag(name)
    except ValueError:
        return PROPOSED_TAGS[name]


def _record(
    session: Session,
    name: str,
    actor: Actor,
    request: AccessRequest,
    info: RequestInfo | None,
    **details: object,
) -> None:
    tag = _tag(name)
    if tag is None:
        return
    record_event(
        session,
        tag,
        actor=actor,
        target=("access_request", request.id),
        details={"event": name, "dataset_id": request.dataset_id, "user_id": request.user_id}
        | details,
        request=info,
    )


def _text(value: str, field: str, minimum: int, message: str) -> str:
    text = (value or "").strip()
    if len(text) < minimum or len(text) > MAX_TEXT:
        raise Invalid(message, [{"field": field, "code": "invalid", "message": message}])
    return text


def _require_steward(actor: Actor) -> None:
    if not can(actor, Permission.ACCESS_REQUEST_DECIDE):
        raise Forbidden("only data stewards decide access requests")


def request_access(
    session: Session,
    actor: Actor,
    dataset: Dataset,
    purpose: str,
    *,
    info: RequestInfo | None = None,
) -> AccessRequest:
    """Ask for access to the data of a published restricted dataset.

    :param actor: the signed-in member (or producer of another OPD) asking.
    :param dataset: the dataset wanted.
    :param purpose: why the data is needed (at least ``MIN_PURPOSE`` characters).
    :param info: the HTTP context, for the security log.
    :raises NotFound: when ``actor`` may not even see the dataset.
    :raises Forbidden: when ``actor`` is anonymous, or the dataset cannot be requested
        (public, internal or unpublished) or the actor's role or token may not request.
    :raises Conflict: when the actor can already read the data or a request is pending.
    :raises Invalid: when the purpose is missing or too short.
    """
    if actor.user_id is None:
        raise Forbidden("sign in to request access")
    if not can(actor, Permission.CATALOG_DATASET_VIEW, dataset):
        raise NotFound(f"dataset {dataset.name!r} not found")
    if dataset.access_level is AccessLevel.RESTRICTED and can(
        actor, Permission.CATALOG_DATASET_DOWNLOAD, dataset
    ):
        raise Conflict("you can already read the data of this dataset")
    if dataset.access_level is not AccessLevel.RESTRICTED or not can(
        actor, Permission.ACCESS_REQUEST_CREATE, dataset
    ):
        raise Forbidden("access can only be requested for published restricted datasets")
    text = _text(
        purpose,
        "purpose",
        MIN_PURPOSE,
        f"describe the purpose in {MIN_PURPOSE} to {MAX_TEXT} characters",
    )
    # Lock the requester's row: two simultaneous submissions cannot both pass the check below.
    session.scalars(select(User.id).where(User.id == actor.user_id).with_for_update()).first()
    if pending_request(session, actor.user_id, dataset) is not None:
        raise Conflict("you already have a pending request for this dataset")
    request = AccessRequest(dataset_id=dataset.id, user_id=actor.user_id, purpose=text)
    session.add(request)
    session.flush()
    _record(session, "access:request:create", actor, request, info)
    return request


def pending_request(session: Session, user_id: int, dataset: Dataset) -> AccessRequest | None:
    """The user's pending request for ``dataset``, if any.

    :param user_id: the requester.
    :param dataset: the dataset.
    """
    return session.scalars(
        select(AccessRequest).where(
            AccessRequest.user_id == user_id,
            AccessRequest.dataset_id == dataset.id,
            AccessRequest.status == RequestStatus.PENDING,
        )
    ).first()


def get_request(session: Session, request_id: int) -> AccessRequest:
    """One access request by id.

    :raises NotFound: when there is none.
    """
    request = session.get(AccessRequest, request_id)
    if request is None:
        raise NotFound("no such access request")
    return request


def decide(
    session: Session,
    actor: Actor,
    request: AccessRequest,
    grant: bool,
    reason: str = "",
    expires_at: datetime | None = None,
    *,
    info: RequestInfo | None = None,
) -> AccessRequest:
    """Grant (until ``expires_at``) or refuse (with ``reason``) a pending request.

    :param actor: a steward.
    :param request: the pending request.
    :param grant: ``True`` to grant, ``False`` to refuse.
    :param reason: why; required when refusing, an optional note when granting.
    :param expires_at: when a grant ends; ``None`` means ``DEFAULT_GRANT`` from now.
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` is not a steward, or decides their own request.
    :raises Conflict: when the request was already decided, or the dataset is no longer
        published and restricted (a grant would mean nothing).
    :raises Invalid: when a refusal has no reason, or the expiry is past or too far away.
    """
    _require_steward(actor)
    if actor.user_id is not None and request.user_id == actor.user_id:
        raise Forbidden("you cannot decide your own access request")
    if request.status is not RequestStatus.PENDING:
        raise Conflict(f"this request was already {request.status.value}")
    now = utcnow()
    if grant:
        dataset = request.dataset
        if dataset.access_level is not AccessLevel.RESTRICTED:
            raise Conflict("the dataset is no longer restricted: nothing to grant")
        until = aware(expires_at) if expires_at is not None else now + DEFAULT_GRANT
        if until <= now or until > now + MAX_GRANT:
            message = f"the expiry must be in the future and within {MAX_GRANT.days} days"
            raise Invalid(message, [{"field": "expires_at", "code": "invalid", "message": message}])
        note = (reason or "").strip()[:MAX_TEXT]
        request.status, request.expires_at, request.reason = RequestStatus.GRANTED, until, note
    else:
        text = _text(reason, "reason", 1, "give the requester a reason for the refusal")
        request.status, request.reason, request.expires_at = RequestStatus.REFUSED, text, None
    request.decided_by_id = actor.user_id
    request.decided_at = now
    session.flush()
    if request.expires_at is not None:
        expiry = aware(request.expires_at).isoformat()
        _record(session, "access:request:grant", actor, request, info, expires_at=expiry)
    else:
        _record(session, "access:request:refuse", actor, request, info)
    return request


def revoke(
    session: Session,
    actor: Actor,
    grant: AccessRequest,
    reason: str = "",
    *,
    info: RequestInfo | None = None,
) -> AccessRequest:
    """End a grant before its expiry; the data is unreadable to its holder at once.

    :param actor: a steward.
    :param grant: a granted request.
    :param reason: why, kept on the request (optional).
    :param info: the HTTP context, for the security log.
    :raises Forbidden: when ``actor`` is not a steward.
    :raises Conflict: when ``grant`` is not a current grant.
    """
    _require_steward(actor)
    if grant.status is not RequestStatus.GRANTED:
        raise Conflict("only granted requests can be revoked")
    grant.status = RequestStatus.REVOKED
    grant.decided_by_id = actor.user_id
    grant.decided_at = utcnow()
    grant.reason = (reason or "").strip()[:MAX_TEXT]
    session.flush()
    _record(session, "access:grant:revoke", actor, grant, info)
    return grant


_RELATIONS = (
    selectinload(AccessRequest.dataset).selectinload(Dataset.organization),
    selectinload(AccessRequest.user),
    selectinload(AccessRequest.decided_by),
)


def list_pending(session: Session, actor: Actor) -> list[AccessRequest]:
    """Requests waiting for a steward, oldest first.

    :raises Forbidden: when ``actor`` is not a steward.
    """
    _require_steward(actor)
    return list(
        session.scalars(
            select(AccessRequest)
            .where(AccessRequest.status == RequestStatus.PENDING)
            .options(*_RELATIONS)
            .order_by(AccessRequest.created_at, AccessRequest.id)
        )
    )


def list_grants(
    session: Session, actor: Actor, *, include_expired: bool = False
) -> list[AccessRequest]:
    """Current grants (not revoked, not expired unless asked), soonest expiry first.

    :param include_expired: also list grants whose expiry has passed.
    :raises Forbidden: when ``actor`` is not a steward.
    """
    _require_steward(actor)
    query = select(AccessRequest).where(AccessRequest.status == RequestStatus.GRANTED)
    if not include_expired:
        query = query.where(
            or_(AccessRequest.expires_at.is_(None), AccessRequest.expires_at > utcnow())
        )
    return list(
        session.scalars(
            query.options(*_RELATIONS).order_by(AccessRequest.expires_at, AccessRequest.id)
        )
    )


def list_for_user(session: Session, actor: Actor) -> list[AccessRequest]:
    """The signed-in actor's own requests, newest first.

    :raises Forbidden: when ``actor`` is anonymous.
    """
    if actor.user_id is None:
        raise Forbidden("sign in to see your access requests")
    return list(
        session.scalars(
            select(AccessRequest)
            .where(AccessRequest.user_id == actor.user_id)
            .options(*_RELATIONS)
            .order_by(AccessRequest.created_at.desc(), AccessRequest.id.desc())
        )
    )


def still_visible(session: Session, actor: Actor, requests: list[AccessRequest]) -> set[str]:
    """Ids of the requests' datasets that ``actor`` may still see in the catalog.

    A request outlives its dataset's visibility (withdrawn, or made internal since): its list
    must then not show the dataset's title or name.
    """
    ids = {r.dataset_id for r in requests}
    if not ids:
        return set()
    query = select(Dataset.id).where(Dataset.id.in_(sorted(ids)), visible_datasets(actor))
    return set(session.scalars(query))
