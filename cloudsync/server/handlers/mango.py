"""Mango handlers: `_find`, `_explain` and `_index`."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from ..._json import dumps
from .. import query
from ..errors import CouchError, RowError, bad_request
from ..http import allow, json_response, raw_json_response, read_json
from ..indexes import ALL_DOCS, ddoc_partitioned, index_ddoc_view, parse_index_fields
from ..matching import compile_selector
from ..state import ServerState
from ..storage import Database, Tx

__all__ = ["MangoHandlers"]


class MangoHandlers:
    """`/{db}/_find`, `/{db}/_explain`, `/{db}/_index`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def find(self, request: web.Request, db: Database, partition: str | None = None) -> web.Response:
        """`_find`, of the whole database or (`partition`) of one partition."""
        allow(request.method, "POST")
        body = await read_json(request)
        indexes = db.indexes()

        def run() -> bytes:
            plan = query.Query(body, indexes, partition=partition, partitioned_db=db.partitioned)
            return dumps(query.run_find(db.query_conn(), plan))

        return raw_json_response(await self.state.off_loop(run))

    async def explain(self, request: web.Request, db: Database, partition: str | None = None) -> web.Response:
        """`_explain`, of the whole database or (`partition`) of one partition."""
        allow(request.method, "POST")
        body = await read_json(request)
        indexes = db.indexes()

        def run() -> bytes:
            plan = query.Query(body, indexes, partition=partition, partitioned_db=db.partitioned)
            return dumps(plan.explain(db.name, db.query_conn()))

        return raw_json_response(await self.state.off_loop(run))

    async def index(self, request: web.Request, db: Database, rest: list[str]) -> web.Response:
        method = request.method
        if not rest and method == "GET":
            indexes = [ALL_DOCS, *(ix.as_json() for ix in db.indexes())]
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
        fields = parse_index_fields(spec.get("fields"))
        partial = spec.get("partial_filter_selector", body.get("partial_filter_selector")) or None
        if partial is not None:
            compile_selector(partial)
        digest = hashlib.sha1(dumps([fields, partial])).hexdigest()
        name = body.get("name") or digest
        ddoc = body.get("ddoc") or digest
        if not isinstance(name, str) or not isinstance(ddoc, str):
            raise bad_request("name and ddoc must be strings")
        ddoc_id = ddoc if ddoc.startswith("_design/") else f"_design/{ddoc}"
        view = index_ddoc_view(fields, partial)
        partitioned = body.get("partitioned")
        if partitioned is not None and not isinstance(partitioned, bool):
            raise bad_request(f"Invalid `partitioned` value: {dumps(partitioned).decode()}")

        def op(tx: Tx) -> str:
            doc = tx.get_live(ddoc_id)
            if doc is None:
                doc = {"_id": ddoc_id, "language": "query", "views": {}}
                if partitioned is not None:
                    doc["options"] = {"partitioned": partitioned}
            elif doc.get("language") != "query" or not isinstance(doc.get("views"), dict):
                raise RowError("invalid_design_doc", f"{ddoc_id} is not a Mango index design document")
            elif partitioned is not None and ddoc_partitioned(doc) != partitioned:
                # As CouchDB: a design document's indexes are all partitioned or all global.
                raise RowError("invalid_partitioned_option", "Requested partitioned option does not match "
                               f"existing value on design document {ddoc_id}")
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
            doc: dict[str, Any] = tx.get_live(ddoc_id) or {}
            views = doc.get("views") if doc.get("language") == "query" else None
            if not isinstance(views, dict) or name not in views:
                raise RowError("not_found", "Index not found")
            del views[name]
            if not views:
                doc["_deleted"] = True
            tx.put_doc(doc)

        await db.write(op)
        return json_response({"ok": True})
