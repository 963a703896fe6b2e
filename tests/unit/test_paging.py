"""The lazy pagers return every row once and never more than one page at a time."""

from __future__ import annotations

import json

import pytest

from cloudsync._paging import find_pages, keyed_rows
from cloudsync.errors import InvalidResponse


class FakeAllDocs:
    """A key-ordered result of `n` rows, served like _all_docs (limit/startkey)."""

    def __init__(self, n: int) -> None:
        self.rows = [{"id": f"d{i:04}", "key": f"d{i:04}", "value": {}} for i in range(n)]
        self.requests: list[dict] = []

    def __call__(self, params: dict) -> dict:
        self.requests.append(dict(params))
        start = 0
        if "startkey" in params:
            key = json.loads(params["startkey"])
            start = next(i for i, r in enumerate(self.rows) if r["key"] >= key)
        start += int(params.get("skip", 0))
        return {"rows": self.rows[start : start + params["limit"]]}


class FakeFind:
    """_find over `n` docs; with `bookmarks=False` it behaves like pouchdb-server (no bookmark)."""

    def __init__(self, n: int, bookmarks: bool) -> None:
        self.docs = [{"_id": f"d{i:04}"} for i in range(n)]
        self.bookmarks = bookmarks
        self.requests: list[dict] = []

    def __call__(self, body: dict) -> dict:
        self.requests.append(dict(body))
        start = int(body.get("bookmark", body.get("skip", 0)))
        docs = self.docs[start : start + body["limit"]]
        answer = {"docs": docs}
        if self.bookmarks:
            answer["bookmark"] = str(start + len(docs))
        return answer


def test_keyed_rows_returns_each_row_once_across_pages():
    """Paging by startkey with one extra row neither skips nor repeats a row."""
    fetch = FakeAllDocs(25)
    rows = list(keyed_rows(fetch, {}, page_size=10, limit=None))
    assert [r["id"] for r in rows] == [r["id"] for r in fetch.rows]
    assert [p["limit"] for p in fetch.requests] == [11, 11, 11]


def test_keyed_rows_stops_at_the_limit():
    """`limit` caps the rows and the last request asks only for what is needed."""
    fetch = FakeAllDocs(100)
    rows = list(keyed_rows(fetch, {}, page_size=10, limit=15))
    assert len(rows) == 15
    assert fetch.requests[-1]["limit"] == 6


def test_keyed_rows_is_lazy():
    """No request is made before the first row is asked for, and one per page after."""
    fetch = FakeAllDocs(50)
    rows = keyed_rows(fetch, {}, page_size=10, limit=None)
    assert fetch.requests == []
    next(rows)
    assert len(fetch.requests) == 1


def test_find_follows_bookmarks():
    """With bookmarks, each page sends the previous page's bookmark and no skip."""
    fetch = FakeFind(25, bookmarks=True)
    docs = list(find_pages(fetch, {"selector": {}}, page_size=10, limit=None))
    assert [d["_id"] for d in docs] == [d["_id"] for d in fetch.docs]
    assert [r.get("bookmark") for r in fetch.requests] == [None, "10", "20"]


def test_find_without_bookmarks_falls_back_to_skip():
    """A server with no bookmark is paged by skip: every document exactly once."""
    fetch = FakeFind(25, bookmarks=False)
    docs = list(find_pages(fetch, {"selector": {}}, page_size=10, limit=None))
    assert [d["_id"] for d in docs] == [d["_id"] for d in fetch.docs]
    assert [r.get("skip", 0) for r in fetch.requests] == [0, 10, 20]


def test_find_skip_fallback_keeps_the_initial_skip():
    """A caller's skip is kept as the starting offset of the fallback."""
    fetch = FakeFind(25, bookmarks=False)
    docs = list(find_pages(fetch, {"selector": {}, "skip": 5}, page_size=10, limit=None))
    assert [d["_id"] for d in docs] == [d["_id"] for d in fetch.docs[5:]]


def test_find_with_limit_asks_for_no_more_than_needed():
    """The limit of the last page is what remains."""
    fetch = FakeFind(100, bookmarks=True)
    docs = list(find_pages(fetch, {"selector": {}}, page_size=10, limit=25))
    assert len(docs) == 25
    assert [r["limit"] for r in fetch.requests] == [10, 10, 5]


class FakeViewIgnoringDocid(FakeAllDocs):
    """A view with runs of equal keys on a server that ignores startkey_docid (pouchdb-server)."""

    def __init__(self) -> None:
        self.rows = [{"id": f"d{i:02}", "key": i % 3, "value": None} for i in range(20)]
        self.rows.sort(key=lambda r: (r["key"], r["id"]))
        self.requests = []


def test_keyed_rows_falls_back_to_skip_when_startkey_docid_is_ignored():
    """Equal keys across page boundaries are returned once each even if startkey_docid is ignored."""
    fetch = FakeViewIgnoringDocid()
    rows = list(keyed_rows(fetch, {}, page_size=4, limit=None))
    assert [(r["key"], r["id"]) for r in rows] == [(r["key"], r["id"]) for r in fetch.rows]
    assert len(fetch.requests) < 12  # it terminates, with one extra request for the detection


def test_find_resumed_from_a_bookmark_starts_there_and_sends_skip_once():
    """A kept bookmark is sent on the first request, with the caller's skip, then the
    server's bookmarks follow without it."""
    fetch = FakeFind(25, bookmarks=True)
    docs = list(find_pages(fetch, {"selector": {}, "skip": 2}, page_size=10, limit=None, bookmark="10"))
    assert [d["_id"] for d in docs] == [d["_id"] for d in fetch.docs[10:]]
    assert [(r.get("bookmark"), r.get("skip")) for r in fetch.requests] == [("10", 2), ("20", None)]


def test_find_resumed_from_a_bookmark_cannot_fall_back_to_skip():
    """Resumed from a bookmark, a full page without a usable bookmark is InvalidResponse:
    the absolute offset a skip would need is unknown."""
    fetch = FakeFind(25, bookmarks=False)
    pages = find_pages(fetch, {"selector": {}}, page_size=10, limit=None, bookmark="0")
    with pytest.raises(InvalidResponse, match="bookmark"):
        list(pages)
