"""`feed=continuous`: one JSON object per line over a long-lived response."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from ..wire.continuous import ContinuousParser
from ._httpfeed import open_feed
from .base import ChangesRequest, FeedConnection, Item, LastSeq, Transport
from .filters import SelectorForm
from .longpoll import LongPollTransport

__all__ = ["ContinuousTransport"]


class ContinuousTransport(Transport):
    """A continuous feed: rows separated by `\\n`, empty lines are heartbeats.

    A `{"last_seq": ...}` line ends the feed cleanly (at the server's `timeout`). A
    partial last line (a truncated chunked body) is dropped, never parsed. Reads the
    body in large chunks and yields the complete lines of each chunk as one batch.

    With `catch_up`, each connection first reads what is already there with
    `feed=normal` requests, in pages of `page_size` rows where the server's answers must
    be held whole (see [LongPollTransport][cloudsync.LongPollTransport], whose reading
    this is), and opens the continuous feed from where that ends. A full page ends the
    connection cleanly instead (the subscription reconnects at once), so a long backlog
    is read page by page. Some servers (pouchdb-server) send a backlog through their
    continuous feed at about half the rate of a normal request; when already caught up,
    the cost is one short request per connection.

    Args:
        selector_in: Where a `selector` goes, as for
            [LongPollTransport][cloudsync.LongPollTransport].
        catch_up: Read the backlog with `feed=normal` requests first; `False` reads
            everything through the continuous feed.
        page_size: Rows asked for per catch-up request while answers are held whole;
            `None` for no limit.

    Raises:
        ValueError: `page_size` is below 1, or `selector_in` is none of the three.
    """

    name = "continuous"

    def __init__(self, *, selector_in: str = "auto", catch_up: bool = True, page_size: int | None = 10_000) -> None:
        super().__init__()
        self._form = SelectorForm(selector_in)
        self._catch_up = _CatchUpPages(selector_in=selector_in, page_size=page_size) if catch_up else None

    def stream_batches(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[list[Item]]:
        try:
            yield from self._read(request, connection)
        except Exception:
            # The catch-up's kept-alive connection went the same way as this one (a dead
            # path kills both): the next connection's catch-up must not wait a second
            # stall window on it.
            if self._catch_up is not None:
                connection.drop_idle()
            raise

    def _read(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[list[Item]]:
        pages = self._catch_up
        if pages is not None and request.limit is None:
            since = request.since
            for batch in pages.stream_batches(request, connection):
                last = batch[-1]
                if last.__class__ is LastSeq:
                    since = last.seq
                yield batch
            if pages.last_page_full:
                return  # more is waiting: the subscription reconnects at once, from here
            request = replace(request, since=since)
        yield from self._continuous(request, connection)

    def _continuous(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[list[Item]]:
        response = open_feed(connection, self._form, request, "continuous", {"Accept": "application/json"})
        connection.opened()
        parser = ContinuousParser()
        for chunk in response.chunks():
            items = parser.feed(chunk)
            if items:
                yield items
            if parser.ended:
                response.close()
                return
        parser.finish()  # a partial last line (a truncated body) is dropped

    def close(self) -> None:
        super().close()
        if self._catch_up is not None:
            self._catch_up.close()  # drops a next page asked for ahead


class _CatchUpPages(LongPollTransport):
    """The `feed=normal` reading of a `ContinuousTransport`'s catch-up, on the
    owner's connection (its bytes count there, and closing the owner aborts it)."""

    feed = "normal"
