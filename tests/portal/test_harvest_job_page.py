"""A job's page: counts for everyone, each item and what became of it for its source's managers."""

from __future__ import annotations

from typing import Any

from flask import Flask

from portal import db
from portal.models import Role
from portal.services.organizations import ensure_organization
from tests.portal.access_fixtures import client_for, make_app, make_user
from tests.portal.helpers import add_folder_source, harvest, write_dataset

GOOD = "tanggal,komoditas,harga\n2024-01-02,Beras,13000\n"
BAD = GOOD + "2024-01-03,Gula,mahal\n"  # a text in a number column: quarantined


def _job_page(app: Flask, tmp_path: Any) -> str:
    folder = tmp_path / "src"
    write_dataset(folder, "harga-beras", GOOD)
    write_dataset(folder, "harga-gula", BAD)
    job = harvest(app, add_folder_source(app, folder, trusted=False))
    return f"/harvest/job/{job.job_id}"


def test_managers_see_each_item_and_its_version_the_public_sees_counts(app_factory, tmp_path):
    app = make_app(app_factory, tmp_path)
    url = _job_page(app, tmp_path)
    with app.app_context(), db.transaction() as session:
        ensure_organization(session, name="dinas-lain", title="Dinas Lain")
    producer = client_for(app, make_user(app, "produsen", Role.PRODUCER, ("dinas-uji",)))
    stranger = client_for(app, make_user(app, "produsen-lain", Role.PRODUCER, ("dinas-lain",)))

    page = producer.get(url).get_data(as_text=True)
    assert "harga-beras" in page and "harga-gula" in page
    assert "menunggu tinjauan" in page  # the clean one waits for a steward (untrusted source)
    assert "dikarantina" in page and "type-error" in page  # the broken one, and why
    assert 'href="/dataset/harga-gula"' in page  # its producers may open the quarantined draft

    for outsider in (app.test_client(), stranger):
        page = outsider.get(url).get_data(as_text=True)
        assert outsider.get(url).status_code == 200
        assert "harga-gula" not in page and "type-error" not in page  # counts only
