"""Mango: operators, indexes backed by SQLite expression indexes, bookmarks, _explain."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from cloudsync.selector import collate
from cloudsync.server import query
from cloudsync.server.indexes import index_ddoc_view
from cloudsync.server.storage import CHANGES_SQL, Database, Tx, find

DOCS = [
    {"_id": "a", "name": "ann", "age": 31, "tags": ["x", "y"], "addr": {"city": "Oslo"}, "ok": True},
    {"_id": "b", "name": "bob", "age": 25, "tags": ["y"], "addr": {"city": "Rome"}, "ok": False},
    {"_id": "c", "name": "cat", "age": 40, "tags": [], "score": None},
    {"_id": "d", "name": "dan", "age": 12.5, "tags": ["x", "z", "y"], "items": [{"q": 1}, {"q": 5}]},
]


@pytest.mark.parametrize("selector, expected", [
    ({"name": "ann"}, "a"),
    ({"name": {"$eq": "bob"}}, "b"),
    ({"name": {"$ne": "bob"}}, "acd"),
    ({"age": {"$gt": 25}}, "ac"),
    ({"age": {"$gte": 25}}, "abc"),
    ({"age": {"$lt": 25}}, "d"),
    ({"age": {"$lte": 25}}, "bd"),
    ({"name": {"$in": ["ann", "dan"]}}, "ad"),
    ({"name": {"$nin": ["ann", "dan"]}}, "bc"),
    ({"tags": {"$in": ["z"]}}, "d"),
    ({"score": {"$exists": True}}, "c"),
    ({"score": {"$exists": False}}, "abd"),
    ({"score": {"$type": "null"}}, "c"),
    ({"age": {"$type": "number"}, "tags": {"$type": "array"}}, "abcd"),
    ({"name": {"$regex": "^[ab]"}}, "ab"),
    ({"$and": [{"age": {"$gt": 20}}, {"age": {"$lt": 35}}]}, "ab"),
    ({"$or": [{"name": "ann"}, {"age": 40}]}, "ac"),
    ({"$nor": [{"name": "ann"}, {"age": 40}]}, "bd"),
    ({"$not": {"name": "ann"}}, "bcd"),
    ({"name": {"$not": {"$eq": "ann"}}}, "bcd"),
    ({"tags": {"$all": ["x", "y"]}}, "ad"),
    ({"items": {"$elemMatch": {"q": {"$gt": 3}}}}, "d"),
    ({"tags": {"$elemMatch": {"$eq": "z"}}}, "d"),
    ({"tags": {"$size": 1}}, "b"),
    ({"age": {"$mod": [5, 0]}}, "bc"),
    ({"addr.city": "Rome"}, "b"),
    ({"addr": {"city": "Oslo"}}, "a"),
    ({"ok": True}, "a"),
    ({"name": {"$gt": None}}, "abcd"),
    ({"age": {"$gt": "a"}}, ""),  # strings collate after numbers
])
def test_operators(db, http, selector, expected):
    """Each operator selects the documents CouchDB's semantics select."""
    http.post(db + "/_bulk_docs", json={"docs": DOCS})
    r = http.post(db + "/_find", json={"selector": selector})
    assert r.status_code == 200, r.text
    assert "".join(sorted(d["_id"] for d in r.json()["docs"])) == expected


@pytest.mark.parametrize("selector", [
    {"a": {"$bogus": 1}}, {"$gt": 1}, {"a": {"$in": 1}}, {"a": {"$mod": [0, 1]}}, {"a": {"$regex": "("}},
    {"a": {"$exists": "yes"}}, {"$and": {}}, "notadict",
])
def test_invalid_selectors(db, http, selector):
    """An invalid selector is a 400 bad_request."""
    r = http.post(db + "/_find", json={"selector": selector})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_fields_limit_and_skip(db, http):
    """``fields`` projects (dotted names nest), ``skip`` and ``limit`` cut the id-ordered results."""
    http.post(db + "/_bulk_docs", json={"docs": DOCS})
    r = http.post(db + "/_find", json={"selector": {}, "fields": ["_id", "addr.city"], "limit": 2, "skip": 1}).json()
    assert r["docs"] == [{"_id": "b", "addr": {"city": "Rome"}}, {"_id": "c"}]


def test_unindexed_query_warns(db, http):
    """A query no index serves answers with CouchDB's "no matching index" warning."""
    http.post(db + "/_bulk_docs", json={"docs": DOCS})
    r = http.post(db + "/_find", json={"selector": {}}).json()
    assert "No matching index" in r["warning"]


def test_sort_without_index_is_400(db, http):
    """Sorting by a field no index covers is 400 no_usable_index."""
    r = http.post(db + "/_find", json={"selector": {"age": {"$gt": 0}}, "sort": [{"age": "asc"}]})
    assert r.status_code == 400 and r.json()["error"] == "no_usable_index"


