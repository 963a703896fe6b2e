"""SQLite storage: one WAL-mode file per database, one writer thread, group commit.

Layout of a database file:

- `docs`: one row per document holding its *winning* leaf revision: `seq` (the
  document's latest update sequence, unique, so the table doubles as the by-seq index
  that `_changes` reads), `rev`, `deleted`, `body` (the complete JSON document
  including `_id`/`_rev`/`_deleted`, so feeds and reads send it without re-encoding)
  and `revs` (the branch history, newest first, for `_revisions` and `new_edits=false`).
- `conflicts`: the losing leaves of conflicted documents (only `new_edits=false` makes them).
- `local`: `_local/` documents, which have no seq and never show up in `_changes`.
- `settings`: per-database settings (`_security`, `_revs_limit`) as JSON, and `props`,
  the properties a database is created with (`{"partitioned": true}`), never changed after.

Writes run on a single thread that owns the writer connection. Requests that arrive
while a transaction is being committed are queued and committed together in the next
transaction (each in its own SAVEPOINT, so one failing request does not undo another):
`synchronous=FULL` then costs one fsync per batch, not per request, and an answer is
only sent after the fsync, so an acknowledged write survives `kill -9`. Reads run on
the event loop against a second connection (WAL readers never block the writer).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import re
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from ..._json import loads
from .. import limits, revtree
from ..errors import CouchError
from ..indexes import Index, indexes_from_ddoc
from ..partitions import id_range
from ..seq import MAX_SEQ, encode_seq
from . import attachments, find
from .db_updates import DbUpdatesLog
from .listeners import Listener, Listeners
from .ring import Ring, Row
from .tx import Tx
from .writes import WriteQueue

__all__ = ["CHANGES_SQL", "Database", "Listener", "Storage", "valid_db_name"]

T = TypeVar("T")

_DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
QUERY_CONNS_PER_THREAD = 16
"""Query-thread SQLite connections each thread keeps open (least recently used closed first)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    rev TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    design INTEGER NOT NULL,
    conflicted INTEGER NOT NULL,
    revs TEXT NOT NULL,
    body TEXT NOT NULL
);
-- _changes reads (seq, id, rev, deleted) in seq order from this index alone, without
-- visiting the table rows (which hold the bodies).
CREATE INDEX IF NOT EXISTS docs_by_seq ON docs (seq, id, rev, deleted);
CREATE TABLE IF NOT EXISTS conflicts (
    id TEXT NOT NULL,
    rev TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    revs TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (id, rev)
);
CREATE TABLE IF NOT EXISTS local (id TEXT PRIMARY KEY, rev TEXT NOT NULL, body TEXT NOT NULL);
-- Per-database settings (_security, _revs_limit) as JSON values by name.
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


CHANGES_SQL = {
    (bodies, descending): f"SELECT seq, id, rev, deleted, {'CAST(body AS BLOB)' if bodies else 'NULL'} "
    f"FROM docs WHERE seq > ? ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT ?"
    for bodies in (True, False)
    for descending in (True, False)
}
"""The backlog query of `_changes`, by (bodies, descending). Without bodies it is
answered from the `docs_by_seq` index alone."""


_MAX_FILE_NAME = 255
"""Longest file name most file systems take (the database file is `<quoted name>.sqlite`)."""


def valid_db_name(name: str) -> bool:
    """CouchDB's database name rule (lowercase, starts with a letter, at most 238 chars),
    and short enough as a file name once `/`, `$`... are percent-encoded."""
    return (len(name) <= 238 and _DB_NAME.match(name) is not None
            and len(quote(name, safe="")) + len(".sqlite") <= _MAX_FILE_NAME)


_query_threads = threading.local()
"""Per query thread: the databases whose connections it keeps, least recently used first."""


