"""The feeds' fast paths give exactly what the general parsers give: SSE events of plain
``data``/``id`` lines, WebSocket messages written a row per line, long-poll answers that
stream a row per line (and then are no longer paged), continuous feeds that catch up
with normal requests first."""

from __future__ import annotations

import json
import types

import pytest
import responses

from cloudsync import _json
from cloudsync.errors import InvalidResponse
from cloudsync.models import Change
from cloudsync.transports import ChangesRequest, ContinuousTransport, LastSeq, LongPollTransport, SSETransport
from cloudsync.transports import sse as sse_module
from cloudsync.wire.sse import SSEParser
from cloudsync.wire.websocket import _row_per_line

from ._feed_helpers import URL, FakeDB, line, query, row


def event(obj, event_id) -> bytes:
    return b"data: " + line(obj) + b"\nid: " + str(event_id).encode() + b"\n\n"


def sse_items(monkeypatch, chunks: list[bytes]) -> list:
    """What SSETransport yields when the body arrives in ``chunks``."""
    answer = types.SimpleNamespace(chunks=lambda: iter(chunks))
    monkeypatch.setattr(sse_module, "open_feed", lambda *args, **kwargs: answer)
    transport = SSETransport()
    transport.attach(FakeDB().changes_endpoint())
    return list(transport.items(ChangesRequest()))


def reference_items(body: bytes) -> list:
    """The same body through the spec parser alone, event by event."""
    parser = SSEParser()
    items: list = []
    for event_type, data, event_id in parser.feed_fields(body):
        if event_type == "heartbeat" or not data.strip():
            continue
        if event_type == "last_seq":
            items.append(LastSeq(json.loads(data)))
            continue
        obj = json.loads(data)
        if "last_seq" in obj:
            items.append(LastSeq(obj["last_seq"]))
            continue
        change = Change.from_row(obj)
        if change.seq is None:
            change = Change(event_id, change.id, change.rev, change.deleted, change.doc, change.revs)
        items.append(change)
    return items


PLAIN = event(row(1, "a"), 1) + event(row(2, "b", "2-b", deleted=True), 2) + event(row("3-x", "c\u00e9"), "3-x")
MIXED = (
    b": comment\n\n"
    + event(row(1, "a"), 1)
    + b"event: heartbeat\ndata:\n\n"
    + b'data: {"id":"noseq","changes":[{"rev":"1-n"}]}\nid: 7\n\n'
    + b"retry: 1500\n\n"
    + b'data: {"seq":8,\ndata: "id":"multi","changes":[{"rev":"1-m"}]}\nid: 8\n\n'
    + event(row(9, "d"), 9)
    + b'data: {"seq":10,"id":"crlf","changes":[{"rev":"1-c"}]}\r\nid: 10\r\n\r\n'
    + event(row(11, "e"), 11)
    + b"event: last_seq\ndata: 11\n\n"
)


@pytest.mark.parametrize("body", [PLAIN, MIXED], ids=["plain", "mixed"])
def test_sse_any_two_chunks_give_the_reference_items(monkeypatch, body: bytes) -> None:
    """Wherever the body is cut in two, the SSE transport yields what the spec parser
    gives for the whole body."""
    expected = reference_items(body)
    assert len(expected) >= 3
    for cut in range(len(body) + 1):
        got = sse_items(monkeypatch, [body[:cut], body[cut:]])
        assert got == expected, cut


def test_sse_three_chunks_give_the_reference_items(monkeypatch) -> None:
    """Cut in three (every 5th pair of positions), the mixed body still gives the
    reference items: held bytes, events the parser began and CR lines interleave."""
    expected = reference_items(MIXED)
    for first in range(0, len(MIXED) + 1, 5):
        for second in range(first, len(MIXED) + 1, 5):
            got = sse_items(monkeypatch, [MIXED[:first], MIXED[first:second], MIXED[second:]])
            assert got == expected, (first, second)


def test_sse_plain_events_skip_the_line_parser(monkeypatch) -> None:
    """Events of just data, id and a blank line are read without the per-line parser."""
    calls = []
    original = SSEParser.feed_fields
    monkeypatch.setattr(SSEParser, "feed_fields", lambda self, chunk: calls.append(chunk) or original(self, chunk))
    body = b": hello\n\n" + PLAIN  # the first event (before the parser has started) takes the long way
    got = sse_items(monkeypatch, [body[:9], body[9:]])
    assert [c.id for c in got] == ["a", "b", "c\u00e9"]
    assert calls == [b": hello\n\n"]


