"""CouchDB's collation for `_find` rows where the SQL statements cannot give it (see
`storage.find`): consecutive rows whose first array or object value in the key falls
in the same group are re-sorted in Python, and rows up to the bookmark are left out."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from ..selector import collation_key, get_field, parse_field

__all__ = ["RowOrder"]

Item = tuple[tuple[Any, ...], Any]
"""A row of `storage.find.find_sql` and its decoded document."""


class RowOrder:
    """The key order of a plan's rows: its index fields, then `_id`, all one direction.

    Args:
        fields: the index fields (dotted names), without the final `_id`.
        rank_positions: where each field's type rank is in a row (`storage.find.rank_positions`).
        descending: whether the plan sorts descending.
        composite: the first rank SQL does not sort by value (arrays, objects).
    """

    def __init__(self, fields: list[str], rank_positions: list[int], descending: bool, composite: int) -> None:
        self.paths = [parse_field(f) for f in [*fields, "_id"]]
        self.positions = rank_positions
        self.descending = descending
        self.composite = composite

    def values(self, doc: Any) -> list[Any]:
        """`doc`'s key: its value of each field, then its id (what a bookmark holds)."""
        return [get_field(doc, path) for path in self.paths]

    def key(self, values: list[Any]) -> tuple[Any, ...]:
        return tuple(collation_key(v) for v in values)

    def _run(self, item: Item) -> tuple[Any, ...] | None:
        """The run a row belongs to: its key up to its first array or object's rank
        (`None`: no such value, SQL placed the row)."""
        row = item[0]
        for p in self.positions:
            r = row[p]
            if r is not None and r >= self.composite:
                return row[: p + 1]
        return None

    def ordered(self, items: Iterable[Item], after: list[Any] | None, most: int) -> Iterator[Item]:
        """`items` (matching rows in SQL order) in collation order, from the first one
        after the bookmark key `after`; of each run only the first `most` are kept
        (the caller never needs more)."""
        if after is not None:
            items = self._past(items, self.key(after))
        pick = heapq.nlargest if self.descending else heapq.nsmallest
        for run, group in itertools.groupby(items, self._run):
            if run is None:
                yield from group
            else:
                yield from pick(most, group, key=lambda item: self.key(self.values(item[1])))

    def _past(self, items: Iterable[Item], after: tuple[Any, ...]) -> Iterator[Item]:
        """Leaves out rows not after `after`. Once a row SQL placed is after it, so is
        every later row (a run sorts where its first row's prefix does)."""
        it = iter(items)
        for item in it:
            key = self.key(self.values(item[1]))
            if key < after if self.descending else key > after:
                yield item
                if self._run(item) is None:
                    break
        yield from it
