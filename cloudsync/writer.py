"""A batched stream writer: documents put one at a time, sent as `_bulk_docs` batches.

```python
with db.writer(batch_size=500, flush_interval=0.5) as writer:
    for event in stream:
        writer.put(event)           # returns at once; a full queue blocks (or raises)
```

One background thread sends the batches in the order the documents were put. Memory is
bounded by `max_pending` documents. A batch that failed transiently (429, 5xx, a broken
connection) is sent again: every document was given its `_id` on the client before the
first send, so a second send cannot make a second document, and a `conflict` answered for
a document the first send already stored is recognised and reported as written.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from ._retry import RetryPolicy
from .errors import CloudSyncError, HTTPError, TransportError
from .models import BulkResult

if TYPE_CHECKING:
    from .database import Database

__all__ = ["Writer", "WriterError", "WriterFull", "WriterTimeout"]

log = logging.getLogger("cloudsync")

Doc = dict[str, Any]

DEFAULT_RETRY = RetryPolicy(attempts=8, backoff=0.1, max_backoff=5.0, max_time=120.0)
"""The writer retries longer than one request does: a batch is worth more than a call."""


class WriterError(CloudSyncError):
    """The writer's background thread stopped on an error: a batch could not be written
    (a 400, 401, 403, or a transient failure that outlasted the retry policy).

    Raised in the producer by the next `put()`, `flush()` or `close()`. The original
    error is the `__cause__`.

    Args:
        message: What failed.
        unsent: How many documents were put but not written (the failed batch and
            everything queued after it). Kept as the `unsent` attribute.
    """

    def __init__(self, message: str, *, unsent: int) -> None:
        super().__init__(message)
        self.unsent = unsent


class WriterFull(CloudSyncError):
    """`put()` found `max_pending` documents waiting: raised at once with
    `on_full="raise"`, or after `put_timeout` seconds of waiting with `on_full="block"`."""

    retryable = True


class WriterTimeout(CloudSyncError):
    """`flush()` or `close()` waited its timeout and documents were still not acknowledged
    by the server. Nothing is lost: the writer keeps sending them."""

    retryable = True


def _may_have_landed(error: BaseException) -> bool:
    """Whether a failed send may have been stored by the server anyway: the request went
    out and no complete answer came back (a broken connection, a timeout, a 5xx). A 429
    is refused before any work."""
    if isinstance(error, TransportError):
        return error.sent
    if isinstance(error, HTTPError):
        return error.status >= 500
    return True  # an unusable answer to a request that was sent


def _rev_gen(rev: str | None) -> int:
    if not rev:
        return 0
    head, _, _ = rev.partition("-")
    return int(head) if head.isdigit() else 0


def _same_body(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    def body(doc: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k not in ("_id", "_rev", "_revs_info", "_revisions")}

    return body(stored) == body(sent)


class Writer:
    """Puts documents one at a time; a background thread writes them in `_bulk_docs`
    batches, in the order they were put. Get one from
    [`Database.writer()`][cloudsync.Database.writer] and use it as a context manager.

    A batch is sent when it holds `batch_size` documents, or `flush_interval` seconds
    after its first document was put, whichever comes first.

    **Results.** Each document's outcome is a [BulkResult][cloudsync.BulkResult]: passed to
    `on_result` (called on the writer's thread: keep it quick), kept in `results` when
    `keep_results` is set, and, for failures (`conflict`, `forbidden`...), kept in
    `errors` (the first `max_errors`). A document that was already stored by a send whose
    answer was lost is reported as written, with the revision the server holds.

    **Failures.** 429 and 5xx answers and broken connections are retried by `retry`
    (a [RetryPolicy][cloudsync.RetryPolicy]). Any other failure, or one that outlasts the
    policy, stops the writer: the next `put()`, `flush()` or `close()` raises
    [WriterError][cloudsync.WriterError].

    **Leaving the `with` block.** On a normal exit, and on an `Exception` raised in the
    block, everything put is flushed (waiting at most `close_timeout` seconds) before the
    block's own exception, if any, goes on. On a `KeyboardInterrupt` or other
    `BaseException` nothing more is sent: the writer stops at once and the documents not
    yet acknowledged are dropped (`unsent` counts them).

    Args:
        db: The database to write to.
        batch_size: Documents per `_bulk_docs` request.
        flush_interval: Seconds a document may wait for its batch to fill.
        max_pending: Documents held at most (queued and in flight); `put()` on a full
            writer blocks or raises, as `on_full` says.
        on_full: `"block"`: wait, at most `put_timeout` seconds; `"raise"`: raise
            [WriterFull][cloudsync.WriterFull] at once.
        put_timeout: Seconds `put()` waits for room with `on_full="block"`.
        close_timeout: Seconds `flush()`/`close()` wait by default.
        on_result: Called with each document's [BulkResult][cloudsync.BulkResult], on the
            writer's thread.
        keep_results: Keep every result in `results` (memory grows with the documents
            written; off by default).
        max_errors: At most this many failed results kept in `errors`.
        retry: How batches are retried; the default tries 8 times within 2 minutes.
        clock: Returns monotonic seconds; injectable for tests.

    Raises:
        ValueError: An option out of range.
    """

    def __init__(
        self,
        db: Database,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_pending: int = 10_000,
        on_full: Literal["block", "raise"] = "block",
        put_timeout: float = 60.0,
        close_timeout: float = 60.0,
        on_result: Callable[[BulkResult], Any] | None = None,
        keep_results: bool = False,
        max_errors: int = 10_000,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive int")
        if not isinstance(max_pending, int) or max_pending < batch_size:
            raise ValueError("max_pending must be an int no smaller than batch_size")
        if on_full not in ("block", "raise"):
            raise ValueError('on_full must be "block" or "raise"')
        if flush_interval <= 0 or put_timeout < 0 or close_timeout < 0:
            raise ValueError("flush_interval must be positive, and the timeouts not negative")
        self.db = db
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.on_full = on_full
        self.put_timeout = put_timeout
        self.close_timeout = close_timeout
        self.on_result = on_result
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self._clock = clock
        self.results: list[BulkResult] | None = [] if keep_results else None
        """Every result, in order, with `keep_results`; else `None`."""
        self.errors: list[BulkResult] = []
        """The failed results (the first `max_errors`)."""
        self.max_errors = max_errors
        self.written = 0
        """Documents the server acknowledged as stored."""
        self.failed = 0
        """Documents the server refused (`errors` holds the first ones)."""
        self.batches = 0
        """`_bulk_docs` batches answered."""

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: collections.deque[Doc] = collections.deque()
        self._first_put_at: float | None = None  # when the oldest queued document arrived
        self._in_flight = 0
        self._put_count = 0
        self._done_count = 0  # documents acknowledged (written or refused)
        self._flush_wanted = 0  # put count a flush() waits for: send without waiting the interval
        self._error: WriterError | None = None
        self._error_raised = False
        self._closing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"cloudsync-writer-{db.name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Writer({self.db!r}, batch_size={self.batch_size}, pending={self.pending})"

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, Exception):
            try:
                self.close()
            except CloudSyncError as error:
                # The block's exception goes on; the writer's is told beside it.
                log.warning("writer for %s could not flush after an error in its block: %r", self.db.name, error)
                if hasattr(exc, "add_note"):  # Python 3.11+
                    exc.add_note(f"and the writer could not flush: {error!r}")
        else:
            self.close(flush=False)

    # -- the producer's side ------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Documents put and not yet acknowledged (queued or in flight)."""
        return self._put_count - self._done_count

    def put(self, doc: Mapping[str, Any]) -> str:
        """Queue a document for writing; return at once (unless the writer is full).

        The document is copied; without an `_id` the copy gets one made on the client (a
        uuid4 hex), so that sending its batch again cannot store it twice.

        Args:
            doc: The document (with its `_rev` to update one).

        Returns:
            The document's `_id`.

        Raises:
            WriterFull: `max_pending` documents are waiting (at once with
                `on_full="raise"`, after `put_timeout` seconds with `"block"`).
            WriterError: The writer stopped on an error.
            ValueError: The writer is closed.
            TypeError: `doc` is not a mapping.
        """
        if not isinstance(doc, Mapping):
            raise TypeError(f"a document must be a mapping, not {type(doc).__name__}")
        new = dict(doc)
        doc_id = new.get("_id")
        if doc_id is None:
            doc_id = new["_id"] = uuid.uuid4().hex
        with self._lock:
            self._check_usable()
            if self._put_count - self._done_count >= self.max_pending:
                self._wait_for_room()
            self._queue.append(new)
            self._put_count += 1
            if self._first_put_at is None:
                self._first_put_at = self._clock()
                self._changed.notify_all()
            elif len(self._queue) >= self.batch_size:
                self._changed.notify_all()
        return doc_id

    def _wait_for_room(self) -> None:
        """Called with the lock held and the writer full."""
        if self.on_full == "raise":
            raise WriterFull(f"the writer holds {self.max_pending} documents (max_pending)")
        deadline = time.monotonic() + self.put_timeout
        while self._put_count - self._done_count >= self.max_pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WriterFull(
                    f"the writer stayed full ({self.max_pending} documents) for {self.put_timeout} s"
                )
            self._changed.wait(left)
            self._check_usable()

    def _check_usable(self) -> None:
        if self._error is not None:
            self._error_raised = True
            raise self._error
        if self._closing:
            raise ValueError("the writer is closed")

    def flush(self, timeout: float | None = None) -> None:
        """Send what is queued now and wait until the server acknowledged every document
        put before this call.

        Args:
            timeout: Seconds to wait; `close_timeout` by default.

        Raises:
            WriterTimeout: Documents were still unacknowledged after `timeout` seconds.
            WriterError: The writer stopped on an error.
        """
        wait = self.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        with self._lock:
            target = self._put_count
            self._flush_wanted = max(self._flush_wanted, target)
            self._changed.notify_all()
            while self._done_count < target:
                if self._error is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WriterTimeout(
                        f"{target - self._done_count} documents still unacknowledged after {wait} s"
                    )
                self._changed.wait(left)
            if self._error is not None:
                self._error_raised = True
                raise self._error

    def close(self, timeout: float | None = None, *, flush: bool = True) -> None:
        """Flush (unless `flush=False`), then stop the background thread. Idempotent: a
        second call does nothing (beyond raising an error not raised yet).

        Args:
            timeout: Seconds to wait for the flush; `close_timeout` by default.
            flush: `False` stops at once: queued documents are dropped (a batch in
                flight may still be stored).

        Raises:
            WriterTimeout: The flush did not finish in time (the writer is stopped
                anyway; `pending` tells how many documents were not acknowledged).
            WriterError: The writer stopped on an error not raised before.
        """
        with self._lock:
            if self._closed:
                if self._error is not None and not self._error_raised:
                    self._error_raised = True
                    raise self._error
                return
        try:
            if flush and self._error is None:
                self.flush(timeout)
        finally:
            with self._lock:
                self._closing = self._closed = True
                self._changed.notify_all()
            self._thread.join(timeout=5.0)
        with self._lock:
            if self._error is not None and not self._error_raised:
                self._error_raised = True
                raise self._error

    # -- the writer's thread ------------------------------------------------------------
    def _next_batch(self) -> list[Doc] | None:
        """Wait until a batch is due and take it; `None` when closing."""
        with self._lock:
            while True:
                if self._closing:
                    return None
                queued = len(self._queue)
                if queued:
                    due = (
                        queued >= self.batch_size
                        or self._flush_wanted > self._done_count + self._in_flight
                        or self._clock() - (self._first_put_at or 0.0) >= self.flush_interval
                    )
                    if due:
                        take = min(queued, self.batch_size)
                        batch = [self._queue.popleft() for _ in range(take)]
                        self._in_flight = take
                        self._first_put_at = self._clock() if self._queue else None
                        return batch
                    wait: float | None = self.flush_interval - (self._clock() - (self._first_put_at or 0.0))
                else:
                    wait = None
                self._changed.wait(None if wait is None else max(wait, 0.001))

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                results = self._write(batch)
            except Exception as exc:
                self._stop(exc, len(batch))
                return
            self._report(results)

    def _stop(self, exc: Exception, in_batch: int) -> None:
        with self._lock:
            unsent = in_batch + len(self._queue)
            self._error = WriterError(f"the writer stopped: {exc}", unsent=unsent)
            self._error.__cause__ = exc
            self._queue.clear()
            self._in_flight = 0
            self._changed.notify_all()
        log.warning("writer for %s stopped, %d documents not written: %s", self.db.name, unsent, exc)

    def _report(self, results: list[BulkResult]) -> None:
        for result in results:
            if result.ok:
                self.written += 1
            else:
                self.failed += 1
                if len(self.errors) < self.max_errors:
                    self.errors.append(result)
            if self.results is not None:
                self.results.append(result)
            if self.on_result is not None:
                try:
                    self.on_result(result)
                except Exception:  # a callback's bug must not stop the writing
                    log.exception("writer on_result callback failed")
        with self._lock:
            self.batches += 1
            self._done_count += len(results)
            self._in_flight = 0
            self._changed.notify_all()

    def _write(self, batch: list[Doc]) -> list[BulkResult]:
        """Send one batch until it is answered, retrying as `retry` says; the per-document
        results, with conflicts from an earlier send of ours turned into successes."""
        policy = self.retry
        started = time.monotonic()
        maybe_landed = False
        failures = 0
        while True:
            try:
                # One try per call: this loop owns the retries, to know whether an
                # earlier try may have landed.
                rows = self.db.request("POST", "_bulk_docs", json={"docs": batch}, retry=RetryPolicy.never())
                break
            except CloudSyncError as exc:
                # Client-made ids make a resend safe: it is idempotent whatever the method.
                if not policy.should_retry(exc, idempotent=True) or failures + 1 >= policy.attempts:
                    raise
                delay = policy.delay(exc, failures)
                if time.monotonic() - started + delay >= policy.max_time:
                    raise
                maybe_landed = maybe_landed or _may_have_landed(exc)
                failures += 1
                log.debug("writer: batch of %d, retry %d in %.2fs after %s", len(batch), failures, delay, exc)
                policy.sleep(delay)
        if not isinstance(rows, list) or len(rows) != len(batch):
            rows = self._rows_by_id(rows, batch)
        results = [BulkResult.from_row(row) for row in rows]
        if maybe_landed:
            results = [self._own_write(result, doc) for result, doc in zip(results, batch, strict=True)]
        return results

    @staticmethod
    def _rows_by_id(rows: Any, batch: list[Doc]) -> list[dict[str, Any]]:
        """The answer's rows in the batch's order (a server may leave rows out)."""
        by_id: dict[Any, dict[str, Any]] = {}
        for row in rows if isinstance(rows, list) else ():
            if isinstance(row, dict):
                by_id.setdefault(row.get("id"), row)
        missing = {"error": "unknown", "reason": "the server's answer had no row for this document"}
        return [by_id.get(doc["_id"], {"id": doc["_id"], **missing}) for doc in batch]

    def _own_write(self, result: BulkResult, sent: Doc) -> BulkResult:
        """After a send that may have landed: a `conflict` is our own write when the
        stored revision is the child of the revision we sent (or a first revision, for a
        new document) and holds exactly the body we sent."""
        if result.error != "conflict" or not isinstance(result.id, str):
            return result
        try:
            stored = self.db.get(result.id, revs_info=True)
        except CloudSyncError:  # deleted since, or unreadable: report the conflict as it is
            return result
        rev = stored.get("_rev")
        history = [entry.get("rev") for entry in stored.get("_revs_info", ()) if isinstance(entry, dict)]
        parent = history[1] if len(history) > 1 else None
        ours = (
            _rev_gen(rev) == _rev_gen(sent.get("_rev")) + 1
            and parent == sent.get("_rev")
            and _same_body(stored, sent)
        )
        return BulkResult(id=result.id, rev=rev) if ours else result
