"""all_docs, Mango queries with paging, indexes and views against real servers."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

import cloudsync

pytestmark = pytest.mark.integration


@pytest.fixture
def numbers(db):
    """A database with 50 documents n00..n49 holding n and its parity."""
    db.bulk([{"_id": f"n{i:02}", "n": i, "even": i % 2 == 0} for i in range(50)]).run()
    return db


def test_all_docs_pages_lazily_and_returns_each_row_once(numbers):
    """Small pages still yield every id once, in key order."""
    ids = [row["id"] for row in numbers.all_docs(page_size=7)]
    assert ids == [f"n{i:02}" for i in range(50)]


def test_all_docs_with_docs_range_limit_and_descending(numbers):
    """include_docs, startkey/endkey, limit and descending combine as in CouchDB."""
    rows = list(numbers.all_docs(include_docs=True, startkey="n10", endkey="n19", page_size=3))
    assert [r["doc"]["n"] for r in rows] == list(range(10, 20))
    rows = list(numbers.all_docs(descending=True, limit=5, page_size=2))
    assert [r["id"] for r in rows] == ["n49", "n48", "n47", "n46", "n45"]


def test_all_docs_by_keys_keeps_the_order_and_reports_missing(numbers):
    """keys= returns rows in the order asked, a missing key as an error row."""
    rows = list(numbers.all_docs(keys=["n03", "missing", "n01"], page_size=2))
    assert [r["key"] for r in rows] == ["n03", "missing", "n01"]
    assert rows[1].get("error") == "not_found"


def test_query_over_2000_documents_returns_each_exactly_once(db, server_kind, caplog):
    """_find paged 300 at a time returns all 2,000 matches once: by bookmark, or by skip
    on a server that sends no bookmark (pouchdb-server)."""
    caplog.set_level(logging.DEBUG, logger="cloudsync")
    for start in range(0, 2000, 500):
        db.bulk([{"_id": f"d{i:05}", "kind": "item", "i": i} for i in range(start, start + 500)]).run()
    db.bulk([{"_id": f"x{i}", "kind": "other"} for i in range(20)]).run()
    seen = Counter(doc["_id"] for doc in db.query({"kind": "item"}, fields=["_id"], page_size=300))
    assert len(seen) == 2000 and set(seen.values()) == {1}
    fell_back = "paging by skip" in caplog.text
    assert fell_back == (server_kind == "pouchdb")


def test_query_with_index_sort_fields_and_limit(numbers):
    """An indexed, sorted query honours fields and limit."""
    numbers.create_index(["n"], name="by-n", ddoc="idx")
    docs = list(numbers.query({"n": {"$gte": 40}}, fields=["_id", "n"], sort=[{"n": "desc"}], limit=4, page_size=3))
    assert docs == [{"_id": f"n{i}", "n": i} for i in (49, 48, 47, 46)]


def test_query_with_operators(numbers):
    """$and/$in/$mod style selectors filter on the server."""
    docs = list(numbers.query({"n": {"$in": [1, 2, 3, 4]}, "even": True}, fields=["_id"]))
    assert sorted(d["_id"] for d in docs) == ["n02", "n04"]


def test_explain_names_the_index(numbers):
    """explain() shows the index the server would use."""
    numbers.create_index(["n"], name="by-n", ddoc="idx")
    plan = numbers.explain({"n": {"$gt": 5}})
    assert plan["index"]["name"] == "by-n"


def test_bad_selector_is_bad_request(numbers):
    """An invalid operator is a BadRequest from the server."""
    with pytest.raises(cloudsync.BadRequest):
        list(numbers.query({"n": {"$nosuchop": 1}}))


def test_selector_must_be_a_mapping(db):
    """A selector that is not a mapping is a TypeError before any request."""
    with pytest.raises(TypeError):
        db.query(["n"])  # type: ignore[arg-type]


def test_index_lifecycle(db):
    """create_index reports created then exists; indexes() lists it; delete_index removes it."""
    first = db.create_index(["a", "b"], name="ab", ddoc="my-ddoc")
    again = db.create_index(["a", "b"], name="ab", ddoc="my-ddoc")
    assert (first["result"], again["result"]) == ("created", "exists")
    names = {(i["ddoc"], i["name"]) for i in db.indexes()}
    assert ("_design/my-ddoc", "ab") in names and (None, "_all_docs") in names
    db.delete_index("_design/my-ddoc", "ab")
    assert ("_design/my-ddoc", "ab") not in {(i["ddoc"], i["name"]) for i in db.indexes()}


def test_deleting_a_missing_index_raises_not_found(db, server_kind):
    """delete_index of an unknown index is NotFound."""
    if server_kind == "pouchdb":
        pytest.skip("pouchdb-server 4.2.0 answers 500 here; CouchDB 3 answers 404")
    with pytest.raises(cloudsync.NotFound):
        db.delete_index("nope", "nope")


def test_partial_index(db):
    """partial_filter limits what an index covers; the query still answers correctly."""
    db.bulk([{"_id": f"p{i}", "n": i, "live": i % 3 == 0} for i in range(12)]).run()
    db.create_index(["n"], name="live-n", ddoc="p", partial_filter={"live": True})
    docs = list(db.query({"n": {"$gte": 0}, "live": True}, fields=["_id"]))
    assert sorted(d["_id"] for d in docs) == ["p0", "p3", "p6", "p9"]


@pytest.fixture
def view_db(db, server_kind):
    if server_kind == "embedded":
        pytest.skip("the embedded server does not run map functions (docs/server.md)")
    db.create({"_id": "_design/stats", "views": {
        "by_parity": {"map": "function (doc) { if (doc.n !== undefined) emit(doc.even, doc.n); }", "reduce": "_sum"},
        "by_n": {"map": "function (doc) { if (doc.n !== undefined) emit(doc.n % 5, null); }"},
    }})
    db.bulk([{"_id": f"v{i:02}", "n": i, "even": i % 2 == 0} for i in range(30)]).run()
    return db


def test_view_pages_through_duplicate_keys(view_db):
    """Rows with equal keys are paged by startkey_docid: every row once, in order."""
    rows = list(view_db.view("stats", "by_n", reduce=False, page_size=4))
    assert len(rows) == 30 and len({r["id"] for r in rows}) == 30
    assert [r["key"] for r in rows] == sorted(r["key"] for r in rows)


def test_view_key_keys_and_include_docs(view_db):
    """key= selects one key (paged), keys= several, include_docs adds documents."""
    rows = list(view_db.view("_design/stats", "by_n", key=3, include_docs=True, page_size=2))
    assert sorted(r["doc"]["n"] for r in rows) == [3, 8, 13, 18, 23, 28]
    rows = list(view_db.view("stats", "by_n", keys=[4, 0], reduce=False))
    assert [r["key"] for r in rows] == [4] * 6 + [0] * 6


def test_view_reduce_and_group(view_db):
    """reduce and group return reduced rows."""
    total = list(view_db.view("stats", "by_parity"))
    assert total[0]["value"] == sum(range(30))
    grouped = {r["key"]: r["value"] for r in view_db.view("stats", "by_parity", group=True, page_size=1)}
    assert grouped == {False: sum(range(1, 30, 2)), True: sum(range(0, 30, 2))}


def test_missing_view_raises_not_found(view_db):
    """An unknown view is NotFound."""
    with pytest.raises(cloudsync.NotFound):
        list(view_db.view("stats", "nope"))


def test_all_docs_key_returns_that_one_row(numbers):
    """all_docs(key=id) answers the one row of that id, with its document if asked."""
    [row] = list(numbers.all_docs(key="n07", include_docs=True))
    assert row["id"] == "n07" and row["doc"]["n"] == 7


def test_all_docs_key_of_a_missing_id_returns_no_row(numbers):
    """all_docs(key=id) of an id with no document answers no row."""
    assert list(numbers.all_docs(key="nope")) == []


def test_all_docs_key_with_a_range_is_a_value_error(numbers):
    """key= does not combine with keys=, startkey= or endkey=."""
    with pytest.raises(ValueError, match="key alone"):
        numbers.all_docs(key="n01", startkey="n00")
