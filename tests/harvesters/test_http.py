"""The guarded fetcher against a real local HTTP server; nothing leaves the loopback interface.

Every outgoing ``connect()`` of the process is recorded through a ``sys.addaudithook`` hook, so
the SSRF tests can assert that a refused address was never even connected to.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import socket
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from openpyxl import Workbook

from harvesters.errors import InvalidItem
from harvesters.http import (
    CompressionBomb,
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    FetchTimeout,
    GuardedFetcher,
    ResponseTooLarge,
    address_problem,
    check_xlsx,
    parse_allow_hosts,
    resolve_allowed,
)

LAST_MODIFIED = "Wed, 01 May 2024 08:00:00 GMT"
Route = Callable[[BaseHTTPRequestHandler], None]

# -- a real local server ------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: nothing leaks
    state: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up on purpose (refused bodies, timeouts)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        state = self.server.state
        state.requests.append((self.path, dict(self.headers)))
        route = state.routes.get(urlsplit(self.path).path)
        if route is not None:
            route(self)
            return
        path = state.root / unquote(urlsplit(self.path).path).lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        if etag == self.headers.get("If-None-Match") or (
            LAST_MODIFIED == self.headers.get("If-Modified-Since")
        ):
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", LAST_MODIFIED)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1, port 0: files from ``root`` plus custom ``routes``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stop = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.state = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def allow(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}"})

    def close(self) -> None:
        self.stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    local = LocalServer(tmp_path_factory.mktemp("www"))
    yield local
    local.close()


_CONNECTS: list[Any] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        _CONNECTS.append(args[1])


sys.addaudithook(_audit)  # cannot be removed; it only appends to a list


@pytest.fixture
def connects() -> list[Any]:
    """Addresses this process connects to during the test."""
    _CONNECTS.clear()
    return _CONNECTS


def respond(status: int, body: bytes = b"", **headers: str) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    return route


def redirect(location: str, status: int = 302) -> Route:
    return respond(status, Location=location)


def drip(state: LocalServer, *, headers_too: bool = False) -> Route:
    """Send a byte every 0.1 s until the client hangs up or the server stops."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.0 200 OK\r\n")
        if not headers_too:
            handler.wfile.write(b"Content-Type: text/csv\r\n\r\n")
        while not state.stop.wait(0.1):
            handler.wfile.write(b"X-Drip: 1\r\n" if headers_too else b"x")
            handler.wfile.flush()

    return route


def hang(state: LocalServer) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        state.stop.wait(10)

    return route


@functools.cache
def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * (30 * 1024 * 1024), compresslevel=9)


def fetch(policy: FetchPolicy, url: str, dest: Path, **kwargs: Any) -> Any:
    with GuardedFetcher(policy) as fetcher:
        return fetcher.fetch_to_file(url, dest, **kwargs)


# -- fetching ----------------------------------------------------------------------------------


def test_fetch_streams_to_file_with_hash_and_user_agent(server: LocalServer, tmp_path: Path):
    body = b"kecamatan,jumlah\nPontianak Kota,123\n"
    (server.root / "data.csv").write_bytes(body)
    result = fetch(FetchPolicy(allow_hosts=server.allow), server.url("/data.csv"), tmp_path)
    assert result.status == 200 and result.url == server.url("/data.csv")
    assert result.path.read_bytes() == body and result.path.parent == tmp_path
    assert result.sha256 == hashlib.sha256(body).hexdigest() and result.size == len(body)
    assert result.etag and result.last_modified == LAST_MODIFIED
    user_agent = server.requests[0][1]["User-Agent"]
    assert user_agent.startswith("one-data-harvester/") and "data.pontianak.go.id" in user_agent


