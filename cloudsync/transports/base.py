"""The transport contract: one connection to a change feed, no sleeping, no retrying.

A [Transport][cloudsync.Transport] turns a [ChangesRequest][cloudsync.ChangesRequest]
into an iterator of [Change][cloudsync.Change] (and [LastSeq][cloudsync.LastSeq]
markers), using the `FeedConnection` it is handed. The
[Subscription][cloudsync.Subscription] owns everything across connections: reconnects,
backoff, resume, dedupe, checkpoints.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _json
from ..models import Change, DbUpdate, Item, LastSeq
from .connection import FeedConnection

if TYPE_CHECKING:
    from .._http.feeds import FeedEndpoint

__all__ = ["ChangesRequest", "FeedConnection", "Item", "LastSeq", "Transport"]


@dataclass(frozen=True)
class ChangesRequest:
    """What one connection asks for. Built anew by the subscription for every connection;
    each argument is kept as the attribute of the same name.

    Args:
        since: Resume point, opaque (`None` means from the beginning). Never `"now"`:
            the subscription resolves that before.
        include_docs: Ask for each change's document.
        selector: A Mango selector (`filter=_selector`).
        doc_ids: Only these documents (`filter=_doc_ids`).
        filter: A design filter `"ddoc/name"`; its parameters go in `query_params`.
        query_params: Extra query parameters (filter parameters, `style`, `conflicts`...).
        heartbeat: Seconds between the server heartbeats asked for.
        timeout: Seconds after which the server should end the feed cleanly (`None`: never).
        limit: At most this many changes (`None`: no limit).
        stall_timeout: Seconds of silence (no byte at all) after which the connection
            counts as stalled.
        connect_timeout: Seconds allowed to connect.
    """

    since: Any = None
    include_docs: bool = False
    selector: Mapping[str, Any] | None = None
    doc_ids: tuple[str, ...] | None = None
    filter: str | None = None
    query_params: Mapping[str, Any] = field(default_factory=dict)
    heartbeat: float = 10.0
    timeout: float | None = 60.0
    limit: int | None = None
    stall_timeout: float = 14.5
    connect_timeout: float = 10.0

    def filter_params(self) -> dict[str, str]:
        """The query parameters every HTTP feed shares (not feed/selector/doc_ids).

        Returns:
            Parameter name to value, JSON-encoded where CouchDB expects JSON.
        """
        params: dict[str, str] = {}
        if self.since is not None:
            params["since"] = self.since if isinstance(self.since, str) else _json.dumps(self.since).decode()
        if self.include_docs:
            params["include_docs"] = "true"
        if self.heartbeat:
            params["heartbeat"] = str(int(self.heartbeat * 1000))
        if self.timeout is not None:
            params["timeout"] = str(int(self.timeout * 1000))
        if self.limit is not None:
            params["limit"] = str(self.limit)
        if self.filter is not None:
            params["filter"] = self.filter
        for key, value in self.query_params.items():
            params[key] = value if isinstance(value, str) else _json.dumps(value).decode()
        return params


class Transport:
    """Base class: one connection's changes. Subclass it and override `stream`.

    The contract:

    - `stream(request, connection)` opens ONE connection from `request.since`, using
      what its `FeedConnection` offers, and yields [Change][cloudsync.Change] and
      [LastSeq][cloudsync.LastSeq] items in server order; it returns on a clean end (a
      long poll answered, a final `last_seq`, a normal close).
    - A failure raises a cloudsync error (`NetworkError`, `StreamError`,
      `RequestTimeout`, `HTTPError`...) chained `from` its cause. No sleeping, no
      retrying: the subscription decides.
    - Register what aborts a blocked read with `connection.set_abort(...)`: `close()`
      runs it from another thread. When `set_abort` returns `False`, the transport was
      closed already: stop.
    - Liveness: every item yielded counts. A transport whose server may stay silent
      between items while the connection is alive (heartbeats) reports the bytes it
      reads with `connection.received(count)`; silence longer than
      `request.stall_timeout` aborts the connection and the subscription reconnects.

    Hooks the subscription calls, each with a default: `reads_batches`,
    `stream_batches`, `effective_heartbeat`, `retry_hint`, `reachable`. It starts a
    connection with `batches` and stops one with `close` (a stall) or `shutdown` (the
    subscription is closing).
    """

    name = "custom"
    """The name in the registry (informational)."""
    min_heartbeat = 0.0
    """Heartbeat bounds the server applies (Sync Gateway raises anything under 25 s to 25 s)."""
    max_heartbeat = 60.0

    def __init__(self) -> None:
        self.bytes_received = 0
        """Bytes read on all connections so far (reported with `connection.received`)."""
        self._endpoint: FeedEndpoint | None = None
        self._lock = threading.Lock()
        self._current: FeedConnection | None = None
        self._shut = False

    # -- to implement ---------------------------------------------------------------------
    def stream(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[Item]:
        """One connection's items, in server order; return on a clean end.

        Args:
            request: What to ask for (`since`, filters, heartbeat, timeouts).
            connection: The feed's URL and headers, the HTTP session, abort registration
                and liveness for this connection.

        Yields:
            [Change][cloudsync.Change] and [LastSeq][cloudsync.LastSeq] items.

        Raises:
            CloudSyncError: A failure, chained `from` its cause.
        """
        if type(self).stream_batches is Transport.stream_batches:
            raise NotImplementedError(f"{type(self).__name__} must override stream()")
        for batch in self.stream_batches(request, connection):
            yield from batch

    def stream_batches(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[list[Item]]:
        """The items of one connection in lists: the subscription moves a list through its
        queue at the cost of one item. The default wraps each item of `stream`.

        A transport that reads many items at once (a chunk, a page, a message) overrides
        this instead of `stream`; see `reads_batches`.

        Args:
            request: What to ask for, as for `stream`.
            connection: This connection's [FeedConnection][cloudsync.FeedConnection].

        Yields:
            Lists of [Change][cloudsync.Change] and [LastSeq][cloudsync.LastSeq] items.
        """
        for item in self.stream(request, connection):
            yield [item]

    # -- hooks, with defaults ---------------------------------------------------------------
    def reads_batches(self) -> bool:
        """Whether `stream_batches` is this transport's own reading (the subscription then
        reads batches) rather than a wrapper of `stream`. Default: whichever of the two the
        class overrides last, so a subclass that overrides `stream` is read item by item."""
        for klass in type(self).__mro__:
            if "stream" in vars(klass) or "stream_batches" in vars(klass):
                return klass is not Transport and "stream_batches" in vars(klass) and "stream" not in vars(klass)
        return False

    def effective_heartbeat(self, requested: float) -> float:
        """The heartbeat interval the server will really use (the subscription's stall
        window follows it). Default: `requested` within `min_heartbeat`..`max_heartbeat`.

        Args:
            requested: The heartbeat asked of the server, in seconds.

        Returns:
            Seconds.
        """
        return min(max(requested, self.min_heartbeat), self.max_heartbeat)

    def retry_hint(self) -> float | None:
        """Seconds the server asked clients to wait before reconnecting (SSE `retry:`), or
        `None` (the default). The subscription never reconnects sooner after a failure."""
        return None

    def reachable(self, timeout: float = 0.25) -> bool | None:
        """Whether the server accepts TCP connections now, or `None` when this transport
        cannot tell. The subscription asks this while backing off after a refused
        connection. Default: a bare TCP connect to the database's server (closed at once);
        `None` without an HTTP endpoint.

        Args:
            timeout: Seconds to wait for the connect.

        Returns:
            `True` or `False`, or `None` when this transport cannot tell.
        """
        if self._endpoint is None:
            return None
        return self._endpoint.reachable(timeout)

    # -- for the subscription ---------------------------------------------------------------
    def attach(self, endpoint: FeedEndpoint | None) -> None:
        """Hand this transport the feed it reads (called once by the subscription).

        Args:
            endpoint: The database's feed endpoint; `None` for a database stand-in
                without HTTP.
        """
        self._endpoint = endpoint

    def batches(self, request: ChangesRequest, *, on_open: Callable[[], None] | None = None) -> Iterator[list[Item]]:
        """One connection, in batches: what the subscription reads. Makes the connection's
        `FeedConnection` and hands it to `stream_batches` or `stream` (see
        `reads_batches`). Not meant to be overridden.

        Args:
            request: What to ask for.
            on_open: Called once the connection is established.

        Yields:
            Lists of items.

        Raises:
            TypeError: The transport yielded something other than a `Change` or `LastSeq`.
        """
        with self._lock:
            connection = FeedConnection(self._endpoint, on_bytes=self._count, on_open=on_open, closed=self._shut)
            self._current = connection
        try:
            if self.reads_batches():
                yield from self.stream_batches(request, connection)
            else:
                for item in self.stream(request, connection):
                    if not isinstance(item, (Change, LastSeq, DbUpdate)):
                        raise TypeError(f"a transport yielded {type(item).__name__}, not Change or LastSeq")
                    yield [item]
        finally:
            with self._lock:
                if self._current is connection:
                    self._current = None

    def items(self, request: ChangesRequest) -> Iterator[Item]:
        """One connection, item by item (for scripts and tests; the subscription reads
        `batches`).

        Args:
            request: What to ask for.

        Yields:
            [Change][cloudsync.Change] and [LastSeq][cloudsync.LastSeq] items.
        """
        for batch in self.batches(request):
            yield from batch

    def close(self) -> None:
        """Abort the connection that is open or being opened (from any thread)."""
        with self._lock:
            connection = self._current
        if connection is not None:
            connection.abort()

    def shutdown(self) -> None:
        """Close for good (the subscription is closing): abort the current connection, and
        any connection begun after this starts closed."""
        with self._lock:
            self._shut = True
        self.close()

    def _count(self, count: int) -> None:
        self.bytes_received += count

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
