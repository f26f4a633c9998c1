"""harvesters.sql against a real SQLite file and the real PostgreSQL test server."""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from harvesters.base import HarvestedItem, HarvestResult, ItemOutcome, ItemResult, SourceConfig
from harvesters.http import FetchPolicy
from harvesters.sql import QueryRefused, SqlHarvester, SqlOptions, check_query
from tests.conftest import PG_URL

ROWS = 50_000
SECRET = "s3cr3t-Pa55"


class Collector:
    """A processor that keeps what it is given."""

    def __init__(self) -> None:
        self.items: list[HarvestedItem] = []

    def __call__(self, item: HarvestedItem, *, dry_run: bool) -> ItemResult:
        self.items.append(item)
        return ItemResult(item.remote_id, ItemOutcome.ADDED)


def pg_policy(url: str = PG_URL) -> FetchPolicy:
    parsed = make_url(url)
    return FetchPolicy(allow_hosts=frozenset({f"{parsed.host}:{parsed.port or 5432}"}))


def harvest(
    url: str, tmp_path: Path, *queries: str, policy: FetchPolicy | None = None, **options: Any
) -> tuple[HarvestResult, Collector]:
    datasets = [
        {"remote_id": f"q{n}", "query": q, "metadata": {"title": f"Query {n}", "topic": "x"}}
        for n, q in enumerate(queries)
    ]
    source = SourceConfig(
        name="opd-db",
        url=url,
        max_file_size=options.pop("max_file_size", 50 * 1024 * 1024),
        options={"datasets": datasets, **options},
    )
    harvester = SqlHarvester(source, staging_dir=tmp_path / "staging", policy=policy)
    collector = Collector()
    return harvester.run(collector), collector


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "opd.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE penduduk (id INTEGER PRIMARY KEY, kode TEXT, jumlah INTEGER, "
            "rasio REAL, nama TEXT)"
        )
        conn.executemany(
            "INSERT INTO penduduk VALUES (?, ?, ?, ?, ?)",
            ((i, f"61.71.0{i % 6 + 1}", i * 3, i / 8, "Kelurahan, \"Ä\"" if i == 1 else None)
             for i in range(1, ROWS + 1)),
        )
    conn.close()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def pg_schema(pg_admin: Engine) -> Iterator[str]:
    """A schema with a 50k-row table and a sequence, dropped at the end.

    ``pg_admin`` (tests/conftest.py) skips these tests, or fails them under
    ``ONEDATA_REQUIRE_POSTGRES=1``, when the server cannot be reached.
    """
    schema = f"sqlh_{uuid.uuid4().hex[:12]}"
    try:
        with pg_admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(
                f'CREATE TABLE "{schema}".penduduk AS SELECT g AS id, '
                "'61.71.0' || (g % 6 + 1) AS kode, g * 3 AS jumlah, g / 8.0 AS rasio, "
                "g % 2 = 0 AS genap, timestamp '2024-06-01 08:30' AS diperbarui "
                f"FROM generate_series(1, {ROWS}) g"
            ))
            conn.execute(text(f'CREATE SEQUENCE "{schema}".nomor'))
        yield schema
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def pg_count(schema: str) -> int:
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f'SELECT count(*) FROM "{schema}".penduduk')).scalar_one())
    finally:
        engine.dispose()


def assert_staged_csv(item: HarvestedItem, header: str, chunks: int) -> list[str]:
    (staged,) = item.files
    data = staged.path.read_bytes()
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.size == len(data)
    assert (staged.format, staged.filename) == ("csv", f"{item.remote_id}.csv")
    lines = data.decode("utf-8").splitlines()
    assert lines[0] == header
    assert len(lines) == ROWS + 1
    assert (item.raw["rows"], item.raw["chunks"]) == (ROWS, chunks)
    return lines


# --- the query check ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM penduduk",
        "SELECT 1; DROP TABLE penduduk",
        "SELECT 1;\nDROP TABLE penduduk;",
        "WITH gone AS (DELETE FROM penduduk RETURNING *) SELECT * FROM gone",
        "WITH x AS (SELECT 1) UPDATE penduduk SET jumlah = 0",
        "SELECT * INTO salinan FROM penduduk",
        "SELECT * FROM penduduk FOR UPDATE",
        "SELECT * FROM penduduk FOR KEY SHARE",
        "SELECT dblink_exec('dbname=x', 'DROP TABLE penduduk')",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT 'a\\'; DROP TABLE penduduk; --'",
        "SELECT 1 /*! ; DROP TABLE penduduk */",
        "SELECT 1 --1; DROP TABLE penduduk",
        "SELECT 1 # ; DROP TABLE penduduk",
        "SELECT 'unterminated",
        "SELECT 1 /* unterminated",
        "VALUES (1)",
        "PRAGMA query_only = OFF",
        "",
    ],
)
def test_writes_and_multiple_statements_are_refused(query: str) -> None:
    with pytest.raises(QueryRefused):
        check_query(query)


