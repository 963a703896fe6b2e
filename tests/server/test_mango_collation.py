"""Mango ranges and sorts over values of mixed JSON types follow CouchDB's collation
(null < false < true < numbers < strings < arrays < objects), with and without an index,
page by page, and in databases whose indexes an older layout made."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudsync.selector import collation_key, compile_selector, sort_key
from cloudsync.server import query
from cloudsync.server.indexes import Index, index_ddoc_view
from cloudsync.server.storage import Database, Tx, find

VALUES = [None, False, True, -3, 0, 1, 2.5, 10, 9, "", "B", "a", "b", "é", "10", [], [9], [10], [1, "x"],
          [1, 2], {}, {"k": 1}, {"k": 1, "z": 0}, {"a": 2}]
DOCS = [{"_id": f"d{i:02}", "v": v} for i, v in enumerate(VALUES)] + [{"_id": "none"}]
RANGES = [{"$lt": 1}, {"$lte": True}, {"$gt": None}, {"$gte": False}, {"$gt": 9}, {"$lt": "b"}, {"$gte": "B"},
          {"$gt": [9]}, {"$lt": [1, 2]}, {"$gte": {}}, {"$lt": {"k": 1}}, {"$in": [None, True, 10, "a", [9]]},
          {"$eq": False}, {"$eq": [10]}, {"$gt": 0, "$lt": "a"}, {"$ne": 1}]
_dbs = itertools.count()


def expected(docs: list[dict], selector: dict, direction: str = "asc") -> list[str]:
    """The matcher's answer in `_find`'s order for a sort on `v`."""
    match = compile_selector({"$and": [selector, {"v": {"$exists": True}}]})
    return [d["_id"] for d in sorted(filter(match, docs), key=sort_key([("v", direction), ("_id", direction)]))]


def find_ids(http: requests.Session, url: str, body: dict) -> list[str]:
    r = http.post(url + "/_find", json={"limit": 1000, **body})
    assert r.status_code == 200, r.text
    return [d["_id"] for d in r.json()["docs"]]


def pages(http: requests.Session, url: str, body: dict, size: int) -> list[str]:
    """Every page of `body`'s answer, `size` at a time, by bookmark (at most 100 pages)."""
    ids: list[str] = []
    bookmark = None
    for _ in range(100):
        r = http.post(url + "/_find", json={**body, "limit": size, **({"bookmark": bookmark} if bookmark else {})})
        assert r.status_code == 200, r.text
        if not r.json()["docs"]:
            return ids
        ids += [d["_id"] for d in r.json()["docs"]]
        bookmark = r.json()["bookmark"]
    raise AssertionError("paging did not end")


@pytest.fixture
def mixed(db: str, http: requests.Session) -> str:
    """A database holding DOCS (one value of every type in `v`, one without it), no index."""
    assert http.post(db + "/_bulk_docs", json={"docs": DOCS}).status_code == 201
    return db


@pytest.fixture
def mixed_indexed(mixed: str, http: requests.Session) -> str:
    """`mixed` with a json index on `v`."""
    assert http.post(mixed + "/_index", json={"index": {"fields": ["v"]}, "ddoc": "v", "name": "v"}).status_code == 200
    return mixed


@pytest.mark.parametrize("cond", RANGES, ids=json.dumps)
def test_range_without_index_follows_collation(mixed, http, cond):
    """Without an index, a range over values of every type selects what CouchDB's collation does."""
    assert sorted(find_ids(http, mixed, {"selector": {"v": cond}})) == sorted(expected(DOCS, {"v": cond}))


