"""Document handlers: one document (read, write, delete) and the bulk endpoints."""

from __future__ import annotations

import contextlib
import tempfile
from typing import IO, Any

from aiohttp import web

from ..._json import dumps, loads
from .. import limits, security
from ..errors import CouchError, bad_request, not_found
from ..http import allow, json_response, raw_json_response, read_json, rev_header
from ..params import bool_param
from ..partitions import check_partitioned_id
from ..revtree import Leaf
from ..state import ServerState
from ..storage import Database, RowError, Tx, check_doc_id
from ..storage import attachments as stored_attachments
from . import attachments
from .revisions import (
    Found,
    RevisionHandlers,
    revision_docs,
    revisions_member,
    revs_info_member,
    with_members,
)

__all__ = ["DocumentHandlers"]


class DocumentHandlers:
    """`/{db}/{docid}`, `_bulk_docs` and `_bulk_get`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.revisions = RevisionHandlers(state)

    async def document(self, request: web.Request, db: Database, doc_id: str) -> web.Response:
        method = request.method
        if method in ("GET", "HEAD"):
            return await self._get_doc(request, db, doc_id)
        if method == "PUT":
            try:
                check_doc_id(doc_id)
            except RowError as exc:
                raise CouchError(400, exc.error, exc.reason) from None
            if request.content_type == "multipart/related":
                return await self._put_multipart(request, db, doc_id)
            doc = await read_json(request, strict_type=False)
            rev = request.query.get("rev") or rev_header(request)
            if rev is not None:
                if "_rev" in doc and doc["_rev"] != rev:
                    raise bad_request("Document rev from request body and query string have different values")
                doc["_rev"] = rev
            doc["_id"] = doc_id
            new_edits = bool_param(request.query, "new_edits", True)
            result = await db.write(lambda tx: tx.put_doc(doc, new_edits=new_edits))
            if result is None:
                result = {"ok": True, "id": doc_id, "rev": doc.get("_rev")}
            return json_response(result, 201, {"ETag": f'"{result["rev"]}"'})
        if method == "DELETE":
            rev = request.query.get("rev") or rev_header(request)
            if doc_id.startswith("_local/"):
                tomb = {"_id": doc_id, "_rev": rev, "_deleted": True}
            else:
                if db.get(doc_id) is None:
                    raise not_found("missing")
                if rev is None:
                    raise CouchError(409, "conflict", "Document update conflict.")
                tomb = {"_id": doc_id, "_rev": rev, "_deleted": True}
            result = await db.write(lambda tx: tx.put_doc(tomb))
            return json_response(result, 200, {"ETag": f'"{result["rev"]}"'})
        raise CouchError(405, "method_not_allowed", "Only DELETE,GET,HEAD,PUT allowed")

    async def _put_multipart(self, request: web.Request, db: Database, doc_id: str) -> web.Response:
        """`PUT /db/doc` with `multipart/related`: the JSON, then attachment contents."""
        config = self.state.config
        with contextlib.ExitStack() as files:
            def spool() -> IO[bytes]:
                return files.enter_context(tempfile.TemporaryFile(dir=db.storage.data_dir, prefix="upload-"))

            doc, contents = await attachments.read_multipart(request, spool, config.max_body,
                                                             config.max_attachment_size, config.max_json_depth)
            doc["_id"] = doc_id
            rev = request.query.get("rev") or rev_header(request)
            if rev is not None:
                doc.setdefault("_rev", rev)
            new_edits = bool_param(request.query, "new_edits", True)
            result = await db.write(
                lambda tx: stored_attachments.put_with_files(tx, doc, contents, new_edits=new_edits))
        if result is None:
            result = {"ok": True, "id": doc_id, "rev": doc.get("_rev")}
        return json_response(result, 201, {"ETag": f'"{result["rev"]}"'})

    async def _get_doc(self, request: web.Request, db: Database, doc_id: str) -> web.Response:
        if doc_id.startswith("_local/"):
            body = db.get_local(doc_id)
            if body is None:
                raise not_found("missing")
            return raw_json_response(body)
        if "open_revs" in request.query:
            return await self.revisions.open_revs(request, db, doc_id)
        found = db.get(doc_id)
        if found is None:
            raise not_found("missing")
        rev, deleted, body, revs, conflicted = found
        wanted = request.query.get("rev")
        if wanted is not None and wanted != rev:
            leaf = db.get_leaf(doc_id, wanted)
            if leaf is None:
                raise not_found("missing")
            deleted, body, revs = leaf
            rev = wanted
        elif deleted and wanted is None:  # a tombstone is served when asked for by rev
            raise not_found("deleted")
        served = Leaf(rev, deleted, revs, None)
        extra: dict[str, Any] = {}
        if bool_param(request.query, "revs"):
            extra["_revisions"] = revisions_member(served)
        if bool_param(request.query, "revs_info"):
            extra["_revs_info"] = revs_info_member(served)
        if conflicted and (bool_param(request.query, "conflicts") or bool_param(request.query, "meta")):
            live = db.conflicts(doc_id)
            if live:
                extra["_conflicts"] = live
        if conflicted and (bool_param(request.query, "deleted_conflicts") or bool_param(request.query, "meta")):
            dead = db.conflicts(doc_id, deleted=True)
            if dead:
                extra["_deleted_conflicts"] = dead
        body = with_members(body, extra)
        if attachments.wants_data(request.query):
            return await attachments.document_with_data(self.state, request, db, body, rev, revs)
        return raw_json_response(body, headers={"ETag": f'"{rev}"'})

    async def bulk_docs(self, request: web.Request, db: Database) -> web.Response:
        allow(request.method, "POST")
        body = await read_json(request)
        docs = body.get("docs")
        if not isinstance(docs, list):
            raise bad_request("POST body must include `docs` parameter.")
        new_edits = body.get("new_edits", True)
        if not isinstance(new_edits, bool):
            raise bad_request("`new_edits` parameter must be a boolean.")
        design_allowed = security.is_db_admin(request, db)
        if db.partitioned:
            _check_partitioned_ids(docs)

        def op(tx: Tx) -> list[dict[str, Any]]:
            results = []
            for doc in docs:
                if not design_allowed and security.is_design(doc):
                    results.append(security.design_refused(doc))
                    continue
                try:
                    result = tx.put_doc(doc, new_edits=new_edits)
                except RowError as exc:
                    doc_id = doc.get("_id") if isinstance(doc, dict) else None
                    results.append({"id": doc_id, "error": exc.error, "reason": exc.reason})
                    continue
                if result is not None and new_edits:
                    results.append(result)
            return results

        return json_response(await db.write(op), 201)

    async def bulk_get(self, request: web.Request, db: Database) -> web.Response:
        allow(request.method, "POST")
        body = await read_json(request)
        items = body.get("docs")
        if not isinstance(items, list):
            raise bad_request("Missing JSON list of 'docs'.")
        revs = bool_param(request.query, "revs")
        inline = bool_param(request.query, "attachments")
        latest = bool_param(request.query, "latest")

        def lookup() -> bytes:
            conn = db.query_conn()
            results = []
            for i, item in enumerate(items):
                if not i & 255:
                    limits.check_budget()
                doc_id = item.get("id") if isinstance(item, dict) else None
                if not isinstance(doc_id, str):
                    results.append({"id": doc_id, "docs": [{"error": {"id": doc_id, "rev": None,
                                    "error": "illegal_docid", "reason": "missing document id"}}]})
                    continue
                if "atts_since" in item and (bad := attachments.bad_atts_since(item["atts_since"])) is not None:
                    results.append({"id": doc_id, "docs": [{"error": {"id": doc_id, "rev": bad[0],
                                    "error": "bad_request", "reason": bad[1]}}]})
                    continue
                rev = item.get("rev")
                leaves = db.leaves(doc_id, conn)
                found: list[Found]
                if rev is None and leaves:  # CouchDB: no rev asks for every leaf, conflicts included
                    found = revision_docs(leaves, "all", latest=latest, revs=revs)
                elif isinstance(rev, str):
                    found = revision_docs(leaves, [rev], latest=latest, revs=revs)
                else:
                    found = [(rev, None)]
                histories = {leaf.rev: leaf.revs for leaf in leaves}
                docs: list[dict[str, Any]] = []
                for found_rev, found_body in found:
                    if found_body is None:
                        docs.append({"error": {"id": doc_id, "rev": found_rev or "undefined",
                                               "error": "not_found", "reason": "missing"}})
                        continue
                    doc = loads(found_body)
                    if inline or "atts_since" in item:
                        stored_attachments.with_data(doc, conn, since=attachments.known_generation(
                            item.get("atts_since"), found_rev, histories[found_rev]))
                    docs.append({"ok": doc})
                results.append({"id": doc_id, "docs": docs})
            return dumps({"results": results})

        return raw_json_response(await self.state.off_loop(lookup))


def _check_partitioned_ids(docs: list[Any]) -> None:
    """CouchDB refuses a whole `_bulk_docs` request to a partitioned database when one
    document's id has no partition (one without `_id` would get a server-made id, which
    has none), rather than answering it in that document's row."""
    for doc in docs:
        doc_id = doc.get("_id", "") if isinstance(doc, dict) else None
        if not isinstance(doc_id, str):
            continue  # answered in its row, as in any database
        try:
            check_partitioned_id(doc_id)
        except RowError as exc:
            raise CouchError(400, exc.error, exc.reason) from None
