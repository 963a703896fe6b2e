"""`_find` page by page: `query_page()` with the server's bookmark and execution
statistics, and `query(bookmark=...)` resuming from a kept bookmark."""

from __future__ import annotations

import pytest

import cloudsync

pytestmark = pytest.mark.integration

NO_BOOKMARK = "pouchdb-server 4.2.0 sends no _find bookmark"


@pytest.fixture
def items(db):
    """A database of 30 documents i00..i29 with `n`, indexed on `n`."""
    db.bulk([{"_id": f"i{n:02}", "n": n} for n in range(30)]).run()
    db.create_index(["n"], name="by-n", ddoc="idx")
    return db


def ids(docs):
    return [d["_id"] for d in docs]


def test_query_page_returns_limit_documents(items):
    """One request: the first `limit` matches, in sort order."""
    page = items.query_page({"n": {"$gte": 0}}, sort=["n"], limit=7)
    assert ids(page.docs) == [f"i{n:02}" for n in range(7)]
    assert isinstance(page, cloudsync.FindPage)


def test_the_bookmark_of_a_page_starts_the_next(items, server_kind):
    """The bookmark of page 1 gives page 2, without overlap or gap."""
    if server_kind == "pouchdb":
        pytest.skip(NO_BOOKMARK)
    first = items.query_page({"n": {"$gte": 0}}, sort=["n"], limit=10)
    second = items.query_page({"n": {"$gte": 0}}, sort=["n"], limit=10, bookmark=first.bookmark)
    assert ids(second.docs) == [f"i{n:02}" for n in range(10, 20)]


def test_pouchdb_sends_no_bookmark_and_skip_pages_instead(items, server_kind):
    """pouchdb-server answers no bookmark: FindPage.bookmark is None, and skip pages."""
    if server_kind != "pouchdb":
        pytest.skip("the bookmark-less server only")
    first = items.query_page({"n": {"$gte": 0}}, sort=["n"], limit=10)
    assert first.bookmark is None
    second = items.query_page({"n": {"$gte": 0}}, sort=["n"], limit=10, skip=10)
    assert ids(second.docs) == [f"i{n:02}" for n in range(10, 20)]


def test_query_resumes_from_a_kept_bookmark(items, server_kind):
    """query(bookmark=...) yields every document after the page the bookmark came from."""
    if server_kind == "pouchdb":
        pytest.skip(NO_BOOKMARK)
    kept = items.query_page({"n": {"$gte": 0}}, sort=["n"], limit=12).bookmark
    rest = list(items.query({"n": {"$gte": 0}}, sort=["n"], bookmark=kept, page_size=5))
    assert ids(rest) == [f"i{n:02}" for n in range(12, 30)]


def test_execution_stats_are_returned_when_asked(items, server_kind):
    """execution_stats=True gives the server's statistics (none from pouchdb-server)."""
    page = items.query_page({"n": {"$lt": 5}}, limit=3, execution_stats=True)
    if server_kind == "pouchdb":
        assert page.execution_stats is None
    else:
        assert page.execution_stats["results_returned"] == 3
        assert page.execution_stats["total_docs_examined"] >= 3


def test_execution_stats_are_absent_unless_asked(items):
    """Without execution_stats, the page carries none."""
    assert items.query_page({"n": {"$lt": 5}}).execution_stats is None


def test_the_server_warning_is_kept(items):
    """A query no index serves carries the server's warning."""
    page = items.query_page({"missing_field": 1})
    assert page.docs == [] and "index" in page.warning


def test_a_bookmark_the_server_cannot_read_is_bad_request(items, server_kind):
    """A made-up bookmark is refused with BadRequest (pouchdb-server ignores it)."""
    if server_kind == "pouchdb":
        pytest.skip("pouchdb-server ignores bookmarks")
    with pytest.raises(cloudsync.BadRequest):
        items.query_page({"n": {"$gte": 0}}, bookmark="not-a-bookmark")


@pytest.mark.parametrize("bookmark", [12, b"bytes", ["x"]])
def test_a_bookmark_that_is_not_a_str_is_a_type_error(items, bookmark):
    """A bookmark is the str a page gave: anything else is a TypeError, before any request."""
    with pytest.raises(TypeError, match="bookmark"):
        items.query_page({"n": 1}, bookmark=bookmark)
    with pytest.raises(TypeError, match="bookmark"):
        items.query({"n": 1}, bookmark=bookmark)


def test_a_bad_limit_is_a_value_error(items):
    """query_page(limit=0) is refused before any request."""
    with pytest.raises(ValueError, match="limit"):
        items.query_page({"n": 1}, limit=0)
