"""A file body sent again after a 401 renewed the credentials starts over from where it
started, and one that cannot be rewound is not sent again."""

from __future__ import annotations

import io
import socket

import pytest

import cloudsync


class Uploads:
    """A loopback server that answers 401 to the token "expired" and 201 to any other,
    recording each request's body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, conn: socket.socket, request: bytes) -> None:
        head, _, body = request.partition(b"\r\n\r\n")
        lengths = [int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")]
        # A stream of unknown length comes chunked: read to its last chunk.
        done = (lambda b: len(b) >= lengths[0]) if lengths else (lambda b: b.endswith(b"0\r\n\r\n"))
        while not done(body):
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk
        self.bodies.append(body if lengths else _unchunk(body))
        if b"Bearer expired" in head:
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        else:
            answer = b'{"ok":true,"id":"doc","rev":"2-b"}'
            conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(answer), answer))
        conn.close()


def _unchunk(body: bytes) -> bytes:
    out, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2:]


def client_for(server) -> cloudsync.Client:
    tokens = iter(["expired", "fresh"])
    return cloudsync.Client(f"http://127.0.0.1:{server.port}", auth=cloudsync.BearerTokenAuth(lambda: next(tokens)))


def test_seekable_file_is_sent_whole_again_after_a_401(serve) -> None:
    """After a 401 renews the token, the resent upload carries the whole file again."""
    uploads = Uploads()
    server = serve(uploads)
    with client_for(server) as client:
        rev = client.database("db").put_attachment("doc", "a.bin", io.BytesIO(b"hello"), rev="1-a")
    assert rev == "2-b"
    assert uploads.bodies == [b"hello", b"hello"]


class Pipe(io.RawIOBase):
    """A readable stream that cannot seek (like a pipe)."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self.data.readinto(buffer)


def test_unrewindable_file_is_not_resent_after_a_401(serve) -> None:
    """An upload that cannot be read again raises the 401 instead of sending an empty body."""
    uploads = Uploads()
    server = serve(uploads)
    with client_for(server) as client, pytest.raises(cloudsync.errors.Unauthorized):
        client.database("db").put_attachment("doc", "a.bin", Pipe(b"hello"), rev="1-a")
    assert uploads.bodies == [b"hello"]
