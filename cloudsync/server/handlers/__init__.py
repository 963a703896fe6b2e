"""Request handlers: `Handlers.dispatch` routes every request by its raw path.

Routing is done on the *raw* request path rather than with aiohttp's router, because
document ids must round-trip exactly: `a%2Fb` is one id segment, while `_design/x`
may arrive with a literal or an encoded slash.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from aiohttp import web

from ... import __version__
from .. import changes, security
from ..auth import COOKIE, cookie_options
from ..errors import CouchError, bad_request, not_found
from ..http import allow, json_response, read_body, read_json
from ..params import bool_param, int_param, json_param
from ..state import ServerState
from ..storage import Database
from .all_dbs import select_names
from .all_docs import AllDocsHandler
from .attachments import AttachmentHandlers
from .db_updates import DbUpdatesHandler
from .documents import DocumentHandlers
from .mango import MangoHandlers
from .partitions import PartitionHandlers
from .settings import SettingsHandlers

__all__ = ["COUCHDB_VERSION", "Handlers"]

COUCHDB_VERSION = "3.3.3"
DbHandler = Callable[[web.Request, Database], Awaitable[web.StreamResponse]]


class Handlers:
    """Request handlers; `dispatch` routes every request by its raw path."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.storage = state.storage
        docs = DocumentHandlers(state)
        self.document, self.bulk_docs, self.bulk_get = docs.document, docs.bulk_docs, docs.bulk_get
        self.attachment = AttachmentHandlers(state).attachment
        self.revs_diff = docs.revisions.revs_diff
        self.settings = SettingsHandlers()
        self.all_docs = AllDocsHandler(state)
        mango = MangoHandlers(state)
        self.find, self.explain, self.index = mango.find, mango.explain, mango.index
        self.db_updates = DbUpdatesHandler(state).db_updates
        self.partition = PartitionHandlers(state, self.all_docs, mango)

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
            allow(method, "GET", "HEAD")
            return json_response({
                "couchdb": "Welcome", "version": COUCHDB_VERSION,
                "vendor": {"name": "cloudsync", "version": __version__},
                "features": ["feed_eventsource", "feed_websocket", "mango_sqlite_indexes"],
            })
        top = parts[0]
        if top.startswith("_"):
            if top not in security.OPEN_SERVER_PATHS:
                security.require_server_admin(request)
            if len(parts) == 1:
                server_handler = {
                    "_all_dbs": self.all_dbs, "_uuids": self.uuids, "_up": self.up, "_session": self.session,
                    "_db_updates": self.db_updates,
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
        security.check(request, db, security.level_for(method, rest))
        if head.startswith("_") and not head.startswith(("_design/", "_local/")):
            routes: dict[str, DbHandler] = {
                "_all_docs": self.all_docs, "_bulk_docs": self.bulk_docs, "_bulk_get": self.bulk_get,
                "_find": self.find, "_explain": self.explain, "_changes": self.changes,
                "_ensure_full_commit": self.ensure_full_commit, "_revs_diff": self.revs_diff,
                "_security": self.settings.security, "_revs_limit": self.settings.revs_limit,
                "_compact": self.settings.compact, "_view_cleanup": self.settings.compact,
            }
            db_handler = routes.get(head)
            if head == "_index":
                return await self.index(request, db, rest[1:])
            if head == "_partition":
                return await self.partition(request, db, rest[1:])
            if rest == ["_all_docs", "queries"]:
                return await self.all_docs.queries(request, db)
            if db_handler is None or len(rest) != 1:
                if method == "PUT" and len(rest) == 1:
                    raise CouchError(400, "illegal_docid", "Only reserved document ids may start with underscore.")
                raise not_found("missing")
            return await db_handler(request, db)
        if len(rest) > 1:
            if head.startswith("_design/") and rest[1] in ("_view", "_show", "_list", "_update", "_rewrite"):
                raise not_found("Views and design-document functions are not supported by the cloudsync server")
            # An attachment: its name may hold slashes, literal or encoded.
            return await self.attachment(request, db, head, "/".join(rest[1:]))
        return await self.document(request, db, head)

    def _db(self, name: str) -> Database:
        db = self.storage.get(name)
        if db is None:
            raise not_found("Database does not exist.")
        return db

    # -- server level ----------------------------------------------------------------

    async def up(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "seeds": {}})

    async def all_dbs(self, request: web.Request) -> web.Response:
        allow(request.method, "GET", "HEAD")
        return json_response(select_names(self.storage.names(), request.query))

    async def uuids(self, request: web.Request) -> web.Response:
        allow(request.method, "GET", "HEAD")
        count = int_param(request.query, "count", 1) or 0
        if count > 1000:
            raise bad_request("count parameter too large")
        return json_response({"uuids": [uuid.uuid4().hex for _ in range(count)]},
                             headers={"Cache-Control": "must-revalidate, no-cache"})

    async def session(self, request: web.Request) -> web.Response:
        auth = self.state.auth
        if request.method == "GET":
            user = request.get("user")
            roles = request.get("roles", ["_admin"]) if user or not auth.enabled else []
            handlers = ["cookie", "default"] + (["jwt"] if auth.jwt is not None else [])
            return json_response({"ok": True, "userCtx": {"name": user, "roles": list(roles)},
                                  "info": {"authentication_handlers": handlers,
                                           **({"authenticated": request["auth_via"]} if user else {})}})
        if request.method == "DELETE":
            resp = json_response({"ok": True})
            # Expires in the past too, as CouchDB sends: some cookie jars read only Expires.
            resp.set_cookie(COOKIE, "", max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT", path="/",
                            httponly=True, samesite="Lax")
            return resp
        allow(request.method, "GET", "POST", "DELETE")
        throttle, peer = self.state.throttle, request.remote or ""
        throttle.check(peer)
        # A public endpoint: its body is small, read before anything is parsed.
        cap = self.state.config.max_session_body
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl((await read_body(request, cap)).decode("utf-8", "replace")))
        else:
            form = await read_json(request, cap=cap)
        # CouchDB takes `username` as well as `name` (IBM's SDKs and couchbackup send it),
        # and refuses a body naming no user, or two different ones, as a bad request.
        name, username, password = form.get("name"), form.get("username"), form.get("password")
        if name is not None and username is not None and name != username:
            raise bad_request("request body contains different usernames")
        name = username if name is None else name
        if name is None:
            raise bad_request("request body must contain a username")
        if not isinstance(name, str) or not isinstance(password, str) or not auth.check_password(name, password):
            throttle.failed(peer)
            raise CouchError(401, "unauthorized", "Name or password is incorrect.")
        throttle.succeeded(peer)
        resp = json_response({"ok": True, "name": name, "roles": ["_admin"]})
        resp.set_cookie(COOKIE, auth.make_cookie(name), **cookie_options())
        return resp

    # -- databases -------------------------------------------------------------------

    async def database(self, request: web.Request, name: str) -> web.Response:
        method = request.method
        if method in ("PUT", "DELETE"):
            security.require_server_admin(request)
        if method == "PUT":
            partitioned = bool_param(request.query, "partitioned", reason="Invalid `partitioned` parameter")
            await self.storage.create(name, partitioned=partitioned)
            return json_response({"ok": True}, 201, {"Location": f"/{quote(name, safe='')}"})
        if method == "DELETE":
            await self.storage.delete(name)
            return json_response({"ok": True})
        db = self._db(name)
        security.check(request, db, security.Level.MEMBER)
        if method in ("GET", "HEAD"):
            return json_response(db.info())
        if method == "POST":
            doc = await read_json(request)
            if str(doc.get("_id", "")).startswith("_design/"):
                security.check(request, db, security.Level.DB_ADMIN)
            result = await db.write(lambda tx: tx.put_doc(doc))
            return json_response(result, 201, {"Location": f"/{quote(name, safe='')}/{quote(result['id'])}",
                                               "ETag": f'"{result["rev"]}"'})
        raise CouchError(405, "method_not_allowed", "Only DELETE,GET,HEAD,POST,PUT allowed")

    async def ensure_full_commit(self, request: web.Request, db: Database) -> web.Response:
        allow(request.method, "POST")
        return json_response({"ok": True, "instance_start_time": "0"}, 201)

    # -- changes ---------------------------------------------------------------------

    async def changes(self, request: web.Request, db: Database) -> web.StreamResponse:
        allow(request.method, "GET", "HEAD", "POST")
        params: dict[str, Any] = dict(request.query)
        if params.get("feed") == "websocket":
            if request.headers.get("Upgrade", "").lower() != "websocket":
                raise bad_request("feed=websocket requires a WebSocket upgrade request")
            return await changes.serve_websocket(request, db, self.state)
        body = await read_json(request, empty={}) if request.method == "POST" else {}
        changes.since_from_last_event_id(request, params)
        for name in ("selector", "doc_ids"):
            if name in params:
                params[name] = json_param(request.query, name, depth=self.state.config.max_json_depth)
        opts = changes.FeedOptions(db, params, body)
        return await changes.serve_changes(request, db, opts, self.state)
