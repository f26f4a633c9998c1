"""Admin pages of the OAuth 2 clients, ``/admin/oauth-clients``: list, register, revoke.

A blueprint nested in :data:`portal.views.admin.bp` (endpoints ``admin.oauth_clients.*``). The
rules (redirect URIs, scopes, the secret kept only as a hash) live in
:mod:`portal.services.oauth_clients`; a refusal there becomes an error on the form, never a 500.
The secret of a new confidential client is shown once, on the answer to the registration.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.db import get_session
from portal.errors import Invalid
from portal.identity import request_info
from portal.models.oauth import ClientAuthMethod, GrantType
from portal.oauth import SCOPE_TEXTS
from portal.services import oauth_clients
from portal.services.access import Permission, Scope
from portal.views.guards import FlaskForm, require, submitted

bp = Blueprint("oauth_clients", __name__, url_prefix="/oauth-clients")

PUBLIC, CONFIDENTIAL = "public", "confidential"
GRANT_LABELS = {
    GrantType.AUTHORIZATION_CODE: _l("Authorization code with PKCE: a user signs in and consents"),
    GrantType.REFRESH_TOKEN: _l("Refresh tokens (only with the authorization code)"),
    GrantType.CLIENT_CREDENTIALS: _l(
        "Client credentials: the application acts for itself (confidential clients only)"
    ),
}
#: The form field that shows a service error about each of the service's fields.
FORM_FIELDS = {
    "name": "name",
    "redirect_uris": "redirect_uris",
    "grant_types": "grant_types",
    "scopes": "scopes",
    "token_endpoint_auth_method": "client_type",
    "owner": "owner",
}


def _checkboxes(label: object) -> SelectMultipleField:
    return SelectMultipleField(
        label, choices=[], widget=ListWidget(prefix_label=False), option_widget=CheckboxInput()
    )


class ClientForm(FlaskForm):
    name = StringField(
        _l("Name (users see it when they are asked to consent)"),
        validators=[DataRequired(), Length(max=100)],
    )
    redirect_uris = TextAreaField(
        _l("Redirect URIs, one per line (https, or http on 127.0.0.1 for desktop tools)"),
        validators=[Optional(), Length(max=20000)],
    )
    grant_types = _checkboxes(_l("Grant types"))
    scopes = _checkboxes(_l("Scopes"))
    client_type = RadioField(
        _l("Client type"),
        choices=[
            SelectChoice(CONFIDENTIAL, _l("Confidential: a server that keeps a secret")),
            SelectChoice(PUBLIC, _l("Public: a desktop tool or notebook, no secret, PKCE only")),
        ],
        default=CONFIDENTIAL,
    )
    owner = StringField(
        _l("Owner (username; leave empty to be the owner yourself)"),
        validators=[Optional(), Length(max=80)],
    )
    may_introspect = BooleanField(_l("Resource server: may introspect every token"))


class RevokeForm(FlaskForm):
    pass


def _client_form() -> ClientForm:
    form = ClientForm()
    form.grant_types.choices = [SelectChoice(g.value, label) for g, label in GRANT_LABELS.items()]
    form.scopes.choices = [SelectChoice(s.value, f"{s.value}: {SCOPE_TEXTS[s]}") for s in Scope]
    return form


def _show_refusal(form: ClientForm, exc: Invalid) -> None:
    """Put each of the service's field errors under its form field (the rest above the form)."""
    for error in exc.errors:
        name = FORM_FIELDS.get(str(error.get("field")))
        message = str(error.get("message") or exc.message)
        if name is None:
            form.form_errors.append(message)
        else:
            field = getattr(form, name)
            field.errors = [*field.errors, message]


@bp.get("")
def index() -> str:
    actor = require(Permission.ADMIN_OAUTH_CLIENT_MANAGE)
    clients = oauth_clients.list_clients(get_session(), actor)
    clients.sort(key=lambda c: c.revoked)  # active ones first, each part newest first
    return render_template("admin/oauth_clients.html", clients=clients, revoke_form=RevokeForm())


@bp.route("/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    actor = require(Permission.ADMIN_OAUTH_CLIENT_MANAGE)
    form = _client_form()
    status = 400 if form.is_submitted() else 200
    if submitted(form):
        session = get_session()
        public = form.client_type.data == PUBLIC
        try:
            owner_name = (form.owner.data or "").strip()
            registered = oauth_clients.register_client(
                session,
                actor,
                name=form.name.data or "",
                redirect_uris=(form.redirect_uris.data or "").splitlines(),
                scopes=list(form.scopes.data or []),
                grant_types=list(form.grant_types.data or []),
                auth_method=ClientAuthMethod.NONE
                if public
                else ClientAuthMethod.CLIENT_SECRET_BASIC,
                owner=oauth_clients.find_owner(session, actor, owner_name) if owner_name else None,
                may_introspect=bool(form.may_introspect.data),
                request=request_info(201),
            )
        except Invalid as exc:
            _show_refusal(form, exc)
        else:
            html = render_template("admin/oauth_client_created.html", registered=registered)
            return html, 201, {"Cache-Control": "no-store"}
    return render_template("admin/oauth_client_new.html", form=form), status


@bp.post("/<client_id>/revoke")
def revoke(client_id: str) -> ResponseReturnValue:
    actor = require(Permission.ADMIN_OAUTH_CLIENT_MANAGE)
    if submitted(RevokeForm()):
        client = oauth_clients.revoke_client(
            get_session(), actor, client_id, request=request_info(302)
        )
        message = _("OAuth client %(name)s revoked: its tokens no longer work.", name=client.name)
        flash(message, "good")
    return redirect(url_for(".index"))