@pytest.mark.parametrize("cond", RANGES, ids=json.dumps)
def test_range_through_index_follows_collation(mixed_indexed, http, cond):
    """Through an index on the field, a range over values of every type selects and orders
    what CouchDB's collation does (nulls and booleans below numbers included)."""
    body = {"selector": {"v": cond}, "sort": ["v"]}
    r = http.post(mixed_indexed + "/_explain", json=body).json()
    assert r["index"]["name"] == "v"
    assert find_ids(http, mixed_indexed, body) == expected(DOCS, {"v": cond})


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sort_over_every_type(mixed_indexed, http, direction):
    """A sort over values of every type is CouchDB's order: by type, then numbers by value,
    strings by code point, arrays and objects element by element (not by their JSON text)."""
    got = find_ids(http, mixed_indexed, {"selector": {}, "sort": [{"v": direction}]})
    assert got == expected(DOCS, {}, direction)
    values = [VALUES[int(i[1:])] for i in got]
    arrays = [v for v in values if v in ([9], [10])]
    assert arrays == ([[9], [10]] if direction == "asc" else [[10], [9]])


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("size", [1, 2, 5])
def test_bookmark_pages_over_every_type(mixed_indexed, http, direction, size):
    """Paging a sort over values of every type by bookmark returns the unpaged answer, in
    order, also when a page ends inside a run of arrays or objects."""
    body = {"selector": {"v": {"$gte": None}}, "sort": [{"v": direction}]}
    assert pages(http, mixed_indexed, body, size) == expected(DOCS, {"v": {"$gte": None}}, direction)


def test_bookmark_pages_through_a_range_without_index(mixed, http):
    """Without an index, paging a range over mixed types returns each matching document once."""
    got = pages(http, mixed, {"selector": {"v": {"$lt": 1}}}, 2)
    assert sorted(got) == sorted(expected(DOCS, {"v": {"$lt": 1}}))


def test_arrays_in_a_second_index_field_sort_by_collation(db, http):
    """A sort on two fields orders arrays in the second field by collation within equal first values."""
    docs = [{"_id": f"x{i}", "a": i % 2, "b": b} for i, b in enumerate([[10], [9], [2, 1], [9], "s", [10, 0]])]
    http.post(db + "/_bulk_docs", json={"docs": docs})
    http.post(db + "/_index", json={"index": {"fields": ["a", "b"]}})
    body = {"selector": {"a": {"$gte": 0}}, "sort": ["a", "b"]}
    want = [d["_id"] for d in sorted(docs, key=sort_key([("a", "asc"), ("b", "asc"), ("_id", "asc")]))]
    assert find_ids(http, db, body) == want
    assert pages(http, db, body, 1) == want


def test_strings_collate_by_code_point_with_and_without_index(db, http):
    """Strings compare by Unicode code point through an index and without one alike
    ("B" < "a" < "b" < "é"; CouchDB's ICU collation would put "a" < "B")."""
    words = ["b", "é", "B", "a", "Z", "ä", "aa", "\U0001f600", "\uff21"]
    http.post(db + "/_bulk_docs", json={"docs": [{"_id": f"w{i}", "v": w} for i, w in enumerate(words)]})
    selector = {"v": {"$gt": "B", "$lt": "é"}}
    unindexed = find_ids(http, db, {"selector": selector})
    http.post(db + "/_index", json={"index": {"fields": ["v"]}})
    indexed = find_ids(http, db, {"selector": selector, "sort": ["v"]})
    by_code_point = sorted(w for w in words if "B" < w < "é")
    assert [words[int(i[1:])] for i in indexed] == by_code_point
    assert sorted(unindexed) == sorted(indexed)


def test_numeric_range_is_index_seeks_in_order(db, http):
    """A numeric range through an index stays index seeks that give the order (no scan,
    no sorting step), though values of other types are in the same index."""
    http.post(db + "/_bulk_docs", json={"docs": DOCS})
    http.post(db + "/_index", json={"index": {"fields": ["v"]}})
    plan = http.post(db + "/_explain", json={"selector": {"v": {"$gt": 1}}, "sort": ["v"]}).json()["query_plan"]
    assert plan and all(line.startswith("SEARCH docs USING INDEX mango_") for line in plan), plan


def test_sql_type_ranks_match_collation():
    """The index's SQL type rank of a JSON value is the rank collation orders it by."""
    conn = sqlite3.connect(":memory:")
    col = find.columns(_v_index())[0]
    for v in VALUES:
        body = json.dumps({"v": v})
        (got,) = conn.execute(f"SELECT {col.rank} FROM (SELECT ? AS body)", (body,)).fetchone()
        assert got == collation_key(v)[0], v


