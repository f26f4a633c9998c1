"""The OAuth 2 provider, end to end: the app on a real HTTP server, driven by Authlib's client.

A ``requests`` session plays the user's browser (its session cookie comes from the app's own
test client); :class:`authlib.integrations.requests_client.OAuth2Session` plays the research
tool. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from sqlalchemy import inspect, select, text
from werkzeug.serving import make_server

from portal import db, identity
from portal import oauth as provider
from portal.errors import Forbidden, Invalid
from portal.models import (
    AccessLevel,
    AccessRequest,
    Dataset,
    RequestStatus,
    Role,
    SecurityEvent,
    User,
)
from portal.models.oauth import ClientAuthMethod, OAuth2AuthorizationCode, OAuth2Token
from portal.services import accounts, oauth_clients
from portal.services.access import OPERATOR
from tests.portal.helpers import add_folder_source, harvest, write_dataset, write_schemas

REDIRECT = "http://127.0.0.1:8765/callback"
CSV = "tanggal,komoditas,harga\n2024-01-02,Beras,13000\n"


@dataclass
class Portal:
    app: Flask
    url: str
    user_id: int
    restricted_resource: str

    def browser(self, user_id: int | None = None) -> requests.Session:
        """A browser signed in as ``user_id`` (the researcher by default)."""
        uid = user_id or self.user_id
        with self.app.app_context(), db.transaction() as session:
            version = session.get(User, uid).session_version
        client = self.app.test_client()
        with client.session_transaction() as flask_session:
            flask_session[identity.SESSION_USER] = uid
            flask_session[identity.SESSION_VERSION] = version
            flask_session[identity.SESSION_2FA] = True
        cookie = client.get_cookie(self.app.config.get("SESSION_COOKIE_NAME", "session"))
        assert cookie is not None
        browser = requests.Session()
        browser.cookies.set(cookie.key, cookie.value, domain="127.0.0.1", path="/")
        return browser

    def register(self, **kwargs: object) -> tuple[str, str | None]:
        options: dict[str, object] = {
            "name": "Alat Riset",
            "redirect_uris": [REDIRECT],
            "scopes": ["read", "read-restricted"],
            "grant_types": ["authorization_code", "refresh_token"],
            **kwargs,
        }
        with self.app.app_context(), db.transaction() as session:
            client, secret = oauth_clients.register_client(session, OPERATOR, **options)  # type: ignore[arg-type]
            return client.client_id, secret

    def session_for(self, client_id: str, secret: str | None, **kwargs: object) -> OAuth2Session:
        method = "none" if secret is None else "client_secret_basic"
        return OAuth2Session(
            client_id,
            secret,
            redirect_uri=REDIRECT,
            code_challenge_method="S256",
            token_endpoint_auth_method=method,
            **kwargs,
        )

    def consent(self, browser: requests.Session, url: str, decision: str = "allow") -> str:
        """Open the consent page at ``url``, answer it, and return the redirect's Location."""
        page = browser.get(url, allow_redirects=False)
        assert page.status_code == 200, page.text
        form = re.search(
            r'<form class="consent-form" method="post" action="([^"]+)">(.*?)</form>',
            page.text,
            re.S,
        )
        assert form is not None
        action = form
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.group(2))
        assert token
        answer = browser.post(
            self.url + html.unescape(action.group(1)),
            data={"csrf_token": token.group(1), "decision": decision},
            allow_redirects=False,
        )
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    def authorize(self, oauth: OAuth2Session, scope: str = "read") -> dict[str, object]:
        verifier = generate_token(64)
        url, _state = oauth.create_authorization_url(
            self.url + "/oauth/authorize", code_verifier=verifier, scope=scope
        )
        location = self.consent(self.browser(), url)
        return oauth.fetch_token(
            self.url + "/oauth/token", authorization_response=location, code_verifier=verifier
        )

    def api(self, access_token: str, path: str = "/api/v1/datasets") -> requests.Response:
        return requests.get(
            self.url + path, headers={"Authorization": f"Bearer {access_token}"}, timeout=10
        )


