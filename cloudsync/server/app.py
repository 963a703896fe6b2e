"""The HTTP layer: routing, request validation, CouchDB-style answers, startup and shutdown.

aiohttp serves plain requests, chunked streaming and WebSocket upgrades on one port
from one event loop. Routing is done here on the *raw* request path rather than with
aiohttp's router, because document ids must round-trip exactly: ``a%2Fb`` is one id
segment, while ``_design/x`` may arrive with a literal or an encoded slash.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from .. import __version__
from .._json import dumps, loads
from . import changes, limits, mango
from .auth import COOKIE, SESSION_TIMEOUT, Auth, LoginThrottle
from .errors import CouchError, bad_request, not_found
from .limits import parse_int, parse_json
from .storage import Database, RowError, Storage, Tx, check_doc_id, encode_seq

__all__ = ["ServerConfig", "make_app", "run"]

log = logging.getLogger("cloudsync.server")

COUCHDB_VERSION = "3.3.3"
JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
#: Rows per page of a streamed ``_all_docs`` answer (with and without documents).
ALL_DOCS_PAGE = 1000
ALL_DOCS_PAGE_DOCS = 100
#: Headers a CORS preflight may ask for when the browser names none we know.
CORS_HEADERS = "accept, authorization, content-type, origin, referer, if-match, last-event-id, x-requested-with"
CORS_EXPOSE = "cache-control, content-type, etag, server, x-couch-request-id, x-couchdb-body-time"


@dataclass
class ServerConfig:
    """Everything ``cloudsync serve`` can be told."""

    host: str = "127.0.0.1"
    port: int = 5984
    #: Where database files live; ``None`` with ``memory=True`` uses a temporary directory.
    data_dir: str | os.PathLike[str] | None = None
    #: Keep data only for the server's lifetime (temporary directory, no fsync).
    memory: bool = False
    #: Admin users ``{name: password}``; when empty, every request is allowed.
    admins: dict[str, str] = field(default_factory=dict)
    #: Allow running without users on a non-loopback address.
    insecure_no_auth: bool = False
    max_body: int = 64 * 1024 * 1024
    max_json_depth: int = 64
    #: Seconds a feed may wait for a client to accept data before it is disconnected.
    send_timeout: float = 30.0
    #: Seconds a websocket feed waits for the options message before using query parameters.
    ws_options_grace: float = 1.0
    #: Extra ``Host`` names accepted without ``--admin`` (``"*"``: any).
    allow_hosts: list[str] = field(default_factory=list)
    #: Origins allowed for WebSocket/EventSource feeds and CORS (``"*"``: any).
    allow_origins: list[str] = field(default_factory=list)
    #: Seconds of evaluation a query (``_find``, ``_all_docs`` keys, ``_bulk_get``, a
    #: selector filter's batch) may use; 0 disables.
    query_timeout: float = 10.0
    #: Seconds a connection may stay without a complete request (new or kept alive), and
    #: without any progress while a body is read; 0 disables.
    idle_timeout: float = 30.0
    #: Largest body of a public endpoint (``POST /_session``).
    max_session_body: int = 16 * 1024
    #: Failed logins per client address per minute before answers are 429.
    max_login_failures: int = 10


class _State:
    """Per-application state shared with the feeds."""

    def __init__(self, config: ServerConfig, storage: Storage, auth: Auth) -> None:
        self.config = config
        self.storage = storage
        self.auth = auth
        self.closing = False
        self.watchdog = changes.SendWatchdog(config.send_timeout)
        self.ws_options_grace = config.ws_options_grace
        self.throttle = LoginThrottle(config.max_login_failures)
        # Query evaluation runs here, never on the event loop (each thread has its own
        # SQLite read connection per database, see Database.query_conn).
        self.query_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cloudsync-query")

    async def off_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a query thread, within the query time budget."""
        seconds = self.config.query_timeout
        queued = time.monotonic()

        def run() -> T:
            # Time spent waiting for a free query thread counts: with every thread busy
            # with expensive queries, new ones time out instead of piling up.
            left = seconds - (time.monotonic() - queued) if seconds else None
            if left is not None and left <= 0:
                raise limits.QueryTimeout(seconds)
            with limits.budget(left, seconds):
                try:
                    return fn()
                except sqlite3.Error as exc:
                    if limits.expired():  # SQLite's progress handler stopped the statement
                        limits.check_budget()
                    if "interrupted" in str(exc) or isinstance(exc, sqlite3.ProgrammingError):
                        # Database.close() (the database was deleted) interrupted or closed it.
                        raise CouchError(404, "not_found", "Database does not exist.") from None
                    raise

        return await asyncio.get_running_loop().run_in_executor(self.query_executor, run)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- request helpers -----------------------------------------------------------------


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type=JSON, headers=headers)


