"""Per-database settings and maintenance: `_security`, `_revs_limit`, `_compact`,
`_view_cleanup`.

The `_security` object is stored and served here, and enforced by `security.py` (who may
read it, who may write it). The revision history kept per leaf stays `revtree.REVS_LIMIT` whatever `_revs_limit` says.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import CouchError, bad_request
from ..http import JSON, allow, json_response, read_json
from ..security import DEFAULT_SECURITY
from ..storage import Database, Tx

__all__ = ["DEFAULT_REVS_LIMIT", "DEFAULT_SECURITY", "SettingsHandlers"]

DEFAULT_REVS_LIMIT = 1000


def _check_security(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request("The security object must be a JSON object")
    for section in ("admins", "members"):
        part = value.get(section, {})
        if not isinstance(part, dict):
            raise bad_request(f"`{section}` must be an object")
        for key in ("names", "roles"):
            names = part.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise bad_request(f"`{section}.{key}` must be an array of strings")
    return value


class SettingsHandlers:
    """`/{db}/_security`, `/{db}/_revs_limit`, `/{db}/_compact`, `/{db}/_view_cleanup`."""

    async def security(self, request: web.Request, db: Database) -> web.Response:
        allow(request.method, "GET", "HEAD", "PUT")
        if request.method == "PUT":
            value = _check_security(await read_json(request, strict_type=False))
            await db.write(lambda tx: tx.set_setting("security", value))
            return json_response({"ok": True})
        stored = db.setting("security")
        return json_response(DEFAULT_SECURITY if stored is None else stored)

    async def revs_limit(self, request: web.Request, db: Database) -> web.Response:
        allow(request.method, "GET", "HEAD", "PUT")
        if request.method == "PUT":
            value = await read_json(request, require_object=False, strict_type=False)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise bad_request("`revs_limit` must be a positive integer")

            def store(tx: Tx) -> None:
                tx.set_setting("revs_limit", value)

            await db.write(store)
            return json_response({"ok": True})
        stored = db.setting("revs_limit")
        return json_response(DEFAULT_REVS_LIMIT if stored is None else stored)

    async def compact(self, request: web.Request, db: Database) -> web.Response:
        """`_compact` and `_view_cleanup`: accepted (202), nothing to do (SQLite reuses
        free pages itself; Mango indexes are dropped with their design documents)."""
        allow(request.method, "POST")
        if request.content_type != JSON:
            raise CouchError(415, "bad_content_type", "Content-Type must be application/json")
        return json_response({"ok": True}, 202)
