"""Every tag of the security-event catalogue, driven through the real action that emits it.

:data:`DRIVERS` maps each :class:`EventTag` to a function that does what a person (or the
harvest) does to cause it — a page, an API call, an ``onedata`` command, a harvest — and says
who should be recorded as acting on what. A tag added to the catalogue without a driver fails
:func:`test_every_tag_has_a_driver`, so the catalogue and the code cannot drift apart.

The end of the module runs a full scenario and searches every logged record for the
passwords, tokens and personal-data values it used: none may be there.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal import db
from portal.models import AccessRequest, Dataset, Role, Version, VersionStatus, utcnow
from portal.models.events import SecurityEvent
from portal.services import accounts
from portal.services.events import FAILURE_TAGS, EventTag
from tests.portal import auth_helpers
from tests.portal.access_fixtures import Catalog, client_for, make_app, make_catalog, make_user
from tests.portal.helpers import add_folder_source, fetch, harvest, write_dataset
from tests.portal.review_helpers import (
    BAD_CSV,
    CSV,
    KEY,
    PII_SAMPLE,
    events,
    harvest_folder,
    harvest_pii_sample,
    last_seq,
    onedata,
)
from tests.portal.test_security_log import tamper

PURPOSE = "Penelitian skripsi tentang harga pangan di Pontianak."


@dataclass(frozen=True)
class Expected:
    """Who the record must name as acting, on what, with which outcome."""

    actor: str | None
    object_type: str | None
    object_id: str | None = None
    #: ``None``: the tag's default (``failure`` for :data:`FAILURE_TAGS`).
    outcome: str | None = None


@dataclass
class World:
    """One test's portal, built on first use with the configuration its driver asks for."""

    app_factory: Callable[..., Flask]
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    _app: Flask | None = None
    _catalog: Catalog | None = None
    users: dict[str, int] = field(default_factory=dict)

    def app(self, **config: Any) -> Flask:
        if self._app is None:
            self._app = make_app(self.app_factory, self.tmp_path, **config)
        return self._app

    def real_schemas_app(self, **config: Any) -> Flask:
        """An app with the city's own Table Schemas (for the sample files of ``datasets/``)."""
        if self._app is None:
            self._app = self.app_factory(WTF_CSRF_ENABLED=False, **config)
        return self._app

    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = make_catalog(self.app(), self.tmp_path)
        return self._catalog

    def user(self, name: str, role: Role = Role.MEMBER) -> int:
        if name not in self.users:
            self.users[name] = make_user(self.app(), name, role)
        return self.users[name]

    def client(self, name: str, role: Role = Role.MEMBER) -> FlaskClient:
        return client_for(self.app(), self.user(name, role))

    def cli(self, *args: str, input: str | None = None, **env: str) -> Result:
        with onedata(self.app(), self.monkeypatch) as invoke:
            return invoke(*args, input=input, **env)


Driver = Callable[[World], Expected]
DRIVERS: dict[EventTag, Driver] = {}


def drives(*tags: EventTag) -> Callable[[Driver], Driver]:
    def register(func: Driver) -> Driver:
        for tag in tags:
            assert tag not in DRIVERS, f"two drivers for {tag}"
            DRIVERS[tag] = func
        return func

    return register


# --- access requests ------------------------------------------------------------------------


def _request_access(w: World) -> int:
    w.catalog()
    sent = w.client("peneliti").post(
        "/dataset/harga-terbatas/request-access", data={"purpose": PURPOSE}
    )
    assert sent.status_code == 302, sent.status_code
    with w.app().app_context(), db.transaction() as session:
        return session.scalars(select(AccessRequest.id)).one()


def _grant(w: World, request_id: int) -> None:
    until = (utcnow() + timedelta(days=30)).date().isoformat()
    steward = w.client("walidata", Role.STEWARD)
    granted = steward.post(
        f"/workspace/access-requests/{request_id}/grant", data={"expires_on": until}
    )
    assert granted.status_code == 302, granted.status_code


@drives(EventTag.ACCESS_REQUEST_CREATE)
def _access_request_create(w: World) -> Expected:
    request_id = _request_access(w)
    return Expected(str(w.user("peneliti")), "access_request", str(request_id))


