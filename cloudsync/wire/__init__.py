"""Pure parsers of the change feeds' wire formats, one module per format.

Each parser is fed bytes and returns items ([Change][cloudsync.Change] and
[LastSeq][cloudsync.LastSeq]): `feed(chunk) -> list[Item]` for each chunk (or
WebSocket message) as it arrives, `finish() -> list[Item]` at the end of the body. No
I/O, no threads: the transports read, the parsers parse. Every failure is a cloudsync
error: [InvalidResponse][cloudsync.InvalidResponse] for a body that is not the format (or
ended inside a long-poll answer's results), [StreamError][cloudsync.StreamError] for an
error row the server sent after its 200 status.
"""

from __future__ import annotations

from .continuous import ContinuousParser
from .longpoll import LongPollParser
from .sse import SSEFeedParser
from .websocket import WebSocketParser

__all__ = ["ContinuousParser", "LongPollParser", "SSEFeedParser", "WebSocketParser"]
