"""WebSocket connection handling against loopback servers: close codes mapped to typed
errors, handshake errors read like the HTTP feeds', a 401 renewing the session, redirects
not followed, pings noticing a silent (half-open) connection."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time

import pytest

from cloudsync.auth import BearerTokenAuth, CookieAuth
from cloudsync.errors import (
    BadRequest,
    InvalidResponse,
    NotFound,
    RequestTimeout,
    ServerError,
    StreamError,
    Unauthorized,
)
from cloudsync.transports import ChangesRequest, WebSocketTransport

from ._sockets import bound, ws_frame, ws_handshake, ws_read, ws_read_frame


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return ws_frame(struct.pack("!H", code) + reason, opcode=8)


def closing_with(code: int, reason: bytes = b""):
    """A server script: handshake, read the options, close with ``code`` and ``reason``."""

    def script(conn, request):
        ws_handshake(conn, request)
        ws_read(conn)
        conn.sendall(close_frame(code, reason))

    return script


def read_frames(conn: socket.socket, on_frame) -> None:
    """Read masked client frames until EOF, calling ``on_frame(opcode, payload)``."""
    while True:
        on_frame(*ws_read_frame(conn))


def test_close_1008_not_found_reason_is_not_found(serve) -> None:
    """A policy close whose reason starts ``not_found:`` raises NotFound (not retried),
    with the server's reason in the message."""
    server = serve(closing_with(1008, b"not_found: Filter functions are not supported"))
    transport = bound(WebSocketTransport(), server)
    with pytest.raises(NotFound) as info:
        list(transport.items(ChangesRequest()))
    assert not info.value.retryable
    assert info.value.close_code == 1008
    assert str(info.value) == (
        f"404 not_found: Filter functions are not supported (GET ws://127.0.0.1:{server.port}/db/_changes)"
    )


def test_close_1008_bad_request_reason_is_bad_request(serve) -> None:
    """A policy close ``bad_request: ...`` (a bad selector) raises BadRequest, not retried."""
    transport = bound(WebSocketTransport(), serve(closing_with(1008, b"bad_request: Invalid operator: $bad")))
    with pytest.raises(BadRequest, match=r"^400 bad_request: Invalid operator: \$bad \(GET ws://") as info:
        list(transport.items(ChangesRequest()))
    assert not info.value.retryable


def test_close_1008_without_error_name_is_bad_request(serve) -> None:
    """A policy close with a plain reason (another server) is still a terminal BadRequest."""
    transport = bound(WebSocketTransport(), serve(closing_with(1008, b"no such filter")))
    with pytest.raises(BadRequest, match="400: no such filter"):
        list(transport.items(ChangesRequest()))


def test_close_4000_plus_status_is_that_status(serve) -> None:
    """A private close code 4000 + status (4404) raises that status's error."""
    transport = bound(WebSocketTransport(), serve(closing_with(4404, b"missing")))
    with pytest.raises(NotFound, match="404: missing"):
        list(transport.items(ChangesRequest()))


def test_close_1011_is_a_retryable_server_error(serve) -> None:
    """An internal-error close (1011) is a ServerError: the subscription retries it."""
    transport = bound(WebSocketTransport(), serve(closing_with(1011, b"oops")))
    with pytest.raises(ServerError) as info:
        list(transport.items(ChangesRequest()))
    assert info.value.retryable


def test_close_with_an_unknown_code_is_a_stream_error(serve) -> None:
    """Any other abnormal close code stays a retryable StreamError."""
    transport = bound(WebSocketTransport(), serve(closing_with(1002, b"protocol")))
    with pytest.raises(StreamError, match="closed with code 1002"):
        list(transport.items(ChangesRequest()))


