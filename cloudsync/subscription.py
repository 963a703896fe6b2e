"""Following a database's changes: :class:`Subscription`.

A :class:`~cloudsync._reader.Reader` runs connections one after another through a
:class:`~cloudsync.transports.Transport` and puts what they yield on a bounded queue;
the application takes changes from the queue (iterator, callback thread or batches).
This module is the application's side: delivery, the dedupe window, acknowledgements
and the checkpoint.

Resume rules (seqs are opaque and never compared):

- ``since="now"`` is resolved once (the database's ``update_seq``); a checkpoint
  store's saved seq wins over ``since``.
- After a clean end (long poll answered, ``last_seq``, normal close) the next connection
  starts at once from the last seq *queued*: everything queued is still delivered, in order.
- After a failure the next connection starts, after a backoff, from the seq of the last
  change *delivered*; what is still queued is delivered and its replay deduplicated.
  Items from a connection the watchdog abandoned are dropped, however late they arrive.
- A checkpoint store is saved only with seqs the application has acknowledged (after
  the loop body, the callback, the batch; or ``sub.ack(change)`` with ``manual_ack``).
- Once :meth:`Subscription.close` has returned, nothing more is delivered and the
  checkpoint store is not written again by this subscription.
"""

from __future__ import annotations

import collections
import logging
import random as _random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._dedupe import DedupeWindow, revisions_key
from ._reader import BATCH, ERROR, WARN_EVERY, Reader, State
from ._retry import full_jitter
from .checkpoint import CheckpointStore
from .errors import CloudSyncError
from .models import Change
from .transports import ChangesRequest, LastSeq, Transport, create_transport

__all__ = ["ReconnectPolicy", "State", "Subscription", "SubscriptionStats"]

log = logging.getLogger("cloudsync.subscription")

#: Seconds ``close()`` gives the final checkpoint save and the reader's threads.
CLOSE_BUDGET = 0.8


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a subscription waits between failed connections.

    **By default a subscription retries transient failures forever** (network errors,
    timeouts, 429 and 5xx answers), logging a WARNING at most every 30 seconds while it
    keeps failing; ``sub.state`` and ``sub.last_error`` tell where it is. Bound it with
    ``max_errors`` (consecutive failures) or ``max_error_time`` (seconds since the first
    of them): then the subscription gives up and raises the last error. Errors that
    retrying cannot fix (400, 401 after a renewal, 403, 404, a TLS failure) are raised
    at once.

    Capped full-jitter exponential backoff: after the n-th consecutive failure it waits
    a uniform random time in ``[0, min(max, initial * 2**(n-1)))``; a connection that
    delivered something resets the count. A clean end never waits. A server's
    ``Retry-After`` (429, 503) or SSE ``retry:`` hint is a lower bound, honoured up to
    ``max_retry_after`` seconds.

    ``sleep`` and ``random`` are injectable for tests; the default sleep is an
    interruptible wait that :meth:`Subscription.close` cuts short.

    ``probe_interval``: when a connection was *refused* (nothing listening: the server is
    restarting), the wait is spent probing the server's port with a bare TCP connect
    about every ``probe_interval`` seconds (jittered ±50%), and ends as soon as the port
    accepts. Any other failure waits the full delay. ``None`` turns probing off; so
    does an injected ``sleep``.
    """

    initial: float = 0.5
    max: float = 30.0
    max_errors: int | None = None
    max_error_time: float | None = None
    sleep: Callable[[float], Any] | None = field(default=None, repr=False, compare=False)
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)
    probe_interval: float | None = 0.2
    max_retry_after: float = 300.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 for the first)."""
        return full_jitter(max(0, failures - 1), self.initial, self.max, self.random)

    def gives_up(self, failures: int, failing_for: float) -> bool:
        if self.max_errors is not None and failures > self.max_errors:
            return True
        return self.max_error_time is not None and failing_for > self.max_error_time


