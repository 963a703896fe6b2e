"""`_all_docs`: documents by id, by range or by keys, streamed page by page."""

from __future__ import annotations

import functools
import logging

from aiohttp import web

from ..._json import dumps
from .. import changes, limits
from ..errors import CouchError, bad_request
from ..http import JSON, allow, raw_json_response, read_json
from ..params import bool_param, int_param, json_param
from ..seq import encode_seq
from ..state import ServerState
from ..storage import Database

__all__ = ["ALL_DOCS_PAGE", "ALL_DOCS_PAGE_DOCS", "AllDocsHandler"]

log = logging.getLogger("cloudsync.server")

ALL_DOCS_PAGE = 1000
"""Rows per page of a streamed `_all_docs` answer (with and without documents)."""
ALL_DOCS_PAGE_DOCS = 100


class AllDocsHandler:
    """`GET`/`POST /{db}/_all_docs`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def __call__(self, request: web.Request, db: Database) -> web.StreamResponse:
        """`_all_docs`: read page by page on a query thread, each page written under the
        send watchdog, so neither the loop nor a client that does not read holds more than a
        page (streamed chunked when there is more than one)."""
        allow(request.method, "GET", "HEAD", "POST")
        body = await read_json(request) if request.method == "POST" else {}
        keys = body.get("keys", json_param(request.query, "keys", depth=self.state.config.max_json_depth))
        include_docs = bool_param(request.query, "include_docs")
        descending = bool_param(request.query, "descending")
        limit = int_param(request.query, "limit")
        skip = int_param(request.query, "skip", 0) or 0
        update_seq = bool_param(request.query, "update_seq")
        inclusive_end = bool_param(request.query, "inclusive_end", True)
        page_size = ALL_DOCS_PAGE_DOCS if include_docs else ALL_DOCS_PAGE
        start = end = None
        if keys is not None:
            if not isinstance(keys, list):
                raise bad_request("`keys` must be an array")
            keys = keys[skip: None if limit is None else skip + limit]
        else:
            key = json_param(request.query, "key", depth=self.state.config.max_json_depth)
            start = json_param(request.query, "startkey", "start_key", depth=self.state.config.max_json_depth)
            end = json_param(request.query, "endkey", "end_key", depth=self.state.config.max_json_depth)
            if key is not None:
                start = end = key
            for name, value in (("startkey", start), ("endkey", end)):
                if value is not None and not isinstance(value, str):
                    raise bad_request(f"{name} must be a string document id")
        total = db.doc_count

        def keys_page(offset: int) -> tuple[list[bytes], bool]:
            conn = db.query_conn()
            rows = []
            assert keys is not None
            for i, key in enumerate(keys[offset: offset + page_size]):
                if not i & 255:
                    limits.check_budget()
                found = db.get(key, conn) if isinstance(key, str) else None
                if found is None:
                    rows.append(b'{"key":' + dumps(key) + b',"error":"not_found"}')
                    continue
                rev, deleted, doc, _, _ = found
                value = b'{"rev":"' + rev.encode() + (b'","deleted":true}' if deleted else b'"}')
                row = b'{"id":' + dumps(key) + b',"key":' + dumps(key) + b',"value":' + value
                if include_docs:
                    row += b',"doc":' + (b"null" if deleted else doc)
                rows.append(row + b"}")
            return rows, offset + page_size >= len(keys)

        def range_page(after: str | None, remaining: int | None) -> tuple[list[bytes], str | None, bool]:
            want = page_size if remaining is None else min(page_size, remaining)
            # A page is bounded in bytes too: it ends after the row reaching BATCH_BYTES.
            found_rows = db.all_docs(start=start, end=end, inclusive_end=inclusive_end, descending=descending,
                                     limit=want, skip=skip if after is None else 0, after=after,
                                     conn=db.query_conn(), max_bytes=changes.BATCH_BYTES if include_docs else None)
            rows = []
            size = 0
            for doc_id, rev, doc in found_rows:
                enc = dumps(doc_id)
                row = b'{"id":' + enc + b',"key":' + enc + b',"value":{"rev":"' + rev.encode() + b'"}'
                if include_docs:
                    row += b',"doc":' + doc
                    size += len(doc)
                rows.append(row + b"}")
            last = found_rows[-1][0] if found_rows else None
            return rows, last, len(found_rows) < want and size < changes.BATCH_BYTES

        off_loop = self.state.off_loop
        last: str | None = None
        remaining = limit
        if keys is not None:
            offset = 0
            rows, done = await off_loop(lambda: keys_page(0))
        else:
            offset = (await off_loop(lambda: db.count_before(start, descending, db.query_conn()))
                      if start is not None else 0) + skip
            rows, last, done = await off_loop(lambda: range_page(None, remaining))
            if remaining is not None:
                remaining -= len(rows)
                done = done or remaining <= 0
        head = b'{"total_rows":' + str(total).encode() + b',"offset":' + str(min(offset, total)).encode()
        if update_seq:
            head += b',"update_seq":"' + encode_seq(db.update_seq).encode() + b'"'
        head += b',"rows":[\n'
        if done or request.method == "HEAD":
            return raw_json_response(head + b",\n".join(rows) + b"\n]}\n")
        resp = web.StreamResponse(headers={"Content-Type": JSON})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        watchdog = self.state.watchdog
        try:
            await watchdog.send(request, resp.write(head + b",\n".join(rows)))
            key_offset = 0
            while not done:
                if keys is not None:
                    key_offset += page_size
                    rows, done = await off_loop(functools.partial(keys_page, key_offset))
                else:
                    rows, last, done = await off_loop(functools.partial(range_page, last, remaining))
                    if remaining is not None:
                        remaining -= len(rows)
                        done = done or remaining <= 0
                if rows:
                    await watchdog.send(request, resp.write(b",\n" + b",\n".join(rows)))
            await watchdog.send(request, resp.write(b"\n]}\n"))
        except (ConnectionError, TimeoutError, CouchError) as exc:
            # Headers are out: a client that stopped reading (or a page past its time
            # budget) gets its connection reset rather than a body that looks complete.
            log.info("_all_docs stream ended early: %s", exc)
            changes.reset_connection(request)
        return resp
