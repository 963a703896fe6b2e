"""`feed=longpoll` / `feed=normal`: one JSON answer `{"results":[...],"last_seq":S}`."""

from __future__ import annotations

from typing import Any

from .. import _json
from ..errors import InvalidResponse
from ..models import Item, LastSeq
from .rows import DECODE_ERRORS, comma_lines_to_items, loads, row_item, rows_to_items

__all__ = ["MISSING", "LongPollParser"]

MISSING: Any = object()
"""No `last_seq` (yet)."""

_HEAD = b'{"results":['


class LongPollParser:
    """Fed the answer's chunks, returns its rows as soon as they can be read.

    CouchDB and the embedded server write a row per line (``{"results":[\\n{row},\\n
    {row}\\n],\\n"last_seq":...}``, heartbeat newlines between rows while waiting): such
    an answer is parsed line by line as it arrives, and its rows are returned while the
    rest is still being sent. Any other layout (pouchdb-server writes one line; a server
    may pretty-print) is held and parsed whole by `finish()`. An answer that starts
    a row per line and then stops (a row spread over lines, two rows on one line) is
    parsed whole from that row on: what is left is the answer without the rows already
    returned, once `{"results":[` is put back in front of it.

    Attributes for the paging transport: `rows` (result rows read), `streamed`
    (whether the whole answer was read a row per line), `last_seq` (`MISSING`
    until read).
    """

    def __init__(self, what: str = "longpoll feed") -> None:
        self.what = what
        self.rows = 0
        """Result rows read so far (returned or skipped)."""
        self.last_seq: Any = MISSING
        """The answer's `last_seq`, once `finish()` has read it."""
        self._mode = "start"  # start -> rows -> rest, or start -> whole
        self._line_mode_rows = 0  # rows read line by line
        self._fell_back = False  # a row per line, then not
        self._held: list[bytes] = []  # start: the head so far; rows: a line not yet ended; rest/whole: the body to parse

    @property
    def streamed(self) -> bool | None:
        """True when rows were read a row per line and the answer kept that layout;
        False when it was (or became) parsed whole; None when it had no rows to tell."""
        if self._mode == "whole" or self._fell_back:
            return False
        return True if self._line_mode_rows else None

    def feed(self, chunk: bytes) -> list[Item]:
        if self._mode == "rows":
            return self._feed_rows(chunk)
        if self._mode != "start":
            self._held.append(chunk)
            return []
        # Decide the layout from the first bytes: `{"results":[` then a newline.
        self._held.append(chunk)
        head = b"".join(self._held).lstrip()
        self._held = [head]
        after = head[len(_HEAD) :].lstrip(b" \t\r")
        if not head.startswith(_HEAD[: len(head)]) or (after and not after.startswith(b"\n")):
            self._mode = "whole"  # e.g. pouchdb-server's one-line answer
            return []
        if not after:
            return []  # not enough yet to tell
        self._mode = "rows"
        self._held = []
        return self._feed_rows(after[1:])

    def _feed_rows(self, chunk: bytes) -> list[Item]:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            if chunk:
                self._held.append(chunk)
            return []
        if self._held:
            self._held.append(chunk)
            cut += sum(map(len, self._held)) - len(chunk)
            chunk = b"".join(self._held)
        self._held = [chunk[cut + 1 :]] if cut + 1 < len(chunk) else []
        block = chunk[:cut]
        part = block.strip().rstrip(b",")
        if part and b"\n]" not in block and not part.startswith(b"]"):
            # Only rows (`row,\nrow,\n...`)? Split at the row separators, no per-line
            # stripping; anything else takes the line by line path.
            items = comma_lines_to_items(part, self.what)
            if items is not None:
                self.rows += len(items)
                self._line_mode_rows += len(items)
                return items
        return self._lines(block.split(b"\n"))

    def _lines(self, lines: list[bytes]) -> list[Item]:
        """The items of complete lines in the results; switches to holding the rest at
        the closing `]` or at a line that is not one whole row."""
        items: list[Item] = []
        for index, line in enumerate(lines):
            text = line.strip()
            if not text:
                continue  # heartbeat
            if not text.startswith(b"]"):
                if text.endswith(b","):
                    text = text[:-1]
                try:
                    obj = _json.loads(text)
                except DECODE_ERRORS:
                    self._fell_back = True  # not a row per line after all
                else:
                    self.rows += 1
                    self._line_mode_rows += 1
                    item = row_item(obj, self.what)
                    if item is not None:
                        items.append(item)
                    continue
            # From here the answer is parsed whole by finish(): the closing `]` and the
            # tail, or the rows still to come and the tail.
            self._mode = "rest"
            self._held = [b"\n".join(lines[index:]), b"\n", *self._held]
            break
        return items

    def end_hint(self) -> tuple[int, Any]:
        """For an answer held whole, before `finish()` parses it: the most rows it
        can hold (each has one `"changes":` key; a document's own key only adds to
        the count) and its `last_seq` read from its end (or `MISSING`), without
        parsing the rows. `(0, MISSING)` for an answer read a row per line."""
        if self._mode != "whole":
            return 0, MISSING
        body = b"".join(self._held)
        self._held = [body]
        return body.count(b'"changes":'), _tail_last_seq(body)

    def finish(self) -> list[Item]:
        """The end of the body: the items still to come and `LastSeq`. Raises
        [InvalidResponse][cloudsync.InvalidResponse] for an answer that is not JSON, not `{"results": [...]}`
        or that ended inside its results."""
        if self._mode == "rows":
            last = b"".join(self._held)  # a final line without its line end
            self._held = []
            items = self._lines(last.split(b"\n"))
            if self._mode == "rows":
                raise InvalidResponse(f"{self.what}: the answer ended inside its results")
            return items + self._finish_whole(_HEAD)
        return self._finish_whole(_HEAD if self._mode == "rest" else b"")

    def _finish_whole(self, head: bytes) -> list[Item]:
        body = b"".join(self._held).lstrip()
        self._held = []
        if head and body.startswith(b","):
            body = body[1:]  # a comma-first layout: `{row}\n,{row}`
        answer = loads(head + body, self.what, f"answer ({len(body)} bytes)")
        if answer.__class__ is not dict or answer.get("results").__class__ is not list:
            raise InvalidResponse(f"{self.what}: expected {{'results': [...]}}, got {body[:80]!r}")
        results = answer["results"]
        self.rows += len(results)
        items = rows_to_items(results, self.what)
        if "last_seq" in answer:
            self.last_seq = answer["last_seq"]
            items.append(LastSeq(self.last_seq))
        return items


def _tail_last_seq(body: bytes) -> Any:
    """`last_seq` read from the end of an answer (`..."last_seq":X}`, maybe followed
    by `"pending":N`) without parsing the rows; `MISSING` for any other end."""
    at = body.rfind(b'"last_seq"')
    if at < 0:
        return MISSING
    try:
        tail = _json.loads(b"{" + body[at:].strip())
    except DECODE_ERRORS:
        return MISSING
    return tail.get("last_seq", MISSING) if tail.__class__ is dict else MISSING
