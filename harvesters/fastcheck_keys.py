"""The key index of :mod:`harvesters.fastcheck`: hashes of the keys seen so far, in numpy arrays.

Unique, primary and foreign keys are checked per chunk. Keys seen so far are kept as 64-bit
hashes of the typed values with their last row, in sorted numpy arrays (12 bytes a key instead of
a dict of tuples), so memory stays nearly flat.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["KeyMemory", "hashes"]


class KeyMemory:
    """Hashes of the keys seen so far, each with the last row it was seen in.

    Two sorted arrays: a small one that takes this chunk's keys and is merged into the large one
    when it passes :data:`MERGE_AT`, so a chunk costs O(chunk + small), not O(keys so far).
    """

    MERGE_AT = 1 << 16

    def __init__(self) -> None:
        # Row numbers fit 32 bits: 12 bytes a key.
        empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32))
        self.big: tuple[np.ndarray, np.ndarray] = empty
        self.small: tuple[np.ndarray, np.ndarray] = empty

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each key (rows ascending), the row where it was last seen before, or 0."""
        order = np.argsort(hashes, kind="stable")
        keys, numbers = hashes[order], rows[order]
        same = np.zeros(len(keys), dtype=bool)
        same[1:] = keys[1:] == keys[:-1]
        previous = np.where(same, np.roll(numbers, 1), 0)
        recent, in_small = _lookup(self.small, keys)
        older, _ = _lookup(self.big, keys)
        previous[~same] = np.where(in_small, recent, older)[~same]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = ~same[1:]
        self.small = _upsert(self.small, keys[last], numbers[last])
        if len(self.small[0]) > self.MERGE_AT:
            self.big = _upsert(self.big, *self.small)
            self.small = (self.small[0][:0], self.small[1][:0])
        result = np.empty_like(previous)
        result[order] = previous
        return result


def _lookup(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """The rows stored for sorted ``keys`` in a sorted table (0 when absent), and a found mask."""
    stored, rows = table
    if not len(stored):
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(stored, keys), len(stored) - 1)
    found = stored[pos] == keys
    return np.where(found, rows[pos], 0), found


def _upsert(
    table: tuple[np.ndarray, np.ndarray], keys: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``table`` with the distinct sorted ``keys`` set to ``rows`` (updated or inserted).

    Updates are made in place; only the insertion copies the arrays.
    """
    stored, values = table
    pos = np.searchsorted(stored, keys)
    found = np.zeros(len(keys), dtype=bool)
    if len(stored):
        found = stored[np.minimum(pos, len(stored) - 1)] == keys
    values[pos[found]] = rows[found]
    new = ~found
    return np.insert(stored, pos[new], keys[new]), np.insert(values, pos[new], rows[new])


def hashes(values: Iterable[Any], count: int) -> np.ndarray:
    """The 64-bit hashes of ``count`` key values, as the index stores them.

    :param values: the typed values (tuples for keys over several fields).
    :param count: how many there are.
    """
    return np.fromiter(map(hash, values), dtype=np.int64, count=count)
