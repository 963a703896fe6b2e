"""Mango bookmark paging over every index shape, and the indexes a sort may use."""

from __future__ import annotations

import itertools

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_dbs = itertools.count()

#: Index shapes: (index fields, selector, sort).
SHAPES = {
    "one field": (["a"], {"a": {"$gte": 0}}, None),
    "several fields": (["a", "b"], {"a": {"$gte": 0}, "b": {"$gte": 0}}, None),
    "several fields, sorted": (["a", "b"], {"a": {"$gte": 0}, "b": {"$gte": 0}}, ["a", "b"]),
    "descending": (["a", "b"], {"a": {"$gte": 0}, "b": {"$gte": 0}}, [{"a": "desc"}, {"b": "desc"}]),
    "one field descending": (["a"], {"a": {"$gt": 1}}, [{"a": "desc"}]),
    "pinned leading field": (["a", "b"], {"a": 2, "b": {"$gte": 0}}, ["b"]),
}


def _pages(http: requests.Session, url: str, body: dict, page_size: int) -> list[dict]:
    docs: list[dict] = []
    bookmark = None
    while True:
        r = http.post(url + "/_find", json={**body, "limit": page_size,
                                             **({"bookmark": bookmark} if bookmark else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert "warning" not in page, page["warning"]
        if not page["docs"]:
            return docs
        docs += page["docs"]
        bookmark = page["bookmark"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.sampled_from(sorted(SHAPES)),
       values=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=60),
       page_size=st.integers(1, 9))
def test_pages_add_up_to_the_unpaged_answer(server, http, shape, values, page_size):
    """Paging ``_find`` by bookmark over an index returns, page after page, exactly the
    unpaged answer in the same order (ties at page boundaries included)."""
    fields, selector, sort = SHAPES[shape]
    url = f"{server.url}/paging-{next(_dbs)}"
    assert http.put(url).status_code == 201
    docs = [{"_id": f"d{i:03}", "a": a, "b": b} for i, (a, b) in enumerate(values)]
    assert http.post(url + "/_bulk_docs", json={"docs": docs}).status_code == 201
    assert http.post(url + "/_index", json={"index": {"fields": fields}}).status_code == 200
    body = {"selector": selector, **({"sort": sort} if sort else {})}
    whole = http.post(url + "/_find", json={**body, "limit": len(docs) + 1}).json()["docs"]
    assert _pages(http, url, body, page_size) == whole
    http.delete(url)


def test_paging_two_field_index_seven_at_a_time(db, http):
    """The reported case: 100 matching documents paged 7 at a time over a two-field index
    come back all 100, each once."""
    docs = [{"_id": f"d{i:03}", "a": i % 5, "b": i % 3} for i in range(100)]
    http.post(db + "/_bulk_docs", json={"docs": docs})
    http.post(db + "/_index", json={"index": {"fields": ["a", "b"]}})
    got = _pages(http, db, {"selector": {"a": {"$gte": 0}, "b": {"$gte": 0}}}, 7)
    assert sorted(d["_id"] for d in got) == [d["_id"] for d in docs]


def test_sort_on_a_field_the_selector_does_not_name_uses_its_index(db, http):
    """An index on the sorted field serves the sort even when the selector does not name
    that field (as CouchDB: a sort implies the field exists, so documents without it are
    not returned)."""
    http.post(db + "/_bulk_docs", json={"docs": [{"_id": "x", "n": 2}, {"_id": "y", "n": 1}, {"_id": "z"}]})
    http.post(db + "/_index", json={"index": {"fields": ["n"]}, "name": "by-n", "ddoc": "n"})
    r = http.post(db + "/_find", json={"selector": {}, "sort": ["n"]}).json()
    assert [d["_id"] for d in r["docs"]] == ["y", "x"] and "warning" not in r


def test_sort_after_a_pinned_leading_field_uses_the_index(db, http):
    """An index ``[a, b]`` serves a sort on ``b`` when the selector pins ``a`` to one value."""
    http.post(db + "/_bulk_docs", json={"docs": [{"_id": "p", "a": 1, "b": 3}, {"_id": "q", "a": 1, "b": 2},
                                                 {"_id": "r", "a": 2, "b": 1}]})
    http.post(db + "/_index", json={"index": {"fields": ["a", "b"]}, "name": "ab", "ddoc": "ab"})
    r = http.post(db + "/_find", json={"selector": {"a": 1}, "sort": [{"b": "desc"}]}).json()
    assert [d["_id"] for d in r["docs"]] == ["p", "q"] and "warning" not in r


def test_sort_after_an_unpinned_leading_field_is_400(db, http):
    """An index ``[a, b]`` cannot serve a sort on ``b`` when ``a`` ranges: 400 no_usable_index."""
    http.post(db + "/_index", json={"index": {"fields": ["a", "b"]}, "name": "ab", "ddoc": "ab"})
    r = http.post(db + "/_find", json={"selector": {"a": {"$gt": 0}}, "sort": ["b"]})
    assert r.status_code == 400 and r.json()["error"] == "no_usable_index"
