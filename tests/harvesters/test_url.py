"""The URL harvester against a real local HTTP server (see test_http for the server)."""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from harvesters.base import HarvestedItem, HarvestResult, ItemOutcome, ItemResult, SourceConfig
from harvesters.http import FetchPolicy, default_policy, set_default_policy
from harvesters.url import UrlHarvester
from tests.harvesters.test_http import LocalServer, respond

ROWS = [["kecamatan", "jumlah_penduduk", "keterangan"], ["Pontianak Barat", "140.215", "Café"]]

Run = Callable[..., tuple[HarvestResult, list[HarvestedItem]]]


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    local = LocalServer(tmp_path_factory.mktemp("www"))
    yield local
    local.close()


@pytest.fixture
def harvest(server: LocalServer, tmp_path: Path) -> Run:
    """Run a URL harvester over ``path`` of the local server; return the result and the items."""

    def run(
        path: str, *, policy: FetchPolicy | None = None, max_file_size: int = 10**8, **options: Any
    ) -> tuple[HarvestResult, list[HarvestedItem]]:
        items: list[HarvestedItem] = []

        def process(item: HarvestedItem, *, dry_run: bool) -> ItemResult:
            items.append(item)
            return ItemResult(item.remote_id, ItemOutcome.ADDED)

        source = SourceConfig("dukcapil", server.url(path), max_file_size, options)
        if policy is None:
            policy = FetchPolicy(allow_hosts=server.allow)
        harvester = UrlHarvester(source, staging_dir=tmp_path / "staging", policy=policy)
        return harvester.run(process), items

    return run


@pytest.fixture
def restore_default_policy() -> Iterator[None]:
    saved = default_policy()
    yield
    set_default_policy(saved)


def write_csv(path: Path, rows: list[list[str]], *, delimiter: str, encoding: str) -> bytes:
    with path.open("w", encoding=encoding, newline="") as out:
        csv.writer(out, delimiter=delimiter).writerows(rows)
    return path.read_bytes()


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def write_xlsx(path: Path) -> bytes:
    book = Workbook()
    for row in ROWS:
        book.active.append(row)
    book.save(path)
    return path.read_bytes()


def only_item(result: HarvestResult, items: list[HarvestedItem]) -> HarvestedItem:
    assert result.error is None and result.counts["added"] == 1, result.items
    return items[0]


def test_csv_is_normalised_and_described(server: LocalServer, harvest: Run):
    original = write_csv(server.root / "Penduduk 2024.csv", ROWS, delimiter=";", encoding="cp1252")
    item = only_item(*harvest("/Penduduk%202024.csv"))
    assert item.remote_id == "penduduk-2024" and item.metadata["title"] == "Penduduk 2024"
    [staged] = item.files
    assert staged.format == "csv" and staged.filename == "Penduduk 2024.csv"
    assert read_csv(staged.table_path) == ROWS  # what the checks and the rows file read
    assert staged.path.read_bytes() == original  # what "download original" serves
    assert staged.sha256 == hashlib.sha256(original).hexdigest() == item.raw["original_sha256"]
    assert item.raw["encoding"] == "windows-1252" and item.raw["delimiter"] == ";"
    assert item.raw["etag"] and item.raw["last_modified"]
    assert sorted(p.name for p in staged.path.parent.iterdir()) == sorted(
        [staged.path.name, staged.table_path.name]
    )  # no leftovers


def test_clean_csv_keeps_the_original_hash(server: LocalServer, harvest: Run):
    original = write_csv(server.root / "data.csv", ROWS, delimiter=",", encoding="utf-8")
    item = only_item(*harvest("/data.csv"))
    assert item.files[0].sha256 == item.raw["original_sha256"]
    assert item.files[0].path.read_bytes() == original


def test_metadata_comes_from_options(server: LocalServer, harvest: Run):
    write_csv(server.root / "data.csv", ROWS, delimiter=",", encoding="utf-8")
    metadata = {"title": "Jumlah Penduduk", "description": "Per kecamatan", "tags": ["dukcapil"]}
    item = only_item(*harvest("/data.csv", metadata=metadata))
    assert item.metadata == metadata and item.files[0].title == "Jumlah Penduduk"


def test_xlsx_is_checked_and_staged_as_is(server: LocalServer, harvest: Run):
    original = write_xlsx(server.root / "penduduk.xlsx")
    item = only_item(*harvest("/penduduk.xlsx"))
    [staged] = item.files
    assert staged.format == "xlsx" and staged.path.read_bytes() == original
    assert staged.sha256 == item.raw["original_sha256"]


def test_json_records_become_a_csv(server: LocalServer, harvest: Run):
    records = [
        {"kecamatan": "Pontianak Kota", "jumlah": 123, "aktif": True},
        {"kecamatan": "Pontianak Timur", "jumlah": None, "lokasi": {"lat": -0.03}},
    ]
    (server.root / "data.json").write_text(json.dumps(records))
    item = only_item(*harvest("/data.json"))
    [staged] = item.files
    assert staged.format == "json" and staged.filename == "data.json"
    assert json.loads(staged.path.read_text()) == records
    assert item.raw["records"] == 2 and item.raw["format"] == "json"
    assert read_csv(staged.table_path) == [
        ["kecamatan", "jumlah", "aktif", "lokasi"],
        ["Pontianak Kota", "123", "true", ""],
        ["Pontianak Timur", "", "", '{"lat": -0.03}'],
    ]