@drives(EventTag.ACCESS_REQUEST_GRANT)
def _access_request_grant(w: World) -> Expected:
    request_id = _request_access(w)
    _grant(w, request_id)
    return Expected(str(w.user("walidata", Role.STEWARD)), "access_request", str(request_id))


@drives(EventTag.ACCESS_REQUEST_REFUSE)
def _access_request_refuse(w: World) -> Expected:
    request_id = _request_access(w)
    refused = w.client("walidata", Role.STEWARD).post(
        f"/workspace/access-requests/{request_id}/refuse", data={"reason": "Tujuan belum jelas."}
    )
    assert refused.status_code == 302
    return Expected(str(w.user("walidata")), "access_request", str(request_id))


@drives(EventTag.ACCESS_GRANT_REVOKE)
def _access_grant_revoke(w: World) -> Expected:
    request_id = _request_access(w)
    _grant(w, request_id)
    revoked = w.client("walidata").post(
        f"/workspace/access-grants/{request_id}/revoke", data={"reason": "selesai"}
    )
    assert revoked.status_code == 302
    return Expected(str(w.user("walidata")), "access_request", str(request_id))


# --- administration -------------------------------------------------------------------------


@drives(EventTag.ADMIN_ORGANIZATION_CREATE)
def _organization_create(w: World) -> Expected:
    created = w.client("admin", Role.ADMIN).post(
        "/admin/organizations", data={"name": "bappeda", "title": "Bappeda Kota Pontianak"}
    )
    assert created.status_code == 302
    return Expected(str(w.user("admin")), "organization")


@drives(EventTag.ADMIN_ORGANIZATION_UPDATE)
def _organization_update(w: World) -> Expected:
    w.catalog()
    edited = w.client("admin", Role.ADMIN).post(
        "/admin/organizations/dinas-uji",
        data={"title": "Dinas Uji Coba", "description": "D", "url": ""},
    )
    assert edited.status_code == 302
    return Expected(str(w.user("admin")), "organization")


