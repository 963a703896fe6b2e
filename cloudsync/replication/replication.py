"""[Replication][cloudsync.Replication]: the pipeline that copies one database's
revisions into another, and [replicate()][cloudsync.replicate] that runs one.

Three threads, each stage in feed order, joined by queues of two batches (memory stays
bounded: a few batches of `batch_size` changes each):

1. read: the source's changes (`style=all_docs`), a page at a time (one-shot) or
   from a [Subscription][cloudsync.Subscription] (continuous);
2. fetch: `_revs_diff` against the target, then the missing revisions from the source;
3. write: `_bulk_docs` with `new_edits: false` on the target, then, at most every
   `checkpoint_interval` seconds and at the end, the checkpoint on both sides.

A batch's seq is recorded only once every batch up to it is on the target, so a
replication stopped at any moment (or killed) resumes after what it had written.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._retry import ReconnectPolicy
from ..errors import CloudSyncError, NotFound
from ..subscription_options import check_subscription_options
from ..transports import Transport
from .checkpoints import Checkpointer, SessionStats, replication_id
from .feed import STYLE, ChangesPages
from .revisions import Batch, Revisions, Stopped

if TYPE_CHECKING:
    from ..subscription_options import SubscriptionOptions

__all__ = ["Replication", "ReplicationProgress", "ReplicationState", "replicate"]

log = logging.getLogger("cloudsync.replication")

_END = object()


class ReplicationState(str, enum.Enum):
    """Where a replication is. `str` values, so `rep.state == "completed"` works."""

    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"  # continuous: everything read is written; waiting for changes
    COMPLETED = "completed"  # one-shot: caught up
    STOPPED = "stopped"
    FAILED = "failed"


FINISHED = frozenset({ReplicationState.COMPLETED, ReplicationState.STOPPED, ReplicationState.FAILED})


@dataclass(frozen=True)
class ReplicationProgress:
    """A snapshot of a replication's counters (`rep.progress`, and what `on_progress` is
    called with); each argument is kept as the attribute of the same name.

    Args:
        state: The [ReplicationState][cloudsync.ReplicationState].
        changes_read: Feed rows read from the source.
        pending: Rows read and not yet written (in the pipeline).
        missing_checked: Revisions asked about with `_revs_diff`.
        missing_found: Revisions the target lacked.
        docs_read: Revisions read from the source.
        docs_written: Revisions stored on the target.
        doc_write_failures: Revisions the target refused (e.g. a validation function).
        errors: Failed attempts that were retried (continuous) or the one it failed on.
        last_seq: The source seq up to which everything is on the target (opaque).
        checkpointed_seq: The last seq recorded in the checkpoints (opaque).
        elapsed: Seconds since the replication started.
        last_error: The last error, as text, or `None`.
    """

    state: ReplicationState
    changes_read: int
    pending: int
    missing_checked: int
    missing_found: int
    docs_read: int
    docs_written: int
    doc_write_failures: int
    errors: int
    last_seq: Any
    checkpointed_seq: Any
    elapsed: float
    last_error: str | None = None

    @property
    def docs_per_second(self) -> float:
        """Revisions written per second since the start."""
        return self.docs_written / self.elapsed if self.elapsed > 0 else 0.0


class _Channel:
    """A bounded FIFO between two threads; `close()` wakes both sides for good."""

    def __init__(self, size: int) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._size = size
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> bool:
        with self._cond:
            while len(self._items) >= self._size and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self) -> Any:
        """The next item, or `_END` once closed."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if self._closed:
                return _END
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Replication:
    """Copies every revision of `source` that `target` lacks: conflicts, deletions,
    attachments and each revision's history, over the CouchDB replication protocol.
    [replicate()][cloudsync.replicate] makes and starts one.

    Args:
        source: The [Database][cloudsync.Database] to read.
        target: The [Database][cloudsync.Database] to write.
        continuous: Keep following the source's changes until
            [stop()][cloudsync.Replication.stop]; else finish once caught up.
        selector: Replicate only documents matching this Mango selector.
        doc_ids: Replicate only these documents.
        create_target: Create the target database when it does not exist.
        checkpoint: Resume from, and record progress in, `_local/` checkpoint documents
            on both sides; `False` starts from `since` and records nothing.
        since: Start from this seq instead of the checkpoint's (opaque; `None`: the
            checkpoint's, else the beginning).
        batch_size: Changes per batch (and per `_changes` page).
        checkpoint_interval: Seconds between checkpoints while running (one is always
            written at the end, on stop, and when a continuous replication goes idle).
        transport: The [Subscription][cloudsync.Subscription]'s transport when
            `continuous`: a name or a [Transport][cloudsync.Transport].
        use_bulk_get: `None` uses `_bulk_get` where the source has it and
            `GET ?open_revs=` where not; `True`/`False` forces one.
        attachment_bytes: About the most attachment content held at once.
        reconnect: How a continuous replication waits after a failure (its
            subscription's and its own): a [ReconnectPolicy][cloudsync.ReconnectPolicy].
        subscription_options: The continuous replication's
            [SubscriptionOptions][cloudsync.SubscriptionOptions] (`heartbeat`,
            `stall_timeout`...); it sets the subscription's others itself.
        on_progress: Called with a [ReplicationProgress][cloudsync.ReplicationProgress]
            after each batch is written and on each change of state (on a replication
            thread: keep it short).
        replication_id: The id of the checkpoints; by default made from both URLs and
            the filter (the same replication run again finds its checkpoint).
        clock: Returns seconds, monotonic; injectable for tests.

    Raises:
        ValueError: `batch_size` below 1, or `selector` with `doc_ids`.
        TypeError: `source` or `target` is not a [Database][cloudsync.Database],
            `doc_ids` is one `str`, or `subscription_options` has an unknown key.
    """

    def __init__(
        self,
        source: Any,
        target: Any,
        *,
        continuous: bool = False,
        selector: Mapping[str, Any] | None = None,
        doc_ids: Sequence[str] | None = None,
        create_target: bool = False,
        checkpoint: bool = True,
        since: Any = None,
        batch_size: int = 500,
        checkpoint_interval: float = 1.0,
        transport: str | Transport = "longpoll",
        use_bulk_get: bool | None = None,
        attachment_bytes: int = 16 << 20,
        reconnect: ReconnectPolicy | None = None,
        subscription_options: SubscriptionOptions | None = None,
        on_progress: Callable[[ReplicationProgress], Any] | None = None,
        replication_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for role, db in (("source", source), ("target", target)):
            if not all(hasattr(db, name) for name in ("revs_diff", "bulk_get", "bulk", "changes_endpoint", "url")):
                raise TypeError(f"{role} must be a cloudsync.Database, not {type(db).__name__}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be a positive int")
        if selector is not None and doc_ids is not None:
            raise ValueError("use either selector or doc_ids, not both")
        if isinstance(doc_ids, str):
            raise TypeError("doc_ids must be a sequence of ids, not a str")
        if selector is not None and not isinstance(selector, Mapping):
            raise TypeError(f"selector must be a mapping, not {type(selector).__name__}")
        check_subscription_options(subscription_options or {}, "Replication()'s subscription_options has unknown keys")
        self.source = source
        self.target = target
        self.continuous = continuous
        self.selector = dict(selector) if selector is not None else None
        self.doc_ids = list(doc_ids) if doc_ids is not None else None
        self.create_target = create_target
        self.checkpoint = checkpoint
        self.since = since
        self.batch_size = batch_size
        self.checkpoint_interval = checkpoint_interval
        self.transport = transport
        self.reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        self.subscription_options = dict(subscription_options or {})
        self.on_progress = on_progress
        self.id = replication_id or _default_id(source, target, self.selector, self.doc_ids)
        """The replication id: its checkpoints are `_local/<id>` on both sides."""
        self.session_id = uuid.uuid4().hex
        """This run's session, as recorded in the checkpoints' history."""
        self._clock = clock
        self._revisions = Revisions(source, target, use_bulk_get=use_bulk_get, attachment_bytes=attachment_bytes)
        self._checkpointer = Checkpointer(source, target, self.id, self.session_id)
        self._stats = SessionStats()
        self._lock = threading.Lock()
        self._state = ReplicationState.STARTING
        self._changes_read = 0
        self._changes_done = 0
        self._errors = 0
        self._error: BaseException | None = None
        self._last_seq: Any = None
        self._checkpointed: Any = None
        self._started_at: float | None = None
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._changes = _Channel(2)
        self._batches = _Channel(2)
        self._start_seq: Any = None
        self._pages: ChangesPages | None = None
        self._subscription: Any = None

    # -- public --------------------------------------------------------------------------
    @property
    def state(self) -> ReplicationState:
        """Where the replication is: a [ReplicationState][cloudsync.ReplicationState]."""
        return self._state

    @property
    def error(self) -> BaseException | None:
        """The error the replication failed with, or the last one it retried."""
        return self._error

    @property
    def progress(self) -> ReplicationProgress:
        """A snapshot of the counters: a [ReplicationProgress][cloudsync.ReplicationProgress]."""
        with self._lock:
            s = self._stats
            started = self._started_at
            return ReplicationProgress(
                state=self._state, changes_read=self._changes_read, pending=self._changes_read - self._changes_done,
                missing_checked=s.missing_checked, missing_found=s.missing_found, docs_read=s.docs_read,
                docs_written=s.docs_written, doc_write_failures=s.doc_write_failures, errors=self._errors,
                last_seq=self._last_seq, checkpointed_seq=self._checkpointed,
                elapsed=0.0 if started is None else self._clock() - started,
                last_error=None if self._error is None else f"{type(self._error).__name__}: {self._error}",
            )

    def start(self) -> Replication:
        """Check both databases, read the checkpoints and start the pipeline's threads.

        Returns:
            This replication.

        Raises:
            NotFound: The source does not exist, or the target does not and
                `create_target` is false.
            RuntimeError: `start()` was called before.
            CloudSyncError: Any other failure reading the checkpoints.
        """
        if self._started_at is not None:
            raise RuntimeError("start() was called already")
        self._started_at = self._clock()
        try:
            self._prepare()
        except BaseException as exc:
            self._finish(ReplicationState.FAILED, exc)
            self._done.set()
            raise
        self._spawn(self._read, "read")
        self._spawn(self._fetch, "fetch")
        self._spawn(self._write, "write")
        self._set_state(ReplicationState.RUNNING)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the replication has finished (caught up, stopped or failed).

        Args:
            timeout: Seconds to wait at most; `None` waits as long as it takes.

        Returns:
            Whether it has finished.

        Raises:
            CloudSyncError: The error the replication failed with.
        """
        if not self._done.wait(timeout):
            return False
        if self._state is ReplicationState.FAILED and self._error is not None:
            raise self._error
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, from any thread. A request in flight is let finish (this waits up to
        `timeout` seconds for it), and what was written is recorded in the checkpoints, so
        the next run resumes after it; [wait()][cloudsync.Replication.wait] returns once
        that is done.

        Args:
            timeout: Seconds to wait for the threads to finish.
        """
        self._stopping.set()
        if self._pages is not None:
            self._pages.close()
        if self._subscription is not None:
            self._subscription.close()
        self._changes.close()
        self._batches.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if not self._threads:  # never started
            self._finish(ReplicationState.STOPPED)
            self._done.set()

    def __enter__(self) -> Replication:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Replication {self.source.url} -> {self.target.url} {self._state.value}>"

    # -- setting up ------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.source.info()  # NotFound now, not from a thread
        if not self.target.exists():
            if not self.create_target:
                raise NotFound(404, "not_found", f"target database {self.target.url} does not exist "
                                                 "(create_target=True creates it)")
            self.target.create_if_missing()
        start = self.since
        if self.checkpoint:
            loaded = self._checkpointer.load()
            if start is None:
                start = loaded
        self._last_seq = self._checkpointed = self._start_seq = start
        if self.continuous:
            self._subscription = self.source.subscribe(
                self.transport, since=start if start is not None else 0, selector=self.selector,
                doc_ids=self.doc_ids, query_params=STYLE, reconnect=self.reconnect,
                **{"queue_size": max(1000, 2 * self.batch_size), **self.subscription_options},
            )
        else:
            self._pages = ChangesPages(self.source, self.batch_size, selector=self.selector, doc_ids=self.doc_ids)

    # -- the three stages --------------------------------------------------------------------
    def _read(self) -> None:
        if self._subscription is not None:
            for changes in self._subscription.batches(max_size=self.batch_size, max_wait=0.05):
                if not self._put_changes(changes[-1].seq, changes):
                    return
            return
        assert self._pages is not None
        pages = self._pages.pages(self._start_seq)
        while not self._stopping.is_set():
            page = next(pages, None)
            if page is None:
                self._changes.put(_END)
                return
            changes, last_seq = page
            if not self._put_changes(last_seq, changes):
                return

    def _put_changes(self, seq: Any, changes: list[Any]) -> bool:
        with self._lock:
            self._changes_read += len(changes)
        if changes and self._state is ReplicationState.IDLE:
            self._set_state(ReplicationState.RUNNING)
        return self._changes.put((seq, changes))

    def _fetch(self) -> None:
        while (item := self._changes.get()) is not _END:
            seq, changes = item
            batch = Batch(seq, len(changes))
            if changes:
                self._persist(functools.partial(self._read_missing, batch, changes))
            if not self._batches.put(batch):
                return
        if not self._stopping.is_set():
            self._batches.put(_END)

    def _write(self) -> None:
        last_checkpoint = self._clock()
        try:
            while (batch := self._batches.get()) is not _END:
                try:
                    self._persist(functools.partial(self._revisions.write, batch, self._stats, self._stopping.is_set))
                except Stopped:
                    break
                with self._lock:
                    self._changes_done += batch.changes
                    self._last_seq = batch.seq
                    idle = self.continuous and self._changes_done == self._changes_read
                now = self._clock()
                if idle or now - last_checkpoint >= self.checkpoint_interval:
                    self._save_checkpoint()
                    last_checkpoint = now
                if idle:
                    self._set_state(ReplicationState.IDLE)
                else:
                    self._report()
        finally:
            # Stopping, failed or caught up: record what is on the target.
            with contextlib.suppress(CloudSyncError):
                self._save_checkpoint()

    # -- helpers ---------------------------------------------------------------------------
    def _read_missing(self, batch: Batch, changes: list[Any]) -> None:
        self._revisions.read(batch, self._revisions.missing(changes, self._stats), self._stats)

    def _persist(self, step: Callable[[], None]) -> None:
        """Run `step`; a continuous replication retries transient failures after a
        backoff (interrupted by stop), a one-shot one fails on any."""
        failures = 0
        first_failure = 0.0
        while True:
            try:
                step()
                return
            except Stopped:
                raise
            except CloudSyncError as exc:
                if not self.continuous or not exc.retryable or self._stopping.is_set():
                    raise
                failures += 1
                if failures == 1:
                    first_failure = self._clock()
                if self.reconnect.gives_up(failures, self._clock() - first_failure):
                    raise
                with self._lock:
                    self._errors += 1
                    self._error = exc
                delay = self.reconnect.delay(failures)
                log.warning("replication %s: %s; trying again in %.1fs", self.id, exc, delay)
                self._report()
                if self._stopping.wait(delay):
                    raise Stopped() from exc

    def _save_checkpoint(self) -> None:
        seq = self._last_seq
        if not self.checkpoint or seq is None or seq == self._checkpointed:
            return
        self._checkpointer.save(seq, self._stats)
        with self._lock:
            self._checkpointed = seq

    def _spawn(self, stage: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                stage()
            except Stopped:
                pass
            except BaseException as exc:
                if not self._stopping.is_set():
                    log.error("replication %s failed: %s", self.id, exc, exc_info=exc)
                    self._fail(exc)
            finally:
                if name == "write":  # the last to finish: its checkpoint is saved
                    self._finish(ReplicationState.STOPPED if self._stopping.is_set() else ReplicationState.COMPLETED)
                    self._done.set()

        thread = threading.Thread(target=run, name=f"cloudsync-replicate-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1
        self._stopping.set()
        if self._pages is not None:
            self._pages.close()
        if self._subscription is not None:
            self._subscription.close()
        self._changes.close()
        self._batches.close()
        self._finish(ReplicationState.FAILED, exc)  # the write thread then saves the checkpoint and ends

    def _finish(self, state: ReplicationState, exc: BaseException | None = None) -> None:
        with self._lock:
            if self._state in FINISHED:
                return
            if exc is not None:
                self._error = exc
        self._set_state(state)
        self._done.set()

    def _set_state(self, state: ReplicationState) -> None:
        with self._lock:
            if self._state is state or self._state in FINISHED:
                return
            self._state = state
        self._report()

    def _report(self) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.progress)
        except Exception:
            log.exception("on_progress raised")


def _default_id(source: Any, target: Any, selector: Mapping[str, Any] | None, doc_ids: Sequence[str] | None) -> str:
    return replication_id(source.url, target.url, selector=selector, doc_ids=doc_ids)


def replicate(
    source: Any,
    target: Any,
    *,
    continuous: bool = False,
    selector: Mapping[str, Any] | None = None,
    doc_ids: Sequence[str] | None = None,
    create_target: bool = False,
    checkpoint: bool = True,
    since: Any = None,
    batch_size: int = 500,
    checkpoint_interval: float = 1.0,
    transport: str | Transport = "longpoll",
    use_bulk_get: bool | None = None,
    attachment_bytes: int = 16 << 20,
    reconnect: ReconnectPolicy | None = None,
    subscription_options: SubscriptionOptions | None = None,
    on_progress: Callable[[ReplicationProgress], Any] | None = None,
    replication_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Replication:
    """Replicate `source` into `target` (two [Database][cloudsync.Database] handles, on
    any two CouchDB-compatible servers): every revision the target lacks, conflicts,
    deletions and attachments included. Two-way sync is two replications.

    The options are the replication's (a test keeps the two signatures in step); its
    page says more of each.

    Args:
        source: The database to read.
        target: The database to write.
        continuous: Return at once, with the replication running until
            [stop()][cloudsync.Replication.stop]; else return once caught up.
        selector: Replicate only documents matching this Mango selector.
        doc_ids: Replicate only these documents.
        create_target: Create the target database when it does not exist.
        checkpoint: Resume from (and record progress in) the replication's `_local/`
            checkpoint documents.
        since: Start from this seq instead of the checkpoint's (opaque).
        batch_size: Changes per batch (and per `_changes` page).
        checkpoint_interval: Seconds between checkpoints while running.
        transport: The subscription's transport when `continuous`: a name or a
            [Transport][cloudsync.Transport].
        use_bulk_get: `None` uses `_bulk_get` where the source has it; `True`/`False`
            forces it or `GET ?open_revs=`.
        attachment_bytes: About the most attachment content held at once.
        reconnect: How a continuous replication waits after a failure: a
            [ReconnectPolicy][cloudsync.ReconnectPolicy].
        subscription_options: The continuous replication's
            [SubscriptionOptions][cloudsync.SubscriptionOptions].
        on_progress: Called with a [ReplicationProgress][cloudsync.ReplicationProgress]
            after each batch and on each change of state.
        replication_id: The id of the checkpoints; by default made from both URLs and
            the filter.
        clock: Returns seconds, monotonic; injectable for tests.

    Returns:
        The [Replication][cloudsync.Replication]: finished (its `progress` says what it
            did) or, with `continuous`, running.

    Raises:
        NotFound: The source does not exist, or the target does not and `create_target`
            is false.
        CloudSyncError: A one-shot replication failed (it resumes from its checkpoint
            when run again).
    """
    rep = Replication(
        source, target, continuous=continuous, selector=selector, doc_ids=doc_ids, create_target=create_target,
        checkpoint=checkpoint, since=since, batch_size=batch_size, checkpoint_interval=checkpoint_interval,
        transport=transport, use_bulk_get=use_bulk_get, attachment_bytes=attachment_bytes, reconnect=reconnect,
        subscription_options=subscription_options, on_progress=on_progress, replication_id=replication_id,
        clock=clock,
    )
    rep.start()
    if continuous:
        return rep
    try:
        rep.wait()
    except BaseException:
        rep.stop()
        raise
    return rep

