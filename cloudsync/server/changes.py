"""`_changes`: option parsing and the five feeds (normal, longpoll, continuous, eventsource, websocket).

Every feed is a pull loop over `Database.changes()`: read a batch after `since`,
frame it, write it as one chunk, and when caught up wait for the next commit (nothing
polls). A waiting streamed feed is *pushed to*: the commit's rows are framed once for all
feeds with the same options and written straight to each connection, without waking the
feeds' tasks (see `_Stream`). A feed only ever holds the batch it is writing, so a
slow reader costs memory bounded by the socket buffers; a reader that accepts nothing for
`send_timeout` seconds is disconnected and resumes from its last seq when it reconnects.
Writers never wait on readers: a commit answers its writers before it notifies feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import WSMsgType, web

from .._json import JSONDecodeError, dumps, loads
from . import limits, seq
from .errors import CouchError, bad_request
from .limits import parse_json
from .matching import compile_selector
from .params import bool_param, int_param, json_param
from .seq import decode_seq, seq_bytes
from .storage import Database, Row

__all__ = ["Feed", "FeedOptions", "SendWatchdog", "reset_connection", "serve_changes", "serve_websocket",
           "since_from_last_event_id"]

FEEDS = ("normal", "longpoll", "continuous", "eventsource", "websocket")
DEFAULT_TIMEOUT_MS = 60_000
MAX_HEARTBEAT_MS = 60_000
MIN_HEARTBEAT_MS = 10
BATCH = 2_000
WS_BATCH = 500
"""Rows per websocket message while catching up."""
PUSH_HIGH_WATER = 64 * 1024
"""Commits are pushed to a waiting feed while its connection holds at most this many
bytes not yet taken by the client (see _Stream)."""
BATCH_BYTES = 1024 * 1024
"""A batch stops after the row whose body brings it to this size: what a feed holds (and
writes as one chunk) is bounded in bytes, not only in rows."""
PUSH_MAX_BYTES = 256 * 1024
"""A commit framed larger than this is not pushed (written whole to every subscriber's
transport) but read by each feed's task in bounded batches."""


JSON_DEPTH = 64
"""JSON nesting accepted in `selector`/`doc_ids` given as strings in a WebSocket
options message (HTTP query parameters are parsed by the app with the server's limit)."""


