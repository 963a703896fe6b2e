"""Property-based tests of every wire parser (cloudsync.wire): continuous lines, the
long-poll answer, SSE, WebSocket messages.

For each format, hypothesis generates valid streams (rows with random ids, revs, int and
opaque string seqs, unicode documents, heartbeats, a last_seq) and checks that

- any chunking gives exactly the items the whole body gives, and those are the items
  the stream was built from;
- arbitrary bytes, and valid streams mutated (truncated, bytes flipped, nasty fragments
  spliced in: deep nesting, huge numbers, lone surrogates, NUL, invalid UTF-8), give
  items or a cloudsync typed error (InvalidResponse, StreamError), never another
  exception, and every item they give is a well-formed Change or LastSeq.

Both JSON backends are exercised where they differ (orjson; the stdlib, which raises
RecursionError for deep nesting and accepts lone surrogates).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudsync import _json
from cloudsync.errors import InvalidResponse, StreamError
from cloudsync.models import Change, LastSeq
from cloudsync.wire import ContinuousParser, LongPollParser, SSEFeedParser, WebSocketParser

FUZZ = settings(max_examples=20, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SMALL = settings(max_examples=10, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- valid streams ---------------------------------------------------------------------------------
seqs = st.one_of(
    st.integers(min_value=0, max_value=2**53),
    st.builds(lambda n, tail: f"{n}-{tail}", st.integers(0, 10**6), st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=24)),
)
revs = st.builds(lambda n, h: f"{n}-{h}", st.integers(1, 999), st.text("0123456789abcdef", min_size=1, max_size=32))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=5,
)


@st.composite
def rows(draw: Callable[..., Any]) -> tuple[dict[str, Any], Change]:
    """A result row and the Change it must give (built here, not by cloudsync)."""
    seq, doc_id = draw(seqs), draw(st.text(max_size=16))
    leaf_revs = draw(st.lists(revs, min_size=1, max_size=3))
    row: dict[str, Any] = {"seq": seq, "id": doc_id, "changes": [{"rev": r} for r in leaf_revs]}
    deleted = draw(st.booleans())
    if deleted:
        row["deleted"] = True
    doc = draw(st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    if doc is not None:
        row["doc"] = doc
    return row, Change(seq, doc_id, leaf_revs[0], deleted, doc, tuple(leaf_revs))


def compact(obj: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only).encode()


@st.composite
def continuous_streams(draw: Callable[..., Any]) -> tuple[bytes, list[Any]]:
    """A continuous feed: a row per line, blank heartbeat lines, maybe a last_seq line."""
    drawn = draw(st.lists(rows(), max_size=6))
    ascii_only = draw(st.booleans())
    lines: list[bytes] = []
    for row, _ in drawn:
        lines += [b""] * draw(st.integers(0, 2))
        lines.append(compact(row, ascii_only))
    expected: list[Any] = [change for _, change in drawn]
    if draw(st.booleans()):
        last = draw(seqs)
        lines.append(compact({"last_seq": last, "pending": 0}))
        expected.append(LastSeq(last))
    return b"\n".join(lines) + b"\n", expected


@st.composite
def longpoll_answers(draw: Callable[..., Any]) -> tuple[bytes, list[Any]]:
    """A long-poll answer in one of the layouts servers write: CouchDB's row per line
    (with heartbeat newlines), one line (pouchdb-server), pretty-printed, or a row per
    line that turns pretty part way."""
    drawn = draw(st.lists(rows(), max_size=6))
    last = draw(seqs)
    answer_rows = [row for row, _ in drawn]
    expected = [change for _, change in drawn] + [LastSeq(last)]
    layout = draw(st.sampled_from(["couchdb", "one-line", "pretty", "turns-pretty"]))
    if layout == "one-line":
        body = compact({"results": answer_rows, "last_seq": last}) + draw(st.sampled_from([b"", b"\n"]))
    elif layout == "pretty":
        body = json.dumps({"results": answer_rows, "last_seq": last, "pending": 0}, indent=draw(st.sampled_from([1, 2, "\t"]))).encode()
    else:
        pretty_from = draw(st.integers(0, len(answer_rows))) if layout == "turns-pretty" else len(answer_rows)
        encoded = [compact(r) if i < pretty_from else json.dumps(r, indent=1).encode() for i, r in enumerate(answer_rows)]
        beats = b"\n" * draw(st.integers(0, 3))
        body = b'{"results":[\n' + beats + b",\n".join(encoded) + b'\n],\n"last_seq":' + compact(last) + b',"pending":0}\n'
    return draw(st.sampled_from([b"", b"\n", b"  \n"])) + body, expected


@st.composite
def sse_streams(draw: Callable[..., Any], eols: tuple[str, ...] = ("\n", "\r", "\r\n")) -> tuple[bytes, list[Any]]:
    """An event stream: row events (data + id, or data lines of a pretty-printed row, or
    a row without seq whose event id stands in), heartbeats, comments, retry, maybe a
    last_seq event; one line end (LF, CR or CRLF) throughout, maybe a BOM."""
    eol = draw(st.sampled_from(eols))
    lines: list[str] = []
    expected: list[Any] = []
    for row, change in draw(st.lists(rows(), max_size=5)):
        extras = draw(st.lists(st.sampled_from(["heartbeat", "comment", "retry"]), max_size=2))
        for extra in extras:
            lines += {"heartbeat": ["event: heartbeat", "data:", ""], "comment": [": keep-alive"], "retry": ["retry: 1500", ""]}[extra]
        kind = draw(st.sampled_from(["plain", "multi-line", "no-seq"]))
        event_id = json.dumps(change.seq) if isinstance(change.seq, int) else change.seq
        if kind == "no-seq":
            row = {k: v for k, v in row.items() if k != "seq"}
            change = Change(event_id, change.id, change.rev, change.deleted, change.doc, change.revs)
        if kind == "multi-line":
            lines += ["data: " + text for text in json.dumps(row, indent=1).split("\n")]
        else:
            lines.append("data: " + json.dumps(row, separators=(",", ":")))
        lines += ["id: " + event_id, ""]
        expected.append(change)
    if draw(st.booleans()):
        last = draw(seqs)
        lines += ["event: last_seq", "data: " + json.dumps(last), ""]
        expected.append(LastSeq(last))
    text = "".join(line + eol for line in lines)
    return (("\ufeff" if draw(st.booleans()) else "") + text).encode(), expected


@st.composite
def websocket_messages(draw: Callable[..., Any]) -> tuple[list[bytes], list[Any]]:
    """Messages: arrays of rows (one line, a row per line, or pretty-printed), ``[]``,
    ``""`` heartbeats, maybe a final ``{"last_seq": S}`` object."""
    messages: list[bytes] = []
    expected: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        drawn = draw(st.lists(rows(), max_size=4))
        layout = draw(st.sampled_from(["one-line", "row-per-line", "pretty", "heartbeat"]))
        if layout == "heartbeat" or not drawn:
            messages.append(draw(st.sampled_from([b'""', b"[]", b"", b" \n"])))
            continue
        row_list = [row for row, _ in drawn]
        if layout == "one-line":
            messages.append(compact(row_list))
        elif layout == "row-per-line":
            messages.append(b"[" + b",\n".join(compact(row) for row in row_list) + b"]")
        else:
            messages.append(json.dumps(row_list, indent=1).encode())
        expected += [change for _, change in drawn]
    if draw(st.booleans()):
        last = draw(seqs)
        messages.append(compact({"last_seq": last}))
        expected.append(LastSeq(last))
    return messages, expected


# -- feeding ---------------------------------------------------------------------------------------
ByteParser = ContinuousParser | LongPollParser | SSEFeedParser

PARSERS: dict[str, Callable[[], ByteParser]] = {
    "continuous": ContinuousParser,
    "longpoll": LongPollParser,
    "sse": SSEFeedParser,
}
VALID = {"continuous": continuous_streams(), "longpoll": longpoll_answers(), "sse": sse_streams()}


def parse(parser: ByteParser, chunks: list[bytes]) -> list[Any]:
    """Every item of ``chunks`` then the end of the body, as a transport reads them."""
    items: list[Any] = []
    for chunk in chunks:
        items += parser.feed(chunk)
    if isinstance(parser, LongPollParser):
        parser.end_hint()  # what the long-poll transport asks before finish()
    return items + parser.finish()


def cut(body: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(p % (len(body) + 1) for p in points), len(body)]
    return [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def check_well_formed(items: list[Any]) -> None:
    """Every item a Change with a str id, str-or-None rev, bool deleted, dict-or-None doc
    and str revs, or a LastSeq."""
    for item in items:
        assert item.__class__ in (Change, LastSeq), item
        if item.__class__ is Change:
            assert item.id.__class__ is str
            assert item.rev is None or item.rev.__class__ is str
            assert item.deleted.__class__ is bool
            assert item.doc is None or item.doc.__class__ is dict
            assert item.revs.__class__ is tuple and all(r.__class__ is str for r in item.revs)


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Parse with orjson (when installed) or the stdlib ``json``."""
    if name == "orjson":
        yield
        return
    original = _json.loads
    _json.loads = json.loads
    try:
        yield
    finally:
        _json.loads = original


