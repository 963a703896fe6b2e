"""The server's log of database events, which `/_db_updates` serves.

One SQLite file beside the databases (`_db_updates.sqlite3`: not a `.sqlite` file, so
never taken for a database) holds one row per database and event type, `created`,
`updated` or `deleted`, at the seq of its latest occurrence. As in CouchDB (whose
`_global_changes` database keeps one document per `type:db_name`), a database updated
a million times is one row that moves to the end of the log each time: the log is
bounded by three rows per database name, and a reader that falls behind sees each
database once, at its latest event.

Events are recorded on the event loop and written together once per loop iteration
(a burst of commits to many databases is one transaction). The file is synced less
eagerly than the databases (`synchronous=NORMAL`): a restart keeps the log, a power
loss may cost its last events. CouchDB does not guarantee every event either.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from ..seq import MAX_SEQ
from .listeners import Listeners
from .ring import Row

__all__ = ["DbUpdatesLog", "EVENT_TYPES"]

EVENT_TYPES = ("created", "updated", "deleted")
FILE_NAME = "_db_updates.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY,
    db_name TEXT NOT NULL,
    type TEXT NOT NULL,
    UNIQUE (db_name, type)
);
"""
# Rows shaped like a database's changes rows (seq, id, rev, deleted, body), so the feeds
# of `_changes` read them unchanged: (seq, db_name, type, 0, NULL).
_COLUMNS = "seq, db_name, type, 0, NULL"


class DbUpdatesLog(Listeners):
    """The database events of one data directory, read like a database's changes
    (`changes`, `changes_before`, `pending`, `update_seq`, `listen`) by the feeds."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        super().__init__()
        self.closed = False
        self._conn = sqlite3.connect(data_dir / FILE_NAME, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(f"PRAGMA synchronous = {'NORMAL' if durable else 'OFF'}")
        self._conn.executescript(_SCHEMA)
        self.update_seq: int = self._conn.execute("SELECT coalesce(max(seq), 0) FROM updates").fetchone()[0]
        """The seq of the latest event written."""
        self._pending: dict[tuple[str, str], None] = {}
        self._flush_scheduled = False

    def record(self, db_name: str, event: str) -> None:
        """Note an event of database `db_name` (on the event loop); it is written, and
        waiting feeds told, once this loop iteration's events are in."""
        if self.closed:
            return
        key = (db_name, event)
        self._pending.pop(key, None)  # to the end: the order the events happened in
        self._pending[key] = None
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the recorded events, each at a new seq, replacing that database's
        earlier event of the same type."""
        self._flush_scheduled = False
        if not self._pending or self.closed:
            return
        events, self._pending = list(self._pending), {}
        first = self.update_seq + 1
        rows = [(first + i, name, event) for i, (name, event) in enumerate(events)]
        with self._conn:
            self._conn.executemany(
                "INSERT INTO updates (seq, db_name, type) VALUES (?, ?, ?) "
                "ON CONFLICT (db_name, type) DO UPDATE SET seq = excluded.seq", rows)
        self.update_seq = rows[-1][0]
        self.schedule_notify()

    def changes(self, since: int, limit: int, *, descending: bool = False, bodies: bool = True,
                max_bytes: int | None = None) -> list[Row]:
        """Up to `limit` events after `since`, oldest first (`descending`: newest first)."""
        if self.closed:
            return []
        order = "DESC" if descending else "ASC"
        return self._conn.execute(
            f"SELECT {_COLUMNS} FROM updates WHERE seq > ? ORDER BY seq {order} LIMIT ?", (since, limit)
        ).fetchall()

    def changes_before(self, since: int, before: int | None, limit: int, *, bodies: bool = True,
                       max_bytes: int | None = None) -> list[Row]:
        """Events after `since` and before `before`, newest first (`descending=true`)."""
        if self.closed:
            return []
        return self._conn.execute(
            f"SELECT {_COLUMNS} FROM updates WHERE seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (since, MAX_SEQ if before is None else before, limit)).fetchall()

    def pending(self, after: int) -> int:
        """Events after `after`."""
        if after >= self.update_seq or self.closed:
            return 0
        return self._conn.execute("SELECT count(*) FROM updates WHERE seq > ?", (after,)).fetchone()[0]

    def close(self) -> None:
        """Write what is recorded, wake the feeds and close the file (callable once)."""
        if self.closed:
            return
        self.wake()
        self.flush()
        self.closed = True
        self._conn.close()
