"""Server, database and document endpoints, checked against CouchDB 3's answers."""

from __future__ import annotations

import requests


def test_welcome_up_uuids(server, http):
    r = http.get(server.url + "/")
    assert r.status_code == 200
    body = r.json()
    assert body["couchdb"] == "Welcome" and body["vendor"]["name"] == "cloudsync" and body["version"]
    assert r.headers["X-Couch-Request-ID"]
    assert http.get(server.url + "/_up").json()["status"] == "ok"
    uuids = http.get(server.url + "/_uuids?count=3").json()["uuids"]
    assert len(set(uuids)) == 3 and all(len(u) == 32 for u in uuids)


def test_database_lifecycle(server, http):
    url = server.url + "/lifecycle"
    assert http.put(url).json() == {"ok": True}
    r = http.put(url)
    assert r.status_code == 412 and r.json()["error"] == "file_exists"
    assert "lifecycle" in http.get(server.url + "/_all_dbs").json()
    info = http.get(url).json()
    assert info["db_name"] == "lifecycle" and info["doc_count"] == 0 and info["update_seq"] == "0"
    assert http.delete(url).json() == {"ok": True}
    r = http.delete(url)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert http.get(url).status_code == 404


def test_database_names(server, http):
    for bad in ("Upper", "1abc", "_private", "a%20b"):
        r = http.put(f"{server.url}/{bad}")
        assert r.status_code == 400 and r.json()["error"] == "illegal_database_name", bad
    r = http.put(f"{server.url}/a%2Fb$c(d)+e-f_g")
    assert r.status_code == 201
    assert "a/b$c(d)+e-f_g" in http.get(server.url + "/_all_dbs").json()
    assert http.get(f"{server.url}/a%2Fb$c(d)+e-f_g").json()["db_name"] == "a/b$c(d)+e-f_g"


def test_document_revisions_conflicts_tombstones(db, http):
    r = http.put(db + "/doc", json={"n": 1})
    assert r.status_code == 201
    rev1 = r.json()["rev"]
    assert rev1.startswith("1-") and len(rev1.split("-")[1]) == 32
    assert r.headers["ETag"] == f'"{rev1}"'
    assert http.get(db + "/doc").json() == {"_id": "doc", "_rev": rev1, "n": 1}
    # Missing and stale revs conflict.
    assert http.put(db + "/doc", json={"n": 2}).status_code == 409
    r2 = http.put(db + "/doc", json={"_rev": rev1, "n": 2}).json()["rev"]
    assert r2.startswith("2-")
    r = http.put(db + "/doc", json={"_rev": rev1, "n": 3})
    assert r.status_code == 409 and r.json() == {"error": "conflict", "reason": "Document update conflict."}
    assert http.put(db + "/new", json={"_rev": rev1}).status_code == 409
    # Same content and parent give the same rev (deterministic).
    http.put(db + "/twin", json={"n": 1})
    assert http.get(db + "/twin").json()["_rev"] == rev1
    # Delete: 409 without rev, tombstone after, recreate without rev.
    assert http.delete(db + "/doc").status_code == 409
    r = http.delete(db + "/doc", params={"rev": r2})
    assert r.status_code == 200 and r.json()["rev"].startswith("3-")
    r = http.get(db + "/doc")
    assert r.status_code == 404 and r.json() == {"error": "not_found", "reason": "deleted"}
    assert http.get(db + "/nope").json() == {"error": "not_found", "reason": "missing"}
    assert http.put(db + "/doc", json={"again": True}).json()["rev"].startswith("4-")
    revs = http.get(db + "/doc", params={"revs": "true"}).json()["_revisions"]
    assert revs["start"] == 4 and len(revs["ids"]) == 4
    info = http.get(db).json()
    assert info["doc_count"] == 2 and info["doc_del_count"] == 0


