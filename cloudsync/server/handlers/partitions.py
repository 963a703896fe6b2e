"""`/{db}/_partition/{partition}/...`: one partition's info, `_all_docs`, `_find` and
`_explain`, answered and refused as CouchDB 3's `chttpd_db:handle_partition_req` does."""

from __future__ import annotations

from aiohttp import web

from ..errors import CouchError, bad_request, not_found
from ..http import allow, json_response
from ..partitions import validate_partition
from ..state import ServerState
from ..storage import Database
from .all_docs import AllDocsHandler
from .mango import MangoHandlers

__all__ = ["PartitionHandlers"]

NOT_PARTITIONED = "database is not partitioned"


class PartitionHandlers:
    """Routes `/{db}/_partition/...` to the database-wide handlers, scoped to the partition."""

    def __init__(self, state: ServerState, all_docs: AllDocsHandler, mango: MangoHandlers) -> None:
        self.state = state
        self.all_docs = all_docs
        self.mango = mango

    async def __call__(self, request: web.Request, db: Database, rest: list[str]) -> web.StreamResponse:
        """`rest`: the decoded path segments after `_partition`."""
        if not rest:
            raise bad_request("invalid_partition_req")
        partition, sub = rest[0], rest[1:]
        if not sub:
            return await self.info(request, db, partition)
        if not db.partitioned:
            raise bad_request(NOT_PARTITIONED)
        validate_partition(partition)
        if request.query.get("partition", partition) != partition:
            raise bad_request("Conflicting value for `partition` in query string")
        if sub == ["_all_docs"]:
            return await self.all_docs(request, db, partition)
        if sub == ["_find"]:
            return await self.mango.find(request, db, partition)
        if sub == ["_explain"]:
            return await self.mango.explain(request, db, partition)
        if sub[0] == "_design" and len(sub) >= 3 and sub[2].startswith("_"):
            raise not_found("Views and design-document functions are not supported by the cloudsync server")
        raise not_found("missing")

    async def info(self, request: web.Request, db: Database, partition: str) -> web.Response:
        """`GET /{db}/_partition/{partition}`: its document counts and sizes."""
        if request.method == "POST" and partition.startswith("_"):
            raise CouchError(400, "illegal_partition", "Partition must not start with an underscore")
        allow(request.method, "GET", "HEAD")
        validate_partition(partition)
        if not db.partitioned:
            raise bad_request(NOT_PARTITIONED)
        return json_response(await self.state.off_loop(lambda: db.partition_info(partition, db.query_conn())))
