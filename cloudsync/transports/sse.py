"""``feed=eventsource``: Server-Sent Events, resumed with ``Last-Event-ID``."""

from __future__ import annotations

import operator
from collections.abc import Iterator

from .. import _json
from .._sse import SSEParser
from ..errors import InvalidResponse
from ..models import Change
from ._httpfeed import FeedSession, SelectorForm, open_feed, read_chunks
from ._rows import lines_to_items, row_item
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

    def retry_hint(self) -> float | None:
        return self.retry

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
        rest = b""
        for chunk in read_chunks(self, token, response, what):
            # Whole events go to the parser (or the fast path); the bytes after the last
            # blank line wait for the next chunk. CR line ends, and the end of an event
            # the parser has begun, are parsed at once.
            data = rest + chunk if rest else chunk
            cut = -1 if b"\r" in data else data.rfind(b"\n\n")
            idle = parser.idle
            if cut >= 0:
                block, rest = data[: cut + 2], data[cut + 2 :]
            elif idle and b"\r" not in data and len(data) <= _PENDING_LIMIT:
                rest = data
                continue
            else:
                block, rest = data, b""
            fast = _plain_events(block, parser, what) if idle else None
            if fast is not None:
                if fast:
                    yield fast
                continue
            events = parser.feed_fields(block)
            if parser.retry is not None:
                self.retry = parser.retry / 1000.0
            if not events:
                continue
            items: list[Item] = []
            for event_type, data_text, event_id in events:
                if event_type == "heartbeat" or not data_text or data_text.isspace():
                    continue
                if event_type == "last_seq":
                    items.append(LastSeq(_seq(data_text)))
                    continue
                try:
                    row = loads(data_text)
                except decode_error as exc:
                    raise InvalidResponse(f"{what}: event data is not JSON: {data_text[:80]!r}") from exc
                item = row_item(row, what)
                if item is None:
                    continue
                if isinstance(item, Change) and item.seq is None and event_id:
                    item = Change(event_id, item.id, item.rev, item.deleted, item.doc, item.revs)
                items.append(item)
            if items:
                yield items


#: Bytes kept waiting for an event's blank line before they are parsed anyway.
_PENDING_LIMIT = 1 << 20
_DATA, _ID = b"data: ", b"id: "
_head_data = operator.itemgetter(slice(0, len(_DATA)))
_head_id = operator.itemgetter(slice(0, len(_ID)))
_payload = operator.itemgetter(slice(len(_DATA), None))


def _plain_events(block: bytes, parser: SSEParser, what: str) -> list[Item] | None:
    """The items of ``block`` when it is only events of exactly ``data: <row>``,
    ``id: <seq>`` and a blank line (what CouchDB-style servers send), or ``None`` for the
    full parser. Checked and split with a few C-level passes instead of three parsed
    lines per event."""
    lines = block.split(b"\n")
    lines.pop()  # after the final line end
    if len(lines) % 3 or any(lines[2::3]):
        return None
    data_lines, id_lines = lines[0::3], lines[1::3]
    if set(map(_head_data, data_lines)) != {_DATA} or set(map(_head_id, id_lines)) != {_ID} or b"\0" in block:
        return None
    try:
        items, ended = lines_to_items(list(map(_payload, data_lines)), what)
    except InvalidResponse:
        return None  # the full parser reports it
    if ended and len(items) < len(data_lines):
        return None  # a last_seq row amid events: the full parser keeps going past it
    for item in items:
        if item.seq is None:
            return None  # the event id stands in for it: the full parser does that
    parser.last_event_id = id_lines[-1][len(_ID) :].decode("utf-8", "replace")
    return items


def _seq(data: str) -> object:
    """A ``last_seq`` event's data: a JSON seq, or the bare text of a string seq."""
    try:
        return _json.loads(data)
    except _json.JSONDecodeError:
        return data.strip()
