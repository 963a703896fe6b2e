"""`_all_docs`: rows, key ranges, paging, order and `keys`, as CouchDB 3 answers them."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def twenty(seeded_db) -> str:
    """A database of 20 documents `d00`..`d19` with `i` = 0..19 (read only)."""
    return seeded_db("all-docs-twenty", [{"_id": f"d{i:02}", "i": i} for i in range(20)])


def get(http, url: str, **params) -> dict:
    """The body of `GET _all_docs` with `params`."""
    return http.get(url + "/_all_docs", params={k: str(v) for k, v in params.items()}).json()


def test_all_docs_lists_every_doc_from_offset_0(twenty, http):
    """`_all_docs` lists every document, with `total_rows` and `offset` 0."""
    body = get(http, twenty)
    assert body["total_rows"] == 20
    assert len(body["rows"]) == 20
    assert body["offset"] == 0


def test_all_docs_row_is_id_key_and_rev(twenty, http):
    """A row is `{"id", "key", "value": {"rev"}}`, the key being the id."""
    body = get(http, twenty)
    assert body["rows"][0] == {"id": "d00", "key": "d00", "value": {"rev": body["rows"][0]["value"]["rev"]}}


@pytest.mark.parametrize(("params", "ids"), [
    pytest.param({"startkey": '"d05"', "endkey": '"d08"', "include_docs": "true"}, ["d05", "d06", "d07", "d08"],
                 id="key-range"),
    pytest.param({"startkey": '"d05"', "endkey": '"d08"', "inclusive_end": "false"}, ["d05", "d06", "d07"],
                 id="inclusive_end-false"),
    pytest.param({"limit": 2, "skip": 3}, ["d03", "d04"], id="limit-skip"),
    pytest.param({"descending": "true", "limit": 2}, ["d19", "d18"], id="descending-limit"),
    pytest.param({"descending": "true", "startkey": '"d10"', "endkey": '"d08"'}, ["d10", "d09", "d08"],
                 id="descending-key-range"),
])
def test_all_docs_selects_rows(twenty, http, params, ids):
    """Key ranges (end included or not), `limit`/`skip` and `descending` select CouchDB's rows."""
    assert [r["id"] for r in get(http, twenty, **params)["rows"]] == ids


def test_all_docs_include_docs_adds_the_doc(twenty, http):
    """`include_docs=true` adds each row's document."""
    page = get(http, twenty, startkey='"d05"', endkey='"d08"', include_docs="true")
    assert page["rows"][0]["doc"]["i"] == 5


def test_all_docs_offset_counts_rows_before_startkey(twenty, http):
    """`offset` is the number of rows before `startkey`."""
    assert get(http, twenty, startkey='"d05"', endkey='"d08"', include_docs="true")["offset"] == 5


def keyed(http, url: str, keys: list[str]) -> list[dict]:
    """The rows of `POST _all_docs?include_docs=true` with `keys`."""
    return http.post(url + "/_all_docs", json={"keys": keys}, params={"include_docs": "true"}).json()["rows"]


def test_all_docs_keys_returns_those_docs(twenty, http):
    """`POST _all_docs` with `keys` and `include_docs` returns those documents."""
    assert keyed(http, twenty, ["d01", "zz"])[0]["doc"]["i"] == 1


def test_all_docs_missing_key_is_a_not_found_row(twenty, http):
    """A key with no document answers a not_found row in its place."""
    assert keyed(http, twenty, ["d01", "zz"])[1] == {"key": "zz", "error": "not_found"}


@pytest.mark.parametrize("body, ids", [
    ({"start_key": "d05", "limit": 2}, ["d05", "d06"]),
    ({"startkey": "d05", "endkey": "d07", "inclusive_end": False}, ["d05", "d06"]),
    ({"end_key": "d01"}, ["d00", "d01"]),
    ({"descending": True, "limit": 2}, ["d19", "d18"]),
    ({"skip": 18}, ["d18", "d19"]),
    ({"key": "d03"}, ["d03"]),
    ({"keys": ["d04", "d02"], "skip": 1}, ["d02"]),
])
def test_all_docs_post_body_takes_every_parameter(twenty, http, body, ids):
    """`POST _all_docs` reads `limit`, `skip`, `start_key`/`startkey`, `end_key`/`endkey`,
    `inclusive_end`, `descending`, `key` and `keys` from its body."""
    r = http.post(twenty + "/_all_docs", json=body)
    assert [row["id"] for row in r.json()["rows"]] == ids


def test_all_docs_post_body_include_docs(twenty, http):
    """`include_docs` in a `POST _all_docs` body adds each row's document."""
    rows = http.post(twenty + "/_all_docs", json={"include_docs": True, "limit": 1}).json()["rows"]
    assert rows[0]["doc"]["i"] == 0


def test_all_docs_body_overrides_query_string(twenty, http):
    """A parameter in the body wins over the same one in the query string."""
    r = http.post(twenty + "/_all_docs", params={"limit": "5"}, json={"limit": 1})
    assert len(r.json()["rows"]) == 1


@pytest.mark.parametrize("other", [{"startkey": "d01"}, {"end_key": "d05"}, {"key": "d01"}])
def test_all_docs_keys_with_a_range_is_400(twenty, http, other):
    """`keys` together with `key`, `start_key` or `end_key` is CouchDB's 400 query_parse_error."""
    r = http.post(twenty + "/_all_docs", json={"keys": ["d01"], **other})
    assert r.status_code == 400
    assert r.json() == {"error": "query_parse_error",
                        "reason": "`keys` is incompatible with `key`, `start_key` and `end_key`"}


def test_all_docs_queries_answers_each_query(twenty, http):
    """`POST _all_docs/queries` answers `{"results": [...]}`, one `_all_docs` answer per query."""
    r = http.post(twenty + "/_all_docs/queries", json={"queries": [
        {"keys": ["d01"]}, {"start_key": "d18", "include_docs": True}, {"limit": 0}]})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [[row["id"] for row in res["rows"]] for res in results] == [["d01"], ["d18", "d19"], []]
    assert results[1]["offset"] == 18 and results[1]["rows"][1]["doc"]["i"] == 19
    assert results[2]["total_rows"] == 20


def test_all_docs_queries_needs_an_array(twenty, http):
    """`_all_docs/queries` without a `queries` array is 400 bad_request."""
    assert http.post(twenty + "/_all_docs/queries", json={"queries": {}}).status_code == 400


def test_include_docs_with_attachments_inlines_their_content(db, http):
    """`_all_docs?include_docs=true&attachments=true` answers each document's attachments
    with their base64 `data` (CouchDB's `attachments` parameter), not as stubs."""
    assert http.put(db + "/a/x.txt", data=b"hi", headers={"Content-Type": "text/plain"}).status_code == 201
    for rows in (get(http, db, include_docs="true", attachments="true")["rows"],
                 http.post(db + "/_all_docs", json={"keys": ["a"], "include_docs": True,
                                                    "attachments": True}).json()["rows"]):
        assert rows[0]["doc"]["_attachments"]["x.txt"]["data"] == "aGk="