def _v_index() -> Index:
    return Index("_design/v", "v", [("v", "asc")], None)


class _FakeStorage:
    durable = False


@pytest.fixture
def old_layout_db(tmp_path: Path) -> Iterator[Path]:
    """A database file whose index on `v` is in the layout before type ranks (one
    expression per field), as an older server left it."""
    path = tmp_path / "x.sqlite"
    db = Database(_FakeStorage(), "x", path)  # type: ignore[arg-type]
    db.writer.execute("BEGIN")
    tx = Tx(db)
    tx.put_doc({"_id": "_design/v", "language": "query", "views": {"v": index_ddoc_view([("v", "asc")], None)}})
    for doc in DOCS:
        tx.put_doc(dict(doc))
    tx.sync_indexes()
    db.writer.execute("COMMIT")
    for (name,) in db.writer.execute("SELECT name FROM sqlite_master WHERE name LIKE 'mango%'").fetchall():
        db.writer.execute(f'DROP INDEX "{name}"')
    db.writer.execute("CREATE INDEX mango_0123456789abcdef ON docs (json_extract(body, '$.\"v\"'), id) "
                      "WHERE deleted = 0 AND design = 0")
    db.reader.close()
    db.writer.close()
    yield path


def test_old_index_layout_rebuilt_on_open(old_layout_db):
    """Opening a database whose indexes an older layout made replaces them, and indexed
    ranges over mixed types then answer by CouchDB's collation, through the index."""
    db = Database(_FakeStorage(), "x", old_layout_db)  # type: ignore[arg-type]
    try:
        names = [n for (n,) in db.reader.execute("SELECT name FROM sqlite_master WHERE name LIKE 'mango%'")]
        assert names == [find.index_name(_v_index())]
        q = query.Query({"selector": {"v": {"$lt": 1}}, "sort": ["v"], "limit": 100}, db.indexes())
        assert q.index is not None
        _, plan = find.explain(db.reader, q)
        assert all(line.startswith("SEARCH docs USING INDEX " + names[0]) for line in plan), plan
        assert [d["_id"] for d in query.run_find(db.reader, q)["docs"]] == expected(DOCS, {"v": {"$lt": 1}})
    finally:
        db.reader.close()
        db.writer.close()


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([0.5, -2.5]),
                     st.sampled_from(["", "a", "B", "b", "é", "1"]))
_values = st.one_of(_scalars, st.lists(_scalars, max_size=2), st.dictionaries(st.sampled_from("ab"), _scalars, max_size=2))
_ops = st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$eq"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(_values, _values), min_size=1, max_size=25),
       conds=st.lists(st.tuples(st.sampled_from("ab"), _ops, _values), max_size=2),
       direction=st.sampled_from(["asc", "desc"]), size=st.integers(1, 6))
def test_indexed_answers_equal_the_matcher(server, http, values, conds, direction, size):
    """For random documents of mixed types and a random range on an index `[a, b]`, the
    sorted `_find` answer, unpaged and paged by bookmark, is the matcher's, in the
    matcher's order."""
    url = f"{server.url}/collation-{next(_dbs)}"
    assert http.put(url).status_code == 201
    try:
        docs = [{"_id": f"d{i:02}", "a": a, "b": b} for i, (a, b) in enumerate(values)]
        assert http.post(url + "/_bulk_docs", json={"docs": docs}).status_code == 201
        assert http.post(url + "/_index", json={"index": {"fields": ["a", "b"]}}).status_code == 200
        selector: dict = {"a": {"$exists": True}}
        for field, op, arg in conds:
            selector.setdefault(field, {})[op] = arg
        body = {"selector": selector, "sort": [{"a": direction}, {"b": direction}]}
        match = compile_selector({"$and": [selector, {"b": {"$exists": True}}]})
        key = sort_key([("a", direction), ("b", direction), ("_id", direction)])
        want = [d["_id"] for d in sorted(filter(match, docs), key=key)]
        assert find_ids(http, url, body) == want
        assert pages(http, url, body, size) == want
    finally:
        http.delete(url)