class FeedOptions:
    """Validated `_changes` options, from query parameters, a POST body or a websocket message."""

    def __init__(self, db: Database, params: Mapping[str, Any], body: Mapping[str, Any] | None = None,
                 *, implicit_filters: bool = False) -> None:
        body = body or {}
        self.selector = False
        """Whether `accept` evaluates a Mango selector (then it runs on a query thread)."""
        self.feed = params.get("feed", "normal")
        if self.feed not in FEEDS:
            raise bad_request(f"Unknown feed type: {self.feed}")
        since = params.get("since", 0)
        self.since = db.update_seq if since == "now" else decode_seq(since)
        self.limit = int_param(params, "limit")
        self.include_docs = bool_param(params, "include_docs")
        self.descending = bool_param(params, "descending")
        self.style = params.get("style", "main_only")
        if self.style not in ("main_only", "all_docs"):
            raise bad_request("style must be main_only or all_docs")
        self.conflicts = bool_param(params, "conflicts")
        self.per_row = self.style == "all_docs" or (self.conflicts and self.include_docs)
        """Rows that need a lookup each (their other leaves), not the one-format fast path."""
        heartbeat = params.get("heartbeat")
        if heartbeat in (None, False, "false"):
            self.heartbeat: float | None = None
        elif heartbeat in (True, "true"):
            self.heartbeat = MAX_HEARTBEAT_MS / 1000
        else:
            beat = int_param(params, "heartbeat")
            assert beat is not None
            self.heartbeat = min(max(beat, MIN_HEARTBEAT_MS), MAX_HEARTBEAT_MS) / 1000
        timeout = int_param(params, "timeout")
        # CouchDB: a heartbeat keeps a feed open indefinitely; without one it ends after
        # 60 s idle. An explicit timeout is always honoured (CouchDB lets heartbeat win).
        if timeout is not None:
            self.timeout: float | None = timeout / 1000
        else:
            self.timeout = None if self.heartbeat else DEFAULT_TIMEOUT_MS / 1000
        self.accept = self._filter(params, body, implicit_filters)

    def _filter(self, params: Mapping[str, Any], body: Mapping[str, Any],
                implicit: bool) -> Callable[[Row], bool] | None:
        name = params.get("filter")
        doc_ids = body.get("doc_ids", params.get("doc_ids"))
        selector = body.get("selector", params.get("selector"))
        if name is None and implicit:
            name = "_doc_ids" if doc_ids is not None else "_selector" if selector is not None else None
        if name is None:
            return None
        if name == "_doc_ids":
            ids = json_param(body if "doc_ids" in body else params, "doc_ids", depth=JSON_DEPTH)
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise bad_request("filter=_doc_ids requires doc_ids: an array of strings")
            wanted = frozenset(ids)
            return lambda row: row[1] in wanted
        if name == "_selector":
            sel = json_param(body if "selector" in body else params, "selector", depth=JSON_DEPTH)
            if not isinstance(sel, dict):
                raise bad_request("Selector must be specified in POST payload")
            match = compile_selector(sel)
            self.selector = True
            return lambda row: match(loads(row[4]))
        if name == "_design":
            return lambda row: row[1].startswith("_design/")
        if name == "_view":
            raise CouchError(404, "not_found", "Views are not supported by the cloudsync server")
        raise CouchError(404, "not_found", "Filter functions are not supported by the cloudsync server")


