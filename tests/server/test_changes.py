"""`_changes` as a normal (one-shot) feed: its bytes, seqs, `limit`, `since`, `descending`,
updates and deletions, and what ends a feed, as CouchDB 3 answers them."""

from __future__ import annotations

import pytest
import requests

from ._feeds import SEQ, live, put, row_bytes, stream


@pytest.fixture
def two(db, http) -> tuple[str, str]:
    """Documents `a` then `b` written to `db`; returns their revs."""
    return put(http, db, "a", n=1), put(http, db, "b", n=2)


def changes(http, db: str, **params) -> dict:
    """The body of `GET _changes` with `params`."""
    return http.get(db + "/_changes", params=params).json()


def test_normal_feed_is_json(db, http, two):
    """The normal feed is `application/json`."""
    assert http.get(db + "/_changes").headers["Content-Type"] == "application/json"


def test_normal_feed_is_not_compressed(db, http, two):
    """The normal feed is not gzipped (clients ask for `identity` here)."""
    assert "gzip" not in http.get(db + "/_changes").headers.get("Content-Encoding", "")


def test_seqs_count_from_1(db, http, two):
    """The first two writes get seqs numbered 1 and 2."""
    assert SEQ.findall(http.get(db + "/_changes").content)[:2] == [b"1", b"2"]


def test_normal_feed_bytes_match_couchdb(db, http, two):
    """The normal feed's body is byte for byte CouchDB 3's: one row per line, then `last_seq` and `pending`."""
    r1, r2 = two
    content = http.get(db + "/_changes").content
    s1, s2 = [m.group(0) for m in SEQ.finditer(content)][:2]
    assert content == (b'{"results":[\n' + row_bytes(s1, "a", r1) + b",\n" + row_bytes(s2, "b", r2)
                       + b'\n],\n"last_seq":' + s2 + b',"pending":0}\n')


def test_limit_counts_the_rest_as_pending(db, http, two):
    """`limit=1` of two changes gives one row and `pending` 1."""
    limited = changes(http, db, limit=1)
    assert len(limited["results"]) == 1
    assert limited["pending"] == 1


def test_limited_feed_last_seq_is_its_last_row(db, http, two):
    """A limited feed's `last_seq` is the seq of its last row, not the database's."""
    limited = changes(http, db, limit=1)
    assert limited["last_seq"] == limited["results"][0]["seq"]


def test_since_gives_only_later_changes(db, http, two):
    """`since=<seq>` gives only the changes after it."""
    after = changes(http, db, since=changes(http, db, limit=1)["last_seq"])
    assert [row["id"] for row in after["results"]] == ["b"]


def test_since_now_is_empty_at_the_current_seq(db, http, two):
    """`since=now` gives no rows and the current seq as `last_seq`."""
    s2 = [m.group(0) for m in SEQ.finditer(http.get(db + "/_changes").content)][1]
    assert changes(http, db, since="now") == {"results": [], "last_seq": s2.decode().strip('"'), "pending": 0}


def test_descending_lists_newest_first(db, http, two):
    """`descending=true` lists the newest change first."""
    assert [row["id"] for row in changes(http, db, descending="true")["results"]] == ["b", "a"]


# -- seqs, updates and deletions ------------------------------------------------------------------


@pytest.fixture
def moved(db, http) -> dict:
    """`a`, then `x0`..`x10`, then `a` again: the body of `_changes?include_docs=true`."""
    rev = put(http, db, "a")
    for i in range(11):
        put(http, db, f"x{i}")
    put(http, db, "a", _rev=rev, again=True)
    return changes(http, db, include_docs="true")


def test_updated_doc_appears_once_at_its_latest_seq(moved):
    """A document appears once, at the seq of its latest update."""
    assert [row["id"] for row in moved["results"]] == [f"x{i}" for i in range(11)] + ["a"]


def test_include_docs_gives_the_latest_body(moved):
    """`include_docs=true` gives each document's latest body."""
    assert moved["results"][-1]["doc"]["again"] is True


def test_seqs_are_strings(moved):
    """Seqs are opaque strings."""
    assert all(isinstance(row["seq"], str) for row in moved["results"])


def test_seqs_do_not_sort_as_strings(moved):
    """Seqs in feed order are not in string order ("10-…" < "9-…"): clients may not compare them."""
    seqs = [row["seq"] for row in moved["results"]]
    assert sorted(seqs) != seqs


def deleted_x0(db, http, moved) -> tuple[dict, str]:
    """Delete `x0`; returns its row in `_changes?since=<before>&include_docs=true` and the tombstone rev."""
    deleted = http.delete(db + "/x0", params={"rev": moved["results"][0]["changes"][0]["rev"]})
    last = changes(http, db, since=moved["last_seq"], include_docs="true")
    return last["results"][0], deleted.json()["rev"]


def test_deleted_doc_row_says_deleted(db, http, moved):
    """A deletion's row has `deleted: true`."""
    row, _ = deleted_x0(db, http, moved)
    assert row["deleted"] is True


def test_deleted_doc_row_carries_the_tombstone(db, http, moved):
    """With `include_docs`, a deletion's row carries the tombstone `{_id, _rev, _deleted}`."""
    row, rev = deleted_x0(db, http, moved)
    assert row["doc"] == {"_id": "x0", "_rev": rev, "_deleted": True}


# -- missing and deleted databases ------------------------------------------------------------------


def test_changes_of_missing_db_is_404_not_found(unused_db, http):
    """`_changes` of a database that does not exist is 404 not_found."""
    r = http.get(unused_db + "/_changes")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


@pytest.mark.parametrize("feed", ["continuous", "eventsource"])
def test_deleting_the_database_ends_feeds(db, http: requests.Session, feed):
    """Deleting a database ends the streamed feeds open on it."""
    reader = live(stream(http, db, feed=feed, heartbeat=50))
    http.delete(db)
    reader.rest()  # returns: the feed ended


def test_all_docs_style_lists_every_leaf_of_each_row(db, http):
    """`style=all_docs` lists each row's winner, then its live and deleted losing leaves
    newest first, for conflicted documents among plain ones in one page."""
    docs = [{"_id": f"d{i}", "_rev": f"1-{i:032x}"} for i in range(600)]
    docs += [{"_id": "d7", "_rev": "1-" + "e" * 32, "side": 1},
             {"_id": "d7", "_rev": "2-" + "f" * 32, "_deleted": True,
              "_revisions": {"start": 2, "ids": ["f" * 32, "d" * 32]}},
             {"_id": "d599", "_rev": "1-" + "0" * 31 + "1", "side": 2}]
    assert http.post(db + "/_bulk_docs", json={"docs": docs, "new_edits": False}).status_code == 201
    rows = {row["id"]: [c["rev"] for c in row["changes"]] for row in changes(http, db, style="all_docs")["results"]}
    assert len(rows) == 600
    assert rows["d7"] == ["1-" + "e" * 32, "1-" + "0" * 31 + "7", "2-" + "f" * 32]
    assert rows["d599"] == ["1-" + f"{599:032x}", "1-" + "0" * 31 + "1"]
    assert rows["d0"] == ["1-" + "0" * 32]
