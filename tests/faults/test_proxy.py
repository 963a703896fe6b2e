"""The fault proxy itself, against a small threaded echo server (no cloudsync involved)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.faults.proxy import FaultProxy


class EchoServer:
    """Echoes what each connection sends; records how each connection ended
    (``"eof"`` or ``"reset"``) and what it received."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.cond = threading.Condition()
        self.endings: list[str] = []
        self.received = bytearray()
        self.accepted = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.cond:
                self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        ending = "stopped"
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    ending = "reset"
                    break
                if not data:
                    ending = "eof"
                    break
                with self.cond:
                    self.received += data
                    self.cond.notify_all()
                with contextlib.suppress(OSError):
                    conn.sendall(data)
        with self.cond:
            self.endings.append(ending)
            self.cond.notify_all()

    def wait_endings(self, n: int, timeout: float = 5.0) -> list[str]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.endings) >= n, timeout)
            return list(self.endings)

    def wait_received(self, n: int, timeout: float = 5.0) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: len(self.received) >= n, timeout)
            return bytes(self.received)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        for thread in self._threads:
            thread.join(2)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo.port) as p:
        yield p


def connect(proxy: FaultProxy, timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def recv_until_end(sock: socket.socket) -> bytes:
    """Everything until the peer's FIN (socket timeout bounds it)."""
    data = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def test_listens_on_loopback_only(proxy: FaultProxy) -> None:
    """The proxy binds 127.0.0.1 and its url names that port."""
    assert proxy._listener.getsockname()[0] == "127.0.0.1"
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"


def test_forwards_both_ways(proxy: FaultProxy) -> None:
    """Without faults, bytes go through unchanged in both directions."""
    with connect(proxy) as sock:
        sock.sendall(b"hello proxy")
        assert recv_exactly(sock, 11) == b"hello proxy"
    assert proxy.connections == 1


def test_reset_all_sends_rst_to_both_sides(proxy: FaultProxy, echo: EchoServer) -> None:
    """reset_all() makes the client's next read fail with a reset, and the upstream sees a reset too."""
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        assert proxy.reset_all() == 1
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    assert echo.wait_endings(1) == ["reset"]
    assert proxy.faults_injected["reset"] == 1


def test_close_all_sends_fin_to_client(proxy: FaultProxy, echo: EchoServer) -> None:
    """close_all() ends the client's stream cleanly (EOF) and closes the upstream (EOF)."""
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        assert proxy.close_all() == 1
        assert sock.recv(10) == b""
    assert echo.wait_endings(1) == ["eof"]
    assert proxy.faults_injected["close"] == 1


def test_faults_on_no_connection_are_not_counted(proxy: FaultProxy) -> None:
    """A reset, close or blackhole that hits no live connection is not counted as injected."""
    assert proxy.reset_all() == 0 and proxy.close_all() == 0 and proxy.blackhole() == 0
    assert sum(proxy.faults_injected.values()) == 0


def test_blackhole_is_silent_both_ways(proxy: FaultProxy, echo: EchoServer) -> None:
    """A blackholed connection forwards nothing either way and is not closed: reads time out."""
    with connect(proxy, timeout=0.3) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        assert proxy.blackhole() == 1
        sock.sendall(b"b")
        with pytest.raises(socket.timeout):
            sock.recv(10)
        assert echo.wait_received(2, timeout=0.3) == b"a"
        assert echo.endings == [] and proxy.live_connections == 1


def test_blackhole_leaves_new_connections_working(proxy: FaultProxy) -> None:
    """After blackhole(), a new connection forwards normally."""
    with connect(proxy) as first:
        first.sendall(b"1")
        assert recv_exactly(first, 1) == b"1"
        proxy.blackhole()
        with connect(proxy) as second:
            second.sendall(b"2")
            assert recv_exactly(second, 1) == b"2"


def test_heal_resumes_a_blackholed_connection_intact(proxy: FaultProxy) -> None:
    """heal() forwards what a blackholed connection held back: nothing is lost."""
    with connect(proxy, timeout=0.3) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        proxy.blackhole()
        sock.sendall(b"held")
        with pytest.raises(socket.timeout):
            sock.recv(10)
        proxy.heal()
        sock.settimeout(2)
        assert recv_exactly(sock, 4) == b"held"


def test_blackholed_connection_ends_when_its_client_leaves(proxy: FaultProxy) -> None:
    """A client that gives up on a blackholed connection frees the proxy's side of it."""
    sock = connect(proxy)
    sock.sendall(b"a")
    assert recv_exactly(sock, 1) == b"a"
    proxy.blackhole()
    sock.close()
    assert proxy.wait_for(lambda: proxy.live_connections == 0, timeout=3)


def test_stall_delays_then_delivers(proxy: FaultProxy) -> None:
    """stall(s) forwards nothing for s seconds, then delivers what was held."""
    with connect(proxy, timeout=0.2) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        proxy.stall(0.6)
        started = time.monotonic()
        sock.sendall(b"b")
        with pytest.raises(socket.timeout):
            sock.recv(1)
        sock.settimeout(3)
        assert recv_exactly(sock, 1) == b"b"
        assert time.monotonic() - started >= 0.5
    assert proxy.faults_injected["stall"] == 1


def test_drip_limits_the_rate_downstream(proxy: FaultProxy) -> None:
    """drip(n) passes server->client data at about n bytes per second."""
    proxy.drip(400)
    with connect(proxy, timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"z" * 200)
        assert recv_exactly(sock, 200) == b"z" * 200
        assert time.monotonic() - started >= 0.35
    assert proxy.faults_injected["drip"] == 1


def test_drip_off_restores_full_speed(proxy: FaultProxy) -> None:
    """drip(None) lifts the rate limit."""
    proxy.drip(10)
    proxy.drip(None)
    with connect(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"q" * 5000)
        assert recv_exactly(sock, 5000) == b"q" * 5000
        assert time.monotonic() - started < 1.0


def test_truncate_after_cuts_next_connection_with_fin(proxy: FaultProxy) -> None:
    """truncate_after(n): the next connection gets exactly n bytes, then EOF."""
    proxy.truncate_after(5)
    with connect(proxy) as sock:
        sock.sendall(b"0123456789")
        assert recv_until_end(sock) == b"01234"
    assert proxy.faults_injected["truncate"] == 1


def test_truncate_after_with_reset(proxy: FaultProxy) -> None:
    """truncate_after(n, reset=True) ends the cut connection with an RST."""
    proxy.truncate_after(3, reset=True)
    with connect(proxy) as sock:
        sock.sendall(b"abcdef")
        with pytest.raises(ConnectionResetError):
            recv_until_end(sock)


def test_truncate_applies_to_next_connection_only(proxy: FaultProxy) -> None:
    """With count=1 the connection after the cut one is forwarded whole."""
    proxy.truncate_after(2)
    with connect(proxy) as first:
        first.sendall(b"abcd")
        assert recv_until_end(first) == b"ab"
    with connect(proxy) as second:
        second.sendall(b"abcd")
        assert recv_exactly(second, 4) == b"abcd"
    assert proxy.pending_cuts == 0


def test_truncate_when_regex_with_offset(proxy: FaultProxy) -> None:
    """truncate_when(regex, offset=k) cuts k bytes after the match's start."""
    proxy.truncate_when(rb'"rev":"', offset=3)
    with connect(proxy) as sock:
        sock.sendall(b'{"id":"a","rev":"1-abc"}\n')
        assert recv_until_end(sock) == b'{"id":"a","re'


def test_truncate_when_skips_matches(proxy: FaultProxy) -> None:
    """skip=n cuts at the (n+1)-th match."""
    proxy.truncate_when(re.compile(rb"\r\n[0-9a-f]+\r\n"), offset=3, skip=1)
    with connect(proxy) as sock:
        sock.sendall(b"5\r\nhello\r\n3\r\nabc\r\n1a\r\n")
        assert recv_until_end(sock) == b"5\r\nhello\r\n3\r\nabc\r\n1"


def test_truncate_when_callable(proxy: FaultProxy) -> None:
    """A callable pattern returns the cut position in the data seen so far."""
    proxy.truncate_when(lambda data: data.find(b"|") if b"|" in data else None)
    with connect(proxy) as sock:
        sock.sendall(b"keep|drop")
        assert recv_until_end(sock) == b"keep"


def test_truncate_live_connection(proxy: FaultProxy) -> None:
    """live=True cuts an already open connection at a pattern in data arriving later."""
    with connect(proxy) as sock:
        sock.sendall(b"frame1;")
        assert recv_exactly(sock, 7) == b"frame1;"
        assert proxy.truncate_when(b";", offset=0, count=0, live=True) == 1
        sock.sendall(b"frame2;frame3;")
        assert recv_until_end(sock) == b"frame2"


def test_respond_serves_canned_http_response(proxy: FaultProxy, echo: EchoServer) -> None:
    """respond(503, headers=...) answers the next request itself; the upstream is not contacted."""
    proxy.respond(503, headers={"Retry-After": "1"}, body=b"busy")
    answer = requests.get(proxy.url + "/db/_changes", timeout=5)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1" and answer.content == b"busy"
    assert echo.accepted == 0
    assert proxy.faults_injected["respond"] == 1


def test_respond_count_then_forwards(proxy: FaultProxy) -> None:
    """respond(..., count=2) answers two connections, then connections are forwarded again."""
    proxy.respond(429, count=2)
    for _ in range(2):
        with connect(proxy) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until_end(sock).startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"


def test_respond_to_websocket_handshake(proxy: FaultProxy) -> None:
    """A canned response answers a WebSocket upgrade request like any other."""
    websocket = pytest.importorskip("websocket")
    proxy.respond(503, headers={"Retry-After": "1"})
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(proxy.url.replace("http", "ws") + "/db/_changes?feed=websocket", timeout=3)
    assert info.value.status_code == 503


def test_upstream_down_resets_client(echo: EchoServer) -> None:
    """With nothing listening upstream, a client connection is reset (and counted)."""
    port = echo.port
    echo.close()
    with FaultProxy("127.0.0.1", port) as proxy, connect(proxy) as sock:
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"x")
            recv_until_end(sock)
        assert proxy.wait_for(lambda: proxy.faults_injected["upstream_failures"] == 1, timeout=3)


