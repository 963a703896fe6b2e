"""`_changes?feed=eventsource`: Server-Sent Events with the seq as event id, heartbeat events,
pushed writes and `Last-Event-ID` resumption, framed as CouchDB 3 frames them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._feeds import DEADLINE, SEQ, Reader, put, row_bytes, stream


@pytest.fixture
def sse(db, http) -> Iterator[tuple[Reader, str]]:
    """An EventSource feed (heartbeat 50 ms) of `db` after a write of `a`: (the feed, `a`'s rev)."""
    rev = put(http, db, "a")
    feed = stream(http, db, feed="eventsource", heartbeat=50)
    yield feed, rev
    feed.resp.close()


def event_bytes(seq: bytes, doc_id: str, rev: str) -> bytes:
    """One change event: the row as `data`, the seq JSON-encoded (quoted, as CouchDB writes it) as `id`."""
    return b"data: " + row_bytes(seq, doc_id, rev) + b'\nid: "' + seq.strip(b'"') + b'"\n\n'


def test_eventsource_is_text_event_stream(sse):
    """The EventSource feed is `text/event-stream`."""
    feed, _ = sse
    assert feed.resp.headers["Content-Type"] == "text/event-stream"


def test_eventsource_event_is_data_and_id(sse):
    """A change is an event whose `data` is the row and whose `id` is the seq."""
    feed, rev = sse
    data = feed.until(lambda d: b"event: heartbeat" in d)
    seq1 = SEQ.search(data).group(0)
    assert data.startswith(event_bytes(seq1, "a", rev))


def test_eventsource_heartbeat_is_an_empty_heartbeat_event(sse):
    """A heartbeat is an event named `heartbeat` with empty data."""
    feed, _ = sse
    data = feed.until(lambda d: b"event: heartbeat" in d)
    assert b"event: heartbeat\ndata:\n\n" in data


def test_eventsource_pushes_writes_as_events(db, http, sse):
    """A write while the feed waits arrives as one more event, framed the same way."""
    feed, _ = sse
    feed.until(lambda d: b"event: heartbeat" in d)
    rev = put(http, db, "b", n=2)
    data = feed.until(lambda d: b'"id":"b"' in d and d.endswith(b"\n\n"))
    event = data[data.index(b'data: {"seq"', len(b"data: ")):]
    seq2 = SEQ.search(event).group(0)
    assert event.startswith(event_bytes(seq2, "b", rev))


def test_last_event_id_resumes_after_that_event(db, http):
    """A request with `Last-Event-ID: <seq>` gets only the events after that seq."""
    put(http, db, "a")
    seq1 = http.get(db + "/_changes").json()["last_seq"]
    put(http, db, "b", n=2)
    r = http.get(db + "/_changes", params={"feed": "eventsource", "timeout": 100}, timeout=DEADLINE,
                 headers={"Last-Event-ID": seq1})
    assert r.content.count(b"data: {") == 1
    assert b'"id":"b"' in r.content


def test_quoted_last_event_id_resumes_after_that_event(db, http):
    """CouchDB's quoted event id sent back as `Last-Event-ID` resumes after that event."""
    put(http, db, "a")
    seq1 = http.get(db + "/_changes").json()["last_seq"]
    put(http, db, "b", n=2)
    r = http.get(db + "/_changes", params={"feed": "eventsource", "timeout": 100}, timeout=DEADLINE,
                 headers={"Last-Event-ID": f'"{seq1}"'})
    assert r.content.count(b"data: {") == 1
    assert b'"id":"b"' in r.content


def test_malformed_quoted_last_event_id_is_400_malformed_sequence(db, http):
    """A `Last-Event-ID` that opens a quote it never closes is taken as the `since` it
    stands for, as CouchDB does, and so is 400 "Malformed sequence supplied in 'since'
    parameter." (not an "invalid UTF-8" reason)."""
    r = http.get(db + "/_changes", params={"feed": "eventsource"}, timeout=DEADLINE,
                 headers={"Last-Event-ID": '"1-abc'})
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": "Malformed sequence supplied in 'since' parameter."}
