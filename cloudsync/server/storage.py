"""SQLite storage: one WAL-mode file per database, one writer thread, group commit.

Layout of a database file:

- ``docs``: one row per document holding its *winning* leaf revision: ``seq`` (the
  document's latest update sequence, unique, so the table doubles as the by-seq index
  that ``_changes`` reads), ``rev``, ``deleted``, ``body`` (the complete JSON document
  including ``_id``/``_rev``/``_deleted``, so feeds and reads send it without re-encoding)
  and ``revs`` (the branch history, newest first, for ``_revisions`` and ``new_edits=false``).
- ``conflicts``: the losing leaves of conflicted documents (only ``new_edits=false`` makes them).
- ``local``: ``_local/`` documents, which have no seq and never show up in ``_changes``.

Writes run on a single thread that owns the writer connection. Requests that arrive
while a transaction is being committed are queued and committed together in the next
transaction (each in its own SAVEPOINT, so one failing request does not undo another):
``synchronous=FULL`` then costs one fsync per batch, not per request, and an answer is
only sent after the fsync, so an acknowledged write survives ``kill -9``. Reads run on
the event loop against a second connection (WAL readers never block the writer).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import collections
import hashlib
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, overload
from urllib.parse import quote, unquote

from .._json import dumps, loads
from . import limits, mango
from .errors import CouchError, bad_request

__all__ = ["Database", "Listener", "Storage", "Row", "decode_seq", "encode_seq", "seq_bytes", "valid_db_name"]

T = TypeVar("T")

#: A change row as feeds see it: (seq, id, rev, deleted, body JSON bytes).
Row = tuple[int, str, str, bool, bytes]

_DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
_SEQ = re.compile(r"^([0-9]{1,19})(?:-([A-Za-z0-9_\-]+))?$")
#: Revision history kept per leaf (CouchDB's revs_limit is 1000; a shorter one keeps
#: every update's row small).
REVS_LIMIT = 100
#: Recent changes kept in memory so live feeds are served without touching SQLite.
RING_SIZE = 20_000
#: ... and at most about this many bytes of document bodies (twice this before a trim):
#: 20,000 changes of 64 KB documents would otherwise pin 1.3-2.6 GB.
RING_BYTES = 32 * 1024 * 1024
#: Query-thread SQLite connections each thread keeps open (least recently used closed first).
QUERY_CONNS_PER_THREAD = 16
_IGNORED_SPECIALS = frozenset({"_conflicts", "_deleted_conflicts", "_local_seq", "_revs_info"})
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
"""


#: The backlog query of ``_changes``, by (bodies, descending). Without bodies it is
#: answered from the ``docs_by_seq`` index alone.
CHANGES_SQL = {
    (bodies, descending): f"SELECT seq, id, rev, deleted, {'CAST(body AS BLOB)' if bodies else 'NULL'} "
    f"FROM docs WHERE seq > ? ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT ?"
    for bodies in (True, False)
    for descending in (True, False)
}


#: Longest file name most file systems take (the database file is ``<quoted name>.sqlite``).
_MAX_FILE_NAME = 255


def valid_db_name(name: str) -> bool:
    """CouchDB's database name rule (lowercase, starts with a letter, at most 238 chars),
    and short enough as a file name once ``/``, ``$``... are percent-encoded."""
    return (len(name) <= 238 and _DB_NAME.match(name) is not None
            and len(quote(name, safe="")) + len(".sqlite") <= _MAX_FILE_NAME)


def _seq_piece(tag: bytes, i: int) -> bytes:
    return base64.urlsafe_b64encode(hashlib.md5(tag + i.to_bytes(8, "big")).digest())[:11]


class _SeqHigh(dict):  # type: ignore[type-arg]
    """``n >> 12`` -> the second half of seq ``n``'s suffix, made on first use."""

    def __missing__(self, key: int) -> bytes:
        if len(self) >= 65_536:
            self.clear()
        value = self[key] = _seq_piece(b"h", key)
        return value


#: The two halves of a seq's opaque suffix: one by the low 12 bits of the number, one by
#: the rest. An md5 per row cost more than framing the row (about 1.7 us of 3 us);
#: these tables make a seq one formatting operation, as deterministic as before.
_SEQ_LOW: tuple[bytes, ...] = tuple(_seq_piece(b"l", i) for i in range(4096))
_SEQ_HIGH = _SeqHigh()