def parse_or_typed_error(make: Callable[[], Any], chunks: list[bytes]) -> list[Any]:
    """The items, whether or not the stream ends in a typed error."""
    parser = make()
    items: list[Any] = []
    try:
        for chunk in chunks:
            items += parser.feed(chunk)
        if isinstance(parser, LongPollParser):
            parser.end_hint()
        items += parser.finish()
    except (InvalidResponse, StreamError):
        pass
    return items


NASTY = [
    b"[" * 3000,
    b"{" * 3000,
    b'{"a":' * 1500 + b"1" + b"}" * 1500,
    b"9" * 5000,
    b"1e999",
    b"-1e400",
    b'"\\ud800"',
    b"\\ud800",
    b"\xed\xa0\x80",
    b"\x00",
    b"\xff\xfe",
    b"\r",
    b"\n",
    b"\r\n\r\n",
    b'{"error":"bad","reason":"mid-stream"}\n',
    b'{"seq":1,"id":5,"changes":[{"rev":7}]}\n',
    b'{"seq":1,"id":5,"changes":[{"rev":"1-a"}]}\n',
    b'{"seq":1,"id":"a","changes":[{"rev":null}],"doc":"text"}\n',
    b'data: {"seq":1,"id":5,"changes":[{"rev":"1-a"}]}\nid: 1\n\n',
    b'data: {"seq":1,"id":"a","changes":[{"rev":"1-a"}],"doc":7}\n\n',
    b'[{"seq":1,"id":["a"],"changes":[{"rev":"1-a"}]},\n{"seq":2,"id":"b","revs":1}]',
    b'{"seq":1,"id":"a","changes":{"rev":"1-a"},"doc":[1]}\n',
    b'{"seq":1,"id":"a","changes":[{"rev":"1-a"}],"doc":' + b"[" * 2000 + b"]" * 2000 + b"}\n",
    b"data: ",
    b"\ndata: {\n\n",
    b"event: last_seq\n",
    b"id: \x00\n",
    b"],",
    b'"last_seq":',
    b"NaN",
]


