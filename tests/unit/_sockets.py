"""Hand-written loopback servers for transport tests: ``ScriptServer`` runs a script per
connection; ``bound`` binds a transport to one; the ``ws_*`` helpers speak the server side
of a WebSocket."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from collections.abc import Callable

from cloudsync._http import HTTP
from cloudsync._retry import RetryPolicy
from cloudsync.database import Database

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ScriptServer:
    """Accepts connections on 127.0.0.1 and runs ``script(conn, request_bytes)`` for each."""

    def __init__(self, script: Callable[[socket.socket, bytes], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        try:  # the test may end (and close every connection) at any point
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests.append(data)
            self.script(conn, data)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for conn in self.conns:
            conn.close()


def ws_handshake(conn: socket.socket, request: bytes, status: int = 101) -> None:
    if status != 101:
        conn.sendall(b"HTTP/1.1 %d Nope\r\nContent-Length: 0\r\n\r\n" % status)
        return
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    header = struct.pack("!BB", 128 | opcode, n) if n < 126 else struct.pack("!BBH", 128 | opcode, 126, n)
    return header + payload


def ws_read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """One masked client frame: ``(opcode, payload)``; ``OSError`` at EOF."""

    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = conn.recv(n - len(data))
            if not part:
                raise OSError("eof")
            data += part
        return data

    b1, b2 = exact(2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    mask = exact(4)
    return b1 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(exact(n)))


def ws_read(conn: socket.socket) -> bytes:
    """The payload of one masked client frame."""
    return ws_read_frame(conn)[1]


def bound(transport, server, auth=None):
    """`transport` attached to database "db" on the script server's port."""
    http = HTTP(f"http://127.0.0.1:{server.port}", auth=auth, retry=RetryPolicy.never())
    transport.attach(Database(http, "db").changes_endpoint())
    return transport
