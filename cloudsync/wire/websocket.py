"""``feed=websocket`` (Sync Gateway's protocol): one message into items."""

from __future__ import annotations

from ..errors import InvalidResponse
from ..models import Item, LastSeq
from .rows import lines_to_items, loads, row_item, rows_to_items

__all__ = ["WebSocketParser"]


class WebSocketParser:
    """Fed each message's payload, returns its items.

    A message is a JSON array of rows, ``[]`` once caught up, ``""`` (or nothing) as a
    heartbeat, or one object: a row, or ``{"last_seq": S}``, which ends the feed
    (:attr:`ended`; later messages are ignored). An array written a row per line (as the
    embedded server sends) is parsed row by row.
    """

    def __init__(self, what: str = "websocket feed") -> None:
        self.what = what
        #: A ``last_seq`` object ended the feed.
        self.ended = False

    def feed(self, message: bytes) -> list[Item]:
        if self.ended:
            return []
        body = message.strip()
        if not body or body == b'""' or body == b"[]":
            return []  # heartbeat, or "caught up"
        items = _row_per_line(body, self.what)
        if items is not None:
            return items
        value = loads(body, self.what, "message")
        if value.__class__ is list:
            return rows_to_items(value, self.what)
        item = row_item(value, self.what)
        if item is None:
            return []
        if item.__class__ is LastSeq:
            self.ended = True
        return [item]

    def finish(self) -> list[Item]:
        """The connection closed: nothing is pending between messages."""
        return []


def _row_per_line(body: bytes, what: str) -> list[Item] | None:
    """The items of an array message written a row per line (``[row,\\nrow,\\n...]``),
    parsed row by row; ``None`` for any other message, which is parsed whole.

    Row by row, each row's dicts are freed as soon as its change is built; a whole
    array keeps them all alive and the garbage collector promotes them. A split at
    ``,\\n`` can only make every piece valid JSON when the line ends are between the
    array's own elements (a raw newline never occurs inside a JSON string), so anything
    else fails to parse and falls back to the whole message."""
    if b"\n" not in body or body[:1] != b"[" or body[-1:] != b"]":
        return None
    pieces = body[1:-1].split(b",\n")
    try:
        items, ended = lines_to_items(pieces, what)
    except InvalidResponse:
        return None
    if ended and len(items) < len(pieces):
        return None  # a last_seq object amid the rows: parsed whole, it does not end the feed
    return items