def test_conditional_get_reports_not_modified(server: LocalServer, tmp_path: Path):
    (server.root / "data.csv").write_text("a\n1\n")
    policy = FetchPolicy(allow_hosts=server.allow)
    first = fetch(policy, server.url("/data.csv"), tmp_path)
    again = fetch(policy, server.url("/data.csv"), tmp_path, etag=first.etag)
    assert again.not_modified and again.path is None and again.status == 304
    assert server.requests[1][1]["If-None-Match"] == first.etag
    by_date = fetch(policy, server.url("/data.csv"), tmp_path, last_modified=LAST_MODIFIED)
    assert by_date.not_modified
    assert server.requests[2][1]["If-Modified-Since"] == LAST_MODIFIED
    changed = fetch(policy, server.url("/data.csv"), tmp_path, etag='"stale"')
    assert not changed.not_modified and changed.path is not None


def test_http_error_is_reported_with_status(server: LocalServer, tmp_path: Path):
    with pytest.raises(FetchFailed, match="HTTP 404") as caught:
        fetch(FetchPolicy(allow_hosts=server.allow), server.url("/missing.csv"), tmp_path)
    assert caught.value.status == 404 and caught.value.code == "fetch-failed"


def test_unexpected_304_without_validators_is_an_error(server: LocalServer, tmp_path: Path):
    server.routes["/odd"] = respond(304)
    with pytest.raises(FetchFailed, match="HTTP 304"):
        fetch(FetchPolicy(allow_hosts=server.allow), server.url("/odd"), tmp_path)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/data.csv", "gopher://x/", "data.csv"]
)
def test_only_http_and_https(url: str, tmp_path: Path, connects: list[Any]):
    with pytest.raises(FetchRefused, match="only http and https"):
        fetch(FetchPolicy(), url, tmp_path)
    assert connects == []


def test_credentials_in_url_are_refused_and_not_echoed(tmp_path: Path):
    with pytest.raises(FetchRefused, match="credentials") as caught:
        fetch(FetchPolicy(), "http://budi:rahasia@example.org/x.csv", tmp_path)
    assert "rahasia" not in str(caught.value)


# -- SSRF --------------------------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("localhost", "localhost resolves to"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is 127.0.0.1, a loopback address"),
    ("2130706433", "2130706433 is 127.0.0.1, a loopback address"),
    ("0x7f000001", "0x7f000001 is 127.0.0.1"),
    ("0177.0.0.1", "0177.0.0.1 is 127.0.0.1"),
    ("127.1", "127.1 is 127.0.0.1"),
]


@pytest.mark.parametrize(("host", "reason"), LOOPBACK_SPELLINGS)
def test_loopback_in_any_spelling_is_refused_before_connecting(
    host: str, reason: str, server: LocalServer, tmp_path: Path, connects: list[Any]
):
    (server.root / "data.csv").write_text("a\n1\n")
    url = server.url("/data.csv", host=host)
    with pytest.raises(FetchRefused) as caught:
        fetch(FetchPolicy(), url, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"refused {url}: ") and reason in message
    assert "loopback" in message and "ONEDATA_HARVEST_ALLOW_HOSTS" in message
    assert caught.value.code == "fetch-refused"
    assert not [a for a in connects if a[1] == server.port] and server.requests == []


@pytest.mark.parametrize(("host", "_reason"), LOOPBACK_SPELLINGS)
def test_loopback_in_any_spelling_is_fetched_when_allow_listed(
    host: str, _reason: str, server: LocalServer, tmp_path: Path
):
    (server.root / "data.csv").write_text("a\n1\n")
    for entry in (host, f"{host}:{server.port}"):
        policy = FetchPolicy(allow_hosts=frozenset({entry}))
        result = fetch(policy, server.url("/data.csv", host=host), tmp_path)
        assert result.path.read_text() == "a\n1\n"


def test_allow_list_port_must_match(server: LocalServer, tmp_path: Path):
    policy = FetchPolicy(allow_hosts=frozenset({f"127.0.0.1:{server.port + 1}"}))
    with pytest.raises(FetchRefused, match="loopback"):
        fetch(policy, server.url("/data.csv"), tmp_path)


