"""The lexical guard of the SQL harvester: :func:`check_query` accepts one read-only SELECT.

It is the first of the three guards described in :mod:`harvesters.sql`, and deliberately
conservative: when two SQL dialects would read a text differently (``#``, nested comments,
backslashes in strings) it takes the reading that exposes more text to the check, or refuses.
"""

from __future__ import annotations

import re

from harvesters.errors import InvalidItem

__all__ = ["QueryRefused", "check_query"]

_ONE_STATEMENT = "only one SELECT or WITH statement is accepted"
_DENIED_WORDS = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|UPSERT|TRUNCATE|DROP|ALTER|CREATE|GRANT|REVOKE|COPY|CALL"
    r"|EXEC|EXECUTE|ATTACH|DETACH|PRAGMA|VACUUM|REINDEX|INTO|LOCK|SET|REFRESH|LOAD|OUTFILE"
    r"|DUMPFILE|FOR\s+(?:KEY\s+)?SHARE)\b",
    re.IGNORECASE,
)
# Functions that act outside the query's own read: other sessions, server files, settings.
_DENIED_CALLS = re.compile(
    r"\b(dblink\w*|lo_\w+|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile"
    r"|pg_switch_wal|pg_promote|pg_create_\w+|pg_drop_\w+|pg_(?:try_)?advisory\w*|pg_notify"
    r"|pg_read_\w*file|pg_ls_\w+|pg_stat_file|pg_file_\w+|set_config|query_to_xml\w*"
    r"|cursor_to_xml\w*|load_extension|load_file)\s*\(",
    re.IGNORECASE,
)


class QueryRefused(InvalidItem):
    """The query is not one read-only SELECT, or the session could not be made read-only."""

    code = "query-refused"


def check_query(query: str) -> str:
    """Accept one read-only ``SELECT``/``WITH`` statement; return it without a trailing ``;``.

    :param query: the SQL text of a dataset.
    :raises QueryRefused: with the reason, for anything else.
    """
    skeleton = _skeleton(query).rstrip()
    if skeleton.endswith(";"):  # the skeleton keeps offsets, so this cuts a trailing comment too
        skeleton, query = skeleton[:-1], query[: len(skeleton) - 1]
    if ";" in skeleton:
        raise QueryRefused(f"{_ONE_STATEMENT}; the query holds several statements")
    first = re.match(r"[\s(]*([A-Za-z]+)", skeleton)
    if first is None or first.group(1).upper() not in ("SELECT", "WITH"):
        raise QueryRefused(f"{_ONE_STATEMENT}; the query does not start with SELECT or WITH")
    if found := _DENIED_WORDS.search(skeleton):
        word = " ".join(found.group(0).split()).upper()
        raise QueryRefused(f"{_ONE_STATEMENT}; {word} is not allowed (quote a column of that "
                           "name as an identifier)")
    if found := _DENIED_CALLS.search(skeleton):
        raise QueryRefused(f"{_ONE_STATEMENT}; calling {found.group(1)}() is not allowed")
    return query


def _skeleton(query: str) -> str:
    """The query with comments and quoted text blanked (same length), leaving only code."""
    out, i, n = [], 0, len(query)
    while i < n:
        char, pair = query[i], query[i : i + 2]
        if pair == "--" and (i + 2 == n or query[i + 2].isspace()):
            # MySQL needs the space after "--": "1--1; DROP" would be code there, so without it
            # the text stays code here too. "#" is never a comment for the same reason.
            end = query.find("\n", i)
            out.append(" " * ((n if end < 0 else end) - i))
            i = n if end < 0 else end
        elif pair == "/*":
            if query.startswith(("/*!", "/*+"), i):
                raise QueryRefused("MySQL executable comments (/*! */) are not accepted")
            end = query.find("*/", i + 2)  # not nested: the first "*/" ends it in every dialect
            if end < 0:
                raise QueryRefused("the query has an unterminated comment")
            out.append(" " * (end + 2 - i))
            i = end + 2
        elif char in "'\"`":
            end = i + 1
            while True:
                end = query.find(char, end)
                if end < 0:
                    raise QueryRefused("the query has an unterminated quoted string or name")
                if query.startswith(char * 2, end):
                    end += 2
                    continue
                break
            if "\\" in query[i:end]:
                # MySQL reads \' as an escaped quote, PostgreSQL does not: the two would end
                # the string in different places, and the check could inspect the wrong text.
                raise QueryRefused("backslashes inside quoted text are not accepted (use chr())")
            out.append(char + " " * (end - i - 1) + char)
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
