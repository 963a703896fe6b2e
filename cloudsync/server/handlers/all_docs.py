"""`_all_docs`: documents by id, by range or by keys, streamed page by page."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from ..._json import dumps, loads
from .. import changes, limits
from ..errors import CouchError, bad_request
from ..http import JSON, allow, raw_json_response, read_json
from ..params import bool_param, int_param, json_param
from ..partitions import id_range
from ..seq import encode_seq
from ..state import ServerState
from ..storage import Database
from ..storage import attachments as stored

__all__ = ["ALL_DOCS_PAGE", "ALL_DOCS_PAGE_DOCS", "AllDocsHandler", "AllDocsQuery", "merged_params"]

log = logging.getLogger("cloudsync.server")

ALL_DOCS_PAGE = 1000
"""Rows per page of a streamed `_all_docs` answer (with and without documents)."""
ALL_DOCS_PAGE_DOCS = 100

T = TypeVar("T")
OffLoop = Callable[[Callable[[], T]], Awaitable[T]]
"""Runs a function on a query thread (`ServerState.off_loop`)."""


_JSON_PARAMS = frozenset({"key", "keys", "startkey", "start_key", "endkey", "end_key"})
"""Parameters whose values are JSON (in a query string, JSON text; in a body, JSON values)."""


def merged_params(query: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
    """Query-string parameters overridden by those of a POST body, all readable by the
    `params` readers: a JSON string from a body is re-encoded, so it is not read as JSON text."""
    params: dict[str, Any] = dict(query)
    for name, value in body.items():
        params[name] = dumps(value).decode() if name in _JSON_PARAMS and isinstance(value, str) else value
    return params


class AllDocsQuery:
    """One `_all_docs` query's validated parameters, and its rows read page by page.

    `partition`: the query of one partition (`/{db}/_partition/{p}/_all_docs`): its range
    is clamped to the partition's ids (as CouchDB does), `keys` outside it are not found,
    and `total_rows` and `offset` count that partition's documents.
    """

    def __init__(self, params: Mapping[str, Any], depth: int, partition: str | None = None) -> None:
        keys = json_param(params, "keys", depth=depth)
        self.include_docs = bool_param(params, "include_docs")
        # CouchDB ignores `attachments` without `include_docs`.
        self.attachments = bool_param(params, "attachments") and self.include_docs
        self.descending = bool_param(params, "descending")
        self.limit = int_param(params, "limit")
        self.skip = int_param(params, "skip", 0) or 0
        self.update_seq = bool_param(params, "update_seq")
        self.inclusive_end = bool_param(params, "inclusive_end", True)
        self.page_size = ALL_DOCS_PAGE_DOCS if self.include_docs else ALL_DOCS_PAGE
        key = json_param(params, "key", depth=depth)
        start = json_param(params, "startkey", "start_key", depth=depth)
        end = json_param(params, "endkey", "end_key", depth=depth)
        if keys is not None and not isinstance(keys, list):
            raise CouchError(400, "query_parse_error", "`keys` must be an array of strings.")
        if keys and (key is not None or start is not None or end is not None):
            raise CouchError(400, "query_parse_error", "`keys` is incompatible with `key`, `start_key` and `end_key`")
        if key is not None:
            start = end = key
        for name, value in (("startkey", start), ("endkey", end)):
            if value is not None and not isinstance(value, str):
                raise bad_request(f"{name} must be a string document id")
        self.keys = None if keys is None else keys[self.skip: None if self.limit is None else self.skip + self.limit]
        self.within = None if partition is None else id_range(partition)
        if self.within is not None:
            low, high = self.within
            if self.descending:
                start, end = min(high, start or high), max(low, end or low)
            else:
                start, end = max(low, start or low), min(high, end or high)
        self.start: str | None = start
        self.end: str | None = end

    def _in_scope(self, key: Any) -> bool:
        return isinstance(key, str) and (self.within is None or self.within[0] <= key < self.within[1])

    def _doc(self, doc: bytes, conn: Any) -> bytes:
        """A document as answered: its attachments' content inlined with `attachments`."""
        if not self.attachments or b'"_attachments"' not in doc:
            return doc
        parsed = loads(doc)
        stored.with_data(parsed, conn)
        return dumps(parsed)

    def keys_page(self, db: Database, offset: int) -> tuple[list[bytes], bool]:
        """The rows of `keys[offset:]` (a page of them) and whether they are the last."""
        conn = db.query_conn()
        rows = []
        assert self.keys is not None
        for i, key in enumerate(self.keys[offset: offset + self.page_size]):
            if not i & 255:
                limits.check_budget()
            found = db.get(key, conn) if self._in_scope(key) else None
            if found is None:
                rows.append(b'{"key":' + dumps(key) + b',"error":"not_found"}')
                continue
            rev, deleted, doc, _, _ = found
            value = b'{"rev":"' + rev.encode() + (b'","deleted":true}' if deleted else b'"}')
            row = b'{"id":' + dumps(key) + b',"key":' + dumps(key) + b',"value":' + value
            if self.include_docs:
                row += b',"doc":' + (b"null" if deleted else self._doc(doc, conn))
            rows.append(row + b"}")
        return rows, offset + self.page_size >= len(self.keys)

    def range_page(self, db: Database, after: str | None, remaining: int | None
                   ) -> tuple[list[bytes], str | None, bool]:
        """The rows of the range past id `after` (a page of them), the last id, and
        whether they are the last."""
        want = self.page_size if remaining is None else min(self.page_size, remaining)
        # A page is bounded in bytes too: it ends after the row reaching BATCH_BYTES.
        conn = db.query_conn()
        found_rows = db.all_docs(start=self.start, end=self.end, inclusive_end=self.inclusive_end,
                                 descending=self.descending, limit=want, skip=self.skip if after is None else 0,
                                 after=after, conn=conn,
                                 max_bytes=changes.BATCH_BYTES if self.include_docs else None)
        rows = []
        size = 0
        for doc_id, rev, doc in found_rows:
            enc = dumps(doc_id)
            row = b'{"id":' + enc + b',"key":' + enc + b',"value":{"rev":"' + rev.encode() + b'"}'
            if self.include_docs:
                doc = self._doc(doc, conn)
                row += b',"doc":' + doc
                size += len(doc)
            rows.append(row + b"}")
        last = found_rows[-1][0] if found_rows else None
        return rows, last, len(found_rows) < want and size < changes.BATCH_BYTES

    async def pages(self, db: Database, off_loop: OffLoop) -> AsyncGenerator[bytes, None]:
        """The answer in pieces: its head, then each page's rows (comma-joined; the caller
        separates pages), each read on a query thread."""
        within = self.within
        if self.keys is not None:
            offset = 0
        else:
            start, descending = self.start, self.descending
            offset = (await off_loop(lambda: db.count_before(start, descending, db.query_conn(), within))
                      if start is not None else 0) + self.skip
        total = db.doc_count
        if within is not None:
            # Every live document of the partition sorts before its upper bound.
            total = await off_loop(lambda: db.count_before(within[1], False, db.query_conn(), within))
        head = b'{"total_rows":' + str(total).encode() + b',"offset":' + str(min(offset, total)).encode()
        if self.update_seq:
            head += b',"update_seq":"' + encode_seq(db.update_seq).encode() + b'"'
        yield head + b',"rows":[\n'
        done = False
        key_offset = 0
        last: str | None = None
        remaining = self.limit
        while not done:
            if self.keys is not None:
                rows, done = await off_loop(functools.partial(self.keys_page, db, key_offset))
                key_offset += self.page_size
            else:
                rows, last, done = await off_loop(functools.partial(self.range_page, db, last, remaining))
                if remaining is not None:
                    remaining -= len(rows)
                    done = done or remaining <= 0
            yield b",\n".join(rows)

    async def answer(self, db: Database, off_loop: OffLoop) -> bytes:
        """The whole answer as one JSON object."""
        pieces = self.pages(db, off_loop)
        head = await anext(pieces)
        pages = [page async for page in pieces if page]
        return head + b",\n".join(pages) + b"\n]}"