class Feed:
    """Reads and frames rows for one feed connection."""

    def __init__(self, db: Database, opts: FeedOptions) -> None:
        self.db = db
        self.opts = opts
        self.since = opts.since
        self.remaining = opts.limit
        # Bodies are read from SQLite only when sent or filtered on.
        self.bodies = opts.include_docs or opts.accept is not None
        self.offload: Callable[[Callable[[], list[Row]]], Awaitable[list[Row]]] | None = None
        """Runs a selector filter off the event loop (set by _Stream from the server state)."""

    async def next_rows(self) -> list[Row]:
        """The next matching rows after `self.since` (advancing it); [] when caught up.
        Rows are read on the loop (the ring is the loop's); a selector filter runs on a
        query thread within the query time budget."""
        db, accept = self.db, self.opts.accept
        while True:
            want = BATCH if self.remaining is None else min(BATCH, self.remaining)
            if want == 0:
                return []
            raw = db.changes(self.since, BATCH, bodies=self.bodies,
                             max_bytes=BATCH_BYTES if self.bodies else None)
            if not raw:
                return []
            if accept is None:
                rows = raw
            elif self.opts.selector and self.offload is not None:
                rows = await self.offload(functools.partial(_filter_rows, accept, raw))
            else:
                rows = [r for r in raw if accept(r)]
            if len(rows) > want:
                rows = rows[:want]
                self.since = rows[-1][0]
            else:
                self.since = raw[-1][0]
            if self.remaining is not None:
                self.remaining -= len(rows)
            if rows:
                return rows

    @property
    def done(self) -> bool:
        return self.remaining == 0 or self.db.closed

    def encode(self, row: Row, seq_str: bytes | None = None) -> bytes:
        """One row as CouchDB's JSON (`seq_str`: its encoded seq, if already known)."""
        if not self.opts.per_row and seq_str is None:
            return self.encode_rows([row])[0]
        return self._encode_per_row(row, seq_bytes(row[0]) if seq_str is None else seq_str, self._losing([row]))

    def _losing(self, rows: list[Row]) -> dict[str, tuple[list[str], list[str]]]:
        """The losing leaves of the rows' documents, for the rows that list them (one lookup a page)."""
        return self.db.losing_leaves([row[1] for row in rows]) if self.opts.per_row else {}

    def _encode_per_row(self, row: Row, seq_str: bytes, losing: dict[str, tuple[list[str], list[str]]]) -> bytes:
        n, doc_id, rev, deleted, body = row
        live, dead = losing.get(doc_id, ((), ()))
        if self.opts.style == "all_docs":
            changes = b",".join(b'{"rev":' + dumps(r) + b"}" for r in (rev, *live, *dead))
        else:
            changes = b'{"rev":' + dumps(rev) + b"}"
        out = b'{"seq":"' + seq_str + b'","id":' + dumps(doc_id) + b',"changes":[' + changes + b"]"
        if deleted:
            out += b',"deleted":true'
        if self.opts.include_docs:
            conflicts = live if self.opts.conflicts and not deleted else ()
            out += b',"doc":' + (body[:-1] + b',"_conflicts":' + dumps(conflicts) + b"}" if conflicts else body)
        return out + b"}"

    def encode_rows(self, rows: list[Row], eventsource: bool = False) -> list[bytes]:
        """Each row as CouchDB's JSON (`eventsource`: each framed as one event).

        The hot path of every feed: one bytes formatting per row (the seq's suffix from
        two lookup tables, the id and rev through orjson, the body as stored), no dict, no
        dumps of the row. Row seqs start at 1 (the formats have no case for seq 0)."""
        if self.opts.per_row:
            losing = self._losing(rows)
            if eventsource:
                out = []
                for row in rows:
                    seq_str = seq_bytes(row[0])
                    out.append(b"data: " + self._encode_per_row(row, seq_str, losing) + b'\nid: "' + seq_str + b'"\n\n')
                return out
            return [self._encode_per_row(row, seq_bytes(row[0]), losing) for row in rows]
        low, high, mask, bits, quote = seq.LOW, seq.HIGH, seq.LOW_MASK, seq.LOW_BITS, dumps
        docs = self.opts.include_docs
        if eventsource:  # the seq twice: in the row and as the event id
            if docs:
                return [_SSE_DOC % (n, low[n & mask], high[n >> bits], quote(doc_id), quote(rev),
                                    _DELETED[deleted], body, n, low[n & mask], high[n >> bits])
                        for n, doc_id, rev, deleted, body in rows]
            return [_SSE_ROW % (n, low[n & mask], high[n >> bits], quote(doc_id), quote(rev),
                                _DELETED[deleted], n, low[n & mask], high[n >> bits])
                    for n, doc_id, rev, deleted, body in rows]
        if docs:
            return [_JSON_DOC % (n, low[n & mask], high[n >> bits], quote(doc_id), quote(rev),
                                 _DELETED[deleted], body)
                    for n, doc_id, rev, deleted, body in rows]
        return [_JSON_ROW % (n, low[n & mask], high[n >> bits], quote(doc_id), quote(rev), _DELETED[deleted])
                for n, doc_id, rev, deleted, body in rows]

    def messages(self, rows: list[Row]) -> list[bytes]:
        """`rows` framed for a streamed feed: one eventsource or continuous chunk, or
        websocket messages of up to `WS_BATCH` rows each."""
        fmt = self.opts.feed
        if fmt == "websocket":
            encoded = self.encode_rows(rows)
            # A row per line (as CouchDB writes long-poll answers): clients can parse row by row.
            return [b"[" + b",\n".join(encoded[i:i + WS_BATCH]) + b"]" for i in range(0, len(encoded), WS_BATCH)]
        if fmt == "eventsource":
            return [b"".join(self.encode_rows(rows, eventsource=True))]
        encoded = self.encode_rows(rows)
        encoded.append(b"")
        return [b"\n".join(encoded)]

    def tail(self) -> bytes:
        return b'"last_seq":"' + seq_bytes(self.since) + b'","pending":' + str(
            self.db.pending(self.since)).encode()


