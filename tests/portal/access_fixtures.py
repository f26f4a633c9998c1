"""Builders for the account, access-request and admin tests: users, sign-in, a small catalog
with one public, one restricted and one internal dataset of the OPD ``dinas-uji``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal import db
from portal.identity import SESSION_2FA, SESSION_USER, SESSION_VERSION
from portal.models import Dataset, Organization, Role, User
from portal.services import accounts
from portal.services.organizations import ensure_organization
from tests.portal.helpers import add_folder_source, harvest, write_dataset, write_schemas

PASSWORD = "correct horse battery"  # noqa: S105 - a test password
CSV = "tanggal,komoditas,harga\n2024-01-02,Beras,13000\n2024-01-02,Gula,17500\n"
LEVELS = {"harga-publik": "public", "harga-terbatas": "restricted", "harga-internal": "internal"}


def with_blueprints(app: Flask) -> Flask:
    """Register this work's blueprints when ``create_app`` does not (yet)."""
    from portal.views import access_requests, account_tokens, admin

    for bp in (account_tokens.bp, access_requests.bp, admin.bp):
        if bp.name not in app.blueprints:
            app.register_blueprint(bp)
    return app


def make_app(app_factory: Any, tmp_path: Path, **config: Any) -> Flask:
    config.setdefault("WTF_CSRF_ENABLED", False)
    schemas = write_schemas(tmp_path / "schemas")
    return with_blueprints(app_factory(SCHEMAS_PATH=str(schemas), **config))


def make_user(
    app: Flask, username: str, role: Role = Role.MEMBER, orgs: tuple[str, ...] = ()
) -> int:
    with app.app_context(), db.transaction() as session:
        user = accounts.create_user(session, username=username, password=PASSWORD, role=role)
        organizations = [
            session.scalars(select(Organization).where(Organization.name == n)).one() for n in orgs
        ]
        if organizations:
            accounts.set_role(session, user, role, organizations)
        return user.id


def sign_in(client: FlaskClient, app: Flask, user_id: int) -> FlaskClient:
    with app.app_context():
        session = db.new_session()
        user = session.get(User, user_id)
        assert user is not None
        version = user.session_version
        session.close()
    with client.session_transaction() as s:
        s[SESSION_USER] = user_id
        s[SESSION_VERSION] = version
        s[SESSION_2FA] = True
    return client


def client_for(app: Flask, user_id: int | None) -> FlaskClient:
    client = app.test_client()
    return sign_in(client, app, user_id) if user_id is not None else client


@dataclass(frozen=True)
class Catalog:
    """The three sample datasets of ``dinas-uji`` and the id of each one's resource."""

    resources: dict[str, str]

    def download(self, name: str) -> str:
        return f"/dataset/{name}/resource/{self.resources[name]}/download"


def make_catalog(app: Flask, tmp_path: Path) -> Catalog:
    folder = tmp_path / "src"
    for name, level in LEVELS.items():
        write_dataset(folder, name, CSV, access_level=level)
    job = harvest(app, add_folder_source(app, folder))
    assert job.error is None, job.error
    with app.app_context(), db.transaction() as session:
        ensure_organization(session, name="dinas-lain", title="Dinas Lain")
        resources = {
            d.name: d.resources[0].id
            for d in session.scalars(select(Dataset).where(Dataset.name.in_(LEVELS)))
        }
    assert set(resources) == set(LEVELS)
    return Catalog(resources)
