"""`onedata users create / set-role / disable / list`, with the security log they write."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from portal import db
from portal.models import User
from portal.services.organizations import ensure_organization
from tests.portal.auth_helpers import (
    PASSWORD,
    assert_not_stored,
    events,
    get_user,
)


@pytest.fixture
def cli(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import portal
    import portal.cli_common

    built: list[Flask] = []

    def create_app(config: dict[str, Any]) -> Flask:
        built.append(portal.create_app(config))
        return built[-1]

    monkeypatch.setattr(portal.cli_common, "create_app", create_app)
    env = {
        "ONEDATA_INSTANCE_PATH": str(tmp_path / "cli-instance"),
        "ONEDATA_DATABASE_URL": app.config["DATABASE_URL"],
        "ONEDATA_SECRET_KEY": uuid.uuid4().hex * 2,
    }
    from portal.cli_users import users

    def invoke(*args: str, input: str | None = None) -> Any:
        return CliRunner().invoke(users, list(args), env=env, input=input, catch_exceptions=False)

    yield invoke
    for built_app in built:
        built_app.extensions["onedata.engine"].dispose()


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
