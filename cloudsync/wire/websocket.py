"""`feed=websocket` (Sync Gateway's protocol): one message into items."""

from __future__ import annotations

from ..models import Item, LastSeq
from .rows import comma_lines_to_items, loads, row_item, rows_to_items

__all__ = ["WebSocketParser"]


class WebSocketParser:
    """Fed each message's payload, returns its items.

    A message is a JSON array of rows, `[]` once caught up, `""` (or nothing) as a
    heartbeat, or one object: a row, or `{"last_seq": S}`, which ends the feed
    (`ended`; later messages are ignored). An array written a row per line (as the
    embedded server sends) is parsed row by row.
    """

    def __init__(self, what: str = "websocket feed") -> None:
        self.what = what
        self.ended = False
        """A `last_seq` object ended the feed."""

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
    """The items of an array message written a row per line (`[row,\\nrow,\\n...]`),
    parsed row by row (each row's dicts are freed as soon as its change is built; a
    whole array keeps them all alive for the garbage collector to promote); `None` for
    any other message, which is parsed whole."""
    if b"\n" not in body or body[:1] != b"[" or body[-1:] != b"]":
        return None
    return comma_lines_to_items(body[1:-1], what)