def test_post_and_bulk_docs(db, http):
    r = http.post(db, json={"a": 1})
    assert r.status_code == 201 and len(r.json()["id"]) == 32
    res = http.post(db + "/_bulk_docs", json={"docs": [{"_id": "x"}, {"_id": "x"}, {"_id": "_bad"}, {"b": 2}]})
    assert res.status_code == 201
    rows = res.json()
    assert rows[0]["ok"] and rows[1]["error"] == "conflict" and rows[2]["error"] == "illegal_docid"
    assert rows[3]["ok"]
    rows = http.post(db + "/_bulk_docs", json={"docs": [{"_id": "x", "_rev": rows[0]["rev"], "_deleted": True}]}).json()
    assert rows[0]["ok"]
    r = http.post(db + "/_bulk_docs", json={"docs": [{"_id": "y", "_foo": 1}]}).json()
    assert r[0]["error"] == "doc_validation"


def test_new_edits_false_makes_conflicts(db, http):
    a = http.put(db + "/c", json={"v": "a"}).json()["rev"]
    other = "1-" + "f" * 32
    r = http.post(db + "/_bulk_docs", json={"new_edits": False, "docs": [{"_id": "c", "_rev": other, "v": "b"}]})
    assert r.status_code == 201 and r.json() == []
    doc = http.get(db + "/c", params={"conflicts": "true"}).json()
    winner, loser = (other, a) if other > a else (a, other)
    assert doc["_rev"] == winner and doc["_conflicts"] == [loser]
    assert http.get(db + "/c", params={"rev": loser}).json()["_rev"] == loser
    # Deleting the losing leaf resolves the conflict.
    assert http.delete(db + "/c", params={"rev": loser}).status_code == 200
    doc = http.get(db + "/c", params={"conflicts": "true"}).json()
    assert doc["_rev"] == winner and "_conflicts" not in doc


def test_odd_ids_round_trip(db, http):
    for doc_id, path in [("a/b", "a%2Fb"), ("..", "%2E%2E"), ("sp ace?&#", "sp%20ace%3F%26%23"),
                         ("_design/x", "_design/x"), ("_design/y", "_design%2Fy"), ("ü", "%C3%BC")]:
        r = http.put(f"{db}/{path}", json={"k": doc_id})
        assert r.status_code == 201, (doc_id, r.text)
        assert r.json()["id"] == doc_id
        assert http.get(f"{db}/{path}").json()["k"] == doc_id
    ids = [row["id"] for row in http.get(db + "/_all_docs").json()["rows"]]
    assert sorted(ids) == sorted(["a/b", "..", "sp ace?&#", "_design/x", "_design/y", "ü"])


def test_local_docs_are_not_in_changes(db, http):
    r = http.put(db + "/_local/ckpt", json={"seq": "1"})
    assert r.json()["rev"] == "0-1"
    assert http.put(db + "/_local/ckpt", json={"seq": "2"}).status_code == 409
    assert http.put(db + "/_local/ckpt", json={"_rev": "0-1", "seq": "2"}).json()["rev"] == "0-2"
    assert http.get(db + "/_local/ckpt").json() == {"_id": "_local/ckpt", "_rev": "0-2", "seq": "2"}
    assert http.get(db + "/_local%2Fckpt").json()["seq"] == "2"
    assert http.get(db + "/_changes").json()["results"] == []
    assert http.get(db + "/_all_docs").json()["rows"] == []
    assert http.delete(db + "/_local/ckpt", params={"rev": "0-2"}).status_code == 200
    assert http.get(db + "/_local/ckpt").status_code == 404


def test_all_docs_options(db, http):
    http.post(db + "/_bulk_docs", json={"docs": [{"_id": f"d{i:02}", "i": i} for i in range(20)]})
    get = lambda **p: http.get(db + "/_all_docs", params={k: str(v) for k, v in p.items()}).json()  # noqa: E731
    body = get()
    assert body["total_rows"] == 20 and len(body["rows"]) == 20 and body["offset"] == 0
    assert body["rows"][0] == {"id": "d00", "key": "d00", "value": {"rev": body["rows"][0]["value"]["rev"]}}
    page = get(startkey='"d05"', endkey='"d08"', include_docs="true")
    assert [r["id"] for r in page["rows"]] == ["d05", "d06", "d07", "d08"] and page["rows"][0]["doc"]["i"] == 5
    assert page["offset"] == 5
    assert [r["id"] for r in get(startkey='"d05"', endkey='"d08"', inclusive_end="false")["rows"]] == [
        "d05", "d06", "d07"]
    assert [r["id"] for r in get(limit=2, skip=3)["rows"]] == ["d03", "d04"]
    assert [r["id"] for r in get(descending="true", limit=2)["rows"]] == ["d19", "d18"]
    assert [r["id"] for r in get(descending="true", startkey='"d10"', endkey='"d08"')["rows"]] == [
        "d10", "d09", "d08"]
    rows = http.post(db + "/_all_docs", json={"keys": ["d01", "zz"]}, params={"include_docs": "true"}).json()["rows"]
    assert rows[0]["doc"]["i"] == 1 and rows[1] == {"key": "zz", "error": "not_found"}