@pytest.mark.parametrize(
    ("url", "address", "reason"),
    [
        ("http://10.0.0.1/data.csv", "10.0.0.1", "10.0.0.1 is a private address"),
        ("http://192.168.1.20/data.csv", "192.168.1.20", "is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
        ("http://100.64.0.7/", "100.64.0.7", "carrier-grade NAT"),
        ("http://0.0.0.0:8080/", "0.0.0.0", "unspecified"),
        ("http://224.0.0.1/", "224.0.0.1", "multicast"),
        ("http://240.0.0.1/", "240.0.0.1", "reserved"),
        ("http://[::1]/", "::1", "loopback"),
        ("http://[fd00::5]/", "fd00::5", "private"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
        ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1", "is 10.0.0.1, a private address"),
        ("https://167772161/", "167772161", "is 10.0.0.1, a private address"),
    ],
)
def test_non_public_addresses_are_refused_before_connecting(
    url: str, address: str, reason: str, tmp_path: Path, connects: list[Any]
):
    with pytest.raises(FetchRefused, match="refused") as caught:
        fetch(FetchPolicy(), url, tmp_path)
    assert reason in str(caught.value) and url in str(caught.value)
    assert connects == []
    # Allow-listed, the same host passes the check (checked without connecting: no traffic
    # may leave this machine).
    host = urlsplit(url).hostname or ""
    port = urlsplit(url).port or 80
    allowed = resolve_allowed(host, port, FetchPolicy(allow_hosts=frozenset({address})))
    assert allowed and connects == []


def test_redirect_to_disallowed_hosts_is_refused(
    server: LocalServer, tmp_path: Path, connects: list[Any]
):
    server.routes["/meta"] = redirect("http://169.254.169.254/latest/meta-data/iam/")
    server.routes["/lan"] = redirect("http://10.0.0.1/admin", status=301)
    server.routes["/local"] = redirect(server.url("/data.csv", host="localhost"), status=307)
    server.routes["/file"] = redirect("file:///etc/passwd")
    policy = FetchPolicy(allow_hosts=server.allow)
    for path, reason in [
        ("/meta", "169.254.169.254 is a link-local address (the cloud metadata service)"),
        ("/lan", "10.0.0.1 is a private address"),
        ("/local", "localhost resolves to"),
        ("/file", "only http and https"),
    ]:
        with pytest.raises(FetchRefused, match="refused") as caught:
            fetch(policy, server.url(path), tmp_path)
        assert reason in str(caught.value)
    assert {a[0] for a in connects} <= {"127.0.0.1"}  # the allowed server, and nothing else
    assert [p for p, _ in server.requests] == ["/meta", "/lan", "/local", "/file"]


def test_redirect_to_an_allow_listed_host_is_followed(server: LocalServer, tmp_path: Path):
    (server.root / "data.csv").write_text("a\n1\n")
    server.routes["/go"] = redirect(server.url("/data.csv", host="localhost"), status=301)
    policy = FetchPolicy(allow_hosts=server.allow | {"localhost"})
    result = fetch(policy, server.url("/go"), tmp_path)
    assert result.url == server.url("/data.csv", host="localhost")
    assert result.path.read_text() == "a\n1\n"


def test_session_credentials_do_not_follow_a_redirect_to_another_host(
    server: LocalServer, tmp_path: Path
):
    (server.root / "data.csv").write_text("a\n1\n")
    server.routes["/go"] = redirect(server.url("/data.csv", host="localhost"))
    server.routes["/same"] = redirect("/data.csv")
    with GuardedFetcher(FetchPolicy(allow_hosts=server.allow | {"localhost"})) as fetcher:
        fetcher.session.headers["Authorization"] = "token-ckan"
        fetcher.fetch_to_file(server.url("/go"), tmp_path)
        fetcher.fetch_to_file(server.url("/same"), tmp_path)
    sent = [headers.get("Authorization") for _, headers in server.requests]
    assert sent == ["token-ckan", None, "token-ckan", "token-ckan"]


def test_the_session_gets_default_timeouts(server: LocalServer):
    server.routes["/hang"] = hang(server)
    policy = FetchPolicy(allow_hosts=server.allow, read_timeout=0.5)
    with GuardedFetcher(policy) as fetcher, pytest.raises(requests.ReadTimeout):
        fetcher.session.get(server.url("/hang"))  # no timeout passed, as ckanapi does


def test_redirect_loop_stops_after_max_redirects(server: LocalServer, tmp_path: Path):
    server.routes["/loop"] = redirect("/loop")
    with pytest.raises(FetchFailed, match="more than 5 redirects"):
        fetch(FetchPolicy(allow_hosts=server.allow), server.url("/loop"), tmp_path)
    assert len(server.requests) == 6


def test_the_session_itself_checks_every_connection(server: LocalServer):
    # The check lives in the connection, so even a client that follows redirects by itself
    # (ckanapi through fetcher.session) cannot be steered to a private address.
    server.routes["/meta"] = redirect("http://169.254.169.254/latest/meta-data/")
    with GuardedFetcher(FetchPolicy()) as fetcher, pytest.raises(FetchRefused, match="loopback"):
        fetcher.session.get(server.url("/"), timeout=5)
    with GuardedFetcher(FetchPolicy(allow_hosts=server.allow)) as fetcher:
        with pytest.raises(FetchRefused, match="cloud metadata"):
            fetcher.session.get(server.url("/meta"), timeout=5)
        with pytest.raises(FetchRefused, match="proxy"):
            fetcher.session.get(server.url("/"), timeout=5, proxies={"http": server.url()})


def test_proxy_environment_is_ignored(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (server.root / "data.csv").write_text("a\n1\n")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.example.invalid:3128")
    result = fetch(FetchPolicy(allow_hosts=server.allow), server.url("/data.csv"), tmp_path)
    assert result.status == 200


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        ("127.0.0.2", "a loopback address"),
        ("::", "an unspecified address"),
        ("2002:7f00:1::", "embedded 127.0.0.1"),  # 6to4 wrapping loopback
        ("64:ff9b::a00:1", "embedded 10.0.0.1"),  # NAT64 wrapping a private address
        ("fd00:ec2::254", "cloud metadata"),
    ],
)
def test_address_problem(address: str, problem: str | None):
    import ipaddress

    found = address_problem(ipaddress.ip_address(address))
    assert found == problem if problem is None else problem in (found or "")


def test_numeric_hosts_are_parsed_not_resolved(connects: list[Any]):
    assert resolve_allowed("0x08080808", 443, FetchPolicy()) == ["8.8.8.8"]
    assert resolve_allowed("134744072", 443, FetchPolicy()) == ["8.8.8.8"]
    assert connects == []


def test_parse_allow_hosts():
    parsed = parse_allow_hosts("files.opd.local, 10.1.2.3:8080\n[fd00::5]:443  ::1")
    assert parsed == {"files.opd.local", "10.1.2.3:8080", "[fd00::5]:443", "::1"}
    policy = FetchPolicy(allow_hosts=parsed)
    assert policy.allows("FILES.opd.local.", 443) and policy.allows("10.1.2.3", 8080)
    assert not policy.allows("10.1.2.3", 80) and policy.allows("0:0:0:0:0:0:0:1", 1)
    assert parse_allow_hosts(None) == frozenset() and parse_allow_hosts("") == frozenset()
    with pytest.raises(ValueError, match="bad allow-list entry"):
        parse_allow_hosts("host:http")


# -- time and size limits ----------------------------------------------------------------------


def test_total_timeout_stops_a_slow_drip(server: LocalServer, tmp_path: Path):
    server.routes["/drip"] = drip(server)
    policy = FetchPolicy(allow_hosts=server.allow, read_timeout=5, total_timeout=1)
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match="total timeout of 1 s") as caught:
        fetch(policy, server.url("/drip"), tmp_path)
    assert time.monotonic() - started < 4 and caught.value.code == "fetch-timeout"
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


