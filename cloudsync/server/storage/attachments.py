"""Attachment content in SQLite: stored once per digest, in chunks, kept while referenced.

Tables, in each database file:

- `att_blobs`: one row per distinct content, by CouchDB's digest `md5-<base64>`,
  with its length. Identical content attached to many documents is stored once.
- `att_chunks`: the content, in `CHUNK`-byte rows, so an upload is written and a
  download read piece by piece, never held whole.
- `att_refs`: which documents reference a digest from one of their stored leaves.
  Every document write updates its references in the same transaction, and a blob whose
  last reference goes (the attachment deleted or replaced, the document deleted, a
  conflict resolved) is deleted then: reference tracking, no compaction pass needed.

A revision's `_attachments` map is stored inside its JSON body as stubs
`{name: {content_type, digest, length, revpos, stub: true}}`, the way CouchDB answers
a plain `GET`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ..._json import loads
from .. import revtree
from ..errors import CouchError, RowError

if TYPE_CHECKING:
    from .tx import Tx

__all__ = ["CHUNK", "DEFAULT_TYPE", "SCHEMA", "Blob", "blob_length", "delete_one", "digest_of", "make_stubs",
           "put_one", "put_with_files", "read_blob", "read_range", "store_bytes", "store_file", "stubs_of", "sync_refs", "with_data"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS att_blobs (digest TEXT PRIMARY KEY, length INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS att_chunks (
    digest TEXT NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (digest, n)
);
CREATE TABLE IF NOT EXISTS att_refs (id TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (id, digest));
CREATE INDEX IF NOT EXISTS att_refs_by_digest ON att_refs (digest);
"""

CHUNK = 256 * 1024
"""Bytes per stored chunk: big enough that a 64 MB blob is 256 rows, small enough that
reading a range costs little beyond it."""
DEFAULT_TYPE = "application/octet-stream"

Blob = tuple[str, int]
"""`(digest, length)` of stored content."""


def digest_of(md5: Any) -> str:
    """CouchDB's digest string for a finished `hashlib.md5` object."""
    return "md5-" + base64.b64encode(md5.digest()).decode()


def _exists(conn: sqlite3.Connection, digest: str) -> bool:
    return conn.execute("SELECT 1 FROM att_blobs WHERE digest = ?", (digest,)).fetchone() is not None


def store_bytes(conn: sqlite3.Connection, data: bytes) -> Blob:
    """Store `data` (once per digest) inside the caller's transaction."""
    digest = digest_of(hashlib.md5(data))
    if not _exists(conn, digest):
        conn.execute("INSERT INTO att_blobs (digest, length) VALUES (?, ?)", (digest, len(data)))
        conn.executemany("INSERT INTO att_chunks (digest, n, data) VALUES (?, ?, ?)",
                         ((digest, n, data[at:at + CHUNK]) for n, at in enumerate(range(0, len(data), CHUNK))))
    return digest, len(data)


def store_file(conn: sqlite3.Connection, file: IO[bytes], blob: Blob) -> None:
    """Store the content of `file`, whose digest and length the caller computed while
    spooling it (`blob`), chunk by chunk inside the caller's transaction."""
    digest, length = blob
    if _exists(conn, digest):
        return
    conn.execute("INSERT INTO att_blobs (digest, length) VALUES (?, ?)", (digest, length))
    file.seek(0)
    n = 0
    while chunk := file.read(CHUNK):
        conn.execute("INSERT INTO att_chunks (digest, n, data) VALUES (?, ?, ?)", (digest, n, chunk))
        n += 1


def blob_length(conn: sqlite3.Connection, digest: str) -> int | None:
    row = conn.execute("SELECT length FROM att_blobs WHERE digest = ?", (digest,)).fetchone()
    return None if row is None else row[0]


def read_range(conn: sqlite3.Connection, digest: str, start: int, end: int) -> Iterator[bytes]:
    """Bytes `start` to `end` (exclusive) of a blob, a chunk at a time."""
    if end <= start:
        return
    first, last = start // CHUNK, (end - 1) // CHUNK
    cursor = conn.execute("SELECT n, data FROM att_chunks WHERE digest = ? AND n BETWEEN ? AND ? ORDER BY n",
                          (digest, first, last))
    for n, data in cursor:
        base = n * CHUNK
        yield bytes(data[max(start - base, 0):end - base])


