"""Accounts in the browser, on SQLite and PostgreSQL: register, sign in and out, lockout,
per-address throttle, CSRF, password reset by e-mail, outgoing mail; no secret stored in clear.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from portal import db
from portal.mail import outbox_path, send_mail
from portal.models import PasswordReset, Role, User, utcnow
from portal.services import accounts
from portal.services.throttle import Limit, RedisThrottle
from tests.portal.auth_helpers import (
    NEW_PASSWORD,
    PASSWORD,
    assert_not_stored,
    dump,
    events,
    get_user,
    login,
    logout,
    make_user,
    outbox,
    reset_link,
    submit,
    tags,
    token_of,
)


@pytest.fixture
def web(app_factory: Any) -> Flask:
    """An app with CSRF on, whatever other tests configure."""
    app: Flask = app_factory(WTF_CSRF_ENABLED=True)
    return app


# --- registration, login, logout -------------------------------------------------------------


def test_register_login_logout(web):
    client = web.test_client()
    response = submit(
        client,
        "/register",
        {
            "username": "Peneliti",
            "email": "peneliti@example.org",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert response.status_code == 302 and response.location.endswith("/account")
    page = client.get("/account").get_data(as_text=True)
    assert "peneliti" in page and "peneliti@example.org" in page
    home = client.get("/").get_data(as_text=True)
    assert "Keluar" in home and "Akun" in home and "Masuk" not in home
    assert logout(client).status_code == 302
    assert client.get("/account").status_code == 302  # back to the login page
    assert "Masuk" in client.get("/").get_data(as_text=True)
    response = login(client, "peneliti")
    assert response.status_code == 302
    assert client.get("/account").status_code == 200
    user = get_user(web, "peneliti")
    assert user.role is Role.MEMBER and user.last_login_at is not None
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    assert tags(web) == [
        "user:account:create",
        "auth:login:success",
        "auth:session:logout",
        "auth:login:success",
    ]
    assert_not_stored(web, PASSWORD)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (
            "id",
            [
                "Nama pengguna terdiri atas 3",
                "Ini bukan alamat e-mail yang sah.",
                "paling sedikit 10",
                "Kedua kata sandi tidak sama.",
            ],
        ),
        (
            "en",
            [
                "3 to 80 lower-case letters",
                "This is not a valid e-mail address.",
                "at least 10 characters",
                "The two passwords are not the same.",
            ],
        ),
    ],
)
def test_registration_says_what_is_wrong_with_each_field(web, lang, expected):
    client = web.test_client()
    client.get(f"/?lang={lang}")
    response = submit(
        client,
        "/register",
        {"username": "x!", "email": "not-an-address", "password": "short", "confirm": "other"},
    )
    page = response.get_data(as_text=True)
    for message in expected:
        assert message in page
    assert page.count('aria-invalid="true"') == 4


def test_registration_refuses_a_taken_username_and_email(web):
    make_user(web, "walidata", email="walidata@pontianak.go.id")
    client = web.test_client()
    client.get("/?lang=en")
    page = submit(
        client,
        "/register",
        {
            "username": "walidata",
            "email": "walidata@pontianak.go.id",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    ).get_data(as_text=True)
    assert "This username is taken" in page and "An account with this e-mail address exists" in page


def test_wrong_password_and_unknown_user_get_the_same_message(web):
    make_user(web, "anggota")
    client = web.test_client()
    client.get("/?lang=en")
    wrong = login(client, "anggota", "salah-sekali-bukan-ini")
    unknown = login(client, "tidak-ada", "salah-sekali-bukan-ini")
    assert wrong.status_code == unknown.status_code == 200
    for response in (wrong, unknown):
        assert "Wrong username or password." in response.get_data(as_text=True)
    failures = [e for e in events(web) if e.tag == "auth:login:failure"]
    assert [e.details["reason"] for e in failures] == ["password", "unknown"]
    assert failures[0].object_id == str(get_user(web, "anggota").id)
    assert failures[1].object_id is None
    assert_not_stored(web, "salah-sekali-bukan-ini")


def test_next_is_followed_only_within_the_site(web):
    make_user(web, "anggota")
    client = web.test_client()
    token = token_of(client, "/login")
    ok = client.post(
        "/login?next=/dataset",
        data={"username": "anggota", "password": PASSWORD, "csrf_token": token},
    )
    assert ok.location.endswith("/dataset")
    logout(client)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        token = token_of(client, "/login")
        response = client.post(
            "/login",
            query_string={"next": target},
            data={"username": "anggota", "password": PASSWORD, "csrf_token": token},
        )
        assert "evil" not in response.location
        logout(client)


# --- lockout and throttling ------------------------------------------------------------------


def test_account_locks_after_five_failures_and_unlocks_after_the_period(web):
    make_user(web, "anggota")
    client = web.test_client()
    client.get("/?lang=en")
    for _ in range(accounts.MAX_FAILURES):
        response = login(client, "anggota", "bukan-kata-sandinya")
    assert "locked for a few minutes" in response.get_data(as_text=True)
    refused = login(client, "anggota")  # the right password, during the lockout
    assert refused.status_code == 200 and "locked for a few minutes" in refused.get_data(
        as_text=True
    )
    assert tags(web).count("auth:login:lockout") == 1
    lockout = next(e for e in events(web) if e.tag == "auth:login:lockout")
    assert lockout.severity == "high" and lockout.details == {"reason": "lockout", "stage": "login"}
    with web.app_context(), db.transaction() as session:
        session.execute(update(User).values(locked_until=utcnow() - timedelta(seconds=1)))
    response = login(client, "anggota")
    assert response.status_code == 302
    assert client.get("/account").status_code == 200


def test_too_many_failures_from_one_address_get_429(app_factory):
    app = app_factory(WTF_CSRF_ENABLED=True, AUTH_LIMITS={"login": (3, 900), "forgot": (2, 900)})
    client = app.test_client()
    client.get("/?lang=en")
    for i in range(3):  # different accounts: the per-account lockout is not what stops them
        assert login(client, f"tebak{i}", "tebakan-yang-salah").status_code == 200
    refused = login(client, "tebak9", "tebakan-yang-salah")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 900
    assert "too many attempts from your network" in refused.get_data(as_text=True).lower()
    other = app.test_client()  # another address is not affected
    token = token_of(other, "/login")
    response = other.post(
        "/login",
        data={"username": "x", "password": "y", "csrf_token": token},
        environ_base={"REMOTE_ADDR": "203.0.113.50"},
    )
    assert response.status_code == 200
    for _ in range(2):
        assert submit(client, "/password/forgot", {"email": "siapa@example.org"}).status_code == 200
    assert submit(client, "/password/forgot", {"email": "siapa@example.org"}).status_code == 429
    hits = [e for e in events(app) if e.tag == "system:rate_limit:hit"]
    assert [e.details["limit"] for e in hits] == ["login", "forgot"]
    assert hits[0].src_ip == "127.0.0.1"
    assert "127.0.0.1" not in dump(app).replace("security_event.src_ip=127.0.0.1", "")


def test_redis_throttle_counts_across_clients(app_factory):
    redis_url = os.environ.get("ONEDATA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisDown

    try:
        Redis.from_url(redis_url).ping()
    except RedisDown as exc:
        if os.environ.get("ONEDATA_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis not reachable at {redis_url}: {exc}")
        pytest.skip(f"Redis not reachable at {redis_url}: {exc}")
    throttle = RedisThrottle(Redis.from_url(redis_url), uuid.uuid4().bytes)
    rule = Limit("login", 2, timedelta(minutes=1))
    assert throttle.retry_after(rule, "10.0.0.1") is None
    assert [throttle.hit(rule, "10.0.0.1") for _ in range(2)] == [1, 2]
    assert 0 < (throttle.retry_after(rule, "10.0.0.1") or 0) <= 60
    assert throttle.retry_after(rule, "10.0.0.2") is None
    app = app_factory(WTF_CSRF_ENABLED=True, REDIS_URL=redis_url, AUTH_LIMITS={"login": (2, 60)})
    client = app.test_client()
    for _ in range(2):
        login(client, "siapa", "bukan-ini-sandinya")
    assert login(client, "siapa", "bukan-ini-sandinya").status_code == 429
    assert "throttle_hit." not in dump(app)  # nothing went to the database


# --- CSRF ------------------------------------------------------------------------------------


def test_forms_without_a_valid_csrf_token_are_refused(web):
    make_user(web, "anggota")
    client = web.test_client()
    client.get("/?lang=en")
    missing = client.post("/login", data={"username": "anggota", "password": PASSWORD})
    assert missing.status_code == 400
    assert "did not come from this site" in missing.get_data(as_text=True)
    forged = client.post(
        "/login", data={"username": "anggota", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert forged.status_code == 400
    assert login(client, "anggota").status_code == 302
    assert client.post("/logout").status_code == 400  # still signed in afterwards
    assert client.get("/account").status_code == 200
    assert "auth:login:failure" not in tags(web)


def test_api_posts_need_csrf_only_when_the_session_cookie_would_authenticate(web):
    from flask import jsonify

    from portal.identity import current_actor

    @web.post("/api/v1/_probe")
    def probe() -> Any:  # a stand-in for any API action taking POST
        return jsonify(actor=current_actor().id)

    uid = make_user(web, "peneliti")
    with web.app_context(), db.transaction() as session:
        user = session.get(User, uid)
        assert user is not None
        secret = accounts.issue_token(session, user, name="uji", scopes=["read"]).secret
    client = web.test_client()
    assert client.post("/api/v1/_probe").json == {"actor": None}  # anonymous: nothing to ride on
    login(client, "peneliti")
    refused = client.post("/api/v1/_probe")
    assert refused.status_code == 400 and refused.json["errors"][0]["code"] == "csrf"
    token = token_of(client, "/account")
    assert client.post("/api/v1/_probe", headers={"X-CSRFToken": token}).json == {"actor": str(uid)}
    bearer = web.test_client().post("/api/v1/_probe", headers={"Authorization": f"Bearer {secret}"})
    assert bearer.status_code == 200 and bearer.json == {"actor": str(uid)}


# --- password reset --------------------------------------------------------------------------


def test_password_reset_by_e_mailed_link_works_once(web):
    make_user(web, "peneliti", email="peneliti@example.org")
    client = web.test_client()
    client.get("/?lang=en")
    known = submit(client, "/password/forgot", {"email": "Peneliti@Example.org"})
    unknown = submit(client, "/password/forgot", {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)  # no account enumeration
    assert "If an account exists for this address" in known.get_data(as_text=True)
    [message] = outbox(web)
    assert message["To"] == "peneliti@example.org" and "Reset your password" in message["Subject"]
    link = reset_link(message)
    token = link.rsplit("/", 1)[1]
    assert client.get(link).status_code == 200
    response = submit(client, link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert "Your password was changed" in client.get("/login").get_data(as_text=True)
    assert login(client, "peneliti", PASSWORD).status_code == 200  # the old one is gone
    assert login(client, "peneliti", NEW_PASSWORD).status_code == 302
    again = client.get(link)
    assert again.status_code == 400 and "already used" in again.get_data(as_text=True)
    resets = [e for e in events(web) if e.tag == "auth:password:reset"]
    assert [e.details["step"] for e in resets] == ["requested", "requested", "done"]
    assert [e.details.get("account_found") for e in resets[:2]] == [True, False]
    assert all(token not in (e.path or "") for e in events(web))
    assert_not_stored(web, token, NEW_PASSWORD, PASSWORD)
    with web.app_context(), db.transaction() as session:
        stored = session.scalars(select(PasswordReset.token_hash)).one()
        assert len(stored) == 64


def test_reset_links_expire_after_an_hour(web):
    make_user(web, "peneliti", email="peneliti@example.org")
    client = web.test_client()
    submit(client, "/password/forgot", {"email": "peneliti@example.org"})
    link = reset_link(outbox(web)[0])
    with web.app_context(), db.transaction() as session:
        reset = session.scalars(select(PasswordReset)).one()
        assert (
            timedelta(minutes=59)
            < reset.expires_at.replace(tzinfo=None) - reset.created_at.replace(tzinfo=None)
            <= timedelta(hours=1)
        )
        reset.expires_at = utcnow() - timedelta(seconds=1)
    assert client.get(link).status_code == 400
    assert client.get("/password/reset/made-up-token").status_code == 400


# --- e-mail ----------------------------------------------------------------------------------


def test_mail_goes_to_smtp_when_configured(app_factory, monkeypatch):
    sent: list[Any] = []

    class FakeSMTP:
        def __init__(self, host: str, port: int, timeout: float) -> None:
            sent.append(("connect", host, port))

        def __enter__(self) -> FakeSMTP:
            return self

        def __exit__(self, *exc: object) -> None:
            sent.append(("quit",))

        def ehlo(self) -> None:
            pass

        def has_extn(self, name: str) -> bool:
            return starttls

        def starttls(self, context: Any) -> None:
            sent.append(("starttls",))

        def login(self, user: str, password: str) -> None:
            sent.append(("login", user, password))

        def send_message(self, msg: Any) -> None:
            sent.append(("send", msg["To"], msg["From"]))

    import smtplib

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    app = app_factory(
        SMTP_URL="smtp://kirim%40pontianak:rahasia%21@mail.example:2525",
        MAIL_FROM="Satu Data <data@example.org>",
    )
    starttls = True
    assert send_mail(app, "a@example.org", "Uji", "Isi") is None
    assert sent == [
        ("connect", "mail.example", 2525),
        ("starttls",),
        ("login", "kirim@pontianak", "rahasia!"),
        ("send", "a@example.org", "Satu Data <data@example.org>"),
        ("quit",),
    ]
    starttls = False
    with pytest.raises(ValueError, match="STARTTLS"):
        send_mail(app, "a@example.org", "Uji", "Isi")
    with pytest.raises(ValueError):
        send_mail(app, "a@example.org\nBcc: x@example.org", "Uji", "Isi")
    assert not outbox_path(app).exists()