@dataclass
class SubscriptionStats:
    """Counters since the subscription started (``sub.stats`` returns a copy)."""

    changes: int = 0  # delivered to the application
    duplicates: int = 0  # dropped by the dedupe window
    connections: int = 0  # connections opened (a long poll opens one per answer)
    reconnects: int = 0  # connections opened after a failure
    errors: int = 0  # failed connections
    stalls: int = 0  # connections the watchdog found silent
    dropped: int = 0  # undelivered items discarded with a retired generation
    bytes_received: int = 0


_TIMEOUT = object()
_EMPTY: list[Any] = []


class Subscription:
    """A live, resumable view of a database's changes.

    ``db.subscribe(transport, **options)`` builds one; the options are the keyword
    arguments here:

    - ``transport``: a registered name (``"longpoll"``, ``"continuous"``, ``"sse"``,
      ``"websocket"``) or a :class:`~cloudsync.transports.Transport` instance;
      ``transport_options`` are passed to a named transport's constructor.
    - ``since``: ``"now"`` (default; resolved to the database's ``update_seq`` when the
      subscription is created), ``None``/``0`` for everything, or a seq.
    - ``include_docs``, ``selector``, ``doc_ids``, ``filter`` (``"ddoc/name"``) with
      ``query_params`` (filter parameters and other query parameters, such as
      ``{"style": "all_docs"}`` to hear of new conflict revisions).
    - ``checkpoint``: a :class:`~cloudsync.CheckpointStore`; ``checkpoint_every`` saves
      every n-th acknowledged position (the last one is always saved on close).
    - ``manual_ack``: the application calls :meth:`ack` itself.
    - ``heartbeat`` (seconds asked of the server), ``feed_timeout`` (seconds after which
      the server should end a feed cleanly), ``connect_timeout``.
    - ``stall_timeout``: seconds without a byte after which a connection counts as dead
      and is replaced. The default, 1.25 × the effective heartbeat (or WebSocket ping
      interval) + ``stall_grace``, notices a silently dropped connection within 15 s on
      every transport.
    - ``reconnect``: a :class:`ReconnectPolicy`; ``queue_size``: at most this many
      changes are held between the reader and the application; ``dedupe_window``: how
      many delivered (document, revisions) pairs to remember.
    - ``on_state_change(old, new)``: called on every :class:`State` change.
    """

    def __init__(
        self,
        database: Any,
        transport: str | Transport = "longpoll",
        *,
        since: Any = "now",
        include_docs: bool = False,
        selector: Mapping[str, Any] | None = None,
        doc_ids: Sequence[str] | None = None,
        filter: str | None = None,
        query_params: Mapping[str, Any] | None = None,
        checkpoint: CheckpointStore | None = None,
        checkpoint_every: int = 1,
        manual_ack: bool = False,
        heartbeat: float = 10.0,
        feed_timeout: float | None = 60.0,
        stall_timeout: float | None = None,
        stall_grace: float = 2.0,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        queue_size: int = 1000,
        dedupe_window: int = 10_000,
        on_state_change: Callable[[State, State], Any] | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        if selector is not None and doc_ids is not None:
            raise ValueError("use either selector or doc_ids, not both")
        if (selector is not None or doc_ids is not None) and filter is not None:
            raise ValueError("filter cannot be combined with selector or doc_ids")
        if isinstance(doc_ids, str):
            raise TypeError("doc_ids must be a sequence of ids, not a str")
        if queue_size < 1 or checkpoint_every < 1:
            raise ValueError("queue_size and checkpoint_every must be at least 1")
        self.database = database
        self.transport = create_transport(transport, **(transport_options or {}))
        self.transport.attach(database.changes_endpoint())
        self.since = since
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.manual_ack = manual_ack
        self.reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        self.queue_size = queue_size
        self.on_state_change = on_state_change
        effective = self.transport.effective_heartbeat(heartbeat)
        self.stall_timeout = stall_timeout if stall_timeout is not None else 1.25 * effective + stall_grace
        template = ChangesRequest(
            include_docs=include_docs,
            selector=selector,
            doc_ids=tuple(doc_ids) if doc_ids is not None else None,
            filter=filter,
            query_params=dict(query_params or {}),
            heartbeat=heartbeat,
            timeout=feed_timeout,
            stall_timeout=self.stall_timeout,
            connect_timeout=connect_timeout,
        )
        self._stats = SubscriptionStats()
        # The reader holds nothing of this object: a subscription the application drops
        # is collected, and the finalizer stops the reader's threads.
        self._reader = reader = Reader(
            self.transport, template, reconnect=self.reconnect, queue_size=queue_size,
            stall_timeout=self.stall_timeout, stats=self._stats,
            on_state_change=on_state_change,
        )
        weakref.finalize(self, reader.close)

        # Delivery (the consumer's side). _handing is set while a change is being handed
        # out: close() sets _stopped, then waits for a hand-out under way, and none starts
        # after (a consumer sets _handing before it looks at _stopped).
        self._handing = False
        self._stopped = False
        self._started = False
        self._batch: list[Any] = []  # the batch being delivered, one item per pull
        self._batch_pos = 0
        self._batch_gen = 0
        self._delivered = 0
        self._window = DedupeWindow(dedupe_window)
        self._deliverer: threading.Thread | None = None
        self._close_done = threading.Event()

        # Acknowledgements and the checkpoint.
        # manual_ack: [seq, acked, change] per delivered change or consumed marker.
        self._pending: collections.deque[list[Any]] = collections.deque()
        # Automatic acks: changes delivered and not yet acknowledged (all of them are
        # acknowledged together, when the application asks for more).
        self._outstanding = 0
        self._last_handed: Change | None = None
        self._committed: Any = None
        self._saved: Any = None
        self._unsaved = 0
        self._save_lock = threading.Lock()
        self._sealed = False  # closed: the store is not written again
        self._save_warned = -WARN_EVERY
        # Resolve the start now, not when iteration begins: "now" means when subscribe()
        # was called, so writes made before the first next() are not skipped.
        self._resolve()

    # -- public ------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._reader.state

    @property
    def last_seq(self) -> Any:
        """The seq of the last change delivered (or feed position consumed); opaque."""
        return self._reader.position

    @property
    def committed_seq(self) -> Any:
        """The last position every change up to which the application has acknowledged."""
        return self._committed

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last failed connection while the subscription keeps failing
        (``None`` once a connection delivers again), or the error it stopped on."""
        return self._reader.last_error

    @property
    def stats(self) -> SubscriptionStats:
        return replace(self._stats, changes=self._delivered, bytes_received=self.transport.bytes_received)

    @property
    def closed(self) -> bool:
        return self._stopped

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Change]:
        return self

    def __next__(self) -> Change:
        # The per-change path of a drain, inlined: acknowledge what was handed out (before
        # _handing is set: a save may wait on a server, and close() must not), then hand
        # out the next change of the current batch if it names one revision of a document
        # not in the dedupe window (the common case of _take, _deliver, DedupeWindow.remember
        # and _hand, which a change to them must keep in step). Anything else goes
        # through _take.
        if self._outstanding:
            if self.checkpoint is None:
                self._outstanding = 0
                self._last_handed = None
                self._committed = self._reader.position
            else:
                self._ack_outstanding()
        self._handing = True
        if self._stopped:
            self._handing = False
            raise StopIteration
        batch = self._batch
        pos = self._batch_pos
        reader = self._reader
        if pos < len(batch) and not self.manual_ack and self._batch_gen >= reader.min_gen:
            item = batch[pos]
            if item.__class__ is Change:
                rev = item.rev
                doc_id = item.id
                window = self._window
                young = window.young
                if rev is not None and doc_id not in young and doc_id not in window.old and len(item.revs) < 2:
                    self._batch_pos = pos + 1
                    young[doc_id] = rev
                    if len(young) >= window.room:
                        window.rotate()
                    seq = item.seq
                    if seq is not None:
                        reader.position = seq
                    self._outstanding = 1
                    self._last_handed = item
                    self._delivered += 1
                    self._handing = False
                    return item
        try:
            if not self._started:
                self._ensure_started()
            change = self._take(None)
        finally:
            self._handing = False
        if change is None:
            raise StopIteration
        return change  # type: ignore[no-any-return]

    def batches(self, max_size: int = 100, max_wait: float = 0.5) -> Iterator[list[Change]]:
        """Changes in lists of at most ``max_size``, each yielded at most ``max_wait``
        seconds after its first change arrived. A batch is acknowledged when the next
        one is requested."""
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._ensure_started()
        return _Batches(self, max_size, max_wait)

    def start(
        self,
        on_change: Callable[[Change], Any],
        on_error: Callable[[BaseException], Any] | None = None,
    ) -> Subscription:
        """Deliver on a background daemon thread: ``on_change(change)`` for each change,
        acknowledged when it returns. A terminal error, or an exception from
        ``on_change``, goes to ``on_error`` (logged without one) and closes the
        subscription. After :meth:`close` returns no ``on_change`` call is dispatched; one
        dispatched before finishes in its own time (``close(timeout=...)`` or :meth:`join`
        waits for it). A subscription has one consumer: ``start()`` once, and do not also
        iterate it."""
        if self._deliverer is not None:
            raise RuntimeError("start() was called already: a subscription has one consumer")
        self._ensure_started()

        def deliver() -> None:
            try:
                while True:
                    self._handing = True
                    try:
                        change = None if self._stopped else self._take(None)
                    finally:
                        self._handing = False  # from here on, the call counts as started
                    if change is None:
                        return
                    on_change(change)
                    if self._outstanding:
                        self._ack_outstanding()
            except BaseException as exc:
                if on_error is not None:
                    try:
                        on_error(exc)
                    except Exception:
                        log.exception("on_error raised")
                else:
                    log.error("subscription stopped: %s", exc, exc_info=exc)
                self.close()

        self._deliverer = threading.Thread(target=deliver, name="cloudsync-deliver", daemon=True)
        self._deliverer.start()
        return self

    def ack(self, change: Change) -> None:
        """Mark ``change`` handled. The checkpoint advances over every leading handled change.

        Without ``manual_ack`` changes are acknowledged automatically; acknowledging the
        last change handed out acknowledges it early (call it from the consuming thread),
        anything else is ignored."""
        if not self.manual_ack:
            if self._outstanding and change is self._last_handed:
                self._ack_outstanding()
            return
        with self._reader.cond:
            for entry in self._pending:
                if entry[2] is change and not entry[1]:
                    entry[1] = True
                    break
            to_save = self._commit_locked()
        self._save(to_save)

    def close(self, timeout: float | None = None) -> None:
        """Stop, from any thread, in under a second: once it returns no change is handed
        to the application any more and the checkpoint store is not written again.

        Saves the last acknowledged position (a short, bounded save: one that cannot be
        made in time is logged and costs only redelivery). Changes queued but not
        delivered are not acknowledged: the next start resumes before them.
        ``timeout``: also wait up to that many seconds for a running ``on_change`` call
        (delivery with :meth:`start`) to return."""
        self._close(timeout, wait_for_handing=True)

    def _close(self, timeout: float | None, *, wait_for_handing: bool) -> None:
        started = time.monotonic()
        self._stopped = True
        first = self._reader.close()
        if not first:  # another close() is under way: return once it has finished
            self._close_done.wait(CLOSE_BUDGET)
        # Wait for a hand-out under way on another thread (microseconds: polled, since an
        # event set per change would cost the drain path); none starts after this. A
        # consumer held up longer, by a checkpoint save on a hung server, sees _stopped
        # before it hands anything out.
        handing_deadline = started + CLOSE_BUDGET / 2
        while wait_for_handing and self._handing and time.monotonic() < handing_deadline:
            time.sleep(0.0002)
        if first:
            self._final_save(started + CLOSE_BUDGET * 0.75)
            log.debug("subscription closed at %r", self._reader.position)
            self._reader.join(started + CLOSE_BUDGET)
            self._close_done.set()
        if timeout is not None:
            self.join(max(0.0, timeout - (time.monotonic() - started)))

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the delivery thread of :meth:`start` has finished (it finishes
        after :meth:`close`, once a running ``on_change`` returns). Returns whether it has."""
        thread = self._deliverer
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def _threads(self) -> list[threading.Thread]:
        """Every thread this subscription started (for tests)."""
        return [*self._reader.threads, *([self._deliverer] if self._deliverer else [])]

    def __repr__(self) -> str:
        return f"<Subscription {self.transport.name} {self.state.value} last_seq={self.last_seq!r}>"

    # -- delivery -----------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        with self._reader.cond:
            if self._started or self._stopped:
                return
            self._started = True
        self._reader.start(self._reader.position)

    def _take(self, timeout: float | None) -> Any:
        """The next change, ``None`` when closed, ``_TIMEOUT`` after ``timeout`` seconds.
        Raises a terminal error (after closing). Only the consumer calls this, with
        ``_handing`` set. Items of the current batch are delivered without taking the
        queue's lock; it is taken once per batch, to return the batch's room to the
        reader and fetch the next one."""
        reader = self._reader
        deadline = None
        while True:
            batch = self._batch
            pos = self._batch_pos
            if pos < len(batch):
                item = batch[pos]
                self._batch_pos = pos + 1
                if self._batch_gen < reader.min_gen:  # from an abandoned connection
                    self._stats.dropped += 1
                    continue
                if item.__class__ is LastSeq:
                    self._marker(item.seq)
                    continue
                if self._stopped:  # close() was called while this consumer was held up
                    return None
                if self._deliver(item):
                    return item
                continue
            self._batch = _EMPTY
            self._batch_pos = 0
            error: BaseException | None = None
            with reader.cond:
                if batch:
                    reader.queued -= len(batch)
                    if reader.blocked:
                        reader.cond.notify_all()
                while not reader.queue:
                    if reader.closed.is_set():
                        return None
                    if timeout is not None:
                        if deadline is None:
                            deadline = time.monotonic() + timeout
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return _TIMEOUT
                    else:
                        remaining = 1.0
                    reader.consumers_waiting += 1
                    try:
                        reader.cond.wait(remaining)
                    finally:
                        reader.consumers_waiting -= 1
                if reader.closed.is_set():
                    return None
                gen, kind, payload = reader.queue.popleft()
                if kind == ERROR:
                    error = payload
                else:
                    assert kind == BATCH
                    self._batch, self._batch_gen = payload, gen
            if error is not None:
                self._close(None, wait_for_handing=False)  # the consumer itself is handing
                raise error

    def _deliver(self, change: Change) -> bool:
        """Hand ``change`` over unless it is a replay; keep the books. Consumer only."""
        key = revisions_key(change)
        if key is not None:
            if self._window.seen(change.id, key):
                self._stats.duplicates += 1
                log.debug("dropped duplicate %s %s", change.id, key)
                self._marker(change.seq)
                return False
            self._window.remember(change.id, key)
        self._hand(change)
        return True

    def _hand(self, change: Change) -> None:
        """Keep the books of a change handed to the application. Consumer only."""
        seq = change.seq
        if self.manual_ack:
            with self._reader.cond:
                if seq is not None:
                    self._reader.position = seq
                self._pending.append([seq, False, change])
        else:
            if seq is not None:
                self._reader.position = seq
            self._outstanding += 1
            self._last_handed = change
        self._delivered += 1

    # -- acknowledgements and the checkpoint -----------------------------------------------------
    def _marker(self, seq: Any) -> None:
        """A position with nothing to hand over (a marker or a duplicate). Consumer only."""
        if seq is None:
            return
        if self.manual_ack:
            with self._reader.cond:
                self._reader.position = seq
                self._pending.append([seq, True, None])
                to_save = self._commit_locked()
            self._save(to_save)
            return
        self._reader.position = seq
        if not self._outstanding:  # nothing handed out is waiting: acknowledged at once
            self._commit(seq, 1)

    def _ack_outstanding(self) -> None:
        """Acknowledge every change handed out (automatic acks). Consumer only."""
        count, self._outstanding = self._outstanding, 0
        self._last_handed = None
        self._commit(self._reader.position, count)

    def _commit(self, seq: Any, count: int) -> None:
        if seq is None or seq == self._committed:
            return
        self._committed = seq
        self._unsaved += count
        if self.checkpoint is None or self._unsaved < self.checkpoint_every:
            return
        self._unsaved = 0
        self._save(seq)

    def _commit_locked(self) -> Any:
        """Pop the acknowledged prefix; return the seq to save, if it is time to save."""
        committed = None
        while self._pending and self._pending[0][1]:
            seq = self._pending.popleft()[0]
            if seq is not None:
                committed = seq
        if committed is None:
            return None
        self._committed = committed
        self._unsaved += 1
        if self.checkpoint is None or self._unsaved < self.checkpoint_every:
            return None
        self._unsaved = 0
        return committed

    def _save(self, seq: Any) -> None:
        """Save ``seq``; a failed save is logged and tried again at the next commit."""
        if seq is None or self.checkpoint is None:
            return
        with self._save_lock:
            if self._sealed or seq == self._saved:
                return
            try:
                self.checkpoint.save(seq)
            except Exception as exc:
                self._unsaved = self.checkpoint_every  # the next commit tries again
                now = time.monotonic()
                if now - self._save_warned >= WARN_EVERY:
                    self._save_warned = now
                    log.warning("could not save the checkpoint (%r): %s; will retry", self.checkpoint, exc)
                return
            self._saved = seq

    def _final_save(self, deadline: float) -> None:
        """The last save, bounded by ``deadline``; then the store is sealed. (A save
        already under way past the deadline may still complete.)"""
        if not self._save_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            self._sealed = True
            log.warning("a checkpoint save (%r) is still under way; no final save", self.checkpoint)
            return
        try:
            self._sealed = True
            seq = self._committed
            if self.checkpoint is None or seq is None:
                return  # (even a seq already saved: a store may have kept it for later)
            try:
                self.checkpoint.save_final(seq, timeout=max(0.05, deadline - time.monotonic()))
            except Exception as exc:
                log.warning("could not save the checkpoint on close (%r): %s; "
                            "the next start redelivers from the last saved position", self.checkpoint, exc)
                return
            self._saved = seq
        finally:
            self._save_lock.release()

    def _resolve(self) -> None:
        """The first position: the checkpoint's, else ``since`` (``"now"`` resolved once)."""
        since = loaded = self.checkpoint.load() if self.checkpoint is not None else None
        if since is not None:
            log.debug("resuming from checkpoint %r", since)
        elif self.since == "now":
            since = self.database.info()["update_seq"]
            log.debug("since=now resolved to %r", since)
        else:
            since = self.since
        if self.checkpoint is not None and loaded is None and since is not None:
            # Save the resolved start now: a process killed before its first change must
            # not resolve "now" again on restart and skip what happened in between.
            self._save(since)
        self._reader.position = self._reader.read_pos = self._committed = since


class _Batches:
    """The iterator :meth:`Subscription.batches` returns: a batch is handed out like a
    change by ``next(sub)``."""

    def __init__(self, sub: Subscription, max_size: int, max_wait: float) -> None:
        self._sub = sub
        self._max_size = max_size
        self._max_wait = max_wait
        self._error: CloudSyncError | None = None

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> list[Change]:
        sub = self._sub
        if self._error is not None:  # raised after the batch handed out before it
            error, self._error = self._error, None
            raise error
        if sub._outstanding:
            sub._ack_outstanding()
        sub._handing = True
        try:
            if sub._stopped:
                raise StopIteration
            first = sub._take(None)
            if first is None:
                raise StopIteration
            batch = [first]
            deadline = time.monotonic() + self._max_wait
            while len(batch) < self._max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    change = sub._take(remaining)
                except CloudSyncError as exc:
                    self._error = exc  # the changes already taken are handed out first
                    break
                if change is None or change is _TIMEOUT:
                    break
                batch.append(change)
            return batch
        finally:
            sub._handing = False
