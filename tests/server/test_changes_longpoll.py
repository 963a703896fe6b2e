"""`_changes?feed=longpoll`: waits for a write, times out empty or answers a backlog at once,
framed as CouchDB 3 frames it."""

from __future__ import annotations

import time

from ._feeds import DEADLINE, SEQ, put, row_bytes, stream


def woken(http, db: str) -> tuple[float, bytes, str]:
    """A longpoll from now, woken by a write of `woke`: (seconds it took, its body, the rev)."""
    feed = stream(http, db, feed="longpoll", since="now", heartbeat=10000)
    feed.until(lambda d: d.startswith(b'{"results":[\n'))  # the feed is waiting now
    started = time.monotonic()
    rev = put(http, db, "woke")
    body = feed.rest()
    return time.monotonic() - started, body, rev


def timed_out(http, db: str) -> tuple[float, bytes]:
    """A longpoll from now with `timeout=200` and no write: (seconds it took, its body)."""
    put(http, db, "a")
    started = time.monotonic()
    r = http.get(db + "/_changes", params={"feed": "longpoll", "since": "now", "timeout": 200}, timeout=DEADLINE)
    return time.monotonic() - started, r.content


def test_longpoll_wakes_on_a_write(db, http):
    """A waiting longpoll answers within 2 s of a write."""
    took, _, _ = woken(http, db)
    assert took < 2


def test_longpoll_answer_bytes_match_couchdb(db, http):
    """A woken longpoll's body is byte for byte CouchDB 3's, with the one new row."""
    _, body, rev = woken(http, db)
    seq = SEQ.search(body).group(0)
    assert body == b'{"results":[\n' + row_bytes(seq, "woke", rev) + b'\n],\n"last_seq":' + seq + b',"pending":0}\n'


def test_longpoll_answers_at_its_timeout(db, http):
    """A longpoll with nothing to send answers after its `timeout`, not before and not much later."""
    took, _ = timed_out(http, db)
    assert 0.15 < took < 5


def test_longpoll_timeout_answer_is_empty(db, http):
    """A timed-out longpoll's body is an empty result list with the current seq."""
    _, content = timed_out(http, db)
    seq = SEQ.search(content).group(0)
    assert content == b'{"results":[\n\n],\n"last_seq":' + seq + b',"pending":0}\n'


def test_longpoll_returns_a_backlog_at_once(db, http):
    """A longpoll with changes after its `since` answers them without waiting."""
    put(http, db, "a")
    r = http.get(db + "/_changes", params={"feed": "longpoll", "since": 0}, timeout=DEADLINE)
    assert [row["id"] for row in r.json()["results"]] == ["a"]