@pytest.fixture
def portal(app_factory, tmp_path: Path) -> Iterator[Portal]:  # type: ignore[no-untyped-def]
    app = app_factory(SCHEMAS_PATH=str(write_schemas(tmp_path / "schemas")))
    if "oauth" not in app.blueprints:  # until create_app wires the provider itself
        provider.init_app(app)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-pasar", CSV)
    write_dataset(folder, "harga-terbatas", CSV)
    harvest(app, add_folder_source(app, folder))
    with app.app_context(), db.transaction() as session:
        user = accounts.create_user(session, username="peneliti", password="kata-sandi-panjang")
        dataset = session.scalars(select(Dataset).where(Dataset.name == "harga-terbatas")).one()
        dataset.access_level = AccessLevel.RESTRICTED
        session.add(
            AccessRequest(
                dataset_id=dataset.id,
                user_id=user.id,
                purpose="penelitian harga pangan",
                status=RequestStatus.GRANTED,
            )
        )
        user_id, resource_id = user.id, dataset.resources[0].id
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Portal(app, f"http://127.0.0.1:{server.server_port}", user_id, resource_id)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _download(portal: Portal, access_token: str) -> int:
    path = f"/dataset/harga-terbatas/resource/{portal.restricted_resource}/download"
    return portal.api(access_token, path).status_code


def test_code_flow_with_pkce_reads_the_api_with_its_scopes(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)

    read_only = portal.authorize(oauth, "read")
    assert read_only["scope"] == "read" and read_only["token_type"] == "Bearer"
    listed = oauth.get(portal.url + "/api/v1/datasets", timeout=10).json()
    assert {d["name"] for d in listed["results"]} == {"harga-pasar", "harga-terbatas"}
    assert _download(portal, str(read_only["access_token"])) == 404  # no restricted data

    wider = portal.authorize(portal.session_for(client_id, secret), "read read-restricted")
    assert _download(portal, str(wider["access_token"])) == 200  # the user's grant counts
    assert portal.api(str(wider["access_token"])).status_code == 200


