"""Sign-in through the city's identity provider (OIDC), against a small fake provider.

The provider is an external system, so a stand-in is fair here: a local ``http.server`` serving
discovery, JWKS and a token endpoint that signs ID tokens with a key made in the test. Everything
on our side is real: Authlib's Flask client fetches the metadata, the keys and the token over
HTTP and verifies signature, issuer, audience, expiry and nonce.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from portal import db, identity
from portal.models import Role, SecurityEvent, User
from portal.services import accounts
from portal.services.organizations import ensure_organization
from portal.views import oidc as oidc_views

CLIENT_ID = "satu-data"
CLIENT_SECRET = "rahasia-klien-uji"  # noqa: S105 - the fake provider's test secret


class FakeProvider:
    """Discovery, JWKS and a token endpoint; the test decides what each code yields."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "kunci-1"})
        self.codes: dict[str, dict[str, Any]] = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep the test output clean
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/.well-known/openid-configuration":
                    self._send(200, provider.metadata())
                elif self.path == "/jwks":
                    self._send(200, {"keys": [provider.key.as_dict(private=False)]})
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    return self._send(401, {"error": "invalid_client"})
                grant = provider.codes.pop(form.get("code", ""), None)
                if grant is None:
                    return self._send(400, {"error": "invalid_grant"})
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                if challenge != grant["challenge"]:
                    return self._send(400, {"error": "invalid_grant"})
                self._send(
                    200,
                    {
                        "access_token": "idp-access",
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": grant["id_token"],
                    },
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def issue(self, code: str, challenge: str, claims: dict[str, Any], key: RSAKey | None = None):  # type: ignore[no-untyped-def]
        now = int(time.time())
        full = {"iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300, **claims}
        signer = key or self.key
        token = jwt.encode({"alg": "RS256", "kid": signer.kid}, full, signer)
        self.codes[code] = {"challenge": challenge, "id_token": token}


@pytest.fixture
def idp() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    provider.thread.start()
    try:
        yield provider
    finally:
        provider.server.shutdown()
        provider.server.server_close()
        provider.thread.join(5)


@pytest.fixture
def sso_app(app_factory, idp: FakeProvider) -> Flask:  # type: ignore[no-untyped-def]
    app = app_factory(
        OIDC_ISSUER=idp.url,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_ROLE_CLAIM="peran_satu_data",
    )
    if "oidc" not in app.blueprints:  # until create_app wires the OIDC views itself
        oidc_views.init_app(app)
    return app


def _sign_in(app: Flask, idp: FakeProvider, claims: dict[str, Any], **kw: Any):  # type: ignore[no-untyped-def]
    """Go through /login/oidc and the callback; returns the test client and the last response."""
    client = app.test_client()
    start = client.get("/login/oidc?next=" + kw.pop("next", "/dataset"))
    assert start.status_code == 302
    sent = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["Location"]).query).items()}
    assert start.headers["Location"].startswith(idp.url + "/authorize")
    assert sent["code_challenge_method"] == "S256" and sent["client_id"] == CLIENT_ID
    nonce = kw.pop("nonce", sent["nonce"])
    idp.issue("kode-1", sent["code_challenge"], {"nonce": nonce, **claims}, **kw)
    state = sent["state"]
    return client, client.get(f"/login/oidc/callback?code=kode-1&state={state}")


def _user(app: Flask, subject: str) -> User | None:
    with app.app_context(), db.transaction() as session:
        user = session.scalars(select(User).where(User.oidc_subject == subject)).first()
        if user is not None:
            _ = list(user.organizations)
        return user


def _tags(app: Flask) -> list[str]:
    with app.app_context(), db.transaction() as session:
        return list(session.scalars(select(SecurityEvent.tag).order_by(SecurityEvent.seq)))


