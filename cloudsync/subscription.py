"""Following a database's changes: [Subscription][cloudsync.Subscription].

A reader (`_reader.py`, its stall watchdog in `_watchdog.py`) runs connections one after
another through a [Transport][cloudsync.Transport] and puts what they yield on a bounded
queue; the consumer side (`_delivery.py`) hands changes to the application (iterator,
callback thread or batches), drops replays (`_dedupe.py`) and keeps the acknowledgements
and the checkpoint (`_ledger.py`). This module is the public class that puts them together.

Resume rules (seqs are opaque and never compared):

- `since="now"` is resolved once (the database's `update_seq`); a checkpoint
  store's saved seq wins over `since`.
- After a clean end (long poll answered, `last_seq`, normal close) the next connection
  starts at once from the last seq *queued*: everything queued is still delivered, in order.
- After a failure the next connection starts, after a backoff, from the seq of the last
  change *delivered*; what is still queued is delivered and its replay deduplicated.
  Items from a connection the watchdog abandoned are dropped, however late they arrive.
- A checkpoint store is saved only with seqs the application has acknowledged (after
  the loop body, the callback, the batch; or `sub.ack(change)` with `manual_ack`).
- Once [Subscription.close][cloudsync.Subscription.close] has returned, nothing more is
  delivered and the checkpoint store is not written again by this subscription.
"""


from __future__ import annotations

import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._background import consume_in_background
from ._dedupe import DedupeWindow
from ._delivery import Delivery
from ._ledger import Ledger
from ._reader import Reader, SubscriptionState
from ._retry import ReconnectPolicy
from .checkpoint import CheckpointStore
from .models import Change
from .transports import ChangesRequest, Transport, create_transport

__all__ = ["ReconnectPolicy", "Subscription", "SubscriptionState", "SubscriptionStats"]

log = logging.getLogger("cloudsync.subscription")


def __getattr__(name: str) -> Any:
    if name == "State":  # the name before 0.2
        warnings.warn("cloudsync.subscription.State is deprecated; use SubscriptionState",
                      DeprecationWarning, stacklevel=2)
        return SubscriptionState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class SubscriptionStats:
    """Counters since the subscription started (`sub.stats` returns a copy); each
    argument is kept as the attribute of the same name.

    Args:
        changes: Changes delivered to the application.
        duplicates: Changes dropped by the dedupe window.
        connections: Connections opened (a long poll opens one per answer).
        reconnects: Connections opened after a failure.
        errors: Failed connections.
        stalls: Connections the watchdog found silent.
        dropped: Undelivered items discarded with a retired generation.
        bytes_received: Bytes read on all connections.
    """

    changes: int = 0
    duplicates: int = 0
    connections: int = 0
    reconnects: int = 0
    errors: int = 0
    stalls: int = 0
    dropped: int = 0
    bytes_received: int = 0