def test_sse_fast_path_keeps_the_last_event_id(monkeypatch) -> None:
    """After a block read on the fast path, a seq-less row takes the last id sent."""
    body = PLAIN + b'data: {"id":"z","changes":[{"rev":"1-z"}]}\n\n'
    got = sse_items(monkeypatch, [b": x\n\n", body])
    assert [(c.seq, c.id) for c in got][-1] == ("3-x", "z")


def test_sse_bad_json_still_a_typed_error(monkeypatch) -> None:
    """Malformed event data fails with InvalidResponse, fast path or not."""
    with pytest.raises(InvalidResponse):
        sse_items(monkeypatch, [b": x\n\n", event(row(1, "a"), 1) + b"data: {nope\nid: 2\n\n"])


# -- WebSocket messages ----------------------------------------------------------------------------
def message(rows: list, sep: bytes = b",\n") -> bytes:
    return b"[" + sep.join(line(r) for r in rows) + b"]"


def test_websocket_row_per_line_message_parsed_row_by_row() -> None:
    """A message written a row per line gives the same items as parsing it whole."""
    rows = [row(1, "a"), row(2, "}\n,{", "2-b"), row(3, "c", deleted=True, doc={"_id": "c", "x": [1, {"y": 2}]})]
    data = message(rows)
    assert _row_per_line(data, "ws") == [Change.from_row(r) for r in rows]


@pytest.mark.parametrize(
    "data",
    [
        message([row(1, "a"), row(2, "b")], b","),  # no line ends: parsed whole
        json.dumps([row(1, "a"), row(2, "b")], indent=1).encode(),  # pretty-printed rows
        message([row(1, "a"), {"last_seq": 1}, row(2, "b")]),  # a last_seq amid rows
        line(row(1, "a")) + b"\n",  # not an array
    ],
    ids=["one-line", "pretty", "last-seq-amid", "object"],
)
def test_websocket_other_messages_left_to_the_whole_parse(data: bytes) -> None:
    """Anything but rows separated by ``,\\n`` is left to the whole-message parse."""
    assert _row_per_line(data, "ws") is None


def test_websocket_bad_row_left_to_the_whole_parse() -> None:
    """A piece that is not a row makes the fast path step aside (the whole parse reports it)."""
    assert _row_per_line(b'[{"seq":1,"id":"a","changes":[{"rev":"1"}]},\n"text"]', "ws") is None
    with pytest.raises(_json.JSONDecodeError):
        _json.loads(b'[{"seq":1,\n')


# -- long-poll paging --------------------------------------------------------------------------------
def line_answer(rows: list, last_seq) -> bytes:
    return b'{"results":[\n' + b",\n".join(line(r) for r in rows) + b'\n],\n"last_seq":' + line(last_seq) + b"}\n"


@responses.activate
def test_longpoll_stops_paging_once_answers_stream() -> None:
    """After an answer written a row per line, the next request asks for everything."""
    responses.get(URL, body=line_answer([row(1, "a")], 1))
    responses.get(URL, body=line_answer([row(2, "b")], 2))
    transport = LongPollTransport()
    transport.attach(FakeDB().changes_endpoint())
    list(transport.items(ChangesRequest()))
    list(transport.items(ChangesRequest(since=1)))
    assert query(responses.calls[0])["limit"] == "10000"
    assert "limit" not in query(responses.calls[1]) and transport.streams_rows


@responses.activate
def test_longpoll_keeps_paging_answers_parsed_whole() -> None:
    """One-line answers (held whole) keep being asked for in pages."""
    for seq in (1, 2):
        responses.get(URL, body=json.dumps({"results": [row(seq, f"d{seq}")], "last_seq": seq}).encode())
    transport = LongPollTransport(page_size=50)
    transport.attach(FakeDB().changes_endpoint())
    list(transport.items(ChangesRequest()))
    list(transport.items(ChangesRequest(since=1)))
    assert [query(call)["limit"] for call in responses.calls] == ["50", "50"] and not transport.streams_rows