def test_handshake_error_reads_like_an_http_feed(serve) -> None:
    """A refused upgrade with a CouchDB JSON body reads ``404 not_found: reason (GET url)``,
    not websocket-client's dump of status, headers and body."""
    body = b'{"error":"not_found","reason":"Database does not exist."}'

    def script(conn, request):
        conn.sendall(
            b"HTTP/1.1 404 Object Not Found\r\nContent-Type: application/json\r\n"
            b"X-Couch-Request-ID: abc123\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    server = serve(script)
    transport = bound(WebSocketTransport(), server)
    with pytest.raises(NotFound) as info:
        list(transport.items(ChangesRequest()))
    assert str(info.value) == (
        f"404 not_found: Database does not exist. (GET ws://127.0.0.1:{server.port}/db/_changes) [request id abc123]"
    )


def test_handshake_401_renews_the_session_once(serve) -> None:
    """A 401 handshake asks the auth for new credentials and tries once more with them."""
    tokens = iter(["old", "new"])
    heads: list[bytes] = []

    def script(conn, request):
        heads.append(request)
        if b"Bearer old" in request:
            ws_handshake(conn, request, 401)
            return
        ws_handshake(conn, request)
        ws_read(conn)
        conn.sendall(close_frame(1000))

    transport = bound(WebSocketTransport(), serve(script), auth=BearerTokenAuth(lambda: next(tokens)))
    assert list(transport.items(ChangesRequest())) == []
    assert [b"Bearer new" in head for head in heads] == [False, True]


def test_handshake_401_renews_a_cookie_session(serve) -> None:
    """An expired cookie session (401 on the upgrade) logs in again (POST /_session) and
    upgrades with the new cookie."""
    cookies = iter(["old", "new"])
    heads: list[bytes] = []

    def script(conn, request):
        heads.append(request.split(b"\r\n", 1)[0])
        if request.startswith(b"POST /_session"):
            body = b'{"ok":true}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nSet-Cookie: AuthSession=%s; Path=/\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (next(cookies).encode(), len(body), body))
            return
        if b"AuthSession=old" in request:
            ws_handshake(conn, request, 401)
            return
        ws_handshake(conn, request)
        ws_read(conn)
        conn.sendall(close_frame(1000))

    transport = bound(WebSocketTransport(), serve(script), auth=CookieAuth("alice", "pw"))
    assert list(transport.items(ChangesRequest())) == []
    assert [h.split(b" ")[0] for h in heads] == [b"POST", b"GET", b"POST", b"GET"]


def test_handshake_401_twice_is_unauthorized(serve) -> None:
    """A second 401 after renewing raises Unauthorized (renewed once, not in a loop)."""
    server = serve(lambda conn, req: ws_handshake(conn, req, 401))
    transport = bound(WebSocketTransport(), server, auth=BearerTokenAuth(lambda: "token"))
    with pytest.raises(Unauthorized):
        list(transport.items(ChangesRequest()))
    assert len(server.requests) == 2


def test_unauthorized_close_mid_stream_renews_and_is_retryable(serve) -> None:
    """A close for "unauthorized" after rows were delivered (a session that expired
    mid-stream) renews the credentials and raises a retryable error, so the subscription
    reconnects with them."""
    tokens = iter(["old", "new"])
    row = b'[{"seq":1,"id":"a","changes":[{"rev":"1-a"}]}]'

    def script(conn, request):
        ws_handshake(conn, request)
        ws_read(conn)
        conn.sendall(ws_frame(row) + close_frame(1008, b"unauthorized: session expired"))

    auth = BearerTokenAuth(lambda: next(tokens))
    transport = bound(WebSocketTransport(), serve(script), auth=auth)
    got = []
    with pytest.raises(StreamError) as info:
        for item in transport.items(ChangesRequest()):
            got.append(item)
    assert [c.id for c in got] == ["a"] and info.value.retryable
    assert auth.headers(None) == {"Authorization": "Bearer new"}


def test_unauthorized_close_again_without_delivering_is_terminal(serve) -> None:
    """After one renewal, a connection closed for "unauthorized" before delivering
    anything raises Unauthorized: no reconnect loop on credentials the server refuses."""
    server = serve(closing_with(1008, b"unauthorized: no"))
    transport = bound(WebSocketTransport(), server, auth=BearerTokenAuth(lambda: "token"))
    with pytest.raises(StreamError):
        list(transport.items(ChangesRequest()))
    with pytest.raises(Unauthorized):
        list(transport.items(ChangesRequest()))


@pytest.mark.parametrize("status", [301, 307])
def test_redirect_is_not_followed(serve, status) -> None:
    """A 3xx handshake is a retryable InvalidResponse naming the target; nothing (and no
    credentials) reaches the host it points to."""
    other = serve(lambda conn, req: ws_handshake(conn, req))
    location = f"ws://127.0.0.1:{other.port}/elsewhere"

    def script(conn, request):
        conn.sendall(b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location.encode()))

    transport = bound(WebSocketTransport(), serve(script), auth=BearerTokenAuth(lambda: "secret-token"))
    with pytest.raises(InvalidResponse, match=f"^{status} redirect to {location}: not followed") as info:
        list(transport.items(ChangesRequest()))
    assert info.value.retryable
    assert other.requests == []


