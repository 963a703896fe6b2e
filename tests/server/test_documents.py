"""Document endpoints: revisions, conflicts, tombstones, odd ids, `_local` documents and what
is refused, as CouchDB 3 answers them."""

from __future__ import annotations

import pytest

from ._feeds import put

ODD_IDS = [("a/b", "a%2Fb"), ("..", "%2E%2E"), ("sp ace?&#", "sp%20ace%3F%26%23"),
           ("_design/x", "_design/x"), ("_design/y", "_design%2Fy"), ("ü", "%C3%BC")]


def revise(http, db: str, rev: str, **fields) -> str:
    """Update `db/doc` from `rev` (answered 201); returns the new rev."""
    r = http.put(db + "/doc", json={"_rev": rev, **fields})
    assert r.status_code == 201
    return r.json()["rev"]


@pytest.fixture
def tombstone(db, http) -> str:
    """`db/doc` written twice, then deleted; returns the URL of `db`."""
    rev2 = revise(http, db, put(http, db, "doc", n=1), n=2)
    assert http.delete(db + "/doc", params={"rev": rev2}).status_code == 200
    return db


# -- revisions ---------------------------------------------------------------------------


def test_put_new_doc_returns_201_and_rev_1(db, http):
    """`PUT` of a new document is 201 with a rev `1-<32 hex>`."""
    r = http.put(db + "/doc", json={"n": 1})
    assert r.status_code == 201
    rev1 = r.json()["rev"]
    assert rev1.startswith("1-")
    assert len(rev1.split("-")[1]) == 32


def test_put_answers_the_rev_as_etag(db, http):
    """`PUT` answers the new rev, quoted, as `ETag`."""
    r = http.put(db + "/doc", json={"n": 1})
    assert r.headers["ETag"] == f'"{r.json()["rev"]}"'


def test_get_doc_returns_body_with_id_and_rev(db, http):
    """`GET` of a document gives its body with `_id` and `_rev`."""
    rev1 = put(http, db, "doc", n=1)
    assert http.get(db + "/doc").json() == {"_id": "doc", "_rev": rev1, "n": 1}


def test_put_without_rev_on_existing_doc_conflicts(db, http):
    """`PUT` without `_rev` over an existing document is 409."""
    put(http, db, "doc", n=1)
    assert http.put(db + "/doc", json={"n": 2}).status_code == 409


def test_put_with_current_rev_makes_rev_2(db, http):
    """`PUT` with the current `_rev` makes generation 2."""
    rev1 = put(http, db, "doc", n=1)
    assert revise(http, db, rev1, n=2).startswith("2-")


def test_put_with_stale_rev_is_409_conflict(db, http):
    """`PUT` with a superseded `_rev` is 409 with CouchDB's conflict body."""
    rev1 = put(http, db, "doc", n=1)
    revise(http, db, rev1, n=2)
    r = http.put(db + "/doc", json={"_rev": rev1, "n": 3})
    assert r.status_code == 409
    assert r.json() == {"error": "conflict", "reason": "Document update conflict."}


def test_put_new_doc_with_a_rev_conflicts(db, http):
    """`PUT` of a document that does not exist, with a `_rev`, is 409."""
    rev1 = put(http, db, "doc", n=1)
    assert http.put(db + "/new", json={"_rev": rev1}).status_code == 409


def test_same_content_and_parent_give_the_same_rev(db, http):
    """Revs are deterministic: the same body written as a first revision gives the same rev."""
    rev1 = put(http, db, "doc", n=1)
    http.put(db + "/twin", json={"n": 1})
    assert http.get(db + "/twin").json()["_rev"] == rev1


# -- deletion and tombstones -------------------------------------------------------------------


def test_delete_without_rev_conflicts(db, http):
    """`DELETE` without `rev` is 409."""
    put(http, db, "doc", n=1)
    assert http.delete(db + "/doc").status_code == 409


def test_delete_with_rev_makes_the_next_generation(db, http):
    """`DELETE` with the current rev is 200 with the tombstone's rev, one generation on."""
    rev2 = revise(http, db, put(http, db, "doc", n=1), n=2)
    r = http.delete(db + "/doc", params={"rev": rev2})
    assert r.status_code == 200
    assert r.json()["rev"].startswith("3-")


def test_get_deleted_doc_is_404_deleted(tombstone, http):
    """`GET` of a deleted document is 404 with reason "deleted"."""
    r = http.get(tombstone + "/doc")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "reason": "deleted"}


def test_get_missing_doc_is_404_missing(db, http):
    """`GET` of a document never written is 404 with reason "missing"."""
    r = http.get(db + "/nope")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "reason": "missing"}


def test_deleted_doc_counts_as_deleted(tombstone, http):
    """A deleted document counts in `doc_del_count`, not in `doc_count`."""
    info = http.get(tombstone).json()
    assert info["doc_count"] == 0
    assert info["doc_del_count"] == 1


def test_put_without_rev_recreates_a_deleted_doc(tombstone, http):
    """`PUT` without `_rev` over a tombstone recreates the document, one generation on."""
    assert http.put(tombstone + "/doc", json={"again": True}).json()["rev"].startswith("4-")


