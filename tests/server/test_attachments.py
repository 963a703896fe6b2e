"""Attachments on the embedded server: standalone PUT/GET/DELETE, stubs, inline base64,
_bulk_docs (inline, stubs, new_edits=false), _bulk_get, and content stored once."""

from __future__ import annotations

import base64
import email
import hashlib
import json
import os
import sqlite3

import pytest

from cloudsync.server.testing import serve


def digest(data: bytes) -> str:
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


def put_att(http, db, path, data, content_type="text/plain", **params):
    r = http.put(f"{db}/{path}", data=data, headers={"Content-Type": content_type}, params=params)
    assert r.status_code == 201, r.text
    return r.json()["rev"]


# -- standalone ---------------------------------------------------------------------------------


def test_put_without_rev_creates_the_document(db, http):
    """PUT /db/doc/name without rev on a missing document creates it, at 1-."""
    r = http.put(db + "/doc/a.txt", data=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 201
    assert r.json()["ok"] is True and r.json()["rev"].startswith("1-")


def test_get_returns_the_content_and_its_type(db, http):
    """GET /db/doc/name answers the bytes with the content type they were stored with."""
    put_att(http, db, "doc/a.xml", b"<a>1</a>", "application/xml")
    r = http.get(db + "/doc/a.xml")
    assert r.status_code == 200
    assert r.content == b"<a>1</a>" and r.headers["Content-Type"].startswith("application/xml")


def test_get_etag_is_the_quoted_digest(db, http):
    """The ETag of an attachment is its digest, quoted."""
    put_att(http, db, "doc/a.txt", b"hello")
    assert http.get(db + "/doc/a.txt").headers["ETag"] == f'"{digest(b"hello")}"'


def test_if_none_match_answers_304(db, http):
    """If-None-Match with the current ETag is 304 without a body."""
    put_att(http, db, "doc/a.txt", b"hello")
    r = http.get(db + "/doc/a.txt", headers={"If-None-Match": f'"{digest(b"hello")}"'})
    assert r.status_code == 304 and r.content == b""


def test_range_answers_206_with_the_bytes(db, http):
    """A single bytes= Range is 206 with those bytes and a Content-Range."""
    put_att(http, db, "doc/a.txt", b"0123456789")
    r = http.get(db + "/doc/a.txt", headers={"Range": "bytes=2-4"})
    assert r.status_code == 206
    assert r.content == b"234" and r.headers["Content-Range"] == "bytes 2-4/10"


def test_range_past_the_end_is_416(db, http):
    """A Range starting past the content is 416."""
    put_att(http, db, "doc/a.txt", b"0123")
    assert http.get(db + "/doc/a.txt", headers={"Range": "bytes=10-"}).status_code == 416


def test_put_on_an_existing_document_needs_its_rev(db, http):
    """Adding an attachment to a live document without its rev is 409 conflict."""
    http.put(db + "/doc", json={"a": 1})
    r = http.put(db + "/doc/a.txt", data=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"


def test_put_with_rev_keeps_the_fields_and_other_attachments(db, http):
    """A second attachment, PUT with the rev, keeps the fields and the first attachment."""
    rev = http.put(db + "/doc", json={"a": 1}).json()["rev"]
    rev = put_att(http, db, "doc/one.txt", b"1", rev=rev)
    put_att(http, db, "doc/two.txt", b"2", rev=rev)
    doc = http.get(db + "/doc").json()
    assert doc["a"] == 1 and sorted(doc["_attachments"]) == ["one.txt", "two.txt"]


def test_get_missing_attachment_is_404(db, http):
    """An attachment name the document does not have is 404 not_found."""
    http.put(db + "/doc", json={})
    r = http.get(db + "/doc/nope.txt")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_get_with_rev_reads_that_leaf(db, http):
    """GET /db/doc/name?rev= serves that revision's content (here a conflicting leaf)."""
    old = base64.b64encode(b"old").decode()
    http.post(db + "/_bulk_docs", json={"new_edits": False, "docs": [
        {"_id": "doc", "_rev": "1-a", "_attachments": {"f": {"content_type": "text/plain", "data": old}}},
        {"_id": "doc", "_rev": "2-b", "_revisions": {"start": 2, "ids": ["b", "x"]}}]})
    assert http.get(db + "/doc/f", params={"rev": "1-a"}).content == b"old"


def test_names_with_slashes(db, http):
    """A name with slashes, sent literal or encoded, is one attachment."""
    put_att(http, db, "doc/a/b.txt", b"deep")
    assert http.get(db + "/doc/a%2Fb.txt").content == b"deep"
    assert list(http.get(db + "/doc").json()["_attachments"]) == ["a/b.txt"]


def test_delete_removes_the_attachment(db, http):
    """DELETE /db/doc/name?rev= makes a revision without it."""
    rev = put_att(http, db, "doc/a.txt", b"x")
    r = http.delete(db + "/doc/a.txt", params={"rev": rev})
    assert r.status_code == 200 and r.json()["rev"].startswith("2-")
    assert "_attachments" not in http.get(db + "/doc").json()
    assert http.get(db + "/doc/a.txt").status_code == 404


def test_delete_of_a_missing_attachment_is_404(db, http):
    """Deleting a name the revision does not have is 404 not_found."""
    rev = http.put(db + "/doc", json={}).json()["rev"]
    r = http.delete(db + "/doc/a.txt", params={"rev": rev})
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_delete_with_a_rev_on_a_missing_document_is_409_missing_rev(db, http):
    """DELETE /db/doc/name?rev= on a document that does not exist is CouchDB's 409
    not_found/missing_rev (the rev cannot be opened), not 404."""
    r = http.delete(db + "/nodoc/a.txt", params={"rev": "1-abc"})
    assert r.status_code == 409 and r.json() == {"error": "not_found", "reason": "missing_rev"}


def test_put_with_a_rev_on_a_missing_document_is_409_missing_rev(db, http):
    """PUT /db/doc/name?rev= on a document that does not exist is CouchDB's 409
    not_found/missing_rev."""
    r = http.put(db + "/nodoc/a.txt", data=b"x", headers={"Content-Type": "text/plain"}, params={"rev": "1-000"})
    assert r.status_code == 409 and r.json() == {"error": "not_found", "reason": "missing_rev"}


def test_put_with_a_malformed_rev_is_400(db, http):
    """PUT /db/doc/name?rev= with a rev that is not `N-hash` is 400 bad_request "Invalid
    rev format", as CouchDB's couch_doc:parse_rev answers it."""
    http.put(db + "/doc", json={})
    r = http.put(db + "/doc/a.txt", data=b"x", headers={"Content-Type": "text/plain"}, params={"rev": "nope"})
    assert r.status_code == 400 and r.json() == {"error": "bad_request", "reason": "Invalid rev format"}


def test_upload_over_the_limit_is_413(tmp_path):
    """An upload larger than --max-attachment-size is 413 too_large, and nothing is written."""
    import requests
    with serve(memory=True, extra_args=("--max-attachment-size", "1000")) as proc:
        requests.put(proc.url + "/small")
        r = requests.put(proc.url + "/small/doc/big", data=b"x" * 1001)
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        assert requests.get(proc.url + "/small/doc").status_code == 404


# -- in documents -------------------------------------------------------------------------------


def test_document_get_has_stubs(db, http):
    """A plain GET of the document lists its attachments as stubs."""
    rev = put_att(http, db, "doc/a.txt", b"hello")
    stub = http.get(db + "/doc").json()["_attachments"]["a.txt"]
    assert stub == {"content_type": "text/plain", "revpos": 1, "digest": digest(b"hello"), "length": 5,
                    "stub": True}
    assert rev.startswith("1-")


def test_document_get_attachments_true_inlines_base64(db, http):
    """attachments=true answers the content as base64 data instead of a stub."""
    put_att(http, db, "doc/a.txt", b"hello")
    att = http.get(db + "/doc", params={"attachments": "true"}).json()["_attachments"]["a.txt"]
    assert base64.b64decode(att["data"]) == b"hello" and "stub" not in att


def test_atts_since_sends_only_newer_content(db, http):
    """atts_since=[rev] inlines only attachments added after that revision."""
    rev1 = put_att(http, db, "doc/old.txt", b"old")
    put_att(http, db, "doc/new.txt", b"new", rev=rev1)
    atts = http.get(db + "/doc", params={"atts_since": f'["{rev1}"]'}).json()["_attachments"]
    assert atts["old.txt"]["stub"] is True and base64.b64decode(atts["new.txt"]["data"]) == b"new"


def test_update_with_stubs_keeps_the_content(db, http):
    """Updating a document with its stubs keeps the attachments (and their revpos)."""
    put_att(http, db, "doc/a.txt", b"hello")
    doc = http.get(db + "/doc").json()
    doc["n"] = 2
    assert http.put(db + "/doc", json=doc).status_code == 201
    assert http.get(db + "/doc/a.txt").content == b"hello"
    assert http.get(db + "/doc").json()["_attachments"]["a.txt"]["revpos"] == 1


def test_update_without_attachments_drops_them(db, http):
    """An update without _attachments removes them, as in CouchDB."""
    rev = put_att(http, db, "doc/a.txt", b"hello")
    http.put(db + "/doc", json={"_rev": rev})
    assert http.get(db + "/doc/a.txt").status_code == 404


def test_bad_base64_is_400(db, http):
    """Inline data that is not base64 is 400 bad_request."""
    r = http.put(db + "/doc", json={"_attachments": {"a": {"content_type": "text/plain", "data": "!!!"}}})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_unknown_stub_is_412_missing_stub(db, http):
    """A stub naming an attachment the parent revision lacks is 412 missing_stub."""
    rev = http.put(db + "/doc", json={}).json()["rev"]
    r = http.put(db + "/doc", json={"_rev": rev, "_attachments": {"a": {"stub": True}}})
    assert r.status_code == 412 and r.json()["error"] == "missing_stub"


def test_attachment_name_with_underscore_is_400(db, http):
    """Attachment names may not start with an underscore."""
    r = http.put(db + "/doc", json={"_attachments": {"_a": {"data": ""}}})
    assert r.status_code == 400


# -- bulk --------------------------------------------------------------------------------------


def test_bulk_docs_inline_data(db, http):
    """_bulk_docs stores inline base64 attachments."""
    data = base64.b64encode(b"\x00\x01binary").decode()
    r = http.post(db + "/_bulk_docs", json={"docs": [
        {"_id": "d", "_attachments": {"b.bin": {"content_type": "application/octet-stream", "data": data}}}]})
    assert r.status_code == 201 and r.json()[0]["ok"]
    assert http.get(db + "/d/b.bin").content == b"\x00\x01binary"


def test_bulk_docs_row_error_for_missing_stub(db, http):
    """In _bulk_docs an unknown stub fails that row with missing_stub, others are written."""
    r = http.post(db + "/_bulk_docs", json={"docs": [
        {"_id": "bad", "_rev": "1-x", "_attachments": {"a": {"stub": True}}}, {"_id": "good"}]})
    rows = r.json()
    assert rows[0]["error"] in ("conflict", "missing_stub") and rows[1]["ok"] is True


def test_replicated_stub_refers_to_an_ancestor(db, http):
    """new_edits=false: a stub whose content a stored ancestor leaf has is accepted."""
    data = base64.b64encode(b"content").decode()
    http.post(db + "/_bulk_docs", json={"new_edits": False, "docs": [
        {"_id": "d", "_rev": "1-a", "_attachments": {"f": {"content_type": "text/plain", "data": data,
                                                              "revpos": 1}}}]})
    r = http.post(db + "/_bulk_docs", json={"new_edits": False, "docs": [
        {"_id": "d", "_rev": "2-b", "_revisions": {"start": 2, "ids": ["b", "a"]},
         "_attachments": {"f": {"content_type": "text/plain", "stub": True, "revpos": 1,
                                "digest": digest(b"content"), "length": 7}}}]})
    assert r.status_code == 201 and r.json() == []
    doc = http.get(db + "/d").json()
    assert doc["_rev"] == "2-b" and doc["_attachments"]["f"]["revpos"] == 1
    assert http.get(db + "/d/f").content == b"content"


def test_replicated_unknown_stub_is_missing_stub(db, http):
    """new_edits=false: a stub the server has no content for fails with missing_stub."""
    r = http.post(db + "/_bulk_docs", json={"new_edits": False, "docs": [
        {"_id": "d", "_rev": "2-b", "_revisions": {"start": 2, "ids": ["b", "a"]},
         "_attachments": {"f": {"stub": True, "revpos": 1, "digest": digest(b"nope")}}}]})
    assert r.json()[0]["error"] == "missing_stub"
    assert http.get(db + "/d").status_code == 404


def test_bulk_get_attachments_true(db, http):
    """_bulk_get?attachments=true inlines the content."""
    put_att(http, db, "doc/a.txt", b"hello")
    r = http.post(db + "/_bulk_get", params={"attachments": "true"}, json={"docs": [{"id": "doc"}]})
    doc = r.json()["results"][0]["docs"][0]["ok"]
    assert base64.b64decode(doc["_attachments"]["a.txt"]["data"]) == b"hello"


def test_open_revs_attachments_true_inlines_base64(db, http):
    """GET doc?open_revs=all&attachments=true answers each leaf with its content inline."""
    put_att(http, db, "doc/a.txt", b"hello")
    r = http.get(db + "/doc", params={"open_revs": "all", "attachments": "true"},
                 headers={"Accept": "application/json"})
    [entry] = r.json()
    assert base64.b64decode(entry["ok"]["_attachments"]["a.txt"]["data"]) == b"hello"


def test_open_revs_atts_since_leaves_known_content_as_stubs(db, http):
    """open_revs with atts_since sends as stubs the attachments the client's revision has."""
    rev1 = put_att(http, db, "doc/a.txt", b"hello")
    put_att(http, db, "doc/b.txt", b"world", rev=rev1)
    r = http.get(db + "/doc", params={"open_revs": "all", "atts_since": json.dumps([rev1])},
                 headers={"Accept": "application/json"})
    atts = r.json()[0]["ok"]["_attachments"]
    assert atts["a.txt"]["stub"] is True
    assert base64.b64decode(atts["b.txt"]["data"]) == b"world"


def test_open_revs_multipart_nests_multipart_related(db, http):
    """open_revs with attachments=true and Accept: multipart/mixed (CouchDB's replicator)
    answers each revision with attachments as a multipart/related part holding the bytes."""
    put_att(http, db, "doc/a.txt", b"hello")
    r = http.get(db + "/doc", params={"open_revs": "all", "attachments": "true"},
                 headers={"Accept": "multipart/mixed"})
    assert r.headers["Content-Type"].startswith("multipart/mixed")
    message = email.message_from_bytes(b"Content-Type: " + r.headers["Content-Type"].encode() + b"\r\n\r\n"
                                       + r.content)
    [revision] = message.get_payload()
    assert revision.get_content_type() == "multipart/related"
    json_part, att_part = revision.get_payload()
    assert json.loads(json_part.get_payload())["_attachments"]["a.txt"]["follows"] is True
    assert att_part.get_payload(decode=True) == b"hello"


# -- storage -----------------------------------------------------------------------------------


def _blob_count(data_dir, name: str) -> int:
    with sqlite3.connect(data_dir / f"{name}.sqlite") as conn:
        return conn.execute("SELECT count(*) FROM att_blobs").fetchone()[0]


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory):
    """A server with a data directory the test can open."""
    data_dir = tmp_path_factory.mktemp("att-data")
    with serve(data_dir) as proc:
        yield proc, data_dir


def test_identical_content_is_stored_once(on_disk, http):
    """The same bytes attached to two documents are one stored blob."""
    proc, data_dir = on_disk
    http.put(proc.url + "/dedupe")
    put_att(http, proc.url + "/dedupe", "one/a", b"same bytes")
    put_att(http, proc.url + "/dedupe", "two/b", b"same bytes")
    assert _blob_count(data_dir, "dedupe") == 1


def test_unreferenced_content_is_deleted(on_disk, http):
    """Deleting the last document that references a blob deletes the blob."""
    proc, data_dir = on_disk
    url = proc.url + "/gc"
    http.put(url)
    rev = put_att(http, url, "one/a", b"shared")
    rev2 = put_att(http, url, "two/a", b"shared")
    http.delete(url + "/one", params={"rev": rev})
    assert _blob_count(data_dir, "gc") == 1
    http.delete(url + "/two", params={"rev": rev2})
    assert _blob_count(data_dir, "gc") == 0


def test_large_binary_round_trip(db, http):
    """Several MB of random bytes come back identical, across chunk boundaries and ranges."""
    data = os.urandom(5 * 1024 * 1024 + 123)
    put_att(http, db, "doc/big.bin", data, "application/octet-stream")
    assert hashlib.md5(http.get(db + "/doc/big.bin").content).digest() == hashlib.md5(data).digest()
    r = http.get(db + "/doc/big.bin", headers={"Range": "bytes=262100-262200"})
    assert r.content == data[262100:262201]


# -- multipart/related -------------------------------------------------------------------------


def _multipart(doc: dict, contents: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "xyzzy"
    body = b"--xyzzy\r\nContent-Type: application/json\r\n\r\n" + json.dumps(doc).encode()
    for name, data in contents:
        body += (f'\r\n--xyzzy\r\nContent-Disposition: attachment; filename="{name}"\r\n'
                 f"Content-Type: text/plain\r\n\r\n").encode() + data
    return body + b"\r\n--xyzzy--", f'multipart/related; boundary="{boundary}"'


def test_put_multipart_related_stores_the_parts(db, http):
    """PUT /db/doc as multipart/related stores the attachments that follow the JSON."""
    body, ctype = _multipart({"n": 1, "_attachments": {
        "a.txt": {"follows": True, "content_type": "text/plain", "length": 3},
        "b.txt": {"follows": True, "content_type": "text/plain", "length": 2}}}, [("a.txt", b"aaa"), ("b.txt", b"bb")])
    r = http.put(db + "/doc", data=body, headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text
    assert http.get(db + "/doc/a.txt").content == b"aaa" and http.get(db + "/doc/b.txt").content == b"bb"


def test_put_multipart_missing_part_is_400(db, http):
    """A multipart/related write without the content of a following attachment is 400."""
    body, ctype = _multipart({"_attachments": {"a.txt": {"follows": True}}}, [])
    r = http.put(db + "/doc", data=body, headers={"Content-Type": ctype})
    assert r.status_code == 400


@pytest.mark.parametrize(("declared", "reason"), [(5, "attachment shorter than expected"),
                                                   (2, "attachment longer than expected")])
def test_put_multipart_part_of_another_length_than_declared_is_400(db, http, declared, reason):
    """A multipart/related part whose size is not the `length` its stub declares is 400
    bad_request with CouchDB's reason, and nothing is written."""
    body, ctype = _multipart({"_attachments": {"a.txt": {"follows": True, "length": declared}}}, [("a.txt", b"aaa")])
    r = http.put(db + "/doc", data=body, headers={"Content-Type": ctype})
    assert r.status_code == 400 and r.json() == {"error": "bad_request", "reason": reason}
    assert http.get(db + "/doc").status_code == 404


def test_get_multipart_related_when_accepted(db, http):
    """GET doc?attachments=true with Accept: multipart/related answers the JSON with
    "follows" stubs, then each attachment as a part."""
    put_att(http, db, "doc/a.txt", b"hello")
    r = http.get(db + "/doc", params={"attachments": "true"}, headers={"Accept": "multipart/related"})
    assert r.headers["Content-Type"].startswith("multipart/related")
    message = email.message_from_bytes(b"Content-Type: " + r.headers["Content-Type"].encode() + b"\r\n\r\n"
                                       + r.content)
    json_part, att_part = message.get_payload()
    assert json.loads(json_part.get_payload())["_attachments"]["a.txt"]["follows"] is True
    assert att_part.get_payload(decode=True) == b"hello"


@pytest.mark.parametrize("body", [
    # cut before its end, one of its two attachments sent
    b'--xyzzy\r\nContent-Type: application/json\r\n\r\n{"_attachments": {"a": {"follows": true},'
    b' "b": {"follows": true}}}\r\n--xyzzy\r\n\r\nabc\r\n--xyzzy',
    b"not a multipart body",  # no boundary at all
], ids=["truncated", "garbage"])
def test_put_malformed_multipart_is_400(db, http, body):
    """A multipart/related write whose body does not parse is 400 bad_request, not a 500."""
    r = http.put(db + "/doc", data=body, headers={"Content-Type": 'multipart/related; boundary="xyzzy"'})
    assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text


def test_put_multipart_without_a_boundary_is_400(db, http):
    """A multipart/related Content-Type without a boundary parameter is 400 bad_request."""
    r = http.put(db + "/doc", data=b"--x\r\n\r\n{}\r\n--x--", headers={"Content-Type": "multipart/related"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text


def test_put_answers_a_name_with_control_characters(db, http):
    """PUT of an attachment whose name holds a control character (%01) is answered 201;
    the Location header carries the name percent-encoded, as CouchDB's does."""
    r = http.put(db + "/doc/a%01b", data=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    assert r.headers["Location"].endswith("/doc/a%01b")
