"""Harvest source management pages: list, add, edit, test, run now, pause and resume.

Producers see and change the sources of their own OPDs, stewards and admins every source; the
rules are in :mod:`portal.services.harvest_sources`. Every form carries a CSRF token.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import Any, cast

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from portal.db import get_session
from portal.errors import Conflict, Invalid
from portal.harvesting import enqueue, run_one
from portal.i18n import FREQUENCY_LABELS
from portal.identity import request_info
from portal.models import Frequency, HarvestSource
from portal.services import harvest_sources as sources
from portal.services.access import Actor, Permission
from portal.services.catalog import get_organization
from portal.services.harvest import settings_from_config
from portal.services.harvest_sources_check import check_connection, mask_config, mask_url
from portal.views.guards import FlaskForm, require, submitted

bp = Blueprint("harvest_sources", __name__)
log = logging.getLogger(__name__)

#: A starting point for each kind's config, shown next to the form (JSON, not translated).
CONFIG_EXAMPLES = {
    "ckan": {"organizations": ["dinkes"], "groups": [], "formats": ["csv", "xlsx"]},
    "datajson": {"max_files": 20},
    "dcat": {"max_files": 20, "formats": ["csv", "xlsx", "json"]},
    "folder": {},
    "jsonapi": {
        "records_path": "data.items",
        "page_param": "page",
        "page_size_param": "per_page",
        "page_size": 100,
        "metadata": {"title": "Jumlah Penduduk", "schema": "jumlah-penduduk"},
    },
    "sql": {
        "datasets": [
            {
                "remote_id": "jumlah-penduduk",
                "query": "SELECT kecamatan, jumlah FROM penduduk",
                "metadata": {"title": "Jumlah Penduduk"},
            }
        ]
    },
    "url": {"metadata": {"title": "Harga Bahan Pokok", "schema": "harga-bahan-pokok"}},
}


def _json_object(_form: object, field: TextAreaField) -> None:
    """The config must be a JSON object; the message says where it is not, in the page's language
    (the service checks it again, with English messages for the CLI)."""
    if not field.data or not field.data.strip():
        return
    try:
        value = json.loads(field.data)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            _(
                "The configuration is not valid JSON: look at line %(line)d, column %(column)d.",
                line=exc.lineno,
                column=exc.colno,
            )
        ) from None
    if not isinstance(value, dict):
        raise ValidationError(_("The configuration must be a JSON object, written {…}."))


class SourceForm(FlaskForm):
    organization = SelectField(_l("OPD"))
    kind = SelectField(_l("Kind"))
    url = StringField(
        _l("URL (or folder path, or database URL)"),
        validators=[DataRequired(message=_l("Enter the source's URL.")), Length(max=1000)],
    )
    name = StringField(
        _l("Name (optional; letters, digits and hyphens)"),
        validators=[
            Optional(),
            Length(max=100),
            Regexp(r"^[a-z0-9][a-z0-9-]*$", message=_l("Use lower-case letters, digits, -.")),
        ],
    )
    title = StringField(_l("Title"), validators=[Optional(), Length(max=300)])
    frequency = SelectField(
        _l("Update frequency"),
        choices=[SelectChoice(f.value, label) for f, label in FREQUENCY_LABELS.items()],
        default=Frequency.DAILY.value,
    )
    trusted = BooleanField(_l("Trusted: publish versions that pass every check without review"))
    config = TextAreaField(_l("Configuration (a JSON object)"), validators=[_json_object])


class ActionForm(FlaskForm):
    """The CSRF token of the test, run, pause and resume buttons."""


def _manager() -> Actor:
    return require(Permission.HARVEST_SOURCE_MANAGE)


def _form(actor: Actor, source: HarvestSource | None = None) -> SourceForm:
    data: dict[str, Any] = {"config": "{}"}
    if source is not None:
        data = {
            "kind": source.kind,
            "url": mask_url(source.url),
            "title": source.title,
            "frequency": source.frequency.value,
            "trusted": source.trusted,
            "config": json.dumps(mask_config(source.config or {}), indent=2, ensure_ascii=False),
        }
    form = SourceForm(data=data)
    kinds = sources.kinds() if actor.is_staff else [k for k in sources.kinds() if k != "folder"]
    form.kind.choices = [SelectChoice(k, k) for k in kinds]
    if source is None:
        orgs = sources.managed_organizations(get_session(), actor)
        form.organization.choices = [SelectChoice(o.name, o.title) for o in orgs]
    else:
        del form.organization
        del form.name
    if not actor.is_staff:
        del form.trusted  # never read from a producer's post, whatever it holds
    return form


def _page(form: SourceForm, source: HarvestSource | None, status: int = 200) -> tuple[str, int]:
    html = render_template(
        "harvest_sources/form.html",
        form=form,
        source=source,
        examples={k: json.dumps(v, ensure_ascii=False) for k, v in CONFIG_EXAMPLES.items()},
    )
    return html, status


@bp.get("/harvest/sources")
def list_page() -> str:
    actor = _manager()
    managed = sources.list_managed_sources(get_session(), actor)
    return render_template(
        "harvest_sources/list.html", sources=managed, action_form=ActionForm(), mask_url=mask_url
    )


@bp.route("/harvest/sources/new", methods=["GET", "POST"])
def new_page() -> ResponseReturnValue:
    actor = _manager()
    form = _form(actor)
    if not submitted(form):
        return _page(form, None, 400 if request.method == "POST" else 200)
    session = get_session()
    try:
        source = sources.add_source(
            session,
            actor,
            organization=get_organization(session, form.organization.data or ""),
            kind=form.kind.data,
            url=form.url.data or "",
            name=form.name.data or None,
            title=form.title.data or None,
            frequency=Frequency(form.frequency.data),
            trusted=bool(actor.is_staff and form.trusted.data),
            config=sources.parse_config(form.config.data),
            request=request_info(201),
        )
    except (Invalid, Conflict) as exc:
        form.form_errors.append(exc.message)
        return _page(form, None, 400)
    flash(_("Source %(name)s added.", name=source.name), "good")
    return redirect(url_for("harvest_sources.list_page"))


@bp.route("/harvest/sources/<name>/edit", methods=["GET", "POST"])
def edit_page(name: str) -> ResponseReturnValue:
    actor = _manager()
    session = get_session()
    source = sources.get_managed_source(session, actor, name)
    form = _form(actor, source)
    if not submitted(form):
        return _page(form, source, 400 if request.method == "POST" else 200)
    try:
        changed = sources.update_source(
            session,
            actor,
            source,
            kind=form.kind.data,
            url=form.url.data or "",
            title=form.title.data or None,
            frequency=Frequency(form.frequency.data),
            trusted=bool(form.trusted.data) if actor.is_staff else None,
            config=sources.parse_config(form.config.data),
            request=request_info(),
        )
    except (Invalid, Conflict) as exc:
        form.form_errors.append(exc.message)
        return _page(form, source, 400)
    if changed:
        flash(_("Source %(name)s saved.", name=source.name), "good")
    else:
        flash(_("Nothing changed."), "good")
    return redirect(url_for("harvest_sources.list_page"))


@bp.post("/harvest/sources/<name>/test")
def test_page(name: str) -> ResponseReturnValue:
    actor = _manager()
    submitted(ActionForm())
    report = check_connection(get_session(), actor, name, settings_from_config(current_app.config))
    seconds = f"{report.seconds:.1f}"
    if report.reachable:
        message = _(
            "%(name)s is reachable: %(items)s items found in %(seconds)s s.",
            name=name,
            items=f"≥ {report.items}" if report.partial else str(report.items),
            seconds=seconds,
        )
        flash(message, "good")
    else:
        message = _(
            "%(name)s is not reachable (after %(seconds)s s): %(reason)s",
            name=name,
            seconds=seconds,
            reason=report.reason,
        )
        flash(message, "bad")
    return redirect(url_for("harvest_sources.list_page"))


@bp.post("/harvest/sources/<name>/run")
def run_page(name: str) -> ResponseReturnValue:
    actor = _manager()
    submitted(ActionForm())
    session = get_session()
    source = sources.get_managed_source(session, actor, name)
    timeout = timedelta(seconds=int(current_app.config["HARVEST_HEARTBEAT_TIMEOUT"]))
    job, new = sources.queue_run(session, actor, source, abandon_after=timeout)
    # The run takes this pending job over from another session or process: it must be
    # committed before the run starts, not at the end of the request.
    session.commit()
    if new:
        _start(cast(Any, current_app)._get_current_object(), name)
    else:
        flash(_("This source already has a harvest waiting or running."), "good")
    if not source.trusted:  # the job page counts items, it does not say that they wait
        review = _(
            "New versions from this source wait for a steward's review before the public sees them."
        )
        flash(review, "good")
    return redirect(url_for("harvest.job_page", job_id=job.id))


@bp.post("/harvest/sources/<name>/pause")
def pause_page(name: str) -> ResponseReturnValue:
    return _set_active(name, False)


@bp.post("/harvest/sources/<name>/resume")
def resume_page(name: str) -> ResponseReturnValue:
    return _set_active(name, True)


def _set_active(name: str, active: bool) -> ResponseReturnValue:
    actor = _manager()
    submitted(ActionForm())
    session = get_session()
    source = sources.get_managed_source(session, actor, name)
    sources.set_active(session, actor, source, active, request=request_info())
    if active:
        flash(_("Source %(name)s resumed.", name=name), "good")
    else:
        flash(_("Source %(name)s paused: it is not harvested until resumed.", name=name), "good")
    return redirect(url_for("harvest_sources.list_page"))


def _start(app: Any, name: str) -> None:
    """Queue the run on RQ when there is a queue, else run it in a thread of this process."""
    if app.config.get("REDIS_URL"):
        enqueue(app, [name])
        return
    threading.Thread(target=_run, args=(app, name), name=f"run-now-{name}", daemon=True).start()


def _run(app: Any, name: str) -> None:
    try:
        run_one(app, name)
    except Exception:  # the job page shows the job; the operator needs the traceback
        log.exception("the harvest of %s could not run", name)
