"""`feed=websocket` with Sync Gateway's protocol, over websocket-client."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import websocket  # websocket-client

from .. import _json
from ..errors import (
    CloudSyncError,
    InvalidResponse,
    NetworkError,
    RequestTimeout,
    StreamError,
    TLSError,
    Unauthorized,
    error_for_status,
    is_tls_failure,
)
from ..wire.websocket import WebSocketParser
from .base import ChangesRequest, FeedConnection, Item, Transport

__all__ = ["WebSocketTransport"]

DEFAULT_PING_INTERVAL = 5.0
"""Seconds of silence after which a ping is sent (the pong proves the connection alive)."""


class _Socket(websocket.WebSocket):
    """websocket-client's socket, reporting every byte it reads (partial frames and pongs
    included): liveness counts bytes, not whole messages."""

    def __init__(self, on_bytes: Callable[[int], None], **options: Any) -> None:
        self._on_bytes = on_bytes
        super().__init__(**options)

    def _recv(self, bufsize: int) -> bytes:
        data = super()._recv(bufsize)
        if data:
            self._on_bytes(len(data))
        return data


class WebSocketTransport(Transport):
    """`GET /db/_changes?feed=websocket` upgraded to a WebSocket (Sync Gateway protocol).

    After the handshake the client sends ONE JSON options message (`since`,
    `include_docs`, `heartbeat`, `filter`, `doc_ids`/`selector`, filter
    parameters) -- on every connection, so reconnects keep the filters. The server sends
    JSON arrays of rows in text or binary frames, `[]` once caught up, `""` as a
    heartbeat; a normal close (1000/1001) or an object `{"last_seq": S}` ends it cleanly.

    Errors read like the HTTP feeds': a refused handshake raises its status's
    [HTTPError][cloudsync.HTTPError] (`404 not_found: Database does not exist. (GET url)`);
    a 401 renews a cookie or token session once. A close by the server with a policy code
    raises the error its HTTP status would: 1008/1003/1007 (and 4400-4599, `4000 +
    status`) are `BadRequest`, `NotFound`... by the `error:` prefix of the close
    reason (`"not_found: ..."`), not retried; 1011/1012/1013 are a retryable
    `ServerError`. Redirects are never followed (credentials would go along): a 3xx
    handshake raises a retryable `InvalidResponse`. TLS verification follows the
    client's `verify`.

    Args:
        min_heartbeat: The shortest heartbeat the server keeps, in seconds; `None` for
            25 s, as Sync Gateway raises shorter heartbeats to 25 s. Pass `0` for
            servers that honour short ones (the embedded server).
        ping_interval: After this many seconds (5 by default) without a byte from the
            server a ping frame is sent; the pong counts as data, so a dead connection is noticed
            within the stall window whatever heartbeat the server keeps
            ([`effective_heartbeat()`][cloudsync.WebSocketTransport.effective_heartbeat]
            is the ping interval when it is shorter). `None` turns pings off.
        **connect_options: Passed to `websocket.WebSocket.connect` (`sslopt`,
            `http_proxy_host`...); `redirect_limit` is ignored, redirects are never
            followed.

    Raises:
        ValueError: `ping_interval` is not positive.
    """

    name = "websocket"
    min_heartbeat = 25.0

    def __init__(
        self,
        *,
        min_heartbeat: float | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        **connect_options: Any,
    ) -> None:
        super().__init__()
        if min_heartbeat is not None:
            self.min_heartbeat = min_heartbeat
        if ping_interval is not None and ping_interval <= 0:
            raise ValueError("ping_interval must be positive (or None to disable pings)")
        self.ping_interval = ping_interval
        connect_options.pop("redirect_limit", None)  # never followed: see the class docstring
        self._connect_options = connect_options
        self._ssl_contexts: dict[Any, ssl.SSLContext] = {}
        self._last_rx = 0.0
        self._renewed_on_close = False

    def effective_heartbeat(self, requested: float) -> float:
        """The server's heartbeat, or the ping interval when pings come sooner: the
        longest silence a live connection shows (the subscription's stall window).

        Args:
            requested: The heartbeat asked of the server, in seconds.

        Returns:
            Seconds.
        """
        server = super().effective_heartbeat(requested)
        return server if self.ping_interval is None else min(server, self.ping_interval)

    @staticmethod
    def url(connection: FeedConnection) -> str:
        """The WebSocket URL of a connection's feed.

        Args:
            connection: The connection, whose `url` is the feed's HTTP URL.

        Returns:
            `ws(s)://host/db/_changes?feed=websocket`.
        """
        return _ws(connection.url) + "?" + urlencode({"feed": "websocket"})

    @staticmethod
    def options_message(request: ChangesRequest) -> dict[str, Any]:
        """The JSON options message sent after every handshake.

        Args:
            request: What the connection asks for.

        Returns:
            The message, before JSON encoding.
        """
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

    # -- connection handling -------------------------------------------------------------
    def _alive(self, connection: FeedConnection, count: int) -> None:
        self._last_rx = time.monotonic()
        connection.received(count)

    def _sslopt(self, verify: bool | str) -> dict[str, Any]:
        """websocket-client's `sslopt` for the client's `verify` (True, False, a CA path)."""
        if "sslopt" in self._connect_options:
            return dict(self._connect_options["sslopt"])
        context = self._ssl_contexts.get(verify)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            try:
                if verify is False:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                elif isinstance(verify, str):
                    if os.path.isdir(verify):
                        context.load_verify_locations(capath=verify)
                    else:
                        context.load_verify_locations(cafile=verify)
                else:
                    with contextlib.suppress(ImportError):
                        import certifi  # what requests verifies with: the same CAs for every transport

                        context.load_verify_locations(cafile=certifi.where())
            except (OSError, ssl.SSLError) as exc:
                raise TLSError(f"TLS: cannot load the CA bundle {verify!r}: {exc}", sent=False) from exc
            self._ssl_contexts[verify] = context
        return {"context": context}

    def _connect(self, request: ChangesRequest, connection: FeedConnection) -> websocket.WebSocket:
        """Open the WebSocket (handshake only), or raise a cloudsync error. A 401 renews the
        auth's session once; a 3xx is not followed."""
        url, safe_url = self.url(connection), _ws(connection.safe_url)
        what = f"GET {urlsplit(connection.url).path}"
        # sslopt and sockopt belong to the socket, the rest to connect().
        options = {key: value for key, value in self._connect_options.items() if key not in ("sslopt", "sockopt")}
        socket_options: dict[str, Any] = {"sockopt": self._connect_options.get("sockopt", ())}
        if url.startswith("wss:"):
            socket_options["sslopt"] = self._sslopt(connection.verify)
        renewed = False
        while True:
            headers = connection.headers()
            ws = _Socket(lambda count: self._alive(connection, count), skip_utf8_validation=True, enable_multithread=True, **socket_options)

            def abort(ws: websocket.WebSocket = ws) -> None:
                sock = ws.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

            if not connection.set_abort(abort):
                raise NetworkError(f"{what}: closed before connecting", sent=False)
            try:
                ws.connect(
                    url,
                    header=[f"{k}: {v}" for k, v in headers.items()],
                    timeout=request.connect_timeout,
                    redirect_limit=0,
                    **options,
                )
            except websocket.WebSocketBadStatusException as exc:
                status = exc.status_code
                # websocket-client's message dumps the response's headers (a Set-Cookie...)
                # and body; the cause stays chained, with a message that does not.
                exc.args = (f"Handshake status {status} {exc.status_message or ''}".rstrip(),)
                if status == 401 and not renewed and connection.renew_credentials():
                    renewed = True
                    continue
                error = connection.answer_error(
                    status, exc.status_message, exc.resp_headers or {}, exc.resp_body, url=safe_url
                )
                # None: a 2xx (an HTML page, a 204) where the upgrade was due.
                raise error or InvalidResponse(
                    f"{what}: answered {status} {exc.status_message or ''} instead of upgrading (GET {safe_url})"
                ) from exc
            except Exception as exc:
                answer = ws.handshake_response
                if answer is not None and 300 <= answer.status < 400:
                    error = connection.answer_error(answer.status, None, answer.headers or {}, None, url=safe_url)
                    raise error or _translate(exc, what, sent=False) from exc
                raise _translate(exc, what, sent=False) from exc
            return ws

    def _renew_after_close(self, connection: FeedConnection) -> bool:
        """Renew the credentials after a close for "unauthorized" — at most once until a
        connection delivers again, so a server that keeps refusing them ends it."""
        if self._renewed_on_close:
            return False
        self._renewed_on_close = connection.renew_credentials()
        return self._renewed_on_close

    def _receive(self, ws: websocket.WebSocket, request: ChangesRequest, what: str) -> tuple[int, bytes]:
        """The next data or close frame. Pings are answered (by websocket-client) and,
        with pongs, only count as bytes; after `ping_interval` of silence a ping is
        sent; `stall_timeout` of silence raises [RequestTimeout][cloudsync.RequestTimeout]."""
        stall, interval = request.stall_timeout, self.ping_interval
        wait = stall if interval is None else min(stall, interval)
        pinged = 0.0
        adjusted = False
        while True:
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException as exc:
                now = time.monotonic()
                silent_since = self._last_rx
                if now - silent_since >= stall:
                    raise RequestTimeout(f"{what}: no data for {now - silent_since:.1f}s (stall window)") from exc
                deadline = silent_since + stall
                if interval is not None:
                    if now - max(silent_since, pinged) >= interval:
                        try:
                            ws.ping()
                        except Exception as send_exc:
                            raise _translate(send_exc, what) from send_exc
                        pinged = now
                    deadline = min(deadline, max(silent_since, pinged) + interval)
                ws.settimeout(max(0.01, deadline - now))
                adjusted = True
                continue
            except Exception as exc:
                raise _translate(exc, what) from exc
            if adjusted:
                ws.settimeout(wait)
                adjusted = False
            if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                continue
            return opcode, data

    def stream_batches(self, request: ChangesRequest, connection: FeedConnection) -> Iterator[list[Item]]:
        what = "websocket feed"
        ws = self._connect(request, connection)
        try:
            if connection.closed:
                raise NetworkError(f"{what}: closed while connecting")
            interval = self.ping_interval
            ws.settimeout(request.stall_timeout if interval is None else min(request.stall_timeout, interval))
            self._last_rx = time.monotonic()
            try:
                ws.send(_json.dumps(self.options_message(request)).decode())
            except Exception as exc:
                raise _translate(exc, what) from exc
            connection.opened()
            parser = WebSocketParser(what)
            delivered = False
            while True:
                opcode, data = self._receive(ws, request, what)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    error = close_error(data, "GET", _ws(connection.safe_url))
                    if error is None:
                        return
                    if isinstance(error, Unauthorized) and self._renew_after_close(connection):
                        # Credentials that expired mid-stream: renewed, the next handshake
                        # uses them (a retryable error, so the subscription reconnects).
                        raise StreamError(f"{what}: the server ended the session ({error}); renewed") from error
                    raise error
                items = parser.feed(data)
                if items:
                    if not delivered:
                        delivered, self._renewed_on_close = True, False
                    yield items
                if parser.ended:
                    return
        finally:
            connection.finish()
            with contextlib.suppress(Exception):
                ws.shutdown()  # closes the socket; a clean close handshake is not worth waiting for


_ERROR_STATUS = {
    "bad_request": 400,
    "query_parse_error": 400,
    "invalid_selector": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "too_large": 413,
    "internal_server_error": 500,
    "unknown_error": 500,
    "service_unavailable": 503,
}
"""CouchDB `error` names a close reason may start with, and their HTTP statuses."""
_CLOSE_STATUS = {1003: 400, 1007: 400, 1008: 400, 1009: 413, 1011: 500, 1012: 503, 1013: 503, 1014: 502}
"""Close codes that say the request can never succeed (policy violation, unsupported or
invalid data, message too big) and the HTTP status they stand for."""
_ERROR_PREFIX = re.compile(r"([a-z][a-z_]*):\s*(.*)", re.S)


def close_error(payload: bytes, method: str, url: str) -> CloudSyncError | None:
    """The error a server's close frame stands for, or `None` for a clean end
    (1000, 1001, no code).

    A reason `"not_found: Filter ... not supported"` gives `NotFound` with that
    reason (the form the embedded server sends); a private code `4000 + status`
    (4400-4599) gives that status's error; 1008/1003/1007 without either are
    `BadRequest`; 1011-1014 a retryable `ServerError`. Any other code is a
    `StreamError` (retried). The `HTTPError` gets `close_code`. `url` goes
    into messages as given: pass one without user info."""
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    if code in (1000, 1001, 1005):
        return None
    text = payload[2:].decode("utf-8", "replace").strip()
    error: str | None = None
    reason: str | None = text or None
    match = _ERROR_PREFIX.fullmatch(text)
    if match:
        error, reason = match.group(1), match.group(2) or None
    status = None
    if 4400 <= code < 4600:
        status = code - 4000
    elif code in _CLOSE_STATUS:
        status = _ERROR_STATUS.get(error or "", _CLOSE_STATUS[code])
    if status is None:
        return StreamError(f"{method} {url}: closed with code {code}: {text}")
    exc = error_for_status(status)(status, error, reason, method=method, url=url)
    exc.close_code = code  # type: ignore[attr-defined]
    return exc


def _ws(http_url: str) -> str:
    scheme, rest = http_url.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest


def _translate(exc: BaseException, what: str, sent: bool = True) -> Exception:
    """The cloudsync error for a websocket-client (or socket) exception: the one place
    this transport translates them."""
    if isinstance(exc, websocket.WebSocketConnectionClosedException):
        return StreamError(f"{what}: connection closed without a close frame")
    message = f"{what} failed: {type(exc).__name__}: {exc}"
    if is_tls_failure(exc):
        return TLSError(message, sent=False)
    if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError)):
        return RequestTimeout(message, sent=sent)
    if isinstance(exc, websocket.WebSocketProtocolException):
        return StreamError(message)
    if isinstance(exc, websocket.WebSocketException) and "SSL" in str(exc):
        return TLSError(message, sent=False)  # CA bundle or client certificate loading
    if isinstance(exc, ConnectionRefusedError):
        return NetworkError(message, sent=False)
    return NetworkError(message, sent=sent)