def test_create_index_answers_created(db, http):
    """POST _index answers ``created`` with the design doc id and the index name."""
    ix = http.post(db + "/_index", json={"index": {"fields": ["age"]}, "name": "by-age", "ddoc": "ages"}).json()
    assert ix == {"result": "created", "id": "_design/ages", "name": "by-age"}


def test_sort_served_by_index(db, http):
    """With an index on the sort field, a descending sort is answered in order, without a warning."""
    http.post(db + "/_bulk_docs", json={"docs": DOCS})
    http.post(db + "/_index", json={"index": {"fields": ["age"]}, "name": "by-age", "ddoc": "ages"})
    r = http.post(db + "/_find", json={"selector": {"age": {"$gt": 0}}, "sort": [{"age": "desc"}]}).json()
    assert [d["_id"] for d in r["docs"]] == ["c", "a", "b", "d"] and "warning" not in r


def test_sort_by_id_needs_no_index(db, http):
    """Sorting by ``_id`` uses the primary key."""
    http.post(db + "/_bulk_docs", json={"docs": DOCS})
    r = http.post(db + "/_find", json={"selector": {"_id": {"$gt": "a"}}, "sort": ["_id"]}).json()
    assert [d["_id"] for d in r["docs"]] == ["b", "c", "d"]


INDEX = {"index": {"fields": ["type", {"n": "asc"}]}, "name": "tn"}


def test_same_index_twice_exists(db, http):
    """Creating the same index again answers ``exists``."""
    first = http.post(db + "/_index", json=INDEX).json()
    assert first["result"] == "created" and first["id"].startswith("_design/")
    assert http.post(db + "/_index", json=INDEX).json()["result"] == "exists"


def test_index_listing(db, http):
    """GET _index lists the special _all_docs index first, then json indexes with their definition."""
    first = http.post(db + "/_index", json=INDEX).json()
    listed = http.get(db + "/_index").json()
    assert listed["total_rows"] == 2
    assert listed["indexes"][0] == {"ddoc": None, "name": "_all_docs", "type": "special",
                                    "def": {"fields": [{"_id": "asc"}]}}
    assert listed["indexes"][1]["def"] == {"fields": [{"type": "asc"}, {"n": "asc"}]}
    assert listed["indexes"][1]["name"] == "tn" and listed["indexes"][1]["ddoc"] == first["id"]


def test_explain_names_the_index_and_sqlite_uses_it(db, http):
    """_explain names the chosen index, and SQLite's plan searches its expression index."""
    http.post(db + "/_index", json=INDEX)
    explain = http.post(db + "/_explain", json={"selector": {"type": "t", "n": {"$gt": 1}}}).json()
    assert explain["index"]["name"] == "tn"
    assert any("USING INDEX mango_" in line for line in explain["query_plan"])


def test_delete_index(db, http):
    """Deleting an index answers ok; deleting it again (by ``_design/`` path) is 404; the listing shrinks."""
    first = http.post(db + "/_index", json=INDEX).json()
    ddoc = first["id"].split("/", 1)[1]
    assert http.delete(f"{db}/_index/{ddoc}/json/tn").json() == {"ok": True}
    assert http.delete(f"{db}/_index/_design/{ddoc}/json/tn").status_code == 404
    assert http.get(db + "/_index").json()["total_rows"] == 1


def test_deleted_index_no_longer_chosen(db, http):
    """After its index is deleted, a query falls back to _all_docs."""
    first = http.post(db + "/_index", json=INDEX).json()
    http.delete(f"{db}/_index/{first['id'].split('/', 1)[1]}/json/tn")
    explain = http.post(db + "/_explain", json={"selector": {"type": "t"}}).json()
    assert explain["index"]["name"] == "_all_docs"


@pytest.mark.parametrize("body", [{"index": {"fields": []}}, {"index": {"fields": ["a"]}, "type": "text"}])
def test_invalid_index_is_400(db, http, body):
    """An index without fields, or of a type other than json, is 400."""
    assert http.post(db + "/_index", json=body).status_code == 400


def test_partial_filter_index(db, http):
    """A query using a partial index only sees documents its partial_filter_selector matches."""
    http.post(db + "/_bulk_docs", json={"docs": DOCS})
    http.post(db + "/_index", json={"index": {"fields": ["age"], "partial_filter_selector": {"tags": {"$size": 0}}},
                                    "ddoc": "p", "name": "p"})
    r = http.post(db + "/_find", json={"selector": {"age": {"$gt": 0}}, "use_index": ["p", "p"]}).json()
    assert [d["_id"] for d in r["docs"]] == ["c"]


