"""Personal-data detectors for harvested tables (UU 27/2022 PDP, UU 14/2008 KIP Pasal 17h).

Two kinds of evidence are combined per column:

* **Values.** Every non-empty cell is searched for identifiers whose *structure* can be checked:
  NIK (``stdnum.id.nik``: region prefix and birth date, +40 for women, serial ≥ 0001), No. KK
  (region prefix, data-entry date, serial), NPWP (old 15-digit Luhn format or the dotted form),
  NIP (18 digits: birth date, appointment month, sex digit, serial), Indonesian mobile numbers and
  e-mail addresses (institutional ``go.id``/``sch.id``/``ac.id`` domains excepted). A digit-run
  column is flagged when at least half of its 16- (or 18-) digit runs pass the check, so a column
  of unrelated 16-digit ids (≈2 % pass by chance) is not.
* **Header names.** Identifier headers (``nik``, ``no_kk``, ``npwp``, ``nip``, ``tgl_lahir``,
  ``rekening``…) and person-name headers (``nama_penerima``, ``nama_lengkap``…) are enough on their
  own. Weaker headers only count towards a **threshold**: bare ``nama`` weighs 0.6, contact and
  address headers (``alamat``, ``telepon``, ``hp``, ``email``) 0.5, ``rt``/``rw`` 0.4,
  demographic ones (``jenis_kelamin``, ``umur``, ``agama``…) 0.2–0.3. The table is person-level
  when the weights reach 1.0; only then are those columns flagged. Contact headers weigh nothing
  when the table's subject is an institution (``nama_sekolah``, ``npsn``, ``kode_faskes``…): the
  ``alamat`` of a school is public, the ``alamat`` next to a ``nama`` is not. Headers that carry an
  aggregate word (``jumlah_kk``, ``total_peserta_bpjs``) are counts, not identifiers.

Findings carry the column, the detector and a count, **never a value**.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from stdnum.id import npwp as stdnum_npwp

from harvesters.pii_values import (
    _MOBILE,
    _NON_DIGITS,
    _NPWP_DOTTED,
    REDACTED,
    _number_tokens,
    _personal_emails,
    is_nik,
    is_nip,
    is_no_kk,
    looks_sensitive,
    mask_sensitive,
)

__all__ = [
    "PERSON_THRESHOLD",
    "REDACTED",
    "PiiFinding",
    "PiiScanner",
    "is_nik",
    "is_nip",
    "is_no_kk",
    "looks_sensitive",
    "mask_sensitive",
]

#: Weight at which weak header evidence makes a table person-level.
PERSON_THRESHOLD = 1.0

_AGGREGATE = frozenset("jumlah jml total persen persentase rasio rata avg".split())
_ID_TOKENS = frozenset(
    "nik ktp nkk npwp nip nuptk nisn nrp paspor passport rekening norek bpjs kis username".split()
)
_BIRTH_PREFIX = frozenset("tgl tanggal tempat tmp tmpt tahun thn".split())
_PERSON_QUALIFIERS = tuple(
    "lengkap penerima pasien siswa murid peserta pemilik kepala_keluarga ibu ayah wali suami "
    "istri anak pegawai karyawan pelapor responden warga penduduk pemohon debitur kpm orang_tua "
    "ortu balita bayi pelanggan korban tersangka narapidana pengguna".split()
)
_ENTITY_WORDS = frozenset(
    "sekolah faskes puskesmas rs rumah klinik apotek laboratorium pasar satker klpd opd instansi "
    "lembaga kantor usaha perusahaan toko hotel masjid gereja paket penyedia koperasi bank".split()
)
_QUASI_WEIGHTS = {
    **dict.fromkeys("alamat address domisili".split(), 0.5),
    **dict.fromkeys("telepon telp tlp hp handphone ponsel phone wa whatsapp".split(), 0.5),
    **dict.fromkeys("email mail surel".split(), 0.5),
    **dict.fromkeys("rt rw".split(), 0.4),
    **dict.fromkeys("umur usia agama pekerjaan perkawinan".split(), 0.3),
    **dict.fromkeys("kelamin gender sex".split(), 0.2),
}
_CONTACT = frozenset(k for k, v in _QUASI_WEIGHTS.items() if v >= 0.4)


@dataclass(frozen=True)
class PiiFinding:
    """A column that holds personal data: which detector fired and on how many cells.

    ``count`` is the number of matching cells (for a header finding: non-empty cells).
    The values themselves are never kept.
    """

    column: str
    detector: str
    count: int


def _tokens(label: str) -> list[str]:
    """Split a header into lower-case word tokens (``NamaLengkap`` → ``["nama", "lengkap"]``)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", label)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def _cell_text(value: object) -> str:
    """Render a raw cell (CSV string or XLSX value) as text for the detectors."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    return str(value).strip()


# --- header heuristics -------------------------------------------------------------------------


def _is_identifier_header(label: str) -> bool:
    """``nik``, ``no_kk``, ``npwp``, ``nip_ppk``, ``tgl_lahir``… but not ``jumlah_kk``."""
    toks = _tokens(label)
    if _AGGREGATE.intersection(toks):
        return False
    joined = "_".join(toks)
    if _ID_TOKENS.intersection(toks) or "rek" in toks or "ttl" in toks:
        return True
    if "kk" in toks or "kartu_keluarga" in joined:
        return True
    return (
        "lahir" in toks
        and toks.index("lahir") > 0
        and toks[toks.index("lahir") - 1] in _BIRTH_PREFIX
    )


def _is_person_name_header(label: str) -> bool:
    """``nama_penerima``, ``nama_lengkap``, ``nama_pemilik_rek_bank``… (not ``nama_ppk``)."""
    toks = _tokens(label)
    if len(toks) < 2 or toks[0] not in ("nama", "name"):
        return False
    qualifier = "_".join(toks[1:])
    return qualifier.startswith(_PERSON_QUALIFIERS)


def _is_entity_subject(labels: Iterable[str]) -> bool:
    """Whether the table describes institutions (``nama_sekolah``, ``npsn``, ``kode_faskes``…)."""
    for label in labels:
        toks = _tokens(label)
        if "npsn" in toks:
            return True
        if (
            len(toks) >= 2
            and toks[0] in ("nama", "name", "kode", "kd")
            and toks[1] in _ENTITY_WORDS
        ):
            return True
    return False


def _header_weight(label: str, *, entity_subject: bool) -> float:
    """Weak-evidence weight of a header towards :data:`PERSON_THRESHOLD`."""
    toks = _tokens(label)
    if _AGGREGATE.intersection(toks):
        return 0.0
    if toks in (["nama"], ["name"]):
        return 0.6
    weights = [_QUASI_WEIGHTS[t] for t in toks if t in _QUASI_WEIGHTS]
    if entity_subject and _CONTACT.intersection(toks):
        return 0.0
    return max(weights, default=0.0)


# --- the scanner -------------------------------------------------------------------------------


@dataclass
class _Stats:
    non_empty: int = 0
    digits16: int = 0
    nik: int = 0
    kk: int = 0
    digits15: int = 0
    npwp: int = 0
    npwp_dotted: int = 0
    digits18: int = 0
    nip: int = 0
    phone: int = 0
    email: int = 0


class PiiScanner:
    """Accumulates per-column detector counts over a row stream, then decides.

    :meth:`findings` never reports a value, and names a column whose label itself looks like
    personal data (a file without a header row) ``kolom <n>``.
    """

    def __init__(self) -> None:
        self._stats: dict[int, _Stats] = {}

    def add_row(self, cells: Sequence[object]) -> None:
        """Count the detector hits of one row of raw cells.

        :param cells: raw cell values in file order.
        """
        for index, value in enumerate(cells):
            self.add_cell(index, value)

    def add_counts(self, index: int, counts: Mapping[str, int]) -> None:
        """Count the detector hits of many cells of one column, each distinct value once.

        The same totals as :meth:`add_row` over the rows holding these cells; a bulk reader
        (:func:`harvesters.fastcheck.fast_check`) passes the counts of a chunk of rows.

        :param index: the column position.
        :param counts: raw cell value → number of cells holding it.
        """
        for value, times in counts.items():
            self.add_cell(index, value, times)

    def add_cell(self, index: int, value: object, times: int = 1) -> None:
        """Count the detector hits of ``times`` cells holding ``value`` in column ``index``.

        :param index: the column position.
        :param value: the raw cell value.
        :param times: how many cells hold it.
        """
        text = value.strip() if type(value) is str else _cell_text(value)
        if not text:
            return
        stats = self._stats.get(index) or self._stats.setdefault(index, _Stats())
        stats.non_empty += times
        if "@" in text and _personal_emails(text):
            stats.email += times
        # Fast path: every identifier has at least 9 digits.
        if len(text) < 9 or len(_NON_DIGITS.sub("", text)) < 9:
            return
        if _NPWP_DOTTED.search(text):
            stats.npwp_dotted += times
        hit_phone = False
        for token in _number_tokens(text):
            digits = token.lstrip("+")
            hit_phone = hit_phone or _MOBILE.match(token) is not None
            if len(digits) == 16:
                stats.digits16 += times
                stats.nik += is_nik(digits) * times
                stats.kk += is_no_kk(digits) * times
            elif len(digits) == 15:
                stats.digits15 += times
                stats.npwp += stdnum_npwp.is_valid(digits) * times  # pre-2024 format, Luhn check
            elif len(digits) == 18:
                stats.digits18 += times
                stats.nip += is_nip(digits) * times
        stats.phone += hit_phone * times

    def findings(self, labels: Sequence[str]) -> list[PiiFinding]:
        """Decide which columns hold personal data.

        :param labels: the header labels, in file order.
        """
        width = max(len(labels), max(self._stats, default=-1) + 1)
        padded = list(labels) + [""] * (width - len(labels))
        entity = _is_entity_subject(labels)
        hits = {i: h for i in range(width) if (h := self._value_hits(i, padded[i]))}
        # An institution's own phone number or e-mail is public, like its address.
        deferred = {
            i
            for i, h in hits.items()
            if entity
            and {d for d, _ in h} <= {"phone", "email"}
            and _CONTACT.intersection(_tokens(padded[i]))
        }
        strong: list[int] = []
        weak: list[tuple[int, float]] = []
        for index, label in enumerate(labels):
            if index in hits or not self._non_empty(index):
                continue
            if _is_identifier_header(label) or _is_person_name_header(label):
                strong.append(index)
            elif (weight := _header_weight(label, entity_subject=entity)) > 0:
                weak.append((index, weight))
        evidence = len(hits) - len(deferred) + len(strong) + sum(w for _, w in weak)
        person_level = evidence >= PERSON_THRESHOLD
        names = [_safe_label(label, index) for index, label in enumerate(padded)]
        found = [
            PiiFinding(names[i], detector, count)
            for i, h in hits.items()
            if person_level or i not in deferred
            for detector, count in h
        ]
        for index in strong + [i for i, _ in weak if person_level]:
            found.append(PiiFinding(names[index], "header", self._non_empty(index)))
        return found

    def _non_empty(self, index: int) -> int:
        stats = self._stats.get(index)
        return stats.non_empty if stats else 0

    def _value_hits(self, index: int, label: str) -> list[tuple[str, int]]:
        s = self._stats.get(index)
        if s is None:
            return []
        hits: list[tuple[str, int]] = []
        dukcapil = max(s.nik, s.kk)
        if dukcapil and dukcapil * 2 >= s.digits16:
            kk_header = "kk" in _tokens(label) or "kartu_keluarga" in "_".join(_tokens(label))
            hits.append(("no_kk" if kk_header or s.kk > s.nik else "nik", dukcapil))
        if s.npwp_dotted or (s.npwp and s.npwp * 10 >= s.digits15 * 8):
            hits.append(("npwp", s.npwp_dotted + s.npwp))
        if s.nip and s.nip * 2 >= s.digits18:
            hits.append(("nip", s.nip))
        if s.phone:
            hits.append(("phone", s.phone))
        if s.email:
            hits.append(("email", s.email))
        return hits


def _safe_label(label: str, index: int) -> str:
    if not label.strip() or looks_sensitive(label):
        return f"kolom {index + 1}"
    return label
