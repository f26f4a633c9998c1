"""`alembic upgrade head` then `alembic check`, with the real command, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONEDATA_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _check(url: str) -> None:
    for args in (("upgrade", "head"), ("check",), ("downgrade", "base"), ("upgrade", "head")):
        result = _alembic(url, *args)
        assert result.returncode == 0, f"alembic {' '.join(args)} failed:\n{result.stderr}"
    assert "No new upgrade operations detected" in _alembic(url, "check").stdout


def test_migrations_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path / 'm.sqlite'}")


@pytest.mark.postgres
def test_migrations_postgres(pg_database):
    """On an empty schema of its own (``pg_database`` only proves the server is there)."""
    from sqlalchemy import create_engine, text

    from tests.conftest import PG_URL, _with_schema

    schema = f"m_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        _check(_with_schema(PG_URL, schema))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
