"""``feed=continuous``: one JSON object per line over a long-lived response."""

from __future__ import annotations

from collections.abc import Iterator

from ._httpfeed import FeedSession, SelectorForm, open_feed, read_chunks
from ._rows import lines_to_items
from .base import ChangesRequest, Item, Transport

__all__ = ["ContinuousTransport"]


class ContinuousTransport(Transport):
    """A continuous feed: rows separated by ``\\n``, empty lines are heartbeats.

    A ``{"last_seq": ...}`` line ends the feed cleanly (at the server's ``timeout``). A
    partial last line (a truncated chunked body) is dropped, never parsed. Reads the
    body in large chunks and yields the complete lines of each chunk as one batch.
    """

    name = "continuous"

    def __init__(self, *, selector_in: str = "auto") -> None:
        super().__init__()
        self._session = FeedSession()
        self._form = SelectorForm(selector_in)

    stream = Transport.batched_stream

    def stream_batches(self, request: ChangesRequest) -> Iterator[list[Item]]:
        token = self._begin()
        response = open_feed(self, self._session, self._form, token, request, "continuous", {"Accept": "application/json"})
        self._opened()
        what = "continuous feed"
        rest = b""
        for chunk in read_chunks(self, token, response, what):
            if rest:
                chunk = rest + chunk
            lines = chunk.split(b"\n")
            rest = lines.pop()
            if not lines:
                continue
            items, ended = lines_to_items(lines, what)
            if items:
                yield items
            if ended:
                response.close()
                return