@pytest.mark.parametrize(
    ("query", "runs"),
    [
        ("SELECT * FROM penduduk", "SELECT * FROM penduduk"),
        ("select 'DELETE; DROP' as x -- a comment; with a semicolon\n;", None),
        ('SELECT "update", "into" FROM t /* DELETE; */ ;  -- end', 'SELECT "update", "into" FROM t'
         " /* DELETE; */ "),
        ("  (SELECT 1) UNION (SELECT 2);", "  (SELECT 1) UNION (SELECT 2)"),
        ("WITH x AS (SELECT 'it''s' AS a) SELECT a FROM x", None),
        ("SELECT replace(nama, 'a', 'b'), updated_at, set_name FROM t", None),
    ],
)
def test_single_selects_are_accepted(query: str, runs: str | None) -> None:
    assert check_query(query) == (runs if runs is not None else query.rstrip().rstrip(";"))


# --- SQLite -----------------------------------------------------------------------------------

def test_sqlite_query_is_read_in_chunks_into_a_csv(sqlite_url: str, tmp_path: Path) -> None:
    result, got = harvest(
        sqlite_url, tmp_path, "SELECT id, kode, jumlah, rasio, nama FROM penduduk ORDER BY id;",
        chunk_size=5000,
    )
    assert result.error is None and result.counts["added"] == 1, result
    assert result.seen_ids == ["q0"]
    (item,) = got.items
    assert item.metadata == {"title": "Query 0", "topic": "x"}
    lines = assert_staged_csv(item, "id,kode,jumlah,rasio,nama", chunks=10)
    assert lines[1] == '1,61.71.02,3,0.125,"Kelurahan, ""Ä"""'
    assert lines[-1] == f"{ROWS},61.71.03,{ROWS * 3},{ROWS / 8},"


def test_sqlite_is_opened_read_only(sqlite_url: str, tmp_path: Path) -> None:
    path = Path(make_url(sqlite_url).database or "")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    source = SourceConfig("opd", sqlite_url, options={"datasets": [
        {"remote_id": "a", "query": "SELECT 1"}]})
    harvester = SqlHarvester(source, staging_dir=tmp_path / "staging")
    options = SqlOptions.from_options(source.options)
    # The second guard, on its own: even a statement the check would refuse cannot write.
    with harvester._connect(options) as conn:
        with pytest.raises(Exception, match="readonly database|query_only"):
            conn.exec_driver_sql("DELETE FROM penduduk")
    result, _ = harvest(sqlite_url, tmp_path, "SELECT 1; DROP TABLE penduduk")
    assert result.items[0].error_type == "query-refused"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("opd")) == [
        "opd.sqlite"
    ]


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "absent.sqlite"
    result, _ = harvest(f"sqlite:///{missing}", tmp_path, "SELECT 1")
    assert result.error_type == "source-unavailable"
    assert not missing.exists()


def test_sqlite_statement_timeout(sqlite_url: str, tmp_path: Path) -> None:
    forever = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
               "SELECT count(*) FROM c")
    started = time.monotonic()
    result, _ = harvest(sqlite_url, tmp_path, forever, statement_timeout=0.5)
    assert result.items[0].error_type == "query-timeout", result.items
    assert time.monotonic() - started < 5


