"""How runs share the machine, and when a run's failures mean its source is unreachable.

Many sources may wait on the network at once (``ONEDATA_HARVEST_FETCH_CONCURRENCY``), but only
``ONEDATA_HARVEST_CONCURRENCY`` of them check and publish at a time: the ingest of each item
holds a *work slot*, downloads don't. A dead source then costs one timeout in all, not one
timeout per worker.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from harvesters.base import HarvestedItem, HarvestResult, ItemOutcome, ItemResult, Processor
from harvesters.errors import UNREACHABLE_CODES


class InSlot:
    """A processor whose every call holds ``slot`` (a semaphore shared by the runs)."""

    def __init__(self, process: Processor, slot: AbstractContextManager[Any]) -> None:
        self.process = process
        self.slot = slot

    def __call__(self, item: HarvestedItem, *, dry_run: bool) -> ItemResult:
        with self.slot:
            return self.process(item, dry_run=dry_run)


def unreachable_error(result: HarvestResult) -> str | None:
    """The error of a run whose every item failed to be fetched, else ``None``.

    A URL or JSON API source is listed without the network and fetched in its one item, so a
    dead server shows up as failed items, not as a failed listing; it is unreachable all the
    same, and its health must say so.
    """
    items = result.items
    if result.error is not None or not items:
        return None
    if all(i.outcome is ItemOutcome.FAILED and i.error_type in UNREACHABLE_CODES for i in items):
        return f"source unreachable: {items[0].error}"
    return None
