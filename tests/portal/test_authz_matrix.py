"""The authorization matrix: every rule of the app's URL map × every principal × every dataset.

Generated from ``app.url_map.iter_rules()``: a new endpoint is exercised without anyone
remembering, and ``test_every_rule_is_covered`` fails until it is registered in
``tests/portal/authz_matrix_fixtures.py`` (``ROUTES``) or listed below (``EXEMPT``, ``SKIPPED``).

For GET (and HEAD) the bodies and headers are scanned for the markers of every dataset the
principal may not see (titles, descriptions, names, tags; row values for data), whatever the
route; statuses are checked against the route's policy. For mutating methods, principals without
the permission are refused and nothing changes, and no one gets through without a CSRF token.
Expectations come from the table in the fixtures module, never from ``portal.services.access``.

One world per database (SQLite and PostgreSQL), built once for the module.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from portal import create_app
from tests.conftest import ROOT, _truncate
from tests.portal.authz_matrix_fixtures import (
    BY_KEY,
    ORGS,
    PLAIN,
    PRINCIPALS,
    ROUTES,
    SESSIONS,
    SPECS,
    TOKENS,
    Outcome,
    Principal,
    Route,
    Variant,
    World,
    app_config,
    build_world,
    changed_tables,
    fingerprint,
    forbidden_markers,
    readable_text,
    reads_data,
    sees_metadata,
    sign_in_everyone,
    suggest,
    token_headers,
    unchecked,
)

#: Endpoints outside the matrix on purpose, with the reason.
EXEMPT: dict[str, str] = {
    "static": "files of portal/static: no data, no access rules",
    "oauth.authorize": "OAuth 2 consent: needs a registered client, a PKCE challenge and a "
    "redirect URI; covered end to end by tests/portal/test_oauth.py",
    "oauth.token": "OAuth 2 protocol endpoint: client-authenticated, CSRF-exempt by design "
    "(RFC 6749); covered by tests/portal/test_oauth.py",
    "oauth.revoke": "OAuth 2 protocol endpoint (RFC 7009); covered by tests/portal/test_oauth.py",
    "oauth.introspect": "OAuth 2 protocol endpoint (RFC 7662); covered by "
    "tests/portal/test_oauth.py",
}

#: Endpoints whose URL parameters the world cannot fill, with the reason. Empty today: every
#: parametrised rule has a provider in ROUTES (auth.reset_password is tried with an invalid
#: token only: a valid one is single-use and e-mailed, tests/portal/test_auth.py covers it).
SKIPPED: dict[str, str] = {}

#: Failures that are known and reported, not fixed here: (endpoint, principal, variant) →
#: reason. Each must still happen (a fixed one fails until its entry is removed).
KNOWN_LEAKS: dict[tuple[str, str, str], str] = {}

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: HEAD runs the GET view: checked (status as GET, headers scanned) for outsiders only, to save
#: time; the views do not look at the method.
HEAD_PRINCIPALS = frozenset({"anonymous", "member"})


# --- the rules, read at collection time -----------------------------------------------------


@dataclass(frozen=True)
class RuleInfo:
    endpoint: str
    rule: str
    methods: frozenset[str]
    arguments: frozenset[str]

    @property
    def id(self) -> str:
        return f"{self.endpoint}({self.rule})"

    @property
    def short_id(self) -> str:
        """The endpoint, and the rule too when the endpoint has several."""
        shared = sum(r.endpoint == self.endpoint for r in RULES) > 1
        return self.id if shared else self.endpoint


def _collect_rules() -> tuple[list[RuleInfo], str | None]:
    """The app's rules; an error (the app does not build) becomes one failing test."""
    folder = tempfile.mkdtemp(prefix="authz-rules-")
    try:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "collect-" + uuid.uuid4().hex,
                "DATABASE_URL": f"sqlite:///{folder}/rules.sqlite",
                "INSTANCE_PATH": folder,
                "STORAGE_URL": f"{folder}/storage",
            }
        )
        rules = [
            RuleInfo(
                r.endpoint,
                r.rule,
                frozenset(r.methods or ()) - {"OPTIONS", "HEAD"},
                frozenset(r.arguments),
            )
            for r in app.url_map.iter_rules()
        ]
        app.extensions["onedata.engine"].dispose()
        return sorted(rules, key=lambda r: (r.rule, r.endpoint)), None
    except Exception as exc:  # noqa: BLE001 - reported by test_every_rule_is_covered
        return [], f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


