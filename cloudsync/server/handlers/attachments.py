"""Attachment handlers: ``PUT``/``GET``/``HEAD``/``DELETE /{db}/{docid}/{name}``, and the
inline base64 content of ``attachments=true`` / ``atts_since`` reads."""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..._json import dumps, loads
from .. import changes
from ..errors import CouchError, bad_request, not_found
from ..http import json_response, rev_header, spool_body
from ..params import bool_param, json_param
from ..state import ServerState
from ..storage import Database, RowError, check_doc_id
from ..storage import attachments as stored

__all__ = ["AttachmentHandlers", "known_generation", "wants_data", "with_data"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class AttachmentHandlers:
    """One attachment of one document."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def attachment(self, request: web.Request, db: Database, doc_id: str, name: str) -> web.StreamResponse:
        if doc_id.startswith("_local/"):
            raise bad_request("_local documents do not have attachments")
        if not name or name.startswith("_"):
            raise bad_request("Attachment name must not be empty or start with '_'")
        method = request.method
        if method in ("GET", "HEAD"):
            return await self._get(request, db, doc_id, name)
        if method == "PUT":
            return await self._put(request, db, doc_id, name)
        if method == "DELETE":
            return await self._delete(request, db, doc_id, name)
        raise CouchError(405, "method_not_allowed", "Only DELETE,GET,HEAD,PUT allowed")

    async def _put(self, request: web.Request, db: Database, doc_id: str, name: str) -> web.Response:
        try:
            check_doc_id(doc_id)
        except RowError as exc:
            raise CouchError(400, exc.error, exc.reason) from None
        rev = request.query.get("rev") or rev_header(request)
        content_type = request.headers.get("Content-Type") or stored.DEFAULT_TYPE
        with tempfile.TemporaryFile(dir=db.storage.data_dir, prefix="upload-") as spool:
            blob = await spool_body(request, spool, self.state.config.max_attachment_size)
            result = await db.write(lambda tx: stored.put_one(tx, doc_id, name, rev, content_type, spool, blob))
        return json_response(result, 201, {"ETag": f'"{result["rev"]}"', "Location": request.path})

    async def _delete(self, request: web.Request, db: Database, doc_id: str, name: str) -> web.Response:
        rev = request.query.get("rev") or rev_header(request)
        if db.get(doc_id) is None:
            raise not_found("missing")
        if rev is None:
            raise CouchError(409, "conflict", "Document update conflict.")
        result = await db.write(lambda tx: stored.delete_one(tx, doc_id, name, rev))
        return json_response(result, 200, {"ETag": f'"{result["rev"]}"'})

    async def _get(self, request: web.Request, db: Database, doc_id: str, name: str) -> web.StreamResponse:
        stub = await self.state.off_loop(lambda: _find_stub(db, doc_id, request.query.get("rev"), name))
        digest, length = stub["digest"], stub["length"]
        etag = f'"{digest}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "must-revalidate",
                   "Content-Type": stub.get("content_type") or stored.DEFAULT_TYPE}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        start, end, status = 0, length, 200
        wanted = _byte_range(request.headers.get("Range"), length)
        if wanted is not None:
            start, end = wanted
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{length}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        def read(at: int, upto: int) -> bytes:
            return b"".join(stored.read_range(db.query_conn(), digest, at, upto))

        at = start
        while at < end:
            upto = min(end, (at // stored.CHUNK + 1) * stored.CHUNK)
            piece = await self.state.off_loop(functools.partial(read, at, upto))
            if len(piece) != upto - at:
                # The content was deleted (its document changed) while it was being sent:
                # end the answer short, which the client sees as a broken transfer.
                changes.reset_connection(request)
                return response
            await response.write(piece)
            at = upto
        await response.write_eof()
        return response


def _find_stub(db: Database, doc_id: str, rev: str | None, name: str) -> dict[str, Any]:
    """The stored stub of attachment `name` of the winning revision (or of leaf `rev`)."""
    conn = db.query_conn()
    found = db.get(doc_id, conn)
    if found is None:
        raise not_found("missing")
    cur_rev, deleted, body, _, _ = found
    if rev is not None and rev != cur_rev:
        leaf = db.get_leaf(doc_id, rev, conn)
        if leaf is None:
            raise not_found("missing")
        deleted, body, _ = leaf
    elif deleted and rev is None:
        raise not_found("deleted")
    stub = stored.stubs_of(body).get(name)
    if not isinstance(stub, dict):
        raise not_found("Document is missing attachment")
    return stub


def _byte_range(header: str | None, length: int) -> tuple[int, int] | None:
    """``(start, end)`` of a single ``bytes=`` range (``None``: the whole content; several
    ranges are answered whole too, as RFC 9110 allows); 416 when it is unsatisfiable."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        start, end = max(length - int(last), 0), length
    else:
        start, end = int(first), length if not last else min(int(last) + 1, length)
    if start >= length or start >= end:
        raise CouchError(416, "requested_range_not_satisfiable", f"Range not satisfiable: {header}")
    return start, end


# -- inline content in document reads ---------------------------------------------------


def wants_data(query: Mapping[str, Any]) -> bool:
    """Whether a read asks for attachment content inline (``attachments=true``, ``atts_since``)."""
    return bool_param(query, "attachments") or "atts_since" in query


def known_generation(atts_since: Any, rev: str, history: list[str]) -> int:
    """The newest generation among `atts_since` that is an ancestor of `rev` (whose
    branch history is `history`): attachments up to it are sent as stubs."""
    if not isinstance(atts_since, list):
        return 0
    gen = int(rev.partition("-")[0])
    ancestors = {f"{gen - i}-{h}" for i, h in enumerate(history)}
    known = [int(r.partition("-")[0]) for r in atts_since if isinstance(r, str) and r in ancestors]
    return max(known, default=0)


def with_data(db: Database, body: bytes, rev: str, history: list[str], query: Mapping[str, Any],
              depth: int) -> bytes:
    """`body` (a stored revision) with its attachment content inline as base64, past
    ``atts_since`` when given (on a query thread).

    ``att_encoding_info=true`` adds nothing: content is stored as sent, never encoded.
    """
    if b'"_attachments"' not in body:
        return body
    since = known_generation(json_param(query, "atts_since", depth=depth), rev, history)
    doc = loads(body)
    stored.with_data(doc, db.query_conn(), since=since)
    return dumps(doc)
