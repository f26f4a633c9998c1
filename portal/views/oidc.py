"""Sign in through the city's identity provider (OpenID Connect, Authlib's Flask client).

Off unless ``ONEDATA_OIDC_ISSUER``, ``ONEDATA_OIDC_CLIENT_ID`` and ``ONEDATA_OIDC_CLIENT_SECRET``
are all set: then ``/login/oidc`` and its callback answer 404. The login page links to
``/login/oidc`` (a link, not a form: the CSP's ``form-action`` would stop a form's redirect to
the provider); templates see ``oidc_enabled``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from joserfc.errors import JoseError
from requests import RequestException

from portal import identity
from portal.db import get_session
from portal.identity import request_info
from portal.services import oidc
from portal.services.accounts import LoginRefused
from portal.services.events import EventTag, record_event

bp = Blueprint("oidc", __name__)
EXTENSION = "onedata.oidc"
PROVIDER = "city"
NEXT = "oidc_next"
#: What can go wrong between the provider and us: its errors, a bad or forged token, no network.
FAILURES = (OAuthError, JoseError, RequestException, ValueError, KeyError)


def enabled(config: Any) -> bool:
    return all(config.get(key) for key in ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"))


def safe_next(target: str | None) -> str | None:
    """A path on this site to return to after signing in; anything else is dropped."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _provider() -> Any:
    provider = current_app.extensions.get(EXTENSION)
    if provider is None:
        abort(404)
    return provider


@bp.get("/login/oidc")
def login() -> Any:
    provider = _provider()
    session[NEXT] = safe_next(request.args.get("next"))
    return provider.authorize_redirect(url_for("oidc.callback", _external=True))


def _refused(reason: str, status: int = 400) -> tuple[str, int]:
    record_event(
        get_session(),
        EventTag.AUTH_LOGIN_FAILURE,
        details={"method": "oidc", "reason": reason},
        request=request_info(status),
    )
    message = _("Signing in through the city's identity provider did not succeed. Try again.")
    return render_template("error.html", status=status, message=message), status


@bp.get("/login/oidc/callback")
def callback() -> Any:
    provider = _provider()
    target = safe_next(session.pop(NEXT, None))
    try:
        token = provider.authorize_access_token()
    except FAILURES as exc:
        reason = getattr(exc, "error", None) or type(exc).__name__
        return _refused(str(reason)[:64])
    claims = token.get("userinfo")
    if not claims:  # no ID token, or no nonce to check it against
        return _refused("no_id_token")
    try:
        outcome = oidc.sign_in(
            get_session(),
            dict(claims),
            role_claim=current_app.config.get("OIDC_ROLE_CLAIM") or None,
            request=request_info(),
        )
    except LoginRefused as exc:
        return _refused(exc.reason, 403)
    if outcome.needs_our_second_factor:
        # The password sign-in's second step takes over: a pending marker, then /login/2fa (or
        # TOTP enrolment); it starts the session and logs the sign-in.
        from portal.views import auth

        return auth.after_password(outcome.user, target)
    identity.login(outcome.user, two_factor_done=outcome.two_factor_done)
    oidc.record_login(get_session(), outcome, request=request_info())
    return redirect(target or url_for("catalog.home"))


def init_app(app: Flask) -> None:
    """Register the provider when configured, and the routes (404 when not)."""
    provider = None
    if enabled(app.config):
        registry = OAuth(app)  # one registry per app: tests build many apps
        provider = registry.register(
            PROVIDER,
            client_id=app.config["OIDC_CLIENT_ID"],
            client_secret=app.config["OIDC_CLIENT_SECRET"],
            server_metadata_url=str(app.config["OIDC_ISSUER"]).rstrip("/")
            + "/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid email profile",
                "code_challenge_method": "S256",
                "default_timeout": 10,
            },
        )
    app.extensions[EXTENSION] = provider
    app.register_blueprint(bp)

    @app.context_processor
    def oidc_flag() -> dict[str, object]:
        return {"oidc_enabled": provider is not None}
