"""`GET /_db_updates`: which databases were created, updated or deleted.

The events come from the storage's log (`storage/db_updates.py`) and are served by the
`_changes` feeds themselves (`changes.serve_changes`: normal, longpoll, continuous and
eventsource, with their heartbeats, timeouts, send watchdog and pushes to waiting feeds);
only the rows' framing is this module's: `{"db_name", "type", "seq"}`, as CouchDB 3
writes them. Options as CouchDB takes them: `feed`, `since` (a seq, or `now`), `limit`,
`timeout`, `heartbeat`, and `descending` for the normal feed; others are ignored.

Only server admins may read it (CouchDB's rule): on this server every user is an
admin, and without users everyone is.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..._json import dumps
from .. import changes
from ..errors import bad_request
from ..http import allow
from ..seq import seq_bytes
from ..state import ServerState
from ..storage import Row

__all__ = ["DbUpdatesHandler"]

FEEDS = ("normal", "longpoll", "continuous", "eventsource")
OPTIONS = ("feed", "since", "limit", "timeout", "heartbeat", "descending")


class DbUpdatesFeed(changes.Feed):
    """A `_changes` feed whose rows are database events: `(seq, db_name, type, 0, None)`."""

    def encode(self, row: Row, seq_str: bytes | None = None) -> bytes:
        n, db_name, event = row[0], row[1], row[2]
        return (b'{"db_name":' + dumps(db_name) + b',"type":"' + event.encode() + b'","seq":"'
                + (seq_str if seq_str is not None else seq_bytes(n)) + b'"}')

    def encode_rows(self, rows: list[Row], eventsource: bool = False) -> list[bytes]:
        if not eventsource:
            return [self.encode(row) for row in rows]
        # As CouchDB: the seq is also the event id, JSON-encoded (a quoted string).
        out = []
        for row in rows:
            seq_str = seq_bytes(row[0])
            out.append(b"data: " + self.encode(row, seq_str) + b'\nid: "' + seq_str + b'"\n\n')
        return out


class DbUpdatesHandler:
    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def db_updates(self, request: web.Request) -> web.StreamResponse:
        allow(request.method, "GET", "HEAD")
        params: dict[str, Any] = {k: v for k, v in request.query.items() if k in OPTIONS}
        if params.setdefault("feed", "normal") not in FEEDS:
            raise bad_request("Supported `feed` types: normal, continuous, longpoll, eventsource")
        changes.since_from_last_event_id(request, params)
        log = self.state.storage.db_updates
        log.flush()  # events of this loop iteration are in the log before it is read
        opts = changes.FeedOptions(log, params)  # type: ignore[arg-type]
        return await changes.serve_changes(request, log, opts, self.state,  # type: ignore[arg-type]
                                           feed=DbUpdatesFeed(log, opts))  # type: ignore[arg-type]
