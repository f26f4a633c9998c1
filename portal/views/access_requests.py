"""Access requests: a member asks for a restricted dataset; stewards grant or refuse.

- ``/dataset/<name>/request-access``: the request form (purpose);
- ``/account/requests``: the member's own requests;
- ``/workspace/access-requests``: stewards decide pending requests and revoke grants.

The dataset page includes ``access/_dataset_access.html``, which asks
:func:`access_request_state` what to offer ("Minta akses", pending, granted, sign in).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import DateField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.db import get_session
from portal.errors import Invalid
from portal.identity import current_actor, request_info
from portal.models import (
    AccessLevel,
    AccessRequest,
    Dataset,
    DatasetState,
    RequestStatus,
    utcnow,
)
from portal.services import access_requests as service
from portal.services import catalog
from portal.services.access import Permission, can
from portal.services.accounts import TokenRefused
from portal.services.harvest_schedule import aware
from portal.views.guards import FlaskForm, login_url, require, signed_in, submitted

bp = Blueprint("access_requests", __name__)

#: Local time of the city (WIB, no daylight saving): "access until 30 June" ends that evening.
WIB = timedelta(hours=7)


class RequestForm(FlaskForm):
    purpose = TextAreaField(
        _l("Purpose"),
        validators=[
            DataRequired(message=_l("Describe what you need the data for.")),
            Length(
                min=service.MIN_PURPOSE,
                max=service.MAX_TEXT,
                message=_l("Between %(min)d and %(max)d characters, please."),
            ),
        ],
    )


class GrantForm(FlaskForm):
    expires_on = DateField(_l("Access until"), validators=[DataRequired()])
    note = StringField(_l("Note (optional)"), validators=[Optional(), Length(max=500)])


class RefuseForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason"),
        validators=[
            DataRequired(message=_l("Give the requester a reason.")),
            Length(max=service.MAX_TEXT),
        ],
    )


class RevokeGrantForm(FlaskForm):
    reason = StringField(_l("Reason (optional)"), validators=[Optional(), Length(max=500)])


def end_of_day(day: date) -> datetime:
    """The last second of ``day`` in Pontianak, as UTC."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC) - WIB


def default_expiry() -> date:
    return (utcnow() + WIB + service.DEFAULT_GRANT).date()


@bp.app_context_processor
def dataset_access() -> dict[str, Any]:
    return {"access_request_state": access_request_state}


def access_request_state(dataset: Dataset) -> str | None:
    """What the dataset page offers about access: ``None`` (nothing), ``sign_in``, ``request``,
    ``pending`` or ``granted``."""
    if dataset.access_level is not AccessLevel.RESTRICTED:
        return None
    if dataset.state is not DatasetState.PUBLISHED:
        return None
    try:
        actor = current_actor()
    except TokenRefused:
        return None
    if not actor.is_authenticated:
        return "sign_in"
    if can(actor, Permission.CATALOG_DATASET_DOWNLOAD, dataset):
        return "granted" if dataset.id in actor.grants else None
    if actor.user_id is None or not can(actor, Permission.ACCESS_REQUEST_CREATE, dataset):
        return None
    if service.pending_request(get_session(), actor.user_id, dataset) is not None:
        return "pending"
    return "request"


@bp.app_template_global()
def access_sign_in_url(dataset: Dataset) -> str:
    return login_url(url_for("access_requests.request_form", name=dataset.name))


@bp.route("/dataset/<name>/request-access", methods=["GET", "POST"])
def request_form(name: str) -> ResponseReturnValue:
    actor, _user = signed_in()
    session = get_session()
    dataset = catalog.get_dataset(session, actor, name)
    state = access_request_state(dataset)
    form = RequestForm()
    if state == "request" and submitted(form):
        service.request_access(
            session, actor, dataset, form.purpose.data or "", info=request_info(302)
        )
        flash(_("Your request was sent to the data stewards."), "good")
        return redirect(url_for("access_requests.my_requests"))
    status = 400 if form.is_submitted() and state == "request" else 200
    html = render_template("access/request_form.html", dataset=dataset, form=form, state=state)
    return html, status


@bp.get("/account/requests")
def my_requests() -> str:
    actor, _user = signed_in()
    session = get_session()
    requests = service.list_for_user(session, actor)
    return render_template(
        "access/my_requests.html",
        requests=requests,
        visible=service.still_visible(session, actor, requests),
        grant_state=grant_state,
    )


def grant_state(item: AccessRequest) -> str:
    """The request's status, with ``expired`` for grants past their expiry."""
    if (
        item.status is RequestStatus.GRANTED
        and item.expires_at is not None
        and aware(item.expires_at) <= utcnow()
    ):
        return "expired"
    return item.status.value


@bp.get("/workspace/access-requests")
def steward_page() -> str:
    actor = require(Permission.ACCESS_REQUEST_DECIDE)
    session = get_session()
    return render_template(
        "access/steward.html",
        pending=service.list_pending(session, actor),
        grants=service.list_grants(session, actor),
        grant_form=GrantForm(),
        refuse_form=RefuseForm(),
        revoke_form=RevokeGrantForm(),
        default_expiry=default_expiry(),
        revoke_endpoint="access_requests.revoke_grant",
    )


def _decide(request_id: int, grant: bool) -> ResponseReturnValue:
    actor = require(Permission.ACCESS_REQUEST_DECIDE)
    session = get_session()
    item = service.get_request(session, request_id)
    form = GrantForm() if grant else RefuseForm()
    if not submitted(form):
        messages = [m for errors in form.errors.values() for m in errors]
        raise Invalid("; ".join(str(m) for m in messages) or "invalid form")
    if grant:
        service.decide(
            session,
            actor,
            item,
            True,
            form.note.data or "",
            end_of_day(form.expires_on.data),
            info=request_info(302),
        )
        flash(_("Access granted to %(user)s.", user=item.user.username), "good")
    else:
        service.decide(session, actor, item, False, form.reason.data or "", info=request_info(302))
        flash(_("Request from %(user)s refused.", user=item.user.username), "good")
    return redirect(url_for("access_requests.steward_page"))


@bp.post("/workspace/access-requests/<int:request_id>/grant")
def grant_request(request_id: int) -> ResponseReturnValue:
    return _decide(request_id, True)


@bp.post("/workspace/access-requests/<int:request_id>/refuse")
def refuse_request(request_id: int) -> ResponseReturnValue:
    return _decide(request_id, False)


def revoke_and_return(request_id: int, endpoint: str) -> ResponseReturnValue:
    """Revoke a grant from a posted :class:`RevokeGrantForm`, then go back to ``endpoint``."""
    actor = require(Permission.ACCESS_REQUEST_DECIDE)
    session = get_session()
    form = RevokeGrantForm()
    if submitted(form):
        item = service.get_request(session, request_id)
        service.revoke(session, actor, item, form.reason.data or "", info=request_info(302))
        flash(_("Access of %(user)s revoked.", user=item.user.username), "good")
    return redirect(url_for(endpoint))


@bp.post("/workspace/access-grants/<int:request_id>/revoke")
def revoke_grant(request_id: int) -> ResponseReturnValue:
    return revoke_and_return(request_id, "access_requests.steward_page")