class AllDocsHandler:
    """`GET`/`POST /{db}/_all_docs` and `POST /{db}/_all_docs/queries`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def _query(self, request: web.Request, body: Mapping[str, Any], partition: str | None = None) -> AllDocsQuery:
        return AllDocsQuery(merged_params(request.query, body), self.state.config.max_json_depth, partition)

    async def queries(self, request: web.Request, db: Database) -> web.Response:
        """Several `_all_docs` queries in one request: `{"results": [answer, ...]}`."""
        allow(request.method, "POST")
        body = await read_json(request)
        queries = body.get("queries")
        if not isinstance(queries, list) or not all(isinstance(q, dict) for q in queries):
            raise bad_request("`queries` must be an array of query objects")
        parsed = [self._query(request, q) for q in queries]
        answers = [await q.answer(db, self.state.off_loop) for q in parsed]
        return raw_json_response(b'{"results":[' + b",\n".join(answers) + b"]}\n")

    async def __call__(self, request: web.Request, db: Database, partition: str | None = None
                       ) -> web.StreamResponse:
        """`_all_docs`: read page by page on a query thread, each page written under the
        send watchdog, so neither the loop nor a client that does not read holds more than a
        page (streamed chunked when there is more than one). A POST body takes every
        parameter a query string does. `partition`: only that partition's documents."""
        allow(request.method, "GET", "HEAD", "POST")
        body = await read_json(request) if request.method == "POST" else {}
        query = self._query(request, body, partition)
        pieces = query.pages(db, self.state.off_loop)
        head = await anext(pieces)
        first = await anext(pieces)
        second = None if request.method == "HEAD" else await anext(pieces, None)
        if second is None:
            return raw_json_response(head + first + b"\n]}\n")
        resp = web.StreamResponse(headers={"Content-Type": JSON})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        watchdog = self.state.watchdog
        try:
            await watchdog.send(request, resp.write(head + first))
            wrote_rows = bool(first)
            page: bytes | None = second
            while page is not None:
                if page:
                    await watchdog.send(request, resp.write(b",\n" + page if wrote_rows else page))
                    wrote_rows = True
                page = await anext(pieces, None)
            await watchdog.send(request, resp.write(b"\n]}\n"))
        except (ConnectionError, TimeoutError, CouchError) as exc:
            # Headers are out: a client that stopped reading (or a page past its time
            # budget) gets its connection reset rather than a body that looks complete.
            log.info("_all_docs stream ended early: %s", exc)
            changes.reset_connection(request)
        finally:
            await pieces.aclose()
        return resp
