"""A threaded TCP fault proxy for tests (standard library only).

::

    with FaultProxy("127.0.0.1", server_port) as proxy:
        client = cloudsync.Client(proxy.url)
        ...
        proxy.reset_all()            # RST every live connection, both sides
        proxy.close_all()            # clean FIN to the client, upstream closed
        proxy.blackhole()            # live connections go silent (no FIN, no RST); new ones work
        proxy.stall(2.0)             # nothing forwarded for 2 s (live and new connections)
        proxy.drip(64)               # server->client data at 64 bytes/s
        proxy.heal()                 # undo blackhole, stall and drip
        proxy.truncate_after(100)    # next connection: cut server->client data after 100 bytes
        proxy.truncate_when(rb'"rev":"', offset=3)     # ... or inside the first match
        proxy.respond(503, headers={"Retry-After": "1"})  # next connection gets a canned answer

Listens on 127.0.0.1 only. Each connection is served by one thread that owns both of its
sockets (commands from other threads are queued to it and acknowledged), so an RST is
never delayed by another thread blocked in ``recv``. Every wait is bounded; ``close()``
stops every thread and socket the proxy made.
"""

from __future__ import annotations

import collections
import contextlib
import http
import itertools
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FaultProxy", "Cut"]

# What a fault kind is called in ``faults_injected``.
RESET, CLOSE, BLACKHOLE, STALL, DRIP, TRUNCATE, RESPOND = (
    "reset", "close", "blackhole", "stall", "drip", "truncate", "respond")

_BUFFER_LIMIT = 256 * 1024  # per direction: stop reading a side whose peer does not keep up
_READ = 64 * 1024
_SCAN_OVERLAP = 256  # bytes of earlier data kept so a pattern split across two reads is found
_SCAN_KEEP = 1 << 20  # what a callable predicate sees at most (the downstream transcript's tail)
_ACK_TIMEOUT = 2.0
_JOIN_TIMEOUT = 2.0

Predicate = Callable[[bytes], "int | None"]


@dataclass
class Cut:
    """A truncation rule: where the server->client data of a connection is cut.

    ``after``: cut once this many more bytes have passed. ``pattern``: cut at the
    ``skip``-th match (0: the first) of a bytes regex, ``offset`` bytes after the match's
    start, ignoring matches that start in the first ``min_offset`` bytes. ``predicate``:
    called with the data seen so far (its tail, at most 1 MiB), returns the cut position
    in it or ``None``. ``reset``: end with an RST instead of a FIN.
    """

    after: int | None = None
    pattern: re.Pattern[bytes] | None = None
    predicate: Predicate | None = None
    offset: int = 0
    skip: int = 0
    min_offset: int = 0
    reset: bool = False

    def copy(self) -> Cut:
        return Cut(self.after, self.pattern, self.predicate, self.offset, self.skip, self.min_offset, self.reset)


@dataclass
class _Canned:
    data: bytes
    remaining: int
    match: re.Pattern[bytes] | None = None  # answer only requests whose head matches