def test_json_records_path(server: LocalServer, harvest: Run):
    payload = {"status": "ok", "data": {"rows": [{"a": 1}, {"a": 2}]}}
    server.routes["/api/export"] = respond(
        200, json.dumps(payload).encode(), Content_Type="application/json; charset=utf-8"
    )
    item = only_item(*harvest("/api/export", records_path="data.rows"))
    assert read_csv(item.files[0].table_path) == [["a"], ["1"], ["2"]]
    assert item.remote_id == "export"


def test_format_from_content_type_and_content(server: LocalServer, harvest: Run):
    server.routes["/unduh"] = respond(200, b"a;b\n1;2\n", Content_Type="text/csv")
    item = only_item(*harvest("/unduh"))
    assert item.raw["format"] == "csv"
    assert read_csv(item.files[0].table_path) == [["a", "b"], ["1", "2"]]
    xlsx = write_xlsx(server.root / "x.bin")
    server.routes["/file"] = respond(200, xlsx, Content_Type="application/octet-stream")
    assert only_item(*harvest("/file")).files[0].format == "xlsx"


def test_not_modified_is_unchanged(server: LocalServer, harvest: Run):
    write_csv(server.root / "data.csv", ROWS, delimiter=",", encoding="utf-8")
    first = only_item(*harvest("/data.csv"))
    result, items = harvest("/data.csv", etag=first.raw["etag"])
    assert items == [] and result.counts["unchanged"] == 1
    assert result.items[0].outcome is ItemOutcome.UNCHANGED
    result, _ = harvest("/data.csv", last_modified=first.raw["last_modified"])
    assert result.items[0].outcome is ItemOutcome.UNCHANGED
    assert server.requests[1][1]["If-None-Match"] == first.raw["etag"]


def test_unlisted_local_source_fails_with_the_reason(
    server: LocalServer, tmp_path: Path, restore_default_policy: None
):
    write_csv(server.root / "data.csv", ROWS, delimiter=",", encoding="utf-8")
    # Options cannot widen the allow-list: only the operator's default policy can.
    source = SourceConfig("x", server.url("/data.csv"), options={"allow_hosts": ["127.0.0.1"]})

    def run() -> HarvestResult:
        harvester = UrlHarvester(source, staging_dir=tmp_path / "staging")
        return harvester.run(lambda item, *, dry_run: ItemResult(item.remote_id, ItemOutcome.ADDED))

    set_default_policy(FetchPolicy())  # what the portal sets with an empty allow-list
    [failed] = run().items
    assert failed.outcome is ItemOutcome.FAILED and failed.error_type == "fetch-refused"
    assert "127.0.0.1 is a loopback address" in (failed.error or "")
    assert server.requests == []
    set_default_policy(FetchPolicy(allow_hosts=server.allow))
    assert run().counts["added"] == 1


def test_redirect_to_metadata_service_fails_the_item(server: LocalServer, harvest: Run):
    server.routes["/data.csv"] = respond(302, Location="http://169.254.169.254/latest/")
    result, _ = harvest("/data.csv")
    assert result.items[0].error_type == "fetch-refused"
    assert "cloud metadata" in (result.items[0].error or "")


def test_xlsx_bomb_fails_the_item(server: LocalServer, harvest: Run):
    with zipfile.ZipFile(server.root / "bomb.xlsx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 * 1024 * 1024))
    result, items = harvest("/bomb.xlsx")
    assert items == [] and result.items[0].error_type == "compression-bomb"


def test_source_size_cap_applies(server: LocalServer, harvest: Run):
    write_csv(server.root / "data.csv", ROWS * 100, delimiter=",", encoding="utf-8")
    result, _ = harvest("/data.csv", max_file_size=500)
    assert result.items[0].error_type == "file-too-large"


def test_bad_json_fails_the_item(server: LocalServer, harvest: Run):
    (server.root / "a.json").write_text('{"rows": 1}')
    (server.root / "b.json").write_text("[1, 2")
    assert harvest("/a.json")[0].items[0].error_type == "invalid-item"
    assert "not valid JSON" in (harvest("/b.json")[0].items[0].error or "")


@pytest.mark.parametrize(
    ("url", "remote_id"),
    [
        ("https://data.example.go.id/files/Jumlah%20Penduduk%202023.csv", "jumlah-penduduk-2023"),
        ("https://data.example.go.id/api/data?tahun=2024", "data"),
        ("https://Data.Example.go.id/", "data-example-go-id"),
    ],
)
def test_gather_derives_the_remote_id_without_fetching(url: str, remote_id: str, tmp_path: Path):
    harvester = UrlHarvester(SourceConfig("x", url), staging_dir=tmp_path)
    assert list(harvester.gather()) == [remote_id]
