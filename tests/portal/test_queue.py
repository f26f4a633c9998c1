"""With ONEDATA_REDIS_URL set, runs go to RQ and `onedata worker` runs them (real Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from portal import db
from portal.models import HarvestJob, JobStatus
from tests.portal.helpers import add_folder_source, write_dataset, write_schemas

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("ONEDATA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisDown

    try:
        Redis.from_url(REDIS_URL).ping()
    except RedisDown as exc:
        if os.environ.get("ONEDATA_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


def test_queued_run_is_done_by_a_worker(app_factory, tmp_path, database_url, redis_url):
    schemas = write_schemas(tmp_path / "schemas")
    app = app_factory(SCHEMAS_PATH=str(schemas))
    sources = []
    for name in ("a", "b"):  # two sources: one RQ job runs both, as run_many does
        folder = tmp_path / f"src-{name}"
        write_dataset(folder, f"harga-{name}", "tanggal,komoditas,harga\n2024-01-02,Beras,13000\n")
        sources.append(add_folder_source(app, folder, name=f"uji-{name}"))
    queue = f"onedata-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "ONEDATA_SECRET_KEY": "queue-test-" + uuid.uuid4().hex,
        "ONEDATA_DATABASE_URL": database_url,
        "ONEDATA_INSTANCE_PATH": str(tmp_path / "instance"),
        "ONEDATA_STORAGE_URL": str(tmp_path / "storage"),
        "ONEDATA_SCHEMAS_PATH": str(schemas),
        "ONEDATA_REDIS_URL": redis_url,
        "ONEDATA_HARVEST_QUEUE": queue,
    }

    def onedata(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "portal.cli", *args],
            cwd=ROOT,
            env=env,
            text=True,
            capture_output=True,
            timeout=180,
            check=False,
        )

    queued = onedata("harvest", "run", *sources)
    assert queued.returncode == 0, queued.stderr
    assert "Queued 2 source(s) as 1 job(s)" in queued.stdout
    with app.app_context():
        session = db.new_session()
        assert session.scalars(select(HarvestJob)).all() == []  # nothing ran yet
        session.close()
    worked = onedata("worker", "--burst")
    assert worked.returncode == 0, worked.stderr
    with app.app_context():
        session = db.new_session()
        jobs = session.scalars(select(HarvestJob)).all()
        assert sorted(job.source.name for job in jobs) == ["uji-a", "uji-b"]
        assert all(job.status is JobStatus.DONE and job.counts["added"] == 1 for job in jobs)
        session.close()
