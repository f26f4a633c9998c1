"""DCAT catalogs read into records: an RDF graph or a ``data.json`` dataset → an :class:`Entry`.

:func:`rdf_entry` maps a ``dcat:Dataset`` of a DCAT-AP graph and :func:`json_entry` a DCAT-US 1.1
dataset to our metadata and their distributions; :func:`frequency`, :func:`license_id` and
:func:`data_format` translate the vocabularies both use. :func:`rdf_format` tells the
serialisation of a catalog page, and :func:`inline_contexts` replaces remote JSON-LD contexts by
the documents a guarded loader fetched, so rdflib never fetches one itself.

Nothing here fetches anything: :mod:`harvesters.dcat` does, and its public names can be imported
from there too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, FOAF, RDFS, SKOS
from rdflib.namespace import DCTERMS as DCT
from rdflib.term import Node

from harvesters.errors import SourceUnavailable

__all__ = [
    "HYDRA",
    "RDF_FORMATS",
    "Distribution",
    "Entry",
    "data_format",
    "frequency",
    "inline_contexts",
    "json_entry",
    "license_id",
    "rdf_entry",
    "rdf_format",
    "rdf_id",
]

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
LOCN = Namespace("http://www.w3.org/ns/locn#")
SDO = Namespace("http://schema.org/")

RDF_FORMATS = {"turtle", "json-ld", "xml", "nt", "n3"}
_BY_TYPE = {"text/turtle": "turtle", "application/x-turtle": "turtle", "application/json":
            "json-ld", "application/ld+json": "json-ld", "application/rdf+xml": "xml",
            "application/xml": "xml", "text/xml": "xml", "application/n-triples": "nt"}
_BY_SUFFIX = {".ttl": "turtle", ".jsonld": "json-ld", ".json": "json-ld", ".rdf": "xml",
              ".xml": "xml", ".owl": "xml", ".nt": "nt", ".n3": "n3"}
_DATA_TYPES = {"text/csv": "csv", "application/csv": "csv", "application/json": "json",
               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}
_IANA = re.compile(r"^https?://www\.iana\.org/assignments/media-types/")
_REGION_CODE = re.compile(r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$")  # Kemendagri, 61.71.01.1001
# Interval, in days, of the EU frequency codes and the Dublin Core ones (lower-cased tails);
# anything more often than daily (1MIN, HOURLY, CONT, UPDATE_CONT...) matches _SUBDAILY.
_SUBDAILY = re.compile(r"^(\d+min|\d+hrs|(bi|tri)?hourly|(update_)?cont(inuous)?|daily_2)$")
_FREQUENCY_DAYS = {
    "daily": 1, "weekly_3": 2.3, "threetimesaweek": 2.3, "weekly_2": 3.5, "semiweekly": 3.5,
    "weekly": 7, "biweekly": 14, "monthly_3": 10, "threetimesamonth": 10, "monthly_2": 15,
    "semimonthly": 15, "monthly": 30, "bimonthly": 61, "quarterly": 91, "annual_3": 122,
    "threetimesayear": 122, "annual_2": 183, "semiannual": 183, "annual": 365,
}
_IRREGULAR = re.compile(r"^(irreg(ular)?|other|unknown|never|as_needed|not_planned|\w+ennial)$")
# A dataset updated every N days is due within the first period at least N days long, so a
# source is never reported stale before its declared interval has passed.
_PERIODS = (("harian", 1), ("mingguan", 7), ("bulanan", 31), ("triwulanan", 92),
            ("semesteran", 183), ("tahunan", 366))
_DURATION = re.compile(r"^R/P(?:([\d.]+)Y)?(?:([\d.]+)M)?(?:([\d.]+)W)?(?:([\d.]+)D)?"
                       r"(?:T(?:([\d.]+)H)?(?:([\d.]+)M)?(?:([\d.]+)S)?)?$")
_DURATION_DAYS = (365, 30, 7, 1, 1 / 24, 1 / 1440, 1 / 86400)
_ACCESS = {"public": "public", "restricted": "restricted", "restricted public": "restricted",
           "non_public": "internal", "non-public": "internal"}
# EU data themes → the portal's Indonesian topics.
_THEMES = {"AGRI": "Pertanian", "ECON": "Ekonomi", "EDUC": "Pendidikan", "ENER": "Energi",
           "ENVI": "Lingkungan Hidup", "GOVE": "Pemerintahan", "HEAL": "Kesehatan",
           "INTR": "Internasional", "JUST": "Hukum", "REGI": "Wilayah", "SOCI": "Sosial",
           "TECH": "Sains dan Teknologi", "TRAN": "Transportasi"}


def frequency(value: str | None) -> str | None:
    """Map an EU/Dublin Core frequency IRI, an ISO 8601 ``R/P...`` or our own value to ours.

    :param value: ``dct:accrualPeriodicity`` / ``accrualPeriodicity``.
    :returns: harian ... tahunan, ``tidak_tentu`` for irregular, None when not understood.
    """
    if not value:
        return None
    text = value.strip()
    if text in {name for name, _ in _PERIODS} | {"tidak_tentu"}:
        return text
    tail = re.split(r"[/#]", text.rstrip("/"))[-1].lower()
    if match := _DURATION.match(text.upper()):
        days = sum(float(n) * u for n, u in zip(match.groups(), _DURATION_DAYS, strict=True) if n)
    elif _SUBDAILY.match(tail):
        days = 0
    elif tail in _FREQUENCY_DAYS:
        days = _FREQUENCY_DAYS[tail]
    else:
        return "tidak_tentu" if _IRREGULAR.match(tail) else None
    return next((name for name, limit in _PERIODS if days <= limit), "tidak_tentu")


def license_id(value: str | None) -> str | None:
    """An SPDX-style id (``CC-BY-4.0``) for a licence IRI or id, None when not recognised.

    :param value: ``dct:license`` / ``license``.
    """
    text = (value or "").strip()
    if match := re.search(r"creativecommons\.org/licenses/([a-z-]+)/(\d\.\d)", text, re.I):
        return f"CC-{match[1].upper()}-{match[2]}"
    if re.search(r"creativecommons\.org/publicdomain/zero/|/licen[cs]e/CC0$", text, re.I):
        return "CC0-1.0"
    if match := re.search(r"/authority/licen[cs]e/([A-Z0-9_]+)$", text):  # EU: CC_BY_4_0
        return re.sub(r"-(\d)-(\d)$", r"-\1.\2", match[1].replace("_", "-"))
    if match := re.search(r"spdx\.org/licenses/([\w.+-]+?)(?:\.html|\.json)?$", text):
        return match[1]
    if match := re.search(r"opendatacommons\.org/licenses/(odbl|by|pddl)", text, re.I):
        return {"odbl": "ODbL-1.0", "by": "ODC-By-1.0", "pddl": "PDDL-1.0"}[match[1].lower()]
    return text if text and ":" not in text and len(text) <= 50 else None


def data_format(media_type: str | None, fmt: str | None, url: str) -> str | None:
    """``csv``, ``xlsx`` or ``json`` from a distribution's media type, format or URL.

    An explicit media type or format that is not one of those wins over the URL's extension.

    :param media_type: ``dcat:mediaType`` (IANA IRI or ``type/subtype``).
    :param fmt: ``dct:format`` (EU file-type IRI or a word such as ``CSV``).
    :param url: the download URL.
    """
    explicit = [h for h in (media_type, fmt) if h and h.strip()]
    hints = explicit or [Path(urlsplit(url).path).suffix.lstrip(".")]
    for hint in hints:
        text = _IANA.sub("", hint.strip().lower().split(";")[0])
        tail = text.rstrip("/").rsplit("/", 1)[-1]
        found = _DATA_TYPES.get(text) or (tail if tail in ("csv", "xlsx", "json") else None)
        if found:
            return found
    return None


@dataclass(frozen=True)
class Distribution:
    """One downloadable file of a dataset; ``format`` is None when not csv/xlsx/json."""

    remote_id: str
    url: str
    format: str | None
    title: str


@dataclass
class Entry:
    """One dataset of a catalog: our metadata, its files and the raw record kept."""

    metadata: dict[str, Any]
    distributions: list[Distribution]
    raw: dict[str, Any]
    #: Why the dataset cannot be harvested, reported as a skipped item.
    problem: str | None = None


def rdf_format(content_type: str, url: str, body: bytes) -> str:
    """The rdflib format of a catalog: from a specific Content-Type, the extension, or sniffing.

    :param content_type: the media type the server announced (without parameters).
    :param url: the final URL of the catalog.
    :param body: the catalog's bytes.
    :raises SourceUnavailable: when none of the three tells.
    """
    if found := _BY_TYPE.get(content_type) or _BY_SUFFIX.get(Path(urlsplit(url).path).suffix):
        return found
    head = body[:2048].decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if head[:1] in ("{", "["):
        return "json-ld"
    if re.match(r"<(\?xml|rdf:RDF|!)", head):
        return "xml"
    if re.match(r"(@?prefix|@?base|#|<[a-z][\w+.-]*:)", head, re.I):
        return "turtle"
    raise SourceUnavailable(f"{url}: cannot tell the RDF serialisation (Content-Type "
                            f"{content_type or 'missing'}); set options.format")


def inline_contexts(node: Any, base: str, load: Callable[[str], Any], depth: int = 0) -> Any:
    """``node`` with every remote ``@context`` replaced by the (guarded) fetched context.

    :param node: a parsed JSON-LD document, or a part of one.
    :param base: the URL relative context references are resolved against.
    :param load: fetches the JSON document at a URL (through the guarded fetcher).
    :param depth: how many contexts deep ``node`` sits.
    :raises SourceUnavailable: for ``@import``, contexts nested too deeply, or a URL that is
        not a JSON-LD context document.
    """
    if isinstance(node, list):
        return [inline_contexts(item, base, load, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "@import" in node:
        raise SourceUnavailable("JSON-LD @import in a context is not supported")
    return {key: inline_contexts(_context(value, base, load, depth) if key == "@context"
                                 else value, base, load, depth) for key, value in node.items()}


def _context(value: Any, base: str, load: Callable[[str], Any], depth: int) -> Any:
    if isinstance(value, list):
        return [_context(item, base, load, depth) for item in value]
    if not isinstance(value, str):
        return value
    if depth >= 4:
        raise SourceUnavailable("JSON-LD contexts refer to each other too deeply")
    url = urljoin(base, value)
    document = load(url)
    if not isinstance(document, dict) or "@context" not in document:
        raise SourceUnavailable(f"{url} is not a JSON-LD context document")
    return inline_contexts({"@context": document["@context"]}, url, load, depth + 1)["@context"]


def _texts(graph: Graph, node: Node, prop: URIRef) -> list[str]:
    """The literal values of ``prop`` in the preferred language: Indonesian, none, English, any."""
    values = [o for o in graph.objects(node, prop) if isinstance(o, Literal) and str(o).strip()]

    def rank(literal: Literal) -> int:
        lang = (literal.language or "").split("-")[0].lower()
        return ("id", "", "en").index(lang) if lang in ("id", "", "en") else 3

    best = min(map(rank, values), default=0)
    return sorted({str(v).strip() for v in values if rank(v) == best})


def _text(graph: Graph, node: Node | None, prop: URIRef) -> str | None:
    return next(iter(_texts(graph, node, prop)), None) if node is not None else None


def _label(graph: Graph, node: Node | None) -> str | None:
    """A display name for an agent, place or concept: a literal, a label, or the IRI's tail."""
    if node is None or isinstance(node, Literal):
        return str(node).strip() or None if node is not None else None
    labels = (FOAF.name, VCARD.fn, SKOS.prefLabel, RDFS.label, DCT.title, LOCN.geographicName)
    found = next((t for prop in labels if (t := _text(graph, node, prop))), None)
    if found or isinstance(node, BNode):
        return found
    return re.split(r"[/#]", str(node).rstrip("/"))[-1]


