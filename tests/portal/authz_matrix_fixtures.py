"""The world, the principals, the expectations and the route registry of the authorization
matrix (``tests/portal/test_authz_matrix.py``).

- **World**: OPDs ``dinas-a`` (owner of a dataset for every access level × lifecycle state) and
  ``dinas-b``; every dataset built through the real services (folder harvests, trusted or not,
  a quarantined file for drafts, a second harvest with no grace period for withdrawals; access
  requests granted by a steward), each carrying unique marker strings.
- **Principals**: who asks: the seven roles of the issue through a browser session (signed in
  through the real login, TOTP for stewards and admins), and a few API tokens for ``/api/`` routes.
- **Expectations**: a small table written from DESIGN.md ("Dataset access levels") — on purpose
  *not* computed by ``portal.services.access``, so a bug there shows up here.
- **ROUTES**: endpoint name → how to fill its URL parameters (``variants``), who may GET it
  (``get``), who may POST/PUT/DELETE to it (``post``). A new endpoint needs one line here.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal import db
from portal.harvesting import run_one
from portal.models import (
    AccessRequest,
    Base,
    Dataset,
    HarvestJob,
    Organization,
    RequestStatus,
    Role,
    SecurityEvent,
    User,
    utcnow,
)
from portal.services import access_requests, accounts, oauth_clients
from portal.services.harvest import create_source
from portal.services.organizations import ensure_organization
from tests.portal.auth_helpers import PASSWORD, enrol, login
from tests.portal.helpers import write_dataset, write_schemas

# --- the datasets ---------------------------------------------------------------------------

ORGS = {"a": ("dinas-a", "Dinas Pemilik Uji"), "b": ("dinas-b", "Dinas Lain Uji")}
LEVELS = ("public", "restricted", "internal")
STATES = ("draft", "in-review", "published", "withdrawn")
#: The model's value of each state of a spec key.
STATE_VALUES = {
    "draft": "draft",
    "in-review": "in_review",
    "published": "published",
    "withdrawn": "withdrawn",
}
PURPOSE = "Penelitian harga pangan di Kota Pontianak untuk tesis magister."


@dataclass(frozen=True)
class Spec:
    """One dataset of the world and its markers (unique strings no other dataset contains)."""

    org: str  # "a" or "b"
    level: str
    state: str

    @property
    def key(self) -> str:
        return f"{self.org}-{self.level}-{self.state}"

    @property
    def name(self) -> str:
        return f"leakname-{self.key}"

    @property
    def title(self) -> str:
        return f"LEAK-{self.key}-title"

    @property
    def description(self) -> str:
        return f"LEAKDESC-{self.key}"

    @property
    def tag(self) -> str:
        return f"leaktag-{self.key}"

    @property
    def value(self) -> str:
        """A cell of its table: seen only by those who may read the data."""
        return f"LEAKVAL-{self.key}"

    @property
    def has_data(self) -> bool:
        """Whether a published version exists (a withdrawn dataset keeps its versions)."""
        return self.state in ("published", "withdrawn")

    @property
    def metadata_markers(self) -> dict[str, str]:
        return {
            self.title: f"title of {self.key}",
            self.description: f"description of {self.key}",
            self.name: f"name of {self.key}",
            self.tag: f"tag of {self.key}",
        }

    @property
    def data_markers(self) -> dict[str, str]:
        return {self.value: f"row value of {self.key}"}


SPECS: tuple[Spec, ...] = (
    *(Spec("a", level, state) for level in LEVELS for state in STATES),
    Spec("b", "public", "published"),
    Spec("b", "restricted", "published"),
    Spec("b", "internal", "published"),
    Spec("b", "internal", "draft"),
)
BY_KEY = {s.key: s for s in SPECS}
#: Datasets the "member with a grant" was granted (a-restricted-withdrawn while still published).
#: a-internal-published was restricted when granted, then its OPD made it internal: a grant
#: must not outlive the reclassification.
RECLASSIFIED = frozenset({"a-internal-published"})
GRANTED = frozenset(
    {"a-restricted-published", "a-restricted-withdrawn", "b-restricted-published", *RECLASSIFIED}
)

# --- who asks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """A role, through a browser session (``scopes is None``) or an API token."""

    label: str
    role: str  # anonymous, member, producer, steward, admin
    user: str | None = None  # username
    org: str | None = None  # the OPD of a producer
    grants: frozenset[str] = frozenset()
    scopes: frozenset[str] | None = None
    #: How the token is presented: bearer, raw (CKAN) or ckan (X-CKAN-API-Key).
    header: str = "bearer"

    @property
    def signed_in(self) -> bool:
        return self.user is not None

    @property
    def via_token(self) -> bool:
        return self.scopes is not None


ANONYMOUS = Principal("anonymous", "anonymous")
SESSIONS: tuple[Principal, ...] = (
    ANONYMOUS,
    Principal("member", "member", "anggota"),
    Principal("member_granted", "member", "peneliti", grants=GRANTED),
    Principal("producer_a", "producer", "produsen-a", org="a"),
    Principal("producer_b", "producer", "produsen-b", org="b"),
    Principal("steward", "steward", "walidata"),
    Principal("admin", "admin", "pengelola"),
)
READ = frozenset({"read"})
READ_RESTRICTED = frozenset({"read", "read-restricted"})
STEWARD_SCOPES = frozenset({"read", "read-restricted", "steward"})
#: Tokens, tried on every ``/api/`` route (one of each way to present a token).
TOKENS: tuple[Principal, ...] = (
    Principal("member_granted~read", "member", "peneliti", grants=GRANTED, scopes=READ),
    Principal(
        "member_granted~read-restricted",
        "member",
        "peneliti",
        grants=GRANTED,
        scopes=READ_RESTRICTED,
        header="ckan",
    ),
    Principal("producer_a~read", "producer", "produsen-a", org="a", scopes=READ),
    Principal(
        "producer_a~read-restricted",
        "producer",
        "produsen-a",
        org="a",
        scopes=READ_RESTRICTED,
        header="raw",
    ),
    Principal("steward~read-restricted", "steward", "walidata", scopes=READ_RESTRICTED),
    Principal("steward~steward", "steward", "walidata", scopes=STEWARD_SCOPES, header="raw"),
    Principal("admin~steward", "admin", "pengelola", scopes=STEWARD_SCOPES, header="ckan"),
)
PRINCIPALS = {p.label: p for p in (*SESSIONS, *TOKENS)}
ROLES = {
    "member": Role.MEMBER,
    "producer": Role.PRODUCER,
    "steward": Role.STEWARD,
    "admin": Role.ADMIN,
}

# --- the expectations (DESIGN.md, "People and roles" and "Dataset access levels") -----------
#
# public data: everyone, once published; restricted: metadata to everyone once published, data
# to granted members, stewards and the owning OPD; internal: never outside the owning OPD and
# stewards; draft / in review / withdrawn: only the owning OPD and stewards.
# Admins: DESIGN.md lists them with neither; portal/services/access.py gives them everything
# (ROLE_PERMISSIONS[ADMIN] = every permission, Actor.is_staff). We follow the service here and
# report the difference. Tokens: a ``read`` token ignores grants and OPD membership, only a token
# with the ``steward`` scope acts with a steward's (or admin's) full rights.


def is_staff(p: Principal) -> bool:
    return p.role in ("steward", "admin") and (p.scopes is None or "steward" in p.scopes)


def widened(p: Principal) -> bool:
    """Grants and OPD membership count (a browser session, or a read-restricted token)."""
    return p.scopes is None or "read-restricted" in p.scopes


def owns(p: Principal, s: Spec) -> bool:
    return p.role == "producer" and p.org == s.org and widened(p)


def sees_metadata(p: Principal, s: Spec) -> bool:
    return is_staff(p) or owns(p, s) or (s.state == "published" and s.level != "internal")


def reads_data(p: Principal, s: Spec) -> bool:
    if is_staff(p) or owns(p, s):
        return True
    if s.state != "published":
        return False
    if s.level == "public":
        return True
    return s.level == "restricted" and s.key in p.grants and widened(p)


@functools.cache
def forbidden_markers(p: Principal) -> dict[str, str]:
    """Every marker ``p`` must never receive, with what it is (do not modify the result)."""
    found: dict[str, str] = {}
    for s in SPECS:
        if not sees_metadata(p, s):
            found.update(s.metadata_markers)
        if not reads_data(p, s):
            found.update(s.data_markers)
    return found


# --- the world ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    resource_id: str


@dataclass
class World:
    datasets: dict[str, Row]
    orgs: dict[str, str]  # "a" → organization name
    users: dict[str, int]  # username → id
    tokens: dict[str, str]  # token principal label → secret
    member_token_id: int  # a token of "anggota" (object-level checks of the token routes)
    pending_request_id: int  # "anggota" asked for a-restricted-published
    grant_request_id: int  # "peneliti"'s grant of a-restricted-published
    jobs: dict[str, int]  # source name → id of its last job
    oauth_client_id: str  # a registered OAuth client
    sources: list[str]
    first_event_seq: int


def _csv(value: str, *, valid: bool) -> str:
    price = "13000" if valid else "-5"  # a negative price fails the schema: quarantined, a draft
    return f"tanggal,komoditas,harga\n2024-01-02,{value},{price}\n2024-01-03,Gula,17500\n"


def app_config(root: Path) -> dict[str, Any]:
    """Settings of the matrix app (on top of the test defaults)."""
    return {
        "SCHEMAS_PATH": str(write_schemas(root / "schemas")),
        "HARVEST_WITHDRAW_GRACE_DAYS": 0,  # a dataset missing at its source is withdrawn at once
        "PAGE_SIZE": 50,  # the whole world on one page
    }


def build_world(app: Flask, root: Path) -> World:
    """Create the world through the services; the harvests run as ``onedata harvest run`` does."""
    folders: dict[str, Path] = {}
    with app.app_context(), db.transaction() as session:
        for key, (name, title) in ORGS.items():
            org = ensure_organization(session, name=name, title=title)
            for trusted in (True, False):
                source = f"sumber-{key}-{'terpercaya' if trusted else 'tinjauan'}"
                folders[source] = root / source
                folders[source].mkdir(parents=True)
                create_source(
                    session,
                    kind="folder",
                    url=str(folders[source]),
                    organization=org,
                    name=source,
                    title=f"Sumber {source}",
                    trusted=trusted,
                )
    for s in SPECS:
        _write(folders, s, "restricted" if s.key in RECLASSIFIED else s.level)
    jobs = {}
    for source in folders:
        summary = run_one(app, source)
        assert summary.error is None, (source, summary.error)
        jobs[source] = summary.job_id

    users = _make_users(app)
    with app.app_context(), db.transaction() as session:
        steward = accounts.actor_for(session, session.get(User, users["walidata"]))
        researcher = accounts.actor_for(session, session.get(User, users["peneliti"]))
        member = accounts.actor_for(session, session.get(User, users["anggota"]))
        by_name = {d.name: d for d in session.scalars(select(Dataset))}
        grant_id = 0
        for key in sorted(GRANTED):
            asked = access_requests.request_access(
                session, researcher, by_name[BY_KEY[key].name], PURPOSE
            )
            access_requests.decide(
                session, steward, asked, True, "untuk penelitian", utcnow() + timedelta(days=30)
            )
            if key == "a-restricted-published":
                grant_id = asked.id
        pending = access_requests.request_access(
            session, member, by_name[BY_KEY["a-restricted-published"].name], PURPOSE
        )
        pending_id = pending.id

    # reclassification: the sidecar says internal now, the next harvest applies it
    for key in RECLASSIFIED:
        _write(folders, BY_KEY[key], BY_KEY[key].level)
    # withdrawal: the files vanish at the source, the next harvest withdraws (no grace period)
    for s in SPECS:
        if s.state == "withdrawn":
            for path in folders[f"sumber-{s.org}-terpercaya"].glob(f"{s.name}.*"):
                path.unlink()
    for source in folders:
        if source.endswith("terpercaya"):
            summary = run_one(app, source)
            assert summary.error is None, (source, summary.error)
            jobs[source] = summary.job_id

    with app.app_context(), db.transaction() as session:
        tokens = {}
        for p in TOKENS:
            user = session.get(User, users[p.user or ""])
            assert p.scopes is not None
            tokens[p.label] = accounts.issue_token(
                session, user, name=p.label, scopes=sorted(p.scopes)
            ).secret
        own = accounts.issue_token(
            session, session.get(User, users["anggota"]), name="milik-anggota", scopes=["read"]
        )
        member_token_id = own.token.id
        admin = accounts.actor_for(session, session.get(User, users["pengelola"]))
        client = oauth_clients.register_client(
            session,
            admin,
            name="Aplikasi Uji",
            redirect_uris=["https://aplikasi.example.org/callback"],
            scopes=["read"],
            grant_types=["authorization_code"],
        ).client.client_id
        datasets = {}
        for s in SPECS:
            found = session.scalars(select(Dataset).where(Dataset.name == s.name)).one()
            assert (found.access_level.value, found.state.value) == (
                s.level,
                STATE_VALUES[s.state],
            ), f"{s.key} came out {found.access_level.value}/{found.state.value}"
            assert found.organization.name == ORGS[s.org][0]
            assert len(found.resources) == 1
            resource = found.resources[0]
            assert (resource.current_version is not None) == s.has_data, s.key
            datasets[s.key] = Row(found.id, found.name, resource.id)
        grants = session.scalars(
            select(AccessRequest).where(AccessRequest.status == RequestStatus.GRANTED)
        ).all()
        assert {g.dataset.name for g in grants} == {BY_KEY[k].name for k in GRANTED}
        first_seq = session.scalar(select(SecurityEvent.seq).order_by(SecurityEvent.seq))
        assert first_seq is not None
        assert session.scalar(select(HarvestJob.id).order_by(HarvestJob.id)) is not None
        orgs = {k: name for k, (name, _t) in ORGS.items()}
        assert set(session.scalars(select(Organization.name))) == set(orgs.values())
    return World(
        datasets=datasets,
        orgs=orgs,
        users=users,
        tokens=tokens,
        member_token_id=member_token_id,
        pending_request_id=pending_id,
        grant_request_id=grant_id,
        jobs=jobs,
        oauth_client_id=client,
        sources=sorted(folders),
        first_event_seq=first_seq,
    )


def _write(folders: dict[str, Path], s: Spec, level: str) -> None:
    trusted = s.state in ("published", "withdrawn")
    write_dataset(
        folders[f"sumber-{s.org}-{'terpercaya' if trusted else 'tinjauan'}"],
        s.name,
        _csv(s.value, valid=s.state != "draft"),
        title=s.title,
        description=s.description,
        access_level=level,
        tags=[s.tag],
    )


def _make_users(app: Flask) -> dict[str, int]:
    ids = {}
    with app.app_context(), db.transaction() as session:
        orgs = {
            k: session.scalars(select(Organization).where(Organization.name == n)).one()
            for k, (n, _t) in ORGS.items()
        }
        for p in SESSIONS:
            if p.user is None:
                continue
            user = accounts.create_user(
                session, username=p.user, password=PASSWORD, role=ROLES[p.role]
            )
            if p.org:
                accounts.set_role(session, user, Role.PRODUCER, [orgs[p.org]])
            ids[p.user] = user.id
    return ids


def sign_in_everyone(app: Flask) -> dict[str, FlaskClient]:
    """One client per session principal, signed in through the real pages (TOTP enrolment for
    stewards and admins, as ``tests/portal/auth_helpers.enrol`` does)."""
    clients = {}
    for p in SESSIONS:
        client = app.test_client()
        if p.user is not None:
            if p.role in ("steward", "admin"):
                enrol(client, app, p.user)
            else:
                response = login(client, p.user)
                assert response.status_code == 302, (p.label, response.status_code)
            assert client.get("/account").status_code == 200, p.label
        clients[p.label] = client
    return clients


def token_headers(p: Principal, world: World) -> dict[str, str]:
    if not p.via_token:
        return {}
    secret = world.tokens[p.label]
    if p.header == "raw":
        return {"Authorization": secret}
    if p.header == "ckan":
        return {"X-CKAN-API-Key": secret}
    return {"Authorization": f"Bearer {secret}"}


# --- what changed ---------------------------------------------------------------------------

#: Written by refusals themselves (the security log, throttles) or by using a token.
VOLATILE_TABLES = frozenset(
    {"security_event", "security_log_head", "security_checkpoint", "throttle_hit"}
)
VOLATILE_COLUMNS = frozenset({"api_token.last_used_at", "user_account.last_login_at"})


def fingerprint(app: Flask) -> dict[str, list[str]]:
    """Every row of every non-volatile table, as sorted text."""
    tables: dict[str, list[str]] = {}
    with app.app_context(), db.get_engine().connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in VOLATILE_TABLES:
                continue
            keep = [c for c in table.columns if f"{table.name}.{c.name}" not in VOLATILE_COLUMNS]
            rows = conn.execute(select(*keep)).all()
            tables[table.name] = sorted(repr(tuple(row)) for row in rows)
    return tables


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))


# --- reading what came back -----------------------------------------------------------------


def readable_text(data: bytes, content_type: str = "") -> str:
    """A response body as text to scan, opening the containers an export may come in
    (ZIP-based XLSX/ODS, gzip; Parquet through pyarrow when it is installed)."""
    texts = [data.decode("utf-8", "replace")]
    if data[:2] == b"\x1f\x8b":
        try:
            texts.append(readable_text(gzip.decompress(data)))
        except OSError:
            pass
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    texts.append(archive.read(member).decode("utf-8", "replace"))
        except zipfile.BadZipFile:
            pass
    if data[:4] == b"PAR1" or "parquet" in content_type:
        try:
            import pyarrow.parquet as pq  # type: ignore[import-not-found]

            texts.append(json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str))
        except ImportError:
            texts.append("[parquet: install pyarrow to scan it]")
    return "\n".join(texts)


# --- URL parameters -------------------------------------------------------------------------

Values = Callable[[World], dict[str, Any]]


def _no_values(_world: World) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Variant:
    """One way to fill a rule: its URL values, a query string, the dataset it addresses."""

    label: str
    values: Values = _no_values
    query: str | Callable[[World], str] = ""  # a query string, or how to make one
    dataset: str | None = None  # the Spec key this variant is about
    exists: bool = True  # False: a missing (or mismatched) object, 404 even for those allowed
    org: str | None = None  # the OPD ("a", "b") owning the object (sources, organizations)
    about: str = "metadata"  # what of ``dataset`` it reaches: "metadata" or "data"

    def query_string(self, world: World) -> str:
        return self.query(world) if callable(self.query) else self.query


PLAIN = (Variant("-"),)


def queries(*strings: str) -> tuple[Variant, ...]:
    return tuple(Variant(q or "-", query=q) for q in strings)


def _dataset_values(key: str, resource_of: str | None, with_resource: bool) -> Values:
    def values(world: World) -> dict[str, Any]:
        found: dict[str, Any] = {"name": world.datasets[key].name}
        if with_resource:
            found["resource_id"] = world.datasets[resource_of or key].resource_id
        return found

    return values


def dataset_variants(*, resource: bool = False, query: str = "") -> tuple[Variant, ...]:
    """Every dataset of the world, a missing one and (with ``resource``) mismatched ids."""
    found = [
        Variant(s.key, _dataset_values(s.key, None, resource), query=query, dataset=s.key)
        for s in SPECS
    ]

    def missing(world: World) -> dict[str, Any]:
        values: dict[str, Any] = {"name": "leakname-missing"}
        if resource:
            values["resource_id"] = world.datasets["a-public-published"].resource_id
        return values

    found.append(Variant("missing", missing, query=query, exists=False))
    if resource:
        # a public dataset's name with another dataset's resource id: never that resource
        for other in ("a-internal-published", "a-restricted-published", "a-public-withdrawn"):
            found.append(
                Variant(
                    f"a-public-published+resource-of-{other}",
                    _dataset_values("a-public-published", other, True),
                    query=query,
                    exists=False,
                )
            )

        def unknown(world: World) -> dict[str, Any]:
            return {"name": world.datasets["a-public-published"].name, "resource_id": "nope"}

        found.append(
            Variant("a-public-published+missing-resource", unknown, query=query, exists=False)
        )
    return tuple(found)


def _const(**values: Any) -> Values:
    return lambda _world: dict(values)


def each(variants: Iterable[Variant], arg: str, values: Iterable[str]) -> tuple[Variant, ...]:
    """Every variant once per value of one more URL parameter (an export format, say):
    ``each(RESOURCES, "fmt", ("json", "xlsx", "parquet"))``."""

    def add(v: Variant, value: str) -> Values:
        return lambda w: {**v.values(w), arg: value}

    return tuple(
        replace(v, label=f"{v.label}/{value}", values=add(v, value))
        for value in values
        for v in variants
    )


#: CKAN actions that list or count (``/api/action/<action>``, ``/api/3/action/<action>``).
CKAN_LISTS = (
    "package_list",
    "current_package_list_with_resources?limit=1000",
    "package_search?q=LEAK&rows=1000",
    "package_search?q=LEAKVAL&rows=1000",
    'package_search?fq=organization:dinas-a&rows=1000&facet.field=["tags","organization"]',
    "organization_list?all_fields=true",
    "organization_show?id=dinas-a&include_datasets=true",
    "organization_show?id=dinas-b&include_datasets=true",
    "tag_list",
    "group_list",
    "status_show",
)


def _ckan(arg: str, action: str) -> Values:
    return lambda _w: {arg: action}


def _resource_query(field_name: str, key: str) -> Callable[[World], str]:
    return lambda w: f"{field_name}={w.datasets[key].resource_id}"


def ckan_action_variants(arg: str = "action") -> tuple[Variant, ...]:
    """The CKAN Action API: list actions, then package_show / resource_show (metadata) and
    datastore_search (data) of every dataset of the world. Use with ``get=ckan_action``."""
    found = [
        Variant(a, _ckan(arg, a.partition("?")[0]), query=a.partition("?")[2]) for a in CKAN_LISTS
    ]
    for s in SPECS:
        found += [
            Variant(
                f"package_show:{s.key}", _ckan(arg, "package_show"), f"id={s.name}", dataset=s.key
            ),
            Variant(
                f"resource_show:{s.key}",
                _ckan(arg, "resource_show"),
                _resource_query("id", s.key),
                dataset=s.key,
            ),
            Variant(
                f"datastore_search:{s.key}",
                _ckan(arg, "datastore_search"),
                _resource_query("resource_id", s.key),
                dataset=s.key,
                about="data",
            ),
        ]
    return tuple(found)


def organization_variants(arg: str = "name") -> tuple[Variant, ...]:
    return (
        Variant("dinas-a", _const(**{arg: "dinas-a"}), org="a"),
        Variant("dinas-b", _const(**{arg: "dinas-b"}), org="b"),
        Variant("missing", _const(**{arg: "dinas-tidak-ada"}), exists=False),
    )


def user_variants(arg: str = "user_id") -> tuple[Variant, ...]:
    found = [
        Variant(p.user, (lambda u: lambda w: {arg: w.users[u]})(p.user))
        for p in SESSIONS
        if p.user is not None
    ]
    return (*found, Variant("missing", _const(**{arg: 987654}), exists=False))


def request_variants(arg: str = "request_id") -> tuple[Variant, ...]:
    return (
        Variant("pending", lambda w: {arg: w.pending_request_id}),
        Variant("granted", lambda w: {arg: w.grant_request_id}),
        Variant("missing", _const(**{arg: 987654}), exists=False),
    )


SOURCES = {f"sumber-{k}-{t}": k for k in ORGS for t in ("terpercaya", "tinjauan")}


def job_variants(arg: str = "job_id") -> tuple[Variant, ...]:
    found = [
        Variant(s, (lambda name: lambda w: {arg: w.jobs[name]})(s), org=org)
        for s, org in SOURCES.items()
    ]
    return (*found, Variant("missing", _const(**{arg: 987654}), exists=False))


def source_variants(arg: str = "name") -> tuple[Variant, ...]:
    found = [Variant(s, _const(**{arg: s}), org=org) for s, org in SOURCES.items()]
    return (*found, Variant("missing", _const(**{arg: "sumber-tidak-ada"}), exists=False))


def oauth_client_variants(arg: str = "client_id") -> tuple[Variant, ...]:
    return (
        Variant("client", lambda w: {arg: w.oauth_client_id}),
        Variant("missing", _const(**{arg: "klien-tidak-ada"}), exists=False),
    )


def token_variants(arg: str = "token_id") -> tuple[Variant, ...]:
    return (
        Variant("token-of-anggota", lambda w: {arg: w.member_token_id}),
        Variant("missing", _const(**{arg: 987654}), exists=False),
    )


def event_variants(arg: str = "seq") -> tuple[Variant, ...]:
    return (
        Variant("first", lambda w: {arg: w.first_event_seq}),
        Variant("missing", _const(**{arg: 987654}), exists=False),
    )


# --- who may: GET ---------------------------------------------------------------------------

Outcome = int | str  # a status code, or "login" for a redirect to the sign-in page
Expect = Callable[[Principal, Variant, str], frozenset[Outcome] | None]


def unauthenticated(path: str) -> frozenset[Outcome]:
    """Anonymous callers: 401 from the API, the sign-in page otherwise."""
    return frozenset({401}) if path.startswith("/api/") else frozenset({"login"})


def found(v: Variant) -> frozenset[Outcome]:
    return frozenset({200}) if v.exists else frozenset({404})


def anyone(_p: Principal, v: Variant, _path: str) -> frozenset[Outcome]:
    return found(v)


def unchecked(_p: Principal, _v: Variant, _path: str) -> None:
    """Only the generic checks: no 5xx, no marker the principal may not see."""
    return None


def fixed(*outcomes: Outcome) -> Expect:
    return lambda _p, _v, _path: frozenset(outcomes)


def signed_in(p: Principal, v: Variant, path: str) -> frozenset[Outcome]:
    return found(v) if p.signed_in else unauthenticated(path)


def roles(*allowed: str) -> Expect:
    """Signed-in principals with one of the ``allowed`` roles (and a session or a steward-scoped
    token) get the page; other signed-in principals 403; anonymous ones sign in first."""

    def expect(p: Principal, v: Variant, path: str) -> frozenset[Outcome]:
        if not p.signed_in:
            return unauthenticated(path)
        if p.role in allowed and (p.scopes is None or "steward" in p.scopes):
            return found(v)
        return frozenset({403})

    return expect


def dataset_metadata(p: Principal, v: Variant, _path: str) -> frozenset[Outcome]:
    visible = v.exists and v.dataset is not None and sees_metadata(p, BY_KEY[v.dataset])
    return frozenset({200 if visible else 404})


def dataset_data(p: Principal, v: Variant, _path: str) -> frozenset[Outcome]:
    spec = BY_KEY.get(v.dataset or "")
    served = v.exists and spec is not None and spec.has_data and reads_data(p, spec)
    return frozenset({200 if served else 404})


def ckan_action(p: Principal, v: Variant, _path: str) -> frozenset[Outcome]:
    """CKAN's answers: 200 for lists; for one dataset 200, or 403 / 404 when hidden."""
    spec = BY_KEY.get(v.dataset or "")
    if spec is None:
        return frozenset({200})
    allowed = reads_data(p, spec) and spec.has_data if v.about == "data" else sees_metadata(p, spec)
    return frozenset({200}) if allowed else frozenset({403, 404})


