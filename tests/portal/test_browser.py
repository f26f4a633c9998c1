"""In a real browser: a steward signs in with TOTP, a member requests access to restricted data.

Playwright (sync API) drives Debian's chromium (``/usr/bin/chromium``, ``make browser``); no
browser is ever downloaded and nothing leaves the machine. The portal is served by a real
werkzeug server on 127.0.0.1 with CSRF protection on, on SQLite and on PostgreSQL (the
``app_factory`` fixture). Pages are in Bahasa Indonesia, the default language, and are found by
role and label with their Indonesian texts. When a step fails, a screenshot of every open page
is saved in the test's ``tmp_path`` and its path is added to the failure.

Without chromium the module is skipped, unless ``CI`` is set: then it fails.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from werkzeug.serving import ThreadedWSGIServer, make_server

from portal.models import Role
from tests.portal.access_fixtures import PASSWORD, make_app, make_catalog, make_user

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

MISSING: str | None = None
if not os.access(CHROMIUM, os.X_OK):
    MISSING = (
        f"Debian chromium is not installed at {CHROMIUM} (`make browser` installs it); "
        "the browser tests drive it with Playwright and never download a browser"
    )
if MISSING and not os.environ.get("CI"):
    pytest.skip(MISSING, allow_module_level=True)

PURPOSE = "Penelitian skripsi tentang harga bahan pokok di pasar-pasar Kota Pontianak."
RESTRICTED = "harga-terbatas"  # "Harga Terbatas", restricted, of access_fixtures.make_catalog
TITLE = "Harga Terbatas"
STEP_MS = 10_000  # time allowed to each browser action


# --- the server and the browser -----------------------------------------------------------


@pytest.fixture
def web(app_factory: Callable[..., Flask], tmp_path: Path) -> Flask:
    """The portal with CSRF on and the sample catalog of ``dinas-uji`` harvested."""
    app = make_app(app_factory, tmp_path, WTF_CSRF_ENABLED=True)
    assert app.config["WTF_CSRF_ENABLED"] is True
    make_catalog(app, tmp_path)
    return app


@pytest.fixture
def portal_url(web: Flask) -> Iterator[str]:
    """The portal served on a free local port, for the length of one test."""
    server = make_server("127.0.0.1", 0, web, threaded=True)
    assert isinstance(server, ThreadedWSGIServer)
    # Track request threads so that server_close() waits for each to end (the browser, closed
    # first, has dropped its keep-alive connections): none outlives the test's database.
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, name="portal-test-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        assert not thread.is_alive(), "the test server did not stop"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if MISSING:  # CI is set: each test of this module fails, the rest of the run goes on
        pytest.fail(f"{MISSING} (CI is set: the browser tests must run)", pytrace=False)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright: Playwright, portal_url: str) -> Iterator[Browser]:
    """Debian's chromium, closed before the server stops (it depends on ``portal_url``)."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


class People:
    """One browser context (own cookies) per person, and screenshots when a step fails."""

    def __init__(self, browser: Browser, base_url: str, folder: Path) -> None:
        self.browser = browser
        self.base_url = base_url
        self.folder = folder
        self.contexts: list[BrowserContext] = []
        self.pages: dict[str, Page] = {}

    def open(self, who: str) -> Page:
        context = self.browser.new_context(base_url=self.base_url, accept_downloads=True)
        context.set_default_timeout(STEP_MS)
        self.contexts.append(context)
        page = self.pages[who] = context.new_page()
        return page

    @contextmanager
    def screenshots_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            for who, page in self.pages.items():
                path = self.folder / f"failure-{who}.png"
                try:
                    page.screenshot(path=str(path), full_page=True)
                except Exception as problem:  # the page may be gone: keep the first error
                    exc.add_note(f"no screenshot of {who}'s page: {problem}")
                else:
                    exc.add_note(f"screenshot of {who}'s page ({page.url}): {path}")
            raise

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def people(browser: Browser, portal_url: str, tmp_path: Path) -> Iterator[People]:
    crowd = People(browser, portal_url, tmp_path)
    try:
        yield crowd
    finally:
        crowd.close()