def rdf_id(graph: Graph, node: Node) -> str | None:
    """The id of a dataset to follow between runs: its IRI, else its ``dct:identifier``.

    :param graph: the catalog.
    :param node: a ``dcat:Dataset`` of it.
    """
    iri = str(node) if isinstance(node, URIRef) else None
    return iri or _text(graph, node, DCT.identifier)


def rdf_entry(graph: Graph, node: Node) -> Entry:
    """The metadata and distributions of a ``dcat:Dataset``, its description kept as Turtle.

    :param graph: the catalog.
    :param node: a ``dcat:Dataset`` of it.
    """
    get = graph.value
    title = _text(graph, node, DCT.title) or _text(graph, node, DCT.identifier) or str(node)
    contact, spatial = get(node, DCAT.contactPoint), get(node, DCT.spatial)
    codes = (_text(graph, spatial, DCT.identifier), _text(graph, spatial, SKOS.notation),
             _label(graph, spatial))
    temporal, period = get(node, DCT.temporal), None
    if isinstance(temporal, Literal):
        period = str(temporal)
    elif temporal is not None:
        start, end = (get(temporal, DCAT[p]) or get(temporal, SDO[p]) for p in ("startDate",
                                                                                  "endDate"))
        period = f"{start or ''}/{end or ''}" if start or end else None
    distributions = sorted(graph.objects(node, DCAT.distribution), key=str)
    licence = get(node, DCT.license) or min(
        (lic for d in distributions if (lic := get(d, DCT.license)) is not None), key=str,
        default=None)
    theme = min(graph.objects(node, DCAT.theme), key=str, default=None)
    metadata = {
        "title": title,
        "description": _text(graph, node, DCT.description),
        "tags": _texts(graph, node, DCAT.keyword),
        "license": license_id(str(licence or "")),
        "topic": _text(graph, theme, SKOS.prefLabel) or _THEMES.get(str(_label(graph, theme)))
        or _label(graph, theme),
        "frequency": frequency(str(get(node, DCT.accrualPeriodicity) or "")),
        "access_level": _ACCESS.get(str(_label(graph, get(node, DCT.accessRights))).lower()),
        "coverage": _label(graph, spatial),
        "coverage_code": next((c for c in codes if c and _REGION_CODE.match(c)), None),
        "period": period,
        "contact": _contact(_label(graph, contact), get(contact, VCARD.hasEmail)
                            if contact is not None else None),
        "publisher": _label(graph, get(node, DCT.publisher)),
        "license_url": str(licence) if isinstance(licence, URIRef) else None,
        **{key: str(get(node, prop) or "") for key, prop in (
            ("landing_page", DCAT.landingPage), ("issued", DCT.issued),
            ("modified", DCT.modified))},
        "source_url": str(node) if isinstance(node, URIRef) else None,
    }
    files = []
    for dist in distributions:
        url = get(dist, DCAT.downloadURL) or get(dist, DCAT.accessURL)  # downloadURL preferred
        if url is not None:
            fmt = data_format(str(get(dist, DCAT.mediaType) or ""),
                              str(get(dist, DCT.format) or ""), str(url))
            name = _text(graph, dist, DCT.title) or f"{title} ({(fmt or 'file').upper()})"
            remote_id = str(dist) if isinstance(dist, URIRef) else str(url)
            files.append(Distribution(remote_id, str(url), fmt, name))
    description = Graph()
    for part in (node, *(d for d in distributions if isinstance(d, URIRef))):
        description += graph.cbd(part)
    return _entry(metadata, files, {"turtle": description.serialize(format="turtle")})