def test_longpoll_row_spanning_lines_after_delivery_parses_and_pages_again(monkeypatch) -> None:
    """A row spread over lines after rows were delivered line by line (the answer was
    not kept) is parsed from there on whole: every row once, then LastSeq; the next
    request is paged again, as its answer may have to be held whole."""
    from cloudsync.transports import longpoll

    pretty = json.dumps(row(2, "b"), indent=1).encode()
    chunks = [b'{"results":[\n' + line(row(1, "a")) + b",\n", pretty + b",\n" + line(row(3, "c")) + b'\n],\n"last_seq":3}\n']
    answer = types.SimpleNamespace(chunks=lambda: iter(chunks))
    monkeypatch.setattr(longpoll, "open_feed", lambda *args, **kwargs: answer)
    transport = LongPollTransport(page_size=50)
    transport.attach(FakeDB().changes_endpoint())
    transport.streams_rows = True  # as after an earlier streamed answer
    items = list(transport.items(ChangesRequest()))
    assert [getattr(i, "id", i) for i in items] == ["a", "b", "c", LastSeq(3)] and not transport.streams_rows


@pytest.mark.parametrize("indent", [1, 2, "\t"])
def test_longpoll_pretty_printed_answer_parses(monkeypatch, indent) -> None:
    """A valid pretty-printed answer, fed in small chunks, gives its rows and LastSeq."""
    from cloudsync.transports import longpoll

    rows = [row(1, "a"), row(2, "b", "2-b", deleted=True), row("3-x", "c\u00e9", doc={"_id": "c", "n": [1, {"x": None}]})]
    body = json.dumps({"results": rows, "last_seq": "3-x", "pending": 0}, indent=indent).encode()
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    answer = types.SimpleNamespace(chunks=lambda: iter(chunks))
    monkeypatch.setattr(longpoll, "open_feed", lambda *args, **kwargs: answer)
    transport = LongPollTransport()
    transport.attach(FakeDB().changes_endpoint())
    assert list(transport.items(ChangesRequest())) == [Change.from_row(r) for r in rows] + [LastSeq("3-x")]


# -- continuous: catching up with normal requests first ---------------------------------------------
def _feed_is(feed: str):
    return responses.matchers.query_param_matcher({"feed": feed}, strict_match=False)


def one_line_answer(rows: list, last_seq) -> bytes:
    return json.dumps({"results": rows, "last_seq": last_seq}).encode()


@responses.activate
def test_continuous_catches_up_with_a_normal_request_then_streams() -> None:
    """A connection reads what is there with feed=normal, then opens the continuous feed
    from that answer's last_seq."""
    normal = one_line_answer([row(1, "a"), row(2, "b")], 2)
    continuous = line(row(3, "c")) + b"\n" + line({"last_seq": 3}) + b"\n"
    responses.get(URL, body=normal, match=[_feed_is("normal")])
    responses.get(URL, body=continuous, match=[_feed_is("continuous")])
    transport = ContinuousTransport()
    transport.attach(FakeDB().changes_endpoint())
    items = list(transport.items(ChangesRequest(since=0)))
    assert [getattr(i, "id", i) for i in items] == ["a", "b", LastSeq(2), "c", LastSeq(3)]
    assert [(query(c)["feed"], query(c)["since"]) for c in responses.calls] == [("normal", "0"), ("continuous", "2")]
    assert transport.bytes_received == len(normal) + len(continuous)  # the watchdog sees both


@responses.activate
def test_continuous_full_catch_up_page_ends_the_connection() -> None:
    """A full page ends the connection cleanly (the subscription reconnects from it at
    once); no continuous request is made behind it."""
    responses.get(URL, body=one_line_answer([row(1, "a"), row(2, "b")], 2), match=[_feed_is("normal")])
    transport = ContinuousTransport(page_size=2)
    transport.attach(FakeDB().changes_endpoint())
    items = list(transport.items(ChangesRequest(since=0)))
    transport.close()  # the next page, asked for ahead, is not needed here
    assert [getattr(i, "id", i) for i in items] == ["a", "b", LastSeq(2)]
    assert query(responses.calls[0])["feed"] == "normal" and query(responses.calls[0])["limit"] == "2"
    assert not any(query(c)["feed"] == "continuous" for c in responses.calls)


@responses.activate
@pytest.mark.parametrize("options, request_", [({"catch_up": False}, ChangesRequest()), ({}, ChangesRequest(limit=5))])
def test_continuous_without_catch_up(options, request_) -> None:
    """catch_up=False, or a limit in the request, reads only the continuous feed."""
    responses.get(URL, body=line(row(1, "a")) + b"\n" + line({"last_seq": 1}) + b"\n", match=[_feed_is("continuous")])
    transport = ContinuousTransport(**options)
    transport.attach(FakeDB().changes_endpoint())
    assert [getattr(i, "id", i) for i in transport.items(request_)] == ["a", LastSeq(1)]
    assert [query(c)["feed"] for c in responses.calls] == ["continuous"]