class _Link(threading.Thread):
    """One proxied connection, served by its own thread."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, number: int, canned: bytes | None,
                 cut: Cut | None, candidate: _Canned | None = None) -> None:
        super().__init__(name=f"fault-proxy-link-{number}", daemon=True)
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.canned = canned
        self.candidate = candidate  # a canned answer for this connection if its request matches
        self._commands: collections.deque[tuple[str, Any, threading.Event]] = collections.deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.blackholed = False
        self.ended = threading.Event()
        self.to_client = bytearray()
        self.to_upstream = bytearray()
        self.held = bytearray()  # client data read while blackholed (forwarded on heal)
        self.upstream_eof = False
        self.down_total = 0  # bytes read from upstream (all of them, cut or not)
        self.down_queued = 0  # bytes accepted for the client (before a cut)
        self.cut: Cut | None = None
        self.cut_at: int | None = None  # absolute position in the downstream data
        self._cut_base = 0
        self._scan = bytearray()  # the tail of the downstream data, for pattern rules
        self._scan_start = 0  # absolute position of _scan[0]
        self._matches = 0
        self._next_match_from = 0
        self._tokens = 0.0
        self._tokens_at = time.monotonic()
        if cut is not None:
            self._arm(cut)

    # -- called from other threads -----------------------------------------------------------
    def command(self, name: str, arg: Any = None, wait: bool = True) -> bool:
        """Queue a command for the link's thread; wait (bounded) until it was carried out."""
        done = threading.Event()
        self._commands.append((name, arg, done))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not wait:
            return True
        deadline = time.monotonic() + _ACK_TIMEOUT
        while time.monotonic() < deadline:
            if done.wait(0.05) or self.ended.is_set():
                return done.is_set()
        return done.is_set()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the link's thread -------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.canned is not None:
                self._read_head()
                self._answer(self.canned)
                return
            if self.candidate is not None:
                head = self._read_head()
                match = self.candidate.match
                if match is not None and match.search(head) and self.proxy._take_canned(self.candidate):
                    self.canned = self.candidate.data
                    self._answer(self.canned)
                    return
                self.to_upstream += head  # not the request the answer is for: forward it
            try:
                self.upstream = socket.create_connection(self.proxy.upstream, timeout=2.0)
            except OSError:
                # Nothing (or nothing healthy) upstream: the closest a proxy gets to a refusal.
                self.proxy._count("upstream_failures")
                self._end_client(rst=True)
                return
            self.upstream.setblocking(False)
            self.client.setblocking(False)
            self._pump()
        except Exception:  # a proxy thread must never raise into the test run
            self._end_client(rst=True)
        finally:
            self._close_all_sockets()
            self.ended.set()
            self.proxy._forget(self)
            # Anyone still waiting for an acknowledgement: the link is gone.
            while self._commands:
                self._commands.popleft()[2].set()

    def _read_head(self) -> bytes:
        """The request head (and whatever came with it), read within a bounded time."""
        self.client.settimeout(0.2)
        seen = bytearray()
        deadline = time.monotonic() + 2.0
        while b"\r\n\r\n" not in seen and len(seen) < 65536 and time.monotonic() < deadline:
            if self.proxy._stopping.is_set():
                break
            try:
                chunk = self.client.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        return bytes(seen)

    def _answer(self, data: bytes) -> None:
        """Answer ``data`` and close with a FIN."""
        self.client.settimeout(2.0)
        self.proxy._count(RESPOND)  # before the answer: a test that got it may count on it
        with contextlib.suppress(OSError):
            self.client.sendall(data)
        self._end_client(rst=False)

    def _pump(self) -> None:
        client, upstream = self.client, self.upstream
        assert upstream is not None
        while True:
            if self.proxy._stopping.is_set():
                self._end_client(rst=False)
                return
            if not self._run_commands():
                return
            now = time.monotonic()
            stall_left = self.proxy._stall_until - now
            rate = self.proxy._drip_rate
            readers: list[socket.socket] = [self._wake_r]
            writers: list[socket.socket] = []
            timeout = 0.5
            cutting = self.cut_at is not None and self.down_queued >= self.cut_at
            if self.blackholed:
                readers.append(client)  # only to notice the client leaving; nothing is forwarded
            elif stall_left > 0:
                timeout = min(timeout, stall_left)
            else:
                if len(self.to_upstream) < _BUFFER_LIMIT:
                    readers.append(client)
                if not self.upstream_eof and not cutting and len(self.to_client) < _BUFFER_LIMIT:
                    readers.append(upstream)
                if self.to_upstream:
                    writers.append(upstream)
                if self.to_client:
                    if rate:
                        self._refill(rate, now)
                        if self._tokens >= 1:
                            writers.append(client)
                        else:
                            timeout = min(timeout, (1 - self._tokens) / rate)
                    else:
                        writers.append(client)
                elif cutting or self.upstream_eof:
                    # Everything before the cut (or the upstream's end) is out: end it.
                    if cutting:
                        self.proxy._count(TRUNCATE)
                        self._end_client(rst=self.cut is not None and self.cut.reset)
                    else:
                        self._end_client(rst=False)
                    return
            try:
                readable, writable, _ = select.select(readers, writers, [], max(0.0, timeout))
            except (OSError, ValueError):
                self._end_client(rst=True)
                return
            if self._wake_r in readable:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            if client in readable and not self._read_client():
                return
            if upstream in readable and not self._read_upstream():
                return
            if upstream in writable and not self._write(upstream, self.to_upstream, None):
                return
            if client in writable and not self._write(client, self.to_client, rate):
                return

    def _run_commands(self) -> bool:
        """Carry out queued commands; False when the link has ended."""
        while self._commands:
            name, arg, done = self._commands.popleft()
            try:
                if name == RESET:
                    self._end_client(rst=True, upstream_rst=True)
                    return False
                if name == CLOSE:
                    self._end_client(rst=False)
                    return False
                if name == BLACKHOLE:
                    self.blackholed = True
                elif name == "heal":
                    if self.blackholed:
                        self.blackholed = False
                        self.to_upstream += self.held
                        self.held.clear()
                elif name == TRUNCATE:
                    if arg is None:
                        # Unless bytes past the cut were already dropped: that cut must happen.
                        if self.cut_at is None or self.down_total <= self.cut_at:
                            self.cut = self.cut_at = None
                    else:
                        self._arm(arg)
            finally:
                done.set()
        return True

    def _read_client(self) -> bool:
        try:
            data = self.client.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self._end_client(rst=True, upstream_rst=True)  # the client reset: so does the server side
            return False
        if not data:
            # The client left (e.g. its watchdog gave up on a silent connection): so does
            # the proxy, quietly, also for a blackholed connection (no thread left behind).
            self._end_client(rst=False)
            return False
        (self.held if self.blackholed else self.to_upstream).extend(data)
        return True

    def _read_upstream(self) -> bool:
        assert self.upstream is not None
        try:
            data = self.upstream.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            # The server reset: pass on what was already read, then reset the client.
            self._flush_client_best_effort()
            self._end_client(rst=True)
            return False
        if not data:
            self.upstream_eof = True
            return True
        start = self.down_total
        self.down_total += len(data)
        if self.cut is not None and self.cut_at is None:
            self._find_cut(data, start)
        if self.cut_at is not None:
            keep = max(0, self.cut_at - self.down_queued)
            data = data[:keep]
        self.to_client += data
        self.down_queued += len(data)
        return True

    def _write(self, sock: socket.socket, buf: bytearray, rate: float | None) -> bool:
        size = len(buf)
        if rate:
            size = min(size, max(1, int(self._tokens)))
        try:
            sent = sock.send(bytes(buf[:size]))
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self._end_client(rst=True, upstream_rst=True)
            return False
        del buf[:sent]
        if rate:
            self._tokens -= sent
        return True

    def _refill(self, rate: float, now: float) -> None:
        self._tokens = min(max(1.0, rate * 0.05), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now

    def _flush_client_best_effort(self) -> None:
        if not self.to_client:
            return
        with contextlib.suppress(OSError):
            self.client.setblocking(True)
            self.client.settimeout(0.5)
            self.client.sendall(bytes(self.to_client))
        self.to_client.clear()

    # -- truncation ----------------------------------------------------------------------------
    def _arm(self, cut: Cut) -> None:
        self.cut = cut
        self.cut_at = None
        self._cut_base = self.down_total
        self._scan = bytearray()
        self._scan_start = self.down_total
        self._matches = 0
        self._next_match_from = self.down_total + cut.min_offset
        if cut.after is not None:
            self.cut_at = self.down_total + cut.after

    def _find_cut(self, data: bytes, start: int) -> None:
        cut = self.cut
        assert cut is not None
        self._scan += data
        if cut.pattern is not None:
            for m in cut.pattern.finditer(self._scan):
                position = self._scan_start + m.start()
                if position < self._next_match_from:
                    continue
                self._next_match_from = position + 1
                if self._matches == cut.skip:
                    # A match that straddled two reads may start before what has already
                    # been passed on: cut as early as still possible.
                    self.cut_at = max(position + cut.offset, self.down_queued)
                    return
                self._matches += 1
        elif cut.predicate is not None:
            found = cut.predicate(bytes(self._scan))
            if found is not None:
                self.cut_at = max(self._scan_start + found, self.down_queued)
                return
        keep = _SCAN_OVERLAP if cut.pattern is not None else _SCAN_KEEP
        if len(self._scan) > keep:
            drop = len(self._scan) - keep
            del self._scan[:drop]
            self._scan_start += drop

    # -- ending --------------------------------------------------------------------------------
    def _end_client(self, *, rst: bool, upstream_rst: bool = False) -> None:
        """End the connection: the client gets an RST or a FIN; the upstream is closed."""
        if rst:
            _abort(self.client)
        else:
            with contextlib.suppress(OSError):
                self.client.shutdown(socket.SHUT_WR)
            _close(self.client)
        if self.upstream is not None:
            _abort(self.upstream) if upstream_rst else _close(self.upstream)

    def _close_all_sockets(self) -> None:
        for sock in (self.client, self.upstream, self._wake_r, self._wake_w):
            if sock is not None:
                _close(sock)


def _abort(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _canned_response(status: int, headers: Mapping[str, str] | None, body: bytes | str) -> bytes:
    if isinstance(body, str):
        body = body.encode()
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    given = {k.lower() for k in (headers or {})}
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if "content-length" not in given and status != 204 and not 100 <= status < 200:
        lines.append(f"Content-Length: {len(body)}")
    if "connection" not in given:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class FaultProxy:
    """A TCP proxy on 127.0.0.1 that forwards to ``(upstream_host, upstream_port)`` and
    injects faults on command. See the module docstring.

    ``connections``: connections accepted so far. ``faults_injected``: a
    :class:`collections.Counter` of faults that hit at least one connection, by kind
    (``reset``, ``close``, ``blackhole``, ``stall``, ``drip``, ``truncate``,
    ``respond``); ``upstream_failures`` counts connections whose upstream refused.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._links: set[_Link] = set()
        self._all_threads: list[threading.Thread] = []
        self._numbers = itertools.count(1)
        self._canned: collections.deque[_Canned] = collections.deque()
        self._cuts: collections.deque[list[Any]] = collections.deque()  # [Cut, remaining]
        self._stall_until = 0.0
        self._drip_rate: float | None = None
        self.connections = 0
        self.faults_injected: collections.Counter[str] = collections.Counter()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy-accept", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultProxy({self.url} -> {self.upstream[0]}:{self.upstream[1]})"

    # -- lifecycle -------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self._stopping.is_set():
                    _close(client)
                    return
                self.connections += 1
                canned = None
                candidate = None
                if self._canned:
                    if self._canned[0].match is None:
                        canned = self._canned[0].data
                        self._take_canned(self._canned[0])
                    else:
                        candidate = self._canned[0]
                cut = None
                if self._cuts and canned is None:
                    cut = self._cuts[0][0].copy()
                    self._cuts[0][1] -= 1
                    if self._cuts[0][1] <= 0:
                        self._cuts.popleft()
                link = _Link(self, client, next(self._numbers), canned, cut, candidate)
                self._links.add(link)
                self._all_threads = [t for t in self._all_threads if t.is_alive()] + [link]
                self._lock.notify_all()
            link.start()

    def _take_canned(self, rule: _Canned) -> bool:
        """Use one of ``rule``'s answers, if it has any left."""
        with self._lock:
            if rule.remaining <= 0:
                return False
            rule.remaining -= 1
            if rule.remaining <= 0 and rule in self._canned:
                self._canned.remove(rule)
            return True

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)
            self._lock.notify_all()

    def _count(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.faults_injected[kind] += n
            self._lock.notify_all()

    def close(self) -> None:
        """Stop accepting, end every connection, join every thread (bounded)."""
        self._stopping.set()
        _close(self._listener)
        deadline = time.monotonic() + _JOIN_TIMEOUT
        # The acceptor first: once it is gone, every link it made has been started.
        self._acceptor.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            links = list(self._links)
            threads = list(self._all_threads)
        for link in links:
            link.wake()
        for thread in threads:
            with contextlib.suppress(RuntimeError):  # not started: the acceptor did not return in time
                thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def live_connections(self) -> int:
        """Connections currently open (forwarding, blackholed or being answered)."""
        with self._lock:
            return len(self._links)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (up to ``timeout`` seconds) until ``predicate()`` is true; re-checked
        whenever a connection opens or ends, a fault is counted, or every 50 ms."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.05))
            return True

    def wait_connections(self, n: int, timeout: float) -> bool:
        """Wait until at least ``n`` connections have been accepted in all."""
        return self.wait_for(lambda: self.connections >= n, timeout)

    # -- faults ----------------------------------------------------------------------------------
    def _live(self) -> list[_Link]:
        with self._lock:
            return [link for link in self._links if link.canned is None and not link.ended.is_set()]

    def _broadcast(self, name: str, arg: Any = None, links: Iterable[_Link] | None = None) -> int:
        done = 0
        for link in list(links if links is not None else self._live()):
            if link.command(name, arg):
                done += 1
        return done

    def reset_all(self) -> int:
        """RST every live connection, client and upstream side. Returns how many."""
        n = self._broadcast(RESET)
        if n:
            self._count(RESET)
        return n

    def close_all(self) -> int:
        """Clean close of every live connection: a FIN to the client (after what was
        already read from upstream), the upstream closed. Returns how many."""
        n = self._broadcast(CLOSE)
        if n:
            self._count(CLOSE)
        return n

    def blackhole(self) -> int:
        """Silent half-open: live connections stop forwarding both ways and nothing is
        closed (no FIN, no RST); new connections work normally. A blackholed connection
        ends quietly when its client closes it. Returns how many."""
        n = self._broadcast(BLACKHOLE)
        if n:
            self._count(BLACKHOLE)
        return n

    def stall(self, seconds: float) -> None:
        """Forward nothing, on live and new connections, for ``seconds`` (data is kept
        and forwarded afterwards)."""
        with self._lock:
            self._stall_until = time.monotonic() + seconds
        self._count(STALL)
        self._wake_all()

    def drip(self, bytes_per_second: float | None) -> None:
        """Pass server->client data at ``bytes_per_second`` on live and new connections
        (``None`` or 0: full speed again)."""
        with self._lock:
            self._drip_rate = float(bytes_per_second) if bytes_per_second else None
        if bytes_per_second:
            self._count(DRIP)
        self._wake_all()

    def heal(self) -> None:
        """Undo ``blackhole`` (blackholed connections forward again, nothing lost),
        ``stall`` and ``drip``."""
        with self._lock:
            self._stall_until = 0.0
            self._drip_rate = None
        self._broadcast("heal")
        self._wake_all()

    def _wake_all(self) -> None:
        for link in self._live():
            link.wake()

    def truncate_after(self, n_bytes: int, *, reset: bool = False, count: int = 1, live: bool = False) -> int:
        """Cut the server->client data of the next ``count`` connections after
        ``n_bytes``, then close the connection (FIN, or RST with ``reset``). With
        ``live``, also cut each live connection ``n_bytes`` from now. Returns how many
        live connections were armed."""
        return self._arm(Cut(after=n_bytes, reset=reset), count, live)

    def truncate_when(self, pattern: bytes | str | re.Pattern[bytes] | Predicate, *, offset: int = 0,
                      skip: int = 0, min_offset: int = 0, reset: bool = False, count: int = 1,
                      live: bool = False) -> int:
        """Cut the server->client data at a pattern: ``offset`` bytes after the start of
        the ``skip``-th match (0: the first) of a bytes regex, ignoring matches in the
        first ``min_offset`` bytes; or where ``pattern`` (a callable given the data so
        far) says. Applies to the next ``count`` connections and, with ``live``, to every
        live one (matching data that arrives from now). Returns how many live connections
        were armed. Examples: inside a JSON row ``rb'"rev":"'``, offset 3; inside a
        chunk-size line ``rb'\\r\\n[0-9a-fA-F]+\\r\\n'``, offset 3; inside a server
        WebSocket text frame ``rb'\\x81[\\x02-\\x7d]\\['``, offset 4."""
        if callable(pattern) and not isinstance(pattern, re.Pattern):
            cut = Cut(predicate=pattern, reset=reset)
        else:
            if isinstance(pattern, str):
                pattern = pattern.encode()
            compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
            cut = Cut(pattern=compiled, offset=offset, skip=skip, min_offset=min_offset, reset=reset)
        return self._arm(cut, count, live)

    def _arm(self, cut: Cut, count: int, live: bool) -> int:
        with self._lock:
            if count > 0:
                self._cuts.append([cut, count])
        if not live:
            return 0
        return self._broadcast(TRUNCATE, cut.copy())

    def disarm(self, *, live: bool = False) -> None:
        """Forget pending truncations and canned responses for new connections; with
        ``live``, also the truncations armed on live connections."""
        with self._lock:
            self._cuts.clear()
            self._canned.clear()
        if live:
            self._broadcast(TRUNCATE, None)

    def respond(self, status: int, *, headers: Mapping[str, str] | None = None, body: bytes | str = b"",
                count: int = 1, match: bytes | str | re.Pattern[bytes] | None = None) -> None:
        """The next ``count`` connections are not forwarded: each gets this raw HTTP
        response (after its request head is read), then a FIN. ``Content-Length`` and
        ``Connection: close`` are added unless given. Works for WebSocket handshakes too.
        ``match`` (a regex): only connections whose request head matches get the answer
        (e.g. ``rb"feed=continuous"``); the others are forwarded."""
        if isinstance(match, str):
            match = match.encode()
        if isinstance(match, bytes):
            match = re.compile(match)
        with self._lock:
            self._canned.append(_Canned(_canned_response(status, headers, body), count, match))

    @property
    def pending_canned(self) -> int:
        """Canned responses not yet served."""
        with self._lock:
            return sum(c.remaining for c in self._canned)

    @property
    def pending_cuts(self) -> int:
        """Truncation rules not yet handed to a new connection."""
        with self._lock:
            return sum(c[1] for c in self._cuts)
