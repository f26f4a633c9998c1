"""The demo instance: the sample sources of datasets/ harvested end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import select

from portal import db
from portal.demo import load_sample_sources
from portal.models import Dataset, DatasetState, Version, VersionStatus
from tests.portal.helpers import harvest

ROOT = Path(__file__).resolve().parents[2]
BAD = {"bansos-per-kelurahan-2024", "penerima-bansos-2024"}


def _sample_slugs() -> set[str]:
    """Samples the public catalog lists: all but internal ones (restricted ones are listed)."""
    return {
        p.name.removesuffix(".meta.json")
        for p in (ROOT / "datasets").glob("*/*.meta.json")
        if json.loads(p.read_text(encoding="utf-8")).get("access_level") != "internal"
    }


def test_demo_publishes_samples_and_quarantines_bad_ones(app):
    with app.app_context(), db.transaction() as session:
        names = [s.name for s in load_sample_sources(session, ROOT / "datasets")]
    jobs = [harvest(app, name) for name in names]
    assert all(job.error is None for job in jobs)

    client = app.test_client()
    listed = client.get("/api/v1/datasets?page_size=100").get_json()
    public = {d["name"] for d in listed["results"]}
    assert public == _sample_slugs() - BAD
    assert len(public) >= 6
    for name in BAD:
        assert client.get(f"/dataset/{name}").status_code == 404
        assert client.get(f"/api/v1/datasets/{name}").status_code == 404
        assert name.encode() not in client.get("/dataset?q=bansos").data
    with app.app_context():
        session = db.new_session()
        for name in BAD:
            dataset = session.scalars(select(Dataset).where(Dataset.name == name)).one()
            assert dataset.state is DatasetState.DRAFT
            (version,) = [v for r in dataset.resources for v in r.versions]
            assert version.status is VersionStatus.QUARANTINED
            report = json.dumps(version.check_report)
            assert version.check_report["issues"] or version.check_report["pii"]
            # quarantined files are never turned into downloadable rows
            assert version.rows_key is None
            assert report
        broken = session.scalars(
            select(Dataset).where(Dataset.name == "bansos-per-kelurahan-2024")
        ).one()
        issues = broken.resources[0].versions[0].check_report["issues"]
        kinds = {i["code"] for i in issues if i["row"] and i["field"]}
        assert {"type-error", "constraint-error", "region-code"} <= kinds, issues
        assert session.scalars(
            select(Version).where(Version.status == VersionStatus.PUBLISHED)
        ).all()
        session.close()

    # every published dataset has a preview and a working CSV export
    for name in sorted(public):
        detail = client.get(f"/api/v1/datasets/{name}").get_json()["result"]
        resource = detail["resources"][0]
        assert resource["current_version"] == 1
        csv = client.get(f"/dataset/{name}/resource/{resource['id']}/download.csv")
        if detail["access_level"] == "restricted":  # listed, but its data needs a grant
            assert csv.status_code == 404
            continue
        assert csv.status_code == 200
        assert (
            len(csv.data.decode("utf-8").splitlines()) == resource["versions"][0]["row_count"] + 1
        )

    # a second run changes nothing
    again = [harvest(app, name) for name in names]
    assert sum(job.counts["added"] + job.counts["updated"] for job in again) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_onedata_demo_command_serves(tmp_path):
    """`onedata demo` (what `make demo` runs) initialises, harvests and serves."""
    port = _free_port()
    env = {**os.environ, "ONEDATA_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("ONEDATA_SECRET_KEY", None)
    env.pop("ONEDATA_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = ""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/datasets") as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert body, (
            f"demo did not serve; output:\n{proc.stdout.read() if proc.poll() is not None else ''}"
        )
        assert json.loads(body)["count"] == len(_sample_slugs() - BAD)
        assert (tmp_path / "instance" / "secret_key").is_file()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert "Harvest summary" in output
    for username in ("walidata", "admin", "produsen-disdukcapil"):
        assert username in output  # the demo accounts, printed once


def test_harvest_events_name_pii_columns_but_never_values(app):
    import csv

    from portal.models import SecurityEvent

    with app.app_context(), db.transaction() as session:
        names = [s.name for s in load_sample_sources(session, ROOT / "datasets")]
    for name in names:
        harvest(app, name)
    with app.app_context():
        session = db.new_session()
        events = session.scalars(select(SecurityEvent).order_by(SecurityEvent.seq)).all()
        session.close()
    tags = [e.tag for e in events]
    assert tags.count("harvest:run:start") == tags.count("harvest:run:end") == len(names)
    pii = [e.details for e in events if e.tag == "harvest:pii:detect"]
    assert {"nik", "no_kk"} <= {d["column"] for d in pii}
    assert all(set(d) == {"column", "detector", "count"} for d in pii)
    assert "harvest:version:quarantine" in tags and "harvest:validation:failure" in tags
    dump = json.dumps([[getattr(e, c.name) for c in SecurityEvent.__table__.columns]
                       for e in events], default=str)
    with (ROOT / "datasets/dinsos/penerima-bansos-2024.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    secrets = {row[col] for row in rows for col in ("nik", "no_kk", "no_hp") if row.get(col)}
    assert secrets and not [s for s in secrets if s in dump]
