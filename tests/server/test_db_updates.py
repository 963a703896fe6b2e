"""`/_db_updates`: the server's log of created, updated and deleted databases, served by
the `_changes` feeds (normal, longpoll, continuous, eventsource) as CouchDB 3 frames it.

The session server is shared: every test reads from a position it takes first
(`since=now`) and looks only at the databases it makes."""

from __future__ import annotations

import itertools
import json

import pytest
import requests

from cloudsync.server.testing import serve

from ._feeds import DEADLINE, SEQ, Reader, events, lines, put

_names = itertools.count()


def _name() -> str:
    return f"dbu-{next(_names)}"


def now(http: requests.Session, base: str) -> str:
    """The log's current end (`since=now` resolved by a normal feed)."""
    r = http.get(base + "/_db_updates", params={"since": "now"}, timeout=DEADLINE)
    assert r.status_code == 200 and r.json()["results"] == []
    return r.json()["last_seq"]


def updates(http: requests.Session, base: str, **params: object) -> dict:
    r = http.get(base + "/_db_updates", params=params, timeout=DEADLINE)
    assert r.status_code == 200, r.text
    return r.json()


def events_of(answer: dict, *names: str) -> list[tuple[str, str]]:
    return [(row["db_name"], row["type"]) for row in answer["results"] if row["db_name"] in names]


def stream(http: requests.Session, base: str, **params: object) -> Reader:
    r = http.get(base + "/_db_updates", params=params, stream=True, timeout=DEADLINE)
    assert r.status_code == 200
    return Reader(r)


def test_created_updated_and_deleted_in_order(server, http):
    """Creating a database, writing to it and deleting it are three rows, in that order."""
    since, name = now(http, server.url), _name()
    assert http.put(f"{server.url}/{name}").status_code == 201
    put(http, f"{server.url}/{name}", "a")
    assert http.delete(f"{server.url}/{name}").status_code == 200
    answer = updates(http, server.url, since=since)
    assert events_of(answer, name) == [(name, "created"), (name, "updated"), (name, "deleted")]


def test_a_row_is_db_name_type_and_an_opaque_seq(server, http):
    """Each row holds exactly `db_name`, `type` and `seq`, a seq in the server's format,
    and `last_seq` is the last row's seq."""
    since, name = now(http, server.url), _name()
    http.put(f"{server.url}/{name}")
    answer = updates(http, server.url, since=since)
    row = answer["results"][-1]
    assert set(row) == {"db_name", "type", "seq"}
    assert SEQ.fullmatch(json.dumps(row["seq"]).encode())
    assert answer["last_seq"] == row["seq"]


def test_repeated_updates_of_a_database_coalesce(server, http):
    """Many writes to one database leave one `updated` row, at the latest write's seq:
    the log does not grow with the writes."""
    since, name = now(http, server.url), _name()
    db = f"{server.url}/{name}"
    http.put(db)
    put(http, db, "a")
    middle = now(http, server.url)
    for i in range(5):
        put(http, db, f"b{i}")
    assert events_of(updates(http, server.url, since=since), name) == [(name, "created"), (name, "updated")]
    assert events_of(updates(http, server.url, since=middle), name) == [(name, "updated")]


def test_since_now_skips_what_came_before(server, http):
    """`since=now` starts at the end: earlier events are not sent."""
    name = _name()
    http.put(f"{server.url}/{name}")
    answer = updates(http, server.url, since="now")
    assert events_of(answer, name) == []


def test_limit_caps_the_rows(server, http):
    """`limit=2` answers two rows, and `last_seq` is the second one's seq."""
    since = now(http, server.url)
    for _ in range(3):
        http.put(f"{server.url}/{_name()}")
    answer = updates(http, server.url, since=since, limit=2)
    assert len(answer["results"]) == 2
    assert answer["last_seq"] == answer["results"][1]["seq"]


def test_descending_lists_newest_first(server, http):
    """`descending=true` (normal feed) lists the newest event first."""
    first, second = _name(), _name()
    http.put(f"{server.url}/{first}")
    http.put(f"{server.url}/{second}")
    rows = updates(http, server.url, descending="true", limit=2)["results"]
    assert [r["db_name"] for r in rows] == [second, first]


