"""``feed=longpoll``: one request, one JSON answer, then a clean end."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import requests

from .. import _json
from ..errors import CloudSyncError, InvalidResponse
from ._httpfeed import FeedSession, SelectorForm, on_request_sent, open_feed, read_chunks
from ._rows import lines_to_items, rows_to_items
from .base import ChangesRequest, Item, LastSeq, Transport

__all__ = ["LongPollTransport"]

log = logging.getLogger("cloudsync.transports")

_HEAD = b'{"results":['


class LongPollTransport(Transport):
    """Long polling: the server answers once there are changes (or at ``timeout``).

    Yields the answer's changes and then ``LastSeq(last_seq)``, even for an empty answer,
    so filtered feeds advance their checkpoint. ``selector_in``: ``"auto"`` (try the POST
    body, fall back to query parameters once), ``"body"`` (CouchDB 3) or ``"query"``
    (pouchdb-server).

    CouchDB and the embedded server write one row per line
    (``{"results":[\\n{row},\\n{row}\\n],\\n"last_seq":...}``): such an answer is parsed
    line by line while it arrives, and its rows are delivered while the rest is still
    being sent. Any other layout (pouchdb-server writes one line) has to be held and
    parsed whole when complete.

    ``page_size`` (default 10,000; ``None`` for no limit) is sent as ``limit`` until the
    server is seen to write a row per line: a backlog then arrives in pages of that many
    rows, one request each, so the answers held whole stay bounded. Once answers are known
    to stream, the next requests ask for everything: memory no longer depends on the
    answer's length, and every page boundary would stall the feed for a request's round
    trip and the server's first batch.

    After a full page held whole, the next page is asked for (from its ``last_seq``, on
    a helper thread that only opens the request) before this one's changes are built and
    delivered: the server computes the next page meanwhile. The next :meth:`stream` call
    for that ``since`` takes the opened response; any other call discards it.
    """

    name = "longpoll"
    feed = "longpoll"

    def __init__(self, *, selector_in: str = "auto", page_size: int | None = 10_000) -> None:
        super().__init__()
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1 (or None)")
        self._session = FeedSession()
        self._form = SelectorForm(selector_in)
        self.page_size = page_size
        #: The server writes a row per line (learned from the first answer).
        self.streams_rows = False
        #: The last answer had as many rows as its request's limit: more may be waiting.
        self.last_page_full = False
        self._next: _NextPage | None = None

    stream = Transport.batched_stream

    def stream_batches(self, request: ChangesRequest) -> Iterator[list[Item]]:
        self.last_page_full = False
        if not self.streams_rows and self.page_size is not None and (request.limit is None or request.limit > self.page_size):
            request = replace(request, limit=self.page_size)
        following, self._next = self._next, None
        response = None
        if following is not None and following.request == request and not self._closed_since(following.token):
            token = following.token  # its connection's abort is registered under this token
            try:
                response = following.result()
            except CloudSyncError as exc:
                # It was asked for ahead of need: its failure (a kept-alive connection the
                # server had closed, say) costs a fresh request, not an error.
                log.debug("next page asked ahead failed (%s): asking again", exc)
        elif following is not None:
            following.discard()
        if response is None:
            token = self._begin()
            response = open_feed(self, self._session, self._form, token, request, self.feed, _HEADERS)
        self._opened()
        what = f"{self.feed} feed"
        # Heartbeat newlines arrive while the server waits: read incrementally for liveness.
        # Everything read, while the answer may still have to be parsed whole (until a
        # row was delivered line by line).
        chunks: list[bytes] | None = []
        rest = b""
        mode = "start"  # start -> rows -> tail, or whole
        delivered = 0  # rows yielded in line mode
        tail: list[bytes] = []
        for chunk in read_chunks(self, token, response, what):
            if chunks is not None:
                chunks.append(chunk)
            if mode == "whole" or mode == "tail":
                if mode == "tail":
                    tail.append(chunk)
                continue
            if mode == "start":
                # Decide the layout from the first bytes: `{"results":[` then a newline.
                head = (rest + chunk).lstrip()
                after = head[len(_HEAD) :].lstrip(b" \t\r")
                if not head.startswith(_HEAD[: len(head)]) or (after and not after.startswith(b"\n")):
                    mode = "whole"  # e.g. pouchdb-server's one-line answer
                    rest = b""
                    continue
                if not after:
                    rest = head  # not enough yet to tell
                    continue
                mode = "rows"
                chunk, rest = after[1:], b""
            data = rest + chunk if rest else chunk
            cut = data.rfind(b"\n")
            if cut > 0 and b"\n]" not in data and not data.lstrip().startswith(b"]"):
                # Only rows (`row,\nrow,\n...`) up to the last newline: split at the
                # row separators, no per-line stripping.
                part = data[:cut].strip().rstrip(b",")
                pieces = part.split(b",\n") if part else []
                try:
                    items, _ = lines_to_items(pieces, what)
                    parsed = len(items) == len(pieces)
                except InvalidResponse:
                    parsed = False
                if parsed:
                    rest = data[cut + 1 :]
                    delivered += len(pieces)
                    if delivered:
                        chunks = None
                        self.streams_rows = True
                    if items:
                        yield items
                    continue
            lines = data.split(b"\n")
            rest = lines.pop()
            rows: list[bytes] = []
            for index, line in enumerate(lines):
                line = line.strip()
                if not line:
                    continue
                if line.startswith(b"]"):
                    mode = "tail"
                    tail = [line[1:].lstrip(b",")] + [b"\n" + x for x in lines[index + 1 :]] + [b"\n" + rest]
                    rest = b""
                    break
                rows.append(line[:-1] if line.endswith(b",") else line)
            if not rows:
                continue
            try:
                items, _ = lines_to_items(rows, what)
            except InvalidResponse:
                if chunks is None:
                    # Rows were delivered already and the answer was not kept; the next
                    # request (from the last delivered row) gets this row first and
                    # falls back to parsing it whole.
                    self.streams_rows = False
                    raise
                mode = "whole"  # not one row per line after all: parse the answer whole
                continue
            delivered += len(rows)
            if delivered:
                chunks = None
                self.streams_rows = True
            yield items
        if mode == "tail":
            self.last_page_full = request.limit is not None and delivered >= request.limit
            try:
                answer = _json.loads(b"{" + b"".join(tail).strip())
            except _json.JSONDecodeError:
                answer = None
            if isinstance(answer, dict):
                if "last_seq" in answer:
                    yield [LastSeq(answer["last_seq"])]
                return
        if chunks is None:
            raise InvalidResponse(f"{what}: the answer ended inside its results")
        body = b"".join(chunks)
        early = None
        if request.limit is not None and not delivered:
            # Ask for the next page before parsing this one when its end already tells:
            # enough rows (each has one "changes" key; a document's own key only adds to
            # the count, and the parse below corrects that) and the last_seq.
            next_since = _tail_last_seq(body)
            if next_since is not _MISSING and next_since != request.since and body.count(b'"changes":') >= request.limit:
                early = self._next = _NextPage(self, token, replace(request, since=next_since))
        try:
            answer = _json.loads(body)
        except _json.JSONDecodeError as exc:
            raise InvalidResponse(f"{what}: body is not JSON ({len(body)} bytes)") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            raise InvalidResponse(f"{what}: expected {{'results': [...]}}, got {body[:80]!r}")
        results = answer["results"]
        full = request.limit is not None and len(results) >= request.limit and "last_seq" in answer and not delivered
        if early is not None and not (full and early.request.since == answer["last_seq"]):
            self._next = None
            early.discard()  # the end was read wrong after all
            early = None
        if full:
            # More is waiting: have the server work on it while this page is delivered.
            self.last_page_full = True
            if early is None:
                self._next = _NextPage(self, token, replace(request, since=answer["last_seq"]))
        if delivered:
            results = results[delivered:]  # already yielded line by line
        items = rows_to_items(results, what)
        if "last_seq" in answer:
            items.append(LastSeq(answer["last_seq"]))
        if items:
            yield items

    def drop_idle(self) -> None:
        """Close this transport's kept-alive connections (see :meth:`FeedSession.drop_idle`)."""
        self._session.drop_idle()

    def close(self) -> None:
        super().close()  # aborts an opening next page too (its abort is the registered one)
        following, self._next = self._next, None
        if following is not None:
            following.discard()


