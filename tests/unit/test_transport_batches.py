"""Batch reading in the HTTP transports: long-poll pages and line-by-line answers,
continuous chunks, the fast Change builder, the SSE tuple API, reachability probes."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import responses

from cloudsync.models import Change
from cloudsync.transports import (
    ChangesRequest,
    ContinuousTransport,
    LastSeq,
    LongPollTransport,
    MockTransport,
)
from cloudsync.wire.sse import SSEParser

from ._feed_helpers import URL, bound, line, query, row


@responses.activate
def test_longpoll_sends_page_size_as_limit() -> None:
    """By default a long poll asks for at most page_size (10,000) rows."""
    responses.get(URL, json={"results": [], "last_seq": 1})
    list(bound(LongPollTransport()).items(ChangesRequest()))
    assert query(responses.calls[0])["limit"] == "10000"


@responses.activate
def test_longpoll_page_size_none_sends_no_limit() -> None:
    """page_size=None leaves the answer unbounded (no limit parameter)."""
    responses.get(URL, json={"results": [], "last_seq": 1})
    list(bound(LongPollTransport(page_size=None)).items(ChangesRequest()))
    assert "limit" not in query(responses.calls[0])


def test_longpoll_page_size_must_be_positive() -> None:
    """page_size=0 is rejected."""
    with pytest.raises(ValueError):
        LongPollTransport(page_size=0)


@responses.activate
def test_longpoll_line_layout_parsed_in_batches() -> None:
    """A CouchDB-style answer (one row per line) gives the rows, then LastSeq, as batches."""
    body = b'{"results":[\n' + line(row(1, "a")) + b",\n" + line(row(2, "b")) + b'\n],\n"last_seq":2,"pending":0}\n'
    responses.get(URL, body=body)
    batches = list(bound(LongPollTransport()).batches(ChangesRequest()))
    items = [item for batch in batches for item in batch]
    assert [getattr(i, "id", i) for i in items] == ["a", "b", LastSeq(2)]


@responses.activate
def test_longpoll_one_line_answer_parsed_whole() -> None:
    """pouchdb-server's one-line answer is parsed whole: the same items."""
    responses.get(URL, body=json.dumps({"results": [row(1, "a"), row(2, "b")], "last_seq": 2}).encode() + b"\n")
    items = list(bound(LongPollTransport()).items(ChangesRequest()))
    assert [getattr(i, "id", i) for i in items] == ["a", "b", LastSeq(2)]


@responses.activate
def test_longpoll_falls_back_without_repeating_rows() -> None:
    """Rows spread over several lines switch to whole-body parsing; rows already
    delivered line by line are not delivered again."""
    pretty = json.dumps(row(2, "b"), indent=1).encode()
    body = b'{"results":[\n' + line(row(1, "a")) + b",\n" + pretty + b'\n],\n"last_seq":2}\n'
    responses.get(URL, body=body)
    items = list(bound(LongPollTransport()).items(ChangesRequest()))
    assert [getattr(i, "id", i) for i in items] == ["a", "b", LastSeq(2)]


def test_longpoll_rows_delivered_before_answer_completes() -> None:
    """Rows of a one-row-per-line answer are yielded while the server is still sending."""
    listener = socket.create_server(("127.0.0.1", 0))
    rest_sent = threading.Event()
    first_seen = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            first = b'{"results":[\n' + line(row(1, "a")) + b",\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(first), first))
            first_seen.wait(5)
            rest = line(row(2, "b")) + b'\n],\n"last_seq":2}\n'
            conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
            rest_sent.set()

    threading.Thread(target=serve, daemon=True).start()
    transport = bound(LongPollTransport(), f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        batches = transport.batches(ChangesRequest())
        first = next(batches)
        assert [c.id for c in first] == ["a"] and not rest_sent.is_set()
        first_seen.set()
        items = [item for batch in batches for item in batch]
        assert [getattr(i, "id", i) for i in items] == ["b", LastSeq(2)]
    finally:
        first_seen.set()
        listener.close()


@responses.activate
def test_continuous_chunk_is_one_batch() -> None:
    """The complete lines of one chunk arrive as one batch (heartbeats skipped)."""
    body = line(row(1, "a")) + b"\n\n" + line(row(2, "b")) + b"\n" + line(row(3, "c")) + b"\n"
    responses.get(URL, body=body)
    batches = list(bound(ContinuousTransport(catch_up=False)).batches(ChangesRequest()))
    assert [[c.id for c in batch] for batch in batches] == [["a", "b", "c"]]


def test_from_row_builds_an_ordinary_frozen_change() -> None:
    """Change.from_row's fast path builds a Change equal (and hashing equal) to the
    constructor's, and just as frozen; unusual rows still work."""
    fast = Change.from_row(row(1, "a", "1-x", deleted=True, doc={"_id": "a"}))
    slow = Change(1, "a", "1-x", True, {"_id": "a"}, ("1-x",))
    assert fast == slow and hash(Change.from_row(row(1, "a"))) == hash(Change(1, "a", "1-a", False, None, ("1-a",)))
    assert type(fast) is Change and repr(fast) == repr(slow)
    with pytest.raises(AttributeError):
        fast.id = "b"  # type: ignore[misc]
    assert Change.from_row({"id": "x", "doc": {"_rev": "2-a"}}) == Change(None, "x", "2-a", False, {"_rev": "2-a"}, ())
    assert Change.from_row({"id": "y", "changes": [{"rev": "1"}, {"rev": "2"}]}).revs == ("1", "2")


def test_sse_feed_fields_gives_tuples() -> None:
    """feed_fields() returns (type, data, id) for each event, like feed() without Event objects."""
    parser = SSEParser()
    assert parser.feed_fields(b"data: a\nid: 1\n\nevent: x\ndata: b\n\n") == [("message", "a", "1"), ("x", "b", "1")]


def test_reachable_true_for_a_listening_port_false_for_a_closed_one() -> None:
    """Transport.reachable() is a bare TCP connect to the database's server."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        assert bound(LongPollTransport(), f"http://127.0.0.1:{port}").reachable() is True
    finally:
        listener.close()
    assert bound(LongPollTransport(), f"http://127.0.0.1:{port}").reachable() is False


def test_reachable_unknown_without_http() -> None:
    """A transport without an HTTP base URL cannot tell: None."""
    transport = MockTransport(lambda request: [])
    assert transport.reachable() is None
