"""Following a database's changes: :class:`Subscription`.

One reader thread runs connections one after another through a
:class:`~cloudsync.transports.Transport` and puts what they yield on a bounded queue;
the application takes changes from the queue (iterator, callback thread or batches).

Resume rules (seqs are opaque and never compared):

- ``since="now"`` is resolved once (the database's ``update_seq``); a checkpoint
  store's saved seq wins over ``since``.
- After a clean end (long poll answered, ``last_seq``, normal close) the next connection
  starts at once from the last seq *queued*: everything queued is still delivered, in order.
- After a failure the next connection starts, after a backoff, from the seq of the last
  change *delivered*; what is still queued is delivered and its replay deduplicated.
  Items from a connection the watchdog abandoned carry a retired generation and are
  dropped, however late they arrive.
- A checkpoint store is saved only with seqs the application has acknowledged (after
  the loop body, the callback, the batch; or ``sub.ack(change)`` with ``manual_ack``).
"""

from __future__ import annotations

import collections
import enum
import functools
import logging
import random as _random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._http import _caused_by
from ._retry import full_jitter
from .checkpoint import CheckpointStore
from .errors import CloudSyncError, RateLimited, RequestTimeout
from .models import Change
from .transports import ChangesRequest, LastSeq, Transport, create_transport

__all__ = ["ReconnectPolicy", "State", "Subscription", "SubscriptionStats"]

log = logging.getLogger("cloudsync.subscription")