class Database(Listeners):
    """One database: its SQLite connections, counters, recent-change ring and waiters."""

    def __init__(self, storage: Storage, name: str, path: Path, *, partitioned: bool = False) -> None:
        """Open the database file at `path`, creating it if missing (`partitioned`: how a
        new one is created; an existing one keeps the properties it was created with)."""
        super().__init__()
        self.storage = storage
        self.name = name
        self.path = path
        self.closed = False
        self._writer = self._connect(path)
        # The properties are written in the transaction that makes the schema: a database
        # never exists without them.
        props = "INSERT OR IGNORE INTO settings (name, value) VALUES ('props', '{\"partitioned\":true}');"
        with self._writer:
            self._writer.executescript(f"BEGIN; {_SCHEMA} {attachments.SCHEMA} {props if partitioned else ''} COMMIT;")
        self._reader = self._connect(path)
        self._reader.execute("PRAGMA query_only = ON")
        r = self._reader
        self.partitioned = (self.setting("props") or {}).get("partitioned") is True
        """Whether document ids are `partition:docid` (see `cloudsync.server.partitions`)."""
        # Indexes made by an older layout (see storage.find) are rebuilt here, once.
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            find.sync_indexes(self._writer, self.partitioned)
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")
        self.last_seq_written = r.execute("SELECT coalesce(max(seq), 0) FROM docs").fetchone()[0]
        """The last seq handed out by next_seq() (ahead of update_seq while a batch commits)."""
        self.update_seq = self.last_seq_written
        self.doc_count, self.del_count = r.execute(
            "SELECT coalesce(sum(deleted = 0), 0), coalesce(sum(deleted), 0) FROM docs"
        ).fetchone()
        self._ring = Ring(self.update_seq)
        self._writes = WriteQueue(self)
        self._indexes: list[Index] | None = None
        # Read connections of the query threads, by thread id (see query_conn()).
        self._query_conns: dict[int, sqlite3.Connection] = {}

    def query_conn(self) -> sqlite3.Connection:
        """This (query) thread's own read connection. Its statements stop with
        `QueryTimeout` when the thread's query budget is spent. A thread
        keeps at most QUERY_CONNS_PER_THREAD of them open (test suites make hundreds of
        databases; each connection holds file descriptors and a page cache)."""
        me = threading.get_ident()
        recent = getattr(_query_threads, "recent", None)
        if recent is None:
            recent = _query_threads.recent = collections.OrderedDict()
        conn = self._query_conns.get(me)
        if conn is None:
            if self.closed:
                raise CouchError(404, "not_found", "Database does not exist.")
            conn = self._connect(self.path)
            conn.execute("PRAGMA query_only = ON")
            conn.set_progress_handler(limits.expired, 10_000)
            self._query_conns[me] = conn
            while len(recent) >= QUERY_CONNS_PER_THREAD:
                oldest, _ = recent.popitem(last=False)
                stale = oldest._query_conns.pop(me, None)
                if stale is not None:
                    stale.close()
        recent[self] = None
        recent.move_to_end(self)
        return conn

    def _connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: the WAL is fsynced at every commit, so acknowledged writes survive a crash
        # (NORMAL could lose the last commits on power loss). --memory turns it off.
        conn.execute(f"PRAGMA synchronous = {'FULL' if self.storage.durable else 'OFF'}")
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    @property
    def reader(self) -> sqlite3.Connection:
        """The event loop's read connection."""
        return self._reader

    @property
    def writer(self) -> sqlite3.Connection:
        """The writer thread's connection (used only on that thread)."""
        return self._writer

    # -- writing -------------------------------------------------------------------

    async def write(self, op: Callable[[Tx], T]) -> T:
        """Run `op` in a write transaction on the writer thread; its result once durable."""
        if self.closed:
            raise CouchError(404, "not_found", "Database does not exist.")
        return await self._writes.submit(op)

    def next_seq(self) -> int:
        """The seq of the next change written (on the writer thread, inside a transaction)."""
        self.last_seq_written += 1
        return self.last_seq_written

    def rewind_seq(self) -> None:
        """A batch failed to commit: its seqs are handed out again."""
        self.last_seq_written = self.update_seq

    def apply(self, tx: Tx) -> None:
        """Publish a committed transaction: counters, ring, index cache (feeds are notified by _drain)."""
        self.doc_count += tx.doc_delta
        self.del_count += tx.del_delta
        if tx.design_changed:
            self._indexes = None
        if not tx.rows:
            return
        self.update_seq = tx.rows[-1][0]
        self._ring.extend(tx.rows)
        self.storage.db_updates.record(self.name, "updated")

    # -- reading -------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The `GET /db` answer."""
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return {
            "db_name": self.name,
            "update_seq": encode_seq(self.update_seq),
            "purge_seq": "0",
            "doc_count": self.doc_count,
            "doc_del_count": self.del_count,
            "sizes": {"file": size, "active": size, "external": size},
            "instance_start_time": "0",
            "disk_format_version": 8,
            "compact_running": False,
            "cluster": {"q": 1, "n": 1, "w": 1, "r": 1},
            "props": {"partitioned": True} if self.partitioned else {},
        }

    def partition_info(self, partition: str, conn: sqlite3.Connection | None = None) -> dict[str, Any]:
        """The `GET /db/_partition/{partition}` answer (reads that partition's ids only)."""
        live, deleted, size = (conn or self._reader).execute(
            "SELECT coalesce(sum(deleted = 0), 0), coalesce(sum(deleted), 0), "
            "coalesce(sum(CASE WHEN deleted = 0 THEN length(body) END), 0) FROM docs WHERE id >= ? AND id < ?",
            id_range(partition),
        ).fetchone()
        return {"db_name": self.name, "partition": partition, "doc_count": live, "doc_del_count": deleted,
                "sizes": {"active": size, "external": size}}

    def get(self, doc_id: str, conn: sqlite3.Connection | None = None
            ) -> tuple[str, bool, bytes, list[str], bool] | None:
        """`(rev, deleted, body, revs, conflicted)` of a document's winning leaf
        (`conn`: a query thread's connection, see `query_conn()`)."""
        row = (conn or self._reader).execute(
            "SELECT rev, deleted, CAST(body AS BLOB), revs, conflicted FROM docs WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        return row[0], bool(row[1]), row[2], loads(row[3]), bool(row[4])

    def get_leaf(self, doc_id: str, rev: str, conn: sqlite3.Connection | None = None
                 ) -> tuple[bool, bytes, list[str]] | None:
        """A losing leaf by rev (`new_edits=false` conflicts)."""
        row = (conn or self._reader).execute(
            "SELECT deleted, CAST(body AS BLOB), revs FROM conflicts WHERE id = ? AND rev = ?", (doc_id, rev)
        ).fetchone()
        return None if row is None else (bool(row[0]), row[1], loads(row[2]))

    def leaves(self, doc_id: str, conn: sqlite3.Connection | None = None) -> list[revtree.Leaf]:
        """Every leaf of a document, the winner first, then the others newest first
        (empty for an unknown document)."""
        conn = conn or self._reader
        row = conn.execute(
            "SELECT rev, deleted, CAST(body AS BLOB), revs, conflicted FROM docs WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return []
        winner = revtree.Leaf(row[0], bool(row[1]), loads(row[3]), row[2])
        if not row[4]:
            return [winner]
        others = [revtree.Leaf(rev, bool(deleted), loads(revs), body) for rev, deleted, body, revs in conn.execute(
            "SELECT rev, deleted, CAST(body AS BLOB), revs FROM conflicts WHERE id = ?", (doc_id,))]
        return [winner, *sorted(others, key=lambda leaf: (revtree.rev_gen(leaf.rev), leaf.rev), reverse=True)]

    def conflicts(self, doc_id: str, *, deleted: bool = False) -> list[str]:
        """Revs of the losing leaves (live ones, or deleted ones with `deleted=True`)."""
        rows = self._reader.execute(
            "SELECT rev FROM conflicts WHERE id = ? AND deleted = ?", (doc_id, deleted)
        ).fetchall()
        return revtree.sort_revs(r[0] for r in rows)

    def losing_leaves(self, doc_ids: list[str]) -> dict[str, tuple[list[str], list[str]]]:
        """`(live, deleted)` revs of the losing leaves of each of `doc_ids` that has any,
        each list newest first: one query per 500 ids (a feed page's worth), not two per id."""
        found: dict[str, tuple[list[str], list[str]]] = {}
        for start in range(0, len(doc_ids), 500):
            chunk = doc_ids[start:start + 500]
            for doc_id, rev, deleted in self._reader.execute(
                f"SELECT id, rev, deleted FROM conflicts WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                found.setdefault(doc_id, ([], []))[1 if deleted else 0].append(rev)
        return {doc_id: (revtree.sort_revs(live), revtree.sort_revs(dead)) for doc_id, (live, dead) in found.items()}

    def setting(self, name: str) -> Any:
        """The database setting `name` (a JSON value), or `None` when it was never set."""
        row = self._reader.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else loads(row[0])

    def get_local(self, doc_id: str) -> bytes | None:
        row = self._reader.execute("SELECT CAST(body AS BLOB) FROM local WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None else row[0]

    def all_docs(
        self, *, start: str | None, end: str | None, inclusive_end: bool, descending: bool,
        limit: int | None, skip: int, after: str | None = None, conn: sqlite3.Connection | None = None,
        max_bytes: int | None = None,
    ) -> list[tuple[str, str, bytes]]:
        """Live documents `(id, rev, body)` in id order between `start` and `end`
        (`after`: only ids past this one in that order, to read page by page;
        `max_bytes`: stop after the row that brings the bodies to this size)."""
        where = ["deleted = 0"]
        args: list[Any] = []
        if after is not None:
            where.append("id < ?" if descending else "id > ?")
            args.append(after)
        lo, hi = (end, start) if descending else (start, end)
        lo_inclusive = True if not descending else inclusive_end
        hi_inclusive = inclusive_end if not descending else True
        if lo is not None:
            where.append("id >= ?" if lo_inclusive else "id > ?")
            args.append(lo)
        if hi is not None:
            where.append("id <= ?" if hi_inclusive else "id < ?")
            args.append(hi)
        sql = (
            f"SELECT id, rev, CAST(body AS BLOB) FROM docs WHERE {' AND '.join(where)} "
            f"ORDER BY id {'DESC' if descending else 'ASC'} LIMIT ? OFFSET ?"
        )
        cursor = (conn or self._reader).execute(sql, (*args, -1 if limit is None else limit, skip))
        if max_bytes is None:
            return cursor.fetchall()
        return _fetch_bounded(cursor, max_bytes, body=2, page=16)

    def count_before(self, doc_id: str, descending: bool, conn: sqlite3.Connection | None = None,
                     within: tuple[str, str] | None = None) -> int:
        """How many live docs sort before `doc_id` (`_all_docs`'s `offset`), counting
        only ids in the range `within` (at least its first, below its second) if given."""
        op = ">" if descending else "<"
        bounds, args = "", [doc_id]
        if within is not None:
            bounds = " AND id >= ? AND id < ?"
            args.extend(within)
        return (conn or self._reader).execute(
            f"SELECT count(*) FROM docs WHERE deleted = 0 AND id {op} ?{bounds}", args
        ).fetchone()[0]

    def changes(self, since: int, limit: int, *, descending: bool = False, bodies: bool = True,
                max_bytes: int | None = None) -> list[Row]:
        """Up to `limit` changes after `since`, one per document at its latest seq.
        `bodies=False`: rows read from SQLite may carry `None` for the body (not read).
        `max_bytes`: stop after the row that brings the bodies read to this size."""
        if self.closed:
            return []
        if not descending and self._ring.covers(since):
            return self._ring.after(since, limit, max_bytes)
        sql = CHANGES_SQL[bodies, descending]
        if max_bytes is None or not bodies:
            return self._reader.execute(sql, (since, limit)).fetchall()
        return _fetch_bounded(self._reader.execute(sql, (since, limit)), max_bytes, body=4, page=64)

    def changes_before(self, since: int, before: int | None, limit: int, *, bodies: bool = True,
                       max_bytes: int | None = None) -> list[Row]:
        """Changes after `since` and before `before`, newest first (`descending=true`),
        at most `limit` rows and (with bodies) about `max_bytes` of them."""
        if self.closed:
            return []
        body = "CAST(body AS BLOB)" if bodies else "NULL"
        cursor = self._reader.execute(
            f"SELECT seq, id, rev, deleted, {body} FROM docs WHERE seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (since, MAX_SEQ if before is None else before, limit))
        rows: list[Row] = []
        size = 0
        try:
            while True:
                page = cursor.fetchmany(64)
                if not page:
                    break
                for row in page:
                    rows.append(row)
                    if bodies and max_bytes is not None:
                        size += len(row[4])
                        if size >= max_bytes:
                            return rows
        finally:
            cursor.close()
        return rows

    def pending(self, after: int) -> int:
        """Changes after `after` (CouchDB's `pending`)."""
        if after >= self.update_seq or self.closed:
            return 0
        return self._reader.execute("SELECT count(*) FROM docs WHERE seq > ?", (after,)).fetchone()[0]

    def indexes(self) -> list[Index]:
        """The Mango json indexes defined by this database's design documents."""
        if self._indexes is None:
            found = []
            for (body,) in self._reader.execute(
                "SELECT body FROM docs WHERE design = 1 AND deleted = 0 ORDER BY id"
            ):
                found.extend(indexes_from_ddoc(loads(body), self.partitioned))
            self._indexes = found
        return self._indexes

    def close(self) -> None:
        """Close both connections and wake feeds so they end (callable once)."""
        if self.closed:
            return
        self.closed = True
        self.wake()
        self._reader.close()
        for conn in list(self._query_conns.values()):
            conn.interrupt()
            conn.close()
        self._query_conns.clear()
        # The writer connection belongs to the writer thread: close it there, after any
        # batch already running.
        self.storage.executor.submit(self._writer.close)


class Storage:
    """All databases under one data directory (one `<quoted name>.sqlite` file each)."""

    def __init__(self, data_dir: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloudsync-writer")
        self._dbs: dict[str, Database] = {}
        self._lock = threading.Lock()
        self.db_updates = DbUpdatesLog(self.data_dir, durable=durable)
        """The log of database events that `/_db_updates` serves."""

    def _path(self, name: str) -> Path:
        return self.data_dir / (quote(name, safe="") + ".sqlite")

    def names(self) -> list[str]:
        """All database names, sorted."""
        return sorted(unquote(p.name[: -len(".sqlite")]) for p in self.data_dir.glob("*.sqlite"))

    def get(self, name: str) -> Database | None:
        """The open database `name`, opening it on first use; `None` if it does not exist."""
        db = self._dbs.get(name)
        if db is None and valid_db_name(name) and self._path(name).exists():
            with self._lock:
                db = self._dbs.get(name) or Database(self, name, self._path(name))
                self._dbs[name] = db
        return db

    async def create(self, name: str, *, partitioned: bool = False) -> Database:
        """Create database `name` (412 `file_exists` when it exists); `partitioned`: its
        document ids are `partition:docid`."""
        if not valid_db_name(name):
            raise CouchError(
                400, "illegal_database_name",
                f"Name: '{name}'. Only lowercase characters (a-z), digits (0-9), and any of the "
                "characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.",
            )
        if self.get(name) is not None:
            raise CouchError(412, "file_exists", "The database could not be created, the file already exists.")
        loop = asyncio.get_running_loop()
        # Creating the file on the writer thread orders it after pending deletes.
        db = await loop.run_in_executor(
            self.executor, functools.partial(Database, self, name, self._path(name), partitioned=partitioned))
        self._dbs[name] = db
        self.db_updates.record(name, "created")
        return db

    async def delete(self, name: str) -> None:
        """Delete database `name` and its files (404 when missing); its feeds end."""
        db = self.get(name)
        if db is None:
            raise CouchError(404, "not_found", "Database does not exist.")
        del self._dbs[name]
        db.close()
        self.db_updates.record(name, "deleted")

        def remove() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db.path}{suffix}").unlink(missing_ok=True)

        await asyncio.get_running_loop().run_in_executor(self.executor, remove)

    def close(self) -> None:
        """Close every database and stop the writer thread."""
        for db in list(self._dbs.values()):
            db.close()
        self._dbs.clear()
        self.db_updates.close()
        self.executor.shutdown(wait=True)


def _fetch_bounded(cursor: sqlite3.Cursor, max_bytes: int, *, body: int, page: int) -> list[Any]:
    """The cursor's rows until the sizes of their column `body` add up to `max_bytes`
    (the row that reaches it included); the cursor is closed."""
    rows: list[Any] = []
    size = 0
    try:
        while size < max_bytes:
            batch = cursor.fetchmany(page)
            if not batch:
                break
            for row in batch:
                rows.append(row)
                size += len(row[body])
                if size >= max_bytes:
                    break
    finally:
        cursor.close()
    return rows
