"""The transport contract: one connection to a change feed, no sleeping, no retrying.

A :class:`Transport` turns a :class:`ChangesRequest` into an iterator of
:class:`~cloudsync.models.Change` (and :class:`LastSeq` markers). The
:class:`~cloudsync.Subscription` owns everything across connections: reconnects,
backoff, resume, dedupe, checkpoints.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _json
from ..models import Item, LastSeq

__all__ = ["ChangesRequest", "Item", "LastSeq", "Transport"]




@dataclass(frozen=True)
class ChangesRequest:
    """What one connection asks for. Built anew by the subscription for every connection."""

    #: Resume point, opaque (``None`` means from the beginning). Never ``"now"``: resolved before.
    since: Any = None
    include_docs: bool = False
    #: A Mango selector (``filter=_selector``).
    selector: Mapping[str, Any] | None = None
    #: Only these documents (``filter=_doc_ids``).
    doc_ids: tuple[str, ...] | None = None
    #: A design filter ``"ddoc/name"``; its parameters go in ``query_params``.
    filter: str | None = None
    #: Extra query parameters (filter parameters, ``style``, ``conflicts``...).
    query_params: Mapping[str, Any] = field(default_factory=dict)
    #: Seconds between server heartbeats we ask for.
    heartbeat: float = 10.0
    #: Seconds after which the server should end the feed cleanly (``None``: never).
    timeout: float | None = 60.0
    limit: int | None = None
    #: Seconds of silence (no byte at all) after which the connection counts as stalled.
    stall_timeout: float = 14.5
    #: Seconds allowed to connect.
    connect_timeout: float = 10.0

    def filter_params(self) -> dict[str, str]:
        """The query parameters every HTTP feed shares (not feed/selector/doc_ids)."""
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
    """Base class: one connection's events.

    Subclasses implement :meth:`stream`. The contract:

    - ``stream(request)`` opens ONE connection from ``request.since`` and yields
      :class:`Change` and :class:`LastSeq` items in server order; it returns on a clean
      end (a long poll answered, a final ``last_seq``, a normal close).
    - A failure raises a cloudsync error (``NetworkError``, ``StreamError``,
      ``RequestTimeout``, ``HTTPError``...) chained ``from`` its cause. No sleeping, no
      retrying: the subscription decides.
    - Call :meth:`_received` with the byte count of everything read, heartbeats included:
      the subscription's stall watchdog watches :attr:`bytes_received`.
    - :meth:`close` may be called from any thread and must make a blocked read return
      promptly; register what aborts the current connection with :meth:`_set_abort`.
    """

    #: The name in the registry (informational).
    name = "custom"
    #: Heartbeat bounds the server applies (Sync Gateway raises anything under 25 s to 25 s).
    min_heartbeat = 0.0
    max_heartbeat = 60.0

    def __init__(self) -> None:
        #: Bytes read on all connections so far (liveness for the stall watchdog).
        self.bytes_received = 0
        #: Called (no arguments) when a connection is established; set by the subscription.
        self.on_open: Callable[[], None] | None = None
        self.database: Any = None
        self._abort_lock = threading.Lock()
        self._abort: Callable[[], None] | None = None
        self._close_count = 0
        self._shut = False

    # -- for the subscription -----------------------------------------------------------
    def bind(self, database: Any) -> None:
        """Attach the database whose feed this transport reads (``.path``, ``._http``)."""
        self.database = database

    @property
    def http(self) -> Any:
        return getattr(self.database, "_http", None)

    def effective_heartbeat(self, requested: float) -> float:
        """The heartbeat interval the server will really use for ``requested`` seconds."""
        return min(max(requested, self.min_heartbeat), self.max_heartbeat)

    def stream(self, request: ChangesRequest) -> Iterator[Item]:
        raise NotImplementedError

    def stream_batches(self, request: ChangesRequest) -> Iterator[list[Item]]:
        """The items of :meth:`stream`, in lists: the subscription moves a list through
        its queue at the cost of one item. The default wraps each item of ``stream()``.

        A transport that reads many items at once (a chunk, a page, a message)
        overrides this and sets ``stream = Transport.batched_stream``; the subscription
        then reads its batches. Override only ``stream`` in a subclass and the
        subscription uses that instead."""
        for item in self.stream(request):
            yield [item]

    def batched_stream(self, request: ChangesRequest) -> Iterator[Item]:
        """``stream()`` for transports that implement :meth:`stream_batches`."""
        for batch in self.stream_batches(request):
            yield from batch

    batched_stream.reads_batches = True  # type: ignore[attr-defined]

    def reads_batches(self) -> bool:
        """Whether :meth:`stream_batches` is this transport's own reading (the
        subscription then reads batches), rather than a wrapper of :meth:`stream`."""
        return getattr(type(self).stream, "reads_batches", False)

    def retry_hint(self) -> float | None:
        """Seconds the server asked clients to wait before reconnecting (SSE ``retry:``),
        or ``None``. The subscription never reconnects sooner after a failure."""
        return None

    def reachable(self, timeout: float = 0.25) -> bool | None:
        """Whether the server accepts TCP connections now (a bare connect, closed at
        once), or ``None`` when this transport cannot tell (no HTTP base URL). The
        subscription asks this while backing off after a refused connection."""
        base = getattr(self.http, "base_url", None)
        if not isinstance(base, str) or "://" not in base:
            return None
        parts = urllib.parse.urlsplit(base)
        try:
            port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        except ValueError:
            return None
        if not parts.hostname:
            return None
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Abort the connection that is open or being opened (from any thread)."""
        with self._abort_lock:
            self._close_count += 1
            abort, self._abort = self._abort, None
        if abort is not None:
            with contextlib.suppress(Exception):  # best effort: the socket may be gone already
                abort()

    # -- for subclasses -----------------------------------------------------------------
    def shutdown(self) -> None:
        """Close for good (the subscription is closing): abort the current connection, and
        any connection attempt begun after this is refused (its :meth:`_set_abort` fails).
        A transport that does not use ``_begin``/``_set_abort`` gets :meth:`close`."""
        with self._abort_lock:
            self._shut = True
        self.close()

    def _begin(self) -> int:
        """Start a connection attempt; returns a token for :meth:`_set_abort`."""
        with self._abort_lock:
            self._abort = None
            # After shutdown() the token is already stale: the attempt is refused.
            return self._close_count - 1 if self._shut else self._close_count

    def _set_abort(self, token: int, abort: Callable[[], None] | None) -> bool:
        """Register how to abort the current connection.

        Returns False (after calling ``abort``) when :meth:`close` was called since
        :meth:`_begin`, so a close that raced with connecting is never lost.
        """
        with self._abort_lock:
            if self._close_count == token:
                self._abort = abort
                return True
        if abort is not None:
            with contextlib.suppress(Exception):
                abort()
        return False

    def _end(self, token: int) -> None:
        """The connection of ``token`` is over: a later :meth:`close` must not touch it."""
        with self._abort_lock:
            if self._close_count == token:
                self._abort = None

    def _closed_since(self, token: int) -> bool:
        with self._abort_lock:
            return self._close_count != token

    def _received(self, count: int) -> None:
        self.bytes_received += count

    def _opened(self) -> None:
        if self.on_open is not None:
            self.on_open()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