def raw_json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def _too_large() -> CouchError:
    return CouchError(413, "too_large", "the request entity is too large")


async def read_body(request: web.Request, cap: int) -> bytes:
    """The request body, at most ``cap`` bytes (413 beyond, without reading the rest);
    408 when the client sends nothing for ``idle_timeout`` seconds in the middle of it."""
    if request.content_length is not None and request.content_length > cap:
        raise _too_large()
    timeout = request.app["state"].config.idle_timeout or None
    chunks: list[bytes] = []
    size = 0
    content = request.content
    while True:
        chunk = content.read_nowait()  # what already arrived: no timer needed
        if not chunk:
            if content.at_eof():
                return b"".join(chunks)
            try:
                chunk = await asyncio.wait_for(content.readany(), timeout)
            except asyncio.TimeoutError:
                raise CouchError(408, "request_timeout", "the request body stopped arriving") from None
            if not chunk:
                return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise _too_large()
        chunks.append(chunk)


async def read_json(request: web.Request, *, require_object: bool = True, strict_type: bool = True,
                    empty: Any = None, cap: int | None = None) -> Any:
    """The request body as JSON, enforcing CouchDB's content type, the size and depth limits."""
    config: ServerConfig = request.app["state"].config
    if strict_type and request.method == "POST" and request.content_type != JSON:
        raise CouchError(415, "bad_content_type", "Content-Type must be application/json")
    data = await read_body(request, config.max_body if cap is None else cap)
    if not data.strip():
        if empty is not None:
            return empty
        raise bad_request("Request body is empty; expected a JSON object")
    value = parse_json(data, config.max_json_depth)
    if require_object and not isinstance(value, dict):
        raise bad_request("Request body must be a JSON object")
    return value


