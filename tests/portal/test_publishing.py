"""Harvest → check → publish on a small folder source, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from portal import db
from portal.models import Dataset, DatasetState, JobStatus, Version, VersionStatus
from tests.portal.helpers import add_folder_source, fetch, harvest, write_dataset, write_schemas

CSV_V1 = "tanggal,komoditas,harga\n2024-01-02,Beras,13000\n2024-01-02,Gula,17500\n"
CSV_V2 = CSV_V1 + "2024-01-03,Beras,13100\n"


def _app(app_factory, tmp_path: Path):  # type: ignore[no-untyped-def]
    return app_factory(SCHEMAS_PATH=str(write_schemas(tmp_path / "schemas")))


def test_trusted_source_publishes_and_versions_accumulate(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    original = write_dataset(folder, "harga-pasar", CSV_V1)
    source = add_folder_source(app, folder)

    job = harvest(app, source)
    assert job.status is JobStatus.DONE
    assert job.counts["added"] == 1

    client = app.test_client()
    page = client.get("/dataset/harga-pasar")
    assert page.status_code == 200
    assert b"Beras" in page.data  # preview

    detail = client.get("/api/v1/datasets/harga-pasar").get_json()["result"]
    resource = detail["resources"][0]
    assert resource["current_version"] == 1
    status, data = fetch(client, f"/dataset/harga-pasar/resource/{resource['id']}/download")
    assert status == 200
    assert data == original.read_bytes()

    # unchanged file: no new version
    job = harvest(app, source)
    assert job.counts["unchanged"] == 1 and job.counts["added"] == 0
    # changed file: version 2, version 1 still downloadable byte for byte
    v1_bytes = original.read_bytes()
    original.write_text(CSV_V2, encoding="utf-8")
    job = harvest(app, source)
    assert job.counts["updated"] == 1
    detail = client.get("/api/v1/datasets/harga-pasar").get_json()["result"]
    assert detail["resources"][0]["current_version"] == 2
    assert [v["number"] for v in detail["resources"][0]["versions"]] == [2, 1]
    _, old = fetch(client, f"/dataset/harga-pasar/resource/{resource['id']}/download?version=1")
    assert old == v1_bytes
    csv = client.get(f"/dataset/harga-pasar/resource/{resource['id']}/download.csv")
    assert csv.status_code == 200
    assert csv.data.decode().splitlines() == [
        "tanggal,komoditas,harga",
        "2024-01-02,Beras,13000.0",
        "2024-01-02,Gula,17500.0",
        "2024-01-03,Beras,13100.0",
    ]


def test_invalid_version_is_quarantined_and_previous_stays_served(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    path = write_dataset(folder, "harga-pasar", CSV_V1)
    source = add_folder_source(app, folder)
    harvest(app, source)

    path.write_text(CSV_V1 + "2024-01-04,Beras,mahal\n2024-01-04,,-5\n", encoding="utf-8")
    job = harvest(app, source)
    assert job.counts["failed"] == 1
    assert job.counts["errors_by_type"] == {"check-failed": 1}

    client = app.test_client()
    detail = client.get("/api/v1/datasets/harga-pasar").get_json()["result"]
    assert detail["resources"][0]["current_version"] == 1
    assert [v["number"] for v in detail["resources"][0]["versions"]] == [1]
    rid = detail["resources"][0]["id"]
    assert client.get(f"/dataset/harga-pasar/resource/{rid}/download?version=2").status_code == 404
    with app.app_context():
        session = db.new_session()
        version = session.scalars(select(Version).where(Version.number == 2)).one()
        assert version.status is VersionStatus.QUARANTINED
        assert version.rows_key is None
        assert version.check_report["issues"], "the report is stored with the version"
        session.close()


def test_new_dataset_failing_checks_is_never_public(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-rusak", "tanggal,komoditas,harga\nkemarin,Beras,-1\n")
    harvest(app, add_folder_source(app, folder))
    client = app.test_client()
    assert client.get("/dataset/harga-rusak").status_code == 404
    assert client.get("/api/v1/datasets/harga-rusak").status_code == 404
    assert client.get("/api/v1/datasets").get_json()["count"] == 0
    assert b"harga-rusak" not in client.get("/dataset").data


def test_untrusted_source_waits_for_review(app_factory, tmp_path):
    from portal.services.access import OPERATOR
    from portal.services.publishing import pending_versions, publish_version

    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-pasar", CSV_V1)
    harvest(app, add_folder_source(app, folder, trusted=False))
    client = app.test_client()
    assert client.get("/dataset/harga-pasar").status_code == 404
    with app.app_context(), db.transaction() as session:
        dataset = session.scalars(select(Dataset)).one()
        assert dataset.state is DatasetState.IN_REVIEW
        (version,) = pending_versions(session)
        publish_version(session, OPERATOR, version)
    assert client.get("/dataset/harga-pasar").status_code == 200


def test_dry_run_changes_nothing(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-pasar", CSV_V1)
    job = harvest(app, add_folder_source(app, folder), dry_run=True)
    assert job.dry_run and job.counts["added"] == 1
    assert app.test_client().get("/api/v1/datasets").get_json()["count"] == 0
    assert not list((tmp_path / "storage").glob("originals/*/*"))


def test_missing_folder_fails_the_job_with_a_reason(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    job = harvest(app, add_folder_source(app, tmp_path / "nowhere"))
    assert job.status is JobStatus.FAILED
    assert "folder not found" in (job.error or "")


def test_bad_sidecar_fails_one_item_not_the_run(app_factory, tmp_path):
    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-pasar", CSV_V1)
    write_dataset(folder, "harga-lain", CSV_V1)
    (folder / "harga-lain.meta.json").write_text("{not json", encoding="utf-8")
    job = harvest(app, add_folder_source(app, folder))
    assert job.status is JobStatus.DONE
    assert job.counts["added"] == 1 and job.counts["failed"] == 1
    assert job.counts["errors_by_type"] == {"invalid-item": 1}


def test_windows_1252_semicolons_and_indonesian_numbers(app_factory, tmp_path):
    """An OPD spreadsheet export: cp1252, `;`, `1.234.567` and `12,5` — read right, kept whole."""
    app = _app(app_factory, tmp_path)
    folder = tmp_path / "src"
    write_dataset(folder, "harga-pasar", "")
    original = "tanggal;komoditas;harga\n2024-01-02;Kopi Arabika (Aceh) – café;1.234.567\n"
    original += "2024-01-02;Cabai;12,5\n"
    (folder / "harga-pasar.csv").write_bytes(original.encode("cp1252"))
    job = harvest(app, add_folder_source(app, folder))
    assert job.counts["added"] == 1, job
    client = app.test_client()
    rid = client.get("/api/v1/datasets/harga-pasar").get_json()["result"]["resources"][0]["id"]
    _, data = fetch(client, f"/dataset/harga-pasar/resource/{rid}/download")
    assert data == original.encode("cp1252")
    _, csv = fetch(client, f"/dataset/harga-pasar/resource/{rid}/download.csv")
    assert csv.decode("utf-8").splitlines()[1:] == [
        "2024-01-02,Kopi Arabika (Aceh) – café,1234567.0",
        "2024-01-02,Cabai,12.5",
    ]
