"""``feed=longpoll``: one request, one JSON answer, then a clean end."""

from __future__ import annotations

from collections.abc import Iterator

from .. import _json
from ..errors import InvalidResponse
from ._httpfeed import FeedSession, SelectorForm, open_feed, read_chunks
from ._rows import row_item
from .base import ChangesRequest, Item, LastSeq, Transport

__all__ = ["LongPollTransport"]


class LongPollTransport(Transport):
    """Long polling: the server answers once there are changes (or at ``timeout``).

    Yields the answer's changes and then ``LastSeq(last_seq)``, even for an empty answer,
    so filtered feeds advance their checkpoint. ``selector_in``: ``"auto"`` (try the POST
    body, fall back to query parameters once), ``"body"`` (CouchDB 3) or ``"query"``
    (pouchdb-server).
    """

    name = "longpoll"
    feed = "longpoll"

    def __init__(self, *, selector_in: str = "auto") -> None:
        super().__init__()
        self._session = FeedSession()
        self._form = SelectorForm(selector_in)

    def stream(self, request: ChangesRequest) -> Iterator[Item]:
        token = self._begin()
        response = open_feed(self, self._session, self._form, token, request, self.feed, {"Accept": "application/json"})
        self._opened()
        what = f"{self.feed} feed"
        # Heartbeat newlines arrive while the server waits: read incrementally for liveness.
        body = b"".join(read_chunks(self, token, response, what))
        try:
            answer = _json.loads(body)
        except _json.JSONDecodeError as exc:
            raise InvalidResponse(f"{what}: body is not JSON ({len(body)} bytes)") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise InvalidResponse(f"{what}: expected {{'results': [...]}}, got {body[:80]!r}")
        for row in answer["results"]:
            item = row_item(row, what)
            if item is not None:
                yield item
        if "last_seq" in answer:
            yield LastSeq(answer["last_seq"])

    def close(self) -> None:
        super().close()
