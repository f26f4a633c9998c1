"""The harvester template: ``gather()`` lists remote items, ``fetch()`` stages one item.

``Harvester.run()`` owns everything else: the per-item loop, ``max_items``, dry-run, error
capture and the outcome of each item. Harvesters never touch the portal's database: the
caller passes a *processor* that turns a staged item into an outcome (the portal's ingest
service checks, stores and publishes it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import traceback
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Protocol

from harvesters.errors import FileTooLarge, HarvestError, SkipItem, SourceUnavailable, Unchanged

CHUNK = 1024 * 1024


class ItemOutcome(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    WITHDRAWN = "withdrawn"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class SourceConfig:
    """What a harvester needs to know about its source."""

    #: Unique name of the source in the portal.
    name: str
    #: Location of the source: a URL, or a folder path for the folder harvester.
    url: str
    #: Largest file, in bytes, that may be staged.
    max_file_size: int = 200 * 1024 * 1024
    #: Kind-specific options (filters, paths, queries). Producers may edit these.
    options: dict[str, Any] = field(default_factory=dict)
    #: Hosts the operator allows even on private or loopback addresses
    #: (``ONEDATA_HARVEST_ALLOW_HOSTS``). Never taken from ``options``.
    allow_hosts: tuple[str, ...] = ()
    #: Connect, read and total timeouts of each request, in seconds (the operator's
    #: ``ONEDATA_HARVEST_*_TIMEOUT``); ``None`` keeps the fetch policy's own.
    timeouts: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class StagedFile:
    """A file copied into the staging folder, with its content hash."""

    #: Stable id of the file within its item (file name or remote resource id).
    remote_id: str
    #: Display title of the resource.
    title: str
    #: The staged copy.
    path: Path
    #: File name as published by the source.
    filename: str
    #: Lower-case format of the original: csv, xlsx, json.
    format: str
    #: Hash and size of the original bytes: what "download original" serves.
    sha256: str
    size: int
    #: The table to check and load when it differs from the original: a UTF-8, comma-separated
    #: CSV made from a file in another encoding, delimiter or format (JSON records).
    table: Path | None = None

    @property
    def table_path(self) -> Path:
        """The file the checks and the rows file read."""
        return self.table or self.path


@dataclass
class HarvestedItem:
    """One remote dataset, staged: normalised metadata, staged files and the raw payload."""

    remote_id: str
    metadata: dict[str, Any]
    files: list[StagedFile]
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemResult:
    remote_id: str
    outcome: ItemOutcome
    error_type: str | None = None
    error: str | None = None
    detail: str | None = None  # traceback, for operators only


@dataclass
class HarvestResult:
    items: list[ItemResult] = field(default_factory=list)
    #: Set when the source as a whole failed (nothing could be gathered, or the deadline hit).
    error: str | None = None
    error_type: str | None = None
    #: Every remote id the source listed (before ``max_items``): what exists there now.
    seen_ids: list[str] = field(default_factory=list)
    #: How long listing the source took (a measure of its response time).
    gather_seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        counter = Counter(item.outcome.value for item in self.items)
        return {outcome.value: counter.get(outcome.value, 0) for outcome in ItemOutcome}

    @property
    def errors_by_type(self) -> dict[str, int]:
        return dict(Counter(i.error_type for i in self.items if i.error_type))


class Processor(Protocol):
    """Turns a staged item into its result; stores it unless ``dry_run``."""

    def __call__(self, item: HarvestedItem, *, dry_run: bool) -> ItemResult: ...


ProgressCallback = Callable[[ItemResult, int], None]


class Harvester(ABC):
    """Template for every source kind; subclasses implement ``gather`` and ``fetch``."""

    kind: ClassVar[str]

    def __init__(self, source: SourceConfig, *, staging_dir: Path) -> None:
        self.source = source
        self.staging_dir = staging_dir

    @abstractmethod
    def gather(self) -> Iterable[str]:
        """List the remote ids of the items at the source.

        :raises SourceUnavailable: when the source cannot be listed.
        """

    @abstractmethod
    def fetch(self, remote_id: str) -> HarvestedItem:
        """Stage one item: its metadata and files.

        :param remote_id: an id returned by :meth:`gather`.
        :raises SkipItem: when the item is deliberately not harvested.
        :raises InvalidItem: when the item cannot be used.
        """

    def run(
        self,
        process: Processor,
        *,
        dry_run: bool = False,
        max_items: int | None = None,
        on_item: ProgressCallback | None = None,
        on_gathered: Callable[[int], None] | None = None,
        deadline: float | None = None,
    ) -> HarvestResult:
        """Gather, then fetch and process every item; never raises for one bad item.

        :param process: turns a staged item into an outcome (stores it unless ``dry_run``).
        :param dry_run: ask the processor for the outcome without keeping anything.
        :param max_items: stop after this many items.
        :param on_item: called after each item with its result and its index.
        :param on_gathered: called once with the number of items to process.
        :param deadline: a ``time.monotonic()`` value; items after it are not started and the
            result carries a ``deadline-exceeded`` error.
        """
        result = HarvestResult()
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            remote_ids = list(dict.fromkeys(self.gather()))  # de-duplicate, keep order
        except HarvestError as exc:
            result.error, result.error_type = str(exc), exc.code
            return result
        except Exception as exc:  # a broken source must not kill the run
            result.error, result.error_type = f"{type(exc).__name__}: {exc}", "gather-error"
            return result
        finally:
            result.gather_seconds = time.monotonic() - started
        result.seen_ids = list(remote_ids)
        if max_items is not None:
            remote_ids = remote_ids[:max_items]
        if on_gathered is not None:
            on_gathered(len(remote_ids))
        for index, remote_id in enumerate(remote_ids):
            if deadline is not None and time.monotonic() > deadline:
                result.error_type = "deadline-exceeded"
                result.error = (
                    f"deadline exceeded after {index} of {len(remote_ids)} items; "
                    "the rest were not harvested"
                )
                break
            item_result = self._run_one(remote_id, process, dry_run)
            result.items.append(item_result)
            if on_item is not None:
                on_item(item_result, index)
        return result

    def _run_one(self, remote_id: str, process: Processor, dry_run: bool) -> ItemResult:
        try:
            item = self.fetch(remote_id)
            return process(item, dry_run=dry_run)
        except Unchanged:
            return ItemResult(remote_id, ItemOutcome.UNCHANGED)
        except SkipItem as exc:
            return ItemResult(remote_id, ItemOutcome.SKIPPED, exc.code, str(exc))
        except HarvestError as exc:
            return ItemResult(remote_id, ItemOutcome.FAILED, exc.code, str(exc))
        except Exception as exc:
            return ItemResult(
                remote_id,
                ItemOutcome.FAILED,
                type(exc).__name__,
                str(exc),
                traceback.format_exc(limit=8),
            )

    def stage_stream(
        self, stream: BinaryIO, *, remote_id: str, title: str, filename: str, fmt: str
    ) -> StagedFile:
        """Copy ``stream`` into the staging folder, hashing it and enforcing the size cap.

        :raises FileTooLarge: when the stream exceeds ``source.max_file_size``.
        """
        digest = hashlib.sha256()
        size = 0
        target = self.staging_dir / f"{len(list(self.staging_dir.iterdir()))}-{_safe(filename)}"
        with target.open("wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > self.source.max_file_size:
                    out.close()
                    target.unlink(missing_ok=True)
                    raise FileTooLarge(
                        f"{filename} is larger than the limit of {self.source.max_file_size} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
        return StagedFile(remote_id, title, target, filename, fmt, digest.hexdigest(), size)


def attach_table(staged: StagedFile, table: Path) -> StagedFile:
    """Return ``staged`` with ``table`` (moved next to it) as its normalised table."""
    target = staged.path.with_name(staged.path.name + ".table.csv")
    table.replace(target)
    return dataclasses.replace(staged, table=target)


def _safe(filename: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)
    return keep[-100:] or "file"


__all__ = [
    "HarvestResult",
    "HarvestedItem",
    "Harvester",
    "ItemOutcome",
    "ItemResult",
    "Processor",
    "SkipItem",
    "SourceConfig",
    "SourceUnavailable",
    "StagedFile",
]
