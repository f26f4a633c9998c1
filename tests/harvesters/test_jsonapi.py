"""harvesters.jsonapi against a real local HTTP server shaped like a regional SatuData API."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from harvesters.base import HarvestedItem, HarvestResult, ItemOutcome, ItemResult, SourceConfig
from harvesters.http import FetchPolicy
from harvesters.jsonapi import JsonApiHarvester

Query = dict[str, str]
Api = Callable[[Query], Any]

KECAMATAN = [
    "Pontianak Barat",
    "Pontianak Kota",
    "Pontianak Selatan",
    "Pontianak Tenggara",
    "Pontianak Timur",
]
RECORDS: list[dict[str, Any]] = [
    {"kode_kecamatan": f"61.71.0{i + 1}", "nama_kecamatan": name, "jumlah": 1000 + i}
    for i, name in enumerate(KECAMATAN)
]
RECORDS[3]["keterangan"] = {"sumber": "Disdukcapil", "catatan": ["sementara"]}
RECORDS[4]["jumlah"] = None


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    api: Api
    queries: list[Query]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        query = dict(parse_qsl(urlsplit(self.path).query))
        self.server.queries.append(query)
        body = json.dumps(self.server.api(query)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalApi:
    def __init__(self) -> None:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.api = paged_by_number
        self.queries: list[Query] = []
        self._httpd.queries = self.queries
        port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{port}/api/v1/penduduk-kecamatan"
        self.allow = frozenset({f"127.0.0.1:{port}"})
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def answer(self, api: Api) -> None:
        self._httpd.api = api

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


def paged_by_number(query: Query) -> Any:
    """``?page=1&per_page=2`` → ``{"status": true, "data": {"items": [...], "total": 5}}``."""
    size = int(query.get("per_page", 2))
    page = int(query.get("page", 1))
    items = RECORDS[(page - 1) * size : page * size]
    return {"status": True, "data": {"items": items, "total": len(RECORDS)}}


@pytest.fixture
def api() -> Iterator[LocalApi]:
    local = LocalApi()
    yield local
    local.close()


@pytest.fixture
def make(api: LocalApi, tmp_path: Path) -> Callable[..., JsonApiHarvester]:
    def make(policy: FetchPolicy | None = None, **options: Any) -> JsonApiHarvester:
        return JsonApiHarvester(
            SourceConfig(name="penduduk-kecamatan", url=api.url, options=options),
            staging_dir=tmp_path / "staging",
            policy=policy or FetchPolicy(allow_hosts=api.allow),
        )

    return make


def harvest(harvester: JsonApiHarvester) -> tuple[HarvestResult, list[HarvestedItem]]:
    items: list[HarvestedItem] = []

    def keep(item: HarvestedItem, *, dry_run: bool) -> ItemResult:
        items.append(item)
        return ItemResult(item.remote_id, ItemOutcome.ADDED)

    return harvester.run(keep), items


def rows(item: HarvestedItem) -> list[list[str]]:
    with item.files[0].path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


METADATA = {"title": "Jumlah Penduduk per Kecamatan", "frequency": "tahunan", "tags": ["penduduk"]}


def test_pages_into_one_csv_with_the_union_of_keys(make: Any, api: LocalApi) -> None:
    result, (item,) = harvest(
        make(
            records_path="data.items",
            page_size_param="per_page",
            page_size=2,
            params={"tahun": 2024},
            metadata=METADATA,
        )
    )
    assert result.error is None and result.counts["added"] == 1
    assert [(q["page"], q["per_page"], q["tahun"]) for q in api.queries] == [
        ("1", "2", "2024"),
        ("2", "2", "2024"),
        ("3", "2", "2024"),
    ]  # page 3 is short: the last
    table = rows(item)
    assert table[0] == ["kode_kecamatan", "nama_kecamatan", "jumlah", "keterangan"]
    assert table[4] == [
        "61.71.04",
        "Pontianak Tenggara",
        "1003",
        '{"sumber": "Disdukcapil", "catatan": ["sementara"]}',
    ]
    assert table[5] == ["61.71.05", "Pontianak Timur", "", ""]
    staged = item.files[0]
    data = staged.path.read_bytes()
    assert (staged.sha256, staged.size, staged.format) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
        "csv",
    )
    assert item.remote_id == "penduduk-kecamatan" and item.metadata == METADATA
    assert item.raw["records"] == 5 and item.raw["pages"] == 3


def test_stops_at_an_empty_page_when_the_page_size_is_unknown(make: Any, api: LocalApi) -> None:
    _, (item,) = harvest(make(records_path="data.items"))
    assert [q["page"] for q in api.queries] == ["1", "2", "3", "4"]
    assert len(rows(item)) == 6
    assert item.metadata["title"] == "Penduduk Kecamatan"


def test_offset_paging_and_a_bare_list(make: Any, api: LocalApi) -> None:
    api.answer(lambda q: RECORDS[int(q["offset"]) : int(q["offset"]) + int(q["limit"])])
    _, (item,) = harvest(
        make(page_param="offset", paging="offset", page_size_param="limit", page_size=3)
    )
    assert [(q["offset"], q["limit"]) for q in api.queries] == [("0", "3"), ("3", "3")]
    assert len(rows(item)) == 6


def test_not_paged(make: Any, api: LocalApi) -> None:
    api.answer(lambda q: {"rows": RECORDS})
    _, (item,) = harvest(make(records_path="rows", page_param=None))
    assert api.queries == [{}] and len(rows(item)) == 6


def test_a_repeated_page_fails_the_item(make: Any, api: LocalApi) -> None:
    api.answer(lambda q: {"data": {"items": RECORDS[:2]}})  # ignores ?page
    result, items = harvest(make(records_path="data.items"))
    (failed,) = result.items
    assert items == [] and failed.outcome is ItemOutcome.FAILED
    assert failed.error is not None and "returned the same page twice" in failed.error
    assert len(api.queries) == 2


def test_max_pages_guard(make: Any, api: LocalApi) -> None:
    counter = itertools.count()
    api.answer(lambda q: [{"n": next(counter)}])  # never ends
    result, _ = harvest(make(max_pages=3))
    (failed,) = result.items
    assert failed.error is not None and "after 3 pages" in failed.error
    assert len(api.queries) == 3


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"status": False, "message": "token tidak valid"}, "nothing at records_path 'data.items'"),
        ({"data": {"items": {"a": 1}}}, "expected a list of records at 'data.items'"),
        ({"data": {"items": [1, 2]}}, "not all JSON objects"),
        ({"data": {"items": []}}, "returned no records"),
    ],
)
def test_unexpected_answers(make: Any, api: LocalApi, answer: Any, message: str) -> None:
    api.answer(lambda q: answer)
    result, _ = harvest(make(records_path="data.items"))
    (failed,) = result.items
    assert failed.error_type == "unexpected-response"
    assert failed.error is not None and message in failed.error


def test_loopback_is_refused_unless_allow_listed(make: Any, api: LocalApi) -> None:
    result, _ = harvest(make(policy=FetchPolicy()))
    (failed,) = result.items
    assert failed.error_type == "fetch-refused" and api.queries == []


@pytest.mark.parametrize(
    "options",
    [
        {"paging": "cursor"},
        {"page_size": 0},
        {"metadata": "judul"},
        {"records_path": 3},
    ],
)
def test_bad_options(make: Any, options: dict[str, Any]) -> None:
    result, _ = harvest(make(**options))
    assert result.error_type == "bad-config"