def signed_in_dataset_metadata(p: Principal, v: Variant, path: str) -> frozenset[Outcome]:
    return dataset_metadata(p, v, path) if p.signed_in else unauthenticated(path)


def manages(p: Principal, org: str | None) -> bool:
    """Manages the harvest sources of OPD ``org``: stewards, admins, the OPD's producers."""
    return is_staff(p) or (p.role == "producer" and org is not None and p.org == org)


def source_manager(p: Principal, v: Variant, path: str) -> frozenset[Outcome]:
    """A page about one harvest source: its OPD's producers and the staff; 404 for a missing
    source once past the role check, 403 for another OPD's."""
    if not p.signed_in:
        return unauthenticated(path)
    if p.role not in ("producer", "steward", "admin"):
        return frozenset({403})
    if not v.exists:
        return frozenset({404})
    return frozenset({200}) if manages(p, v.org) else frozenset({403})


# --- who may: POST, PUT, PATCH, DELETE ------------------------------------------------------

Allowed = Callable[[Principal, Variant], bool]


def nobody(_p: Principal, _v: Variant) -> bool:
    return False


def everybody(_p: Principal, _v: Variant) -> bool:
    return True


def signed_in_only(p: Principal, _v: Variant) -> bool:
    return p.signed_in


def staff_only(p: Principal, _v: Variant) -> bool:
    return is_staff(p)