def seq_bytes(n: int) -> bytes:
    """:func:`encode_seq` as bytes."""
    if n == 0:
        return b"0"
    return b"%d-g1AAAA%b%b" % (n, _SEQ_LOW[n & 4095], _SEQ_HIGH[n >> 12])


def encode_seq(n: int) -> str:
    """An opaque CouchDB-3-shaped seq string for sequence number ``n``: ``N-g1AAAA`` and 22
    URL-safe base64 characters that depend only on ``n`` (the same after a restart; only
    the number is read back, see :func:`decode_seq`)."""
    return seq_bytes(n).decode()


def decode_seq(value: Any) -> int:
    """The sequence number in a ``since``-style value; 400 for anything malformed."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_SEQ:
        return value
    if isinstance(value, str):
        m = _SEQ.match(value)
        if m and int(m.group(1)) <= _MAX_SEQ:
            return int(m.group(1))
    raise bad_request("Malformed sequence supplied in 'since' parameter.")


_MAX_SEQ = (1 << 63) - 1


def new_rev(gen: int, parent: str | None, deleted: bool, fields: bytes) -> str:
    """A revision id ``gen-md5``, deterministic from the parent rev and the content."""
    h = hashlib.md5(parent.encode() if parent else b"")
    h.update(b"\x01" if deleted else b"\x00")
    h.update(fields)
    return f"{gen}-{h.hexdigest()}"


def _rev_gen(rev: Any) -> int:
    if isinstance(rev, str):
        gen, _, digest = rev.partition("-")
        if digest and gen.isascii() and gen.isdigit() and len(gen) <= 18:
            return int(gen)
    raise RowError("bad_request", "Invalid rev format")


def _winner_key(rev: str, deleted: bool) -> tuple[bool, int, str]:
    # CouchDB's deterministic winner: live beats deleted, then longest branch, then rev.
    return (not deleted, _rev_gen(rev), rev)


def _body(doc_id: str, rev: str, fields: bytes, deleted: bool) -> bytes:
    head = b'{"_id":' + dumps(doc_id) + b',"_rev":"' + rev.encode() + b'"'
    if len(fields) > 2:
        head += b"," + fields[1:-1]
    return head + (b',"_deleted":true}' if deleted else b"}")


class RowError(Exception):
    """A per-document failure inside a bulk write (answered in that row, not as a status)."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


def check_doc_id(doc_id: Any) -> str:
    """Validate a document id the way CouchDB does (raises :class:`RowError`)."""
    if not isinstance(doc_id, str) or not doc_id:
        raise RowError("illegal_docid", "Document id must be a non-empty string")
    if doc_id.startswith("_") and not doc_id.startswith(("_design/", "_local/")):
        raise RowError("illegal_docid", "Only reserved document ids may start with underscore.")
    if doc_id in ("_design/", "_local/"):
        raise RowError("illegal_docid", "Document id must not be empty")
    return doc_id