_HEADERS = {"Accept": "application/json"}
_MISSING = object()


def _tail_last_seq(body: bytes) -> Any:
    """``last_seq`` read from the end of an answer (``..."last_seq":X}``, maybe followed
    by ``"pending":N``) without parsing the rows; ``_MISSING`` for any other end."""
    at = body.rfind(b'"last_seq"')
    if at < 0:
        return _MISSING
    try:
        tail = _json.loads(b"{" + body[at:].strip())
    except _json.JSONDecodeError:
        return _MISSING
    return tail.get("last_seq", _MISSING) if isinstance(tail, dict) else _MISSING


class _NextPage:
    """A long-poll request opened on a helper thread while the page before it is parsed.

    Opening is all the thread does (send, wait for the status line and headers); the
    body is read by the next :meth:`LongPollTransport.stream_batches` call that takes it.
    The constructor returns once the request is written: the reader's next CPU-bound
    work (building this page's changes) holds the GIL, and a request still waiting for
    the GIL to be sent would leave the server idle meanwhile. Its socket's abort is
    registered under the token of the page before it, so ``close()`` reaches it."""

    def __init__(self, transport: LongPollTransport, token: int, request: ChangesRequest) -> None:
        self.request = request
        self.token = token
        self._response: requests.Response | None = None
        self._error: BaseException | None = None
        self._discarded = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        sent = threading.Event()

        def open_next() -> None:
            try:
                with on_request_sent(sent.set):
                    response = open_feed(transport, transport._session, transport._form, token, request, transport.feed, _HEADERS)
            except BaseException as exc:  # handed to the taker
                self._error = exc
            else:
                with self._lock:
                    if self._discarded:
                        response.close()
                    else:
                        self._response = response
            finally:
                sent.set()
                self._done.set()

        threading.Thread(target=open_next, name="cloudsync-next-page", daemon=True).start()
        sent.wait(request.connect_timeout)  # bounded: the thread sets it on any outcome

    def result(self) -> requests.Response:
        """The opened response, or the error opening it raised. Waits for the opening,
        which open_feed bounds by the request's connect and stall timeouts (and close()
        cuts short)."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._response is not None
        return self._response

    def discard(self) -> None:
        with self._lock:
            self._discarded = True
            response, self._response = self._response, None
        if response is not None:
            response.close()
