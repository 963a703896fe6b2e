"""A selector's result set, kept current: [LiveQuery][cloudsync.LiveQuery].

`db.live_query(selector, sort=..., limit=...)` reads the database's `update_seq`, *then*
runs the query (the snapshot), then follows the changes feed from that seq with a
[Subscription][cloudsync.Subscription] (`include_docs`): a write made while the snapshot
was read is seen again on the feed, and applying a document's newest state twice changes
nothing, so nothing is lost or doubled. The subscription brings the reconnects, backoff,
resume and replay dedupe; the window (`_result_window.py`) turns each group of changes
into the results' events. A feed that cannot resume (the server refuses its seq: 400, or
the database was recreated: 404) is replaced: the query runs again from a fresh seq and
the difference is emitted as events.

Which changes cross the wire (`feed=`):

- `"all"` (default): the unfiltered feed, every document evaluated here. A document that
  stops matching is seen like any other change. Costs the traffic of every change of the
  database.
- `"selector"`: the server filters by `{"$or": [selector, {"_id": {"$in": held ids}}]}`,
  so a held document is still seen when it stops matching. Each time a document enters
  the window, the feed is reopened with the new ids (one reconnect), from the seq of that
  change. Cheap for a selective query on a busy database whose window changes rarely.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._background import consume_in_background
from ._result_window import LiveQueryEvent, ResultWindow, parse_sort
from ._retry import ReconnectPolicy
from .errors import BadRequest, CloudSyncError, NotFound
from .models import Change
from .selector import project
from .subscription_options import check_subscription_options

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from 3.11; annotations only, never at run time

    from .subscription_options import SubscriptionOptions

__all__ = ["LiveQuery", "LiveQueryEvent"]

log = logging.getLogger("cloudsync.live_query")

FEEDS = ("all", "selector")
RESERVED = frozenset({"since", "include_docs", "selector", "doc_ids", "filter", "checkpoint", "manual_ack"})
"""Subscription options a live query sets itself."""


class LiveQuery:
    """The current results of a Mango query, and the events that change them;
    `db.live_query(...)` builds one.

    The results are up to date as far as the live query has been consumed: iterate it
    (`for event in lq`), take [batches][cloudsync.LiveQuery.batches], or
    [start][cloudsync.LiveQuery.start] it on a background thread (with an `on_change`
    callback, or none to just keep `results` current).

    Args:
        database: The [Database][cloudsync.Database] to query.
        selector: The Mango selector.
        sort: A Mango sort (`["total"]`, `[{"total": "desc"}]`): as for
            [Database.query][cloudsync.Database.query], it needs an index on those fields.
            Ties, and results without a sort, are ordered by `_id`.
        limit: At most this many results (the first ones in sort order).
        fields: Results carry only these fields (the sort fields, `_id` and `_rev` are
            kept besides, internally).
        transport: The feed's transport: a registered name or a
            [Transport][cloudsync.Transport].
        feed: `"all"` (the unfiltered feed, evaluated here) or `"selector"` (filtered
            on the server, reopened when a document enters the window); see the module.
        margin: With a `limit`, how many documents past the results to hold as well, so
            that most departures are refilled from memory (default: `limit`, at most 100).
        page_size: Documents per request of the snapshot and refill queries.
        batch_wait: Seconds a batch waits for more changes after its first.
        max_batch: At most this many changes in one group (one batch of events).
        reconnect: How to wait between failed queries (a
            [ReconnectPolicy][cloudsync.ReconnectPolicy]); also the subscription's.
        **subscription_options: The subscription's
            [SubscriptionOptions][cloudsync.SubscriptionOptions] (`heartbeat`,
            `stall_timeout`, `transport_options`, ...); the live query sets the others
            itself (`since`, `include_docs`, `selector`, ...).

    Raises:
        ValueError: `limit`, `margin`, `max_batch` or `page_size` out of range, or an
            unknown `feed`.
        TypeError: A subscription option the live query sets itself, or an unknown one.
        SelectorError: An invalid selector or sort.
    """

    def __init__(
        self,
        database: Any,
        selector: Mapping[str, Any],
        *,
        sort: Sequence[Any] | None = None,
        limit: int | None = None,
        fields: Sequence[str] | None = None,
        transport: Any = "longpoll",
        feed: str = "all",
        margin: int | None = None,
        page_size: int = 1000,
        batch_wait: float = 0.001,
        max_batch: int = 1000,
        reconnect: ReconnectPolicy | None = None,
        **subscription_options: Unpack[SubscriptionOptions],
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        if margin is not None and margin < 0:
            raise ValueError("margin must be at least 0")
        if max_batch < 1 or page_size < 1:
            raise ValueError("max_batch and page_size must be at least 1")
        if feed not in FEEDS:
            raise ValueError(f"feed must be one of {FEEDS}, not {feed!r}")
        reserved = RESERVED & set(subscription_options)
        if reserved:
            raise TypeError(f"a live query sets {', '.join(sorted(reserved))} itself")
        check_subscription_options(subscription_options, "LiveQuery() got unexpected keyword arguments")
        if not isinstance(selector, Mapping):
            raise TypeError("selector must be a mapping")
        self.database = database
        self.selector = dict(selector)
        self.sort = list(sort) if sort is not None else None
        self.limit = limit
        self.fields = list(fields) if fields is not None else None
        self.feed = feed
        self.transport = transport
        self.page_size = page_size
        self.batch_wait = batch_wait
        self.max_batch = max_batch
        self.reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        self.refills = 0
        """Queries run after the snapshot because the window ran short."""
        self.resyncs = 0
        """Times the feed could not resume and the query ran again from a fresh seq."""
        self._options = subscription_options
        pairs = parse_sort(sort)
        if margin is None:
            margin = min(limit, 100) if limit is not None else 0
        self._window = ResultWindow(self.selector, pairs, limit, margin, self.fields)
        # Fields the window needs to place and recognise a document, whatever `fields` says.
        self._query_fields = None if self.fields is None else list(dict.fromkeys(
            [*self.fields, *(field for field, _ in pairs), "_id", "_rev"]))
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._consumed = False
        self._thread: threading.Thread | None = None
        self._filter_ids: frozenset[str] = frozenset()
        self.version = 0
        """How many groups of changes have been applied (see [wait_for][cloudsync.LiveQuery.wait_for])."""
        seq = database.info()["update_seq"]  # before the snapshot: nothing written meanwhile is missed
        with self._cond:
            self._load(report=False)
        self._sub = self._subscribe(seq)

    # -- public ------------------------------------------------------------------------------
    @property
    def results(self) -> list[dict[str, Any]]:
        """The current results (a new list): sorted, limited, projected."""
        with self._cond:
            return self._window.results()

    @property
    def closed(self) -> bool:
        """Whether [close][cloudsync.LiveQuery.close] was called (or a terminal error closed it)."""
        return self._closed.is_set()

    @property
    def subscription(self) -> Any:
        """The [Subscription][cloudsync.Subscription] following the feed now (replaced
        when the feed is reopened)."""
        return self._sub

    def __enter__(self) -> LiveQuery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[LiveQueryEvent]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[LiveQueryEvent]]:
        """The events in groups, one list per group of changes applied (a UI redraws once
        per list). Groups that do not change the results yield nothing.

        Returns:
            An iterator that ends when the live query is closed and raises a terminal error.

        Raises:
            RuntimeError: The live query already has a consumer.
        """
        self._claim()
        return self._run()

    def start(
        self,
        on_change: Callable[[list[LiveQueryEvent]], Any] | None = None,
        on_error: Callable[[BaseException], Any] | None = None,
    ) -> LiveQuery:
        """Keep the results current on a background daemon thread.

        Args:
            on_change: Called with each list of events (see
                [batches][cloudsync.LiveQuery.batches]), after `results` was updated.
            on_error: Called with a terminal error or an exception from `on_change`
                (logged without one); the live query is closed after it.

        Returns:
            This live query.

        Raises:
            RuntimeError: The live query already has a consumer.
        """
        self._claim()

        self._thread = consume_in_background(self._run, on_change, on_error, self.close,
                                             name="cloudsync-live-query", log=log, what="live query")
        return self

    def on_change(self, fn: Callable[[list[LiveQueryEvent]], Any],
                  on_error: Callable[[BaseException], Any] | None = None) -> LiveQuery:
        """Call `fn(events)` on a background thread for each group of events:
        [start][cloudsync.LiveQuery.start] with a callback.

        Args:
            fn: Called with each list of events.
            on_error: As for `start`.

        Returns:
            This live query.
        """
        return self.start(fn, on_error)

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        """Wait until `predicate(results)` holds (checked now and after each applied group).

        Args:
            predicate: Called with the current results.
            timeout: Seconds to wait at most.

        Returns:
            Whether it held in time.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._window.results()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed.is_set():
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float | None = None) -> None:
        """Stop, from any thread: no more events once it returns (one being handed to
        `on_change` finishes).

        Args:
            timeout: Also wait up to this many seconds for a running `on_change` call.
        """
        self._closed.set()
        self._sub.close()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if timeout is not None and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __repr__(self) -> str:
        return f"<LiveQuery {self.selector!r} {len(self._window)} held, version {self.version}>"

    # -- private ------------------------------------------------------------------------------
    def _claim(self) -> None:
        with self._cond:
            if self._consumed:
                raise RuntimeError("a live query has one consumer: iterate it, or start() it, once")
            self._consumed = True

    def _subscribe(self, since: Any) -> Any:
        selector = None
        if self.feed == "selector":
            self._filter_ids = frozenset(self._window.ids)
            selector = {"$or": [self.selector, {"_id": {"$in": sorted(self._filter_ids)}}]}
        return self.database.subscribe(self.transport, since=since, include_docs=True, selector=selector,
                                       reconnect=self.reconnect, **self._options)

    def _run(self) -> Iterator[list[LiveQueryEvent]]:
        while not self._closed.is_set():
            sub = self._sub
            try:
                for changes in sub.batches(self.max_batch, self.batch_wait):
                    events, reopen_at = self._apply(changes)
                    if events:
                        yield events
                    if reopen_at is not None and not self._closed.is_set():
                        self._reopen(sub, self._subscribe(reopen_at))
                        break
                else:
                    return  # closed
            except (BadRequest, NotFound) as exc:
                if self._closed.is_set():
                    return
                log.warning("the feed cannot resume (%s): running the query again", exc)
                events = self._resync()
                if events:
                    yield events

    def _apply(self, changes: list[Change]) -> tuple[list[LiveQueryEvent], Any]:
        """One group of changes: the events, and the seq to reopen a filtered feed from
        (when a document entered the window that the filter does not name)."""
        events: list[LiveQueryEvent] = []
        window, keep = self._window, self._query_fields
        reopen_at = None
        with self._cond:
            for change in changes:
                doc = None if change.deleted else change.doc
                if doc is not None and keep is not None:
                    doc = project(doc, keep)
                window.apply(change.id, doc, events)
                if (reopen_at is None and self.feed == "selector" and change.id in window.key_of
                        and change.id not in self._filter_ids):
                    reopen_at = change.seq
            if window.needs_refill:
                self.refills += 1
                events += self._load()
            self.version += 1
            self._cond.notify_all()
        return events, reopen_at

    def _load(self, report: bool = True) -> list[LiveQueryEvent]:
        """Run the bounded query (the window's capacity) and take its answer (with the
        lock held): transient failures are retried as the feed's are. `report`: return
        the events from the results before (not for the first snapshot)."""
        window = self._window
        failures, started = 0, time.monotonic()
        while True:
            try:
                docs = list(self.database.query(self.selector, sort=self.sort, limit=window.capacity,
                                                fields=self._query_fields, page_size=self.page_size))
                break
            except CloudSyncError as exc:
                failures += 1
                if (not exc.retryable or self._closed.is_set()
                        or self.reconnect.gives_up(failures, time.monotonic() - started)):
                    raise
                self._closed.wait(self.reconnect.delay(failures))
        complete = window.capacity is None or len(docs) < window.capacity
        return window.load(docs, complete, report=report)

    def _resync(self) -> list[LiveQueryEvent]:
        """A fresh seq, the query again, a new feed from that seq; the difference as events."""
        old = self._sub
        seq = self.database.info()["update_seq"]
        with self._cond:
            self.resyncs += 1
            events = self._load()
            self.version += 1
            self._cond.notify_all()
        self._reopen(old, self._subscribe(seq))
        return events

    def _reopen(self, old: Any, new: Any) -> None:
        self._sub = new
        old.close()
        if self._closed.is_set():  # close() ran meanwhile and closed the old one only
            new.close()