@drives(EventTag.USER_ACCOUNT_CREATE)
def _user_create(w: World) -> Expected:
    result = w.cli(
        "users", "create", "budi", "--password-stdin", input=auth_helpers.PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    return Expected("cli", "user_account", _user_id(w, "budi"))


@drives(EventTag.USER_ACCOUNT_DISABLE)
def _user_disable(w: World) -> Expected:
    w.user("budi")
    result = w.cli("users", "disable", "budi")
    assert result.exit_code == 0, result.output
    return Expected("cli", "user_account", str(w.user("budi")))


@drives(EventTag.USER_ACCOUNT_ENABLE)
def _user_enable(w: World) -> Expected:
    w.user("budi")
    assert w.cli("users", "disable", "budi").exit_code == 0
    result = w.cli("users", "enable", "budi")
    assert result.exit_code == 0, result.output
    return Expected("cli", "user_account", str(w.user("budi")))


@drives(EventTag.AUTHZ_ROLE_GRANT)
def _role_grant(w: World) -> Expected:
    w.catalog()
    w.user("budi")
    result = w.cli("users", "set-role", "budi", "producer", "--org", "dinas-uji")
    assert result.exit_code == 0, result.output
    return Expected("cli", "user_account", str(w.user("budi")))


@drives(EventTag.AUTHZ_ROLE_REVOKE)
def _role_revoke(w: World) -> Expected:
    w.user("budi", Role.STEWARD)
    result = w.cli("users", "set-role", "budi", "member")
    assert result.exit_code == 0, result.output
    return Expected("cli", "user_account", str(w.user("budi")))


@drives(EventTag.AUTHZ_ACCESS_DENY)
def _access_deny(w: World) -> Expected:
    assert w.client("peneliti").get("/admin/users").status_code == 403
    return Expected(str(w.user("peneliti")), "endpoint", "admin.user_list", "failure")


def _user_id(w: World, username: str) -> str:
    return str(auth_helpers.get_user(w.app(), username).id)


# --- signing in (CSRF on: the forms are posted the way a browser does) -----------------------


def _auth_app(w: World, **config: Any) -> Flask:
    return w.app(WTF_CSRF_ENABLED=True, **config)


@drives(EventTag.AUTH_LOGIN_SUCCESS)
def _login_success(w: World) -> Expected:
    app = _auth_app(w)
    user_id = auth_helpers.make_user(app, "anggota")
    assert auth_helpers.login(app.test_client(), "anggota").status_code == 302
    return Expected(str(user_id), "user_account", str(user_id))


@drives(EventTag.AUTH_LOGIN_FAILURE)
def _login_failure(w: World) -> Expected:
    app = _auth_app(w)
    user_id = auth_helpers.make_user(app, "anggota")
    assert auth_helpers.login(app.test_client(), "anggota", "bukan-ini").status_code == 200
    return Expected(None, "user_account", str(user_id), "failure")


@drives(EventTag.AUTH_LOGIN_LOCKOUT)
def _login_lockout(w: World) -> Expected:
    app = _auth_app(w)
    user_id = auth_helpers.make_user(app, "anggota")
    client = app.test_client()
    for _ in range(accounts.MAX_FAILURES):
        auth_helpers.login(client, "anggota", "bukan-ini")
    return Expected(None, "user_account", str(user_id), "failure")


@drives(EventTag.AUTH_SESSION_LOGOUT)
def _logout(w: World) -> Expected:
    app = _auth_app(w)
    user_id = auth_helpers.make_user(app, "anggota")
    client = app.test_client()
    auth_helpers.login(client, "anggota")
    assert auth_helpers.logout(client).status_code == 302
    return Expected(str(user_id), "user_account", str(user_id))


@drives(EventTag.AUTH_PASSWORD_RESET)
def _password_reset(w: World) -> Expected:
    app = _auth_app(w)
    auth_helpers.make_user(app, "anggota", email="anggota@example.org")
    forgot = auth_helpers.submit(
        app.test_client(), "/password/forgot", {"email": "anggota@example.org"}
    )
    assert forgot.status_code == 200
    return Expected(None, "user_account", _user_id(w, "anggota"))


def _enrolled_steward(w: World) -> tuple[FlaskClient, str]:
    """A steward with TOTP set up, signed out, then signed in again up to the second step."""
    app = _auth_app(w)
    auth_helpers.make_user(app, "walidata", Role.STEWARD)
    client = app.test_client()
    secret, _codes = auth_helpers.enrol(client, app, "walidata")
    auth_helpers.logout(client)
    assert auth_helpers.login(client, "walidata").location.endswith("/login/2fa")
    return client, secret


@drives(EventTag.AUTH_2FA_SUCCESS)
def _2fa_success(w: World) -> Expected:
    client, secret = _enrolled_steward(w)
    after = last_seq(w.app())
    code = auth_helpers.later_code(secret)
    assert auth_helpers.submit(client, "/login/2fa", {"code": code}).status_code == 302
    assert events(w.app(), EventTag.AUTH_2FA_SUCCESS, after=after)  # not only the enrolment's
    return Expected(_user_id(w, "walidata"), "user_account", _user_id(w, "walidata"))


@drives(EventTag.AUTH_2FA_FAILURE)
def _2fa_failure(w: World) -> Expected:
    client, secret = _enrolled_steward(w)
    wrong = auth_helpers.wrong_code(secret)
    assert auth_helpers.submit(client, "/login/2fa", {"code": wrong}).status_code == 200
    return Expected(None, "user_account", _user_id(w, "walidata"), "failure")


@drives(EventTag.SYSTEM_RATE_LIMIT_HIT)
def _rate_limit(w: World) -> Expected:
    app = _auth_app(w, AUTH_LIMITS={"login": (2, 900), "forgot": (2, 900)})
    client = app.test_client()
    for i in range(2):
        auth_helpers.login(client, f"tebak{i}", "tebakan")
    assert auth_helpers.login(client, "tebak9", "tebakan").status_code == 429
    return Expected(None, None)


@drives(EventTag.ALERT_RULE_RAISE)
def _alert(w: World) -> Expected:
    app = w.app(ALERT_LOGIN_FAILURES=3)
    user_id = w.user("anggota")
    client = app.test_client()
    for attempt in range(3):
        client.post("/login", data={"username": "anggota", "password": f"salah-{attempt}"})
    return Expected("cli", "user_account", str(user_id))  # the portal itself raises alerts


# --- tokens and OAuth clients ---------------------------------------------------------------


def _create_token(w: World) -> int:
    created = w.client("peneliti").post(
        "/api/v1/tokens", json={"name": "skrip", "scopes": ["read"]}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    token_id: int = created.get_json()["result"]["id"]
    return token_id


@drives(EventTag.AUTH_TOKEN_CREATE)
def _token_create(w: World) -> Expected:
    token_id = _create_token(w)
    return Expected(str(w.user("peneliti")), "api_token", str(token_id))


@drives(EventTag.AUTH_TOKEN_REVOKE)
def _token_revoke(w: World) -> Expected:
    token_id = _create_token(w)
    assert w.client("peneliti").post(f"/account/tokens/{token_id}/revoke").status_code == 302
    return Expected(str(w.user("peneliti")), "api_token", str(token_id))


def _register_client(w: World) -> str:
    result = w.cli(
        "oauth", "register", "--name", "Dasbor", "--grant-type", "client_credentials",
        "--scope", "read",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = re.search(r"client_id:\s+(\S+)", result.output)
    assert found, result.output
    return found.group(1)


@drives(EventTag.AUTH_OAUTH_CLIENT_CREATE)
def _oauth_client_create(w: World) -> Expected:
    return Expected("cli", "oauth2_client", _register_client(w))


@drives(EventTag.AUTH_OAUTH_CLIENT_REVOKE)
def _oauth_client_revoke(w: World) -> Expected:
    client_id = _register_client(w)
    result = w.cli("oauth", "revoke", client_id)
    assert result.exit_code == 0, result.output
    return Expected("cli", "oauth2_client", client_id)


# --- downloads of non-public data -----------------------------------------------------------


@drives(EventTag.DATA_DATASET_DOWNLOAD)
def _download(w: World) -> Expected:
    catalog = w.catalog()
    status, _ = fetch(w.client("walidata", Role.STEWARD), catalog.download("harga-terbatas"))
    assert status == 200
    return Expected(str(w.user("walidata")), "dataset", _dataset_id(w, "harga-terbatas"))


@drives(EventTag.DATA_DATASET_EXPORT)
def _export(w: World) -> Expected:
    catalog = w.catalog()
    status, _ = fetch(
        w.client("walidata", Role.STEWARD), catalog.download("harga-internal") + ".csv"
    )
    assert status == 200
    return Expected(str(w.user("walidata")), "dataset", _dataset_id(w, "harga-internal"))


def _dataset_id(w: World, name: str) -> str:
    with w.app().app_context(), db.transaction() as session:
        return session.scalars(select(Dataset.id).where(Dataset.name == name)).one()


def _version_id(w: World, status: VersionStatus) -> str:
    with w.app().app_context(), db.transaction() as session:
        return str(session.scalars(select(Version.id).where(Version.status == status)).one())


# --- harvests -------------------------------------------------------------------------------


@drives(EventTag.HARVEST_RUN_START, EventTag.HARVEST_RUN_END)
def _harvest_run(w: World) -> Expected:
    w.catalog()
    return Expected("harvester", "harvest_source")


@drives(EventTag.HARVEST_SOURCE_UNREACHABLE)
def _unreachable(w: World) -> Expected:
    job = harvest(w.app(), add_folder_source(w.app(), w.tmp_path / "tidak-ada"))
    assert job.error
    return Expected("harvester", "harvest_source", None, "failure")


@drives(EventTag.HARVEST_FILE_CHANGE)
def _file_change(w: World) -> Expected:
    folder = w.tmp_path / "src"
    source = harvest_folder(w.app(), folder, {"harga-pasar": CSV}, trusted=True)
    write_dataset(folder, "harga-pasar", CSV + "2024-01-03,Beras,13100\n")
    harvest(w.app(), source)
    return Expected("harvester", "resource")


@drives(EventTag.HARVEST_VALIDATION_FAILURE, EventTag.HARVEST_VERSION_QUARANTINE)
def _quarantine(w: World) -> Expected:
    harvest_folder(w.app(), w.tmp_path / "src", {"harga-pasar": BAD_CSV}, trusted=True)
    return Expected("harvester", "resource")


@drives(EventTag.HARVEST_PII_DETECT)
def _pii(w: World) -> Expected:
    app = w.real_schemas_app()
    harvest_pii_sample(app, w.tmp_path / "dinsos")
    return Expected("harvester", "resource")


# --- review (the `onedata review` commands; the workspace will call the same services) -------


def _waiting(w: World) -> None:
    harvest_folder(w.app(), w.tmp_path / "src", {"harga-pasar": CSV}, trusted=False)


@drives(EventTag.REVIEW_DATASET_SUBMIT)
def _submit(w: World) -> Expected:
    _waiting(w)
    return Expected("harvester", "version", _version_id(w, VersionStatus.IN_REVIEW))


@drives(EventTag.REVIEW_VERSION_APPROVE, EventTag.REVIEW_VERSION_PUBLISH)
def _approve(w: World) -> Expected:
    _waiting(w)
    version_id = _version_id(w, VersionStatus.IN_REVIEW)
    result = w.cli("review", "approve", "harga-pasar", "--note", "Sesuai standar.")
    assert result.exit_code == 0, result.output
    return Expected("cli", "version", version_id)


@drives(EventTag.REVIEW_VERSION_REJECT)
def _reject(w: World) -> Expected:
    _waiting(w)
    version_id = _version_id(w, VersionStatus.IN_REVIEW)
    result = w.cli("review", "reject", "harga-pasar", "--reason", "Satuan harga belum jelas.")
    assert result.exit_code == 0, result.output
    return Expected("cli", "version", version_id)


@drives(EventTag.REVIEW_VERSION_OVERRIDE)
def _override(w: World) -> Expected:
    harvest_folder(w.app(), w.tmp_path / "src", {"harga-pasar": BAD_CSV}, trusted=False)
    version_id = _version_id(w, VersionStatus.QUARANTINED)
    result = w.cli("review", "override", "harga-pasar", "--reason", "Satu sel teks, dikoreksi OPD.")
    assert result.exit_code == 0, result.output
    return Expected("cli", "version", version_id)


@drives(EventTag.REVIEW_DATASET_WITHDRAW)
def _withdraw(w: World) -> Expected:
    w.catalog()
    result = w.cli("review", "withdraw", "harga-publik", "--reason", "Data diganti.")
    assert result.exit_code == 0, result.output
    return Expected("cli", "dataset", _dataset_id(w, "harga-publik"))


@drives(EventTag.REVIEW_DATASET_EDIT)
def _edit(w: World) -> Expected:
    w.catalog()
    result = w.cli("review", "edit", "harga-publik", "--set", "title=Harga Pangan Harian")
    assert result.exit_code == 0, result.output
    return Expected("cli", "dataset", _dataset_id(w, "harga-publik"))


# --- the log itself and the system ----------------------------------------------------------


@drives(EventTag.LOG_RECORD_READ)
def _log_read(w: World) -> Expected:
    assert w.client("walidata", Role.STEWARD).get("/admin/security-log").status_code == 200
    return Expected(str(w.user("walidata")), None)


@drives(EventTag.LOG_RECORD_EXPORT)
def _log_export(w: World) -> Expected:
    w.user("peneliti")
    result = w.cli("security", "export", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    return Expected("cli", None)


@drives(EventTag.LOG_INTEGRITY_OK)
def _verify_ok(w: World) -> Expected:
    w.user("peneliti")
    result = w.cli("security", "verify")
    assert result.exit_code == 0, result.output
    return Expected("cli", None)


@drives(EventTag.LOG_INTEGRITY_FAILURE)
def _verify_failure(w: World) -> Expected:
    _user_create(w)  # something to tamper with
    with tamper(w.app()) as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE security_event SET actor_id = 'orang-lain' WHERE seq = 1"))
    result = w.cli("security", "verify")
    assert result.exit_code == 1, result.output
    return Expected("cli", None, None, "failure")


@drives(EventTag.SYSTEM_CONFIG_CHANGE)
def _config_change(w: World) -> Expected:
    old = w.tmp_path / "old-key"
    old.write_text(KEY)
    result = w.cli(
        "security", "rotate-key", "--old-key-file", str(old), ONEDATA_LOG_HMAC_KEY="n" * 40
    )
    assert result.exit_code == 0, result.output
    return Expected("cli", None)


@drives(EventTag.SYSTEM_ERROR_UNEXPECTED)
def _unexpected_error(w: World) -> Expected:
    catalog = w.catalog()
    app = w.app()
    app.config["PROPAGATE_EXCEPTIONS"] = False
    with app.app_context(), db.transaction() as session:
        key = session.scalars(select(Version.original_key)).first()
    assert key is not None
    (Path(app.config["STORAGE_URL"]) / key).unlink()  # the file store lost a file
    status, body = fetch(w.client("peneliti"), catalog.download("harga-publik"))
    assert status == 500 and b"FileNotFoundError" not in body
    return Expected(str(w.user("peneliti")), "endpoint", "catalog.download_original", "failure")


# --- the tests ------------------------------------------------------------------------------


def _default_outcome(tag: EventTag) -> str:
    return "failure" if tag in FAILURE_TAGS else "success"


def test_every_tag_has_a_driver() -> None:
    missing = set(EventTag) - set(DRIVERS)
    assert not missing, f"tags without a driver here: {sorted(missing)}"
    assert set(DRIVERS) <= set(EventTag)


@pytest.mark.parametrize("tag", sorted(DRIVERS), ids=str)
def test_the_real_action_records_the_tag(
    tag: EventTag, app_factory: Callable[..., Flask], tmp_path: Path, monkeypatch: Any
) -> None:
    world = World(app_factory, tmp_path, monkeypatch)
    expected = DRIVERS[tag](world)
    found = events(world.app(), tag)
    assert found, f"{tag}: no record after its action"
    described = [(e.actor_id, e.object_type, e.object_id, e.outcome) for e in found]
    assert any(
        e.actor_id == expected.actor
        and e.object_type == expected.object_type
        and (expected.object_id is None or e.object_id == expected.object_id)
        and e.outcome == (expected.outcome or _default_outcome(tag))
        for e in found
    ), f"{tag}: expected {expected}, recorded {described}"


# --- nothing secret or personal in the log after a full scenario ----------------------------


def _pii_values() -> list[str]:
    with PII_SAMPLE.with_suffix(".csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    values = [row[column] for row in rows for column in ("nik", "no_kk", "no_hp")]
    values += [row["nama"] for row in rows]
    assert len(values) == 4 * 30
    return values


def test_a_full_scenario_logs_no_password_token_or_personal_data(
    app_factory: Callable[..., Flask], tmp_path: Path, monkeypatch: Any
) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True, ALERT_LOGIN_FAILURES=3)
    auth_helpers.make_user(app, "anggota", email="anggota@example.org")
    wrong = ["salah-kopi-pahit-1", "salah-kopi-pahit-2", "salah-kopi-pahit-3"]
    browser = app.test_client()
    for password in wrong:
        assert auth_helpers.login(browser, "anggota", password).status_code == 200
    assert len(wrong) < accounts.MAX_FAILURES  # an alert, not yet a lockout
    assert auth_helpers.login(browser, "anggota").status_code == 302
    page = auth_helpers.token_of(browser, "/account")
    created = browser.post(
        "/api/v1/tokens",
        json={"name": "skrip", "scopes": ["read"]},
        headers={"X-CSRFToken": page},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    token = created.get_json()["result"]["token"]
    api = app.test_client()
    assert (
        api.get("/api/v1/datasets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    forged = token[:-4] + "AAAA"
    assert (
        api.get("/api/v1/datasets", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )
    harvest_pii_sample(app, tmp_path / "dinsos")
    with onedata(app, monkeypatch) as invoke:  # the log leaves the portal too
        exported = invoke("security", "export", "--format", "jsonl")
        assert exported.exit_code == 0, exported.output
        override = invoke("review", "override", "penerima-bansos-2024", "--reason", "coba")
        assert override.exit_code == 1 and "personal data" in override.output

    rows = events(app)
    tags = {e.tag for e in rows}
    assert {"auth:login:failure", "alert:rule:raise", "auth:token:create"} <= tags
    assert {"harvest:pii:detect", "harvest:version:quarantine"} <= tags
    logged = "\n".join(
        [exported.output]
        + [
            repr({c.name: getattr(e, c.name) for c in SecurityEvent.__table__.columns})
            for e in rows
        ]
    )
    secrets = [auth_helpers.PASSWORD, *wrong, token, forged, token[len(accounts.TOKEN_PREFIX) :]]
    for secret in secrets + _pii_values():
        assert secret not in logged, f"found in the log: {secret[:4]}…"
