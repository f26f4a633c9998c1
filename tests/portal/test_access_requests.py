"""Access requests: a member asks, a steward grants or refuses, grants expire and are revoked."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from portal import db
from portal.errors import Conflict, Forbidden, Invalid, NotFound
from portal.models import (
    AccessRequest,
    Dataset,
    RequestStatus,
    Role,
    SecurityEvent,
    User,
    utcnow,
)
from portal.services import access_requests as service
from portal.services.accounts import actor_for
from portal.services.harvest_schedule import aware
from tests.portal.access_fixtures import client_for, make_app, make_catalog, make_user
from tests.portal.helpers import fetch

PURPOSE = "Penelitian skripsi tentang beban layanan puskesmas di Pontianak."


@pytest.fixture
def world(app_factory, tmp_path):  # type: ignore[no-untyped-def]
    app = make_app(app_factory, tmp_path)
    catalog = make_catalog(app, tmp_path)
    ids = {
        "member": make_user(app, "peneliti"),
        "steward": make_user(app, "walidata", Role.STEWARD),
        "producer": make_user(app, "produsen", Role.PRODUCER, ("dinas-uji",)),
        "other": make_user(app, "produsen-lain", Role.PRODUCER, ("dinas-lain",)),
    }
    return app, catalog, ids


@contextmanager
def opened(app):  # type: ignore[no-untyped-def]
    """A session that is always closed: an open transaction would block the PG teardown."""
    with app.app_context():
        session = db.new_session()
        try:
            yield session
        finally:
            session.rollback()
            session.close()


def _actor(session, user_id):  # type: ignore[no-untyped-def]
    return actor_for(session, session.get(User, user_id))


def _dataset(session, name):  # type: ignore[no-untyped-def]
    return session.scalars(select(Dataset).where(Dataset.name == name)).one()


def test_request_grant_download_revoke(world):  # type: ignore[no-untyped-def]
    app, catalog, ids = world
    member = client_for(app, ids["member"])
    steward = client_for(app, ids["steward"])
    url = catalog.download("harga-terbatas")

    # the metadata is public, the data is not
    assert member.get("/dataset/harga-terbatas").status_code == 200
    assert fetch(member, url)[0] == 404
    form = member.get("/dataset/harga-terbatas/request-access")
    assert form.status_code == 200 and b'name="purpose"' in form.data

    sent = member.post("/dataset/harga-terbatas/request-access", data={"purpose": PURPOSE})
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/account/requests")
    again = member.post("/dataset/harga-terbatas/request-access", data={"purpose": PURPOSE})
    assert again.status_code == 200 and b'name="purpose"' not in again.data  # already pending
    mine = member.get("/account/requests?lang=en")
    assert b"Harga Terbatas" in mine.data and b"Pending" in mine.data

    # the steward sees it, the member may not decide
    assert member.get("/workspace/access-requests").status_code == 403
    queue = steward.get("/workspace/access-requests")
    assert queue.status_code == 200 and b"peneliti" in queue.data and PURPOSE.encode() in queue.data
    with opened(app) as session:
        (request,) = session.scalars(select(AccessRequest)).all()
        assert request.status is RequestStatus.PENDING
        request_id = request.id

    until = (utcnow() + timedelta(days=30)).date().isoformat()
    granted = steward.post(
        f"/workspace/access-requests/{request_id}/grant", data={"expires_on": until}
    )
    assert granted.status_code == 302
    status, body = fetch(member, url)
    assert status == 200 and b"Beras" in body
    assert b"peneliti" in steward.get("/admin/grants").data

    revoked = steward.post(f"/workspace/access-grants/{request_id}/revoke", data={"reason": ""})
    assert revoked.status_code == 302
    assert fetch(member, url)[0] == 404
    with opened(app) as session:
        assert session.get(AccessRequest, request_id).status is RequestStatus.REVOKED
        events = session.scalars(
            select(SecurityEvent).where(SecurityEvent.object_type == "access_request")
        ).all()
        names = [e.details.get("event") for e in events]
        assert "access:request:grant" in names and "access:grant:revoke" in names


def test_expiry_is_honoured(world):  # type: ignore[no-untyped-def]
    app, catalog, ids = world
    member = client_for(app, ids["member"])
    url = catalog.download("harga-terbatas")
    with opened(app) as session:
        actor = _actor(session, ids["member"])
        dataset = _dataset(session, "harga-terbatas")
        request = service.request_access(session, actor, dataset, PURPOSE)
        request_id = request.id
        steward = _actor(session, ids["steward"])
        with pytest.raises(Invalid):  # an expiry in the past is no grant
            service.decide(session, steward, request, True, expires_at=utcnow() - timedelta(1))
        with pytest.raises(Invalid):  # nor one beyond the longest allowed
            service.decide(session, steward, request, True, expires_at=utcnow() + timedelta(2000))
        service.decide(session, steward, request, True)  # default: one year
        expiry = aware(request.expires_at)
        assert timedelta(days=364) < expiry - utcnow() <= timedelta(days=365)
        session.commit()
    assert fetch(member, url)[0] == 200

    with app.app_context(), db.transaction() as session:
        session.get(AccessRequest, request_id).expires_at = utcnow() - timedelta(minutes=1)
    assert fetch(member, url)[0] == 404
    page = member.get("/account/requests?lang=en")
    assert b"Expired" in page.data
    with opened(app) as session:
        steward = _actor(session, ids["steward"])
        assert service.list_grants(session, steward) == []
        assert len(service.list_grants(session, steward, include_expired=True)) == 1


def test_refusal_needs_a_reason(world):  # type: ignore[no-untyped-def]
    app, _catalog, ids = world
    with opened(app) as session:
        actor = _actor(session, ids["member"])
        request = service.request_access(
            session, actor, _dataset(session, "harga-terbatas"), PURPOSE
        )
        session.commit()
        request_id = request.id
        with pytest.raises(Invalid):
            service.decide(session, _actor(session, ids["steward"]), request, False, "  ")

    steward = client_for(app, ids["steward"])
    empty = steward.post(f"/workspace/access-requests/{request_id}/refuse", data={"reason": ""})
    assert empty.status_code == 400
    reason = "Tujuan belum jelas; lampirkan surat pengantar kampus."
    refused = steward.post(
        f"/workspace/access-requests/{request_id}/refuse", data={"reason": reason}
    )
    assert refused.status_code == 302
    mine = client_for(app, ids["member"]).get("/account/requests?lang=en")
    assert b"Refused" in mine.data and reason.encode() in mine.data
    # a decided request cannot be decided again
    twice = steward.post(f"/workspace/access-requests/{request_id}/grant", data={"expires_on": ""})
    assert twice.status_code == 400
    with opened(app) as session:
        steward_actor = _actor(session, ids["steward"])
        with pytest.raises(Conflict):
            service.decide(session, steward_actor, session.get(AccessRequest, request_id), True)


def test_what_can_be_requested_and_by_whom(world):  # type: ignore[no-untyped-def]
    app, _catalog, ids = world
    with opened(app) as session:
        member = _actor(session, ids["member"])
        with pytest.raises(Forbidden):  # public data needs no request
            service.request_access(session, member, _dataset(session, "harga-publik"), PURPOSE)
        with pytest.raises(NotFound):  # internal data is not even visible
            service.request_access(session, member, _dataset(session, "harga-internal"), PURPOSE)
        with pytest.raises(Invalid):
            service.request_access(session, member, _dataset(session, "harga-terbatas"), "data")
        producer = _actor(session, ids["producer"])
        with pytest.raises(Conflict):  # the owning OPD reads it already
            service.request_access(session, producer, _dataset(session, "harga-terbatas"), PURPOSE)
        other = _actor(session, ids["other"])  # a producer of another OPD may ask
        request = service.request_access(
            session, other, _dataset(session, "harga-terbatas"), PURPOSE
        )
        with pytest.raises(Forbidden):  # only stewards decide
            service.decide(session, member, request, True)
        with pytest.raises(Forbidden):
            service.list_pending(session, member)

    anonymous = client_for(app, None)
    page = anonymous.get("/dataset/harga-terbatas/request-access")
    assert page.status_code == 302
    location = urlsplit(page.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == ["/dataset/harga-terbatas/request-access"]
    assert anonymous.get("/workspace/access-requests").status_code == 302
    assert anonymous.get("/account/requests").status_code == 302
    member_client = client_for(app, ids["member"])
    assert member_client.get("/dataset/harga-internal/request-access").status_code == 404
    public = member_client.post("/dataset/harga-publik/request-access", data={"purpose": PURPOSE})
    assert public.status_code == 200 and b'name="purpose"' not in public.data


def test_stewards_do_not_decide_their_own_request(world):  # type: ignore[no-untyped-def]
    app, _catalog, ids = world
    with opened(app) as session:
        member = _actor(session, ids["member"])
        request = service.request_access(
            session, member, _dataset(session, "harga-terbatas"), PURPOSE
        )
        request.user_id = ids["steward"]  # as if the steward had asked before being promoted
        session.flush()
        with pytest.raises(Forbidden):
            service.decide(session, _actor(session, ids["steward"]), request, True)


def test_internal_dataset_only_for_the_owning_opd(world):  # type: ignore[no-untyped-def]
    app, catalog, ids = world
    url = catalog.download("harga-internal")
    other = client_for(app, ids["other"])
    owner = client_for(app, ids["producer"])
    member = client_for(app, ids["member"])
    for client in (other, member, client_for(app, None)):
        assert client.get("/dataset/harga-internal").status_code == 404
        assert fetch(client, url)[0] == 404
        names = [d["name"] for d in client.get("/api/v1/datasets").get_json()["results"]]
        assert "harga-internal" not in names
    assert owner.get("/dataset/harga-internal").status_code == 200
    status, body = fetch(owner, url)
    assert status == 200 and b"Gula" in body
    # the owning OPD reads its restricted data without a grant, another OPD does not
    assert fetch(owner, catalog.download("harga-terbatas"))[0] == 200
    assert fetch(other, catalog.download("harga-terbatas"))[0] == 404
    assert fetch(client_for(app, ids["steward"]), url)[0] == 200


def _render_access_box(app, user_id, name="harga-terbatas"):  # type: ignore[no-untyped-def]
    from flask import render_template, session

    from portal.db import get_session
    from portal.identity import SESSION_2FA, SESSION_USER, SESSION_VERSION, current_actor
    from portal.services import catalog

    with app.test_request_context(f"/dataset/{name}"):
        if user_id is not None:
            user = get_session().get(User, user_id)
            session.update(
                {SESSION_USER: user.id, SESSION_VERSION: user.session_version, SESSION_2FA: True}
            )
        dataset = catalog.get_dataset(get_session(), current_actor(), name)
        html = render_template("access/_dataset_access.html", dataset=dataset)
        get_session().rollback()
        return html


def test_dataset_page_offers_to_request_access(world):  # type: ignore[no-untyped-def]
    app, _catalog, ids = world
    member_box = _render_access_box(app, ids["member"])
    assert "Minta akses" in member_box and "/dataset/harga-terbatas/request-access" in member_box
    anonymous_box = _render_access_box(app, None)
    assert "/login?next=" in anonymous_box and "Minta akses" not in anonymous_box
    assert _render_access_box(app, ids["producer"]).strip() == ""  # the owner reads it already
    assert _render_access_box(app, ids["member"], "harga-publik").strip() == ""
    client_for(app, ids["member"]).post(
        "/dataset/harga-terbatas/request-access", data={"purpose": PURPOSE}
    )
    assert "menunggu" in _render_access_box(app, ids["member"])

    page = Path(__file__).resolve().parents[2] / "portal/templates/dataset.html"
    if "access/_dataset_access.html" not in page.read_text(encoding="utf-8"):
        pytest.skip("dataset.html does not include access/_dataset_access.html yet")
    body = client_for(app, ids["other"]).get("/dataset/harga-terbatas").data.decode()
    assert "Minta akses" in body
    # no preview rows and no download links for those who may not read the data
    for user_id in (None, ids["member"], ids["other"]):
        page_body = client_for(app, user_id).get("/dataset/harga-terbatas").data.decode()
        assert "Beras" not in page_body and "/download" not in page_body
    owner_body = client_for(app, ids["producer"]).get("/dataset/harga-terbatas").data.decode()
    assert "Beras" in owner_body and "/download" in owner_body
