"""``feed=continuous``: one JSON object per line over a long-lived response."""

from __future__ import annotations

from collections.abc import Iterator

from ._httpfeed import FeedSession, SelectorForm, open_feed, parse_json_line, read_chunks
from ._rows import row_item
from .base import ChangesRequest, Item, LastSeq, Transport

__all__ = ["ContinuousTransport"]


class ContinuousTransport(Transport):
    """A continuous feed: rows separated by ``\\n``, empty lines are heartbeats.

    A ``{"last_seq": ...}`` line ends the feed cleanly (at the server's ``timeout``). A
    partial last line (a truncated chunked body) is dropped, never parsed.
    """

    name = "continuous"

    def __init__(self, *, selector_in: str = "auto") -> None:
        super().__init__()
        self._session = FeedSession()
        self._form = SelectorForm(selector_in)

    def stream(self, request: ChangesRequest) -> Iterator[Item]:
        token = self._begin()
        response = open_feed(self, self._session, self._form, token, request, "continuous", {"Accept": "application/json"})
        self._opened()
        what = "continuous feed"
        buffer = b""
        for chunk in read_chunks(self, token, response, what):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                line = line.strip()
                if not line:
                    continue  # heartbeat
                item = row_item(parse_json_line(line, what), what)
                if item is None:
                    continue
                yield item
                if isinstance(item, LastSeq):
                    response.close()
                    return