def test_pings_keep_a_quiet_connection_alive(serve) -> None:
    """With the server silent but answering pings, the feed outlives many stall windows:
    each pong counts as data."""
    pings: list[bytes] = []

    def script(conn, request):
        ws_handshake(conn, request)

        def on_frame(opcode, payload):
            if opcode == 9:
                pings.append(payload)
                if len(pings) == 8:
                    conn.sendall(close_frame(1000))
                else:
                    conn.sendall(ws_frame(payload, opcode=10))

        read_frames(conn, on_frame)

    transport = bound(WebSocketTransport(ping_interval=0.05), serve(script))
    assert list(transport.items(ChangesRequest(stall_timeout=0.2))) == []
    assert len(pings) == 8  # 8 pings at >= 0.05 s apart: at least 0.35 s, beyond the 0.2 s window
    assert transport.bytes_received > 0


def test_silent_connection_without_pongs_times_out_within_the_stall_window(serve) -> None:
    """A half-open connection (pings go out, nothing comes back) raises RequestTimeout
    once the stall window has passed, not later."""
    hold = threading.Event()
    pings = threading.Semaphore(0)

    def script(conn, request):
        ws_handshake(conn, request)
        with contextlib.suppress(OSError):
            read_frames(conn, lambda opcode, payload: pings.release() if opcode == 9 else None)
        hold.wait(5)

    transport = bound(WebSocketTransport(ping_interval=0.1), serve(script))
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        list(transport.items(ChangesRequest(stall_timeout=0.4)))
    elapsed = time.monotonic() - started
    hold.set()
    assert 0.35 <= elapsed < 1.0
    assert pings.acquire(timeout=1)  # it did ask


def test_effective_heartbeat_is_the_ping_interval() -> None:
    """With pings on, the subscription's stall window derives from the ping interval
    (1.25 x 5 s + 2 s = 8.25 s by default, whatever Sync Gateway's 25 s floor)."""
    assert WebSocketTransport().effective_heartbeat(10) == 5.0
    assert WebSocketTransport(ping_interval=None).effective_heartbeat(10) == 25
    assert WebSocketTransport(min_heartbeat=0, ping_interval=5).effective_heartbeat(2) == 2


def test_ping_interval_must_be_positive() -> None:
    """ping_interval=0 is refused (None disables pings)."""
    with pytest.raises(ValueError):
        WebSocketTransport(ping_interval=0)


def test_options_message_still_sent_first(serve) -> None:
    """Pings never precede the options message: the server's first frame is the options."""
    first: list[tuple[int, bytes]] = []

    def script(conn, request):
        ws_handshake(conn, request)

        def on_frame(opcode, payload):
            first.append((opcode, payload))
            conn.sendall(close_frame(1000))

        read_frames(conn, on_frame)

    transport = bound(WebSocketTransport(ping_interval=0.01), serve(script))
    list(transport.items(ChangesRequest(since=3)))
    assert first[0][0] == 1 and json.loads(first[0][1])["since"] == 3
