"""The OAuth 2 provider, built on Authlib: grants, endpoints, bearer tokens and ``/oauth/*``.

- ``/oauth/authorize``: authorization code, **PKCE with S256 required** (plain and a missing
  challenge are refused), after the signed-in user consents on a page of ours;
- ``/oauth/token``: authorization code, refresh token (rotating) and client credentials;
- ``/oauth/revoke`` (RFC 7009) and ``/oauth/introspect`` (RFC 7662: a client sees its own tokens,
  a client registered with ``may_introspect`` every token);
- ``/.well-known/oauth-authorization-server`` (RFC 8414) for clients that discover endpoints.

Access tokens work on every endpoint that asks :func:`portal.identity.current_actor`: a resolver
in ``app.extensions["onedata.token_resolvers"]`` turns them into an actor. The rules (hashes,
single-use codes, revocation, who a token is) live in :mod:`portal.services.oauth`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import ValidationError, generate_csrf, validate_csrf
from sqlalchemy.orm import Session

from portal.db import get_session
from portal.headers import CSP
from portal.identity import current_actor, current_user, request_info
from portal.models.oauth import ClientAuthMethod, GrantType, OAuth2Client, OAuth2Token
from portal.services import oauth as rules
from portal.services.access import Actor, Scope
from portal.services.accounts import TokenRefused

bp = Blueprint("oauth", __name__)
SERVER = "onedata.oauth.server"
AUTH_METHODS = [m.value for m in ClientAuthMethod]
SECRET_METHODS = [m.value for m in ClientAuthMethod if m is not ClientAuthMethod.NONE]

#: What each scope lets an application do, as the consent page says it.
SCOPE_TEXTS = {
    Scope.READ: _l("Read published datasets and their public data."),
    Scope.READ_RESTRICTED: _l(
        "Read the data of restricted datasets you have been granted, and your OPD's datasets."
    ),
    Scope.HARVEST: _l("Manage your OPD's harvest sources and submit datasets for review."),
    Scope.STEWARD: _l("Review, edit, publish and withdraw datasets and decide access requests."),
}


class S256Required(CodeChallenge):  # type: ignore[misc]
    """PKCE for every authorization request, whatever the client: S256 only."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send a code_challenge (S256).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, req: Any) -> Any:
        data = req.payload.data
        return rules.save_code(
            get_session(),
            client=req.client,
            user=req.user,
            code=code,
            redirect_uri=req.payload.redirect_uri,
            scopes=(req.scope or "").split(),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
        )

    def query_authorization_code(self, code: str, client: OAuth2Client) -> Any:
        return rules.claim_code(get_session(), client, code)

    def delete_authorization_code(self, authorization_code: Any) -> None:
        """Kept, marked used by :func:`claim_code`: a replay can then revoke its tokens."""

    def authenticate_user(self, authorization_code: Any) -> Any:
        user = authorization_code.user
        return user if user.active else None


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Any:
        return rules.find_refresh_token(
            get_session(), self.request.client, refresh_token, request=request_info()
        )

    def authenticate_user(self, token: OAuth2Token) -> Any:
        user = token.user
        return user if user is not None and user.active else None

    def revoke_old_credential(self, token: OAuth2Token) -> None:
        rules.retire_token(get_session(), token)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        found = rules.find_token(get_session(), token_string, token_type_hint)
        return found[0] if found else None

    def revoke_token(self, token: OAuth2Token, req: Any) -> None:
        actor = rules.client_actor(req.client)
        rules.revoke_token(get_session(), token, actor=actor, request=request_info())


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = SECRET_METHODS

    def authenticate_token(self, req: Any, client: OAuth2Client) -> Any:
        self.check_params(req, client)
        found = rules.find_token(get_session(), req.form["token"], req.form.get("token_type_hint"))
        if found and (found[0].check_client(client) or client.may_introspect):
            return found
        return None

    def create_introspection_payload(self, found: Any) -> dict[str, Any]:
        if not found:
            return {"active": False}
        token, kind = found
        return rules.introspection(token, kind, request.host_url.rstrip("/"))


class AccessTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    """Authlib's checks (expiry, revocation, scope) on our hashed tokens."""

    def authenticate_token(self, token_string: str) -> Any:
        found = rules.find_token(get_session(), token_string, rules.TokenKind.ACCESS)
        return found[0] if found else None

    def validate_token(self, token: OAuth2Token | None, scopes: Any, req: Any) -> None:
        super().validate_token(token, scopes, req)
        assert token is not None  # noqa: S101 - the parent refuses a missing token
        if token.client.revoked or (token.user is not None and not token.user.active):
            raise InvalidTokenError(realm=self.realm, extra_attributes=self.extra_attributes)


VALIDATOR = AccessTokenValidator()
#: For views that want OAuth-only protection: ``@require_oauth("read")``.
require_oauth = ResourceProtector()
require_oauth.register_token_validator(VALIDATOR)


def resolve_bearer(session: Session, token: str) -> Actor | None:
    """The token resolver for :mod:`portal.identity`: our access tokens, else ``None``.

    :raises TokenRefused: when it is ours but unknown, expired or revoked, or its client revoked
        or its user disabled.
    """
    if not token.startswith(rules.ACCESS_PREFIX):
        return None
    refused = TokenRefused("the OAuth access token is not valid (unknown, expired or revoked)")
    found = rules.find_token(session, token, rules.TokenKind.ACCESS)
    if found is None:
        raise refused
    try:
        VALIDATOR.validate_token(found[0], None, None)
    except OAuth2Error:
        raise refused from None
    return rules.actor_for_token(session, found[0])