def admin_only(p: Principal, _v: Variant) -> bool:
    return p.role == "admin" and is_staff(p)


def refused_default(p: Principal, _v: Variant, path: str) -> frozenset[Outcome]:
    return frozenset({403}) if p.signed_in else unauthenticated(path)


@dataclass(frozen=True)
class Post:
    """A mutating method: who may (never probed), what a refusal looks like, what to send.

    Principals that may not are sent the payload *with* a valid CSRF token and must be refused
    with nothing changed; every principal is also sent it *without* a CSRF token (400).
    """

    allowed: Allowed
    refused: Expect = refused_default
    payload: Callable[[World], dict[str, Any]] = _no_values
    json: bool = False  # send the payload as JSON
    csrf: bool = True  # the route is under CSRF protection


def _requestable(p: Principal, v: Variant) -> bool:
    """Requesting access is allowed (and changes things) only for published restricted data."""
    spec = BY_KEY.get(v.dataset or "")
    return spec is not None and spec.level == "restricted" and spec.state == "published"


def _request_form_refused(p: Principal, v: Variant, path: str) -> frozenset[Outcome]:
    if not p.signed_in:
        return unauthenticated(path)
    # a dataset one may see but not request: the page again, nothing sent
    return frozenset({200}) if dataset_metadata(p, v, path) == {200} else frozenset({404})


