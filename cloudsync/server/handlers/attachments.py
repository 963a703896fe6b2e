"""Attachment handlers: `PUT`/`GET`/`HEAD`/`DELETE /{db}/{docid}/{name}`, and the
inline base64 content of `attachments=true` / `atts_since` reads."""

from __future__ import annotations

import functools
import hashlib
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import IO, Any

from aiohttp import BodyPartReader, web

from ..._json import dumps, loads
from .. import changes, revtree
from ..errors import CouchError, bad_request, not_found
from ..http import json_response, raw_json_response, rev_header, spool_body, too_large
from ..limits import parse_json
from ..params import bool_param, json_param
from ..state import ServerState
from ..storage import Database, RowError, check_doc_id
from ..storage import attachments as stored

__all__ = ["AttachmentHandlers", "bad_atts_since", "document_with_data", "known_generation", "multipart_related", "read_multipart",
           "wants_data", "wants_multipart"]

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
        return json_response(result, 201, {"ETag": f'"{result["rev"]}"', "Location": request.rel_url.raw_path})

    async def _delete(self, request: web.Request, db: Database, doc_id: str, name: str) -> web.Response:
        rev = request.query.get("rev") or rev_header(request)
        if rev is None:
            # Without a rev CouchDB opens the current document first: 404 when there is none.
            if db.get(doc_id) is None:
                raise not_found("missing")
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
    """`(start, end)` of a single `bytes=` range (`None`: the whole content; several
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
    """Whether a read asks for attachment content inline (`attachments=true`, `atts_since`)."""
    return bool_param(query, "attachments") or "atts_since" in query


def bad_atts_since(atts_since: Any) -> tuple[Any, str] | None:
    """What is wrong with a `_bulk_get` item's `atts_since`, as the `(rev, reason)` of
    the error CouchDB answers in its place (`chttpd_db:parse_field`); `None` when it is
    a list of revs."""
    if not isinstance(atts_since, list):
        return atts_since, "att_since value must be array of revs."
    for rev in atts_since:
        try:
            revtree.rev_gen(rev)
        except RowError as exc:
            return rev, exc.reason
    return None


def known_generation(atts_since: Any, rev: str, history: list[str]) -> int:
    """The newest generation among `atts_since` that is an ancestor of `rev` (whose
    branch history is `history`): attachments up to it are sent as stubs."""
    if not isinstance(atts_since, list):
        return 0
    gen = int(rev.partition("-")[0])
    ancestors = {f"{gen - i}-{h}" for i, h in enumerate(history)}
    known = [int(r.partition("-")[0]) for r in atts_since if isinstance(r, str) and r in ancestors]
    return max(known, default=0)


# -- multipart/related ------------------------------------------------------------------------


def wants_multipart(request: web.Request) -> bool:
    """Whether a document read asks for `multipart/related` (CouchDB's replicator does,
    for documents with attachments)."""
    return "multipart/related" in request.headers.get("Accept", "")


def multipart_related(doc: dict[str, Any], conn: Any, *, since: int = 0) -> tuple[str, bytes]:
    """`doc` as CouchDB's `multipart/related` body: its JSON (attachments past `since`
    marked `"follows": true`) then one part per such attachment, in the order of the
    JSON. Returns the `Content-Type` (with its boundary) and the body; callers building
    `multipart/mixed` answers (`open_revs`) embed one of these per revision."""
    boundary = uuid.uuid4().hex
    follows = []
    for name, stub in (doc.get("_attachments") or {}).items():
        if isinstance(stub, dict) and stub.get("stub") and stub.get("revpos", 0) > since:
            del stub["stub"]
            stub["follows"] = True
            follows.append((name, stub))
    parts = [b"--" + boundary.encode() + b"\r\nContent-Type: application/json\r\n\r\n" + dumps(doc)]
    for name, stub in follows:
        head = (f'Content-Disposition: attachment; filename={dumps(name).decode()}\r\n'
                f'Content-Type: {stub.get("content_type") or stored.DEFAULT_TYPE}\r\n'
                f'Content-Length: {stub["length"]}\r\n\r\n').encode()
        parts.append(b"\r\n--" + boundary.encode() + b"\r\n" + head + stored.read_blob(conn, stub["digest"]))
    parts.append(b"\r\n--" + boundary.encode() + b"--")
    return f'multipart/related; boundary="{boundary}"', b"".join(parts)


async def document_with_data(state: ServerState, request: web.Request, db: Database, body: bytes, rev: str,
                             history: list[str]) -> web.Response:
    """The answer to a document read with `attachments=true` or `atts_since`: JSON
    with base64 content, or `multipart/related` when the client accepts it."""
    depth = state.config.max_json_depth
    since = known_generation(json_param(request.query, "atts_since", depth=depth), rev, history)
    headers = {"ETag": f'"{rev}"'}
    if wants_multipart(request) and b'"_attachments"' in body:
        content_type, data = await state.off_loop(lambda: multipart_related(loads(body), db.query_conn(),
                                                                            since=since))
        return web.Response(body=data, headers={**headers, "Content-Type": content_type})

    def inline() -> bytes:
        if b'"_attachments"' not in body:
            return body
        doc = loads(body)
        stored.with_data(doc, db.query_conn(), since=since)
        return dumps(doc)

    return raw_json_response(await state.off_loop(inline), headers=headers)


async def read_multipart(request: web.Request, spool: Callable[[], IO[bytes]], max_json: int, max_size: int,
                         depth: int) -> tuple[dict[str, Any], dict[str, tuple[IO[bytes], stored.Blob]]]:
    """A `multipart/related` document write: the JSON of its first part and, for each
    attachment marked `"follows": true`, its content spooled to a file from `spool`
    (parts are matched by `Content-Disposition` file name, else in the order of the JSON)."""
    try:
        return await _read_multipart(request, spool, max_json, max_size, depth)
    except ValueError as exc:  # aiohttp's parser: no boundary, a body cut short, a missing delimiter
        raise bad_request(f"malformed multipart/related body: {exc}") from None


async def _read_multipart(request: web.Request, spool: Callable[[], IO[bytes]], max_json: int, max_size: int,
                          depth: int) -> tuple[dict[str, Any], dict[str, tuple[IO[bytes], stored.Blob]]]:
    reader = await request.multipart()
    first = await reader.next()
    if not isinstance(first, BodyPartReader):
        raise bad_request("multipart/related body without a JSON part")
    doc = parse_json(b"".join([chunk async for chunk in _part_chunks(first, max_json)]), depth)
    if not isinstance(doc, dict):
        raise bad_request("Request body must be a JSON object")
    atts = doc.get("_attachments")
    stubs: dict[str, Any] = atts if isinstance(atts, dict) else {}
    waiting = [name for name, att in stubs.items() if isinstance(att, dict) and att.get("follows") is True]
    files: dict[str, tuple[IO[bytes], stored.Blob]] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not waiting:
            raise bad_request("multipart/related body with more parts than attachments that follow")
        name = part.filename if part.filename is not None and part.filename in waiting else waiting[0]
        waiting.remove(name)
        file = spool()
        md5, size = hashlib.md5(), 0
        async for chunk in _part_chunks(part, max_size):
            md5.update(chunk)
            file.write(chunk)
            size += len(chunk)
        _check_declared_length(stubs[name], size)
        files[name] = file, (stored.digest_of(md5), size)
    if waiting:
        raise bad_request(f"multipart/related body is missing the content of {waiting[0]}")
    return doc, files


def _check_declared_length(stub: dict[str, Any], size: int) -> None:
    """A part must have the length its stub declares (`encoded_length` when it has an
    `encoding`), as CouchDB's `couch_att:write_streamed_attachment` requires; a stub
    without one takes the part as it comes."""
    declared = stub.get("encoded_length", stub.get("length")) if "encoding" in stub else stub.get("length")
    if not isinstance(declared, int) or isinstance(declared, bool) or declared == size:
        return
    raise bad_request("attachment shorter than expected" if size < declared else "attachment longer than expected")


async def _part_chunks(part: BodyPartReader, cap: int) -> AsyncIterator[bytes]:
    """The content of one part as it arrives, at most `cap` bytes (413 beyond)."""
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > cap:
            raise too_large()
        yield chunk
