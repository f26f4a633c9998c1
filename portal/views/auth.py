"""Sign-in: password, second factor (TOTP or a recovery code), TOTP enrolment, logout; and CSRF.

A password alone signs in a member. A user with TOTP on, and every steward and admin, stops
half-way: the session holds only a short-lived *pending* marker until the second step succeeds
(stewards and admins without TOTP are first sent to enrol). Only then does
:func:`portal.identity.login` start the session.

**CSRF.** Every form carries a Flask-WTF token and every unsafe request (POST, PUT, PATCH,
DELETE) is checked before its view runs, with one exception: API paths (``/api/…``, which
include the CKAN ``/api/action`` and ``/api/3/action``) are not checked when the request
presents a token (``Authorization``, ``X-CKAN-API-Key``) — a cross-site page cannot set those
headers, and :mod:`portal.identity` then ignores the session cookie — or when its session holds
no signed-in user (anonymous CKAN clients POST their actions; there is no ambient authority to
ride on). An API request that would be authenticated by the browser's session cookie alone
must carry the CSRF token (``X-CSRFToken`` header), so a signed-in browser cannot be made to
POST to the API from another site. Non-API views that must accept foreign POSTs (OAuth token
endpoints) opt out with ``csrf.exempt(view)``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from portal import identity
from portal.db import get_engine, get_session
from portal.errors import Invalid, error_body
from portal.identity import current_actor, current_user, presented_token, request_info
from portal.models import User, utcnow
from portal.services import accounts, two_factor
from portal.services.events import EventTag, RequestInfo, record_event, record_failure_event
from portal.services.harvest_schedule import aware
from portal.services.signin import record_rate_limit, record_refusal, signed_in
from portal.services.throttle import DatabaseThrottle, Limit, RedisThrottle, Throttle
from portal.views.auth_forms import ButtonForm, CodeForm, LoginForm

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()

#: Per-address limits (override with the ``AUTH_LIMITS`` config: ``{name: (hits, seconds)}``).
LIMITS = {
    "login": Limit("login", 20, timedelta(minutes=15)),  # failed passwords and codes
    "forgot": Limit("forgot", 5, timedelta(minutes=15)),  # reset e-mails asked for
    "register": Limit("register", 10, timedelta(hours=1)),  # accounts created
}
PENDING = "pending_login"
#: Seconds a half-done sign-in (password accepted, second step not yet) stays valid.
PENDING_TTL = 600
API_PREFIX = "/api/"


def init_app(app: Flask) -> None:
    """CSRF protection for the whole app, the CSRF error page, and the ``auth`` blueprint."""
    from portal.views import auth_account  # noqa: F401 - adds the account views to bp

    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # _csrf_guard decides, with the API rule
    csrf.init_app(app)
    app.before_request(_csrf_guard)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.register_blueprint(bp)


def _csrf_guard() -> None:
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if request.method not in current_app.config["WTF_CSRF_METHODS"]:
        return
    if request.path.startswith(API_PREFIX) and (
        presented_token() or session.get(identity.SESSION_USER) is None
    ):
        return
    csrf.protect(apply_exemptions=True)


def _csrf_refused(exc: CSRFError) -> tuple[Response, int]:
    message = _(
        "This form has expired or did not come from this site. Reload the page and try again."
    )
    if request.path.startswith(API_PREFIX):
        return jsonify(error_body(400, message, [{"code": "csrf", "message": message}])), 400
    return Response(render_template("error.html", status=400, message=message)), 400


@bp.after_request
def _no_store(response: Response) -> Response:
    # sign-in pages show QR codes, secrets and recovery codes: never keep them in a cache
    response.headers["Cache-Control"] = "no-store"
    return response


# --- helpers shared with auth_account --------------------------------------------------------


def throttle() -> Throttle:
    """Where attempts are counted: Redis when configured, else the request's database session."""
    pepper = str(current_app.config["SECRET_KEY"]).encode()
    url = current_app.config.get("REDIS_URL")
    if url:
        client = current_app.extensions.get("onedata.throttle_redis")
        if client is None:
            from redis import Redis

            client = current_app.extensions["onedata.throttle_redis"] = Redis.from_url(url)
        return RedisThrottle(client, pepper)
    return DatabaseThrottle(get_session(), pepper)


