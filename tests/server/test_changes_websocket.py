"""`_changes?feed=websocket`: options in the first message, the backlog as one message, an
empty list once caught up, empty heartbeat messages, pushed writes and a 1000 close at the timeout."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import websocket

from ._feeds import DEADLINE, close_frame, put, ws_url


@pytest.fixture
def ws(db, http) -> Iterator[tuple[websocket.WebSocket, str]]:
    """A WebSocket feed of `db` from 0 with docs and 50 ms heartbeats, after a write of `a`:
    (the socket, `a`'s rev)."""
    rev = put(http, db, "a")
    sock = websocket.create_connection(ws_url(db), timeout=DEADLINE)
    sock.send(json.dumps({"since": 0, "include_docs": True, "heartbeat": 50}))
    yield sock, rev
    sock.close()


def test_websocket_backlog_is_one_message_of_rows(ws):
    """The backlog arrives as one JSON list of rows, with docs when asked."""
    sock, r1 = ws
    rows = json.loads(sock.recv())
    assert [(r["id"], r["changes"][0]["rev"], r["doc"]["_rev"]) for r in rows] == [("a", r1, r1)]


def test_websocket_says_caught_up_once_with_an_empty_list(ws):
    """After the backlog comes one `[]`: caught up."""
    sock, _ = ws
    sock.recv()
    assert sock.recv() == "[]"


def test_websocket_heartbeat_is_an_empty_message(ws):
    """A heartbeat is an empty message, as Sync Gateway sends."""
    sock, _ = ws
    sock.recv()
    sock.recv()
    assert sock.recv() == ""


def test_websocket_pushes_writes(db, http, ws):
    """A write while the feed waits arrives as a message with its row."""
    sock, _ = ws
    sock.recv()
    sock.recv()
    rev = put(http, db, "b", n=2)
    msg = sock.recv()
    while msg == "":
        msg = sock.recv()
    assert [r["changes"][0]["rev"] for r in json.loads(msg)] == [rev]


@pytest.fixture
def timed(db, http) -> Iterator[websocket.WebSocket]:
    """A WebSocket feed with `since=0&timeout=100` in its URL and `doc_ids: ["zzz"]` in its
    first message, over a database holding `a`."""
    put(http, db, "a")
    sock = websocket.create_connection(ws_url(db, "feed=websocket&since=0&timeout=100"), timeout=DEADLINE)
    sock.send(json.dumps({"doc_ids": ["zzz"]}))
    yield sock
    sock.close()


def test_websocket_message_options_apply_over_query_parameters(timed):
    """Options in the first message apply on top of the URL's: `doc_ids` filters out `a`."""
    assert timed.recv() == "[]"


def test_websocket_timeout_closes_with_1000(timed):
    """At its `timeout` the feed closes the socket with 1000 (normal closure)."""
    timed.recv()
    opcode, code = close_frame(timed)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert code == 1000