def split_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The user fields of a document; rejects unknown ``_``-prefixed members."""
    fields = {}
    for key, value in doc.items():
        if key[:1] != "_":
            fields[key] = value
        elif key == "_attachments":
            raise RowError("bad_request", "Attachments are not supported by the cloudsync server")
        elif key not in ("_id", "_rev", "_deleted", "_revisions") and key not in _IGNORED_SPECIALS:
            raise RowError("doc_validation", f"Bad special document member: {key}")
    return fields


class Listener(Protocol):
    """What :meth:`Database.listen` calls: a feed waiting for commits."""

    def notify(self, shared: dict[Any, Any]) -> bool:
        """New changes were committed: handle them; return false to stop listening."""

    def wake(self) -> None:
        """Stop waiting (the database is closing); called after the listener was removed."""


class _Leaf:
    __slots__ = ("rev", "deleted", "revs", "body")

    def __init__(self, rev: str, deleted: bool, revs: list[str], body: bytes | None) -> None:
        self.rev, self.deleted, self.revs, self.body = rev, deleted, revs, body

    def history(self) -> list[str]:
        gen = _rev_gen(self.rev)
        return [f"{gen - i}-{h}" for i, h in enumerate(self.revs)]


def _kept_body(leaf: _Leaf) -> bytes:
    """The body of a leaf that stays stored. put_doc reads the current winner's body only
    when it may stay a leaf (new_edits=false, or a conflicted document); otherwise that
    winner is the parent of the new revision and is replaced."""
    if leaf.body is None:
        raise RuntimeError(f"internal error: the body of {leaf.rev} was not read")
    return leaf.body


class Tx:
    """The writer thread's view of one transaction (only used on the writer thread)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn = db._writer
        self.rows: list[Row] = []
        self.doc_delta = 0
        self.del_delta = 0
        self.design_changed = False

    def _next_seq(self) -> int:
        self.db._next_seq += 1
        return self.db._next_seq

    @overload
    def put_doc(self, doc: Any, *, new_edits: Literal[True] = ...) -> dict[str, Any]: ...

    @overload
    def put_doc(self, doc: Any, *, new_edits: bool) -> dict[str, Any] | None: ...

    def put_doc(self, doc: Any, *, new_edits: bool = True) -> dict[str, Any] | None:
        """Write one document; returns its result row (``None``: already known, new_edits=false)."""
        if not isinstance(doc, dict):
            raise RowError("bad_request", "Document must be a JSON object")
        doc_id = doc.get("_id")
        if doc_id is None and new_edits:
            doc_id = uuid.uuid4().hex
        doc_id = check_doc_id(doc_id)
        if doc_id.startswith("_local/"):
            return self.put_local(doc_id, doc)
        fields = split_fields(doc)
        deleted = doc.get("_deleted") is True
        fields_json = dumps(fields)
        conn = self.conn
        cur = conn.execute(
            "SELECT rev, deleted, revs, conflicted, CASE WHEN ? THEN body END FROM docs WHERE id = ?",
            (not new_edits, doc_id),
        ).fetchone()
        leaves: dict[str, _Leaf] = {}
        old_winner: str | None = None
        if cur is not None:
            old_winner = cur[0]
            body = cur[4].encode() if cur[4] is not None else None
            leaves[cur[0]] = _Leaf(cur[0], bool(cur[1]), loads(cur[2]), body)
            if cur[3]:
                if body is None:
                    leaves[cur[0]].body = conn.execute(
                        "SELECT CAST(body AS BLOB) FROM docs WHERE id = ?", (doc_id,)
                    ).fetchone()[0]
                for rev, ldel, revs, lbody in conn.execute(
                    "SELECT rev, deleted, revs, CAST(body AS BLOB) FROM conflicts WHERE id = ?", (doc_id,)
                ):
                    leaves[rev] = _Leaf(rev, bool(ldel), loads(revs), lbody)
        if new_edits:
            given = doc.get("_rev")
            if given is None:
                if cur is not None and not all(leaf.deleted for leaf in leaves.values()):
                    raise RowError("conflict", "Document update conflict.")
                parent = old_winner
            elif given in leaves:
                parent = given
            else:
                raise RowError("conflict", "Document update conflict.")
            gen = _rev_gen(parent) + 1 if parent else 1
            rev = new_rev(gen, parent, deleted, fields_json)
            history = [rev.partition("-")[2]]
            if parent:
                history += leaves.pop(parent).revs[: REVS_LIMIT - 1]
        else:
            rev = doc.get("_rev")
            _rev_gen(rev)  # raises unless a str "N-..."
            assert isinstance(rev, str)
            revisions = doc.get("_revisions")
            if isinstance(revisions, dict) and isinstance(revisions.get("ids"), list):
                start = revisions.get("start")
                ids = [str(h) for h in revisions["ids"]][:REVS_LIMIT]
                if start != _rev_gen(rev) or not ids or f"{start}-{ids[0]}" != rev:
                    raise RowError("bad_request", "_revisions do not match _rev")
                full = [f"{start - i}-{h}" for i, h in enumerate(ids)]
            else:
                full = [rev]
            known = set()
            for leaf in leaves.values():
                known.update(leaf.history())
            if rev in known:
                return None
            for ancestor in full[1:]:
                if ancestor in leaves:
                    del leaves[ancestor]
                    break
            history = [r.partition("-")[2] for r in full]
        leaves[rev] = _Leaf(rev, deleted, history, _body(doc_id, rev, fields_json, deleted))
        winner = max(leaves.values(), key=lambda leaf: _winner_key(leaf.rev, leaf.deleted))
        winner_body = _kept_body(winner)
        seq = self._next_seq()
        conflicted = len(leaves) > 1
        conn.execute(
            "INSERT INTO docs (id, seq, rev, deleted, design, conflicted, revs, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, "
            "rev = excluded.rev, deleted = excluded.deleted, conflicted = excluded.conflicted, "
            "revs = excluded.revs, body = excluded.body",
            (doc_id, seq, winner.rev, winner.deleted, doc_id.startswith("_design/"), conflicted,
             dumps(winner.revs).decode(), winner_body.decode()),
        )
        if conflicted or (cur is not None and cur[3]):
            conn.execute("DELETE FROM conflicts WHERE id = ?", (doc_id,))
            conn.executemany(
                "INSERT INTO conflicts (id, rev, deleted, revs, body) VALUES (?, ?, ?, ?, ?)",
                [(doc_id, leaf.rev, leaf.deleted, dumps(leaf.revs).decode(), _kept_body(leaf).decode())
                 for leaf in leaves.values() if leaf is not winner],
            )
        was_live = cur is not None and not cur[1]
        was_deleted = cur is not None and bool(cur[1])
        self.doc_delta += (not winner.deleted) - was_live
        self.del_delta += winner.deleted - was_deleted
        self.rows.append((seq, doc_id, winner.rev, winner.deleted, winner_body))
        if doc_id.startswith("_design/"):
            self.design_changed = True
        return {"ok": True, "id": doc_id, "rev": rev}

    def put_local(self, doc_id: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Write or delete a ``_local/`` document (revisions ``0-N``, checked like CouchDB)."""
        row = self.conn.execute("SELECT rev FROM local WHERE id = ?", (doc_id,)).fetchone()
        given = doc.get("_rev")
        if (row[0] if row else None) != given:
            raise RowError("conflict", "Document update conflict.")
        if doc.get("_deleted") is True:
            if row is None:
                raise RowError("not_found", "missing")
            self.conn.execute("DELETE FROM local WHERE id = ?", (doc_id,))
            return {"ok": True, "id": doc_id, "rev": "0-0"}
        fields = {k: v for k, v in doc.items() if k not in ("_id", "_rev", "_deleted")}
        rev = f"0-{int(row[0].partition('-')[2]) + 1 if row else 1}"
        body = _body(doc_id, rev, dumps(fields), False).decode()
        self.conn.execute(
            "INSERT INTO local (id, rev, body) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET rev = excluded.rev, body = excluded.body",
            (doc_id, rev, body),
        )
        return {"ok": True, "id": doc_id, "rev": rev}

    def sync_indexes(self) -> None:
        """Make the SQLite expression indexes match the Mango indexes in design docs."""
        wanted = {}
        for (body,) in self.conn.execute("SELECT body FROM docs WHERE design = 1 AND deleted = 0"):
            for index in mango.indexes_from_ddoc(loads(body)):
                wanted[index.sql_name] = index
        existing = {
            name for (name,) in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'mango\\_%' ESCAPE '\\'"
            )
        }
        for name in existing - wanted.keys():
            self.conn.execute(f'DROP INDEX "{name}"')
        for name in wanted.keys() - existing:
            self.conn.execute(wanted[name].create_sql())


#: Per query thread: the databases whose connections it keeps, least recently used first.
_query_threads = threading.local()


class Database:
    """One database: its SQLite connections, counters, recent-change ring and waiters."""

    def __init__(self, storage: Storage, name: str, path: Path) -> None:
        self.storage = storage
        self.name = name
        self.path = path
        self.closed = False
        self._writer = self._connect(path)
        with self._writer:
            self._writer.executescript(_SCHEMA)
        self._reader = self._connect(path)
        self._reader.execute("PRAGMA query_only = ON")
        r = self._reader
        self._next_seq = r.execute("SELECT coalesce(max(seq), 0) FROM docs").fetchone()[0]
        self.update_seq = self._next_seq
        self.doc_count, self.del_count = r.execute(
            "SELECT coalesce(sum(deleted = 0), 0), coalesce(sum(deleted), 0) FROM docs"
        ).fetchone()
        # The ring holds the newest changes, oldest first; it covers every seq after
        # _ring_base, so a feed whose since >= _ring_base reads from memory.
        self._ring: list[Row] = []
        self._ring_seqs: list[int] = []
        self._ring_base = self.update_seq
        self._ring_bytes = 0
        self._latest: dict[str, int] = {}
        # Feeds waiting for the next commit, in the order they started waiting (see listen()).
        self._listeners: dict[Listener, None] = {}
        self._notify_scheduled = False
        self._queue: list[tuple[Callable[[Tx], Any], asyncio.Future[Any]]] = []
        self._draining = False
        self._indexes: list[mango.Index] | None = None
        # Read connections of the query threads, by thread id (see query_conn()).
        self._query_conns: dict[int, sqlite3.Connection] = {}

    def query_conn(self) -> sqlite3.Connection:
        """This (query) thread's own read connection. Its statements stop with
        :class:`~.limits.QueryTimeout` when the thread's query budget is spent. A thread
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

    # -- writing -------------------------------------------------------------------

    async def write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op`` in a write transaction on the writer thread; its result once durable."""
        if self.closed:
            raise CouchError(404, "not_found", "Database does not exist.")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.append((op, fut))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue and not self.closed:
                batch, self._queue = self._queue, []
                try:
                    outcomes, tx = await loop.run_in_executor(self.storage.executor, self._run_batch, batch)
                except Exception as exc:  # the commit itself failed: nothing in the batch is durable
                    self._next_seq = self.update_seq
                    failure = exc if isinstance(exc, CouchError) else _storage_error(exc)
                    if not isinstance(failure, CouchError):
                        failure = CouchError(500, "internal_server_error", f"write failed: {exc}")
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(failure)
                    continue
                self._apply(tx)
                for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
                if tx.rows and self._listeners and not self._notify_scheduled:
                    # Scheduled after the writers' answers (resolved just above): writers
                    # never wait for feeds, and a commit costs them no more with a thousand.
                    self._notify_scheduled = True
                    loop.call_soon(self._notify)
            for _, fut in self._queue:
                fut.set_exception(CouchError(404, "not_found", "Database does not exist."))
            self._queue.clear()
        finally:
            self._draining = False

    def _run_batch(self, batch: list[tuple[Callable[[Tx], Any], Any]]) -> tuple[list[tuple[bool, Any]], Tx]:
        conn = self._writer
        tx = Tx(self)
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op, _ in batch:
                mark = (len(tx.rows), tx.doc_delta, tx.del_delta, self._next_seq, tx.design_changed)
                conn.execute("SAVEPOINT op")
                try:
                    value = op(tx)
                    if tx.design_changed and not mark[4]:
                        tx.sync_indexes()
                    conn.execute("RELEASE op")
                    outcomes.append((True, value))
                except Exception as exc:
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back itself (disk full, I/O
                        # error): the savepoint is gone, and so is the batch.
                        raise _storage_error(exc) from exc
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    del tx.rows[mark[0]:]
                    tx.doc_delta, tx.del_delta, self._next_seq, tx.design_changed = mark[1:]
                    outcomes.append((False, exc if isinstance(exc, CouchError) else _as_couch_error(exc)))
            if tx.design_changed:
                tx.sync_indexes()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes, tx

    def _apply(self, tx: Tx) -> None:
        """Publish a committed transaction: counters, ring, index cache (feeds are notified by _drain)."""
        self.doc_count += tx.doc_delta
        self.del_count += tx.del_delta
        if tx.design_changed:
            self._indexes = None
        if not tx.rows:
            return
        self.update_seq = tx.rows[-1][0]
        ring, seqs, latest = self._ring, self._ring_seqs, self._latest
        size = self._ring_bytes
        for row in tx.rows:
            ring.append(row)
            seqs.append(row[0])
            latest[row[1]] = row[0]
            size += len(row[4])
        self._ring_bytes = size
        if len(ring) > 2 * RING_SIZE or (size > 2 * RING_BYTES and len(ring) > 1):
            cut = RING_SIZE if len(ring) > 2 * RING_SIZE else len(ring) // 2
            for old in ring[:cut]:
                if latest.get(old[1]) == old[0]:
                    del latest[old[1]]
                self._ring_bytes -= len(old[4])
            del ring[:cut]
            del seqs[:cut]
            self._ring_base = seqs[0] - 1

    def _notify(self) -> None:
        self._notify_scheduled = False
        listeners = self._listeners
        shared: dict[Any, Any] = {}
        for listener in list(listeners):
            if not listener.notify(shared):
                listeners.pop(listener, None)

    def listen(self, listener: Listener) -> None:
        """Call ``listener.notify(shared)`` after every commit until it returns false (or
        :meth:`unlisten`, or :meth:`wake`). ``shared`` is a dict that lives for one round of
        notifications, for listeners to share work (rows read, rows encoded) with each other."""
        self._listeners[listener] = None

    def unlisten(self, listener: Listener) -> None:
        self._listeners.pop(listener, None)

    def wake(self) -> None:
        """Wake every feed waiting on this database (shutdown, database deleted)."""
        listeners, self._listeners = self._listeners, {}
        for listener in listeners:
            listener.wake()

    # -- reading -------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The ``GET /db`` answer."""
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
            "props": {},
        }

    def get(self, doc_id: str, conn: sqlite3.Connection | None = None
            ) -> tuple[str, bool, bytes, list[str], bool] | None:
        """``(rev, deleted, body, revs, conflicted)`` of a document's winning leaf
        (``conn``: a query thread's connection, see :meth:`query_conn`)."""
        row = (conn or self._reader).execute(
            "SELECT rev, deleted, CAST(body AS BLOB), revs, conflicted FROM docs WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        return row[0], bool(row[1]), row[2], loads(row[3]), bool(row[4])

    def get_leaf(self, doc_id: str, rev: str, conn: sqlite3.Connection | None = None
                 ) -> tuple[bool, bytes, list[str]] | None:
        """A losing leaf by rev (``new_edits=false`` conflicts)."""
        row = (conn or self._reader).execute(
            "SELECT deleted, CAST(body AS BLOB), revs FROM conflicts WHERE id = ? AND rev = ?", (doc_id, rev)
        ).fetchone()
        return None if row is None else (bool(row[0]), row[1], loads(row[2]))

    def conflicts(self, doc_id: str, *, deleted: bool = False) -> list[str]:
        """Revs of the losing leaves (live ones, or deleted ones with ``deleted=True``)."""
        rows = self._reader.execute(
            "SELECT rev FROM conflicts WHERE id = ? AND deleted = ?", (doc_id, deleted)
        ).fetchall()
        return sorted((r[0] for r in rows), key=lambda rev: (_rev_gen(rev), rev), reverse=True)

    def get_local(self, doc_id: str) -> bytes | None:
        row = self._reader.execute("SELECT CAST(body AS BLOB) FROM local WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None else row[0]

    def all_docs(
        self, *, start: str | None, end: str | None, inclusive_end: bool, descending: bool,
        limit: int | None, skip: int, after: str | None = None, conn: sqlite3.Connection | None = None,
        max_bytes: int | None = None,
    ) -> list[tuple[str, str, bytes]]:
        """Live documents ``(id, rev, body)`` in id order between ``start`` and ``end``
        (``after``: only ids past this one in that order, to read page by page;
        ``max_bytes``: stop after the row that brings the bodies to this size)."""
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

    def count_before(self, doc_id: str, descending: bool, conn: sqlite3.Connection | None = None) -> int:
        """How many live docs sort before ``doc_id`` (``_all_docs``'s ``offset``)."""
        op = ">" if descending else "<"
        return (conn or self._reader).execute(
            f"SELECT count(*) FROM docs WHERE deleted = 0 AND id {op} ?", (doc_id,)
        ).fetchone()[0]

    def changes(self, since: int, limit: int, *, descending: bool = False, bodies: bool = True,
                max_bytes: int | None = None) -> list[Row]:
        """Up to ``limit`` changes after ``since``, one per document at its latest seq.
        ``bodies=False``: rows read from SQLite may carry ``None`` for the body (not read).
        ``max_bytes``: stop after the row that brings the bodies read to this size."""
        if self.closed:
            return []
        if not descending and since >= self._ring_base:
            seqs = self._ring_seqs
            i = bisect.bisect_right(seqs, since)
            latest = self._latest
            out: list[Row] = []
            size = 0
            for row in self._ring[i:]:
                if latest.get(row[1]) == row[0]:
                    out.append(row)
                    if len(out) >= limit:
                        break
                    if max_bytes is not None:
                        size += len(row[4])
                        if size >= max_bytes:
                            break
            return out
        sql = CHANGES_SQL[bodies, descending]
        if max_bytes is None or not bodies:
            return self._reader.execute(sql, (since, limit)).fetchall()
        return _fetch_bounded(self._reader.execute(sql, (since, limit)), max_bytes, body=4, page=64)

    def changes_before(self, since: int, before: int | None, limit: int, *, bodies: bool = True,
                       max_bytes: int | None = None) -> list[Row]:
        """Changes after ``since`` and before ``before``, newest first (``descending=true``),
        at most ``limit`` rows and (with bodies) about ``max_bytes`` of them."""
        if self.closed:
            return []
        body = "CAST(body AS BLOB)" if bodies else "NULL"
        cursor = self._reader.execute(
            f"SELECT seq, id, rev, deleted, {body} FROM docs WHERE seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (since, _MAX_SEQ if before is None else before, limit))
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
        """Changes after ``after`` (CouchDB's ``pending``)."""
        if after >= self.update_seq or self.closed:
            return 0
        return self._reader.execute("SELECT count(*) FROM docs WHERE seq > ?", (after,)).fetchone()[0]

    def indexes(self) -> list[mango.Index]:
        """The Mango json indexes defined by this database's design documents."""
        if self._indexes is None:
            found = []
            for (body,) in self._reader.execute(
                "SELECT body FROM docs WHERE design = 1 AND deleted = 0 ORDER BY id"
            ):
                found.extend(mango.indexes_from_ddoc(loads(body)))
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


def _storage_error(exc: Exception) -> Exception:
    """A failure of the database file itself, told plainly (not "no such savepoint")."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "disk I/O" in text):
        return CouchError(507, "insufficient_storage", f"the write failed: {text}")
    return exc


def _as_couch_error(exc: Exception) -> CouchError:
    if isinstance(exc, RowError):
        status = {"conflict": 409, "not_found": 404}.get(exc.error, 400)
        return CouchError(status, exc.error, exc.reason)
    if isinstance(exc, (TypeError, ValueError, sqlite3.Error)):
        return bad_request(f"invalid document: {exc}")
    return CouchError(500, "internal_server_error", type(exc).__name__)


class Storage:
    """All databases under one data directory (one ``<quoted name>.sqlite`` file each)."""

    def __init__(self, data_dir: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloudsync-writer")
        self._dbs: dict[str, Database] = {}
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.data_dir / (quote(name, safe="") + ".sqlite")

    def names(self) -> list[str]:
        """All database names, sorted."""
        return sorted(unquote(p.name[: -len(".sqlite")]) for p in self.data_dir.glob("*.sqlite"))

    def get(self, name: str) -> Database | None:
        """The open database ``name``, opening it on first use; ``None`` if it does not exist."""
        db = self._dbs.get(name)
        if db is None and valid_db_name(name) and self._path(name).exists():
            with self._lock:
                db = self._dbs.get(name) or Database(self, name, self._path(name))
                self._dbs[name] = db
        return db

    async def create(self, name: str) -> Database:
        """Create database ``name`` (412 ``file_exists`` when it exists)."""
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
        db = await loop.run_in_executor(self.executor, Database, self, name, self._path(name))
        self._dbs[name] = db
        return db

    async def delete(self, name: str) -> None:
        """Delete database ``name`` and its files (404 when missing); its feeds end."""
        db = self.get(name)
        if db is None:
            raise CouchError(404, "not_found", "Database does not exist.")
        del self._dbs[name]
        db.close()

        def remove() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db.path}{suffix}").unlink(missing_ok=True)

        await asyncio.get_running_loop().run_in_executor(self.executor, remove)

    def close(self) -> None:
        """Close every database and stop the writer thread."""
        for db in list(self._dbs.values()):
            db.close()
        self._dbs.clear()
        self.executor.shutdown(wait=True)


def _fetch_bounded(cursor: sqlite3.Cursor, max_bytes: int, *, body: int, page: int) -> list[Any]:
    """The cursor's rows until the sizes of their column ``body`` add up to ``max_bytes``
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