def test_revs_lists_the_history_through_the_tombstone(tombstone, http):
    """`?revs=true` of a recreated document lists every generation, the tombstone's included."""
    put(http, tombstone, "doc", again=True)
    revs = http.get(tombstone + "/doc", params={"revs": "true"}).json()["_revisions"]
    assert revs["start"] == 4
    assert len(revs["ids"]) == 4


def test_recreated_doc_counts_as_live(tombstone, http):
    """A recreated document counts in `doc_count` again and no longer in `doc_del_count`."""
    put(http, tombstone, "doc", again=True)
    put(http, tombstone, "twin", n=1)
    info = http.get(tombstone).json()
    assert info["doc_count"] == 2
    assert info["doc_del_count"] == 0


# -- odd ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("doc_id", "path"), ODD_IDS)
def test_put_odd_id_answers_it_decoded(db, http, doc_id, path):
    """A percent-encoded id (slash, dots, `?&#`, `_design/`, non-ASCII) is created: 201 with the decoded id."""
    r = http.put(f"{db}/{path}", json={"k": doc_id})
    assert r.status_code == 201, (doc_id, r.text)
    assert r.json()["id"] == doc_id


@pytest.mark.parametrize(("doc_id", "path"), ODD_IDS)
def test_odd_id_reads_back(db, http, doc_id, path):
    """A document with an odd id reads back at the same encoded path."""
    http.put(f"{db}/{path}", json={"k": doc_id})
    assert http.get(f"{db}/{path}").json()["k"] == doc_id


def test_odd_ids_are_listed_decoded(db, http):
    """`_all_docs` lists odd ids decoded."""
    for doc_id, path in ODD_IDS:
        http.put(f"{db}/{path}", json={"k": doc_id})
    ids = [row["id"] for row in http.get(db + "/_all_docs").json()["rows"]]
    assert sorted(ids) == sorted(["a/b", "..", "sp ace?&#", "_design/x", "_design/y", "ü"])


# -- _local documents ----------------------------------------------------------------------------


@pytest.fixture
def local(db, http) -> str:
    """`db/_local/ckpt` at rev 0-1; returns the URL of `db`."""
    assert http.put(db + "/_local/ckpt", json={"seq": "1"}).status_code == 201
    return db


@pytest.fixture
def updated_local(local, http) -> str:
    """`db/_local/ckpt` updated to rev 0-2 (`seq` "2"); returns the URL of `db`."""
    assert http.put(local + "/_local/ckpt", json={"_rev": "0-1", "seq": "2"}).status_code == 201
    return local


def test_put_local_doc_gets_rev_0_1(db, http):
    """A new `_local` document gets rev "0-1"."""
    assert http.put(db + "/_local/ckpt", json={"seq": "1"}).json()["rev"] == "0-1"


def test_put_local_doc_without_rev_conflicts(local, http):
    """`PUT` without `_rev` over a `_local` document is 409."""
    assert http.put(local + "/_local/ckpt", json={"seq": "2"}).status_code == 409


def test_put_local_doc_with_rev_counts_up(local, http):
    """Updating a `_local` document at "0-1" gives "0-2"."""
    assert http.put(local + "/_local/ckpt", json={"_rev": "0-1", "seq": "2"}).json()["rev"] == "0-2"


def test_get_local_doc_returns_body_with_id_and_rev(updated_local, http):
    """`GET` of a `_local` document gives its body with `_id` and `_rev`."""
    assert http.get(updated_local + "/_local/ckpt").json() == {"_id": "_local/ckpt", "_rev": "0-2", "seq": "2"}


def test_local_doc_reads_with_an_encoded_slash(updated_local, http):
    """`_local%2Fckpt` is the same document as `_local/ckpt`."""
    assert http.get(updated_local + "/_local%2Fckpt").json()["seq"] == "2"


def test_local_docs_are_not_in_changes(updated_local, http):
    """`_local` documents make no `_changes` rows."""
    assert http.get(updated_local + "/_changes").json()["results"] == []


def test_local_docs_are_not_in_all_docs(updated_local, http):
    """`_local` documents are not listed by `_all_docs`."""
    assert http.get(updated_local + "/_all_docs").json()["rows"] == []


def test_delete_local_doc_with_rev(updated_local, http):
    """`DELETE` of a `_local` document with its current rev is 200."""
    assert http.delete(updated_local + "/_local/ckpt", params={"rev": "0-2"}).status_code == 200


def test_deleted_local_doc_is_404(updated_local, http):
    """A deleted `_local` document is 404."""
    http.delete(updated_local + "/_local/ckpt", params={"rev": "0-2"})
    assert http.get(updated_local + "/_local/ckpt").status_code == 404


# -- refused features ------------------------------------------------------------------------------


def test_views_are_404_not_supported(db, http):
    """A view query is 404 with a reason saying views are not supported."""
    r = http.get(db + "/_design/d/_view/v")
    assert r.status_code == 404
    assert "not supported" in r.json()["reason"]


def test_id_with_a_line_break_reads_back(db, http):
    """A document whose id holds a line break (`%0A` in the path) is written and read at
    that path, as any other id; it was 404 (the route did not match across the break)."""
    assert http.put(f"{db}/line%0Abreak", json={"k": 1}).status_code == 201
    assert http.get(f"{db}/line%0Abreak").json()["_id"] == "line\nbreak"
