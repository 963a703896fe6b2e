"""`feed=longpoll`: one request, one JSON answer, then a clean end."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from .._http.feeds import on_request_sent
from ..errors import CloudSyncError, NetworkError
from ..wire.longpoll import MISSING, LongPollParser
from ._httpfeed import open_feed
from .base import ChangesRequest, FeedConnection, Item, Transport
from .filters import SelectorForm

if TYPE_CHECKING:
    from .._http.feeds import FeedResponse

__all__ = ["LongPollTransport"]

log = logging.getLogger("cloudsync.transports")


class LongPollTransport(Transport):
    """Long polling: the server answers once there are changes (or at `timeout`).

    Yields the answer's changes and then `LastSeq(last_seq)`, even for an empty answer,
    so filtered feeds advance their checkpoint.

    CouchDB and the embedded server write one row per line
    (`{"results":[\\n{row},\\n{row}\\n],\\n"last_seq":...}`): such an answer is parsed
    line by line while it arrives, and its rows are delivered while the rest is still
    being sent. Any other layout (pouchdb-server writes one line, a server may
    pretty-print) has to be held and parsed whole when complete (see
    `LongPollParser`).

    `page_size` is sent as `limit` until the server is seen to write a row per line: a
    backlog then arrives in pages of that many rows, one request each, so the answers
    held whole stay bounded. Once answers are known to stream, the next requests ask for
    everything: memory no longer depends on the answer's length, and every page boundary
    would stall the feed for a request's round trip and the server's first batch.

    After a full page held whole, the next page is asked for (from its `last_seq`, on
    a helper thread that only opens the request) before this one's changes are built and
    delivered: the server computes the next page meanwhile. The next
    [`stream()`][cloudsync.Transport.stream] call for that `since` takes the opened
    response; any other call discards it.

    Args:
        selector_in: Where a `selector` goes: `"auto"` (try the POST body, fall back to
            query parameters once), `"body"` (CouchDB 3) or `"query"` (pouchdb-server).
        page_size: Rows asked for per request while answers are held whole; `None` for
            no limit.

    Raises:
        ValueError: `page_size` is below 1, or `selector_in` is none of the three.
    """

    name = "longpoll"
    feed = "longpoll"

    def __init__(self, *, selector_in: str = "auto", page_size: int | None = 10_000) -> None:
        super().__init__()
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1 (or None)")
        self._form = SelectorForm(selector_in)
        self.page_size = page_size
        self.streams_rows = False
        """The server writes a row per line (learned from the first answer)."""
        self.last_page_full = False
        """The last answer had as many rows as its request's limit: more may be waiting."""
        self._next: _NextPage | None = None

    def stream_batches(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[list[Item]]:
        self.last_page_full = False
        if not self.streams_rows and self.page_size is not None and (request.limit is None or request.limit > self.page_size):
            request = replace(request, limit=self.page_size)
        following, self._next = self._next, None
        response = None
        if following is not None and following.request == request and not following.connection.closed:
            # Its socket's abort is registered with the connection before this one:
            # closing this one closes that one (and so a socket it has not opened yet).
            if not connection.set_abort(following.connection.abort):
                following.discard()  # aborted already; its answer, if any, is released too
                raise NetworkError("feed closed before connecting", sent=False)
            try:
                response = following.result()
            except CloudSyncError as exc:
                # It was asked for ahead of need: its failure (a kept-alive connection the
                # server had closed, say) costs a fresh request, not an error.
                log.debug("next page asked ahead failed (%s): asking again", exc)
        elif following is not None:
            following.discard()
        if response is None:
            response = open_feed(connection, self._form, request, self.feed, _HEADERS)
        connection.opened()
        parser = LongPollParser(f"{self.feed} feed")
        # Heartbeat newlines arrive while the server waits: read incrementally for liveness.
        for chunk in response.chunks():
            items = parser.feed(chunk)
            if items:
                yield items
        early = None
        if request.limit is not None:
            # Ask for the next page before parsing a page held whole, when its end
            # already tells: enough rows, and the last_seq.
            most_rows, next_since = parser.end_hint()
            if most_rows >= request.limit and next_since is not MISSING and next_since != request.since:
                early = self._next = _NextPage(self, connection, replace(request, since=next_since))
        try:
            items = parser.finish()
        finally:
            if parser.streamed is not None:  # learned: rows came a row per line, or not
                self.streams_rows = parser.streamed
        full = request.limit is not None and parser.rows >= request.limit and parser.last_seq is not MISSING
        if early is not None and not (full and early.request.since == parser.last_seq):
            self._next = None
            early.discard()  # the end was read wrong after all
            early = None
        if full:
            # More is waiting: have the server work on it while this page is delivered.
            self.last_page_full = True
            if early is None and not parser.streamed:
                self._next = _NextPage(self, connection, replace(request, since=parser.last_seq))
        if items:
            yield items

    def close(self) -> None:
        super().close()  # aborts an opening next page too (its abort is the registered one)
        following, self._next = self._next, None
        if following is not None:
            following.connection.abort()  # its request may still be opening
            following.discard()


_HEADERS = {"Accept": "application/json"}


class _NextPage:
    """A long-poll request opened on a helper thread while the page before it is parsed.

    Opening is all the thread does (send, wait for the status line and headers); the
    body is read by the next `LongPollTransport.stream_batches` call that takes it.
    The constructor returns once the request is written: the reader's next CPU-bound
    work (building this page's changes) holds the GIL, and a request still waiting for
    the GIL to be sent would leave the server idle meanwhile. Its socket's abort is
    registered with the connection of the page before it, so `close()` reaches it;
    the call that takes it registers "abort that connection" with its own."""

    def __init__(self, transport: LongPollTransport, connection: FeedConnection, request: ChangesRequest) -> None:
        self.request = request
        self.connection = connection
        self._response: FeedResponse | None = None
        self._error: BaseException | None = None
        self._discarded = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        sent = threading.Event()

        def open_next() -> None:
            try:
                with on_request_sent(sent.set):
                    response = open_feed(connection, transport._form, request, transport.feed, _HEADERS)
            except BaseException as exc:  # handed to the taker
                self._error = exc
            else:
                with self._lock:
                    if self._discarded:
                        response.close()
                    else:
                        self._response = response
            finally:
                sent.set()
                self._done.set()

        threading.Thread(target=open_next, name="cloudsync-next-page", daemon=True).start()
        sent.wait(request.connect_timeout)  # bounded: the thread sets it on any outcome

    def result(self) -> FeedResponse:
        """The opened response, or the error opening it raised. Waits for the opening,
        which open_feed bounds by the request's connect and stall timeouts (and close()
        cuts short)."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response

    def discard(self) -> None:
        with self._lock:
            self._discarded = True
            response, self._response = self._response, None
        if response is not None:
            response.close()

