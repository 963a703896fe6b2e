"""Writing documents: one write transaction as the writer thread sees it."""

from __future__ import annotations

import sqlite3
import uuid
from typing import TYPE_CHECKING, Any, Literal, overload

from ..._json import dumps, loads
from .. import revtree
from ..errors import RowError
from ..indexes import ddoc_partitioned
from ..partitions import check_partitioned_id
from . import attachments, find
from .ring import Row

if TYPE_CHECKING:
    from .database import Database

__all__ = ["Tx", "check_doc_id", "split_fields"]

_IGNORED_SPECIALS = frozenset({"_conflicts", "_deleted_conflicts", "_local_seq", "_revs_info"})


def check_doc_id(doc_id: Any) -> str:
    """Validate a document id the way CouchDB does.

    Raises:
        RowError: `illegal_docid`.
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise RowError("illegal_docid", "Document id must be a non-empty string")
    if doc_id.startswith("_") and not doc_id.startswith(("_design/", "_local/")):
        raise RowError("illegal_docid", "Only reserved document ids may start with underscore.")
    if doc_id in ("_design/", "_local/"):
        raise RowError("illegal_docid", "Document id must not be empty")
    return doc_id


def split_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The user fields of a document; rejects unknown `_`-prefixed members
    (`_attachments` is read by `Tx.put_doc`)."""
    fields = {}
    for key, value in doc.items():
        if key[:1] != "_":
            fields[key] = value
        elif key not in ("_id", "_rev", "_deleted", "_revisions", "_attachments") and key not in _IGNORED_SPECIALS:
            raise RowError("doc_validation", f"Bad special document member: {key}")
    return fields


def body_bytes(doc_id: str, rev: str, fields: bytes, deleted: bool) -> bytes:
    """The stored JSON of a revision: `_id`, `_rev`, its fields, `_deleted`."""
    head = b'{"_id":' + dumps(doc_id) + b',"_rev":"' + rev.encode() + b'"'
    if len(fields) > 2:
        head += b"," + fields[1:-1]
    return head + (b',"_deleted":true}' if deleted else b"}")


def _kept_body(leaf: revtree.Leaf) -> bytes:
    """The body of a leaf that stays stored. put_doc reads the current winner's body only
    when it may stay a leaf (new_edits=false, or a conflicted document); otherwise that
    winner is the parent of the new revision and is replaced."""
    if leaf.body is None:
        raise RuntimeError(f"internal error: the body of {leaf.rev} was not read")
    return leaf.body