def _contact(name: Any, email: Any) -> str | None:
    """``"Seksi Yankes, dinkes@pontianak.go.id"``, the shape of the folder sidecars."""
    return ", ".join(str(v).removeprefix("mailto:") for v in (name, email) if v) or None


def _entry(metadata: dict[str, Any], files: list[Distribution], raw: dict[str, Any]) -> Entry:
    # One file per URL, in URL order: blank node ids, hence the graph's order, vary by parser.
    unique = sorted({d.url: d for d in reversed(files)}.values(), key=lambda d: d.url)
    return Entry({k: v for k, v in metadata.items() if v not in (None, "", [])}, unique, raw)


def json_entry(dataset: dict[str, Any], base: str) -> Entry:
    """The metadata and distributions of a ``data.json`` dataset, kept whole as the raw record.

    :param dataset: one object of the catalog's ``dataset`` list.
    :param base: the catalog's URL, which relative download URLs are resolved against.
    """
    def text(key: str, within: Any = dataset) -> str | None:
        value = within.get(key) if isinstance(within, dict) else None
        return str(value).strip() or None if isinstance(value, str | int | float) else None

    keywords, themes, spatial = dataset.get("keyword"), dataset.get("theme"), text("spatial")
    metadata = {
        "title": text("title") or text("identifier"),
        "description": text("description"),
        "tags": sorted({str(k).strip() for k in keywords if str(k).strip()})
        if isinstance(keywords, list) else [],
        "license": license_id(text("license")),
        "topic": str(themes[0]) if isinstance(themes, list) and themes else None,
        "frequency": frequency(text("accrualPeriodicity")),
        "access_level": _ACCESS.get((text("accessLevel") or "").lower()),
        "coverage": spatial,
        "coverage_code": spatial if spatial and _REGION_CODE.match(spatial) else None,
        "period": text("temporal"),
        "contact": _contact(text("fn", dataset.get("contactPoint")),
                            text("hasEmail", dataset.get("contactPoint"))),
        "publisher": text("name", dataset.get("publisher")),
        "license_url": text("license"),
        **{key: text(name) for key, name in (("landing_page", "landingPage"), ("issued", "issued"),
                                             ("modified", "modified"))},
    }
    files = []
    for dist in dataset.get("distribution") or []:
        url = text("downloadURL", dist) or text("accessURL", dist)  # downloadURL preferred
        if url:
            url = urljoin(base, url)
            fmt = data_format(text("mediaType", dist), text("format", dist), url)
            name = text("title", dist) or f"{metadata['title']} ({(fmt or 'file').upper()})"
            files.append(Distribution(text("@id", dist) or url, url, fmt, name))
    return _entry(metadata, files, {"dataset": dataset})
