"""A harvest killed with SIGKILL in the middle of publishing leaves the previous version served."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from portal import db
from portal.models import Version, VersionStatus
from tests.portal.helpers import add_folder_source, fetch, harvest, write_dataset, write_schemas

ROOT = Path(__file__).resolve().parents[2]
HEADER = "tanggal,komoditas,harga\n"


def _big_csv(rows: int) -> str:
    lines = [f"2024-01-{1 + i % 28:02d},Komoditas {i % 50},{10000 + i}\n" for i in range(rows)]
    return HEADER + "".join(lines)


def _wait_for_rows_build(storage: Path, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once a rows file is being written (a .tmp- file under rows/)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any((storage / "rows").rglob(".tmp-*")):
            return True
        time.sleep(0.005)
    return False


def test_sigkill_while_publishing_keeps_previous_version(app_factory, tmp_path, database_url):
    schemas = write_schemas(tmp_path / "schemas")
    app = app_factory(SCHEMAS_PATH=str(schemas))
    folder = tmp_path / "src"
    path = write_dataset(folder, "harga-pasar", HEADER + "2024-01-02,Beras,13000\n")
    source = add_folder_source(app, folder)
    harvest(app, source)
    v1 = path.read_bytes()
    path.write_text(_big_csv(50_000), encoding="utf-8")

    storage = tmp_path / "storage"
    env = {
        **os.environ,
        "ONEDATA_SECRET_KEY": "crash-test-" + os.urandom(8).hex(),
        "ONEDATA_DATABASE_URL": database_url,
        "ONEDATA_INSTANCE_PATH": str(tmp_path / "instance"),
        "ONEDATA_STORAGE_URL": str(storage),
        "ONEDATA_SCHEMAS_PATH": str(schemas),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "harvest", "run", source],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        caught = _wait_for_rows_build(storage, proc, timeout=120)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert caught, "the harvest ended before its rows file was being written"
    assert proc.returncode == -signal.SIGKILL

    client = app.test_client()
    detail = client.get("/api/v1/datasets/harga-pasar").get_json()["result"]
    resource = detail["resources"][0]
    assert resource["current_version"] == 1
    assert [v["number"] for v in resource["versions"]] == [1]
    status, data = fetch(client, f"/dataset/harga-pasar/resource/{resource['id']}/download")
    assert (status, data) == (200, v1)
    with app.app_context():
        session = db.new_session()
        versions = session.scalars(select(Version)).all()
        assert [(v.number, v.status) for v in versions] == [(1, VersionStatus.PUBLISHED)]
        session.close()

    # the next run completes and publishes version 2 with every file whole
    job = harvest(app, source)
    assert job.counts["updated"] == 1
    detail = client.get("/api/v1/datasets/harga-pasar").get_json()["result"]
    assert detail["resources"][0]["current_version"] == 2
    with app.app_context():
        session = db.new_session()
        v2 = session.scalars(select(Version).where(Version.number == 2)).one()
        conn = sqlite3.connect(f"file:{storage / v2.rows_key}?mode=ro", uri=True)
        try:
            assert conn.execute("SELECT count(*) FROM rows").fetchone()[0] == 50_000
        finally:
            conn.close()
        session.close()