def test_disabled_without_settings(app):
    if "oidc" not in app.blueprints:
        oidc_views.init_app(app)
    client = app.test_client()
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_first_sign_in_creates_a_member_and_the_next_finds_it(sso_app, idp):
    claims = {
        "sub": "warga-123",
        "preferred_username": "Budi.Santoso",
        "email": "budi@pontianak.go.id",
        "email_verified": True,
        "name": "Budi Santoso",
    }
    client, done = _sign_in(sso_app, idp, claims)
    assert done.status_code == 302 and done.headers["Location"] == "/dataset"
    user = _user(sso_app, "warga-123")
    assert user is not None and user.role is Role.MEMBER
    assert (user.username, user.email, user.password_hash) == (
        "budi.santoso",
        "budi@pontianak.go.id",
        None,
    )
    with client.session_transaction() as session:
        assert session[identity.SESSION_USER] == user.id
    assert {"user:account:create", "auth:login:success"} <= set(_tags(sso_app))

    _, again = _sign_in(sso_app, idp, claims)
    assert again.status_code == 302
    with sso_app.app_context(), db.transaction() as session:
        assert session.scalars(select(User)).all() == [session.get(User, user.id)]


def test_a_claim_never_makes_a_steward_but_may_make_a_producer(sso_app, idp):
    _sign_in(sso_app, idp, {"sub": "a", "peran_satu_data": ["steward", "admin"]})
    assert _user(sso_app, "a").role is Role.MEMBER  # type: ignore[union-attr]

    with sso_app.app_context(), db.transaction() as session:
        ensure_organization(session, name="dinkes", title="Dinas Kesehatan")
    _sign_in(sso_app, idp, {"sub": "b", "peran_satu_data": "producer:dinkes steward"})
    producer = _user(sso_app, "b")
    assert producer is not None and producer.role is Role.PRODUCER
    assert [o.name for o in producer.organizations] == ["dinkes"]


def test_a_steward_still_answers_our_totp_unless_the_provider_did_mfa(sso_app, idp):
    with sso_app.app_context(), db.transaction() as session:
        steward = accounts.create_user(
            session, username="walidata", password=None, role=Role.STEWARD
        )
        steward.oidc_subject = "walidata-1"
    client, done = _sign_in(sso_app, idp, {"sub": "walidata-1", "amr": ["pwd"]})
    assert done.status_code == 302 and "/login/2fa" in done.headers["Location"]
    with client.session_transaction() as session:
        assert identity.SESSION_USER not in session  # not signed in yet
    assert "auth:login:success" not in _tags(sso_app)

    client, done = _sign_in(sso_app, idp, {"sub": "walidata-1", "amr": ["pwd", "otp", "mfa"]})
    assert done.headers["Location"] == "/dataset"
    with client.session_transaction() as session:
        assert session[identity.SESSION_2FA] is True
    assert client.get("/api/v1/datasets").status_code == 200


@pytest.mark.parametrize("attack", ["forged", "nonce", "state", "audience"])
def test_a_bad_answer_from_the_provider_signs_nobody_in(sso_app, idp, attack):
    claims: dict[str, Any] = {"sub": "penyusup"}
    options: dict[str, Any] = {}
    if attack == "forged":
        options["key"] = RSAKey.generate_key(2048, parameters={"kid": "kunci-1"})
    elif attack == "nonce":
        options["nonce"] = "bukan-nonce-ini"
    elif attack == "audience":
        claims["aud"] = "aplikasi-lain"
    if attack == "state":
        client = sso_app.test_client()
        client.get("/login/oidc")
        done = client.get("/login/oidc/callback?code=kode-1&state=palsu")
    else:
        client, done = _sign_in(sso_app, idp, claims, **options)
    assert done.status_code == 400
    assert _user(sso_app, "penyusup") is None
    with client.session_transaction() as session:
        assert identity.SESSION_USER not in session
    assert _tags(sso_app)[-1] == "auth:login:failure"


def test_next_must_stay_on_this_site(sso_app, idp):
    _, done = _sign_in(sso_app, idp, {"sub": "c"}, next="https://jahat.example/")
    assert done.headers["Location"] == "/"