def test_total_timeout_stops_dripping_headers(server: LocalServer, tmp_path: Path):
    server.routes["/drip"] = drip(server, headers_too=True)
    policy = FetchPolicy(allow_hosts=server.allow, read_timeout=5, total_timeout=1)
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        fetch(policy, server.url("/drip"), tmp_path)
    assert time.monotonic() - started < 4


def test_read_timeout_on_a_server_that_never_answers(server: LocalServer, tmp_path: Path):
    server.routes["/hang"] = hang(server)
    policy = FetchPolicy(allow_hosts=server.allow, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match="timed out") as raised:
        fetch(policy, server.url("/hang"), tmp_path)
    assert time.monotonic() - started < 4
    assert "ConnectionPool" not in str(raised.value)  # said plainly, for the operator


def test_read_timeout_mid_body(server: LocalServer, tmp_path: Path):
    def stall(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"a,b\n")
        handler.wfile.flush()
        server.stop.wait(10)

    server.routes["/stall"] = stall
    policy = FetchPolicy(allow_hosts=server.allow, read_timeout=0.5)
    with pytest.raises(FetchTimeout, match="sent nothing for 0.5 s after 4 bytes"):
        fetch(policy, server.url("/stall"), tmp_path)


def test_connection_refused_is_reported_plainly(tmp_path: Path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}))
    with pytest.raises(FetchFailed, match="cannot fetch") as caught:
        fetch(policy, f"http://127.0.0.1:{port}/x.csv", tmp_path)
    assert "refused" in str(caught.value) and "object at 0x" not in str(caught.value)


