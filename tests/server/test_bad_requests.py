"""Malformed requests and oversize bodies: each is a 4xx in CouchDB 3's JSON error shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from cloudsync.server.testing import serve

JSON = {"Content-Type": "application/json"}
DEEP = b'{"a":' * 100 + b"1" + b"}" * 100


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "error"), [
    pytest.param("post", "/_bulk_docs", {"data": b"{not json", "headers": JSON}, 400, "bad_request", id="not-json"),
    pytest.param("post", "/_bulk_docs", {"data": b"[1,2]", "headers": JSON}, 400, "bad_request", id="not-an-object"),
    pytest.param("post", "/_bulk_docs", {"json": {"docs": 5}}, 400, "bad_request", id="docs-not-a-list"),
    pytest.param("post", "/_bulk_docs", {"data": b'{"docs":[]}', "headers": {"Content-Type": "text/plain"}},
                 415, "bad_content_type", id="not-json-content-type"),
    pytest.param("put", "/deep", {"data": DEEP, "headers": JSON}, 400, "bad_request", id="nested-100-deep"),
    pytest.param("post", "/_find", {"data": b"\xff\xfe", "headers": JSON}, 400, "bad_request", id="not-utf-8"),
    pytest.param("get", "/_changes", {"params": {"since": "garbage"}}, 400, "bad_request", id="bad-since"),
    pytest.param("get", "/_changes", {"params": {"feed": "bogus"}}, 400, "bad_request", id="bad-feed"),
    pytest.param("get", "/_changes", {"params": {"limit": "-1"}}, 400, "bad_request", id="negative-limit"),
    pytest.param("get", "/_all_docs", {"params": {"startkey": "{"}}, 400, "bad_request", id="startkey-not-json"),
    pytest.param("put", "/_weird", {"json": {}}, 400, "illegal_docid", id="underscore-id"),
    pytest.param("get", "/%ff", {}, 400, "bad_request", id="path-not-utf-8"),
])
def test_malformed_request_is_a_json_4xx(db, http, method, path, kwargs, status, error):
    """A malformed body, content type, parameter, id or path is a 4xx with a JSON error body."""
    assert_json_error(http.request(method, db + path, **kwargs), status, error)


def test_illegal_database_name_is_a_json_400(server, http):
    """An illegal database name is a 400 with a JSON illegal_database_name body."""
    assert_json_error(http.put(server.url + "/Bad"), 400, "illegal_database_name")


def assert_json_error(r: requests.Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"] == error


# -- body size and depth limits ------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> Iterator[str]:
    """The URL of a database on a server that takes bodies up to 1,000 bytes (`--max-body 1000`)."""
    with serve(memory=True, extra_args=("--max-body", "1000")) as proc, requests.Session() as http:
        http.put(proc.url + "/db")
        yield proc.url + "/db"


def test_oversize_body_is_413_too_large(small, http):
    """A body past `--max-body` is 413 too_large."""
    r = http.post(small + "/_bulk_docs", json={"docs": [{"x": "y" * 2000}]})
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"


def test_body_under_max_body_is_accepted(small, http):
    """A body under `--max-body` is answered as usual (201)."""
    assert http.post(small + "/_bulk_docs", json={"docs": [{"x": 1}]}).status_code == 201


def nested(levels: int) -> bytes:
    """A `_bulk_docs` body nested `levels` deep: the outer object is level 1, lists count too."""
    inner = b"1"
    for i in range(levels - 1):
        inner = b'{"a":' + inner + b"}" if i % 2 else b"[" + inner + b"]"
    return b'{"docs":[{"_id":"x' + str(levels).encode() + b'","v":' + inner + b"}]}"


# {"docs": [ {doc} ]} already takes three levels.
def test_body_exactly_max_json_depth_deep_is_accepted(db, http):
    """A body nested exactly `--max-json-depth` (64) levels is accepted."""
    assert http.post(db + "/_bulk_docs", data=nested(64 - 2), headers=JSON).status_code == 201


def test_body_one_level_past_max_json_depth_is_400(db, http):
    """A body nested one level past `--max-json-depth` (64) is 400 bad_request."""
    r = http.post(db + "/_bulk_docs", data=nested(64 - 1), headers=JSON)
    assert r.status_code == 400
    assert r.json()["error"] == "bad_request"
