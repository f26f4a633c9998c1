"""What may reach the security log: redaction of secrets and personal data, encoding of controls.

DOMAIN.md §6.6 lists what is never logged; OWASP ASVS 16.2.5 and 16.4.1 ask to mask it and to
encode CR, LF and other control characters. Every string that :func:`record_event` stores passes
through :func:`clean_text`, and ``details`` through :func:`clean_details`, so a careless caller
cannot put a password, a token or a NIK into the log.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
TRUNCATED = "…[truncated]"

#: Substrings of a (lower-cased, ``-``/space → ``_``) key that mark its value as secret.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "token",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "csrf",
    "credential",
    "private_key",
    "hmac_key",
    "signing_key",
    "encryption_key",
    "database_url",
    "dsn",
    "connection_string",
)
#: Whole ``_``-separated words (or word pairs) of a key that mark a secret or personal data.
SENSITIVE_KEY_WORDS = frozenset(
    {
        "otp",
        "totp",
        "pin",
        "nik",
        "kk",
        "nokk",
        "no_kk",
        "npwp",
        "nip",
        "rekening",
        "no_rek",
        "card_number",
        "cvv",
    }
)
#: Keys that contain a secret-looking word but hold no secret (ids and non-secret prefixes).
SAFE_KEYS = frozenset({"token_id", "token_name", "token_prefix", "token_scopes", "session_count"})

#: 15–19 digits, optionally grouped by spaces, dots or dashes: NIK and No. KK (16), NPWP (15/16),
#: NIP (18), card numbers (16–19).
_ID_NUMBER = re.compile(r"(?<!\d)\d(?:[ .\-]?\d){14,18}(?!\d)")
_HEX = frozenset("0123456789abcdefABCDEF")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=\-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:[a-z0-9_\-]*(?:token|secret|password|passwd|api_?key|key|session|csrf|sig"
    r"|signature|code|nik|no_?kk|npwp|nip)[a-z0-9_\-]*)=)[^&;#\s]*"
)
#: C0/C1 controls, backslash, line/paragraph separators, bidi and zero-width controls, lone
#: surrogates: anything that could break a line, fake a record or spoof a viewer.
_UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

MAX_DEPTH = 6
MAX_ITEMS = 100
MAX_VALUE_LENGTH = 1000
MAX_KEY_LENGTH = 100


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def encode_controls(value: str) -> str:
    r"""Encode what could forge or split a log line: ``\n`` → ``\\n``, ``\x1b`` → ``\\x1b``.

    Backslash is doubled, so the encoding is reversible and a literal ``\n`` in the input
    cannot pass for an encoded newline.

    :param value: any text.
    """
    return _UNSAFE.sub(_escape, value)


def _redact_id_number(match: re.Match[str]) -> str:
    # A digit run inside a long hex token (a sha256, a uuid without dashes) is not an id number.
    text = match.string
    start, end = match.start(), match.end()
    while start > 0 and text[start - 1] in _HEX:
        start -= 1
    while end < len(text) and text[end] in _HEX:
        end += 1
    if end - start >= 32:
        return match.group()
    return REDACTED


def redact_values(value: str) -> str:
    """Replace identity numbers, bearer/basic tokens, JWTs and URL passwords inside ``value``.

    :param value: any text.
    """
    value = _ID_NUMBER.sub(_redact_id_number, value)
    value = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", value)
    value = _JWT.sub(REDACTED, value)
    value = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", value)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", value)


def truncate(value: str, limit: int) -> str:
    """Cut ``value`` to at most ``limit`` characters, marking the cut.

    :param value: any text.
    :param limit: the largest length allowed (at least ``len(TRUNCATED)``).
    """
    if len(value) <= limit:
        return value
    return value[: limit - len(TRUNCATED)] + TRUNCATED


def clean_text(value: object, limit: int) -> str | None:
    """Redact, encode and truncate one field for the log; ``None`` stays ``None``.

    :param value: the raw field (converted with ``str``).
    :param limit: the column's length.
    """
    if value is None:
        return None
    return truncate(encode_controls(redact_values(str(value))), limit)


def is_secret_key(key: str) -> bool:
    """Whether a details key names a secret or a personal identifier (its value is dropped).

    :param key: a key of the details mapping, as given by the caller.
    """
    norm = re.sub(r"[\s\-.]+", "_", key.strip().lower())
    if norm in SAFE_KEYS:
        return False
    if any(part in norm for part in SECRET_KEY_PARTS):
        return True
    words = [w for w in norm.split("_") if w]
    joined = {"_".join(words[i : i + 2]) for i in range(len(words) - 1)}
    return bool(SENSITIVE_KEY_WORDS.intersection(words) or SENSITIVE_KEY_WORDS.intersection(joined))


def _clean_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # A 15+ digit integer is an identity or card number, never a count.
        return REDACTED if abs(value) >= 10**14 else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return TRUNCATED
        return _clean_mapping(value, depth + 1)
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= MAX_DEPTH:
            return TRUNCATED
        items = list(value)
        cleaned = [_clean_value(v, depth + 1) for v in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            cleaned.append(TRUNCATED)
        return cleaned
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"  # upload bodies are never logged
    return clean_text(value, MAX_VALUE_LENGTH)


def _clean_mapping(mapping: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for index, (raw_key, raw_value) in enumerate(mapping.items()):
        if index >= MAX_ITEMS:
            cleaned["…"] = TRUNCATED
            break
        key = str(raw_key)
        safe_key = clean_text(key, MAX_KEY_LENGTH) or ""
        cleaned[safe_key] = REDACTED if is_secret_key(key) else _clean_value(raw_value, depth)
    return cleaned


def clean_details(details: Mapping[Any, Any] | None) -> dict[str, Any]:
    """A JSON-safe copy of ``details`` with secrets and personal data redacted.

    Values under secret keys become ``"[redacted]"``; strings are redacted, encoded and
    truncated; containers are bounded in depth and size; other objects become strings. The
    result round-trips through JSON unchanged, which the hash chain relies on.

    :param details: whatever the caller wants to record, or ``None``.
    """
    if not details:
        return {}
    return _clean_mapping(details, 0)
