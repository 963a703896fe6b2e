"""Documents: create, read, update, delete, conflicts and bulk writes against real servers."""

from __future__ import annotations

import pytest

import cloudsync

pytestmark = pytest.mark.integration


def test_create_makes_an_id_and_a_first_revision(db):
    """create() without _id makes one on the client and returns _id and a 1- rev."""
    doc = db.create({"type": "order", "total": 3})
    assert len(doc["_id"]) == 32 and doc["_rev"].startswith("1-")
    assert db.get(doc["_id"]) == doc


def test_create_does_not_mutate_the_argument(db):
    """The caller's dict is left as it was."""
    original = {"a": 1}
    db.create(original)
    assert original == {"a": 1}


def test_create_with_an_existing_id_raises_conflict(db):
    """A given _id that exists already is a Conflict."""
    db.create({"_id": "taken"})
    with pytest.raises(cloudsync.Conflict):
        db.create({"_id": "taken"})


def test_update_returns_the_new_revision(db):
    """update() writes a new revision and returns it."""
    doc = db.create({"n": 1})
    doc2 = db.update({**doc, "n": 2})
    assert doc2["_rev"].startswith("2-")
    assert db.get(doc["_id"])["n"] == 2


def test_update_with_a_stale_rev_raises_conflict(db):
    """Writing on a rev that is no longer current is a Conflict, and nothing changes."""
    doc = db.create({"n": 1})
    db.update({**doc, "n": 2})
    with pytest.raises(cloudsync.Conflict) as info:
        db.update({**doc, "n": 3})
    assert info.value.status == 409 and info.value.error == "conflict"
    assert db.get(doc["_id"])["n"] == 2


def test_update_without_rev_is_a_value_error(db):
    """update() refuses a document without _rev before sending anything."""
    with pytest.raises(ValueError):
        db.update({"_id": "x"})


def test_get_an_older_revision(db, server_kind):
    """get(id, rev=) returns that revision while the server keeps it; the embedded server
    keeps only leaf revisions, like CouchDB after compaction, and says NotFound."""
    doc = db.create({"n": 1})
    current = db.update({**doc, "n": 2})
    assert db.get(doc["_id"], rev=current["_rev"])["n"] == 2
    if server_kind == "embedded":
        with pytest.raises(cloudsync.NotFound):
            db.get(doc["_id"], rev=doc["_rev"])
    else:
        assert db.get(doc["_id"], rev=doc["_rev"])["n"] == 1


def test_get_missing_raises_not_found(db):
    """A missing document is NotFound with CouchDB's error field."""
    with pytest.raises(cloudsync.NotFound) as info:
        db.get("nope")
    assert info.value.error == "not_found"


def test_delete_by_document_and_by_id(db):
    """delete(doc) and delete(id, rev=) leave tombstones: get raises NotFound."""
    a = db.create({"k": "a"})
    b = db.create({"k": "b"})
    assert db.delete(a).startswith("2-")
    db.delete(b["_id"], rev=b["_rev"])
    for doc in (a, b):
        with pytest.raises(cloudsync.NotFound):
            db.get(doc["_id"])


def test_delete_with_a_stale_rev_raises_conflict(db):
    """Deleting an outdated revision is a Conflict."""
    doc = db.create({"n": 1})
    db.update(doc)
    with pytest.raises(cloudsync.Conflict):
        db.delete(doc)


@pytest.mark.parametrize(
    "doc_id", ["a/b", "_design/x", "_local/x", "été", "../x", "..", "a b?c#d%&=+", "emoji-\U0001f600"]
)
def test_ids_round_trip_to_the_right_document(db, doc_id):
    """Each id reaches exactly its document: write, read, update, delete."""
    doc = db.create({"_id": doc_id, "v": 1})
    assert db.get(doc_id)["_id"] == doc_id
    doc = db.update({**doc, "v": 2})
    assert db.get(doc_id)["v"] == 2
    db.delete(doc)
    with pytest.raises(cloudsync.NotFound):
        db.get(doc_id)


def test_bulk_reports_each_row(db):
    """bulk() returns one result per document, errors per row, no exception for the batch."""
    existing = db.create({"_id": "exists"})
    results = list(db.bulk([{"_id": "new1"}, {"_id": "exists"}, {"x": 1}]))
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "conflict" and results[1].id == "exists"
    assert results[2].id and db.get(results[2].id)["x"] == 1
    assert db.get("exists")["_rev"] == existing["_rev"]


def test_bulk_of_nothing_sends_nothing(db):
    """An empty batch returns an empty list."""
    assert list(db.bulk([])) == []


def test_conflicting_revisions_are_reported(db):
    """Two leaf revisions (written with new_edits=False) show up in _conflicts."""
    doc = db.create({"_id": "c", "v": 0})
    db.update({**doc, "v": 1})
    # A branch from the first revision, as a replicator would write it.
    db.bulk([{"_id": "c", "_rev": "2-" + "f" * 32, "v": "other",
              "_revisions": {"start": 2, "ids": ["f" * 32, doc["_rev"].split("-")[1]]}}], new_edits=False).run()
    current = db.get("c", conflicts=True)
    assert len(current.get("_conflicts", [])) == 1
    loser = current["_conflicts"][0]
    assert db.get("c", rev=loser)["_rev"] == loser
