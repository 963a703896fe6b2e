"""The server-wide endpoints: the welcome at ``/``, ``/_up`` and ``/_uuids``, as CouchDB 3 answers them."""

from __future__ import annotations


def test_welcome_is_200(server, http):
    """`GET /` answers 200."""
    assert http.get(server.url + "/").status_code == 200


def test_welcome_names_couchdb_vendor_and_version(server, http):
    """`GET /` says "Welcome" and names the vendor (cloudsync) and a version."""
    body = http.get(server.url + "/").json()
    assert body["couchdb"] == "Welcome"
    assert body["vendor"]["name"] == "cloudsync"
    assert body["version"]


def test_answers_carry_a_request_id(server, http):
    """Answers carry an `X-Couch-Request-ID` header."""
    assert http.get(server.url + "/").headers["X-Couch-Request-ID"]


def test_up_says_ok(server, http):
    """`GET /_up` answers `{"status": "ok"}`."""
    assert http.get(server.url + "/_up").json()["status"] == "ok"


def test_uuids_count_gives_that_many_distinct_hex_uuids(server, http):
    """`GET /_uuids?count=3` gives three distinct 32-character uuids."""
    uuids = http.get(server.url + "/_uuids?count=3").json()["uuids"]
    assert len(set(uuids)) == 3
    assert all(len(u) == 32 for u in uuids)
