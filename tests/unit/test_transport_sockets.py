"""Transports against hand-written loopback servers: truncated chunks, stalls, close()
unblocking a read, and the WebSocket protocol (handshake, options message, frames)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from cloudsync.errors import NetworkError, RequestTimeout, StreamError, Unauthorized
from cloudsync.transports import (
    ChangesRequest,
    ContinuousTransport,
    LastSeq,
    LongPollTransport,
    SSETransport,
    WebSocketTransport,
)

from ._sockets import bound, ws_frame, ws_handshake, ws_read

CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def read_in_thread(transport) -> tuple[threading.Event, list[BaseException]]:
    """Read a stream to its end on a daemon thread: (set when it ended, what it raised)."""
    done = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            list(transport.items(ChangesRequest(stall_timeout=30)))
        except BaseException as exc:
            errors.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    return done, errors


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def row(seq: int, doc_id: str) -> bytes:
    return json.dumps({"seq": seq, "id": doc_id, "changes": [{"rev": "1-x"}]}).encode()


def test_continuous_truncated_chunked_body_is_stream_error(serve) -> None:
    """A chunked body cut mid-chunk raises StreamError after the complete rows."""

    def script(conn, _):
        conn.sendall(CHUNKED + chunk(row(1, "a") + b"\n") + b"40\r\n" + row(2, "b")[:10])
        conn.close()

    transport = bound(ContinuousTransport(catch_up=False), serve(script))
    seen = []
    with pytest.raises(StreamError):
        for item in transport.items(ChangesRequest()):
            seen.append(item.id)
    assert seen == ["a"]


def test_continuous_rows_split_across_chunks(serve) -> None:
    """A row arriving in several chunks (and several rows in one) parses correctly."""
    a, b = row(1, "a"), row(2, "b")

    def script(conn, _):
        conn.sendall(CHUNKED)
        for piece in (a[:5], a[5:] + b"\n\n" + b[:3], b[3:] + b"\n", b'{"last_seq":2}\n'):
            conn.sendall(chunk(piece))
            time.sleep(0.01)
        conn.sendall(b"0\r\n\r\n")

    items = list(bound(ContinuousTransport(catch_up=False), serve(script)).items(ChangesRequest()))
    assert [getattr(i, "id", i) for i in items] == ["a", "b", LastSeq(2)]


def test_sse_crlf_split_across_network_chunks(serve) -> None:
    """Through a real socket: a CRLF split between two chunks is one line end."""

    def script(conn, _):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.sendall(chunk(b"data: " + row(1, "a") + b"\r"))
        time.sleep(0.05)
        conn.sendall(chunk(b"\n\r\n") + b"0\r\n\r\n")

    items = list(bound(SSETransport(), serve(script)).items(ChangesRequest()))
    assert [i.id for i in items] == ["a"]


def test_silence_beyond_stall_timeout_is_request_timeout(serve) -> None:
    """No byte for stall_timeout seconds raises RequestTimeout (socket read timeout)."""

    def script(conn, _):
        conn.sendall(CHUNKED + chunk(b"\n"))
        time.sleep(3)

    transport = bound(ContinuousTransport(catch_up=False), serve(script))
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        list(transport.items(ChangesRequest(stall_timeout=0.3)))
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("headers_first", [True, False])
@pytest.mark.parametrize("cls", [ContinuousTransport, LongPollTransport])
def test_close_unblocks_read_from_another_thread(serve, cls, headers_first) -> None:
    """close() from another thread ends a blocked read at once (before or after headers)."""
    hold = threading.Event()
    answered = threading.Event()

    def script(conn, _):
        if headers_first:
            conn.sendall(CHUNKED + chunk(b"\n"))
        answered.set()
        hold.wait(5)

    transport = bound(cls(), serve(script))
    done, errors = read_in_thread(transport)
    assert answered.wait(5)  # the request was sent: the reader waits on the socket now
    started = time.monotonic()
    transport.close()
    assert done.wait(1.0), "close() did not unblock the read"
    assert time.monotonic() - started < 1.0
    hold.set()
    assert errors and isinstance(errors[0], NetworkError)


# -- WebSocket ----------------------------------------------------------------------------------------


def test_websocket_protocol(serve) -> None:
    """Upgrade with auth headers, ONE options message, text and binary row arrays, "" and []
    skipped, close 1000 is a clean end."""
    options: list[dict] = []

    def script(conn, request):
        ws_handshake(conn, request)
        options.append(json.loads(ws_read(conn)))
        conn.sendall(ws_frame(b'""'))
        conn.sendall(ws_frame(b"[" + row(1, "a") + b"," + row(2, "b") + b"]"))
        conn.sendall(ws_frame(b"[" + row(3, "c") + b"]", opcode=2))
        conn.sendall(ws_frame(b"[]"))
        conn.sendall(ws_frame(struct.pack("!H", 1000), opcode=8))

    server = serve(script)
    from cloudsync.auth import BasicAuth

    transport = bound(WebSocketTransport(), server, auth=BasicAuth("u", "p"))
    request = ChangesRequest(since="5-x", include_docs=True, heartbeat=30, doc_ids=("a",), timeout=None)
    items = list(transport.items(request))
    assert [i.id for i in items] == ["a", "b", "c"]
    assert options == [{"since": "5-x", "include_docs": True, "heartbeat": 30000, "filter": "_doc_ids", "doc_ids": ["a"]}]
    head = server.requests[0]
    assert head.startswith(b"GET /db/_changes?feed=websocket ")
    assert b"Authorization: Basic" in head


def test_websocket_options_resent_on_every_connection(serve) -> None:
    """Each connection sends its own options message (filters survive reconnects)."""
    options: list[dict] = []

    def script(conn, request):
        ws_handshake(conn, request)
        options.append(json.loads(ws_read(conn)))
        conn.sendall(ws_frame(struct.pack("!H", 1000), opcode=8))

    transport = bound(WebSocketTransport(), serve(script))
    list(transport.items(ChangesRequest(since=1, selector={"t": 1}, timeout=None)))
    list(transport.items(ChangesRequest(since=2, selector={"t": 1}, timeout=None)))
    assert [(o["since"], o["selector"]) for o in options] == [(1, {"t": 1}), (2, {"t": 1})]


def test_websocket_abrupt_close_is_stream_error(serve) -> None:
    """A connection dropped without a close frame raises a NetworkError subclass."""

    def script(conn, request):
        ws_handshake(conn, request)
        ws_read(conn)
        conn.sendall(ws_frame(b"[" + row(1, "a") + b"]"))
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    transport = bound(WebSocketTransport(), serve(script))
    seen = []
    with pytest.raises(NetworkError):
        for item in transport.items(ChangesRequest(timeout=None)):
            seen.append(item.id)
    assert seen == ["a"]


def test_websocket_bad_status_is_typed_error(serve) -> None:
    """A refused upgrade raises the status's error (401 -> Unauthorized)."""
    transport = bound(WebSocketTransport(), serve(lambda conn, req: ws_handshake(conn, req, 401)))
    with pytest.raises(Unauthorized):
        list(transport.items(ChangesRequest()))