@st.composite
def mutated(draw: Callable[..., Any], valid: st.SearchStrategy[tuple[bytes, list[Any]]]) -> bytes:
    """A valid stream truncated, with bytes flipped, or with a nasty fragment spliced in."""
    body, _ = draw(valid)
    for _ in range(draw(st.integers(1, 3))):
        line_starts = [0] + [i + 1 for i, byte in enumerate(body) if byte == 10]  # where a spliced row is a line
        at = draw(st.integers(0, len(body)) | st.sampled_from(line_starts))
        how = draw(st.sampled_from(["truncate", "flip", "splice", "delete"]))
        if how == "truncate":
            body = body[:at]
        elif how == "flip" and at < len(body):
            body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
        elif how == "delete":
            body = body[:at] + body[at + draw(st.integers(1, 8)) :]
        else:
            body = body[:at] + draw(st.sampled_from(NASTY)) + body[at:]
    return body


# -- (a) any chunking gives exactly the whole body's items ----------------------------------------
@pytest.mark.parametrize("fmt", list(PARSERS))
@FUZZ
@given(data=st.data())
def test_any_chunking_gives_the_whole_body_items(fmt: str, data: st.DataObject) -> None:
    """Cut anywhere into any number of chunks, a valid stream gives exactly the items of
    the whole body in one chunk, and those are the items it was built from."""
    body, expected = data.draw(VALID[fmt])
    points = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    whole = parse(PARSERS[fmt](), [body])
    assert whole == expected
    assert parse(PARSERS[fmt](), cut(body, points)) == whole


