"""Value detectors for personal data: identifiers whose structure can be checked, and masking.

NIK (``stdnum.id.nik``: region prefix and birth date, +40 for women, serial ≥ 0001), No. KK
(region prefix, data-entry date, serial), NPWP (15-digit Luhn or the dotted form), 18-digit NIP,
Indonesian mobile numbers and personal e-mail addresses (institutional domains excepted).
:mod:`harvesters.pii` combines them with header evidence; every name here can be imported from it.
"""

from __future__ import annotations

import datetime as dt
import re

from stdnum import numdb
from stdnum.id import nik as stdnum_nik
from stdnum.id import npwp as stdnum_npwp

#: Replacement for a value that must not appear in a message.
REDACTED = "[disamarkan]"

_MOBILE = re.compile(r"^(?:\+62|62|0)8[1-9]\d{6,11}$")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_NPWP_DOTTED = re.compile(r"(?<!\d)\d{2}\.\d{3}\.\d{3}\.\d-\d{3}\.\d{3}(?!\d)")
_NUMBERISH = re.compile(r"^[\d\s.\-()+]+$")
_DIGIT_RUN = re.compile(r"(?<!\d)\+?\d[\d .\-]{7,24}\d(?!\d)")
_NON_DIGITS = re.compile(r"\D+")
_SEPARATORS = re.compile(r"[,;/|\n]")
_INSTITUTIONAL_DOMAINS = (".go.id", ".sch.id", ".ac.id", ".mil.id", ".desa.id")


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def _valid_region(number: str) -> bool:
    info = numdb.get("id/loc").info(number[:4])
    return len(info) == 2 and bool(info[0][1]) and bool(info[1][1])


def is_nik(number: str) -> bool:
    """Whether ``number`` is structurally a NIK (region, birth date with +40 for women, serial).

    :param number: digits only.
    """
    return len(number) == 16 and stdnum_nik.is_valid(number) and number[12:] != "0000"


def is_no_kk(number: str) -> bool:
    """Whether ``number`` is structurally a No. KK: region prefix, DDMMYY entry date, serial ≥ 1.

    :param number: digits only.
    """
    if len(number) != 16 or not number.isdigit() or number[12:] == "0000":
        return False
    day, month, year = int(number[6:8]), int(number[8:10]), int(number[10:12])
    # The century is not encoded; only 29 February depends on it.
    dated = _valid_date(2000 + year, month, day) or _valid_date(1900 + year, month, day)
    return dated and _valid_region(number)


def is_nip(number: str) -> bool:
    """Whether ``number`` is structurally an 18-digit civil-servant NIP.

    :param number: digits only.
    """
    if len(number) != 18 or not number.isdigit():
        return False
    birth_year, tmt_year = int(number[:4]), int(number[8:12])
    return (
        1940 <= birth_year <= 2010
        and _valid_date(birth_year, int(number[4:6]), int(number[6:8]))
        and birth_year + 17 <= tmt_year <= 2040
        and 1 <= int(number[12:14]) <= 12
        and number[14] in "12"
        and number[15:] != "000"
    )


def _personal_emails(text: str) -> int:
    """Count e-mail addresses in ``text`` outside institutional domains."""
    return sum(
        1
        for match in _EMAIL.finditer(text)
        if not ("." + match.group(1).lower()).endswith(_INSTITUTIONAL_DOMAINS)
    )


def _number_tokens(text: str) -> list[str]:
    """Digit runs of ``text`` with separators removed (a leading ``+`` is kept)."""
    found: list[str] = []
    for part in _SEPARATORS.split(text):
        part = part.strip()
        runs = [part] if _NUMBERISH.match(part) else _DIGIT_RUN.findall(part)
        found.extend(re.sub(r"[^\d+]", "", run) for run in runs if run)
    return found


def looks_sensitive(text: str) -> bool:
    """Whether ``text`` contains anything a value detector would flag.

    :param text: any string, e.g. a cell or a header label.
    """
    if _personal_emails(text) or _NPWP_DOTTED.search(text):
        return True
    return any(_token_is_sensitive(token) for token in _number_tokens(text))


def _token_is_sensitive(token: str) -> bool:
    digits = token.lstrip("+")
    return (
        _MOBILE.match(token) is not None
        or is_nik(digits)
        or is_no_kk(digits)
        or is_nip(digits)
        or (len(digits) == 15 and stdnum_npwp.is_valid(digits))
    )


def mask_sensitive(text: str) -> str:
    """Replace every identifier-like run and personal e-mail in ``text`` with ``[disamarkan]``.

    :param text: a message that may quote cell values.
    """
    text = _EMAIL.sub(lambda m: m.group(0) if _personal_emails(m.group(0)) == 0 else REDACTED, text)
    text = _NPWP_DOTTED.sub(REDACTED, text)
    return _DIGIT_RUN.sub(
        lambda m: (
            REDACTED if _token_is_sensitive(re.sub(r"[^\d+]", "", m.group(0))) else m.group(0)
        ),
        text,
    )
