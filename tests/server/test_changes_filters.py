"""`_changes` filters: `_doc_ids` and `_selector` (in the body or the query), what they refuse,
and a selective longpoll, as CouchDB 3 answers them."""

from __future__ import annotations

import json

import pytest

from ._feeds import put, stream


@pytest.fixture(scope="module")
def six(seeded_db) -> str:
    """A database of documents `d0`..`d5` with `n` = 0..5 (read only)."""
    return seeded_db("changes-filters-six", [{"_id": f"d{i}", "n": i} for i in range(6)])


@pytest.mark.parametrize(("method", "params", "body", "ids"), [
    pytest.param("post", {"filter": "_doc_ids"}, {"doc_ids": ["d1", "d4"]}, ["d1", "d4"], id="doc_ids-body"),
    pytest.param("get", {"filter": "_doc_ids", "doc_ids": '["d2"]'}, None, ["d2"], id="doc_ids-query"),
    pytest.param("post", {"filter": "_selector"}, {"selector": {"n": {"$gte": 4}}}, ["d4", "d5"],
                 id="selector-body"),
    pytest.param("get", {"filter": "_selector", "selector": '{"n": 0}'}, None, ["d0"], id="selector-query"),
])
def test_filter_gives_only_matching_rows(six, http, method, params, body, ids):
    """`_doc_ids` and `_selector`, given in the body or the query, give only the matching rows."""
    r = http.request(method, six + "/_changes", params=params, json=body)
    assert [row["id"] for row in r.json()["results"]] == ids


def test_selective_filter_still_advances_last_seq(six, http):
    """A filter that skips the last changes still reports the database's last seq."""
    r = http.post(six + "/_changes", params={"filter": "_selector"}, json={"selector": {"n": {"$gte": 4}}})
    assert r.json()["last_seq"].startswith("6-")


def test_selector_filter_without_selector_is_400(six, http):
    """`filter=_selector` without a selector is 400."""
    assert http.post(six + "/_changes", params={"filter": "_selector"}, json={}).status_code == 400


def test_design_doc_filter_is_404(six, http):
    """A design-document filter (`ddoc/f`) is 404: there are none."""
    assert http.get(six + "/_changes", params={"filter": "ddoc/f"}).status_code == 404


def test_selective_longpoll_waits_past_non_matching_writes(db, http):
    """A filtered longpoll keeps waiting through writes it filters out and answers the first match."""
    feed = stream(http, db, feed="longpoll", since="now", filter="_doc_ids", doc_ids='["want"]', heartbeat=10000)
    feed.until(lambda d: d.startswith(b'{"results":[\n'))
    put(http, db, "other")
    rev = put(http, db, "want")
    body = json.loads(feed.rest())
    assert [r["changes"][0]["rev"] for r in body["results"]] == [rev]
