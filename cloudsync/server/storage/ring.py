"""The newest changes of a database, in memory, so live feeds are served without
touching SQLite."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

__all__ = ["RING_BYTES", "RING_SIZE", "Ring", "Row"]

Row = tuple[int, str, str, bool, bytes]
"""A change row as feeds see it: (seq, id, rev, deleted, body JSON bytes)."""
RING_SIZE = 20_000
"""Recent changes kept in memory."""
RING_BYTES = 32 * 1024 * 1024
"""... and at most about this many bytes of document bodies (twice this before a trim):
20,000 changes of 64 KB documents would otherwise pin 1.3-2.6 GB."""


class Ring:
    """The newest change rows, oldest first. It covers every seq after `base`: a read
    whose `since >= base` is answered from memory (`covers`, `after`)."""

    def __init__(self, base: int) -> None:
        self.base = base
        self._rows: list[Row] = []
        self._seqs: list[int] = []
        self._bytes = 0
        self._latest: dict[str, int] = {}
        """Each document's latest seq among the rows (older rows of it are superseded)."""

    def covers(self, since: int) -> bool:
        return since >= self.base

    def extend(self, rows: Iterable[Row]) -> None:
        """Append committed rows; beyond `RING_SIZE` rows or `RING_BYTES` of bodies, the oldest go."""
        ring, seqs, latest = self._rows, self._seqs, self._latest
        size = self._bytes
        for row in rows:
            ring.append(row)
            seqs.append(row[0])
            latest[row[1]] = row[0]
            size += len(row[4])
        self._bytes = size
        if len(ring) > 2 * RING_SIZE or (size > 2 * RING_BYTES and len(ring) > 1):
            cut = RING_SIZE if len(ring) > 2 * RING_SIZE else len(ring) // 2
            for old in ring[:cut]:
                if latest.get(old[1]) == old[0]:
                    del latest[old[1]]
                self._bytes -= len(old[4])
            del ring[:cut]
            del seqs[:cut]
            self.base = seqs[0] - 1

    def after(self, since: int, limit: int, max_bytes: int | None) -> list[Row]:
        """Up to `limit` rows after `since`, one per document at its latest seq (and
        stopping after the row whose body brings them to `max_bytes`)."""
        i = bisect.bisect_right(self._seqs, since)
        latest = self._latest
        out: list[Row] = []
        size = 0
        for row in self._rows[i:]:
            if latest.get(row[1]) == row[0]:
                out.append(row)
                if len(out) >= limit:
                    break
                if max_bytes is not None:
                    size += len(row[4])
                    if size >= max_bytes:
                        break
        return out
