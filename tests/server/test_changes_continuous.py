"""`_changes?feed=continuous`: one row per line, heartbeats, `limit`, a closing `last_seq`
line and writes pushed as they happen, framed as CouchDB 3 frames them."""

from __future__ import annotations

import json
import re
import time

from ._feeds import SEQ, live, put, row_bytes, stream


def test_continuous_bytes_are_rows_heartbeats_and_last_seq(db, http):
    """Rows one per line, blank heartbeat lines, then `{"last_seq", "pending"}` at the timeout."""
    r1 = put(http, db, "a")
    body = stream(http, db, feed="continuous", heartbeat=50, timeout=400).rest()
    seq = SEQ.search(body).group(0)
    m = re.fullmatch(re.escape(row_bytes(seq, "a", r1) + b"\n") + rb"(\n+)" + re.escape(
        b'{"last_seq":' + seq + b',"pending":0}\n'), body)
    assert m, body


def test_continuous_is_chunked(db, http):
    """The continuous feed is sent with chunked transfer encoding."""
    feed = stream(http, db, feed="continuous", heartbeat=50, timeout=400)
    feed.rest()
    assert "chunked" in feed.resp.headers.get("Transfer-Encoding", "")


def limited(http, db: str) -> list[bytes]:
    """The lines of a continuous feed with `limit=2` over three documents."""
    for i in range(3):
        put(http, db, f"d{i}")
    return stream(http, db, feed="continuous", limit=2).rest().split(b"\n")


def test_continuous_limit_sends_that_many_rows(db, http):
    """`limit=2` sends the first two rows."""
    assert [json.loads(x)["id"] for x in limited(http, db)[:2]] == ["d0", "d1"]


def test_continuous_limit_ends_with_last_seq_and_pending(db, http):
    """After its `limit`, the feed sends `last_seq` (its last row's seq) and what is `pending`."""
    lines = limited(http, db)
    tail = json.loads(lines[2])
    assert tail["last_seq"] == json.loads(lines[1])["seq"]
    assert tail["pending"] == 1


def test_continuous_limit_ends_the_feed(db, http):
    """Nothing follows the `last_seq` line."""
    assert limited(http, db)[3:] == [b""]


def pushed(http, db: str) -> tuple[list[float], list[dict]]:
    """Five writes to a waiting continuous feed: seconds each took to arrive, and the rows."""
    feed = live(stream(http, db, feed="continuous", since="now", heartbeat=50))
    latencies = []
    try:
        for i in range(5):
            started = time.monotonic()
            put(http, db, f"p{i}")
            feed.until(lambda d, i=i: f"\"p{i}\"".encode() in d)
            latencies.append(time.monotonic() - started)
    finally:
        feed.resp.close()
    return latencies, [json.loads(x) for x in feed.data.split(b"\n") if x.strip()]


def test_continuous_pushes_writes_within_a_second(db, http):
    """Each write reaches a waiting continuous feed within a second."""
    latencies, _ = pushed(http, db)
    assert max(latencies) < 1.0


def test_continuous_pushes_writes_in_order(db, http):
    """A waiting continuous feed gets each write once, in order."""
    _, rows = pushed(http, db)
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(5)]