RULES, RULES_ERROR = _collect_rules()


def _route(info: RuleInfo) -> Route | None:
    """The registered route, or — for a new rule without parameters — a generic one, so it is
    scanned even before anyone registers it (test_every_rule_is_covered still fails)."""
    if info.endpoint in EXEMPT or info.endpoint in SKIPPED:
        return None
    route = ROUTES.get(info.endpoint)
    if route is None and not info.arguments:
        return Route(PLAIN, get=unchecked)
    return route


def _get_items() -> list[Any]:
    items = []
    for info in RULES:
        route = _route(info)
        if route is None or route.get is None or "GET" not in info.methods:
            continue
        principals = SESSIONS + (TOKENS if info.rule.startswith("/api/") else ())
        for p in principals:
            items.append(pytest.param(info, p.label, id=f"{info.short_id}-{p.label}"))
    return items


def _mutating_items() -> list[Any]:
    items = []
    for info in RULES:
        route = _route(info)
        if route is None or route.post is None:
            continue
        for method in sorted(info.methods & MUTATING):
            for p in SESSIONS:
                items.append(
                    pytest.param(info, method, p.label, id=f"{method}-{info.short_id}-{p.label}")
                )
    return items


# --- the world, once per database -----------------------------------------------------------


@dataclass
class Matrix:
    app: Flask
    world: World
    clients: dict[str, FlaskClient]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def matrix(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[Matrix]:
    """One app and one world per database backend, shared by the whole module."""
    root = tmp_path_factory.mktemp(f"authz-{request.param}")
    if request.param == "sqlite":
        path = root / "onedata.sqlite"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_database")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(root / "instance"),
            "STORAGE_URL": str(root / "storage"),
            "DATASETS_PATH": str(ROOT / "datasets"),
            **app_config(root),
        }
    )
    engine = app.extensions["onedata.engine"]
    try:
        if engine.dialect.name == "postgresql":
            _truncate(engine)  # whatever an earlier test left behind
        world = build_world(app, root)
        yield Matrix(app, world, sign_in_everyone(app))
    finally:
        if engine.dialect.name == "postgresql":
            _truncate(engine)
        engine.dispose()


# --- checking one response ------------------------------------------------------------------


def _url(matrix: Matrix, info: RuleInfo, variant: Variant) -> str:
    rule = _rule(matrix.app, info)
    values = variant.values(matrix.world)
    missing = info.arguments - values.keys()
    assert not missing, f"{info.id}: variant {variant.label} fills no {sorted(missing)}"
    built = rule.build(values, append_unknown=False)
    assert built is not None, f"{info.id}: cannot build with {values}"
    path = built[1]
    query = variant.query_string(matrix.world)
    return f"{path}?{query}" if query else path


def _rule(app: Flask, info: RuleInfo) -> Rule:
    for rule in app.url_map.iter_rules():
        if rule.endpoint == info.endpoint and rule.rule == info.rule:
            return rule
    raise AssertionError(f"{info.id} is not in the app's URL map")


def _client(matrix: Matrix, p: Principal) -> FlaskClient:
    # a token is presented without any browser session
    return matrix.clients["anonymous" if p.via_token else p.label]


def outcome(response: Any) -> Outcome:
    if response.status_code in (301, 302, 303, 307, 308):
        if urlsplit(response.location or "").path == "/login":
            return "login"
    return int(response.status_code)


