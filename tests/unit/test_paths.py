"""Database names are validated and ids are encoded as single path segments."""

from __future__ import annotations

import pytest
import responses

import cloudsync
from cloudsync._paths import doc_path


@pytest.mark.parametrize(
    ("doc_id", "path"),
    [
        ("plain", "/db/plain"),
        ("a/b", "/db/a%2Fb"),
        ("_design/x", "/db/_design/x"),
        ("_design/a/b", "/db/_design/a%2Fb"),
        ("_local/x", "/db/_local/x"),
        ("été", "/db/%C3%A9t%C3%A9"),
        ("../x", "/db/..%2Fx"),
        ("..", "/db/%2E%2E"),
        (".", "/db/%2E"),
        ("a b?c#d%", "/db/a%20b%3Fc%23d%25"),
    ],
)
def test_doc_ids_become_one_encoded_segment(doc_id, path):
    """Every id maps to exactly one path segment below the database (prefixes keep their slash)."""
    assert doc_path("/db", doc_id) == path


@pytest.mark.parametrize("name", ["Orders", "1db", "", "a b", "db?", "_private", "x" * 239])
def test_illegal_database_names_raise_before_any_request(name):
    """An illegal name is a ValueError and nothing is sent."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        client = cloudsync.Client("http://couch.test")
        with pytest.raises(ValueError, match="illegal database name"):
            client.create_database(name)
        assert len(mock.calls) == 0


@pytest.mark.parametrize("name", ["orders", "a-b_c$d(e)f+g/h", "_users", "_replicator", "x" * 238])
def test_legal_database_names_are_accepted(name):
    """CouchDB's rule and the system databases are accepted."""
    assert cloudsync.Client("http://couch.test").database(name).name == name


def test_database_name_with_slash_is_encoded():
    """A slash in a database name is %2F in the path."""
    assert cloudsync.Client("http://couch.test").database("a/b").path == "/a%2Fb"


@pytest.mark.parametrize("bad", [None, 3, ""])
def test_bad_document_ids_are_refused(bad):
    """A non-string or empty id is refused with a typed error before any request."""
    db = cloudsync.Client("http://couch.test").database("db")
    with pytest.raises((TypeError, ValueError)):
        db.get(bad)