class Tx:
    """The writer thread's view of one transaction (only used on the writer thread)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn: sqlite3.Connection = db.writer
        self.rows: list[Row] = []
        self.doc_delta = 0
        self.del_delta = 0
        self.design_changed = False

    @overload
    def put_doc(self, doc: Any, *, new_edits: Literal[True] = ...,
                blobs: dict[str, attachments.Blob] | None = ...) -> dict[str, Any]: ...

    @overload
    def put_doc(self, doc: Any, *, new_edits: bool,
                blobs: dict[str, attachments.Blob] | None = ...) -> dict[str, Any] | None: ...

    def put_doc(self, doc: Any, *, new_edits: bool = True,
                blobs: dict[str, attachments.Blob] | None = None) -> dict[str, Any] | None:
        """Write one document; returns its result row (`None`: already known, new_edits=false).

        `blobs`: content stored already for its `"follows": true` attachments, by name.
        """
        if not isinstance(doc, dict):
            raise RowError("bad_request", "Document must be a JSON object")
        doc_id = doc.get("_id")
        if doc_id is None and new_edits:
            doc_id = uuid.uuid4().hex
        doc_id = check_doc_id(doc_id)
        if self.db.partitioned:
            check_partitioned_id(doc_id)
        if doc_id.startswith("_local/"):
            return self.put_local(doc_id, doc)
        if doc_id.startswith("_design/") and not self.db.partitioned and ddoc_partitioned(doc):
            raise RowError("invalid_design_doc", "partitioned option cannot be true in a non-partitioned database.")
        fields = split_fields(doc)
        deleted = doc.get("_deleted") is True
        # A deletion drops the attachments, as CouchDB's DELETE does.
        atts = doc.get("_attachments") if not deleted else None
        cur, leaves = self._leaves(doc_id, with_bodies=not new_edits or atts is not None)
        given = doc.get("_rev")
        inline: list[bytes] = []
        if new_edits:
            if atts is not None:
                parent = given if given is not None else None if cur is None else cur[0]
                edited = leaves.get(given) if isinstance(given, str) else None
                inline = self._attach(fields, atts, revtree.rev_gen(parent) + 1 if parent else 1,
                                      [attachments.stubs_of(edited.body)] if edited else [], blobs, False)
            fields_json = dumps(fields)
            rev, history = revtree.apply_edit(leaves, given, None if cur is None else cur[0], deleted, fields_json)
        else:
            known = [attachments.stubs_of(leaf.body) for leaf in leaves.values()] if atts is not None else []
            found = revtree.merge_path(leaves, given, doc.get("_revisions"))
            if found is None:
                return None
            rev, history = str(given), found  # merge_path checked it is a rev string
            if atts is not None:
                inline = self._attach(fields, atts, revtree.rev_gen(rev), known, blobs, True)
            fields_json = dumps(fields)
        leaves[rev] = revtree.Leaf(rev, deleted, history, body_bytes(doc_id, rev, fields_json, deleted))
        winner = revtree.winner(leaves.values())
        was_conflicted = cur is not None and bool(cur[3])
        self._store(doc_id, leaves, winner, was_conflicted)
        for content in inline:
            attachments.store_bytes(self.conn, content)
        if cur is not None or atts is not None:  # a new document without attachments references none
            attachments.sync_refs(self.conn, doc_id, (leaf.body for leaf in leaves.values()))
        was_live = cur is not None and not cur[1]
        was_deleted = cur is not None and bool(cur[1])
        self.doc_delta += (not winner.deleted) - was_live
        self.del_delta += winner.deleted - was_deleted
        if doc_id.startswith("_design/"):
            self.design_changed = True
        return {"ok": True, "id": doc_id, "rev": rev}

    def _attach(self, fields: dict[str, Any], atts: Any, revpos: int, parents: list[dict[str, Any]],
                blobs: dict[str, attachments.Blob] | None, replicated: bool) -> list[bytes]:
        """Put the stored `_attachments` map into `fields` (none when it is empty); returns
        the inline contents to store once the revision is written (see `attachments.make_stubs`)."""
        stubs, inline = attachments.make_stubs(self.conn, atts, revpos=revpos, parents=parents,
                                               blobs=blobs or {}, replicated=replicated)
        if stubs:
            fields["_attachments"] = stubs
        return inline

    def _leaves(self, doc_id: str, *, with_bodies: bool) -> tuple[Any, dict[str, revtree.Leaf]]:
        """The document's stored row `(rev, deleted, revs, conflicted)` (or `None`) and
        its leaves by rev. The winner's body is read only when it may stay a leaf."""
        conn = self.conn
        cur = conn.execute(
            "SELECT rev, deleted, revs, conflicted, CASE WHEN ? THEN body END FROM docs WHERE id = ?",
            (with_bodies, doc_id),
        ).fetchone()
        leaves: dict[str, revtree.Leaf] = {}
        if cur is not None:
            body = cur[4].encode() if cur[4] is not None else None
            leaves[cur[0]] = revtree.Leaf(cur[0], bool(cur[1]), loads(cur[2]), body)
            if cur[3]:
                if body is None:
                    leaves[cur[0]].body = conn.execute(
                        "SELECT CAST(body AS BLOB) FROM docs WHERE id = ?", (doc_id,)
                    ).fetchone()[0]
                for rev, ldel, revs, lbody in conn.execute(
                    "SELECT rev, deleted, revs, CAST(body AS BLOB) FROM conflicts WHERE id = ?", (doc_id,)
                ):
                    leaves[rev] = revtree.Leaf(rev, bool(ldel), loads(revs), lbody)
        return cur, leaves

    def _store(self, doc_id: str, leaves: dict[str, revtree.Leaf], winner: revtree.Leaf,
               was_conflicted: bool) -> None:
        """Write the document's row (its winner, at a new seq) and its losing leaves."""
        conn = self.conn
        winner_body = _kept_body(winner)
        seq = self.db.next_seq()
        conflicted = len(leaves) > 1
        conn.execute(
            "INSERT INTO docs (id, seq, rev, deleted, design, conflicted, revs, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, "
            "rev = excluded.rev, deleted = excluded.deleted, conflicted = excluded.conflicted, "
            "revs = excluded.revs, body = excluded.body",
            (doc_id, seq, winner.rev, winner.deleted, doc_id.startswith("_design/"), conflicted,
             dumps(winner.revs).decode(), winner_body.decode()),
        )
        if conflicted or was_conflicted:
            conn.execute("DELETE FROM conflicts WHERE id = ?", (doc_id,))
            conn.executemany(
                "INSERT INTO conflicts (id, rev, deleted, revs, body) VALUES (?, ?, ?, ?, ?)",
                [(doc_id, leaf.rev, leaf.deleted, dumps(leaf.revs).decode(), _kept_body(leaf).decode())
                 for leaf in leaves.values() if leaf is not winner],
            )
        self.rows.append((seq, doc_id, winner.rev, winner.deleted, winner_body))

    def put_local(self, doc_id: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Write or delete a `_local/` document (revisions `0-N`, checked like CouchDB)."""
        row = self.conn.execute("SELECT rev FROM local WHERE id = ?", (doc_id,)).fetchone()
        given = doc.get("_rev")
        if (row[0] if row else None) != given:
            raise RowError("conflict", "Document update conflict.")
        if doc.get("_deleted") is True:
            if row is None:
                raise RowError("not_found", "missing")
            self.conn.execute("DELETE FROM local WHERE id = ?", (doc_id,))
            return {"ok": True, "id": doc_id, "rev": "0-0"}
        fields = {k: v for k, v in doc.items() if k not in ("_id", "_rev", "_deleted")}
        rev = f"0-{int(row[0].partition('-')[2]) + 1 if row else 1}"
        body = body_bytes(doc_id, rev, dumps(fields), False).decode()
        self.conn.execute(
            "INSERT INTO local (id, rev, body) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET rev = excluded.rev, body = excluded.body",
            (doc_id, rev, body),
        )
        return {"ok": True, "id": doc_id, "rev": rev}

    def set_setting(self, name: str, value: Any) -> None:
        """Store the database setting `name` (a JSON value)."""
        self.conn.execute("INSERT INTO settings (name, value) VALUES (?, ?) "
                          "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, dumps(value).decode()))

    def get_live(self, doc_id: str) -> dict[str, Any] | None:
        """Document `doc_id` as this transaction sees it, or `None` when missing or deleted."""
        row = self.conn.execute("SELECT deleted, body FROM docs WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None or row[0] else loads(row[1])

    def sync_indexes(self) -> None:
        """Make the SQLite expression indexes match the Mango indexes in design docs."""
        find.sync_indexes(self.conn, self.db.partitioned)