def test_bulk_get(db, http):
    rev = http.put(db + "/a", json={"x": 1}).json()["rev"]
    res = http.post(db + "/_bulk_get", json={"docs": [{"id": "a"}, {"id": "a", "rev": rev}, {"id": "b"}]}).json()
    assert res["results"][0]["docs"][0]["ok"]["x"] == 1
    assert res["results"][1]["docs"][0]["ok"]["_rev"] == rev
    assert res["results"][2]["docs"][0]["error"]["error"] == "not_found"


def test_views_and_attachments_are_refused_clearly(db, http):
    r = http.get(db + "/_design/d/_view/v")
    assert r.status_code == 404 and "not supported" in r.json()["reason"]
    r = http.put(db + "/doc/att.txt", data=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_malformed_input_is_a_json_4xx(server, db, http):
    def check(r: requests.Response, status: int, error: str) -> None:
        assert r.status_code == status, r.text
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["error"] == error

    hdr = {"Content-Type": "application/json"}
    check(http.post(db + "/_bulk_docs", data=b"{not json", headers=hdr), 400, "bad_request")
    check(http.post(db + "/_bulk_docs", data=b"[1,2]", headers=hdr), 400, "bad_request")
    check(http.post(db + "/_bulk_docs", json={"docs": 5}), 400, "bad_request")
    check(http.post(db + "/_bulk_docs", data=b'{"docs":[]}', headers={"Content-Type": "text/plain"}),
          415, "bad_content_type")
    deep = b'{"a":' * 100 + b"1" + b"}" * 100
    check(http.put(db + "/deep", data=deep, headers=hdr), 400, "bad_request")
    check(http.post(db + "/_find", data=b"\xff\xfe", headers=hdr), 400, "bad_request")
    check(http.get(db + "/_changes", params={"since": "garbage"}), 400, "bad_request")
    check(http.get(db + "/_changes", params={"feed": "bogus"}), 400, "bad_request")
    check(http.get(db + "/_changes", params={"limit": "-1"}), 400, "bad_request")
    check(http.put(server.url + "/Bad"), 400, "illegal_database_name")
    check(http.get(db + "/_all_docs", params={"startkey": "{"}), 400, "bad_request")
    check(http.put(db + "/_weird", json={}), 400, "illegal_docid")
    check(http.get(db + "/%ff"), 400, "bad_request")


def test_oversize_body_is_413():
    from cloudsync.server.testing import serve

    with serve(memory=True, extra_args=("--max-body", "1000")) as small, requests.Session() as http:
        http.put(small.url + "/db")
        r = http.post(small.url + "/db/_bulk_docs", json={"docs": [{"x": "y" * 2000}]})
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        assert http.post(small.url + "/db/_bulk_docs", json={"docs": [{"x": 1}]}).status_code == 201


def test_json_depth_limit_is_exact(db, http):
    """A body nested exactly --max-json-depth (64) levels is accepted; one level more is 400."""
    def nested(levels: int) -> bytes:  # the outer object is level 1; lists count as levels too
        inner = b"1"
        for i in range(levels - 1):
            inner = b'{"a":' + inner + b"}" if i % 2 else b"[" + inner + b"]"
        return b'{"docs":[{"_id":"x' + str(levels).encode() + b'","v":' + inner + b"}]}"

    hdr = {"Content-Type": "application/json"}
    # {"docs": [ {doc} ]} already takes three levels.
    assert http.post(db + "/_bulk_docs", data=nested(64 - 2), headers=hdr).status_code == 201
    r = http.post(db + "/_bulk_docs", data=nested(64 - 1), headers=hdr)
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
