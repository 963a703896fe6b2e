"""Redirects are never followed with credentials: a loopback server answers 301/307 to
another 127.0.0.1 port, which records whatever reaches it (nothing must)."""

from __future__ import annotations

import pytest

import cloudsync
from cloudsync.auth import BasicAuth
from cloudsync.errors import InvalidResponse
from cloudsync.transports import (
    ChangesRequest,
    ContinuousTransport,
    LongPollTransport,
    SSETransport,
    WebSocketTransport,
)

from ._sockets import ScriptServer, bound


@pytest.fixture
def servers():
    """(redirector factory, recording target): started per test, closed after it."""
    started: list[ScriptServer] = []
    target = ScriptServer(lambda conn, request: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    started.append(target)

    def redirector(status: int) -> ScriptServer:
        location = b"http://127.0.0.1:%d/db/_changes" % target.port

        def script(conn, request):
            conn.sendall(b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location))

        server = ScriptServer(script)
        started.append(server)
        return server

    yield redirector, target
    for server in started:
        server.close()


FEEDS = {
    "longpoll": LongPollTransport,
    "continuous": lambda: ContinuousTransport(catch_up=False),
    "sse": SSETransport,
    "websocket": WebSocketTransport,
}


@pytest.mark.parametrize("status", [301, 307])
@pytest.mark.parametrize("name", list(FEEDS))
def test_feed_redirect_not_followed(servers, name, status) -> None:
    """Every transport raises a retryable InvalidResponse for a 3xx; the other port
    receives nothing (so no Authorization header either)."""
    redirector, target = servers
    transport = bound(FEEDS[name](), redirector(status), auth=BasicAuth("admin", "s3cret-pw"))
    with pytest.raises(InvalidResponse, match=f"^{status} redirect to http://127.0.0.1:{target.port}/db/_changes"):
        list(transport.items(ChangesRequest(stall_timeout=5)))
    assert target.requests == []


@pytest.mark.parametrize("status", [301, 307])
def test_document_redirect_not_followed(servers, status) -> None:
    """The document client does not follow a 3xx either; the other port receives nothing."""
    redirector, target = servers
    server = redirector(status)
    client = cloudsync.Client(f"http://admin:s3cret-pw@127.0.0.1:{server.port}", retry=cloudsync.RetryPolicy.never())
    with pytest.raises(InvalidResponse, match=f"^{status} redirect"):
        client.database("db").get("doc")
    assert target.requests == []
    assert "s3cret" not in str(server.requests)  # sent as basic auth, base64: never in clear


@pytest.mark.parametrize("name", ["longpoll", "continuous", "sse"])
def test_interim_1xx_answer_is_an_invalid_response(name) -> None:
    """A 1xx that http.client hands over as the answer (102, 103: it skips only 100) is
    a retryable InvalidResponse on every HTTP feed, not a feed that ended cleanly."""
    server = ScriptServer(lambda conn, request: conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"))
    try:
        transport = bound(FEEDS[name](), server)
        with pytest.raises(InvalidResponse, match="^103 Early Hints") as info:
            list(transport.items(ChangesRequest(stall_timeout=5)))
        assert info.value.retryable
    finally:
        server.close()
