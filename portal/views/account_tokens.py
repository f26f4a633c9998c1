"""The signed-in user's API tokens: the ``/account/tokens`` page and ``/api/v1/tokens``.

The secret of a new token appears once, in the answer to the request that created it, and is
never stored: the page answers the form post directly (no redirect that could repeat it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectChoice, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from portal.db import get_session
from portal.errors import Invalid
from portal.identity import request_info
from portal.models import ApiToken, utcnow
from portal.services import tokens
from portal.services.access import Scope
from portal.services.harvest_schedule import aware
from portal.views.guards import FlaskForm, signed_in, submitted

bp = Blueprint("account_tokens", __name__)

SCOPE_LABELS = {
    Scope.READ: _l("read: public data"),
    Scope.READ_RESTRICTED: _l("read-restricted: also data you were granted or your OPD owns"),
    Scope.HARVEST: _l("harvest: your OPD's harvest sources"),
    Scope.STEWARD: _l("steward: review, publish and grant access"),
}


def _some_scope(_form: object, field: SelectMultipleField) -> None:
    # not DataRequired: its `required` flag would make the browser demand every checkbox
    if not field.data:
        raise ValidationError(_l("Choose at least one scope."))


class TokenForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    scopes = SelectMultipleField(
        _l("Scopes"),
        validators=[_some_scope],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    expires_in_days = SelectField(_l("Expires after"), coerce=int, default=tokens.DEFAULT_DAYS)


class RevokeForm(FlaskForm):
    pass


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and aware(token.expires_at) <= (now or utcnow()):
        return "expired"
    return "active"


def _form(scopes: tuple[Scope, ...]) -> TokenForm:
    form = TokenForm()
    form.scopes.choices = [SelectChoice(s.value, SCOPE_LABELS[s]) for s in scopes]
    form.expires_in_days.choices = [
        SelectChoice(str(days), _("%(num)d days", num=days)) for days in tokens.EXPIRY_CHOICES
    ]
    if not form.is_submitted():
        form.scopes.data = [Scope.READ.value]
    return form


def _page(form: TokenForm, status: int = 200) -> tuple[str, int]:
    actor, user = signed_in()
    listed = tokens.list_tokens(get_session(), actor, user)
    html = render_template(
        "account/tokens.html",
        tokens=listed,
        form=form,
        revoke_form=RevokeForm(),
        token_state=token_state,
    )
    return html, status


@bp.get("/account/tokens")
def tokens_page() -> tuple[str, int]:
    actor, _user = signed_in()
    return _page(_form(tokens.allowed_scopes(actor)))


@bp.post("/account/tokens")
def create_token_page() -> ResponseReturnValue:
    actor, user = signed_in()
    form = _form(tokens.allowed_scopes(actor))
    if not submitted(form):
        return _page(form, 400)
    issued = tokens.create_token(
        get_session(),
        actor,
        user,
        name=form.name.data or "",
        scopes=list(form.scopes.data or []),
        expires_in_days=form.expires_in_days.data or tokens.DEFAULT_DAYS,
        info=request_info(201),
    )
    response = Response(render_template("account/token_created.html", issued=issued), status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/account/tokens/<int:token_id>/revoke")
def revoke_token_page(token_id: int) -> ResponseReturnValue:
    actor, user = signed_in()
    if submitted(RevokeForm()):
        tokens.revoke_token(get_session(), actor, user, token_id, info=request_info())
    return redirect(url_for("account_tokens.tokens_page"))


def token_dict(token: ApiToken) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return aware(value).isoformat() if value else None

    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "scopes": token.scopes,
        "state": token_state(token),
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
    }


@bp.get("/api/v1/tokens")
def api_list() -> dict[str, Any]:
    actor, user = signed_in()
    listed = tokens.list_tokens(get_session(), actor, user)
    return {"ok": True, "count": len(listed), "results": [token_dict(t) for t in listed]}


def _json_body() -> dict[str, Any]:
    # JSON only: a cross-site HTML form cannot send it, so a session cookie alone cannot mint.
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        raise Invalid(
            "send a JSON object (Content-Type: application/json)",
            [{"code": "invalid_json", "message": "expected a JSON object"}],
        )
    return body


@bp.post("/api/v1/tokens")
def api_create() -> ResponseReturnValue:
    actor, user = signed_in()
    body = _json_body()
    scopes = body.get("scopes", [Scope.READ.value])
    days = body.get("expires_in_days", tokens.DEFAULT_DAYS)
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise Invalid(
            "scopes must be a list of strings",
            [{"field": "scopes", "code": "invalid", "message": "a list of scope names"}],
        )
    if not isinstance(days, int) or isinstance(days, bool):
        raise Invalid(
            "expires_in_days must be an integer",
            [{"field": "expires_in_days", "code": "invalid_integer", "message": "an integer"}],
        )
    issued = tokens.create_token(
        get_session(),
        actor,
        user,
        name=str(body.get("name") or ""),
        scopes=scopes,
        expires_in_days=days,
        info=request_info(201),
    )
    result = {**token_dict(issued.token), "token": issued.secret}
    return {"ok": True, "result": result}, 201, {"Cache-Control": "no-store"}


@bp.delete("/api/v1/tokens/<int:token_id>")
def api_revoke(token_id: int) -> dict[str, Any]:
    actor, user = signed_in()
    token = tokens.revoke_token(get_session(), actor, user, token_id, info=request_info())
    return {"ok": True, "result": token_dict(token)}