def leaks(p: Principal, url: str, response: Any) -> list[str]:
    """Markers ``p`` may not see, found in the body or the headers (not those in ``url``
    itself: a name one asks for may be echoed, in a 404 or a sign-in redirect)."""
    asked = unquote(url)
    text = readable_text(response.get_data(), response.content_type or "")
    headers = unquote("\n".join(f"{k}: {v}" for k, v in response.headers.items()))
    found = []
    for marker, what in forbidden_markers(p).items():
        if marker in asked:
            continue
        if marker in text:
            found.append(f"{what} ({marker}) in the body")
        if marker in headers:
            found.append(f"{what} ({marker}) in the headers")
    return found


@dataclass
class Problems:
    """Failures of one test item, each naming route × principal × variant."""

    endpoint: str
    principal: str
    lines: list[str]
    known: list[str]
    hit: set[str]

    @classmethod
    def of(cls, endpoint: str, principal: str) -> Problems:
        return cls(endpoint, principal, [], [], set())

    def add(self, variant: str, url: str, message: str) -> None:
        key = (self.endpoint, self.principal, variant)
        line = f"{self.endpoint} × {self.principal} × {variant}: GET {url}: {message}"
        if key in KNOWN_LEAKS:
            self.hit.add(variant)
            self.known.append(f"{line} [known: {KNOWN_LEAKS[key]}]")
        else:
            self.lines.append(line)

    def conclude(self) -> None:
        stale = [
            v
            for (endpoint, principal, v) in KNOWN_LEAKS
            if (endpoint, principal) == (self.endpoint, self.principal) and v not in self.hit
        ]
        for variant in stale:
            self.lines.append(
                f"{self.endpoint} × {self.principal} × {variant}: listed in KNOWN_LEAKS but no "
                "longer happens: remove the entry"
            )
        if self.lines:
            pytest.fail("\n".join(self.lines + self.known), pytrace=False)
        if self.known:
            reasons = sorted({KNOWN_LEAKS[(self.endpoint, self.principal, v)] for v in self.hit})
            pytest.xfail(f"{len(self.known)} known: " + "; ".join(reasons))


# --- the rules are all covered --------------------------------------------------------------


def test_every_rule_is_covered() -> None:
    """Each rule and method is exercised, or exempt or skipped with a reason."""
    assert RULES_ERROR is None, f"the app does not build: {RULES_ERROR}"
    problems = []
    for info in RULES:
        if info.endpoint in EXEMPT or info.endpoint in SKIPPED:
            continue
        route = ROUTES.get(info.endpoint)
        if route is None:
            problems.append(
                f"new route {sorted(info.methods)} {info.rule} ({info.endpoint}) is not in the "
                "authorization matrix: add to ROUTES in tests/portal/authz_matrix_fixtures.py\n"
                f"    {suggest(info.endpoint, info.arguments, info.methods)}\n"
                "  or list it in EXEMPT / SKIPPED of tests/portal/test_authz_matrix.py with a "
                "reason"
            )
            continue
        if "GET" in info.methods and route.get is None:
            problems.append(f"{info.id} answers GET but its ROUTES entry has no get= policy")
        if info.methods & MUTATING and route.post is None:
            problems.append(
                f"{info.id} answers {sorted(info.methods & MUTATING)} but its ROUTES entry has "
                "no post= policy"
            )
        for variant in route.variants:
            if info.arguments and variant.values is PLAIN[0].values:
                problems.append(
                    f"{info.id}: variant {variant.label!r} fills none of {sorted(info.arguments)}"
                )
    # entries for endpoints absent from the URL map are harmless (a renamed endpoint shows up
    # above as a new one), and let the registry run ahead of routes being written elsewhere
    for endpoint in sorted(set(ROUTES) & (set(EXEMPT) | set(SKIPPED))):
        problems.append(f"{endpoint} is both in ROUTES and exempt/skipped")
    assert not problems, "\n".join(problems)


# --- GET and HEAD ---------------------------------------------------------------------------


