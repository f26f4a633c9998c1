"""Admin pages under ``/admin``: users, roles and OPD membership, organizations, grants (the
OAuth client pages, :mod:`portal.views.admin_oauth`, are nested in this blueprint). Every route
asks :func:`portal.services.access.can` for its permission first
(:func:`portal.views.guards.require`); the rules themselves live in the services.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.routing import BuildError
from wtforms import (
    EmailField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from portal.db import get_session
from portal.errors import Conflict, Forbidden, Invalid, PortalError
from portal.identity import request_info
from portal.models import Role, User
from portal.services import access_requests, organizations_admin, users
from portal.services.access import Actor, Permission
from portal.services.accounts import MIN_PASSWORD
from portal.views.access_requests import RevokeGrantForm, revoke_and_return
from portal.views.admin_oauth import bp as oauth_clients_bp
from portal.views.guards import FlaskForm, require, submitted

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.register_blueprint(oauth_clients_bp)  # /admin/oauth-clients

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ADMIN_AREA = (
    Permission.ADMIN_USER_MANAGE,
    Permission.ADMIN_ORGANIZATION_MANAGE,
    Permission.ADMIN_OAUTH_CLIENT_MANAGE,
)
ROLE_LABELS = {
    Role.MEMBER: _l("Member"),
    Role.PRODUCER: _l("Producer (Produsen Data)"),
    Role.STEWARD: _l("Steward (Walidata)"),
    Role.ADMIN: _l("Administrator"),
}


def _checkboxes(label: Any) -> SelectMultipleField:
    return SelectMultipleField(
        label,
        choices=[],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )


def _role_field() -> SelectField:
    return SelectField(
        _l("Role"),
        choices=[SelectChoice(r.value, label) for r, label in ROLE_LABELS.items()],
        default="member",
    )


class UserCreateForm(FlaskForm):
    username = StringField(
        _l("Username"),
        validators=[DataRequired(), Length(min=3, max=80), Regexp(r"^[a-z0-9._-]+$")],
    )
    email = EmailField(
        _l("E-mail"),
        validators=[Optional(), Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), Length(max=254)],
    )
    display_name = StringField(_l("Display name"), validators=[Optional(), Length(max=200)])
    role = _role_field()
    organizations = _checkboxes(_l("OPD (organizations)"))
    password = PasswordField(
        _l("Initial password (leave empty to generate one)"),
        validators=[Optional(), Length(min=MIN_PASSWORD, max=200)],
    )


class UserRoleForm(FlaskForm):
    role = _role_field()
    organizations = _checkboxes(_l("OPD (organizations)"))


class ButtonForm(FlaskForm):
    pass


class OrganizationForm(FlaskForm):
    name = StringField(
        _l("Short name (in web addresses)"),
        validators=[Optional(), Length(min=2, max=100), Regexp(r"^[a-z0-9][a-z0-9-]+$")],
    )
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=300)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=5000)])
    url = StringField(_l("Web site"), validators=[Optional(), Length(max=500)])


class OrganizationCreateForm(OrganizationForm):
    name = StringField(
        _l("Short name (in web addresses)"),
        validators=[DataRequired(), Length(min=2, max=100), Regexp(r"^[a-z0-9][a-z0-9-]+$")],
    )


def _org_choices(actor: Actor) -> list[SelectChoice]:
    rows = organizations_admin.list_organizations(get_session(), actor)
    return [SelectChoice(row.organization.id, row.organization.title) for row in rows]


def _refused(form: Any, exc: PortalError) -> int:
    """Show a service's refusal on the form instead of an error page; the status to answer."""
    form.form_errors.append(exc.message)
    return exc.status


@bp.app_template_global()
def admin_link(endpoint: str) -> str | None:
    """The URL of a page another blueprint may provide (the security log), if registered."""
    try:
        return url_for(endpoint)
    except BuildError:
        return None


@bp.get("")
def dashboard() -> str:
    actor = require(*ADMIN_AREA)
    session = get_session()
    return render_template(
        "admin/dashboard.html",
        role_counts=users.count_by_role(session, actor),
        role_labels=ROLE_LABELS,
        organizations=len(organizations_admin.list_organizations(session, actor)),
        pending=len(access_requests.list_pending(session, actor)),
        grants=len(access_requests.list_grants(session, actor)),
    )


@bp.get("/users")
def user_list() -> str:
    actor = require(Permission.ADMIN_USER_MANAGE)
    role = request.args.get("role", "")
    organization = request.args.get("organization") or None
    q = request.args.get("q", "")[:100]
    result = users.list_users(
        get_session(),
        actor,
        role=Role(role) if role in {r.value for r in Role} else None,
        organization_id=organization,
        q=q,
        page=request.args.get("page", 1, type=int) or 1,
    )
    return render_template(
        "admin/users.html",
        result=result,
        role_labels=ROLE_LABELS,
        organizations=_org_choices(actor),
        filters={
            "role": role or "",
            "organization": organization or "",
            "q": request.args.get("q", ""),
        },
    )


