"""`feed=eventsource`: Server-Sent Events, resumed with `Last-Event-ID`."""

from __future__ import annotations

from collections.abc import Iterator

from .. import _json
from ..wire.sse import SSEFeedParser
from ._httpfeed import open_feed
from .base import ChangesRequest, FeedConnection, Item, Transport
from .filters import SelectorForm

__all__ = ["SSETransport"]


class SSETransport(Transport):
    """An EventSource feed parsed per the WHATWG spec (see `cloudsync.wire.sse`).

    `data` carries a change row; the event `id` is its seq (used when the row has no
    `seq`) and is sent back as `Last-Event-ID` (as well as `since`) on the next
    connection. `event: heartbeat` is ignored; `event: last_seq` (or a `last_seq`
    object) becomes a [LastSeq][cloudsync.LastSeq]. The server's `retry:` hint is kept in
    `retry` (seconds) and the subscription never reconnects sooner after a failure.

    Args:
        selector_in: Where a `selector` goes, as for
            [LongPollTransport][cloudsync.LongPollTransport].

    Raises:
        ValueError: `selector_in` is none of `"auto"`, `"body"`, `"query"`.
    """

    name = "sse"

    def __init__(self, *, selector_in: str = "auto") -> None:
        super().__init__()
        self._form = SelectorForm(selector_in)
        self.retry: float | None = None
        """The server's reconnection time in seconds (`retry:`), or `None`."""

    def retry_hint(self) -> float | None:
        """The server's `retry:` hint (`retry`)."""
        return self.retry

    def stream_batches(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[list[Item]]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if request.since is not None:
            since = request.since
            headers["Last-Event-ID"] = since if isinstance(since, str) else _json.dumps(since).decode()
        response = open_feed(connection, self._form, request, "eventsource", headers)
        connection.opened()
        parser = SSEFeedParser()
        for chunk in response.chunks():
            items = parser.feed(chunk)
            if parser.retry is not None:
                self.retry = parser.retry
            if items:
                yield items
        parser.finish()  # an event not ended by a blank line is discarded