@pytest.mark.parametrize(("info", "principal"), _get_items())
def test_get(matrix: Matrix, info: RuleInfo, principal: str) -> None:
    """No 5xx, the expected status, no marker the principal may not see; HEAD agrees."""
    route = _route(info)
    assert route is not None and route.get is not None
    p = PRINCIPALS[principal]
    client = _client(matrix, p)
    headers = token_headers(p, matrix.world)
    problems = Problems.of(info.endpoint, principal)
    for variant in route.variants:
        url = _url(matrix, info, variant)
        response = client.get(url, headers=headers)
        try:
            got = outcome(response)
            if response.status_code >= 500:
                problems.add(variant.label, url, f"{response.status_code} (server error)")
            expected = route.get(p, variant, url)
            if expected is not None and got not in expected:
                problems.add(
                    variant.label, url, f"got {got}, expected {sorted(map(str, expected))}"
                )
            for leak in leaks(p, url, response):
                problems.add(variant.label, url, f"LEAK: {leak}")
            if response.status_code == 200:
                for missing in _not_shown(route, p, variant, response):
                    problems.add(variant.label, url, missing)
        finally:
            response.close()
        if principal not in HEAD_PRINCIPALS:
            continue
        head = client.head(url, headers=headers)
        try:
            if outcome(head) != got:
                problems.add(variant.label, url, f"HEAD gives {outcome(head)}, GET gave {got}")
            for leak in leaks(p, url, head):
                problems.add(variant.label, url, f"LEAK (HEAD): {leak}")
        finally:
            head.close()
    problems.conclude()


def _not_shown(route: Route, p: Principal, variant: Variant, response: Any) -> list[str]:
    """The markers a 200 must carry (so the scan is not blind)."""
    spec = BY_KEY.get(variant.dataset or "")
    if spec is None or not variant.exists:
        return []
    text = readable_text(response.get_data(), response.content_type or "")
    missing = []
    if "metadata" in route.shows and spec.title not in text:
        missing.append(f"the page does not show {spec.title}: is the scan blind?")
    if "data" in route.shows and spec.has_data and reads_data(p, spec) and spec.value not in text:
        missing.append(f"the data {spec.value} is not served to a principal who may read it")
    return missing


# --- mutating methods -----------------------------------------------------------------------


@pytest.mark.parametrize(("info", "method", "principal"), _mutating_items())
def test_mutation_refused(matrix: Matrix, info: RuleInfo, method: str, principal: str) -> None:
    """Without a CSRF token nobody gets through; without the permission, a valid token does not
    help either; and nothing changes in the database."""
    route = _route(info)
    assert route is not None and route.post is not None
    post = route.post
    p = PRINCIPALS[principal]
    client = _client(matrix, p)
    lines = []
    for variant in route.variants:
        url = _url(matrix, info, variant)
        payload = post.payload(matrix.world)
        probes: list[tuple[str, dict[str, str], frozenset[Outcome]]] = []
        if post.csrf:
            csrf_less = (
                frozenset({401})
                if url.startswith("/api/") and not p.signed_in
                else frozenset({400})
            )
            probes.append(("without a CSRF token", {}, csrf_less))
        if not post.allowed(p, variant):
            token = _csrf_token(client)
            expected = post.refused(p, variant, url)
            assert expected is not None
            probes.append(("with a valid CSRF token", {"csrf_token": token}, expected))
        before = fingerprint(matrix.app) if probes else {}
        for how, extra, expected in probes:
            data = {**payload, **extra}
            kwargs: dict[str, Any] = {"json": payload} if post.json else {"data": data}
            if "csrf_token" in extra:
                kwargs["headers"] = {"X-CSRFToken": extra["csrf_token"]}
            response = client.open(url, method=method, **kwargs)
            try:
                got = outcome(response)
                where = f"{method} {info.endpoint} × {principal} × {variant.label} ({how})"
                if got not in expected:
                    body = response.get_data(as_text=True)[:200]
                    lines.append(
                        f"{where}: got {got}, expected {sorted(map(str, expected))}: {body!r}"
                    )
                after = fingerprint(matrix.app)
                changed = changed_tables(before, after)
                if changed:
                    lines.append(f"{where}: CHANGED {', '.join(changed)}")
                before = after
                for leak in leaks(p, url, response):
                    lines.append(f"{where}: LEAK: {leak}")
            finally:
                response.close()
    assert not lines, "\n".join(lines)


CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _csrf_token(client: FlaskClient) -> str:
    """The session's CSRF token, from a page that carries a form."""
    for page in ("/", "/login", "/account"):
        response = client.get(page)
        found = CSRF.search(response.get_data(as_text=True))
        response.close()
        if found:
            return found.group(1)
    raise AssertionError("no page carries a CSRF token")


# --- search results, counts, organizations --------------------------------------------------

TITLE = re.compile(r"LEAK-([a-z-]+?)-title")


def _expected(p: Principal, org: str | None = None) -> set[str]:
    return {s.key for s in SPECS if sees_metadata(p, s) and (org is None or s.org == org)}


def _keys_in(text: str) -> set[str]:
    return set(TITLE.findall(text))


def _meta_count(text: str, before: str = r'class="meta">') -> int:
    found = re.search(before + r"\s*(\d+)", text)
    assert found, f"no count after {before!r}"
    return int(found.group(1))


@pytest.mark.parametrize("principal", [p.label for p in (*SESSIONS, *TOKENS)])
def test_search_and_counts(matrix: Matrix, principal: str) -> None:
    """Search results, totals, tag filters and organization counts hold exactly the datasets the
    principal may see (API for everyone, HTML pages for browser sessions)."""
    p = PRINCIPALS[principal]
    client = _client(matrix, p)
    headers = token_headers(p, matrix.world)
    visible = _expected(p)
    problems = []

    def api(url: str) -> dict[str, Any]:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code)
        body: dict[str, Any] = response.get_json()
        return body

    def check(what: str, got: set[str] | int, expected: set[str] | int) -> None:
        if got != expected:
            problems.append(f"{principal}: {what}: got {got}, expected {expected}")

    body = api("/api/v1/datasets?q=LEAK&page_size=100")
    check(
        "API q=LEAK names", {r["name"] for r in body["results"]}, {BY_KEY[k].name for k in visible}
    )
    check("API q=LEAK count", body["count"], len(visible))
    body = api("/api/v1/datasets?q=LEAKVAL&page_size=100")
    rows_found = {r["name"] for r in body["results"]}
    readable = {s.name for s in SPECS if reads_data(p, s)}
    check("API q=LEAKVAL (row values) outside readable data", rows_found - readable, set())
    for key, (name, _title) in ORGS.items():
        body = api(f"/api/v1/datasets?organization={name}&page_size=100")
        check(f"API organization={name} count", body["count"], len(_expected(p, key)))
    for s in SPECS:
        body = api(f"/api/v1/datasets?tag={s.tag}")
        check(f"API tag={s.tag} count", body["count"], int(s.key in visible))
    counts = {o["name"]: o["dataset_count"] for o in api("/api/v1/organizations")["results"]}
    check(
        "API organization counts",
        counts,  # type: ignore[arg-type]
        {name: len(_expected(p, key)) for key, (name, _t) in ORGS.items()},
    )

    if not p.via_token:
        text = _page(client, "/dataset?q=LEAK")
        check("/dataset?q=LEAK titles", _keys_in(text), visible)
        check("/dataset?q=LEAK count", _meta_count(text), len(visible))
        text = _page(client, "/dataset")
        check("/dataset titles", _keys_in(text), visible)
        check("/dataset count", _meta_count(text), len(visible))
        text = _page(client, "/")
        check("home count", _meta_count(text), len(visible))
        for key, (name, _title) in ORGS.items():
            text = _page(client, f"/organization/{name}")
            check(f"/organization/{name} titles", _keys_in(text), _expected(p, key))
            check(f"/organization/{name} count", _meta_count(text), len(_expected(p, key)))
            text = _page(client, "/organization")
            count = _meta_count(
                text, f'href="/organization/{name}">[^<]*</a>\\s*<span class="meta">'
            )
            check(f"/organization count of {name}", count, len(_expected(p, key)))
    assert not problems, "\n".join(problems)


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)