def test_declared_size_over_the_cap_is_refused_up_front(server: LocalServer, tmp_path: Path):
    server.routes["/huge"] = respond(200, b"x" * 1024, Content_Length=str(2 * 1024**3))
    with pytest.raises(ResponseTooLarge, match="2,147,483,648 bytes") as caught:
        fetch(FetchPolicy(allow_hosts=server.allow), server.url("/huge"), tmp_path)
    assert caught.value.code == "file-too-large"
    assert list(tmp_path.iterdir()) == []


def test_streamed_size_is_counted(server: LocalServer, tmp_path: Path):
    server.routes["/big"] = respond(200, b"x" * 300_000)  # no Content-Length
    policy = FetchPolicy(allow_hosts=server.allow, max_bytes=100_000)
    with pytest.raises(ResponseTooLarge, match="limit of 100,000 bytes"):
        fetch(policy, server.url("/big"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_connection_dropped_mid_file(server: LocalServer, tmp_path: Path):
    server.routes["/cut"] = respond(200, b"a,b\n1,2\n", Content_Length="1000")
    with pytest.raises(FetchFailed, match="connection broken"):
        fetch(FetchPolicy(allow_hosts=server.allow), server.url("/cut"), tmp_path)


def test_gzip_body_is_decoded(server: LocalServer, tmp_path: Path):
    body = b"a,b\n" + b"1,2\n" * 1000
    server.routes["/gz"] = respond(200, gzip.compress(body), Content_Encoding="gzip")
    server.routes["/zlib"] = respond(200, zlib.compress(body), Content_Encoding="deflate")
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    server.routes["/raw"] = respond(
        200, raw.compress(body) + raw.flush(), Content_Encoding="deflate"
    )
    policy = FetchPolicy(allow_hosts=server.allow)
    for path in ("/gz", "/zlib", "/raw"):
        result = fetch(policy, server.url(path), tmp_path)
        assert result.path.read_bytes() == body
        assert result.sha256 == hashlib.sha256(body).hexdigest()
    assert server.requests[0][1]["Accept-Encoding"] == "gzip, deflate"


def test_chunked_gzip_body_is_decoded(server: LocalServer, tmp_path: Path):
    body = b"a,b\n" + b"1,2\n" * 50_000
    packed = gzip.compress(body)

    def chunked(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Encoding: gzip\r\nConnection: close\r\n\r\n"
        )
        for start in range(0, len(packed), 1000):
            piece = packed[start : start + 1000]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        handler.wfile.write(b"0\r\n\r\n")

    server.routes["/chunked"] = chunked
    result = fetch(FetchPolicy(allow_hosts=server.allow), server.url("/chunked"), tmp_path)
    assert result.path.read_bytes() == body and result.size == len(body)


def test_gzip_bomb_is_refused_by_ratio(server: LocalServer, tmp_path: Path):
    server.routes["/bomb"] = respond(200, gzip_bomb(), Content_Encoding="gzip")
    with pytest.raises(CompressionBomb, match="expands more than 200 times") as caught:
        fetch(FetchPolicy(allow_hosts=server.allow), server.url("/bomb"), tmp_path)
    assert caught.value.code == "compression-bomb"
    assert list(tmp_path.iterdir()) == []


def test_gzip_bomb_is_refused_by_size(server: LocalServer, tmp_path: Path):
    server.routes["/bomb"] = respond(200, gzip_bomb(), Content_Encoding="gzip")
    policy = FetchPolicy(allow_hosts=server.allow, max_bytes=5_000_000, max_ratio=10_000)
    with pytest.raises(ResponseTooLarge, match="limit of 5,000,000 bytes"):
        fetch(policy, server.url("/bomb"), tmp_path)


def test_unknown_content_encoding_is_refused(server: LocalServer, tmp_path: Path):
    server.routes["/br"] = respond(200, b"\x1b\x00", Content_Encoding="br")
    with pytest.raises(FetchFailed, match="only gzip and deflate"):
        fetch(FetchPolicy(allow_hosts=server.allow), server.url("/br"), tmp_path)


# -- JSON --------------------------------------------------------------------------------------


def test_get_json(server: LocalServer):
    payload = {"success": True, "result": {"count": 2}}
    server.routes["/api"] = respond(
        200, json.dumps(payload).encode(), Content_Type="application/json"
    )
    with GuardedFetcher(FetchPolicy(allow_hosts=server.allow)) as fetcher:
        assert fetcher.get_json(server.url("/api"), {"q": "tahun:2024", "rows": 10}) == payload
    path, headers = server.requests[0]
    assert path == "/api?q=tahun%3A2024&rows=10" and headers["Accept"] == "application/json"


def test_get_json_errors(server: LocalServer):
    error = {"success": False, "error": {"__type": "Search Index Error"}}
    server.routes["/err"] = respond(500, json.dumps(error).encode())
    server.routes["/html"] = respond(200, b"<html>maintenance</html>")
    server.routes["/big"] = respond(200, b"[" + b"1," * 1000 + b"1]")
    with GuardedFetcher(FetchPolicy(allow_hosts=server.allow, max_json_bytes=1000)) as fetcher:
        with pytest.raises(FetchFailed, match="HTTP 500") as caught:
            fetcher.get_json(server.url("/err"))
        assert caught.value.status == 500 and caught.value.payload == error
        with pytest.raises(FetchFailed, match="is not JSON"):
            fetcher.get_json(server.url("/html"))
        with pytest.raises(ResponseTooLarge):
            fetcher.get_json(server.url("/big"))
        with pytest.raises(FetchRefused, match="loopback"):
            fetcher.get_json(server.url("/err", host="localhost"))


# -- XLSX zip bombs ----------------------------------------------------------------------------


def test_check_xlsx_accepts_a_real_workbook(tmp_path: Path):
    book = Workbook()
    book.active.append(["kecamatan", "jumlah"])
    book.active.append(["Pontianak Barat", 42])
    book.save(tmp_path / "ok.xlsx")
    check_xlsx(tmp_path / "ok.xlsx")
    with pytest.raises(CompressionBomb, match="would expand to"):
        check_xlsx(tmp_path / "ok.xlsx", max_uncompressed=100)


def test_check_xlsx_refuses_a_zip_bomb(tmp_path: Path):
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 * 1024 * 1024))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(CompressionBomb, match="sheet1.xml expands"):
        check_xlsx(bomb)


def test_check_xlsx_refuses_a_non_zip(tmp_path: Path):
    (tmp_path / "fake.xlsx").write_text("a,b\n1,2\n")
    with pytest.raises(InvalidItem, match="not a valid XLSX"):
        check_xlsx(tmp_path / "fake.xlsx")