@pytest.mark.parametrize("indexed", [False, True])
def test_bookmark_pages_return_each_doc_once(db, http, indexed):
    """Following bookmarks visits every matching document exactly once (in index order when sorted)."""
    docs = [{"_id": f"doc{i:05}", "group": i % 7, "v": (i * 7919) % 2003} for i in range(2100)]
    for start in range(0, len(docs), 1000):
        assert http.post(db + "/_bulk_docs", json={"docs": docs[start:start + 1000]}).status_code == 201
    body: dict = {"selector": {"v": {"$gte": 0}, "group": {"$ne": 3}}, "limit": 97}
    if indexed:
        http.post(db + "/_index", json={"index": {"fields": ["v"]}})
        body["sort"] = [{"v": "asc"}]
    seen: list[str] = []
    last_v = -1
    while True:
        r = http.post(db + "/_find", json=body).json()
        if not r["docs"]:
            break
        seen += [d["_id"] for d in r["docs"]]
        if indexed:
            assert all(d["v"] >= last_v for d in r["docs"])
            last_v = r["docs"][-1]["v"]
        body["bookmark"] = r["bookmark"]
    expected = sorted(d["_id"] for d in docs if d["group"] != 3)
    assert len(seen) == len(expected) and sorted(seen) == expected


def test_malformed_bookmark_is_400(db, http):
    """A bookmark that does not decode to this query's sort key is 400."""
    bad = http.post(db + "/_find", json={"selector": {}, "bookmark": "garbage!"})
    assert bad.status_code == 400


class _FakeStorage:
    durable = False


@pytest.fixture
def indexed_db(tmp_path) -> Iterator[Database]:
    """A storage-level database with a json index on (type, n) and 50 documents."""
    db = Database(_FakeStorage(), "x", tmp_path / "x.sqlite")  # type: ignore[arg-type]
    ddoc = {"_id": "_design/i", "language": "query",
            "views": {"i": index_ddoc_view([("type", "asc"), ("n", "asc")], None)}}
    db.writer.execute("BEGIN")
    tx = Tx(db)
    tx.put_doc(ddoc)
    for i in range(50):
        tx.put_doc({"_id": f"d{i}", "type": "t" if i % 2 else "u", "n": i})
    tx.sync_indexes()
    db.writer.execute("COMMIT")
    try:
        yield db
    finally:
        db.reader.close()
        db.writer.close()


def test_indexed_query_uses_sqlite_index(indexed_db):
    """At the storage layer: the SQL a Mango query runs is an index search giving the order, not a scan."""
    q = query.Query({"selector": {"type": "t", "n": {"$gt": 10}}, "sort": ["type", "n"]}, indexed_db.indexes())
    assert q.index is not None and q.index.name == "i"
    _, plan = find.explain(indexed_db.reader, q)
    assert any("SEARCH docs USING INDEX mango_" in line for line in plan), plan
    assert not any(line.startswith("SCAN") for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan  # the index also gives the order


def test_indexed_query_results(indexed_db):
    """An indexed query returns the matching documents in index order, up to the default limit."""
    q = query.Query({"selector": {"type": "t", "n": {"$gt": 10}}, "sort": ["type", "n"]}, indexed_db.indexes())
    result = query.run_find(indexed_db.reader, q)
    assert [d["n"] for d in result["docs"]] == [i for i in range(11, 50) if i % 2][:25]


def test_unindexed_query_falls_back_to_primary_key(indexed_db):
    """A query no index serves is planned on the primary key and says so."""
    other = query.Query({"selector": {"other": 1}}, indexed_db.indexes())
    assert other.index is None and query.NO_INDEX_WARNING in other.warnings


def test_reader_is_a_sqlite_connection(indexed_db):
    """`Database.reader` is the event loop's SQLite read connection."""
    assert isinstance(indexed_db.reader, sqlite3.Connection)


def test_collate_orders_types_like_couchdb():
    """null < false < true < numbers < strings < arrays < objects, and within each type by value."""
    values = [None, False, True, -1, 2.5, "A", "a", "b", [], [1], {}, {"a": 1}]
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            assert collate(a, b) == (i > j) - (i < j), (a, b)


def test_changes_backlog_read_from_the_seq_index_alone(tmp_path):
    """At the storage layer: _changes without bodies reads (seq, id, rev, deleted) from
    the covering index, in seq order, without visiting the table rows; with bodies it
    still walks the seq index."""
    db = Database(_FakeStorage(), "x", tmp_path / "x.sqlite")  # type: ignore[arg-type]
    try:
        for descending in (False, True):
            plan = [row[3] for row in db.reader.execute("EXPLAIN QUERY PLAN " + CHANGES_SQL[False, descending], (0, 10))]
            assert any("USING COVERING INDEX docs_by_seq" in line for line in plan), plan
            assert not any("TEMP B-TREE" in line for line in plan), plan
        plan = [row[3] for row in db.reader.execute("EXPLAIN QUERY PLAN " + CHANGES_SQL[True, False], (0, 10))]
        assert len(plan) == 1 and plan[0].startswith("SEARCH docs USING INDEX") and "(seq>?)" in plan[0], plan
    finally:
        db.reader.close()
        db.writer.close()
