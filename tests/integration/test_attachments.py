"""Attachments through the client against real servers: put, get (bytes or a file),
delete, inline base64, names with slashes, typed errors."""

from __future__ import annotations

import base64
import hashlib
import io
import os

import pytest

import cloudsync

pytestmark = pytest.mark.integration

XML = b'<?xml version="1.0" encoding="UTF-8"?>\n<order id="7"><line qty="2">caf\xc3\xa9</line></order>\n'


def test_put_creates_the_document_and_get_returns_the_bytes(db):
    """put_attachment on a missing document creates it; get_attachment returns the bytes."""
    rev = db.put_attachment("doc", "hello.txt", b"hello", "text/plain")
    assert rev.startswith("1-")
    assert db.get_attachment("doc", "hello.txt") == b"hello"


def test_xml_keeps_its_content_type(db):
    """An XML attachment comes back identical, with its content type in the stub."""
    db.put_attachment("doc", "order.xml", XML, "application/xml")
    assert db.get_attachment("doc", "order.xml") == XML
    assert db.get("doc")["_attachments"]["order.xml"]["content_type"] == "application/xml"


def test_str_data_is_sent_as_utf8(db):
    """A str is stored as its UTF-8 bytes."""
    db.put_attachment("doc", "note.txt", "café", "text/plain; charset=utf-8")
    assert db.get_attachment("doc", "note.txt") == "café".encode()


def test_several_mb_binary_streamed_both_ways(db, tmp_path):
    """Several MB of random bytes, uploaded from a file and downloaded into one, arrive
    with the same digest; the stub has the length and CouchDB's md5 digest."""
    data = os.urandom(6 * 1024 * 1024 + 17)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    with source.open("rb") as f:
        db.put_attachment("doc", "blob.bin", f, "application/octet-stream")
    with (tmp_path / "out.bin").open("wb") as out:
        written = db.get_attachment("doc", "blob.bin", file=out)
    assert written == len(data)
    assert hashlib.sha256((tmp_path / "out.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    stub = db.get("doc")["_attachments"]["blob.bin"]
    assert stub["length"] == len(data)
    assert stub["digest"] == "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


def test_put_on_a_document_dict_uses_its_rev(db):
    """Given the document, put_attachment adds to its current revision, keeping its fields."""
    doc = db.create({"_id": "d", "n": 1})
    rev = db.put_attachment(doc, "a.txt", b"a", "text/plain")
    assert rev.startswith("2-") and db.get("d")["n"] == 1


def test_put_on_an_existing_document_without_rev_is_conflict(db):
    """An attachment on an existing document without its rev raises Conflict."""
    db.create({"_id": "d"})
    with pytest.raises(cloudsync.Conflict):
        db.put_attachment("d", "a.txt", b"a", "text/plain")


def test_get_with_attachments_inlines_base64(db):
    """get(attachments=True) has the content inline as base64 data."""
    db.put_attachment("doc", "a.bin", b"\x00\xff", "application/octet-stream")
    att = db.get("doc", attachments=True)["_attachments"]["a.bin"]
    assert base64.b64decode(att["data"]) == b"\x00\xff"


def test_get_older_revision_of_an_attachment(db, server_kind):
    """get_attachment(rev=) reads that revision while the server keeps it; the embedded
    server keeps leaf revisions only, like CouchDB after compaction, and says NotFound."""
    rev1 = db.put_attachment("doc", "a.txt", b"one", "text/plain")
    db.put_attachment("doc", "a.txt", b"two", "text/plain", rev=rev1)
    assert db.get_attachment("doc", "a.txt") == b"two"
    if server_kind == "pouchdb":
        assert db.get_attachment("doc", "a.txt", rev=rev1) == b"one"
    else:
        with pytest.raises(cloudsync.NotFound):
            db.get_attachment("doc", "a.txt", rev=rev1)


def test_name_with_slashes(db):
    """A name with slashes is one attachment, listed under that name."""
    db.put_attachment("doc", "dir/sub/file.txt", b"deep", "text/plain")
    assert db.get_attachment("doc", "dir/sub/file.txt") == b"deep"
    assert list(db.get("doc")["_attachments"]) == ["dir/sub/file.txt"]


def test_name_with_reserved_characters(db):
    """Names with spaces, ?, # and % are quoted and come back under the same name."""
    name = "a b?c#d%e.txt"
    db.put_attachment("doc", name, b"x", "text/plain")
    assert db.get_attachment("doc", name) == b"x"
    assert list(db.get("doc")["_attachments"]) == [name]


def test_delete_attachment(db):
    """delete_attachment makes a revision without it; reading it then raises NotFound."""
    rev = db.put_attachment("doc", "a.txt", b"a", "text/plain")
    rev2 = db.delete_attachment("doc", "a.txt", rev)
    assert rev2.startswith("2-")
    with pytest.raises(cloudsync.NotFound):
        db.get_attachment("doc", "a.txt")


def test_missing_attachment_is_not_found(db):
    """Reading a name the document does not have raises NotFound."""
    db.create({"_id": "d"})
    with pytest.raises(cloudsync.NotFound):
        db.get_attachment("d", "nope.txt")


def test_delete_with_a_stale_rev_is_conflict(db):
    """delete_attachment with a rev that is no longer current raises Conflict."""
    rev = db.put_attachment("doc", "a.txt", b"a", "text/plain")
    db.put_attachment("doc", "b.txt", b"b", "text/plain", rev=rev)
    with pytest.raises(cloudsync.Conflict):
        db.delete_attachment("doc", "a.txt", rev)


def test_bulk_with_inline_attachment_and_update_with_stubs(db):
    """A document written by bulk() with inline data keeps its attachment through an
    update that sends the stubs back."""
    data = base64.b64encode(b"inline").decode()
    db.bulk([{"_id": "d", "_attachments": {"i.txt": {"content_type": "text/plain", "data": data}}}]).run()
    doc = db.get("d")
    db.update({**doc, "n": 2})
    assert db.get_attachment("d", "i.txt") == b"inline"


def test_file_object_without_a_size_is_streamed(db):
    """A file object whose size is unknown is sent chunked and stored whole."""

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.source = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            chunk = self.source.read(len(buf))
            buf[:len(chunk)] = chunk
            return len(chunk)

    data = os.urandom(300_000)
    db.put_attachment("doc", "p.bin", io.BufferedReader(Pipe(data)), "application/octet-stream")
    assert db.get_attachment("doc", "p.bin") == data


@pytest.mark.parametrize("data", [12, None, io.StringIO("text")], ids=["int", "None", "text-file"])
def test_data_of_another_type_is_type_error(db, data):
    """`data` that is neither bytes, str nor a binary file is a TypeError raised before
    anything is sent (it was a NetworkError, after retries for a non-file)."""
    with pytest.raises(TypeError):
        db.put_attachment("doc", "a.bin", data)
    with pytest.raises(cloudsync.NotFound):
        db.get("doc")
