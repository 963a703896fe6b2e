"""What the server's feed tests share: writing a document, opening a ``_changes`` feed of
each kind (streamed HTTP or WebSocket) and reading its rows, lines and events with a deadline,
and the bytes of one row as CouchDB 3 frames it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import requests
import websocket

#: A seq as the server writes it, quoted: ``"<number>-g1AAAA<opaque>"``.
SEQ = re.compile(rb'"(\d+)-g1AAAA[A-Za-z0-9_-]+"')
#: Seconds any single wait in a feed test may take before it fails.
DEADLINE = 10.0


class Reader:
    """Accumulates a streamed body and waits (with a deadline) until a pattern shows up."""

    def __init__(self, resp: requests.Response) -> None:
        self.resp = resp
        self.chunks: Iterator[bytes] = resp.iter_content(chunk_size=None)
        self.data = b""

    def until(self, predicate: Callable[[bytes], bool], deadline: float = DEADLINE) -> bytes:
        """Read until `predicate(all bytes so far)` holds; fail after `deadline` seconds."""
        end = time.monotonic() + deadline
        while not predicate(self.data):
            assert time.monotonic() < end, f"timed out; got {self.data!r}"
            self.data += next(self.chunks)
        return self.data

    def rest(self) -> bytes:
        """Read until the server ends the body."""
        for chunk in self.chunks:
            self.data += chunk
        return self.data


def stream(http: requests.Session, url: str, **params: object) -> Reader:
    """A streamed `GET <url>/_changes` with `params`, answered 200."""
    r = http.get(url + "/_changes", params=params, stream=True, timeout=DEADLINE)
    assert r.status_code == 200
    return Reader(r)


def live(reader: Reader) -> Reader:
    """`reader` once a first heartbeat shows its feed is waiting."""
    reader.until(lambda d: b"\n" in d)
    return reader


def put(http: requests.Session, db: str, doc_id: str, **fields: object) -> str:
    """Write `fields` as document `doc_id` (answered 201); returns the new rev."""
    r = http.put(f"{db}/{doc_id}", json=fields)
    assert r.status_code == 201
    return r.json()["rev"]


def row_bytes(seq: bytes, doc_id: str, rev: str) -> bytes:
    """One change row exactly as CouchDB 3 writes it (`seq` already quoted)."""
    return b'{"seq":' + seq + b',"id":"' + doc_id.encode() + b'","changes":[{"rev":"' + rev.encode() + b'"}]}'


def lines(reader: Reader, count: int) -> list[dict]:
    """The first `count` rows of a continuous feed, decoded."""
    data = reader.until(lambda d: len([x for x in d.split(b"\n") if x.strip()]) >= count)
    return [json.loads(x) for x in data.split(b"\n") if x.strip()]


def events(reader: Reader, count: int) -> list[tuple[dict, str]]:
    """The first `count` change events of an EventSource feed, as (row, event id as sent)."""
    data = reader.until(lambda d: d.count(b"data: {") >= count and d.endswith(b"\n\n"))
    out = []
    for event in data.split(b"\n\n"):
        fields = dict(line.split(b": ", 1) for line in event.split(b"\n") if line.startswith((b"data: ", b"id: ")))
        if fields.get(b"data", b"").startswith(b"{"):
            out.append((json.loads(fields[b"data"]), fields[b"id"].decode()))
    return out


def ws_url(db: str, query: str = "feed=websocket") -> str:
    """The WebSocket URL of `db`'s changes feed."""
    return db.replace("http", "ws", 1) + "/_changes?" + query


def ws_from_now(db: str, **options: object) -> websocket.WebSocket:
    """A WebSocket feed from now, read until it says it is caught up."""
    ws = websocket.create_connection(ws_url(db), timeout=DEADLINE)
    ws.send(json.dumps({"since": "now", **options}))
    assert ws.recv() == "[]"
    return ws


def ws_rows(ws: websocket.WebSocket, count: int) -> list[dict]:
    """The next `count` rows of a WebSocket feed, heartbeats skipped."""
    rows: list[dict] = []
    while len(rows) < count:
        msg = ws.recv()
        if msg:
            rows += json.loads(msg)
    return rows


def close_frame(ws: websocket.WebSocket) -> tuple[int, int]:
    """The next frame's opcode and, for a close frame, its status code."""
    opcode, frame = ws.recv_data(control_frame=True)
    return opcode, int.from_bytes(frame[:2], "big")