def test_row_and_size_caps_leave_no_partial_file(sqlite_url: str, tmp_path: Path) -> None:
    query = "SELECT * FROM penduduk"
    result, _ = harvest(sqlite_url, tmp_path, query, max_rows=1000, chunk_size=300)
    assert result.items[0].error_type == "too-many-rows"
    result, _ = harvest(sqlite_url, tmp_path, query, max_file_size=10_000)
    assert result.items[0].error_type == "file-too-large"
    assert list((tmp_path / "staging").iterdir()) == []


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("mysql+pymysql://u:p@db.example/opd", None, "not supported"),
        ("sqlite://", None, "path of a database file"),
        ("postgresql://u@db.example/opd?host=127.0.0.1", None, "host are not accepted"),
        ("postgresql://u@/opd", None, "must name one database host"),
        ("postgresql://u@db.example/opd", {"datasets": []}, "non-empty list"),
        ("postgresql://u@db.example/opd", {"datasets": [{"query": "SELECT 1"}]}, "remote_id"),
        ("postgresql://u@db.example/opd", {"datasets": [{"remote_id": "a", "query": "SELECT 1"}],
                                           "chunk_size": 0}, "positive"),
    ],
)
def test_bad_configuration_fails_the_source(
    url: str, options: dict[str, Any] | None, message: str, tmp_path: Path
) -> None:
    options = options or {"datasets": [{"remote_id": "a", "query": "SELECT 1"}]}
    harvester = SqlHarvester(SourceConfig("s", url, options=options), staging_dir=tmp_path)
    result = harvester.run(Collector())
    assert result.error_type == "invalid-config"
    assert message in (result.error or "")


def test_malformed_url_never_shows_its_password(tmp_path: Path) -> None:
    for url in (f"postgresql://u:{SECRET}@db.example:port/opd", f"nonsense://u:{SECRET}@@@"):
        result, _ = harvest(url, tmp_path, "SELECT 1")
        assert result.error and SECRET not in result.error


# --- PostgreSQL -------------------------------------------------------------------------------

@pytest.mark.postgres
def test_postgres_query_is_streamed_in_chunks(pg_schema: str, tmp_path: Path) -> None:
    result, got = harvest(
        PG_URL, tmp_path,
        f"SELECT id, kode, jumlah, rasio, genap, diperbarui FROM {pg_schema}.penduduk ORDER BY id",
        policy=pg_policy(), chunk_size=5000,
    )
    assert result.error is None and result.counts["added"] == 1, result
    lines = assert_staged_csv(got.items[0], "id,kode,jumlah,rasio,genap,diperbarui", chunks=10)
    assert lines[1] == "1,61.71.02,3,0.12500000000000000000,false,2024-06-01T08:30:00"


@pytest.mark.postgres
def test_postgres_writes_are_refused_and_nothing_changes(pg_schema: str, tmp_path: Path) -> None:
    table = f"{pg_schema}.penduduk"
    result, got = harvest(
        PG_URL, tmp_path,
        f"DELETE FROM {table}",
        f"SELECT 1 FROM {table}; DROP TABLE {table}",
        f"WITH gone AS (DELETE FROM {table} RETURNING *) SELECT count(*) FROM gone",
        # passes the lexical check: the read-only transaction is what stops it
        f"SELECT nextval('{pg_schema}.nomor')",
        policy=pg_policy(),
    )
    assert [i.error_type for i in result.items] == ["query-refused"] * 4, result.items
    assert "read-only transaction" in (result.items[3].error or "")
    assert got.items == []
    assert pg_count(pg_schema) == ROWS


@pytest.mark.postgres
def test_postgres_statement_timeout(pg_schema: str, tmp_path: Path) -> None:
    started = time.monotonic()
    result, _ = harvest(PG_URL, tmp_path, "SELECT pg_sleep(5)", policy=pg_policy(),
                        statement_timeout=0.5)
    assert result.items[0].error_type == "query-timeout", result.items
    assert time.monotonic() - started < 4


@pytest.mark.postgres
def test_postgres_password_is_masked_in_errors(pg_schema: str, tmp_path: Path) -> None:
    with_password = make_url(PG_URL).set(password=SECRET)
    missing_db = with_password.set(database=f"absent_{uuid.uuid4().hex[:8]}")
    result, _ = harvest(missing_db.render_as_string(hide_password=False), tmp_path, "SELECT 1",
                        policy=pg_policy())
    assert result.error_type == "source-unavailable"
    assert SECRET not in (result.error or "") and "***" in (result.error or "")
    # trust auth accepts any password: the connection works, the query fails
    result, _ = harvest(with_password.render_as_string(hide_password=False), tmp_path,
                        f"SELECT nope FROM {pg_schema}.penduduk", policy=pg_policy())
    (failed,) = result.items
    assert failed.error_type == "query-failed"
    assert SECRET not in f"{failed.error} {failed.detail}"


@pytest.mark.postgres
def test_postgres_host_must_be_allow_listed(pg_schema: str, tmp_path: Path) -> None:
    result, _ = harvest(PG_URL, tmp_path, "SELECT 1", policy=FetchPolicy())
    assert result.error_type == "fetch-refused"
    assert "loopback" in (result.error or "") or "private" in (result.error or "")
