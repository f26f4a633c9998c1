"""A steward's decisions (approve, reject, override, withdraw, edit), downloads of non-public
data and unexpected errors: the rules, and the records each leaves in the security log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text, update

from portal import db
from portal.errors import Conflict, Forbidden, Invalid
from portal.models import Dataset, DatasetState, Role, Version, VersionStatus, utcnow
from portal.services import accounts
from portal.services.access import OPERATOR, Actor
from portal.services.events import EventTag, record_event
from portal.services.publishing import pending_versions, publish_version, reject_version
from portal.services.review import edit_dataset_metadata, override_version, withdraw_dataset
from tests.portal.access_fixtures import client_for, make_app, make_catalog, make_user
from tests.portal.helpers import fetch, harvest, write_dataset
from tests.portal.review_helpers import (
    BAD_CSV,
    CSV,
    events,
    harvest_folder,
    harvest_pii_sample,
    last_seq,
    onedata,
)

PRODUCER = Actor(id="9", role=Role.PRODUCER)


@pytest.fixture
def app(app_factory: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(app_factory, tmp_path)


def _dataset(session: Any, name: str = "harga-pasar") -> Dataset:
    return session.scalars(select(Dataset).where(Dataset.name == name)).one()


def _version(session: Any, status: VersionStatus) -> Version:
    return session.scalars(select(Version).where(Version.status == status)).one()


def _summary(app: Flask, after: int = 0) -> list[tuple[str, str | None, str | None]]:
    return [(e.tag, e.actor_id, e.object_type) for e in events(app, after=after)]


def test_approving_records_approve_then_publish_and_only_staff_may(app, tmp_path, monkeypatch):
    harvest_folder(app, tmp_path / "src", {"harga-pasar": CSV}, trusted=False)
    submitted = events(app, EventTag.REVIEW_DATASET_SUBMIT)
    assert [(e.actor_id, e.object_type, e.details["dataset"]) for e in submitted] == [
        ("harvester", "version", "harga-pasar")
    ]
    with app.app_context(), db.transaction() as session:
        (version,) = pending_versions(session)
        for actor in (PRODUCER, Actor(id="8", role=Role.MEMBER)):  # producers never publish
            with pytest.raises(Forbidden):
                publish_version(session, actor, version)
    before = last_seq(app)
    with onedata(app, monkeypatch) as invoke:
        result = invoke("review", "approve", "harga-pasar", "--note", "Sesuai.")
    assert result.exit_code == 0, result.output
    assert _summary(app, before) == [
        ("review:version:approve", "cli", "version"),
        ("review:version:publish", "cli", "version"),
    ]
    assert events(app, EventTag.REVIEW_VERSION_APPROVE)[0].details["note"] == "Sesuai."
    assert app.test_client().get("/dataset/harga-pasar").status_code == 200


def test_a_trusted_source_publishes_as_the_harvester_without_an_approval(app, tmp_path):
    harvest_folder(app, tmp_path / "src", {"harga-pasar": CSV}, trusted=True)
    tags = [e.tag for e in events(app)]
    assert "review:version:approve" not in tags and "review:dataset:submit" not in tags
    [published] = events(app, EventTag.REVIEW_VERSION_PUBLISH)
    assert published.actor_id == "harvester" and published.details["version"] == 1


def test_rejecting_needs_a_reason_and_the_log_keeps_its_start(app, tmp_path, monkeypatch):
    harvest_folder(app, tmp_path / "src", {"harga-pasar": CSV}, trusted=False)
    with app.app_context(), db.transaction() as session:
        (version,) = pending_versions(session)
        with pytest.raises(Invalid):
            reject_version(session, OPERATOR, version, "  ")
        with pytest.raises(Forbidden):
            reject_version(session, PRODUCER, version, "tidak")
    reason = "Satuan harga tidak jelas. " * 40
    with onedata(app, monkeypatch) as invoke:
        assert invoke("review", "reject", "harga-pasar", "--reason", reason).exit_code == 0
        again = invoke("review", "reject", "harga-pasar", "--reason", "lagi")
    assert again.exit_code == 1 and "waiting for review" in again.output
    [rejected] = events(app, EventTag.REVIEW_VERSION_REJECT)
    assert rejected.actor_id == "cli" and rejected.details["reason"] == reason.strip()[:300]
    with app.app_context(), db.transaction() as session:
        assert _version(session, VersionStatus.REJECTED).note == reason.strip()


def test_override_publishes_a_quarantined_original_with_a_reason(app, tmp_path, monkeypatch):
    harvest_folder(app, tmp_path / "src", {"harga-pasar": BAD_CSV}, trusted=False)
    with app.app_context(), db.transaction() as session:
        version = _version(session, VersionStatus.QUARANTINED)
        with pytest.raises(Invalid):
            override_version(session, OPERATOR, version, "")
        with pytest.raises(Forbidden):
            override_version(session, PRODUCER, version, "alasan")
    before = last_seq(app)
    with onedata(app, monkeypatch) as invoke:
        result = invoke("review", "override", "harga-pasar", "--reason", "Sel teks dikoreksi.")
        assert result.exit_code == 0, result.output
        again = invoke("review", "override", "harga-pasar", "--reason", "lagi")
    assert again.exit_code == 1 and "quarantined" in again.output
    assert _summary(app, before) == [
        ("review:version:override", "cli", "version"),
        ("review:version:publish", "cli", "version"),
    ]
    [override] = events(app, EventTag.REVIEW_VERSION_OVERRIDE)
    assert override.severity == "warning" and override.details["by_type"] == [["type-error", 1]]
    assert override.details["reason"] == "Sel teks dikoreksi."
    client = app.test_client()
    rid = client.get("/api/v1/datasets/harga-pasar").get_json()["result"]["resources"][0]["id"]
    status, body = fetch(client, f"/dataset/harga-pasar/resource/{rid}/download")
    assert status == 200 and body == BAD_CSV.encode()
    assert fetch(client, f"/dataset/harga-pasar/resource/{rid}/download.csv")[0] == 404


def test_personal_data_can_never_be_overridden(app_factory, tmp_path, monkeypatch):
    app = app_factory(WTF_CSRF_ENABLED=False)  # the city's own schemas, for the sample
    harvest_pii_sample(app, tmp_path / "dinsos")
    with app.app_context(), db.transaction() as session:
        version = _version(session, VersionStatus.QUARANTINED)
        with pytest.raises(Conflict, match="personal data"):
            override_version(session, OPERATOR, version, "Saya yakin.")
    with onedata(app, monkeypatch) as invoke:
        result = invoke("review", "override", "penerima-bansos-2024", "--reason", "Saya yakin.")
    assert result.exit_code == 1 and "can never be published" in result.output
    assert events(app, EventTag.REVIEW_VERSION_OVERRIDE) == []
    assert events(app, EventTag.REVIEW_VERSION_PUBLISH) == []


def test_withdraw_hides_a_dataset_and_needs_a_reason(app, tmp_path, monkeypatch):
    harvest_folder(app, tmp_path / "src", {"harga-pasar": CSV}, trusted=True)
    with app.app_context(), db.transaction() as session:
        with pytest.raises(Forbidden):
            withdraw_dataset(session, PRODUCER, _dataset(session), "x")
        with pytest.raises(Invalid):
            withdraw_dataset(session, OPERATOR, _dataset(session), " ")
    with onedata(app, monkeypatch) as invoke:
        assert invoke("review", "withdraw", "harga-pasar", "--reason", "Diganti.").exit_code == 0
        twice = invoke("review", "withdraw", "harga-pasar", "--reason", "Lagi.")
        missing = invoke("review", "withdraw", "tidak-ada", "--reason", "x")
    assert twice.exit_code == 1 and "not published" in twice.output
    assert missing.exit_code == 1 and "not found" in missing.output
    assert app.test_client().get("/dataset/harga-pasar").status_code == 404
    [withdrawn] = events(app, EventTag.REVIEW_DATASET_WITHDRAW)
    assert (withdrawn.actor_id, withdrawn.details["reason"]) == ("cli", "Diganti.")


def test_a_withdrawn_dataset_comes_back_only_through_review(app, tmp_path, monkeypatch):
    folder = tmp_path / "src"
    source = harvest_folder(app, folder, {"harga-pasar": CSV}, trusted=True)
    with onedata(app, monkeypatch) as invoke:
        assert invoke("review", "withdraw", "harga-pasar", "--reason", "Salah.").exit_code == 0
    write_dataset(folder, "harga-pasar", CSV + "2024-01-03,Beras,13100\n")
    harvest(app, source)
    assert app.test_client().get("/dataset/harga-pasar").status_code == 404
    with app.app_context(), db.transaction() as session:
        assert _dataset(session).state is DatasetState.WITHDRAWN
        assert [v.number for v in pending_versions(session)] == [2]


def test_the_harvest_grace_withdrawal_is_logged_as_the_harvester(app, tmp_path):
    folder = tmp_path / "src"
    source = harvest_folder(app, folder, {"harga-a": CSV, "harga-b": CSV}, trusted=True)
    (folder / "harga-b.csv").unlink()
    with app.app_context(), db.transaction() as session:
        session.execute(
            update(Dataset)
            .where(Dataset.name == "harga-b")
            .values(last_seen_at=utcnow() - timedelta(days=8))
        )
    assert harvest(app, source).counts["withdrawn"] == 1
    [withdrawn] = events(app, EventTag.REVIEW_DATASET_WITHDRAW)
    assert withdrawn.actor_id == "harvester"
    assert withdrawn.details["dataset"] == "harga-b"
    assert withdrawn.details["reason"] == "missing-at-source"


def test_metadata_edits_are_validated_and_logged_without_long_or_personal_text(
    app, tmp_path, monkeypatch
):
    harvest_folder(app, tmp_path / "src", {"harga-pasar": CSV}, trusted=True)
    with app.app_context(), db.transaction() as session:
        with pytest.raises(Forbidden):
            edit_dataset_metadata(session, PRODUCER, _dataset(session), {"title": "X"})
        with pytest.raises(Invalid) as refused:
            edit_dataset_metadata(
                session,
                OPERATOR,
                _dataset(session),
                {"title": " ", "frequency": "sering", "coverage_code": "61-71", "nik": "1"},
            )
        assert sorted(e["field"] for e in refused.value.errors) == [
            "coverage_code",
            "frequency",
            "nik",
            "title",
        ]
        assert _dataset(session).title == "Harga Pasar"  # nothing changed
    with onedata(app, monkeypatch) as invoke:
        result = invoke(
            "review", "edit", "harga-pasar",
            "--set", "title=Harga Pangan Harian", "--set", "access_level=restricted",
            "--set", "tags=Pangan, harga", "--set", "contact=Budi, 0812 3456 7890",
            "--set", "frequency=harian",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        same = invoke("review", "edit", "harga-pasar", "--set", "title=Harga Pangan Harian")
        bad = invoke("review", "edit", "harga-pasar", "--set", "access_level=rahasia")
        malformed = invoke("review", "edit", "harga-pasar", "--set", "judul")
    assert "no change" in same.output
    assert bad.exit_code == 1 and "access_level" in bad.output
    assert malformed.exit_code == 2
    [edit] = events(app, EventTag.REVIEW_DATASET_EDIT)
    assert edit.actor_id == "cli" and edit.object_type == "dataset"
    assert edit.details["fields"] == ["access_level", "contact", "frequency", "tags", "title"]
    assert edit.details["changes"] == {
        "access_level": ["public", "restricted"],
        "frequency": [None, "harian"],
        "tags": [[], ["harga", "pangan"]],
        "title": ["Harga Pasar", "Harga Pangan Harian"],
    }
    assert "0812" not in repr(edit.details)
    with app.app_context(), db.transaction() as session:
        dataset = _dataset(session)
        assert dataset.access_level.value == "restricted" and dataset.contact.startswith("Budi")


def test_a_stewards_edits_outlive_later_harvests(app, tmp_path):
    """What a steward set (a stricter access level, a better title) is not undone by the
    source's own metadata at the next harvest; the fields the steward left alone still follow
    the source."""
    folder = tmp_path / "src"
    source = harvest_folder(app, folder, {"harga-pasar": CSV}, trusted=True)
    with app.app_context(), db.transaction() as session:
        changed = edit_dataset_metadata(
            session,
            OPERATOR,
            _dataset(session),
            {"title": "Harga Pangan Harian", "access_level": "restricted"},
        )
        assert changed == ["access_level", "title"]
    # the OPD changes its file and its sidecar: a new title, public again, a new period
    write_dataset(
        folder, "harga-pasar", CSV + "2024-01-03,Beras,13100\n", access_level="public",
        period="2024", title="Harga Pasar (revisi)",
    )  # fmt: skip
    job = harvest(app, source)
    assert job.counts["updated"] == 1, job
    with app.app_context(), db.transaction() as session:
        dataset = _dataset(session)
        assert dataset.title == "Harga Pangan Harian"
        assert dataset.access_level.value == "restricted"
        assert dataset.period == "2024"  # not edited by the steward: follows the source
        assert dataset.curated_fields == ["access_level", "title"]


def test_only_downloads_of_non_public_data_are_logged(app, tmp_path):
    catalog = make_catalog(app, tmp_path)
    steward_id = make_user(app, "walidata", Role.STEWARD)
    steward = client_for(app, steward_id)
    anonymous = app.test_client()
    before = last_seq(app)
    assert fetch(anonymous, catalog.download("harga-publik"))[0] == 200
    assert fetch(steward, catalog.download("harga-publik") + ".csv")[0] == 200
    assert fetch(anonymous, catalog.download("harga-terbatas"))[0] == 404
    assert events(app, after=before) == []
    assert fetch(steward, catalog.download("harga-terbatas"))[0] == 200
    assert fetch(steward, catalog.download("harga-internal") + ".csv")[0] == 200
    logged = events(app, after=before)
    assert [
        (e.tag, e.actor_id, e.details["access_level"], e.details["format"]) for e in logged
    ] == [
        ("data:dataset:download", str(steward_id), "restricted", "csv"),
        ("data:dataset:export", str(steward_id), "internal", "csv"),
    ]
    assert all(e.request_id and e.path and e.status == 200 for e in logged)


def _boom_app(app: Flask) -> Flask:
    @app.get("/api/v1/_boom")
    def boom() -> str:
        from portal.db import get_session
        from portal.identity import current_actor

        # the request knows its actor and has written to the log (holding its head) before it fails
        actor = current_actor()
        record_event(get_session(), EventTag.HARVEST_RUN_START, actor=actor, details={"x": 1})
        raise RuntimeError("secret detail: postgresql://user:pw@db NIK 6171050503789901")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_an_unexpected_error_is_logged_by_type_and_its_work_rolled_back(app):
    _boom_app(app)
    with app.app_context(), db.transaction() as session:
        user = accounts.create_user(session, username="peneliti", password="p" * 12)
        secret = accounts.issue_token(session, user, name="t", scopes=["read"]).secret
    response = app.test_client().get(
        "/api/v1/_boom", headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "req-42"}
    )
    assert response.status_code == 500 and b"secret detail" not in response.data
    [error] = events(app, EventTag.SYSTEM_ERROR_UNEXPECTED)
    assert error.details == {"exception": "RuntimeError"}
    assert (error.request_id, error.status, error.object_id) == ("req-42", 500, "boom")
    assert error.actor_id == str(user.id) and error.outcome == "failure"
    assert "secret detail" not in repr(error.__dict__) and "6171050503789901" not in repr(
        error.__dict__
    )
    assert events(app, EventTag.HARVEST_RUN_START) == []  # the failed request's work is gone


def test_a_broken_log_still_gives_the_generic_error_page(app, caplog):
    _boom_app(app)
    engine = app.extensions["onedata.engine"]
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE security_log_head RENAME TO security_log_head_gone"))
    try:
        response = app.test_client().get("/api/v1/_boom")
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE security_log_head_gone RENAME TO security_log_head"))
    assert response.status_code == 500
    assert response.get_json()["errors"][0]["code"] == "internal_error"
    assert "could not record the unexpected error" in caplog.text
