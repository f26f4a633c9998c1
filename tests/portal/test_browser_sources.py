"""In a real browser: a producer of an OPD adds a URL harvest source, tests it, runs it, pauses it.

The machinery is that of :mod:`tests.portal.test_browser` (Debian's chromium driven by Playwright,
the portal on a real werkzeug server with CSRF on, SQLite and PostgreSQL, screenshots when a step
fails); importing it also brings its module-level skip when chromium is missing and ``CI`` is not
set. The portal here allow-lists 127.0.0.1, where a second real HTTP server serves a copy of the
sample ``harga-bahan-pokok-2024-06.csv``. That server can hold its answers back (``Files.hold``),
so that the test sees the job page at work, then sees it update itself.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from portal import db
from portal.models import HarvestJob, HarvestSource, Role, Version, VersionStatus
from portal.services.organizations import ensure_organization
from tests.portal import test_browser
from tests.portal.access_fixtures import make_user, with_blueprints
from tests.portal.test_browser import STEP_MS, People, assert_signed_in, password_step

# the browser fixtures, shared; their ``portal_url`` serves the ``web`` defined below
playwright = test_browser.playwright
browser = test_browser.browser
portal_url = test_browser.portal_url
people = test_browser.people

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "datasets" / "diskumdag" / "harga-bahan-pokok-2024-06.csv"
METADATA = json.loads(SAMPLE.with_name("harga-bahan-pokok-2024-06.meta.json").read_text("utf-8"))
NAME = "harga-pasar"
TITLE = "Harga Bahan Pokok Pasar Tradisional"
RUN_MS = 30_000  # a whole harvest of the sample (1,200 rows checked against its schema)
STEP_S = STEP_MS / 1000
HOLD_S = 30  # the longest a held request of the file server waits to be let go


# --- the portal and the source's server ---------------------------------------------------


@pytest.fixture
def web(app_factory: Any) -> Iterator[Flask]:
    """The portal with CSRF on, the OPD ``dinas-uji`` and its local test server allow-listed.

    The real schemas of ``schemas/`` check the sample. Overrides ``web`` of test_browser, which
    ``portal_url`` serves. At the end it waits for the threads that "run now" started, so that
    none outlives the test's database.
    """
    app = with_blueprints(app_factory(WTF_CSRF_ENABLED=True, HARVEST_ALLOW_HOSTS="127.0.0.1"))
    assert app.config["WTF_CSRF_ENABLED"] is True
    with app.app_context(), db.transaction() as session:
        ensure_organization(session, name="dinas-uji", title="Dinas Uji")
    yield app
    for thread in threading.enumerate():
        if thread.name.startswith("run-now-"):
            thread.join(HOLD_S + 10)
            assert not thread.is_alive(), f"{thread.name} did not end"


@dataclass
class Files:
    """A local HTTP server of one folder; while ``hold`` is set, each GET waits for ``go``."""

    url: str
    hold: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)
    waiting: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def files(web: Flask, tmp_path: Path) -> Iterator[Files]:
    """A copy of the sample served on 127.0.0.1 (ended before ``web``, which waits for runs)."""
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copyfile(SAMPLE, folder / SAMPLE.name)
    state = Files(url="")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            if state.hold.is_set():
                state.waiting.set()
                state.go.wait(HOLD_S)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = False  # server_close() waits for each request thread
    thread = threading.Thread(target=server.serve_forever, name="files-test-server")
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/{SAMPLE.name}"
    try:
        yield state
    finally:
        state.go.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
        assert not thread.is_alive(), "the file server did not stop"


# --- steps --------------------------------------------------------------------------------


def sign_in_producer(web: Flask, people: People) -> Page:
    make_user(web, "produsen", Role.PRODUCER, ("dinas-uji",))
    page = people.open("producer")
    password_step(page, "produsen")  # a producer has no second step
    assert_signed_in(page, "produsen")
    return page


def open_new_source_form(page: Page) -> None:
    """From the source-health page, through the list of sources, to the empty form."""
    page.goto("/harvest")
    expect(page.get_by_role("heading", name="Kesehatan sumber data", level=1)).to_be_visible()
    page.get_by_role("link", name="Kelola sumber panen saya").click()
    expect(page).to_have_url(re.compile(r"/harvest/sources$"))
    expect(page.get_by_role("heading", name="Sumber panen saya", level=1)).to_be_visible()
    expect(page.get_by_text("Anda belum memiliki sumber panen.")).to_be_visible()
    page.get_by_role("link", name="Tambah sumber", exact=True).click()
    expect(page).to_have_url(re.compile(r"/harvest/sources/new$"))
    expect(page.get_by_role("heading", name="Tambah sumber panen", level=1)).to_be_visible()


def fill_source_form(page: Page, url: str, config: str) -> None:
    expect(page.get_by_label("OPD", exact=True)).to_have_value("dinas-uji")  # the only one
    page.get_by_label("Jenis", exact=True).select_option("url")
    page.get_by_label("URL (atau path folder, atau URL basis data)").fill(url)
    page.get_by_label("Nama (opsional; huruf, angka, dan tanda hubung)").fill(NAME)
    page.get_by_label("Judul", exact=True).fill(TITLE)
    page.get_by_label("Frekuensi pemutakhiran").select_option(label="bulanan")
    expect(page.get_by_label("Tepercaya", exact=False)).to_have_count(0)  # stewards only
    page.get_by_label("Konfigurasi (objek JSON)").fill(config)


def source_row(page: Page) -> Locator:
    row = page.get_by_role("row").filter(has_text=NAME)
    expect(row).to_have_count(1)
    return row


def job_field(page: Page, name: str) -> Locator:
    """A value of the job page that its script updates (``data-field``, ``data-count``)."""
    return page.locator(f"#job [data-field={name}], #job [data-count={name}]")


def versions_of(web: Flask, job_id: int) -> list[VersionStatus]:
    with web.app_context(), db.transaction() as session:
        job = session.get(HarvestJob, job_id)
        assert job is not None
        source = session.scalars(select(HarvestSource).where(HarvestSource.name == NAME)).one()
        assert job.source_id == source.id
        return list(session.scalars(select(Version.status)))


# --- scenarios ----------------------------------------------------------------------------


def test_producer_adds_tests_runs_pauses_and_resumes_a_url_source(
    web: Flask, files: Files, people: People
) -> None:
    page = sign_in_producer(web, people)
    with people.screenshots_on_failure():
        open_new_source_form(page)
        fill_source_form(page, files.url, json.dumps({"metadata": METADATA}, ensure_ascii=False))
        page.get_by_role("button", name="Tambah sumber", exact=True).click()
        expect(page).to_have_url(re.compile(r"/harvest/sources$"))
        expect(page.get_by_role("status")).to_have_text(f"Sumber {NAME} ditambahkan.")
        row = source_row(page)
        expect(row.get_by_role("link", name=TITLE)).to_be_visible()
        expect(row).to_contain_text("aktif")
        expect(row).to_contain_text("ditinjau walidata")  # a producer's source is not trusted
        expect(row).to_contain_text("belum pernah dijalankan")

        row.get_by_role("button", name="Uji koneksi").click()
        expect(page.get_by_role("status")).to_have_text(
            re.compile(rf"^{NAME} dapat dijangkau: 1 item ditemukan dalam \d+\.\d detik\.$")
        )

        # The file server holds the harvest's download: the job page shows the run going on,
        # then, once the file is let go, updates itself to the end without a reload.
        files.hold.set()
        source_row(page).get_by_role("button", name="Jalankan sekarang").click()
        expect(page).to_have_url(re.compile(r"/harvest/job/\d+$"))
        job_id = int(page.url.rsplit("/", 1)[1])
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Tugas panen {job_id} · {TITLE}")
        expect(page.get_by_role("status")).to_have_text(
            "Versi baru dari sumber ini menunggu tinjauan walidata sebelum terlihat oleh publik."
        )
        expect(job_field(page, "status")).to_have_text("sedang berjalan")
        assert files.waiting.wait(STEP_S), "the harvest never asked for the file"
        expect(job_field(page, "done")).to_have_text("0")
        files.go.set()
        expect(job_field(page, "status")).to_have_text("selesai", timeout=RUN_MS)
        expect(job_field(page, "done")).to_have_text("1")
        expect(job_field(page, "total")).to_have_text("1")
        expect(job_field(page, "added")).to_have_text("1")
        expect(job_field(page, "failed")).to_have_text("0")
        # clean, from an untrusted source: the version waits for a steward, the public sees none
        assert versions_of(web, job_id) == [VersionStatus.IN_REVIEW]

        page.get_by_role("link", name="Sumber panen saya").click()
        expect(page).to_have_url(re.compile(r"/harvest/sources$"))
        row = source_row(page)
        expect(row.get_by_role("link", name="selesai")).to_have_attribute(
            "href", f"/harvest/job/{job_id}"
        )
        row.get_by_role("button", name="Jeda").click()
        expect(page.get_by_role("status")).to_have_text(
            f"Sumber {NAME} dijeda: tidak dipanen sampai dilanjutkan."
        )
        row = source_row(page)
        expect(row).to_contain_text("dijeda")
        expect(row.get_by_role("button", name="Jeda")).to_have_count(0)
        row.get_by_role("button", name="Lanjutkan").click()
        expect(page.get_by_role("status")).to_have_text(f"Sumber {NAME} dilanjutkan.")
        row = source_row(page)
        expect(row).to_contain_text("aktif")
        expect(row.get_by_role("button", name="Jeda")).to_be_visible()


def test_invalid_json_is_shown_in_indonesian_and_the_input_is_kept(
    web: Flask, files: Files, people: People
) -> None:
    page = sign_in_producer(web, people)
    with people.screenshots_on_failure():
        open_new_source_form(page)
        typo = '{"metadata": {"title": "Harga"}'  # one closing brace short
        fill_source_form(page, files.url, typo)
        page.get_by_role("button", name="Tambah sumber", exact=True).click()

        expect(page).to_have_url(re.compile(r"/harvest/sources/new$"))
        expect(page.get_by_role("heading", name="Tambah sumber panen", level=1)).to_be_visible()
        expect(
            page.get_by_text(re.compile(r"^Konfigurasi bukan JSON yang sah: lihat baris 1, kolom "))
        ).to_be_visible()
        expect(page.get_by_label("Jenis", exact=True)).to_have_value("url")
        expect(page.get_by_label("URL (atau path folder, atau URL basis data)")).to_have_value(
            files.url
        )
        expect(page.get_by_label("Nama (opsional; huruf, angka, dan tanda hubung)")).to_have_value(
            NAME
        )
        expect(page.get_by_label("Judul", exact=True)).to_have_value(TITLE)
        expect(page.get_by_label("Frekuensi pemutakhiran")).to_have_value("bulanan")
        config = page.get_by_label("Konfigurasi (objek JSON)")
        expect(config).to_have_value(typo)

        config.fill(typo + "}")  # the user mends only what was wrong
        page.get_by_role("button", name="Tambah sumber", exact=True).click()
        expect(page).to_have_url(re.compile(r"/harvest/sources$"))
        expect(page.get_by_role("status")).to_have_text(f"Sumber {NAME} ditambahkan.")
        expect(source_row(page).get_by_role("link", name=TITLE)).to_be_visible()
        expect(source_row(page)).to_contain_text("bulanan")