@bp.route("/users/new", methods=["GET", "POST"])
def user_create() -> ResponseReturnValue:
    actor = require(Permission.ADMIN_USER_MANAGE)
    form = UserCreateForm()
    form.organizations.choices = _org_choices(actor)
    status = 400 if form.is_submitted() else 200
    if submitted(form):
        session = get_session()
        try:
            created = users.create_user(
                session,
                actor,
                username=form.username.data or "",
                email=form.email.data or None,
                display_name=form.display_name.data or "",
                role=Role(form.role.data),
                organizations=users.organizations_by_id(session, list(form.organizations.data)),
                password=form.password.data or None,
                info=request_info(201),
            )
        except (Invalid, Conflict) as exc:
            status = _refused(form, exc)
        else:
            html = render_template(
                "admin/user_created.html", created=created, role_labels=ROLE_LABELS
            )
            return html, 201, {"Cache-Control": "no-store"}
    return render_template("admin/user_new.html", form=form), status


@bp.get("/users/<int:user_id>")
def user_edit(user_id: int) -> str:
    actor = require(Permission.ADMIN_USER_MANAGE)
    user = users.get_user(get_session(), actor, user_id)
    form = UserRoleForm(
        data={"role": user.role.value, "organizations": [o.id for o in user.organizations]}
    )
    form.organizations.choices = _org_choices(actor)
    return _user_page(user, form)


def _user_page(user: User, form: UserRoleForm) -> str:
    return render_template(
        "admin/user_edit.html",
        user=user,
        form=form,
        button_form=ButtonForm(),
        role_labels=ROLE_LABELS,
    )


@bp.post("/users/<int:user_id>/role")
def user_set_role(user_id: int) -> ResponseReturnValue:
    actor = require(Permission.ADMIN_USER_MANAGE)
    session = get_session()
    user = users.get_user(session, actor, user_id)
    form = UserRoleForm()
    form.organizations.choices = _org_choices(actor)
    status = 400
    if submitted(form):
        try:
            users.change_role(
                session,
                actor,
                user,
                Role(form.role.data),
                users.organizations_by_id(session, list(form.organizations.data)),
                info=request_info(302),
            )
        except (Invalid, Forbidden) as exc:
            status = _refused(form, exc)
        else:
            flash(_("Role of %(user)s saved.", user=user.username), "good")
            return redirect(url_for("admin.user_edit", user_id=user.id))
    return _user_page(user, form), status


@bp.post("/users/<int:user_id>/disable")
def user_disable(user_id: int) -> ResponseReturnValue:
    actor = require(Permission.ADMIN_USER_MANAGE)
    session = get_session()
    user = users.get_user(session, actor, user_id)
    if submitted(ButtonForm()):
        users.disable_user(session, actor, user, info=request_info(302))
        flash(_("Account %(user)s disabled.", user=user.username), "good")
    return redirect(url_for("admin.user_edit", user_id=user.id))


@bp.post("/users/<int:user_id>/enable")
def user_enable(user_id: int) -> ResponseReturnValue:
    actor = require(Permission.ADMIN_USER_MANAGE)
    session = get_session()
    user = users.get_user(session, actor, user_id)
    if submitted(ButtonForm()):
        users.enable_user(session, actor, user, info=request_info(302))
        flash(_("Account %(user)s enabled.", user=user.username), "good")
    return redirect(url_for("admin.user_edit", user_id=user.id))


@bp.route("/organizations", methods=["GET", "POST"])
def organization_list() -> ResponseReturnValue:
    actor = require(Permission.ADMIN_ORGANIZATION_MANAGE)
    session = get_session()
    form = OrganizationCreateForm()
    status = 400 if form.is_submitted() else 200
    if submitted(form):
        try:
            org = organizations_admin.create_organization(
                session,
                actor,
                name=form.name.data or "",
                title=form.title.data or "",
                description=form.description.data or "",
                url=form.url.data or None,
                info=request_info(302),
            )
        except (Invalid, Conflict) as exc:
            status = _refused(form, exc)
        else:
            flash(_("Organization %(name)s created.", name=org.title), "good")
            return redirect(url_for("admin.organization_list"))
    rows = organizations_admin.list_organizations(session, actor)
    return render_template("admin/organizations.html", rows=rows, form=form), status


@bp.route("/organizations/<name>", methods=["GET", "POST"])
def organization_edit(name: str) -> ResponseReturnValue:
    actor = require(Permission.ADMIN_ORGANIZATION_MANAGE)
    session = get_session()
    org = organizations_admin.get_organization(session, actor, name)
    form = OrganizationForm(obj=org)
    status = 400 if form.is_submitted() else 200
    if submitted(form):
        try:
            organizations_admin.update_organization(
                session,
                actor,
                org,
                title=form.title.data or "",
                description=form.description.data or "",
                url=form.url.data or None,
                info=request_info(302),
            )
        except Invalid as exc:
            status = _refused(form, exc)
        else:
            flash(_("Organization %(name)s saved.", name=org.title), "good")
            return redirect(url_for("admin.organization_list"))
    return render_template("admin/organization_edit.html", org=org, form=form), status


@bp.get("/grants")
def grant_list() -> str:
    actor = require(Permission.ACCESS_REQUEST_DECIDE)
    return render_template(
        "admin/grants.html",
        grants=access_requests.list_grants(get_session(), actor),
        revoke_form=RevokeGrantForm(),
        revoke_endpoint="admin.grant_revoke",
    )


@bp.post("/grants/<int:request_id>/revoke")
def grant_revoke(request_id: int) -> ResponseReturnValue:
    return revoke_and_return(request_id, "admin.grant_list")