def read_blob(conn: sqlite3.Connection, digest: str) -> bytes:
    """A whole blob (for inline base64 answers)."""
    return b"".join(row[0] for row in conn.execute(
        "SELECT data FROM att_chunks WHERE digest = ? ORDER BY n", (digest,)))


def stubs_of(body: bytes | None) -> dict[str, dict[str, Any]]:
    """The `_attachments` map of a stored revision body (empty when it has none)."""
    if not body or b'"_attachments"' not in body:
        return {}
    found = loads(body).get("_attachments")
    return found if isinstance(found, dict) else {}


def _stub(content_type: str, blob: Blob, revpos: int) -> dict[str, Any]:
    digest, length = blob
    return {"content_type": content_type, "revpos": revpos, "digest": digest, "length": length, "stub": True}


def make_stubs(conn: sqlite3.Connection, given: Any, *, revpos: int, parents: Iterable[dict[str, Any]],
               blobs: dict[str, Blob], replicated: bool) -> tuple[dict[str, dict[str, Any]], list[bytes]]:
    """The stored `_attachments` map of a new revision, from the one a client sent, and
    the decoded inline contents, which the caller stores (`store_bytes`) once the
    revision is sure to be written (a conflict must not leave unreferenced blobs).

    Args:
        conn: the writer connection, inside the write transaction.
        given: the document's `_attachments` member.
        revpos: the new revision's generation (the `revpos` of new content).
        parents: the attachment maps stubs may refer to (the edited revision's; with
            `replicated`, every stored leaf's).
        blobs: content already stored for entries marked `"follows": true` (standalone
            and multipart uploads), by name.
        replicated: a `new_edits=false` write: inline entries keep the `revpos` they
            carry, and a stub may also name stored content by its digest.

    Raises:
        RowError: `bad_request` for a malformed entry or invalid base64, `missing_stub`
            for a stub naming an attachment the server does not have.
    """
    if not isinstance(given, dict):
        raise RowError("bad_request", "_attachments must be a JSON object")
    parents = list(parents)
    out: dict[str, dict[str, Any]] = {}
    inline: list[bytes] = []
    for name, entry in given.items():
        if not name or name.startswith("_"):
            raise RowError("bad_request", f"Attachment name '{name}' must not be empty or start with '_'")
        if not isinstance(entry, dict):
            raise RowError("bad_request", f"Attachment {name} must be a JSON object")
        content_type = entry.get("content_type") or DEFAULT_TYPE
        if not isinstance(content_type, str):
            raise RowError("bad_request", f"content_type of attachment {name} must be a string")
        own_revpos = entry.get("revpos")
        kept_revpos = own_revpos if replicated and isinstance(own_revpos, int) and own_revpos > 0 else revpos
        if entry.get("stub") is True:
            out[name] = _resolve_stub(conn, name, entry, parents, replicated)
        elif "data" in entry:
            data = entry["data"]
            try:
                raw = base64.b64decode(data, validate=True) if isinstance(data, str) else None
            except (binascii.Error, ValueError):
                raw = None
            if raw is None:
                raise RowError("bad_request", f"Invalid attachment data for {name}")
            inline.append(raw)
            out[name] = _stub(content_type, (digest_of(hashlib.md5(raw)), len(raw)), kept_revpos)
        elif entry.get("follows") is True and name in blobs:
            out[name] = _stub(content_type, blobs[name], kept_revpos)
        else:
            raise RowError("bad_request", f"Attachment {name} has neither data nor a stub")
    return out, inline


def _resolve_stub(conn: sqlite3.Connection, name: str, entry: dict[str, Any], parents: list[dict[str, Any]],
                  replicated: bool) -> dict[str, Any]:
    digest = entry.get("digest")
    for stubs in parents:
        stored = stubs.get(name)
        if isinstance(stored, dict) and (digest is None or stored.get("digest") == digest):
            return stored
    # The replicator sends a stub for content the target had at an older revision; that
    # revision may be gone here while its content is still stored for another leaf.
    if replicated and isinstance(digest, str):
        length = blob_length(conn, digest)
        if length is not None:
            revpos = entry.get("revpos")
            return _stub(entry.get("content_type") or DEFAULT_TYPE, (digest, length),
                         revpos if isinstance(revpos, int) else 1)
    raise RowError("missing_stub", f"Invalid attachment stub in {name}: the server does not have it")