def _bool_param(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value in ("true", "false"):
        return value == "true"
    raise bad_request(f"Invalid boolean parameter: {name}")


def _int_param(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None:
        return default
    return parse_int(value, name)


def _json_param(request: web.Request, *names: str) -> Any:
    for name in names:
        if name in request.query:
            return parse_json(request.query[name], request.app["state"].config.max_json_depth,
                              f"parameter {name}")
    return None


def _rev_header(request: web.Request) -> str | None:
    etag = request.headers.get("If-Match")
    return etag.strip('"') if etag else None


# -- handlers ------------------------------------------------------------------------


class Handlers:
    """Request handlers; :meth:`dispatch` routes every request by its raw path."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.storage = state.storage

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        try:
            parts = [unquote(p, errors="strict") for p in raw.split("/")[1:]]
        except UnicodeDecodeError:
            raise bad_request("Invalid percent-encoding in the request path") from None
        if parts and parts[-1] == "" and len(parts) <= 2:
            parts.pop()
        method = request.method
        if not parts:
            self._allow(method, "GET", "HEAD")
            return json_response({
                "couchdb": "Welcome", "version": COUCHDB_VERSION,
                "vendor": {"name": "cloudsync", "version": __version__},
                "features": ["feed_eventsource", "feed_websocket", "mango_sqlite_indexes"],
            })
        top = parts[0]
        if top.startswith("_"):
            if len(parts) == 1:
                server_handler = {
                    "_all_dbs": self.all_dbs, "_uuids": self.uuids, "_up": self.up, "_session": self.session,
                }.get(top)
                if server_handler is not None:
                    return await server_handler(request)
                if method == "PUT":
                    await self.storage.create(top)  # raises illegal_database_name
            raise not_found("Database does not exist." if len(parts) == 1 else "missing")
        if len(parts) == 1:
            return await self.database(request, top)
        db = self._db(top)
        rest = parts[1:]
        head = rest[0]
        if head == "_design" and len(rest) >= 2:
            rest = [f"_design/{rest[1]}", *rest[2:]]
        elif head == "_local" and len(rest) >= 2:
            rest = [f"_local/{rest[1]}", *rest[2:]]
        head = rest[0]
        if head.startswith("_") and not head.startswith(("_design/", "_local/")):
            db_handler = {
                "_all_docs": self.all_docs, "_bulk_docs": self.bulk_docs, "_bulk_get": self.bulk_get,
                "_find": self.find, "_explain": self.explain, "_changes": self.changes,
                "_ensure_full_commit": self.ensure_full_commit,
            }.get(head)
            if head == "_index":
                return await self.index(request, db, rest[1:])
            if db_handler is None or len(rest) != 1:
                if method == "PUT" and len(rest) == 1:
                    raise CouchError(400, "illegal_docid", "Only reserved document ids may start with underscore.")
                raise not_found("missing")
            return await db_handler(request, db)
        if len(rest) > 1:
            if head.startswith("_design/") and rest[1] in ("_view", "_show", "_list", "_update", "_rewrite"):
                raise not_found("Views and design-document functions are not supported by the cloudsync server")
            raise bad_request("Attachments are not supported by the cloudsync server")
        return await self.document(request, db, head)

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise CouchError(405, "method_not_allowed", f"Only {','.join(allowed)} allowed")

    def _db(self, name: str) -> Database:
        db = self.storage.get(name)
        if db is None:
            raise not_found("Database does not exist.")
        return db

    # -- server level ----------------------------------------------------------------

    async def up(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "seeds": {}})

    async def all_dbs(self, request: web.Request) -> web.Response:
        self._allow(request.method, "GET", "HEAD")
        names = self.storage.names()
        if _bool_param(request, "descending"):
            names.reverse()
        skip = _int_param(request, "skip", 0) or 0
        limit = _int_param(request, "limit")
        return json_response(names[skip: None if limit is None else skip + limit])

    async def uuids(self, request: web.Request) -> web.Response:
        self._allow(request.method, "GET", "HEAD")
        count = _int_param(request, "count", 1) or 0
        if count > 1000:
            raise bad_request("count parameter too large")
        return json_response({"uuids": [uuid.uuid4().hex for _ in range(count)]},
                             headers={"Cache-Control": "must-revalidate, no-cache"})

    async def session(self, request: web.Request) -> web.Response:
        auth = self.state.auth
        if request.method == "GET":
            user = request.get("user")
            roles = ["_admin"] if user or not auth.enabled else []
            return json_response({"ok": True, "userCtx": {"name": user, "roles": roles},
                                  "info": {"authentication_handlers": ["cookie", "default"],
                                           **({"authenticated": request["auth_via"]} if user else {})}})
        if request.method == "DELETE":
            resp = json_response({"ok": True})
            resp.set_cookie(COOKIE, "", max_age=0, path="/", httponly=True, samesite="Lax")
            return resp
        self._allow(request.method, "GET", "POST", "DELETE")
        throttle, peer = self.state.throttle, request.remote or ""
        throttle.check(peer)
        # A public endpoint: its body is small, read before anything is parsed.
        cap = self.state.config.max_session_body
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl((await read_body(request, cap)).decode("utf-8", "replace")))
        else:
            form = await read_json(request, cap=cap)
        name, password = form.get("name"), form.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or not auth.check_password(name, password):
            throttle.failed(peer)
            raise CouchError(401, "unauthorized", "Name or password is incorrect.")
        throttle.succeeded(peer)
        resp = json_response({"ok": True, "name": name, "roles": ["_admin"]})
        resp.set_cookie(COOKIE, auth.make_cookie(name), max_age=SESSION_TIMEOUT, path="/",
                        httponly=True, samesite="Lax")
        return resp

    # -- databases -------------------------------------------------------------------

    async def database(self, request: web.Request, name: str) -> web.Response:
        method = request.method
        if method == "PUT":
            await self.storage.create(name)
            return json_response({"ok": True}, 201, {"Location": f"/{quote(name, safe='')}"})
        if method == "DELETE":
            await self.storage.delete(name)
            return json_response({"ok": True})
        db = self._db(name)
        if method in ("GET", "HEAD"):
            return json_response(db.info())
        if method == "POST":
            doc = await read_json(request)
            result = await db.write(lambda tx: tx.put_doc(doc))
            return json_response(result, 201, {"Location": f"/{quote(name, safe='')}/{quote(result['id'])}",
                                               "ETag": f'"{result["rev"]}"'})
        raise CouchError(405, "method_not_allowed", "Only DELETE,GET,HEAD,POST,PUT allowed")

    async def ensure_full_commit(self, request: web.Request, db: Database) -> web.Response:
        self._allow(request.method, "POST")
        return json_response({"ok": True, "instance_start_time": "0"}, 201)

    # -- documents -------------------------------------------------------------------

    async def document(self, request: web.Request, db: Database, doc_id: str) -> web.Response:
        method = request.method
        if method in ("GET", "HEAD"):
            return self._get_doc(request, db, doc_id)
        if method == "PUT":
            try:
                check_doc_id(doc_id)
            except RowError as exc:
                raise CouchError(400, exc.error, exc.reason) from None
            doc = await read_json(request, strict_type=False)
            rev = request.query.get("rev") or _rev_header(request)
            if rev is not None:
                if "_rev" in doc and doc["_rev"] != rev:
                    raise bad_request("Document rev from request body and query string have different values")
                doc["_rev"] = rev
            doc["_id"] = doc_id
            new_edits = _bool_param(request, "new_edits", True)
            result = await db.write(lambda tx: tx.put_doc(doc, new_edits=new_edits))
            if result is None:
                result = {"ok": True, "id": doc_id, "rev": doc.get("_rev")}
            return json_response(result, 201, {"ETag": f'"{result["rev"]}"'})
        if method == "DELETE":
            rev = request.query.get("rev") or _rev_header(request)
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

    def _get_doc(self, request: web.Request, db: Database, doc_id: str) -> web.Response:
        if doc_id.startswith("_local/"):
            body = db.get_local(doc_id)
            if body is None:
                raise not_found("missing")
            return raw_json_response(body)
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
        elif deleted:
            raise not_found("deleted")
        extra: dict[str, Any] = {}
        if _bool_param(request, "revs"):
            extra["_revisions"] = {"start": int(rev.partition("-")[0]), "ids": revs}
        if conflicted and (_bool_param(request, "conflicts") or _bool_param(request, "meta")):
            live = db.conflicts(doc_id)
            if live:
                extra["_conflicts"] = live
        if conflicted and (_bool_param(request, "deleted_conflicts") or _bool_param(request, "meta")):
            dead = db.conflicts(doc_id, deleted=True)
            if dead:
                extra["_deleted_conflicts"] = dead
        if extra:
            body = body[:-1] + b"," + dumps(extra)[1:]
        return raw_json_response(body, headers={"ETag": f'"{rev}"'})

    async def bulk_docs(self, request: web.Request, db: Database) -> web.Response:
        self._allow(request.method, "POST")
        body = await read_json(request)
        docs = body.get("docs")
        if not isinstance(docs, list):
            raise bad_request("POST body must include `docs` parameter.")
        new_edits = body.get("new_edits", True)
        if not isinstance(new_edits, bool):
            raise bad_request("`new_edits` parameter must be a boolean.")

        def op(tx: Tx) -> list[dict[str, Any]]:
            results = []
            for doc in docs:
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
        self._allow(request.method, "POST")
        body = await read_json(request)
        items = body.get("docs")
        if not isinstance(items, list):
            raise bad_request("Missing JSON list of 'docs'.")
        revs = _bool_param(request, "revs")

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
                rev = item.get("rev")
                found = db.get(doc_id, conn)
                doc = None
                if found is not None:
                    cur_rev, deleted, body_bytes, history, _ = found
                    if rev is None or rev == cur_rev:
                        doc, rev = loads(body_bytes), cur_rev
                    elif isinstance(rev, str):
                        leaf = db.get_leaf(doc_id, rev, conn)
                        if leaf is not None:
                            deleted, body_bytes, history = leaf
                            doc = loads(body_bytes)
                    if doc is not None and revs:
                        doc["_revisions"] = {"start": int(rev.partition("-")[0]), "ids": history}
                if doc is None:
                    entry: dict[str, Any] = {"error": {"id": doc_id, "rev": rev or "undefined",
                                                       "error": "not_found", "reason": "missing"}}
                else:
                    entry = {"ok": doc}
                results.append({"id": doc_id, "docs": [entry]})
            return dumps({"results": results})

        return raw_json_response(await self.state.off_loop(lookup))

    async def all_docs(self, request: web.Request, db: Database) -> web.StreamResponse:
        """``_all_docs``: read page by page on a query thread, each page written under the
        send watchdog, so neither the loop nor a client that does not read holds more than a
        page (streamed chunked when there is more than one)."""
        self._allow(request.method, "GET", "HEAD", "POST")
        body = await read_json(request) if request.method == "POST" else {}
        keys = body.get("keys", _json_param(request, "keys"))
        include_docs = _bool_param(request, "include_docs")
        descending = _bool_param(request, "descending")
        limit = _int_param(request, "limit")
        skip = _int_param(request, "skip", 0) or 0
        update_seq = _bool_param(request, "update_seq")
        inclusive_end = _bool_param(request, "inclusive_end", True)
        page_size = ALL_DOCS_PAGE_DOCS if include_docs else ALL_DOCS_PAGE
        start = end = None
        if keys is not None:
            if not isinstance(keys, list):
                raise bad_request("`keys` must be an array")
            keys = keys[skip: None if limit is None else skip + limit]
        else:
            key = _json_param(request, "key")
            start = _json_param(request, "startkey", "start_key")
            end = _json_param(request, "endkey", "end_key")
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
            changes._reset(request)
        return resp

    # -- mango -----------------------------------------------------------------------

    async def find(self, request: web.Request, db: Database) -> web.Response:
        self._allow(request.method, "POST")
        body = await read_json(request)
        indexes = db.indexes()

        def run() -> bytes:
            return dumps(mango.run_find(db.query_conn(), mango.Query(body, indexes)))

        return raw_json_response(await self.state.off_loop(run))

    async def explain(self, request: web.Request, db: Database) -> web.Response:
        self._allow(request.method, "POST")
        body = await read_json(request)
        indexes = db.indexes()

        def run() -> bytes:
            query = mango.Query(body, indexes)
            plan = [row[3] for row in db.query_conn().execute("EXPLAIN QUERY PLAN " + query.sql, query.args)]
            return dumps(query.explain(db.name, plan))

        return raw_json_response(await self.state.off_loop(run))

    async def index(self, request: web.Request, db: Database, rest: list[str]) -> web.Response:
        method = request.method
        if not rest and method == "GET":
            indexes = [mango.ALL_DOCS, *(ix.as_json() for ix in db.indexes())]
            return json_response({"total_rows": len(indexes), "indexes": indexes})
        if not rest and method == "POST":
            return await self._create_index(request, db)
        if method == "DELETE":
            if rest and rest[0] == "_design" and len(rest) >= 2:
                rest = [f"_design/{rest[1]}", *rest[2:]]
            if len(rest) == 3 and rest[1] == "json":
                return await self._delete_index(db, rest[0], rest[2])
            raise bad_request("Index delete path must be /{db}/_index/{ddoc}/json/{name}")
        raise CouchError(405, "method_not_allowed", "Only GET,POST,DELETE allowed")

    async def _create_index(self, request: web.Request, db: Database) -> web.Response:
        body = await read_json(request)
        spec = body.get("index")
        if not isinstance(spec, dict):
            raise bad_request("Missing required key: index")
        if body.get("type", "json") != "json":
            raise bad_request("Only json indexes are supported by the cloudsync server")
        fields = mango.parse_index_fields(spec.get("fields"))
        partial = spec.get("partial_filter_selector", body.get("partial_filter_selector")) or None
        if partial is not None:
            mango.compile_selector(partial)
        digest = mango.hashlib.sha1(dumps([fields, partial])).hexdigest()
        name = body.get("name") or digest
        ddoc = body.get("ddoc") or digest
        if not isinstance(name, str) or not isinstance(ddoc, str):
            raise bad_request("name and ddoc must be strings")
        ddoc_id = ddoc if ddoc.startswith("_design/") else f"_design/{ddoc}"
        view = mango.index_ddoc_view(fields, partial)

        def op(tx: Tx) -> str:
            row = tx.conn.execute("SELECT deleted, body FROM docs WHERE id = ?", (ddoc_id,)).fetchone()
            if row is None or row[0]:
                doc: dict[str, Any] = {"_id": ddoc_id, "language": "query", "views": {}}
            else:
                doc = loads(row[1])
                if doc.get("language") != "query" or not isinstance(doc.get("views"), dict):
                    raise RowError("invalid_design_doc", f"{ddoc_id} is not a Mango index design document")
            if doc["views"].get(name) == view:
                return "exists"
            doc["views"][name] = view
            tx.put_doc(doc)
            return "created"

        result = await db.write(op)
        return json_response({"result": result, "id": ddoc_id, "name": name})

    async def _delete_index(self, db: Database, ddoc: str, name: str) -> web.Response:
        ddoc_id = ddoc if ddoc.startswith("_design/") else f"_design/{ddoc}"

        def op(tx: Tx) -> None:
            row = tx.conn.execute("SELECT deleted, body FROM docs WHERE id = ?", (ddoc_id,)).fetchone()
            doc = loads(row[1]) if row is not None and not row[0] else {}
            views = doc.get("views") if doc.get("language") == "query" else None
            if not isinstance(views, dict) or name not in views:
                raise RowError("not_found", "Index not found")
            del views[name]
            if not views:
                doc["_deleted"] = True
            tx.put_doc(doc)

        await db.write(op)
        return json_response({"ok": True})

    # -- changes ---------------------------------------------------------------------

    async def changes(self, request: web.Request, db: Database) -> web.StreamResponse:
        self._allow(request.method, "GET", "HEAD", "POST")
        params: dict[str, Any] = dict(request.query)
        if params.get("feed") == "websocket":
            if request.headers.get("Upgrade", "").lower() != "websocket":
                raise bad_request("feed=websocket requires a WebSocket upgrade request")
            return await changes.serve_websocket(request, db, self.state)
        body = await read_json(request, empty={}) if request.method == "POST" else {}
        if params.get("feed") == "eventsource" and "Last-Event-ID" in request.headers:
            params["since"] = request.headers["Last-Event-ID"]
        for name in ("selector", "doc_ids"):
            if name in params:
                params[name] = _json_param(request, name)
        opts = changes.FeedOptions(db, params, body)
        return await changes.serve_changes(request, db, opts, self.state)


# -- application ---------------------------------------------------------------------


def _host_name(host: str) -> str:
    """The name in a ``Host`` header, without port or IPv6 brackets, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


class _Gate:
    """Who may talk to the server before authentication: ``Host`` names (DNS rebinding),
    ``Origin`` of WebSocket/EventSource feeds (any web page can open those), and CORS."""

    def __init__(self, config: ServerConfig, auth: Auth) -> None:
        self.auth = auth
        self.hosts = {_host_name(h) for h in config.allow_hosts}
        self.any_host = "*" in config.allow_hosts
        bound = _host_name(config.host)
        self.hosts.add(bound)
        # Bound to every address (with --insecure-no-auth): clients use any of the
        # machine's addresses. An IP literal cannot be rebound by DNS, a name can.
        self.ip_literals = bound in ("0.0.0.0", "::", "")
        self.origins = {o.rstrip("/").lower() for o in config.allow_origins}
        self.any_origin = "*" in config.allow_origins

    def host_allowed(self, host: str | None) -> bool:
        if not host or self.any_host:
            return True
        name = _host_name(host)
        if name in self.hosts or name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or self.ip_literals

    def origin_allowed(self, request: web.Request, origin: str) -> bool:
        origin = origin.rstrip("/").lower()
        if self.any_origin and origin != "null":
            return True
        if origin in self.origins:
            return True
        # Same origin: a page served from this very address.
        netloc = urlsplit(origin).netloc
        return bool(netloc) and netloc == (request.headers.get("Host") or "").lower()

    def check(self, request: web.Request) -> None:
        if not self.auth.enabled and not self.host_allowed(request.headers.get("Host")):
            raise CouchError(403, "forbidden",
                             f"Host {request.headers.get('Host')!r} is not allowed: without --admin the server "
                             "answers only loopback names (see --allow-host)")
        origin = request.headers.get("Origin")
        if origin is not None and _is_feed_stream(request) and not self.origin_allowed(request, origin):
            raise CouchError(403, "forbidden",
                             f"Origin {origin!r} may not open change feeds (see --allow-origin)")

    def preflight(self, request: web.Request) -> web.Response:
        """A CORS preflight: allowed origins get the methods and headers they asked for."""
        self.check_host_only(request)
        origin = request.headers.get("Origin")
        if origin is None or not (self.origins or self.any_origin) or not self.origin_allowed(request, origin):
            raise CouchError(403, "forbidden", "CORS is not enabled for this origin (see --allow-origin)")
        wanted = request.headers.get("Access-Control-Request-Headers")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, COPY",
            "Access-Control-Allow-Headers": wanted or CORS_HEADERS,
            "Access-Control-Max-Age": "600",
        })

    def check_host_only(self, request: web.Request) -> None:
        if not self.auth.enabled and not self.host_allowed(request.headers.get("Host")):
            raise CouchError(403, "forbidden", "Host not allowed (see --allow-host)")

    def cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is None or not (self.origins or self.any_origin) or not self.origin_allowed(request, origin):
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE
        response.headers["Vary"] = "Origin"


