"""A WHATWG-conformant ``text/event-stream`` parser, fed bytes as they arrive.

Follows https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation:
lines end with CR, LF or CRLF (a CRLF split across two chunks is one line end, never an
extra blank line); one leading BOM is stripped; ``:`` lines are comments; ``data`` lines
join with ``\\n``; ``id`` persists across events until changed; ``retry`` takes digits only;
an event still incomplete at end of stream is discarded.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["Event", "SSEParser"]

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event. ``id`` is the last event id in force when it was dispatched."""

    data: str
    type: str = "message"
    id: str = ""


class SSEParser:
    """Incremental parser: ``feed(chunk)`` returns the events the chunk completed."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # text of a line not yet ended
        self._started = False  # whether the BOM check has happened
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF belongs to it
        self._data: list[str] = []
        self._type = ""
        #: The last event id buffer: persists across events (and is what ``Last-Event-ID`` resends).
        self.last_event_id = ""
        #: The server's ``retry:`` reconnection time in milliseconds, if it sent one.
        self.retry: int | None = None

    @property
    def idle(self) -> bool:
        """Between events: started, no partial line, no pending data, type or CR."""
        return self._started and not (self._partial or self._data or self._type or self._skip_lf)

    def feed(self, chunk: bytes | str) -> list[Event]:
        return [Event(data, type, id) for type, data, id in self.feed_fields(chunk)]

    def feed_fields(self, chunk: bytes | str) -> list[tuple[str, str, str]]:
        """Like :meth:`feed`, as ``(type, data, id)`` tuples (no :class:`Event` objects:
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
