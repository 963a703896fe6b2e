"""``feed=continuous``: one JSON object per line over a long-lived response."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from ..wire.continuous import ContinuousParser
from ._httpfeed import FeedSession, SelectorForm, open_feed, read_chunks
from .base import ChangesRequest, Item, LastSeq, Transport
from .longpoll import LongPollTransport

__all__ = ["ContinuousTransport"]


class ContinuousTransport(Transport):
    """A continuous feed: rows separated by ``\\n``, empty lines are heartbeats.

    A ``{"last_seq": ...}`` line ends the feed cleanly (at the server's ``timeout``). A
    partial last line (a truncated chunked body) is dropped, never parsed. Reads the
    body in large chunks and yields the complete lines of each chunk as one batch.

    ``catch_up`` (default on): each connection first reads what is already there with
    ``feed=normal`` requests, in pages of ``page_size`` rows where the server's answers
    must be held whole (see :class:`LongPollTransport`, whose reading this is), and opens
    the continuous feed from where that ends. A full page ends the connection cleanly
    instead (the subscription reconnects at once), so a long backlog is read page by page.
    Some servers (pouchdb-server) send a backlog through their continuous feed at about
    half the rate of a normal request; when already caught up, the cost is one short
    request per connection. ``catch_up=False`` reads everything through the continuous
    feed.
    """

    name = "continuous"

    def __init__(self, *, selector_in: str = "auto", catch_up: bool = True, page_size: int | None = 10_000) -> None:
        super().__init__()
        self._session = FeedSession()
        self._form = SelectorForm(selector_in)
        self._catch_up = _CatchUpPages(self, selector_in=selector_in, page_size=page_size) if catch_up else None

    def bind(self, database) -> None:  # type: ignore[no-untyped-def]
        super().bind(database)
        if self._catch_up is not None:
            self._catch_up.bind(database)

    stream = Transport.batched_stream

    def stream_batches(self, request: ChangesRequest) -> Iterator[list[Item]]:
        pages = self._catch_up
        if pages is not None and request.limit is None:
            since = request.since
            for batch in pages.stream_batches(request):
                last = batch[-1]
                if last.__class__ is LastSeq:
                    since = last.seq
                yield batch
            if pages.last_page_full:
                return  # more is waiting: the subscription reconnects at once, from here
            request = replace(request, since=since)
        try:
            yield from self._continuous(request)
        except Exception:
            # The catch-up's kept-alive connection went the same way as this one (a dead
            # path kills both): the next connection's catch-up must not wait a second
            # stall window on it.
            if pages is not None:
                pages.drop_idle()
            raise

    def _continuous(self, request: ChangesRequest) -> Iterator[list[Item]]:
        token = self._begin()
        response = open_feed(self, self._session, self._form, token, request, "continuous", {"Accept": "application/json"})
        self._opened()
        parser = ContinuousParser()
        for chunk in read_chunks(self, token, response, parser.what):
            items = parser.feed(chunk)
            if items:
                yield items
            if parser.ended:
                response.close()
                return
        parser.finish()  # a partial last line (a truncated body) is dropped

    def shutdown(self) -> None:
        if self._catch_up is not None:
            self._catch_up.shutdown()
        super().shutdown()

    def close(self) -> None:
        super().close()
        if self._catch_up is not None:
            self._catch_up.close()
            self._catch_up.drop_idle()  # a stalled feed: its idle connections are suspect too


class _CatchUpPages(LongPollTransport):
    """The ``feed=normal`` reading of a :class:`ContinuousTransport`'s catch-up; its bytes
    count as the owner's (the stall watchdog watches the owner)."""

    feed = "normal"

    def __init__(self, owner: Transport, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._owner = owner

    def _received(self, count: int) -> None:
        self._owner._received(count)

    def _opened(self) -> None:
        self._owner._opened()
