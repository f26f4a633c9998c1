"""Runs that finish themselves: deadlines, dead workers, due sources, withdrawal, health."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from portal import db
from portal.harvesting import reap, run_many
from portal.models import Dataset, DatasetState, HarvestJob, HarvestSource, JobStatus, utcnow
from portal.services.harvest_schedule import due_sources
from tests.portal.helpers import add_folder_source, harvest, write_dataset, write_schemas

CSV = "tanggal,komoditas,harga\n2024-01-02,Beras,13000\n"


def _app(app_factory, tmp_path, **config):  # type: ignore[no-untyped-def]
    return app_factory(SCHEMAS_PATH=str(write_schemas(tmp_path / "schemas")), **config)


def test_dead_worker_job_is_marked_failed(app_factory, tmp_path):
    app = _app(app_factory, tmp_path, HARVEST_HEARTBEAT_TIMEOUT=60)
    source = add_folder_source(app, tmp_path / "src")
    with app.app_context(), db.transaction() as session:
        source_id = session.scalars(select(HarvestSource.id)).one()
        old = utcnow() - timedelta(minutes=10)
        session.add(
            HarvestJob(
                source_id=source_id,
                status=JobStatus.RUNNING,
                started_at=old,
                heartbeat_at=old,
                done=3,
                total=10,
            )
        )
        session.add(
            HarvestJob(
                source_id=source_id,
                status=JobStatus.RUNNING,
                started_at=utcnow(),
                heartbeat_at=utcnow(),
            )
        )
    assert reap(app) == 1
    with app.app_context():
        session = db.new_session()
        stale, alive = session.scalars(select(HarvestJob).order_by(HarvestJob.id)).all()
        assert stale.status is JobStatus.FAILED
        assert "no heartbeat since" in (stale.error or "") and "3 of 10" in (stale.error or "")
        assert alive.status is JobStatus.RUNNING
        session.close()
    assert source


def test_deadline_stops_taking_items(app_factory, tmp_path):
    app = _app(app_factory, tmp_path, HARVEST_JOB_DEADLINE=0)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-a", CSV)
    write_dataset(folder, "harga-b", CSV)
    job = harvest(app, add_folder_source(app, folder))
    assert job.status is JobStatus.FAILED
    assert "deadline exceeded after 0 of 2 items" in (job.error or "")


def test_heartbeat_is_stamped_while_running(app_factory, tmp_path):
    from portal.services.harvest import _Heartbeat

    app = _app(app_factory, tmp_path)
    add_folder_source(app, tmp_path / "src")
    with app.app_context():
        with db.transaction() as session:
            source_id = session.scalars(select(HarvestSource.id)).one()
            old = utcnow() - timedelta(hours=1)
            job = HarvestJob(source_id=source_id, status=JobStatus.RUNNING, heartbeat_at=old)
            session.add(job)
        beat = _Heartbeat(db.get_engine(), job.id, interval=0.05)
        beat.start()
        try:
            deadline = utcnow() + timedelta(seconds=10)
            while utcnow() < deadline:
                session = db.new_session()
                stamped = session.get(HarvestJob, job.id).heartbeat_at  # type: ignore[union-attr]
                session.close()
                if stamped is not None and stamped.replace(tzinfo=None) > old.replace(tzinfo=None):
                    break
            else:
                raise AssertionError("heartbeat never stamped")
        finally:
            beat.stop()


def test_due_sources(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-a", CSV)
    name = add_folder_source(app, folder)
    with app.app_context(), db.transaction() as session:
        assert [s.name for s in due_sources(session)] == [name]  # never run
    harvest(app, name)
    with app.app_context(), db.transaction() as session:
        assert due_sources(session) == []  # daily source, just run
        assert [s.name for s in due_sources(session, utcnow() + timedelta(days=1, minutes=1))] == [
            name
        ]
        session.execute(update(HarvestSource).values(active=False))
        assert due_sources(session, utcnow() + timedelta(days=2)) == []  # paused


def test_missing_dataset_is_withdrawn_after_grace(app_factory, tmp_path):
    app = _app(app_factory, tmp_path, HARVEST_WITHDRAW_GRACE_DAYS=7)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-a", CSV)
    write_dataset(folder, "harga-b", CSV)
    name = add_folder_source(app, folder)
    harvest(app, name)
    (folder / "harga-b.csv").unlink()
    job = harvest(app, name)
    assert job.counts["withdrawn"] == 0  # within the grace period
    client = app.test_client()
    assert client.get("/dataset/harga-b").status_code == 200

    with app.app_context(), db.transaction() as session:
        session.execute(
            update(Dataset)
            .where(Dataset.name == "harga-b")
            .values(last_seen_at=utcnow() - timedelta(days=8))
        )
    job = harvest(app, name)
    assert job.counts["withdrawn"] == 1
    ((remote_id, reason),) = job.failures
    assert remote_id == "harga-b" and reason.startswith("not at the source since")
    assert client.get("/dataset/harga-b").status_code == 404
    assert client.get("/dataset/harga-a").status_code == 200
    with app.app_context():
        session = db.new_session()
        state = session.scalars(select(Dataset.state).where(Dataset.name == "harga-b")).one()
        assert state is DatasetState.WITHDRAWN
        session.close()


def test_one_broken_source_does_not_block_others(app_factory, tmp_path):
    app = _app(app_factory, tmp_path, HARVEST_CONCURRENCY=3)
    good = tmp_path / "good"
    write_dataset(good, "harga-a", CSV)
    names = [
        add_folder_source(app, good, name="baik"),
        add_folder_source(app, tmp_path / "missing", name="hilang"),
    ]
    jobs = run_many(app, names)
    assert [(j.source, j.status) for j in jobs] == [
        ("baik", JobStatus.DONE),
        ("hilang", JobStatus.FAILED),
    ]


def test_health_reports_unreachable_and_hides_errors_from_public(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    good = tmp_path / "good"
    write_dataset(good, "harga-a", CSV)
    names = [
        add_folder_source(app, good, name="baik"),
        add_folder_source(app, tmp_path / "missing", name="hilang"),
    ]
    for _ in range(2):
        run_many(app, names)
    client = app.test_client()
    body = client.get("/api/v1/harvest/sources").get_json()
    by_name = {s["name"]: s for s in body["results"]}
    assert by_name["baik"]["reachable"] is True and by_name["baik"]["stale"] is False
    assert by_name["hilang"]["reachable"] is False
    assert by_name["hilang"]["consecutive_failures"] == 2
    assert by_name["hilang"]["last_error"] is None  # details are for stewards only
    assert body["organizations"][0]["unreachable"] == 1
    page = client.get("/harvest")
    assert page.status_code == 200
    assert "tidak terjangkau" in page.get_data(as_text=True)
    assert str(tmp_path) not in page.get_data(as_text=True)


def test_stale_when_nothing_changed_for_longer_than_frequency(app_factory, tmp_path):
    from portal.services.health import source_health

    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-a", CSV)
    harvest(app, add_folder_source(app, folder))
    with app.app_context(), db.transaction() as session:
        (now,) = source_health(session)
        (later,) = source_health(session, utcnow() + timedelta(days=2))
    assert not now.stale and later.stale


def test_job_api_shows_progress(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-a", CSV)
    job = harvest(app, add_folder_source(app, folder))
    client = app.test_client()
    body = client.get(f"/api/v1/harvest/jobs/{job.job_id}").get_json()["result"]
    assert (body["status"], body["total"], body["done"]) == ("done", 1, 1)
    assert body["counts"]["added"] == 1
    assert client.get(f"/harvest/job/{job.job_id}").status_code == 200
    missing = client.get("/api/v1/harvest/jobs/999999")
    assert missing.status_code == 404 and missing.get_json()["ok"] is False