def test_websocket_close_unblocks_and_stall_times_out(serve) -> None:
    """close() unblocks a silent websocket at once; silence alone gives RequestTimeout."""
    hold = threading.Event()
    options_read = threading.Semaphore(0)

    def script(conn, request):
        ws_handshake(conn, request)
        ws_read(conn)
        options_read.release()
        hold.wait(5)

    server = serve(script)
    transport = bound(WebSocketTransport(), server)
    with pytest.raises(RequestTimeout):
        list(transport.items(ChangesRequest(stall_timeout=0.3)))
    assert options_read.acquire(timeout=5)  # the first connection's
    done, errors = read_in_thread(transport)
    assert options_read.acquire(timeout=5)  # connected and sent: the client is reading now
    transport.close()
    assert done.wait(1.0)
    assert errors and isinstance(errors[0], NetworkError), errors
    hold.set()


def test_websocket_heartbeat_clamped() -> None:
    """Sync Gateway raises heartbeats under 25 s to 25 s; configurable for other servers."""
    assert WebSocketTransport(ping_interval=None).effective_heartbeat(10) == 25
    assert WebSocketTransport(ping_interval=None, min_heartbeat=0).effective_heartbeat(10) == 10
    assert LongPollTransport().effective_heartbeat(120) == 60


# -- long-poll: the next page asked for while a full page is delivered ----------------------------------
def page(rows: list[bytes], last_seq: int) -> bytes:
    body = b'{"results":[' + b",".join(rows) + b'],"last_seq":%d}' % last_seq  # one line, like pouchdb-server
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


def since_of(request: bytes) -> str:
    target = request.split(b" ", 2)[1].decode()
    return dict(p.split("=", 1) for p in target.split("?", 1)[1].split("&")).get("since", "")


def test_longpoll_asks_for_the_next_page_before_delivering_a_full_one(serve) -> None:
    """After a full page held whole, the request for the next page is on its way before
    the page's changes are handed out, and the next stream() takes its answer."""
    second_asked = threading.Event()

    def script(conn, request):
        if since_of(request) in ("", "0"):
            conn.sendall(page([row(1, "a"), row(2, "b")], 2))
        else:
            second_asked.set()
            conn.sendall(page([row(3, "c")], 3))
        conn.close()

    server = serve(script)
    transport = bound(LongPollTransport(page_size=2), server)
    batches = transport.batches(ChangesRequest(since=0))
    first = next(batches)
    assert [getattr(i, "id", i) for i in first] == ["a", "b", LastSeq(2)]
    assert second_asked.wait(5)  # while the first page is still in our hands
    assert list(batches) == []
    items = list(transport.items(ChangesRequest(since=2)))
    assert [getattr(i, "id", i) for i in items] == ["c", LastSeq(3)]
    assert [since_of(r) for r in server.requests] == ["0", "2"]  # no request twice


