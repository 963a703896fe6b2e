"""The WHATWG event-stream parser (cloudsync.wire.sse)."""

from __future__ import annotations

import pytest

from cloudsync.wire.sse import Event, SSEParser


def feed_all(*chunks: bytes | str) -> tuple[list[Event], SSEParser]:
    parser = SSEParser()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events, parser


@pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"])
def test_each_line_ending(eol: str) -> None:
    """LF, CR and CRLF each end a line."""
    events, _ = feed_all(f"data: a{eol}{eol}data: b{eol}{eol}".encode())
    assert [e.data for e in events] == ["a", "b"]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    """A CR ending one chunk and the LF starting the next make ONE line end, not a blank line."""
    events, _ = feed_all(b"data: a\r", b"\ndata: b\r\n\r\n")
    assert [e.data for e in events] == ["a\nb"]


def test_cr_at_chunk_end_followed_by_cr_is_blank_line() -> None:
    """A CR then a CR in the next chunk is a line end and then a blank line (dispatch)."""
    events, _ = feed_all(b"data: a\r", b"\r")
    assert [e.data for e in events] == ["a"]


def test_one_bom_stripped() -> None:
    """One leading BOM is stripped; a second one is part of the field name."""
    events, _ = feed_all("\ufeffdata: a\n\n".encode())
    assert [e.data for e in events] == ["a"]
    events, _ = feed_all("\ufeff\ufeffdata: a\n\n".encode())
    assert events == []


def test_bom_split_across_chunks() -> None:
    """A BOM whose bytes arrive in two chunks is still stripped."""
    bom = "\ufeff".encode()
    events, _ = feed_all(bom[:1], bom[1:] + b"data: a\n\n")
    assert [e.data for e in events] == ["a"]


def test_comments_ignored() -> None:
    """Lines starting with a colon are comments."""
    events, _ = feed_all(b": heartbeat\n:\ndata: a\n: more\n\n")
    assert [e.data for e in events] == ["a"]


def test_multiline_data_joined_with_lf() -> None:
    """Several data lines join with a newline, without a trailing one."""
    events, _ = feed_all(b"data: a\ndata:b\ndata\n\n")
    assert events[0].data == "a\nb\n"


def test_only_one_leading_space_removed() -> None:
    """A single space after the colon is removed, not more."""
    events, _ = feed_all(b"data:  a\n\n")
    assert events[0].data == " a"


def test_id_persists_across_events() -> None:
    """The last event id stays in force for later events until changed."""
    events, parser = feed_all(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["7", "7", ""]
    assert parser.last_event_id == ""


def test_id_set_without_data_still_counts() -> None:
    """An id in an event without data updates the buffer though nothing is dispatched."""
    events, parser = feed_all(b"id: 9\n\n")
    assert events == [] and parser.last_event_id == "9"


def test_id_with_nul_ignored() -> None:
    """An id containing NUL is ignored."""
    _, parser = feed_all(b"id: 1\n\nid: a\x00b\n\n")
    assert parser.last_event_id == "1"


def test_retry_digits_only() -> None:
    """retry takes ASCII digits only; anything else is ignored."""
    _, parser = feed_all(b"retry: 1500\n\nretry: 2s\n\n")
    assert parser.retry == 1500


def test_event_type() -> None:
    """event sets the type of the next dispatch only; default is message."""
    events, _ = feed_all(b"event: heartbeat\ndata:\n\ndata: x\n\n")
    assert [(e.type, e.data) for e in events] == [("heartbeat", ""), ("message", "x")]


def test_no_data_no_dispatch() -> None:
    """A blank line after only an event field dispatches nothing and resets the type."""
    events, _ = feed_all(b"event: foo\n\ndata: x\n\n")
    assert [(e.type, e.data) for e in events] == [("message", "x")]


def test_incomplete_event_at_eof_discarded() -> None:
    """An event never ended by a blank line is not dispatched."""
    events, _ = feed_all(b"data: a\n")
    assert events == []


def test_multibyte_utf8_split_across_chunks() -> None:
    """A UTF-8 sequence split between chunks decodes correctly."""
    raw = "data: é€\n\n".encode()
    events, _ = feed_all(raw[:7], raw[7:9], raw[9:])
    assert events[0].data == "é€"


def test_field_without_colon_and_unknown_fields() -> None:
    """A field name alone has an empty value; unknown fields are ignored."""
    events, _ = feed_all(b"foo: bar\ndata\n\n")
    assert events[0].data == ""


def test_byte_by_byte() -> None:
    """Feeding one byte at a time gives the same events."""
    raw = b"id: 3\r\ndata: {\"a\": 1}\r\n\r\n: c\r\ndata: x\r\rdata: y\n\n"
    events, _ = feed_all(*[raw[i : i + 1] for i in range(len(raw))])
    assert [(e.data, e.id) for e in events] == [('{"a": 1}', "3"), ("x", "3"), ("y", "3")]
