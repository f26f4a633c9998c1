"""Personal API tokens: shown once, stored as sha256, scoped, expiring, revocable."""

from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import db
from portal.models import AccessRequest, ApiToken, RequestStatus, Role, SecurityEvent, utcnow
from tests.portal.access_fixtures import client_for, make_app, make_catalog, make_user
from tests.portal.helpers import fetch

SECRET = re.compile(rb"od_[A-Za-z0-9_\-]{40,}")


@pytest.fixture
def world(app_factory, tmp_path):  # type: ignore[no-untyped-def]
    app = make_app(app_factory, tmp_path)
    catalog = make_catalog(app, tmp_path)
    member = make_user(app, "peneliti")
    return app, catalog, member


@contextmanager
def opened(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = db.new_session()
        try:
            yield session
        finally:
            session.rollback()
            session.close()


def _create(client, scopes, **extra):  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/tokens", json={"name": "skrip", "scopes": scopes, **extra})
    assert response.status_code == 201, response.get_json()
    result = response.get_json()["result"]
    return result["token"], result["id"]


def _grant(app, user_id, dataset_name):  # type: ignore[no-untyped-def]
    from portal.models import Dataset

    with app.app_context(), db.transaction() as session:
        dataset = session.scalars(select(Dataset).where(Dataset.name == dataset_name)).one()
        session.add(
            AccessRequest(
                dataset_id=dataset.id,
                user_id=user_id,
                purpose="uji",
                status=RequestStatus.GRANTED,
                expires_at=utcnow() + timedelta(days=1),
            )
        )


def _assert_error_shape(response, status):  # type: ignore[no-untyped-def]
    assert response.status_code == status
    body = response.get_json()
    assert body["ok"] is False and body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert body["errors"] and all("code" in e and "message" in e for e in body["errors"])


def test_token_page_shows_the_secret_once_and_stores_only_its_hash(world):  # type: ignore[no-untyped-def]
    app, _catalog, member = world
    client = client_for(app, member)
    page = client.get("/account/tokens")
    assert page.status_code == 200 and b'name="scopes"' in page.data
    assert b'value="steward"' not in page.data  # a member is not offered the steward scope

    no_scope = client.post("/account/tokens", data={"name": "x", "expires_in_days": "30"})
    assert no_scope.status_code == 400
    created = client.post(
        "/account/tokens",
        data={
            "name": "Notebook riset",
            "scopes": ["read", "read-restricted"],
            "expires_in_days": "30",
        },
    )
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    (secret,) = set(SECRET.findall(created.data))
    listing = client.get("/account/tokens")
    assert b"Notebook riset" in listing.data and secret not in listing.data
    assert secret[:10] in listing.data  # the prefix, to recognise it

    with opened(app) as session:
        (token,) = session.scalars(select(ApiToken)).all()
        token_id = token.id
        assert token.token_hash == hashlib.sha256(secret).hexdigest()
        assert token.scopes == ["read", "read-restricted"]
        assert (
            timedelta(days=29)
            < token.expires_at.replace(tzinfo=None) - utcnow().replace(tzinfo=None)
            <= timedelta(days=30)
        )
        stored = [str(getattr(token, c.key)) for c in ApiToken.__table__.columns]
        assert not any(secret.decode() in value for value in stored)
        events = session.scalars(
            select(SecurityEvent).where(SecurityEvent.tag == "auth:token:create")
        ).all()
        assert len(events) == 1 and secret.decode() not in str(events[0].details)

    # the token works in the three ways clients send it
    for headers in (
        {"Authorization": f"Bearer {secret.decode()}"},
        {"Authorization": secret.decode()},
        {"X-CKAN-API-Key": secret.decode()},
    ):
        response = app.test_client().get("/api/v1/tokens", headers=headers)
        assert response.status_code == 200, headers
        assert response.get_json()["results"][0]["name"] == "Notebook riset"

    revoked = client.post(f"/account/tokens/{token_id}/revoke")
    assert revoked.status_code == 302
    refused = app.test_client().get(
        "/api/v1/datasets", headers={"Authorization": f"Bearer {secret.decode()}"}
    )
    _assert_error_shape(refused, 401)
    with opened(app) as session:
        tags = session.scalars(select(SecurityEvent.tag)).all()
        assert "auth:token:revoke" in tags


def test_scope_read_gives_no_restricted_data_even_with_a_grant(world):  # type: ignore[no-untyped-def]
    app, catalog, member = world
    _grant(app, member, "harga-terbatas")
    client = client_for(app, member)
    read, _ = _create(client, ["read"])
    restricted, _ = _create(client, ["read", "read-restricted"])
    url = catalog.download("harga-terbatas")
    anonymous = app.test_client()
    assert fetch(client, url)[0] == 200  # the browser session uses the grant
    response = anonymous.get(url, headers={"Authorization": f"Bearer {read}"})
    assert response.status_code == 404
    response.close()
    response = anonymous.get(url, headers={"Authorization": f"Bearer {restricted}"})
    assert response.status_code == 200 and b"Beras" in response.data
    response.close()
    public = anonymous.get(
        catalog.download("harga-publik"), headers={"Authorization": f"Bearer {read}"}
    )
    assert public.status_code == 200
    public.close()


def test_a_token_without_the_read_scope_sees_what_anyone_sees(world):  # type: ignore[no-untyped-def]
    """A steward's token for decisions only: the catalog it lists and the pages it opens are the
    public ones, the same for lists and pages (not everything in lists, nothing in pages)."""
    app, _catalog, _member = world
    steward = make_user(app, "walidata", Role.STEWARD)
    token, _ = _create(client_for(app, steward), ["steward"])
    caller = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def listed(extra: dict[str, str]) -> list[str]:
        body = caller.get("/api/v1/datasets?page_size=100", headers=extra).get_json()
        return sorted(d["name"] for d in body["results"])

    assert listed(headers) == listed({}) and "harga-internal" not in listed(headers)
    assert caller.get("/api/v1/datasets/harga-publik", headers=headers).status_code == 200
    assert caller.get("/api/v1/datasets/harga-terbatas", headers=headers).status_code == 200
    assert caller.get("/api/v1/datasets/harga-internal", headers=headers).status_code == 404


def test_expired_and_revoked_tokens_get_401_in_the_error_shape(world):  # type: ignore[no-untyped-def]
    app, _catalog, member = world
    client = client_for(app, member)
    expiring, expiring_id = _create(client, ["read"], expires_in_days=1)
    revoking, revoking_id = _create(client, ["read"])
    with app.app_context(), db.transaction() as session:
        session.get(ApiToken, expiring_id).expires_at = utcnow() - timedelta(seconds=1)
    anonymous = app.test_client()
    _assert_error_shape(
        anonymous.get("/api/v1/datasets", headers={"Authorization": f"Bearer {expiring}"}), 401
    )
    assert (
        anonymous.get("/api/v1/datasets", headers={"X-CKAN-API-Key": revoking}).status_code == 200
    )
    deleted = client.delete(f"/api/v1/tokens/{revoking_id}")
    assert deleted.status_code == 200 and deleted.get_json()["result"]["state"] == "revoked"
    _assert_error_shape(
        anonymous.get("/api/v1/datasets", headers={"X-CKAN-API-Key": revoking}), 401
    )
    _assert_error_shape(
        anonymous.get("/api/v1/datasets", headers={"Authorization": "od_nope"}), 401
    )
    listed = client.get("/api/v1/tokens").get_json()["results"]
    assert {t["id"]: t["state"] for t in listed} == {
        expiring_id: "expired",
        revoking_id: "revoked",
    }
    _assert_error_shape(client.delete("/api/v1/tokens/99999"), 404)


def test_a_token_cannot_mint_a_wider_token(world):  # type: ignore[no-untyped-def]
    app, _catalog, member = world
    client = client_for(app, member)
    narrow, narrow_id = _create(client, ["read"])
    bearer = app.test_client()
    headers = {"Authorization": f"Bearer {narrow}"}
    wider = bearer.post(
        "/api/v1/tokens", json={"name": "lebih", "scopes": ["read-restricted"]}, headers=headers
    )
    _assert_error_shape(wider, 403)
    same = bearer.post("/api/v1/tokens", json={"name": "sama", "scopes": ["read"]}, headers=headers)
    assert same.status_code == 201
    assert same.get_json()["result"]["scopes"] == ["read"]
    assert len(bearer.get("/api/v1/tokens", headers=headers).get_json()["results"]) == 2
    assert bearer.delete(f"/api/v1/tokens/{narrow_id}", headers=headers).status_code == 200
    _assert_error_shape(bearer.get("/api/v1/tokens", headers=headers), 401)

    # nor does a member get scopes of a role they do not have
    _assert_error_shape(
        client.post("/api/v1/tokens", json={"name": "x", "scopes": ["steward"]}), 403
    )
    _assert_error_shape(client.post("/api/v1/tokens", json={"name": "x", "scopes": ["nope"]}), 400)
    _assert_error_shape(client.post("/api/v1/tokens", json={"name": "", "scopes": ["read"]}), 400)
    _assert_error_shape(
        client.post("/api/v1/tokens", json={"name": "x", "expires_in_days": 5000}), 400
    )
    _assert_error_shape(client.post("/api/v1/tokens", data="name=x"), 400)


def test_anonymous_callers_are_sent_to_sign_in(world):  # type: ignore[no-untyped-def]
    app, _catalog, _member = world
    anonymous = app.test_client()
    _assert_error_shape(anonymous.get("/api/v1/tokens"), 401)
    _assert_error_shape(anonymous.post("/api/v1/tokens", json={"name": "x"}), 401)
    page = anonymous.get("/account/tokens")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_a_post_without_the_csrf_token_is_refused(app_factory, tmp_path):  # type: ignore[no-untyped-def]
    app = make_app(app_factory, tmp_path, WTF_CSRF_ENABLED=True)
    member = make_user(app, "peneliti")
    client = client_for(app, member)
    form = client.post("/account/tokens", data={"name": "x", "scopes": ["read"]})
    assert form.status_code == 400
    api = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["read"]})
    assert api.status_code == 400
    with opened(app) as session:
        assert session.scalars(select(ApiToken)).all() == []

    # with the token from the page, the same post goes through
    page = client.get("/account/tokens")
    (csrf,) = re.findall(rb'name="csrf_token" type="hidden" value="([^"]+)"', page.data)[:1]
    ok = client.post(
        "/account/tokens",
        data={"name": "x", "scopes": ["read"], "expires_in_days": "7", "csrf_token": csrf.decode()},
    )
    assert ok.status_code == 201
