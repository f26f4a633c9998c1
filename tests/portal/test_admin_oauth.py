"""OAuth 2 clients at `/admin/oauth-clients` and `onedata oauth`: registration (the secret shown
once, only its hash stored), the form's refusals, revocation (no token afterwards), who may."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal import db
from portal.cli_oauth import oauth
from portal.models import Role, User
from portal.models.oauth import ClientAuthMethod, OAuth2Client, digest
from portal.services import accounts
from portal.services.organizations import ensure_organization
from tests.portal.access_fixtures import client_for, make_app, make_user
from tests.portal.auth_helpers import assert_not_stored, events, submit
from tests.portal.cli_helpers import command_runner

NEW = "/admin/oauth-clients/new"
LIST = "/admin/oauth-clients"
CLIENT_ID = re.compile(r'id="client-id" type="text" readonly size="40" value="([^"]+)"')
SECRET = re.compile(r'id="secret" type="text" readonly size="60" value="([^"]+)"')
SHOWN_ONCE = "Copy the client secret now: it will not be shown again."


@pytest.fixture
def site(app_factory: Any, tmp_path: Path) -> tuple[Flask, dict[str, int]]:
    app = make_app(app_factory, tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context(), db.transaction() as session:
        ensure_organization(session, name="dinas-uji", title="Dinas Uji")
    ids = {
        "admin": make_user(app, "admin", Role.ADMIN),
        "member": make_user(app, "peneliti"),
        "producer": make_user(app, "produsen", Role.PRODUCER, ("dinas-uji",)),
        "steward": make_user(app, "walidata", Role.STEWARD),
    }
    return app, ids


def admin_client(app: Flask, ids: dict[str, int]) -> FlaskClient:
    client = client_for(app, ids["admin"])
    client.set_cookie("lang", "en")
    return client


def register(client: FlaskClient, **fields: Any) -> Any:
    form = {
        "name": "Dasbor Harga Kota",
        "redirect_uris": "https://dasbor.pontianak.go.id/callback\nhttp://127.0.0.1:8765/cb\n",
        "grant_types": ["authorization_code", "client_credentials"],
        "scopes": ["read"],
        "client_type": "confidential",
        **fields,
    }
    return submit(client, NEW, form)


def stored(app: Flask) -> list[OAuth2Client]:
    with app.app_context(), db.transaction() as session:
        clients = list(session.scalars(select(OAuth2Client).order_by(OAuth2Client.id)))
        session.expunge_all()
        return clients


def client_credentials(app: Flask, client_id: str, secret: str, scope: str = "read") -> Any:
    """Ask ``/oauth/token`` for a token the way a machine client does (HTTP Basic)."""
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return app.test_client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        headers={"Authorization": f"Basic {basic}"},
    )


def test_admin_registers_a_confidential_client_and_sees_its_secret_once(site):
    app, ids = site
    admin = admin_client(app, ids)
    page = admin.get(NEW)
    assert page.status_code == 200 and b'name="csrf_token"' in page.data
    assert b'value="steward"' in page.data and b'value="client_credentials"' in page.data
    forged = admin.post(NEW, data={"name": "Palsu", "scopes": "read", "grant_types": "x"})
    assert forged.status_code == 400 and stored(app) == []

    created = register(admin, owner="peneliti")
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.headers["Cache-Control"] == "no-store"
    text = created.get_data(as_text=True)
    assert SHOWN_ONCE in text
    client_id, secret = CLIENT_ID.search(text).group(1), SECRET.search(text).group(1)  # type: ignore[union-attr]
    assert client_id.startswith("odc_") and secret.startswith("ods_")

    (row,) = stored(app)
    assert row.client_id == client_id and row.client_secret_hash == digest(secret)
    assert row.token_endpoint_auth_method is ClientAuthMethod.CLIENT_SECRET_BASIC
    assert row.redirect_uris == [
        "https://dasbor.pontianak.go.id/callback",
        "http://127.0.0.1:8765/cb",
    ]
    assert row.grant_types == ["authorization_code", "client_credentials"]
    assert row.scopes == ["read"] and row.owner_id == ids["member"]
    assert row.created_by_id == ids["admin"]
    assert_not_stored(app, secret)
    listed = admin.get(LIST).get_data(as_text=True)
    assert client_id in listed and secret not in listed and "peneliti" in listed
    (event,) = [e for e in events(app) if e.tag == "auth:oauth_client:create"]
    assert event.actor_id == str(ids["admin"]) and event.object_id == client_id
    assert secret not in str(event.details)

    token = client_credentials(app, client_id, secret)
    assert token.status_code == 200, token.get_data(as_text=True)
    assert token.get_json()["scope"] == "read"


def test_a_public_client_has_no_secret(site):
    app, ids = site
    admin = admin_client(app, ids)
    created = register(
        admin,
        name="Buku Catatan Peneliti",
        redirect_uris="http://127.0.0.1:8765/cb",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["read", "read-restricted"],
        client_type="public",
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    text = created.get_data(as_text=True)
    assert CLIENT_ID.search(text) and not SECRET.search(text) and SHOWN_ONCE not in text
    (row,) = stored(app)
    assert row.client_secret_hash is None and row.is_public
    assert row.owner_id == ids["admin"]  # no owner given: the admin who registered it

    machine = register(admin, client_type="public", grant_types=["client_credentials"])
    assert machine.status_code == 400
    assert "neither use client credentials" in machine.get_data(as_text=True)
    assert len(stored(app)) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"redirect_uris": "http://dasbor.pontianak.go.id/cb"}, "redirect URIs must use https"),
        ({"redirect_uris": "https://a.go.id/cb#x"}, "not an acceptable redirect URI"),
        ({"redirect_uris": ""}, "needs a redirect URI"),
        ({"grant_types": []}, "unknown or missing grant_types"),
        ({"grant_types": ["refresh_token"]}, "refresh_token only comes with"),
        ({"scopes": []}, "unknown or missing scopes"),
        ({"scopes": ["admin"]}, "is not a valid choice"),
        ({"owner": "tidak-ada"}, "no active account named"),
        ({"name": ""}, "This field is required."),
    ],
)
def test_refused_fields_are_shown_on_the_form(site, fields, message):
    app, ids = site
    refused = register(admin_client(app, ids), **fields)
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert message in text and 'class="bad"' in text and 'name="csrf_token"' in text
    assert stored(app) == []


def test_revoked_client_gets_no_token(site):
    app, ids = site
    admin = admin_client(app, ids)
    text = register(admin).get_data(as_text=True)
    client_id, secret = CLIENT_ID.search(text).group(1), SECRET.search(text).group(1)  # type: ignore[union-attr]
    access = client_credentials(app, client_id, secret).get_json()["access_token"]
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {access}"}
    assert api.get("/api/v1/datasets", headers=bearer).status_code == 200

    revoke = f"/admin/oauth-clients/{client_id}/revoke"
    assert admin.post(revoke).status_code == 400  # no CSRF token
    assert stored(app)[0].revoked_at is None
    done = submit(admin, revoke, {}, page=LIST)
    assert done.status_code == 302 and done.headers["Location"].endswith(LIST)
    listed = admin.get(LIST).get_data(as_text=True)
    assert "revoked: its tokens no longer work" in listed and revoke not in listed
    assert stored(app)[0].revoked_at is not None

    refused = client_credentials(app, client_id, secret)
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    assert api.get("/api/v1/datasets", headers=bearer).status_code == 401
    (event,) = [e for e in events(app) if e.tag == "auth:oauth_client:revoke"]
    assert event.actor_id == str(ids["admin"]) and event.object_id == client_id
    assert submit(admin, "/admin/oauth-clients/odc_nope/revoke", {}, page=LIST).status_code == 404


def test_only_admins_manage_oauth_clients(site):
    app, ids = site
    with app.app_context(), db.transaction() as session:
        admin_user = session.get(User, ids["admin"])
        token = accounts.issue_token(session, admin_user, name="t", scopes=["steward"]).secret
    registered = register(admin_client(app, ids))
    client_id = CLIENT_ID.search(registered.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    revoke = f"/admin/oauth-clients/{client_id}/revoke"

    anonymous = app.test_client()
    for url in (LIST, NEW):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    for role in ("member", "producer", "steward"):
        client = client_for(app, ids[role])
        for url in (LIST, NEW):
            assert client.get(url).status_code == 403, (role, url)
        # with a valid CSRF token, so that only the permission refuses
        assert register(client, name=f"Dari {role}").status_code == 403, role
        assert submit(client, revoke, {}, page="/").status_code == 403, role
    bearer = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get(LIST, headers=bearer).status_code == 403
    assert [c.revoked_at for c in stored(app)] == [None]
    denied = [e for e in events(app) if e.tag == "authz:access:deny"]
    assert {e.details["permission"][0] for e in denied} == {"admin:oauth_client:manage"}


def register_args(*extra: str) -> list[str]:
    return [
        "register",
        "--name",
        "Aplikasi Kota",
        "--redirect-uri",
        "https://app.pontianak.go.id/cb",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
        *extra,
    ]


def test_oauth_commands_register_list_and_revoke(site, tmp_path, monkeypatch):
    app, ids = site
    with command_runner(app, tmp_path, monkeypatch, oauth) as cli:
        result = cli(*register_args("--owner", "peneliti"))
        assert result.exit_code == 0, result.output
        client_id = re.search(r"client_id:\s+(\S+)", result.output).group(1)  # type: ignore[union-attr]
        secret = re.search(r"client_secret:\s+(\S+)", result.output).group(1)  # type: ignore[union-attr]
        assert "will not be shown again" in result.output
        public = cli(
            "register",
            "--name",
            "Notebook",
            "--redirect-uri",
            "http://127.0.0.1:9000/cb",
            "--grant-type",
            "authorization_code",
            "--scope",
            "read",
            "--public",
        )
        assert public.exit_code == 0 and "client_secret" not in public.output
        bad = cli(*register_args("--redirect-uri", "http://contoh.go.id/cb"))
        assert bad.exit_code == 1 and "must use https" in bad.output
        nobody = cli(*register_args("--owner", "tidak-ada"))
        assert nobody.exit_code == 1 and "no active account named" in nobody.output

        listing = cli("list").output
        assert client_id in listing and "Aplikasi Kota" in listing and "Notebook" in listing
        assert secret not in listing and "revoked" not in listing
        assert client_credentials(app, client_id, secret).status_code == 200

        revoked = cli("revoke", client_id)
        assert revoked.exit_code == 0 and "is revoked" in revoked.output
        assert "revoked" in cli("list").output
        unknown = cli("revoke", "odc_tidak_ada")
        assert unknown.exit_code == 1 and "no OAuth client" in unknown.output
    assert client_credentials(app, client_id, secret).status_code == 401
    rows = {c.client_id: c for c in stored(app)}
    assert rows[client_id].client_secret_hash == digest(secret)
    assert rows[client_id].owner_id == ids["member"] and rows[client_id].created_by_id is None
    assert len(rows) == 2 and sum(r.client_secret_hash is None for r in rows.values()) == 1
    assert_not_stored(app, secret)
    logged = [(e.tag, e.actor_id) for e in events(app) if e.tag.startswith("auth:oauth_client:")]
    assert logged == [
        ("auth:oauth_client:create", "cli"),
        ("auth:oauth_client:create", "cli"),
        ("auth:oauth_client:revoke", "cli"),
    ]