def test_authorization_without_pkce_or_with_plain_is_refused(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    browser = portal.browser()
    for extra in ({}, {"code_challenge": "x" * 43, "code_challenge_method": "plain"}):
        url, state = oauth.create_authorization_url(portal.url + "/oauth/authorize", **extra)
        answer = browser.get(url, allow_redirects=False)
        assert answer.status_code == 302
        sent = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert answer.headers["Location"].startswith(REDIRECT)
        assert sent["error"] == ["invalid_request"] and sent["state"] == [state]
        assert "code" not in sent
    with portal.app.app_context(), db.transaction() as session:
        assert session.scalars(select(OAuth2AuthorizationCode)).first() is None


def test_wrong_verifier_is_refused_and_burns_the_code(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(
        portal.url + "/oauth/authorize", code_verifier=verifier, scope="read"
    )
    location = portal.consent(portal.browser(), url)
    with pytest.raises(OAuthError) as wrong:
        oauth.fetch_token(
            portal.url + "/oauth/token",
            authorization_response=location,
            code_verifier=generate_token(64),
        )
    assert wrong.value.error == "invalid_grant"
    with pytest.raises(OAuthError):  # the code was used up by the failed attempt
        oauth.fetch_token(
            portal.url + "/oauth/token", authorization_response=location, code_verifier=verifier
        )


def test_a_replayed_code_revokes_what_it_gave(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(
        portal.url + "/oauth/authorize", code_verifier=verifier, scope="read"
    )
    location = portal.consent(portal.browser(), url)
    first = oauth.fetch_token(
        portal.url + "/oauth/token", authorization_response=location, code_verifier=verifier
    )
    assert portal.api(first["access_token"]).status_code == 200
    with pytest.raises(OAuthError):
        oauth.fetch_token(
            portal.url + "/oauth/token", authorization_response=location, code_verifier=verifier
        )
    assert portal.api(first["access_token"]).status_code == 401


def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_grant(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    first = portal.authorize(oauth, "read")
    second = oauth.refresh_token(portal.url + "/oauth/token")
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "read"
    assert portal.api(first["access_token"]).status_code == 401  # the old pair ended
    assert portal.api(second["access_token"]).status_code == 200
    with pytest.raises(OAuthError):
        oauth.refresh_token(portal.url + "/oauth/token", refresh_token=first["refresh_token"])
    assert portal.api(second["access_token"]).status_code == 401  # theft suspected: all ended


def test_client_credentials_act_as_a_member_with_the_clients_scopes(portal):
    client_id, secret = portal.register(
        name="Dasbor Kota",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["read", "read-restricted"],
    )
    machine = OAuth2Session(client_id, secret, scope="read read-restricted")
    token = machine.fetch_token(portal.url + "/oauth/token", grant_type="client_credentials")
    assert "refresh_token" not in token
    listed = portal.api(token["access_token"]).json()
    assert {d["name"] for d in listed["results"]} == {"harga-pasar", "harga-terbatas"}
    assert _download(portal, token["access_token"]) == 404  # no grants of anybody's
    with pytest.raises(OAuthError) as too_wide:
        OAuth2Session(client_id, secret, scope="steward").fetch_token(
            portal.url + "/oauth/token", grant_type="client_credentials"
        )
    assert too_wide.value.error == "invalid_scope"


def test_revocation_makes_the_api_answer_401(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    token = portal.authorize(oauth, "read")
    assert portal.api(token["access_token"]).status_code == 200
    oauth.revoke_token(
        portal.url + "/oauth/revoke", token=token["access_token"], token_type_hint="access_token"
    )
    refused = portal.api(token["access_token"])
    assert refused.status_code == 401
    assert refused.json()["ok"] is False
    with pytest.raises(OAuthError):  # revoking one of the pair ends both
        oauth.refresh_token(portal.url + "/oauth/token", refresh_token=token["refresh_token"])


def test_introspection_answers_the_owner_and_admin_clients_only(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    token = portal.authorize(oauth, "read")
    mine = oauth.introspect_token(portal.url + "/oauth/introspect", token=token["access_token"])
    body = mine.json()
    assert body["active"] is True and body["scope"] == "read"
    assert body["client_id"] == client_id and body["username"] == "peneliti"

    other_id, other_secret = portal.register(name="Lain")
    other = portal.session_for(other_id, other_secret)
    foreign = other.introspect_token(portal.url + "/oauth/introspect", token=token["access_token"])
    assert foreign.json() == {"active": False}

    rs_id, rs_secret = portal.register(
        name="Server Sumber Daya", redirect_uris=[], grant_types=["client_credentials"]
    )
    with portal.app.app_context(), db.transaction() as session:
        oauth_clients.get_client(session, OPERATOR, rs_id).may_introspect = True
    admin = portal.session_for(rs_id, rs_secret)
    assert admin.introspect_token(
        portal.url + "/oauth/introspect", token=token["access_token"]
    ).json()["active"]

    oauth.revoke_token(portal.url + "/oauth/revoke", token=token["refresh_token"])
    gone = oauth.introspect_token(portal.url + "/oauth/introspect", token=token["access_token"])
    assert gone.json() == {"active": False}


def test_public_client_uses_pkce_without_a_secret(portal):
    client_id, secret = portal.register(auth_method=ClientAuthMethod.NONE)
    assert secret is None
    token = portal.authorize(portal.session_for(client_id, None), "read")
    assert portal.api(token["access_token"]).status_code == 200


def test_consent_needs_a_signed_in_user_and_csrf_and_may_be_denied(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    url, state = oauth.create_authorization_url(
        portal.url + "/oauth/authorize", code_verifier=generate_token(64), scope="read"
    )
    anonymous = requests.get(url, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login?next=%2Foauth%2Fauthorize")

    browser = portal.browser()
    page = browser.get(url, allow_redirects=False)
    assert "Izinkan Alat Riset menggunakan akun Anda?" in page.text  # Bahasa Indonesia
    assert "Membaca dataset yang telah terbit beserta data publiknya." in page.text
    # the browser may follow the consent form's redirect to the client
    assert "form-action 'self' http://127.0.0.1:8765" in page.headers["Content-Security-Policy"]
    forged = browser.post(url, data={"decision": "allow"}, allow_redirects=False)
    assert forged.status_code == 400

    denied = parse_qs(urlsplit(portal.consent(browser, url, decision="deny")).query)
    assert denied["error"] == ["access_denied"] and denied["state"] == [state]


def test_a_revoked_client_and_its_tokens_stop_working(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    token = portal.authorize(oauth, "read")
    with portal.app.app_context(), db.transaction() as session:
        oauth_clients.revoke_client(session, OPERATOR, client_id)
    assert portal.api(token["access_token"]).status_code == 401
    with pytest.raises(OAuthError) as refused:
        oauth.refresh_token(portal.url + "/oauth/token", refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_client"


def test_secrets_codes_and_tokens_are_stored_only_hashed(portal):
    client_id, secret = portal.register()
    oauth = portal.session_for(client_id, secret)
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(
        portal.url + "/oauth/authorize", code_verifier=verifier, scope="read"
    )
    location = portal.consent(portal.browser(), url)
    code = parse_qs(urlsplit(location).query)["code"][0]
    token = oauth.fetch_token(
        portal.url + "/oauth/token", authorization_response=location, code_verifier=verifier
    )
    refreshed = oauth.refresh_token(portal.url + "/oauth/token")
    plain = [secret, code, token["access_token"], token["refresh_token"]]
    plain += [refreshed["access_token"], refreshed["refresh_token"]]
    engine = portal.app.extensions["onedata.engine"]
    dump = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            dump += [repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    everything = "\n".join(dump)
    assert client_id in everything  # the dump does see the tables
    for value in plain:
        assert value and value not in everything
    with portal.app.app_context(), db.transaction() as session:
        assert session.scalars(select(OAuth2Token)).first() is not None
        tags = set(session.scalars(select(SecurityEvent.tag)))
    assert {"auth:oauth_client:create", "auth:token:create"} <= tags


def test_registration_rules(portal):
    with portal.app.app_context(), db.transaction() as session:
        member = accounts.actor_for(session, accounts.get_user(session, "peneliti"))
        assert member.role is Role.MEMBER
        with pytest.raises(Forbidden):
            oauth_clients.register_client(
                session,
                member,
                name="x",
                redirect_uris=[REDIRECT],
                scopes=["read"],
                grant_types=["authorization_code"],
            )
        bad = [
            {"redirect_uris": ["http://contoh.go.id/cb"]},  # plain http off the loopback
            {"redirect_uris": ["https://contoh.go.id/cb#frag"]},
            {"scopes": ["read", "admin"]},
            {"grant_types": ["password"]},
            {"grant_types": ["refresh_token"]},
            {"auth_method": ClientAuthMethod.NONE, "grant_types": ["client_credentials"]},
        ]
        for change in bad:
            options = {
                "name": "x",
                "redirect_uris": [REDIRECT],
                "scopes": ["read"],
                "grant_types": ["authorization_code"],
                **change,
            }
            with pytest.raises(Invalid):
                oauth_clients.register_client(session, OPERATOR, **options)  # type: ignore[arg-type]


def test_metadata_document(portal):
    body = requests.get(portal.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["token_endpoint"] == portal.url + "/oauth/token"
    assert set(body["scopes_supported"]) == {"read", "read-restricted", "harvest", "steward"}


def test_require_oauth_guards_oauth_only_views(portal):
    @portal.app.get("/oauth-only")
    @provider.require_oauth("read-restricted")
    def oauth_only() -> dict[str, bool]:
        return {"ok": True}

    client_id, secret = portal.register(
        name="Mesin", redirect_uris=[], grant_types=["client_credentials"]
    )

    def machine(scope: str) -> str:
        session = OAuth2Session(client_id, secret, scope=scope)
        url = portal.url + "/oauth/token"
        return str(session.fetch_token(url, grant_type="client_credentials")["access_token"])

    assert portal.api(machine("read read-restricted"), "/oauth-only").status_code == 200
    assert portal.api(machine("read"), "/oauth-only").status_code == 403
    assert requests.get(portal.url + "/oauth-only", timeout=10).status_code == 401
