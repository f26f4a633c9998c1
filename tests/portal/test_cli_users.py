"""`onedata users create / set-role / disable / enable / list`, with the security log they write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from portal import db
from portal.models import User, utcnow
from portal.services import accounts
from portal.services.organizations import ensure_organization
from tests.portal.auth_helpers import (
    PASSWORD,
    assert_not_stored,
    events,
    get_user,
    login,
    make_user,
)
from tests.portal.cli_helpers import command_runner


@pytest.fixture
def cli(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from portal.cli_users import users

    with command_runner(app, tmp_path, monkeypatch, users) as invoke:
        yield invoke


def test_users_commands(app, cli):
    with app.app_context(), db.transaction() as session:
        ensure_organization(session, name="dinkes", title="Dinas Kesehatan")
        ensure_organization(session, name="disdukcapil", title="Disdukcapil")
    result = cli(
        "create",
        "walidata",
        "--role",
        "steward",
        "--email",
        "w@pontianak.go.id",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created walidata (steward)" in result.output and "TOTP" in result.output
    result = cli(
        "create",
        "produsen",
        "--role",
        "producer",
        "--org",
        "dinkes",
        "--password-stdin",
        input=f"{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    result = cli(
        "create", "kosong", "--role", "producer", "--password-stdin", input=f"{PASSWORD}\n"
    )
    assert result.exit_code == 1 and "needs at least one OPD" in result.output
    result = cli("create", "pendek", "--password-stdin", input="pendek\n")
    assert result.exit_code == 1 and "at least 10 characters" in result.output
    result = cli("set-role", "produsen", "producer", "--org", "disdukcapil")
    assert result.exit_code == 0, result.output
    result = cli("set-role", "produsen", "producer", "--org", "tidak-ada")
    assert result.exit_code == 1 and "unknown organization" in result.output
    assert cli("set-role", "walidata", "member").exit_code == 0
    assert cli("disable", "produsen").exit_code == 0
    listing = cli("list").output
    assert "walidata" in listing and "produsen" in listing and "disdukcapil" in listing
    producer = get_user(app, "produsen")
    assert (
        not producer.active
        and producer.password_hash
        and producer.password_hash.startswith("$argon2")
    )
    with app.app_context(), db.transaction() as session:
        user = session.scalars(select(User).where(User.username == "produsen")).one()
        assert [o.name for o in user.organizations] == ["disdukcapil"]
    logged = [(e.tag, e.actor_id) for e in events(app)]
    assert logged == [
        ("user:account:create", "cli"),
        ("user:account:create", "cli"),
        ("authz:role:grant", "cli"),
        ("authz:role:revoke", "cli"),
        ("authz:role:revoke", "cli"),
        ("user:account:disable", "cli"),
    ]
    assert_not_stored(app, PASSWORD)


def test_enable_lets_a_disabled_user_sign_in_again_but_keeps_tokens_revoked(app, cli):
    user_id = make_user(app, "peneliti")
    with app.app_context(), db.transaction() as session:
        user = session.get(User, user_id)
        old_token = accounts.issue_token(session, user, name="lama", scopes=["read"]).secret
    browser = app.test_client()
    assert login(browser, "peneliti").status_code == 302
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {old_token}"}
    assert api.get("/api/v1/datasets", headers=bearer).status_code == 200

    assert cli("disable", "peneliti").exit_code == 0
    assert login(app.test_client(), "peneliti").status_code == 200  # refused, the form again
    assert browser.get("/account").status_code == 302  # the session ended
    with app.app_context(), db.transaction() as session:  # failures counted before disabling
        user = session.get(User, user_id)
        user.failed_logins, user.locked_until = 3, utcnow() + timedelta(hours=1)

    result = cli("enable", "peneliti")
    assert result.exit_code == 0 and "peneliti is enabled" in result.output
    with app.app_context(), db.transaction() as session:
        user = session.get(User, user_id)
        assert user.active and user.failed_logins == 0 and user.locked_until is None
    again = app.test_client()
    assert login(again, "peneliti").status_code == 302
    assert again.get("/account").status_code == 200
    assert api.get("/api/v1/datasets", headers=bearer).status_code == 401  # still revoked

    assert cli("enable", "peneliti").exit_code == 0  # already active: nothing to log
    unknown = cli("enable", "tidak-ada")
    assert unknown.exit_code == 1 and "no user named" in unknown.output
    logged = [(e.tag, e.actor_id, e.details) for e in events(app) if e.tag.startswith("user:")]
    assert logged[-2:] == [
        ("user:account:disable", "cli", {"revoked_count": 1}),
        ("user:account:enable", "cli", {"lockout_cleared": True}),
    ]
