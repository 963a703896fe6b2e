"""What replicators read by revision: `_revs_diff`, `open_revs` (with `latest`), `revs_info`,
`_bulk_get` with `latest`, a tombstone by rev, and `_changes?conflicts=true`, as CouchDB 3."""

from __future__ import annotations

import pytest

#: Document `c`: 1-a -> 2-b -> 3-c, and a second branch 1-a -> 2-x (a conflict; 3-c wins).
BRANCHES = [
    {"_id": "c", "_rev": "3-c", "v": "main", "_revisions": {"start": 3, "ids": ["c", "b", "a"]}},
    {"_id": "c", "_rev": "2-x", "v": "other", "_revisions": {"start": 2, "ids": ["x", "a"]}},
]


@pytest.fixture
def conflicted(db, http) -> str:
    """`db` holding document `c` with the two branches of `BRANCHES`."""
    r = http.post(db + "/_bulk_docs", json={"docs": BRANCHES, "new_edits": False})
    assert r.status_code == 201
    return db


def test_revs_diff_lists_missing_revs_and_possible_ancestors(conflicted, http):
    """`_revs_diff` answers, per document, the revs it lacks and its leaves of a lower generation."""
    r = http.post(conflicted + "/_revs_diff", json={"c": ["2-b", "4-d", "3-c"], "new": ["1-z"]})
    assert r.status_code == 200
    assert r.json() == {"c": {"missing": ["4-d"], "possible_ancestors": ["3-c", "2-x"]},
                        "new": {"missing": ["1-z"]}}


def test_revs_diff_leaves_out_documents_with_nothing_missing(conflicted, http):
    """A document whose revs are all known (ancestors included) is not in the answer."""
    assert http.post(conflicted + "/_revs_diff", json={"c": ["1-a", "2-x"]}).json() == {}


def test_revs_diff_rejects_a_malformed_rev(conflicted, http):
    """A rev that is not `N-hash` is 400 bad_request."""
    assert http.post(conflicted + "/_revs_diff", json={"c": ["nope"]}).status_code == 400


def test_open_revs_all_returns_every_leaf(conflicted, http):
    """`open_revs=all` answers a JSON array with an `ok` entry per leaf, the winner first."""
    r = http.get(conflicted + "/c", params={"open_revs": "all"}, headers={"Accept": "application/json"})
    assert [e["ok"]["_rev"] for e in r.json()] == ["3-c", "2-x"]


def test_open_revs_list_marks_unknown_revs_missing(conflicted, http):
    """`open_revs=[...]` answers `ok` for a leaf and `missing` for a rev it has no body for."""
    r = http.get(conflicted + "/c", params={"open_revs": '["2-x","9-z","2-b"]'})
    assert r.json() == [{"ok": {"_id": "c", "_rev": "2-x", "v": "other"}}, {"missing": "9-z"}, {"missing": "2-b"}]


def test_open_revs_latest_follows_an_ancestor_to_its_leaves(conflicted, http):
    """With `latest=true`, an ancestor rev stands for the leaves of the branches through it."""
    r = http.get(conflicted + "/c", params={"open_revs": '["2-b","1-a"]', "latest": "true"})
    assert [e["ok"]["_rev"] for e in r.json()] == ["3-c", "2-x"]


def test_open_revs_with_revs_adds_the_history(conflicted, http):
    """`revs=true` adds `_revisions` to each returned revision."""
    r = http.get(conflicted + "/c", params={"open_revs": '["2-x"]', "revs": "true"})
    assert r.json()[0]["ok"]["_revisions"] == {"start": 2, "ids": ["x", "a"]}


def test_open_revs_multipart_when_asked_by_name(conflicted, http):
    """A client that accepts only `multipart/mixed` gets one JSON part per revision."""
    r = http.get(conflicted + "/c", params={"open_revs": "all"}, headers={"Accept": "multipart/mixed"})
    assert r.headers["Content-Type"].startswith("multipart/mixed; boundary=")
    assert r.content.count(b"Content-Type: application/json") == 2


def test_open_revs_all_of_an_unknown_document_is_404(db, http):
    """`open_revs=all` on a document that does not exist is 404 not_found."""
    assert http.get(db + "/nope", params={"open_revs": "all"}).status_code == 404


def test_revs_info_lists_the_branch(conflicted, http):
    """`revs_info=true` lists the winning branch newest first; only the leaf keeps a body."""
    info = http.get(conflicted + "/c", params={"revs_info": "true"}).json()["_revs_info"]
    assert info == [{"rev": "3-c", "status": "available"}, {"rev": "2-b", "status": "missing"},
                    {"rev": "1-a", "status": "missing"}]


def test_bulk_get_latest_returns_the_leaves_of_an_ancestor(conflicted, http):
    """`_bulk_get?latest=true` answers an ancestor rev with the leaves of its branches."""
    r = http.post(conflicted + "/_bulk_get", params={"latest": "true"}, json={"docs": [{"id": "c", "rev": "1-a"}]})
    assert [d["ok"]["_rev"] for d in r.json()["results"][0]["docs"]] == ["3-c", "2-x"]


def test_bulk_get_without_rev_returns_every_leaf(conflicted, http):
    """`_bulk_get` of an id without a rev answers every leaf (conflicts included), as
    CouchDB does, so a tool backing up by id keeps the conflicting branches."""
    r = http.post(conflicted + "/_bulk_get", json={"docs": [{"id": "c"}]})
    assert [d["ok"]["_rev"] for d in r.json()["results"][0]["docs"]] == ["3-c", "2-x"]


def test_get_the_winning_tombstone_by_rev(db, http):
    """`GET doc?rev=<the winning tombstone>` returns the tombstone, as CouchDB does."""
    rev = http.put(db + "/t", json={"a": 1}).json()["rev"]
    gone = http.delete(db + "/t", params={"rev": rev}).json()["rev"]
    r = http.get(db + "/t", params={"rev": gone})
    assert r.status_code == 200 and r.json() == {"_id": "t", "_rev": gone, "_deleted": True}


def test_changes_conflicts_adds_conflicts_to_docs(conflicted, http):
    """`_changes?include_docs=true&conflicts=true` adds `_conflicts` to a conflicted document."""
    rows = http.get(conflicted + "/_changes", params={"include_docs": "true", "conflicts": "true"}).json()["results"]
    assert rows[0]["doc"]["_conflicts"] == ["2-x"]


def test_changes_without_conflicts_leaves_docs_as_stored(conflicted, http):
    """Without `conflicts=true` the documents in `_changes` carry no `_conflicts`."""
    rows = http.get(conflicted + "/_changes", params={"include_docs": "true"}).json()["results"]
    assert "_conflicts" not in rows[0]["doc"]