def _save_token(token: dict[str, Any], req: Any) -> None:
    grant_type = GrantType(req.payload.grant_type)
    parent = req.authorization_code or req.refresh_token
    rules.save_token(
        get_session(),
        client=req.client,
        user=req.user,
        token=token,
        grant_type=grant_type,
        grant_id=parent.grant_id if parent is not None else None,
        refresh_lifetime=int(current_app.config["OAUTH_REFRESH_TOKEN_LIFETIME"]),
        request=request_info(),
    )


def create_server(app: Flask) -> AuthorizationServer:
    """An authorization server for ``app`` (one per app: it holds the app's token lifetimes)."""
    server = AuthorizationServer()
    server.init_app(
        app,
        query_client=lambda client_id: rules.active_client(get_session(), client_id),
        save_token=_save_token,
    )
    lifetime = int(app.config["OAUTH_ACCESS_TOKEN_LIFETIME"])
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            lambda **_: rules.new_secret(rules.ACCESS_PREFIX),
            lambda **_: rules.new_secret(rules.REFRESH_PREFIX),
            lambda client, grant_type: lifetime,
        ),
    )
    server.scopes_supported = [s.value for s in Scope]
    server.register_grant(AuthorizationCodeGrant, [S256Required(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    return server


def _server() -> AuthorizationServer:
    server: AuthorizationServer = current_app.extensions[SERVER]
    return server


def _consent_csp(redirect_uri: str) -> str:
    # Browsers apply form-action to the redirect that follows the consent form's POST.
    parts = urlsplit(redirect_uri)
    return CSP.replace("form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}")


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    server = _server()
    actor, user = current_actor(), current_user()
    signed_in = user if user is not None and actor.scopes is None else None  # a browser session
    try:
        grant = server.get_consent_grant(end_user=signed_in)
    except OAuth2Error as error:
        if error.redirect_uri:  # the client and its redirect URI are known: tell the client
            return server.handle_error_response(None, error)
        message = _("The application's request is not valid (%(error)s).", error=error.error)
        return render_template("error.html", status=400, message=message), 400
    if signed_in is None:
        return redirect("/login?" + urlencode({"next": request.full_path}))
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            message = _("This form has expired. Go back, reload the page and try again.")
            return render_template("error.html", status=400, message=message), 400
        approved = request.form.get("decision") == "allow"
        return server.create_authorization_response(
            grant=grant, grant_user=signed_in if approved else None
        )
    scopes = [Scope(s) for s in (grant.request.scope or "").split()]
    page = render_template(
        "oauth_authorize.html",
        client=grant.client,
        user=signed_in,
        scopes=[(s.value, SCOPE_TEXTS[s]) for s in scopes],
        redirect_host=urlsplit(grant.redirect_uri).netloc,
        form_token=generate_csrf(),
        action=request.full_path,
    )
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _consent_csp(grant.redirect_uri)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/oauth/token")
def token() -> Response:
    response: Response = _server().create_token_response()
    return response


@bp.post("/oauth/revoke")
def revoke() -> Response:
    response: Response = _server().create_endpoint_response(Revocation.ENDPOINT_NAME)
    return response


@bp.post("/oauth/introspect")
def introspect() -> Response:
    response: Response = _server().create_endpoint_response(Introspection.ENDPOINT_NAME)
    return response


@bp.get("/.well-known/oauth-authorization-server")
def metadata() -> dict[str, Any]:
    return {
        "issuer": request.host_url.rstrip("/"),
        "authorization_endpoint": url_for("oauth.authorize", _external=True),
        "token_endpoint": url_for("oauth.token", _external=True),
        "revocation_endpoint": url_for("oauth.revoke", _external=True),
        "introspection_endpoint": url_for("oauth.introspect", _external=True),
        "scopes_supported": [s.value for s in Scope],
        "response_types_supported": ["code"],
        "grant_types_supported": [g.value for g in GrantType],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
    }


def init_app(app: Flask) -> None:
    """Create the app's authorization server, route ``/oauth/*`` and accept OAuth tokens."""
    app.config.setdefault("OAUTH_ACCESS_TOKEN_LIFETIME", 3600)
    app.config.setdefault("OAUTH_REFRESH_TOKEN_LIFETIME", 30 * 24 * 3600)
    app.extensions[SERVER] = create_server(app)
    app.register_blueprint(bp)
    app.extensions.setdefault("onedata.token_resolvers", []).append(resolve_bearer)
    if not _exempt_from_csrf(app):
        # Flask-WTF's CSRFProtect may be set up after us: exempt before its check runs.
        @app.before_request
        def exempt_late() -> None:
            _exempt_from_csrf(current_app)


def _exempt_from_csrf(app: Flask) -> bool:
    """Clients authenticate themselves at the token endpoints and send no cookies: no CSRF."""
    csrf = app.extensions.get("csrf")
    if csrf is None:
        return False
    for view in (token, revoke, introspect):
        csrf.exempt(view)
    return True
