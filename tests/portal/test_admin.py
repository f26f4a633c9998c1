"""Admin pages: permissions per route, users and roles, OPDs, grants; demo accounts and samples."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from portal import db
from portal.demo import load_sample_sources
from portal.demo_accounts import create_demo_accounts
from portal.models import (
    AccessLevel,
    AccessRequest,
    Dataset,
    DatasetState,
    Organization,
    RequestStatus,
    Role,
    SecurityEvent,
    User,
    utcnow,
)
from portal.services import accounts
from tests.portal.access_fixtures import (
    PASSWORD,
    client_for,
    make_app,
    make_catalog,
    make_user,
    with_blueprints,
)
from tests.portal.helpers import fetch, harvest

ROOT = Path(__file__).resolve().parents[2]
ADMIN_ONLY = [
    "/admin",
    "/admin/users",
    "/admin/users/new",
    "/admin/organizations",
    "/admin/oauth-clients",
    "/admin/oauth-clients/new",
]


@contextmanager
def opened(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        session = db.new_session()
        try:
            yield session
        finally:
            session.rollback()
            session.close()


@pytest.fixture
def world(app_factory, tmp_path):  # type: ignore[no-untyped-def]
    app = make_app(app_factory, tmp_path)
    make_catalog(app, tmp_path)
    ids = {
        "member": make_user(app, "peneliti"),
        "steward": make_user(app, "walidata", Role.STEWARD),
        "admin": make_user(app, "admin", Role.ADMIN),
    }
    return app, ids


def _events(app, tag):  # type: ignore[no-untyped-def]
    with opened(app) as session:
        rows = session.scalars(select(SecurityEvent).where(SecurityEvent.tag == tag)).all()
        return [(r.object_id, r.details) for r in rows]


def test_every_admin_page_checks_its_permission(world):  # type: ignore[no-untyped-def]
    app, ids = world
    anonymous = client_for(app, None)
    member = client_for(app, ids["member"])
    steward = client_for(app, ids["steward"])
    admin = client_for(app, ids["admin"])
    for url in ADMIN_ONLY + ["/admin/grants", f"/admin/users/{ids['member']}"]:
        response = anonymous.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
        assert member.get(url).status_code == 403, url
        assert admin.get(url).status_code == 200, url
    for url in ADMIN_ONLY + [f"/admin/users/{ids['member']}", "/admin/organizations/dinas-uji"]:
        assert steward.get(url).status_code == 403, url
    # granting access is a steward's job: the grants page is theirs too
    assert steward.get("/admin/grants").status_code == 200
    assert steward.post(f"/admin/users/{ids['member']}/disable").status_code == 403
    assert steward.post(f"/admin/users/{ids['member']}/enable").status_code == 403
    assert (
        steward.post("/admin/organizations", data={"name": "x-y", "title": "X"}).status_code == 403
    )
    denied = _events(app, "authz:access:deny")
    assert any(d["permission"] == ["admin:user:manage"] for _, d in denied)
    # a token, even an admin's, does not open the admin pages
    with app.app_context(), db.transaction() as session:
        user = session.get(User, ids["admin"])
        secret = accounts.issue_token(session, user, name="t", scopes=["steward"]).secret
    bearer = app.test_client().get("/admin/users", headers={"Authorization": f"Bearer {secret}"})
    assert bearer.status_code == 403


def test_create_user_and_set_role_with_events(world):  # type: ignore[no-untyped-def]
    app, ids = world
    admin = client_for(app, ids["admin"])
    with opened(app) as session:
        org_ids = {o.name: o.id for o in session.scalars(select(Organization))}

    created = admin.post(
        "/admin/users/new",
        data={"username": "budi", "email": "budi@example.org", "role": "member"},
    )
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    (password,) = re.findall(
        rb'id="password" type="text" readonly size="30" value="([^"]+)"', created.data
    )
    with opened(app) as session:
        budi = session.scalars(select(User).where(User.username == "budi")).one()
        budi_id, version = budi.id, budi.session_version
        assert accounts.verify_password(budi.password_hash, password.decode())
    assert [oid for oid, _ in _events(app, "user:account:create")] == [str(budi_id)]
    taken = admin.post("/admin/users/new", data={"username": "budi", "role": "member"})
    assert taken.status_code == 409 and b"taken" in taken.data

    # a producer needs an OPD
    refused = admin.post(f"/admin/users/{budi_id}/role", data={"role": "producer"})
    assert refused.status_code == 400
    saved = admin.post(
        f"/admin/users/{budi_id}/role",
        data={"role": "producer", "organizations": [org_ids["dinas-uji"]]},
    )
    assert saved.status_code == 302
    grants = _events(app, "authz:role:grant")
    assert (str(budi_id), {"role_from": "member", "role_to": "producer"}) in grants
    assert any(d.get("organizations_added") == ["dinas-uji"] for _, d in grants)
    with opened(app) as session:
        budi = session.get(User, budi_id)
        assert budi.role is Role.PRODUCER and [o.name for o in budi.organizations] == ["dinas-uji"]
        assert budi.session_version > version  # signed out everywhere

    # filters
    listed = admin.get(f"/admin/users?role=producer&organization={org_ids['dinas-uji']}")
    assert b"budi" in listed.data and b"peneliti" not in listed.data
    assert b"budi" in admin.get("/admin/users?q=BUD").data
    assert b"budi" not in admin.get("/admin/users?role=steward").data

    admin.post(f"/admin/users/{budi_id}/role", data={"role": "member"})
    revokes = _events(app, "authz:role:revoke")
    assert (str(budi_id), {"role_from": "producer", "role_to": "member"}) in revokes
    assert any(d.get("organizations_removed") == ["dinas-uji"] for _, d in revokes)
    # an admin cannot demote themselves
    own = admin.post(f"/admin/users/{ids['admin']}/role", data={"role": "member"})
    assert own.status_code == 403


def test_disable_user_revokes_tokens_and_enable_keeps_them_revoked(world):  # type: ignore[no-untyped-def]
    app, ids = world
    with app.app_context(), db.transaction() as session:
        user = session.get(User, ids["member"])
        secret = accounts.issue_token(session, user, name="t", scopes=["read"]).secret
    admin = client_for(app, ids["admin"])
    member = client_for(app, ids["member"])
    steward = client_for(app, ids["steward"])
    credentials = {"username": "peneliti", "password": PASSWORD}
    assert member.get("/account/requests").status_code == 200
    assert admin.post(f"/admin/users/{ids['member']}/disable").status_code == 302
    assert [oid for oid, _ in _events(app, "user:account:disable")] == [str(ids["member"])]
    assert member.get("/account/requests").status_code == 302  # the session ended
    refused = app.test_client().get("/api/v1/datasets", headers={"X-CKAN-API-Key": secret})
    assert refused.status_code == 401
    assert admin.post(f"/admin/users/{ids['admin']}/disable").status_code == 403
    assert app.test_client().post("/login", data=credentials).status_code == 200  # refused

    page = admin.get(f"/admin/users/{ids['member']}")
    assert f'action="/admin/users/{ids["member"]}/enable"'.encode() in page.data
    assert steward.post(f"/admin/users/{ids['member']}/enable").status_code == 403
    assert _events(app, "user:account:enable") == []
    enabled = admin.post(f"/admin/users/{ids['member']}/enable")
    assert enabled.status_code == 302
    assert enabled.headers["Location"].endswith(f"/admin/users/{ids['member']}")
    assert _events(app, "user:account:enable") == [(str(ids["member"]), {"lockout_cleared": False})]
    page = admin.get(f"/admin/users/{ids['member']}")
    assert b"/enable" not in page.data and b"/disable" in page.data
    browser = app.test_client()
    assert browser.post("/login", data=credentials).status_code == 302
    assert browser.get("/account/requests").status_code == 200
    still = app.test_client().get("/api/v1/datasets", headers={"X-CKAN-API-Key": secret})
    assert still.status_code == 401  # re-enabling does not bring old tokens back
    with opened(app) as session:
        assert all(t.revoked_at is not None for t in session.get(User, ids["member"]).tokens)


def test_organizations_create_and_edit(world):  # type: ignore[no-untyped-def]
    app, ids = world
    admin = client_for(app, ids["admin"])
    page = admin.get("/admin/organizations")
    assert page.status_code == 200 and b"dinas-uji" in page.data
    created = admin.post(
        "/admin/organizations",
        data={
            "name": "bappeda",
            "title": "Bappeda Kota Pontianak",
            "url": "https://bappeda.pontianak.go.id",
        },
    )
    assert created.status_code == 302
    assert (
        admin.post("/admin/organizations", data={"name": "bappeda", "title": "X"}).status_code
        == 409
    )
    assert (
        admin.post("/admin/organizations", data={"name": "Bad Name", "title": "X"}).status_code
        == 400
    )
    edited = admin.post(
        "/admin/organizations/bappeda",
        data={"title": "Badan Perencanaan Pembangunan Daerah", "description": "P", "url": ""},
    )
    assert edited.status_code == 302
    with opened(app) as session:
        org = session.scalars(select(Organization).where(Organization.name == "bappeda")).one()
        assert org.title == "Badan Perencanaan Pembangunan Daerah" and org.url is None
    assert admin.get("/admin/organizations/nope").status_code == 404
    with opened(app) as session:
        events = session.scalars(
            select(SecurityEvent).where(SecurityEvent.object_type == "organization")
        ).all()
        assert [(e.details["change"], e.details["name"]) for e in events] == [
            ("create", "bappeda"),
            ("update", "bappeda"),
        ]


def test_admin_grants_page_revokes(world):  # type: ignore[no-untyped-def]
    app, ids = world
    with app.app_context(), db.transaction() as session:
        dataset = session.scalars(select(Dataset).where(Dataset.name == "harga-terbatas")).one()
        grant = AccessRequest(
            dataset_id=dataset.id,
            user_id=ids["member"],
            purpose="uji",
            status=RequestStatus.GRANTED,
            expires_at=utcnow() + timedelta(days=10),
        )
        session.add(grant)
        session.flush()
        grant_id = grant.id
    admin = client_for(app, ids["admin"])
    page = admin.get("/admin/grants")
    assert b"<td>peneliti</td>" in page.data and b"Harga Terbatas" in page.data
    assert (
        admin.post(f"/admin/grants/{grant_id}/revoke", data={"reason": "selesai"}).status_code
        == 302
    )
    with opened(app) as session:
        assert session.get(AccessRequest, grant_id).status is RequestStatus.REVOKED
    assert b"<td>peneliti</td>" not in admin.get("/admin/grants").data


def test_demo_accounts_and_sample_access_levels(app_factory):  # type: ignore[no-untyped-def]
    app = with_blueprints(app_factory(WTF_CSRF_ENABLED=False))
    with app.app_context(), db.transaction() as session:
        sources = load_sample_sources(session, ROOT / "datasets")
        names = [s.name for s in sources if s.organization.name in ("dinkes", "disdukcapil")]
        organizations = list(session.scalars(select(Organization)))
        created = create_demo_accounts(session, organizations)
        assert create_demo_accounts(session, organizations) == []  # idempotent, nothing printed
    assert [(u, r) for u, r, _ in created] == [
        ("walidata", Role.STEWARD),
        ("admin", Role.ADMIN),
        ("produsen-disdukcapil", Role.PRODUCER),
    ]
    assert len({p for _, _, p in created}) == 3 and all(len(p) >= 12 for _, _, p in created)
    with opened(app) as session:
        for username, _role, password in created:
            user = accounts.authenticate(session, username, password)
            assert password not in (user.password_hash or "")
        producer = session.scalars(
            select(User).where(User.username == "produsen-disdukcapil")
        ).one()
        producer_id = producer.id
        assert [o.name for o in producer.organizations] == ["disdukcapil"]

    for name in names:
        assert harvest(app, name).error is None
    with opened(app) as session:
        levels = {
            d.name: (d.access_level, d.state)
            for d in session.scalars(
                select(Dataset).where(
                    Dataset.name.in_(["kunjungan-puskesmas-2024", "rekap-perekaman-ktp-el-2024"])
                )
            )
        }
    assert levels == {
        "kunjungan-puskesmas-2024": (AccessLevel.RESTRICTED, DatasetState.PUBLISHED),
        "rekap-perekaman-ktp-el-2024": (AccessLevel.INTERNAL, DatasetState.PUBLISHED),
    }
    anonymous = app.test_client()
    listed = {
        d["name"] for d in anonymous.get("/api/v1/datasets?page_size=100").get_json()["results"]
    }
    assert "kunjungan-puskesmas-2024" in listed and "rekap-perekaman-ktp-el-2024" not in listed
    detail = anonymous.get("/api/v1/datasets/kunjungan-puskesmas-2024").get_json()["result"]
    url = f"/dataset/kunjungan-puskesmas-2024/resource/{detail['resources'][0]['id']}/download"
    assert fetch(anonymous, url)[0] == 404
    assert anonymous.get("/dataset/rekap-perekaman-ktp-el-2024").status_code == 404
    producer_client = client_for(app, producer_id)
    assert producer_client.get("/dataset/rekap-perekaman-ktp-el-2024").status_code == 200
    assert fetch(producer_client, url)[0] == 404  # Dinkes' restricted data is not Disdukcapil's
