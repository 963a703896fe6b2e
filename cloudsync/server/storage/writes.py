"""The write queue of one database: group commit on the single writer thread.

Requests that arrive while a transaction is being committed are queued and committed
together in the next one, each in its own SAVEPOINT (one failing request does not undo
another): `synchronous=FULL` then costs one fsync per batch, not per request, and an
answer is only sent after the fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import CouchError, RowError, bad_request
from .tx import Tx

if TYPE_CHECKING:
    from .database import Database

__all__ = ["WriteQueue"]

T = TypeVar("T")


class WriteQueue:
    """Queues write operations of `db` and commits them in batches on the writer thread."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[tuple[Callable[[Tx], Any], asyncio.Future[Any]]] = []
        self._draining = False

    async def submit(self, op: Callable[[Tx], T]) -> T:
        """Queue `op`; its result once its batch is durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.append((op, fut))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        db = self.db
        loop = asyncio.get_running_loop()
        try:
            while self._queue and not db.closed:
                batch, self._queue = self._queue, []
                try:
                    outcomes, tx = await loop.run_in_executor(db.storage.executor, self._run_batch, batch)
                except Exception as exc:  # the commit itself failed: nothing in the batch is durable
                    db.rewind_seq()
                    failure = exc if isinstance(exc, CouchError) else _storage_error(exc)
                    if not isinstance(failure, CouchError):
                        failure = CouchError(500, "internal_server_error", f"write failed: {exc}")
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(failure)
                    continue
                db.apply(tx)
                for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
                if tx.rows:
                    # Scheduled after the writers' answers (resolved just above): writers
                    # never wait for feeds, and a commit costs them no more with a thousand.
                    db.schedule_notify()
            for _, fut in self._queue:
                fut.set_exception(CouchError(404, "not_found", "Database does not exist."))
            self._queue.clear()
        finally:
            self._draining = False

    def _run_batch(self, batch: list[tuple[Callable[[Tx], Any], Any]]) -> tuple[list[tuple[bool, Any]], Tx]:
        db = self.db
        conn = db.writer
        tx = Tx(db)
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op, _ in batch:
                mark = (len(tx.rows), tx.doc_delta, tx.del_delta, db.last_seq_written, tx.design_changed)
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
                    tx.doc_delta, tx.del_delta, db.last_seq_written, tx.design_changed = mark[1:]
                    outcomes.append((False, exc if isinstance(exc, CouchError) else _as_couch_error(exc)))
            if tx.design_changed:
                tx.sync_indexes()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes, tx


def _storage_error(exc: Exception) -> Exception:
    """A failure of the database file itself, told plainly (not "no such savepoint")."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "disk I/O" in text):
        return CouchError(507, "insufficient_storage", f"the write failed: {text}")
    return exc


def _as_couch_error(exc: Exception) -> CouchError:
    if isinstance(exc, RowError):
        status = {"conflict": 409, "not_found": 404, "missing_stub": 412}.get(exc.error, 400)
        return CouchError(status, exc.error, exc.reason)
    if isinstance(exc, (TypeError, ValueError, sqlite3.Error)):
        return bad_request(f"invalid document: {exc}")
    return CouchError(500, "internal_server_error", type(exc).__name__)
