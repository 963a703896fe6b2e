"""_changes feeds: framing byte for byte, push notification, filters, timeouts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
import requests
import websocket

SEQ = re.compile(rb'"(\d+)-g1AAAA[A-Za-z0-9_-]+"')
DEADLINE = 10.0


class Reader:
    """Accumulates a streamed body and waits (with a deadline) until a pattern shows up."""

    def __init__(self, resp: requests.Response) -> None:
        self.resp = resp
        self.chunks: Iterator[bytes] = resp.iter_content(chunk_size=None)
        self.data = b""

    def until(self, predicate, deadline: float = DEADLINE) -> bytes:
        end = time.monotonic() + deadline
        while not predicate(self.data):
            assert time.monotonic() < end, f"timed out; got {self.data!r}"
            self.data += next(self.chunks)
        return self.data

    def rest(self) -> bytes:
        for chunk in self.chunks:
            self.data += chunk
        return self.data


def stream(http: requests.Session, url: str, **params) -> Reader:
    r = http.get(url + "/_changes", params=params, stream=True, timeout=DEADLINE)
    assert r.status_code == 200
    return Reader(r)


def put(http, db, doc_id, **fields):
    r = http.put(f"{db}/{doc_id}", json=fields)
    assert r.status_code == 201
    return r.json()["rev"]


def row_bytes(seq: bytes, doc_id: str, rev: str) -> bytes:
    return b'{"seq":' + seq + b',"id":"' + doc_id.encode() + b'","changes":[{"rev":"' + rev.encode() + b'"}]}'


def test_normal_feed_framing(db, http):
    r1, r2 = put(http, db, "a", n=1), put(http, db, "b", n=2)
    r = http.get(db + "/_changes")
    assert r.headers["Content-Type"] == "application/json"
    assert "gzip" not in r.headers.get("Content-Encoding", "")
    seqs = SEQ.findall(r.content)
    assert seqs[:2] == [b"1", b"2"]
    s1, s2 = [m.group(0) for m in SEQ.finditer(r.content)][:2]
    assert r.content == (b'{"results":[\n' + row_bytes(s1, "a", r1) + b",\n" + row_bytes(s2, "b", r2)
                         + b'\n],\n"last_seq":' + s2 + b',"pending":0}\n')
    limited = http.get(db + "/_changes", params={"limit": 1}).json()
    assert len(limited["results"]) == 1 and limited["pending"] == 1
    assert limited["last_seq"] == limited["results"][0]["seq"]
    after = http.get(db + "/_changes", params={"since": limited["last_seq"]}).json()
    assert [row["id"] for row in after["results"]] == ["b"]
    assert http.get(db + "/_changes", params={"since": "now"}).json() == {
        "results": [], "last_seq": s2.decode().strip('"'), "pending": 0}
    desc = http.get(db + "/_changes", params={"descending": "true"}).json()
    assert [row["id"] for row in desc["results"]] == ["b", "a"]


def test_seqs_are_opaque_and_updates_move_docs(db, http):
    rev = put(http, db, "a")
    for i in range(11):
        put(http, db, f"x{i}")
    put(http, db, "a", _rev=rev, again=True)
    body = http.get(db + "/_changes", params={"include_docs": "true"}).json()
    ids = [row["id"] for row in body["results"]]
    assert ids == [f"x{i}" for i in range(11)] + ["a"]  # one row per doc, at its latest seq
    assert body["results"][-1]["doc"]["again"] is True
    seqs = [row["seq"] for row in body["results"]]
    assert all(isinstance(s, str) for s in seqs)
    assert sorted(seqs) != seqs  # "10-…" < "9-…" as strings: no numeric shortcuts
    deleted = http.delete(db + "/x0", params={"rev": body["results"][0]["changes"][0]["rev"]})
    last = http.get(db + "/_changes", params={"since": body["last_seq"], "include_docs": "true"}).json()
    assert last["results"][0]["deleted"] is True
    assert last["results"][0]["doc"] == {"_id": "x0", "_rev": deleted.json()["rev"], "_deleted": True}


def test_longpoll_waits_and_wakes_on_write(db, http):
    feed = stream(http, db, feed="longpoll", since="now", heartbeat=10000)
    feed.until(lambda d: d.startswith(b'{"results":[\n'))  # the feed is waiting now
    started = time.monotonic()
    rev = put(http, db, "woke")
    body = feed.rest()
    assert time.monotonic() - started < 2
    seq = SEQ.search(body).group(0)
    assert body == b'{"results":[\n' + row_bytes(seq, "woke", rev) + b'\n],\n"last_seq":' + seq + b',"pending":0}\n'


def test_longpoll_timeout_answers_empty(db, http):
    put(http, db, "a")
    started = time.monotonic()
    r = http.get(db + "/_changes", params={"feed": "longpoll", "since": "now", "timeout": 200}, timeout=DEADLINE)
    assert 0.15 < time.monotonic() - started < 5
    seq = SEQ.search(r.content).group(0)
    assert r.content == b'{"results":[\n\n],\n"last_seq":' + seq + b',"pending":0}\n'


def test_longpoll_returns_backlog_at_once(db, http):
    put(http, db, "a")
    r = http.get(db + "/_changes", params={"feed": "longpoll", "since": 0}, timeout=DEADLINE)
    assert [row["id"] for row in r.json()["results"]] == ["a"]


def test_continuous_framing_heartbeats_and_last_seq(db, http):
    r1 = put(http, db, "a")
    feed = stream(http, db, feed="continuous", heartbeat=50, timeout=400)
    body = feed.rest()
    seq = SEQ.search(body).group(0)
    m = re.fullmatch(re.escape(row_bytes(seq, "a", r1) + b"\n") + rb"(\n+)" + re.escape(
        b'{"last_seq":' + seq + b',"pending":0}\n'), body)
    assert m, body
    assert "chunked" in feed.resp.headers.get("Transfer-Encoding", "")


def test_continuous_limit_ends_with_last_seq(db, http):
    for i in range(3):
        put(http, db, f"d{i}")
    lines = stream(http, db, feed="continuous", limit=2).rest().split(b"\n")
    assert [json.loads(x)["id"] for x in lines[:2]] == ["d0", "d1"]
    tail = json.loads(lines[2])
    assert tail["last_seq"] == json.loads(lines[1])["seq"] and tail["pending"] == 1
    assert lines[3:] == [b""]


def test_continuous_pushes_writes(db, http):
    feed = stream(http, db, feed="continuous", since="now", heartbeat=50)
    feed.until(lambda d: b"\n" in d)  # first heartbeat: the feed is live
    latencies = []
    for i in range(5):
        started = time.monotonic()
        put(http, db, f"p{i}")
        feed.until(lambda d, i=i: f"\"p{i}\"".encode() in d)
        latencies.append(time.monotonic() - started)
    assert max(latencies) < 1.0
    rows = [json.loads(x) for x in feed.data.split(b"\n") if x.strip()]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(5)]
    feed.resp.close()


def test_eventsource_framing_heartbeat_and_push(db, http):
    r1 = put(http, db, "a")
    feed = stream(http, db, feed="eventsource", heartbeat=50)
    assert feed.resp.headers["Content-Type"] == "text/event-stream"
    data = feed.until(lambda d: b"event: heartbeat" in d)
    seq1 = SEQ.search(data).group(0)
    assert data.startswith(b"data: " + row_bytes(seq1, "a", r1) + b"\nid: " + seq1.strip(b'"') + b"\n\n")
    assert b"event: heartbeat\ndata:\n\n" in data
    rev = put(http, db, "b", n=2)
    data = feed.until(lambda d: b'"id":"b"' in d and d.endswith(b"\n\n"))
    event = data[data.index(b'data: {"seq"', len(b"data: ")):]
    seq2 = SEQ.search(event).group(0)
    assert event.startswith(b"data: " + row_bytes(seq2, "b", rev) + b"\nid: " + seq2.strip(b'"') + b"\n\n")
    feed.resp.close()
    # Last-Event-ID resumes after that event.
    r = http.get(db + "/_changes", params={"feed": "eventsource", "timeout": 100}, timeout=DEADLINE,
                 headers={"Last-Event-ID": seq1.strip(b'"').decode()})
    assert r.content.count(b"data: {") == 1 and b'"id":"b"' in r.content


def test_websocket_feed(server, db, http):
    r1 = put(http, db, "a")
    ws = websocket.create_connection(db.replace("http", "ws", 1) + "/_changes?feed=websocket", timeout=DEADLINE)
    try:
        ws.send(json.dumps({"since": 0, "include_docs": True, "heartbeat": 50}))
        rows = json.loads(ws.recv())
        assert [(r["id"], r["changes"][0]["rev"], r["doc"]["_rev"]) for r in rows] == [("a", r1, r1)]
        assert ws.recv() == "[]"  # caught up, once
        assert ws.recv() == '""'  # heartbeat
        rev = put(http, db, "b", n=2)
        msg = ws.recv()
        while msg == '""':
            msg = ws.recv()
        assert [r["changes"][0]["rev"] for r in json.loads(msg)] == [rev]
    finally:
        ws.close()


def test_websocket_timeout_closes_1000_and_query_params(db, http):
    put(http, db, "a")
    url = db.replace("http", "ws", 1) + "/_changes?feed=websocket&since=0&timeout=100"
    ws = websocket.create_connection(url, timeout=DEADLINE)
    ws.send(json.dumps({"doc_ids": ["zzz"]}))  # the message wins over the query parameters
    assert ws.recv() == "[]"
    opcode, frame = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame[:2], "big") == 1000
    ws.close()


def test_filters(db, http):
    http.post(db + "/_bulk_docs", json={"docs": [{"_id": f"d{i}", "n": i} for i in range(6)]})
    ids = lambda r: [row["id"] for row in r.json()["results"]]  # noqa: E731
    r = http.post(db + "/_changes", params={"filter": "_doc_ids"}, json={"doc_ids": ["d1", "d4"]})
    assert ids(r) == ["d1", "d4"]
    r = http.get(db + "/_changes", params={"filter": "_doc_ids", "doc_ids": '["d2"]'})
    assert ids(r) == ["d2"]
    r = http.post(db + "/_changes", params={"filter": "_selector"}, json={"selector": {"n": {"$gte": 4}}})
    assert ids(r) == ["d4", "d5"]
    assert r.json()["last_seq"].startswith("6-")  # selective filters still advance last_seq
    r = http.get(db + "/_changes", params={"filter": "_selector", "selector": '{"n": 0}'})
    assert ids(r) == ["d0"]
    assert http.post(db + "/_changes", params={"filter": "_selector"}, json={}).status_code == 400
    assert http.get(db + "/_changes", params={"filter": "ddoc/f"}).status_code == 404
    # A selective longpoll keeps waiting past non-matching writes.
    feed = stream(http, db, feed="longpoll", since="now", filter="_doc_ids", doc_ids='["want"]', heartbeat=10000)
    feed.until(lambda d: d.startswith(b'{"results":[\n'))
    put(http, db, "other")
    rev = put(http, db, "want")
    body = json.loads(feed.rest())
    assert [r["changes"][0]["rev"] for r in body["results"]] == [rev]


def test_changes_of_missing_db(server, http):
    r = http.get(server.url + "/nope/_changes")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


@pytest.mark.parametrize("feed", ["continuous", "eventsource"])
def test_deleting_the_database_ends_feeds(server, http, feed):
    url = server.url + f"/doomed-{feed}"
    http.put(url)
    reader = stream(http, url, feed=feed, heartbeat=50)
    reader.until(lambda d: b"\n" in d)
    http.delete(url)
    reader.rest()  # returns: the feed ended