def test_longpoll_waits_for_the_next_event(server, http):
    """A long poll from now answers when a database is created."""
    since, name = now(http, server.url), _name()
    reader = stream(http, server.url, feed="longpoll", since=since, timeout=int(DEADLINE * 1000))
    http.put(f"{server.url}/{name}")
    answer = json.loads(reader.until(lambda d: b'"last_seq"' in d))
    assert events_of(answer, name) == [(name, "created")]


def test_continuous_sends_events_and_heartbeats(server, http):
    """A continuous feed sends each event as a line, and blank lines while it waits."""
    since, name = now(http, server.url), _name()
    reader = stream(http, server.url, feed="continuous", since=since, heartbeat=50)
    reader.until(lambda d: b"\n" in d)
    http.put(f"{server.url}/{name}")
    rows = lines(reader, 1)
    assert (rows[0]["db_name"], rows[0]["type"]) == (name, "created")
    reader.resp.close()


def test_continuous_timeout_ends_with_last_seq(server, http):
    """A continuous feed with a timeout ends cleanly with a `last_seq` line."""
    since = now(http, server.url)
    reader = stream(http, server.url, feed="continuous", since=since, timeout=100)
    rows = [json.loads(x) for x in reader.rest().split(b"\n") if x.strip()]
    assert rows[-1]["last_seq"]


def test_eventsource_events_carry_the_seq_as_id(server, http):
    """An eventsource feed sends each event's row as `data` and its seq as `id`."""
    since, name = now(http, server.url), _name()
    reader = stream(http, server.url, feed="eventsource", since=since)
    http.put(f"{server.url}/{name}")
    ((row, event_id),) = events(reader, 1)
    assert (row["db_name"], row["type"]) == (name, "created")
    assert event_id == json.dumps(row["seq"])
    reader.resp.close()


def test_eventsource_heartbeat_is_a_heartbeat_event(server, http):
    """A waiting eventsource feed sends `event: heartbeat` events."""
    reader = stream(http, server.url, feed="eventsource", since="now", heartbeat=50)
    assert b"event: heartbeat\ndata:\n\n" in reader.until(lambda d: b"event: heartbeat" in d)
    reader.resp.close()


def test_eventsource_resumes_from_last_event_id(server, http):
    """`Last-Event-ID` (the quoted seq CouchDB sends as event id) wins over `since`."""
    first, second = _name(), _name()
    http.put(f"{server.url}/{first}")
    mark = now(http, server.url)
    http.put(f"{server.url}/{second}")
    r = http.get(server.url + "/_db_updates", params={"feed": "eventsource", "since": 0, "timeout": 100},
                 headers={"Last-Event-ID": json.dumps(mark)}, timeout=DEADLINE)
    names = [json.loads(line[6:])["db_name"] for line in r.text.split("\n") if line.startswith("data: {")]
    assert second in names and first not in names


def test_websocket_feed_is_refused(server, http):
    """`feed=websocket` is not a `_db_updates` feed: 400, as CouchDB answers."""
    r = http.get(server.url + "/_db_updates", params={"feed": "websocket"}, timeout=DEADLINE)
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_malformed_since_is_a_bad_request(server, http):
    """A `since` that is not a seq is a 400."""
    r = http.get(server.url + "/_db_updates", params={"since": "yesterday"}, timeout=DEADLINE)
    assert r.status_code == 400


def test_post_is_not_allowed(server, http):
    """Only GET reads it: POST is 405."""
    assert http.post(server.url + "/_db_updates", json={}, timeout=DEADLINE).status_code == 405


def test_anonymous_requests_are_refused_when_users_exist(secured, http):
    """With users configured only a logged-in (admin) user may read it: 401 without credentials."""
    assert http.get(secured.url + "/_db_updates", timeout=DEADLINE).status_code == 401
    assert http.get(secured.url + "/_db_updates", auth=secured.auth, timeout=DEADLINE).status_code == 200


@pytest.mark.slow
def test_the_log_survives_a_restart(tmp_path, http):
    """After a restart, `since=<seq before it>` returns exactly what came after, and new
    events follow the old ones."""
    with serve(tmp_path / "data") as srv:
        http.put(f"{srv.url}/before")
        mark = now(http, srv.url)
        http.put(f"{srv.url}/after")
        srv.restart()
        http.put(f"{srv.url}/later")
        assert [r["db_name"] for r in updates(http, srv.url, since=mark)["results"]] == ["after", "later"]