def _manages_source(p: Principal, v: Variant) -> bool:
    return v.exists and manages(p, v.org)


def _source_refused(p: Principal, v: Variant, path: str) -> frozenset[Outcome]:
    if not p.signed_in:
        return unauthenticated(path)
    if p.role not in ("producer", "steward", "admin"):
        return frozenset({403})
    return frozenset({403}) if v.exists else frozenset({404})


def _new_source_refused(p: Principal, v: Variant, path: str) -> frozenset[Outcome]:
    # a producer of another OPD: dinas-a is not among the form's choices (400), or 403
    return frozenset({400, 403}) if p.role == "producer" else refused_default(p, v, path)


def _new_source(_world: World) -> dict[str, Any]:
    return {
        "organization": "dinas-a",
        "kind": "url",
        "url": "https://data.example.org/probe.csv",
        "name": "sumber-probe",
        "frequency": "harian",
        "config": "{}",
    }


def _owner_of_token(p: Principal, _v: Variant) -> bool:
    return p.user == "anggota"


def _not_their_token(p: Principal, v: Variant, path: str) -> frozenset[Outcome]:
    if not p.signed_in:
        return unauthenticated(path)
    return frozenset({404, 403})


def _in_a_month(_world: World) -> dict[str, Any]:
    return {"expires_on": (utcnow() + timedelta(days=30)).date().isoformat(), "note": "probe"}


