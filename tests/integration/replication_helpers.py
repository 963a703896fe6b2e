"""What the replication tests share: a source with every kind of history, and each side's
state read document by document."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import requests

import cloudsync


def blob(seed: str, size: int) -> bytes:
    """`size` random-looking bytes, the same for the same seed."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


def inline(data: bytes, content_type: str = "application/octet-stream") -> dict[str, Any]:
    return {"content_type": content_type, "data": base64.b64encode(data).decode()}


def fill(db: cloudsync.Database, prefix: str = "", docs: int = 120) -> None:
    """Documents, a third of them updated and a sixth deleted; two conflicts (made with
    `new_edits=false`, one branch deleted, one branch with an attachment of its own);
    attachments added, replaced, kept across a body edit, binary; a design document."""
    written = db.bulk([{"_id": f"{prefix}doc-{i:04}", "n": i, "tags": [i % 7]} for i in range(docs)])
    updated = db.bulk([{"_id": r.id, "_rev": r.rev, "n": i * 10, "updated": True}
                       for i, r in enumerate(written) if i % 3 == 0])
    db.bulk([{"_id": r.id, "_rev": r.rev, "_deleted": True} for j, r in enumerate(updated) if j % 2 == 0]).run()
    root = "a" * 32
    db.bulk([
        {"_id": f"{prefix}conflicted", "_rev": "2-" + "b" * 32, "side": "b",
         "_revisions": {"start": 2, "ids": ["b" * 32, root]},
         "_attachments": {"side.txt": {**inline(b"the losing branch", "text/plain"), "revpos": 2}}},
        {"_id": f"{prefix}conflicted", "_rev": "2-" + "c" * 32, "side": "c",
         "_revisions": {"start": 2, "ids": ["c" * 32, root]}},
        {"_id": f"{prefix}half-deleted", "_rev": "3-" + "d" * 32, "_deleted": True,
         "_revisions": {"start": 3, "ids": ["d" * 32, "e" * 32, root]}},
        {"_id": f"{prefix}half-deleted", "_rev": "2-" + "f" * 32, "alive": True,
         "_revisions": {"start": 2, "ids": ["f" * 32, root]}},
    ], new_edits=False).run()
    rev = db.put_attachment(f"{prefix}att", "a.txt", b"alpha", "text/plain")
    rev = db.put_attachment(f"{prefix}att", "big.bin", blob(prefix, 300_007), rev=rev)
    doc = db.get(f"{prefix}att")
    db.update({**doc, "edited": True})  # the attachments go along as stubs
    replaced = db.create({"_id": f"{prefix}att-replaced", "_attachments": {"v.txt": inline(b"version 1", "text/plain")}})
    db.update({**replaced, "_attachments": {"v.txt": inline(b"version 2, longer", "text/plain")}})
    db.create({"_id": f"_design/{prefix}views", "views": {"by_n": {"map": "function (doc) { emit(doc.n); }"}}})


def ids(db: cloudsync.Database) -> dict[str, tuple[str, bool]]:
    """Every document's id (deleted ones too): its winning rev and whether it is deleted."""
    answer = requests.get(f"{db.url}/_changes", params={"style": "main_only"}, timeout=30).json()
    return {row["id"]: (row["changes"][0]["rev"], bool(row.get("deleted"))) for row in answer["results"]}


def leaf_revs(db: cloudsync.Database) -> dict[str, list[str]]:
    """Every document's leaf revs, from one request (cheap enough to poll)."""
    answer = requests.get(f"{db.url}/_changes", params={"style": "all_docs"}, timeout=30).json()
    return {row["id"]: sorted(c["rev"] for c in row["changes"]) for row in answer["results"]}


def state(db: cloudsync.Database, *, revpos: bool = True) -> dict[str, Any]:
    """Each document: its winner, and every leaf (rev, deleted, body, history, attachments
    with their content). `revpos=False` leaves out each attachment's `revpos`:
    pouchdb-server sets it to the revision's generation for content it is sent, even with
    `new_edits=false` (PouchDB's own replicator gets the same)."""
    out: dict[str, Any] = {}
    for doc_id, (winner, deleted) in sorted(ids(db).items()):
        leaves = []
        for entry in db.open_revs(doc_id, "all", history=True, attachments=True):
            doc = entry["ok"]
            atts = {name: (a["content_type"], a["digest"], a.get("revpos") if revpos else None, a["data"])
                    for name, a in (doc.get("_attachments") or {}).items()}
            body = {k: v for k, v in doc.items() if not k.startswith("_")}
            leaves.append((doc["_rev"], bool(doc.get("_deleted")), body, doc["_revisions"], atts))
        out[doc_id] = {"winner": winner, "deleted": deleted, "leaves": sorted(leaves, key=lambda leaf: leaf[0])}
    return out