def _is_feed_stream(request: web.Request) -> bool:
    """A WebSocket upgrade or an EventSource feed (which browsers open from any page)."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return True
    return (request.query.get("feed") in ("eventsource", "websocket")
            or "text/event-stream" in request.headers.get("Accept", ""))


_PUBLIC = {("GET", ()), ("HEAD", ()), ("GET", ("_up",)), ("HEAD", ("_up",))}


def make_app(config: ServerConfig, storage: Storage | None = None) -> web.Application:
    """The aiohttp application for ``config`` (opens its storage unless given one)."""
    if storage is None:
        if config.data_dir is None:
            raise ValueError("data_dir is required unless memory=True")
        storage = Storage(config.data_dir, durable=not config.memory)
    auth = Auth(config.admins, None if config.memory else storage.data_dir)
    state = _State(config, storage, auth)
    handlers = Handlers(state)

    gate = _Gate(config, auth)

    @web.middleware
    async def couch_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                return gate.preflight(request)
            gate.check(request)
            if auth.enabled:
                _authenticate(request, auth, state.throttle)
            return await handler(request)
        except Exception as exc:
            ws = request.get("ws")
            if isinstance(ws, web.WebSocketResponse) and ws.prepared:
                # After the upgrade the stream is WebSocket frames: answer with a close code.
                return await _close_ws(ws, exc, request)
            if isinstance(exc, CouchError):
                headers = {"WWW-Authenticate": 'Basic realm="cloudsync"'} if exc.status == 401 else {}
                if exc.status == 429:
                    headers["Retry-After"] = str(state.throttle.retry_after(request.remote or ""))
                return json_response(exc.as_json(), exc.status, headers or None)
            if isinstance(exc, web.HTTPException):
                if exc.status == 413:
                    return json_response(_too_large().as_json(), 413)
                return json_response({"error": exc.reason.lower().replace(" ", "_"), "reason": exc.reason},
                                     exc.status)
            if isinstance(exc, ConnectionError):
                raise
            if isinstance(exc, RecursionError):
                return json_response(bad_request("input nested too deeply").as_json(), 400)
            log.exception("unexpected error in %s %s", request.method, request.path)
            return json_response({"error": "internal_server_error",
                                  "reason": "An unexpected error occurred; see the server log."}, 500)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Couch-Request-ID"] = os.urandom(5).hex()
        response.headers["Server"] = f"cloudsync/{__version__} (CouchDB {COUCHDB_VERSION} API)"
        gate.cors_headers(request, response)

    async def on_startup(app: web.Application) -> None:
        state.watchdog.start()

    async def on_shutdown(app: web.Application) -> None:
        # End open feeds promptly: they see `closing` as soon as they are woken; running
        # queries stop at their next budget check (or SQLite progress callback).
        state.closing = True
        limits.shutting_down.set()
        for name in storage.names():
            db = storage.get(name)
            if db is not None:
                db.wake()

    async def on_cleanup(app: web.Application) -> None:
        state.watchdog.stop()
        state.query_executor.shutdown(wait=True, cancel_futures=True)
        storage.close()

    app = web.Application(middlewares=[couch_middleware], client_max_size=config.max_body)
    app["state"] = state
    app.on_response_prepare.append(add_headers)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", handlers.dispatch)
    return app


async def _close_ws(ws: web.WebSocketResponse, exc: Exception, request: web.Request) -> web.WebSocketResponse:
    """End an upgraded request that failed: 1008 (policy violation) for a bad input, 1011
    (internal error) otherwise, with the reason as the close message (at most 123 bytes)."""
    if isinstance(exc, CouchError) and exc.status < 500:
        code, reason = 1008, exc.reason
    elif isinstance(exc, (ConnectionError, asyncio.CancelledError)):
        return ws
    else:
        log.error("unexpected error in a websocket feed %s", request.path, exc_info=exc)
        code, reason = 1011, "internal error; see the server log"
    if not ws.closed:
        try:
            await ws.close(code=code, message=reason.encode()[:123])
        except Exception:  # the client may be gone already
            changes._reset(request)
    return ws


def _authenticate(request: web.Request, auth: Auth, throttle: LoginThrottle) -> None:
    header = request.headers.get("Authorization")
    if header is not None:
        peer = request.remote or ""
        throttle.check(peer)
        user = auth.basic(header)
        if user is None:
            throttle.failed(peer)
            raise CouchError(401, "unauthorized", "Name or password is incorrect.")
        request["user"], request["auth_via"] = user, "default"
        return
    cookie = request.cookies.get(COOKIE)
    if cookie:
        user = auth.cookie_user(cookie)
        if user is not None:
            request["user"], request["auth_via"] = user, "cookie"
            return
    path = request.raw_path.split("?", 1)[0].strip("/")
    if path == "_session" or (request.method, tuple(p for p in path.split("/") if p)) in _PUBLIC:
        return
    raise CouchError(401, "unauthorized", "You are not authorized to access this db.")


class _CouchRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse (a request line or
    header past 8190 bytes, bad framing) in CouchDB's JSON error shape, logged at debug
    level rather than as an error with a traceback each."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        self.logger.debug("malformed request from %s: %s", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if isinstance(exc, LineTooLong):
            reason = "The request line or a header is longer than 8190 bytes"
        else:
            reason = f"Malformed HTTP request ({type(exc).__name__ if exc else status})"
        resp = json_response({"error": "bad_request" if status == 400 else "request_error", "reason": reason},
                             status)
        resp.force_close()
        return resp


class _CouchServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _CouchRequestHandler(self, loop=self._loop, **self._kwargs)


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """At the open-files limit asyncio retries accept() every 0.1-1 s and reports each
    failure with a traceback: log the condition once (then at most every 10 minutes),
    keep serving the connections already open."""
    previous = loop.get_exception_handler()
    last = [0.0]
    suppressed = [0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "socket.accept() out of system resource":
            now = time.monotonic()
            if not last[0] or now - last[0] > 600:
                exc = context.get("exception")
                log.error("cannot accept new connections: %s (open-files limit: ulimit -n); serving the open "
                          "ones, retrying every second (%d similar failures not logged)", exc, suppressed[0])
                last[0] = now
                suppressed[0] = 0
            else:
                suppressed[0] += 1
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def run(config: ServerConfig, *, ready: Callable[[str, int], None] | None = None,
              stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set; calls ``ready(host, port)`` once listening."""
    if not config.admins and not is_loopback(config.host) and not config.insecure_no_auth:
        raise SystemExit(
            f"refusing to serve {config.host} without authentication: pass --admin USER:PASS "
            "(or set CLOUDSYNC_ADMIN), or --insecure-no-auth"
        )
    temp_dir = None
    if config.memory and config.data_dir is None:
        temp_dir = tempfile.mkdtemp(prefix="cloudsync-memory-")
        config.data_dir = temp_dir
    if not config.admins:
        log.warning(
            "running WITHOUT AUTHENTICATION: anyone who can connect to %s:%s can read and write every "
            "database. Pass --admin USER:PASS (or set CLOUDSYNC_ADMIN) to require a login.",
            config.host, config.port)
    limits.shutting_down.clear()
    _quiet_accept_errors(asyncio.get_running_loop())
    try:
        app = make_app(config)
        # keepalive_timeout also closes a connection that sends no complete request head
        # within that time of opening (aiohttp arms it at connection_made).
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0,
                               keepalive_timeout=config.idle_timeout or 3600.0)
        await runner.setup()
        assert runner.server is not None
        runner.server.__class__ = _CouchServer
        try:
            site = web.TCPSite(runner, config.host, config.port, backlog=2048)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            port = sockets[0].getsockname()[1] if sockets else config.port
            if ready is not None:
                ready(config.host, port)
            await (stop or asyncio.Event()).wait()
        finally:
            # Queries running on threads stop at their next budget check, so the
            # process exits within seconds of SIGTERM whatever they were doing.
            limits.shutting_down.set()
            await runner.cleanup()
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)

