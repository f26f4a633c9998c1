"""The options of an SQL source, read and checked once: :class:`SqlOptions`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harvesters.errors import SourceConfigError

__all__ = ["SqlConfigError", "SqlDataset", "SqlOptions"]


class SqlConfigError(SourceConfigError):
    """``source.url`` or ``source.options`` cannot be used.

    The SQL harvester's :class:`~harvesters.errors.SourceConfigError`; it keeps its own slug,
    which recorded harvest results already carry.
    """

    code = "invalid-config"


@dataclass(frozen=True)
class SqlDataset:
    """One dataset of an SQL source: a query and the metadata of its result."""

    #: Stable id of the dataset at this source; renaming it withdraws the old dataset.
    remote_id: str
    #: One ``SELECT`` (or ``WITH ... SELECT``) statement; see
    #: :func:`harvesters.sql_query.check_query`.
    query: str
    #: Dataset metadata, with the folder harvester's keys (title, description, schema, ...).
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SqlOptions:
    """``source.options`` of an SQL source."""

    #: The datasets to harvest, one query each.
    datasets: tuple[SqlDataset, ...]
    #: Longest time, in seconds, for one statement and for reading the whole result.
    statement_timeout: float = 60.0
    #: Rows read from the database and written to the CSV at a time.
    chunk_size: int = 10_000
    #: Most rows one query may return; more fails the item (None: no row cap, only the size cap).
    max_rows: int | None = 1_000_000
    #: Longest wait, in seconds, for the database connection.
    connect_timeout: float = 10.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SqlOptions:
        """Build and check the options of a source.

        :param options: ``source.options``.
        :raises SqlConfigError: when a field is missing or has the wrong type.
        """
        entries = options.get("datasets")
        if not isinstance(entries, list) or not entries:
            raise SqlConfigError("options.datasets must be a non-empty list")
        datasets = []
        for n, entry in enumerate(entries):
            entry = entry if isinstance(entry, dict) else {}
            remote_id, query = entry.get("remote_id"), entry.get("query")
            metadata = entry.get("metadata", {})
            if not (isinstance(remote_id, str) and remote_id.strip() and isinstance(query, str)
                    and isinstance(metadata, dict)):
                raise SqlConfigError(f"options.datasets[{n}] needs remote_id and query (strings) "
                                     "and metadata (an object)")
            datasets.append(SqlDataset(remote_id.strip(), query, metadata))
        try:
            max_rows = options.get("max_rows", cls.max_rows)
            made = cls(
                tuple(datasets),
                statement_timeout=float(options.get("statement_timeout", cls.statement_timeout)),
                chunk_size=int(options.get("chunk_size", cls.chunk_size)),
                max_rows=None if max_rows is None else int(max_rows),
                connect_timeout=float(options.get("connect_timeout", cls.connect_timeout)),
            )
        except (TypeError, ValueError) as exc:
            raise SqlConfigError(f"options: {exc}") from None
        if min(made.statement_timeout, made.chunk_size, made.connect_timeout) <= 0:
            raise SqlConfigError("options: timeouts and chunk_size must be positive")
        return made
