"""``feed=eventsource``: Server-Sent Events, resumed with ``Last-Event-ID``."""

from __future__ import annotations

from collections.abc import Iterator

from .. import _json
from .._sse import SSEParser
from ..errors import InvalidResponse
from ..models import Change, _change_from_row
from ._httpfeed import FeedSession, SelectorForm, open_feed, read_chunks
from ._rows import row_item
from .base import ChangesRequest, Item, LastSeq, Transport

__all__ = ["SSETransport"]


class SSETransport(Transport):
    """An EventSource feed parsed per the WHATWG spec (see :mod:`cloudsync._sse`).

    ``data`` carries a change row; the event ``id`` is its seq (used when the row has no
    ``seq``) and is sent back as ``Last-Event-ID`` (as well as ``since``) on the next
    connection. ``event: heartbeat`` is ignored; ``event: last_seq`` (or a ``last_seq``
    object) becomes a :class:`LastSeq`. The server's ``retry:`` hint is kept in
    :attr:`retry` (seconds) and the subscription never reconnects sooner after a failure.
    """

    name = "sse"

    def __init__(self, *, selector_in: str = "auto") -> None:
        super().__init__()
        self._session = FeedSession()
        self._form = SelectorForm(selector_in)
        #: The server's reconnection time in seconds (``retry:``), or ``None``.
        self.retry: float | None = None

    stream = Transport.batched_stream

    def stream_batches(self, request: ChangesRequest) -> Iterator[list[Item]]:
        token = self._begin()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if request.since is not None:
            since = request.since
            headers["Last-Event-ID"] = since if isinstance(since, str) else _json.dumps(since).decode()
        response = open_feed(self, self._session, self._form, token, request, "eventsource", headers)
        self._opened()
        what = "eventsource feed"
        parser = SSEParser()
        loads, decode_error = _json.loads, _json.JSONDecodeError
        for chunk in read_chunks(self, token, response, what):
            events = parser.feed_fields(chunk)
            if parser.retry is not None:
                self.retry = parser.retry / 1000.0
            if not events:
                continue
            items: list[Item] = []
            for event_type, data, event_id in events:
                if event_type == "heartbeat" or not data or data.isspace():
                    continue
                if event_type == "last_seq":
                    items.append(LastSeq(_seq(data)))
                    continue
                try:
                    row = loads(data)
                except decode_error as exc:
                    raise InvalidResponse(f"{what}: event data is not JSON: {data[:80]!r}") from exc
                if row.__class__ is dict and "id" in row and row.get("seq") is not None:
                    try:
                        items.append(_change_from_row(row))
                        continue
                    except (KeyError, TypeError, AttributeError):
                        pass
                item = row_item(row, what)
                if item is None:
                    continue
                if isinstance(item, Change) and item.seq is None and event_id:
                    item = Change(event_id, item.id, item.rev, item.deleted, item.doc, item.revs)
                items.append(item)
            if items:
                yield items


def _decode(data: str, what: str) -> object:
    try:
        return _json.loads(data)
    except _json.JSONDecodeError as exc:
        raise InvalidResponse(f"{what}: event data is not JSON: {data[:80]!r}") from exc


def _seq(data: str) -> object:
    """A ``last_seq`` event's data: a JSON seq, or the bare text of a string seq."""
    try:
        return _json.loads(data)
    except _json.JSONDecodeError:
        return data.strip()
