"""harvesters.ckan against a real local HTTP server replaying recorded CKAN exchanges.

The server answers only what is recorded (by action and exact parameters, or any parameters
where a recording says so); any other request is an error the test reports. The real CKAN
2.12 recordings (search index down) drive the fallback; the successful ``package_search``
shapes and the paging edge cases are in ``data/ckan/`` (see its README).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import openpyxl
import pytest

from harvesters.base import HarvestedItem, HarvestResult, ItemOutcome, ItemResult, SourceConfig
from harvesters.ckan import CkanHarvester, CkanItem, frequency, map_metadata, resource_format
from harvesters.http import FetchPolicy

DATA = Path(__file__).parent / "data" / "ckan"
REC = "ckan-2.12"
RECORDED_HOST = "http://ckan.example"
ACTION = re.compile(r"^/api(?:/3)?/action/([A-Za-z_]+)$")
FASKES = "5a7e3c10-6d2b-4f8e-b1a9-0c4d7e2f9a31"
PRIVATE = "c0ffee00-1111-4222-8333-444455556666"
FASKES_XLSX = (
    f"/dataset/{FASKES}/resource/5a7e3c10-0001-4000-8000-000000000001/download/faskes_2024.xlsx"
)
LINKS = {
    "/files/perekaman_ktp_el_2023.csv": "18-link-file-perekaman_ktp_el_2023.csv",
    "/files/rekap_metode_pemilihan_2024.csv": "23-link-file-rekap_metode_pemilihan_2024.csv",
}
SHOWS = [
    "07-package-show-jumlah-penduduk-per-kecamatan-kota-pontianak-2023.json",
    "10-package-show-paket-pengadaan-barang-jasa-ta-2024.json",
    "13-package-show-penduduk-menurut-kelompok-umur-kota-pontianak-2023.json",
    "16-package-show-perekaman-ktp-elektronik-per-kecamatan-2023.json",
    "21-package-show-rekap-pengadaan-per-metode-pemilihan-ta-2024.json",
]
UPLOADS = [
    "09-resource-file-penduduk-per-kecamatan-2023-csv-via-upload.json",
    "12-resource-file-paket-pengadaan-2024-csv-via-upload.json",
    "15-resource-file-penduduk-kelompok-umur-2023-csv-via-upload.json",
    "20-resource-file-perekaman-ktp-el-2023-csv-via-upload.json",
    "25-resource-file-rekap-metode-pemilihan-2024-csv-via-upload.json",
]


def load(name: str) -> list[dict[str, Any]]:
    data = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data if isinstance(data, list) else [data]


@dataclass(frozen=True)
class Seen:
    path: str
    action: str | None
    query: dict[str, str]
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    replay: ReplayCkan


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.server.replay.answer(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ReplayCkan:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) answering recorded CKAN exchanges."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, dict[str, str] | None, dict[str, Any]]] = []
        self.seen: list[Seen] = []
        self.unmatched: list[str] = []
        self.downloads: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.replay = self
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.allow = frozenset({f"127.0.0.1:{self.port}"})
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def replay(self, *exchanges: str | dict[str, Any], any_params: bool = False) -> None:
        """Add recordings (file names or exchange dicts); earlier ones win."""
        for entry in exchanges:
            for exchange in load(entry) if isinstance(entry, str) else [entry]:
                request = exchange["request"]
                match = ACTION.match(request["path"])
                key = f"action:{match.group(1)}" if match else request["path"]
                wild = any_params or request["query"] == "*"
                query = None if wild else {k: str(v) for k, v in request["query"].items()}
                self.routes.append((key, query, exchange["response"]))

    def file(self, path: str, body: bytes, content_type: str = "text/csv") -> None:
        """Serve ``body`` at ``path`` without validators (a plain web server of an agency)."""
        self.routes.append(
            (path, {}, {"status": 200, "body": body, "headers": {"Content-Type": content_type}})
        )

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        match = ACTION.match(parts.path)
        key = f"action:{match.group(1)}" if match else parts.path
        self.seen.append(Seen(parts.path, match and match.group(1), query, dict(handler.headers)))
        response = next(
            (
                answer
                for route_key, route_query, answer in self.routes
                if route_key == key and route_query in (None, query)
            ),
            None,
        )
        if response is None:
            self.unmatched.append(handler.path)
            handler.send_error(404, "no recording for this request")
            return
        headers = dict(response["headers"])
        etag = headers.get("ETag")
        if not match and etag and handler.headers.get("If-None-Match") == etag:
            self.not_modified[parts.path] += 1
            handler.send_response(304)
            handler.send_header("ETag", etag)
            handler.end_headers()
            return
        body = response["body"]
        if isinstance(body, bytes):
            raw = body
        else:
            json_body = "json" in headers.get("Content-Type", "")
            text = json.dumps(body, ensure_ascii=False) if json_body else str(body)
            raw = text.replace(RECORDED_HOST, self.base).encode("utf-8")
        if not match:
            self.downloads[parts.path] += 1
        handler.send_response(response["status"])
        for name, value in headers.items():
            if name.lower() != "content-length":
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def requests_of(self, action: str) -> list[dict[str, str]]:
        return [seen.query for seen in self.seen if seen.action == action]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


@pytest.fixture
def server() -> Iterator[ReplayCkan]:
    replay = ReplayCkan()
    yield replay
    replay.close()
    assert replay.unmatched == [], "the harvester sent requests nobody recorded"


def _xlsx() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["kode_faskes", "nama_faskes", "jenis_faskes", "tahun"])
    sheet.append(["P6171010201", "Puskesmas Kampung Dalam", "Puskesmas", 2024])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def ckan_files(server: ReplayCkan) -> ReplayCkan:
    """The recorded resource files: uploads (with ETag), links (without), XLSX and JSON."""
    server.replay(*(f"{REC}/{name}" for name in UPLOADS))
    for path, name in LINKS.items():
        server.file(path, (DATA / REC / name).read_bytes())
    server.file(
        FASKES_XLSX, _xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    server.file(
        "/files/faskes_2024.json",
        (DATA / "files" / "faskes_2024.json").read_bytes(),
        "application/json",
    )
    return server


Make = Callable[..., CkanHarvester]


@pytest.fixture
def make(server: ReplayCkan, tmp_path: Path) -> Iterator[Make]:
    made: list[CkanHarvester] = []

    def make(policy: FetchPolicy | None = None, **options: Any) -> CkanHarvester:
        staging = tmp_path / f"staging-{len(made)}"
        staging.mkdir()
        harvester = CkanHarvester(
            SourceConfig(name="ckan-peer", url=server.base + "/", options=options),
            staging_dir=staging,
            policy=policy or FetchPolicy(allow_hosts=server.allow),
        )
        made.append(harvester)
        return harvester

    yield make
    for harvester in made:
        harvester.close()


def harvest(harvester: CkanHarvester) -> tuple[HarvestResult, dict[str, CkanItem]]:
    items: dict[str, CkanItem] = {}

    def keep(item: HarvestedItem, *, dry_run: bool) -> ItemResult:
        assert isinstance(item, CkanItem)
        items[item.remote_id] = item
        return ItemResult(item.remote_id, ItemOutcome.ADDED)

    return harvester.run(keep), items


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- package_search -----------------------------------------------------------------------------


def test_search_harvests_public_datasets_and_stages_csv_xlsx_json(
    make: Make, ckan_files: ReplayCkan
) -> None:
    ckan_files.replay("search-full.json")
    harvester = make()
    result, items = harvest(harvester)

    assert result.error is None and result.counts["added"] == 6, result
    assert PRIVATE not in items and PRIVATE not in harvester.seen_ids
    assert harvester.seen_ids == set(items) and harvester.fallback_reason is None
    assert ckan_files.requests_of("package_search") == [
        {"q": "*:*", "sort": "id asc", "rows": "1000", "start": "0"},
        {"q": "*:*", "sort": "id asc", "rows": "1000", "start": "7"},
    ]
    faskes = items[FASKES]
    staged = {f.remote_id: f for f in faskes.files}
    xlsx, records = (
        staged["5a7e3c10-0001-4000-8000-000000000001"],
        staged["5a7e3c10-0002-4000-8000-000000000002"],
    )
    assert (xlsx.format, xlsx.path.suffix, xlsx.table) == ("xlsx", ".xlsx", None)
    assert (records.format, records.filename) == ("json", "faskes_2024.json")
    assert records.path.read_bytes() == (DATA / "files" / "faskes_2024.json").read_bytes()
    assert records.table_path.read_text(encoding="utf-8").splitlines()[0] == (
        "kode_faskes,nama_faskes,jenis_faskes,kode_kelurahan,rawat_inap,tahun,layanan"
    )
    assert faskes.skipped_files == {"5a7e3c10-0003-4000-8000-000000000003": "format PDF"}
    for item in items.values():
        for staged_file in item.files:
            data = staged_file.path.read_bytes()
            assert (staged_file.sha256, staged_file.size) == (_sha(data), len(data))
    upload = items["e1952bfa-e42f-4ce8-9e40-fa0281d5c2c4"].files[0]
    recorded = load(f"{REC}/{UPLOADS[0]}")[0]["response"]["body"]
    assert upload.path.read_bytes() == recorded.encode() and upload.filename.endswith(".csv")
    assert all(count == 1 for count in ckan_files.downloads.values())
    assert "/files/metadata_faskes_2024.pdf" not in ckan_files.downloads
    assert faskes.raw["id"] == FASKES and faskes.raw["resources"][0]["url"].startswith(
        ckan_files.base
    )


def test_metadata_mapping_of_satu_data_extras(make: Make, server: ReplayCkan) -> None:
    package = load("search-full.json")[0]["response"]["body"]["result"]["results"][0]
    meta = map_metadata(package, "https://data.example")
    assert {
        k: meta[k]
        for k in (
            "title",
            "coverage",
            "coverage_code",
            "frequency",
            "period",
            "collection_method",
            "unit",
            "topic",
            "license",
        )
    } == {
        "title": "Daftar Fasilitas Kesehatan Kota Pontianak 2024",
        "coverage": "Kota Pontianak",
        "coverage_code": "61.71",
        "frequency": "tahunan",
        "period": "Januari - Desember 2024",
        "collection_method": "Rekapitulasi perizinan fasilitas kesehatan",
        "unit": "Fasilitas",
        "topic": "Kesehatan",
        "license": "CC-BY-4.0",
    }
    assert meta["description"].startswith("Daftar rumah sakit")
    assert meta["tags"] == ["faskes", "puskesmas"]
    assert (meta["organization"], meta["groups"]) == ("dinas-kesehatan", ["kesehatan"])
    assert meta["remote_url"] == "https://data.example/dataset/" + package["name"]
    assert meta["ckan_extras"] == {"Metode Pengumpulan Data": "Administratif"}
    assert meta["contact"] == "Diskominfo Kota Pontianak, data@example.invalid"
    recorded = load(f"{REC}/{SHOWS[0]}")[0]["response"]["body"]["result"]
    meta = map_metadata(recorded, "https://data.example")
    assert (meta["period"], meta["coverage"], meta["frequency"]) == (
        "2023",
        "Kota Pontianak",
        "tahunan",
    )
    assert "ckan_extras" not in meta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tahunan", "tahunan"),
        ("Setiap 3 Bulan", "triwulanan"),
        ("Bulanan", "bulanan"),
        ("Semesteran", "semesteran"),
        ("harian", "harian"),
        ("Mingguan", "mingguan"),
        ("Sewaktu-waktu", "tidak_tentu"),
        ("R/P1Y", "tahunan"),
        ("kadang", None),
    ],
)
def test_frequency_values(text: str, expected: str | None) -> None:
    assert frequency(text) == expected


def test_resource_format() -> None:
    assert resource_format({"format": ".CSV"}) == "csv"
    assert resource_format({"format": "", "url": "http://x/a.xlsx"}) == "xlsx"
    assert resource_format({"format": "application/json"}) == "json"
    assert resource_format({"format": "PDF", "url": "http://x/a.csv"}) == "pdf"


def test_incremental_fq_has_one_hour_overlap_and_ids_are_listed(
    make: Make, ckan_files: ReplayCkan
) -> None:
    ckan_files.replay("search-incremental.json")
    harvester = make(
        since="2026-11-23T19:00:00+07:00",
        organizations=["dinas-kesehatan"],
        exclude_groups=["arsip"],
        previous={FASKES: {}, "gone-dataset-id": {}},
    )
    assert harvester.gather() == [FASKES]
    filters = "(organization:dinas-kesehatan) -groups:arsip"
    sent = ckan_files.requests_of("package_search")
    assert [(q["fq"], q.get("fl"), q["start"]) for q in sent] == [
        (filters + " metadata_modified:[2026-11-23T11:00:00Z TO *]", None, "0"),
        (filters + " metadata_modified:[2026-11-23T11:00:00Z TO *]", None, "1"),
        (filters, "id", "0"),
        (filters, "id", "1"),
    ]
    assert harvester.seen_ids == {FASKES}
    assert set(harvester.config.previous) - harvester.seen_ids == {"gone-dataset-id"}


def test_pages_until_an_empty_page(make: Make, server: ReplayCkan) -> None:
    server.replay("search-paged.json")
    harvester = make(page_size=2)
    ids = harvester.gather()
    assert len(ids) == len(set(ids)) == 6
    assert ids == sorted(ids)  # sort=id asc, kept in order
    assert [q["start"] for q in server.requests_of("package_search")] == ["0", "2", "4", "6", "7"]


def test_start_advances_by_what_came_back_when_rows_are_capped(
    make: Make, server: ReplayCkan
) -> None:
    server.replay("search-rows-capped.json")
    assert len(make().gather()) == 6
    assert [q["start"] for q in server.requests_of("package_search")] == ["0", "2", "4", "6", "7"]


def test_a_repeated_page_stops_the_harvest(make: Make, server: ReplayCkan) -> None:
    server.replay("search-repeated-page.json")
    result, items = harvest(make(page_size=2))
    assert items == {}
    assert result.error_type == "source-unavailable"
    assert result.error is not None and "CKAN returned the same page twice" in result.error
    assert server.requests_of("package_list") == []  # not a search failure: no fallback


def test_duplicates_across_pages_are_kept_once_the_newest(
    make: Make, ckan_files: ReplayCkan
) -> None:
    ckan_files.replay("search-duplicates.json")
    result, items = harvest(make(page_size=2))
    shifted = load("search-duplicates.json")[1]["response"]["body"]["result"]["results"][0]
    assert [i.remote_id for i in result.items] == [
        FASKES,
        shifted["id"],
        "93ab57e0-abf0-4d20-911b-3221b04667ae",
    ]
    assert items[shifted["id"]].metadata["title"].endswith("(revisi)")  # the later copy


def test_an_empty_source_lists_nothing(make: Make, server: ReplayCkan) -> None:
    server.replay("search-empty.json")
    harvester = make(previous={FASKES: {}})
    result, items = harvest(harvester)
    assert (result.error, items, harvester.seen_ids) == (None, {}, set())
    assert set(harvester.config.previous) - harvester.seen_ids == {FASKES}


# -- fallback and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "search_error",
    [
        f"{REC}/04-package-search-incremental-as-ckanext-harvest-sends-it.json",
        "search-success-false.json",
    ],
)
def test_search_failure_falls_back_to_package_list_and_show(
    make: Make, ckan_files: ReplayCkan, search_error: str
) -> None:
    ckan_files.replay(search_error, any_params=True)
    ckan_files.replay(
        f"{REC}/03-package-list-paged-limit-2-offset-2.json",
        "fallback-list.json",
        *(f"{REC}/{name}" for name in SHOWS),
    )
    harvester = make(page_size=2)
    result, items = harvest(harvester)

    assert result.error is None and result.counts["added"] == 5, result
    reason = harvester.fallback_reason or ""
    assert (
        "Search Connection Error" in reason
        if search_error.startswith(REC)
        else "success: false" in reason
    )
    assert [q["offset"] for q in ckan_files.requests_of("package_list")] == ["0", "2", "4", "5"]
    assert len(ckan_files.requests_of("package_show")) == 5
    for name in SHOWS:
        package = json.loads(
            json.dumps(load(f"{REC}/{name}")[0]["response"]["body"]["result"]).replace(
                RECORDED_HOST, ckan_files.base
            )
        )
        assert items[package["id"]].raw == package
    shas = {f.sha256 for item in items.values() for f in item.files}
    recorded = [load(f"{REC}/{name}")[0]["response"]["body"].encode() for name in UPLOADS]
    assert {_sha(body) for body in recorded} <= shas
    assert {_sha((DATA / REC / name).read_bytes()) for name in LINKS.values()} <= shas


def test_fallback_filters_by_since_but_lists_every_id(make: Make, server: ReplayCkan) -> None:
    server.replay(
        f"{REC}/04-package-search-incremental-as-ckanext-harvest-sends-it.json", any_params=True
    )
    server.replay("fallback-list.json", *(f"{REC}/{name}" for name in SHOWS))
    harvester = make(since="2026-11-23T11:06:03Z")  # everything was modified before 10:06:03
    assert harvester.gather() == []
    assert len(harvester.seen_ids) == 5


def test_a_package_list_ignoring_limit_is_read_once(make: Make, server: ReplayCkan) -> None:
    server.replay(
        f"{REC}/04-package-search-incremental-as-ckanext-harvest-sends-it.json",
        f"{REC}/01-package-list-get-api-action.json",
        any_params=True,
    )
    server.replay(*(f"{REC}/{name}" for name in SHOWS))
    harvester = make(page_size=2, since="2030-01-01T00:00:00Z")
    assert harvester.gather() == [] and len(harvester.seen_ids) == 5
    assert server.requests_of("package_list") == [{"limit": "2", "offset": "0"}]


def test_success_false_everywhere_is_a_clear_error(make: Make, server: ReplayCkan) -> None:
    server.replay("search-success-false.json", "list-success-false.json")
    result, items = harvest(make())
    assert items == {} and result.error_type == "ckan-error"
    assert result.error is not None
    assert "CKAN package_search failed: HTTP 200 with success: false (Search Error" in result.error
    assert "package_list failed: HTTP 200 with success: false (Authorization Error" in result.error


def test_loopback_is_refused_unless_allow_listed(make: Make, server: ReplayCkan) -> None:
    result, items = harvest(make(policy=FetchPolicy()))
    assert items == {} and result.error_type == "fetch-refused"
    assert result.error is not None and "loopback" in result.error
    assert server.seen == []


def test_a_resource_on_another_host_goes_through_the_guard(
    make: Make, ckan_files: ReplayCkan
) -> None:
    exchange = load("search-full.json")[0]
    packages = exchange["response"]["body"]["result"]["results"]
    (faskes,) = [p for p in packages if p["id"] == FASKES]
    faskes["resources"][1]["url"] = f"http://localhost:{ckan_files.port}/files/faskes_2024.json"
    ckan_files.replay(exchange, load("search-full.json")[1])
    result, items = harvest(make())
    (failed,) = [i for i in result.items if i.outcome is ItemOutcome.FAILED]
    assert (failed.remote_id, failed.error_type) == (FASKES, "fetch-refused")
    assert failed.error is not None and "localhost" in failed.error
    assert "/files/faskes_2024.json" not in ckan_files.downloads


def test_api_key_goes_to_the_api_only(make: Make, ckan_files: ReplayCkan) -> None:
    ckan_files.replay("search-full.json")
    harvester = make(api_key="tok-rahasia-123")
    result, _ = harvest(harvester)
    assert result.error is None
    api = [s for s in ckan_files.seen if s.action]
    files = [s for s in ckan_files.seen if not s.action]
    assert api and all(s.headers.get("Authorization") == "tok-rahasia-123" for s in api)
    assert files and not any("Authorization" in s.headers for s in files)
    assert "tok-rahasia-123" not in repr(harvester.config)


@pytest.mark.parametrize(
    "options",
    [
        {"organizations": "dinas-kesehatan"},
        {"organizations": ["a b"]},
        {"formats": ["pdf"]},
        {"since": "kemarin"},
        {"page_size": 0},
        {"force_all": "ya"},
    ],
)
def test_bad_options_fail_the_source(make: Make, server: ReplayCkan, options: Any) -> None:
    result, _ = harvest(make(**options))
    assert result.error_type == "bad-config" and server.seen == []


# -- unchanged resources ------------------------------------------------------------------------


def test_unchanged_resources_are_not_downloaded(make: Make, ckan_files: ReplayCkan) -> None:
    ckan_files.replay("search-full.json")
    _, first = harvest(make())
    previous = {remote_id: item.state for remote_id, item in first.items()}
    before = Counter(ckan_files.downloads)

    _, second = harvest(make(previous=json.loads(json.dumps(previous))))
    assert all(item.unchanged and not item.files for item in second.values())
    assert {rid for item in second.values() for rid in item.unchanged_files} == {
        rid for item in first.values() for rid in item.state["resources"]
    }
    downloaded = ckan_files.downloads - before
    # Links without last_modified or hash are fetched again and compared by sha256.
    assert set(downloaded) == set(LINKS)

    umur, penduduk = "e082d0af-a94b-49cb-a7e2-4a713ae59d06", "e1952bfa-e42f-4ce8-9e40-fa0281d5c2c4"
    changed = json.loads(json.dumps(previous))
    for remote_id in (umur, penduduk):
        (state,) = changed[remote_id]["resources"].values()
        state["last_modified"] = "2026-01-01T00:00:00"
    (umur_state,) = changed[umur]["resources"].values()
    umur_state.update(etag=None, sha256="0" * 64)
    _, third = harvest(make(previous=changed))
    assert [f.remote_id for f in third[umur].files] == list(changed[umur]["resources"])
    assert not third[umur].unchanged
    assert third[penduduk].files == [] and ckan_files.not_modified == Counter(
        {
            urlsplit(third[penduduk].state["resources"][r]["url"]).path: 1
            for r in third[penduduk].state["resources"]
        }
    )

    before = Counter(ckan_files.downloads)
    _, forced = harvest(make(previous=previous, force_all=True))
    assert sum((ckan_files.downloads - before).values()) == sum(
        len(item.files) for item in first.values()
    )
    assert all(item.files for item in forced.values())


def test_a_dataset_without_harvestable_resources(make: Make, ckan_files: ReplayCkan) -> None:
    ckan_files.replay("search-full.json")
    result, items = harvest(make(formats=["csv"]))
    (skipped,) = [i for i in result.items if i.outcome is ItemOutcome.SKIPPED]
    assert skipped.remote_id == FASKES and FASKES not in items
    assert skipped.error is not None and "format XLSX" in skipped.error

    # Harvested before: returned, so that the portal withdraws the resources no longer there.
    previous = {
        FASKES: {
            "metadata_modified": "2026-11-23T11:15:00.000000",
            "resources": {"old-csv": {"sha256": "0" * 64}},
        }
    }
    _, items = harvest(make(formats=["csv"], previous=previous))
    faskes = items[FASKES]
    assert (faskes.files, faskes.unchanged_files, faskes.state["resources"]) == ([], [], {})
    assert faskes.unchanged and len(faskes.skipped_files) == 3