class Subscription:
    """A live, resumable view of a database's changes; `db.subscribe(...)` builds one.

    Args:
        database: The [Database][cloudsync.Database] to follow.
        transport: A registered name (`"longpoll"`, `"continuous"`, `"sse"`,
            `"websocket"`) or a [Transport][cloudsync.Transport] instance.
        since: `"now"` (resolved to the database's `update_seq` when the subscription
            is created), `None`/`0` for everything, or a seq. A checkpoint's seq wins.
        include_docs: Deliver each change with its document.
        selector: A Mango selector the changes must match.
        doc_ids: Only these documents' changes.
        filter: A design document filter, `"ddoc/name"`.
        query_params: Filter parameters and other query parameters, such as
            `{"style": "all_docs"}` to hear of new conflict revisions.
        checkpoint: A [CheckpointStore][cloudsync.CheckpointStore] that keeps the
            acknowledged position.
        checkpoint_every: Save every n-th acknowledged position (the last one is always
            saved on close).
        manual_ack: The application calls [ack][cloudsync.Subscription.ack] itself.
        heartbeat: Seconds between the heartbeats asked of the server.
        feed_timeout: Seconds after which the server should end a feed cleanly.
        stall_timeout: Seconds without a byte after which a connection counts as dead
            and is replaced. The default, 1.25 × the effective heartbeat (or WebSocket
            ping interval) + `stall_grace`, notices a silently dropped connection within
            15 s on every transport.
        stall_grace: Seconds added to the default `stall_timeout`.
        connect_timeout: Seconds to open a connection.
        reconnect: How to wait between failed connections: a
            [ReconnectPolicy][cloudsync.ReconnectPolicy].
        queue_size: At most this many changes are held between the reader and the
            application.
        dedupe_window: How many delivered (document, revisions) pairs to remember.
        on_state_change: Called as `on_state_change(old, new)` on every
            [SubscriptionState][cloudsync.SubscriptionState] change.
        transport_options: Passed to a named transport's constructor.

    Raises:
        ValueError: Options that do not go together, or a size below 1.
        TypeError: `doc_ids` given as one `str`.
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
        on_state_change: Callable[[SubscriptionState, SubscriptionState], Any] | None = None,
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
        # The reader holds nothing of this object: a subscription the application drops
        # is collected, and the finalizer stops the reader's threads.
        self._reader = reader = Reader(
            self.transport, template, reconnect=self.reconnect, queue_size=queue_size,
            stall_timeout=self.stall_timeout, stats=SubscriptionStats(),
            on_state_change=on_state_change,
        )
        weakref.finalize(self, reader.close)
        self._ledger = Ledger(checkpoint, checkpoint_every, manual_ack)
        self._delivery = Delivery(reader, self._ledger, DedupeWindow(dedupe_window))
        self._started = False
        self._deliverer: threading.Thread | None = None
        # Resolve the start now, not when iteration begins: "now" means when subscribe()
        # was called, so writes made before the first next() are not skipped.
        self._resolve()

    # -- public ------------------------------------------------------------------------------
    @property
    def state(self) -> SubscriptionState:
        """Where the subscription is: a [SubscriptionState][cloudsync.SubscriptionState]."""
        return self._reader.state

    @property
    def last_seq(self) -> Any:
        """The seq of the last change delivered (or feed position consumed); opaque."""
        return self._reader.position

    @property
    def committed_seq(self) -> Any:
        """The last position every change up to which the application has acknowledged."""
        return self._ledger.committed

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last failed connection while the subscription keeps failing
        (`None` once a connection delivers again), or the error it stopped on."""
        return self._reader.last_error

    @property
    def stats(self) -> SubscriptionStats:
        """A copy of the counters since the subscription started."""
        return replace(self._reader.stats, changes=self._delivery.delivered,
                       bytes_received=self.transport.bytes_received)

    @property
    def closed(self) -> bool:
        """Whether [close][cloudsync.Subscription.close] was called (or a terminal error closed it)."""
        return self._delivery.stopped

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Change]:
        if not self._started:
            self._ensure_started()
        # The loop holds the delivery alone: through it, it holds this subscription too, or
        # `for change in db.subscribe(...)` would see it collected (and closed) at once.
        self._delivery.owner = self
        return self._delivery

    def __next__(self) -> Change:
        if not self._started:
            self._ensure_started()
        change = self._delivery.next()
        if change is None:
            raise StopIteration
        return change

    def batches(self, max_size: int = 100, max_wait: float = 0.5) -> Iterator[list[Change]]:
        """Changes in lists, each acknowledged when the next one is requested.

        Args:
            max_size: At most this many changes in a list.
            max_wait: Seconds after its first change by which a list is yielded.

        Returns:
            An iterator of lists of changes; a terminal error is raised after the
                list of the changes taken before it.

        Raises:
            ValueError: `max_size` is below 1.
        """
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._ensure_started()
        return self._batches(max_size, max_wait)

    def start(
        self,
        on_change: Callable[[Change], Any],
        on_error: Callable[[BaseException], Any] | None = None,
    ) -> Subscription:
        """Deliver on a background daemon thread, each change acknowledged when
        `on_change` returns. A subscription has one consumer: `start()` once, and do not
        also iterate it.

        After [close][cloudsync.Subscription.close] returns no `on_change` call is
        dispatched; one dispatched before finishes in its own time (`close(timeout=...)`
        or [join][cloudsync.Subscription.join] waits for it).

        Args:
            on_change: Called as `on_change(change)` for each change.
            on_error: Called with a terminal error, or an exception from `on_change`
                (logged without one); the subscription is closed after it.

        Returns:
            This subscription.

        Raises:
            RuntimeError: `start()` was called before.
        """
        if self._deliverer is not None:
            raise RuntimeError("start() was called already: a subscription has one consumer")
        self._ensure_started()

        self._deliverer = consume_in_background(lambda: iter(self._delivery.next, None), on_change, on_error,
                                                self.close, name="cloudsync-deliver", log=log, what="subscription")
        return self

    def ack(self, change: Change) -> None:
        """Mark a change handled. The checkpoint advances over every leading handled change.

        Without `manual_ack` changes are acknowledged automatically; acknowledging the
        last change handed out acknowledges it early (call it from the consuming thread),
        anything else is ignored.

        Args:
            change: A change this subscription delivered.
        """
        self._ledger.ack(change, self._reader.position)

    def close(self, timeout: float | None = None) -> None:
        """Stop, from any thread, in under a second: once it returns no change is handed
        to the application any more and the checkpoint store is not written again.

        Saves the last acknowledged position (a short, bounded save: one that cannot be
        made in time is logged and costs only redelivery). Changes queued but not
        delivered are not acknowledged: the next start resumes before them.

        Args:
            timeout: Also wait up to this many seconds for a running `on_change` call
                (delivery with [start][cloudsync.Subscription.start]) to return.
        """
        started = time.monotonic()
        self._delivery.close(wait_for_handing=True)
        if timeout is not None:
            self.join(max(0.0, timeout - (time.monotonic() - started)))

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the delivery thread of [start][cloudsync.Subscription.start] has
        finished (it finishes after [close][cloudsync.Subscription.close], once a running
        `on_change` returns).

        Args:
            timeout: Seconds to wait at most; `None` waits as long as it takes.

        Returns:
            Whether it has finished.
        """
        thread = self._deliverer
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __repr__(self) -> str:
        return f"<Subscription {self.transport.name} {self.state.value} last_seq={self.last_seq!r}>"

    # -- private ------------------------------------------------------------------------------
    @property
    def _threads(self) -> list[threading.Thread]:
        """Every thread this subscription started (for tests)."""
        return [*self._reader.threads, *([self._deliverer] if self._deliverer else [])]

    def _batches(self, max_size: int, max_wait: float) -> Iterator[list[Change]]:
        while True:
            batch, error = self._delivery.next_batch(max_size, max_wait)
            if batch is None:
                return
            yield batch
            if error is not None:
                raise error

    def _ensure_started(self) -> None:
        with self._reader.cond:
            if self._started or self._delivery.stopped:
                return
            self._started = True
        self._reader.start(self._reader.position)

    def _resolve(self) -> None:
        """The first position: the checkpoint's, else `since` (`"now"` resolved once)."""
        since = loaded = self.checkpoint.load() if self.checkpoint is not None else None
        if since is not None:
            log.debug("resuming from checkpoint %r", since)
        elif self.since == "now":
            since = self.database.info()["update_seq"]
            log.debug("since=now resolved to %r", since)
        else:
            since = self.since
        self._ledger.begin(since, resumed=loaded is not None)
        self._reader.position = self._reader.read_pos = since