# --- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """How the matrix exercises one endpoint.

    :param variants: the ways to fill its URL (and query string).
    :param get: the statuses each principal must get from GET (and HEAD); ``None``: no GET.
    :param post: who may use its mutating methods; ``None``: it has none.
    :param shows: what a 200 must contain, proving the markers reach the page: ``metadata``
        (the addressed dataset's title), ``data`` (its row value, when the principal may read it).
    """

    variants: tuple[Variant, ...] = PLAIN
    get: Expect | None = None
    post: Post | None = None
    shows: frozenset[str] = field(default_factory=frozenset)


SEARCHES = ("", "q=LEAK", "q=LEAKVAL", "organization=dinas-a", "page=2")
TAG_SEARCHES = tuple(Variant(f"tag={s.key}", query=f"tag={s.tag}", dataset=s.key) for s in SPECS)
DATASETS = dataset_variants()
RESOURCES = (*dataset_variants(resource=True), *dataset_variants(resource=True, query="version=1"))
STEWARDS = roles("steward", "admin")
ADMINS = roles("admin")
SOURCE_MANAGERS = roles("producer", "steward", "admin")
SOURCE_ACTION = Post(_manages_source, refused=_source_refused)

ROUTES: dict[str, Route] = {
    # catalog pages
    "catalog.home": Route(get=anyone),
    "catalog.dataset_list": Route((*queries(*SEARCHES), *TAG_SEARCHES), get=anyone),
    "catalog.dataset_page": Route(
        DATASETS, get=dataset_metadata, shows=frozenset({"metadata", "data"})
    ),
    "catalog.organization_list": Route(get=anyone),
    "catalog.organization_page": Route(organization_variants(), get=anyone),
    "catalog.download_original": Route(RESOURCES, get=dataset_data, shows=frozenset({"data"})),
    "catalog.download_csv": Route(RESOURCES, get=dataset_data, shows=frozenset({"data"})),
    # API v1
    "api.datasets": Route(
        (*queries(*SEARCHES, "q=LEAK&page_size=100", "page_size=1&page=3"), *TAG_SEARCHES),
        get=anyone,
    ),
    "api.dataset": Route(DATASETS, get=dataset_metadata, shows=frozenset({"metadata"})),
    "api.organizations": Route(get=anyone),
    # harvest health (open; error details only for staff)
    "harvest.health_page": Route(get=anyone),
    "harvest.job_page": Route(job_variants(), get=anyone),
    "harvest.api_sources": Route(get=anyone),
    "harvest.api_source": Route(source_variants(), get=anyone),
    "harvest.api_job": Route(job_variants(), get=anyone),
    # harvest source management (producers of the source's OPD, stewards, admins)
    "harvest_sources.list_page": Route(get=SOURCE_MANAGERS),
    "harvest_sources.new_page": Route(
        get=SOURCE_MANAGERS,
        post=Post(lambda p, _v: manages(p, "a"), refused=_new_source_refused, payload=_new_source),
    ),
    "harvest_sources.edit_page": Route(
        source_variants(),
        get=source_manager,
        post=Post(
            _manages_source,
            refused=_source_refused,
            payload=lambda _w: {
                "kind": "url",
                "url": "https://evil.example.org/x.csv",
                "frequency": "harian",
                "config": "{}",
            },
        ),
    ),
    "harvest_sources.test_page": Route(source_variants(), post=SOURCE_ACTION),
    "harvest_sources.run_page": Route(source_variants(), post=SOURCE_ACTION),
    "harvest_sources.pause_page": Route(source_variants(), post=SOURCE_ACTION),
    "harvest_sources.resume_page": Route(source_variants(), post=SOURCE_ACTION),
    # access requests
    "access_requests.request_form": Route(
        DATASETS,
        get=signed_in_dataset_metadata,
        post=Post(
            allowed=_requestable,  # probed: every dataset that cannot be requested
            refused=_request_form_refused,
            payload=lambda _w: {"purpose": PURPOSE},
        ),
        shows=frozenset({"metadata"}),
    ),
    "access_requests.my_requests": Route(get=signed_in),
    "access_requests.steward_page": Route(get=STEWARDS),
    "access_requests.grant_request": Route(
        request_variants(), post=Post(staff_only, payload=_in_a_month)
    ),
    "access_requests.refuse_request": Route(
        request_variants(), post=Post(staff_only, payload=lambda _w: {"reason": "probe"})
    ),
    "access_requests.revoke_grant": Route(
        request_variants(), post=Post(staff_only, payload=lambda _w: {"reason": "probe"})
    ),
    # API tokens
    "account_tokens.tokens_page": Route(get=signed_in),
    "account_tokens.create_token_page": Route(
        post=Post(
            signed_in_only,
            payload=lambda _w: {"name": "probe", "scopes": "read", "expires_in_days": "7"},
        )
    ),
    "account_tokens.revoke_token_page": Route(
        token_variants(), post=Post(_owner_of_token, refused=_not_their_token)
    ),
    "account_tokens.api_list": Route(get=signed_in),
    "account_tokens.api_create": Route(
        post=Post(
            signed_in_only, payload=lambda _w: {"name": "probe", "scopes": ["read"]}, json=True
        )
    ),
    "account_tokens.api_revoke": Route(
        token_variants(), post=Post(_owner_of_token, refused=_not_their_token)
    ),
    # admin
    "admin.dashboard": Route(get=ADMINS),
    "admin.user_list": Route(queries("", "q=anggota", "role=producer"), get=ADMINS),
    "admin.user_create": Route(
        get=ADMINS,
        post=Post(
            admin_only,
            payload=lambda _w: {
                "username": "dibuat-probe",
                "role": "admin",
                "password": "probe-password-panjang-1",
            },
        ),
    ),
    "admin.user_edit": Route(user_variants(), get=ADMINS),
    "admin.user_set_role": Route(
        user_variants(), post=Post(admin_only, payload=lambda _w: {"role": "admin"})
    ),
    "admin.user_disable": Route(user_variants(), post=Post(admin_only)),
    "admin.organization_list": Route(
        get=ADMINS,
        post=Post(admin_only, payload=lambda _w: {"name": "dinas-probe", "title": "Probe"}),
    ),
    "admin.organization_edit": Route(
        organization_variants(),
        get=ADMINS,
        post=Post(admin_only, payload=lambda _w: {"title": "Diambil alih", "description": "x"}),
    ),
    "admin.grant_list": Route(get=STEWARDS),
    "admin.grant_revoke": Route(
        request_variants(), post=Post(staff_only, payload=lambda _w: {"reason": "probe"})
    ),
    "admin.oauth_client_list": Route(get=ADMINS),  # before the OAuth client pages moved
    "admin.oauth_clients.index": Route(get=ADMINS),
    "admin.oauth_clients.new": Route(
        get=ADMINS,
        post=Post(
            admin_only,
            payload=lambda _w: {
                "name": "Klien Probe",
                "redirect_uris": "https://probe.example.org/cb",
                "scopes": "read",
                "grant_types": "authorization_code",
            },
        ),
    ),
    "admin.oauth_clients.revoke": Route(oauth_client_variants(), post=Post(admin_only)),
    "admin.user_enable": Route(user_variants(), post=Post(admin_only)),
    # security log
    "security_log.index": Route(queries("", "q=LEAK", "tag=authz:access:deny"), get=STEWARDS),
    "security_log.detail": Route(event_variants(), get=STEWARDS),
    "security_log.export_csv": Route(get=STEWARDS),
    "security_log.verify_now": Route(post=Post(admin_only)),
    # sign-in and account (self-service: only the CSRF refusal is probed for those who may)
    "auth.login": Route(get=unchecked, post=Post(everybody)),
    "auth.second_factor": Route(get=unchecked, post=Post(everybody)),
    "auth.enrol": Route(get=unchecked, post=Post(everybody)),
    "auth.logout": Route(post=Post(everybody)),
    "auth.register": Route(get=unchecked, post=Post(everybody)),
    "auth.forgot_password": Route(get=unchecked, post=Post(everybody)),
    "auth.reset_password": Route(
        (Variant("invalid-token", _const(token="bukan-token-yang-sah")),),
        get=unchecked,
        post=Post(everybody),
    ),
    "auth.account": Route(get=signed_in),
    "auth.change_password": Route(post=Post(signed_in_only)),
    "auth.totp_start": Route(post=Post(signed_in_only)),
    "auth.totp_setup": Route(get=unchecked, post=Post(signed_in_only)),
    "auth.totp_disable": Route(post=Post(signed_in_only)),
    "auth.recovery_codes": Route(post=Post(signed_in_only)),
    # OAuth 2 / OIDC pages reachable by a browser (the protocol endpoints are exempt)
    "oauth.metadata": Route(get=anyone),
    "oidc.login": Route(get=unchecked),
    "oidc.callback": Route(get=unchecked),
}


def suggest(endpoint: str, arguments: Iterable[str], methods: Iterable[str]) -> str:
    """A registry line to start from, for a route the matrix does not know."""
    kinds = {
        "name": "DATASETS (or organization_variants() / source_variants())",
        "resource_id": "RESOURCES",
        "user_id": "user_variants()",
        "request_id": "request_variants()",
        "job_id": "job_variants()",
        "token_id": "token_variants()",
        "seq": "event_variants()",
        "client_id": "oauth_client_variants()",
        "action": "ckan_action_variants() with get=ckan_action",
        "fmt": 'each(RESOURCES, "fmt", ("json", "xlsx", "parquet")) with get=dataset_data',
    }
    args = sorted(arguments)
    variants = ", ".join(kinds.get(a, f"<variants for {a}>") for a in args) or "PLAIN"
    parts = [f"variants={variants}"]
    if "GET" in methods:
        parts.append("get=<anyone | signed_in | roles(...) | dataset_metadata | dataset_data>")
    if set(methods) - {"GET", "HEAD", "OPTIONS"}:
        parts.append("post=Post(<who may>, payload=...)")
    return f'"{endpoint}": Route({", ".join(parts)}),'