# --- steps --------------------------------------------------------------------------------


def header(page: Page) -> Locator:
    """The account part of the page header (``<nav aria-label="Akun">``)."""
    return page.get_by_role("navigation", name="Akun")


def password_step(page: Page, username: str) -> None:
    page.goto("/login")
    expect(page.get_by_role("heading", name="Masuk", exact=True)).to_be_visible()
    page.get_by_label("Nama pengguna").fill(username)
    page.get_by_label("Kata sandi", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Masuk", exact=True).click()


def log_out(page: Page) -> None:
    header(page).get_by_role("button", name="Keluar").click()
    expect(header(page).get_by_role("link", name="Masuk", exact=True)).to_be_visible()


def assert_signed_in(page: Page, username: str) -> None:
    expect(header(page).get_by_text(username, exact=True)).to_be_visible()
    expect(header(page).get_by_role("button", name="Keluar")).to_be_visible()


def enrol_steward(page: Page, username: str) -> tuple[str, str]:
    """Sign in with the password, enrol TOTP from the key shown as text.

    :returns: the key and the code that confirmed the enrolment.
    """
    password_step(page, username)
    expect(page).to_have_url(re.compile(r"/login/2fa/setup$"))
    expect(page.get_by_role("heading", name="Siapkan verifikasi dua langkah")).to_be_visible()
    expect(page.get_by_role("img", name="Kode QR untuk aplikasi autentikator")).to_be_visible()
    expect(header(page).get_by_role("link", name="Masuk", exact=True)).to_be_visible()
    key = page.get_by_text("Tidak bisa memindai?").locator("code")
    secret = key.inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    code = pyotp.TOTP(secret).now()
    page.get_by_label("Kode", exact=True).fill(code)
    page.get_by_role("button", name="Aktifkan verifikasi dua langkah").click()
    expect(page.get_by_role("heading", name="Kode pemulihan Anda")).to_be_visible()
    expect(page.locator("ul.recovery-codes li")).to_have_count(10)
    expect(page.locator("ul.recovery-codes code").first).to_have_text(
        re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$")
    )
    page.get_by_role("link", name="Saya sudah menyimpan kode pemulihan").click()
    assert_signed_in(page, username)
    return secret, code


def open_steward_page(page: Page) -> None:
    header(page).get_by_role("link", name="Permintaan akses", exact=True).click()
    expect(page).to_have_url(re.compile(r"/workspace/access-requests$"))
    expect(page.get_by_role("heading", name="Permintaan akses", exact=True)).to_be_visible()


# --- scenarios ----------------------------------------------------------------------------


def test_steward_enrols_totp_then_signs_in_with_a_fresh_code(web: Flask, people: People) -> None:
    make_user(web, "walidata", Role.STEWARD)  # a password, no TOTP yet
    page = people.open("steward")
    with people.screenshots_on_failure():
        secret, used = enrol_steward(page, "walidata")
        open_steward_page(page)
        expect(page.get_by_text("Tidak ada permintaan yang menunggu.")).to_be_visible()

        log_out(page)
        page.goto("/workspace/access-requests")  # signed out: back to the sign-in page
        expect(page).to_have_url(re.compile(r"/login\?next="))

        password_step(page, "walidata")
        expect(page).to_have_url(re.compile(r"/login/2fa$"))
        expect(page.get_by_role("heading", name="Verifikasi dua langkah")).to_be_visible()
        expect(header(page).get_by_role("link", name="Masuk", exact=True)).to_be_visible()
        page.get_by_label("Kode", exact=True).fill(used)  # the enrolment code: used already
        page.get_by_role("button", name="Konfirmasi").click()
        expect(page.get_by_role("alert")).to_contain_text("Kode salah atau sudah dipakai")
        # A fresh code: the app accepts the next 30-s step (clock drift), each step once, and
        # the step after "now" was never used, so there is no need to wait for it.
        page.get_by_label("Kode", exact=True).fill(pyotp.TOTP(secret).at(time.time() + 30))
        page.get_by_role("button", name="Konfirmasi").click()
        assert_signed_in(page, "walidata")
        open_steward_page(page)


def test_member_requests_access_and_gets_the_data_once_granted(web: Flask, people: People) -> None:
    make_user(web, "walidata", Role.STEWARD)
    member = people.open("member")
    with people.screenshots_on_failure():
        # registration signs the new member in; then out and in again with the password
        member.goto("/")
        header(member).get_by_role("link", name="Daftar").click()
        expect(member.get_by_role("heading", name="Buat akun")).to_be_visible()
        member.get_by_label("Nama pengguna").fill("peneliti")
        member.get_by_label("Alamat e-mail").fill("peneliti@example.org")
        member.get_by_label("Kata sandi", exact=True).fill(PASSWORD)
        member.get_by_label("Ulangi kata sandi").fill(PASSWORD)
        member.get_by_role("button", name="Buat akun").click()
        expect(member.get_by_text("Selamat datang! Akun Anda sudah siap.")).to_be_visible()
        assert_signed_in(member, "peneliti")
        log_out(member)
        password_step(member, "peneliti")  # a member needs no second step
        assert_signed_in(member, "peneliti")

        # the restricted dataset: description for everyone, data only once granted
        member.goto(f"/dataset/{RESTRICTED}")
        expect(member.get_by_role("heading", name=TITLE, level=1)).to_be_visible()
        expect(member.get_by_role("heading", name="Data terbatas")).to_be_visible()
        expect(member.get_by_role("heading", name="Pratinjau")).to_have_count(0)
        expect(member.get_by_role("cell", name="Beras")).to_have_count(0)
        expect(member.get_by_role("link", name=re.compile(r"^Unduh"))).to_have_count(0)
        member.get_by_role("link", name="Minta akses", exact=True).click()

        expect(member.get_by_role("heading", name="Minta akses")).to_be_visible()
        member.get_by_label("Tujuan").fill(PURPOSE)
        member.get_by_role("button", name="Kirim permintaan").click()
        expect(member).to_have_url(re.compile(r"/account/requests$"))
        expect(member.get_by_role("status")).to_have_text(
            "Permintaan Anda telah dikirim ke Walidata."
        )
        row = member.get_by_role("row").filter(has_text=TITLE)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Menunggu")
        member.goto(f"/dataset/{RESTRICTED}")
        expect(
            member.get_by_text("Permintaan Anda sedang menunggu keputusan Walidata.")
        ).to_be_visible()
        expect(member.get_by_role("link", name="Minta akses", exact=True)).to_have_count(0)

        # the steward, in a browser of their own, grants it (the expiry field is prefilled)
        steward = people.open("steward")
        enrol_steward(steward, "walidata")
        open_steward_page(steward)
        card = steward.locator("section.card").filter(has_text="peneliti")
        expect(card).to_contain_text(PURPOSE)
        expect(card.get_by_label("Akses hingga")).not_to_have_value("")
        card.get_by_role("button", name="Berikan", exact=True).click()
        expect(steward.get_by_role("status")).to_have_text("Akses diberikan kepada peneliti.")
        expect(steward.get_by_text("Tidak ada permintaan yang menunggu.")).to_be_visible()
        expect(steward.get_by_role("row").filter(has_text="peneliti")).to_have_count(1)

        # the member now reads the data: preview rows, download buttons, the file itself
        member.goto(f"/dataset/{RESTRICTED}")
        expect(
            member.get_by_text("Anda telah diberi akses ke data pada kumpulan data ini.")
        ).to_be_visible()
        expect(member.get_by_role("heading", name="Pratinjau")).to_be_visible()
        expect(member.get_by_role("cell", name="Beras", exact=True)).to_be_visible()
        download = member.get_by_role("link", name=re.compile(r"^Unduh berkas asli"))
        expect(download).to_be_visible()
        with member.expect_download() as started:
            download.click()
        saved = Path(started.value.path())
        assert "Beras,13000" in saved.read_text(encoding="utf-8")

        member.goto("/account/requests")
        expect(member.get_by_role("row").filter(has_text=TITLE)).to_contain_text("Diberikan")
