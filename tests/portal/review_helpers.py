"""Builders of the review and event-catalogue tests: the ``onedata`` command on a test's app,
the log's records, and a folder source whose datasets wait for review."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from portal import db
from portal.models.events import SecurityEvent
from tests.portal.cli_helpers import Invoke, command_runner
from tests.portal.helpers import add_folder_source, harvest, write_dataset

ROOT = Path(__file__).resolve().parents[2]
PII_SAMPLE = ROOT / "datasets" / "dinsos" / "penerima-bansos-2024"
KEY = "k" * 40  # the log's checkpoint key in these tests
CSV = "tanggal,komoditas,harga\n2024-01-02,Beras,13000\n2024-01-02,Gula,17500\n"
BAD_CSV = CSV + "2024-01-04,Beras,mahal\n"  # a type error: quarantined, may be overridden



@contextmanager
def onedata(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Run ``onedata …`` (the installed command's group) against ``app``'s database and files."""
    from portal.cli import main

    env = {
        "ONEDATA_STORAGE_URL": str(app.config["STORAGE_URL"]),
        "ONEDATA_SCHEMAS_PATH": str(app.config["SCHEMAS_PATH"]),
        "ONEDATA_LOG_HMAC_KEY": KEY,
    }
    folder = Path(app.instance_path).parent
    with command_runner(app, folder, monkeypatch, main, env) as invoke:
        yield invoke


def events(app: Flask, tag: str | None = None, after: int = 0) -> list[SecurityEvent]:
    """The log's records (of ``tag``, after ``seq``), oldest first, detached."""
    with app.app_context(), db.transaction() as session:
        query = select(SecurityEvent).where(SecurityEvent.seq > after).order_by(SecurityEvent.seq)
        if tag is not None:
            query = query.where(SecurityEvent.tag == tag)
        found = list(session.scalars(query))
        session.expunge_all()
        return found


def last_seq(app: Flask) -> int:
    found = events(app)
    return found[-1].seq if found else 0


def harvest_folder(
    app: Flask, folder: Path, files: dict[str, str], *, trusted: bool, name: str = "uji"
) -> str:
    """Write ``files`` (slug → CSV) as datasets of ``dinas-uji`` and harvest them once."""
    for slug, text in files.items():
        write_dataset(folder, slug, text)
    source = add_folder_source(app, folder, trusted=trusted, name=name)
    job = harvest(app, source)
    assert job.error is None, job.error
    return source


def harvest_pii_sample(app: Flask, folder: Path) -> None:
    """Harvest the sample list of (fake) aid recipients with NIK, No. KK and phone numbers."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".csv", ".meta.json"):
        shutil.copyfile(PII_SAMPLE.with_suffix(suffix), folder / (PII_SAMPLE.name + suffix))
    job = harvest(app, add_folder_source(app, folder, name="dinsos"))
    assert job.error is None and job.counts["failed"] == 1, job
