"""CSV files as agencies write them, rewritten as UTF-8 with commas.

Spreadsheets saved on Indonesian Windows machines are often Windows-1252 with ``;`` separators
(the decimal comma takes the ``,``); "Unicode text" exports are UTF-16 with tabs; web exports are
UTF-8 with or without a BOM. :func:`normalise_csv` detects all of these and writes one shape, so
the checks and the data plane read every file the same way. Numbers are left as they are:
``12,5`` stays the text ``12,5`` (quoted), to be read against the schema later.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from harvesters.errors import InvalidItem

__all__ = ["DELIMITERS", "detect_delimiter", "detect_encoding", "normalise_csv"]

#: Delimiters recognised, in order of preference when two fit equally well.
DELIMITERS = (",", ";", "\t")
_SAMPLE = 64 * 1024  # characters read to guess the delimiter
_CHUNK = 1024 * 1024
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),  # the utf-16 codec reads the BOM and drops it
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_C1 = "onedata-c1"


def _c1_fallback(exc: UnicodeError) -> tuple[str, int]:
    # Five bytes are undefined in Windows-1252; Windows itself maps them to the C1 controls
    # U+0081... rather than failing, so a single stray byte does not make a file unreadable.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    undefined = exc.object[exc.start : exc.end]
    return "".join(chr(byte) for byte in undefined), exc.end


codecs.register_error(_C1, _c1_fallback)


def detect_encoding(path: Path) -> tuple[str, bool]:
    """Detect the encoding of a text file: a BOM, else UTF-16 by its zero bytes, else UTF-8 if the
    whole file decodes as UTF-8, else Windows-1252.

    :param path: the file.
    :returns: the Python codec name and whether the file starts with a BOM.
    :raises OSError: when the file cannot be read.
    """
    with path.open("rb") as handle:
        head = handle.read(_CHUNK)
        for bom, codec in _BOMS:
            if head.startswith(bom):
                return codec, True
        utf16 = _bomless_utf16(head[:4096])
        if utf16:
            return utf16, False
        decoder = codecs.getincrementaldecoder("utf-8")()
        chunk = head
        try:
            # Every byte is checked: a Windows-1252 "é" may first appear on the last row.
            while chunk:
                decoder.decode(chunk)
                chunk = handle.read(_CHUNK)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "windows-1252", False
    return "utf-8", False


def _bomless_utf16(sample: bytes) -> str | None:
    """UTF-16 without a BOM shows as ASCII text with every other byte zero."""
    even, odd = sample[0::2], sample[1::2]
    if len(sample) < 4 or b"\0" not in sample:
        return None
    even_zero, odd_zero = even.count(0) / len(even), odd.count(0) / max(len(odd), 1)
    if odd_zero > 0.4 and even_zero < 0.05:
        return "utf-16-le"
    if even_zero > 0.4 and odd_zero < 0.05:
        return "utf-16-be"
    return None


def detect_delimiter(sample: str, *, truncated: bool = False) -> str:
    """Pick the delimiter that splits the sample's rows into the most consistent columns.

    A delimiter scores by the share of rows having its most common column count (at least 2),
    then by that count; quotes are honoured, so ``"12,5"`` in a ``;`` file does not mislead it.

    :param sample: the start of the file, decoded.
    :param truncated: the sample stops mid-file, so its last row may be cut short.
    :returns: one of :data:`DELIMITERS`; ``,`` when none splits the rows.
    """
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        try:
            reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
            widths = [len(row) for row in itertools.islice(reader, 200) if row]
        except csv.Error:
            continue
        if truncated and len(widths) > 1:
            widths.pop()
        if not widths:
            continue
        width, count = Counter(widths).most_common(1)[0]
        score = (count / len(widths), width)
        if width >= 2 and score > best_score:
            best, best_score = delimiter, score
    return best


def normalise_csv(src: Path, dest: Path) -> dict[str, Any]:
    """Rewrite the CSV ``src`` as UTF-8 (no BOM), comma-separated, into ``dest``.

    A file that already is UTF-8 with commas is copied byte for byte, so its hash is unchanged.
    When only the encoding differs, the text is transcoded as is (quoting and line ends kept);
    when the delimiter differs, rows are re-written with :mod:`csv` (``\\r\\n`` line ends).

    :param src: the CSV as downloaded.
    :param dest: where to write the normalised copy.
    :returns: ``{"encoding", "bom", "delimiter", "rewritten"}``: what was detected and whether
        ``dest`` differs from ``src``.
    :raises InvalidItem: when the file cannot be decoded or parsed as CSV.
    """
    encoding, bom = detect_encoding(src)
    errors = _C1 if encoding == "windows-1252" else "strict"
    try:
        with src.open(encoding=encoding, errors=errors, newline="") as text:
            sample = text.read(_SAMPLE)
            delimiter = detect_delimiter(sample, truncated=len(sample) == _SAMPLE)
        info: dict[str, Any] = {"encoding": encoding, "bom": bom, "delimiter": delimiter}
        if encoding == "utf-8" and delimiter == ",":
            shutil.copyfile(src, dest)
            return {**info, "rewritten": False}
        with (
            src.open(encoding=encoding, errors=errors, newline="") as text,
            dest.open("w", encoding="utf-8", newline="") as out,
        ):
            if delimiter == ",":
                shutil.copyfileobj(text, out)
            else:
                csv.writer(out).writerows(csv.reader(text, delimiter=delimiter))
    except (UnicodeError, csv.Error) as exc:
        raise InvalidItem(f"{src.name}: cannot be read as {encoding} CSV ({exc})") from exc
    return {**info, "rewritten": True}
