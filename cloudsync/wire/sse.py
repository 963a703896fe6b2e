"""`feed=eventsource`: a WHATWG-conformant `text/event-stream` parser, fed bytes as
they arrive (`SSEParser`, events), and the feed's parser on top of it
(`SSEFeedParser`, items).

Follows https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation:
lines end with CR, LF or CRLF (a CRLF split across two chunks is one line end, never an
extra blank line); one leading BOM is stripped; `:` lines are comments; `data` lines
join with `\\n`; `id` persists across events until changed; `retry` takes digits only;
an event still incomplete at end of stream is discarded.
"""

from __future__ import annotations

import codecs
import operator
import re
from dataclasses import dataclass
from typing import Any

from .. import _json
from ..errors import InvalidResponse
from ..models import Change, Item, LastSeq
from .rows import DECODE_ERRORS, lines_to_items, loads, row_item

__all__ = ["Event", "SSEFeedParser", "SSEParser"]

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event. `id` is the last event id in force when it was dispatched."""

    data: str
    type: str = "message"
    id: str = ""


class SSEParser:
    """Incremental parser: `feed(chunk)` returns the events the chunk completed."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # text of a line not yet ended
        self._started = False  # whether the BOM check has happened
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF belongs to it
        self._data: list[str] = []
        self._type = ""
        self.last_event_id = ""
        """The last event id buffer: persists across events (and is what `Last-Event-ID` resends)."""
        self.retry: int | None = None
        """The server's `retry:` reconnection time in milliseconds, if it sent one."""

    @property
    def idle(self) -> bool:
        """Between events: started, no partial line or character, no pending data, type or CR."""
        return self._started and not (self._partial or self._data or self._type or self._skip_lf or self._decoder.getstate()[0])

    def feed(self, chunk: bytes | str) -> list[Event]:
        return [Event(data, type, id) for type, data, id in self.feed_fields(chunk)]

    def feed_fields(self, chunk: bytes | str) -> list[tuple[str, str, str]]:
        """Like `feed()`, as `(type, data, id)` tuples (no `Event` objects:
        what a feed reading many thousands of events a second wants)."""
        text = self._decoder.decode(chunk) if isinstance(chunk, (bytes, bytearray)) else chunk
        if not self._started:
            if not text:
                return []
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        if "\r" in text:
            lines = _LINE_END.split(text)
            if text.endswith("\r"):
                # A CR at the end of the chunk: its LF may arrive in the next chunk.
                self._skip_lf = True
        else:
            lines = text.split("\n")
        if self._partial:
            lines[0] = self._partial + lines[0]
        self._partial = lines.pop()  # the text of a line not yet ended
        events: list[tuple[str, str, str]] = []
        data = self._data
        for line in lines:
            if not line:  # dispatch
                if data:
                    events.append((self._type or "message", "\n".join(data), self.last_event_id))
                    data = self._data = []
                self._type = ""
            elif line.startswith("data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(" ") else value)
            elif line.startswith("id:"):
                value = line[3:]
                if value.startswith(" "):
                    value = value[1:]
                if "\0" not in value:
                    self.last_event_id = value
            elif not line.startswith(":"):  # ":" starts a comment
                self._line(line)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment (also what keeps proxies and our liveness check fed)
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._type = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif field == "retry" and value and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data, event_type = self._data, self._type
        self._data, self._type = [], ""
        if not data:
            return None
        return Event(data="\n".join(data), type=event_type or "message", id=self.last_event_id)


class SSEFeedParser:
    """Fed an eventsource feed's chunks, returns the items of the events they complete.

    `data` carries a change row; the event `id` is its seq when the row has none.
    `event: heartbeat` and events without data are skipped; `event: last_seq` (or a
    `last_seq` object) becomes a [LastSeq][cloudsync.LastSeq]. The server's `retry:` hint is in
    `retry` (seconds). An event not ended by a blank line when the body ends is
    discarded (`finish()`).

    Whole events of exactly `data: <row>`, `id: <seq>` and a blank line (what
    CouchDB-style servers send) take a fast path; bytes after the last blank line wait
    for the next chunk. CR line ends, and the end of an event the spec parser has
    begun, go to the spec parser at once.
    """

    def __init__(self, what: str = "eventsource feed") -> None:
        self.what = what
        self.events = SSEParser()
        self.retry: float | None = None
        """The server's reconnection time in seconds (`retry:`), or `None`."""
        self._rest = b""

    def feed(self, chunk: bytes) -> list[Item]:
        parser = self.events
        data = self._rest + chunk if self._rest else chunk
        cut = -1 if b"\r" in data else data.rfind(b"\n\n")
        idle = parser.idle
        if cut >= 0:
            block, self._rest = data[: cut + 2], data[cut + 2 :]
        elif idle and b"\r" not in data and len(data) <= _PENDING_LIMIT:
            self._rest = data
            return []
        else:
            block, self._rest = data, b""
        fast = _plain_events(block, parser, self.what) if idle else None
        if fast is not None:
            return fast
        events = parser.feed_fields(block)
        if parser.retry is not None:
            self.retry = parser.retry / 1000.0
        items: list[Item] = []
        for event_type, data_text, event_id in events:
            if event_type == "heartbeat" or not data_text or data_text.isspace():
                continue
            if event_type == "last_seq":
                items.append(LastSeq(_seq(data_text)))
                continue
            item = row_item(loads(data_text, self.what, "event data"), self.what)
            if item is None:
                continue
            if item.__class__ is Change and item.seq is None and event_id:
                item = Change(event_id, item.id, item.rev, item.deleted, item.doc, item.revs)
            items.append(item)
        return items

    def finish(self) -> list[Item]:
        """The end of the body: an event not yet ended is discarded."""
        self._rest = b""
        return []


_PENDING_LIMIT = 1 << 20
"""Bytes kept waiting for an event's blank line before they are parsed anyway."""
_DATA, _ID = b"data: ", b"id: "
_head_data = operator.itemgetter(slice(0, len(_DATA)))
_head_id = operator.itemgetter(slice(0, len(_ID)))
_payload = operator.itemgetter(slice(len(_DATA), None))


def _plain_events(block: bytes, parser: SSEParser, what: str) -> list[Item] | None:
    """The items of `block` when it is only events of exactly `data: <row>`,
    `id: <seq>` and a blank line, or `None` for the spec parser. Checked and split
    with a few C-level passes instead of three parsed lines per event."""
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
        return None  # the spec parser reports it
    if ended and len(items) < len(data_lines):
        return None  # a last_seq row amid events: the spec parser keeps going past it
    for item in items:
        if item.seq is None:
            return None  # the event id stands in for it: the spec parser does that
    parser.last_event_id = id_lines[-1][len(_ID) :].decode("utf-8", "replace")
    return items


def _seq(data: str) -> Any:
    """A `last_seq` event's data: a JSON seq, or the bare text of a string seq."""
    try:
        return _json.loads(data)
    except DECODE_ERRORS:
        return data.strip()
