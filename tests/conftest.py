"""Shared fixtures: an app on a real SQLite file **and** on the real PostgreSQL.

Every test that takes ``app`` (or ``client``, ``session``) runs once per database backend.
PostgreSQL comes from ``ONEDATA_TEST_DATABASE_URL`` (default: the local trust-auth server);
when it cannot be reached the PostgreSQL variants are skipped with the reason shown, unless
``ONEDATA_REQUIRE_POSTGRES=1`` (set by CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from portal import create_app, db, migrate
from portal.models import Base

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get(
    "ONEDATA_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("ONEDATA_REQUIRE_POSTGRES") == "1"


def _with_schema(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite"
    engine = db.make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the PostgreSQL test server, disposed at the end.

    Skips the test when the server cannot be reached, or fails it under ONEDATA_REQUIRE_POSTGRES=1.
    """
    try:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # the server is absent: say so, loudly
        message = f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}: {exc}"
        if REQUIRE_PG:
            pytest.fail(message + " (ONEDATA_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    try:
        yield admin
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database(pg_admin: Engine) -> Iterator[str]:
    """A fresh, migrated schema in the PostgreSQL test database, dropped at the end."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _with_schema(PG_URL, schema)
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _truncate(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "onedata.sqlite"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
def app_factory(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build apps on this test's database; extra config as keyword arguments."""
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
                "DATABASE_URL": database_url,
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "STORAGE_URL": str(tmp_path / "storage"),
                "DATASETS_PATH": str(ROOT / "datasets"),
                "SCHEMAS_PATH": str(ROOT / "schemas"),
                **config,
            }
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        engine = app.extensions["onedata.engine"]
        if engine.dialect.name == "postgresql":
            _truncate(engine)
        engine.dispose()


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """A session outside any request; committed work is visible to the app."""
    with app.app_context():
        s = db.new_session()
        try:
            yield s
        finally:
            s.rollback()
            s.close()
