"""`POST /db`, `_bulk_docs` (with and without `new_edits`) and `_bulk_get`, as CouchDB 3 answers them."""

from __future__ import annotations

import pytest

from ._feeds import put


def bulk(http, db: str, *docs: dict, **options) -> list[dict]:
    """`POST _bulk_docs` of `docs` (answered 201); returns the per-document rows."""
    r = http.post(db + "/_bulk_docs", json={"docs": list(docs), **options})
    assert r.status_code == 201
    return r.json()


def test_post_doc_is_201_with_a_generated_id(db, http):
    """`POST /db` is 201 and gives the document a 32-character id."""
    r = http.post(db, json={"a": 1})
    assert r.status_code == 201
    assert len(r.json()["id"]) == 32


def test_bulk_docs_is_201(db, http):
    """`_bulk_docs` answers 201 even when some documents fail."""
    res = http.post(db + "/_bulk_docs", json={"docs": [{"_id": "x"}, {"_id": "x"}, {"_id": "_bad"}, {"b": 2}]})
    assert res.status_code == 201


def test_bulk_docs_saves_docs_with_and_without_id(db, http):
    """`_bulk_docs` saves a document with an `_id` and one without."""
    rows = bulk(http, db, {"_id": "x"}, {"b": 2})
    assert rows[0]["ok"]
    assert rows[1]["ok"]


def test_bulk_docs_same_id_twice_in_one_request_conflicts(db, http):
    """The second of two documents with one id in one request is a conflict row."""
    rows = bulk(http, db, {"_id": "x"}, {"_id": "x"})
    assert rows[1]["error"] == "conflict"


def test_bulk_docs_underscore_id_is_illegal_docid(db, http):
    """An id starting with `_` (not `_design/` or `_local/`) is an illegal_docid row."""
    rows = bulk(http, db, {"_id": "_bad"})
    assert rows[0]["error"] == "illegal_docid"


def test_bulk_docs_deletes_with_deleted_flag(db, http):
    """A document with `_deleted: true` and its rev deletes it."""
    [row] = bulk(http, db, {"_id": "x"})
    rows = bulk(http, db, {"_id": "x", "_rev": row["rev"], "_deleted": True})
    assert rows[0]["ok"]


def test_bulk_docs_unknown_underscore_field_is_doc_validation(db, http):
    """A document with an unknown `_` field is a doc_validation row."""
    rows = bulk(http, db, {"_id": "y", "_foo": 1})
    assert rows[0]["error"] == "doc_validation"


# -- new_edits=false (replication) -------------------------------------------------------------


OTHER = "1-" + "f" * 32


@pytest.fixture
def conflicted(db, http) -> tuple[str, str]:
    """`db/c` with two first revisions (one written, one replicated); returns (winner, loser)."""
    mine = put(http, db, "c", v="a")
    bulk(http, db, {"_id": "c", "_rev": OTHER, "v": "b"}, new_edits=False)
    return (OTHER, mine) if mine < OTHER else (mine, OTHER)


def test_new_edits_false_is_201_with_no_rows(db, http):
    """`_bulk_docs` with `new_edits: false` is 201 and answers an empty list."""
    put(http, db, "c", v="a")
    r = http.post(db + "/_bulk_docs", json={"new_edits": False, "docs": [{"_id": "c", "_rev": OTHER, "v": "b"}]})
    assert r.status_code == 201
    assert r.json() == []


def test_new_edits_false_makes_a_conflict_won_by_the_higher_rev(db, http, conflicted):
    """A replicated sibling rev makes a conflict: the higher rev wins, the other is listed in `_conflicts`."""
    winner, loser = conflicted
    doc = http.get(db + "/c", params={"conflicts": "true"}).json()
    assert doc["_rev"] == winner
    assert doc["_conflicts"] == [loser]


def test_get_with_rev_reads_the_losing_leaf(db, http, conflicted):
    """`GET ?rev=` of the losing leaf returns that revision."""
    _, loser = conflicted
    assert http.get(db + "/c", params={"rev": loser}).json()["_rev"] == loser


def test_deleting_the_losing_leaf_is_200(db, http, conflicted):
    """`DELETE ?rev=` of the losing leaf is 200."""
    _, loser = conflicted
    assert http.delete(db + "/c", params={"rev": loser}).status_code == 200


def test_deleting_the_losing_leaf_resolves_the_conflict(db, http, conflicted):
    """Once the losing leaf is deleted, the winner stands alone: no `_conflicts`."""
    winner, loser = conflicted
    http.delete(db + "/c", params={"rev": loser})
    doc = http.get(db + "/c", params={"conflicts": "true"}).json()
    assert doc["_rev"] == winner
    assert "_conflicts" not in doc


# -- _bulk_get ---------------------------------------------------------------------------------


def bulk_get(http, db: str, *docs: dict) -> list[dict]:
    """`POST _bulk_get` of `docs`; returns the first answer for each."""
    res = http.post(db + "/_bulk_get", json={"docs": list(docs)}).json()
    return [result["docs"][0] for result in res["results"]]


def test_bulk_get_without_rev_returns_the_current_doc(db, http):
    """`_bulk_get` of an id without a rev returns the current document."""
    put(http, db, "a", x=1)
    assert bulk_get(http, db, {"id": "a"})[0]["ok"]["x"] == 1


def test_bulk_get_with_rev_returns_that_rev(db, http):
    """`_bulk_get` of an id with a rev returns that revision."""
    rev = put(http, db, "a", x=1)
    assert bulk_get(http, db, {"id": "a", "rev": rev})[0]["ok"]["_rev"] == rev


def test_bulk_get_missing_doc_is_a_not_found_result(db, http):
    """`_bulk_get` of a missing id answers a not_found error in its place."""
    put(http, db, "a", x=1)
    results = bulk_get(http, db, {"id": "a"}, {"id": "b"})
    assert results[1]["error"]["error"] == "not_found"


def test_bulk_get_atts_since_not_a_list_is_a_bad_request_result(db, http):
    """`_bulk_get` of an item whose `atts_since` is not a list answers CouchDB's
    bad_request error in its place (the bad value as its `rev`), not the document."""
    rev = put(http, db, "a", x=1)
    result = bulk_get(http, db, {"id": "a", "rev": rev, "atts_since": "x"})[0]
    assert result == {"error": {"id": "a", "rev": "x", "error": "bad_request",
                                "reason": "att_since value must be array of revs."}}


def test_bulk_get_atts_since_with_a_malformed_rev_is_a_bad_request_result(db, http):
    """`_bulk_get` of an item whose `atts_since` holds a malformed rev answers a
    bad_request error naming that rev in its place, as CouchDB."""
    rev = put(http, db, "a", x=1)
    result = bulk_get(http, db, {"id": "a", "rev": rev, "atts_since": [rev, "badsince"]})[0]
    assert result == {"error": {"id": "a", "rev": "badsince", "error": "bad_request", "reason": "Invalid rev format"}}