def limit(name: str) -> Limit:
    """The per-address limit called ``name``, with any ``AUTH_LIMITS`` override applied."""
    override = (current_app.config.get("AUTH_LIMITS") or {}).get(name)
    base = LIMITS[name]
    if override is None:
        return base
    hits, seconds = override
    return Limit(base.scope, int(hits), timedelta(seconds=int(seconds)))


def client_address() -> str:
    return request.remote_addr or "unknown"


def too_many(name: str) -> Response | None:
    """A 429 page with ``Retry-After`` when this address is over limit ``name``, else ``None``."""
    wait = throttle().retry_after(limit(name), client_address())
    if wait is None:
        return None
    minutes = max(1, -(-wait // 60))
    response = Response(render_template("auth/throttled.html", minutes=minutes), status=429)
    response.headers["Retry-After"] = str(wait)
    return response


def count_attempt(name: str) -> None:
    """Count one attempt of this address against limit ``name`` and commit the request's work.

    Committing here keeps failure counters when the request ends in an error, and lets the
    security events that follow be written in transactions of their own.
    """
    rule = limit(name)
    hits = throttle().hit(rule, client_address())
    get_session().commit()
    if hits == rule.max_hits:
        record_rate_limit(get_engine(), rule, info=info(429))


def info(status: int | None = None, path: str | None = None) -> RequestInfo:
    """The request's context for the log; ``path`` replaces a path that holds a secret."""
    details = request_info(status)
    return replace(details, path=path) if path else details


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site (no scheme, no host, no ``//``), else ``None``."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def browser_user() -> User | None:
    """The user signed in through this browser's session (not through an API token)."""
    if current_actor().scopes is not None:
        return None
    return current_user()


def to_login() -> BaseResponse:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def enrol_page(
    form: Any, error: str | None, user: User, *, action: str, mandatory: bool
) -> tuple[str, int]:
    """The TOTP enrolment page: QR code (inline SVG, no script) and the key as text."""
    page = render_template(
        "auth/enrol.html",
        form=form,
        error=error,
        qr=qr_svg(two_factor.provisioning_uri(user)),
        secret=user.totp_secret,
        action=action,
        mandatory=mandatory,
    )
    return page, 200


def qr_svg(uri: str) -> Markup:
    """The QR code of ``uri`` as inline SVG, drawn on the server (no script, no image request)."""
    import segno

    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    return Markup(svg)  # noqa: S704 - SVG generated by segno from our own otpauth URI


def finish_sign_in(
    user: User, next_url: str | None, second_factor: str | None, *, enrolled: bool = False
) -> None:
    """Log the sign-in and start the browser session."""
    signed_in(get_session(), user, second_factor=second_factor, info=info(), enrolled=enrolled)
    identity.login(user, two_factor_done=second_factor is not None)


# --- the pending half of a sign-in -----------------------------------------------------------


def _set_pending(user: User, stage: str, next_url: str | None) -> None:
    session.clear()  # nothing from before the password survives (session fixation)
    session[PENDING] = {
        "uid": user.id,
        "ver": user.session_version,
        "stage": stage,
        "at": int(time.time()),
        "next": next_url,
    }


def _pending_user(stage: str) -> tuple[User, str | None] | None:
    state: Any = session.get(PENDING)
    if not isinstance(state, dict) or state.get("stage") != stage:
        return None
    if time.time() - float(state.get("at", 0)) > PENDING_TTL:
        session.pop(PENDING, None)
        return None
    user = get_session().get(User, state.get("uid"))
    if (
        user is None
        or not user.active
        or user.session_version != state.get("ver")
        or (user.locked_until is not None and aware(user.locked_until) > utcnow())
    ):
        session.pop(PENDING, None)
        return None
    return user, safe_next(state.get("next"))


def after_password(user: User, next_url: str | None) -> BaseResponse:
    if user.totp_enabled:
        _set_pending(user, "verify", next_url)
        return redirect(url_for("auth.second_factor"))
    if user.needs_two_factor:
        _set_pending(user, "enrol", next_url)
        return redirect(url_for("auth.enrol"))
    finish_sign_in(user, next_url, None)
    return redirect(next_url or url_for("catalog.home"))


# --- views -----------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int]:
    next_url = safe_next(request.args.get("next"))
    if browser_user() is not None:
        return redirect(next_url or url_for("auth.account"))
    form = LoginForm()
    error = None
    if request.method == "POST":
        refused = too_many("login")
        if refused is not None:
            return refused
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(get_session(), form.username.data, form.password.data)
        except accounts.LoginRefused as refusal:
            count_attempt("login")
            record_refusal(get_engine(), refusal, stage="login", info=info())
            if refusal.reason in ("locked", "lockout"):
                error = _("Too many failed attempts: this account is locked for a few minutes.")
            else:
                error = _("Wrong username or password.")
        else:
            return after_password(user, next_url)
    return render_template("auth/login.html", form=form, error=error, next=next_url), 200


@bp.route("/login/2fa", methods=["GET", "POST"])
def second_factor() -> BaseResponse | tuple[str, int]:
    pending = _pending_user("verify")
    if pending is None:
        flash(_("Your sign-in expired. Please sign in again."))
        return redirect(url_for("auth.login"))
    user, next_url = pending
    form = CodeForm()
    error = None
    if request.method == "POST":
        refused = too_many("login")
        if refused is not None:
            return refused
    if form.validate_on_submit():
        check = two_factor.check_code(get_session(), throttle(), user, form.code.data)
        if check.ok:
            session.pop(PENDING, None)
            finish_sign_in(user, next_url, check.method)
            return redirect(next_url or url_for("catalog.home"))
        count_attempt("login")
        record_failure_event(get_engine(), EventTag.AUTH_2FA_FAILURE, target=user, request=info())
        if check.locked:
            record_failure_event(
                get_engine(),
                EventTag.AUTH_LOGIN_LOCKOUT,
                target=user,
                details={"reason": "lockout", "stage": "2fa"},
                request=info(),
            )
            session.pop(PENDING, None)
            flash(_("Too many failed attempts: this account is locked for a few minutes."))
            return redirect(url_for("auth.login"))
        error = _("Wrong or already used code. Try the current code or a recovery code.")
    return render_template("auth/second_factor.html", form=form, error=error), 200


@bp.route("/login/2fa/setup", methods=["GET", "POST"])
def enrol() -> BaseResponse | tuple[str, int]:
    pending = _pending_user("enrol")
    if pending is None:
        flash(_("Your sign-in expired. Please sign in again."))
        return redirect(url_for("auth.login"))
    user, next_url = pending
    if user.totp_enabled:  # enrolled meanwhile, in another tab
        _set_pending(user, "verify", next_url)
        return redirect(url_for("auth.second_factor"))
    db = get_session()
    two_factor.start_enrolment(db, user)
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        try:
            codes = two_factor.confirm_enrolment(db, throttle(), user, form.code.data)
        except Invalid:
            db.commit()  # keep the pending secret the person has just scanned
            record_failure_event(
                get_engine(),
                EventTag.AUTH_2FA_FAILURE,
                target=user,
                details={"stage": "enrol"},
                request=info(),
            )
            error = _("Wrong code. Check the time on your phone and type the current code.")
        else:
            session.pop(PENDING, None)
            finish_sign_in(user, next_url, "totp", enrolled=True)
            page = render_template(
                "auth/recovery_codes.html", codes=codes, next=next_url or url_for("catalog.home")
            )
            return page, 200
    return enrol_page(form, error, user, action=url_for("auth.enrol"), mandatory=True)


@bp.post("/logout")
def logout() -> BaseResponse:
    ButtonForm()  # the CSRF token was checked before the view
    user = browser_user()
    if user is not None:
        record_event(
            get_session(),
            EventTag.AUTH_SESSION_LOGOUT,
            actor=current_actor(),
            target=user,
            request=info(),
        )
    identity.logout()
    return redirect(url_for("catalog.home"))
