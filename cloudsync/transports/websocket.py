"""``feed=websocket`` with Sync Gateway's protocol, over websocket-client."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import websocket  # websocket-client

from .. import _json
from ..errors import InvalidResponse, NetworkError, RequestTimeout, StreamError, error_for_status
from ._rows import lines_to_items, row_item, rows_to_items
from .base import ChangesRequest, Item, LastSeq, Transport

__all__ = ["WebSocketTransport"]


class WebSocketTransport(Transport):
    """``GET /db/_changes?feed=websocket`` upgraded to a WebSocket (Sync Gateway protocol).

    After the handshake the client sends ONE JSON options message (``since``,
    ``include_docs``, ``heartbeat``, ``filter``, ``doc_ids``/``selector``, filter
    parameters) -- on every connection, so reconnects keep the filters. The server sends
    JSON arrays of rows in text or binary frames, ``[]`` once caught up, ``""`` as a
    heartbeat; a normal close (1000/1001) or an object ``{"last_seq": S}`` ends it cleanly.

    ``min_heartbeat`` is 25 s by default, as Sync Gateway raises shorter heartbeats to 25 s;
    pass ``min_heartbeat=0`` for servers that honour short ones (our embedded server).
    """

    name = "websocket"
    min_heartbeat = 25.0

    def __init__(self, *, min_heartbeat: float | None = None, **connect_options: Any) -> None:
        super().__init__()
        if min_heartbeat is not None:
            self.min_heartbeat = min_heartbeat
        self._connect_options = connect_options

    def url(self) -> str:
        base = self.http.base_url
        scheme, rest = base.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + self.database.path + "/_changes?" + urlencode({"feed": "websocket"})

    @staticmethod
    def options_message(request: ChangesRequest) -> dict[str, Any]:
        """The JSON options message sent after every handshake."""
        options: dict[str, Any] = {}
        if request.since is not None:
            options["since"] = request.since
        if request.include_docs:
            options["include_docs"] = True
        if request.heartbeat:
            options["heartbeat"] = int(request.heartbeat * 1000)
        if request.timeout is not None:
            options["timeout"] = int(request.timeout * 1000)
        if request.limit is not None:
            options["limit"] = request.limit
        if request.selector is not None:
            options["filter"] = "_selector"
            options["selector"] = request.selector
        elif request.doc_ids is not None:
            options["filter"] = "_doc_ids"
            options["doc_ids"] = list(request.doc_ids)
        elif request.filter is not None:
            options["filter"] = request.filter
        for key, value in request.query_params.items():
            options.setdefault(key, value)
        return options

    stream = Transport.batched_stream

    def stream_batches(self, request: ChangesRequest) -> Iterator[list[Item]]:
        token = self._begin()
        what = "websocket feed"
        http = self.http
        headers = {"Accept-Encoding": "identity"}
        if http.auth is not None:
            headers.update(http.auth.headers(http))
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)

        def abort() -> None:
            sock = ws.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        if not self._set_abort(token, abort):
            raise NetworkError(f"{what}: closed before connecting", sent=False)
        try:
            try:
                ws.connect(
                    self.url(),
                    header=[f"{k}: {v}" for k, v in headers.items()],
                    timeout=request.connect_timeout,
                    **self._connect_options,
                )
            except websocket.WebSocketBadStatusException as exc:
                raise error_for_status(exc.status_code)(exc.status_code, reason=str(exc), method="GET", url=self.url()) from exc
            except Exception as exc:
                raise _translate(exc, what, sent=False) from exc
            if self._closed_since(token):
                raise NetworkError(f"{what}: closed while connecting")
            ws.settimeout(request.stall_timeout)
            try:
                ws.send(_json.dumps(self.options_message(request)).decode())
            except Exception as exc:
                raise _translate(exc, what) from exc
            self._opened()
            while True:
                try:
                    opcode, data = ws.recv_data(control_frame=True)
                except websocket.WebSocketConnectionClosedException as exc:
                    raise StreamError(f"{what}: connection closed without a close frame") from exc
                except Exception as exc:
                    raise _translate(exc, what) from exc
                self._received(len(data) + 2)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    if code in (1000, 1001, 1005):
                        return
                    raise StreamError(f"{what}: closed with code {code}: {data[2:].decode('utf-8', 'replace')}")
                if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                    continue
                if not data.strip() or data.strip() in (b'""', b"[]"):
                    continue  # heartbeat, or "caught up"
                items = _row_per_line(data, what)
                if items is not None:
                    if items:
                        yield items
                    continue
                try:
                    message = _json.loads(data)
                except _json.JSONDecodeError as exc:
                    raise InvalidResponse(f"{what}: message is not JSON: {data[:80]!r}") from exc
                if message.__class__ is list:
                    items = rows_to_items(message, what)
                    if items:
                        yield items
                    continue
                item = row_item(message, what)
                if item is not None:
                    yield [item]
                    if isinstance(item, LastSeq):
                        return
        finally:
            self._end(token)
            with contextlib.suppress(Exception):
                ws.shutdown()  # closes the socket; a clean close handshake is not worth waiting for


def _row_per_line(data: bytes, what: str) -> list[Item] | None:
    """The items of an array message written a row per line (``[row,\\nrow,\\n...]``,
    as the embedded server sends), parsed row by row; ``None`` for any other message,
    which is parsed whole.

    Row by row, each row's dicts are freed as soon as its change is built; a whole
    array keeps them all alive and the garbage collector promotes them. A split at
    ``,\\n`` can only make every piece valid JSON when the line ends are between the
    array's own elements (a raw newline never occurs inside a JSON string), so anything
    else fails to parse and falls back to the whole message."""
    if b"\n" not in data:
        return None
    body = data.strip()
    if body[:1] != b"[" or body[-1:] != b"]":
        return None
    pieces = body[1:-1].split(b",\n")
    try:
        items, ended = lines_to_items(pieces, what)
    except InvalidResponse:
        return None
    if ended and len(items) < len(pieces):
        return None  # a last_seq object amid the rows: parsed whole, it does not end the feed
    return items


def _translate(exc: BaseException, what: str, sent: bool = True) -> Exception:
    if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError)):
        return RequestTimeout(f"{what}: no data within the stall window ({exc})", sent=sent)
    if isinstance(exc, websocket.WebSocketProtocolException):
        return StreamError(f"{what}: protocol error: {exc}")
    if isinstance(exc, (ConnectionRefusedError,)):
        return NetworkError(f"{what}: {exc}", sent=False)
    return NetworkError(f"{what}: {type(exc).__name__}: {exc}", sent=sent)