@pytest.mark.parametrize("fmt", list(PARSERS))
@SMALL
@given(data=st.data())
def test_one_byte_chunks_give_the_whole_body_items(fmt: str, data: st.DataObject) -> None:
    """Fed one byte at a time (every line end, CRLF and UTF-8 sequence split), a valid
    stream gives the items of the whole body."""
    body, expected = data.draw(VALID[fmt])
    assert parse(PARSERS[fmt](), [body[i : i + 1] for i in range(len(body))]) == expected


@SMALL
@given(data=st.data())
def test_sse_crlf_split_between_chunks_gives_the_whole_body_items(data: st.DataObject) -> None:
    """An SSE stream cut between the CR and the LF of its line ends (as many of them as
    hypothesis picks) gives the items of the whole body: no extra blank lines."""
    body, expected = data.draw(sse_streams(eols=("\r\n",)))
    crs = [i + 1 for i in range(len(body) - 1) if body[i : i + 2] == b"\r\n"]
    points = data.draw(st.lists(st.sampled_from(crs), min_size=1)) if crs else []
    assert parse(SSEFeedParser(), cut(body, points)) == expected


@FUZZ
@given(data=st.data())
def test_longpoll_chunking_reads_the_same_rows_and_last_seq(data: st.DataObject) -> None:
    """The paging transport's view of an answer (rows read, last_seq) does not depend on
    how it was cut."""
    body, expected = data.draw(longpoll_answers())
    whole, chunked = LongPollParser(), LongPollParser()
    parse(whole, [body])
    parse(chunked, cut(body, data.draw(st.lists(st.integers(0, len(body)), max_size=12))))
    assert (chunked.rows, chunked.last_seq) == (whole.rows, whole.last_seq) == (len(expected) - 1, expected[-1].seq)


@FUZZ
@given(data=st.data())
def test_websocket_messages_give_their_rows_in_any_layout(data: st.DataObject) -> None:
    """WebSocket messages (arrays one line, a row per line or pretty-printed, heartbeats,
    a final last_seq) give the items they were built from: the row-per-line fast path
    and the whole-message parse agree."""
    messages, expected = data.draw(websocket_messages())
    parser = WebSocketParser()
    items = [item for message in messages for item in parser.feed(message)] + parser.finish()
    assert items == expected
    assert parser.ended == (bool(expected) and expected[-1].__class__ is LastSeq)


@pytest.mark.parametrize("fmt", list(PARSERS))
@FUZZ
@given(data=st.data())
def test_truncated_stream_gives_a_prefix_of_its_items(fmt: str, data: st.DataObject) -> None:
    """A valid stream cut short (a connection dropped mid-body), in any chunks, gives
    the first of its items and maybe a typed error: never an item out of place."""
    body, expected = data.draw(VALID[fmt])
    body = body[: data.draw(st.integers(0, len(body)))]
    items = parse_or_typed_error(PARSERS[fmt], cut(body, data.draw(st.lists(st.integers(0, len(body)), max_size=8))))
    assert items == expected[: len(items)]


