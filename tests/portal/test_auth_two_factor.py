"""Two-step sign-in, on SQLite and PostgreSQL: TOTP mandatory for stewards and admins, codes
accepted once, recovery codes, lockout after wrong codes, the own-account page."""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from flask import Flask

from portal.models import Role
from tests.portal.auth_helpers import (
    NEW_PASSWORD,
    PASSWORD,
    assert_not_stored,
    enrol,
    events,
    get_user,
    later_code,
    login,
    logout,
    make_user,
    submit,
    tags,
    wrong_code,
)


@pytest.fixture
def web(app_factory: Any) -> Flask:
    """An app with CSRF on, whatever other tests configure."""
    app: Flask = app_factory(WTF_CSRF_ENABLED=True)
    return app


# --- two-factor ------------------------------------------------------------------------------


def test_steward_must_enrol_totp_then_needs_a_valid_code(web):
    make_user(web, "walidata", role=Role.STEWARD)
    client = web.test_client()
    client.get("/?lang=en")
    login(client, "walidata")
    assert client.get("/account").status_code == 302  # not signed in before enrolment
    secret, codes = enrol(client, web, "walidata")
    assert client.get("/account").status_code == 200
    logout(client)
    response = login(client, "walidata")
    assert response.status_code == 302 and response.location.endswith("/login/2fa")
    assert client.get("/account").status_code == 302  # a password alone is not a session
    wrong = submit(client, "/login/2fa", {"code": wrong_code(secret)})
    assert "Wrong or already used code" in wrong.get_data(as_text=True)
    replay = submit(client, "/login/2fa", {"code": pyotp.TOTP(secret).now()})  # used to enrol
    assert replay.status_code == 200 and client.get("/account").status_code == 302
    ok = submit(client, "/login/2fa", {"code": later_code(secret)})
    assert ok.status_code == 302
    assert client.get("/account").status_code == 200
    seen = tags(web)
    assert seen.count("auth:2fa:success") == 2 and seen.count("auth:2fa:failure") == 2
    assert_not_stored(web, PASSWORD, *codes)
    user = get_user(web, "walidata")
    assert user.totp_enabled and all(h.startswith("$argon2id$") for h in user.recovery_codes)


def test_recovery_code_works_once(web):
    make_user(web, "admin1", role=Role.ADMIN)
    client = web.test_client()
    client.get("/?lang=en")
    _secret, codes = enrol(client, web, "admin1")
    logout(client)
    login(client, "admin1")
    assert submit(client, "/login/2fa", {"code": codes[3].upper()}).status_code == 302
    assert client.get("/account").status_code == 200
    assert len(get_user(web, "admin1").recovery_codes) == 9
    logout(client)
    login(client, "admin1")
    again = submit(client, "/login/2fa", {"code": codes[3]})
    assert again.status_code == 200 and client.get("/account").status_code == 302
    success = [e for e in events(web) if e.tag == "auth:2fa:success"]
    assert success[-1].details == {"method": "recovery_code", "recovery_codes_left": 9}
    assert_not_stored(web, *codes)


def test_wrong_codes_lock_the_account(web):
    make_user(web, "walidata", role=Role.STEWARD)
    client = web.test_client()
    client.get("/?lang=en")
    secret, _codes = enrol(client, web, "walidata")
    logout(client)
    login(client, "walidata")
    wrong = wrong_code(secret)
    for _ in range(4):
        assert submit(client, "/login/2fa", {"code": wrong}).status_code == 200
    locked = submit(client, "/login/2fa", {"code": wrong})
    assert locked.status_code == 302 and locked.location.endswith("/login")
    assert "locked" in client.get("/login").get_data(as_text=True)
    assert "locked" in login(client, "walidata").get_data(as_text=True)  # the password step too
    lockouts = [e for e in events(web) if e.tag == "auth:login:lockout"]
    assert lockouts[-1].details == {"reason": "lockout", "stage": "2fa"}


def test_member_turns_totp_on_and_off_from_the_account_page(web):
    make_user(web, "anggota")
    client = web.test_client()
    client.get("/?lang=en")
    login(client, "anggota")
    assert submit(client, "/account/2fa/start", {}, page="/account").status_code == 302
    page = client.get("/account/2fa").get_data(as_text=True)
    assert "<svg" in page
    secret = get_user(web, "anggota").totp_secret
    assert secret is not None
    shown = submit(client, "/account/2fa", {"code": pyotp.TOTP(secret).now()})
    codes = re.findall(r"<code>([a-z0-9-]{14})</code>", shown.get_data(as_text=True))
    assert len(codes) == 10 and client.get("/account").status_code == 200
    renewed = submit(client, "/account/2fa/recovery", {"code": later_code(secret)}, page="/account")
    new_codes = re.findall(r"<code>([a-z0-9-]{14})</code>", renewed.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(codes) & set(new_codes)
    off = submit(client, "/account/2fa/disable", {"current": PASSWORD}, page="/account")
    assert off.status_code == 302
    user = get_user(web, "anggota")
    assert not user.totp_enabled and user.totp_secret is None and user.recovery_codes == []
    assert client.get("/account").status_code == 200  # still signed in
    assert_not_stored(web, *codes, *new_codes)


def test_changing_the_password_ends_other_sessions(web):
    make_user(web, "anggota")
    here, elsewhere = web.test_client(), web.test_client()
    here.get("/?lang=en")
    login(here, "anggota")
    login(elsewhere, "anggota")
    wrong = submit(
        here,
        "/account/password",
        {"current": "bukan", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        page="/account",
    )
    assert wrong.status_code == 400 and "The current password is wrong." in wrong.get_data(
        as_text=True
    )
    ok = submit(
        here,
        "/account/password",
        {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        page="/account",
    )
    assert ok.status_code == 302
    assert here.get("/account").status_code == 200
    assert elsewhere.get("/account").status_code == 302
    assert_not_stored(web, PASSWORD, NEW_PASSWORD)
