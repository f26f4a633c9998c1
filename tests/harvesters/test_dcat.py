"""harvesters.dcat: DCAT-AP catalogs in three serialisations and a DCAT-US data.json, served by a
real local HTTP server (allow-listed in the fetch policy); nothing reaches the internet."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openpyxl
import pytest
from rdflib import Graph
from rdflib.compare import isomorphic

from harvesters.base import HarvestedItem, HarvestResult, ItemOutcome, ItemResult, SourceConfig
from harvesters.dcat import (
    DataJsonHarvester,
    DcatHarvester,
    data_format,
    frequency,
    license_id,
    rdf_format,
)
from harvesters.errors import SourceUnavailable
from harvesters.http import FetchPolicy

# rdflib's JSON-LD parser builds a ConjunctiveGraph, which rdflib deprecates (RDFLib/rdflib#3064).
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

DATA = Path(__file__).parent / "data" / "dcat"
SERIALISATIONS = ["catalog.ttl", "catalog.jsonld", "catalog.rdf"]
DS = "https://data.pontianak.go.id/dataset/"
FASKES, DBD, PETA, IMUNISASI = (DS + n for n in ("fasilitas-kesehatan-2024", "kasus-dbd-2024",
                                                  "peta-puskesmas", "imunisasi-2023"))
TYPES = {".ttl": "text/turtle", ".jsonld": "application/ld+json", ".rdf": "application/rdf+xml",
         ".json": "application/json", ".csv": "text/csv", ".html": "text/html; charset=utf-8",
         ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@dataclass
class Site:
    """The local server: fixture files under /dcat/, plus routes a test adds or replaces."""

    base: str
    policy: FetchPolicy
    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: str | bytes, content_type: str = "text/turtle") -> str:
        self.routes[path] = (200, content_type, body.encode() if isinstance(body, str) else body)
        return self.url(path)


class Handler(BaseHTTPRequestHandler):
    server: Any

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        site: Site = self.server.site
        path = urlsplit(self.path).path
        site.requests.append(path)
        status, content_type, body = site.routes.get(path) or (404, "text/plain", b"not found")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def xlsx_bytes() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["kode_faskes", "nama_faskes"])
    sheet.append(["FK001", "RSUD Sultan Syarif Mohamad Alkadrie"])
    buffer = io.BytesIO()
    book.save(buffer)
    book.close()
    return buffer.getvalue()


@pytest.fixture
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}"
    server.site = Site(base, FetchPolicy(allow_hosts=frozenset({f"127.0.0.1:{port}"})))  # type: ignore[attr-defined]
    for path in DATA.rglob("*"):
        if path.is_file():
            body = path.read_bytes().replace(b"{{base}}", f"{base}/dcat".encode())
            route = "/dcat/" + path.relative_to(DATA).as_posix()
            server.site.routes[route] = (200, TYPES[path.suffix], body)  # type: ignore[attr-defined]
    server.site.serve("/dcat/files/faskes.xlsx", xlsx_bytes(), TYPES[".xlsx"])  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.site  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Collector:
    def __init__(self) -> None:
        self.items: dict[str, HarvestedItem] = {}

    def __call__(self, item: HarvestedItem, *, dry_run: bool) -> ItemResult:
        self.items[item.remote_id] = item
        return ItemResult(item.remote_id, ItemOutcome.ADDED)


def harvest(
    kind: type[DcatHarvester | DataJsonHarvester], url: str, tmp_path: Path, site: Site,
    max_file_size: int = 10_000_000, **options: Any,
) -> tuple[HarvestResult, dict[str, HarvestedItem], DcatHarvester | DataJsonHarvester]:
    source = SourceConfig("dinkes", url, max_file_size=max_file_size, options=options)
    harvester = kind(source, staging_dir=tmp_path / "staging", policy=site.policy)
    collector = Collector()
    return harvester.run(collector), collector.items, harvester


def outcomes(result: HarvestResult) -> dict[str, tuple[str, str | None]]:
    return {i.remote_id: (i.outcome.value, i.error_type) for i in result.items}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def turtle(*datasets: str, extra: str = "") -> str:
    lines = ["@prefix dcat: <http://www.w3.org/ns/dcat#> .",
             "@prefix dct: <http://purl.org/dc/terms/> .",
             "@prefix hydra: <http://www.w3.org/ns/hydra/core#> ."]
    for n, iri in enumerate(datasets):
        lines.append(f"<{iri}> a dcat:Dataset ; dct:title \"Data {n}\"@id ; dcat:distribution ["
                     " dcat:downloadURL <../dcat/files/faskes.csv> ; dcat:mediaType 'text/csv' ].")
    return "\n".join([*lines, extra])


# --- DCAT-AP ----------------------------------------------------------------------------------

def test_the_three_serialisations_hold_the_same_graph() -> None:
    base = "http://127.0.0.1:1/dcat/"
    jsonld = json.loads((DATA / "catalog.jsonld").read_text())
    jsonld["@context"][0] = json.loads((DATA / "context.jsonld").read_text())["@context"]
    graphs = [
        Graph().parse(data=(DATA / "catalog.ttl").read_bytes(), format="turtle",
                      publicID=base + "catalog.ttl"),
        Graph().parse(data=json.dumps(jsonld), format="json-ld", publicID=base + "catalog.jsonld"),
        Graph().parse(data=(DATA / "catalog.rdf").read_bytes(), format="xml",
                      publicID=base + "catalog.rdf"),
    ]
    assert len(graphs[0]) == 90
    assert isomorphic(graphs[0], graphs[1]) and isomorphic(graphs[0], graphs[2])


@pytest.mark.parametrize("name", SERIALISATIONS)
def test_dcat_catalog_is_harvested(name: str, site: Site, tmp_path: Path) -> None:
    result, items, harvester = harvest(DcatHarvester, site.url(f"/dcat/{name}"), tmp_path, site)
    assert result.error is None, result.error
    assert sorted(result.seen_ids) == sorted([FASKES, DBD, PETA, IMUNISASI])
    assert harvester.seen_ids == result.seen_ids
    assert outcomes(result) == {
        FASKES: ("added", None), DBD: ("added", None),
        PETA: ("skipped", "skipped"), IMUNISASI: ("failed", "invalid-item"),
    }
    assert "web page" in str(next(i.error for i in result.items if i.remote_id == IMUNISASI))
    faskes = items[FASKES]
    assert faskes.metadata == {
        "title": "Daftar Fasilitas Kesehatan Kota Pontianak 2024",
        "description": "Daftar rumah sakit, puskesmas, klinik dan apotek di Kota Pontianak.",
        "tags": ["faskes", "puskesmas", "rumah sakit"],
        "license": "CC-BY-4.0",
        "topic": "Kesehatan",
        "frequency": "tahunan",
        "access_level": "public",
        "coverage": "Kota Pontianak",
        "coverage_code": "61.71",
        "period": "2024-01-01/2024-12-31",
        "contact": "Seksi Pelayanan Kesehatan Rujukan, dinkes@pontianak.go.id",
        "publisher": "Dinas Kesehatan Kota Pontianak",
        "license_url": "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
        "landing_page": FASKES,
        "issued": "2025-01-15",
        "modified": "2025-02-01T08:00:00",
        "source_url": FASKES,
    }
    csv, xlsx = faskes.files
    assert (csv.remote_id, csv.title, csv.filename, csv.format) == (
        FASKES + "/csv", "Daftar Faskes 2024", "faskes.csv", "csv")
    assert csv.sha256 == sha256(DATA / "files" / "faskes.csv") == sha256(csv.path)
    assert csv.size == (DATA / "files" / "faskes.csv").stat().st_size
    assert (xlsx.remote_id, xlsx.filename, xlsx.format) == (
        site.url("/dcat/files/faskes.xlsx"), "faskes.xlsx", "xlsx")
    assert "faskes.csv" in faskes.raw["turtle"]
    dbd = items[DBD]
    assert dbd.metadata["topic"] == "Kesehatan" and dbd.metadata["frequency"] == "bulanan"
    assert dbd.metadata["period"] == "2024-01-01/" and dbd.metadata["license"] == "CC-BY-4.0"
    assert dbd.metadata["contact"] == "p2p.dinkes@pontianak.go.id"
    assert [(f.filename, f.format) for f in dbd.files] == [("dbd.json", "json")]
    # formats that are not harvested are never downloaded; a remote context is, through the guard
    assert not any(p.endswith((".pdf", ".zip")) for p in site.requests)
    assert ("/dcat/context.jsonld" in site.requests) == name.endswith(".jsonld")


@pytest.mark.parametrize("name", SERIALISATIONS)
def test_serialisation_is_sniffed_when_the_server_does_not_say(
    name: str, site: Site, tmp_path: Path
) -> None:
    url = site.serve("/sniff/catalog", (DATA / name).read_bytes(), "application/octet-stream")
    site.serve("/sniff/context.jsonld", (DATA / "context.jsonld").read_bytes(), "text/plain")
    result, _, _ = harvest(DcatHarvester, url, tmp_path, site, formats=["none"])
    assert result.error is None and len(result.seen_ids) == 4


def test_format_option_overrides_a_wrong_content_type(site: Site, tmp_path: Path) -> None:
    url = site.serve("/wrong", (DATA / "catalog.ttl").read_bytes(), "application/json")
    result, _, _ = harvest(DcatHarvester, url, tmp_path, site)
    assert result.error_type == "source-unavailable" and "not valid json-ld" in str(result.error)
    result, _, _ = harvest(DcatHarvester, url, tmp_path, site, format="turtle")
    assert result.error is None and len(result.seen_ids) == 4


def test_paged_catalog_is_read_to_the_end(site: Site, tmp_path: Path) -> None:
    site.serve("/paged/catalog.ttl", turtle(DS + "a", extra="<catalog.ttl> a hydra:PagedCollection"
                                            " ; hydra:nextPage <page2.ttl> ."))
    site.serve("/paged/page2.ttl", turtle(DS + "b"))
    result, items, _ = harvest(DcatHarvester, site.url("/paged/catalog.ttl"), tmp_path, site)
    assert result.error is None and sorted(result.seen_ids) == [DS + "a", DS + "b"]
    assert set(items) == {DS + "a", DS + "b"}


def test_a_catalog_read_only_in_part_fails_the_source(site: Site, tmp_path: Path) -> None:
    site.serve("/loop/one.ttl", turtle(DS + "a", extra="<one.ttl> hydra:nextPage <two.ttl> ."))
    site.serve("/loop/two.ttl", turtle(DS + "b", extra="<two.ttl> hydra:nextPage <one.ttl> ."))
    result, _, harvester = harvest(DcatHarvester, site.url("/loop/one.ttl"), tmp_path, site)
    assert result.error_type == "source-unavailable" and "loops back" in str(result.error)
    assert result.seen_ids == [] and harvester.seen_ids == []
    result, _, _ = harvest(DcatHarvester, site.url("/loop/one.ttl"), tmp_path, site, max_pages=1)
    assert "more than 1 pages" in str(result.error)
    site.serve("/loop/two.ttl", turtle(DS + "b", extra="<two.ttl> hydra:nextPage <three.ttl> ."))
    result, _, _ = harvest(DcatHarvester, site.url("/loop/one.ttl"), tmp_path, site)
    assert result.error_type == "fetch-failed" and result.seen_ids == []


def test_datasets_that_leave_the_catalog_leave_seen_ids(site: Site, tmp_path: Path) -> None:
    url = site.serve("/w/catalog.ttl", turtle(DS + "a", DS + "b"))
    source = SourceConfig("dinkes", url)
    harvester = DcatHarvester(source, staging_dir=tmp_path, policy=site.policy)
    assert sorted(harvester.gather()) == [DS + "a", DS + "b"]
    site.serve("/w/catalog.ttl", turtle(DS + "a"))
    assert list(harvester.gather()) == [DS + "a"] == harvester.seen_ids
    with pytest.raises(Exception, match="no longer in the catalog"):
        harvester.fetch(DS + "b")


# Three levels of a "billion laughs" document: harmless here, but refused for its declarations.
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE rdf:RDF [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    b'xmlns:dct="http://purl.org/dc/terms/"><rdf:Description rdf:about="https://o/d">'
    b"<dct:title>&c;</dct:title></rdf:Description></rdf:RDF>"
)


def test_not_a_catalog(site: Site, tmp_path: Path) -> None:
    for path, body, message in (
        ("/x/plain.jsonld", b'{"title": "just JSON"}', "no dcat:Catalog or dcat:Dataset"),
        ("/x/broken.ttl", b"@prefix dcat: <http://www.w3.org/ns/dcat#> .\n<a> dcat:x", "valid"),
        ("/x/broken.rdf", b"<?xml version='1.0'?><rdf:RDF", "valid xml"),
        ("/x/laughs.rdf", LAUGHS, "entity declarations"),
    ):
        result, _, _ = harvest(DcatHarvester, site.serve(path, body, "application/octet-stream"),
                               tmp_path, site)
        assert result.error_type == "source-unavailable" and message in str(result.error), result


def test_hosts_outside_the_allow_list_are_refused(site: Site, tmp_path: Path) -> None:
    private = site.serve("/ssrf/catalog.ttl", turtle(DS + "a").replace(
        "../dcat/files/faskes.csv", "http://10.0.0.7/data.csv"))
    result, _, _ = harvest(DcatHarvester, private, tmp_path, site)
    assert outcomes(result) == {DS + "a": ("failed", "fetch-refused")}
    assert "private address" in str(result.items[0].error)
    metadata_service = {"@context": "http://169.254.169.254/latest/meta-data/", "@id": DS + "a"}
    context = site.serve("/ssrf/catalog.jsonld", json.dumps(metadata_service), TYPES[".jsonld"])
    result, _, _ = harvest(DcatHarvester, context, tmp_path, site)
    assert result.error_type == "fetch-refused" and "metadata service" in str(result.error)
    source = SourceConfig("dinkes", site.url("/dcat/catalog.ttl"))
    result = DcatHarvester(source, staging_dir=tmp_path, policy=FetchPolicy()).run(Collector())
    assert result.error_type == "fetch-refused" and "loopback" in str(result.error)


def test_files_over_the_size_cap_fail_the_item(site: Site, tmp_path: Path) -> None:
    # the cap is for data files: the 5 kB catalog is still read
    result, items, _ = harvest(DcatHarvester, site.url("/dcat/catalog.ttl"), tmp_path, site,
                               max_file_size=200)
    assert outcomes(result)[FASKES] == ("failed", "file-too-large")
    assert outcomes(result)[DBD] == ("added", None)
    assert [p.name for p in (tmp_path / "staging").iterdir()] == [items[DBD].files[0].path.name]


# --- DCAT-US data.json ------------------------------------------------------------------------

def test_data_json_is_harvested(site: Site, tmp_path: Path) -> None:
    result, items, harvester = harvest(DataJsonHarvester, site.url("/dcat/data.json"), tmp_path,
                                       site)
    assert result.error is None
    assert harvester.seen_ids == result.seen_ids == [
        "dinkes-fasilitas-kesehatan-2024", "dinkes-kasus-dbd-2024", "dinkes-rekam-medis-2024"]
    assert outcomes(result) == {
        "dinkes-fasilitas-kesehatan-2024": ("added", None),
        "dinkes-kasus-dbd-2024": ("added", None),
        "dinkes-rekam-medis-2024": ("skipped", "skipped"),  # non-public, no distribution
    }
    faskes = items["dinkes-fasilitas-kesehatan-2024"]
    assert faskes.metadata == {
        "title": "Daftar Fasilitas Kesehatan Kota Pontianak 2024",
        "description": "Daftar rumah sakit, puskesmas, klinik dan apotek di Kota Pontianak.",
        "tags": ["faskes", "puskesmas", "rumah sakit"],
        "license": "CC-BY-4.0",
        "topic": "Kesehatan",
        "frequency": "tahunan",
        "access_level": "public",
        "coverage": "61.71",
        "coverage_code": "61.71",
        "period": "2024-01-01/2024-12-31",
        "contact": "Seksi Pelayanan Kesehatan Rujukan, dinkes@pontianak.go.id",
        "publisher": "Dinas Kesehatan Kota Pontianak",
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
        "landing_page": FASKES,
        "issued": "2025-01-15",
        "modified": "2025-02-01",
    }
    assert [(f.filename, f.format, f.title) for f in faskes.files] == [
        ("faskes.csv", "csv", "Daftar Faskes 2024"),
        ("faskes.xlsx", "xlsx", "Daftar Faskes 2024 (XLSX)"),
    ]
    assert faskes.files[0].sha256 == sha256(DATA / "files" / "faskes.csv")
    assert faskes.raw["dataset"]["identifier"] == "dinkes-fasilitas-kesehatan-2024"
    dbd = items["dinkes-kasus-dbd-2024"]
    assert dbd.metadata["frequency"] == "bulanan"
    assert dbd.metadata["contact"] == "Seksi P2P, p2p.dinkes@pontianak.go.id"


def test_data_json_without_identifiers_or_datasets(site: Site, tmp_path: Path) -> None:
    bare = site.serve("/dj/bare.json", json.dumps([{"title": "Tanpa identifier"}]),
                      "application/json")  # DCAT-US 1.0: a bare list
    result, _, _ = harvest(DataJsonHarvester, bare, tmp_path, site)
    ((remote_id, outcome),) = outcomes(result).items()
    assert remote_id.startswith("blank:") and outcome == ("skipped", "skipped")
    assert "identifier" in str(result.items[0].error)
    result, _, _ = harvest(DataJsonHarvester, site.serve("/dj/x.json", "{}", "application/json"),
                           tmp_path, site)
    assert result.error_type == "source-unavailable" and "not a data.json" in str(result.error)


# --- vocabularies -----------------------------------------------------------------------------

EU = "http://publications.europa.eu/resource/authority/"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EU + "frequency/DAILY", "harian"), (EU + "frequency/HOURLY", "harian"),
        (EU + "frequency/UPDATE_CONT", "harian"), (EU + "frequency/WEEKLY", "mingguan"),
        (EU + "frequency/WEEKLY_2", "mingguan"), (EU + "frequency/BIWEEKLY", "bulanan"),
        (EU + "frequency/MONTHLY", "bulanan"), (EU + "frequency/BIMONTHLY", "triwulanan"),
        (EU + "frequency/QUARTERLY", "triwulanan"), (EU + "frequency/ANNUAL_2", "semesteran"),
        (EU + "frequency/ANNUAL", "tahunan"), (EU + "frequency/BIENNIAL", "tidak_tentu"),
        (EU + "frequency/IRREG", "tidak_tentu"), (EU + "frequency/UNKNOWN", "tidak_tentu"),
        ("http://purl.org/cld/freq/quarterly", "triwulanan"), ("R/P1D", "harian"),
        ("R/PT1H", "harian"), ("R/P1W", "mingguan"), ("R/P2W", "bulanan"), ("R/P1M", "bulanan"),
        ("R/P3M", "triwulanan"), ("R/P6M", "semesteran"), ("R/P1Y", "tahunan"),
        ("R/P2Y", "tidak_tentu"), ("irregular", "tidak_tentu"), ("tahunan", "tahunan"),
        ("setiap saat", None), ("", None), (None, None),
    ],
)
def test_frequency(value: str | None, expected: str | None) -> None:
    assert frequency(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
        ("http://creativecommons.org/licenses/by-sa/4.0/deed.id", "CC-BY-SA-4.0"),
        ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
        (EU + "licence/CC_BY_4_0", "CC-BY-4.0"), (EU + "licence/CC0", "CC0-1.0"),
        ("https://spdx.org/licenses/ODbL-1.0.html", "ODbL-1.0"),
        ("http://opendatacommons.org/licenses/odbl/1-0/", "ODbL-1.0"),
        ("CC-BY-4.0", "CC-BY-4.0"), ("https://example.org/our-own-licence", None), (None, None),
    ],
)
def test_license_id(value: str | None, expected: str | None) -> None:
    assert license_id(value) == expected


@pytest.mark.parametrize(
    ("media_type", "fmt", "url", "expected"),
    [
        ("http://www.iana.org/assignments/media-types/text/csv", None, "x", "csv"),
        ("text/csv; charset=utf-8", None, "x", "csv"),
        (None, EU + "file-type/XLSX", "x", "xlsx"), (None, "JSON", "x", "json"),
        (None, None, "https://opd.example/data/tabel.CSV?v=2", "csv"),
        ("application/pdf", None, "https://opd.example/tabel.csv", None),
        (None, EU + "file-type/SHP", "x.zip", None), (None, None, "https://opd.example/", None),
    ],
)
def test_data_format(
    media_type: str | None, fmt: str | None, url: str, expected: str | None
) -> None:
    assert data_format(media_type, fmt, url) == expected


@pytest.mark.parametrize(
    ("content_type", "url", "body", "expected"),
    [
        ("text/turtle", "x", b"", "turtle"), ("application/ld+json", "x", b"", "json-ld"),
        ("text/plain", "https://o/catalog.rdf", b"", "xml"),
        ("", "https://o/catalog", b"\xef\xbb\xbf  {\"@graph\": []}", "json-ld"),
        ("", "https://o/catalog", b"<?xml version='1.0'?>", "xml"),
        ("", "https://o/catalog", b"PREFIX dcat: <http://www.w3.org/ns/dcat#>", "turtle"),
        ("", "https://o/catalog", b"<https://o/d> a <http://www.w3.org/ns/dcat#Dataset> .",
         "turtle"),
    ],
)
def test_rdf_format(content_type: str, url: str, body: bytes, expected: str) -> None:
    assert rdf_format(content_type, url, body) == expected


def test_rdf_format_refuses_to_guess() -> None:
    with pytest.raises(SourceUnavailable, match="options.format"):
        rdf_format("text/plain", "https://o/catalog", b"title,year\nPenduduk,2024\n")
