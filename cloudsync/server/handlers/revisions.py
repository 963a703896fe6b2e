"""What replicators read revision by revision: `_revs_diff`, a document's revisions by
`open_revs` (with `latest`), and the `revs`/`revs_info` members of a document.

The server keeps the bodies of leaf revisions only (as CouchDB after compaction): an
ancestor revision is known to `_revs_diff` but its body is `missing`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ..._json import dumps, loads
from .. import limits, revtree
from ..errors import CouchError, RowError, bad_request
from ..http import allow, raw_json_response, read_json
from ..params import bool_param, json_param
from ..state import ServerState
from ..storage import Database
from ..storage import attachments as stored_attachments
from . import attachments

__all__ = ["RevisionHandlers", "revision_docs", "revisions_member", "with_members"]

Found = tuple[str, bytes | None]
"""One revision as read: `(rev, body)` with the body ready to send, or `(rev, None)`: missing."""


def with_members(body: bytes, extra: dict[str, Any]) -> bytes:
    """A stored document's JSON with the members of `extra` added at its end."""
    return body[:-1] + b"," + dumps(extra)[1:] if extra else body


def revisions_member(leaf: revtree.Leaf) -> dict[str, Any]:
    """The `_revisions` member of a leaf: its generation and branch history."""
    return {"start": revtree.rev_gen(leaf.rev), "ids": leaf.revs}


def revs_info_member(leaf: revtree.Leaf) -> list[dict[str, str]]:
    """The `_revs_info` member of a leaf: its branch, newest first; only leaves keep a body."""
    history = leaf.history()
    first = "deleted" if leaf.deleted else "available"
    return [{"rev": rev, "status": first if i == 0 else "missing"} for i, rev in enumerate(history)]


def revision_docs(leaves: list[revtree.Leaf], wanted: str | list[str], *, latest: bool, revs: bool) -> list[Found]:
    """The revisions `wanted` (`"all"`: every leaf) of a document with `leaves`, each a
    leaf's body (with `_revisions` when `revs`) or missing. With `latest`, a rev that is
    an ancestor stands for the leaves of every branch through it."""
    if wanted == "all":
        picked: Iterable[tuple[str, revtree.Leaf | None]] = ((leaf.rev, leaf) for leaf in leaves)
    else:
        by_rev = {leaf.rev: leaf for leaf in leaves}
        picked_list: list[tuple[str, revtree.Leaf | None]] = []
        for rev in dict.fromkeys(wanted):
            found = revtree.latest_leaves(leaves, rev) if latest else [by_rev[rev]] if rev in by_rev else []
            picked_list.extend((leaf.rev, leaf) for leaf in found)
            if not found:
                picked_list.append((rev, None))
        picked = dict(picked_list).items()  # a leaf reached through two revs is sent once
    out: list[Found] = []
    for rev, leaf in picked:
        if leaf is None:
            out.append((rev, None))
            continue
        assert leaf.body is not None
        out.append((rev, with_members(leaf.body, {"_revisions": revisions_member(leaf)} if revs else {})))
    return out


def _open_revs_param(request: web.Request, depth: int) -> str | list[str]:
    value = request.query["open_revs"]
    if value == "all":
        return "all"
    wanted = json_param(request.query, "open_revs", depth=depth)
    if not isinstance(wanted, list) or not all(isinstance(rev, str) for rev in wanted):
        raise bad_request("open_revs must be \"all\" or a JSON array of revs")
    return wanted


def _multipart(parts: list[tuple[str, bytes]]) -> web.Response:
    """CouchDB's `multipart/mixed` answer: one part per revision, each `(Content-Type,
    payload)`: a document's JSON, or its `multipart/related` form with attachments."""
    boundary = os.urandom(16).hex()
    sep = b"--" + boundary.encode()
    payload = b"".join(sep + b"\r\nContent-Type: " + content_type.encode() + b"\r\n\r\n" + body + b"\r\n"
                       for content_type, body in parts) + sep + b"--"
    return web.Response(body=payload, headers={"Content-Type": f'multipart/mixed; boundary="{boundary}"'})


