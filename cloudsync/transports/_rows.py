"""Turning feed JSON into items.

The feeds call :func:`rows_to_items` / :func:`lines_to_items` once per batch they read
(a network chunk, a long-poll page, a WebSocket message), so the per-row work is one
JSON parse and one :class:`Change`; everything unusual goes through :func:`row_item`.
"""

from __future__ import annotations

from typing import Any

from .. import _json
from ..errors import InvalidResponse, StreamError
from ..models import _change_from_row
from .base import Item, LastSeq


def row_item(obj: Any, what: str) -> Item | None:
    """A result row (``Change``), a ``last_seq`` object (``LastSeq``), or ``None`` to skip."""
    if not isinstance(obj, dict):
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(obj).__name__}")
    if "id" in obj:
        try:
            return _change_from_row(obj)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidResponse(f"{what}: malformed change row {obj!r:.200}") from exc
    if "last_seq" in obj:
        return LastSeq(obj["last_seq"])
    if "error" in obj:
        # CouchDB reports a failure after the 200 status as an error row.
        raise StreamError(f"{what}: server error in feed: {obj.get('error')}: {obj.get('reason')}")
    return None


def rows_to_items(rows: list[Any], what: str) -> list[Item]:
    """``row_item`` for each row, skipping ``None``."""
    return [item for row in rows if (item := row_item(row, what)) is not None]


def lines_to_items(lines: list[bytes], what: str) -> tuple[list[Item], bool]:
    """Items of complete continuous-feed lines (blank lines are heartbeats).

    Returns ``(items, ended)``: ``ended`` when a ``last_seq`` line closed the feed; the
    items stop there.

    One parse per line, not one for the whole chunk: each row's dicts are freed as soon
    as its :class:`Change` is built. Parsing a chunk as one array keeps hundreds of rows'
    dicts alive at once; the garbage collector then promotes them and runs full
    collections, which cost the application far more than the calls saved.
    """
    loads = _json.loads
    decode_error = _json.JSONDecodeError
    build = _change_from_row
    items: list[Item] = []
    append = items.append
    for line in lines:
        try:
            row = loads(line)
        except decode_error:
            if not line.strip():
                continue  # heartbeat
            raise InvalidResponse(f"{what}: malformed JSON line {line[:80]!r}") from None
        if row.__class__ is dict and "id" in row:
            try:
                append(build(row))
                continue
            except (KeyError, TypeError, AttributeError):
                pass
        item = row_item(row, what)
        if item is None:
            continue
        append(item)
        if item.__class__ is LastSeq:
            return items, True
    return items, False