def sync_refs(conn: sqlite3.Connection, doc_id: str, bodies: Iterable[bytes | None]) -> None:
    """Make `doc_id`'s references the digests its stored leaves (`bodies`) name, and
    delete the blobs nothing references any more."""
    wanted = {stub["digest"] for body in bodies for stub in stubs_of(body).values()
              if isinstance(stub, dict) and isinstance(stub.get("digest"), str)}
    held = {row[0] for row in conn.execute("SELECT digest FROM att_refs WHERE id = ?", (doc_id,))}
    if wanted == held:
        return
    conn.executemany("INSERT INTO att_refs (id, digest) VALUES (?, ?)", ((doc_id, d) for d in wanted - held))
    for digest in held - wanted:
        conn.execute("DELETE FROM att_refs WHERE id = ? AND digest = ?", (doc_id, digest))
        if conn.execute("SELECT 1 FROM att_refs WHERE digest = ? LIMIT 1", (digest,)).fetchone() is None:
            conn.execute("DELETE FROM att_chunks WHERE digest = ?", (digest,))
            conn.execute("DELETE FROM att_blobs WHERE digest = ?", (digest,))


# -- reading for answers -----------------------------------------------------------------


def with_data(doc: dict[str, Any], conn: sqlite3.Connection, *, since: int = 0) -> None:
    """Turn the stubs of `doc` whose `revpos` is past `since` into inline base64 `data`
    (`attachments=true`; `since`: the newest generation the client has, `atts_since`)."""
    for stub in (doc.get("_attachments") or {}).values():
        if isinstance(stub, dict) and stub.get("stub") and stub.get("revpos", 0) > since:
            del stub["stub"]
            stub["data"] = base64.b64encode(read_blob(conn, stub["digest"])).decode()


# -- standalone writes (``PUT``/``DELETE /db/doc/name``), on the writer thread --------------


def _leaf_doc(tx: Tx, doc_id: str, rev: str | None) -> dict[str, Any]:
    """The stored leaf `rev` of `doc_id` as a dict to edit (`{"_id": ...}` when `rev` is
    `None`: a new document, or a new life of a deleted one).

    Raises:
        CouchError: 409 `not_found`/`missing_rev` when the document's tree does not hold
            `rev` (CouchDB opens the rev first and fails so), 400 for a malformed rev.
        RowError: `conflict` when `rev` is in the tree but not a leaf.
    """
    if rev is None:
        return {"_id": doc_id}
    row = tx.conn.execute("SELECT CAST(body AS BLOB) FROM docs WHERE id = ? AND rev = ? UNION ALL "
                          "SELECT CAST(body AS BLOB) FROM conflicts WHERE id = ? AND rev = ?",
                          (doc_id, rev, doc_id, rev)).fetchone()
    if row is None:
        if revtree.missing_revs(tx.db.leaves(doc_id, tx.conn), [rev])[0]:
            raise CouchError(409, "not_found", "missing_rev")
        raise RowError("conflict", "Document update conflict.")
    doc = loads(row[0])
    doc.pop("_deleted", None)
    return doc


def put_with_files(tx: Tx, doc: dict[str, Any], files: dict[str, tuple[IO[bytes], Blob]], *,
                   new_edits: bool = True) -> dict[str, Any] | None:
    """Write `doc`, whose `"follows": true` attachments have their content spooled in
    `files` (by name), and store that content once the revision is written."""
    result = tx.put_doc(doc, new_edits=new_edits, blobs={name: blob for name, (_, blob) in files.items()})
    if result is not None:
        for file, blob in files.values():
            store_file(tx.conn, file, blob)
    return result


def put_one(tx: Tx, doc_id: str, name: str, rev: str | None, content_type: str, file: IO[bytes],
            blob: Blob) -> dict[str, Any]:
    """Add or replace attachment `name` of revision `rev` with the content spooled in `file`."""
    doc = _leaf_doc(tx, doc_id, rev)
    doc.setdefault("_attachments", {})[name] = {"content_type": content_type, "follows": True}
    result = put_with_files(tx, doc, {name: (file, blob)})
    assert result is not None  # a new edit always makes a revision
    return result


def delete_one(tx: Tx, doc_id: str, name: str, rev: str) -> dict[str, Any]:
    """Remove attachment `name` from revision `rev`."""
    doc = _leaf_doc(tx, doc_id, rev)
    if name not in (doc.get("_attachments") or {}):
        raise RowError("not_found", "Document is missing attachment")
    del doc["_attachments"][name]
    return tx.put_doc(doc)
