"""`feed=continuous`: one JSON object per `\\n`-ended line."""

from __future__ import annotations

from ..models import Item
from .rows import lines_to_items

__all__ = ["ContinuousParser"]


class ContinuousParser:
    """Fed the body's chunks, returns the items of the lines each one completes.

    Empty lines are heartbeats. A `{"last_seq": ...}` line ends the feed: `ended`
    turns true and anything after it is ignored. A partial last line is what a
    truncated chunked body leaves when the server fails mid-stream: `finish()` drops
    it, never parses it.
    """

    def __init__(self, what: str = "continuous feed") -> None:
        self.what = what
        self.ended = False
        """A `last_seq` line closed the feed."""
        self._held: list[bytes] = []  # the start of a line not yet ended

    def feed(self, chunk: bytes) -> list[Item]:
        if self.ended:
            return []
        if b"\n" not in chunk:
            if chunk:
                self._held.append(chunk)
            return []
        if self._held:
            self._held.append(chunk)
            chunk = b"".join(self._held)
            self._held = []
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            self._held.append(rest)
        items, self.ended = lines_to_items(lines, self.what)
        if self.ended:
            self._held = []
        return items

    def finish(self) -> list[Item]:
        """The end of the body: a partial last line is dropped."""
        self._held = []
        return []