def _with_attachments(found: list[Found], leaves: list[revtree.Leaf], conn: Any, atts_since: Any, *,
                      multipart: bool) -> list[tuple[str, bytes | None, str]]:
    """The revisions `found`, with attachment content (past what `atts_since` says the
    client has): inline base64 in the JSON, or a `multipart/related` body per revision
    when `multipart`. Each `(rev, payload or None when missing, Content-Type)`."""
    histories = {leaf.rev: leaf.revs for leaf in leaves}
    out: list[tuple[str, bytes | None, str]] = []
    for rev, body in found:
        if body is None or b'"_attachments"' not in body:
            out.append((rev, body, "application/json"))
            continue
        doc = loads(body)
        since = attachments.known_generation(atts_since, rev, histories[rev])
        if multipart:
            content_type, related = attachments.multipart_related(doc, conn, since=since)
            out.append((rev, related, content_type))
        else:
            stored_attachments.with_data(doc, conn, since=since)
            out.append((rev, dumps(doc), "application/json"))
    return out


class RevisionHandlers:
    """`POST /{db}/_revs_diff` and `GET /{db}/{docid}?open_revs=...`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def revs_diff(self, request: web.Request, db: Database) -> web.Response:
        """For each document, the revs the database does not hold, and its leaves that may
        be their ancestors (CouchDB's answer: only documents with missing revs are listed)."""
        allow(request.method, "POST")
        body = await read_json(request)
        for doc_id, revs in body.items():
            if not isinstance(revs, list) or not all(isinstance(rev, str) for rev in revs):
                raise bad_request(f"The revs of {doc_id!r} must be an array of rev strings")

        def diff() -> bytes:
            conn = db.query_conn()
            out: dict[str, Any] = {}
            for i, (doc_id, revs) in enumerate(body.items()):
                if not i & 255:
                    limits.check_budget()
                try:
                    missing, ancestors = revtree.missing_revs(db.leaves(doc_id, conn), revs)
                except RowError as exc:
                    raise CouchError(400, exc.error, exc.reason) from None
                if missing:
                    out[doc_id] = {"missing": missing, **({"possible_ancestors": ancestors} if ancestors else {})}
            return dumps(out)

        return raw_json_response(await self.state.off_loop(diff))

    async def open_revs(self, request: web.Request, db: Database, doc_id: str) -> web.Response:
        """A document's leaves (`open_revs=all`) or the revs listed, as a JSON array of
        `{"ok": doc}` and `{"missing": rev}`; as `multipart/mixed` parts when the client
        asks for that type by name (CouchDB's replicator does). With `attachments=true`
        (or `atts_since`) attachment content comes inline as base64 in the JSON, or as a
        `multipart/related` part per revision in the multipart answer."""
        depth = self.state.config.max_json_depth
        wanted = _open_revs_param(request, depth)
        leaves = db.leaves(doc_id)
        if not leaves and wanted == "all":
            raise CouchError(404, "not_found", "missing")
        found = revision_docs(leaves, wanted, latest=bool_param(request.query, "latest"),
                              revs=bool_param(request.query, "revs"))
        accept = request.headers.get("Accept", "")
        multipart = "multipart/mixed" in accept and "application/json" not in accept
        if attachments.wants_data(request.query):
            atts_since = json_param(request.query, "atts_since", depth=depth)
            typed = await self.state.off_loop(
                lambda: _with_attachments(found, leaves, db.query_conn(), atts_since, multipart=multipart))
        else:
            typed = [(rev, body, "application/json") for rev, body in found]
        if multipart:
            return _multipart([
                ('application/json; error="true"', dumps({"missing": rev})) if body is None else (content_type, body)
                for rev, body, content_type in typed])
        entries = [b'{"missing":' + dumps(rev) + b"}" if body is None else b'{"ok":' + body + b"}"
                   for rev, body, _ in typed]
        return raw_json_response(b"[" + b",".join(entries) + b"]")