class State(str, enum.Enum):
    """Where a subscription is. ``str`` values, so ``sub.state == "streaming"`` works."""

    IDLE = "idle"  # created, not iterated or started yet
    CONNECTING = "connecting"
    STREAMING = "streaming"
    BACKING_OFF = "backing_off"
    CLOSED = "closed"


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a subscription waits between failed connections.

    Capped full-jitter exponential backoff: after the n-th consecutive failure it waits
    a uniform random time in ``[0, min(max, initial * 2**(n-1)))``; a connection that
    delivered something resets the count. A clean end never waits. ``max_errors``
    (consecutive failures) and ``max_error_time`` (seconds since the first of them),
    when set, make the subscription give up and raise the last error.

    ``sleep`` and ``random`` are injectable for tests; the default sleep is an
    interruptible wait that :meth:`Subscription.close` cuts short.

    ``probe_interval``: when a connection was *refused* (nothing listening: the server is
    restarting), the wait is spent probing the server's port with a bare TCP connect
    about every ``probe_interval`` seconds (jittered ±50%), and ends as soon as the port
    accepts: a restarted server is followed within a fraction of a second instead of
    after a backoff grown during the outage. Any other failure (timeouts, resets, 5xx,
    an accepting load balancer) waits the full delay. ``None`` turns probing off; so
    does an injected ``sleep``.
    """

    initial: float = 0.5
    max: float = 30.0
    max_errors: int | None = None
    max_error_time: float | None = None
    sleep: Callable[[float], Any] | None = field(default=None, repr=False, compare=False)
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)
    probe_interval: float | None = 0.2

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
    duplicates: int = 0  # dropped by the (id, rev) window
    connections: int = 0  # connections opened (a long poll opens one per answer)
    reconnects: int = 0  # connections opened after a failure
    errors: int = 0  # failed connections
    stalls: int = 0  # connections the watchdog found silent
    dropped: int = 0  # undelivered items discarded with a retired generation
    bytes_received: int = 0


_BATCH, _ERROR = "batch", "error"
_TIMEOUT = object()


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
      ``query_params`` (filter parameters and other query parameters).
    - ``checkpoint``: a :class:`~cloudsync.CheckpointStore`; ``checkpoint_every`` saves
      every n-th acknowledged position (the last one is always saved on close).
    - ``manual_ack``: the application calls :meth:`ack` itself.
    - ``heartbeat`` (seconds asked of the server), ``feed_timeout`` (seconds after which
      the server should end a feed cleanly), ``stall_timeout`` (default
      1.25 × effective heartbeat + ``stall_grace``), ``connect_timeout``.
    - ``reconnect``: a :class:`ReconnectPolicy`; ``queue_size``: the bound of the queue
      between reader and consumer; ``dedupe_window``: how many ``(id, rev)`` to remember.
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
        self.transport.bind(database)
        self.transport.on_open = self._on_open
        self.since = since
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.manual_ack = manual_ack
        self.reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        self.queue_size = queue_size
        self.on_state_change = on_state_change
        effective = self.transport.effective_heartbeat(heartbeat)
        self.stall_timeout = stall_timeout if stall_timeout is not None else 1.25 * effective + stall_grace
        self._template = ChangesRequest(
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

        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._state = State.IDLE
        # Between the reader and the consumer: (generation, _BATCH, [items]) or
        # (generation, _ERROR, exception). Items move in the batches the transport read
        # them in (one lock round and at most one wake-up per batch, not per change);
        # ``_queued`` counts the items, which ``queue_size`` bounds.
        self._queue: collections.deque[tuple[int, str, Any]] = collections.deque()
        self._queued = 0
        self._consumers_waiting = 0
        # The consumer's current batch, delivered one item per pull without the lock.
        self._batch: list[Any] = []
        self._batch_pos = 0
        self._batch_gen = 0
        self._delivered = 0  # changes handed out (stats.changes)
        self._gen = 0  # generation of the current connection
        self._min_gen = 0  # queued items of older generations are dropped
        self._stalled_gen = -1
        self._epoch = 0  # reader threads of an older epoch were abandoned
        self._reader_blocked = False  # waiting for queue space: not a stall
        self._resolved = False
        self._position: Any = None  # seq of the last delivered change (or consumed marker)
        self._read_pos: Any = None  # seq of the last queued item: where a clean end resumes
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
        # (id, rev) pairs seen, in two generations of dedupe_window each: at least the
        # last dedupe_window are remembered, at most twice that (no per-change eviction).
        # Kept as id -> rev (or the revs in a tuple, a set past eight, when a document
        # has several in the window): no key object to build per change. ``_seen_room``
        # is how many more pairs the young generation takes.
        self._seen: dict[str, Any] = {}
        self._seen_old: dict[str, Any] = {}
        self._dedupe_window = dedupe_window
        self._seen_room = dedupe_window
        self._stats = SubscriptionStats()
        self._threads: list[threading.Thread] = []
        self._started = False
        # Resolve the start now, not when iteration begins: "now" means when subscribe()
        # was called, so writes made before the first next() are not skipped.
        self._resolve()

    # -- public ------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def last_seq(self) -> Any:
        """The seq of the last change delivered (or feed position consumed); opaque."""
        return self._position

    @property
    def committed_seq(self) -> Any:
        """The last position every change up to which the application has acknowledged."""
        return self._committed

    @property
    def stats(self) -> SubscriptionStats:
        return replace(self._stats, changes=self._delivered, bytes_received=self.transport.bytes_received)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Change]:
        return self

    def __next__(self) -> Change:
        # The per-change path of a drain, inlined: acknowledge what was handed out, then
        # hand out the next change of the current batch if it is a change of a document
        # not in the dedupe window. Anything else (manual acks, a retired generation, a
        # marker, a document already in the window, an empty batch) goes through _take.
        if self._outstanding:
            if self.checkpoint is None:
                self._outstanding = 0
                self._last_handed = None
                self._committed = self._position
            else:
                self._ack_outstanding()
        batch = self._batch
        pos = self._batch_pos
        if pos < len(batch) and not self.manual_ack and self._batch_gen >= self._min_gen:
            item = batch[pos]
            if item.__class__ is Change:
                rev = item.rev
                doc_id = item.id
                seen = self._seen
                if rev is not None and doc_id not in seen and doc_id not in self._seen_old:
                    self._batch_pos = pos + 1
                    seen[doc_id] = rev
                    if len(seen) >= self._seen_room:
                        self._rotate_seen()
                    seq = item.seq
                    if seq is not None:
                        self._position = seq
                    self._outstanding = 1
                    self._last_handed = item
                    self._delivered += 1
                    return item
        if not self._started:
            self._ensure_started()
        change = self._take(None)
        if change is None or change is _TIMEOUT:
            raise StopIteration
        return change

    def batches(self, max_size: int = 100, max_wait: float = 0.5) -> Iterator[list[Change]]:
        """Changes in lists of at most ``max_size``, each yielded at most ``max_wait``
        seconds after its first change arrived. A batch is acknowledged when the next
        one is requested."""
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._ensure_started()
        while True:
            if self._outstanding:
                self._ack_outstanding()
            first = self._take(None)
            if first is None or first is _TIMEOUT:
                return
            batch = [first]
            deadline = time.monotonic() + max_wait
            while len(batch) < max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                change = self._take(remaining)
                if change is None or change is _TIMEOUT:
                    break
                batch.append(change)
            yield batch

    def start(
        self,
        on_change: Callable[[Change], Any],
        on_error: Callable[[BaseException], Any] | None = None,
    ) -> Subscription:
        """Deliver on a background daemon thread: ``on_change(change)`` for each change,
        acknowledged when it returns. A terminal error, or an exception from
        ``on_change``, goes to ``on_error`` (logged without one) and closes the subscription."""
        self._ensure_started()

        def deliver() -> None:
            try:
                while True:
                    change = self._take(None)
                    if change is None or change is _TIMEOUT:
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

        self._spawn(deliver, "cloudsync-deliver")
        return self

    def ack(self, change: Change) -> None:
        """Mark ``change`` handled. The checkpoint advances over every leading handled change.

        Without ``manual_ack`` changes are acknowledged automatically; acknowledging the
        last change handed out acknowledges it early, anything else is ignored."""
        if not self.manual_ack:
            if self._outstanding and change is self._last_handed:
                self._ack_outstanding()
            return
        to_save = None
        with self._cond:
            for entry in self._pending:
                if entry[2] is change and not entry[1]:
                    entry[1] = True
                    break
            to_save = self._commit_locked()
        self._save(to_save)

    def close(self) -> None:
        """Stop: returns promptly from any thread, even mid-read or mid-backoff. Saves the
        last acknowledged position to the checkpoint store."""
        with self._cond:
            already = self._closed.is_set()
            self._closed.set()
            self._cond.notify_all()
        if not already:
            self.transport.close()
            self._set_state(State.CLOSED)
            log.debug("subscription closed at %r", self._position)
        self._flush()
        me = threading.current_thread()
        deadline = time.monotonic() + 0.5
        for thread in list(self._threads):
            if thread is not me and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def __repr__(self) -> str:
        return f"<Subscription {self.transport.name} {self._state.value} last_seq={self._position!r}>"

    # -- delivery ---------------------------------------------------------------------------------
    def _take(self, timeout: float | None) -> Any:
        """The next change, ``None`` when closed, ``_TIMEOUT`` after ``timeout`` seconds.
        Raises a terminal error (after closing).

        Only the consumer calls this. Items of the current batch are delivered without
        taking the lock (except with ``manual_ack``, whose bookkeeping ``ack`` shares);
        the lock is taken once per batch, to fetch the next one."""
        deadline = None
        while True:
            batch = self._batch
            pos = self._batch_pos
            if pos < len(batch):
                item = batch[pos]
                self._batch_pos = pos + 1
                if self._batch_gen < self._min_gen:  # from an abandoned connection
                    self._stats.dropped += 1
                    continue
                if item.__class__ is LastSeq:
                    self._marker(item.seq)
                    continue
                if self._deliver(item):
                    return item
                continue
            # The batch is done: fetch the next one.
            self._batch = _EMPTY
            self._batch_pos = 0
            error: BaseException | None = None
            with self._cond:
                while not self._queue:
                    if self._closed.is_set():
                        return None
                    if timeout is not None:
                        if deadline is None:
                            deadline = time.monotonic() + timeout
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return _TIMEOUT
                    else:
                        remaining = 1.0
                    self._consumers_waiting += 1
                    try:
                        self._cond.wait(remaining)
                    finally:
                        self._consumers_waiting -= 1
                gen, kind, payload = self._queue.popleft()
                if kind == _ERROR:
                    error = payload
                else:
                    self._queued -= len(payload)
                    if self._reader_blocked:
                        self._cond.notify_all()
                    self._batch, self._batch_gen = payload, gen
            if error is not None:
                self.close()
                raise error

    def _deliver(self, change: Change) -> bool:
        """Hand ``change`` over unless it is a duplicate; keep the books. Consumer only."""
        rev = change.rev
        if rev is not None:
            doc_id = change.id
            for generation in (self._seen, self._seen_old):
                known = generation.get(doc_id)
                if known is not None and (known == rev if known.__class__ is str else rev in known):
                    self._stats.duplicates += 1
                    log.debug("dropped duplicate %s %s", doc_id, rev)
                    self._marker(change.seq)
                    return False
            self._remember(doc_id, rev)
        self._hand(change)
        return True

    def _remember(self, doc_id: str, rev: str) -> None:
        seen = self._seen
        known = seen.get(doc_id)
        if known is None:
            seen[doc_id] = rev
        else:
            # A rev, a few revs in a tuple, a set beyond that: a document updated all the
            # time costs a hash lookup per change, not a scan of its history.
            if known.__class__ is str:
                seen[doc_id] = (known, rev)
            elif known.__class__ is tuple:
                seen[doc_id] = (*known, rev) if len(known) < 8 else {*known, rev}
            else:
                known.add(rev)
            self._seen_room -= 1  # one more pair without one more key
        if len(seen) >= self._seen_room:
            self._rotate_seen()

    def _rotate_seen(self) -> None:
        """The young generation is full: it becomes the old one. At least the last
        ``dedupe_window`` pairs stay remembered, at most twice that."""
        self._seen_old, self._seen = self._seen, {}
        self._seen_room = self._dedupe_window

    def _hand(self, change: Change) -> None:
        """Keep the books of a change handed to the application. Consumer only."""
        seq = change.seq
        if self.manual_ack:
            with self._cond:
                if seq is not None:
                    self._position = seq
                self._pending.append([seq, False, change])
        else:
            if seq is not None:
                self._position = seq
            self._outstanding += 1
            self._last_handed = change
        self._delivered += 1

    def _marker(self, seq: Any) -> None:
        """A position with nothing to hand over (a marker or a duplicate). Consumer only."""
        if seq is None:
            return
        if self.manual_ack:
            with self._cond:
                self._advance_locked(seq)
                to_save = self._commit_locked()
            self._save(to_save)
            return
        self._position = seq
        if not self._outstanding:  # nothing handed out is waiting: acknowledged at once
            self._commit(seq, 1)

    def _ack_outstanding(self) -> None:
        """Acknowledge every change handed out (automatic acks). Consumer only."""
        count, self._outstanding = self._outstanding, 0
        self._last_handed = None
        self._commit(self._position, count)

    def _commit(self, seq: Any, count: int) -> None:
        if seq is None or seq == self._committed:
            return
        self._committed = seq
        self._unsaved += count
        if self.checkpoint is None or self._unsaved < self.checkpoint_every:
            return
        self._unsaved = 0
        self._save(seq)

    def _advance_locked(self, seq: Any) -> None:
        """A position with nothing to hand over (a marker or a duplicate): already acked."""
        if seq is None:
            return
        self._position = seq
        self._pending.append([seq, True, None])

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
        if seq is None or self.checkpoint is None:
            return
        with self._save_lock:
            if seq == self._saved:
                return
            self.checkpoint.save(seq)
            self._saved = seq

    def _flush(self) -> None:
        if self.checkpoint is None or self._committed is None:
            return
        try:
            self._save(self._committed)
        except Exception:
            log.exception("could not save the checkpoint on close")

    # -- reading ---------------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        with self._cond:
            if self._started or self._closed.is_set():
                return
            self._started = True
            epoch = self._epoch
        self._spawn(lambda: self._read(epoch), "cloudsync-reader")
        self._spawn(self._watch, "cloudsync-watchdog")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

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
        with self._cond:
            self._position = self._read_pos = self._committed = since
            self._resolved = True

    def _read(self, epoch: int) -> None:
        failures = 0
        failing_since = 0.0
        while True:
            with self._cond:
                if self._closed.is_set() or epoch != self._epoch:
                    return
                self._gen += 1
                gen = self._gen
            self._set_state(State.CONNECTING)
            error: BaseException | None = None
            progressed = False
            clean = False
            try:
                if not self._resolved:
                    self._resolve()
                with self._cond:
                    since = self._read_pos
                self._stats.connections += 1
                if failures:
                    self._stats.reconnects += 1
                log.debug("connecting (%s, generation %d) since=%r", self.transport.name, gen, since)
                for batch in self._stream(replace(self._template, since=since)):
                    if not batch:
                        continue
                    if not self._enqueue(gen, epoch, batch):
                        break
                    progressed = True
                else:
                    clean = True
            except BaseException as exc:  # classified below; never let the thread die silently
                error = exc
            with self._cond:
                if self._closed.is_set() or epoch != self._epoch:
                    return
                stalled = self._stalled_gen == gen
            if stalled:
                timeout = RequestTimeout(f"no data for {self.stall_timeout:.1f}s: connection stalled")
                timeout.__cause__ = error
                error, clean = timeout, False
            if clean:
                log.debug("clean end (generation %d), reconnecting at once", gen)
                failures = 0
                continue
            if error is None:  # the enqueue refused: closed or abandoned
                continue
            if progressed:
                failures = 0
            if failures == 0:
                failing_since = time.monotonic()
            failures += 1
            self._stats.errors += 1
            retryable = isinstance(error, CloudSyncError) and error.retryable
            if not retryable or self.reconnect.gives_up(failures, time.monotonic() - failing_since):
                log.debug("giving up after %r", error)
                with self._cond:
                    self._queue.append((gen, _ERROR, error))
                    self._cond.notify_all()
                return
            with self._cond:
                # Resume from what the application has, not from what was read. What the
                # broken connection queued is still delivered (it is complete and in
                # order, so a feed that always breaks soon still makes progress); the
                # replay of it is dropped by the (id, rev) window.
                self._read_pos = self._position
            delay = self.reconnect.delay(failures)
            hint = getattr(self.transport, "retry", None)
            if isinstance(error, RateLimited) and error.retry_after is not None:
                hint = error.retry_after
            if isinstance(hint, (int, float)):
                delay = max(delay, min(float(hint), self.reconnect.max))
            log.debug("connection failed (%s); retry %d in %.2fs", error, failures, delay)
            self._set_state(State.BACKING_OFF)
            if self.reconnect.sleep is not None:
                self.reconnect.sleep(delay)
            else:
                self._backoff_wait(delay, error)

    def _backoff_wait(self, delay: float, error: BaseException) -> None:
        """Wait ``delay`` seconds (``close()`` interrupts); after a refused connection,
        probe the server meanwhile and stop waiting once it accepts connections."""
        interval = self.reconnect.probe_interval
        if interval is None or not _caused_by(error, ConnectionRefusedError):
            self._closed.wait(delay)
            return
        deadline = time.monotonic() + delay
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            step = interval * (0.5 + self.reconnect.random())
            if self._closed.wait(min(step, remaining)):
                return
            reachable = self.transport.reachable(timeout=min(0.25, interval))
            if reachable is None:  # this transport cannot tell: wait the rest
                self._closed.wait(max(0.0, deadline - time.monotonic()))
                return
            if reachable:
                log.debug("server accepts connections again: reconnecting before the backoff ends")
                return

    def _stream(self, request: ChangesRequest) -> Iterator[list[Any]]:
        """The transport's items in batches: its own when it reads in batches
        (:meth:`Transport.stream_batches`), else one list per item of ``stream()``."""
        transport = self.transport
        if getattr(type(transport).stream, "reads_batches", False):
            yield from transport.stream_batches(request)
            return
        for item in transport.stream(request):
            if not isinstance(item, (Change, LastSeq)):
                raise TypeError(f"a transport yielded {type(item).__name__}, not Change or LastSeq")
            yield [item]

    def _enqueue(self, gen: int, epoch: int, items: list[Any]) -> bool:
        """Queue one batch of items; waits while ``queue_size`` items are queued."""
        with self._cond:
            while True:
                if self._closed.is_set() or epoch != self._epoch or gen == self._stalled_gen:
                    return False
                if self._queued < self.queue_size:
                    break
                self._reader_blocked = True
                self._cond.wait(1.0)
            self._reader_blocked = False
            for item in reversed(items):
                if item.seq is not None:
                    self._read_pos = item.seq
                    break
            self._queue.append((gen, _BATCH, items))
            self._queued += len(items)
            if self._consumers_waiting:
                self._cond.notify_all()
        if self._state is not State.STREAMING:
            self._set_state(State.STREAMING)
        return True

    def _on_open(self) -> None:
        self._set_state(State.STREAMING)

    def _watch(self) -> None:
        """Stall watchdog: no byte for ``stall_timeout`` aborts the connection; a reader
        that does not come back from the abort is abandoned and replaced."""
        interval = min(1.0, self.stall_timeout / 4)
        mark: tuple[int, int, float] | None = None
        while not self._closed.wait(interval):
            with self._cond:
                gen, epoch, state, blocked = self._gen, self._epoch, self._state, self._reader_blocked
            now = time.monotonic()
            received = self.transport.bytes_received
            if state not in (State.CONNECTING, State.STREAMING) or blocked:
                mark = None
                continue
            if mark is None or mark[0] != gen or mark[1] != received:
                mark = (gen, received, now)
                continue
            if now - mark[2] < self.stall_timeout:
                continue
            with self._cond:
                if self._gen != gen or self._closed.is_set():
                    continue
                self._stalled_gen = gen
            self._stats.stalls += 1
            log.debug("generation %d stalled (%.1fs without data): aborting", gen, now - mark[2])
            self.transport.close()
            mark = None
            if self._closed.wait(1.0):
                return
            with self._cond:
                if self._gen != gen or self._epoch != epoch or self._state is State.BACKING_OFF:
                    continue
                # The transport did not unblock: abandon that reader and its generation.
                self._epoch += 1
                self._min_gen = gen + 1
                self._read_pos = self._position
                new_epoch = self._epoch
            log.debug("reader of generation %d did not return; abandoning it", gen)
            self._spawn(functools.partial(self._read, new_epoch), "cloudsync-reader")

    def _set_state(self, new: State) -> None:
        with self._cond:
            old = self._state
            if old is new or (old is State.CLOSED):
                return
            self._state = new
        if old is not new:
            log.debug("state %s -> %s", old.value, new.value)
        if self.on_state_change is not None:
            try:
                self.on_state_change(old, new)
            except Exception:
                log.exception("on_state_change raised")


_EMPTY: list[Any] = []