def test_close_stops_every_thread_promptly(echo: EchoServer) -> None:
    """close() ends live, blackholed and stalled connections and joins all threads within a second or two."""
    proxy = FaultProxy("127.0.0.1", echo.port)
    socks = [connect(proxy) for _ in range(3)]
    for sock in socks:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
    proxy.blackhole()
    proxy.stall(30)
    started = time.monotonic()
    proxy.close()
    assert time.monotonic() - started < 2.5
    assert not [t for t in threading.enumerate() if t.name.startswith("fault-proxy")]
    for sock in socks:
        sock.close()


def test_wait_connections(proxy: FaultProxy) -> None:
    """wait_connections(n) returns once n connections were accepted, False on timeout."""
    assert not proxy.wait_connections(1, timeout=0.1)
    with connect(proxy):
        assert proxy.wait_connections(1, timeout=2)


def test_disarm_live_forgets_armed_cuts(proxy: FaultProxy) -> None:
    """disarm(live=True) removes a truncation armed on a live connection before it cut anything."""
    with connect(proxy) as sock:
        sock.sendall(b"a;")
        assert recv_exactly(sock, 2) == b"a;"
        proxy.truncate_when(b";", count=0, live=True)
        proxy.disarm(live=True)
        sock.sendall(b"b;c;")
        assert recv_exactly(sock, 4) == b"b;c;"
    assert proxy.faults_injected["truncate"] == 0


def test_respond_match_answers_only_matching_requests(proxy: FaultProxy, echo: EchoServer) -> None:
    """respond(..., match=regex) forwards requests whose head does not match and answers the one that does."""
    proxy.respond(503, match=rb"feed=continuous")
    with connect(proxy) as sock:
        sock.sendall(b"GET /db/_changes?feed=normal HTTP/1.1\r\n\r\n")
        assert recv_exactly(sock, 4) == b"GET "
    with connect(proxy) as sock:
        sock.sendall(b"GET /db/_changes?feed=continuous HTTP/1.1\r\n\r\n")
        assert recv_until_end(sock).startswith(b"HTTP/1.1 503 ")
    assert proxy.pending_canned == 0 and proxy.faults_injected["respond"] == 1