@FUZZ
@given(data=st.data())
def test_continuous_partial_last_line_is_dropped(data: st.DataObject) -> None:
    """A continuous feed cut short gives exactly the items of its complete lines: the
    partial last line is dropped, never parsed (even when it happens to be JSON)."""
    body, _ = data.draw(continuous_streams())
    body = body[: data.draw(st.integers(0, len(body)))]
    complete = body[: body.rfind(b"\n") + 1]
    chunks = cut(body, data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    assert parse(ContinuousParser(), chunks) == parse(ContinuousParser(), [complete])


# -- (b)+(c) arbitrary and mutated input: items or a typed error, each item well formed ------------
@pytest.mark.parametrize("fmt", list(PARSERS))
@FUZZ
@given(data=st.data(), json_backend=st.sampled_from(["orjson", "stdlib"]))
def test_mutated_streams_give_well_formed_items_or_a_typed_error(fmt: str, json_backend: str, data: st.DataObject) -> None:
    """A valid stream truncated, flipped or spliced with nasty fragments (deep nesting,
    huge numbers, lone surrogates, NUL, invalid UTF-8, error rows), cut anywhere, gives
    well-formed items or InvalidResponse/StreamError, and nothing else."""
    body = data.draw(mutated(VALID[fmt]))
    chunks = cut(body, data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    with backend(json_backend):
        check_well_formed(parse_or_typed_error(PARSERS[fmt], chunks))


@pytest.mark.parametrize("fmt", list(PARSERS))
@FUZZ
@given(body=st.binary(max_size=300), points=st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_bytes_give_well_formed_items_or_a_typed_error(fmt: str, body: bytes, points: list[int]) -> None:
    """Random bytes, cut anywhere, give well-formed items or a typed error."""
    check_well_formed(parse_or_typed_error(PARSERS[fmt], cut(body, points)))


@FUZZ
@given(data=st.data(), json_backend=st.sampled_from(["orjson", "stdlib"]))
def test_mutated_websocket_messages_give_well_formed_items_or_a_typed_error(json_backend: str, data: st.DataObject) -> None:
    """WebSocket messages mutated like the byte streams, or replaced by random bytes,
    give well-formed items or a typed error."""
    messages, _ = data.draw(websocket_messages())
    bodies = [data.draw(mutated(st.just((message, [])))) for message in messages]
    bodies += data.draw(st.lists(st.binary(max_size=60), max_size=2))
    parser = WebSocketParser()
    items: list[Any] = []
    with backend(json_backend):
        for body in bodies:
            with contextlib.suppress(InvalidResponse, StreamError):
                items += parser.feed(body)
    check_well_formed(items)


@pytest.mark.parametrize("json_backend", ["orjson", "stdlib"])
@pytest.mark.parametrize("fmt", [*PARSERS, "websocket"])
def test_deep_nesting_is_invalid_response(fmt: str, json_backend: str) -> None:
    """A row nested deeper than the JSON parser goes is an InvalidResponse (the stdlib
    parser's RecursionError included), not a bare exception."""
    deep = b'{"seq":1,"id":"a","changes":[{"rev":"1-a"}],"doc":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    bodies = {
        "continuous": deep + b"\n",
        "longpoll": b'{"results":[\n' + deep + b'\n],\n"last_seq":1}\n',
        "sse": b"data: " + deep + b"\nid: 1\n\n",
        "websocket": b"[" + deep + b"]",
    }
    parser = WebSocketParser() if fmt == "websocket" else PARSERS[fmt]()
    with backend(json_backend), pytest.raises(InvalidResponse):
        parser.feed(bodies[fmt])
        parser.finish()