def _filter_rows(accept: Callable[[Row], bool], rows: list[Row]) -> list[Row]:
    out = []
    for i, row in enumerate(rows):
        if not i & 63:
            limits.check_budget()
        if accept(row):
            out.append(row)
    return out


_DELETED = (b"", b',"deleted":true')
# A row's JSON with its seq formatted in place (see seq.TEMPLATE): one bytes formatting per row.
_JSON_ROW = b'{"seq":"' + seq.TEMPLATE + b'","id":%b,"changes":[{"rev":%b}]%b}'
_JSON_DOC = b'{"seq":"' + seq.TEMPLATE + b'","id":%b,"changes":[{"rev":%b}]%b,"doc":%b}'
# The event id is the seq JSON-encoded, as CouchDB writes it (a quoted string).
_SSE_ROW = b"data: " + _JSON_ROW + b'\nid: "' + seq.TEMPLATE + b'"\n\n'
_SSE_DOC = b"data: " + _JSON_DOC + b'\nid: "' + seq.TEMPLATE + b'"\n\n'


class SendWatchdog:
    """Resets feed connections whose pending write has not completed for `timeout` seconds.

    One periodic check for all feeds, rather than a timer around every write: with
    a thousand subscribers, per-write timers cost more than the writes.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._writing: dict[int, tuple[float, web.Request]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            limit = loop.time() - self.timeout
            for key, (started, request) in list(self._writing.items()):
                if started < limit:
                    del self._writing[key]
                    reset_connection(request)

    async def send(self, request: web.Request, write: Awaitable[None]) -> None:
        """Await `write` (a feed's write of one chunk) under the watchdog."""
        key = id(write)
        self._writing[key] = (asyncio.get_running_loop().time(), request)
        try:
            await write
        finally:
            self._writing.pop(key, None)
        if request.transport is None or request.transport.is_closing():
            raise ConnectionResetError("feed connection closed")


def _http_chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk, as aiohttp frames each write of a chunked response."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _ws_text(data: bytes) -> bytes:
    """`data` as one unfragmented, unmasked WebSocket text frame (server to client)."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 1 << 16:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Stream:
    """One feed connection: writes chunks, and waits for commits, heartbeats, timeout or shutdown.

    While it waits, the stream listens to its database (`Database.listen()`): after a
    commit, `notify()` writes the new rows straight to the connection's transport,
    framed as the feed's own task would frame them, and the task sleeps on. Feeds with the
    same format and options share one encoded chunk per commit. So a commit costs each
    caught-up subscriber one `transport.write` (no task wake-up, no per-feed encoding),
    which is what makes fan-out to a thousand subscribers cheap. The task is woken instead
    (and the pull path, with its send watchdog, takes over) when the client has not taken
    the bytes already sent (more than `PUSH_HIGH_WATER` unsent), when the commit is
    larger than one batch, for longpoll (it answers and ends), and with `limit`,
    `style=all_docs` or `conflicts` with docs.
    """

    def __init__(self, request: web.Request, resp: web.StreamResponse, feed: Feed, state: Any) -> None:
        self.request = request
        self.resp = resp
        self.feed = feed
        self.state = state
        loop = asyncio.get_running_loop()
        self.loop = loop
        opts = feed.opts
        self.idle_deadline = None if opts.timeout is None else loop.time() + opts.timeout
        self.last_sent = loop.time()
        self.websocket = isinstance(resp, web.WebSocketResponse)
        self.interrupted = False
        self._wakeup: asyncio.Future[None] | None = None
        framing = {"eventsource": _http_chunk, "continuous": _http_chunk, "websocket": _ws_text}
        self._frame = framing.get(opts.feed) if opts.limit is None and not opts.per_row else None
        feed.offload = getattr(state, "off_loop", None)
        if opts.selector:  # never evaluated on the loop: the task filters on a query thread
            self._frame = None
        # Feeds whose chunk depends only on these share it within one notification round.
        self._share = (opts.feed, opts.include_docs) if opts.accept is None else None

    async def prepare(self) -> None:
        """Send the response headers (before the first data or the first wait): errors
        found before then are still plain HTTP error answers."""
        if not self.resp.prepared:
            await self.resp.prepare(self.request)

    async def write(self, data: bytes) -> None:
        if not self.resp.prepared:
            await self.resp.prepare(self.request)
        if self.websocket:
            assert isinstance(self.resp, web.WebSocketResponse)
            write = self.resp.send_frame(data, WSMsgType.TEXT)
        else:
            write = self.resp.write(data)
        await self.state.watchdog.send(self.request, write)
        self.last_sent = self.loop.time()

    def sent_rows(self) -> None:
        if self.feed.opts.timeout is not None:
            self.idle_deadline = self.loop.time() + self.feed.opts.timeout

    async def wait(self) -> str:
        """Wait for a commit: returns `"change"`, `"heartbeat"`, `"timeout"` or `"closing"`.

        A heartbeat is due `heartbeat` seconds after the last write (pushed or not)."""
        feed, db, loop = self.feed, self.feed.db, self.loop
        heartbeat = feed.opts.heartbeat
        while True:
            if self.state.closing or db.closed or self.interrupted:
                return "closing"
            if feed.since < db.update_seq:
                return "change"
            now = loop.time()
            due = None if heartbeat is None else self.last_sent + heartbeat
            idle = self.idle_deadline
            if idle is not None and (due is None or idle < due):
                due = idle
            if due is not None and due <= now:
                return "timeout" if idle is not None and now >= idle else "heartbeat"
            fut = self._wakeup = loop.create_future()
            timer = None if due is None else loop.call_at(due, _resolve, fut)
            db.listen(self)
            try:
                await fut
            finally:
                self._wakeup = None
                db.unlisten(self)
                if timer is not None:
                    timer.cancel()

    def wake(self) -> None:
        """Wake the waiting task (it then looks at the database and the connection again)."""
        if self._wakeup is not None:
            _resolve(self._wakeup)

    def interrupt(self) -> None:
        """End the feed: the client went away."""
        self.interrupted = True
        self.wake()

    def notify(self, shared: dict[Any, Any]) -> bool:
        """After a commit, while waiting: push the new rows and keep listening (true), or
        wake the task to deal with them (false). See the class docstring."""
        fut = self._wakeup
        if fut is None or fut.done():
            return False
        feed = self.feed
        since = feed.since
        if since >= feed.db.update_seq:
            return True
        frame = self._frame
        transport = self.request.transport
        if (frame is None or transport is None or transport.is_closing()
                or transport.get_write_buffer_size() > PUSH_HIGH_WATER
                or (self.websocket and self.resp.closed)):  # type: ignore[attr-defined]
            fut.set_result(None)
            return False
        try:
            key = None if self._share is None else (since, self._share)
            hit = shared.get(key) if key is not None else None
            if hit is None:
                rows = shared.get(since)
                if rows is None:
                    rows = shared[since] = feed.db.changes(since, BATCH)
                if not rows or len(rows) >= BATCH:
                    fut.set_result(None)
                    return False
                last = rows[-1][0]
                accept = feed.opts.accept
                if accept is not None:
                    rows = [r for r in rows if accept(r)]
                hit = (b"".join(map(frame, feed.messages(rows))) if rows else b"", last)
                if key is not None:
                    shared[key] = hit
        except Exception:  # e.g. a selector failing on a document: the task raises it properly
            fut.set_result(None)
            return False
        wire, last_seq = hit
        if len(wire) > PUSH_MAX_BYTES:  # too big to write whole: the task sends it in batches
            fut.set_result(None)
            return False
        feed.since = last_seq
        if wire:
            transport.write(wire)
            self.last_sent = self.loop.time()
            self.sent_rows()
        return True


def since_from_last_event_id(request: web.Request, params: dict[str, Any]) -> None:
    """An eventsource feed resumes from its `Last-Event-ID` header, which wins over `since`.
    CouchDB's event id is the seq JSON-encoded (quoted); an unquoted one is taken too, and
    one that is not a JSON string is taken as it is, as CouchDB takes the header, so a bad
    one is answered as a malformed `since`."""
    if params.get("feed") == "eventsource" and "Last-Event-ID" in request.headers:
        last = request.headers["Last-Event-ID"]
        params["since"] = last
        if last.startswith('"'):
            with contextlib.suppress(CouchError):
                params["since"] = json_param({"since": last}, "since", depth=1)


async def serve_changes(request: web.Request, db: Database, opts: FeedOptions, state: Any,
                        feed: Feed | None = None) -> web.StreamResponse:
    """Answer a non-websocket `_changes` request with the requested feed (`feed`: one
    that reads and frames rows of another kind, such as `_db_updates` events)."""
    if feed is None:
        feed = Feed(db, opts)
    eventsource = opts.feed == "eventsource"
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream" if eventsource else "application/json",
        "Cache-Control": "no-cache",
    })
    resp.enable_chunked_encoding()
    stream = _Stream(request, resp, feed, state)
    try:
        if opts.feed in ("normal", "longpoll"):
            await _results_feed(stream, longpoll=opts.feed == "longpoll")
        else:
            await stream.prepare()
            await _line_feed(stream, eventsource)
    except (ConnectionError, TimeoutError):
        # Gone, or not reading for send_timeout: drop it; it resumes from its last seq.
        reset_connection(request)
    except CouchError:
        if not resp.prepared:
            raise  # still a plain error answer
        # Mid-stream (e.g. a selector batch past the query timeout): cut it, as CouchDB
        # does; the client sees a truncated chunked body and resumes from its last seq.
        reset_connection(request)
    return resp


def reset_connection(request: web.Request) -> None:
    """Abort the connection with a RST, discarding what the kernel still holds for it."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _descending_feed(stream: _Stream) -> None:
    """`descending=true` (normal feed): newest first, read in bounded batches."""
    feed = stream.feed
    db, accept = feed.db, feed.opts.accept
    remaining = feed.opts.limit
    before = None
    last = None
    head = b'{"results":[\n'
    while remaining is None or remaining > 0:
        want = BATCH if remaining is None else min(BATCH, remaining)
        raw = db.changes_before(feed.since, before, want, bodies=feed.bodies,
                                max_bytes=BATCH_BYTES if feed.bodies else None)
        if not raw:
            break
        before = raw[-1][0]
        if accept is None:
            rows = raw
        elif feed.opts.selector and feed.offload is not None:
            rows = await feed.offload(functools.partial(_filter_rows, accept, raw))
        else:
            rows = [r for r in raw if accept(r)]
        if not rows:
            continue
        if remaining is not None:
            rows = rows[:remaining]
            remaining -= len(rows)
        last = rows[-1][0]  # last_seq: the last row sent (the oldest), as before
        await stream.write(head + b",\n".join(feed.encode_rows(rows)))
        head = b",\n"
    feed.since = db.update_seq if last is None else last
    await stream.write((b'{"results":[\n' if last is None else b"") + b"\n],\n" + feed.tail() + b"}\n")


async def _results_feed(stream: _Stream, *, longpoll: bool) -> None:
    feed = stream.feed
    if feed.opts.descending:
        await _descending_feed(stream)
        return
    head = b'{"results":[\n'  # written with the first rows, or before waiting
    first = True
    while True:
        rows = await feed.next_rows()
        if rows:
            chunk = b",\n".join(feed.encode_rows(rows))
            await stream.write(head + chunk if first else b",\n" + chunk)
            head = b""
            first = False
            continue
        if not longpoll or not first or feed.done:
            break
        if head:
            await stream.write(head)
            head = b""
        event = await stream.wait()
        if event == "heartbeat":
            await stream.write(b"\n")
        elif event != "change":
            break
    await stream.write(head + b"\n],\n" + feed.tail() + b"}\n")


async def _line_feed(stream: _Stream, eventsource: bool) -> None:
    feed = stream.feed
    while True:
        rows = await feed.next_rows()
        if rows:
            for message in feed.messages(rows):
                await stream.write(message)
            stream.sent_rows()
            continue
        if feed.done:
            break
        event = await stream.wait()
        if event == "heartbeat":
            await stream.write(b"event: heartbeat\ndata:\n\n" if eventsource else b"\n")
        elif event == "change":
            continue
        else:
            break
    if not eventsource and not stream.state.closing:
        await stream.write(b"{" + feed.tail() + b"}\n")


async def serve_websocket(request: web.Request, db: Database, state: Any) -> web.WebSocketResponse:
    """The Sync Gateway style websocket feed: one options message in, arrays of rows out."""
    ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    request["ws"] = ws  # a failure from here on is answered with a close code (see app.py)
    params: dict[str, Any] = dict(request.query)
    try:
        # The options message wins over query parameters; a client that sends none
        # gets a feed from its query parameters after a short grace period.
        msg = await ws.receive(timeout=state.ws_options_grace)
        if msg.type == WSMsgType.TEXT:
            depth = getattr(getattr(state, "config", None), "max_json_depth", JSON_DEPTH)
            message = parse_json(msg.data, depth, "options message") if msg.data.strip() else {}
            if not isinstance(message, dict):
                raise bad_request("The options message must be a JSON object")
            params.update({k: v for k, v in message.items() if v is not None})
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return ws
    except asyncio.TimeoutError:
        pass
    except JSONDecodeError:
        await ws.close(code=1003, message=_close_reason("bad_request", "options message is not JSON"))
        return ws
    except CouchError as exc:
        await ws.close(code=1008, message=_close_reason(exc.error, exc.reason))
        return ws
    try:
        params["feed"] = "websocket"
        opts = FeedOptions(db, params, implicit_filters=True)
    except CouchError as exc:
        await ws.close(code=1008, message=_close_reason(exc.error, exc.reason))
        return ws
    stream = _Stream(request, ws, Feed(db, opts), state)
    reader = asyncio.ensure_future(_drain_incoming(ws, stream))
    try:
        await _ws_feed(ws, stream)
    except (ConnectionError, TimeoutError):
        reset_connection(request)
    finally:
        reader.cancel()
    return ws


def _close_reason(error: str, reason: str) -> bytes:
    """A close frame's reason, `"<error>: <reason>"` as CouchDB names the HTTP error
    (`not_found`, `bad_request`...), so a client tells a 404 from a 400 as it would
    from an HTTP feed; cut to the 123 bytes a close frame holds, on a character boundary."""
    return f"{error}: {reason}".encode()[:123].decode("utf-8", "ignore").encode()


async def _drain_incoming(ws: web.WebSocketResponse, stream: _Stream) -> None:
    # Reading is what notices the client's close frame; end the feed when it does.
    async for _ in ws:
        pass
    stream.interrupt()


async def _ws_feed(ws: web.WebSocketResponse, stream: _Stream) -> None:
    feed, state = stream.feed, stream.state
    caught_up = False
    while not ws.closed:
        rows = await feed.next_rows()
        if rows:
            for message in feed.messages(rows):
                await stream.write(message)
            stream.sent_rows()
            continue
        if feed.done:
            break
        if not caught_up:
            caught_up = True
            await stream.write(b"[]")
        event = await stream.wait()
        if ws.closed:
            return
        if event == "heartbeat":
            await stream.write(b"")  # Sync Gateway's heartbeat: an empty message
        elif event != "change":
            break
    if not ws.closed:
        await ws.close(code=1001 if state.closing else 1000)