def test_longpoll_partial_page_asks_for_nothing_ahead(serve) -> None:
    """A page with fewer rows than the limit is the end of the backlog: no request ahead."""

    def script(conn, request):
        conn.sendall(page([row(1, "a")], 1))
        conn.close()

    server = serve(script)
    transport = bound(LongPollTransport(page_size=2), server)
    assert [getattr(i, "id", i) for i in transport.items(ChangesRequest(since=0))] == ["a", LastSeq(1)]
    assert transport._next is None and len(server.requests) == 1


def test_longpoll_next_page_for_another_since_is_discarded(serve) -> None:
    """A stream() from another position does not take the page asked for ahead."""

    def script(conn, request):
        conn.sendall(page([row(1, "a"), row(2, "b")], 2) if since_of(request) != "2" else page([row(3, "c")], 3))
        conn.close()

    server = serve(script)
    transport = bound(LongPollTransport(page_size=2), server)
    list(transport.items(ChangesRequest(since=0)))
    items = list(transport.items(ChangesRequest(since=1)))  # e.g. a resume after a failure
    assert [getattr(i, "id", i) for i in items][:2] == ["a", "b"]
    assert since_of(server.requests[-1]) in ("1", "2")


def test_close_aborts_a_next_page_still_opening(serve) -> None:
    """close() while the request ahead waits for its answer ends that request at once."""
    hold = threading.Event()
    second_asked = threading.Event()

    def script(conn, request):
        if since_of(request) == "0":
            conn.sendall(page([row(1, "a"), row(2, "b")], 2))
            conn.close()
        else:
            second_asked.set()
            hold.wait(10)  # never answers in time

    server = serve(script)
    transport = bound(LongPollTransport(page_size=2), server)
    list(transport.items(ChangesRequest(since=0, stall_timeout=30)))
    assert second_asked.wait(5)
    following = transport._next
    transport.close()
    assert following is not None and following._done.wait(2)
    with pytest.raises(NetworkError):
        following.result()
    assert transport._next is None
    hold.set()


def test_longpoll_failed_request_ahead_is_asked_again(serve) -> None:
    """When the request asked ahead fails (here the server drops it unanswered), the next
    stream() asks afresh instead of reporting an error."""
    asked: list[str] = []

    def script(conn, request):
        asked.append(since_of(request))
        if asked.count("2") == 1 and since_of(request) == "2":
            conn.close()  # the page asked ahead: dropped without an answer
            return
        conn.sendall(page([row(1, "a"), row(2, "b")], 2) if since_of(request) == "0" else page([row(3, "c")], 3))
        conn.close()

    server = serve(script)
    transport = bound(LongPollTransport(page_size=2), server)
    list(transport.items(ChangesRequest(since=0)))
    following = transport._next
    assert following is not None and following._done.wait(5)
    items = list(transport.items(ChangesRequest(since=2)))
    assert [getattr(i, "id", i) for i in items] == ["c", LastSeq(3)]
    assert asked == ["0", "2", "2"]


def test_longpoll_next_page_asked_on_a_miscount_is_dropped(serve) -> None:
    """Documents with a "changes" key of their own make a partial page look full before
    it is parsed; the request asked ahead on that count is dropped once the parse shows
    the page was not full."""

    def doc_row(seq: int, doc_id: str) -> bytes:
        return json.dumps({"seq": seq, "id": doc_id, "changes": [{"rev": "1-x"}],
                           "doc": {"_id": doc_id, "changes": 2}}).encode()

    def script(conn, request):
        conn.sendall(page([doc_row(1, "a"), doc_row(2, "b")], 2) if since_of(request) == "0" else page([], 2))
        conn.close()

    server = serve(script)
    transport = bound(LongPollTransport(page_size=3), server)
    items = list(transport.items(ChangesRequest(since=0)))
    assert [getattr(i, "id", i) for i in items] == ["a", "b", LastSeq(2)]
    assert transport._next is None and not transport.last_page_full


def test_tail_last_seq_reads_the_end_of_an_answer() -> None:
    """last_seq is read from an answer's end, with or without pending; other ends are unknown."""
    from cloudsync.wire.longpoll import MISSING as _MISSING
    from cloudsync.wire.longpoll import _tail_last_seq

    assert _tail_last_seq(b'{"results":[],"last_seq":5}\n') == 5
    assert _tail_last_seq(b'{"results":[{"last_seq":1}],"last_seq":"7-g1","pending":0}') == "7-g1"
    assert _tail_last_seq(b'{"results":[],"last_seq":5') is _MISSING
    assert _tail_last_seq(b'{"results":[]}') is _MISSING
