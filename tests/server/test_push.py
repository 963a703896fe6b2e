"""Commits pushed to waiting feeds: each feed gets exactly its own rows, framed its own way,
whether the commit is pushed to it or its task has to take over (big commits, full buffers)."""

from __future__ import annotations

import json
import socket

import requests

from ._feeds import DEADLINE, events, lines, live, put, stream, ws_from_now, ws_rows


def test_feeds_with_different_options_each_get_their_own_rows(db, http):
    """One commit reaches feeds of every format and option set at once, each framed its own way."""
    http.put(db + "/seed", json={})
    plain = live(stream(http, db, feed="continuous", since="now", heartbeat=50))
    docs = live(stream(http, db, feed="continuous", since="now", heartbeat=50, include_docs="true"))
    sse = live(stream(http, db, feed="eventsource", since="now", heartbeat=50))
    ws_plain, ws_docs = ws_from_now(db), ws_from_now(db, include_docs=True)
    rev = put(http, db, "a", n=1)
    try:
        expected = http.get(db + "/_changes", params={"descending": "true", "limit": 1}).json()
        row = expected["results"][0]
        assert row["id"] == "a" and row["changes"] == [{"rev": rev}]
        assert lines(plain, 1) == [row]
        [with_doc] = lines(docs, 1)
        assert with_doc == {**row, "doc": {"_id": "a", "_rev": rev, "n": 1}}
        assert events(sse, 1) == [(row, json.dumps(row["seq"]))]  # the id: the seq JSON-encoded
        assert ws_rows(ws_plain, 1) == [row]
        assert ws_rows(ws_docs, 1) == [with_doc]
    finally:
        ws_plain.close()
        ws_docs.close()
        for r in (plain, docs, sse):
            r.resp.close()


def test_filtered_feed_gets_only_matching_rows_and_keeps_its_place(db, http):
    """A waiting doc_ids feed skips other commits without losing its position."""
    feed = live(stream(http, db, feed="continuous", since="now", heartbeat=50,
                        filter="_doc_ids", doc_ids='["want"]'))
    ws = ws_from_now(db, doc_ids=["want"])
    try:
        for i in range(3):
            put(http, db, f"other{i}")
        rev = put(http, db, "want")
        put(http, db, "other3")
        rev2 = put(http, db, "want", _rev=rev, again=True)
        seqs = [r["seq"] for r in http.get(db + "/_changes").json()["results"] if r["id"] == "want"]
        rows = lines(feed, 2)
        assert [(r["id"], r["changes"][0]["rev"]) for r in rows] == [("want", rev), ("want", rev2)]
        assert rows[-1]["seq"] == seqs[-1]
        assert [r["changes"][0]["rev"] for r in ws_rows(ws, 2)] == [rev, rev2]
    finally:
        ws.close()
        feed.resp.close()


def test_commit_larger_than_a_batch_reaches_waiting_feeds_whole(db, http):
    """A bulk write of more rows than one feed batch arrives complete, in order, once."""
    feed = live(stream(http, db, feed="continuous", since="now", heartbeat=50))
    ws = ws_from_now(db)
    docs = [{"_id": f"d{i:05d}"} for i in range(2_500)]
    try:
        assert http.post(db + "/_bulk_docs", json={"docs": docs}).status_code == 201
        want = [d["_id"] for d in docs]
        assert [r["id"] for r in lines(feed, len(docs))] == want
        assert [r["id"] for r in ws_rows(ws, len(docs))] == want
    finally:
        ws.close()
        feed.resp.close()


def test_subscriber_that_falls_behind_gets_every_row_once(server, db, http):
    """A reader that does not read while big commits arrive (its buffers fill, so commits are
    no longer pushed to it) gets every row exactly once, in order, when it reads again."""
    host, port = server.url.rsplit("/", 1)[-1].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((host, int(port)))
    path = db.split(server.url, 1)[1]
    sock.sendall(f"GET {path}/_changes?feed=continuous&since=now&include_docs=true&timeout=2000 HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\n\r\n".encode())
    sock.settimeout(DEADLINE)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    big = "x" * 10_000
    ids = []
    for b in range(10):
        batch = [{"_id": f"b{b}-{i}", "big": big} for i in range(20)]
        ids += [d["_id"] for d in batch]
        assert http.post(db + "/_bulk_docs", json={"docs": batch}).status_code == 201
    body = head.split(b"\r\n\r\n", 1)[1]
    while not body.endswith(b"0\r\n\r\n"):  # the feed ends 2 s after the last row
        chunk = sock.recv(1 << 16)
        assert chunk, "connection closed before the end of the feed"
        body += chunk
    sock.close()
    rows, i = [], 0
    while True:  # de-chunk
        end = body.index(b"\r\n", i)
        size = int(body[i:end], 16)
        if size == 0:
            break
        rows.append(body[end + 2:end + 2 + size])
        i = end + 2 + size + 2
    decoded = [json.loads(x) for x in b"".join(rows).split(b"\n") if x.strip()]
    assert [r["id"] for r in decoded[:-1]] == ids
    assert "last_seq" in decoded[-1]


def test_websocket_client_closing_ends_only_its_own_feed(db, http):
    """A websocket subscriber that closes does not disturb the others on the database."""
    leaving, staying = ws_from_now(db), ws_from_now(db)
    try:
        leaving.close()
        rev = put(http, db, "after")
        assert [r["changes"][0]["rev"] for r in ws_rows(staying, 1)] == [rev]
    finally:
        staying.close()


def test_many_feeds_with_the_same_options_each_get_the_commit(db):
    """Feeds that share one encoded chunk per commit each still get it (and only once)."""
    sessions = [requests.Session() for _ in range(20)]
    try:
        readers = [stream(s, db, feed="eventsource" if i % 2 else "continuous", since="now", heartbeat=50)
                   for i, s in enumerate(sessions)]
        for r in readers:
            live(r)
        with requests.Session() as writer:
            revs = [put(writer, db, "one"), put(writer, db, "two")]
        for i, r in enumerate(readers):
            rows = [row for row, _ in events(r, 2)] if i % 2 else lines(r, 2)
            assert [row["changes"][0]["rev"] for row in rows] == revs
    finally:
        for s in sessions:
            s.close()
